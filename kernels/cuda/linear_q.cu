// Decode GEMV of int4 / int8 Linear weights on CUDA (weights.h's one quantized layout):
// y[i][r] = act(sum_j x[i][perm[j]] * s[r][j/G] * (q[r][j] - z[r][j/G]) + b[r]) + residual,
// for n <= kQuantGemvMaxRows input rows. linear_dev (linear.cu) calls it; larger n runs the
// tiled GEMM there, which dequantizes each weight tile into shared memory.
//
// Napkin math (H200: ~4.3 TB/s measured copy, 132 SMs at ~1.98 GHz, 128 fp32 lanes each):
// - Qwen2-7B's down_proj at int4 group 128 is 3584 x 18944: 33.9 MB of q + 2.7 MB of scales and
//   zeros (5 bytes per group) = 36.6 MB per call, 8.5 us at 4.3 TB/s; gate|up (37888 x 3584) the
//   same, q_proj 3584 x 3584 7.3 MB (1.7 us). Per SM that is ~16.5 bytes of weights per clock,
//   i.e. one 16-byte load (32 int4 weights) per clock against 128 fp32 lanes: every weight may
//   cost at most ~4 instructions or the kernel is issue-bound, not memory-bound.
// - So the dequantization is 3 instructions a weight (n = 1): one LOP3 puts a nibble (byte)
//   into the mantissa of 2^23 ((u & 0xF << 4k) | 0x4B000000 = 2^23 + q * 16^k, exact), one FADD
//   subtracts 2^23 + z * 16^k (exact: both below 2^24), one FFMA with x * 16^-k (x scaled once
//   per column, shared by every row of the block; a power of two, so exact). The scale multiplies
//   the 32-weight partial sum of a (row, 16-byte chunk) once: per group, as the factored
//   s * sum (q - z) x (rounding differs from the reference's s * (q - z) per weight; the tests
//   compare by tolerance).
// - x reuse: a thread owns a 16-byte column chunk and walks kQuantRowsPerBlock rows with it, so
//   each x value is loaded once per 8 rows (L1 traffic ~2 bytes per weight byte, not 8); the
//   block's threads split K (split-K inside the block, combined through shared memory in a fixed
//   order: deterministic, no workspace, one launch). 8 independent 16-byte loads per thread
//   are in flight before the first use (~55 KB per SM at 3-4 blocks: more than the ~20 KB
//   Little's law asks for at ~600 ns).
// - Act-order (perm): x is gathered through perm per chunk (x is <= 76 KB per row: L1/L2).
// Layouts the vector path does not cover (K % 32 != 0 for int4 / % 16 for int8, groups not a
// multiple of the chunk, unaligned pointers) run a scalar kernel with the reference's
// per-weight rounding. --fmad=false holds for the whole file; the FMAs are explicit.
#ifdef SR3D_WITH_CUDA
#include <algorithm>
#include <string>

#include "../linear.h"
#include "cuda_util.h"
#include "nn.cuh"
#include "nn_common.cuh"

namespace sr3d {
namespace cuda {

namespace {

constexpr int kQuantRowsPerBlock = 8;  // output rows per block (x reuse); 4 for n > 4
constexpr int kQuantMaxThreads = 128;
constexpr float kMagic = 8388608.f;  // 2^23: an integer below 2^23 ORed into its mantissa
int g_threads_override = 0;          // set_quant_gemv_threads (benchmarks)

// x[i][cols c0 .. c0 + PER) (through perm when present), column e scaled by 2^-(shift of e):
// the nibble / byte e of a 32-bit word sits at bit 4 (e % 4) / 8 (e % 2) of its half.
template <int BITS, int NR, bool PERM>
__device__ __forceinline__ void load_x_word(const float* __restrict__ x, const int32_t* __restrict__ perm,
                                            int n, int64_t K, int64_t c0, float (&xs)[NR][32 / BITS]) {
  constexpr int PER = 32 / BITS;
  int32_t idx[PER];
  if constexpr (PERM) {
    const int4 p0 = __ldg(reinterpret_cast<const int4*>(perm + c0));
    idx[0] = p0.x; idx[1] = p0.y; idx[2] = p0.z; idx[3] = p0.w;
    if constexpr (PER == 8) {
      const int4 p1 = __ldg(reinterpret_cast<const int4*>(perm + c0 + 4));
      idx[4] = p1.x; idx[5] = p1.y; idx[6] = p1.z; idx[7] = p1.w;
    }
  }
#pragma unroll
  for (int r = 0; r < NR; ++r) {
    if (r < n) {
      const float* xr = x + r * K;
      if constexpr (PERM) {
#pragma unroll
        for (int e = 0; e < PER; ++e) xs[r][e] = __ldg(xr + idx[e]);
      } else {
#pragma unroll
        for (int e = 0; e < PER; e += 4) {
          const float4 v = __ldg(reinterpret_cast<const float4*>(xr + c0 + e));
          xs[r][e] = v.x; xs[r][e + 1] = v.y; xs[r][e + 2] = v.z; xs[r][e + 3] = v.w;
        }
      }
#pragma unroll
      for (int e = 0; e < PER; ++e) {
        if constexpr (BITS == 4) {
          if (e % 4) xs[r][e] *= e % 4 == 1 ? 1.f / 16 : e % 4 == 2 ? 1.f / 256 : 1.f / 4096;
        } else {
          if (e % 2) xs[r][e] *= 1.f / 256;
        }
      }
    } else {
#pragma unroll
      for (int e = 0; e < PER; ++e) xs[r][e] = 0.f;
    }
  }
}

// The vector path. Block: RB consecutive output rows; thread t owns the 16-byte chunks
// t, t + blockDim.x, ... of those rows (32 int4 / 16 int8 columns each, one group).
template <int BITS, int NR, int RB, bool PERM>
__global__ void __launch_bounds__(kQuantMaxThreads)
    gemv_q_kernel(const float* __restrict__ x, int n, const uint8_t* __restrict__ q,
                  const float* __restrict__ scales, const uint8_t* __restrict__ zeros,
                  const int32_t* __restrict__ perm, const float* __restrict__ bias,
                  const float* residual, float* y, int64_t N, int64_t K, int64_t group, int act) {
  constexpr int CW = 128 / BITS;  // columns per 16-byte chunk
  constexpr int PER = 32 / BITS;  // columns per 32-bit word
  constexpr int HALF = PER / 2;   // columns per 16-bit half word
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * RB;
  const int64_t row_bytes = K * BITS / 8, ng = K / group, chunks = K / CW;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  float acc[RB][NR];
#pragma unroll
  for (int i = 0; i < RB; ++i)
#pragma unroll
    for (int r = 0; r < NR; ++r) acc[i][r] = 0.f;

  for (int64_t c = tid; c < chunks; c += blockDim.x) {
    const int64_t col0 = c * CW, g = col0 / group;
    uint4 qv[RB];
    float sc[RB], cz[RB][HALF];
#pragma unroll
    for (int i = 0; i < RB; ++i) {  // every load of the chunk issued before the first use
      const int64_t row = r0 + i;
      if (row < N) {
        qv[i] = __ldg(reinterpret_cast<const uint4*>(q + row * row_bytes) + c);
        sc[i] = __ldg(scales + row * ng + g);
        cz[i][0] = static_cast<float>(__ldg(zeros + row * ng + g));
      } else {
        qv[i] = make_uint4(0, 0, 0, 0);
        sc[i] = 0.f;
        cz[i][0] = 0.f;
      }
    }
#pragma unroll
    for (int i = 0; i < RB; ++i) {  // -(2^23 + z * 16^k) (int4) / -(2^23 + z * 256^k), exact
      const float z = cz[i][0];
#pragma unroll
      for (int k = 0; k < HALF; ++k)
        cz[i][k] = -(kMagic + z * static_cast<float>(1 << (k * BITS)));
    }
    float part[RB][NR];
#pragma unroll
    for (int i = 0; i < RB; ++i)
#pragma unroll
      for (int r = 0; r < NR; ++r) part[i][r] = 0.f;
#pragma unroll
    for (int wd = 0; wd < 4; ++wd) {
      float xs[NR][PER];
      load_x_word<BITS, NR, PERM>(x, perm, n, K, col0 + wd * PER, xs);
#pragma unroll
      for (int i = 0; i < RB; ++i) {
        const uint32_t u = wd == 0 ? qv[i].x : wd == 1 ? qv[i].y : wd == 2 ? qv[i].z : qv[i].w;
        const uint32_t halves[2] = {u, u >> 16};
#pragma unroll
        for (int e = 0; e < PER; ++e) {
          const int k = e % HALF;
          const uint32_t mask = ((1u << BITS) - 1u) << (k * BITS);
          const float d = __fadd_rn(__uint_as_float((halves[e / HALF] & mask) | 0x4B000000u), cz[i][k]);
#pragma unroll
          for (int r = 0; r < NR; ++r) part[i][r] = __fmaf_rn(d, xs[r][e], part[i][r]);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < RB; ++i)
#pragma unroll
      for (int r = 0; r < NR; ++r) acc[i][r] = __fmaf_rn(sc[i], part[i][r], acc[i][r]);
  }

  // Warp sums, then the warps in order (deterministic), then the epilogue.
  __shared__ float red[kQuantMaxThreads / 32][RB * NR];
#pragma unroll
  for (int i = 0; i < RB; ++i)
#pragma unroll
    for (int r = 0; r < NR; ++r) {
      const float v = warp_sum(acc[i][r]);
      if (lane == 0) red[warp][i * NR + r] = v;
    }
  __syncthreads();
  if (tid < RB * NR) {
    const int i = tid / NR, r = tid % NR;
    const int64_t row = r0 + i;
    if (row < N && r < n) {
      float v = 0.f;
      for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) v += red[w][tid];
      if (bias) v += bias[row];
      v = act_apply(v, act);
      if (residual) v += residual[r * N + row];
      y[r * N + row] = v;
    }
  }
}

// Any layout: one warp per output row, each weight dequantized as the reference does
// (s * float(q - z), one rounding), x through perm.
constexpr int kScalarWarps = 8;
template <int NR>
__global__ void __launch_bounds__(kScalarWarps * 32)
    gemv_q_scalar_kernel(const float* __restrict__ x, int n, const uint8_t* __restrict__ q, int bits,
                         const float* __restrict__ scales, const uint8_t* __restrict__ zeros,
                         const int32_t* __restrict__ perm, const float* __restrict__ bias,
                         const float* residual, float* y, int64_t N, int64_t K, int64_t group,
                         int act) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kScalarWarps + (threadIdx.x >> 5);
  if (row >= N) return;
  const int64_t row_bytes = bits == 4 ? K / 2 : K, ng = K / group;
  const uint8_t* qr = q + row * row_bytes;
  float acc[NR];
#pragma unroll
  for (int r = 0; r < NR; ++r) acc[r] = 0.f;
  for (int64_t j = lane; j < K; j += 32) {
    const int qb = __ldg(qr + (bits == 4 ? j / 2 : j));
    const int qv = bits == 4 ? (j & 1 ? qb >> 4 : qb & 15) : qb;
    const int64_t g = row * ng + j / group;
    const float w = __fmul_rn(__ldg(scales + g), static_cast<float>(qv - static_cast<int>(__ldg(zeros + g))));
    const int64_t col = perm ? __ldg(perm + j) : j;
#pragma unroll
    for (int r = 0; r < NR; ++r)
      if (r < n) acc[r] = __fmaf_rn(w, __ldg(x + r * K + col), acc[r]);
  }
  gemv_store_rows<NR>(acc, n, lane, row, N, bias, act, residual, y);
}

template <int BITS, int NR, int RB>
void launch_vec(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                cudaStream_t s, int act, const float* residual) {
  const int64_t chunks = w.cols / (128 / BITS);
  const unsigned grid = static_cast<unsigned>((w.rows + RB - 1) / RB);
  // Enough threads for the chunks of a row (a warp at least), at most kQuantMaxThreads. Few
  // row blocks (down_proj: 3584 / 8 = 448 on 132 SMs) take 64-thread blocks instead: at ~168
  // registers a thread, 3 blocks of 128 fit an SM, so 448 blocks would run as a full wave plus
  // a 13% tail; 6 blocks of 64 fit, and all 448 run at once.
  int threads = static_cast<int>(std::min<int64_t>(kQuantMaxThreads, (chunks + 31) / 32 * 32));
  if (grid < 4u * static_cast<unsigned>(sm_count())) threads = std::min(threads, 64);
  if (g_threads_override > 0) threads = g_threads_override;
  const uint8_t* q = static_cast<const uint8_t*>(w.data);
  if (w.perm)
    SR3D_LAUNCH((gemv_q_kernel<BITS, NR, RB, true>), grid, threads, 0, s, x, static_cast<int>(n), q,
                w.scales, w.zeros, w.perm, bias, residual, y, w.rows, w.cols, w.group, act);
  else
    SR3D_LAUNCH((gemv_q_kernel<BITS, NR, RB, false>), grid, threads, 0, s, x, static_cast<int>(n), q,
                w.scales, w.zeros, w.perm, bias, residual, y, w.rows, w.cols, w.group, act);
}

template <int BITS>
void launch_bits(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                 cudaStream_t s, int act, const float* residual) {
  if (n == 1) launch_vec<BITS, 1, kQuantRowsPerBlock>(x, n, w, bias, y, s, act, residual);
  else if (n <= 4) launch_vec<BITS, 4, kQuantRowsPerBlock>(x, n, w, bias, y, s, act, residual);
  else launch_vec<BITS, 8, kQuantRowsPerBlock / 2>(x, n, w, bias, y, s, act, residual);
}

}  // namespace

void set_quant_gemv_threads(int threads) {
  if (threads != 0 && threads != 32 && threads != 64 && threads != 96 && threads != 128)
    throw_invalid_argument("0 (the heuristic) or 32, 64, 96, 128", "quant GEMV threads", std::to_string(threads));
  g_threads_override = threads;
}

bool quant_gemv_vectorized(const WeightRef& w, const float* x) {
  const int64_t cw = w.type == WType::kQ4 ? 32 : 16;
  return w.cols % cw == 0 && w.group % cw == 0 && aligned16(w.data) && aligned16(x) &&
         (!w.perm || aligned16(w.perm));
}

void linear_q_gemv_dev(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                       cudaStream_t s, int act, const float* residual) {
  if (n > kQuantGemvMaxRows)
    throw_internal("linear_q_gemv_dev: n " + std::to_string(n) + " > " + std::to_string(kQuantGemvMaxRows));
  const int bits = w.type == WType::kQ4 ? 4 : 8;
  if (quant_gemv_vectorized(w, x)) {
    if (bits == 4) launch_bits<4>(x, n, w, bias, y, s, act, residual);
    else launch_bits<8>(x, n, w, bias, y, s, act, residual);
    return;
  }
  const unsigned grid = static_cast<unsigned>((w.rows + kScalarWarps - 1) / kScalarWarps);
  SR3D_LAUNCH(gemv_q_scalar_kernel<kQuantGemvMaxRows>, grid, kScalarWarps * 32, 0, s, x,
              static_cast<int>(n), static_cast<const uint8_t*>(w.data), bits, w.scales, w.zeros,
              w.perm, bias, residual, y, w.rows, w.cols, w.group, act);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
