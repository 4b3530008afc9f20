// sinusoidal_encode on CUDA: one thread per output feature (coalesced writes: the output,
// 396 B/pt for L = 16, dominates the 12 B/pt read). Same exact reduction as the CPU fast
// path: y = 2^k p (exact), r = y - 2 rint(y / 2) in [-1, 1] (exact), then sin/cos(pi * r) in
// float64 with the same rounded argument as the CPU, rounded once to float (within 1 ulp of
// the CPU: CUDA's double sincos is within 2 double ulps).
#ifdef SR3D_WITH_CUDA
#include "../sinusoidal_encode.h"

#include <cfloat>

#include "cuda_util.h"

namespace sr3d {
namespace cuda {

namespace {

constexpr double kPi = 3.14159265358979323846;  // M_PI, the CPU's constant

__global__ void sinusoidal_encode_kernel(const float* __restrict__ points, int64_t n, int freqs,
                                         int include_input, float* __restrict__ features) {
  const int per_axis = include_input + 2 * freqs, width = 3 * per_axis;
  const int64_t total = n * width;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / width;
    const int j = static_cast<int>(e - i * width), axis = j / per_axis;
    const int m = j - axis * per_axis - include_input;  // -1: the input itself
    const float* p = points + 3 * i;
    const bool ok = fabsf(p[0]) <= FLT_MAX && fabsf(p[1]) <= FLT_MAX && fabsf(p[2]) <= FLT_MAX;
    float out = __int_as_float(0x7fc00000);
    if (ok) {
      const float x = p[axis];
      if (m < 0) {
        out = x;
      } else {
        const double y = ldexp(static_cast<double>(x), m >> 1);
        const double r = __dsub_rn(y, __dmul_rn(2.0, rint(__dmul_rn(0.5, y))));
        // sin/cos of the same rounded float64 argument pi * r as the CPU fast path
        // (sincospi(r) would be exact at r = +-0.5, +-1 and give 0 where the CPU gives
        // ~1e-16: tiny absolute, but far more than 1 ulp of the CPU's value).
        double s, c;
        sincos(__dmul_rn(kPi, r), &s, &c);
        out = __double2float_rn((m & 1) ? c : s);
      }
    }
    features[e] = out;
  }
}

}  // namespace

void sinusoidal_encode(const SinusoidalEncodeArgs& a, void* stream) {
  sinusoidal_encode_check(a);
  const int64_t total = a.n * sinusoidal_width(a.num_freqs, a.include_input);
  if (total <= 0) return;
  SR3D_LAUNCH(sinusoidal_encode_kernel, grid_for(total), kBlock, 0, as_stream(stream), a.points,
              a.n, a.num_freqs, a.include_input ? 1 : 0, a.features);
}

void sinusoidal_encode_host(const SinusoidalEncodeArgs& a) {
  sinusoidal_encode_check(a);
  const int64_t total = a.n * sinusoidal_width(a.num_freqs, a.include_input);
  if (total <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> points = rt.upload(a.points, a.n * 3), features = rt.output(a.features, total);
  SinusoidalEncodeArgs d = a;
  d.points = points.get();
  d.features = features.get();
  sinusoidal_encode(d, rt.stream());
  rt.download(a.features, features);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
