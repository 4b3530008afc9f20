#!/usr/bin/env python3
"""Runs the bf16 tensor-core GEMM (kernels/cuda/gemm_tc.cu) on the CPU, without a GPU, against a
float64 reference.

The kernel's source is taken verbatim from kernels/cuda/gemm_tc.cu (from `constexpr int kTcBM`
to the host side) and compiled with g++ under a small shim of the CUDA execution model: one
std::thread per CUDA thread, a barrier for __syncthreads, cp.async as a plain 16-byte copy (or
zero fill), and mma_bf16_16816 emulated from the fragment layout the PTX ISA documents
(section 9.7.14.5.8, "Matrix Fragments for mma.m16n8k16 with floating point type"): each lane
publishes its A / B / C registers through a per-warp barrier, the 16x16 A and 16x8 B tiles are
rebuilt from all 32 lanes by the documented row / column formulas (written out below
independently of the kernel's shared-memory indexing), and each lane takes its 4 outputs.
So it checks the kernel's fragment indexing, tile edges (M, N, K not multiples of the tile),
the double buffering, the bf16 rounding points, the int4 / int8 dequantization and the epilogue (bias, activation, residual,
residual aliasing the output) against
    ref = act(sum_k bf16(x[m][k]) bf16(w[n][k]) + b[n]) + residual[m][n]   (float64)
with |got - ref| <= 1.2 (1e-5 sum_k |x w| + 1e-5 |b|) + 1e-6 |ref| + 1e-6, every output
poisoned with NaN first and a poisoned guard past the end that must stay untouched.
It says nothing about speed, the real memory model (cp.async visibility, shared-memory bank
conflicts), the hardware's accumulation order inside one mma, or the compiled code: those
are only exercised on a GPU (tests_cpp/nn_cuda_tests.cc, linear_tc cases, SR3D_CUDA_TC).
Usage: python3 tests_cpp/emulate/gemm_tc_emu.py  (needs g++ with C++20; a minute or two).
"""
import sys

from cuda_shim import PRELUDE, RUN_GRID, between, compile_and_run, source


SHIM = PRELUDE + r'''

enum class WType : int32_t { kF32 = 0, kF16 = 1, kBF16 = 2, kQ4 = 3, kQ8 = 4 };
enum class Act : int32_t { kGeluTanh = 0, kGeluErf = 1, kSilu = 2 };
constexpr int kNoAct = -1;
inline float act_apply(float x, int act) {  // nn_common.cuh's formulas
  switch (act) {
    case 0: return 0.5f * x * (1.f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case 1: return 0.5f * x * (1.f + std::erf(x * 0.7071067811865476f));
    case 2: return x / (1.f + std::exp(-x));
    default: return x;
  }
}
inline double act_ref(double x, int act) {
  switch (act) {
    case 0: return 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case 1: return 0.5 * x * (1 + std::erf(x * 0.7071067811865476));
    case 2: return x / (1 + std::exp(-x));
    default: return x;
  }
}
inline float half_to_float(uint16_t h) {  // exact (normal and subnormal; no inf / NaN drawn)
  const int e = (h >> 10) & 31, m = h & 1023;
  const float v = e ? std::ldexp(1.f + m / 1024.f, e - 15) : std::ldexp(m / 1024.f, -14);
  return (h & 0x8000) ? -v : v;
}
inline uint16_t bf16_rn(float f) {  // round to nearest even (finite values)
  uint32_t u = __float_as_uint(f);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_float(uint16_t b) { return __uint_as_float(static_cast<uint32_t>(b) << 16); }
template <WType T>
inline void unpack2(uint32_t u, float* f) {
  if constexpr (T == WType::kBF16) {
    f[0] = bf16_to_float(u & 0xffff);
    f[1] = bf16_to_float(u >> 16);
  } else {
    f[0] = half_to_float(u & 0xffff);
    f[1] = half_to_float(u >> 16);
  }
}

// ---- mma.cuh, emulated --------------------------------------------------------------------
#define SR3D_TC_BODY 1
inline uint32_t bf16x2_rn(float lo, float hi) {
  return static_cast<uint32_t>(bf16_rn(lo)) | (static_cast<uint32_t>(bf16_rn(hi)) << 16);
}
inline void cp_async16(void* smem, const void* gmem, bool valid) {
  if (valid) std::memcpy(smem, gmem, 16);
  else std::memset(smem, 0, 16);
}
inline void cp_async_wait_all() {}
struct WarpRegs { uint32_t a[32][4]; uint32_t b[32][2]; float c[32][4]; };
WarpRegs g_regs[32];
long g_mma_calls = 0;
// PTX ISA 9.7.14.5.8: groupID = lane >> 2, threadID_in_group = lane % 4; register r of A holds
// a(2r) (low half) and a(2r+1); of B b(2r), b(2r+1).
inline int a_row(int lane, int i) { return (lane >> 2) + ((i >= 2 && i < 4) || i >= 6 ? 8 : 0); }
inline int a_col(int lane, int i) { return (lane % 4) * 2 + (i & 1) + (i >= 4 ? 8 : 0); }
inline int b_row(int lane, int i) { return (lane % 4) * 2 + (i & 1) + (i >= 2 ? 8 : 0); }
inline int b_col(int lane, int) { return lane >> 2; }
inline int c_row(int lane, int i) { return (lane >> 2) + (i >= 2 ? 8 : 0); }
inline int c_col(int lane, int i) { return (lane % 4) * 2 + (i & 1); }
inline void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  const int t = threadIdx.x, w = t / 32, lane = t % 32;
  WarpRegs& R = g_regs[w];
  std::memcpy(R.a[lane], a, sizeof a);
  std::memcpy(R.b[lane], b, sizeof b);
  std::memcpy(R.c[lane], d, sizeof d);
  g_warp[w]->arrive_and_wait();
  double A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    for (int i = 0; i < 8; ++i) {
      const uint32_t reg = R.a[l][i / 2];
      A[a_row(l, i)][a_col(l, i)] = bf16_to_float(i & 1 ? reg >> 16 : reg & 0xffff);
    }
    for (int i = 0; i < 4; ++i) {
      const uint32_t reg = R.b[l][i / 2];
      B[b_row(l, i)][b_col(l, i)] = bf16_to_float(i & 1 ? reg >> 16 : reg & 0xffff);
    }
  }
  float out[4];
  for (int i = 0; i < 4; ++i) {
    double s = R.c[lane][i];
    for (int k = 0; k < 16; ++k) s += A[c_row(lane, i)][k] * B[k][c_col(lane, i)];
    out[i] = static_cast<float>(s);
  }
  if (lane == 0 && w == 0) ++g_mma_calls;
  g_warp[w]->arrive_and_wait();  // every lane has read the registers before the next call
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}
'''

DRIVER = RUN_GRID + r'''
constexpr int64_t kGuard = 64;
template <WType T>
void one(int64_t M, int64_t N, int64_t K, bool bias, int act, int residual, uint64_t seed, int64_t G = 8) {
  // residual: 0 none, 1 a separate array, 2 aliasing the output
  std::mt19937_64 r(seed);
  auto uni = [&] { return ((int64_t)(r() % 200001) - 100000) * 1e-5; };
  std::vector<float> x(M * K), wf(N * K), b(N), res(M * N);
  for (auto& v : x) v = uni();
  for (auto& v : wf) v = uni();
  for (auto& v : b) v = uni();
  for (auto& v : res) v = uni();
  // W in its dtype; wq: the value the kernel sees after rounding to bf16.
  std::vector<float> w32 = wf;
  std::vector<uint16_t> w16(N * K);
  std::vector<double> wq(N * K);
  // int4 / int8: q [N][K * bits / 8], scales / zeros [N][K / G] (weights.h).
  constexpr int bits = T == WType::kQ4 ? 4 : 8;
  std::vector<uint8_t> qb(N * K * bits / 8), zs(N * (K / G));
  std::vector<float> sc(N * (K / G));
  for (auto& v : qb) v = r() & 255;
  for (auto& v : zs) v = r() % (bits == 4 ? 16 : 256);
  for (auto& v : sc) v = 0.001 + (r() % 1000) * 1e-5;
  for (int64_t i = 0; i < N * K; ++i) {
    const int64_t row = i / K, k = i % K, gi = row * (K / G) + k / G;
    if constexpr (T == WType::kQ4 || T == WType::kQ8) {
      const int b = qb[bits == 4 ? row * (K / 2) + k / 2 : i];
      const int q = bits == 4 ? (k & 1 ? b >> 4 : b & 15) : b;
      wq[i] = bf16_to_float(bf16_rn(sc[gi] * static_cast<float>(q - zs[gi])));
    } else if constexpr (T == WType::kF32) {
      wq[i] = bf16_to_float(bf16_rn(w32[i]));
    } else if constexpr (T == WType::kBF16) {
      w16[i] = bf16_rn(wf[i]);
      wq[i] = bf16_to_float(w16[i]);
    } else {  // a float16 weight: any 16-bit pattern of a normal number in (-1, 1)
      const uint16_t h = static_cast<uint16_t>(((r() & 1) << 15) | ((1 + r() % 14) << 10) | (r() & 1023));
      w16[i] = h;
      wq[i] = bf16_to_float(bf16_rn(half_to_float(h)));
    }
  }
  const void* wp = T == WType::kF32 ? static_cast<const void*>(w32.data())
                 : T == WType::kQ4 || T == WType::kQ8 ? static_cast<const void*>(qb.data())
                                                      : static_cast<const void*>(w16.data());
  TcQuant qz;
  qz.scales = sc.data(); qz.zeros = zs.data(); qz.group = G;
  std::vector<float> y(M * N + kGuard, NAN);
  if (residual == 2) std::copy(res.begin(), res.end(), y.begin());
  const float* rp = residual == 1 ? res.data() : residual == 2 ? y.data() : nullptr;
  const long calls0 = g_mma_calls;
  run_grid((N + kTcBN - 1) / kTcBN, (M + kTcBM - 1) / kTcBM, kTcThreads, [&] {
    gemm_tc_kernel<T>(x.data(), wp, bias ? b.data() : nullptr, rp, y.data(), M, N, K, act, qz);
  });
  double worst = 0;
  int64_t bad = -1;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double p = (double)bf16_to_float(bf16_rn(x[m * K + k])) * wq[n * K + k];
        s += p;
        mag += std::fabs(p);
      }
      if (bias) { s += b[n]; mag += std::fabs(b[n]); }
      double ref = act_ref(s, act);
      if (residual) ref += res[m * N + n];
      const double tol = 1.2 * 1e-5 * mag + 1e-6 * std::fabs(ref) + 1e-6;
      const double e = std::fabs((double)y[m * N + n] - ref) / tol;
      if (!(e <= worst)) { worst = e; bad = m * N + n; }
    }
  int guard_ok = 1;
  for (int64_t i = M * N; i < M * N + kGuard; ++i) guard_ok &= std::isnan(y[i]) ? 1 : 0;
  const bool ok = worst <= 1 && guard_ok;
  if (!ok) ++fails;
  static const char* tn[] = {"f32", "f16", "bf16", "int4", "int8"};
  std::printf("%s %-4s M %4ld N %4ld K %5ld bias %d act %2d residual %s: worst ratio to tolerance %.3g%s (%ld mma per warp 0)\n",
              ok ? "ok  " : "FAIL", tn[(int)T], (long)M, (long)N, (long)K, bias, act,
              residual == 0 ? "none " : residual == 1 ? "array" : "alias", worst,
              guard_ok ? "" : ", WROTE PAST THE END", g_mma_calls - calls0);
  if (!ok && bad >= 0) std::printf("     worst at m %ld n %ld: got %g\n", (long)(bad / N), (long)(bad % N), y[bad]);
}

int main() {
  one<WType::kBF16>(5, 7, 8, true, kNoAct, 1, 1);
  one<WType::kF32>(17, 129, 24, true, (int)Act::kGeluTanh, 1, 2);
  one<WType::kF16>(130, 7, 24, false, (int)Act::kSilu, 2, 3);
  one<WType::kBF16>(130, 129, 24, true, (int)Act::kGeluErf, 2, 4);
  one<WType::kBF16>(17, 129, 1152, true, kNoAct, 0, 5);
  one<WType::kF16>(5, 129, 1152, true, (int)Act::kGeluTanh, 1, 6);
  one<WType::kF32>(130, 7, 1152, false, kNoAct, 1, 7);
  one<WType::kBF16>(130, 129, 1152, true, (int)Act::kSilu, 1, 8);
  one<WType::kQ4>(17, 129, 24, true, kNoAct, 1, 9, 8);
  one<WType::kQ4>(130, 7, 1152, false, (int)Act::kGeluTanh, 2, 10, 128);
  one<WType::kQ8>(5, 129, 64, true, kNoAct, 0, 11, 16);
  one<WType::kQ8>(130, 129, 1152, true, (int)Act::kSilu, 1, 12, 64);
  std::printf("%d failed\n", fails);
  return fails != 0;
}
'''


def main():
    kernel = between(source('kernels/cuda/gemm_tc.cu'), 'constexpr int kTcBM = ', '// ---- host side')
    return compile_and_run(SHIM + kernel + DRIVER)

if __name__ == '__main__':
    sys.exit(main())
