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
  // Equal to backproject then the apply step: valid = 1 exactly where the depth was valid
  // and the point finite (DepthSource), which is also what the reduction counts.
  const DepthSource src{view};
  if (a.mode == CanonicalMode::kMetric) {  // no reduction: the apply pass counts
    CanonicalTransform t;
    t.valid_count = launch_apply(src, n, t, bp.points, bp.valid, true, stream);
    return t;
  }
  CanonicalTransform t = reduce_transform(src, n, a.mode, a.quantile, stream);
  // World output: the identity transform ((p - 0) * 1 == p bit for bit).
  launch_apply(src, n, a.world_points ? CanonicalTransform() : t, bp.points, bp.valid, false, stream);
  return t;
}

CanonicalTransform scene_points_host(const ScenePointsArgs& a) {
  const BackprojectArgs& bp = a.bp;
  const int64_t n = bp.frames * bp.height * bp.width;
  if (n <= 0) return scene_points(a, nullptr);  // no device work
  RoundTrip rt;
  DepthUpload up(bp, rt);
  ScenePointsArgs d = a;
  d.bp = up.args;
  CanonicalTransform t = scene_points(d, rt.stream());
  up.download(rt);
  return t;
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
