// The tensor-core GEMM of the CUDA Linear (kernels/linear.h): y = act(x . W^T + b) + residual
// with x float32 [M][K], W [N][K] of dtype float32 / float16 / bfloat16 (or int4 / int8
// without act-order, dequantized s * float(q - z) as the reference does), both rounded to bf16
// (nearest even) on their way into shared memory, products accumulated in float32 by
// mma.sync m16n8k16 (mma.cuh), float32 output. linear.cu's linear_launch calls linear_tc_dev
// for n > 4 (int4 / int8: n > 8) and falls back to its fp32 SIMT GEMM when this declines:
// off (SR3D_CUDA_TC unset or 0, the default until a device run has checked this kernel;
// set_tc_gemm for the tests), a GPU below sm_80 or a binary without sm_80+ code for it,
// K % 8 != 0, x or W not 16-byte aligned, or an int4 / int8 weight with act-order or a group
// that is not a multiple of 8.
// Results are bf16-level, not the SIMT kernel's float32.
//
// Napkin math (H200: ~790 TFLOP/s dense bf16 measured with torch, /work/.library/device/
// KINDS.md; 132 SMs at ~1.98 GHz: ~3000 FLOP/clk/SM):
// - SigLIP MLP GEMM, one 448 tile: 1024 tokens x 1152 -> 4304 = 2*1024*1152*4304 = 10.2 GFLOP
//   (13 us at peak; fc1 + fc2 x 27 layers = 0.55 TFLOP per tile). One tile is 8 x 34 = 272 blocks
//   of 128x128: ~1.03 waves at 2 blocks per SM, so a single tile loses ~half a wave; 32 tiles
//   (M = 32768) do not.
// - 8B prefill GEMM, 1600 positions x 3584 -> 18944 (the MLP's gate/up): 2*1600*3584*18944 =
//   217 GFLOP = 0.275 ms at peak; 13 x 148 = 1924 blocks = 7.3 waves.
// - What mma.sync can reach here: per warp and k16 step the 64x32 warp tile issues 16 mma
//   (65536 FLOP) and loads 3 KB of fragments from shared memory (24 32-bit loads); at 128 B/clk
//   per SM that is 24 clk per 16 mma, a ceiling of ~2700 FLOP/clk/SM (~90% of peak). The block
//   reads 16 KB of float32 x + 8 KB of bf16 W per 128x128x32 step (1 MFLOP): 44 FLOP/byte, so
//   the 8B GEMM moves ~5 GB from L2, 0.5 - 0.7 ms at an assumed 7 - 10 TB/s of L2 bandwidth
//   (not measured here). Expect 35 - 50% of peak (280 - 400 TFLOP/s) from this kernel, vs the
//   ~60 TFLOP/s ceiling of the fp32 SIMT one. The float32 output (1600 x 18944 x 4 B =
//   121 MB, 28 us at 4.3 TB/s) is another ~10% of the ideal time.
// - Next steps, in order of payoff: bf16 activations between layers (halves the L2 bytes and
//   drops the conversion), 128x256 block tiles with 64x64 warp tiles (half the fragment bytes
//   per mma), then wgmma + TMA: wgmma is sm_90a-only (an arch-specific build that is not in CI's
//   75;80;87;90 list and would need its own dispatch), which is how cuBLAS reaches ~80% of peak.
//
// Tiles: 128x128 per block, k steps of 32, 256 threads = 8 warps of 64x32 outputs (4 x 4
// mma tiles, 64 accumulators per thread). Shared memory: two stages of A and W tiles as bf16
// pairs, rows of 16 + 4 words: the 4-word pad makes the fragment loads (lane = 4 * row + k
// pair) hit 32 different banks. x is loaded to registers one step ahead, rounded to bf16 and
// stored after the current step's mma; a bf16 W streams with cp.async (no conversion), a
// float32 / float16 W goes through registers like x, an int4 / int8 one is dequantized into
// bf16 registers at the load (8 k of one group per 4- or 8-byte load).
#ifdef SR3D_WITH_CUDA
#include <atomic>
#include <mutex>
#include <type_traits>
#include <vector>

#include "../linear.h"
#include "cuda_util.h"
#include "mma.cuh"
#include "nn.cuh"
#include "nn_common.cuh"

namespace sr3d {
namespace cuda {

namespace {

// ---- the kernel (tests_cpp/emulate/gemm_tc_emu.py compiles from here to "host side") ----

constexpr int kTcBM = 128, kTcBN = 128, kTcThreads = 256;
// The quantized fields of an int4 / int8 W (weights.h; no act-order: linear_tc_dev declines a
// perm); unused for the dense dtypes.
struct TcQuant {
  const float* scales = nullptr;
  const uint8_t* zeros = nullptr;
  int64_t group = 1;
};
#if SR3D_TC_BODY  // mma.cuh: sm_80+ and the host pass; sm_75 gets an empty kernel
constexpr int kTcBK = 32, kTcLd = kTcBK / 2 + 4;  // k per step; words per shared row (+pad)
// Registers of one thread's share of a W tile in flight: 16 floats (float32: four 4-k chunks),
// 2 x 8 halves (float16) or 2 x 8 dequantized bf16 (int4 / int8); nothing for bf16 (cp.async).
template <WType T>
struct TcWStage {
  uint4 v[T == WType::kF32 ? 4 : T == WType::kBF16 ? 1 : 2];
};

// Four consecutive k of row `row` of a float32 matrix [rows][K] (zeros past the edges;
// K % 8 == 0 and 16-byte rows, so a chunk is all in or all out).
__device__ __forceinline__ uint4 tc_load4(const float* p, int64_t row, int64_t rows, int64_t k,
                                          int64_t K) {
  if (row < rows && k < K) return __ldg(reinterpret_cast<const uint4*>(p + row * K + k));
  return make_uint4(0u, 0u, 0u, 0u);
}
// Eight consecutive 16-bit k of row `row` (float16 / bfloat16 W).
__device__ __forceinline__ uint4 tc_load8h(const void* w, int64_t row, int64_t rows, int64_t k,
                                           int64_t K) {
  if (row < rows && k < K)
    return __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w) + row * K + k));
  return make_uint4(0u, 0u, 0u, 0u);
}
// Eight consecutive k of row `row` of an int4 / int8 W, dequantized as the reference does
// (s * float(q - z), one group: group % 8 == 0) and rounded to bf16 pairs; zeros past the edges.
template <WType T>
__device__ __forceinline__ uint4 tc_load8q(const void* w, int64_t row, int64_t rows, int64_t k,
                                           int64_t K, const TcQuant& qz) {
  if (!(row < rows && k < K)) return make_uint4(0u, 0u, 0u, 0u);
  const uint8_t* q = static_cast<const uint8_t*>(w);
  const int64_t gi = row * (K / qz.group) + k / qz.group;
  const float sc = __ldg(qz.scales + gi);
  const int z = __ldg(qz.zeros + gi);
  int qv[8];
  if constexpr (T == WType::kQ4) {
    const uint32_t u = __ldg(reinterpret_cast<const unsigned int*>(q + row * (K / 2) + k / 2));
#pragma unroll
    for (int i = 0; i < 8; ++i) qv[i] = (u >> (4 * i)) & 15;  // k even: the low nibble
  } else {
    const uint2 u = __ldg(reinterpret_cast<const uint2*>(q + row * K + k));
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      qv[i] = (u.x >> (8 * i)) & 255;
      qv[4 + i] = (u.y >> (8 * i)) & 255;
    }
  }
  uint32_t p[4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
    p[i] = bf16x2_rn(__fmul_rn(sc, static_cast<float>(qv[2 * i] - z)),
                     __fmul_rn(sc, static_cast<float>(qv[2 * i + 1] - z)));
  return make_uint4(p[0], p[1], p[2], p[3]);
}
__device__ __forceinline__ uint2 tc_f32x4_to_bf16(const uint4& u) {
  return make_uint2(bf16x2_rn(__uint_as_float(u.x), __uint_as_float(u.y)),
                    bf16x2_rn(__uint_as_float(u.z), __uint_as_float(u.w)));
}
__device__ __forceinline__ uint32_t tc_f16x2_to_bf16(uint32_t u) {
  float f[2];
  unpack2<WType::kF16>(u, f);
  return bf16x2_rn(f[0], f[1]);
}

// x's share of one k step: rows lr + 32 i, k lk .. lk + 3 (8 threads per 128-byte row piece).
__device__ __forceinline__ void tc_load_a(uint4 (&ra)[4], const float* A, int64_t m0, int64_t M,
                                          int64_t k0, int64_t K, int lr, int lk) {
#pragma unroll
  for (int i = 0; i < 4; ++i) ra[i] = tc_load4(A, m0 + lr + 32 * i, M, k0 + lk, K);
}
__device__ __forceinline__ void tc_store_a(uint32_t (*As)[kTcLd], const uint4 (&ra)[4], int lr,
                                           int lk) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
    *reinterpret_cast<uint2*>(&As[lr + 32 * i][lk / 2]) = tc_f32x4_to_bf16(ra[i]);
}

// W's share of one k step. bf16: rows tid/4 + 64 i, k (tid % 4) * 8, 16 bytes each, straight
// to shared memory; float16 the same pieces through registers; float32 as x.
template <WType T>
__device__ __forceinline__ void tc_load_w(TcWStage<T>& rw, uint32_t (*Bs)[kTcLd], const void* W,
                                          int64_t n0, int64_t N, int64_t k0, int64_t K, int tid,
                                          const TcQuant& qz) {
  if constexpr (T == WType::kQ4 || T == WType::kQ8) {
#pragma unroll
    for (int i = 0; i < 2; ++i)
      rw.v[i] = tc_load8q<T>(W, n0 + (tid >> 2) + 64 * i, N, k0 + (tid & 3) * 8, K, qz);
  } else if constexpr (T == WType::kBF16) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = (tid >> 2) + 64 * i, kc = (tid & 3) * 8;
      const int64_t row = n0 + r, k = k0 + kc;
      const bool valid = row < N && k < K;
      const uint16_t* src = static_cast<const uint16_t*>(W) + (valid ? row * K + k : 0);
      cp_async16(&Bs[r][kc / 2], src, valid);
    }
  } else if constexpr (T == WType::kF16) {
#pragma unroll
    for (int i = 0; i < 2; ++i)
      rw.v[i] = tc_load8h(W, n0 + (tid >> 2) + 64 * i, N, k0 + (tid & 3) * 8, K);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      rw.v[i] = tc_load4(static_cast<const float*>(W), n0 + (tid >> 3) + 32 * i, N,
                         k0 + (tid & 7) * 4, K);
  }
}
template <WType T>
__device__ __forceinline__ void tc_store_w(uint32_t (*Bs)[kTcLd], const TcWStage<T>& rw, int tid) {
  if constexpr (T == WType::kF16) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const uint4 u = rw.v[i];
      *reinterpret_cast<uint4*>(&Bs[(tid >> 2) + 64 * i][(tid & 3) * 4]) =
          make_uint4(tc_f16x2_to_bf16(u.x), tc_f16x2_to_bf16(u.y), tc_f16x2_to_bf16(u.z),
                     tc_f16x2_to_bf16(u.w));
    }
  } else if constexpr (T == WType::kF32) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      *reinterpret_cast<uint2*>(&Bs[(tid >> 3) + 32 * i][(tid & 7) * 2]) = tc_f32x4_to_bf16(rw.v[i]);
  } else if constexpr (T == WType::kQ4 || T == WType::kQ8) {
#pragma unroll
    for (int i = 0; i < 2; ++i) *reinterpret_cast<uint4*>(&Bs[(tid >> 2) + 64 * i][(tid & 3) * 4]) = rw.v[i];
  }
}

#endif  // SR3D_TC_BODY

template <WType T>
__global__ void __launch_bounds__(kTcThreads, 2)
    gemm_tc_kernel(const float* __restrict__ A, const void* __restrict__ W,
                   const float* __restrict__ bias, const float* residual, float* C, int64_t M,
                   int64_t N, int64_t K, int act, TcQuant qz) {
#if SR3D_TC_BODY
  __shared__ __align__(16) uint32_t As[2][kTcBM][kTcLd];
  __shared__ __align__(16) uint32_t Bs[2][kTcBN][kTcLd];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3;  // 2 x 4 warps of 64 x 32 outputs
  const int g = lane >> 2, t4 = lane & 3;   // groupID, threadID_in_group (mma.cuh)
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTcBM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTcBN;
  const int lr = tid >> 3, lk = (tid & 7) * 4;

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  uint4 ra[4];
  TcWStage<T> rw;
  tc_load_a(ra, A, m0, M, 0, K, lr, lk);
  tc_load_w<T>(rw, Bs[0], W, n0, N, 0, K, tid, qz);
  tc_store_a(As[0], ra, lr, lk);
  tc_store_w<T>(Bs[0], rw, tid);
  cp_async_wait_all();
  __syncthreads();

  const int64_t tiles = (K + kTcBK - 1) / kTcBK;
  for (int64_t t = 0; t < tiles; ++t) {
    const int buf = static_cast<int>(t & 1);
    const bool more = t + 1 < tiles;
    if (more) {  // the next step's loads in flight while this one's mma run
      const int64_t k0 = (t + 1) * kTcBK;
      tc_load_a(ra, A, m0, M, k0, K, lr, lk);
      tc_load_w<T>(rw, Bs[buf ^ 1], W, n0, N, k0, K, tid, qz);
    }
#pragma unroll
    for (int ks = 0; ks < kTcBK / 16; ++ks) {
      const int kw = ks * 8 + t4;  // this lane's word: k pair 2 * t4 of the k16 step
      uint32_t b[4][2];
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const uint32_t* row = Bs[buf][wn * 32 + nt * 8 + g];
        b[nt][0] = row[kw];
        b[nt][1] = row[kw + 4];
      }
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        const uint32_t* r0 = As[buf][wm * 64 + mt * 16 + g];
        const uint32_t* r8 = As[buf][wm * 64 + mt * 16 + g + 8];
        const uint32_t a[4] = {r0[kw], r8[kw], r0[kw + 4], r8[kw + 4]};
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma_bf16_16816(acc[mt][nt], a, b[nt]);
      }
    }
    if (more) {
      tc_store_a(As[buf ^ 1], ra, lr, lk);
      tc_store_w<T>(Bs[buf ^ 1], rw, tid);
      cp_async_wait_all();
    }
    __syncthreads();
  }

#pragma unroll
  for (int mt = 0; mt < 4; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t r = m0 + wm * 64 + mt * 16 + g + 8 * h;
      if (r >= M) continue;
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int64_t c = n0 + wn * 32 + nt * 8 + 2 * t4 + j;
          if (c >= N) continue;
          float v = acc[mt][nt][2 * h + j];
          if (bias) v += bias[c];
          if (act != kNoAct) v = act_apply(v, act);
          if (residual) v += residual[r * N + c];
          C[r * N + c] = v;
        }
    }
#endif
}

// ---- host side -------------------------------------------------------------------------

std::atomic<int> g_tc_override{-1};  // set_tc_gemm: -1 = SR3D_CUDA_TC decides

// Per device: 1 = the tensor-core kernel runs there (compute capability >= 8.0 and this
// binary's code for it was compiled for sm_80+: a PTX-only sm_75 build JIT-compiled for a
// newer GPU holds the stub), 0 = not, -1 = not asked yet.
std::mutex g_tc_mu;
std::vector<int> g_tc_ok;

bool device_runs_tc(int dev) {
  std::lock_guard<std::mutex> lock(g_tc_mu);
  if (static_cast<int>(g_tc_ok.size()) <= dev) g_tc_ok.resize(dev + 1, -1);
  if (g_tc_ok[dev] < 0) {
    int major = 0;
    SR3D_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    bool ok = major >= 8;
    if (ok) {
      cudaFuncAttributes fa{};
      SR3D_CUDA_CHECK(cudaFuncGetAttributes(&fa, gemm_tc_kernel<WType::kBF16>));
      ok = fa.ptxVersion >= 80;
    }
    g_tc_ok[dev] = ok ? 1 : 0;
  }
  return g_tc_ok[dev] == 1;
}

}  // namespace

// The switch of attention_tc.cu too (one switch for every tensor-core kernel).
int set_tc_gemm(int mode) { return g_tc_override.exchange(mode < 0 ? -1 : mode != 0 ? 1 : 0); }

bool tc_gemm_enabled() {
  const int o = g_tc_override.load();
  if (o >= 0) return o == 1;
  return env_switch("SR3D_CUDA_TC", "0 (the float32 SIMT GEMM, the default), 1 (the bf16 "
                                    "tensor-core GEMM on sm_80+ GPUs) or unset");
}

bool tc_gemm_supported() {
  int dev = 0;
  SR3D_CUDA_CHECK(cudaGetDevice(&dev));
  return device_runs_tc(dev);
}

bool linear_tc_dev(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                   cudaStream_t s, int act, const float* residual) {
  if (n <= 0 || w.rows <= 0) return false;
  const bool quant = w.type == WType::kQ4 || w.type == WType::kQ8;
  if (w.type != WType::kF32 && w.type != WType::kF16 && w.type != WType::kBF16 && !quant) return false;
  // int4 / int8: 8-k chunks inside one group, no act-order gather of x (the SIMT GEMM has it).
  if (quant && (w.perm || w.group <= 0 || w.group % 8 != 0)) return false;
  if (!tc_gemm_enabled()) return false;
  const int64_t N = w.rows, K = w.cols;
  if (K % 8 != 0 || !aligned16(x) || !aligned16(w.data)) return false;
  if (!tc_gemm_supported()) return false;
  const dim3 grid(static_cast<unsigned>((N + kTcBN - 1) / kTcBN),
                  static_cast<unsigned>((n + kTcBM - 1) / kTcBM));
  TcQuant qz;
  if (quant) {
    qz.scales = w.scales;
    qz.zeros = w.zeros;
    qz.group = w.group;
  }
  auto launch = [&](auto type) {
    SR3D_LAUNCH(gemm_tc_kernel<decltype(type)::value>, grid, kTcThreads, 0, s, x, w.data, bias,
                residual, y, n, N, K, act, qz);
  };
  switch (w.type) {
    case WType::kF32: launch(std::integral_constant<WType, WType::kF32>()); break;
    case WType::kF16: launch(std::integral_constant<WType, WType::kF16>()); break;
    case WType::kQ4: launch(std::integral_constant<WType, WType::kQ4>()); break;
    case WType::kQ8: launch(std::integral_constant<WType, WType::kQ8>()); break;
    default: launch(std::integral_constant<WType, WType::kBF16>()); break;
  }
  return true;
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
