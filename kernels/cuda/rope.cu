// RoPE on CUDA (kernels/rope.h): in place on strided rows, and the Qwen2 step that rotates
// q / k after the fused q|k|v projection and writes k / v to the caches. rope_dev /
// rope_qkv_to_cache_dev are declared in nn.cuh.
#ifdef SR3D_WITH_CUDA
#include <vector>

#include "../rope.h"
#include "cuda_util.h"
#include "nn.cuh"
#include "nn_common.cuh"

namespace sr3d {
namespace cuda {

namespace {

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
                                      int64_t pos0, const int32_t* __restrict__ pos0_dev,
                                      const float* __restrict__ inv_freq, float* __restrict__ kc,
                                      float* __restrict__ vc) {
  if (pos0_dev) pos0 = *pos0_dev;  // a replayed graph's step position (frozen arguments)
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

}  // namespace

void rope_dev(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, int64_t row_stride,
              const int32_t* positions, const float* inv_freq, cudaStream_t s) {
  const int64_t n = n_tok * n_heads * (head_dim / 2);
  if (n <= 0) return;
  SR3D_LAUNCH(rope_kernel, grid_for(n), kBlock, 0, s, x, n_tok, n_heads, head_dim, row_stride,
              positions, inv_freq);
}

void rope_qkv_to_cache_dev(float* qkv, int64_t n, int64_t hq, int64_t hkv, int64_t d, int64_t pos0,
                           const float* inv_freq, float* k_cache, float* v_cache, cudaStream_t s,
                           const int32_t* pos0_dev) {
  const int64_t total = n * (hq + 2 * hkv) * (d / 2);
  if (total <= 0) return;
  SR3D_LAUNCH(rope_qkv_cache_kernel, grid_for(total), kBlock, 0, s, qkv, n, hq, hkv, d, pos0,
              pos0_dev, inv_freq, k_cache, v_cache);
}

void rope_host(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, const int32_t* positions,
               double theta) {
  if (n_tok <= 0 || n_heads <= 0 || head_dim <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.inout(x, n_tok * n_heads * head_dim);
  DeviceBuffer<int32_t> dp = rt.upload(positions, n_tok);
  std::vector<float> inv(static_cast<size_t>(head_dim / 2));
  rope_inv_freq(head_dim, theta, inv.data());
  DeviceBuffer<float> dinv = rt.upload(inv.data(), head_dim / 2);
  rope_dev(dx.get(), n_tok, n_heads, head_dim, n_heads * head_dim, dp.get(), dinv.get(), rt.stream());
  rt.download(x, dx);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
