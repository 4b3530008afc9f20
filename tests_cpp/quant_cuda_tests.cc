// int4 / int8 Linear weights on CUDA (kernels/cuda/linear_q.cu, the quantized GEMM of
// linear.cu) and the CUDA engine on them, checked and timed on one GPU run (bench/gpu_full.sh):
//
//   sr3d_quant_cuda_tests [--filter SUBSTR]   Impl::kCuda against the CPU reference over awkward
//                                             sizes (rows not a multiple of the block, groups 32 /
//                                             64 / 128, cols == group, act-order, n = 1, 3, 5, 8,
//                                             17, 64, the scalar layouts), the GEMM bit-exact to
//                                             the CUDA float32 GEMM over the dequantized weight,
//                                             the fused epilogue, the typed errors, the bf16
//                                             tensor-core GEMM on int4 / int8 (linear_tc), the CUDA
//                                             engine against the CPU engine on a quantized Qwen2
//   sr3d_quant_cuda_tests --bench [--device cuda|all]
//                                             decode GEMV at NVILA-Lite-8B shapes for bf16 /
//                                             int8 / int4 (GB/s, % of the d2d copy), a prefill
//                                             GEMM, and decode steps of the 8B-shaped LLM in
//                                             int4 (also replayed as a CUDA graph) and int8
//                                             (random weights)
//
// Without a usable device the CUDA cases print "skipped" and pass. Tolerances: one Linear,
// |cuda - ref| <= 1e-5 sum_k |x_k w_k| (+|b|) per output (float32 sums in another order, the
// factored per-group scale of the GEMV); the engine, 1e-4 of the largest |logit| (the ops'
// differences through two layers), greedy tokens equal.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "activation.h"
#include "engine.h"
#include "harness.h"
#include "quant_weights.h"
#include "linear.h"
#include "weight_names.h"
#ifdef SR3D_WITH_CUDA
#include "cuda/nn.cuh"
#endif

using namespace sr3d;
using namespace sr3d_test;
namespace wn = sr3d::weight_names;
namespace WL = wn::llm;
using wn::bias_of;
using wn::weight_of;

namespace {

std::vector<float> run_linear(const std::vector<float>& x, int64_t n, const WeightRef& w,
                              const float* bias, Impl impl) {
  std::vector<float> y(static_cast<size_t>(n * w.rows), kNaN);  // poisoned: every output written
  linear(x.data(), n, w, bias, y.data(), impl);
  return y;
}


int test_device() {
#ifdef SR3D_WITH_CUDA
  return cuda::selected_device();
#else
  return 0;
#endif
}

bool skip_without_cuda() {
  if (g_cuda) return false;
  std::printf("  skipped: no usable CUDA device\n");
  return true;
}

void test_linear_cuda(int64_t n, int64_t rows, int64_t cols, int bits, int64_t group, bool act_order,
                      bool with_bias) {
  const std::string name = fmt("cuda linear q%d n=%" PRId64 " %" PRId64 "x%" PRId64 " group %" PRId64 "%s%s",
                               bits, n, rows, cols, group, act_order ? " act-order" : "",
                               with_bias ? " bias" : "");
  if (!begin_case(name) || skip_without_cuda()) return;
  const uint64_t seed = static_cast<uint64_t>(n * 1000003 + rows * 131 + cols * 7 + bits + group);
  const QW w = make_q(rows, cols, bits, group, act_order, seed);
  const std::vector<float> x = uniform_floats(n * cols, seed + 1), b = uniform_floats(rows, seed + 2);
  const float* bias = with_bias ? b.data() : nullptr;
  const std::vector<int64_t> shape{n, rows};
  const auto ref = run_linear(x, n, w.ref, bias, Impl::kReference);
  const auto got = run_linear(x, n, w.ref, bias, Impl::kCuda);
  check_close(name + " vs the CPU reference", got, ref, dot_tolerance(x, n, w, bias), 0, shape);
  // The GEMM (n > 8) dequantizes its tiles with the reference's rounding and then runs the
  // float32 GEMM's arithmetic: without act-order, bit-exact to it over the dequantized weight.
  if (n > 8 && !act_order)
    check_floats(name + " GEMM == the CUDA f32 GEMM of the dequantized weight", got,
                 run_linear(x, n, w.dense, bias, Impl::kCuda), shape, 0);
}

#ifdef SR3D_WITH_CUDA
// linear_dev's fused epilogue (activation, then the residual) on both kernels.
void test_epilogue() {
  for (int64_t n : {1, 4, 40}) {
    const std::string name = "cuda linear_dev epilogue q4 silu + residual n=" + std::to_string(n);
    if (!begin_case(name) || skip_without_cuda()) continue;
    const int64_t rows = 70, cols = 256;
    const QW w = make_q(rows, cols, 4, 64, n == 4, 31 + n);
    const std::vector<float> x = uniform_floats(n * cols, 32), b = uniform_floats(rows, 33),
                             res = uniform_floats(n * rows, 34);
    std::vector<float> want = run_linear(x, n, w.ref, b.data(), Impl::kReference);
    activation(want.data(), n * rows, Act::kSilu, Impl::kReference);
    for (size_t i = 0; i < want.size(); ++i) want[i] += res[i];
    cuda::Stream s;
    cuda::DeviceBuffer<uint8_t> q = to_device(w.q), z = to_device(w.zeros);
    cuda::DeviceBuffer<float> sc = to_device(w.scales), dx = to_device(x), db = to_device(b),
                              dy = to_device(res);
    cuda::DeviceBuffer<int32_t> dp = to_device(w.perm);
    WeightRef dw = w.ref;
    dw.data = q.get();
    dw.scales = sc.get();
    dw.zeros = z.get();
    dw.perm = w.perm.empty() ? nullptr : dp.get();
    cuda::linear_dev(dx.get(), n, dw, db.get(), dy.get(), s.get(), static_cast<int>(Act::kSilu), dy.get());
    std::vector<float> got(want.size(), kNaN);
    SR3D_CUDA_CHECK(cudaMemcpyAsync(got.data(), dy.get(), got.size() * 4, cudaMemcpyDeviceToHost, s.get()));
    SR3D_CUDA_CHECK(cudaStreamSynchronize(s.get()));
    std::vector<double> atol = dot_tolerance(x, n, w, b.data());
    for (double& a : atol) a += 1e-6;  // silu and the residual add: a few ulps of |y| <= ~10
    check_close(name, got, want, atol, 1e-6, {n, rows});
  }
}

// The bf16 tensor-core GEMM (gemm_tc.cu, switched on through set_tc_gemm) on int4 / int8
// weights: each weight dequantized as the reference does, then rounded to bf16 with x, so per
// output |got - ref| <= (2^-7 + K 2^-23) sum_k |x_k w_k| + 2^-20 |b| + 1e-6 against float64
// over the dequantized weight; act-order weights stay on the SIMT GEMM (linear_tc_dev declines).
void test_linear_tc_quant() {
  struct C { int64_t n, rows, cols, group; int bits; bool act_order; };
  const C cases[] = {{17, 129, 1152, 128, 4, false}, {130, 7, 64, 32, 8, false},
                     {40, 70, 256, 64, 4, false},    {300, 200, 512, 16, 8, false},
                     {40, 70, 256, 64, 4, true}};
  for (const C& c : cases) {
    const std::string name = fmt("cuda linear_tc q%d n=%" PRId64 " %" PRId64 "x%" PRId64 " group %" PRId64 "%s",
                                 c.bits, c.n, c.rows, c.cols, c.group, c.act_order ? " act-order" : "");
    if (!begin_case(name) || skip_without_cuda()) continue;
    if (!cuda::tc_gemm_supported()) {
      std::printf("  skipped: the tensor-core GEMM needs an sm_80+ GPU and sm_80+ code in this build\n");
      continue;
    }
    const QW w = make_q(c.rows, c.cols, c.bits, c.group, c.act_order, 77 + c.n + c.bits);
    const std::vector<float> x = uniform_floats(c.n * c.cols, 78 + c.n), b = uniform_floats(c.rows, 79);
    cuda::DeviceBuffer<uint8_t> q = to_device(w.q), z = to_device(w.zeros);
    cuda::DeviceBuffer<float> sc = to_device(w.scales), dx = to_device(x), db = to_device(b);
    cuda::DeviceBuffer<float> dy = to_device(std::vector<float>(c.n * c.rows, kNaN));
    cuda::DeviceBuffer<int32_t> dp = to_device(w.perm);
    WeightRef dw = w.ref;
    dw.data = q.get();
    dw.scales = sc.get();
    dw.zeros = z.get();
    dw.perm = w.perm.empty() ? nullptr : dp.get();
    const int prev = cuda::set_tc_gemm(1);
    const bool launched = cuda::linear_tc_dev(dx.get(), c.n, dw, db.get(), dy.get(), nullptr);
    cuda::set_tc_gemm(prev);
    if (c.act_order) {
      record(!launched, name + " (declined)", "linear_tc_dev took an act-order weight", nullptr);
      continue;
    }
    record(launched, name + " (launched)", "linear_tc_dev declined", nullptr);
    std::vector<float> got(c.n * c.rows);
    SR3D_CUDA_CHECK(cudaMemcpy(got.data(), dy.get(), got.size() * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    std::string at;
    for (int64_t i = 0; i < c.n; ++i)
      for (int64_t r = 0; r < c.rows; ++r) {
        double acc = b[r], mag = 0;
        for (int64_t k = 0; k < c.cols; ++k) {
          const double p = static_cast<double>(x[i * c.cols + k]) * w.deq[r * c.cols + k];
          acc += p;
          mag += std::fabs(p);
        }
        const double bound = (std::ldexp(1.0, -7) + c.cols * std::ldexp(1.0, -23)) * mag +
                             std::ldexp(std::fabs(b[r]), -20) + 1e-6;
        const double e = std::fabs(got[i * c.rows + r] - acc) / bound;
        if (!(e <= worst)) {
          worst = e;
          at = fmt("[%" PRId64 "][%" PRId64 "] got %.9g want %.9g bound %.3g", i, r, got[i * c.rows + r], acc, bound);
        }
      }
    std::printf("  worst output at %.3g of its bf16 bound\n", worst);
    record(worst <= 1, name + " (bf16 bound)", at, nullptr);
  }
}
#endif

void test_errors() {
  // Checked before the Impl dispatch: the same typed errors with or without a GPU / CUDA build.
  const QW w = make_q(4, 64, 4, 32, true, 21);
  const std::vector<float> x = uniform_floats(64, 22);
  std::vector<float> y(4);
  auto run = [&](WeightRef r) { return [&x, &y, r] { linear(x.data(), 1, r, nullptr, y.data(), Impl::kCuda); }; };
  WeightRef r = w.ref;
  r.group = 48;
  expect_error("errors/cuda q group not dividing cols", ErrorKind::kInvalidArgument, run(r));
  r = w.ref;
  r.scales = nullptr;
  expect_error("errors/cuda q null scales", ErrorKind::kInvalidArgument, run(r));
  std::vector<int32_t> dup = w.perm;
  dup[5] = dup[6];
  r = w.ref;
  r.perm = dup.data();
  expect_error("errors/cuda q perm with a repeated input", ErrorKind::kInvalidArgument, run(r));
}

// ---- the CUDA engine on a quantized Qwen2 ------------------------------------------------

// An LLM-only model (hidden 64, MLP 128, GQA 4:2) whose projections cover every way the CUDA
// engine places quantized weights: q|k|v sharing one act-order perm (one quantized matrix),
// gate|up int8 (concatenated), int4 with and without perm, a layer mixing int4 / int8 / bf16
// in q|k|v (dequantized to float32 at upload) and gate|up with different perms (likewise).
struct QuantModel {
  ModelSpec spec;
  std::vector<std::unique_ptr<QW>> quant;
  std::vector<std::unique_ptr<std::vector<float>>> floats;
  std::vector<std::unique_ptr<std::vector<uint16_t>>> halves;
  WeightMap map, dense;  // dense: the same model with every quantized weight dequantized (f32)
  Rng rng{77};

  void f32(const std::string& key, std::vector<int64_t> shape, double lo, double hi) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    floats.emplace_back(new std::vector<float>(uniform_floats(n, rng.integer(1, 1 << 30), lo, hi)));
    map[key] = dense[key] = WeightTensor{floats.back()->data(), WType::kF32, std::move(shape)};
  }
  void bf16(const std::string& key, int64_t rows, int64_t cols, double amp) {
    const std::vector<float> v = uniform_floats(rows * cols, rng.integer(1, 1 << 30), -amp, amp);
    halves.emplace_back(new std::vector<uint16_t>(v.size()));
    for (size_t i = 0; i < v.size(); ++i) (*halves.back())[i] = float_to_bf16(v[i]);
    map[key] = dense[key] = WeightTensor{halves.back()->data(), WType::kBF16, {rows, cols}};
  }
  void q(const std::string& key, int64_t rows, int64_t cols, int bits, int64_t group,
         const std::vector<int32_t>* perm = nullptr) {
    // Scales of |w| ~0.1 (int4 |q - z| ~5, int8 ~85): activations stay O(1) through the layers.
    quant.emplace_back(new QW(make_q(rows, cols, bits, group, false, rng.integer(1, 1 << 30), perm,
                                     bits == 4 ? 0.04 : 0.003)));
    QW& w = *quant.back();
    WeightTensor t{w.q.data(), w.ref.type, {rows, cols}};
    t.scales = w.scales.data();
    t.zeros = w.zeros.data();
    t.group = group;
    t.perm = perm ? w.perm.data() : nullptr;
    map[key] = t;
    dense[key] = WeightTensor{w.deq.data(), WType::kF32, {rows, cols}};
  }

  QuantModel() {
    LlmSpec& l = spec.llm;
    l.hidden = 64; l.layers = 2; l.heads = 4; l.kv_heads = 2; l.head_dim = 16;
    l.intermediate = 128; l.vocab = 301; l.eps = 1e-6f; l.rope_theta = 1e6;
    spec.has_llm = true;
    spec.max_context = 540;
    const std::vector<int32_t> p64a = shuffled(64, rng), p64b = shuffled(64, rng), p128 = shuffled(128, rng);
    // A quantized embedding table (sr3d quantize --embeddings), act-order: decode's lookups
    // dequantize its rows (the CUDA gather against cpu::dequantize_rows).
    q(weight_of(wn::llm_key(WL::kEmbedTokens)), 301, 64, 4, 32, &p64b);
    for (int i = 0; i < 2; ++i) {
      auto W = [i](const char* module) { return weight_of(wn::llm_layer_key(i, module)); };
      auto B = [i](const char* module) { return bias_of(wn::llm_layer_key(i, module)); };
      f32(W(WL::kInputNorm), {64}, 0.8, 1.2);
      f32(W(WL::kPostAttentionNorm), {64}, 0.8, 1.2);
      for (const char* b : {WL::kQ, WL::kK, WL::kV}) f32(B(b), {b == WL::kQ ? 64 : 32}, -0.2, 0.2);
      if (i == 0) {
        q(W(WL::kQ), 64, 64, 4, 32, &p64a);
        q(W(WL::kK), 32, 64, 4, 32, &p64a);
        q(W(WL::kV), 32, 64, 4, 32, &p64a);
        q(W(WL::kO), 64, 64, 4, 32);
        q(W(WL::kGate), 128, 64, 8, 64);
        q(W(WL::kUp), 128, 64, 8, 64);
        q(W(WL::kDown), 64, 128, 4, 32, &p128);
      } else {
        q(W(WL::kQ), 64, 64, 4, 64);
        q(W(WL::kK), 32, 64, 8, 32);
        bf16(W(WL::kV), 32, 64, 0.2);
        bf16(W(WL::kO), 64, 64, 0.15);
        q(W(WL::kGate), 128, 64, 4, 32, &p64a);
        q(W(WL::kUp), 128, 64, 4, 32, &p64b);
        q(W(WL::kDown), 64, 128, 8, 128);
      }
    }
    f32(weight_of(wn::llm_key(WL::kNorm)), {64}, 0.8, 1.2);
    bf16(weight_of(wn::llm_key(WL::kLmHead)), 301, 64, 0.3);
  }
};

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

void test_engine() {
  if (!begin_case("engine/quantized qwen2: cuda vs cpu") || skip_without_cuda()) return;
  QuantModel m;
  std::unique_ptr<Engine> cpu = make_cpu_engine(m.spec, m.map);
  std::unique_ptr<Engine> gpu = make_cuda_engine(m.spec, m.map, test_device());
  std::unique_ptr<Engine> gpu_dense = make_cuda_engine(m.spec, m.dense, test_device());
  const int64_t qb = gpu->info().weight_bytes, db = gpu_dense->info().weight_bytes;
  record(qb > 0 && qb < db, "engine/quantized weight bytes < the float32 twin's",
         std::to_string(qb) + " vs " + std::to_string(db), nullptr);
  const int64_t V = 301, H = 64;
  auto logits = [&](Engine& e) { return std::vector<float>(e.last_logits(), e.last_logits() + V); };
  auto check = [&](const std::string& ctx) {
    const std::vector<float> want = logits(*cpu);
    check_floats(ctx, logits(*gpu), want, {V}, 1e-4 * std::max(1e-3, max_abs(want)));
  };
  // Prefill 530 positions (a 512 chunk through the GEMM + 18), then greedy decode (the GEMV).
  const std::vector<float> emb = uniform_floats(530 * H, 5);
  cpu->prefill(emb.data(), 530);
  gpu->prefill(emb.data(), 530);
  check("engine/quantized prefill 530 logits");
  std::vector<int32_t> toks_cpu, toks_gpu;
  for (int step = 0; step < 6; ++step) {
    const auto lc = logits(*cpu), lg = logits(*gpu);
    toks_cpu.push_back(static_cast<int32_t>(std::max_element(lc.begin(), lc.end()) - lc.begin()));
    toks_gpu.push_back(static_cast<int32_t>(std::max_element(lg.begin(), lg.end()) - lg.begin()));
    cpu->decode(toks_cpu.back());
    gpu->decode(toks_cpu.back());
    check("engine/quantized decode step " + std::to_string(step) + " logits");
  }
  record(toks_cpu == toks_gpu, "engine/quantized greedy tokens equal", "", nullptr);
  const std::vector<int32_t> ids = {0, 7, 300, 151, 42};
  std::vector<float> rows_cpu(ids.size() * H), rows_gpu(ids.size() * H);
  cpu->embed_tokens(ids.data(), static_cast<int64_t>(ids.size()), rows_cpu.data());
  gpu->embed_tokens(ids.data(), static_cast<int64_t>(ids.size()), rows_gpu.data());
  record(rows_cpu == rows_gpu, "engine/quantized embedding rows equal (cuda vs cpu, bit for bit)", "", nullptr);
  // The dense twin on the GPU agrees too (the dequantized-to-float32 reference of issue 11).
  gpu_dense->prefill(emb.data(), 530);
  cpu->reset();
  cpu->prefill(emb.data(), 530);
  const std::vector<float> want = logits(*cpu);
  check_floats("engine/float32 twin on cuda vs quantized cpu", logits(*gpu_dense), want, {V},
               1e-4 * std::max(1e-3, max_abs(want)));
  // A perm that is not a permutation is refused at upload, naming the weight (the GEMV would
  // read x out of bounds).
  WeightMap bad = m.map;
  const std::string key = weight_of(wn::llm_layer_key(0, WL::kDown));
  std::vector<int32_t> dup(bad[key].perm, bad[key].perm + 128);
  dup[3] = dup[4];
  bad[key].perm = dup.data();
  expect_error("engine/cuda: a repeated perm entry is a typed error", ErrorKind::kInvalidArgument,
               [&] { make_cuda_engine(m.spec, bad, test_device()); });
}

void run_tests() {
  test_errors();
  for (int bits : {4, 8})
    for (int64_t group : {32, 64, 128})
      for (auto [n, rows, mult] : std::vector<std::array<int64_t, 3>>{
               {1, 1, 1}, {1, 7, 2}, {3, 13, 1}, {5, 9, 3}, {8, 45, 2}, {17, 37, 3}, {1, 130, 4}, {64, 19, 2}})
        for (bool act : {false, true})
          test_linear_cuda(n, rows, group * mult, bits, group, act, (rows + group) % 2 == 1);
  // The scalar GEMV (and unaligned GEMM tiles): groups / widths the 16-byte path cannot take.
  test_linear_cuda(2, 9, 18, 4, 2, false, true);
  test_linear_cuda(3, 9, 18, 8, 3, true, false);
  test_linear_cuda(1, 33, 48, 4, 16, true, true);
  test_linear_cuda(1, 20, 40, 8, 8, false, false);
  test_linear_cuda(17, 21, 30, 4, 6, false, true);
  test_linear_cuda(1, 300, 4096, 4, 128, false, false);  // many chunks per thread
#ifdef SR3D_WITH_CUDA
  test_epilogue();
  test_linear_tc_quant();
#endif
  test_engine();
}

// ---- benchmarks ----------------------------------------------------------------------------

#ifdef SR3D_WITH_CUDA
// Random bytes (xorshift), fast enough for the 8B shapes' ~4 GB.
void random_bytes(uint8_t* p, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    std::memcpy(p + i, &s, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<uint8_t>(s >> (8 * (i % 8)));
}

// A device weight of the given dtype (bf16, int8 per-channel, int4 group 128), random.
struct DevWeight {
  cuda::DeviceBuffer<uint8_t> data, zeros;
  cuda::DeviceBuffer<float> scales;
  WeightRef ref;
  double bytes = 0;  // what one GEMV reads of it
};
DevWeight dev_weight(WType t, int64_t rows, int64_t cols, uint64_t seed) {
  DevWeight d;
  d.ref.type = t;
  d.ref.rows = rows;
  d.ref.cols = cols;
  const int64_t data_bytes = t == WType::kBF16 ? rows * cols * 2 : t == WType::kQ8 ? rows * cols : rows * cols / 2;
  std::vector<uint8_t> h(static_cast<size_t>(data_bytes));
  random_bytes(h.data(), h.size(), seed);
  if (t == WType::kBF16)  // small finite values: clear the exponent's top bits
    for (size_t i = 1; i < h.size(); i += 2) h[i] = static_cast<uint8_t>(0x3c | (h[i] & 0x80));
  d.data = to_device(h);
  d.ref.data = d.data.get();
  d.bytes = static_cast<double>(data_bytes);
  if (t != WType::kBF16) {
    d.ref.group = t == WType::kQ8 ? cols : 128;
    const int64_t groups = rows * (cols / d.ref.group);
    d.scales = to_device(std::vector<float>(static_cast<size_t>(groups), 0.01f));
    d.zeros = to_device(std::vector<uint8_t>(static_cast<size_t>(groups), t == WType::kQ8 ? 128 : 8));
    d.ref.scales = d.scales.get();
    d.ref.zeros = d.zeros.get();
    d.bytes += 5.0 * static_cast<double>(groups);
  }
  return d;
}

std::string dtype_label(WType t) {
  return t == WType::kBF16 ? "bf16" : t == WType::kQ8 ? "int8 per-channel" : "int4 g128";
}

// The 8B-shaped LLM (Qwen2-7B: hidden 3584, 28 layers, GQA 28:4, MLP 18944, vocab 152064) with
// every projection in dtype t, random; one host copy of each layer's weights shared by all
// layers (the engine copies each into its own device memory). Embeddings tied (bf16), so
// lm_head is read once per token and counted once in weight_bytes.
// graph: the decode steps replayed as CUDA graphs (SR3D_CUDA_GRAPH=1's path; the warm-up
// captures the one bucket).
void bench_decode_8b(WType t, const std::string& dev, double peak, std::vector<BenchRow>& rows,
                     bool graph = false) {
  ModelSpec spec;
  spec.has_llm = true;
  LlmSpec& l = spec.llm;
  l.hidden = 3584; l.layers = 28; l.heads = 28; l.kv_heads = 4; l.head_dim = 128;
  l.intermediate = 18944; l.vocab = 152064; l.tie_word_embeddings = true;
  spec.max_context = 1024;
  const int64_t H = l.hidden, I = l.intermediate;
  struct Host {
    std::vector<uint8_t> data, zeros;
    std::vector<float> scales;
  };
  std::vector<std::unique_ptr<Host>> store;
  std::vector<std::unique_ptr<std::vector<float>>> vecs;
  auto make = [&](int64_t r, int64_t c, uint64_t seed) {
    Host* h = new Host;
    store.emplace_back(h);
    const int64_t bytes = t == WType::kBF16 ? r * c * 2 : t == WType::kQ8 ? r * c : r * c / 2;
    h->data.resize(static_cast<size_t>(bytes));
    random_bytes(h->data.data(), h->data.size(), seed);
    if (t == WType::kBF16)
      for (size_t i = 1; i < h->data.size(); i += 2) h->data[i] = static_cast<uint8_t>(0x3c | (h->data[i] & 0x80));
    WeightTensor w{h->data.data(), t, {r, c}};
    if (t != WType::kBF16) {
      w.group = t == WType::kQ8 ? c : 128;
      h->scales.assign(static_cast<size_t>(r * (c / w.group)), 0.01f);
      h->zeros.assign(h->scales.size(), t == WType::kQ8 ? 128 : 8);
      w.scales = h->scales.data();
      w.zeros = h->zeros.data();
    }
    return w;
  };
  auto vec = [&](int64_t n, float v) {
    vecs.emplace_back(new std::vector<float>(static_cast<size_t>(n), v));
    return WeightTensor{vecs.back()->data(), WType::kF32, {n}};
  };
  WeightMap w;
  std::vector<uint8_t> embed(static_cast<size_t>(l.vocab * H * 2));
  random_bytes(embed.data(), embed.size(), 99);
  for (size_t i = 1; i < embed.size(); i += 2) embed[i] = static_cast<uint8_t>(0x3c | (embed[i] & 0x80));
  w[weight_of(wn::llm_key(WL::kEmbedTokens))] = WeightTensor{embed.data(), WType::kBF16, {l.vocab, H}};
  w[weight_of(wn::llm_key(WL::kNorm))] = vec(H, 1.f);
  const WeightTensor q = make(H, H, 1), k = make(512, H, 2), v = make(512, H, 3), o = make(H, H, 4),
                     gate = make(I, H, 5), up = make(I, H, 6), down = make(H, I, 7);
  const WeightTensor norm = vec(H, 1.f), qb = vec(H, 0.01f), kb = vec(512, 0.01f);
  for (int i = 0; i < l.layers; ++i) {
    auto W = [i](const char* module) { return weight_of(wn::llm_layer_key(i, module)); };
    w[W(WL::kInputNorm)] = norm;
    w[W(WL::kPostAttentionNorm)] = norm;
    w[W(WL::kQ)] = q;
    w[bias_of(wn::llm_layer_key(i, WL::kQ))] = qb;
    w[W(WL::kK)] = k;
    w[bias_of(wn::llm_layer_key(i, WL::kK))] = kb;
    w[W(WL::kV)] = v;
    w[bias_of(wn::llm_layer_key(i, WL::kV))] = kb;
    w[W(WL::kO)] = o;
    w[W(WL::kGate)] = gate;
    w[W(WL::kUp)] = up;
    w[W(WL::kDown)] = down;
  }
  cuda::set_cuda_graph_mode(graph ? cuda::CudaGraphMode::kOn : cuda::CudaGraphMode::kOff);
  std::unique_ptr<Engine> e;
  try {
    e = make_cuda_engine(spec, w, cuda::selected_device());
  } catch (...) {
    cuda::clear_cuda_graph_mode();
    throw;
  }
  cuda::clear_cuda_graph_mode();
  store.clear();
  std::vector<float> emb(static_cast<size_t>(16 * H), 0.01f);
  e->prefill(emb.data(), 16);
  for (int i = 0; i < 3; ++i) e->decode(i);
  std::vector<double> ms;
  for (int i = 0; i < 32; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    e->decode(100 + i);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const double med = median(ms);
  const double kv = 2.0 * l.layers * e->cached() * l.kv_heads * l.head_dim * 4;
  const double bytes = static_cast<double>(e->info().weight_bytes) + kv;
  rows.push_back(make_row("decode_step", fmt("8B shapes %s, tied bf16 lm_head, ctx~%lld %.1f tok/s%s",
                                             dtype_label(t).c_str(), static_cast<long long>(e->cached()), 1e3 / med,
                                             graph ? ", cuda graph" : ""),
                          dev, 0, med, bytes, peak, kGpuCacheBytes));
}

void bench_cuda(std::vector<BenchRow>& rows) {
  std::string dev;
  if (!bench_cuda_device(&dev)) return;
  cuda::Stream holder;
  cudaStream_t s = holder.get();
  const double peak = measure_gpu_peak(s, dev, rows);
  // NVILA-Lite-8B's LLM (Qwen2-7B) decode GEMVs: q / o, k or v, gate (or up), down, lm_head.
  struct Shape { int64_t rows, cols; const char* what; };
  const Shape shapes[] = {{3584, 3584, "q_proj"}, {512, 3584, "k_proj"}, {18944, 3584, "gate_proj"},
                          {3584, 18944, "down_proj"}, {152064, 3584, WL::kLmHead}};
  for (const Shape& sh : shapes)
    for (WType t : {WType::kBF16, WType::kQ8, WType::kQ4}) {
      DevWeight w = dev_weight(t, sh.rows, sh.cols, static_cast<uint64_t>(sh.rows + sh.cols));
      cuda::DeviceBuffer<float> x = to_device(uniform_floats(sh.cols, 3)), y(static_cast<size_t>(sh.rows));
      const double ms = gpu_median_ms(s, [&] { cuda::linear_dev(x.get(), 1, w.ref, nullptr, y.get(), s); });
      rows.push_back(make_row("linear_gemv", fmt("%s %lldx%lld %s", sh.what, static_cast<long long>(sh.rows),
                                                 static_cast<long long>(sh.cols), dtype_label(t).c_str()),
                              dev, 0, ms, w.bytes + 4.0 * (sh.rows + sh.cols), peak, kGpuCacheBytes));
    }
  // The GEMV's block shape, 64 against 128 threads (the launcher picks 64 below 4 row blocks per
  // SM), on the shapes where the choice differs.
  for (const Shape& sh : {shapes[0], shapes[3]})
    for (int threads : {64, 128}) {
      DevWeight w = dev_weight(WType::kQ4, sh.rows, sh.cols, static_cast<uint64_t>(sh.rows + sh.cols));
      cuda::DeviceBuffer<float> x = to_device(uniform_floats(sh.cols, 3)), y(static_cast<size_t>(sh.rows));
      cuda::set_quant_gemv_threads(threads);
      const double ms = gpu_median_ms(s, [&] { cuda::linear_dev(x.get(), 1, w.ref, nullptr, y.get(), s); });
      cuda::set_quant_gemv_threads(0);
      rows.push_back(make_row("linear_gemv", fmt("%s %lldx%lld int4 g128, %d-thread blocks", sh.what,
                                                 static_cast<long long>(sh.rows), static_cast<long long>(sh.cols), threads),
                              dev, 0, ms, w.bytes + 4.0 * (sh.rows + sh.cols), peak, kGpuCacheBytes));
    }
  // Prefill: one 512-position chunk through gate_proj (the fp32 SIMT GEMM, dequantizing tiles).
  for (WType t : {WType::kBF16, WType::kQ4}) {
    const int64_t n = 512, N = 18944, K = 3584;
    DevWeight w = dev_weight(t, N, K, 5);
    cuda::DeviceBuffer<float> x = to_device(uniform_floats(n * K, 4)), y(static_cast<size_t>(n * N));
    const double ms = gpu_median_ms(s, [&] { cuda::linear_dev(x.get(), n, w.ref, nullptr, y.get(), s); });
    rows.push_back(make_row("linear_gemm", fmt("gate_proj 512x%lld->%lld %s %.1f TFLOP/s", static_cast<long long>(K),
                                               static_cast<long long>(N), dtype_label(t).c_str(),
                                               2.0 * n * N * K / (ms * 1e-3) / 1e12),
                            dev, 0, ms, w.bytes + 4.0 * n * (N + K), peak, kGpuCacheBytes));
  }
  bench_decode_8b(WType::kQ4, dev, peak, rows);
  bench_decode_8b(WType::kQ4, dev, peak, rows, true);
  bench_decode_8b(WType::kQ8, dev, peak, rows);
}
#endif  // SR3D_WITH_CUDA

void run_bench(const std::string& device, std::vector<BenchRow>& rows) {
  if (device == "cpu") std::fprintf(stderr, "quant_cuda_tests: GPU rows only (CPU rows: sr3d_quant_tests)\n");
#ifdef SR3D_WITH_CUDA
  if (device == "cuda" || device == "all") bench_cuda(rows);
#else
  (void)rows;
#endif
}

}  // namespace

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
