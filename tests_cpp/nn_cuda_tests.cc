// The CUDA half of the native inference engine, checked and timed on one GPU run
// (bench/gpu.sh runs every sr3d_*_tests executable):
//
//   sr3d_nn_cuda_tests [--filter SUBSTR]   every nn op's Impl::kCuda against Impl::kReference
//                                          at awkward sizes, then the CUDA engine against the
//                                          CPU engine on a tiny random model (vision, projector,
//                                          MLP module, Qwen2 prefill past one 512-position
//                                          chunk, decode, the typed errors); the bf16
//                                          tensor-core GEMM (linear_tc: set_tc_gemm on) against
//                                          float64 at bf16 bounds, SigLIP and 8B-prefill sizes
//   sr3d_nn_cuda_tests --bench [--device cuda|all]
//                                          GEMV bf16 896->4864 and 3584->18944, GEMM
//                                          1024x1152->4304, 512 and 1600 x 3584->18944 with
//                                          the SIMT and the tensor-core kernel, attention (SigLIP tile, decode at
//                                          4k), and a 0.5B-class Qwen2 decode step (random
//                                          bf16; launch by launch and replayed as a CUDA graph,
//                                          at ~83 and ~470 positions) in tokens/s and % of the
//                                          d2d copy bandwidth
//
// Without a usable device the cases print "skipped" and pass (the CPU side has its own
// tests in nn_tests.cc). Tolerances: relative to the largest |reference| value of the
// output: 1e-4 for one op (float32 accumulation in another order; FMAs on the GPU),
// 2e-3 for whole-engine outputs (two-layer stacks of those differences, bf16 weights);
// the layout ops (space_to_channel3) are bit-exact.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "activation.h"
#include "attention.h"
#include "engine.h"
#include "harness.h"
#include "linear.h"
#include "norms.h"
#include "projector.h"
#include "rope.h"
#include "weight_names.h"
#ifdef SR3D_WITH_CUDA
#include "cuda/nn.cuh"
#endif

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

std::vector<float> randn(Rng& r, int64_t n, double lo = -1, double hi = 1) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(r.uniform(lo, hi));
  return v;
}

// Weights of dtype t (values drawn in float, stored rounded).
struct HostWeight {
  WType type = WType::kF32;
  int64_t rows = 0, cols = 0;
  std::vector<float> f32;
  std::vector<uint16_t> u16;
  const void* data() const {
    return type == WType::kF32 ? static_cast<const void*>(f32.data())
                               : static_cast<const void*>(u16.data());
  }
  WeightRef ref() const {
    WeightRef w;
    w.data = data();
    w.type = type;
    w.rows = rows;
    w.cols = cols;
    return w;
  }
};

uint16_t float_to_f16(float f) {  // round to nearest even, normal range only (tests use |x| < 8)
  uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const int32_t exp = static_cast<int32_t>((u >> 23) & 0xff) - 127 + 15;
  uint32_t man = u & 0x7fffffu;
  if (exp <= 0) return static_cast<uint16_t>(sign);  // flush tiny values (never drawn)
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (man >> 13);
  const uint32_t rest = man & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(h);
}

HostWeight make_weight(Rng& r, WType t, int64_t rows, int64_t cols, double amp = 1) {
  HostWeight w;
  w.type = t;
  w.rows = rows;
  w.cols = cols;
  std::vector<float> v = randn(r, rows * cols, -amp, amp);
  if (t == WType::kF32) {
    w.f32 = v;
  } else {
    w.u16.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      w.u16[i] = t == WType::kBF16 ? float_to_bf16(v[i]) : float_to_f16(v[i]);
  }
  return w;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

// got vs want with atol = rel * max(1e-3, max |want|).
void check_rel(const std::string& ctx, const std::vector<float>& got, const std::vector<float>& want,
               const std::vector<int64_t>& shape, double rel) {
  check_floats(ctx, got, want, shape, rel * std::max(1e-3, max_abs(want)));
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

std::string wt(WType t) { return wtype_name(t); }

// ---- op cases ------------------------------------------------------------------------------

void test_linear() {
  struct C { int64_t n, k, rows; WType t; bool bias; };
  const C cases[] = {{1, 896, 37, WType::kBF16, true},  {1, 101, 13, WType::kF32, false},
                     {3, 264, 50, WType::kF16, true},   {4, 8, 3, WType::kBF16, false},
                     {5, 99, 130, WType::kBF16, true},  {130, 256, 129, WType::kF32, true},
                     {257, 72, 300, WType::kF16, false}, {200, 1, 1, WType::kBF16, true}};
  for (const C& c : cases) {
    const std::string name = "linear/n=" + std::to_string(c.n) + ",k=" + std::to_string(c.k) +
                             ",rows=" + std::to_string(c.rows) + "," + wt(c.t) +
                             (c.bias ? ",bias" : "");
    if (!begin_case(name) || skip_without_cuda()) continue;
    Rng r(c.n * 7919 + c.k * 31 + c.rows);
    HostWeight w = make_weight(r, c.t, c.rows, c.k);
    std::vector<float> x = randn(r, c.n * c.k), b = randn(r, c.rows);
    std::vector<float> want(c.n * c.rows), got(c.n * c.rows, kNaN);
    linear(x.data(), c.n, w.ref(), c.bias ? b.data() : nullptr, want.data(), Impl::kReference);
    linear(x.data(), c.n, w.ref(), c.bias ? b.data() : nullptr, got.data(), Impl::kCuda);
    check_rel(name, got, want, {c.n, c.rows}, 1e-4);
  }
}

#ifdef SR3D_WITH_CUDA
// Restores the tensor-core switch on scope exit (set_tc_gemm is process-wide).
struct TcSwitch {
  int prev;
  explicit TcSwitch(int mode) : prev(cuda::set_tc_gemm(mode)) {}
  ~TcSwitch() { cuda::set_tc_gemm(prev); }
};
#endif

// The switch of the bf16 tensor-core GEMM (no GPU needed): the test hook, and SR3D_CUDA_TC as
// this process sees it (CMakeLists.txt reruns this case with SR3D_CUDA_TC=yes: a typed error
// naming the variable).
void test_linear_tc_switch() {
#ifdef SR3D_WITH_CUDA
  if (begin_case("linear_tc_switch/hook")) {
    TcSwitch restore(1);
    const bool on = cuda::tc_gemm_enabled();
    cuda::set_tc_gemm(0);
    const bool off = cuda::tc_gemm_enabled();
    record(on && !off, "linear_tc_switch/hook", fmt("set_tc_gemm(1) -> %d, set_tc_gemm(0) -> %d", on, off), nullptr);
  }
  const char* env = std::getenv("SR3D_CUDA_TC");
  const std::string v = env ? env : "";
  if (v.empty() || v == "0" || v == "1") {
    if (begin_case("linear_tc_switch/env='" + v + "'")) {
      TcSwitch restore(-1);
      const bool on = cuda::tc_gemm_enabled();
      record(on == (v == "1"), "linear_tc_switch/env", fmt("tc_gemm_enabled() = %d", on), nullptr);
    }
  } else {
    expect_error("linear_tc_switch/env='" + v + "' is an invalid argument", ErrorKind::kInvalidArgument, [] {
      TcSwitch restore(-1);
      (void)cuda::tc_gemm_enabled();
    });
  }
#endif
}

// The bf16 tensor-core GEMM (gemm_tc.cu, switched on through set_tc_gemm) against a float64
// reference of the float32 inputs, on every output row of the small shapes and on sampled
// rows of the SigLIP MLP (1024 x 1152 -> 4304) and 8B-prefill (1600 x 3584 -> 18944) ones:
// ||got - ref|| / ||ref|| <= 1e-2 and, per element, the bf16 bound |got - ref| <=
// L ((2^-7 + K 2^-23) sum_k |x w| + 2^-20 |b|) + 2^-20 |residual| + 1e-6 (x and W rounded to
// bf16: 2^-8 each; float32 accumulation; L = 1.2 bounds the activations' slope). The big
// shapes are also compared with the float32 SIMT GEMM on every element (relative norm).
void test_linear_tc() {
#ifdef SR3D_WITH_CUDA
  struct C { int64_t m, n, k; WType t; bool bias; int act; int residual; };  // residual 2: aliases y
  const C cases[] = {{5, 7, 8, WType::kBF16, true, cuda::kNoAct, 1},
                     {17, 129, 24, WType::kF32, true, static_cast<int>(Act::kGeluTanh), 1},
                     {130, 7, 1152, WType::kF16, false, static_cast<int>(Act::kSilu), 2},
                     {130, 129, 24, WType::kBF16, true, static_cast<int>(Act::kGeluErf), 2},
                     {17, 129, 1152, WType::kBF16, true, cuda::kNoAct, 0},
                     {5, 129, 1152, WType::kF16, true, static_cast<int>(Act::kGeluTanh), 1},
                     {1024, 4304, 1152, WType::kBF16, true, static_cast<int>(Act::kGeluTanh), 0},
                     {1600, 18944, 3584, WType::kBF16, false, cuda::kNoAct, 0}};
  for (const C& c : cases) {
    const std::string name = fmt("linear_tc/m=%lld,n=%lld,k=%lld,", static_cast<long long>(c.m),
                                 static_cast<long long>(c.n), static_cast<long long>(c.k)) +
                             wt(c.t) + (c.bias ? ",bias" : "") + fmt(",act=%d", c.act) +
                             (c.residual == 1 ? ",residual" : c.residual == 2 ? ",residual=y" : "");
    if (!begin_case(name) || skip_without_cuda()) continue;
    if (!cuda::tc_gemm_supported()) {
      std::printf("  skipped: the tensor-core GEMM needs an sm_80+ GPU and sm_80+ code in this build\n");
      continue;
    }
    Rng r(c.m * 7919 + c.n * 31 + c.k);
    HostWeight w = make_weight(r, c.t, c.n, c.k);
    std::vector<float> x = randn(r, c.m * c.k), b = randn(r, c.n), res = randn(r, c.m * c.n);
    cuda::DeviceBuffer<uint8_t> dw = to_device(std::vector<uint8_t>(
        static_cast<const uint8_t*>(w.data()),
        static_cast<const uint8_t*>(w.data()) + c.n * c.k * wtype_size(c.t)));
    WeightRef wr = w.ref();
    wr.data = dw.get();
    cuda::DeviceBuffer<float> dx = to_device(x), db = to_device(b), dres = to_device(res);
    cuda::DeviceBuffer<float> dy = to_device(c.residual == 2 ? res : std::vector<float>(c.m * c.n, kNaN));
    const float* rp = c.residual == 1 ? dres.get() : c.residual == 2 ? dy.get() : nullptr;
    bool launched = false;
    {
      TcSwitch on(1);
      launched = cuda::linear_tc_dev(dx.get(), c.m, wr, c.bias ? db.get() : nullptr, dy.get(), nullptr, c.act, rp);
    }
    std::vector<float> got(c.m * c.n);
    SR3D_CUDA_CHECK(cudaMemcpy(got.data(), dy.get(), got.size() * sizeof(float), cudaMemcpyDeviceToHost));
    record(launched, name + " (launched)", "linear_tc_dev declined on an sm_80+ device with K % 8 == 0", nullptr);
    // Rows checked against float64: all, or 8 spread over M for the big shapes.
    std::vector<int64_t> rows;
    const bool big = c.m * c.n * c.k > (int64_t{1} << 28);
    if (big) {
      for (int64_t i : {int64_t{0}, int64_t{1}, c.m / 3, c.m / 2, c.m - 129, c.m - 2, c.m - 1}) rows.push_back(i);
      rows.push_back(r.integer(0, c.m - 1));
    } else {
      for (int64_t i = 0; i < c.m; ++i) rows.push_back(i);
    }
    const double lip = c.act == cuda::kNoAct ? 1.0 : 1.2;
    double err2 = 0, ref2 = 0, worst = 0;
    std::string worst_at;
    std::vector<double> wf(c.k);
    for (int64_t o = 0; o < c.n; ++o) {
      for (int64_t k = 0; k < c.k; ++k) wf[k] = load_weight(w.data(), c.t, o * c.k + k);
      for (int64_t m : rows) {
        double s = 0, mag = 0;
        for (int64_t k = 0; k < c.k; ++k) {
          const double p = static_cast<double>(x[m * c.k + k]) * wf[k];
          s += p;
          mag += std::fabs(p);
        }
        if (c.bias) s += b[o];
        double ref = s;
        if (c.act == static_cast<int>(Act::kGeluTanh)) ref = 0.5 * s * (1 + std::tanh(0.7978845608028654 * (s + 0.044715 * s * s * s)));
        if (c.act == static_cast<int>(Act::kGeluErf)) ref = 0.5 * s * (1 + std::erf(s * 0.7071067811865476));
        if (c.act == static_cast<int>(Act::kSilu)) ref = s / (1 + std::exp(-s));
        const double rv = c.residual ? res[m * c.n + o] : 0.0;
        ref += rv;
        const double g = got[m * c.n + o];
        const double bound = lip * ((std::ldexp(1.0, -7) + c.k * std::ldexp(1.0, -23)) * mag +
                                    std::ldexp(std::fabs(c.bias ? b[o] : 0.f), -20)) +
                             std::ldexp(std::fabs(rv), -20) + 1e-6;
        const double e = std::fabs(g - ref) / bound;
        if (!(e <= worst)) {
          worst = e;
          worst_at = fmt("[%lld][%lld] got %.9g want %.9g bound %.3g", static_cast<long long>(m),
                         static_cast<long long>(o), g, ref, bound);
        }
        err2 += (g - ref) * (g - ref);
        ref2 += ref * ref;
      }
    }
    const double rel = std::sqrt(err2 / std::max(ref2, 1e-300));
    std::printf("  relative error %.3g, worst element at %.3g of its bf16 bound\n", rel, worst);
    record(rel <= 1e-2, name + " (relative error)", fmt("||got - ref|| / ||ref|| = %.3g > 1e-2", rel), nullptr);
    record(worst <= 1, name + " (bf16 bound)", "element " + worst_at, nullptr);
    if (big) {  // every element against the float32 SIMT GEMM
      cuda::DeviceBuffer<float> dy2 = to_device(std::vector<float>(c.m * c.n, kNaN));
      {
        TcSwitch off(0);
        cuda::linear_dev(dx.get(), c.m, wr, c.bias ? db.get() : nullptr, dy2.get(), nullptr, c.act, rp);
      }
      std::vector<float> simt(c.m * c.n);
      SR3D_CUDA_CHECK(cudaMemcpy(simt.data(), dy2.get(), simt.size() * sizeof(float), cudaMemcpyDeviceToHost));
      double d2 = 0, s2 = 0;
      for (size_t i = 0; i < simt.size(); ++i) {
        d2 += (static_cast<double>(got[i]) - simt[i]) * (static_cast<double>(got[i]) - simt[i]);
        s2 += static_cast<double>(simt[i]) * simt[i];
      }
      const double rel2 = std::sqrt(d2 / std::max(s2, 1e-300));
      std::printf("  vs the SIMT GEMM: relative error %.3g\n", rel2);
      record(rel2 <= 1e-2, name + " (vs SIMT)", fmt("||tc - simt|| / ||simt|| = %.3g > 1e-2 (or NaN)", rel2), nullptr);
    }
  }
  // Through linear_dev (the dispatch in linear.cu): switched on, it equals linear_tc_dev bit for bit.
  if (begin_case("linear_tc/dispatch") && !skip_without_cuda() && cuda::tc_gemm_supported()) {
    Rng r(99);
    HostWeight w = make_weight(r, WType::kBF16, 72, 40);
    std::vector<float> x = randn(r, 33 * 40);
    cuda::DeviceBuffer<uint8_t> dw = to_device(std::vector<uint8_t>(
        static_cast<const uint8_t*>(w.data()), static_cast<const uint8_t*>(w.data()) + 72 * 40 * 2));
    WeightRef wr = w.ref();
    wr.data = dw.get();
    cuda::DeviceBuffer<float> dx = to_device(x), d1(33 * 72), d2(33 * 72);
    TcSwitch on(1);
    cuda::linear_dev(dx.get(), 33, wr, nullptr, d1.get(), nullptr);
    (void)cuda::linear_tc_dev(dx.get(), 33, wr, nullptr, d2.get(), nullptr);
    std::vector<float> a(33 * 72), bb(33 * 72);
    SR3D_CUDA_CHECK(cudaMemcpy(a.data(), d1.get(), a.size() * 4, cudaMemcpyDeviceToHost));
    SR3D_CUDA_CHECK(cudaMemcpy(bb.data(), d2.get(), bb.size() * 4, cudaMemcpyDeviceToHost));
    check_floats("linear_tc/dispatch", a, bb, {33, 72}, 0);
  }
#endif
}

void test_norms() {
  struct C { int64_t n, d; };
  for (const C& c : {C{3, 1152}, C{2, 10368}, C{5, 7}, C{1, 1}}) {
    const std::string sz = "n=" + std::to_string(c.n) + ",d=" + std::to_string(c.d);
    Rng r(c.n * 131 + c.d);
    std::vector<float> x = randn(r, c.n * c.d, -3, 5), g = randn(r, c.d), b = randn(r, c.d);
    if (begin_case("layer_norm/" + sz) && !skip_without_cuda()) {
      std::vector<float> want(x.size()), got(x.size(), kNaN);
      layer_norm(x.data(), c.n, c.d, g.data(), b.data(), 1e-6f, want.data(), Impl::kReference);
      layer_norm(x.data(), c.n, c.d, g.data(), b.data(), 1e-6f, got.data(), Impl::kCuda);
      check_rel("layer_norm/" + sz, got, want, {c.n, c.d}, 1e-4);
    }
    if (begin_case("rms_norm/" + sz) && !skip_without_cuda()) {
      std::vector<float> want(x.size()), got(x.size(), kNaN);
      rms_norm(x.data(), c.n, c.d, g.data(), 1e-6f, want.data(), Impl::kReference);
      rms_norm(x.data(), c.n, c.d, g.data(), 1e-6f, got.data(), Impl::kCuda);
      check_rel("rms_norm/" + sz, got, want, {c.n, c.d}, 1e-4);
    }
  }
}

void test_elementwise() {
  for (Act a : {Act::kGeluTanh, Act::kGeluErf, Act::kSilu}) {
    const std::string name = "activation/act=" + std::to_string(static_cast<int>(a)) + ",n=1001";
    if (!begin_case(name) || skip_without_cuda()) continue;
    Rng r(17 + static_cast<int>(a));
    std::vector<float> want = randn(r, 1001, -9, 9), got = want;
    activation(want.data(), 1001, a, Impl::kReference);
    activation(got.data(), 1001, a, Impl::kCuda);
    check_rel(name, got, want, {1001}, 1e-5);
  }
  if (begin_case("silu_mul/n=777") && !skip_without_cuda()) {
    Rng r(5);
    std::vector<float> g = randn(r, 777, -9, 9), u = randn(r, 777), want(777), got(777, kNaN);
    silu_mul(g.data(), u.data(), 777, want.data(), Impl::kReference);
    silu_mul(g.data(), u.data(), 777, got.data(), Impl::kCuda);
    check_rel("silu_mul/n=777", got, want, {777}, 1e-5);
  }
  for (int64_t d : {2, 64, 128}) {
    const std::string name = "rope/n_tok=5,heads=3,d=" + std::to_string(d);
    if (!begin_case(name) || skip_without_cuda()) continue;
    Rng r(d);
    std::vector<float> want = randn(r, 5 * 3 * d), got = want;
    const std::vector<int32_t> pos = {0, 1, 17, 511, 4095};
    rope(want.data(), 5, 3, d, pos.data(), 1e6, Impl::kReference);
    rope(got.data(), 5, 3, d, pos.data(), 1e6, Impl::kCuda);
    check_rel(name, got, want, {5, 3, d}, 1e-5);
  }
  struct S { int64_t n, g, c; };
  for (const S& c : {S{2, 7, 5}, S{1, 9, 3}, S{3, 32, 4}, S{1, 1, 2}}) {
    const std::string name = "space_to_channel3/n=" + std::to_string(c.n) + ",g=" +
                             std::to_string(c.g) + ",c=" + std::to_string(c.c);
    if (!begin_case(name) || skip_without_cuda()) continue;
    Rng r(c.g * 3 + c.c);
    const int64_t G = (c.g + 2) / 3, out = c.n * G * G * 9 * c.c;
    std::vector<float> x = randn(r, c.n * c.g * c.g * c.c), want(out), got(out, kNaN);
    space_to_channel3(x.data(), c.n, c.g, c.c, want.data(), Impl::kReference);
    space_to_channel3(x.data(), c.n, c.g, c.c, got.data(), Impl::kCuda);
    check_floats(name, got, want, {c.n, G * G, 9 * c.c}, 0);
  }
  for (WType t : {WType::kBF16, WType::kF32}) {
    const std::string name = "patch_embed/n=2,size=28,patch=14,hidden=20," + wt(t);
    if (!begin_case(name) || skip_without_cuda()) continue;
    Rng r(99);
    HostWeight w = make_weight(r, t, 20, 3 * 14 * 14, 0.1);
    std::vector<float> img = randn(r, 2 * 3 * 28 * 28), b = randn(r, 20);
    std::vector<float> want(2 * 4 * 20), got(2 * 4 * 20, kNaN);
    patch_embed(img.data(), 2, 28, 14, w.ref(), b.data(), want.data(), Impl::kReference);
    patch_embed(img.data(), 2, 28, 14, w.ref(), b.data(), got.data(), Impl::kCuda);
    check_rel(name, got, want, {2, 4, 20}, 1e-4);
  }
}

void test_attention() {
  struct C { int64_t nq, nk, hq, hkv, d; bool causal; int64_t off; };
  const C cases[] = {{1, 1, 1, 1, 8, false, 0},       {17, 17, 4, 2, 72, false, 0},
                     {33, 100, 4, 1, 64, true, 67},    {1, 3000, 14, 2, 64, true, 2999},
                     {20, 45, 2, 2, 200, true, 25},    {5, 700, 3, 3, 128, false, 0},
                     {40, 40, 2, 1, 30, true, 0},      {2, 1500, 1, 1, 256, true, 1498}};
  for (const C& c : cases) {
    const std::string name = "attention/nq=" + std::to_string(c.nq) + ",nk=" + std::to_string(c.nk) +
                             ",hq=" + std::to_string(c.hq) + ",hkv=" + std::to_string(c.hkv) +
                             ",d=" + std::to_string(c.d) + (c.causal ? ",causal,off=" + std::to_string(c.off) : "");
    if (!begin_case(name) || skip_without_cuda()) continue;
    Rng r(c.nq * 13 + c.nk * 7 + c.d);
    std::vector<float> q = randn(r, c.nq * c.hq * c.d, -2, 2), k = randn(r, c.nk * c.hkv * c.d, -2, 2),
                       v = randn(r, c.nk * c.hkv * c.d);
    std::vector<float> want(c.nq * c.hq * c.d), got(want.size(), kNaN);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.d));
    attention(q.data(), k.data(), v.data(), c.nq, c.nk, c.hq, c.hkv, c.d, scale, c.causal, c.off,
              want.data(), Impl::kReference);
    attention(q.data(), k.data(), v.data(), c.nq, c.nk, c.hq, c.hkv, c.d, scale, c.causal, c.off,
              got.data(), Impl::kCuda);
    check_rel(name, got, want, {c.nq, c.hq, c.d}, 1e-4);
  }
}

// The tensor-core attention (attention_tc.cu, switched on through set_tc_gemm) against a
// float64 reference of the float32 inputs: every query row of the small cases, 8 rows x every
// head of the SigLIP (1024 x 1024, 16 heads, d 72) and 8B-prefill (1600 causal, 28:4, d 128)
// ones. Per element |got - ref| <= ((e^(2D) - 1) + 2^-7 + 2^-8) max_j |v_j| + 1e-5 with
// D = 2^-7 scale max_j sum_c |q_c k_jc| (the score error of bf16 q and k; P and v rounded to
// bf16), and ||got - ref|| / ||ref|| <= 1e-2.
void test_attention_tc() {
#ifdef SR3D_WITH_CUDA
  struct C { int64_t nq, nk, hq, hkv, d; bool causal; int64_t off; };
  const C cases[] = {{70, 70, 2, 1, 72, false, 0},     {67, 130, 4, 2, 128, true, 63},
                     {130, 130, 2, 2, 128, true, 0},   {17, 5, 1, 1, 64, false, 0},
                     {1024, 1024, 16, 16, 72, false, 0}, {1600, 1600, 28, 4, 128, true, 0}};
  for (const C& c : cases) {
    const std::string name = "attention_tc/nq=" + std::to_string(c.nq) + ",nk=" + std::to_string(c.nk) +
                             ",hq=" + std::to_string(c.hq) + ",hkv=" + std::to_string(c.hkv) +
                             ",d=" + std::to_string(c.d) + (c.causal ? ",causal,off=" + std::to_string(c.off) : "");
    if (!begin_case(name) || skip_without_cuda()) continue;
    if (!cuda::tc_gemm_supported()) {
      std::printf("  skipped: the tensor-core kernels need an sm_80+ GPU and sm_80+ code in this build\n");
      continue;
    }
    Rng r(c.nq * 13 + c.nk * 7 + c.d);
    std::vector<float> q = randn(r, c.nq * c.hq * c.d), k = randn(r, c.nk * c.hkv * c.d),
                       v = randn(r, c.nk * c.hkv * c.d);
    cuda::DeviceBuffer<float> dq = to_device(q), dk = to_device(k), dv = to_device(v);
    cuda::DeviceBuffer<float> dout = to_device(std::vector<float>(c.nq * c.hq * c.d, kNaN));
    cuda::AttentionArgs a;
    a.q = dq.get();
    a.k = dk.get();
    a.v = dv.get();
    a.out = dout.get();
    a.q_stride = a.out_stride = c.hq * c.d;
    a.kv_stride = c.hkv * c.d;
    a.nq = c.nq;
    a.nk = c.nk;
    a.hq = c.hq;
    a.hkv = c.hkv;
    a.d = c.d;
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
    a.causal = c.causal;
    a.q_offset = c.off;
    bool launched = false;
    {
      TcSwitch on(1);
      launched = cuda::attention_tc_dev(a, nullptr);
    }
    std::vector<float> got(c.nq * c.hq * c.d);
    SR3D_CUDA_CHECK(cudaMemcpy(got.data(), dout.get(), got.size() * sizeof(float), cudaMemcpyDeviceToHost));
    record(launched, name + " (launched)", "attention_tc_dev declined on an sm_80+ device", nullptr);
    std::vector<int64_t> rows;
    if (c.nq > 256) {
      for (int64_t i : {int64_t{0}, int64_t{1}, c.nq / 3, c.nq / 2, c.nq - 65, c.nq - 2, c.nq - 1}) rows.push_back(i);
      rows.push_back(r.integer(0, c.nq - 1));
    } else {
      for (int64_t i = 0; i < c.nq; ++i) rows.push_back(i);
    }
    double err2 = 0, ref2 = 0, worst = 0;
    std::string worst_at;
    for (int64_t i : rows)
      for (int64_t h = 0; h < c.hq; ++h) {
        const int64_t kvh = h / (c.hq / c.hkv), kend = c.causal ? std::min(c.nk, c.off + i + 1) : c.nk;
        std::vector<double> sc(kend);
        double mx = -1e300, dmax = 0;
        for (int64_t j = 0; j < kend; ++j) {
          double dot = 0, mag = 0;
          for (int64_t e = 0; e < c.d; ++e) {
            const double p = static_cast<double>(q[(i * c.hq + h) * c.d + e]) * k[(j * c.hkv + kvh) * c.d + e];
            dot += p;
            mag += std::fabs(p);
          }
          sc[j] = dot * a.scale;
          mx = std::max(mx, sc[j]);
          dmax = std::max(dmax, std::ldexp(mag * a.scale, -7));
        }
        double den = 0;
        for (int64_t j = 0; j < kend; ++j) den += (sc[j] = std::exp(sc[j] - mx));
        for (int64_t e = 0; e < c.d; ++e) {
          double num = 0, vmax = 0;
          for (int64_t j = 0; j < kend; ++j) {
            const double vv = v[(j * c.hkv + kvh) * c.d + e];
            num += sc[j] * vv;
            vmax = std::max(vmax, std::fabs(vv));
          }
          const double ref = num / den, g = got[(i * c.hq + h) * c.d + e];
          const double bound = (std::expm1(2 * dmax) + std::ldexp(1.0, -7) + std::ldexp(1.0, -8)) * vmax + 1e-5;
          const double ratio = std::fabs(g - ref) / bound;
          if (!(ratio <= worst)) {
            worst = ratio;
            worst_at = fmt("[q %lld][h %lld][%lld] got %.9g want %.9g bound %.3g", static_cast<long long>(i),
                           static_cast<long long>(h), static_cast<long long>(e), g, ref, bound);
          }
          err2 += (g - ref) * (g - ref);
          ref2 += ref * ref;
        }
      }
    const double rel = std::sqrt(err2 / std::max(ref2, 1e-300));
    std::printf("  relative error %.3g, worst element at %.3g of its bound\n", rel, worst);
    record(rel <= 1e-2, name + " (relative error)", fmt("||got - ref|| / ||ref|| = %.3g > 1e-2", rel), nullptr);
    record(worst <= 1, name + " (bf16 bound)", "element " + worst_at, nullptr);
  }
#endif
}

// ---- engine: CUDA vs CPU on a tiny random model --------------------------------------------

struct TinyModel {
  ModelSpec spec;
  std::vector<std::unique_ptr<HostWeight>> store;
  WeightMap map;
  Rng rng{2024};

  void add(const std::string& key, std::vector<int64_t> shape, WType t, double amp) {
    int64_t rows = shape[0], cols = 1;
    for (size_t i = 1; i < shape.size(); ++i) cols *= shape[i];
    store.emplace_back(new HostWeight(make_weight(rng, t, rows, cols, amp)));
    WeightTensor w;
    w.data = store.back()->data();
    w.type = t;
    w.shape = std::move(shape);
    map[key] = w;
  }
  // Norm weights near 1, biases and matrices small (stable activations through the layers).
  void norm(const std::string& key, int64_t d) {
    add(key, {d}, WType::kF32, 0.2);
    for (float& x : store.back()->f32) x += 1.0f;
  }

  TinyModel() {
    const WType t = WType::kBF16;
    VisionSpec& v = spec.vision;
    v.hidden = 48; v.heads = 4; v.intermediate = 80; v.layers_run = 2;
    v.image_size = 42; v.patch_size = 14; v.eps = 1e-6f; v.act = Act::kGeluTanh;
    spec.has_vision = spec.has_projector = spec.has_llm = true;
    add(weight_of(wn::vision_key(WV::kPatchEmbedding)), {48, 3, 14, 14}, t, 0.05);
    add(bias_of(wn::vision_key(WV::kPatchEmbedding)), {48}, WType::kF32, 0.1);
    add(weight_of(wn::vision_key(WV::kPositionEmbedding)), {9, 48}, WType::kBF16, 0.5);
    for (int i = 0; i < 2; ++i) {
      auto p = [i](const char* module) { return wn::vision_layer_key(i, module); };
      for (const char* n : {WV::kLayerNorm1, WV::kLayerNorm2}) {
        norm(weight_of(p(n)), 48);
        add(bias_of(p(n)), {48}, WType::kF32, 0.1);
      }
      for (const char* n : {WV::kQ, WV::kK, WV::kV, WV::kOut}) {
        add(weight_of(p(n)), {48, 48}, t, 0.15);
        add(bias_of(p(n)), {48}, WType::kF32, 0.1);
      }
      add(weight_of(p(WV::kFc1)), {80, 48}, t, 0.15);
      add(bias_of(p(WV::kFc1)), {80}, WType::kF32, 0.1);
      add(weight_of(p(WV::kFc2)), {48, 80}, t, 0.15);
      add(bias_of(p(WV::kFc2)), {48}, WType::kF32, 0.1);
    }
    auto P = [](const char* module) { return wn::projector_key(module); };
    norm(weight_of(P(WP::kLayerNorm1)), 432);
    add(bias_of(P(WP::kLayerNorm1)), {432}, WType::kF32, 0.1);
    add(weight_of(P(WP::kFc1)), {64, 432}, t, 0.05);
    add(bias_of(P(WP::kFc1)), {64}, WType::kF32, 0.1);
    norm(weight_of(P(WP::kLayerNorm2)), 64);
    add(bias_of(P(WP::kLayerNorm2)), {64}, WType::kF32, 0.1);
    add(weight_of(P(WP::kFc2)), {40, 64}, t, 0.15);
    add(bias_of(P(WP::kFc2)), {40}, WType::kF32, 0.1);
    add(weight_of(P(WP::kFc3)), {40, 40}, t, 0.15);
    add(bias_of(P(WP::kFc3)), {40}, WType::kF32, 0.1);

    LlmSpec& l = spec.llm;
    l.hidden = 40; l.layers = 2; l.heads = 4; l.kv_heads = 2; l.head_dim = 10;
    l.intermediate = 72; l.vocab = 301; l.eps = 1e-6f; l.rope_theta = 1e6;
    l.tie_word_embeddings = false;
    spec.max_context = 540;
    add(weight_of(wn::llm_key(WL::kEmbedTokens)), {301, 40}, t, 1.0);
    for (int i = 0; i < 2; ++i) {
      auto p = [i](const char* module) { return wn::llm_layer_key(i, module); };
      norm(weight_of(p(WL::kInputNorm)), 40);
      norm(weight_of(p(WL::kPostAttentionNorm)), 40);
      add(weight_of(p(WL::kQ)), {40, 40}, t, 0.2);
      add(bias_of(p(WL::kQ)), {40}, WType::kBF16, 0.2);
      add(weight_of(p(WL::kK)), {20, 40}, t, 0.2);
      add(bias_of(p(WL::kK)), {20}, WType::kBF16, 0.2);
      add(weight_of(p(WL::kV)), {20, 40}, t, 0.2);
      add(bias_of(p(WL::kV)), {20}, WType::kBF16, 0.2);
      add(weight_of(p(WL::kO)), {40, 40}, t, 0.15);
      add(weight_of(p(WL::kGate)), {72, 40}, t, 0.15);
      add(weight_of(p(WL::kUp)), {72, 40}, t, 0.15);
      add(weight_of(p(WL::kDown)), {40, 72}, t, 0.15);
    }
    norm(weight_of(wn::llm_key(WL::kNorm)), 40);
    add(weight_of(wn::llm_key(WL::kLmHead)), {301, 40}, WType::kF16, 0.3);

    // The spatial_pe module with a LayerNorm step of its own (a test shape, not a checkpoint's).
    spec.mlps[wn::mlp_module::kSpatialPe] = {{MlpStep::kLinear, weight_of(WS::kFc1), bias_of(WS::kFc1), 1e-5f},
                                             {MlpStep::kGeluErf, "", "", 1e-5f},
                                             {MlpStep::kLayerNorm, "ln.weight", "ln.bias", 1e-5f},
                                             {MlpStep::kLinear, weight_of(WS::kFc2), "", 1e-5f}};
    const std::string pe = wn::native_prefix::kSpatialPe;
    add(weight_of(pe + WS::kFc1), {48, 99}, WType::kF32, 0.2);
    add(bias_of(pe + WS::kFc1), {48}, WType::kF32, 0.1);
    norm(pe + "ln.weight", 48);
    add(pe + "ln.bias", {48}, WType::kF32, 0.1);
    add(weight_of(pe + WS::kFc2), {48, 48}, WType::kBF16, 0.2);
  }
};

#ifdef SR3D_WITH_CUDA
// Sets the CUDA-graph mode for the engines made in its scope, then hands the choice back to
// SR3D_CUDA_GRAPH (also when a check throws).
struct GraphModeScope {
  explicit GraphModeScope(cuda::CudaGraphMode m) { cuda::set_cuda_graph_mode(m); }
  ~GraphModeScope() { cuda::clear_cuda_graph_mode(); }
};
// The tiny model's CUDA engine made under graph mode `mode` (an engine reads it once, at creation).
std::unique_ptr<Engine> cuda_engine_in(cuda::CudaGraphMode mode, const TinyModel& m) {
  GraphModeScope scope(mode);
  return make_cuda_engine(m.spec, m.map, test_device());
}

#endif

// graph: the CUDA engine decodes through CUDA graphs (its second decode step is a replay).
void test_engine(bool graph) {
  if (!begin_case(std::string("engine/tiny bf16 model: cuda vs cpu") + (graph ? " (cuda graph decode)" : "")) ||
      skip_without_cuda())
    return;
  TinyModel m;
  std::unique_ptr<Engine> cpu = make_cpu_engine(m.spec, m.map);
  std::unique_ptr<Engine> gpu;
#ifdef SR3D_WITH_CUDA
  gpu = cuda_engine_in(graph ? cuda::CudaGraphMode::kOn : cuda::CudaGraphMode::kOff, m);
#else
  gpu = make_cuda_engine(m.spec, m.map, test_device());
#endif
  const EngineInfo info = gpu->info();
  record(info.device.rfind("cuda:", 0) == 0 && info.weight_bytes > 0 && info.kv_cache_bytes ==
             2LL * 2 * 540 * 2 * 10 * 4,
         "engine/info", "device " + info.device + ", weight bytes " + std::to_string(info.weight_bytes) +
             ", kv bytes " + std::to_string(info.kv_cache_bytes),
         nullptr);
  Rng r(7);
  const double rel = 2e-3;
  {  // vision: 3 tiles (one more than... fits one chunk), 9 tokens x 48
    std::vector<float> tiles = randn(r, 3 * 3 * 42 * 42), want(3 * 9 * 48), got(want.size(), kNaN);
    cpu->encode_tiles(tiles.data(), 3, want.data());
    gpu->encode_tiles(tiles.data(), 3, got.data());
    check_rel("engine/encode_tiles", got, want, {3, 9, 48}, rel);
  }
  {  // projector: 9 tiles (two passes of 8)
    std::vector<float> f = randn(r, 9 * 9 * 48, -2, 2), want(9 * 1 * 40), got(want.size(), kNaN);
    cpu->project(f.data(), 9, want.data());
    gpu->project(f.data(), 9, got.data());
    check_rel("engine/project", got, want, {9, 1, 40}, rel);
  }
  {
    const char* spe = wn::mlp_module::kSpatialPe;
    record(gpu->mlp_in_dim(spe) == 99 && gpu->mlp_out_dim(spe) == 48,
           "engine/mlp dims", "in " + std::to_string(gpu->mlp_in_dim(spe)) + ", out " +
                                  std::to_string(gpu->mlp_out_dim(spe)), nullptr);
    std::vector<float> x = randn(r, 37 * 99), want(37 * 48), got(want.size(), kNaN);
    cpu->run_mlp(spe, x.data(), 37, want.data());
    gpu->run_mlp(spe, x.data(), 37, got.data());
    check_rel("engine/run_mlp", got, want, {37, 48}, rel);
  }
  {
    const std::vector<int32_t> ids = {0, 300, 5, 17};
    std::vector<float> want(4 * 40), got(want.size(), kNaN);
    cpu->embed_tokens(ids.data(), 4, want.data());
    gpu->embed_tokens(ids.data(), 4, got.data());
    check_floats("engine/embed_tokens", got, want, {4, 40}, 0);
  }
  // Qwen2: prefill 530 positions (a 512 chunk + 18), then decode 2; logits each time.
  std::vector<float> emb = randn(r, 530 * 40);
  const int64_t V = 301;
  auto logits = [&](Engine& e) { return std::vector<float>(e.last_logits(), e.last_logits() + V); };
  cpu->prefill(emb.data(), 530);
  gpu->prefill(emb.data(), 530);
  check_rel("engine/prefill 530 logits", logits(*gpu), logits(*cpu), {V}, rel);
  for (int32_t tok : {3, 250}) {
    cpu->decode(tok);
    gpu->decode(tok);
    check_rel("engine/decode " + std::to_string(tok) + " logits", logits(*gpu), logits(*cpu), {V}, rel);
  }
  record(gpu->cached() == 532, "engine/cached", std::to_string(gpu->cached()), nullptr);
  Outcome want = run_op([&] { cpu->prefill(emb.data(), 9); });
  Outcome got = run_op([&] { gpu->prefill(emb.data(), 9); });
  if (!same_outcome("engine/prefill past max_context", got, want))
    record(false, "engine/prefill past max_context", "neither engine threw", nullptr);
  want = run_op([&] { cpu->decode(301); });
  got = run_op([&] { gpu->decode(301); });
  if (!same_outcome("engine/decode token 301 (vocab 301)", got, want))
    record(false, "engine/decode token 301", "neither engine threw", nullptr);
  want = run_op([&] { cpu->run_mlp("nope", emb.data(), 1, emb.data()); });
  got = run_op([&] { gpu->run_mlp("nope", emb.data(), 1, emb.data()); });
  if (!same_outcome("engine/run_mlp unknown module", got, want))
    record(false, "engine/run_mlp unknown module", "neither engine threw", nullptr);
  // reset + a short prefill reuses the cache from position 0.
  cpu->reset();
  gpu->reset();
  cpu->prefill(emb.data() + 40 * 100, 3);
  gpu->prefill(emb.data() + 40 * 100, 3);
  check_rel("engine/reset + prefill 3 logits", logits(*gpu), logits(*cpu), {V}, rel);
}


#ifdef SR3D_WITH_CUDA
int32_t argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<int32_t>(best);
}

// The decode step replayed as a CUDA graph (engine_cuda.cu) runs the plain step's kernels in
// its order with the position read from device memory: greedy tokens and logits equal the
// plain CUDA engine's bitwise, across the 128-key bucket boundary (one split, then several),
// after reset(), after a longer prompt regrows the scratch (the graphs are captured again)
// and up to max_context. gpu_full.sh runs it again with SR3D_ZERO_COPY=1.
void test_engine_graph() {
  const std::string zc = g_cuda && cuda::zero_copy_enabled() ? " (zero copy)" : "";
  const std::string name = "engine/cuda graph decode: bitwise the plain decode" + zc;
  if (begin_case(name) && !skip_without_cuda()) {
    cuda::use_selected_device();
    TinyModel m;
    std::unique_ptr<Engine> plain = cuda_engine_in(cuda::CudaGraphMode::kOff, m);
    std::unique_ptr<Engine> graph = cuda_engine_in(cuda::CudaGraphMode::kOn, m);
    const cuda::CudaGraphStats before = cuda::cuda_graph_stats();
    const int64_t V = m.spec.llm.vocab, H = m.spec.llm.hidden;
    Rng r(31);
    std::vector<float> emb = randn(r, 530 * H);
    auto logits = [&](Engine& e) { return std::vector<float>(e.last_logits(), e.last_logits() + V); };
    int64_t steps = 0;
    // prefill `n` prompt rows (from row `from`), then `decodes` greedy steps on both engines.
    auto session = [&](const std::string& what, int64_t from, int64_t n, int64_t decodes) {
      plain->prefill(emb.data() + from * H, n);
      graph->prefill(emb.data() + from * H, n);
      std::vector<int32_t> want_tokens, got_tokens;
      for (int64_t i = 0; i < decodes; ++i) {
        const std::vector<float> want = logits(*plain), got = logits(*graph);
        want_tokens.push_back(argmax(want.data(), V));
        got_tokens.push_back(argmax(got.data(), V));
        plain->decode(want_tokens.back());
        graph->decode(want_tokens.back());
        ++steps;
        check_floats(name + "/" + what + " step " + std::to_string(i) + " (position " +
                         std::to_string(graph->cached() - 1) + ") logits",
                     logits(*graph), logits(*plain), {V}, 0);
      }
      record(got_tokens == want_tokens && graph->cached() == plain->cached(),
             name + "/" + what + " greedy tokens", "the graph engine's tokens differ", nullptr);
    };
    session("prompt 120 + 30 decodes (128-key bucket boundary)", 0, 120, 30);
    graph->reset();
    plain->reset();
    session("reset, prompt 3 + 12 decodes", 200, 3, 12);
    graph->reset();
    plain->reset();
    session("reset, prompt 500 + 40 decodes (to max_context)", 0, 500, 40);
    Outcome want = run_op([&] { plain->decode(1); });
    Outcome got = run_op([&] { graph->decode(1); });
    if (!same_outcome(name + "/decode past max_context", got, want))
      record(false, name + "/decode past max_context", "neither engine threw", nullptr);
    const cuda::CudaGraphStats after = cuda::cuda_graph_stats();
    const int64_t replayed = after.replayed - before.replayed, captured = after.captured - before.captured;
    // Each bucket's first step runs plain and captures its graph; the rest replay. Captures:
    // 128, 256 | none (128's graph again) | 512, 540 (all again: the 500-row prompt regrew
    // the scratch the graphs point into).
    record(after.failed == before.failed && captured >= 4 && replayed >= steps - captured,
           name + "/graphs replayed",
           "captured " + std::to_string(captured) + ", replayed " + std::to_string(replayed) + " of " +
               std::to_string(steps) + " steps, failed " + std::to_string(after.failed - before.failed),
           nullptr);
  }

  const std::string fallback = "engine/cuda graph: a failed capture falls back to the plain decode" + zc;
  if (begin_case(fallback) && !skip_without_cuda()) {
    cuda::use_selected_device();
    TinyModel m;
    std::unique_ptr<Engine> plain = cuda_engine_in(cuda::CudaGraphMode::kOff, m);
    std::unique_ptr<Engine> graph = cuda_engine_in(cuda::CudaGraphMode::kFailCapture, m);
    const cuda::CudaGraphStats before = cuda::cuda_graph_stats();
    const int64_t V = m.spec.llm.vocab, H = m.spec.llm.hidden;
    Rng r(37);
    std::vector<float> emb = randn(r, 120 * H);
    plain->prefill(emb.data(), 120);
    graph->prefill(emb.data(), 120);
    for (int32_t tok : {5, 9, 300, 0, 42, 42, 7, 8, 1, 2, 3, 4}) {  // across the 128-key boundary
      plain->decode(tok);
      graph->decode(tok);
    }
    check_floats(fallback + "/logits after 12 decodes",
                 std::vector<float>(graph->last_logits(), graph->last_logits() + V),
                 std::vector<float>(plain->last_logits(), plain->last_logits() + V), {V}, 0);
    const cuda::CudaGraphStats after = cuda::cuda_graph_stats();
    // One failed capture turns graphs off for that engine: no second try, no replay.
    record(after.failed - before.failed == 1 && after.replayed == before.replayed &&
               after.captured == before.captured,
           fallback + "/graphs off after the failure",
           "failed " + std::to_string(after.failed - before.failed) + ", replayed " +
               std::to_string(after.replayed - before.replayed) + ", captured " +
               std::to_string(after.captured - before.captured),
           nullptr);
  }

  // SR3D_CUDA_GRAPH: unset / 0 off, 1 on, another value a typed error naming the variable
  // (no device needed: only the variable is read).
  if (begin_case("engine/SR3D_CUDA_GRAPH switch")) {
    cuda::clear_cuda_graph_mode();
    const char* old = std::getenv("SR3D_CUDA_GRAPH");
    const std::string saved = old ? old : "";
    unsetenv("SR3D_CUDA_GRAPH");
    const bool unset_off = cuda::cuda_graph_mode() == cuda::CudaGraphMode::kOff;
    setenv("SR3D_CUDA_GRAPH", "0", 1);
    const bool zero_off = cuda::cuda_graph_mode() == cuda::CudaGraphMode::kOff;
    setenv("SR3D_CUDA_GRAPH", "1", 1);
    const bool one_on = cuda::cuda_graph_mode() == cuda::CudaGraphMode::kOn;
    bool hook_wins = false;
    {
      GraphModeScope off(cuda::CudaGraphMode::kOff);
      hook_wins = cuda::cuda_graph_mode() == cuda::CudaGraphMode::kOff;
    }
    const bool cleared_on = cuda::cuda_graph_mode() == cuda::CudaGraphMode::kOn;
    setenv("SR3D_CUDA_GRAPH", "yes", 1);
    std::string invalid = "no error";
    try {
      (void)cuda::cuda_graph_mode();
    } catch (const Error& e) {
      invalid = e.kind == ErrorKind::kInvalidArgument ? e.what() : kind_name(e.kind);
    }
    if (old) setenv("SR3D_CUDA_GRAPH", saved.c_str(), 1);
    else unsetenv("SR3D_CUDA_GRAPH");
    const bool invalid_ok = invalid.find("SR3D_CUDA_GRAPH") != std::string::npos &&
                            invalid.find("'yes'") != std::string::npos;
    record(unset_off && zero_off && one_on && hook_wins && cleared_on && invalid_ok,
           "engine/SR3D_CUDA_GRAPH switch",
           "unset off " + std::to_string(unset_off) + ", 0 off " + std::to_string(zero_off) + ", 1 on " +
               std::to_string(one_on) + ", hook wins " + std::to_string(hook_wins) + ", cleared " +
               std::to_string(cleared_on) + ", yes: " + invalid,
           nullptr);
  }
}
#else
void test_engine_graph() {}
#endif

// Out of memory is a typed error carrying the bytes asked for and free, the error state is
// cleared (the next op runs), and SR3D_ZERO_COPY picks mapped host memory: by default on integrated
// GPUs, never with 0, on any GPU with 1.
void test_memory() {
#ifdef SR3D_WITH_CUDA
  for (int pooled = 0; pooled < 2; ++pooled) {
    const std::string name = std::string("memory/out of memory is typed (") +
                             (pooled ? "cudaMallocAsync" : "cudaMalloc") + ", twice the device)";
    if (!begin_case(name) || skip_without_cuda()) continue;
    cuda::use_selected_device();
    size_t free_b = 0, total_b = 0;
    SR3D_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const size_t huge = 2 * total_b;  // more than the device has, small enough to be a sane request
    cuda::Stream stream;
    std::string detail = "no error";
    try {
      cuda::DeviceBuffer<uint8_t> b;
      if (pooled) b.allocate(huge, stream.get());
      else b.allocate(huge);
    } catch (const Error& e) {
      const std::string msg = e.what();
      const bool ok = e.kind == ErrorKind::kCudaOutOfMemory &&
                      e.requested_bytes == static_cast<int64_t>(huge) && e.free_bytes >= 0 &&
                      e.total_bytes >= e.free_bytes &&
                      msg.find(std::to_string(huge) + " bytes") != std::string::npos &&
                      msg.find("free") != std::string::npos && msg.find("maxContext") != std::string::npos;
      detail = ok ? "" : std::string(kind_name(e.kind)) + ": " + msg;
      if (ok) std::printf("  ok: %s\n", msg.c_str());
    }
    record(detail.empty(), name, detail, nullptr);
    // The failure left no error behind: a small op still matches the reference.
    Rng r(11);
    std::vector<float> x = randn(r, 3 * 40), g = randn(r, 40), want(x.size()), got(x.size(), kNaN);
    rms_norm(x.data(), 3, 40, g.data(), 1e-6f, want.data(), Impl::kReference);
    rms_norm(x.data(), 3, 40, g.data(), 1e-6f, got.data(), Impl::kCuda);
    check_rel(name + " then rms_norm", got, want, {3, 40}, 1e-4);
  }
  if (begin_case("memory/SR3D_ZERO_COPY switch") && !skip_without_cuda()) {
    cuda::use_selected_device();
    const char* old = std::getenv("SR3D_ZERO_COPY");
    const std::string saved = old ? old : "";
    int integrated = 0, can_map = 0;
    SR3D_CUDA_CHECK(cudaDeviceGetAttribute(&integrated, cudaDevAttrIntegrated, cuda::selected_device()));
    SR3D_CUDA_CHECK(cudaDeviceGetAttribute(&can_map, cudaDevAttrCanMapHostMemory, cuda::selected_device()));
    unsetenv("SR3D_ZERO_COPY");
    const bool unset = cuda::zero_copy_enabled();
    const bool unset_for = cuda::zero_copy_for(integrated != 0, can_map != 0);
    setenv("SR3D_ZERO_COPY", "0", 1);
    const bool zero = cuda::zero_copy_enabled();
    setenv("SR3D_ZERO_COPY", "1", 1);
    const bool one = cuda::zero_copy_enabled();
    setenv("SR3D_ZERO_COPY", "force", 1);
    const bool force = cuda::zero_copy_enabled();
    setenv("SR3D_ZERO_COPY", "yes", 1);
    std::string invalid = "no error";
    try {
      (void)cuda::zero_copy_enabled();
    } catch (const Error& e) {
      invalid = e.kind == ErrorKind::kInvalidArgument ? e.what() : kind_name(e.kind);
    }
    const bool invalid_for = cuda::zero_copy_for(true, true);
    // Forced on, an output maps the host array and to_host copies nothing.
    setenv("SR3D_ZERO_COPY", "1", 1);
    std::vector<float> h(1000, 1.f);
    cuda::Stream stream;
    bool mapped = false;
    {
      cuda::DeviceBuffer<float> d = cuda::output_for(h.data(), 1000, stream.get());
      mapped = d.maps(h.data());
    }
    // A mapped engine-style host buffer: the device writes it, the host reads it after a sync.
    bool host_buffer = false;
    {
      cuda::HostBuffer<float> b;
      b.reserve(1000, true);
      if (b.device()) {
        SR3D_CUDA_CHECK(cudaMemsetAsync(b.device(), 0, b.bytes(), stream.get()));
        SR3D_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
        host_buffer = b.host()[0] == 0.f && b.host()[999] == 0.f;
      }
    }
    if (old) setenv("SR3D_ZERO_COPY", saved.c_str(), 1);
    else unsetenv("SR3D_ZERO_COPY");
    const bool want_unset = integrated != 0 && can_map != 0;
    const bool invalid_ok = invalid.find("SR3D_ZERO_COPY") != std::string::npos &&
                            invalid.find("'yes'") != std::string::npos;
    record(unset == want_unset && unset_for == want_unset && !zero && one == (can_map != 0) &&
               force == one && invalid_ok && !invalid_for && mapped == one && host_buffer == one,
           "memory/SR3D_ZERO_COPY switch",
           "unset " + std::to_string(unset) + " / " + std::to_string(unset_for) + " (integrated " +
               std::to_string(integrated) + ", can map " + std::to_string(can_map) + "), 0 " +
               std::to_string(zero) + ", 1 " + std::to_string(one) + ", force " + std::to_string(force) +
               ", yes: " + invalid + ", mapped " + std::to_string(mapped) + ", host buffer " +
               std::to_string(host_buffer),
           nullptr);
  }
#endif
}

void run_tests() {
  test_memory();
  test_linear();
  test_linear_tc_switch();
  test_linear_tc();
  test_norms();
  test_elementwise();
  test_attention();
  test_attention_tc();
  test_engine(false);
  test_engine(true);
  test_engine_graph();
}

// ---- benchmarks ----------------------------------------------------------------------------

#ifdef SR3D_WITH_CUDA
// Random bf16 bits of small values on the device (a fast xorshift, filled on the host).
std::vector<uint16_t> random_bf16(int64_t n, uint64_t seed) {
  std::vector<uint16_t> v(static_cast<size_t>(n));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < n; ++i) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    const float f = (static_cast<float>(s >> 40) / 16777216.0f - 0.5f) * 0.05f;
    v[i] = float_to_bf16(f);
  }
  return v;
}

void bench_cuda(std::vector<BenchRow>& rows) {
  std::string dev;
  if (!bench_cuda_device(&dev)) return;
  const double cache = kGpuCacheBytes;
  cuda::Stream holder;
  cudaStream_t s = holder.get();
  const double peak = measure_gpu_peak(s, dev, rows);

  // kernel: "simt" (the float32 GEMM / GEMV) or "tc" (the bf16 tensor-core GEMM, set_tc_gemm).
  auto linear_row = [&](int64_t n, int64_t K, int64_t N, const std::string& op,
                        const char* kernel = "simt") {
    const bool tc = std::string(kernel) == "tc";
    if (tc && !cuda::tc_gemm_supported()) return;
    TcSwitch sw(tc ? 1 : 0);
    cuda::DeviceBuffer<uint16_t> w = to_device(random_bf16(N * K, K + N));
    cuda::DeviceBuffer<float> x = to_device(std::vector<float>(n * K, 0.5f)), y(n * N);
    WeightRef wr;
    wr.data = w.get();
    wr.type = WType::kBF16;
    wr.rows = N;
    wr.cols = K;
    const double ms = gpu_median_ms(s, [&] { cuda::linear_dev(x.get(), n, wr, nullptr, y.get(), s); });
    const double flops = 2.0 * n * N * K;
    char shape[96];
    std::snprintf(shape, sizeof shape, "%lldx%lld->%lld bf16 %s %.1f TFLOP/s", static_cast<long long>(n),
                  static_cast<long long>(K), static_cast<long long>(N), kernel, flops / (ms * 1e-3) / 1e12);
    rows.push_back(make_row(op, shape, dev, 0, ms, 2.0 * N * K + 4.0 * n * (K + N), peak, cache));
  };
  linear_row(1, 896, 4864, "linear_gemv");
  linear_row(1, 3584, 18944, "linear_gemv");
  linear_row(1, 18944, 3584, "linear_gemv");
  for (const char* kernel : {"simt", "tc"}) {
    linear_row(1024, 1152, 4304, "linear_gemm", kernel);
    linear_row(512, 3584, 18944, "linear_gemm", kernel);
    linear_row(1600, 3584, 18944, "linear_gemm", kernel);
  }

  // kernel: null (the default dispatch, GB/s rows), "simt" (the float32 kernel) or "tc"
  // (attention_tc.cu through set_tc_gemm): named in the shape with TFLOP/s.
  auto attn_row = [&](int64_t batch, int64_t nq, int64_t nk, int64_t hq, int64_t hkv, int64_t d,
                      bool causal, const char* kernel = nullptr) {
    const bool tc = kernel && std::string(kernel) == "tc";
    if (tc && !cuda::tc_gemm_supported()) return;
    TcSwitch sw(tc ? 1 : 0);
    cuda::DeviceBuffer<float> q = to_device(std::vector<float>(batch * nq * hq * d, 0.1f));
    cuda::DeviceBuffer<float> kv = to_device(std::vector<float>(batch * nk * hkv * d, 0.2f));
    cuda::DeviceBuffer<float> out(batch * nq * hq * d);
    cuda::AttentionArgs a;
    a.q = q.get();
    a.k = a.v = kv.get();
    a.out = out.get();
    a.q_stride = a.out_stride = hq * d;
    a.kv_stride = hkv * d;
    a.q_bstride = a.out_bstride = nq * hq * d;
    a.kv_bstride = nk * hkv * d;
    a.batch = batch;
    a.nq = nq;
    a.nk = nk;
    a.hq = hq;
    a.hkv = hkv;
    a.d = d;
    a.scale = 0.1f;
    a.causal = causal;
    a.q_offset = causal ? nk - nq : 0;
    cuda::DeviceBuffer<float> ws(cuda::attention_workspace_floats(nq, hq, d));
    a.workspace = ws.get();
    a.workspace_floats = ws.size();
    const double ms = gpu_median_ms(s, [&] { cuda::attention_dev(a, s); });
    // QK^T and PV, causal: the keys each query sees (q_offset = nk - nq).
    double pairs = 0;
    for (int64_t i = 0; i < nq; ++i) pairs += causal ? std::min(nk, nk - nq + i + 1) : nk;
    const double tflops = 4.0 * batch * hq * d * pairs / (ms * 1e-3) / 1e12;
    char shape[128];
    std::snprintf(shape, sizeof shape, "b%lld q%lld k%lld h%lld/%lld d%lld%s", static_cast<long long>(batch),
                  static_cast<long long>(nq), static_cast<long long>(nk), static_cast<long long>(hq),
                  static_cast<long long>(hkv), static_cast<long long>(d), causal ? " causal" : "");
    if (kernel) std::snprintf(shape + std::strlen(shape), sizeof shape - std::strlen(shape), " %s %.1f TFLOP/s", kernel, tflops);
    rows.push_back(make_row("attention", shape, dev, 0, ms,
                            4.0 * batch * (2 * nq * hq * d + 2 * nk * hkv * d), peak, cache));
  };
  attn_row(1, 1024, 1024, 16, 16, 72, false);  // one SigLIP tile layer
  attn_row(1, 1, 4096, 28, 4, 128, true);      // a 7B decode step at 4k context
  attn_row(1, 512, 4096, 28, 4, 128, true);    // the last prefill chunk at 4k
  for (const char* kernel : {"simt", "tc"}) {
    attn_row(1, 1024, 1024, 16, 16, 72, false, kernel);  // SigLIP tile layer
    attn_row(1, 1600, 1600, 28, 4, 128, true, kernel);   // 8B prefill of 1600 positions
  }

  // A 0.5B-class Qwen2 decode step (Qwen2-0.5B sizes, tied embeddings, random bf16).
  {
    ModelSpec spec;
    spec.has_llm = true;
    LlmSpec& l = spec.llm;
    l.hidden = 896; l.layers = 24; l.heads = 14; l.kv_heads = 2; l.head_dim = 64;
    l.intermediate = 4864; l.vocab = 151936; l.tie_word_embeddings = true;
    spec.max_context = 1024;
    std::vector<std::vector<uint16_t>> bf;
    std::vector<std::vector<float>> f32;
    WeightMap w;
    uint64_t seed = 1;
    auto big = [&](const std::string& k, int64_t r, int64_t c) {
      bf.push_back(random_bf16(r * c, seed++));
      w[k] = WeightTensor{bf.back().data(), WType::kBF16, {r, c}};
    };
    auto vec = [&](const std::string& k, int64_t n, float v) {
      f32.emplace_back(static_cast<size_t>(n), v);
      w[k] = WeightTensor{f32.back().data(), WType::kF32, {n}};
    };
    bf.reserve(200);
    f32.reserve(200);
    big(weight_of(wn::llm_key(WL::kEmbedTokens)), l.vocab, l.hidden);
    for (int i = 0; i < l.layers; ++i) {
      auto p = [i](const char* module) { return wn::llm_layer_key(i, module); };
      vec(weight_of(p(WL::kInputNorm)), 896, 1.f);
      vec(weight_of(p(WL::kPostAttentionNorm)), 896, 1.f);
      big(weight_of(p(WL::kQ)), 896, 896);
      vec(bias_of(p(WL::kQ)), 896, 0.01f);
      big(weight_of(p(WL::kK)), 128, 896);
      vec(bias_of(p(WL::kK)), 128, 0.01f);
      big(weight_of(p(WL::kV)), 128, 896);
      vec(bias_of(p(WL::kV)), 128, 0.01f);
      big(weight_of(p(WL::kO)), 896, 896);
      big(weight_of(p(WL::kGate)), 4864, 896);
      big(weight_of(p(WL::kUp)), 4864, 896);
      big(weight_of(p(WL::kDown)), 896, 4864);
    }
    vec(weight_of(wn::llm_key(WL::kNorm)), 896, 1.f);
    // Plain (launch by launch), then replayed as CUDA graphs (SR3D_CUDA_GRAPH=1's path).
    for (const bool graph : {false, true}) {
      std::unique_ptr<Engine> e;
      {
        GraphModeScope mode(graph ? cuda::CudaGraphMode::kOn : cuda::CudaGraphMode::kOff);
        e = make_cuda_engine(spec, w, cuda::selected_device());
      }
      // ~83 positions (one key split: as before this row had a graph) and ~470 (split attention
      // and its combine in every layer, the graph's 512-key bucket).
      for (const int64_t prompt : {int64_t{16}, int64_t{400}}) {
        e->reset();
        const cuda::CudaGraphStats before = cuda::cuda_graph_stats();
        std::vector<float> emb(static_cast<size_t>(prompt * 896), 0.01f);
        e->prefill(emb.data(), prompt);
        std::vector<double> ms;
        for (int i = 0; i < 3; ++i) e->decode(i);  // the warm-up captures the graph (one bucket)
        for (int i = 0; i < 64; ++i) {
          const auto t0 = std::chrono::steady_clock::now();
          e->decode(100 + i);
          ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        const cuda::CudaGraphStats after = cuda::cuda_graph_stats();
        if (graph && after.replayed - before.replayed < 64)
          std::fprintf(stderr, "decode_step graph: only %lld of 67 steps replayed (%lld failed)\n",
                       static_cast<long long>(after.replayed - before.replayed),
                       static_cast<long long>(after.failed - before.failed));
        const double med = median(ms);
        const EngineInfo info = e->info();
        char shape[96];
        std::snprintf(shape, sizeof shape, "0.5B bf16 24L ctx~%lld %.0f tok/s %s",
                      static_cast<long long>(e->cached()), 1e3 / med, graph ? "graph" : "plain");
        // Bytes: every weight once (the tied table once, as lm_head) + the KV rows read.
        const double kv = 2.0 * 24 * e->cached() * 2 * 64 * 4;
        rows.push_back(make_row("decode_step", shape, dev, 0, med,
                                static_cast<double>(info.weight_bytes) + kv, peak, cache));
      }
    }
    bf.clear();
    f32.clear();
  }
}
#endif  // SR3D_WITH_CUDA

void run_bench(const std::string& device, std::vector<BenchRow>& rows) {
  if (device == "cpu") std::fprintf(stderr, "nn_cuda_tests: GPU rows only (CPU rows: sr3d_nn_tests)\n");
#ifdef SR3D_WITH_CUDA
  if (device == "cuda" || device == "all") bench_cuda(rows);
#else
  (void)rows;
#endif
}

}  // namespace

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
