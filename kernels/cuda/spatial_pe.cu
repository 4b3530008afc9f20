// The one new device step of the CUDA engine's add_spatial_pe (kernels/spatial_pe.h): the
// valid patches' pooled points gathered into consecutive rows (a copy: the bits the host
// gather of the unfused chain gives).
#ifdef SR3D_WITH_CUDA
#include "../spatial_pe.h"

#include "cuda_util.h"

namespace sr3d {
namespace cuda {

namespace {

__global__ void gather_rows3_kernel(const float* __restrict__ pooled, const int32_t* __restrict__ rows,
                                    int64_t n, float* __restrict__ out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < 3 * n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / 3, k = i - 3 * r;
    out[i] = pooled[3 * static_cast<int64_t>(rows[r]) + k];
  }
}

}  // namespace

void gather_rows3(const float* pooled, const int32_t* rows, int64_t n, float* out, void* stream) {
  if (n <= 0) return;
  SR3D_LAUNCH(gather_rows3_kernel, grid_for(3 * n), kBlock, 0, as_stream(stream), pooled, rows, n, out);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
