// pool_points: masked mean of valid points per patch (spec Part A §A4).
//
//   points: (B,H,W,3) float32 (B = all leading dims flattened); a pixel is valid when all
//           three components are finite.
//   patch:  P >= 1 pixels (14 for SigLIP: a 448 tile -> 32x32 patches).
//   -> pooled: (B,Hp,Wp,3) float32, Hp = ceil(H/P), Wp = ceil(W/P) (an edge patch averages
//              the pixels it has); NaN where the patch has no valid pixel.
//   -> valid:  (B,Hp,Wp) uint8, 1 where the patch had at least one valid pixel.
// Sums are float64 in row-major order inside the patch on every path, so the CPU paths
// agree bit for bit; the mean is rounded to float32 once.
#pragma once
#include "common.h"

namespace sr3d {

struct PoolPointsArgs {
  const float* points = nullptr;
  int64_t batch = 0, height = 0, width = 0, patch = 14;
  float* pooled = nullptr;
  uint8_t* valid = nullptr;
};

inline int64_t pool_out_size(int64_t n, int64_t patch) { return (n + patch - 1) / patch; }
void pool_points_check(const PoolPointsArgs& a);
void pool_points(const PoolPointsArgs& a, Impl impl);

namespace cpu {
void pool_points_reference(const PoolPointsArgs& a);
void pool_points_fast(const PoolPointsArgs& a);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
void pool_points(const PoolPointsArgs& device_args, void* stream);
void pool_points_host(const PoolPointsArgs& host_args);
}
#endif

}  // namespace sr3d
