// Attention on CUDA (kernels/attention.h): flash-style online softmax over shared-memory
// tiles, with the keys split over blocks when there are too few query tiles to fill the GPU.
// attention_dev / attention_workspace_floats / sm_count are declared in nn.cuh.
//
// Napkin math: 16 queries x 32 keys per shared-memory tile, one warp per query row, online
// softmax; decode (one query) splits the keys over blocks and combines the partials. A launch
// with AttentionArgs::q_offset_dev (the CUDA-graph decode) reads the position when it runs and
// plans its split on the device with the host's split_plan (tests_cpp/emulate/
// step_position_emu.py checks the two paths bitwise on the CPU).
// --fmad=false is on for the whole file: the FMAs below are explicit (__fmaf_rn).
#ifdef SR3D_WITH_CUDA
#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "../attention.h"
#include "cuda_util.h"
#include "nn.cuh"
#include "nn_common.cuh"

namespace sr3d {
namespace cuda {

namespace {

constexpr int kAttnWarps = 4, kQPerWarp = 4, kQT = kAttnWarps * kQPerWarp, kKT = 32;

struct AttnParams {
  AttentionArgs a;
  int64_t splits, keys_per_split;  // of the grid (with a.q_offset_dev: sized for a.nk keys)
  int64_t base, sms;               // for split_plan on the device (a.q_offset_dev)
  float* part_acc;  // [batch][splits][nq][hq][d]
  float* part_ml;   // [batch][splits][nq][hq][2]
};

// How attention_dev splits kmax keys over blocks: too few query tiles (base = qtiles x heads x
// batch) for the GPU (decode, short prefills at long context) split the keys so ~8 blocks per
// SM stay resident, each with >= 64 keys (two tiles). One integer function for the host and
// the device, so a replayed graph (a.q_offset_dev) partitions the keys of the real position
// exactly as a plain launch there would: the same partial sums, bitwise.
struct SplitPlan {
  int64_t splits, keys_per_split;
};
__host__ __device__ inline SplitPlan split_plan(int64_t kmax, int64_t base, int64_t sms) {
  int64_t splits = 1;
  if (base < 2 * sms && kmax > 2 * 64) {
    const int64_t fill = (8 * sms + base - 1) / base, enough = (kmax + 63) / 64;
    splits = fill < enough ? fill : enough;
    if (splits < 1) splits = 1;
  }
  const int64_t per = ((kmax > 1 ? kmax : 1) + splits - 1) / splits;
  return SplitPlan{splits, (per + kKT - 1) / kKT * kKT};
}

// The per-step values of one launch: the arguments, or (a.q_offset_dev: a decode step replayed
// from a CUDA graph, whose kernel arguments are frozen) the position read from device memory,
// nk = q_offset + nq keys and the split plan of that real count.
struct AttnStep {
  int64_t q_offset, nk, splits, keys_per_split;
};
__device__ __forceinline__ AttnStep attn_step(const AttnParams& p) {
  const AttentionArgs& a = p.a;
  if (!a.q_offset_dev) return AttnStep{a.q_offset, a.nk, p.splits, p.keys_per_split};
  const int64_t q_offset = *a.q_offset_dev, nk = q_offset + a.nq;
  const SplitPlan plan = split_plan(nk, p.base, p.sms);  // causal or not, kmax = nk here
  return AttnStep{q_offset, nk, plan.splits, plan.keys_per_split};
}

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
  const AttnStep st = attn_step(p);
  if (sp >= st.splits) return;  // a graph's grid sized for more keys than this step has (block-uniform)
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kQT;
  const int64_t qn = min(static_cast<int64_t>(kQT), a.nq - q0);
  const float* qb = a.q + b * a.q_bstride;
  const float* kb = a.k + b * a.kv_bstride + kvh * d;
  const float* vb = a.v + b * a.kv_bstride + kvh * d;

  const int64_t k_begin = sp * st.keys_per_split;
  int64_t k_end = min(st.nk, k_begin + st.keys_per_split);
  if (a.causal) k_end = min(k_end, st.q_offset + q0 + qn);

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
      const int64_t qpos = st.q_offset + q0 + i;
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
    if (st.splits == 1) {
      float* o = a.out + b * a.out_bstride + qi * a.out_stride + h * d;
      const float inv = l[qq] > 0.f ? 1.f / l[qq] : 0.f;
#pragma unroll
      for (int u = 0; u < DPL; ++u) {
        const int64_t c = lane + 32 * u;
        if (c < d) o[c] = acc[qq][u] * inv;
      }
    } else {
      const int64_t slot = ((b * st.splits + sp) * a.nq + qi) * a.hq + h;
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
  const int64_t splits = attn_step(p).splits;
  if (splits == 1) return;  // a graph step with one split: attention_kernel wrote the output
  float M = -INFINITY;
  for (int64_t s = 0; s < splits; ++s) {
    const int64_t slot = ((b * splits + s) * a.nq + qi) * a.hq + h;
    if (p.part_ml[slot * 2 + 1] > 0.f) M = fmaxf(M, p.part_ml[slot * 2]);
  }
  float L = 0.f;
  for (int64_t s = 0; s < splits; ++s) {
    const int64_t slot = ((b * splits + s) * a.nq + qi) * a.hq + h;
    const float ls = p.part_ml[slot * 2 + 1];
    if (ls > 0.f) L += ls * expf(p.part_ml[slot * 2] - M);
  }
  float* o = a.out + b * a.out_bstride + qi * a.out_stride + h * a.d;
  for (int64_t c = threadIdx.x; c < a.d; c += blockDim.x) {
    float v = 0.f;
    for (int64_t s = 0; s < splits; ++s) {
      const int64_t slot = ((b * splits + s) * a.nq + qi) * a.hq + h;
      const float ls = p.part_ml[slot * 2 + 1];
      if (ls > 0.f) v += p.part_acc[slot * a.d + c] * expf(p.part_ml[slot * 2] - M);
    }
    o[c] = L > 0.f ? v / L : 0.f;
  }
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
  if (attention_tc_dev(a, s)) return;  // off unless SR3D_CUDA_TC=1 (attention_tc.cu)
  AttnParams p;
  p.a = a;
  if (a.q_offset_dev && a.q_offset + a.nq != a.nk)
    throw_invalid_argument("nk = q_offset + nq (the bound of a device-position launch)", "nk",
                           std::to_string(a.nk) + " with q_offset " + std::to_string(a.q_offset) +
                               " and nq " + std::to_string(a.nq));
  const int64_t qtiles = (a.nq + kQT - 1) / kQT;
  const int64_t kmax = a.causal ? std::min(a.nk, a.q_offset + a.nq) : a.nk;
  const int64_t base = qtiles * a.hq * a.batch, sms = sm_count();
  const SplitPlan plan = split_plan(kmax, base, sms);
  const int64_t splits = plan.splits;
  p.keys_per_split = plan.keys_per_split;
  p.splits = splits;
  p.base = base;
  p.sms = sms;
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

void attention_host(const float* q, const float* k, const float* v, int64_t nq, int64_t nk,
                    int64_t hq, int64_t hkv, int64_t d, float scale, bool causal, int64_t q_offset,
                    float* out) {
  if (nq <= 0 || hq <= 0 || d <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dq = rt.upload(q, nq * hq * d), dk = rt.upload(k, nk * hkv * d),
                      dv = rt.upload(v, nk * hkv * d), dout = rt.output(out, nq * hq * d);
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

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
