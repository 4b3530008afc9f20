// The canonical-transform reduction on the GPU, shared by canonicalize.cu (points read
// from memory) and scene_points.cu (points recomputed from depth). It must give the
// transform of kernels/cpu/canonicalize.cc bit for bit, so it computes the same exact
// order statistics:
//   launch 1: valid count + per-axis min/max (block reduction, then atomics on an
//             order-preserving uint32 encoding of the floats: exact, NaN skipped);
//   quantile > 0 (isotropic): a strided sample (~64K points, one small launch) brackets
//             each needed rank on the host (+-5 sigma, as the CPU); launch 2 counts the
//             values below each bracket and appends those inside it to a device buffer;
//             the host selects exactly with std::nth_element. A rank outside its bracket or
//             a full buffer costs one more exact-capacity round (counts are known then).
// The final apply launch lives with each op.
#pragma once
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "../canonicalize.h"
#include "backproject.cuh"
#include "cuda_util.h"

namespace sr3d {
namespace cuda {

// ---- sources: point i -> p[3], true iff all three components are finite ---------------
struct PointsSource {
  const float* points;
  __device__ __forceinline__ bool load(int64_t i, float p[3]) const {
    p[0] = points[3 * i];
    p[1] = points[3 * i + 1];
    p[2] = points[3 * i + 2];
    return finite3(p);
  }
};

struct DepthSource {
  DepthView view;
  // A valid depth can still give a non-finite point (overflow): canonicalize drops it too.
  __device__ __forceinline__ bool load(int64_t i, float p[3]) const {
    return backproject_pixel(view, i, p) && finite3(p);
  }
};

// ---- order-preserving float <-> uint32 (-0 < +0; NaN never encoded) -----------------
__device__ __forceinline__ unsigned ordered_key(float f) {
  unsigned u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline float ordered_key_to_float(unsigned k) {
  unsigned u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float f;
  static_assert(sizeof f == sizeof u, "float is 32 bits");
  std::memcpy(&f, &u, sizeof f);
  return f;
}

struct ReduceStats {
  unsigned long long count;
  unsigned mn[3], mx[3];
};

// ---- block reductions (blockDim.x a multiple of 32, <= 1024) ------------------------
struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct MinOp {
  __device__ unsigned operator()(unsigned a, unsigned b) const { return a < b ? a : b; }
};
struct MaxOp {
  __device__ unsigned operator()(unsigned a, unsigned b) const { return a > b ? a : b; }
};

// Result valid in thread 0; `identity` pads the lanes past the last warp. `scratch` holds
// 32 values and is reusable after the call returns. Every thread of the block must call.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T identity, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  if (warp == 0) {
    v = lane < warps ? scratch[lane] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  }
  return v;
}

template <typename Source>
__global__ void reduce_stats_kernel(Source src, int64_t n, ReduceStats* out) {
  __shared__ unsigned long long scratch_count[32];
  __shared__ unsigned scratch_key[32];
  unsigned long long count = 0;
  unsigned mn[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu}, mx[3] = {0, 0, 0};
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float p[3];
    if (!src.load(i, p)) continue;
    ++count;
    for (int a = 0; a < 3; ++a) {
      const unsigned k = ordered_key(p[a]);
      mn[a] = k < mn[a] ? k : mn[a];
      mx[a] = k > mx[a] ? k : mx[a];
    }
  }
  count = block_reduce(count, SumOp(), 0ULL, scratch_count);
  if (threadIdx.x == 0 && count) atomicAdd(&out->count, count);
  for (int a = 0; a < 3; ++a) {
    const unsigned lo = block_reduce(mn[a], MinOp(), 0xffffffffu, scratch_key);
    const unsigned hi = block_reduce(mx[a], MaxOp(), 0u, scratch_key);
    if (threadIdx.x == 0 && count) {
      atomicMin(&out->mn[a], lo);
      atomicMax(&out->mx[a], hi);
    }
  }
}

// Sample j = point j * stride (NaN rows where invalid).
template <typename Source>
__global__ void sample_kernel(Source src, int64_t samples, int64_t stride, float* out) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= samples) return;
  float p[3];
  const bool ok = src.load(j * stride, p);
  for (int a = 0; a < 3; ++a) out[3 * j + a] = ok ? p[a] : quiet_nan();
}

constexpr int kMaxTargets = 6;  // 3 axes x {low, high} quantile
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Brackets {
  int count;
  int axis[kMaxTargets];
  float lo[kMaxTargets], hi[kMaxTargets];
  unsigned long long cap[kMaxTargets], offset[kMaxTargets];
};

// counters[t] = #values < lo[t]; counters[kMaxTargets + t] = #values in [lo[t], hi[t]]
// (also those beyond the capacity, which are counted but not stored).
template <typename Source>
__global__ void bracket_kernel(Source src, int64_t n, Brackets b, unsigned long long* counters,
                               float* candidates) {
  __shared__ unsigned long long scratch[32];
  unsigned long long below[kMaxTargets] = {0, 0, 0, 0, 0, 0};
  const int lane = threadIdx.x & 31;
  // The loop bound is uniform over the block, so every lane reaches the ballots.
  for (int64_t base = blockIdx.x * static_cast<int64_t>(blockDim.x); base < n;
       base += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = base + threadIdx.x;
    float p[3] = {0, 0, 0};
    const bool ok = i < n && src.load(i, p);
#pragma unroll
    for (int t = 0; t < kMaxTargets; ++t) {
      if (t >= b.count) break;
      const float v = b.axis[t] == 0 ? p[0] : (b.axis[t] == 1 ? p[1] : p[2]);
      below[t] += ok && v < b.lo[t];
      const bool in = ok && v >= b.lo[t] && v <= b.hi[t];
      // Warp-aggregated append: one atomic per warp and target.
      const unsigned mask = __ballot_sync(0xffffffffu, in);
      if (mask) {
        const int leader = __ffs(mask) - 1;
        unsigned long long base_slot = 0;
        if (lane == leader)
          base_slot = atomicAdd(&counters[kMaxTargets + t],
                                static_cast<unsigned long long>(__popc(mask)));
        base_slot = __shfl_sync(0xffffffffu, base_slot, leader);
        if (in) {
          const unsigned long long slot = base_slot + __popc(mask & ((1u << lane) - 1));
          if (slot < b.cap[t]) candidates[b.offset[t] + slot] = v;
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kMaxTargets; ++t) {
    if (t >= b.count) break;  // uniform over the block
    const unsigned long long s = block_reduce(below[t], SumOp(), 0ULL, scratch);
    if (threadIdx.x == 0 && s) atomicAdd(&counters[t], s);
  }
}

// Blocks for the grid-stride reductions: enough to fill the device, few atomics.
inline unsigned reduction_grid(int64_t n) {
  int dev = 0, sms = 0;
  SR3D_CUDA_CHECK(cudaGetDevice(&dev));
  SR3D_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t want = (n + kBlock - 1) / kBlock, cap = static_cast<int64_t>(sms) * 8;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(want, cap)));
}

// ---- host side ------------------------------------------------------------------------
// The quantile position, interpolation and exact selection are the CPU's own
// (cpu::quantile_pos, cpu::lerp_quantile, cpu::select2), so both paths agree bit for bit.
using cpu::lerp_quantile;
using cpu::QuantilePos;

// The transform of the points `src` yields (mode kIsotropic or kMinMax; kMetric needs no
// reduction). Synchronizes `stream`.
template <typename Source>
CanonicalTransform reduce_transform(const Source& src, int64_t n, CanonicalMode mode,
                                    double quantile, cudaStream_t stream) {
  DeviceBuffer<ReduceStats> stats_dev(1, stream);
  SR3D_CUDA_CHECK(cudaMemsetAsync(stats_dev.get(), 0, sizeof(ReduceStats), stream));
  SR3D_CUDA_CHECK(cudaMemsetAsync(reinterpret_cast<char*>(stats_dev.get()) + offsetof(ReduceStats, mn),
                                  0xff, sizeof(unsigned) * 3, stream));
  if (n > 0)
    SR3D_LAUNCH(reduce_stats_kernel<Source>, reduction_grid(n), kBlock, 0, stream, src, n,
                stats_dev.get());
  ReduceStats stats;
  SR3D_CUDA_CHECK(cudaMemcpyAsync(&stats, stats_dev.get(), sizeof stats, cudaMemcpyDeviceToHost,
                                  stream));
  SR3D_CUDA_CHECK(cudaStreamSynchronize(stream));
  const int64_t nv = static_cast<int64_t>(stats.count);
  double lo[3] = {0, 0, 0}, hi[3] = {0, 0, 0};
  // The reference takes min/max as the q = 0 / q = 1 'linear' quantiles, v + (v2 - v) * 0,
  // which turns a -0 bound into +0; the ordered keys prefer -0 for the min (and keep -0 for
  // a max whose set has no +0), so normalize the same way (+0.0 changes nothing else).
  if (nv > 0)
    for (int a = 0; a < 3; ++a) {
      const double mn = ordered_key_to_float(stats.mn[a]), mx = ordered_key_to_float(stats.mx[a]);
      lo[a] = lerp_quantile(mn, mn, 0.0);
      hi[a] = lerp_quantile(mx, mx, 0.0);
    }
  if (mode != CanonicalMode::kIsotropic || !(quantile > 0) || nv == 0)
    return cpu::transform_from_box(mode, lo, hi, nv);

  struct Target {
    int axis;
    QuantilePos rank;
    float lo = -kInf, hi = kInf;
    int64_t cap = 0;  // candidate slots
    bool done = false;
    double value = 0;
  };
  Target targets[kMaxTargets];
  for (int a = 0; a < 3; ++a)
    for (int side = 0; side < 2; ++side) {
      Target& t = targets[2 * a + side];
      t.axis = a;
      t.rank = cpu::quantile_pos(side == 0 ? quantile : 1.0 - quantile, nv);
      t.cap = nv;
    }

  // Brackets from a strided sample once there are enough points for it to pay off.
  const int64_t kSampleTarget = 1 << 16;
  const int64_t stride = n / kSampleTarget;
  if (stride >= 2) {
    const int64_t samples = n / stride;
    DeviceBuffer<float> sample_dev(samples * 3, stream);
    SR3D_LAUNCH(sample_kernel<Source>, grid_for(samples), kBlock, 0, stream, src, samples, stride,
                sample_dev.get());
    std::vector<float> sample_host(samples * 3);
    SR3D_CUDA_CHECK(cudaMemcpyAsync(sample_host.data(), sample_dev.get(), sample_dev.bytes(),
                                    cudaMemcpyDeviceToHost, stream));
    SR3D_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<float> axis_sample[3];
    for (int64_t j = 0; j < samples; ++j)
      if (sample_host[3 * j] == sample_host[3 * j])  // valid rows are finite on all axes
        for (int a = 0; a < 3; ++a) axis_sample[a].push_back(sample_host[3 * j + a]);
    const int64_t sv = static_cast<int64_t>(axis_sample[0].size());
    if (sv > 0)
      for (Target& t : targets) {
        const double p = static_cast<double>(t.rank.k) / static_cast<double>(nv);
        const double j = p * static_cast<double>(sv);
        const double d = 5.0 * std::sqrt(static_cast<double>(sv) * p * (1 - p)) + 16;
        const int64_t jl = static_cast<int64_t>(std::floor(j - d));
        const int64_t jh = static_cast<int64_t>(std::ceil(j + d)) + 1;
        std::vector<float>& s = axis_sample[t.axis];
        if (jl >= 0) {
          std::nth_element(s.begin(), s.begin() + jl, s.end());
          t.lo = s[jl];
        }
        if (jh < sv) {
          std::nth_element(s.begin(), s.begin() + jh, s.end());
          t.hi = s[jh];
        }
        // Expected candidates (sample fraction inside the bracket) with headroom.
        const double frac =
            static_cast<double>(std::min(jh, sv) - std::max<int64_t>(jl, 0) + 1) / sv;
        t.cap = std::min<int64_t>(nv, static_cast<int64_t>(1.5 * frac * nv) + 4096);
      }
  }

  DeviceBuffer<unsigned long long> counters_dev(2 * kMaxTargets, stream);
  for (int round = 0; round < 4; ++round) {
    Brackets b{};
    int open[kMaxTargets];
    unsigned long long total = 0;
    for (int i = 0; i < kMaxTargets; ++i) {
      if (targets[i].done) continue;
      const int t = b.count++;
      open[t] = i;
      b.axis[t] = targets[i].axis;
      b.lo[t] = targets[i].lo;
      b.hi[t] = targets[i].hi;
      b.cap[t] = static_cast<unsigned long long>(targets[i].cap);
      b.offset[t] = total;
      total += b.cap[t];
    }
    if (b.count == 0) break;
    DeviceBuffer<float> cand_dev(total, stream);
    SR3D_CUDA_CHECK(cudaMemsetAsync(counters_dev.get(), 0, counters_dev.bytes(), stream));
    SR3D_LAUNCH(bracket_kernel<Source>, reduction_grid(n), kBlock, 0, stream, src, n, b,
                counters_dev.get(), cand_dev.get());
    unsigned long long counters[2 * kMaxTargets];
    SR3D_CUDA_CHECK(cudaMemcpyAsync(counters, counters_dev.get(), sizeof counters,
                                    cudaMemcpyDeviceToHost, stream));
    SR3D_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<float> cand[kMaxTargets];
    for (int t = 0; t < b.count; ++t) {
      Target& tg = targets[open[t]];
      const int64_t below = static_cast<int64_t>(counters[t]);
      const int64_t inside = static_cast<int64_t>(counters[kMaxTargets + t]);
      const bool rank_inside = below <= tg.rank.k && tg.rank.k2 < below + inside;
      if (rank_inside && inside <= tg.cap) {
        cand[t].resize(inside);
        if (inside > 0)
          SR3D_CUDA_CHECK(cudaMemcpyAsync(cand[t].data(), cand_dev.get() + b.offset[t],
                                          inside * sizeof(float), cudaMemcpyDeviceToHost,
                                          stream));
        tg.done = true;
      } else if (rank_inside) {
        tg.cap = inside;  // the buffer was full: same bracket, exact capacity
      } else {  // widen the failing side to the whole range; the count is then exact
        int64_t want = inside;
        if (below > tg.rank.k) {
          tg.lo = -kInf;
          want += below;
        }
        if (tg.rank.k2 >= below + inside) {
          tg.hi = kInf;
          want += nv - below - inside;
        }
        tg.cap = want;
      }
    }
    SR3D_CUDA_CHECK(cudaStreamSynchronize(stream));
    for (int t = 0; t < b.count; ++t) {
      Target& tg = targets[open[t]];
      if (!tg.done) continue;
      const int64_t below = static_cast<int64_t>(counters[t]);
      float x, y;
      cpu::select2(cand[t], tg.rank.k - below, tg.rank.k2 - below, &x, &y);
      tg.value = lerp_quantile(x, y, tg.rank.frac);
    }
  }
  for (const Target& t : targets)
    if (!t.done) throw_internal("canonicalize (cuda): quantile selection did not converge");
  for (int a = 0; a < 3; ++a) {
    lo[a] = targets[2 * a].value;
    hi[a] = targets[2 * a + 1].value;
  }
  return cpu::transform_from_box(mode, lo, hi, nv);
}

// Host float copies of a transform for the apply step: p' = (p - c) * inv.
struct ApplyParams {
  float c[3], inv[3];
};
inline ApplyParams apply_params(const CanonicalTransform& t) {
  ApplyParams p;
  for (int a = 0; a < 3; ++a) {
    p.c[a] = static_cast<float>(t.center[a]);
    p.inv[a] = static_cast<float>(1.0 / t.scale[a]);
  }
  return p;
}

// One point of the apply step; NaN where the point is not finite (as the CPU).
__device__ __forceinline__ void apply_point(const ApplyParams& t, bool ok, const float p[3],
                                            float* out) {
  for (int a = 0; a < 3; ++a)
    out[a] = ok ? __fmul_rn(__fsub_rn(p[a], t.c[a]), t.inv[a]) : quiet_nan();
}

// The apply step over any source (stored points, or points recomputed from depth):
// out = (p - c) * inv, NaN where invalid, valid[i] (optional) = 1 where valid, and the valid
// count summed into `count` (optional: metric mode, where no reduction ran).
template <typename Source>
__global__ void apply_kernel(Source src, int64_t n, ApplyParams t, float* out, uint8_t* valid,
                             unsigned long long* count) {
  __shared__ unsigned long long scratch[32];
  unsigned long long c = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float p[3], q[3];
    const bool ok = src.load(i, p);
    c += ok;
    apply_point(t, ok, p, q);
    out[3 * i] = q[0];
    out[3 * i + 1] = q[1];
    out[3 * i + 2] = q[2];
    if (valid) valid[i] = ok ? 1 : 0;
  }
  if (count) {  // uniform: every thread of the block takes the same branch
    c = block_reduce(c, SumOp(), 0ULL, scratch);
    if (threadIdx.x == 0 && c) atomicAdd(count, c);
  }
}

// Launches apply_kernel over n points. With `count_valid` it also returns the number of
// valid points (and synchronizes the stream); otherwise it returns -1 without waiting.
// `out` may alias the source's points (each thread reads its point before writing it).
template <typename Source>
int64_t launch_apply(const Source& src, int64_t n, const CanonicalTransform& t, float* out,
                     uint8_t* valid, bool count_valid, cudaStream_t stream) {
  if (!count_valid) {
    SR3D_LAUNCH(apply_kernel<Source>, grid_for(n), kBlock, 0, stream, src, n, apply_params(t),
                out, valid, static_cast<unsigned long long*>(nullptr));
    return -1;
  }
  DeviceBuffer<unsigned long long> count(1, stream);
  SR3D_CUDA_CHECK(cudaMemsetAsync(count.get(), 0, sizeof(unsigned long long), stream));
  SR3D_LAUNCH(apply_kernel<Source>, reduction_grid(n), kBlock, 0, stream, src, n,
              apply_params(t), out, valid, count.get());
  unsigned long long c = 0;
  SR3D_CUDA_CHECK(cudaMemcpyAsync(&c, count.get(), sizeof c, cudaMemcpyDeviceToHost, stream));
  SR3D_CUDA_CHECK(cudaStreamSynchronize(stream));
  return static_cast<int64_t>(c);
}

}  // namespace cuda
}  // namespace sr3d
