// scene_points: the fused scene path of performance.md §2. Depth + intrinsics + poses of
// all frames -> canonical points, validity and the canonical transform, equal (bit for
// bit on the CPU) to backproject followed by canonicalize.
//
//   args.bp:   as backproject (depth (F,H,W) f32/u16, intrinsics (F,4), poses (F,16)|null,
//              points out (F,H,W,3), valid out (F,H,W) uint8 — required here).
//   mode, quantile: as canonicalize.
//   -> CanonicalTransform; args.bp.points holds canonical points (NaN where invalid), or the
//      world points with world_points = true.
//
// CPU fast path: the world points are never stored: the reduction passes recompute them
// from the depth row by row (4 B/px read each for f32 depth, 2 B/px for u16), and the last
// pass writes the canonical points (16-17 B/px). The byte floor is one read of depth and one
// write of points + valid.
#pragma once
#include "backproject.h"
#include "canonicalize.h"

namespace sr3d {

struct ScenePointsArgs {
  BackprojectArgs bp;
  CanonicalMode mode = CanonicalMode::kIsotropic;
  double quantile = 0.01;
  // false: bp.points receives canonical points. true: bp.points receives the world points
  // (exactly backproject's) and the transform is returned to apply downstream (pooling is
  // linear, so pooled world points normalize the same way): the fusion plan of
  // performance.md §2, one pass over the depth on the CPU (16-17 B/px).
  bool world_points = false;
};

CanonicalTransform scene_points(const ScenePointsArgs& a, Impl impl);

namespace cpu {
CanonicalTransform scene_points_reference(const ScenePointsArgs& a);
CanonicalTransform scene_points_fast(const ScenePointsArgs& a);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
// One back-projection launch for the whole scene with a min/max/count epilogue, then (for
// quantiles) one bracket/gather launch, then one normalize launch. Device pointers.
CanonicalTransform scene_points(const ScenePointsArgs& device_args, void* stream);
CanonicalTransform scene_points_host(const ScenePointsArgs& host_args);
}  // namespace cuda
#endif

}  // namespace sr3d
