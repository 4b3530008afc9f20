// A random quantized weight in sr3d's layout (kernels/weights.h) and its float32
// dequantization computed from the definition, independently of the kernels: shared by the CPU
// (quant_tests) and CUDA (quant_cuda_tests) quantized-Linear tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "harness.h"
#include "weights.h"

namespace sr3d_test {
using sr3d::WeightRef;
using sr3d::WType;

struct QW {
  std::vector<uint8_t> q, zeros;
  std::vector<float> scales, deq;
  std::vector<int32_t> perm;
  WeightRef ref, dense;
};
inline std::vector<int32_t> shuffled(int64_t n, Rng& r) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[r.integer(0, i)]);
  return p;
}
inline QW make_q(int64_t rows, int64_t cols, int bits, int64_t group, bool act_order, uint64_t seed,
                 const std::vector<int32_t>* perm = nullptr, double scale_hi = 0.05) {
  QW w;
  Rng r(seed);
  const int64_t ng = cols / group, rb = cols * bits / 8, qmax = bits == 4 ? 15 : 255;
  w.q.resize(static_cast<size_t>(rows * rb));
  for (auto& b : w.q) b = static_cast<uint8_t>(r.integer(0, 255));
  w.scales.resize(static_cast<size_t>(rows * ng));
  w.zeros.resize(w.scales.size());
  for (size_t i = 0; i < w.scales.size(); ++i) {
    w.scales[i] = static_cast<float>(r.uniform(0.001, scale_hi));
    w.zeros[i] = static_cast<uint8_t>(r.integer(0, qmax));
  }
  if (perm) w.perm = *perm;
  else if (act_order) w.perm = shuffled(cols, r);
  const bool permuted = !w.perm.empty();
  w.deq.assign(static_cast<size_t>(rows * cols), 0.f);
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t j = 0; j < cols; ++j) {
      const uint8_t b = w.q[row * rb + (bits == 4 ? j / 2 : j)];
      const int qv = bits == 4 ? (j % 2 ? b >> 4 : b & 15) : b;
      const int64_t g = row * ng + j / group;
      w.deq[row * cols + (permuted ? w.perm[j] : j)] = w.scales[g] * static_cast<float>(qv - w.zeros[g]);
    }
  w.ref = WeightRef{w.q.data(), bits == 4 ? WType::kQ4 : WType::kQ8, rows, cols,
                    w.scales.data(), w.zeros.data(), group, permuted ? w.perm.data() : nullptr};
  w.dense = WeightRef{w.deq.data(), WType::kF32, rows, cols};
  return w;
}


// 1e-5 sum_k |x_k w_k| (+|b|) per output.
inline std::vector<double> dot_tolerance(const std::vector<float>& x, int64_t n, const QW& w,
                                  const float* bias) {
  const int64_t rows = w.ref.rows, cols = w.ref.cols;
  std::vector<double> atol(static_cast<size_t>(n * rows));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      double s = bias ? std::fabs(bias[r]) : 0;
      for (int64_t c = 0; c < cols; ++c) s += std::fabs(double(x[i * cols + c]) * w.deq[r * cols + c]);
      atol[i * rows + r] = 1e-5 * s;
    }
  return atol;
}
// The malformed int4 weights every quantized entry point must refuse with kInvalidArgument:
// w is make_q(4, 64, 4, 32, true, ...); run(r) returns the call on weight r.
template <class Run>
void expect_bad_q4_refs(const std::string& p, const QW& w, Run run) {
  const auto IA = sr3d::ErrorKind::kInvalidArgument;
  WeightRef r = w.ref;
  r.group = 48;
  expect_error(p + "group not dividing cols", IA, run(r));
  r.group = 0;
  expect_error(p + "group 0", IA, run(r));
  r = w.ref;
  r.cols = 62, r.group = 31;
  expect_error(p + "odd int4 group", IA, run(r));
  r = w.ref;
  r.scales = nullptr;
  expect_error(p + "null scales", IA, run(r));
  r = w.ref;
  r.zeros = nullptr;
  expect_error(p + "null zeros", IA, run(r));
  r = w.ref;
  r.data = nullptr;
  expect_error(p + "null q", IA, run(r));
  std::vector<int32_t> dup = w.perm;
  dup[5] = dup[6];
  r = w.ref;
  r.perm = dup.data();
  expect_error(p + "perm with a repeated input", IA, run(r));
  std::vector<int32_t> out = w.perm;
  out[0] = 64;
  r.perm = out.data();
  expect_error(p + "perm out of range", IA, run(r));
  out[0] = -1;
  expect_error(p + "perm negative", IA, run(r));
  r = w.ref;
  r.type = static_cast<WType>(5);
  expect_error(p + "unknown dtype code", IA, run(r));
}

}  // namespace sr3d_test
