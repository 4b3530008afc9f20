// canonicalize: the scene-wide normalization of spec Part A §A3.
//
//   points: (N,3) float32 (any leading shape flattened), world metres. A point is valid
//           when all three components are finite; invalid points stay NaN in the output.
//   -> transform {center[3], scale[3]} (float64) with  p_canonical = (p - center) / scale
//      per axis, so p = p_canonical * scale + center maps canonical values back to metres.
//   -> points_out: (N,3) float32 canonical points (may alias points).
//
// Modes:
//   kIsotropic (default): over all valid points, per-axis quantile box [Q(q), Q(1-q)]
//     (numpy 'linear' quantile over the sorted float32 values, interpolation in float64;
//     q = 0 gives min/max). center = box midpoint, scale = half the largest box extent
//     (the same for all axes, so aspect is preserved and the scene fits [-1,1]).
//   kMinMax: per axis center = min, scale = max - min (maps to [0,1]; Part B C1).
//   kMetric: identity (center 0, scale 1).
// A degenerate extent (all points equal on every axis) gives scale 1 instead of 0.
// No valid point at all is an invalid-argument error (there is nothing to normalize).
//
// The apply step is float32: p' = (p - (float)center) * (float)(1/scale).
#pragma once
#include <functional>
#include <vector>

#include "common.h"

namespace sr3d {

enum class CanonicalMode { kIsotropic, kMinMax, kMetric };

struct CanonicalTransform {
  double center[3] = {0, 0, 0};
  double scale[3] = {1, 1, 1};
  int64_t valid_count = 0;
};

struct CanonicalizeArgs {
  const float* points = nullptr;  // n * 3
  int64_t n = 0;
  CanonicalMode mode = CanonicalMode::kIsotropic;
  double quantile = 0.01;         // isotropic only, in [0, 0.5)
  float* points_out = nullptr;    // n * 3, may equal points
};

void canonicalize_check(const CanonicalizeArgs& a);
CanonicalTransform canonicalize(const CanonicalizeArgs& a, Impl impl);

// Apply a transform (used by every path; float32 math above). Returns the valid count.
int64_t canonical_apply(const float* points, int64_t n, const CanonicalTransform& t, float* out,
                        Impl impl);

namespace cpu {
CanonicalTransform canonicalize_reference(const CanonicalizeArgs& a);
CanonicalTransform canonicalize_fast(const CanonicalizeArgs& a);

// A source of points in SoA blocks: fill x/y/z[0..count) for flat indices
// [begin, begin+count), NaN in all three where invalid. Calls never cross a multiple of
// `block` (whole blocks, or short sample runs inside one). Lets the fused scene op run the
// reduction on points recomputed from depth instead of a stored point map.
using PointBlockFn =
    std::function<void(int64_t begin, int64_t count, float* x, float* y, float* z)>;
// The reduction of the fast path over any source, `n` points in total. `block` must be
// the granularity the source is cheapest at (a row for depth).
// Tuning of the quantile selection. Tests set margin = 0 (brackets one sample rank wide) to
// force the retry sweeps; `sweeps_done`, if set, receives the number of full sweeps.
struct ReduceTuning {
  int64_t sample = int64_t(1) << 15;  // bracket sample size
  double margin = 1.0;                // scales the +-(5 sigma + 64) bracket half-width
  int* sweeps_done = nullptr;
};
CanonicalTransform reduce_points(const PointBlockFn& source, int64_t n, int64_t block,
                                 CanonicalMode mode, double quantile,
                                 const ReduceTuning& tuning = ReduceTuning());
// numpy 'linear' quantile position over n sorted values: ranks k and k2 = min(k+1, n-1),
// value = lerp_quantile(a[k], a[k2], frac). Shared by the CPU and CUDA selections.
struct QuantilePos {
  int64_t k, k2;
  double frac;
};
QuantilePos quantile_pos(double q, int64_t n);
double lerp_quantile(double a, double b, double frac);
// Ranks k and k2 (k2 = k or k+1) of an unsorted vector, exactly (reorders v).
void select2(std::vector<float>& v, int64_t k, int64_t k2, float* a, float* b);
// Shared by every path: the transform from the box (lo, hi) per axis.
CanonicalTransform transform_from_box(CanonicalMode mode, const double lo[3], const double hi[3],
                                      int64_t valid_count);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
// Device pointers; the quantile selection's small final step runs on the host.
CanonicalTransform canonicalize(const CanonicalizeArgs& device_args, void* stream);
CanonicalTransform canonicalize_host(const CanonicalizeArgs& host_args);
}  // namespace cuda
#endif

}  // namespace sr3d
