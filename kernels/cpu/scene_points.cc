#include "../scene_points.h"

#include <algorithm>
#include <vector>

#include "simd.h"

namespace sr3d {
namespace cpu {

CanonicalTransform scene_points_reference(const ScenePointsArgs& a) {
  backproject_reference(a.bp);
  CanonicalizeArgs c;
  std::vector<float> scratch(a.world_points ? 3 * a.bp.frames * a.bp.height * a.bp.width : 0);
  c.points = a.bp.points;
  c.points_out = a.world_points ? scratch.data() : a.bp.points;
  c.n = a.bp.frames * a.bp.height * a.bp.width;
  c.mode = a.mode;
  c.quantile = a.quantile;
  return canonicalize_reference(c);
}

SR3D_TARGET_CLONES
static int64_t count_valid(const float* __restrict x, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += x[i] == x[i];
  return c;
}

SR3D_TARGET_CLONES
static void normalize_soa(float* __restrict x, float* __restrict y, float* __restrict z,
                          int64_t n, float c0, float c1, float c2, float i0, float i1, float i2) {
  for (int64_t i = 0; i < n; ++i) {  // NaN (invalid) stays NaN
    x[i] = (x[i] - c0) * i0;
    y[i] = (y[i] - c1) * i1;
    z[i] = (z[i] - c2) * i2;
  }
}

CanonicalTransform scene_points_fast(const ScenePointsArgs& a) {
  const BackprojectArgs& bp = a.bp;
  const int64_t W = bp.width, H = bp.height, rows = bp.frames * H, n = rows * W;
  const size_t esize = bp.depth_dtype == DType::kUint16 ? 2 : 4;
  std::vector<FrameParams> params(bp.frames);
  for (int64_t f = 0; f < bp.frames; ++f) params[f] = frame_params(bp, f);
  // World output in a normalizing mode: the reduction's first sweep visits every whole row
  // once, so it writes the output as it goes (one pass over the depth in all).
  const bool write_in_sweep = a.world_points && a.mode != CanonicalMode::kMetric;
  // Points [begin, begin+count) of one row (blocks never cross a row).
  auto row_source = [&](int64_t begin, int64_t count, float* x, float* y, float* z) {
    const int64_t r = begin / W, u0 = begin % W;
    const char* d = static_cast<const char*>(bp.depth) + begin * esize;
    const bool whole_row = write_in_sweep && u0 == 0 && count == W;  // not a sample run
    backproject_row(d, bp.depth_dtype, bp.depth_scale, count, static_cast<float>(r % H),
                    params[r / H], x, y, z, whole_row && bp.valid ? bp.valid + begin : nullptr, u0);
    if (whole_row) {  // a retry sweep rewrites the same values
      interleave3(x, y, z, W, bp.points + 3 * begin);
      stream_fence();
    }
  };
  CanonicalTransform t;
  if (n > 0) t = reduce_points(row_source, n, W, a.mode, a.quantile);
  else t = transform_from_box(a.mode, t.center, t.center, 0);
  if (write_in_sweep) return t;
  const float c0 = static_cast<float>(t.center[0]), c1 = static_cast<float>(t.center[1]),
              c2 = static_cast<float>(t.center[2]);
  const float i0 = static_cast<float>(1.0 / t.scale[0]), i1 = static_cast<float>(1.0 / t.scale[1]),
              i2 = static_cast<float>(1.0 / t.scale[2]);
  if (n == 0) return t;
  const int threads = cpu_threads();
  std::vector<int64_t> counts(threads, 0);
  parallel_for(rows, threads, [&](int chunk, int64_t r0, int64_t r1) {
    RowBuffer buf(W);
    for (int64_t r = r0; r < r1; ++r) {
      const char* drow = static_cast<const char*>(bp.depth) + r * W * esize;
      backproject_row(drow, bp.depth_dtype, bp.depth_scale, W, static_cast<float>(r % H),
                      params[r / H], buf.x, buf.y, buf.z, bp.valid ? bp.valid + r * W : nullptr);
      if (a.mode != CanonicalMode::kMetric && !a.world_points) normalize_soa(buf.x, buf.y, buf.z, W, c0, c1, c2, i0, i1, i2);
      else counts[chunk] += count_valid(buf.x, W);  // metric mode skipped the reduction
      interleave3(buf.x, buf.y, buf.z, W, bp.points + 3 * r * W);
    }
    stream_fence();
  });
  if (a.mode == CanonicalMode::kMetric) {
    t.valid_count = 0;
    for (int64_t c : counts) t.valid_count += c;
  }
  return t;
}

}  // namespace cpu

CanonicalTransform scene_points(const ScenePointsArgs& a, Impl impl) {
  backproject_check(a.bp);
  CanonicalizeArgs c;
  c.mode = a.mode;
  c.quantile = a.quantile;
  canonicalize_check(c);
  return run_impl(
      impl, [&] { return cpu::scene_points_reference(a); },
      [&] { return cpu::scene_points_fast(a); },
      SR3D_CUDA_PATH(cuda::scene_points_host(a)));
}

}  // namespace sr3d
