// mask_pool: one feature vector per region, the mask-weighted mean of the vision tokens
// (spec Part A §A6; Part B §6.1 SpatialRGPT MaskPooling, §6.2 the tiled/multi-view form).
//
//   features: the buffer of a TokenGrid (token_grid.h), float32: frames (F,h,w,C) or the
//             tiles (N,g,g,C) of a (cols,rows) plan, read in place (no stitched copy).
//   masks:    (M, F, P*h, P*w) uint8 at pixel resolution, P = patch (SigLIP: 14 px per
//             token); nonzero = inside.
//   -> out:   (M, C) float32.
//
// Modes (a region's masks on all F frames pool jointly into one vector, Part B §6.2 step 5):
//   kArea         weight of a token = n / P^2, n = the mask pixels in its PxP block;
//                 out = sum(n f) / sum(n). Any non-empty mask gives a non-zero weight.
//                 [INFERRED: this project's default, Part A §A6]
//   kSpatialRgpt  the reference: d = F.interpolate(mask, scale_factor = sqrt(hw / (Hm Wm)),
//                 mode='bilinear', align_corners=False) in float32 (for P = 14: the mean of the
//                 2x2 pixels at each block centre, exact), S = sum(d), w = d / (S + 1e-8f) in
//                 float32, out = sum(w f). A mask that covers no block centre gives S = 0 and
//                 the zero vector (the reference's answer).
// A region whose mask is zero on every frame is an argument error naming masks[m] (both modes).
//
// Numerics: each output is a float64 sum over the tokens in (f, y, x) order, rounded to
// float32 once; tokens of zero weight are skipped (not read), so a non-finite feature outside
// every region does not propagate. The fast CPU path splits the outputs (channels, regions),
// never the token order: it equals the reference bit for bit. CUDA sums fixed chunks of 512
// tokens and then the chunks in order: deterministic, within 1 float32 ulp (+ ~T 2^-53
// relative to sum |w f|) of the CPU.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"
#include "token_grid.h"

namespace sr3d {

enum class MaskPoolMode { kArea, kSpatialRgpt };

struct MaskPoolArgs {
  const float* features = nullptr;
  TokenGrid grid;
  const uint8_t* masks = nullptr;
  int64_t regions = 0;  // M
  int64_t patch = 14;   // P, in [1, 1024]
  MaskPoolMode mode = MaskPoolMode::kArea;
  float* out = nullptr;
};

void mask_pool_check(const MaskPoolArgs& a);
void mask_pool(const MaskPoolArgs& a, Impl impl);

// ---- pieces every path shares (the reference's arithmetic, written once) ----------------

// One output position of torch's align_corners=False bilinear resize along one axis
// (upsample_bilinear2d, CPU, float32): source rows i0/i1 with weights l0/l1.
struct BilinearTap {
  int64_t i0 = 0, i1 = 0;
  float l0 = 1, l1 = 0;
};

// The taps SpatialRGPT's MaskPooling uses to bring `tokens * patch` pixels down to `tokens`
// (scale_factor = (L / (Hm*Wm)) ** 0.5 = sqrt(1/P^2) in float64; torch's kernel uses
// float(1/scale_factor) and out size floor(in * scale_factor)). Throws when that size is not
// `tokens` (the reference itself would fail there; never for P = 14).
std::vector<BilinearTap> spatialrgpt_taps(int64_t tokens, int64_t patch);

// d at one token: torch's t0*l0h + t1*l1h with t = l0w*m[.,j0] + l1w*m[.,j1] (float32, no FMA).
SR3D_HOST_DEVICE inline float spatialrgpt_sample(const uint8_t* mask, int64_t mask_width,
                                                 const BilinearTap& ty, const BilinearTap& tx) {
  const uint8_t* r0 = mask + ty.i0 * mask_width;
  const uint8_t* r1 = mask + ty.i1 * mask_width;
  const float a = r0[tx.i0] ? 1.0f : 0.0f, b = r0[tx.i1] ? 1.0f : 0.0f;
  const float c = r1[tx.i0] ? 1.0f : 0.0f, d = r1[tx.i1] ? 1.0f : 0.0f;
  const float t0 = a * tx.l0 + b * tx.l1;
  const float t1 = c * tx.l0 + d * tx.l1;
  return t0 * ty.l0 + t1 * ty.l1;
}

// `mask.sum() + 1e-8` in float32: the sum (a sum of multiples of 1/4 for P = 14, exact in
// float64) rounded to float32, plus the float32 1e-8.
inline float spatialrgpt_denominator(double mask_sum) {
  return static_cast<float>(mask_sum) + 1e-8f;
}

// Mask pixels (nonzero bytes) in token (y, x)'s PxP block of one frame's mask.
SR3D_HOST_DEVICE inline int64_t mask_block_count(const uint8_t* mask, int64_t mask_width,
                                                 int64_t patch, int64_t y, int64_t x) {
  int64_t n = 0;
  for (int64_t v = y * patch; v < (y + 1) * patch; ++v) {
    const uint8_t* row = mask + v * mask_width + x * patch;
    for (int64_t u = 0; u < patch; ++u) n += row[u] != 0;
  }
  return n;
}

// The argument error for a region whose mask is zero on every frame.
[[noreturn]] void throw_empty_region(int64_t region);

namespace cpu {
void mask_pool_reference(const MaskPoolArgs& a);
void mask_pool_fast(const MaskPoolArgs& a);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
// Device pointers; synchronizes `stream` once mid-way (the per-region sums decide the
// empty-region errors and the denominators on the host).
void mask_pool(const MaskPoolArgs& device_args, void* stream);
void mask_pool_host(const MaskPoolArgs& host_args);
}  // namespace cuda
#endif

}  // namespace sr3d
