// linear on CUDA (kernels/linear.h): y = act(x . W^T + b) + residual for f32 / f16 / bf16
// and int4 / int8 weights, and the embedding-table row lookup of the dense dtypes.
// linear_dev / embed_rows_dev are declared in nn.cuh; linear_host is the host round trip of
// kernels/linear.h. The int4 / int8 decode GEMV is linear_q.cu; their GEMM is the one below,
// each weight tile dequantized (s * float(q - z), the reference's rounding) on its way into
// shared memory, so a quantized GEMM is bit-identical to this float32 GEMM over the
// dequantized weight (without act-order; with it, the k order follows the stored columns).
// SR3D_CUDA_TC=1 hands the GEMMs to gemm_tc.cu's bf16 tensor-core kernel where it applies
// (bf16-level results; off by default).
//
// Napkin math that shaped the kernels (H100, ~3.3 TB/s HBM, ~60 TFLOP/s fp32 FMA):
// - decode GEMV: a 7B-class step streams ~15 GB of bf16 weights, so only the weight bytes
//   matter: one warp per output row, each lane 16-byte loads (8 bf16), 4 loads in flight
//   per lane, a warp-shuffle sum; x (<= 76 KB) stays in L1/L2.
// - prefill / vision GEMM: 26 SigLIP layers x 1024 tokens is ~0.8 TFLOP per tile; a 128x128
//   fp32 SIMT tile (8x8 per thread, register double buffering) keeps the FMA pipes busy
//   without tensor cores, so results stay float32-exact to the reference's tolerance.
// --fmad=false is on for the whole file: the FMAs below are explicit (__fmaf_rn).
#ifdef SR3D_WITH_CUDA
#include "../linear.h"
#include "cuda_util.h"
#include "nn.cuh"
#include "nn_common.cuh"

namespace sr3d {
namespace cuda {

namespace {

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
  gemv_store_rows<NR>(acc, n, lane, row, N, bias, act, residual, y);
}

// ---- GEMM: C[M][N] = A[M][K] . W[N][K]^T, 128x128x8 tiles, 8x8 outputs per thread --------

constexpr int kBM = 128, kBN = 128, kBK = 8, kGemmThreads = 256;
constexpr int kPad = 4;  // keeps float4 alignment of the k-major rows, spreads the stores

// The quantized fields of W for the GEMM (weights.h); empty for the dense dtypes.
struct QuantArgs {
  const float* scales = nullptr;
  const uint8_t* zeros = nullptr;
  int64_t group = 1;
  const int32_t* perm = nullptr;  // act-order: stored column j multiplies A's column perm[j]
};

// Four consecutive k values of one row of A (float) or W (dtype T) as floats, zero past
// the edges. vec: K % 4 == 0 (aligned vector loads). perm: A's columns gathered through it.
__device__ __forceinline__ void load4_act(const float* a, int64_t row, int64_t rows, int64_t k,
                                          int64_t K, int vec, const int32_t* perm, float* f) {
  if (perm) {
#pragma unroll
    for (int i = 0; i < 4; ++i) f[i] = row < rows && k + i < K ? a[row * K + __ldg(perm + k + i)] : 0.f;
    return;
  }
  if (row < rows && vec && k + 3 < K) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(a + row * K + k));
    f[0] = v.x; f[1] = v.y; f[2] = v.z; f[3] = v.w;
    return;
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) f[i] = row < rows && k + i < K ? a[row * K + k + i] : 0.f;
}
// W's four values stay packed until the shared-memory store (2 registers for 16-bit
// dtypes instead of 4: the 128-register budget of the 8x8 tile has no room to spare);
// int4 / int8 are dequantized at the load (4 float registers, as float32).
template <WType T>
constexpr bool kIsQuant = T == WType::kQ4 || T == WType::kQ8;
template <WType T>
struct Raw4 {
  uint32_t v[T == WType::kF16 || T == WType::kBF16 ? 2 : 4];
};
// W[row][k] of a quantized weight as the reference dequantizes it: s * float(q - z).
template <WType T>
__device__ __forceinline__ float dequant_at(const void* w, int64_t row, int64_t k, int64_t K,
                                            const QuantArgs& qa) {
  const uint8_t* q = static_cast<const uint8_t*>(w);
  int qv;
  if constexpr (T == WType::kQ4) {
    const int b = __ldg(q + row * (K / 2) + k / 2);
    qv = k & 1 ? b >> 4 : b & 15;
  } else {
    qv = __ldg(q + row * K + k);
  }
  const int64_t g = row * (K / qa.group) + k / qa.group;
  return __fmul_rn(__ldg(qa.scales + g), static_cast<float>(qv - static_cast<int>(__ldg(qa.zeros + g))));
}
template <WType T>
__device__ __forceinline__ uint32_t raw_at(const void* w, int64_t i) {
  if constexpr (T == WType::kF32) return __float_as_uint(__ldg(static_cast<const float*>(w) + i));
  else return __ldg(static_cast<const unsigned short*>(w) + i);
}
template <WType T>
__device__ __forceinline__ Raw4<T> load4_w(const void* w, int64_t row, int64_t rows, int64_t k,
                                           int64_t K, int vec, const QuantArgs& qa) {
  Raw4<T> r;
  if constexpr (kIsQuant<T>) {
    if (row < rows && vec && k + 3 < K) {  // 4 | group and 4 | k: one group, one 2 / 4-byte load
      const uint8_t* q = static_cast<const uint8_t*>(w);
      const int64_t g = row * (K / qa.group) + k / qa.group;
      const float s = __ldg(qa.scales + g);
      const int z = __ldg(qa.zeros + g);
      uint32_t u;
      if constexpr (T == WType::kQ4) u = __ldg(reinterpret_cast<const unsigned short*>(q + row * (K / 2) + k / 2));
      else u = __ldg(reinterpret_cast<const unsigned int*>(q + row * K + k));
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int qv = T == WType::kQ4 ? (u >> (4 * i)) & 15 : (u >> (8 * i)) & 255;
        r.v[i] = __float_as_uint(__fmul_rn(s, static_cast<float>(qv - z)));
      }
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i)
        r.v[i] = row < rows && k + i < K ? __float_as_uint(dequant_at<T>(w, row, k + i, K, qa)) : 0u;
    }
    return r;
  }
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
  if constexpr (T == WType::kF32 || kIsQuant<T>) {
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
  if constexpr (T == WType::kF32 || kIsQuant<T>) {
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
                int64_t N, int64_t K, int act, int vec, QuantArgs qa) {
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
  Raw4<T> wraw = load4_w<T>(W, n0 + lrow, N, lk, K, vec, qa);
  load4_act(A, m0 + lrow, M, lk, K, vec, kIsQuant<T> ? qa.perm : nullptr, ra);
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
      load4_act(A, m0 + lrow, M, k, K, vec, kIsQuant<T> ? qa.perm : nullptr, ra);
      wraw = load4_w<T>(W, n0 + lrow, N, k, K, vec, qa);
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

// A quantized table's rows as dequantize_rows writes them: stored column j of row ids[t] is
// s * float(q - z) (dequant_at), placed at input perm[j] under act-order.
template <WType T>
__global__ void embed_rows_q_kernel(const void* __restrict__ table, int64_t cols, QuantArgs qa,
                                    const int32_t* __restrict__ ids, int64_t n, float* __restrict__ out) {
  const int64_t total = n * cols;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / cols, j = e - t * cols;
    const float v = dequant_at<T>(table, static_cast<int64_t>(ids[t]), j, cols, qa);
    out[t * cols + (qa.perm ? static_cast<int64_t>(__ldg(qa.perm + j)) : j)] = v;
  }
}

template <WType T>
void linear_launch(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                   cudaStream_t s, int act, const float* residual) {
  const int64_t N = w.rows, K = w.cols;
  QuantArgs qa;
  if constexpr (kIsQuant<T>) {
    if (n <= kQuantGemvMaxRows) {
      linear_q_gemv_dev(x, n, w, bias, y, s, act, residual);
      return;
    }
    qa.scales = w.scales;
    qa.zeros = w.zeros;
    qa.group = w.group;
    qa.perm = w.perm;
  } else if (n <= 4) {
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
  if (linear_tc_dev(x, n, w, bias, y, s, act, residual)) return;  // off unless SR3D_CUDA_TC=1
  const int vec = K % 4 == 0 && aligned16(w.data) && aligned16(x) && (!kIsQuant<T> || qa.group % 4 == 0);
  const dim3 grid(static_cast<unsigned>((N + kBN - 1) / kBN), static_cast<unsigned>((n + kBM - 1) / kBM));
  SR3D_LAUNCH(gemm_kernel<T>, grid, kGemmThreads, 0, s, x, w.data, bias, residual, y, n, N, K,
              act, vec, qa);
}

}  // namespace

void linear_dev(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                cudaStream_t s, int act, const float* residual) {
  if (n <= 0 || w.rows <= 0) return;
  switch (w.type) {
    case WType::kF32: linear_launch<WType::kF32>(x, n, w, bias, y, s, act, residual); break;
    case WType::kF16: linear_launch<WType::kF16>(x, n, w, bias, y, s, act, residual); break;
    case WType::kBF16: linear_launch<WType::kBF16>(x, n, w, bias, y, s, act, residual); break;
    case WType::kQ4: linear_launch<WType::kQ4>(x, n, w, bias, y, s, act, residual); break;
    case WType::kQ8: linear_launch<WType::kQ8>(x, n, w, bias, y, s, act, residual); break;
    default:
      throw_invalid_argument("weight dtype float32, float16, bfloat16, int4 or int8", "weight",
                             "dtype code " + std::to_string(static_cast<int>(w.type)));
  }
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
    case WType::kQ4:
    case WType::kQ8: {
      QuantArgs qa;
      qa.scales = table.scales;
      qa.zeros = table.zeros;
      qa.group = table.group;
      qa.perm = table.perm;
      if (table.type == WType::kQ4)
        SR3D_LAUNCH(embed_rows_q_kernel<WType::kQ4>, grid_for(total), kBlock, 0, s, table.data, table.cols, qa, ids, n, out);
      else
        SR3D_LAUNCH(embed_rows_q_kernel<WType::kQ8>, grid_for(total), kBlock, 0, s, table.data, table.cols, qa, ids, n, out);
      break;
    }
    default:
      throw_invalid_argument("an embedding table of dtype float32, float16, bfloat16, int4 or int8", "table",
                             wtype_name(table.type));
  }
}

void linear_host(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y) {
  if (n <= 0 || w.rows <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.upload(x, n * w.cols), dy = rt.output(y, n * w.rows);
  DeviceBuffer<float> db = bias ? rt.upload(bias, w.rows) : DeviceBuffer<float>();
  DeviceWeight dw = upload_weight(rt, w);
  linear_dev(dx.get(), n, dw.ref, db.get(), dy.get(), rt.stream());
  rt.download(y, dy);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
