// The NN ops (linear.h, attention.h, norms.h, activation.h, rope.h, projector.h) at the
// real NVILA-Lite-8B shapes, one layer of each, random bf16 weights (no checkpoint needed):
//
//   sr3d_nn_realsize_tests [--filter SUBSTR]
//
//   siglip    one encoder layer on 2 tiles x 1024 tokens (hidden 1152, 16 heads of 72, MLP
//             4304, GELU tanh), the 448 px patch embedding (k = 3*14*14 = 588)
//   projector 2 tiles: space_to_channel3 (32 -> 11 x 11 cells, padded) then
//             LN 10368 -> 3456 -> GELU -> LN -> 3584 -> GELU -> 3584
//   qwen2     one decoder layer (hidden 3584, GQA 28:4, head_dim 128, MLP 18944, theta 1e6):
//             a 600-position prefill in the engine's chunks (512 + 88 at offset 512), then
//             3 decode steps against the grown cache; attention at 4000-4096 keys (the last
//             prefill chunk, a decode step); the lm_head GEMV 3584 -> 152064; a 99-wide input
//   engine-layout (CUDA only) the device ops as the CUDA engine chains them: batched SigLIP
//             attention on the interleaved q|k|v rows, rope_qkv_to_cache + chunked causal
//             attention with the engine's workspace
//
// The layer runs on Impl::kFast; every op's fast output is checked against Impl::kReference
// given the same input (and Impl::kCuda too with a usable device). The scalar reference of
// a GEMM at these sizes would take minutes, so row-wise ops (linear, attention) compare a
// sample of rows (tile / chunk edges, first and last, random ones); cheap ops compare every
// element. Tolerances are nn_tests.cc's: linear per element rtol 1e-5 of sum_k |x_k w_k|
// (+ |bias|); norms and attention 2e-6 + 1e-5 |want|; elementwise ops and rope bit-exact
// fast vs reference, CUDA 2e-7 + 5e-7 |want| (device transcendentals); CUDA full outputs
// also within 1e-4 of the largest |fast| value everywhere (nn_cuda_tests.cc's rule).
// LayerNorm rows are also checked against float64 (the projector's d = 10368 is where a single
// float32 running sum would drift: the reference sums in double).
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "activation.h"
#include "attention.h"
#include "harness.h"
#include "linear.h"
#include "norms.h"
#include "projector.h"
#include "rope.h"
#ifdef SR3D_WITH_CUDA
#include "cuda/nn.cuh"
#endif

using namespace sr3d;
using namespace sr3d_test;

namespace {


// ---- inputs --------------------------------------------------------------------------------

// splitmix64: the weights are ~10^9 draws, too many for mt19937 + uniform_real_distribution
// in the time budget.
struct FastRng {
  uint64_t s;
  explicit FastRng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 1) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) {  // [lo, hi), 24 random bits
    return lo + (hi - lo) * static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);
  }
};

std::vector<float> randv(int64_t n, uint64_t seed, float lo = -1, float hi = 1) {
  FastRng r(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = r.uniform(lo, hi);
  return v;
}

// bf16 weight [rows][cols], uniform in +-sqrt(3 / cols): unit-variance inputs give
// unit-variance outputs, so activations stay O(1) through the layer like a trained model's.
struct Bf16Weight {
  std::vector<uint16_t> bits;
  WeightRef ref;
};
Bf16Weight bf16_weight(int64_t rows, int64_t cols, uint64_t seed) {
  Bf16Weight w;
  const float a = static_cast<float>(std::sqrt(3.0 / static_cast<double>(cols)));
  FastRng r(seed);
  w.bits.resize(static_cast<size_t>(rows * cols));
  for (uint16_t& b : w.bits) b = float_to_bf16(r.uniform(-a, a));
  w.ref.data = w.bits.data();
  w.ref.type = WType::kBF16;
  w.ref.rows = rows;
  w.ref.cols = cols;
  return w;
}

// Sorted distinct rows of [0, n): the given edges (those in range) plus `extra` random ones.
std::vector<int64_t> sample_rows(int64_t n, std::vector<int64_t> edges, int extra, uint64_t seed) {
  Rng r(seed);
  for (int i = 0; i < extra; ++i) edges.push_back(r.integer(0, n - 1));
  std::vector<int64_t> rows;
  for (int64_t e : edges)
    if (e >= 0 && e < n) rows.push_back(e);
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

// The sampled rows (each `width` wide) of a row-major array.
std::vector<float> gather_rows(const std::vector<float>& a, int64_t width,
                               const std::vector<int64_t>& rows) {
  std::vector<float> out;
  out.reserve(rows.size() * static_cast<size_t>(width));
  for (int64_t r : rows) out.insert(out.end(), a.begin() + r * width, a.begin() + (r + 1) * width);
  return out;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

// ---- checks ---------------------------------------------------------------------------------

// The harness's check_close, reporting the measured error of every comparison (also on success).
void check_close(const std::string& ctx, const std::vector<float>& got,
                 const std::vector<float>& want, const std::vector<double>& atol, double rtol,
                 const std::vector<int64_t>& shape, const char* known = nullptr) {
  sr3d_test::check_close(ctx, got, want, atol, rtol, shape, known, true);
}
void check_close(const std::string& ctx, const std::vector<float>& got,
                 const std::vector<float>& want, double atol, double rtol,
                 const std::vector<int64_t>& shape, const char* known = nullptr) {
  sr3d_test::check_close(ctx, got, want, atol, rtol, shape, known, true);
}
void check_exact(const std::string& ctx, const std::vector<float>& got,
                 const std::vector<float>& want, const std::vector<int64_t>& shape) {
  check_floats(ctx, got, want, shape, 0);
  bool same = got.size() == want.size();
  for (size_t i = 0; same && i < got.size(); ++i) same = float_bits(got[i]) == float_bits(want[i]);
  if (same) std::printf("  ok  %-58s bit-exact\n", ctx.c_str());
}

// A CUDA output vs the fast one everywhere: within 1e-4 of the largest |fast| value.
void check_cuda_full(const std::string& ctx, const std::vector<float>& cuda,
                     const std::vector<float>& fast, const std::vector<int64_t>& shape) {
  check_close(ctx + " [cuda vs fast, all]", cuda, fast, 1e-4 * std::max(1e-3, max_abs(fast)), 0,
              shape);
}

// y = x . W^T + bias on Impl::kFast (returned); the sampled rows against Impl::kReference
// with the per-element scale tolerance; Impl::kCuda the same, plus everywhere vs fast.
std::vector<float> linear_checked(const std::string& ctx, const std::vector<float>& x, int64_t n,
                                  const WeightRef& w, const float* bias,
                                  const std::vector<int64_t>& rows) {
  const int64_t K = w.cols, N = w.rows;
  std::vector<float> y(static_cast<size_t>(n * N), 12345.f);
  linear(x.data(), n, w, bias, y.data(), Impl::kFast);
  std::vector<float> ref;
  std::vector<double> tol;
  ref.reserve(rows.size() * static_cast<size_t>(N));
  tol.reserve(ref.capacity());
  std::vector<float> one(static_cast<size_t>(N));
  for (int64_t r : rows) {
    const float* xr = x.data() + r * K;
    linear(xr, 1, w, bias, one.data(), Impl::kReference);
    ref.insert(ref.end(), one.begin(), one.end());
    for (int64_t o = 0; o < N; ++o) {  // sum_k |x_k w_k| in double
      double a = bias ? std::fabs(static_cast<double>(bias[o])) : 0.0;
      for (int64_t k = 0; k < K; ++k)
        a += std::fabs(static_cast<double>(xr[k]) * load_weight(w.data, w.type, o * K + k));
      tol.push_back(1e-5 * a + 1e-30);
    }
  }
  const std::vector<int64_t> shape = {static_cast<int64_t>(rows.size()), N};
  check_close(ctx + fmt(" [fast vs reference, %zu rows]", rows.size()), gather_rows(y, N, rows),
              ref, tol, 0, shape);
  if (g_cuda) {
    std::vector<float> c(y.size(), 12345.f);
    Outcome o = run_op([&] { linear(x.data(), n, w, bias, c.data(), Impl::kCuda); });
    if (o.threw) {
      record(false, ctx + " [cuda]", o.msg, nullptr);
    } else {
      check_close(ctx + fmt(" [cuda vs reference, %zu rows]", rows.size()),
                  gather_rows(c, N, rows), ref, tol, 0, shape);
      check_cuda_full(ctx, c, y, {n, N});
    }
  }
  return y;
}

// Attention on Impl::kFast (returned); the sampled query rows against Impl::kReference run
// for that row alone at its absolute position (q_offset + i); Impl::kCuda likewise.
std::vector<float> attention_checked(const std::string& ctx, const float* q, const float* k,
                                     const float* v, int64_t nq, int64_t nk, int64_t hq,
                                     int64_t hkv, int64_t d, bool causal, int64_t q_offset,
                                     const std::vector<int64_t>& rows) {
  const float scale = static_cast<float>(std::pow(static_cast<double>(d), -0.5));
  const int64_t W = hq * d;
  std::vector<float> out(static_cast<size_t>(nq * W), 12345.f);
  attention(q, k, v, nq, nk, hq, hkv, d, scale, causal, q_offset, out.data(), Impl::kFast);
  std::vector<float> ref, one(static_cast<size_t>(W));
  for (int64_t i : rows) {
    attention(q + i * W, k, v, 1, nk, hq, hkv, d, scale, causal, q_offset + i, one.data(),
              Impl::kReference);
    ref.insert(ref.end(), one.begin(), one.end());
  }
  const std::vector<int64_t> shape = {static_cast<int64_t>(rows.size()), hq, d};
  check_close(ctx + fmt(" [fast vs reference, %zu rows]", rows.size()), gather_rows(out, W, rows),
              ref, 2e-6, 1e-5, shape);
  if (g_cuda) {
    std::vector<float> c(out.size(), 12345.f);
    Outcome o = run_op([&] {
      attention(q, k, v, nq, nk, hq, hkv, d, scale, causal, q_offset, c.data(), Impl::kCuda);
    });
    if (o.threw) {
      record(false, ctx + " [cuda]", o.msg, nullptr);
    } else {
      check_close(ctx + fmt(" [cuda vs reference, %zu rows]", rows.size()),
                  gather_rows(c, W, rows), ref, 2e-6, 1e-5, shape);
      check_cuda_full(ctx, c, out, {nq, hq, d});
    }
  }
  return out;
}

// Runs op(impl, out) for reference, fast and (with a device) CUDA over every element:
// fast vs reference at (fast_atol, fast_rtol) (0, 0 = bit-exact), CUDA at its own.
using OpFn = std::function<void(Impl, std::vector<float>&)>;
std::vector<float> elementwise_checked(const std::string& ctx, size_t n_out, const OpFn& op,
                                       double fast_atol, double fast_rtol, double cuda_atol,
                                       double cuda_rtol, const std::vector<int64_t>& shape,
                                       const char* ref_known = nullptr,
                                       std::vector<float>* cuda_out = nullptr) {
  std::vector<float> ref(n_out, 12345.f), fast(n_out, 12345.f);
  op(Impl::kReference, ref);
  op(Impl::kFast, fast);
  if (fast_atol == 0 && fast_rtol == 0) check_exact(ctx + " [fast vs reference]", fast, ref, shape);
  else check_close(ctx + " [fast vs reference]", fast, ref, fast_atol, fast_rtol, shape, ref_known);
  if (g_cuda) {
    std::vector<float> c(n_out, 12345.f);
    Outcome o = run_op([&] { op(Impl::kCuda, c); });
    if (o.threw) record(false, ctx + " [cuda]", o.msg, nullptr);
    else check_close(ctx + " [cuda vs reference]", c, ref, cuda_atol, cuda_rtol, shape, ref_known);
    if (cuda_out) *cuda_out = std::move(c);
  }
  return fast;
}

// LayerNorm of the sampled rows in float64 (two-pass mean / biased variance), as float.
std::vector<float> layer_norm_f64(const std::vector<float>& x, int64_t d,
                                  const std::vector<float>& g, const std::vector<float>& b,
                                  float eps, const std::vector<int64_t>& rows) {
  std::vector<float> out;
  for (int64_t r : rows) {
    const float* xr = x.data() + r * d;
    double s = 0, ss = 0;
    for (int64_t c = 0; c < d; ++c) s += xr[c];
    const double mean = s / static_cast<double>(d);
    for (int64_t c = 0; c < d; ++c) ss += (xr[c] - mean) * (xr[c] - mean);
    const double rstd = 1 / std::sqrt(ss / static_cast<double>(d) + eps);
    for (int64_t c = 0; c < d; ++c)
      out.push_back(static_cast<float>((xr[c] - mean) * rstd * g[c] + b[c]));
  }
  return out;
}

// Every element fast vs reference; the sampled rows of both against float64 too (which
// one drifts when they disagree: a float32 sum over d terms in one running total loses
// ~d * 2^-24 relative in the worst case).
std::vector<float> layer_norm_checked(const std::string& ctx, const std::vector<float>& x,
                                      int64_t n, int64_t d, const std::vector<float>& g,
                                      const std::vector<float>& b, float eps,
                                      const std::vector<int64_t>& rows,
                                      const char* ref_known = nullptr) {
  std::vector<float> ref(x.size()), cuda;
  layer_norm(x.data(), n, d, g.data(), b.data(), eps, ref.data(), Impl::kReference);
  std::vector<float> fast = elementwise_checked(ctx, x.size(), [&](Impl im, std::vector<float>& y) {
    if (im == Impl::kReference) y = ref;
    else layer_norm(x.data(), n, d, g.data(), b.data(), eps, y.data(), im);
  }, 2e-6, 1e-5, 2e-6, 1e-5, {n, d}, ref_known, &cuda);
  const std::vector<float> want = layer_norm_f64(x, d, g, b, eps, rows);
  const std::vector<int64_t> shape = {static_cast<int64_t>(rows.size()), d};
  check_close(ctx + fmt(" [fast vs float64, %zu rows]", rows.size()), gather_rows(fast, d, rows),
              want, 2e-6, 1e-5, shape);
  if (!cuda.empty())
    check_close(ctx + fmt(" [cuda vs float64, %zu rows]", rows.size()),
                gather_rows(cuda, d, rows), want, 2e-6, 1e-5, shape);
  check_close(ctx + fmt(" [reference vs float64, %zu rows]", rows.size()),
              gather_rows(ref, d, rows), want, 2e-6, 1e-5, shape, ref_known);
  return fast;
}
std::vector<float> rms_norm_checked(const std::string& ctx, const std::vector<float>& x,
                                    int64_t n, int64_t d, const std::vector<float>& g, float eps) {
  return elementwise_checked(ctx, x.size(), [&](Impl im, std::vector<float>& y) {
    rms_norm(x.data(), n, d, g.data(), eps, y.data(), im);
  }, 2e-6, 1e-5, 2e-6, 1e-5, {n, d});
}
std::vector<float> activation_checked(const std::string& ctx, const std::vector<float>& x,
                                      Act act, const std::vector<int64_t>& shape) {
  return elementwise_checked(ctx, x.size(), [&](Impl im, std::vector<float>& y) {
    y = x;
    activation(y.data(), static_cast<int64_t>(y.size()), act, im);
  }, 0, 0, 2e-7, 5e-7, shape);
}
std::vector<float> rope_checked(const std::string& ctx, const std::vector<float>& x, int64_t n_tok,
                                int64_t heads, int64_t hd, const std::vector<int32_t>& pos,
                                double theta) {
  return elementwise_checked(ctx, x.size(), [&](Impl im, std::vector<float>& y) {
    y = x;
    rope(y.data(), n_tok, heads, hd, pos.data(), theta, im);
  }, 0, 0, 2e-7, 5e-7, {n_tok, heads, hd});
}

void add_into(std::vector<float>& acc, const std::vector<float>& x) {
  for (size_t i = 0; i < acc.size(); ++i) acc[i] += x[i];
}

// ---- real sizes ------------------------------------------------------------------------------

constexpr int64_t kTiles = 2, kImage = 448, kPatch = 14, kGrid = kImage / kPatch;  // 32
constexpr int64_t kTok = kGrid * kGrid;                                               // 1024
constexpr int64_t kVH = 1152, kVHeads = 16, kVHd = 72, kVI = 4304;
constexpr float kVEps = 1e-6f;
constexpr int64_t kLH = 3584, kHq = 28, kHkv = 4, kHd = 128, kLI = 18944, kVocab = 152064;
constexpr float kLEps = 1e-6f;
constexpr double kTheta = 1e6;

std::vector<float> gamma_like(int64_t d, uint64_t seed) { return randv(d, seed, 0.5f, 1.5f); }

// One SigLIP encoder layer (pre-LN: h += attn(LN1 h); h += fc2(gelu_tanh(fc1(LN2 h)))).
void test_siglip_layer() {
  const std::string base = "siglip/2x1024 tokens,hidden 1152,16x72 heads,mlp 4304";
  if (!begin_case(base)) return;
  const int64_t rows = kTiles * kTok;
  // Tile edges, first / last, and a spread of random rows.
  const std::vector<int64_t> sr = sample_rows(rows, {0, 1, kTok - 1, kTok, kTok + 1, rows - 1}, 10, 11);
  std::vector<float> h = randv(rows * kVH, 101, -1.5f, 1.5f);

  std::vector<float> ln1_g = gamma_like(kVH, 1), ln1_b = randv(kVH, 2, -0.2f, 0.2f);
  std::vector<float> a = layer_norm_checked(base + " ln1", h, rows, kVH, ln1_g, ln1_b, kVEps, sr);

  std::vector<float> qkv_b = randv(3 * kVH, 3, -0.2f, 0.2f);
  std::vector<float> qkv;
  {
    Bf16Weight wqkv = bf16_weight(3 * kVH, kVH, 4);  // q|k|v rows, as the engines fuse them
    qkv = linear_checked(base + " qkv 1152->3456", a, rows, wqkv.ref, qkv_b.data(), sr);
  }
  // Per tile: q, k, v [1024][16][72] out of the fused rows.
  std::vector<float> att(static_cast<size_t>(rows * kVH));
  for (int64_t t = 0; t < kTiles; ++t) {
    std::vector<float> q(static_cast<size_t>(kTok * kVH)), k(q.size()), v(q.size());
    for (int64_t i = 0; i < kTok; ++i) {
      const float* r = qkv.data() + (t * kTok + i) * 3 * kVH;
      std::copy(r, r + kVH, q.begin() + i * kVH);
      std::copy(r + kVH, r + 2 * kVH, k.begin() + i * kVH);
      std::copy(r + 2 * kVH, r + 3 * kVH, v.begin() + i * kVH);
    }
    const std::vector<int64_t> qr = sample_rows(kTok, {0, 15, 16, kTok - 1}, 6, 20 + t);
    std::vector<float> o = attention_checked(base + fmt(" attention tile %" PRId64, t), q.data(),
                                             k.data(), v.data(), kTok, kTok, kVHeads, kVHeads,
                                             kVHd, false, 0, qr);
    std::copy(o.begin(), o.end(), att.begin() + t * kTok * kVH);
  }
  {
    Bf16Weight wo = bf16_weight(kVH, kVH, 5);
    std::vector<float> ob = randv(kVH, 6, -0.2f, 0.2f);
    add_into(h, linear_checked(base + " out_proj 1152->1152", att, rows, wo.ref, ob.data(), sr));
  }
  std::vector<float> ln2_g = gamma_like(kVH, 7), ln2_b = randv(kVH, 8, -0.2f, 0.2f);
  a = layer_norm_checked(base + " ln2", h, rows, kVH, ln2_g, ln2_b, kVEps, sr);
  std::vector<float> m;
  {
    Bf16Weight w1 = bf16_weight(kVI, kVH, 9);
    std::vector<float> b1 = randv(kVI, 10, -0.2f, 0.2f);
    m = linear_checked(base + " fc1 1152->4304", a, rows, w1.ref, b1.data(), sr);
  }
  m = activation_checked(base + " gelu_tanh", m, Act::kGeluTanh, {rows, kVI});
  {
    Bf16Weight w2 = bf16_weight(kVH, kVI, 12);
    std::vector<float> b2 = randv(kVH, 13, -0.2f, 0.2f);
    add_into(h, linear_checked(base + " fc2 4304->1152", m, rows, w2.ref, b2.data(), sr));
  }
  bool finite = true;
  for (float x : h) finite = finite && std::isfinite(x);
  record(finite, base + " output finite", "a non-finite value in the layer output", nullptr);
}

// The 448 px patch embedding of 2 tiles (conv 14x14 stride 14, k = 588: not a multiple of 8).
void test_patch_embed() {
  const std::string base = "siglip/patch_embed 2x3x448x448 -> 2x1024x1152";
  if (!begin_case(base)) return;
  std::vector<float> img = randv(kTiles * 3 * kImage * kImage, 201);
  Bf16Weight w = bf16_weight(kVH, 3 * kPatch * kPatch, 202);
  std::vector<float> b = randv(kVH, 203, -0.2f, 0.2f);
  const int64_t per = kTok * kVH;
  std::vector<float> fast(static_cast<size_t>(kTiles * per), 12345.f);
  patch_embed(img.data(), kTiles, kImage, kPatch, w.ref, b.data(), fast.data(), Impl::kFast);
  // The scalar reference of the second tile alone (its image offset is the indexing at risk).
  std::vector<float> ref(static_cast<size_t>(per));
  patch_embed(img.data() + 3 * kImage * kImage, 1, kImage, kPatch, w.ref, b.data(), ref.data(),
              Impl::kReference);
  // Tolerance per element: 1e-5 sum |x w| + |b|, from the im2col row of the patch.
  std::vector<double> tol(ref.size());
  const float* im = img.data() + 3 * kImage * kImage;
  for (int64_t p = 0; p < kTok; ++p) {
    const int64_t py = p / kGrid, px = p % kGrid;
    for (int64_t o = 0; o < kVH; ++o) {
      double s = std::fabs(static_cast<double>(b[o]));
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t ky = 0; ky < kPatch; ++ky)
          for (int64_t kx = 0; kx < kPatch; ++kx) {
            const float xv = im[(c * kImage + py * kPatch + ky) * kImage + px * kPatch + kx];
            s += std::fabs(xv * static_cast<double>(load_weight(
                                    w.ref.data, w.ref.type, o * w.ref.cols + (c * kPatch + ky) * kPatch + kx)));
          }
      tol[p * kVH + o] = 1e-5 * s + 1e-30;
    }
  }
  const std::vector<float> fast1(fast.begin() + per, fast.end());
  check_close(base + " tile 1 [fast vs reference]", fast1, ref, tol, 0, {kTok, kVH});
  if (g_cuda) {
    std::vector<float> c(fast.size(), 12345.f);
    Outcome o = run_op([&] {
      patch_embed(img.data(), kTiles, kImage, kPatch, w.ref, b.data(), c.data(), Impl::kCuda);
    });
    if (o.threw) {
      record(false, base + " [cuda]", o.msg, nullptr);
    } else {
      check_close(base + " tile 1 [cuda vs reference]",
                  std::vector<float>(c.begin() + per, c.end()), ref, tol, 0, {kTok, kVH});
      check_cuda_full(base, c, fast, {kTiles, kTok, kVH});
    }
  }
}

// The 3x3 projector on 2 tiles of SigLIP features.
void test_projector() {
  const std::string base = "projector/2 tiles,10368->3456->3584->3584";
  if (!begin_case(base)) return;
  const int64_t G = (kGrid + 2) / 3, cells = G * G, rows = kTiles * cells, C9 = 9 * kVH;  // 11, 121
  const int64_t w2 = 3456, w5 = 3584, w7 = 3584;
  const float eps = 1e-5f;
  std::vector<float> feats = randv(kTiles * kTok * kVH, 301, -2, 2);
  std::vector<float> s = elementwise_checked(base + " space_to_channel3", static_cast<size_t>(rows * C9),
                                             [&](Impl im, std::vector<float>& y) {
    space_to_channel3(feats.data(), kTiles, kGrid, kVH, y.data(), im);
  }, 0, 0, 0, 0, {kTiles, cells, C9});
  // Tile edges and the padded last row / column of cells.
  const std::vector<int64_t> sr =
      sample_rows(rows, {0, G - 1, cells - G, cells - 1, cells, rows - 1}, 6, 31);
  std::vector<float> g1 = gamma_like(C9, 302), b1 = randv(C9, 303, -0.2f, 0.2f);
  std::vector<float> a = layer_norm_checked(
      base + " ln 10368", s, rows, C9, g1, b1, eps, sr);
  std::vector<float> y;
  {
    Bf16Weight w = bf16_weight(w2, C9, 304);
    std::vector<float> b = randv(w2, 305, -0.2f, 0.2f);
    y = linear_checked(base + " linear 10368->3456", a, rows, w.ref, b.data(), sr);
  }
  y = activation_checked(base + " gelu_erf 1", y, Act::kGeluErf, {rows, w2});
  std::vector<float> g4 = gamma_like(w2, 306), b4 = randv(w2, 307, -0.2f, 0.2f);
  a = layer_norm_checked(base + " ln 3456", y, rows, w2, g4, b4, eps, sr);
  {
    Bf16Weight w = bf16_weight(w5, w2, 308);
    std::vector<float> b = randv(w5, 309, -0.2f, 0.2f);
    y = linear_checked(base + " linear 3456->3584", a, rows, w.ref, b.data(), sr);
  }
  y = activation_checked(base + " gelu_erf 2", y, Act::kGeluErf, {rows, w5});
  {
    Bf16Weight w = bf16_weight(w7, w5, 310);
    std::vector<float> b = randv(w7, 311, -0.2f, 0.2f);
    y = linear_checked(base + " linear 3584->3584", y, rows, w.ref, b.data(), sr);
  }
}

// Weights of one Qwen2 decoder layer.
struct QwenLayer {
  std::vector<float> in_norm, post_norm, qb, kb, vb;
  Bf16Weight q, k, v, o, gate, up, down;
};

// The Qwen2 layer over positions pos0 .. pos0 + n - 1 of x [n][3584] (in place), appending
// the RoPE'd k and the v rows to kc / vc ([positions][4][128]). Attention runs in the CUDA
// engine's chunks of 512 positions (exact: each chunk reads the grown cache).
void qwen_layer(const std::string& base, const QwenLayer& L, std::vector<float>& x, int64_t n,
                int64_t pos0, std::vector<float>& kc, std::vector<float>& vc,
                const std::vector<int64_t>& sr) {
  const int64_t Q = kHq * kHd;
  std::vector<float> a = rms_norm_checked(base + " input rms_norm", x, n, kLH, L.in_norm, kLEps);
  std::vector<float> q = linear_checked(base + " q_proj 3584->3584", a, n, L.q.ref, L.qb.data(), sr);
  std::vector<float> k = linear_checked(base + " k_proj 3584->512", a, n, L.k.ref, L.kb.data(), sr);
  std::vector<float> v = linear_checked(base + " v_proj 3584->512", a, n, L.v.ref, L.vb.data(), sr);
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) pos[t] = static_cast<int32_t>(pos0 + t);
  q = rope_checked(base + " rope q", q, n, kHq, kHd, pos, kTheta);
  k = rope_checked(base + " rope k", k, n, kHkv, kHd, pos, kTheta);
  kc.insert(kc.end(), k.begin(), k.end());
  vc.insert(vc.end(), v.begin(), v.end());
  std::vector<float> att(static_cast<size_t>(n * Q));
  for (int64_t c0 = 0; c0 < n; c0 += 512) {
    const int64_t c = std::min<int64_t>(512, n - c0), off = pos0 + c0, nk = off + c;
    const std::vector<int64_t> qr = sample_rows(c, {0, 15, 16, c - 1}, 4, 40 + off);
    std::vector<float> o = attention_checked(
        base + fmt(" attention q %" PRId64 "..%" PRId64 " of %" PRId64 " keys", off, nk - 1, nk),
        q.data() + c0 * Q, kc.data(), vc.data(), c, nk, kHq, kHkv, kHd, true, off, qr);
    std::copy(o.begin(), o.end(), att.begin() + c0 * Q);
  }
  add_into(x, linear_checked(base + " o_proj 3584->3584", att, n, L.o.ref, nullptr, sr));
  a = rms_norm_checked(base + " post rms_norm", x, n, kLH, L.post_norm, kLEps);
  std::vector<float> g = linear_checked(base + " gate 3584->18944", a, n, L.gate.ref, nullptr, sr);
  std::vector<float> u = linear_checked(base + " up 3584->18944", a, n, L.up.ref, nullptr, sr);
  std::vector<float> act = elementwise_checked(base + " silu_mul", g.size(),
                                               [&](Impl im, std::vector<float>& y) {
    silu_mul(g.data(), u.data(), static_cast<int64_t>(g.size()), y.data(), im);
  }, 0, 0, 2e-7, 5e-7, {n, kLI});
  add_into(x, linear_checked(base + " down 18944->3584", act, n, L.down.ref, nullptr, sr));
}

void test_qwen2_layer() {
  const std::string base = "qwen2/layer hidden 3584,gqa 28:4,hd 128,mlp 18944";
  if (!begin_case(base)) return;
  QwenLayer L;
  L.in_norm = gamma_like(kLH, 401);
  L.post_norm = gamma_like(kLH, 402);
  L.qb = randv(kHq * kHd, 403, -0.5f, 0.5f);
  L.kb = randv(kHkv * kHd, 404, -0.5f, 0.5f);
  L.vb = randv(kHkv * kHd, 405, -0.5f, 0.5f);
  L.q = bf16_weight(kHq * kHd, kLH, 406);
  L.k = bf16_weight(kHkv * kHd, kLH, 407);
  L.v = bf16_weight(kHkv * kHd, kLH, 408);
  L.o = bf16_weight(kLH, kHq * kHd, 409);
  L.gate = bf16_weight(kLI, kLH, 410);
  L.up = bf16_weight(kLI, kLH, 411);
  L.down = bf16_weight(kLH, kLI, 412);
  std::vector<float> kc, vc;  // the layer's cache, [positions][4][128]
  const int64_t n = 600;
  std::vector<float> x = randv(n * kLH, 413, -1, 1);
  // The 512-position chunk edge, first / last, random rows.
  qwen_layer(base + " prefill 600", L, x, n, 0, kc, vc,
             sample_rows(n, {0, 511, 512, n - 1}, 6, 414));
  for (int step = 0; step < 3; ++step) {
    std::vector<float> t = randv(kLH, 420 + step, -1, 1);  // a fresh token embedding
    qwen_layer(base + fmt(" decode pos %" PRId64, n + step), L, t, 1, n + step, kc, vc, {0});
  }
  record(static_cast<int64_t>(kc.size()) == (n + 3) * kHkv * kHd, base + " cache rows",
         "the cache did not grow to 603 positions", nullptr);
}

// Attention at the long-context end: the last chunk of a 4000-position prefill and a decode
// step at 4096 keys (split over blocks on the GPU).
void test_long_attention() {
  const std::string base = "qwen2/attention long context";
  if (!begin_case(base)) return;
  const int64_t nk = 4096;
  std::vector<float> k = randv(nk * kHkv * kHd, 501, -2, 2), v = randv(nk * kHkv * kHd, 502);
  {
    const int64_t off = 3904, nq = 96;  // positions 3904..3999 over 4000 keys
    std::vector<float> q = randv(nq * kHq * kHd, 503, -2, 2);
    attention_checked(base + " q 3904..3999 of 4000 keys", q.data(), k.data(), v.data(), nq, 4000,
                      kHq, kHkv, kHd, true, off, sample_rows(nq, {0, 15, 16, nq - 1}, 4, 504));
  }
  {
    std::vector<float> q = randv(kHq * kHd, 505, -2, 2);
    attention_checked(base + " decode q 4095 of 4096 keys", q.data(), k.data(), v.data(), 1, nk,
                      kHq, kHkv, kHd, true, nk - 1, {0});
  }
}

// The lm_head GEMV 3584 -> 152064 (545M bf16 weights) of one normed row, and a 99-wide input
// (k not a multiple of 4 or 8) through both CUDA paths (GEMV n <= 4, GEMM n > 4).
void test_lm_head_and_odd_k() {
  const std::string base = "qwen2/lm_head 3584->152064 bf16";
  if (begin_case(base)) {
    Bf16Weight w = bf16_weight(kVocab, kLH, 601);
    std::vector<float> x = rms_norm_checked(base + " final rms_norm", randv(kLH, 602, -2, 2), 1,
                                            kLH, gamma_like(kLH, 603), kLEps);
    std::vector<float> logits = linear_checked(base, x, 1, w.ref, nullptr, {0});
    bool finite = true;
    for (float f : logits) finite = finite && std::isfinite(f);
    record(finite, base + " logits finite", "a non-finite logit", nullptr);
  }
  const std::string odd = "linear/k=99 (PE MLP input)->3584 bf16";
  if (begin_case(odd)) {
    Bf16Weight w = bf16_weight(3584, 99, 611);
    std::vector<float> b = randv(3584, 612, -0.2f, 0.2f);
    for (int64_t n : {3, 300}) {
      std::vector<float> x = randv(n * 99, 613 + n);
      linear_checked(odd + fmt(" n=%" PRId64, n), x, n, w.ref, b.data(),
                     sample_rows(n, {0, n - 1}, 6, 614));
    }
  }
}

#ifdef SR3D_WITH_CUDA
template <typename T>
std::vector<T> from_device(const cuda::DeviceBuffer<T>& d, cudaStream_t s) {
  std::vector<T> h(d.size());
  if (!h.empty())
    SR3D_CUDA_CHECK(cudaMemcpyAsync(h.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost, s));
  SR3D_CUDA_CHECK(cudaStreamSynchronize(s));
  return h;
}

// The device ops as the CUDA engine chains them (engine_cuda.cu), which the host entry
// points do not reach: batch > 1 with strided q|k|v rows, the fused RoPE + cache write, the
// caller's split workspace. Compared with the CPU ops on the same inputs.
void test_engine_layout() {
  const std::string base = "engine-layout/cuda";
  if (!begin_case(base)) return;
  if (!g_cuda) {
    std::printf("  skipped: no usable CUDA device\n");
    return;
  }
  cuda::use_selected_device();
  cuda::Stream stream;
  cudaStream_t s = stream.get();
  {  // SigLIP: batch 2 tiles over interleaved [token][q|k|v] rows, one launch
    const int64_t rows = kTiles * kTok;
    std::vector<float> qkv = randv(rows * 3 * kVH, 701, -2, 2);
    cuda::DeviceBuffer<float> dqkv = to_device(qkv), dout(static_cast<size_t>(rows * kVH));
    cuda::AttentionArgs at;
    at.q = dqkv.get();
    at.k = dqkv.get() + kVH;
    at.v = dqkv.get() + 2 * kVH;
    at.out = dout.get();
    at.q_stride = at.kv_stride = 3 * kVH;
    at.out_stride = kVH;
    at.q_bstride = at.kv_bstride = kTok * 3 * kVH;
    at.out_bstride = kTok * kVH;
    at.batch = kTiles;
    at.nq = at.nk = kTok;
    at.hq = at.hkv = kVHeads;
    at.d = kVHd;
    at.scale = static_cast<float>(std::pow(static_cast<double>(kVHd), -0.5));
    cuda::attention_dev(at, s);
    std::vector<float> got = from_device(dout, s);
    for (int64_t t = 0; t < kTiles; ++t) {
      std::vector<float> q(static_cast<size_t>(kTok * kVH)), k(q.size()), v(q.size());
      for (int64_t i = 0; i < kTok; ++i) {
        const float* r = qkv.data() + (t * kTok + i) * 3 * kVH;
        std::copy(r, r + kVH, q.begin() + i * kVH);
        std::copy(r + kVH, r + 2 * kVH, k.begin() + i * kVH);
        std::copy(r + 2 * kVH, r + 3 * kVH, v.begin() + i * kVH);
      }
      std::vector<float> want(q.size());
      attention(q.data(), k.data(), v.data(), kTok, kTok, kVHeads, kVHeads, kVHd, at.scale, false,
                0, want.data(), Impl::kFast);
      check_close(base + fmt(" siglip batched attention tile %" PRId64 " [vs fast]", t),
                  std::vector<float>(got.begin() + t * kTok * kVH, got.begin() + (t + 1) * kTok * kVH),
                  want, 2e-6, 1e-5, {kTok, kVHeads, kVHd});
    }
  }
  {  // Qwen2: fused q|k|v rows -> rope_qkv_to_cache -> causal attention, chunks of 512 over
     // a 600-position prefill, then one decode step; the engine's workspace
    const int64_t n = 601, Q = kHq * kHd, KV = kHkv * kHd, W = Q + 2 * KV, max_ctx = 1024;
    std::vector<float> qkv = randv(n * W, 711, -2, 2);
    std::vector<float> inv(static_cast<size_t>(kHd / 2));
    rope_inv_freq(kHd, kTheta, inv.data());
    cuda::DeviceBuffer<float> dinv = to_device(inv);
    cuda::DeviceBuffer<float> kc(static_cast<size_t>(max_ctx * KV)), vc(kc.size());
    std::vector<float> got(static_cast<size_t>(n * Q));
    const int64_t chunks[][2] = {{0, 512}, {512, 88}, {600, 1}};
    for (const auto& ch : chunks) {
      const int64_t pos0 = ch[0], c = ch[1];
      std::vector<float> part(qkv.begin() + pos0 * W, qkv.begin() + (pos0 + c) * W);
      cuda::DeviceBuffer<float> dqkv = to_device(part), dout(static_cast<size_t>(c * Q));
      const size_t wsf = cuda::attention_workspace_floats(c, kHq, kHd);
      cuda::DeviceBuffer<float> ws(wsf);
      cuda::rope_qkv_to_cache_dev(dqkv.get(), c, kHq, kHkv, kHd, pos0, dinv.get(), kc.get(),
                                  vc.get(), s);
      cuda::AttentionArgs at;
      at.q = dqkv.get();
      at.k = kc.get();
      at.v = vc.get();
      at.out = dout.get();
      at.q_stride = W;
      at.kv_stride = KV;
      at.out_stride = Q;
      at.nq = c;
      at.nk = pos0 + c;
      at.hq = kHq;
      at.hkv = kHkv;
      at.d = kHd;
      at.scale = static_cast<float>(std::pow(static_cast<double>(kHd), -0.5));
      at.causal = true;
      at.q_offset = pos0;
      at.workspace = ws.get();
      at.workspace_floats = wsf;
      cuda::attention_dev(at, s);
      std::vector<float> o = from_device(dout, s);
      std::copy(o.begin(), o.end(), got.begin() + pos0 * Q);
    }
    // CPU: split, rope (fast), the same chunks.
    std::vector<float> q(static_cast<size_t>(n * Q)), k(static_cast<size_t>(n * KV)), v(k.size());
    for (int64_t t = 0; t < n; ++t) {
      const float* r = qkv.data() + t * W;
      std::copy(r, r + Q, q.begin() + t * Q);
      std::copy(r + Q, r + Q + KV, k.begin() + t * KV);
      std::copy(r + Q + KV, r + W, v.begin() + t * KV);
    }
    std::vector<int32_t> pos(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) pos[t] = static_cast<int32_t>(t);
    rope(q.data(), n, kHq, kHd, pos.data(), kTheta, Impl::kFast);
    rope(k.data(), n, kHkv, kHd, pos.data(), kTheta, Impl::kFast);
    std::vector<float> kcache = from_device(kc, s), vcache = from_device(vc, s);
    check_close(base + " rope_qkv_to_cache k rows 0..600 [vs fast rope]",
                std::vector<float>(kcache.begin(), kcache.begin() + n * KV), k, 2e-6, 2e-6,
                {n, kHkv, kHd});
    check_exact(base + " rope_qkv_to_cache v rows 0..600 [vs input]",
                std::vector<float>(vcache.begin(), vcache.begin() + n * KV), v, {n, kHkv, kHd});
    std::vector<float> want(static_cast<size_t>(n * Q));
    attention(q.data(), k.data(), v.data(), n, n, kHq, kHkv, kHd,
              static_cast<float>(std::pow(static_cast<double>(kHd), -0.5)), true, 0, want.data(),
              Impl::kFast);
    check_close(base + " qwen2 chunked causal attention 512+88+1 [vs fast, one call]", got, want,
                1e-5, 1e-4, {n, kHq, kHd});
  }
}
#endif

void run_tests() {
  test_siglip_layer();
  test_patch_embed();
  test_projector();
  test_qwen2_layer();
  test_long_attention();
  test_lm_head_and_odd_k();
#ifdef SR3D_WITH_CUDA
  test_engine_layout();
#endif
}

void run_bench(const std::string&, std::vector<BenchRow>&) {
  std::fprintf(stderr, "sr3d_nn_realsize_tests has no benchmarks (sr3d_nn_tests / "
                       "sr3d_nn_cuda_tests --bench time these shapes)\n");
}

}  // namespace

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
