// Standalone tests and benchmarks of the NN ops (linear.h, attention.h, norms.h,
// activation.h, rope.h, projector.h), token sampling and the engines (engine.h); no Node.
// Same command line as every tests_cpp executable (harness.h):
//
//   sr3d_nn_tests [--filter SUBSTR]      reference vs float64 loops written here, Impl::kFast
//                                        (and Impl::kCuda with a usable device) vs reference,
//                                        typed errors, and a random tiny model end to end
//   sr3d_nn_tests --bench [--json] [--json-out FILE] [--device cpu|cuda|all]
//
// Tolerances (CPU; CUDA the same except elementwise transcendentals: 2e-7 + 5e-7 |want|,
// the device tanhf / erff / expf / cosf being a few ulp off glibc's). Reductions (linear, patch_embed) are checked per element against
// rtol * sum_k |x_k w_k| (+ |bias|), the scale a float32 dot product's rounding error grows
// with: rtol 1e-5 for float32 accumulation over k <= ~1e4 (measured worst ~1e-6). Norms and
// attention: |diff| <= 2e-6 + 1e-5 |want| (outputs are O(1)). Elementwise ops: fast is
// bit-exact to the reference (same scalar expression), the reference within 1e-6 + 1e-6 |want|
// of float64. rope: bit-exact fast vs reference; float64 reference takes the documented
// float32 angle (rope.h) and is within 2e-6. The engine is compared with the same model
// composed here from Impl::kReference ops (rtol 1e-4 of the largest value).
#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "activation.h"
#include "attention.h"
#include "cpu/simd.h"
#include "engine.h"
#include "harness.h"
#include "linear.h"
#include "norms.h"
#include "projector.h"
#include "rope.h"
#include "sampling.h"
#include "weight_names.h"

using namespace sr3d;
using namespace sr3d_test;

namespace {

namespace wn = weight_names;
namespace WV = weight_names::vision;
namespace WP = weight_names::projector;
namespace WL = weight_names::llm;
namespace WS = weight_names::spatial_pe;
using wn::weight_of;
using wn::bias_of;

// A weight matrix in one dtype, with its exact values as double.
struct TestWeight {
  std::vector<uint8_t> bytes;
  std::vector<double> value;
  WeightRef ref;
};
TestWeight make_weight(int64_t rows, int64_t cols, WType t, uint64_t seed, double scale = 1) {
  TestWeight w;
  Rng r(seed);
  const int64_t n = rows * cols;
  w.bytes.resize(static_cast<size_t>(n * wtype_size(t)));
  w.value.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (t == WType::kF32) {
      float f = static_cast<float>(r.uniform(-scale, scale));
      std::memcpy(w.bytes.data() + 4 * i, &f, 4);
    } else if (t == WType::kBF16) {
      uint16_t b = float_to_bf16(static_cast<float>(r.uniform(-scale, scale)));
      std::memcpy(w.bytes.data() + 2 * i, &b, 2);
    } else {  // float16 bit patterns: |v| in ~[2^-6, 2), a few subnormals
      uint16_t h = static_cast<uint16_t>((r.chance(0.5) ? 0x8000 : 0) | (r.integer(0, 1023)));
      if (!r.chance(0.02)) h |= static_cast<uint16_t>(r.integer(9, 15) << 10);
      std::memcpy(w.bytes.data() + 2 * i, &h, 2);
    }
    w.value[i] = load_weight(w.bytes.data(), t, i);
  }
  w.ref.data = w.bytes.data();
  w.ref.type = t;
  w.ref.rows = rows;
  w.ref.cols = cols;
  return w;
}

const WType kAllTypes[] = {WType::kF32, WType::kF16, WType::kBF16};

// Runs op(impl, out) for reference and every impl under test; compares each to the reference.
using OpFn = std::function<void(Impl, std::vector<float>&)>;
// cuda_atol < 0: CUDA held to the CPU tolerance; else its own (device tanhf / erff / expf /
// cosf differ from glibc by up to ~4 ulp).
void compare_impls(const std::string& name, size_t n_out, const OpFn& op, double atol,
                   double rtol, const std::vector<int64_t>& shape, std::vector<float>* ref_out,
                   double cuda_atol = -1, double cuda_rtol = 0) {
  std::vector<float> want(n_out, 12345.f);
  Outcome wo = run_op([&] { op(Impl::kReference, want); });
  record(!wo.threw, name + " [reference runs]", wo.msg, nullptr);
  for (Impl impl : impls_under_test()) {
    std::vector<float> got(n_out, 12345.f);
    Outcome go = run_op([&] { op(impl, got); });
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    if (same_outcome(ctx, go, wo)) continue;
    const bool cuda_own = impl == Impl::kCuda && cuda_atol >= 0;
    const double at = cuda_own ? cuda_atol : atol, rt = cuda_own ? cuda_rtol : rtol;
    if (at == 0 && rt == 0) check_floats(ctx, got, want, shape, 0);
    else check_close(ctx, got, want, at, rt, shape);
  }
  if (ref_out) *ref_out = want;
}

// ---- linear ------------------------------------------------------------------------------

void test_linear(int64_t n, int64_t in, int64_t out, WType t, bool with_bias) {
  const std::string name = fmt("linear/n=%" PRId64 ",in=%" PRId64 ",out=%" PRId64 ",%s%s", n, in,
                               out, wtype_name(t), with_bias ? ",bias" : "");
  if (!begin_case(name)) return;
  TestWeight w = make_weight(out, in, t, 7 * n + 13 * in + out, 1.0);
  std::vector<float> x = uniform_floats(n * in, 3 * n + in), b = uniform_floats(out, 5 + out, -0.5, 0.5);
  const float* bias = with_bias ? b.data() : nullptr;
  std::vector<double> want(static_cast<size_t>(n * out)), scale(want.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < out; ++r) {
      double s = 0, a = 0;
      for (int64_t c = 0; c < in; ++c) {
        s += static_cast<double>(x[i * in + c]) * w.value[r * in + c];
        a += std::fabs(static_cast<double>(x[i * in + c]) * w.value[r * in + c]);
      }
      if (bias) { s += b[r]; a += std::fabs(b[r]); }
      want[i * out + r] = s;
      scale[i * out + r] = 1e-5 * a + 1e-30;
    }
  const std::vector<int64_t> shape = {n, out};
  std::vector<float> ref(want.size());
  linear(x.data(), n, w.ref, bias, ref.data(), Impl::kReference);
  check_close(name + " [reference vs float64]", ref, want, scale, 0, shape);
  for (Impl impl : impls_under_test()) {
    std::vector<float> got(want.size(), 12345.f);
    Outcome o = run_op([&] { linear(x.data(), n, w.ref, bias, got.data(), impl); });
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    if (o.threw) { record(false, ctx, o.msg, nullptr); continue; }
    std::vector<double> r(ref.begin(), ref.end());
    check_close(ctx, got, r, scale, 0, shape);
  }
  // A row's fast result does not depend on the other rows (prefill == step-by-step).
  if (n > 1) {
    std::vector<float> all(want.size()), one(static_cast<size_t>(out)), rows(want.size());
    linear(x.data(), n, w.ref, bias, all.data(), Impl::kFast);
    for (int64_t i = 0; i < n; ++i) {
      linear(x.data() + i * in, 1, w.ref, bias, one.data(), Impl::kFast);
      std::copy(one.begin(), one.end(), rows.begin() + i * out);
    }
    check_floats(name + " [fast batch == fast row by row]", all, rows, shape, 0);
  }
}

// The fast path's per-output arithmetic, written out plainly: 8 lane sums over k in steps of 8
// (each lane rounded after the multiply and after the add), the fixed hsum8 tree, the scalar
// tail in order, the bias last. Every fast Linear kernel (portable vector code, AVX2, AVX-512,
// NEON) must equal this bit for bit, which is what makes CPU results identical across CPUs.
float fast_path_dot(const float* x, const std::vector<double>& wv, int64_t w0, int64_t k,
                    const float* bias) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t k8 = k & ~int64_t{7};
  for (int64_t c = 0; c < k8; c += 8)
    for (int l = 0; l < 8; ++l) {
      const float p = x[c + l] * static_cast<float>(wv[w0 + c + l]);
      lane[l] = lane[l] + p;
    }
  float s = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
  for (int64_t c = k8; c < k; ++c) s += x[c] * static_cast<float>(wv[w0 + c]);
  return bias ? s + *bias : s;
}

// Which Linear kernels run in this process (SR3D_CPU_ISA caps them; arm64: NEON or portable).
std::string linear_path_name() {
  const char* cap = std::getenv("SR3D_CPU_ISA");
  std::string s = std::string(cpu_simd()) + (cap && *cap ? std::string(" (SR3D_CPU_ISA=") + cap + ")" : "") + "; features:";
  for (const std::string& f : cpu_features()) s += " " + f;
  return s;
}

void test_linear_exact(int64_t n, int64_t in, int64_t out, WType t, bool with_bias) {
  const std::string name = fmt("linear_exact/n=%" PRId64 ",in=%" PRId64 ",out=%" PRId64 ",%s%s", n,
                               in, out, wtype_name(t), with_bias ? ",bias" : "");
  if (!begin_case(name)) return;
  TestWeight w = make_weight(out, in, t, 11 * n + 3 * in + out, 1.0);
  std::vector<float> x = uniform_floats(n * in, 5 * n + in), b = uniform_floats(out, 9 + out, -0.5, 0.5);
  std::vector<float> want(static_cast<size_t>(n * out)), got(want.size(), 12345.f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < out; ++r)
      want[i * out + r] = fast_path_dot(x.data() + i * in, w.value, r * in, in, with_bias ? &b[r] : nullptr);
  Outcome o = run_op([&] { linear(x.data(), n, w.ref, with_bias ? b.data() : nullptr, got.data(), Impl::kFast); });
  if (o.threw) { record(false, name, o.msg, nullptr); return; }
  check_floats(name + " [fast == the documented 8-lane arithmetic, bit for bit]", got, want, {n, out}, 0);
}

// cpu_features() against SR3D_EXPECT_CPU_FEATURES (set by CTest where the CPU is known: the
// qemu runs of the aarch64 cross build), and the features every fast path needs.
void test_cpu_features() {
  if (!begin_case("linear_kernels/cpu_features")) return;
  const std::vector<std::string> f = cpu_features();
  std::string got;
  for (const std::string& s : f) got += (got.empty() ? "" : " ") + s;
  std::printf("  simd %s, features: %s\n", cpu_simd(), got.c_str());
  auto has = [&](const char* n) { return std::find(f.begin(), f.end(), n) != f.end(); };
  const std::string simd = cpu_simd();
  if (simd == "neon") record(has("asimd"), "linear_kernels/cpu_features [neon needs asimd]", got, nullptr);
  if (simd == "avx2" || simd == "avx512") record(has("avx2"), "linear_kernels/cpu_features [" + simd + " needs avx2]", got, nullptr);
  if (const char* want = std::getenv("SR3D_EXPECT_CPU_FEATURES"))
    record(got == want, "linear_kernels/cpu_features [== SR3D_EXPECT_CPU_FEATURES]",
           "got '" + got + "', want '" + std::string(want) + "'", nullptr);
}

// cpu::x86_isa() and the decode GEMV's kernel under the SR3D_CPU_ISA cap of this run (CTest runs
// each executable uncapped, =avx2 and =portable). The GEMV once asked the CPU alone, so
// =portable still ran its AVX2 kernel (same bits, so only this check shows it).
void test_isa_cap() {
  if (!begin_case("linear_kernels/SR3D_CPU_ISA caps x86_isa and the GEMV")) return;
  const char* env = std::getenv("SR3D_CPU_ISA");
  const std::string cap = env ? env : "";
  int want_isa = 0, want_gemv = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  const std::vector<std::string> f = cpu_features();
  auto has = [&](const char* n) { return std::find(f.begin(), f.end(), n) != f.end(); };
  const bool avx2 = has("avx2") && has("fma"), avx512 = avx2 && has("avx512f") && has("avx512vl");
  want_isa = cap == "portable" || !avx2 ? 0 : (cap.empty() && avx512 ? 2 : 1);
#if !defined(__clang__)
  want_gemv = want_isa >= 1 ? 1 : 0;
#endif
#endif
  const int isa = cpu::x86_isa(), gemv = cpu::linear_gemv_isa();
  record(isa == want_isa && gemv == want_gemv, "linear_kernels/SR3D_CPU_ISA caps x86_isa and the GEMV",
         fmt("SR3D_CPU_ISA='%s': x86_isa %d (want %d), GEMV %d (want %d)", cap.c_str(), isa, want_isa,
             gemv, want_gemv),
         nullptr);
}

// ---- norms -------------------------------------------------------------------------------

void test_layer_norm(int64_t n, int64_t d) {
  const std::string name = fmt("layer_norm/n=%" PRId64 ",d=%" PRId64, n, d);
  if (!begin_case(name)) return;
  std::vector<float> x = uniform_floats(n * d, n * 31 + d, -2, 3), g = uniform_floats(d, d + 1, 0.5, 1.5),
                     b = uniform_floats(d, d + 2, -0.5, 0.5);
  const float eps = 1e-5f;
  std::vector<double> want(x.size());
  for (int64_t i = 0; i < n; ++i) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < d; ++c) m += x[i * d + c];
    m /= d;
    for (int64_t c = 0; c < d; ++c) v += (x[i * d + c] - m) * (x[i * d + c] - m);
    v /= d;
    for (int64_t c = 0; c < d; ++c)
      want[i * d + c] = (x[i * d + c] - m) / std::sqrt(v + eps) * g[c] + b[c];
  }
  const std::vector<int64_t> shape = {n, d};
  std::vector<float> ref;
  compare_impls(name, x.size(), [&](Impl im, std::vector<float>& y) {
    layer_norm(x.data(), n, d, g.data(), b.data(), eps, y.data(), im);
  }, 2e-6, 1e-5, shape, &ref);
  check_close(name + " [reference vs float64]", ref, want, 2e-6, 1e-5, shape);
}

void test_rms_norm(int64_t n, int64_t d) {
  const std::string name = fmt("rms_norm/n=%" PRId64 ",d=%" PRId64, n, d);
  if (!begin_case(name)) return;
  std::vector<float> x = uniform_floats(n * d, n * 37 + d, -3, 2), g = uniform_floats(d, d + 3, 0.5, 1.5);
  const float eps = 1e-6f;
  std::vector<double> want(x.size());
  for (int64_t i = 0; i < n; ++i) {
    double ss = 0;
    for (int64_t c = 0; c < d; ++c) ss += static_cast<double>(x[i * d + c]) * x[i * d + c];
    const double r = 1 / std::sqrt(ss / d + eps);
    for (int64_t c = 0; c < d; ++c) want[i * d + c] = g[c] * (x[i * d + c] * r);
  }
  const std::vector<int64_t> shape = {n, d};
  std::vector<float> ref;
  compare_impls(name, x.size(), [&](Impl im, std::vector<float>& y) {
    rms_norm(x.data(), n, d, g.data(), eps, y.data(), im);
  }, 2e-6, 1e-5, shape, &ref);
  check_close(name + " [reference vs float64]", ref, want, 2e-6, 1e-5, shape);
}

// ---- elementwise -------------------------------------------------------------------------

double act_f64(double x, Act a) {
  switch (a) {
    case Act::kGeluTanh:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case Act::kGeluErf: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    default: return x / (1 + std::exp(-x));
  }
}
const char* act_name(Act a) {
  return a == Act::kGeluTanh ? "gelu_tanh" : a == Act::kGeluErf ? "gelu_erf" : "silu";
}

void test_activation(int64_t n, Act act) {
  const std::string name = fmt("activation/%s,n=%" PRId64, act_name(act), n);
  if (!begin_case(name)) return;
  std::vector<float> x = uniform_floats(n, n + static_cast<int>(act), -8, 8);
  const float special[] = {0.f, -0.f, 30.f, -30.f, 1e-20f, -90.f, 88.f};
  for (size_t i = 0; i < std::min<size_t>(7, x.size()); ++i) x[i] = special[i];
  std::vector<double> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = act_f64(x[i], act);
  std::vector<float> ref;
  compare_impls(name, x.size(), [&](Impl im, std::vector<float>& y) {
    y = x;
    activation(y.data(), n, act, im);
  }, 0, 0, {n}, &ref, 2e-7, 5e-7);
  // float32 tanh / erf / exp: ~2 ulp plus the cancellation of 1 + tanh near -x.
  check_close(name + " [reference vs float64]", ref, want, 1e-6, 2e-6, {n});
}

void test_silu_mul(int64_t n) {
  const std::string name = fmt("silu_mul/n=%" PRId64, n);
  if (!begin_case(name)) return;
  std::vector<float> g = uniform_floats(n, n + 1, -8, 8), u = uniform_floats(n, n + 2, -3, 3);
  std::vector<double> want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) want[i] = act_f64(g[i], Act::kSilu) * u[i];
  std::vector<float> ref;
  compare_impls(name, g.size(), [&](Impl im, std::vector<float>& y) {
    silu_mul(g.data(), u.data(), n, y.data(), im);
  }, 0, 0, {n}, &ref, 2e-7, 5e-7);
  check_close(name + " [reference vs float64]", ref, want, 1e-6, 2e-6, {n});
}

// ---- rope --------------------------------------------------------------------------------

void test_rope(int64_t nt, int64_t heads, int64_t hd, double theta) {
  const std::string name =
      fmt("rope/tok=%" PRId64 ",heads=%" PRId64 ",hd=%" PRId64 ",theta=%g", nt, heads, hd, theta);
  if (!begin_case(name)) return;
  std::vector<float> x = uniform_floats(nt * heads * hd, nt * heads + hd);
  Rng r(hd + nt);
  std::vector<int32_t> pos(static_cast<size_t>(nt));
  for (int64_t t = 0; t < nt; ++t) pos[t] = t == 0 ? 0 : static_cast<int32_t>(r.integer(0, 5000));
  const int64_t half = hd / 2;
  std::vector<double> want(x.size());
  for (int64_t t = 0; t < nt; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        // The documented angle: float exponent, double power, float product (HF float32).
        const float e = static_cast<float>(2 * i) / static_cast<float>(hd);
        const float inv = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(e)));
        const double a = static_cast<float>(pos[t]) * inv;
        const int64_t o = (t * heads + h) * hd;
        want[o + i] = x[o + i] * std::cos(a) - x[o + i + half] * std::sin(a);
        want[o + i + half] = x[o + i + half] * std::cos(a) + x[o + i] * std::sin(a);
      }
  std::vector<float> ref;
  const std::vector<int64_t> shape = {nt, heads, hd};
  compare_impls(name, x.size(), [&](Impl im, std::vector<float>& y) {
    y = x;
    rope(y.data(), nt, heads, hd, pos.data(), theta, im);
  }, 0, 0, shape, &ref, 2e-7, 5e-7);
  check_close(name + " [reference vs float64]", ref, want, 2e-6, 0, shape);
}

// ---- attention ---------------------------------------------------------------------------

std::vector<double> attention_f64(const std::vector<float>& q, const std::vector<float>& k,
                                  const std::vector<float>& v, int64_t nq, int64_t nk, int64_t hq,
                                  int64_t hkv, int64_t d, float scale, bool causal, int64_t off) {
  std::vector<double> out(static_cast<size_t>(nq * hq * d));
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t h = 0; h < hq; ++h) {
      const int64_t kh = h / (hq / hkv), lim = causal ? std::min(nk, off + i + 1) : nk;
      std::vector<double> s(static_cast<size_t>(lim));
      double m = -INFINITY, sum = 0;
      for (int64_t j = 0; j < lim; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < d; ++c)
          dot += static_cast<double>(q[(i * hq + h) * d + c]) * k[(j * hkv + kh) * d + c];
        s[j] = dot * scale;
        m = std::max(m, s[j]);
      }
      for (double& e : s) sum += (e = std::exp(e - m));
      for (int64_t c = 0; c < d; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < lim; ++j) acc += s[j] * v[(j * hkv + kh) * d + c];
        out[(i * hq + h) * d + c] = acc / sum;
      }
    }
  return out;
}

void test_attention(int64_t nq, int64_t nk, int64_t hq, int64_t hkv, int64_t d, bool causal,
                    int64_t off) {
  const std::string name = fmt("attention/nq=%" PRId64 ",nk=%" PRId64 ",hq=%" PRId64
                               ",hkv=%" PRId64 ",d=%" PRId64 ",%s,offset=%" PRId64,
                               nq, nk, hq, hkv, d, causal ? "causal" : "full", off);
  if (!begin_case(name)) return;
  const uint64_t seed = nq * 1000 + nk * 10 + d;
  std::vector<float> q = uniform_floats(nq * hq * d, seed, -2, 2), k = uniform_floats(nk * hkv * d, seed + 1, -2, 2),
                     v = uniform_floats(nk * hkv * d, seed + 2);
  const float scale = static_cast<float>(std::pow(static_cast<double>(d), -0.5));
  std::vector<double> want = attention_f64(q, k, v, nq, nk, hq, hkv, d, scale, causal, off);
  const std::vector<int64_t> shape = {nq, hq, d};
  std::vector<float> ref;
  compare_impls(name, want.size(), [&](Impl im, std::vector<float>& y) {
    attention(q.data(), k.data(), v.data(), nq, nk, hq, hkv, d, scale, causal, off, y.data(), im);
  }, 2e-6, 1e-5, shape, &ref);
  check_close(name + " [reference vs float64]", ref, want, 2e-6, 1e-5, shape);
  if (causal && nq > 1) {  // query rows one at a time with their offsets == the batch
    std::vector<float> all(want.size()), rows(want.size());
    attention(q.data(), k.data(), v.data(), nq, nk, hq, hkv, d, scale, true, off, all.data(),
              Impl::kFast);
    for (int64_t i = 0; i < nq; ++i)
      attention(q.data() + i * hq * d, k.data(), v.data(), 1, nk, hq, hkv, d, scale, true,
                off + i, rows.data() + i * hq * d, Impl::kFast);
    check_floats(name + " [fast batch == fast row by row]", all, rows, shape, 0);
  }
}

// ---- space_to_channel3 / patch_embed -------------------------------------------------------

void test_s2c(int64_t n, int64_t g, int64_t c) {
  const std::string name = fmt("space_to_channel3/n=%" PRId64 ",g=%" PRId64 ",c=%" PRId64, n, g, c);
  if (!begin_case(name)) return;
  std::vector<float> x = uniform_floats(n * g * g * c, n + g + c);
  const int64_t G = (g + 2) / 3;
  std::vector<double> want(static_cast<size_t>(n * G * G * 9 * c));
  for (int64_t t = 0; t < n; ++t)  // torch: pad, view(n,G,3,G,3,c), permute(0,1,3,2,4,5)
    for (int64_t R = 0; R < G; ++R)
      for (int64_t m = 0; m < 3; ++m)
        for (int64_t C = 0; C < G; ++C)
          for (int64_t k = 0; k < 3; ++k)
            for (int64_t ch = 0; ch < c; ++ch) {
              const int64_t r = 3 * R + m, col = 3 * C + k;
              want[((t * G + R) * G + C) * 9 * c + (m * 3 + k) * c + ch] =
                  r < g && col < g ? x[((t * g + r) * g + col) * c + ch] : 0.0;
            }
  std::vector<float> ref;
  const std::vector<int64_t> shape = {n, G * G, 9 * c};
  compare_impls(name, want.size(), [&](Impl im, std::vector<float>& y) {
    space_to_channel3(x.data(), n, g, c, y.data(), im);
  }, 0, 0, shape, &ref);
  check_close(name + " [reference vs float64]", ref, want, 0, 0, shape);
}

void test_patch_embed(int64_t n, int64_t size, int64_t patch, int64_t hidden, WType t, bool bias) {
  const std::string name = fmt("patch_embed/n=%" PRId64 ",size=%" PRId64 ",patch=%" PRId64
                               ",hidden=%" PRId64 ",%s%s",
                               n, size, patch, hidden, wtype_name(t), bias ? ",bias" : "");
  if (!begin_case(name)) return;
  const int64_t P = size / patch, kk = 3 * patch * patch;
  TestWeight w = make_weight(hidden, kk, t, size + hidden, 0.2);
  std::vector<float> img = uniform_floats(n * 3 * size * size, n + size), b = uniform_floats(hidden, hidden);
  std::vector<double> want(static_cast<size_t>(n * P * P * hidden)), tol(want.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t py = 0; py < P; ++py)
      for (int64_t px = 0; px < P; ++px)
        for (int64_t o = 0; o < hidden; ++o) {
          double s = bias ? b[o] : 0, a = bias ? std::fabs(b[o]) : 0;
          for (int64_t c = 0; c < 3; ++c)
            for (int64_t ky = 0; ky < patch; ++ky)
              for (int64_t kx = 0; kx < patch; ++kx) {
                const double p = img[((i * 3 + c) * size + py * patch + ky) * size + px * patch + kx] *
                                 w.value[o * kk + (c * patch + ky) * patch + kx];
                s += p;
                a += std::fabs(p);
              }
          const int64_t idx = ((i * P + py) * P + px) * hidden + o;
          want[idx] = s;
          tol[idx] = 1e-5 * a + 1e-30;
        }
  const std::vector<int64_t> shape = {n, P * P, hidden};
  std::vector<float> ref(want.size());
  patch_embed(img.data(), n, size, patch, w.ref, bias ? b.data() : nullptr, ref.data(),
              Impl::kReference);
  check_close(name + " [reference vs float64]", ref, want, tol, 0, shape);
  for (Impl impl : impls_under_test()) {
    std::vector<float> got(want.size(), 12345.f);
    Outcome o = run_op([&] {
      patch_embed(img.data(), n, size, patch, w.ref, bias ? b.data() : nullptr, got.data(), impl);
    });
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    if (o.threw) { record(false, ctx, o.msg, nullptr); continue; }
    check_close(ctx, got, std::vector<double>(ref.begin(), ref.end()), tol, 0, shape);
  }
}

// ---- typed errors --------------------------------------------------------------------------

void test_errors() {
  std::vector<float> buf(4096, 0.5f);
  float* p = buf.data();
  TestWeight w = make_weight(4, 8, WType::kBF16, 1);
  for (Impl impl : {Impl::kReference, Impl::kFast}) {
    const std::string sfx = std::string(" [") + impl_name(impl) + "]";
    const auto IA = ErrorKind::kInvalidArgument;
    expect_error("errors/linear n=0" + sfx, IA, [&] { linear(p, 0, w.ref, nullptr, p, impl); });
    expect_error("errors/linear null x" + sfx, IA, [&] { linear(nullptr, 1, w.ref, nullptr, p, impl); });
    expect_error("errors/linear bad dtype" + sfx, IA, [&] {
      WeightRef r = w.ref;
      r.type = static_cast<WType>(7);
      linear(p, 1, r, nullptr, p, impl);
    });
    expect_error("errors/linear null weight" + sfx, IA, [&] {
      WeightRef r = w.ref;
      r.data = nullptr;
      linear(p, 1, r, nullptr, p, impl);
    });
    expect_error("errors/attention hq % hkv" + sfx, IA,
                 [&] { attention(p, p, p, 1, 1, 7, 2, 8, 0.3f, false, 0, p, impl); });
    expect_error("errors/attention nk=0" + sfx, IA,
                 [&] { attention(p, p, p, 1, 0, 2, 2, 8, 0.3f, false, 0, p, impl); });
    expect_error("errors/attention NaN scale" + sfx, IA,
                 [&] { attention(p, p, p, 1, 1, 2, 2, 8, kNaN, false, 0, p, impl); });
    expect_error("errors/attention causal negative offset" + sfx, IA,
                 [&] { attention(p, p, p, 1, 1, 2, 2, 8, 0.3f, true, -1, p, impl); });
    expect_error("errors/rope odd head_dim" + sfx, IA, [&] {
      int32_t pos = 0;
      rope(p, 1, 1, 7, &pos, 1e4, impl);
    });
    expect_error("errors/rope negative position" + sfx, IA, [&] {
      int32_t pos = -3;
      rope(p, 1, 1, 8, &pos, 1e4, impl);
    });
    expect_error("errors/layer_norm NaN eps" + sfx, IA,
                 [&] { layer_norm(p, 1, 4, p, p, kNaN, p, impl); });
    expect_error("errors/layer_norm null beta" + sfx, IA,
                 [&] { layer_norm(p, 1, 4, p, nullptr, 1e-5f, p, impl); });
    expect_error("errors/rms_norm d=0" + sfx, IA, [&] { rms_norm(p, 1, 0, p, 1e-6f, p, impl); });
    expect_error("errors/activation unknown act" + sfx, IA,
                 [&] { activation(p, 4, static_cast<Act>(9), impl); });
    expect_error("errors/silu_mul null up" + sfx, IA, [&] { silu_mul(p, nullptr, 4, p, impl); });
    expect_error("errors/space_to_channel3 g=0" + sfx, IA,
                 [&] { space_to_channel3(p, 1, 0, 4, p, impl); });
    expect_error("errors/patch_embed size % patch" + sfx, IA,
                 [&] { patch_embed(p, 1, 15, 14, w.ref, nullptr, p, impl); });
    expect_error("errors/patch_embed weight cols != 3*p*p" + sfx, IA,
                 [&] { patch_embed(p, 1, 4, 2, w.ref, nullptr, p, impl); });
  }
#ifndef SR3D_WITH_CUDA
  expect_error("errors/linear Impl::kCuda in a CPU-only build", ErrorKind::kInvalidArgument,
               [&] { linear(p, 1, w.ref, nullptr, p, Impl::kCuda); });
#endif
}

// ---- sampling ------------------------------------------------------------------------------

void test_sampling() {
  if (begin_case("sampling/greedy lowest index on ties")) {
    const float l[] = {0.f, 3.f, -1.f, 3.f, 2.f};
    Sampling s;
    record(sample_token(l, 5, s, nullptr) == 1, "sampling/greedy", "argmax not 1", nullptr);
    const float m[] = {-INFINITY, -INFINITY, -5.f};
    record(sample_token(m, 3, s, nullptr) == 2, "sampling/greedy -inf", "argmax not 2", nullptr);
  }
  const std::vector<float> logits = {std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  auto freq = [&](const Sampling& s, uint64_t seed, int draws) {
    uint64_t rng[4];
    seed_rng(seed, rng);
    std::vector<double> f(4, 0);
    for (int i = 0; i < draws; ++i) f[sample_token(logits.data(), 4, s, rng)] += 1.0 / draws;
    return f;
  };
  auto near = [](const std::vector<double>& f, const std::vector<double>& p, double tol) {
    for (size_t i = 0; i < p.size(); ++i)
      if (std::fabs(f[i] - p[i]) > tol) return false;
    return true;
  };
  auto text = [](const std::vector<double>& f) {
    std::string s;
    for (double v : f) s += fmt("%.4f ", v);
    return s;
  };
  // 40000 draws: the standard error of a frequency is <= 0.0025; tolerance 0.012 (~5 sigma).
  if (begin_case("sampling/temperature 1 follows softmax")) {
    Sampling s;
    s.temperature = 1.f;
    auto f = freq(s, 42, 40000);
    record(near(f, {0.1, 0.2, 0.3, 0.4}, 0.012), "sampling/t=1", text(f), nullptr);
  }
  if (begin_case("sampling/temperature 0.5 sharpens (p^2 renormalized)")) {
    Sampling s;
    s.temperature = 0.5f;
    auto f = freq(s, 43, 40000);
    record(near(f, {0.01 / 0.3, 0.04 / 0.3, 0.09 / 0.3, 0.16 / 0.3}, 0.012), "sampling/t=0.5",
           text(f), nullptr);
  }
  if (begin_case("sampling/top_k=2")) {
    Sampling s;
    s.temperature = 1.f;
    s.top_k = 2;
    auto f = freq(s, 44, 40000);
    record(near(f, {0, 0, 3.0 / 7, 4.0 / 7}, 0.012) && f[0] == 0 && f[1] == 0, "sampling/top_k",
           text(f), nullptr);
  }
  if (begin_case("sampling/top_p=0.5 (HF: drops ascending cumsum <= 0.5)")) {
    Sampling s;
    s.temperature = 1.f;
    s.top_p = 0.5f;
    auto f = freq(s, 45, 40000);
    record(near(f, {0, 0, 3.0 / 7, 4.0 / 7}, 0.012) && f[0] == 0 && f[1] == 0, "sampling/top_p",
           text(f), nullptr);
    s.top_p = 0.05f;
    f = freq(s, 46, 1000);
    record(f[0] == 0 && f[1] == 0 && f[2] == 0, "sampling/top_p tiny keeps the top token", text(f), nullptr);
  }
  if (begin_case("sampling/deterministic for a seed")) {
    Sampling s;
    s.temperature = 0.8f;
    s.top_p = 0.9f;
    uint64_t a[4], b[4];
    seed_rng(7, a);
    seed_rng(7, b);
    std::vector<float> big = uniform_floats(1000, 9, -4, 4);
    bool same = true;
    for (int i = 0; i < 200; ++i)
      same &= sample_token(big.data(), 1000, s, a) == sample_token(big.data(), 1000, s, b);
    record(same, "sampling/same seed same tokens", "sequences differ", nullptr);
    uint64_t c[4];
    seed_rng(8, c);
    record(c[0] != a[0] || c[1] != a[1], "sampling/seeds differ", "seed 7 and 8 give one state", nullptr);
  }
  const auto IA = ErrorKind::kInvalidArgument;
  uint64_t rng[4];
  seed_rng(1, rng);
  Sampling bad;
  bad.temperature = 1.f;
  bad.top_p = 0.f;
  expect_error("errors/sampling top_p=0", IA, [&] { sample_token(logits.data(), 4, bad, rng); });
  bad.top_p = 1.5f;
  expect_error("errors/sampling top_p=1.5", IA, [&] { sample_token(logits.data(), 4, bad, rng); });
  bad.top_p = 1.f;
  bad.top_k = -1;
  expect_error("errors/sampling top_k=-1", IA, [&] { sample_token(logits.data(), 4, bad, rng); });
  bad.top_k = 0;
  bad.temperature = kNaN;
  expect_error("errors/sampling NaN temperature", IA, [&] { sample_token(logits.data(), 4, bad, rng); });
  bad.temperature = 1.f;
  expect_error("errors/sampling vocab=0", IA, [&] { sample_token(logits.data(), 0, bad, rng); });
  expect_error("errors/sampling null rng", IA, [&] { sample_token(logits.data(), 4, bad, nullptr); });
  const float nan_logits[] = {0.f, kNaN};
  expect_error("errors/sampling NaN logit", IA, [&] { sample_token(nan_logits, 2, bad, rng); });
}

// ---- the engine on a random tiny model -----------------------------------------------------

struct TinyModel {
  ModelSpec spec;
  WeightMap map;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> store;
  Rng rng{2024};

  void add(const std::string& key, std::vector<int64_t> shape, WType t, double lo, double hi) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    store.emplace_back(new std::vector<uint8_t>(static_cast<size_t>(n * wtype_size(t))));
    uint8_t* b = store.back()->data();
    for (int64_t i = 0; i < n; ++i) {
      const float f = static_cast<float>(rng.uniform(lo, hi));
      if (t == WType::kF32) std::memcpy(b + 4 * i, &f, 4);
      else if (t == WType::kBF16) {
        uint16_t h = float_to_bf16(f);
        std::memcpy(b + 2 * i, &h, 2);
      } else {  // float16 via bf16 values that float16 represents exactly (|v| >= 2^-14)
        float r = bf16_to_float(float_to_bf16(f));
        uint32_t u;
        std::memcpy(&u, &r, 4);
        int e = static_cast<int>((u >> 23) & 0xff) - 127;
        uint16_t h = 0;
        if (e >= -14) h = static_cast<uint16_t>(((u >> 16) & 0x8000) | ((e + 15) << 10) | ((u >> 13) & 0x3ff));
        std::memcpy(b + 2 * i, &h, 2);
      }
    }
    map[key] = WeightTensor{b, t, shape};
  }
  void linear(const std::string& k, int64_t out, int64_t in, bool bias, WType wt, WType bt) {
    const double s = 1.0 / std::sqrt(static_cast<double>(in));
    add(k + ".weight", {out, in}, wt, -s, s);
    if (bias) add(k + ".bias", {out}, bt, -0.1, 0.1);
  }
  void norm(const std::string& k, int64_t d, bool bias, WType t) {
    add(k + ".weight", {d}, t, 0.8, 1.2);
    if (bias) add(k + ".bias", {d}, t, -0.1, 0.1);
  }
};

// vision hidden 32 / 2 heads / 3 layers (2 run), image 56 patch 14 (4x4 grid -> projector
// 2x2 with padding); Qwen2 hidden 64, 4 heads, 2 kv heads, 2 layers, vocab 300.
std::unique_ptr<TinyModel> make_tiny(bool tied, WType big, WType small) {
  std::unique_ptr<TinyModel> m(new TinyModel());
  ModelSpec& s = m->spec;
  s.has_vision = s.has_projector = s.has_llm = true;
  s.vision = VisionSpec{32, 2, 48, 2, 56, 14, 1e-6f, Act::kGeluTanh};
  s.projector.eps = 1e-5f;
  s.llm.hidden = 64;
  s.llm.layers = 2;
  s.llm.heads = 4;
  s.llm.kv_heads = 2;
  s.llm.head_dim = 16;
  s.llm.intermediate = 96;
  s.llm.vocab = 300;
  s.llm.eps = 1e-6f;
  s.llm.rope_theta = 1e6;
  s.llm.tie_word_embeddings = tied;
  s.max_context = 40;
  s.mlps[wn::mlp_module::kSpatialPe] = {{MlpStep::kLinear, weight_of(WS::kFc1), bias_of(WS::kFc1)},
                                        {MlpStep::kGeluErf, "", ""},
                                        {MlpStep::kLinear, weight_of(WS::kFc2), bias_of(WS::kFc2)}};
  s.mlps[wn::mlp_module::kRegion] = {{MlpStep::kLayerNorm, "ln.weight", "ln.bias", 1e-5f},
                      {MlpStep::kLinear, "proj.weight", ""},
                      {MlpStep::kGeluTanh, "", ""}};
  m->add(weight_of(wn::vision_key(WV::kPatchEmbedding)), {32, 3, 14, 14}, big, -0.05, 0.05);
  m->add(bias_of(wn::vision_key(WV::kPatchEmbedding)), {32}, small, -0.1, 0.1);
  m->add(weight_of(wn::vision_key(WV::kPositionEmbedding)), {16, 32}, big, -0.5, 0.5);
  for (int i = 0; i < 3; ++i) {
    auto l = [i](const char* module) { return wn::vision_layer_key(i, module); };
    m->norm(l(WV::kLayerNorm1), 32, true, small);
    m->norm(l(WV::kLayerNorm2), 32, true, small);
    for (const char* p : {WV::kQ, WV::kK, WV::kV, WV::kOut}) m->linear(l(p), 32, 32, true, big, small);
    m->linear(l(WV::kFc1), 48, 32, true, big, small);
    m->linear(l(WV::kFc2), 32, 48, true, big, small);
  }
  m->norm(wn::projector_key(WP::kLayerNorm1), 288, true, small);
  m->linear(wn::projector_key(WP::kFc1), 48, 288, true, big, small);
  m->norm(wn::projector_key(WP::kLayerNorm2), 48, true, small);
  m->linear(wn::projector_key(WP::kFc2), 56, 48, true, big, small);
  m->linear(wn::projector_key(WP::kFc3), 64, 56, true, big, small);
  m->add(weight_of(wn::llm_key(WL::kEmbedTokens)), {300, 64}, big, -1, 1);
  for (int i = 0; i < 2; ++i) {
    auto l = [i](const char* module) { return wn::llm_layer_key(i, module); };
    m->norm(l(WL::kInputNorm), 64, false, small);
    m->norm(l(WL::kPostAttentionNorm), 64, false, small);
    m->linear(l(WL::kQ), 64, 64, true, big, small);
    m->linear(l(WL::kK), 32, 64, true, big, small);
    m->linear(l(WL::kV), 32, 64, true, big, small);
    m->linear(l(WL::kO), 64, 64, false, big, small);
    m->linear(l(WL::kGate), 96, 64, false, big, small);
    m->linear(l(WL::kUp), 96, 64, false, big, small);
    m->linear(l(WL::kDown), 64, 96, false, big, small);
  }
  m->norm(wn::llm_key(WL::kNorm), 64, false, small);
  if (!tied) m->linear(wn::llm_key(WL::kLmHead), 300, 64, false, big, small);
  const std::string pe = wn::native_prefix::kSpatialPe, region = wn::native_prefix::kRegion;
  m->linear(pe + WS::kFc1, 32, 12, true, big, small);
  m->linear(pe + WS::kFc2, 32, 32, true, big, small);
  // The region module here is a test shape of its own (LN, Linear, GELU), not a checkpoint's.
  m->norm(region + "ln", 32, true, small);
  m->linear(region + "proj", 64, 32, false, big, small);
  return m;
}

// The same model composed from Impl::kReference ops.
struct RefModel {
  const TinyModel& m;
  static constexpr Impl R = Impl::kReference;
  std::vector<float> f32(const std::string& k) const {
    const WeightTensor& t = m.map.at(k);
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = load_weight(t.data, t.type, i);
    return v;
  }
  WeightRef w(const std::string& k) const {
    const WeightTensor& t = m.map.at(k);
    return WeightRef{t.data, t.type, t.shape[0], t.shape.size() == 4 ? t.shape[1] * t.shape[2] * t.shape[3] : t.shape[1]};
  }
  std::vector<float> lin(const std::vector<float>& x, int64_t n, const std::string& k, bool bias) const {
    WeightRef r = w(k + ".weight");
    std::vector<float> y(static_cast<size_t>(n * r.rows)), b;
    if (bias) b = f32(k + ".bias");
    linear(x.data(), n, r, bias ? b.data() : nullptr, y.data(), R);
    return y;
  }
  std::vector<float> ln(const std::vector<float>& x, int64_t n, int64_t d, const std::string& k, float eps) const {
    std::vector<float> y(x.size()), g = f32(k + ".weight"), b = f32(k + ".bias");
    layer_norm(x.data(), n, d, g.data(), b.data(), eps, y.data(), R);
    return y;
  }
  std::vector<float> vision(const std::vector<float>& tiles, int64_t n) const {
    const VisionSpec& v = m.spec.vision;
    const int64_t T = 16, H = 32, rows = n * T;
    const std::string patch = wn::vision_key(WV::kPatchEmbedding);
    std::vector<float> h(static_cast<size_t>(rows * H)), pb = f32(bias_of(patch)),
        pe = f32(weight_of(wn::vision_key(WV::kPositionEmbedding)));
    patch_embed(tiles.data(), n, 56, 14, w(weight_of(patch)), pb.data(), h.data(), R);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < H; ++c) h[r * H + c] += pe[(r % T) * H + c];
    const float scale = static_cast<float>(std::pow(16.0, -0.5));
    for (int i = 0; i < v.layers_run; ++i) {
      auto l = [i](const char* module) { return wn::vision_layer_key(i, module); };
      std::vector<float> a = ln(h, rows, H, l(WV::kLayerNorm1), v.eps);
      std::vector<float> q = lin(a, rows, l(WV::kQ), true), k = lin(a, rows, l(WV::kK), true),
                         vv = lin(a, rows, l(WV::kV), true), att(q.size());
      for (int64_t t = 0; t < n; ++t)
        attention(q.data() + t * T * H, k.data() + t * T * H, vv.data() + t * T * H, T, T, 2, 2, 16, scale, false, 0,
                  att.data() + t * T * H, R);
      std::vector<float> o = lin(att, rows, l(WV::kOut), true);
      for (size_t j = 0; j < h.size(); ++j) h[j] += o[j];
      a = ln(h, rows, H, l(WV::kLayerNorm2), v.eps);
      std::vector<float> f = lin(a, rows, l(WV::kFc1), true);
      activation(f.data(), static_cast<int64_t>(f.size()), v.act, R);
      o = lin(f, rows, l(WV::kFc2), true);
      for (size_t j = 0; j < h.size(); ++j) h[j] += o[j];
    }
    return h;
  }
  std::vector<float> project(const std::vector<float>& feats, int64_t n) const {
    const int64_t rows = n * 4;
    std::vector<float> a(static_cast<size_t>(rows * 288));
    space_to_channel3(feats.data(), n, 4, 32, a.data(), R);
    a = ln(a, rows, 288, wn::projector_key(WP::kLayerNorm1), 1e-5f);
    std::vector<float> b = lin(a, rows, wn::projector_key(WP::kFc1), true);
    activation(b.data(), static_cast<int64_t>(b.size()), Act::kGeluErf, R);
    b = ln(b, rows, 48, wn::projector_key(WP::kLayerNorm2), 1e-5f);
    a = lin(b, rows, wn::projector_key(WP::kFc2), true);
    activation(a.data(), static_cast<int64_t>(a.size()), Act::kGeluErf, R);
    return lin(a, rows, wn::projector_key(WP::kFc3), true);
  }
  // Full causal forward of n embeddings from position 0; logits of the last one.
  std::vector<float> llm(const std::vector<float>& emb, int64_t n) const {
    const LlmSpec& l = m.spec.llm;
    const int64_t H = 64;
    std::vector<float> h = emb;
    std::vector<int32_t> pos(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(i);
    for (int i = 0; i < l.layers; ++i) {
      auto p = [i](const char* module) { return wn::llm_layer_key(i, module); };
      std::vector<float> a(h.size()), g = f32(weight_of(p(WL::kInputNorm)));
      rms_norm(h.data(), n, H, g.data(), l.eps, a.data(), R);
      std::vector<float> q = lin(a, n, p(WL::kQ), true), k = lin(a, n, p(WL::kK), true),
                         v = lin(a, n, p(WL::kV), true), att(q.size());
      rope(q.data(), n, 4, 16, pos.data(), l.rope_theta, R);
      rope(k.data(), n, 2, 16, pos.data(), l.rope_theta, R);
      attention(q.data(), k.data(), v.data(), n, n, 4, 2, 16, 0.25f, true, 0, att.data(), R);
      std::vector<float> o = lin(att, n, p(WL::kO), false);
      for (size_t j = 0; j < h.size(); ++j) h[j] += o[j];
      g = f32(weight_of(p(WL::kPostAttentionNorm)));
      rms_norm(h.data(), n, H, g.data(), l.eps, a.data(), R);
      std::vector<float> gate = lin(a, n, p(WL::kGate), false), up = lin(a, n, p(WL::kUp), false);
      silu_mul(gate.data(), up.data(), static_cast<int64_t>(gate.size()), gate.data(), R);
      o = lin(gate, n, p(WL::kDown), false);
      for (size_t j = 0; j < h.size(); ++j) h[j] += o[j];
    }
    std::vector<float> last(h.end() - H, h.end()), nl(H), g = f32(weight_of(wn::llm_key(WL::kNorm)));
    rms_norm(last.data(), 1, H, g.data(), l.eps, nl.data(), R);
    return lin(nl, 1, wn::llm_key(l.tie_word_embeddings ? WL::kEmbedTokens : WL::kLmHead), false);
  }
};

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

void test_engine_on(const std::string& tag, TinyModel& tm, Engine& e) {
  RefModel ref{tm};
  const std::string base = "engine/" + tag + "/";
  // Vision: 3 tiles batched vs the reference composition, and vs one tile at a time.
  const int64_t nt = 3;
  std::vector<float> tiles = uniform_floats(nt * 3 * 56 * 56, 77, -1, 1);
  std::vector<float> feats(static_cast<size_t>(nt * 16 * 32));
  if (begin_case(base + "encode_tiles vs reference ops")) {
    e.encode_tiles(tiles.data(), nt, feats.data());
    std::vector<float> want = ref.vision(tiles, nt);
    check_close(base + "encode_tiles", feats, want, 1e-4 * max_abs(want), 0, {nt, 16, 32});
    std::vector<float> one(16 * 32), rows(feats.size());
    for (int64_t t = 0; t < nt; ++t) {
      e.encode_tiles(tiles.data() + t * 3 * 56 * 56, 1, one.data());
      std::copy(one.begin(), one.end(), rows.begin() + t * 16 * 32);
    }
    check_floats(base + "encode_tiles batch == one tile at a time", feats, rows, {nt, 16, 32}, 0);
  } else {
    e.encode_tiles(tiles.data(), nt, feats.data());
  }
  if (begin_case(base + "project vs reference ops")) {
    std::vector<float> out(static_cast<size_t>(nt * 4 * 64));
    e.project(feats.data(), nt, out.data());
    std::vector<float> want = ref.project(feats, nt);
    check_close(base + "project", out, want, 1e-4 * max_abs(want), 0, {nt, 4, 64});
  }
  if (begin_case(base + "run_mlp vs reference ops")) {
    const char *spe = wn::mlp_module::kSpatialPe, *region = wn::mlp_module::kRegion;
    record(e.mlp_in_dim(spe) == 12 && e.mlp_out_dim(spe) == 32 && e.mlp_in_dim(region) == 32 &&
               e.mlp_out_dim(region) == 64,
           base + "mlp dims", "wrong in/out dims", nullptr);
    std::vector<float> x = uniform_floats(5 * 12, 3), out(5 * 32);
    e.run_mlp(spe, x.data(), 5, out.data());
    std::vector<float> a = ref.lin(x, 5, wn::native_prefix::kSpatialPe + std::string(WS::kFc1), true);
    activation(a.data(), static_cast<int64_t>(a.size()), Act::kGeluErf, Impl::kReference);
    std::vector<float> want = ref.lin(a, 5, wn::native_prefix::kSpatialPe + std::string(WS::kFc2), true);
    check_close(base + "run_mlp spatial_pe", out, want, 1e-4 * max_abs(want), 0, {5, 32});
    std::vector<float> r = uniform_floats(3 * 32, 4), rout(3 * 64);
    e.run_mlp(region, r.data(), 3, rout.data());
    const std::string rp = wn::native_prefix::kRegion;
    std::vector<float> b = ref.lin(ref.ln(r, 3, 32, rp + "ln", 1e-5f), 3, rp + "proj", false);
    activation(b.data(), static_cast<int64_t>(b.size()), Act::kGeluTanh, Impl::kReference);
    check_close(base + "run_mlp region", rout, b, 1e-4 * max_abs(b), 0, {3, 64});
    expect_error(base + "run_mlp unknown module", ErrorKind::kInvalidArgument,
                 [&] { e.run_mlp("nope", x.data(), 1, out.data()); });
  }
  // LLM: a prompt of 9 embeddings (token rows and arbitrary rows, as after splicing).
  const int64_t n = 9;
  std::vector<int32_t> ids = {5, 17, 299, 0, 42, 42, 100, 7, 250};
  std::vector<float> emb(static_cast<size_t>(n * 64));
  e.embed_tokens(ids.data(), n, emb.data());
  {
    std::vector<float> extra = uniform_floats(2 * 64, 11, -1, 1);  // two "image" rows
    std::copy(extra.begin(), extra.end(), emb.begin() + 3 * 64);
  }
  if (begin_case(base + "embed_tokens rows")) {
    std::vector<float> row(64), want = ref.f32(weight_of(wn::llm_key(WL::kEmbedTokens)));
    e.embed_tokens(&ids[2], 1, row.data());
    check_floats(base + "embed_tokens", row, std::vector<float>(want.begin() + 299 * 64, want.begin() + 300 * 64), {64}, 0);
  }
  std::vector<float> full(300);
  if (begin_case(base + "prefill vs reference ops")) {
    e.reset();
    e.prefill(emb.data(), n);
    record(e.cached() == n, base + "cached after prefill", std::to_string(e.cached()), nullptr);
    full.assign(e.last_logits(), e.last_logits() + 300);
    std::vector<float> want = ref.llm(emb, n);
    check_close(base + "prefill logits", full, want, 1e-4 * max_abs(want), 0, {300});
  }
  if (begin_case(base + "prefill(n) == token by token, deterministic")) {
    e.reset();
    e.prefill(emb.data(), n);
    full.assign(e.last_logits(), e.last_logits() + 300);
    e.reset();
    for (int64_t i = 0; i < n; ++i) e.prefill(emb.data() + i * 64, 1);
    std::vector<float> steps(e.last_logits(), e.last_logits() + 300);
    check_close(base + "prefill(9) vs 9 x prefill(1)", steps, full, 1e-5 * max_abs(full), 0, {300});
    e.reset();
    e.prefill(emb.data(), 4);
    e.prefill(emb.data() + 4 * 64, n - 4);
    std::vector<float> split(e.last_logits(), e.last_logits() + 300);
    check_close(base + "prefill(4)+prefill(5) vs prefill(9)", split, full, 1e-5 * max_abs(full), 0, {300});
    e.reset();
    e.prefill(emb.data(), n);
    std::vector<float> again(e.last_logits(), e.last_logits() + 300);
    check_floats(base + "deterministic", again, full, {300}, 0);
  }
  if (begin_case(base + "decode == prefill of the token's embedding; greedy")) {
    e.reset();
    e.prefill(emb.data(), n);
    const int32_t tok = sample_token(e.last_logits(), 300, Sampling{}, nullptr);
    const float* l = e.last_logits();
    record(std::max_element(l, l + 300) - l == tok, base + "greedy == argmax", std::to_string(tok), nullptr);
    e.decode(tok);
    std::vector<float> dec(e.last_logits(), e.last_logits() + 300);
    std::vector<float> emb2 = emb, row(64);
    e.embed_tokens(&tok, 1, row.data());
    emb2.insert(emb2.end(), row.begin(), row.end());
    std::vector<float> want = ref.llm(emb2, n + 1);
    check_close(base + "decode logits vs reference", dec, want, 1e-4 * max_abs(want), 0, {300});
    record(e.cached() == n + 1, base + "cached after decode", std::to_string(e.cached()), nullptr);
  }
  const auto IA = ErrorKind::kInvalidArgument;
  expect_error(base + "prefill past max_context", IA, [&] {
    e.reset();
    std::vector<float> big(41 * 64, 0.1f);
    e.prefill(big.data(), 41);
  });
  expect_error(base + "decode past max_context", IA, [&] {
    e.reset();
    std::vector<float> big(40 * 64, 0.1f);
    e.prefill(big.data(), 40);
    e.decode(1);
  });
  expect_error(base + "decode token out of range", IA, [&] { e.reset(); e.decode(300); });
  expect_error(base + "embed_tokens negative id", IA, [&] {
    int32_t bad = -1;
    float out[64];
    e.embed_tokens(&bad, 1, out);
  });
  expect_error(base + "last_logits of an empty session", IA, [&] { e.reset(); e.last_logits(); });
}

void test_engine() {
  for (int variant = 0; variant < 3; ++variant) {
    const bool tied = variant == 1;
    const WType big = variant == 2 ? WType::kF32 : WType::kBF16;
    const WType small = variant == 0 ? WType::kBF16 : variant == 1 ? WType::kF16 : WType::kF32;
    std::unique_ptr<TinyModel> tm = make_tiny(tied, big, small);
    const std::string tag = fmt("%s big,%s small%s", wtype_name(big), wtype_name(small), tied ? ",tied" : "");
    std::unique_ptr<Engine> cpu;
    Outcome o = run_op([&] { cpu = make_cpu_engine(tm->spec, tm->map); });
    if (begin_case("engine/" + tag + "/create")) record(!o.threw, "engine/" + tag + "/create", o.msg, nullptr);
    if (!cpu) continue;
    test_engine_on(tag + " cpu", *tm, *cpu);
#ifdef SR3D_WITH_CUDA
    if (g_cuda && begin_case("engine/" + tag + "/cuda vs cpu")) {
      std::unique_ptr<Engine> gpu;
      Outcome go = run_op([&] { gpu = make_cuda_engine(tm->spec, tm->map, 0); });
      record(!go.threw, "engine/" + tag + "/cuda create", go.msg, nullptr);
      if (gpu) {
        std::vector<float> tiles = uniform_floats(2 * 3 * 56 * 56, 5), fc(2 * 16 * 32), fg(fc.size());
        cpu->encode_tiles(tiles.data(), 2, fc.data());
        gpu->encode_tiles(tiles.data(), 2, fg.data());
        check_close("engine/" + tag + "/cuda encode_tiles", fg, fc, 1e-4 * max_abs(fc), 1e-4, {2, 16, 32});
        std::vector<float> pc(2 * 4 * 64), pg(pc.size());
        cpu->project(fc.data(), 2, pc.data());
        gpu->project(fc.data(), 2, pg.data());
        check_close("engine/" + tag + "/cuda project", pg, pc, 1e-4 * max_abs(pc), 1e-4, {2, 4, 64});
        std::vector<float> emb = uniform_floats(7 * 64, 6);
        cpu->reset();
        gpu->reset();
        cpu->prefill(emb.data(), 7);
        gpu->prefill(emb.data(), 7);
        std::vector<float> lc(cpu->last_logits(), cpu->last_logits() + 300),
            lg(gpu->last_logits(), gpu->last_logits() + 300);
        check_close("engine/" + tag + "/cuda prefill", lg, lc, 1e-4 * max_abs(lc), 1e-4, {300});
        cpu->decode(3);
        gpu->decode(3);
        lc.assign(cpu->last_logits(), cpu->last_logits() + 300);
        lg.assign(gpu->last_logits(), gpu->last_logits() + 300);
        check_close("engine/" + tag + "/cuda decode", lg, lc, 1e-4 * max_abs(lc), 1e-4, {300});
      }
    }
#endif
  }
  // check_weights: typed errors naming the key and the shapes.
  std::unique_ptr<TinyModel> tm = make_tiny(false, WType::kBF16, WType::kBF16);
  auto expect_msg = [&](const std::string& name, const WeightMap& w, const ModelSpec& s,
                        const std::string& needle) {
    if (!begin_case(name)) return;
    Outcome o = run_op([&] { check_weights(s, w); });
    const bool ok = o.threw && o.kind == ErrorKind::kInvalidArgument && o.msg.find(needle) != std::string::npos;
    record(ok, name, o.threw ? o.msg : "returned normally", nullptr);
    if (ok) std::printf("  ok: %s\n", o.msg.c_str());
  };
  {
    WeightMap w = tm->map;
    const std::string up = weight_of(wn::llm_layer_key(1, WL::kUp));
    w.erase(up);
    expect_msg("engine/check_weights missing key", w, tm->spec, "'" + up + "'");
  }
  {
    WeightMap w = tm->map;
    w[weight_of(wn::llm_layer_key(0, WL::kK))].shape = {64, 64};
    expect_msg("engine/check_weights wrong shape", w, tm->spec, "Expected shape [32, 64]");
  }
  {
    WeightMap w = tm->map;
    w.erase(weight_of(wn::llm_key(WL::kLmHead)));
    expect_msg("engine/check_weights lm_head needed when untied", w, tm->spec, WL::kLmHead);
    ModelSpec s = tm->spec;
    s.llm.tie_word_embeddings = true;
    if (begin_case("engine/check_weights tied needs no lm_head")) {
      Outcome o = run_op([&] { check_weights(s, w); });
      record(!o.threw, "engine/check_weights tied", o.msg, nullptr);
    }
  }
  {
    WeightMap w = tm->map;
    const std::string last = weight_of(wn::projector_key(WP::kFc3));
    w[last].shape = {60, 56};
    expect_msg("engine/check_weights projector out != llm hidden", w, tm->spec, last);
  }
  {
    WeightMap w = tm->map;
    w[bias_of(wn::vision_layer_key(1, WV::kLayerNorm2))].type = static_cast<WType>(5);
    expect_msg("engine/check_weights bad dtype", w, tm->spec, bias_of(WV::kLayerNorm2));
  }
  {
    ModelSpec s = tm->spec;
    s.llm.heads = 3;
    expect_msg("engine/check_weights heads % kv_heads", tm->map, s, "llm.heads");
  }
  {
    ModelSpec s = tm->spec;
    s.vision.layers_run = 4;  // the map has 3 layers
    expect_msg("engine/check_weights layers_run beyond the file", tm->map, s, wn::vision_layer_key(3, ""));
  }
  {
    ModelSpec s = tm->spec;
    s.has_vision = s.has_projector = false;  // only the LLM: vision keys not needed
    WeightMap w;
    for (const auto& kv : tm->map)
      if (kv.first.rfind(wn::native_prefix::kLlm, 0) == 0 || kv.first.rfind(wn::native_prefix::kSpatialPe, 0) == 0 ||
          kv.first.rfind(wn::native_prefix::kRegion, 0) == 0)
        w.insert(kv);
    if (begin_case("engine/llm-only model")) {
      std::unique_ptr<Engine> e;
      Outcome o = run_op([&] { e = make_cpu_engine(s, w); });
      record(!o.threw, "engine/llm-only create", o.msg, nullptr);
      if (e) {
        float t[1];
        Outcome v = run_op([&] { e->encode_tiles(t, 1, t); });
        record(v.threw && v.kind == ErrorKind::kInvalidArgument, "engine/llm-only encode_tiles refuses",
               v.msg, nullptr);
        EngineInfo info = e->info();
        record(info.kv_cache_bytes == 2LL * 40 * 2 * 2 * 16 * 4 && info.device == "cpu",
               "engine/llm-only info", std::to_string(info.kv_cache_bytes), nullptr);
      }
    }
  }
#ifndef SR3D_WITH_CUDA
  expect_error("engine/make_cuda_engine in a CPU-only build", ErrorKind::kInvalidArgument,
               [&] { make_cuda_engine(tm->spec, tm->map, 0); });
#endif
}

void run_tests() {
  const int64_t lin[][3] = {{1, 1, 1}, {1, 7, 5}, {3, 17, 9}, {5, 72, 33}, {13, 100, 31}, {37, 101, 29}, {130, 100, 23},
                            {1, 896, 130}, {70, 64, 19}, {2, 1152, 3}};
  for (auto& s : lin)
    for (WType t : kAllTypes)
      for (bool b : {false, true}) test_linear(s[0], s[1], s[2], t, b);
  // Awkward sizes for the kernels' tiles: k not a multiple of 8 (the scalar tail) or below 8,
  // rows not a multiple of the GEMV's 4 or the GEMM tile's 2-3, n = 1 (decode GEMV), 2, 5, 17.
  std::printf("linear kernels: %s\n", linear_path_name().c_str());
  test_cpu_features();
  test_isa_cap();
  for (int64_t n : {1, 2, 5, 17})
    for (auto [in, out] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 5}, {8, 4}, {9, 13}, {31, 7}, {64, 6}, {257, 9}})
      for (WType t : kAllTypes) test_linear_exact(n, in, out, t, (in + out + n) % 2 == 1);
  for (WType t : kAllTypes) {  // several threads' chunks of output rows
    test_linear_exact(1, 1000, 70, t, true);
    test_linear_exact(19, 333, 41, t, false);
  }
  for (auto [n, d] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {5, 72}, {2, 1152}, {3, 10368}}) {
    test_layer_norm(n, d);
    test_rms_norm(n, d);
  }
  for (Act a : {Act::kGeluTanh, Act::kGeluErf, Act::kSilu})
    for (int64_t n : {1, 7, 1000, 100003}) test_activation(n, a);
  for (int64_t n : {1, 9, 100003}) test_silu_mul(n);
  test_rope(1, 1, 2, 1e4);
  test_rope(3, 2, 72, 1e6);
  test_rope(5, 7, 64, 1e6);
  test_rope(2, 3, 128, 1e4);
  test_attention(1, 1, 1, 1, 1, false, 0);
  test_attention(3, 5, 2, 2, 72, false, 0);
  test_attention(7, 7, 14, 2, 64, true, 0);
  test_attention(1, 9, 7, 1, 64, true, 8);
  test_attention(4, 10, 4, 2, 17, true, 6);
  test_attention(33, 33, 16, 16, 72, false, 0);
  test_attention(5, 12, 3, 3, 9, true, 7);
  test_attention(6, 6, 28, 4, 128, true, 0);
  test_s2c(1, 1, 1);
  test_s2c(2, 4, 3);
  test_s2c(1, 32, 5);
  test_s2c(3, 6, 2);
  test_s2c(1, 7, 8);
  for (WType t : kAllTypes) {
    test_patch_embed(1, 14, 14, 5, t, true);
    test_patch_embed(2, 28, 14, 7, t, false);
    test_patch_embed(1, 9, 3, 4, t, true);
  }
  test_errors();
  test_sampling();
  test_engine();
}

// ---- benchmarks ----------------------------------------------------------------------------

std::vector<uint16_t> random_bf16(int64_t n, uint64_t seed, float scale) {
  std::vector<uint16_t> v(static_cast<size_t>(n));
  parallel_for(n, cpu_threads(), [&](int c, int64_t b, int64_t e) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(c) * 0xbf58476d1ce4e5b9ULL + 1;
    for (int64_t i = b; i < e; ++i) {
      s ^= s << 13; s ^= s >> 7; s ^= s << 17;
      const float f = (static_cast<float>(s >> 40) / 16777216.0f * 2 - 1) * scale;
      v[i] = float_to_bf16(f);
    }
  });
  return v;
}

void bench_cpu(std::vector<BenchRow>& rows) {
  const double peak = measure_cpu_peak(rows);
  const int thr = cpu_threads();
  // GEMV: decode is memory bound, bytes = the bf16 weights (x and y are tiny).
  for (auto [in, out] : std::vector<std::pair<int64_t, int64_t>>{{896, 4864}, {4864, 896}, {3584, 18944}}) {
    std::vector<uint16_t> w = random_bf16(in * out, in + out, 0.05f);
    std::vector<float> x = uniform_floats(in, 1), y(static_cast<size_t>(out));
    WeightRef r{w.data(), WType::kBF16, out, in};
    const double ms = cpu_median_ms([&] { linear(x.data(), 1, r, nullptr, y.data(), Impl::kFast); });
    rows.push_back(make_row("linear", fmt("gemv bf16 %" PRId64 "->%" PRId64, in, out), "cpu", thr, ms,
                            2.0 * in * out, peak, kCpuCacheBytes));
  }
  {  // GEMM: SigLIP fc1 of one tile
    const int64_t n = 1024, in = 1152, out = 4304;
    std::vector<uint16_t> w = random_bf16(in * out, 9, 0.05f);
    std::vector<float> x = uniform_floats(n * in, 2), y(static_cast<size_t>(n * out));
    WeightRef r{w.data(), WType::kBF16, out, in};
    const double ms = cpu_median_ms([&] { linear(x.data(), n, r, nullptr, y.data(), Impl::kFast); });
    const double gflops = 2.0 * n * in * out / (ms * 1e-3) / 1e9;
    rows.push_back(make_row("linear", fmt("gemm 1024x1152->4304 bf16 %.0f GFLOP/s", gflops), "cpu", thr,
                            ms, 2.0 * in * out + 4.0 * n * (in + out), peak, kCpuCacheBytes));
  }
  {  // attention prefill, SigLIP shape: 1024 tokens, 16 heads, d 72
    const int64_t T = 1024, h = 16, d = 72;
    std::vector<float> q = uniform_floats(T * h * d, 1), k = uniform_floats(T * h * d, 2), v = uniform_floats(T * h * d, 3),
                       o(q.size());
    const double ms = cpu_median_ms([&] {
      attention(q.data(), k.data(), v.data(), T, T, h, h, d, 0.1178511f, false, 0, o.data(), Impl::kFast);
    });
    const double gflops = 4.0 * T * T * h * d / (ms * 1e-3) / 1e9;
    rows.push_back(make_row("attention", fmt("siglip 1024tok 16x72 %.0f GFLOP/s", gflops), "cpu", thr,
                            ms, 4.0 * 4 * T * h * d, peak, kCpuCacheBytes));
  }
  {  // one decode step of a Qwen2-0.5B-shaped model (random bf16 weights, tied embeddings)
    ModelSpec s;
    s.has_llm = true;
    s.llm.hidden = 896;
    s.llm.layers = 24;
    s.llm.heads = 14;
    s.llm.kv_heads = 2;
    s.llm.head_dim = 64;
    s.llm.intermediate = 4864;
    s.llm.vocab = 151936;
    s.llm.tie_word_embeddings = true;
    s.max_context = 1024;
    std::fprintf(stderr, "building a random Qwen2-0.5B-shaped model (bf16)...\n");
    std::vector<std::vector<uint16_t>> store;
    WeightMap w;
    int64_t per_token_bytes = 0;
    auto add = [&](const std::string& k, std::vector<int64_t> shape, float scale, bool big) {
      int64_t n = 1;
      for (int64_t dd : shape) n *= dd;
      store.push_back(random_bf16(n, store.size() + 1, scale));
      w[k] = WeightTensor{store.back().data(), WType::kBF16, shape};
      if (big) per_token_bytes += 2 * n;
    };
    add(weight_of(wn::llm_key(WL::kEmbedTokens)), {151936, 896}, 0.05f, true);  // read once as lm_head
    for (int i = 0; i < 24; ++i) {
      auto p = [i](const char* module) { return wn::llm_layer_key(i, module); };
      add(weight_of(p(WL::kInputNorm)), {896}, 1, false);
      add(weight_of(p(WL::kPostAttentionNorm)), {896}, 1, false);
      add(weight_of(p(WL::kQ)), {896, 896}, 0.03f, true);
      add(bias_of(p(WL::kQ)), {896}, 0.1f, false);
      add(weight_of(p(WL::kK)), {128, 896}, 0.03f, true);
      add(bias_of(p(WL::kK)), {128}, 0.1f, false);
      add(weight_of(p(WL::kV)), {128, 896}, 0.03f, true);
      add(bias_of(p(WL::kV)), {128}, 0.1f, false);
      add(weight_of(p(WL::kO)), {896, 896}, 0.03f, true);
      add(weight_of(p(WL::kGate)), {4864, 896}, 0.03f, true);
      add(weight_of(p(WL::kUp)), {4864, 896}, 0.03f, true);
      add(weight_of(p(WL::kDown)), {896, 4864}, 0.015f, true);
    }
    add(weight_of(wn::llm_key(WL::kNorm)), {896}, 1, false);
    std::unique_ptr<Engine> e = make_cpu_engine(s, w);
    std::vector<float> emb(64 * 896);
    std::vector<int32_t> ids(64);
    for (int i = 0; i < 64; ++i) ids[i] = i * 997 % 151936;
    e->embed_tokens(ids.data(), 64, emb.data());
    e->prefill(emb.data(), 64);
    int32_t tok = 1;
    const double ms = cpu_median_ms([&] {
      if (e->cached() >= s.max_context) {
        e->reset();
        e->prefill(emb.data(), 64);
      }
      e->decode(tok);
      tok = sample_token(e->last_logits(), 151936, Sampling{}, nullptr);
    });
    rows.push_back(make_row("engine_decode", fmt("qwen2-0.5b bf16 ctx~64+ %.1f tok/s", 1000.0 / ms), "cpu",
                            thr, ms, static_cast<double>(per_token_bytes), peak, kCpuCacheBytes));
  }
}

void run_bench(const std::string& device, std::vector<BenchRow>& rows) {
  if (device == "cpu" || device == "all") bench_cpu(rows);
}

}  // namespace

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
