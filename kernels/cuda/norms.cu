// LayerNorm / RMSNorm on CUDA (kernels/norms.h): one block per row, two block-wide sums in a
// fixed order. layer_norm_dev / rms_norm_dev are declared in nn.cuh.
#ifdef SR3D_WITH_CUDA
#include "../norms.h"
#include "cuda_util.h"
#include "nn.cuh"
#include "nn_common.cuh"

namespace sr3d {
namespace cuda {

namespace {

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

}  // namespace

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

void layer_norm_host(const float* x, int64_t n, int64_t d, const float* gamma, const float* beta,
                     float eps, float* y) {
  if (n <= 0 || d <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.upload(x, n * d), dg = rt.upload(gamma, d), dy = rt.output(y, n * d);
  DeviceBuffer<float> db = beta ? rt.upload(beta, d) : DeviceBuffer<float>();
  layer_norm_dev(dx.get(), n, d, dg.get(), db.get(), eps, dy.get(), rt.stream());
  rt.download(y, dy);
}

void rms_norm_host(const float* x, int64_t n, int64_t d, const float* gamma, float eps, float* y) {
  if (n <= 0 || d <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.upload(x, n * d), dg = rt.upload(gamma, d), dy = rt.output(y, n * d);
  rms_norm_dev(dx.get(), n, d, dg.get(), eps, dy.get(), rt.stream());
  rt.download(y, dy);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
