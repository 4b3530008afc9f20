// scene_points on CUDA: depth -> canonical points without storing world points. The
// reduction launches recompute the points from depth (4 B/px for f32, 2 for u16, each);
// the last launch back-projects again, normalizes and writes points + valid (16-17 B/px).
// Metric mode is that last launch alone (it also counts the valid points).
#ifdef SR3D_WITH_CUDA
#include "../scene_points.h"

#include "backproject.cuh"
#include "canonical_reduce.cuh"
#include "cuda_util.h"

namespace sr3d {
namespace cuda {

namespace {

// Equal to backproject then canonical_apply: valid = 1 exactly where the depth was valid
// and the point finite (backproject_pixel: a point that overflowed is NaN with valid = 0),
// which is also what the reduction and the metric count treat as a valid point.
__global__ void scene_apply_kernel(DepthView d, int64_t n, ApplyParams t,
                                   float* __restrict__ points, uint8_t* __restrict__ valid,
                                   unsigned long long* count) {
  __shared__ unsigned long long scratch[32];
  unsigned long long c = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float p[3], q[3];
    const bool ok = backproject_pixel(d, i, p) && finite3(p);
    c += ok;
    apply_point(t, ok, p, q);
    points[3 * i] = q[0];
    points[3 * i + 1] = q[1];
    points[3 * i + 2] = q[2];
    if (valid) valid[i] = ok ? 1 : 0;
  }
  if (count) {  // uniform over the block
    c = block_reduce(c, SumOp(), 0ULL, scratch);
    if (threadIdx.x == 0 && c) atomicAdd(count, c);
  }
}

}  // namespace

CanonicalTransform scene_points(const ScenePointsArgs& a, void* stream_ptr) {
  const BackprojectArgs& bp = a.bp;
  if (bp.depth_dtype != DType::kFloat32 && bp.depth_dtype != DType::kUint16)
    throw_invalid_argument("a float32 or uint16 depth map", "depth", dtype_name(bp.depth_dtype));
  CanonicalizeArgs c;
  c.mode = a.mode;
  c.quantile = a.quantile;
  canonicalize_check(c);
  cudaStream_t stream = as_stream(stream_ptr);
  const int64_t n = bp.frames * bp.height * bp.width;
  if (n <= 0) {
    const double zero[3] = {0, 0, 0};
    return cpu::transform_from_box(a.mode, zero, zero, 0);
  }
  const DepthView view = depth_view(bp);
  if (a.mode == CanonicalMode::kMetric) {
    CanonicalTransform t;
    DeviceBuffer<unsigned long long> count(1, stream);
    SR3D_CUDA_CHECK(cudaMemsetAsync(count.get(), 0, sizeof(unsigned long long), stream));
    SR3D_LAUNCH(scene_apply_kernel, reduction_grid(n), kBlock, 0, stream, view, n,
                apply_params(t), bp.points, bp.valid, count.get());
    unsigned long long valid_count = 0;
    SR3D_CUDA_CHECK(cudaMemcpyAsync(&valid_count, count.get(), sizeof valid_count,
                                    cudaMemcpyDeviceToHost, stream));
    SR3D_CUDA_CHECK(cudaStreamSynchronize(stream));
    t.valid_count = static_cast<int64_t>(valid_count);
    return t;
  }
  CanonicalTransform t = reduce_transform(DepthSource{view}, n, a.mode, a.quantile, stream);
  // World output: the identity transform ((p - 0) * 1 == p bit for bit).
  const CanonicalTransform identity;
  SR3D_LAUNCH(scene_apply_kernel, grid_for(n), kBlock, 0, stream, view, n,
              apply_params(a.world_points ? identity : t), bp.points, bp.valid,
              static_cast<unsigned long long*>(nullptr));
  return t;
}

CanonicalTransform scene_points_host(const ScenePointsArgs& a) {
  const BackprojectArgs& bp = a.bp;
  const int64_t n = bp.frames * bp.height * bp.width;
  if (n <= 0) return scene_points(a, nullptr);  // no device work
  use_selected_device();
  Stream stream;
  DepthUpload up(bp, stream.get());
  ScenePointsArgs d = a;
  d.bp = up.args;
  CanonicalTransform t = scene_points(d, stream.get());
  up.download(stream.get());
  return t;
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
