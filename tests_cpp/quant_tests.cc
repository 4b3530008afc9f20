// Standalone tests and a benchmark of int4/int8 Linear weights (weights.h's quantized
// WeightRef, linear.h); no Node. Command line as every tests_cpp executable (harness.h):
//
//   sr3d_quant_tests [--filter SUBSTR]   the quantized reference bit-exact to the float32
//                                        reference over the weight dequantized here; the fast
//                                        path bit-exact to linear.h's stream arithmetic written
//                                        out here, on every ISA the CPU has (AVX-512, AVX2, the
//                                        portable kernels), one row == a batch, any thread
//                                        count, and within rtol 1e-5 of sum_k |x_k w_k| of the
//                                        reference; linear_multi_fast with mixed weights;
//                                        typed errors
//   sr3d_quant_tests --bench [--json] [--json-out FILE]   decode GEMV, bf16 / int8 / int4
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "harness.h"
#include "quant_weights.h"
#include "linear.h"

using namespace sr3d;
using namespace sr3d_test;

namespace {

std::vector<float> run_linear(const std::vector<float>& x, int64_t n, const WeightRef& w,
                              const float* bias, Impl impl) {
  std::vector<float> y(static_cast<size_t>(n * w.rows));
  linear(x.data(), n, w, bias, y.data(), impl);
  return y;
}

// linear.h's fast-path arithmetic for quantized weights, written out from its comment: the
// stream (stored order; int4 128-blocks in nibble-of-dword order), 16 lanes of fma, the fixed tree, the
// tail by fma, the bias. Weights come from QW's own dequantization, not the kernel's.
std::vector<float> stream_arithmetic(const std::vector<float>& x, int64_t n, const QW& w, int bits,
                                     bool act_order, const float* bias) {
  const int64_t rows = w.ref.rows, k = w.ref.cols, m = bits == 4 ? k / 128 * 128 : k / 16 * 16;
  std::vector<int64_t> order(static_cast<size_t>(k));  // stream position -> stored column
  for (int64_t j = 0; j < k; ++j) order[j] = j;
  for (int64_t c = 0; bits == 4 && c < m; c += 128)
    for (int t = 0; t < 8; ++t)
      for (int l = 0; l < 16; ++l) order[c + 16 * t + l] = c + 8 * l + t;
  std::vector<float> y(static_cast<size_t>(n * rows));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      auto xw = [&](int64_t p, float* xv, float* wv) {
        const int64_t j = order[p], in = act_order ? w.perm[j] : j;
        *xv = x[i * k + in];
        *wv = w.deq[r * k + in];
      };
      float a[16] = {};
      for (int64_t p = 0; p < m; p += 16)
        for (int l = 0; l < 16; ++l) {
          float xv, wv;
          xw(p + l, &xv, &wv);
          a[l] = std::fma(xv, wv, a[l]);
        }
      float b[8];
      for (int l = 0; l < 8; ++l) b[l] = a[l] + a[l + 8];
      float t = ((b[0] + b[4]) + (b[2] + b[6])) + ((b[1] + b[5]) + (b[3] + b[7]));
      for (int64_t p = m; p < k; ++p) {
        float xv, wv;
        xw(p, &xv, &wv);
        t = std::fma(xv, wv, t);
      }
      y[i * rows + r] = bias ? t + bias[r] : t;
    }
  return y;
}

void test_quant_linear(int64_t n, int64_t rows, int64_t cols, int bits, int64_t group,
                       bool act_order, bool with_bias) {
  const std::string name = fmt("linear q%d n=%" PRId64 " %" PRId64 "x%" PRId64 " group %" PRId64 "%s%s",
                               bits, n, rows, cols, group, act_order ? " act-order" : "",
                               with_bias ? " bias" : "");
  if (!begin_case(name)) return;
  const uint64_t seed = static_cast<uint64_t>(n * 1000003 + rows * 131 + cols * 7 + bits + group);
  QW w = make_q(rows, cols, bits, group, act_order, seed);
  const std::vector<float> x = uniform_floats(n * cols, seed + 1);
  const std::vector<float> b = uniform_floats(rows, seed + 2);
  const float* bias = with_bias ? b.data() : nullptr;
  const std::vector<int64_t> shape{n, rows};

  const auto ref = run_linear(x, n, w.ref, bias, Impl::kReference);
  check_floats(name + " reference == f32 reference of the dequantized weight", ref,
               run_linear(x, n, w.dense, bias, Impl::kReference), shape, 0);
  const auto fast = run_linear(x, n, w.ref, bias, Impl::kFast);
  check_floats(name + " fast == linear.h's stream arithmetic", fast,
               stream_arithmetic(x, n, w, bits, act_order, bias), shape, 0);
  // Every kernel family this CPU has, bit-identical to the portable one.
  const int best = cpu::set_quant_isa(-1);
  for (int isa = 0; isa <= best; ++isa) {
    cpu::set_quant_isa(isa);
    const auto yi = run_linear(x, n, w.ref, bias, Impl::kFast);
    cpu::set_quant_isa(-1);
    check_floats(name + fmt(" fast, isa %d (2 AVX-512, 1 AVX2, 0 portable) == default", isa), yi,
                 fast, shape, 0);
  }
  check_close(name + " fast vs reference", fast, ref, dot_tolerance(x, n, w, bias), 0, shape);
  // One input row at a time (an engine's decode steps) == the batch (its prefill).
  std::vector<float> rowwise(fast.size());
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> xi(x.begin() + i * cols, x.begin() + (i + 1) * cols);
    auto yi = run_linear(xi, 1, w.ref, bias, Impl::kFast);
    std::copy(yi.begin(), yi.end(), rowwise.begin() + i * rows);
  }
  check_floats(name + " fast one row at a time == batch", rowwise, fast, shape, 0);
  for (int t : {1, 3}) {
    set_cpu_threads(t);
    auto yt = run_linear(x, n, w.ref, bias, Impl::kFast);
    set_cpu_threads(0);
    check_floats(name + fmt(" fast with %d threads == default", t), yt, fast, shape, 0);
  }
}

void test_multi() {
  const std::string name = "linear_multi_fast: q4, q8 (act-order) and f32 sharing x";
  if (!begin_case(name)) return;
  const int64_t n = 5, cols = 256;
  QW a = make_q(37, cols, 4, 64, false, 11), b = make_q(19, cols, 8, 128, true, 12);
  std::vector<float> c = uniform_floats(23 * cols, 13);
  const WeightRef ws[3] = {a.ref, b.ref, WeightRef{c.data(), WType::kF32, 23, cols}};
  const std::vector<float> x = uniform_floats(n * cols, 14), bias = uniform_floats(37, 15);
  std::vector<float> y0(n * 37), y1(n * 19), y2(n * 23);
  const float* biases[3] = {bias.data(), nullptr, nullptr};
  float* ys[3] = {y0.data(), y1.data(), y2.data()};
  cpu::linear_multi_fast(x.data(), n, ws, biases, ys, 3);
  check_floats(name + " [0]", y0, run_linear(x, n, ws[0], bias.data(), Impl::kFast), {n, 37}, 0);
  check_floats(name + " [1]", y1, run_linear(x, n, ws[1], nullptr, Impl::kFast), {n, 19}, 0);
  check_floats(name + " [2]", y2, run_linear(x, n, ws[2], nullptr, Impl::kFast), {n, 23}, 0);
}

void test_errors() {
  QW w = make_q(4, 64, 4, 32, true, 21);
  const std::vector<float> x = uniform_floats(64, 22);
  std::vector<float> y(4);
  auto run = [&](WeightRef r, Impl impl = Impl::kFast) {
    return [&x, &y, r, impl] { linear(x.data(), 1, r, nullptr, y.data(), impl); };
  };
  for (Impl impl : {Impl::kReference, Impl::kFast}) {
    expect_bad_q4_refs(std::string("errors/q ") + impl_name(impl) + ": ", w,
                       [&](WeightRef r) { return run(r, impl); });
  }
}

void run_tests() {
  // rows: not multiples of 8 or 16 (the fast path's row blocks); cols: == group, several groups
  for (int bits : {4, 8})
    for (int64_t group : {32, 64, 128})
      for (auto [n, rows, mult] : std::vector<std::array<int64_t, 3>>{
               {1, 1, 1}, {1, 7, 2}, {3, 13, 1}, {17, 37, 3}, {1, 130, 4}, {70, 19, 2}})
        for (bool act : {false, true})
          test_quant_linear(n, rows, group * mult, bits, group, act, (rows + group) % 2 == 1);
  test_quant_linear(2, 9, 18, 4, 2, false, true);   // the smallest int4 group
  test_quant_linear(2, 9, 18, 8, 3, true, false);   // int8 allows odd groups
  // Groups that do not align with the 128- / 16-input blocks (the scratch kernels, in decode
  // too), tails after the blocks, one group per row (GPTQ group -1).
  for (int64_t n : {1, 6}) {
    test_quant_linear(n, 11, 272, 4, 16, false, true);  // 2 int4 blocks + a 16-input tail
    test_quant_linear(n, 11, 272, 4, 16, true, false);
    test_quant_linear(n, 10, 290, 4, 10, false, true);  // groups straddle blocks
    test_quant_linear(n, 10, 56, 8, 8, true, true);     // 3 int8 blocks + 8-input tail
    test_quant_linear(n, 21, 896, 8, 896, false, true); // per channel
    test_quant_linear(n, 21, 896, 4, 896, true, false);
    test_quant_linear(n, 9, 40, 8, 40, false, false);   // cols = group, with a tail
  }
  test_multi();
  test_errors();
}

void run_bench(const std::string& device, std::vector<BenchRow>& rows) {
  if (device != "cpu" && device != "all") return;
  const double peak = measure_cpu_peak(rows);
  const int thr = cpu_threads();
  // The MLP down projection of an 8B LLM (decode GEMV): bytes = weights + scales + zeros.
  const int64_t in = 18944, out = 3584, group = 128;
  const std::vector<float> x = uniform_floats(in, 1);
  std::vector<float> y(static_cast<size_t>(out));
  {
    std::vector<uint16_t> w(static_cast<size_t>(in * out), 0x3c00);
    const WeightRef r{w.data(), WType::kBF16, out, in};
    const double ms = cpu_median_ms([&] { linear(x.data(), 1, r, nullptr, y.data(), Impl::kFast); });
    rows.push_back(make_row("linear", fmt("gemv bf16 %" PRId64 "->%" PRId64, in, out), "cpu", thr, ms,
                            2.0 * in * out, peak, kCpuCacheBytes));
  }
  // Each kernel family this CPU has (2 AVX-512, 1 AVX2; the portable one is for CPUs without
  // them and for the tests: its fma is a libm call on x86-64 without FMA).
  const int best = cpu::set_quant_isa(-1);
  for (int bits : {8, 4}) {
    QW w = make_q(out, in, bits, group, false, 3);
    const double bytes = in * out * bits / 8.0 + out * (in / group) * 5.0;
    for (int isa = best; isa >= 1; --isa) {
      cpu::set_quant_isa(isa);
      const double ms = cpu_median_ms([&] { linear(x.data(), 1, w.ref, nullptr, y.data(), Impl::kFast); });
      rows.push_back(make_row("linear", fmt("gemv int%d g%" PRId64 " %" PRId64 "->%" PRId64 " %s", bits, group, in, out,
                                            isa == 2 ? "avx512" : "avx2"),
                              "cpu", thr, ms, bytes, peak, kCpuCacheBytes));
    }
    cpu::set_quant_isa(-1);
  }
  // Prefill GEMM: 128 tokens through the 0.5B model's MLP up projection (896 -> 4864); GB/s
  // here is weight bytes over time (a compute-bound row: compare the times).
  const int64_t n = 128, gin = 896, gout = 4864;
  const std::vector<float> xg = uniform_floats(n * gin, 2);
  std::vector<float> yg(static_cast<size_t>(n * gout));
  {
    std::vector<uint16_t> w(static_cast<size_t>(gin * gout), 0x3c00);
    const WeightRef r{w.data(), WType::kBF16, gout, gin};
    const double ms = cpu_median_ms([&] { linear(xg.data(), n, r, nullptr, yg.data(), Impl::kFast); });
    rows.push_back(make_row("linear", fmt("gemm bf16 n=%" PRId64 " %" PRId64 "->%" PRId64, n, gin, gout), "cpu", thr,
                            ms, 2.0 * gin * gout, peak, kCpuCacheBytes));
  }
  for (int bits : {8, 4}) {
    QW w = make_q(gout, gin, bits, group, false, 4);
    const double ms = cpu_median_ms([&] { linear(xg.data(), n, w.ref, nullptr, yg.data(), Impl::kFast); });
    rows.push_back(make_row("linear", fmt("gemm int%d g%" PRId64 " n=%" PRId64 " %" PRId64 "->%" PRId64, bits, group, n, gin, gout),
                            "cpu", thr, ms, gin * gout * bits / 8.0 + gout * (gin / group) * 5.0, peak, kCpuCacheBytes));
  }
}

}  // namespace

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
