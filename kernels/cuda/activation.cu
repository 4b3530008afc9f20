// Elementwise activations on CUDA (kernels/activation.h): GELU (tanh / erf), SiLU, and the
// fused SiLU(gate) * up of the Qwen2 MLP. activation_dev / silu_mul_dev are declared in nn.cuh.
#ifdef SR3D_WITH_CUDA
#include "../activation.h"
#include "cuda_util.h"
#include "nn.cuh"
#include "nn_common.cuh"

namespace sr3d {
namespace cuda {

namespace {

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

}  // namespace

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

void activation_host(float* x, int64_t n, Act act) {
  if (n <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.inout(x, n);
  activation_dev(dx.get(), n, act, rt.stream());
  rt.download(x, dx);
}

void silu_mul_host(const float* gate, const float* up, int64_t n, float* out) {
  if (n <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dg = rt.upload(gate, n), du = rt.upload(up, n), dout = rt.output(out, n);
  silu_mul_dev(dg.get(), du.get(), 1, n, n, dout.get(), rt.stream());
  rt.download(out, dout);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
