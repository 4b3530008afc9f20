// canonicalize on CUDA: reduction (canonical_reduce.cuh) + one apply launch. Bytes: 12 B/pt
// read by the min/max launch (+12 by the bracket launch when quantile > 0), 24 B/pt by the
// apply (read + write), i.e. 36-48 B/pt against the 24 B/pt floor.
#ifdef SR3D_WITH_CUDA
#include "../canonicalize.h"

#include "canonical_reduce.cuh"
#include "cuda_util.h"

namespace sr3d {
namespace cuda {

namespace {

// p' = (p - c) * inv, NaN where any component is not finite; `count` (metric mode, where
// no reduction ran) receives the number of valid points.
__global__ void canonical_apply_kernel(const float* points, int64_t n, ApplyParams t, float* out,
                                       unsigned long long* count) {
  __shared__ unsigned long long scratch[32];
  unsigned long long c = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float p[3], q[3];
    const bool ok = PointsSource{points}.load(i, p);
    c += ok;
    apply_point(t, ok, p, q);
    out[3 * i] = q[0];
    out[3 * i + 1] = q[1];
    out[3 * i + 2] = q[2];
  }
  if (count) {  // uniform: every thread of the block takes the same branch
    c = block_reduce(c, SumOp(), 0ULL, scratch);
    if (threadIdx.x == 0 && c) atomicAdd(count, c);
  }
}

}  // namespace

CanonicalTransform canonicalize(const CanonicalizeArgs& a, void* stream_ptr) {
  canonicalize_check(a);
  cudaStream_t stream = as_stream(stream_ptr);
  const int64_t n = a.n;
  if (n == 0) {  // no launch: the metric identity, or the no-valid-point error
    const double zero[3] = {0, 0, 0};
    return cpu::transform_from_box(a.mode, zero, zero, 0);
  }
  if (a.mode == CanonicalMode::kMetric) {
    CanonicalTransform t;
    DeviceBuffer<unsigned long long> count(1, stream);
    SR3D_CUDA_CHECK(cudaMemsetAsync(count.get(), 0, sizeof(unsigned long long), stream));
    SR3D_LAUNCH(canonical_apply_kernel, reduction_grid(n), kBlock, 0, stream, a.points, n,
                apply_params(t), a.points_out, count.get());
    unsigned long long c = 0;
    SR3D_CUDA_CHECK(cudaMemcpyAsync(&c, count.get(), sizeof c, cudaMemcpyDeviceToHost, stream));
    SR3D_CUDA_CHECK(cudaStreamSynchronize(stream));
    t.valid_count = static_cast<int64_t>(c);
    return t;
  }
  CanonicalTransform t = reduce_transform(PointsSource{a.points}, n, a.mode, a.quantile, stream);
  SR3D_LAUNCH(canonical_apply_kernel, grid_for(n), kBlock, 0, stream, a.points, n,
                apply_params(t), a.points_out, static_cast<unsigned long long*>(nullptr));
  return t;
}

CanonicalTransform canonicalize_host(const CanonicalizeArgs& a) {
  canonicalize_check(a);
  if (a.n == 0) return canonicalize(a, nullptr);  // no device work
  use_selected_device();
  Stream stream;
  DeviceBuffer<float> points(a.n * 3, stream.get());  // transformed in place on the device
  SR3D_CUDA_CHECK(cudaMemcpyAsync(points.get(), a.points, points.bytes(), cudaMemcpyHostToDevice,
                                  stream.get()));
  CanonicalizeArgs d = a;
  d.points = points.get();
  d.points_out = points.get();
  CanonicalTransform t = canonicalize(d, stream.get());
  SR3D_CUDA_CHECK(cudaMemcpyAsync(a.points_out, points.get(), points.bytes(),
                                  cudaMemcpyDeviceToHost, stream.get()));
  SR3D_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  return t;
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
