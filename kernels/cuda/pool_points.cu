// pool_points on CUDA: one thread per output patch summing its pixels in float64 in
// row-major order, exactly the CPU's order, so the means agree bit for bit. The P*P pixels
// a warp's 32 neighbouring patches read share cache lines, so DRAM sees each input byte
// about once (12 B/px read + 13 B/patch written).
#ifdef SR3D_WITH_CUDA
#include "../pool_points.h"

#include <cfloat>

#include "cuda_util.h"

namespace sr3d {
namespace cuda {

namespace {

__global__ void pool_points_kernel(const float* __restrict__ points, int64_t batch, int64_t height,
                                   int64_t width, int64_t patch, int64_t hp, int64_t wp,
                                   float* __restrict__ pooled, uint8_t* __restrict__ valid) {
  const int64_t total = batch * hp * wp;
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < total;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = o / (hp * wp), rem = o - b * hp * wp;
    const int64_t py = rem / wp, px = rem - py * wp;
    const int64_t v1 = (py + 1) * patch < height ? (py + 1) * patch : height;
    const int64_t u1 = (px + 1) * patch < width ? (px + 1) * patch : width;
    double s0 = 0, s1 = 0, s2 = 0;
    int64_t cnt = 0;
    for (int64_t v = py * patch; v < v1; ++v) {
      const float* row = points + 3 * (b * height + v) * width;
      for (int64_t u = px * patch; u < u1; ++u) {
        const float x = row[3 * u], y = row[3 * u + 1], z = row[3 * u + 2];
        if (!(fabsf(x) <= FLT_MAX && fabsf(y) <= FLT_MAX && fabsf(z) <= FLT_MAX)) continue;
        s0 = __dadd_rn(s0, static_cast<double>(x));
        s1 = __dadd_rn(s1, static_cast<double>(y));
        s2 = __dadd_rn(s2, static_cast<double>(z));
        ++cnt;
      }
    }
    const float nan = __int_as_float(0x7fc00000);
    const double c = static_cast<double>(cnt);
    pooled[3 * o] = cnt ? __double2float_rn(__ddiv_rn(s0, c)) : nan;
    pooled[3 * o + 1] = cnt ? __double2float_rn(__ddiv_rn(s1, c)) : nan;
    pooled[3 * o + 2] = cnt ? __double2float_rn(__ddiv_rn(s2, c)) : nan;
    valid[o] = cnt > 0;
  }
}

}  // namespace

void pool_points(const PoolPointsArgs& a, void* stream) {
  pool_points_check(a);
  const int64_t hp = pool_out_size(a.height, a.patch), wp = pool_out_size(a.width, a.patch);
  const int64_t total = a.batch * hp * wp;
  if (total <= 0) return;
  SR3D_LAUNCH(pool_points_kernel, grid_for(total), kBlock, 0, as_stream(stream), a.points,
              a.batch, a.height, a.width, a.patch, hp, wp, a.pooled, a.valid);
}

void pool_points_host(const PoolPointsArgs& a) {
  pool_points_check(a);
  const int64_t hp = pool_out_size(a.height, a.patch), wp = pool_out_size(a.width, a.patch);
  const int64_t n = a.batch * a.height * a.width, total = a.batch * hp * wp;
  if (total <= 0) return;
  RoundTrip rt;
  DeviceBuffer<float> points = rt.upload(a.points, n * 3), pooled = rt.output(a.pooled, total * 3);
  DeviceBuffer<uint8_t> valid = rt.output(a.valid, total);
  PoolPointsArgs d = a;
  d.points = points.get();
  d.pooled = pooled.get();
  d.valid = valid.get();
  pool_points(d, rt.stream());
  to_host(a.pooled, pooled, rt.stream());
  rt.download(a.valid, valid);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
