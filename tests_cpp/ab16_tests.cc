// Standalone tests and a benchmark of the bf16-activation Linear ("ab16", linear.h's
// linear_ab16_fast / linear_ab16_reference); no Node. Command line as every tests_cpp
// executable (harness.h):
//
//   sr3d_ab16_tests [--filter SUBSTR]   every kernel family this CPU has (3 AVX-512 BF16,
//                                       2 AVX-512F, 1 AVX2, 0 portable) bit-identical to the
//                                       reference over awkward sizes and count 1..3; one row
//                                       at a time == the batch; any thread count; special
//                                       values (subnormal / inf / NaN / huge x, subnormal
//                                       weights, products below 2^-126, the FTZ rounding
//                                       window); the reference within linear.h's bound of
//                                       the float64 sum; typed errors
//   sr3d_ab16_tests --bench [--json] [--json-out FILE]   GEMV / GEMM at the 0.5B shapes,
//                                       the exact bf16 path vs ab16 (GFLOP/s and % of the
//                                       measured dot-product peak on stderr)
//
// The step semantics (vdpbf16ps per Intel's SDM: odd pair first, each step an FMA with DAZ in,
// FTZ out tiny-after-rounding, RNE) were first checked on this CPU (AMD EPYC, family 1Ah /
// Zen 5) by a probe over 12.8 M random lanes incl. subnormals and the full exponent range: 0
// mismatches to that emulation and to vfmadd231ps under MXCSR DAZ | FTZ; the even-first order
// and a single rounding of both products each mismatch in ~3-7% of lanes, and a flush before
// rounding (or of the subnormal result) mismatches in the window just below 2^-126. The special
// value cases below keep checking it.
// GCC 12: false (maybe-)uninitialized warnings from immintrin.h's _mm256_undefined_* placeholders
// once inlined (see kernels/cpu/linear_ab16.cc); the pragmas must precede the include.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cinttypes>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "harness.h"
#include "linear.h"
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#endif

using namespace sr3d;
using namespace sr3d_test;

namespace {

const char* isa_name(int isa) {
  static const char* names[] = {"portable", "avx2", "avx512f", "avx512bf16"};
  return names[isa];
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A bf16 weight: uniform values in [-1, 1) rounded to bf16.
std::vector<uint16_t> bf16_weights(int64_t rows, int64_t cols, uint64_t seed) {
  const std::vector<float> f = uniform_floats(rows * cols, seed);
  std::vector<uint16_t> w(f.size());
  for (size_t i = 0; i < f.size(); ++i) w[i] = float_to_bf16(f[i]);
  return w;
}

struct Case {
  int64_t n, cols;
  std::vector<std::vector<uint16_t>> w;
  std::vector<std::vector<float>> bias;
  std::vector<WeightRef> refs;
  std::vector<const float*> biases;
};

// ys[i] from linear_ab16_fast over the case's linears.
std::vector<std::vector<float>> run_fast(const std::vector<float>& x, int64_t n, const Case& c) {
  std::vector<std::vector<float>> ys(c.refs.size());
  std::vector<float*> yp;
  for (size_t i = 0; i < c.refs.size(); ++i) {
    ys[i].assign(static_cast<size_t>(n * c.refs[i].rows), -7.f);
    yp.push_back(ys[i].data());
  }
  cpu::linear_ab16_fast(x.data(), n, c.refs.data(), c.biases.data(), yp.data(),
                        static_cast<int>(c.refs.size()));
  return ys;
}

// Every ISA == the reference, one row at a time == the batch, 1 and 3 threads == default.
void check_case(const std::string& name, const std::vector<float>& x, const Case& c) {
  const int64_t n = c.n, k = c.cols;
  std::vector<std::vector<float>> ref(c.refs.size());
  for (size_t i = 0; i < c.refs.size(); ++i) {
    ref[i].assign(static_cast<size_t>(n * c.refs[i].rows), -7.f);
    cpu::linear_ab16_reference(x.data(), n, c.refs[i], c.biases[i], ref[i].data());
  }
  const int best = cpu::set_ab16_isa(-1);
  for (int isa = best; isa >= 0; --isa) {
    cpu::set_ab16_isa(isa);
    const auto ys = run_fast(x, n, c);
    for (size_t i = 0; i < ys.size(); ++i)
      check_floats(name + fmt(" [%zu] %s == reference", i, isa_name(isa)), ys[i], ref[i],
                   {n, c.refs[i].rows}, 0);
    if (n > 1) {  // the decode steps of the same rows
      for (int64_t t = 0; t < n; ++t) {
        std::vector<float> xt(x.begin() + t * k, x.begin() + (t + 1) * k);
        const auto yt = run_fast(xt, 1, c);
        for (size_t i = 0; i < ys.size(); ++i) {
          const int64_t rows = c.refs[i].rows;
          std::vector<float> want(ys[i].begin() + t * rows, ys[i].begin() + (t + 1) * rows);
          check_floats(name + fmt(" [%zu] %s row %" PRId64 " alone == in the batch", i,
                                  isa_name(isa), t),
                       yt[i], want, {1, rows}, 0);
        }
      }
    }
  }
  cpu::set_ab16_isa(-1);
  for (int t : {1, 3}) {
    set_cpu_threads(t);
    const auto ys = run_fast(x, n, c);
    set_cpu_threads(0);
    for (size_t i = 0; i < ys.size(); ++i)
      check_floats(name + fmt(" [%zu] %d threads == reference", i, t), ys[i], ref[i],
                   {n, c.refs[i].rows}, 0);
  }
}

Case make_case(int64_t n, int64_t cols, const std::vector<int64_t>& rows, bool with_bias,
               uint64_t seed) {
  Case c;
  c.n = n;
  c.cols = cols;
  c.w.resize(rows.size());
  c.bias.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    c.w[i] = bf16_weights(rows[i], cols, seed + 10 * i);
    c.bias[i] = uniform_floats(rows[i], seed + 10 * i + 1);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    c.refs.push_back(WeightRef{c.w[i].data(), WType::kBF16, rows[i], cols});
    c.biases.push_back(with_bias && i != 1 ? c.bias[i].data() : nullptr);
  }
  return c;
}

void test_sizes(int64_t n, int64_t cols, const std::vector<int64_t>& rows, bool with_bias) {
  std::string rs;
  for (int64_t r : rows) rs += (rs.empty() ? "" : ",") + std::to_string(r);
  const std::string name = fmt("ab16 n=%" PRId64 " cols=%" PRId64 " rows=%s%s", n, cols, rs.c_str(),
                               with_bias ? " bias" : "");
  if (!begin_case(name)) return;
  const uint64_t seed = static_cast<uint64_t>(n * 7919 + cols * 31 + rows[0] * 3 + rows.size());
  const Case c = make_case(n, cols, rows, with_bias, seed);
  check_case(name, uniform_floats(n * cols, seed + 99), c);
}

// The reference against the float64 sum of the same bf16 inputs: linear.h's bound.
void test_accuracy(int64_t n, int64_t rows, int64_t cols) {
  const std::string name = fmt("ab16 accuracy n=%" PRId64 " %" PRId64 "x%" PRId64, n, rows, cols);
  if (!begin_case(name)) return;
  const Case c = make_case(n, cols, {rows}, true, static_cast<uint64_t>(rows + cols));
  // Spread the magnitudes (2^-20 .. 2^20) so the products do not all share a scale.
  std::vector<float> x = uniform_floats(n * cols, 5);
  Rng r(6);
  for (float& v : x) v = std::ldexp(v, static_cast<int>(r.integer(-20, 20)));
  std::vector<float> y(static_cast<size_t>(n * rows));
  cpu::linear_ab16_reference(x.data(), n, c.refs[0], c.biases[0], y.data());
  const int64_t kp = (cols + 31) / 32 * 32, m = kp / 16 + 5;
  const double u = std::ldexp(1.0, -24), gamma = m * u / (1 - m * u);
  std::vector<double> want(y.size()), atol(y.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < rows; ++o) {
      double s = c.bias[0][o], mag = std::fabs(c.bias[0][o]);
      for (int64_t j = 0; j < cols; ++j) {
        const double p = static_cast<double>(bf16_to_float(float_to_bf16(x[i * cols + j]))) *
                         bf16_to_float(c.w[0][o * cols + j]);
        s += p;
        mag += std::fabs(p);
      }
      want[i * rows + o] = s;
      atol[i * rows + o] = gamma * mag + kp * std::ldexp(1.0, -126);
    }
  check_close(name + " reference vs float64 (gamma_m bound)", y, want, atol, 0, {n, rows},
              nullptr, true);
}

// Special values through every ISA: x from random bf16 bit patterns over the whole exponent
// range with random low bits (sums overflow to inf, products underflow below 2^-126, NaN from
// inf - inf), plus subnormal / inf / NaN / huge x entries and subnormal weights.
// tiny: exponents 2^-126 .. 2^-64 only, so the sums live around 2^-126 and every flush shows.
void test_special(int64_t n, int64_t cols, uint64_t seed, bool tiny = false) {
  const std::string name = fmt("ab16 special values n=%" PRId64 " cols=%" PRId64 "%s", n, cols,
                               tiny ? " tiny" : "");
  if (!begin_case(name)) return;
  Rng r(seed);
  auto any_bf16 = [&](int lo, int hi) {
    const uint32_t e = static_cast<uint32_t>(r.integer(lo, hi));
    return static_cast<uint16_t>((r.integer(0, 1) << 15) | (e << 7) | r.integer(0, 127));
  };
  Case c = make_case(n, cols, {13, 5}, true, seed);
  for (auto& w : c.w)
    for (auto& b : w)
      b = r.chance(0.1) ? any_bf16(0, 0) : tiny ? any_bf16(1, 63) : any_bf16(1, r.chance(0.5) ? 254 : 140);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (float& v : x) {
    const uint32_t lo = static_cast<uint32_t>(r.integer(0, 0xffff));
    v = from_bits(static_cast<uint32_t>(tiny ? any_bf16(1, 63) : any_bf16(1, r.chance(0.5) ? 254 : 140)) << 16 | lo);
    switch (tiny ? 15 : r.integer(0, 15)) {
      case 0: v = from_bits(static_cast<uint32_t>(r.integer(1, 0x7fffff))); break;  // subnormal
      case 1: v = -from_bits(0x007fffffu); break;  // the largest subnormal (rounds up to 2^-126 unless flushed)
      case 2: v = r.chance(0.5) ? kInf : -kInf; break;
      case 3: v = kNaN; break;
      case 4: v = FLT_MAX; break;  // rounds to inf in bf16
      case 5: v = from_bits(0x7f7f7fffu); break;  // the largest float that stays finite in bf16
      default: break;
    }
  }
  check_case(name, x, c);
}

// Products below 2^-126 and sums in the FTZ window, with known results.
void test_flush() {
  const std::string name = "ab16 flush to zero: known results";
  if (!begin_case(name)) return;
  // cols 2 -> lane 0 alone: a = step(step(0, x1, w1), x0, w0).
  struct Known {
    float x1, w1, x0, w0, want;
    const char* what;
  } known[] = {
      {0x1p-63f, 0x1p-63f, 0, 0, 0x1p-126f, "2^-126 stays"},
      {0x1p-64f, 0x1p-63f, 0, 0, 0.f, "2^-127 flushed"},
      // -0 in lane 0, then + 0 * 0 (the even pair) and the tree's + 0 make it +0.
      {-0x1p-64f, 0x1p-63f, 0, 0, 0.f, "-2^-127 flushed"},
      {-0x1p-64f, 0x1p-63f, -0x1p-64f, 0x1p-63f, 0.f, "two -2^-127 flushed"},
      {0x1p-60f, 0x1p-60f, -0x1p-61f, 0x1p-60f, 0x1p-121f, "2^-120 - 2^-121"},
      // 2^-126 - 1.5 * 2^-151: tiny after rounding with an unbounded exponent (2^-126 - 2^-150)
      // -> 0, although rounding to the subnormal grid would give 2^-126.
      {0x1p-63f, 0x1p-63f, -0x1.8p-100f, 0x1p-51f, 0.f, "window below 2^-126 flushed"},
      // 2^-126 - 2^-151: the tie rounds to the even 2^-126, not tiny.
      {0x1p-63f, 0x1p-63f, -0x1p-100f, 0x1p-51f, 0x1p-126f, "window tie to 2^-126"},
      {0x1p-80f, 0x1p-80f, 1.f, 1.f, 1.f, "a flushed product"},
      {0x1p100f, 0x1p-130f, 0, 0, 0.f, "a subnormal weight reads as 0 (DAZ)"},
      {0x1.fffffcp-127f, 0x1p100f, 0, 0, 0.f, "a subnormal x converts to 0, not up to 2^-126"},
      {0x1p100f, 0x1p-126f, 0, 0, 0x1p-26f, "2^-126 weights count"},
  };
  for (const Known& kc : known) {
    const float xr[2] = {kc.x0, kc.x1};
    const uint16_t wr[2] = {float_to_bf16(kc.w0), float_to_bf16(kc.w1)};
    const WeightRef w{wr, WType::kBF16, 1, 2};
    const float* bias = nullptr;
    float y = -7.f;
    float* yp = &y;
    cpu::linear_ab16_reference(xr, 1, w, nullptr, &y);
    check_floats(name + ": " + kc.what + " (reference)", {y}, {kc.want}, {1}, 0);
    const int best = cpu::set_ab16_isa(-1);
    for (int isa = best; isa >= 0; --isa) {
      cpu::set_ab16_isa(isa);
      y = -7.f;
      cpu::linear_ab16_fast(xr, 1, &w, &bias, &yp, 1);
      check_floats(name + ": " + kc.what + " (" + isa_name(isa) + ")", {y}, {kc.want}, {1}, 0);
    }
    cpu::set_ab16_isa(-1);
  }
}

void test_errors() {
  const auto IA = ErrorKind::kInvalidArgument;
  const std::vector<float> x = uniform_floats(64, 1);
  const std::vector<uint16_t> wb = bf16_weights(4, 64, 2);
  const std::vector<float> wf = uniform_floats(4 * 64, 3);
  std::vector<float> y(4 * 2), y2(4 * 2);
  const float* biases[2] = {nullptr, nullptr};
  float* ys[2] = {y.data(), y2.data()};
  const WeightRef good{wb.data(), WType::kBF16, 4, 64};
  auto run = [&](std::vector<WeightRef> ws, int64_t n = 1, const float* xp = nullptr) {
    return [=, &x] {
      cpu::linear_ab16_fast(xp ? xp : x.data(), n, ws.data(), biases, ys,
                            static_cast<int>(ws.size()));
    };
  };
  expect_error("errors/ab16: float32 weight", IA, run({WeightRef{wf.data(), WType::kF32, 4, 64}}));
  expect_error("errors/ab16: float16 weight (second of two)", IA,
               run({good, WeightRef{wb.data(), WType::kF16, 4, 64}}));
  expect_error("errors/ab16: int8 weight", IA, run({WeightRef{wb.data(), WType::kQ8, 4, 64}}));
  expect_error("errors/ab16: unequal cols", IA, run({good, WeightRef{wb.data(), WType::kBF16, 2, 32}}));
  expect_error("errors/ab16: n 0", IA, run({good}, 0));
  expect_error("errors/ab16: count 0", IA, run({}));
  expect_error("errors/ab16: null weight data", IA, run({WeightRef{nullptr, WType::kBF16, 4, 64}}));
  expect_error("errors/ab16: reference, float32 weight", IA, [&] {
    cpu::linear_ab16_reference(x.data(), 1, WeightRef{wf.data(), WType::kF32, 4, 64}, nullptr,
                               y.data());
  });
}

void run_tests() {
  std::printf("ab16 kernels: best %s\n", isa_name(cpu::set_ab16_isa(-1)));
  // cols: odd, < 32, not a multiple of 32, multiples; rows: not multiples of the 3- / 4-row
  // tiles; n 1..9 around the 8- / 4- / 2-row x tiles.
  for (int64_t n : {1, 2, 3, 5, 8, 9})
    for (int64_t cols : {1, 7, 32, 33, 95, 128})
      test_sizes(n, cols, {static_cast<int64_t>(1 + (n * cols) % 11)}, (n + cols) % 2 == 0);
  for (int64_t n : {1, 4, 6, 7})
    test_sizes(n, 161, {13, 5, 8}, true);  // count 3 (q, k, v): 161 = 5 blocks + 1
  test_sizes(9, 64, {17, 3}, false);       // count 2 (gate, up)
  test_sizes(17, 896, {7}, true);          // x blocks and a 0.5B row width
  test_sizes(2, 4864, {5}, true);
  test_sizes(11, 2081, {4}, true);         // K in 32-block chunks (vdpbf16ps GEMM), a partial block
  for (int64_t n : {1, 3, 9}) test_special(n, 77, 40 + static_cast<uint64_t>(n));
  test_special(2, 256, 50);
  for (int64_t n : {1, 9}) test_special(n, 200, 60 + static_cast<uint64_t>(n), true);
  test_flush();
  test_accuracy(3, 33, 896);
  test_accuracy(2, 9, 4864);
  test_errors();
}

// ---- bench -------------------------------------------------------------------------------
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// Peak MACs/s of the instruction each path is built on, measured on all threads: 12 independent
// accumulators in registers (latency hidden), no memory. Used for "% of peak" only.
__attribute__((target("avx512f,avx512bf16,avx512bw"), noinline)) double dp_macs(int64_t iters) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_setzero_ps();
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), w = (__m512bh)_mm512_set1_epi16(0x3400);
  for (int64_t t = 0; t < iters; ++t)
#pragma GCC unroll 12  // the accumulators stay in registers (not unrolled: a store-forward chain)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_dpbf16_ps(a[i], x, w);
  float s = 0;
  for (int i = 0; i < 12; ++i) s += _mm512_reduce_add_ps(a[i]);
  return s;
}
__attribute__((target("avx2,fma"), noinline)) double fma_macs(int64_t iters) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_setzero_ps();
  const __m256 x = _mm256_set1_ps(1.f), w = _mm256_set1_ps(1e-3f);
  for (int64_t t = 0; t < iters; ++t)
#pragma GCC unroll 12  // the accumulators stay in registers (not unrolled: a store-forward chain)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(x, w, a[i]);
  alignas(32) float l[8];
  float s = 0;
  for (int i = 0; i < 12; ++i) {
    _mm256_store_ps(l, a[i]);
    for (float v : l) s += v;
  }
  return s;
}
__attribute__((target("avx512f"), noinline)) double fma512_macs(int64_t iters) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_setzero_ps();
  const __m512 x = _mm512_set1_ps(1.f), w = _mm512_set1_ps(1e-3f);
  for (int64_t t = 0; t < iters; ++t)
#pragma GCC unroll 12  // the accumulators stay in registers (not unrolled: a store-forward chain)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(x, w, a[i]);
  float s = 0;
  for (int i = 0; i < 12; ++i) s += _mm512_reduce_add_ps(a[i]);
  return s;
}
// GFLOP/s (2 per MAC) of fn(iters) on one thread, the best of 10 runs, times the thread count:
// the machine's peak estimated from one core (a shared machine's other load slows the all-thread
// median, not the best single-thread run).
double peak_gflops(double (*fn)(int64_t), double macs_per_iter) {
  const int64_t iters = 1000000;
  volatile double sink = 0;
  double best = 1e30;
  for (int rep = 0; rep < 10; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    sink = sink + fn(iters);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * macs_per_iter * iters * cpu_threads() / best / 1e9;
}
#endif

void run_bench(const std::string& device, std::vector<BenchRow>& rows) {
  if (device != "cpu" && device != "all") return;
  const double peak = measure_cpu_peak(rows);
  const int thr = cpu_threads();
  const int best = cpu::set_ab16_isa(-1);
  double dp_peak = 0, fma_peak = 0, fma512_peak = 0;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
  if (best == 3) dp_peak = peak_gflops(dp_macs, 12 * 32);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    fma_peak = peak_gflops(fma_macs, 12 * 8);
  if (best >= 2) fma512_peak = peak_gflops(fma512_macs, 12 * 16);
#endif
  std::fprintf(stderr,
               "peaks (one core's best x %d threads): vdpbf16ps %.0f GFLOP/s, 512-bit FMA %.0f, "
               "256-bit FMA %.0f (the exact path's 256-bit mul + add: at best that rate, the adds on\n"
               "the FADD pipes of Zen 4 / 5)\n",
               thr, dp_peak, fma512_peak, fma_peak);
  struct Shape { int64_t in, out; } shapes[] = {{896, 896}, {896, 4864}, {4864, 896}};
  for (const Shape& s : shapes)
    for (int64_t n : {1, 128}) {
      const std::vector<uint16_t> w = bf16_weights(s.out, s.in, 7);
      const std::vector<float> x = uniform_floats(n * s.in, 8);
      std::vector<float> y(static_cast<size_t>(n * s.out));
      const WeightRef r{w.data(), WType::kBF16, s.out, s.in};
      const double bytes = 2.0 * s.in * s.out + 4.0 * n * (s.in + s.out);
      const double flops = 2.0 * n * s.in * s.out;
      const std::string shape = fmt("n=%" PRId64 " %" PRId64 "->%" PRId64, n, s.in, s.out);
      const double ms_exact =
          cpu_median_ms([&] { linear(x.data(), n, r, nullptr, y.data(), Impl::kFast); });
      rows.push_back(make_row("linear", "bf16 exact " + shape, "cpu", thr, ms_exact, bytes, peak,
                              kCpuCacheBytes));
      std::fprintf(stderr, "%-22s %-18s %8.3f ms %7.1f GFLOP/s %5.0f%% of the FMA peak\n",
                   "linear bf16 exact", shape.c_str(), ms_exact, flops / ms_exact * 1e-6,
                   fma_peak > 0 ? 100.0 * flops / ms_exact * 1e-6 / fma_peak : 0.0);
      for (int isa = best; isa >= std::max(1, best - 1); --isa) {
        cpu::set_ab16_isa(isa);
        const float* bias = nullptr;
        float* yp = y.data();
        const double ms = cpu_median_ms([&] { cpu::linear_ab16_fast(x.data(), n, &r, &bias, &yp, 1); });
        const std::string op = std::string("linear ab16 ") + isa_name(isa);
        rows.push_back(make_row("linear_ab16", shape + " " + isa_name(isa), "cpu", thr, ms, bytes,
                                peak, kCpuCacheBytes));
        const double pk = isa == 3 ? dp_peak : isa == 2 ? fma512_peak : fma_peak;
        std::fprintf(stderr, "%-22s %-18s %8.3f ms %7.1f GFLOP/s %5.0f%% of its peak, %.2fx exact\n",
                     op.c_str(), shape.c_str(), ms, flops / ms * 1e-6,
                     pk > 0 ? 100.0 * flops / ms * 1e-6 / pk : 0.0, ms_exact / ms);
      }
      cpu::set_ab16_isa(-1);
    }
}

}  // namespace

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
