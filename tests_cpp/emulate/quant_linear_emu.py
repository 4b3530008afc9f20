#!/usr/bin/env python3
"""Runs the int4 / int8 CUDA Linear kernels on the CPU, without a GPU, against a float64 reference.

The kernels' source is taken verbatim from kernels/cuda/linear_q.cu (the GEMV) and
kernels/cuda/linear.cu (the tiled GEMM with its dequantizing tile loads), compiled with g++
under a small shim of the CUDA execution model (one std::thread per CUDA thread, a barrier for
__syncthreads, warp sums through a per-warp barrier), and checked per output against
|got - ref| <= 1e-5 sum_k |x_k w_k| (+|b| + |residual|). It catches indexing, nibble-order,
dequantization and reduction bugs before a device run; it says nothing about speed, and the
real compiler, memory model and warp shuffles are only exercised on a GPU
(tests_cpp/quant_cuda_tests.cc). Usage: python3 tests_cpp/emulate/quant_linear_emu.py
(needs g++ with C++20; about a minute).
"""
import sys

from cuda_shim import PRELUDE, RUN_GRID, between, compile_and_run, source


SHIM = PRELUDE + r'''
float g_buf[1024];
inline float warp_sum(float v) {
  const int t = threadIdx.x, w = t / 32;
  g_buf[t] = v;
  g_warp[w]->arrive_and_wait();
  float s = 0;
  for (int l = 0; l < 32; ++l) s += g_buf[w * 32 + l];
  g_warp[w]->arrive_and_wait();
  return s;
}
inline float act_apply(float v, int) { return v; }
template <int NR>
inline void gemv_store_rows(const float (&acc)[NR], int n, int lane, int64_t row, int64_t N,
                            const float* bias, int act, const float* residual, float* y) {
  for (int r = 0; r < NR; ++r) {
    if (r < n) {
      float v = warp_sum(acc[r]);
      if (lane == 0) {
        if (bias) v += bias[row];
        v = act_apply(v, act);
        if (residual) v += residual[r * N + row];
        y[r * N + row] = v;
      }
    }
  }
}
constexpr int kNoAct = -1;
enum class WType : int32_t { kF32 = 0, kF16 = 1, kBF16 = 2, kQ4 = 3, kQ8 = 4 };
template <WType T> inline void unpack2(uint32_t, float*) {}
template <WType T> inline float ldw(const void*, int64_t) { return 0.f; }
constexpr int64_t kQuantGemvMaxRows = 8;
'''

DRIVER = RUN_GRID + r'''
enum Kernel { kVec, kScalar, kGemm };
template <int BITS, int NR, int RB>
void one(Kernel kernel, int n, int64_t N, int64_t K, int64_t G, bool perm, unsigned threads, uint64_t seed) {
  std::mt19937_64 r(seed);
  const int64_t rb = K * BITS / 8, ng = K / G;
  std::vector<uint8_t> q(N * rb), z(N * ng);
  std::vector<float> s(N * ng), x(n * K), bias(N), res(n * N), y(n * N, NAN);
  std::vector<int32_t> p(K);
  for (auto& v : q) v = r() & 255;
  for (auto& v : z) v = r() % (BITS == 4 ? 16 : 256);
  for (auto& v : s) v = 0.001 + (r() % 1000) * 1e-5;
  for (auto& v : x) v = ((int64_t)(r() % 2001) - 1000) * 1e-3;
  for (auto& v : bias) v = ((int64_t)(r() % 2001) - 1000) * 1e-3;
  for (auto& v : res) v = ((int64_t)(r() % 2001) - 1000) * 1e-3;
  for (int64_t i = 0; i < K; ++i) p[i] = i;
  if (perm) std::shuffle(p.begin(), p.end(), r);
  const int32_t* pp = perm ? p.data() : nullptr;
  constexpr WType T = BITS == 4 ? WType::kQ4 : WType::kQ8;
  if (kernel == kScalar) {
    run_grid((N + kScalarWarps - 1) / kScalarWarps, 1, kScalarWarps * 32, [&] {
      gemv_q_scalar_kernel<kQuantGemvMaxRows>(x.data(), n, q.data(), BITS, s.data(), z.data(), pp,
                                               bias.data(), res.data(), y.data(), N, K, G, -1);
    });
  } else if (kernel == kVec) {
    run_grid((N + RB - 1) / RB, 1, threads, [&] {
      if (perm) gemv_q_kernel<BITS, NR, RB, true>(x.data(), n, q.data(), s.data(), z.data(), pp, bias.data(), res.data(), y.data(), N, K, G, -1);
      else gemv_q_kernel<BITS, NR, RB, false>(x.data(), n, q.data(), s.data(), z.data(), pp, bias.data(), res.data(), y.data(), N, K, G, -1);
    });
  } else {
    QuantArgs qa;
    qa.scales = s.data(); qa.zeros = z.data(); qa.group = G; qa.perm = pp;
    const int vec = K % 4 == 0 && G % 4 == 0;
    run_grid((N + kBN - 1) / kBN, (n + kBM - 1) / kBM, kGemmThreads, [&] {
      gemm_kernel<T>(x.data(), q.data(), bias.data(), res.data(), y.data(), n, N, K, -1, vec, qa);
    });
  }
  double worst = 0;
  for (int i = 0; i < n; ++i)
    for (int64_t row = 0; row < N; ++row) {
      double acc = bias[row] + res[i * N + row], mag = std::fabs(bias[row]) + std::fabs(res[i * N + row]);
      for (int64_t j = 0; j < K; ++j) {
        const int b = q[row * rb + (BITS == 4 ? j / 2 : j)];
        const int qv = BITS == 4 ? (j & 1 ? b >> 4 : b & 15) : b;
        const double w = (double)s[row * ng + j / G] * (qv - z[row * ng + j / G]);
        acc += w * x[i * K + p[j]];
        mag += std::fabs(w * x[i * K + p[j]]);
      }
      const double e = std::fabs(y[i * N + row] - acc) / (mag * 1e-5);
      if (!(e <= worst)) worst = e;
    }
  const bool ok = worst <= 1;
  if (!ok) ++fails;
  static const char* names[] = {"gemv", "gemv scalar", "gemm"};
  std::printf("%s %-11s int%d NR %d RB %d n %d N %ld K %ld G %ld perm %d threads %u: worst ratio to tolerance %.3g\n",
              ok ? "ok  " : "FAIL", names[kernel], BITS, NR, RB, n, (long)N, (long)K, (long)G, perm, threads, worst);
}
int main() {
  for (bool perm : {false, true}) {
    one<4, 1, 8>(kVec, 1, 13, 256, 32, perm, 32, 1);
    one<4, 1, 8>(kVec, 1, 37, 4096, 128, perm, 128, 2);
    one<4, 1, 8>(kVec, 1, 9, 2368, 64, perm, 64, 3);
    one<4, 4, 8>(kVec, 3, 19, 512, 64, perm, 32, 4);
    one<4, 4, 8>(kVec, 4, 8, 96, 32, perm, 32, 5);
    one<4, 8, 4>(kVec, 7, 11, 384, 128, perm, 32, 6);
    one<8, 1, 8>(kVec, 1, 17, 512, 16, perm, 32, 7);
    one<8, 1, 8>(kVec, 1, 5, 4096, 4096, perm, 128, 8);
    one<8, 4, 8>(kVec, 2, 23, 160, 32, perm, 32, 9);
    one<8, 8, 4>(kVec, 8, 10, 256, 128, perm, 32, 10);
    one<4, 1, 8>(kScalar, 2, 9, 18, 2, perm, 0, 11);
    one<8, 1, 8>(kScalar, 5, 33, 48, 3, perm, 0, 12);
    one<4, 1, 8>(kGemm, 17, 37, 96, 32, perm, 0, 13);
    one<8, 1, 8>(kGemm, 130, 129, 64, 16, perm, 0, 14);
    one<4, 1, 8>(kGemm, 9, 20, 18, 6, perm, 0, 15);  // the per-element tile loads (6 % 4 != 0)
    one<8, 1, 8>(kGemm, 12, 7, 30, 3, perm, 0, 16);
  }
  std::printf("%d failed\n", fails);
  return fails != 0;
}
'''


def main():
    gemv, gemm = source('kernels/cuda/linear_q.cu'), source('kernels/cuda/linear.cu')
    return compile_and_run(SHIM
                           + between(gemv, 'constexpr int kQuantRowsPerBlock', 'template <int BITS, int NR, int RB>\nvoid launch_vec')
                           + between(gemm, 'constexpr int kBM = ', 'template <WType T>\n__global__ void embed_rows_kernel')
                           + DRIVER)


if __name__ == '__main__':
    sys.exit(main())
