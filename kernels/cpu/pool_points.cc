#include "../pool_points.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace sr3d {

void pool_points_check(const PoolPointsArgs& a) {
  if (a.patch < 1) throw_invalid_argument("a patch size >= 1", "patch", std::to_string(a.patch));
  if (a.batch < 0 || a.height < 0 || a.width < 0)
    throw_invalid_argument("non-negative sizes", "points", "a negative size");
  if (a.batch * a.height * a.width > 0 && (!a.points || !a.pooled || !a.valid))
    throw_internal("pool_points: null buffer");
}

void pool_points(const PoolPointsArgs& a, Impl impl) {
  pool_points_check(a);
  return run_impl(
      impl, [&] { return cpu::pool_points_reference(a); }, [&] { return cpu::pool_points_fast(a); },
      SR3D_CUDA_PATH(cuda::pool_points_host(a)));
}

namespace cpu {

static inline bool finite3(const float* p) {
  return std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]);
}

void pool_points_reference(const PoolPointsArgs& a) {
  const int64_t P = a.patch, Hp = pool_out_size(a.height, P), Wp = pool_out_size(a.width, P);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t py = 0; py < Hp; ++py)
      for (int64_t px = 0; px < Wp; ++px) {
        double s[3] = {0, 0, 0};
        int64_t cnt = 0;
        for (int64_t v = py * P; v < std::min((py + 1) * P, a.height); ++v)
          for (int64_t u = px * P; u < std::min((px + 1) * P, a.width); ++u) {
            const float* p = a.points + 3 * ((b * a.height + v) * a.width + u);
            if (!finite3(p)) continue;
            for (int k = 0; k < 3; ++k) s[k] += p[k];
            ++cnt;
          }
        int64_t o = (b * Hp + py) * Wp + px;
        for (int k = 0; k < 3; ++k)
          a.pooled[3 * o + k] = cnt ? static_cast<float>(s[k] / static_cast<double>(cnt)) : nan;
        a.valid[o] = cnt > 0;
      }
}

// One task per (batch, patch row): stream the P pixel rows once, accumulating every patch
// of the row side by side (same per-patch summation order as the reference).
void pool_points_fast(const PoolPointsArgs& a) {
  const int64_t P = a.patch, Hp = pool_out_size(a.height, P), Wp = pool_out_size(a.width, P);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  parallel_for(a.batch * Hp, 0, [&](int, int64_t t0, int64_t t1) {
    std::vector<double> sum(3 * Wp);
    std::vector<int64_t> cnt(Wp);
    for (int64_t t = t0; t < t1; ++t) {
      int64_t b = t / Hp, py = t % Hp;
      std::fill(sum.begin(), sum.end(), 0.0);
      std::fill(cnt.begin(), cnt.end(), 0);
      for (int64_t v = py * P; v < std::min((py + 1) * P, a.height); ++v) {
        const float* row = a.points + 3 * (b * a.height + v) * a.width;
        for (int64_t px = 0; px < Wp; ++px) {
          double sx = sum[3 * px], sy = sum[3 * px + 1], sz = sum[3 * px + 2];
          int64_t c = cnt[px];
          for (int64_t u = px * P; u < std::min((px + 1) * P, a.width); ++u) {
            const float* p = row + 3 * u;
            if (!finite3(p)) continue;
            sx += p[0]; sy += p[1]; sz += p[2];
            ++c;
          }
          sum[3 * px] = sx; sum[3 * px + 1] = sy; sum[3 * px + 2] = sz;
          cnt[px] = c;
        }
      }
      for (int64_t px = 0; px < Wp; ++px) {
        int64_t o = t * Wp + px;
        double c = static_cast<double>(cnt[px]);
        for (int k = 0; k < 3; ++k)
          a.pooled[3 * o + k] = cnt[px] ? static_cast<float>(sum[3 * px + k] / c) : nan;
        a.valid[o] = cnt[px] > 0;
      }
    }
  });
}

}  // namespace cpu
}  // namespace sr3d
