// Neural-network ops on CUDA (kernels/linear.h, attention.h, norms.h, activation.h, rope.h,
// projector.h; device-resident launchers in nn.cuh).
//
// Napkin math that shaped the kernels (H100, ~3.3 TB/s HBM, ~60 TFLOP/s fp32 FMA):
// - decode GEMV: a 7B-class step streams ~15 GB of bf16 weights, so only the weight bytes
//   matter: one warp per output row, each lane 16-byte loads (8 bf16), 4 loads in flight
//   per lane, a warp-shuffle sum; x (<= 76 KB) stays in L1/L2.
// - prefill / vision GEMM: 26 SigLIP layers x 1024 tokens is ~0.8 TFLOP per tile; a 128x128
//   fp32 SIMT tile (8x8 per thread, register double buffering) keeps the FMA pipes busy
//   without tensor cores, so results stay float32-exact to the reference's tolerance.
// - attention: 16 queries x 32 keys per shared-memory tile, one warp per query row, online
//   softmax; decode (one query) splits the keys over blocks and combines the partials.
// --fmad=false is on for the whole file: the FMAs below are explicit (__fmaf_rn).
#ifdef SR3D_WITH_CUDA
#include <cuda_fp16.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "../activation.h"
#include "../attention.h"
#include "../linear.h"
#include "../norms.h"
#include "../projector.h"
#include "../rope.h"
#include "cuda_util.h"
#include "nn.cuh"

namespace sr3d {
namespace cuda {

namespace {

// ---- shared device helpers -------------------------------------------------------------

__device__ __forceinline__ float act_apply(float x, int act) {
  switch (act) {
    case static_cast<int>(Act::kGeluTanh): {
      const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.f + tanhf(inner));
    }
    case static_cast<int>(Act::kGeluErf):
      return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
    case static_cast<int>(Act::kSilu):
      return x / (1.f + expf(-x));
    default:
      return x;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024), same order every call; every
// thread gets the result. `red` holds 32 floats.
__device__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // `red` may still be read from a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < warps ? red[lane] : 0.f;
  return warp_sum(v);
}

template <WType T>
__device__ __forceinline__ float ldw(const void* w, int64_t i) {
  if constexpr (T == WType::kF32) {
    return __ldg(static_cast<const float*>(w) + i);
  } else if constexpr (T == WType::kF16) {
    return __half2float(__ushort_as_half(__ldg(static_cast<const unsigned short*>(w) + i)));
  } else {
    return __uint_as_float(static_cast<uint32_t>(__ldg(static_cast<const unsigned short*>(w) + i)) << 16);
  }
}

// Two 16-bit values packed in a 32-bit word -> floats (exact).
template <WType T>
__device__ __forceinline__ void unpack2(uint32_t u, float* f) {
  if constexpr (T == WType::kBF16) {
    f[0] = __uint_as_float(u << 16);
    f[1] = __uint_as_float(u & 0xffff0000u);
  } else {
    f[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(u & 0xffffu)));
    f[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(u >> 16)));
  }
}

// ---- GEMV: y[r][row] for r < n <= NR, one warp per output row ---------------------------

constexpr int kGemvWarps = 8;

// 8 consecutive weights: one 16-byte load (f16/bf16) or two (f32).
struct Chunk8 {
  uint4 a, b;
};
template <WType T>
__device__ __forceinline__ Chunk8 load8(const void* w, int64_t i) {
  Chunk8 c;
  if constexpr (T == WType::kF32) {
    const uint4* p = reinterpret_cast<const uint4*>(static_cast<const float*>(w) + i);
    c.a = __ldg(p);
    c.b = __ldg(p + 1);
  } else {
    c.a = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w) + i));
    c.b = make_uint4(0, 0, 0, 0);
  }
  return c;
}
template <WType T>
__device__ __forceinline__ void unpack8(const Chunk8& c, float* f) {
  if constexpr (T == WType::kF32) {
    f[0] = __uint_as_float(c.a.x); f[1] = __uint_as_float(c.a.y);
    f[2] = __uint_as_float(c.a.z); f[3] = __uint_as_float(c.a.w);
    f[4] = __uint_as_float(c.b.x); f[5] = __uint_as_float(c.b.y);
    f[6] = __uint_as_float(c.b.z); f[7] = __uint_as_float(c.b.w);
  } else {
    unpack2<T>(c.a.x, f);
    unpack2<T>(c.a.y, f + 2);
    unpack2<T>(c.a.z, f + 4);
    unpack2<T>(c.a.w, f + 6);
  }
}

template <int NR>
__device__ __forceinline__ void dot8(const float* wf, const float* x, int64_t K, int64_t k,
                                     int n, float* acc) {
#pragma unroll
  for (int r = 0; r < NR; ++r) {
    if (r < n) {
      const float4 x0 = __ldg(reinterpret_cast<const float4*>(x + r * K + k));
      const float4 x1 = __ldg(reinterpret_cast<const float4*>(x + r * K + k + 4));
      float a = acc[r];
      a = __fmaf_rn(wf[0], x0.x, a); a = __fmaf_rn(wf[1], x0.y, a);
      a = __fmaf_rn(wf[2], x0.z, a); a = __fmaf_rn(wf[3], x0.w, a);
      a = __fmaf_rn(wf[4], x1.x, a); a = __fmaf_rn(wf[5], x1.y, a);
      a = __fmaf_rn(wf[6], x1.z, a); a = __fmaf_rn(wf[7], x1.w, a);
      acc[r] = a;
    }
  }
}

// vec: K % 8 == 0 and 16-byte aligned rows of W and x; else the scalar loop.
template <WType T, int NR>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(const float* __restrict__ x, int n, const void* __restrict__ w,
                const float* __restrict__ bias, const float* residual, float* y, int64_t N,
                int64_t K, int act, int vec) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (row >= N) return;
  float acc[NR];
#pragma unroll
  for (int r = 0; r < NR; ++r) acc[r] = 0.f;
  const int64_t base = row * K;
  if (vec) {
    constexpr int64_t kStep = 32 * 8;
    int64_t k = lane * 8;
    for (; k + 3 * kStep < K; k += 4 * kStep) {  // 4 independent loads in flight per lane
      Chunk8 c[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) c[u] = load8<T>(w, base + k + u * kStep);
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        float wf[8];
        unpack8<T>(c[u], wf);
        dot8<NR>(wf, x, K, k + u * kStep, n, acc);
      }
    }
    for (; k < K; k += kStep) {
      float wf[8];
      unpack8<T>(load8<T>(w, base + k), wf);
      dot8<NR>(wf, x, K, k, n, acc);
    }
  } else {
    for (int64_t k = lane; k < K; k += 32) {
      const float wk = ldw<T>(w, base + k);
#pragma unroll
      for (int r = 0; r < NR; ++r)
        if (r < n) acc[r] = __fmaf_rn(wk, x[r * K + k], acc[r]);
    }
  }
#pragma unroll
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

// ---- GEMM: C[M][N] = A[M][K] . W[N][K]^T, 128x128x8 tiles, 8x8 outputs per thread --------

constexpr int kBM = 128, kBN = 128, kBK = 8, kGemmThreads = 256;
constexpr int kPad = 4;  // keeps float4 alignment of the k-major rows, spreads the stores

// Four consecutive k values of one row of A (float) or W (dtype T) as floats, zero past
// the edges. vec: K % 4 == 0 (aligned vector loads).
__device__ __forceinline__ void load4_act(const float* a, int64_t row, int64_t rows, int64_t k,
                                          int64_t K, int vec, float* f) {
  if (row < rows && vec && k + 3 < K) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(a + row * K + k));
    f[0] = v.x; f[1] = v.y; f[2] = v.z; f[3] = v.w;
    return;
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) f[i] = row < rows && k + i < K ? a[row * K + k + i] : 0.f;
}
// W's four values stay packed until the shared-memory store (2 registers for 16-bit
// dtypes instead of 4: the 128-register budget of the 8x8 tile has no room to spare).
template <WType T>
struct Raw4 {
  uint32_t v[T == WType::kF32 ? 4 : 2];
};
template <WType T>
__device__ __forceinline__ uint32_t raw_at(const void* w, int64_t i) {
  if constexpr (T == WType::kF32) return __float_as_uint(__ldg(static_cast<const float*>(w) + i));
  else return __ldg(static_cast<const unsigned short*>(w) + i);
}
template <WType T>
__device__ __forceinline__ Raw4<T> load4_w(const void* w, int64_t row, int64_t rows, int64_t k,
                                           int64_t K, int vec) {
  Raw4<T> r;
  if (row < rows && vec && k + 3 < K) {
    if constexpr (T == WType::kF32) {
      const uint4 v = __ldg(reinterpret_cast<const uint4*>(static_cast<const float*>(w) + row * K + k));
      r.v[0] = v.x; r.v[1] = v.y; r.v[2] = v.z; r.v[3] = v.w;
    } else {
      const uint2 v = __ldg(reinterpret_cast<const uint2*>(static_cast<const uint16_t*>(w) + row * K + k));
      r.v[0] = v.x; r.v[1] = v.y;
    }
    return r;
  }
  uint32_t e[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) e[i] = row < rows && k + i < K ? raw_at<T>(w, row * K + k + i) : 0u;
  if constexpr (T == WType::kF32) {
#pragma unroll
    for (int i = 0; i < 4; ++i) r.v[i] = e[i];
  } else {
    r.v[0] = e[0] | (e[1] << 16);
    r.v[1] = e[2] | (e[3] << 16);
  }
  return r;
}
template <WType T>
__device__ __forceinline__ void unpack4(const Raw4<T>& r, float* f) {
  if constexpr (T == WType::kF32) {
#pragma unroll
    for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(r.v[i]);
  } else {
    unpack2<T>(r.v[0], f);
    unpack2<T>(r.v[1], f + 2);
  }
}

template <WType T>
__global__ void __launch_bounds__(kGemmThreads, 2)
    gemm_kernel(const float* __restrict__ A, const void* __restrict__ W,
                const float* __restrict__ bias, const float* residual, float* C, int64_t M,
                int64_t N, int64_t K, int act, int vec) {
  __shared__ __align__(16) float As[2][kBK][kBM + kPad];
  __shared__ __align__(16) float Bs[2][kBK][kBN + kPad];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM, n0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int lrow = tid >> 1, lk = (tid & 1) * 4;  // this thread's loads: 4 k of one row

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

  float ra[4], rb[4];
  Raw4<T> wraw = load4_w<T>(W, n0 + lrow, N, lk, K, vec);
  load4_act(A, m0 + lrow, M, lk, K, vec, ra);
  unpack4<T>(wraw, rb);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    As[0][lk + i][lrow] = ra[i];
    Bs[0][lk + i][lrow] = rb[i];
  }
  __syncthreads();

  const int64_t tiles = (K + kBK - 1) / kBK;
  for (int64_t t = 0; t < tiles; ++t) {
    const int buf = static_cast<int>(t & 1);
    const bool more = t + 1 < tiles;
    if (more) {  // next tile into registers while this one is computed
      const int64_t k = (t + 1) * kBK + lk;
      load4_act(A, m0 + lrow, M, k, K, vec, ra);
      wraw = load4_w<T>(W, n0 + lrow, N, k, K, vec);
    }
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a[8], b[8];
      const float4 a0 = *reinterpret_cast<const float4*>(&As[buf][kk][ty * 4]);
      const float4 a1 = *reinterpret_cast<const float4*>(&As[buf][kk][64 + ty * 4]);
      const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * 4]);
      const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][kk][64 + tx * 4]);
      a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w;
      a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
      b[0] = b0.x; b[1] = b0.y; b[2] = b0.z; b[3] = b0.w;
      b[4] = b1.x; b[5] = b1.y; b[6] = b1.z; b[7] = b1.w;
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = __fmaf_rn(a[i], b[j], acc[i][j]);
    }
    if (more) {
      unpack4<T>(wraw, rb);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        As[buf ^ 1][lk + i][lrow] = ra[i];
        Bs[buf ^ 1][lk + i][lrow] = rb[i];
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t r = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
    if (r >= M) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int64_t c = n0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4);
      if (c >= N) continue;
      float v = acc[i][j];
      if (bias) v += bias[c];
      if (act != kNoAct) v = act_apply(v, act);
      if (residual) v += residual[r * N + c];
      C[r * N + c] = v;
    }
  }
}

// ---- norms and elementwise ----------------------------------------------------------------

constexpr int kNormThreads = 256;

__global__ void __launch_bounds__(kNormThreads)
    layer_norm_kernel(const float* x, int64_t d, const float* __restrict__ gamma,
                      const float* __restrict__ beta, float eps, float* y) {
  __shared__ float red[32];
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * d;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * d;
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
  const float mean = block_sum(s, red) / static_cast<float>(d);
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float t = xr[i] - mean;
    ss += t * t;
  }
  const float var = block_sum(ss, red) / static_cast<float>(d);
  const float inv = 1.f / sqrtf(var + eps);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float v = (xr[i] - mean) * inv * gamma[i];
    yr[i] = beta ? v + beta[i] : v;
  }
}

__global__ void __launch_bounds__(kNormThreads)
    rms_norm_kernel(const float* x, int64_t d, const float* __restrict__ gamma, float eps,
                    float* y) {
  __shared__ float red[32];
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * d;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * d;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
  const float inv = 1.f / sqrtf(block_sum(ss, red) / static_cast<float>(d) + eps);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] * inv * gamma[i];
}

__global__ void activation_kernel(float* x, int64_t n, int act) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = act_apply(x[i], act);
}

__global__ void silu_mul_kernel(const float* __restrict__ gate, const float* __restrict__ up,
                                int64_t rows, int64_t cols, int64_t stride, float* __restrict__ out) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i - r * cols;
    const float g = gate[r * stride + c];
    out[i] = g / (1.f + expf(-g)) * up[r * stride + c];
  }
}

// HF rotate_half at angle float(pos) * inv_freq[i] in float32, as the CPU (rope.h
// rope_inv_freq: the table is computed once on the host and uploaded).
__device__ __forceinline__ void rope_cos_sin(int64_t pos, int64_t i, const float* inv_freq,
                                             float* c, float* s) {
  const float a = __fmul_rn(static_cast<float>(pos), inv_freq[i]);
  *c = cosf(a);
  *s = sinf(a);
}
__device__ __forceinline__ void rope_pair(float* p, int64_t i, int64_t half, float c, float s) {
  const float x1 = p[i], x2 = p[i + half];
  p[i] = x1 * c - x2 * s;
  p[i + half] = x2 * c + x1 * s;
}

__global__ void rope_kernel(float* x, int64_t n_tok, int64_t heads, int64_t d, int64_t row_stride,
                            const int32_t* __restrict__ positions, const float* __restrict__ inv_freq) {
  const int64_t half = d / 2, n = n_tok * heads * half;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e % half, h = (e / half) % heads, t = e / (half * heads);
    float c, s;
    rope_cos_sin(positions[t], i, inv_freq, &c, &s);
    rope_pair(x + t * row_stride + h * d, i, half, c, s);
  }
}

__global__ void rope_qkv_cache_kernel(float* qkv, int64_t n, int64_t hq, int64_t hkv, int64_t d,
                                      int64_t pos0, const float* __restrict__ inv_freq, float* __restrict__ kc,
                                      float* __restrict__ vc) {
  const int64_t half = d / 2, heads = hq + 2 * hkv, total = n * heads * half;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e % half, h = (e / half) % heads, t = e / (half * heads);
    float* row = qkv + t * heads * d;
    const int64_t pos = pos0 + t;
    if (h >= hq + hkv) {  // v: copy
      const int64_t kh = h - hq - hkv;
      float* dst = vc + (pos * hkv + kh) * d;
      dst[i] = row[h * d + i];
      dst[i + half] = row[h * d + i + half];
      continue;
    }
    float c, s;
    rope_cos_sin(pos, i, inv_freq, &c, &s);
    rope_pair(row + h * d, i, half, c, s);
    if (h >= hq) {  // k: the rotated pair into the cache
      const int64_t kh = h - hq;
      float* dst = kc + (pos * hkv + kh) * d;
      dst[i] = row[h * d + i];
      dst[i + half] = row[h * d + i + half];
    }
  }
}

// ---- attention -------------------------------------------------------------------------

constexpr int kAttnWarps = 4, kQPerWarp = 4, kQT = kAttnWarps * kQPerWarp, kKT = 32;

struct AttnParams {
  AttentionArgs a;
  int64_t splits, keys_per_split;
  float* part_acc;  // [batch][splits][nq][hq][d]
  float* part_ml;   // [batch][splits][nq][hq][2]
};

inline size_t attention_smem(int64_t d) {
  return sizeof(float) * static_cast<size_t>(kQT * d + kKT * (d + 1) + kKT * d);
}

// DPL: head dims per lane (d <= 32 DPL).
template <int DPL>
__global__ void __launch_bounds__(kAttnWarps * 32) attention_kernel(AttnParams p) {
  extern __shared__ float smem[];
  const AttentionArgs& a = p.a;
  const int64_t d = a.d;
  float* Qs = smem;                 // [kQT][d]
  float* Ks = Qs + kQT * d;         // [kKT][d + 1]
  float* Vs = Ks + kKT * (d + 1);   // [kKT][d]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t h = blockIdx.y, kvh = h / (a.hq / a.hkv);
  const int64_t b = blockIdx.z / p.splits, sp = blockIdx.z % p.splits;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kQT;
  const int64_t qn = min(static_cast<int64_t>(kQT), a.nq - q0);
  const float* qb = a.q + b * a.q_bstride;
  const float* kb = a.k + b * a.kv_bstride + kvh * d;
  const float* vb = a.v + b * a.kv_bstride + kvh * d;

  const int64_t k_begin = sp * p.keys_per_split;
  int64_t k_end = min(a.nk, k_begin + p.keys_per_split);
  if (a.causal) k_end = min(k_end, a.q_offset + q0 + qn);

  for (int64_t i = warp; i < qn; i += kAttnWarps)  // row per warp: no index division
    for (int64_t c = lane; c < d; c += 32) Qs[i * d + c] = qb[(q0 + i) * a.q_stride + h * d + c];

  float m[kQPerWarp], l[kQPerWarp], acc[kQPerWarp][DPL];
#pragma unroll
  for (int qq = 0; qq < kQPerWarp; ++qq) {
    m[qq] = -INFINITY;
    l[qq] = 0.f;
#pragma unroll
    for (int u = 0; u < DPL; ++u) acc[qq][u] = 0.f;
  }

  for (int64_t kt = k_begin; kt < k_end; kt += kKT) {
    const int64_t kn = min(static_cast<int64_t>(kKT), k_end - kt);
    __syncthreads();  // the previous tile is consumed (and Qs written, on the first)
    for (int64_t j = warp; j < kn; j += kAttnWarps)
      for (int64_t c = lane; c < d; c += 32) {
        Ks[j * (d + 1) + c] = kb[(kt + j) * a.kv_stride + c];
        Vs[j * d + c] = vb[(kt + j) * a.kv_stride + c];
      }
    __syncthreads();
#pragma unroll
    for (int qq = 0; qq < kQPerWarp; ++qq) {
      const int64_t i = warp + kAttnWarps * qq;
      if (i >= qn) continue;  // warp-uniform
      const int64_t qpos = a.q_offset + q0 + i;
      const int64_t key = kt + lane;
      const bool valid = lane < kn && (!a.causal || key <= qpos);
      float s = -INFINITY;
      if (valid) {
        const float* qr = Qs + i * d;
        const float* kr = Ks + lane * (d + 1);
        float dot = 0.f;
        for (int64_t c = 0; c < d; ++c) dot = __fmaf_rn(qr[c], kr[c], dot);
        s = dot * a.scale;
      }
      const float m_new = fmaxf(m[qq], warp_max(s));
      if (m_new == -INFINITY) continue;  // no visible key yet (warp-uniform)
      const float corr = expf(m[qq] - m_new);
      const float pj = valid ? expf(s - m_new) : 0.f;
      l[qq] = l[qq] * corr + warp_sum(pj);
#pragma unroll
      for (int u = 0; u < DPL; ++u) acc[qq][u] *= corr;
      int64_t jn = kn;
      if (a.causal) jn = min(jn, qpos - kt + 1);
      for (int64_t j = 0; j < jn; ++j) {
        const float pb = __shfl_sync(0xffffffffu, pj, static_cast<int>(j));
        const float* vr = Vs + j * d;
#pragma unroll
        for (int u = 0; u < DPL; ++u) {
          const int64_t c = lane + 32 * u;
          if (c < d) acc[qq][u] = __fmaf_rn(pb, vr[c], acc[qq][u]);
        }
      }
      m[qq] = m_new;
    }
  }

#pragma unroll
  for (int qq = 0; qq < kQPerWarp; ++qq) {
    const int64_t i = warp + kAttnWarps * qq;
    if (i >= qn) continue;
    const int64_t qi = q0 + i;
    if (p.splits == 1) {
      float* o = a.out + b * a.out_bstride + qi * a.out_stride + h * d;
      const float inv = l[qq] > 0.f ? 1.f / l[qq] : 0.f;
#pragma unroll
      for (int u = 0; u < DPL; ++u) {
        const int64_t c = lane + 32 * u;
        if (c < d) o[c] = acc[qq][u] * inv;
      }
    } else {
      const int64_t slot = ((b * p.splits + sp) * a.nq + qi) * a.hq + h;
      float* o = p.part_acc + slot * d;
#pragma unroll
      for (int u = 0; u < DPL; ++u) {
        const int64_t c = lane + 32 * u;
        if (c < d) o[c] = acc[qq][u];
      }
      if (lane == 0) {
        p.part_ml[slot * 2] = m[qq];
        p.part_ml[slot * 2 + 1] = l[qq];
      }
    }
  }
}

// One block per (batch, query, head): the split partials rescaled to the common max.
__global__ void attention_combine_kernel(AttnParams p) {
  const AttentionArgs& a = p.a;
  const int64_t h = blockIdx.x % a.hq, qi = (blockIdx.x / a.hq) % a.nq, b = blockIdx.x / (a.hq * a.nq);
  float M = -INFINITY;
  for (int64_t s = 0; s < p.splits; ++s) {
    const int64_t slot = ((b * p.splits + s) * a.nq + qi) * a.hq + h;
    if (p.part_ml[slot * 2 + 1] > 0.f) M = fmaxf(M, p.part_ml[slot * 2]);
  }
  float L = 0.f;
  for (int64_t s = 0; s < p.splits; ++s) {
    const int64_t slot = ((b * p.splits + s) * a.nq + qi) * a.hq + h;
    const float ls = p.part_ml[slot * 2 + 1];
    if (ls > 0.f) L += ls * expf(p.part_ml[slot * 2] - M);
  }
  float* o = a.out + b * a.out_bstride + qi * a.out_stride + h * a.d;
  for (int64_t c = threadIdx.x; c < a.d; c += blockDim.x) {
    float v = 0.f;
    for (int64_t s = 0; s < p.splits; ++s) {
      const int64_t slot = ((b * p.splits + s) * a.nq + qi) * a.hq + h;
      const float ls = p.part_ml[slot * 2 + 1];
      if (ls > 0.f) v += p.part_acc[slot * a.d + c] * expf(p.part_ml[slot * 2] - M);
    }
    o[c] = L > 0.f ? v / L : 0.f;
  }
}

// ---- layout kernels ----------------------------------------------------------------------

__global__ void space_to_channel3_kernel(const float* __restrict__ x, int64_t n, int64_t g,
                                         int64_t c, float* __restrict__ y) {
  const int64_t G = (g + 2) / 3, total = n * G * G * 9 * c;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = e % c, mk = (e / c) % 9, cell = (e / (9 * c)) % (G * G), i = e / (9 * c * G * G);
    const int64_t r = 3 * (cell / G) + mk / 3, col = 3 * (cell % G) + mk % 3;
    y[e] = r < g && col < g ? x[((i * g + r) * g + col) * c + ch] : 0.f;
  }
}

__global__ void im2col_kernel(const float* __restrict__ img, int64_t n, int64_t size, int64_t patch,
                              float* __restrict__ col) {
  const int64_t gp = size / patch, P = gp * gp, cols = 3 * patch * patch, total = n * P * cols;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = e % cols, pi = (e / cols) % P, i = e / (cols * P);
    const int64_t ch = k / (patch * patch), ky = (k / patch) % patch, kx = k % patch;
    const int64_t yy = (pi / gp) * patch + ky, xx = (pi % gp) * patch + kx;
    col[e] = img[((i * 3 + ch) * size + yy) * size + xx];
  }
}

__global__ void add_rows_kernel(float* x, int64_t n, int64_t tokens, int64_t channels,
                                const float* __restrict__ pos) {
  const int64_t per = tokens * channels, total = n * per;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[e] += pos[e % per];
}

template <WType T>
__global__ void embed_rows_kernel(const void* __restrict__ table, int64_t cols,
                                  const int32_t* __restrict__ ids, int64_t n, float* __restrict__ out) {
  const int64_t total = n * cols;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / cols, c = e - t * cols;
    out[e] = ldw<T>(table, static_cast<int64_t>(ids[t]) * cols + c);
  }
}

// ---- launch helpers ------------------------------------------------------------------------

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <WType T>
void linear_launch(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                   cudaStream_t s, int act, const float* residual) {
  const int64_t N = w.rows, K = w.cols;
  if (n <= 4) {
    const int vec = K % 8 == 0 && aligned16(w.data) && aligned16(x);
    const unsigned grid = static_cast<unsigned>((N + kGemvWarps - 1) / kGemvWarps);
    if (n == 1)
      SR3D_LAUNCH(gemv_kernel<T, 1>, grid, kGemvWarps * 32, 0, s, x, 1, w.data, bias, residual,
                  y, N, K, act, vec);
    else
      SR3D_LAUNCH(gemv_kernel<T, 4>, grid, kGemvWarps * 32, 0, s, x, static_cast<int>(n), w.data,
                  bias, residual, y, N, K, act, vec);
    return;
  }
  const int vec = K % 4 == 0 && aligned16(w.data) && aligned16(x);
  const dim3 grid(static_cast<unsigned>((N + kBN - 1) / kBN), static_cast<unsigned>((n + kBM - 1) / kBM));
  SR3D_LAUNCH(gemm_kernel<T>, grid, kGemmThreads, 0, s, x, w.data, bias, residual, y, n, N, K,
              act, vec);
}

template <int DPL>
void attention_launch(const AttnParams& p, dim3 grid, cudaStream_t s) {
  const size_t smem = attention_smem(p.a.d);
  if (smem > 48 * 1024)
    SR3D_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<DPL>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
  SR3D_LAUNCH(attention_kernel<DPL>, grid, kAttnWarps * 32, smem, s, p);
}

}  // namespace

int sm_count() {
  static std::mutex mu;
  static std::vector<int> counts;
  int dev = 0;
  SR3D_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(counts.size()) <= dev) counts.resize(dev + 1, 0);
  if (counts[dev] == 0)
    SR3D_CUDA_CHECK(cudaDeviceGetAttribute(&counts[dev], cudaDevAttrMultiProcessorCount, dev));
  return counts[dev];
}

// ---- device-resident ops -------------------------------------------------------------------

void linear_dev(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                cudaStream_t s, int act, const float* residual) {
  if (n <= 0 || w.rows <= 0) return;
  switch (w.type) {
    case WType::kF32: linear_launch<WType::kF32>(x, n, w, bias, y, s, act, residual); break;
    case WType::kF16: linear_launch<WType::kF16>(x, n, w, bias, y, s, act, residual); break;
    case WType::kBF16: linear_launch<WType::kBF16>(x, n, w, bias, y, s, act, residual); break;
  }
}

void layer_norm_dev(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                    float eps, float* y, cudaStream_t s) {
  if (n <= 0 || d <= 0) return;
  SR3D_LAUNCH(layer_norm_kernel, static_cast<unsigned>(n), kNormThreads, 0, s, x, d, gamma, beta,
              eps, y);
}

void rms_norm_dev(const float* x, int64_t n, int64_t d, const float* gamma, float eps, float* y,
                  cudaStream_t s) {
  if (n <= 0 || d <= 0) return;
  SR3D_LAUNCH(rms_norm_kernel, static_cast<unsigned>(n), kNormThreads, 0, s, x, d, gamma, eps, y);
}

void activation_dev(float* x, int64_t n, Act act, cudaStream_t s) {
  if (n <= 0) return;
  SR3D_LAUNCH(activation_kernel, grid_for(n), kBlock, 0, s, x, n, static_cast<int>(act));
}

void silu_mul_dev(const float* gate, const float* up, int64_t rows, int64_t cols, int64_t stride,
                  float* out, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return;
  SR3D_LAUNCH(silu_mul_kernel, grid_for(rows * cols), kBlock, 0, s, gate, up, rows, cols, stride,
              out);
}

void rope_dev(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, int64_t row_stride,
              const int32_t* positions, const float* inv_freq, cudaStream_t s) {
  const int64_t n = n_tok * n_heads * (head_dim / 2);
  if (n <= 0) return;
  SR3D_LAUNCH(rope_kernel, grid_for(n), kBlock, 0, s, x, n_tok, n_heads, head_dim, row_stride,
              positions, inv_freq);
}

void rope_qkv_to_cache_dev(float* qkv, int64_t n, int64_t hq, int64_t hkv, int64_t d, int64_t pos0,
                           const float* inv_freq, float* k_cache, float* v_cache, cudaStream_t s) {
  const int64_t total = n * (hq + 2 * hkv) * (d / 2);
  if (total <= 0) return;
  SR3D_LAUNCH(rope_qkv_cache_kernel, grid_for(total), kBlock, 0, s, qkv, n, hq, hkv, d, pos0,
              inv_freq, k_cache, v_cache);
}

size_t attention_workspace_floats(int64_t nq, int64_t hq, int64_t d) {
  // splits > 1 only when qtiles * hq < 2 SMs, and then splits <= ceil(8 SMs / (qtiles * hq)).
  const int64_t sms = sm_count(), qtiles = (nq + kQT - 1) / kQT, base = std::max<int64_t>(1, qtiles * hq);
  if (base >= 2 * sms) return 0;
  const int64_t splits = (8 * sms + base - 1) / base;
  return static_cast<size_t>(splits * nq * hq * (d + 2));
}

void attention_dev(const AttentionArgs& a, cudaStream_t s) {
  if (a.nq <= 0 || a.hq <= 0 || a.d <= 0 || a.batch <= 0) return;
  if (a.d > 256)
    throw_invalid_argument("a head dimension of at most 256 (CUDA attention)", "d",
                           std::to_string(a.d));
  if (a.hkv <= 0 || a.hq % a.hkv != 0)
    throw_invalid_argument("kv heads dividing the query heads", "hkv", std::to_string(a.hkv));
  AttnParams p;
  p.a = a;
  const int64_t qtiles = (a.nq + kQT - 1) / kQT;
  const int64_t kmax = a.causal ? std::min(a.nk, a.q_offset + a.nq) : a.nk;
  // Too few query tiles for the GPU (decode, short prefills at long context): split the keys
  // so ~8 blocks per SM stay resident, each with >= 64 keys (two tiles).
  const int64_t base = qtiles * a.hq * a.batch, sms = sm_count();
  int64_t splits = 1;
  if (base < 2 * sms && kmax > 2 * 64) {
    splits = std::min((8 * sms + base - 1) / base, (kmax + 63) / 64);
    if (splits < 1) splits = 1;
  }
  const int64_t per = (std::max<int64_t>(kmax, 1) + splits - 1) / splits;
  p.keys_per_split = (per + kKT - 1) / kKT * kKT;
  p.splits = splits;
  DeviceBuffer<float> own;
  if (splits > 1) {
    const int64_t slots = a.batch * splits * a.nq * a.hq;
    const size_t need = static_cast<size_t>(slots * (a.d + 2));
    float* ws = a.workspace;
    if (!ws || a.workspace_floats < need) {  // pooled, but the pool may trim at a sync
      own.allocate(need, s);
      ws = own.get();
    }
    p.part_acc = ws;
    p.part_ml = ws + slots * a.d;
  } else {
    p.part_acc = p.part_ml = nullptr;
  }
  const dim3 grid(static_cast<unsigned>(qtiles), static_cast<unsigned>(a.hq),
                  static_cast<unsigned>(a.batch * splits));
  if (a.d <= 64) attention_launch<2>(p, grid, s);
  else if (a.d <= 128) attention_launch<4>(p, grid, s);
  else attention_launch<8>(p, grid, s);
  if (splits > 1)
    SR3D_LAUNCH(attention_combine_kernel, static_cast<unsigned>(a.batch * a.nq * a.hq), 128, 0, s, p);
}

void space_to_channel3_dev(const float* x, int64_t n, int64_t g, int64_t c, float* y, cudaStream_t s) {
  const int64_t G = (g + 2) / 3, total = n * G * G * 9 * c;
  if (total <= 0) return;
  SR3D_LAUNCH(space_to_channel3_kernel, grid_for(total), kBlock, 0, s, x, n, g, c, y);
}

void im2col_patches_dev(const float* img, int64_t n, int64_t size, int64_t patch, float* col,
                        cudaStream_t s) {
  const int64_t gp = size / patch, total = n * gp * gp * 3 * patch * patch;
  if (total <= 0) return;
  SR3D_LAUNCH(im2col_kernel, grid_for(total), kBlock, 0, s, img, n, size, patch, col);
}

void add_rows_dev(float* x, int64_t n, int64_t tokens, int64_t channels, const float* pos,
                  cudaStream_t s) {
  const int64_t total = n * tokens * channels;
  if (total <= 0) return;
  SR3D_LAUNCH(add_rows_kernel, grid_for(total), kBlock, 0, s, x, n, tokens, channels, pos);
}

void embed_rows_dev(const WeightRef& table, const int32_t* ids, int64_t n, float* out, cudaStream_t s) {
  const int64_t total = n * table.cols;
  if (total <= 0) return;
  switch (table.type) {
    case WType::kF32:
      SR3D_LAUNCH(embed_rows_kernel<WType::kF32>, grid_for(total), kBlock, 0, s, table.data, table.cols, ids, n, out);
      break;
    case WType::kF16:
      SR3D_LAUNCH(embed_rows_kernel<WType::kF16>, grid_for(total), kBlock, 0, s, table.data, table.cols, ids, n, out);
      break;
    case WType::kBF16:
      SR3D_LAUNCH(embed_rows_kernel<WType::kBF16>, grid_for(total), kBlock, 0, s, table.data, table.cols, ids, n, out);
      break;
  }
}

// ---- host entry points (tests, microbenchmarks) ----------------------------------------------

namespace {

// The weight's device copy, and a WeightRef to it.
struct DeviceWeight {
  DeviceBuffer<uint8_t> buffer;
  WeightRef ref;
};
DeviceWeight upload_weight(RoundTrip& rt, const WeightRef& w) {
  DeviceWeight d{rt.upload(static_cast<const uint8_t*>(w.data), w.rows * w.cols * wtype_size(w.type)), w};
  d.ref.data = d.buffer.get();
  return d;
}

}  // namespace

void linear_host(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y) {
  if (n <= 0 || w.rows <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.upload(x, n * w.cols), dy = rt.scratch<float>(n * w.rows);
  DeviceBuffer<float> db = bias ? rt.upload(bias, w.rows) : DeviceBuffer<float>();
  DeviceWeight dw = upload_weight(rt, w);
  linear_dev(dx.get(), n, dw.ref, db.get(), dy.get(), rt.stream());
  rt.download(y, dy);
}

void layer_norm_host(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                     float eps, float* y) {
  if (n <= 0 || d <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.upload(x, n * d), dg = rt.upload(gamma, d);
  DeviceBuffer<float> db = beta ? rt.upload(beta, d) : DeviceBuffer<float>();
  layer_norm_dev(dx.get(), n, d, dg.get(), db.get(), eps, dx.get(), rt.stream());
  rt.download(y, dx);
}

void rms_norm_host(const float* x, int64_t n, int64_t d, const float* gamma, float eps, float* y) {
  if (n <= 0 || d <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.upload(x, n * d), dg = rt.upload(gamma, d);
  rms_norm_dev(dx.get(), n, d, dg.get(), eps, dx.get(), rt.stream());
  rt.download(y, dx);
}

void activation_host(float* x, int64_t n, Act act) {
  if (n <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.upload(x, n);
  activation_dev(dx.get(), n, act, rt.stream());
  rt.download(x, dx);
}

void silu_mul_host(const float* gate, const float* up, int64_t n, float* out) {
  if (n <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dg = rt.upload(gate, n), du = rt.upload(up, n), dout = rt.scratch<float>(n);
  silu_mul_dev(dg.get(), du.get(), 1, n, n, dout.get(), rt.stream());
  rt.download(out, dout);
}

void rope_host(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, const int32_t* positions,
               double theta) {
  if (n_tok <= 0 || n_heads <= 0 || head_dim <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.upload(x, n_tok * n_heads * head_dim);
  DeviceBuffer<int32_t> dp = rt.upload(positions, n_tok);
  std::vector<float> inv(static_cast<size_t>(head_dim / 2));
  rope_inv_freq(head_dim, theta, inv.data());
  DeviceBuffer<float> dinv = rt.upload(inv.data(), head_dim / 2);
  rope_dev(dx.get(), n_tok, n_heads, head_dim, n_heads * head_dim, dp.get(), dinv.get(), rt.stream());
  rt.download(x, dx);
}

void attention_host(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                    int64_t hq, int64_t hkv, int64_t d, float scale, bool causal, int64_t q_offset,
                    float* out) {
  if (nq <= 0 || hq <= 0 || d <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dq = rt.upload(q, nq * hq * d), dk = rt.upload(k, nk * hkv * d),
                      dv = rt.upload(v, nk * hkv * d), dout = rt.scratch<float>(nq * hq * d);
  AttentionArgs a;
  a.q = dq.get();
  a.k = dk.get();
  a.v = dv.get();
  a.out = dout.get();
  a.q_stride = hq * d;
  a.kv_stride = hkv * d;
  a.out_stride = hq * d;
  a.nq = nq;
  a.nk = nk;
  a.hq = hq;
  a.hkv = hkv;
  a.d = d;
  a.scale = scale;
  a.causal = causal;
  a.q_offset = q_offset;
  attention_dev(a, rt.stream());
  rt.download(out, dout);
}

void space_to_channel3_host(const float* x, int64_t n, int64_t g, int64_t c, float* y) {
  const int64_t G = (g + 2) / 3;
  if (n <= 0 || g <= 0 || c <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.upload(x, n * g * g * c), dy = rt.scratch<float>(n * G * G * 9 * c);
  space_to_channel3_dev(dx.get(), n, g, c, dy.get(), rt.stream());
  rt.download(y, dy);
}

void patch_embed_host(const float* img, int64_t n, int64_t size, int64_t patch, const WeightRef& w,
                      const float* bias, float* out) {
  const int64_t gp = patch > 0 ? size / patch : 0, P = gp * gp;
  if (n <= 0 || P <= 0 || w.rows <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dimg = rt.upload(img, n * 3 * size * size);
  DeviceBuffer<float> col = rt.scratch<float>(n * P * 3 * patch * patch);
  DeviceBuffer<float> dout = rt.scratch<float>(n * P * w.rows);
  DeviceBuffer<float> db = bias ? rt.upload(bias, w.rows) : DeviceBuffer<float>();
  DeviceWeight dw = upload_weight(rt, w);
  im2col_patches_dev(dimg.get(), n, size, patch, col.get(), rt.stream());
  linear_dev(col.get(), n * P, dw.ref, db.get(), dout.get(), rt.stream());
  rt.download(out, dout);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
