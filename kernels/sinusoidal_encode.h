// sinusoidal_encode: the 3D positional-encoding features of spec Part A §A5.
//
//   points: (N,3) float32 canonical coordinates.
//   -> features: (N, 3*D) float32, D = (include_input ? 1 : 0) + 2*num_freqs, axis-major:
//      for axis a in (x, y, z), the block [a*D, (a+1)*D) holds
//        [p_a (if include_input), sin(2^0 pi p_a), cos(2^0 pi p_a), sin(2^1 pi p_a), cos(2^1 pi p_a), ...,
//         sin(2^(L-1) pi p_a), cos(2^(L-1) pi p_a)]
//      (NeRF-style frequencies; L = 16 with the input gives 99 features).
//   A point with any non-finite coordinate (an empty patch) gives a row of NaN: the
//   pipeline adds a zero PE there instead of MLP(features).
// Accuracy: 2^k p is exact in float; the fast paths reduce it mod 2 exactly before
// sin(pi r), so even k = 15 keeps ~1e-7 absolute error (a float32 argument 2^k*pi*p would lose ~1e-2).
#pragma once
#include "common.h"

namespace sr3d {

struct SinusoidalEncodeArgs {
  const float* points = nullptr;
  int64_t n = 0;
  int num_freqs = 16;
  bool include_input = true;
  float* features = nullptr;
};

inline int64_t sinusoidal_width(int num_freqs, bool include_input) {
  return 3 * ((include_input ? 1 : 0) + 2 * static_cast<int64_t>(num_freqs));
}
void sinusoidal_encode_check(const SinusoidalEncodeArgs& a);
void sinusoidal_encode(const SinusoidalEncodeArgs& a, Impl impl);

namespace cpu {
void sinusoidal_encode_reference(const SinusoidalEncodeArgs& a);
void sinusoidal_encode_fast(const SinusoidalEncodeArgs& a);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
void sinusoidal_encode(const SinusoidalEncodeArgs& device_args, void* stream);
void sinusoidal_encode_host(const SinusoidalEncodeArgs& host_args);
}
#endif

}  // namespace sr3d
