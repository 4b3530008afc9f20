// backproject on CUDA: one launch for all frames, one thread per pixel (16 B/px moved for
// f32 depth, 15 for u16: memory-bound, ~31 us for a 32x448^2 scene on an H100).
#ifdef SR3D_WITH_CUDA
#include "../backproject.h"

#include "backproject.cuh"
#include "cuda_util.h"

namespace sr3d {
namespace cuda {

namespace {

__global__ void backproject_kernel(DepthView d, int64_t n, float* __restrict__ points,
                                   uint8_t* __restrict__ valid) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float p[3];
    const bool ok = backproject_pixel(d, i, p);
    points[3 * i] = p[0];
    points[3 * i + 1] = p[1];
    points[3 * i + 2] = p[2];
    if (valid) valid[i] = ok ? 1 : 0;
  }
}

}  // namespace

void backproject(const BackprojectArgs& a, void* stream) {
  if (a.depth_dtype != DType::kFloat32 && a.depth_dtype != DType::kUint16)
    throw_invalid_argument("a float32 or uint16 depth map", "depth", dtype_name(a.depth_dtype));
  const int64_t n = a.frames * a.height * a.width;
  if (n <= 0) return;
  SR3D_LAUNCH(backproject_kernel, grid_for(n), kBlock, 0, as_stream(stream), depth_view(a), n,
              a.points, a.valid);
}

void backproject_host(const BackprojectArgs& a) {
  const int64_t n = a.frames * a.height * a.width;
  if (n <= 0) return;
  RoundTrip rt;
  DepthUpload up(a, rt);
  backproject(up.args, rt.stream());
  up.download(rt);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
