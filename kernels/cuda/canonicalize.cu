// canonicalize on CUDA: reduction (canonical_reduce.cuh) + one apply launch. Bytes: 12 B/pt
// read by the min/max launch (+12 by the bracket launch when quantile > 0), 24 B/pt by the
// apply (read + write), i.e. 36-48 B/pt against the 24 B/pt floor.
#ifdef SR3D_WITH_CUDA
#include "../canonicalize.h"

#include "canonical_reduce.cuh"
#include "cuda_util.h"

namespace sr3d {
namespace cuda {

CanonicalTransform canonicalize(const CanonicalizeArgs& a, void* stream_ptr) {
  canonicalize_check(a);
  cudaStream_t stream = as_stream(stream_ptr);
  const int64_t n = a.n;
  if (n == 0) {  // no launch: the metric identity, or the no-valid-point error
    const double zero[3] = {0, 0, 0};
    return cpu::transform_from_box(a.mode, zero, zero, 0);
  }
  const PointsSource src{a.points};
  if (a.mode == CanonicalMode::kMetric) {  // no reduction: the apply pass counts
    CanonicalTransform t;
    t.valid_count = launch_apply(src, n, t, a.points_out, nullptr, true, stream);
    return t;
  }
  CanonicalTransform t = reduce_transform(src, n, a.mode, a.quantile, stream);
  launch_apply(src, n, t, a.points_out, nullptr, false, stream);
  return t;
}

CanonicalTransform canonicalize_host(const CanonicalizeArgs& a) {
  canonicalize_check(a);
  if (a.n == 0) return canonicalize(a, nullptr);  // no device work
  RoundTrip rt;
  // Zero copy: read the caller's points, write points_out, both mapped. Otherwise (or when
  // points_out cannot be mapped) one device copy, transformed in place.
  DeviceBuffer<float> out = zero_copy_enabled() ? rt.output(a.points_out, a.n * 3) : DeviceBuffer<float>();
  const bool mapped_out = out.maps(a.points_out);
  DeviceBuffer<float> points = rt.upload(a.points, a.n * 3, !mapped_out);
  CanonicalizeArgs d = a;
  d.points = points.get();
  d.points_out = mapped_out ? out.get() : points.get();
  CanonicalTransform t = canonicalize(d, rt.stream());
  rt.download(a.points_out, mapped_out ? out : points);
  return t;
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
