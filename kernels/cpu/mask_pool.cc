#include "../mask_pool.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "simd.h"

namespace sr3d {

void mask_pool_check(const MaskPoolArgs& a) {
  token_grid_check(a.grid, "features");
  if (a.regions < 1) throw_invalid_argument("at least one region", "masks", "0 regions");
  if (a.patch < 1 || a.patch > 1024)  // the fast path counts a block column in 16 bits
    throw_invalid_argument("a patch size in [1, 1024] pixels", "patch", std::to_string(a.patch));
  if (a.mode != MaskPoolMode::kArea && a.mode != MaskPoolMode::kSpatialRgpt)
    throw_internal("mask_pool: unknown mode");
  if (!a.features || !a.masks || !a.out) throw_internal("mask_pool: null buffer");
  if (a.mode == MaskPoolMode::kSpatialRgpt) {
    spatialrgpt_taps(a.grid.height, a.patch);
    spatialrgpt_taps(a.grid.width, a.patch);
  }
}

void mask_pool(const MaskPoolArgs& a, Impl impl) {
  mask_pool_check(a);
  return run_impl(
      impl, [&] { return cpu::mask_pool_reference(a); }, [&] { return cpu::mask_pool_fast(a); },
      SR3D_CUDA_PATH(cuda::mask_pool_host(a)));
}

std::vector<BilinearTap> spatialrgpt_taps(int64_t tokens, int64_t patch) {
  const int64_t in = tokens * patch;
  // Python: (x_len / mask_hw) ** 0.5 with x_len / mask_hw = hw / (P^2 hw), correctly rounded.
  const double scale_factor = std::pow(1.0 / static_cast<double>(patch * patch), 0.5);
  const int64_t out = static_cast<int64_t>(std::floor(static_cast<double>(in) * scale_factor));
  if (out != tokens)
    throw_invalid_argument("a patch size for which SpatialRGPT's bilinear resize gives one value per token",
                           "patch", std::to_string(patch) + " (" + std::to_string(in) + " px -> " +
                                        std::to_string(out) + ", not " + std::to_string(tokens) + ")");
  const float ratio = static_cast<float>(1.0 / scale_factor);
  std::vector<BilinearTap> taps(static_cast<size_t>(tokens));
  for (int64_t d = 0; d < tokens; ++d) {
    BilinearTap& t = taps[static_cast<size_t>(d)];
    if (in == tokens) {  // torch copies when the sizes match (patch 1)
      t.i0 = t.i1 = d;
      continue;
    }
    float src = ratio * (static_cast<float>(d) + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    t.i0 = std::min(static_cast<int64_t>(src), in - 1);
    t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
    t.l1 = std::min(std::max(src - static_cast<float>(t.i0), 0.0f), 1.0f);
    t.l0 = 1.0f - t.l1;
  }
  return taps;
}

void throw_empty_region(int64_t region) {
  throw_invalid_argument("a mask with at least one nonzero pixel on some frame",
                         "masks[" + std::to_string(region) + "]", "an all-zero mask");
}

namespace cpu {

namespace {

constexpr size_t kPrefetchAhead = 4;  // tokens

bool region_has_pixel(const MaskPoolArgs& a, int64_t m) {
  const int64_t n = a.grid.frames * a.grid.height * a.patch * a.grid.width * a.patch;
  const uint8_t* p = a.masks + m * n;
  for (int64_t i = 0; i < n; ++i)
    if (p[i]) return true;
  return false;
}

// Nonzero bytes per column over one token row's P pixel rows (then per token: P columns).
// Byte compares and 16-bit adds vectorize; the per-pixel block loop does not.
SR3D_TARGET_CLONES
void column_counts(const uint8_t* __restrict rows, int64_t width, int64_t patch, uint16_t* __restrict counts) {
  for (int64_t u = 0; u < width; ++u) counts[u] = 0;
  for (int64_t v = 0; v < patch; ++v) {
    const uint8_t* row = rows + v * width;
    for (int64_t u = 0; u < width; ++u) counts[u] = static_cast<uint16_t>(counts[u] + (row[u] != 0));
  }
}

// acc[c] += w * x[c] in float64 (product exact: w has <= 24 significant bits, x 24).
SR3D_TARGET_CLONES
void accumulate(double* __restrict acc, const float* __restrict x, double w, int64_t n) {
  for (int64_t c = 0; c < n; ++c) acc[c] += w * static_cast<double>(x[c]);
}

}  // namespace

// Per region, per token in (f, y, x) order: the weight straight from the mask, then the
// float64 sum. Written for obviousness; the fast path must equal it bit for bit.
void mask_pool_reference(const MaskPoolArgs& a) {
  const TokenGrid& g = a.grid;
  const int64_t P = a.patch, Hm = g.height * P, Wm = g.width * P, C = g.channels;
  const bool srgpt = a.mode == MaskPoolMode::kSpatialRgpt;
  std::vector<BilinearTap> ty, tx;
  if (srgpt) {
    ty = spatialrgpt_taps(g.height, P);
    tx = spatialrgpt_taps(g.width, P);
  }
  std::vector<double> acc(static_cast<size_t>(C));
  for (int64_t m = 0; m < a.regions; ++m) {
    auto frame_mask = [&](int64_t f) { return a.masks + (m * g.frames + f) * Hm * Wm; };
    auto d_at = [&](int64_t f, int64_t y, int64_t x) {
      return spatialrgpt_sample(frame_mask(f), Wm, ty[y], tx[x]);
    };
    double total = 0;  // area: pixels; spatialrgpt: sum of d (exact)
    for (int64_t f = 0; f < g.frames; ++f)
      for (int64_t y = 0; y < g.height; ++y)
        for (int64_t x = 0; x < g.width; ++x)
          total += srgpt ? static_cast<double>(d_at(f, y, x))
                         : static_cast<double>(mask_block_count(frame_mask(f), Wm, P, y, x));
    if (total == 0 && (!srgpt || !region_has_pixel(a, m))) throw_empty_region(m);
    const float denom = spatialrgpt_denominator(total);
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t f = 0; f < g.frames; ++f)
      for (int64_t y = 0; y < g.height; ++y)
        for (int64_t x = 0; x < g.width; ++x) {
          const double w = srgpt ? static_cast<double>(d_at(f, y, x) / denom)
                                 : static_cast<double>(mask_block_count(frame_mask(f), Wm, P, y, x));
          if (w == 0) continue;
          const float* feat = a.features + g.offset(f, y, x);
          for (int64_t c = 0; c < C; ++c) acc[c] += w * static_cast<double>(feat[c]);
        }
    for (int64_t c = 0; c < C; ++c)
      a.out[m * C + c] = static_cast<float>(srgpt ? acc[c] : acc[c] / total);
  }
}

// 1. Token weights of all regions (M x T, small), in parallel over mask token rows.
// 2. Per-region totals in token order; the empty-region errors; spatialrgpt's w = d / denom.
// 3. The tokens any region touches, in (f, y, x) order.
// 4. One sweep over those tokens' features for all regions; each task owns a slice of the
//    outputs (a channel range x a group of regions), so every output is summed in token
//    order exactly like the reference, and each feature byte is read by one task.
void mask_pool_fast(const MaskPoolArgs& a) {
  const TokenGrid g = a.grid;
  const int64_t P = a.patch, Hm = g.height * P, Wm = g.width * P, C = g.channels;
  const int64_t M = a.regions, T = g.tokens(), rows = g.frames * g.height;
  const bool srgpt = a.mode == MaskPoolMode::kSpatialRgpt;
  std::vector<BilinearTap> ty, tx;
  if (srgpt) {
    ty = spatialrgpt_taps(g.height, P);
    tx = spatialrgpt_taps(g.width, P);
  }

  std::vector<double> weight(static_cast<size_t>(T * M));  // [t][m]
  parallel_for(M * rows, 0, [&](int, int64_t r0, int64_t r1) {
    std::vector<uint16_t> cols(srgpt ? 0 : static_cast<size_t>(Wm));  // P <= 1024 rows: fits
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t m = r / rows, fy = r % rows, f = fy / g.height, y = fy % g.height;
      const uint8_t* mask = a.masks + (m * g.frames + f) * Hm * Wm;
      double* w = weight.data() + fy * g.width * M + m;
      if (srgpt) {
        for (int64_t x = 0; x < g.width; ++x)
          w[x * M] = static_cast<double>(spatialrgpt_sample(mask, Wm, ty[y], tx[x]));
        continue;
      }
      column_counts(mask + y * P * Wm, Wm, P, cols.data());
      for (int64_t x = 0; x < g.width; ++x) {
        int64_t n = 0;
        for (int64_t u = x * P; u < (x + 1) * P; ++u) n += cols[u];
        w[x * M] = static_cast<double>(n);
      }
    }
  });

  // Totals in the reference's token order (exact for P = 14 anyway: multiples of 1/4).
  std::vector<double> total(static_cast<size_t>(M), 0.0);
  std::vector<float> denom(static_cast<size_t>(M));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t m = 0; m < M; ++m) total[m] += weight[t * M + m];
  for (int64_t m = 0; m < M; ++m) {
    if (total[m] == 0 && (!srgpt || !region_has_pixel(a, m))) throw_empty_region(m);
    denom[m] = spatialrgpt_denominator(total[m]);
  }
  if (srgpt) {
    parallel_for(T, 0, [&](int, int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t m = 0; m < M; ++m) {
          double& w = weight[t * M + m];
          w = static_cast<double>(static_cast<float>(w) / denom[m]);
        }
    });
  }

  std::vector<int64_t> active, offset;
  for (int64_t t = 0; t < T; ++t) {
    bool any = false;
    for (int64_t m = 0; m < M && !any; ++m) any = weight[t * M + m] != 0;
    if (!any) continue;
    const int64_t f = t / (g.height * g.width), yx = t % (g.height * g.width);
    active.push_back(t);
    offset.push_back(g.offset(f, yx / g.width, yx % g.width));
  }

  // Channel slices of >= 64 floats (256 B runs per token); when there are fewer slices than
  // threads (small C), split the regions as well.
  const int threads = cpu_threads();
  const int64_t slice = std::min<int64_t>(C, std::max<int64_t>(64, (C + threads - 1) / threads));
  const int64_t slices = (C + slice - 1) / slice;
  const int64_t groups = std::min<int64_t>(M, std::max<int64_t>(1, (threads + slices - 1) / slices));
  const int64_t group = (M + groups - 1) / groups;
  const int64_t units = slices * ((M + group - 1) / group);
  parallel_for(units, static_cast<int>(units), [&](int, int64_t u0, int64_t u1) {
    std::vector<double> acc;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t c0 = (u % slices) * slice, c1 = std::min(C, c0 + slice), n = c1 - c0;
      const int64_t m0 = (u / slices) * group, m1 = std::min(M, m0 + group);
      acc.assign(static_cast<size_t>((m1 - m0) * n), 0.0);
      for (size_t i = 0; i < active.size(); ++i) {
        const double* w = weight.data() + active[i] * M;
        const float* feat = a.features + offset[i] + c0;
        // The active tokens are scattered: fetch a later token's slice while this one sums
        // (the hardware prefetcher stops at each jump).
        if (i + kPrefetchAhead < active.size()) {
          const char* next = reinterpret_cast<const char*>(a.features + offset[i + kPrefetchAhead] + c0);
          for (int64_t b = 0; b < n * 4; b += 64) __builtin_prefetch(next + b);
        }
        for (int64_t m = m0; m < m1; ++m)
          if (w[m] != 0) accumulate(acc.data() + (m - m0) * n, feat, w[m], n);
      }
      for (int64_t m = m0; m < m1; ++m)
        for (int64_t c = 0; c < n; ++c) {
          const double s = acc[(m - m0) * n + c];
          a.out[m * C + c0 + c] = static_cast<float>(srgpt ? s : s / total[m]);
        }
    }
  });
}

}  // namespace cpu
}  // namespace sr3d
