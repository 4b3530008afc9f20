// Tensor-core attention (kernels/attention.h) for the prefill and vision shapes: flash-style
// online softmax with S = Q K^T and O += P V on mma.sync m16n8k16 (bf16 operands, float32
// accumulation, mma.cuh), behind the tensor-core switch of gemm_tc.cu (SR3D_CUDA_TC=1 /
// set_tc_gemm; off by default). attention.cu's attention_dev calls attention_tc_dev first and
// keeps its float32 kernel when this declines: switch off, a GPU below sm_80 or a binary
// without sm_80+ code for it, fewer than 16 queries (decode keeps its key-split kernel), an
// odd head dim or one that does not pad to 64, 80 or 128.
//
// Napkin math (H200, ~790 TFLOP/s dense bf16):
// - SigLIP so400m at 448: 16 heads x 1024 x 1024 keys x d 72 (padded to 80: 11% of the mma
//   wasted) x 4 FLOP (QK and PV) = 4.8 GFLOP per layer, 0.13 TFLOP per tile over 27 layers
//   (vs 0.55 for the MLP): 0.17 ms per tile at peak.
// - Qwen2-7B prefill of 1600 positions, causal: 28 heads x 1600^2 / 2 x 128 x 4 = 18 GFLOP per
//   layer, 0.51 TFLOP over 28 layers: 0.65 ms at peak.
// - Per warp and 64-key tile: 16 query rows, S = 8 n-tiles x d/16 k-steps of mma, P V = 4
//   k-steps x d/8 n-tiles; Q stays in registers (d/16 x 4), K and V^T in shared memory as bf16
//   pairs with rows padded to hit 32 banks; no double buffering yet (one barrier pair per
//   tile), so expect well under half of peak: cp.async staging needs bf16 K / V (the engine
//   keeps them float32), the next step along with a bf16 KV cache.
#ifdef SR3D_WITH_CUDA
#include <cmath>

#include "../attention.h"
#include "cuda_util.h"
#include "mma.cuh"
#include "nn.cuh"
#include "nn_common.cuh"

namespace sr3d {
namespace cuda {

namespace {

// ---- the kernel (tests_cpp/emulate/attention_tc_emu.py compiles from here to "host side") ----

constexpr int kAtWarps = 4, kAtQ = 16 * kAtWarps, kAtK = 64, kAtThreads = 32 * kAtWarps;
static_assert(kAtK % 16 == 0, "P's k steps are pairs of S's 8-key n-tiles");
static_assert(kAtQ == kAtK, "the Q tile and each K tile share one shared-memory buffer");

// Rows row0 .. row0 + 63 of a float matrix (rows apart by `stride`, head dim d) into dst as
// bf16 pairs, rounded to nearest even; zeros past d (the padding to DP) and past `rows`.
template <int DP>
__device__ __forceinline__ void stage_rows_bf16(uint32_t (*dst)[DP / 2 + 4], const float* base,
                                                int64_t stride, int64_t row0, int64_t rows,
                                                int64_t d, int tid) {
  for (int i = tid; i < kAtK * (DP / 2); i += kAtThreads) {
    const int r = i / (DP / 2), c = (i % (DP / 2)) * 2;
    const int64_t row = row0 + r;
    float x0 = 0.f, x1 = 0.f;
    if (row < rows && c < d) {
      const float* p = base + row * stride + c;
      x0 = p[0];
      x1 = c + 1 < d ? p[1] : 0.f;
    }
    dst[r][c / 2] = bf16x2_rn(x0, x1);
  }
}

// Grid: (ceil(nq / 64), hq, batch); each warp 16 query rows of one head.
template <int DP>
__global__ void __launch_bounds__(kAtThreads) attention_tc_kernel(AttentionArgs a) {
#if SR3D_TC_BODY
  __shared__ __align__(16) uint32_t KQ[kAtK][DP / 2 + 4];  // the Q tile first, then each K tile
  __shared__ __align__(16) uint32_t Vt[DP][kAtK / 2 + 4];  // V^T: row = head dim, pairs of keys
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;  // groupID, threadID_in_group (mma.cuh)
  const int64_t d = a.d, h = blockIdx.y, kvh = h / (a.hq / a.hkv), b = blockIdx.z;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kAtQ;
  const float* qb = a.q + b * a.q_bstride + h * d;
  const float* kb = a.k + b * a.kv_bstride + kvh * d;
  const float* vb = a.v + b * a.kv_bstride + kvh * d;
  float* ob = a.out + b * a.out_bstride + h * d;

  stage_rows_bf16<DP>(KQ, qb, a.q_stride, q0, a.nq, d, tid);
  __syncthreads();
  uint32_t qf[DP / 16][4];
#pragma unroll
  for (int ks = 0; ks < DP / 16; ++ks) {
    const uint32_t* r0 = KQ[warp * 16 + g];
    const uint32_t* r8 = KQ[warp * 16 + g + 8];
    const int kw = ks * 8 + t4;
    qf[ks][0] = r0[kw];
    qf[ks][1] = r8[kw];
    qf[ks][2] = r0[kw + 4];
    qf[ks][3] = r8[kw + 4];
  }
  __syncthreads();

  // This lane's two query rows (c0,c1: row g; c2,c3: row g + 8) and their positions.
  const int64_t row0 = q0 + warp * 16 + g, row1 = row0 + 8;
  const int64_t pos0 = a.q_offset + row0, pos1 = a.q_offset + row1;
  const float sl2 = a.scale * 1.4426950408889634f;  // exp(x * scale) = exp2(x * scale * log2 e)
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // l: this lane's partial row sums
  float o[DP / 8][4];
#pragma unroll
  for (int nt = 0; nt < DP / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[nt][e] = 0.f;

  int64_t k_end = a.nk;
  if (a.causal) k_end = min(k_end, a.q_offset + min(a.nq, q0 + kAtQ));
  for (int64_t kt = 0; kt < k_end; kt += kAtK) {
    stage_rows_bf16<DP>(KQ, kb, a.kv_stride, kt, a.nk, d, tid);
    for (int i = tid; i < DP * (kAtK / 2); i += kAtThreads) {  // consecutive threads: consecutive d
      const int c = i % DP, kp = i / DP;
      const int64_t key = kt + 2 * kp;
      const float v0 = key < a.nk && c < d ? vb[key * a.kv_stride + c] : 0.f;
      const float v1 = key + 1 < a.nk && c < d ? vb[(key + 1) * a.kv_stride + c] : 0.f;
      Vt[c][kp] = bf16x2_rn(v0, v1);
    }
    __syncthreads();

    float s[kAtK / 8][4];
#pragma unroll
    for (int nt = 0; nt < kAtK / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = 0.f;
#pragma unroll
    for (int ks = 0; ks < DP / 16; ++ks)
#pragma unroll
      for (int nt = 0; nt < kAtK / 8; ++nt) {
        const uint32_t* kr = KQ[nt * 8 + g];
        const uint32_t bf[2] = {kr[ks * 8 + t4], kr[ks * 8 + t4 + 4]};
        mma_bf16_16816(s[nt], qf[ks], bf);
      }

    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kAtK / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t key = kt + nt * 8 + 2 * t4 + (e & 1);
        const bool valid = key < a.nk && (!a.causal || key <= (e < 2 ? pos0 : pos1));
        s[nt][e] = valid ? s[nt][e] * sl2 : -INFINITY;
        mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
      }
    float corr[2], mu[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {  // a row's 64 keys live in the 4 lanes of its group
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mn = fmaxf(m[r], mx[r]);
      mu[r] = mn == -INFINITY ? 0.f : mn;  // no key yet: exp2(-inf) = 0 everywhere
      corr[r] = exp2f(m[r] - mu[r]);
      m[r] = mn;
      l[r] *= corr[r];
    }
#pragma unroll
    for (int nt = 0; nt < DP / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[nt][e] *= corr[e >> 1];
#pragma unroll
    for (int nt = 0; nt < kAtK / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = exp2f(s[nt][e] - mu[e >> 1]);
        l[e >> 1] += s[nt][e];
      }
    // P as the A operand: S's n-tiles 2kk and 2kk + 1 are exactly A's k columns 0-7 and 8-15.
#pragma unroll
    for (int kk = 0; kk < kAtK / 16; ++kk) {
      const uint32_t pa[4] = {bf16x2_rn(s[2 * kk][0], s[2 * kk][1]), bf16x2_rn(s[2 * kk][2], s[2 * kk][3]),
                              bf16x2_rn(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              bf16x2_rn(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nt = 0; nt < DP / 8; ++nt) {
        const uint32_t* vr = Vt[nt * 8 + g];
        const uint32_t bf[2] = {vr[kk * 8 + t4], vr[kk * 8 + t4 + 4]};
        mma_bf16_16816(o[nt], pa, bf);
      }
    }
    __syncthreads();  // KQ / Vt are refilled next
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    l[r] = l[r] > 0.f ? 1.f / l[r] : 0.f;
  }
#pragma unroll
  for (int nt = 0; nt < DP / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t row = e < 2 ? row0 : row1, c = nt * 8 + 2 * t4 + (e & 1);
      if (row < a.nq && c < d) ob[row * a.out_stride + c] = o[nt][e] * l[e >> 1];
    }
#endif
}

// ---- host side -------------------------------------------------------------------------

}  // namespace

bool attention_tc_dev(const AttentionArgs& a, cudaStream_t s) {
  if (a.nq < 16 || a.d % 2 != 0 || a.batch > 65535 || a.hq > 65535) return false;
  const int64_t dp = (a.d + 15) / 16 * 16;
  if (dp != 64 && dp != 80 && dp != 128) return false;
  if (!tc_gemm_enabled() || !tc_gemm_supported()) return false;
  const dim3 grid(static_cast<unsigned>((a.nq + kAtQ - 1) / kAtQ), static_cast<unsigned>(a.hq),
                  static_cast<unsigned>(a.batch));
  if (dp == 64) SR3D_LAUNCH(attention_tc_kernel<64>, grid, kAtThreads, 0, s, a);
  else if (dp == 80) SR3D_LAUNCH(attention_tc_kernel<80>, grid, kAtThreads, 0, s, a);
  else SR3D_LAUNCH(attention_tc_kernel<128>, grid, kAtThreads, 0, s, a);
  return true;
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
