// Device helpers shared by the nn op files (linear.cu, attention.cu, norms.cu, activation.cu,
// rope.cu, projector.cu): the epilogue activation, warp / block reductions, weight loads of
// each dtype, and the host-side weight upload of the _host entry points. Internal: include
// only from kernels/cuda/*.cu (nvcc). --fmad=false holds for every includer (CMakeLists.txt),
// and the FMAs of the kernels are explicit (__fmaf_rn).
#pragma once
#ifdef SR3D_WITH_CUDA
#include <cuda_fp16.h>

#include <cstdint>

#include "../activation.h"
#include "../weights.h"
#include "cuda_util.h"
#include "nn.cuh"

namespace sr3d {
namespace cuda {

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

// The end of a warp-per-row GEMV over NR input rows (n of them real): each row's warp sum, then
// the bias, the activation and the residual, stored by lane 0 (y and residual are n x N).
template <int NR>
__device__ __forceinline__ void gemv_store_rows(const float (&acc)[NR], int n, int lane, int64_t row,
                                                int64_t N, const float* bias, int act,
                                                const float* residual, float* y) {
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

// Sum over the block (blockDim.x a multiple of 32, <= 1024), same order every call; every
// thread gets the result. `red` holds 32 floats.
__device__ inline float block_sum(float v, float* red) {
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

// The weight's device copy, and a WeightRef to it (the _host entry points); a quantized
// weight's scales, zeros and perm too.
struct DeviceWeight {
  DeviceBuffer<uint8_t> buffer;
  WeightRef ref;
  DeviceBuffer<float> scales;
  DeviceBuffer<uint8_t> zeros;
  DeviceBuffer<int32_t> perm;
};
inline DeviceWeight upload_weight(RoundTrip& rt, const WeightRef& w) {
  const bool quant = wtype_quantized(w.type);
  const int64_t bytes = quant ? w.rows * quant_row_bytes(w) : w.rows * w.cols * wtype_size(w.type);
  DeviceWeight d{rt.upload(static_cast<const uint8_t*>(w.data), bytes), w, {}, {}, {}};
  d.ref.data = d.buffer.get();
  if (quant) {
    const int64_t groups = w.rows * (w.cols / w.group);
    d.scales = rt.upload(w.scales, groups);
    d.zeros = rt.upload(w.zeros, groups);
    if (w.perm) d.perm = rt.upload(w.perm, w.cols);
    d.ref.scales = d.scales.get();
    d.ref.zeros = d.zeros.get();
    d.ref.perm = w.perm ? d.perm.get() : nullptr;
  }
  return d;
}

// The int4 / int8 decode GEMV (linear_q.cu) for n <= kQuantGemvMaxRows input rows, with
// linear_dev's contract; linear_dev runs larger n through its tiled GEMM.
constexpr int64_t kQuantGemvMaxRows = 8;
void linear_q_gemv_dev(const float* x, int64_t n, const WeightRef& w, const float* bias, float* y,
                       cudaStream_t s, int act, const float* residual);
// Whether the GEMV takes its 16-byte vector path for w and x (else the scalar kernel):
// cols and the group multiples of 32 (int4) / 16 (int8), 16-byte aligned q, x and perm.
bool quant_gemv_vectorized(const WeightRef& w, const float* x);

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
