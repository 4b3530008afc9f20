// Layout ops of the vision path on CUDA (kernels/projector.h): SigLIP's patch embedding
// (im2col + the linear GEMM), the position-embedding add, and the projector's 3x3
// space-to-channel. The _dev launchers are declared in nn.cuh.
#ifdef SR3D_WITH_CUDA
#include "../linear.h"
#include "../projector.h"
#include "cuda_util.h"
#include "nn.cuh"
#include "nn_common.cuh"

namespace sr3d {
namespace cuda {

namespace {

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

}  // namespace

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

void space_to_channel3_host(const float* x, int64_t n, int64_t g, int64_t c, float* y) {
  const int64_t G = (g + 2) / 3;
  if (n <= 0 || g <= 0 || c <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> dx = rt.upload(x, n * g * g * c), dy = rt.output(y, n * G * G * 9 * c);
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
  DeviceBuffer<float> dout = rt.output(out, n * P * w.rows);
  DeviceBuffer<float> db = bias ? rt.upload(bias, w.rows) : DeviceBuffer<float>();
  DeviceWeight dw = upload_weight(rt, w);
  im2col_patches_dev(dimg.get(), n, size, patch, col.get(), rt.stream());
  linear_dev(col.get(), n * P, dw.ref, db.get(), dout.get(), rt.stream());
  rt.download(out, dout);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
