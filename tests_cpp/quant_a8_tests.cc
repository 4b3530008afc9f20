// Standalone tests and a benchmark of int4/int8 Linear with int8 activations (linear.h's
// linear_a8, kernels/cpu/linear_a8.cc); no Node. Command line as every tests_cpp executable
// (harness.h):
//
//   sr3d_quant_a8_tests [--filter SUBSTR]   every ISA the CPU has (AVX-512 VNNI, AVX2, the
//                                           portable kernels) bit-identical to
//                                           linear_a8_reference; one row == a batch (decode
//                                           GEMV == prefill GEMM); any thread count; the
//                                           reference within the activation-rounding bound of
//                                           the exact float32 result; the exact fallback for
//                                           groups not a multiple of 32; typed errors
//   sr3d_quant_a8_tests --bench [--json] [--json-out FILE]   GEMV / GEMM, exact vs int8 acts
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "harness.h"
#include "quant_weights.h"
#include "linear.h"

using namespace sr3d;
using namespace sr3d_test;

namespace {

std::vector<float> run_a8(const std::vector<float>& x, int64_t n, const WeightRef& w,
                          const float* bias, Impl impl) {
  std::vector<float> y(static_cast<size_t>(n * w.rows));
  linear_a8(x.data(), n, w, bias, y.data(), impl);
  return y;
}

// The bound the activation rounding allows against the exact product with the dequantized
// weights: per 32-input block (stored columns, through the perm) |x_j - d xq_j| <= d / 2, so
// |y_a8 - y| <= sum_b d_b / 2 * sum_{j in b} |w_j|, plus the float32 rounding of both sides
// (1e-5 sum |x w|, as the exact path's tests) and of the block scales (1e-6 of the first term).
std::vector<double> a8_tolerance(const std::vector<float>& x, int64_t n, const QW& w,
                                 const float* bias) {
  const int64_t rows = w.ref.rows, k = w.ref.cols;
  std::vector<double> atol(static_cast<size_t>(n * rows));
  const bool permuted = !w.perm.empty();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      double q = 0, s = bias ? std::fabs(bias[r]) : 0;
      for (int64_t b = 0; b < k / 32; ++b) {
        double amax = 0, wsum = 0;
        for (int64_t c = 32 * b; c < 32 * b + 32; ++c) {
          const int64_t in = permuted ? w.perm[c] : c;
          amax = std::max(amax, std::fabs(double(x[i * k + in])));
          wsum += std::fabs(double(w.deq[r * k + in]));
          s += std::fabs(double(x[i * k + in]) * w.deq[r * k + in]);
        }
        q += amax / 127 / 2 * wsum;
      }
      atol[i * rows + r] = q * (1 + 1e-6) + 1e-5 * s;
    }
  return atol;
}

// x with the awkward rows: all zero, one huge outlier among small values, tiny (denormal
// block scales), and plain uniform.
std::vector<float> awkward_x(int64_t n, int64_t k, uint64_t seed) {
  std::vector<float> x = uniform_floats(n * k, seed);
  for (int64_t i = 0; i < n; ++i) {
    float* xi = x.data() + i * k;
    switch (i % 4) {
      case 1: std::fill(xi, xi + k, 0.f); break;
      case 2: xi[(i * 7) % k] = 300.f; xi[(i * 13 + 5) % k] = -0.5f; break;
      case 3: for (int64_t j = 0; j < k; j += 3) xi[j] *= 1e-38f; break;
      default: break;
    }
  }
  return x;
}

void test_a8(int64_t n, int64_t rows, int64_t cols, int bits, int64_t group, bool act_order,
             bool with_bias, int zeros = -1) {
  const std::string name = fmt("linear_a8 q%d n=%" PRId64 " %" PRId64 "x%" PRId64 " group %" PRId64 "%s%s%s",
                               bits, n, rows, cols, group, act_order ? " act-order" : "",
                               with_bias ? " bias" : "", zeros < 0 ? "" : fmt(" zeros %d", zeros).c_str());
  if (!begin_case(name)) return;
  const uint64_t seed = static_cast<uint64_t>(n * 1000003 + rows * 131 + cols * 7 + bits + group + zeros);
  QW w = make_q(rows, cols, bits, group, act_order, seed);
  if (zeros >= 0) {  // every group's zero point at an extreme; deq follows
    w.zeros.assign(w.zeros.size(), static_cast<uint8_t>(zeros));
    const int64_t ng = cols / group, rb = cols * bits / 8;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        const uint8_t v = w.q[r * rb + (bits == 4 ? j / 2 : j)];
        const int qv = bits == 4 ? (j % 2 ? v >> 4 : v & 15) : v;
        w.deq[r * cols + (act_order ? w.perm[j] : j)] =
            w.scales[r * ng + j / group] * static_cast<float>(qv - zeros);
      }
  }
  const std::vector<float> x = awkward_x(n, cols, seed + 1);
  const std::vector<float> b = uniform_floats(rows, seed + 2);
  const float* bias = with_bias ? b.data() : nullptr;
  const std::vector<int64_t> shape{n, rows};

  const auto ref = run_a8(x, n, w.ref, bias, Impl::kReference);
  std::vector<float> exact(static_cast<size_t>(n * rows));
  linear(x.data(), n, w.dense, bias, exact.data(), Impl::kReference);
  check_close(name + " reference within the activation-rounding bound of exact", ref, exact,
              a8_tolerance(x, n, w, bias), 0, shape);
  const auto fast = run_a8(x, n, w.ref, bias, Impl::kFast);
  check_floats(name + " fast == reference", fast, ref, shape, 0);
  const int best = cpu::set_a8_isa(-1);
  for (int isa = 0; isa <= best; ++isa) {
    cpu::set_a8_isa(isa);
    const auto yi = run_a8(x, n, w.ref, bias, Impl::kFast);
    cpu::set_a8_isa(-1);
    check_floats(name + fmt(" isa %d (2 AVX-512 VNNI, 1 AVX2, 0 portable) == reference", isa), yi,
                 ref, shape, 0);
  }
  // One input row at a time (decode GEMV) == the batch (prefill GEMM), on every ISA.
  for (int isa = 0; isa <= best && n > 1; ++isa) {
    cpu::set_a8_isa(isa);
    std::vector<float> rowwise(fast.size());
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> xi(x.begin() + i * cols, x.begin() + (i + 1) * cols);
      auto yi = run_a8(xi, 1, w.ref, bias, Impl::kFast);
      std::copy(yi.begin(), yi.end(), rowwise.begin() + i * rows);
    }
    cpu::set_a8_isa(-1);
    check_floats(name + fmt(" isa %d one row at a time == batch", isa), rowwise, ref, shape, 0);
  }
  for (int t : {1, 3}) {
    set_cpu_threads(t);
    auto yt = run_a8(x, n, w.ref, bias, Impl::kFast);
    set_cpu_threads(0);
    check_floats(name + fmt(" fast with %d threads == reference", t), yt, ref, shape, 0);
  }
}

// Groups that are not a multiple of 32 (and non-quantized weights) take the exact path.
void test_fallback() {
  for (auto [bits, cols, group] : std::vector<std::array<int64_t, 3>>{{4, 96, 16}, {8, 120, 40}, {8, 48, 48}}) {
    const std::string name = fmt("linear_a8 fallback q%" PRId64 " %" PRId64 " cols group %" PRId64 " == exact fast path",
                                 bits, cols, group);
    if (!begin_case(name)) continue;
    QW w = make_q(13, cols, static_cast<int>(bits), group, true, 31 + cols);
    const std::vector<float> x = uniform_floats(3 * cols, 32);
    std::vector<float> exact(3 * 13);
    linear(x.data(), 3, w.ref, nullptr, exact.data(), Impl::kFast);
    check_floats(name + " (fast)", run_a8(x, 3, w.ref, nullptr, Impl::kFast), exact, {3, 13}, 0);
    check_floats(name + " (reference)", run_a8(x, 3, w.ref, nullptr, Impl::kReference), exact, {3, 13}, 0);
  }
}

void test_multi() {
  const std::string name = "linear_a8_fast: q4, q8 (act-order), q4 group 16 and f32 sharing x";
  if (!begin_case(name)) return;
  const int64_t n = 5, cols = 256;
  QW a = make_q(37, cols, 4, 64, false, 11), b = make_q(19, cols, 8, 128, true, 12);
  QW c = make_q(9, cols, 4, 16, false, 16);
  std::vector<float> f = uniform_floats(23 * cols, 13);
  const WeightRef ws[4] = {a.ref, b.ref, c.ref, WeightRef{f.data(), WType::kF32, 23, cols}};
  const std::vector<float> x = uniform_floats(n * cols, 14), bias = uniform_floats(37, 15);
  std::vector<float> y0(n * 37), y1(n * 19), y2(n * 9), y3(n * 23);
  const float* biases[4] = {bias.data(), nullptr, nullptr, nullptr};
  float* ys[4] = {y0.data(), y1.data(), y2.data(), y3.data()};
  cpu::linear_a8_fast(x.data(), n, ws, biases, ys, 4);
  check_floats(name + " [0]", y0, run_a8(x, n, ws[0], bias.data(), Impl::kReference), {n, 37}, 0);
  check_floats(name + " [1]", y1, run_a8(x, n, ws[1], nullptr, Impl::kReference), {n, 19}, 0);
  std::vector<float> e2(n * 9), e3(n * 23);
  linear(x.data(), n, ws[2], nullptr, e2.data(), Impl::kFast);
  linear(x.data(), n, ws[3], nullptr, e3.data(), Impl::kFast);
  check_floats(name + " [2] exact", y2, e2, {n, 9}, 0);
  check_floats(name + " [3] f32", y3, e3, {n, 23}, 0);
}

void test_errors() {
  const auto IA = ErrorKind::kInvalidArgument;
  QW w = make_q(4, 64, 4, 32, true, 21);
  const std::vector<float> x = uniform_floats(64, 22);
  std::vector<float> y(4);
  auto run = [&](WeightRef r, Impl impl, int64_t n = 1) {
    return [&x, &y, r, impl, n] { linear_a8(x.data(), n, r, nullptr, y.data(), impl); };
  };
  for (Impl impl : {Impl::kReference, Impl::kFast}) {
    const std::string p = std::string("errors/a8 ") + impl_name(impl) + ": ";
    expect_bad_q4_refs(p, w, [&](WeightRef r) { return run(r, impl); });
    expect_error(p + "n = 0", IA, run(w.ref, impl, 0));
  }
  expect_error("errors/a8: Impl::kCuda", IA, run(w.ref, Impl::kCuda));
}

void run_tests() {
  // k: a multiple of 128 or not (1-3 trailing 32-blocks after the 128-input chunks); rows: not
  // multiples of 16 (the kernels' row strips); n = 1..9 around the GEMM's 8- and 4-token tiles.
  for (int bits : {4, 8})
    for (int64_t group : {32, 64, 128})
      for (auto [n, rows, mult] : std::vector<std::array<int64_t, 3>>{
               {1, 1, 1}, {1, 7, 3}, {2, 16, 5}, {3, 13, 1}, {4, 33, 2}, {5, 17, 7}, {6, 20, 3},
               {7, 9, 2}, {8, 16, 1}, {9, 37, 3}, {1, 130, 4}, {17, 19, 2}})
        for (bool act : {false, true})
          test_a8(n, rows, group * mult, bits, group, act, (rows + group) % 2 == 1);
  for (int64_t n : {1, 5}) {
    test_a8(n, 21, 896, 8, 896, false, true);  // int8 per channel (sr3d quantize)
    test_a8(n, 21, 896, 4, 896, true, false);
    test_a8(n, 18, 160, 4, 32, false, true, 0);   // zeros at the extremes
    test_a8(n, 18, 160, 4, 32, true, false, 15);
    test_a8(n, 18, 160, 8, 160, false, true, 0);
    test_a8(n, 18, 160, 8, 32, false, false, 255);
    test_a8(n, 18, 160, 8, 160, true, true, 128);
    test_a8(n, 35, 1184, 4, 32, true, true);    // 37 groups: 16-group transposes + a 5-group tail
    test_a8(n, 35, 2048, 8, 64, false, false);  // 32 groups
  }
  test_fallback();
  test_multi();
  test_errors();
}

void run_bench(const std::string& device, std::vector<BenchRow>& rows) {
  if (device != "cpu" && device != "all") return;
  const double peak = measure_cpu_peak(rows);
  const int thr = cpu_threads();
  const int64_t group = 128;
  // Decode GEMV: the 0.5B model's MLP down projection (4864 -> 896) and an 8B one.
  for (auto [in, out] : std::vector<std::array<int64_t, 2>>{{4864, 896}, {18944, 3584}}) {
    const std::vector<float> x = uniform_floats(in, 1);
    std::vector<float> y(static_cast<size_t>(out));
    for (int bits : {8, 4}) {
      QW w = make_q(out, in, bits, group, false, 3);
      const double bytes = in * out * bits / 8.0 + out * (in / group) * 5.0;
      const double ms0 = cpu_median_ms([&] { linear(x.data(), 1, w.ref, nullptr, y.data(), Impl::kFast); });
      rows.push_back(make_row("linear", fmt("gemv int%d g%" PRId64 " %" PRId64 "->%" PRId64 " exact", bits, group, in, out),
                              "cpu", thr, ms0, bytes, peak, kCpuCacheBytes));
      const double ms = cpu_median_ms([&] { linear_a8(x.data(), 1, w.ref, nullptr, y.data(), Impl::kFast); });
      rows.push_back(make_row("linear_a8", fmt("gemv int%d g%" PRId64 " %" PRId64 "->%" PRId64 " a8 %s", bits, group, in, out,
                                               cpu::a8_isa_name()),
                              "cpu", thr, ms, bytes, peak, kCpuCacheBytes));
    }
  }
  // Prefill GEMM: 128 tokens through the 0.5B model's MLP up projection (896 -> 4864).
  const int64_t n = 128, gin = 896, gout = 4864;
  const std::vector<float> xg = uniform_floats(n * gin, 2);
  std::vector<float> yg(static_cast<size_t>(n * gout));
  for (int bits : {8, 4}) {
    QW w = make_q(gout, gin, bits, group, false, 4);
    const double bytes = gin * gout * bits / 8.0 + gout * (gin / group) * 5.0;
    const double ms0 = cpu_median_ms([&] { linear(xg.data(), n, w.ref, nullptr, yg.data(), Impl::kFast); });
    rows.push_back(make_row("linear", fmt("gemm int%d g%" PRId64 " n=%" PRId64 " %" PRId64 "->%" PRId64 " exact", bits, group, n, gin, gout),
                            "cpu", thr, ms0, bytes, peak, kCpuCacheBytes));
    const double ms = cpu_median_ms([&] { linear_a8(xg.data(), n, w.ref, nullptr, yg.data(), Impl::kFast); });
    rows.push_back(make_row("linear_a8", fmt("gemm int%d g%" PRId64 " n=%" PRId64 " %" PRId64 "->%" PRId64 " a8 %s", bits, group, n, gin, gout,
                                             cpu::a8_isa_name()),
                            "cpu", thr, ms, bytes, peak, kCpuCacheBytes));
  }
}

}  // namespace

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
