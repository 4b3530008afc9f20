// resize_bicubic: Pillow's `Image.resize((out_width, out_height), Image.BICUBIC)` of an 8-bit RGB
// image, bit for bit (src/libImaging/Resample.c; the PIL default resample VILA tiles with, spec
// Part B §2.3 and §10). Verified against Pillow 9.4 outputs (test/fixtures/resize).
//
//   src: (height,width,3) uint8 -> dst: (out_height,out_width,3) uint8; every size >= 1.
//
// Pillow's algorithm, which every path here reproduces:
//  - per axis, output i covers input centre c = (i + 0.5) * in/out; the bicubic kernel (a = -0.5)
//    is stretched by f = max(1, in/out) (antialiasing), support 2f; taps j in
//    [trunc(c - 2f + 0.5), trunc(c + 2f + 0.5)) clipped to the image, weight
//    k(((j - c) + 0.5) / f) in float64, normalized to sum 1, then fixed point with 22 fraction
//    bits (round half away from zero);
//  - the horizontal pass first, rounded and clipped to uint8, then the vertical pass over those
//    rows; a pass whose size does not change is skipped (it would be the identity anyway);
//  - each output = clip8((2^21 + sum of pixel * weight) >> 22) in int32.
// The integer sums are exact, so any summation order gives the same bytes.
#pragma once
#include <functional>
#include <vector>

#include "common.h"

namespace sr3d {

// 8 result bits + 2 bits of headroom for the negative lobes -> 22 fraction bits (Pillow's
// PRECISION_BITS).
constexpr int kResamplePrecisionBits = 22;

// One axis of the resampling, in Pillow's fixed point. Output i reads inputs
// first[i] .. first[i] + count[i] - 1 with weights[i * taps + t] (zero past count[i]).
struct ResampleAxis {
  int64_t in_size = 0, out_size = 0;
  int taps = 0;  // Pillow's ksize: 2 * ceil(support) + 1
  std::vector<int32_t> first, count, weights;
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bicubic filter.
ResampleAxis bicubic_axis(int64_t in_size, int64_t out_size);

// Pillow's clip8: the integer part of a fixed-point sum (arithmetic shift), saturated.
inline uint8_t resample_clip8(int32_t sum) {
  const int32_t v = sum >> kResamplePrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Sizes in [1, 2^24] (Pillow's float box is exact there): an argument error otherwise.
void resample_axis_check(int64_t in_size, int64_t out_size, const char* name);

struct ResizeBicubicArgs {
  const uint8_t* src = nullptr;  // (height, width, 3)
  int64_t height = 0, width = 0;
  uint8_t* dst = nullptr;  // (out_height, out_width, 3)
  int64_t out_height = 0, out_width = 0;
};

void resize_bicubic_check(const ResizeBicubicArgs& a);
void resize_bicubic(const ResizeBicubicArgs& a, Impl impl);

namespace cpu {
void resize_bicubic_reference(const ResizeBicubicArgs& a);
void resize_bicubic_fast(const ResizeBicubicArgs& a);

// The fast two-pass resampler shared with tile_image: output rows [row_begin, row_end) of the
// resize of src (H,W,3) to (v.out_size, h.out_size, 3), computed in bands (each band runs the
// horizontal pass over just the input rows it needs), each finished output row handed to
// emit(y, row) as h.out_size * 3 uint8. Single-threaded: callers parallelize over row ranges.
struct ResamplePlan {
  ResampleAxis h, v;
  bool need_h = false, need_v = false;  // false: that size is unchanged, the pass is skipped
};
ResamplePlan resample_plan(int64_t height, int64_t width, int64_t out_height, int64_t out_width);
void resample_rows(const uint8_t* src, int64_t height, int64_t width, const ResamplePlan& plan,
                   int64_t row_begin, int64_t row_end,
                   const std::function<void(int64_t y, const uint8_t* row)>& emit);
// Output rows per band: each band recomputes the horizontal pass of the ~4f input rows it
// shares with its neighbour, 6% extra at 64 rows for the 1080p grid.
constexpr int64_t kResampleBandRows = 64;
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
// Device pointers in `device_args`; the coefficients are computed on the host and uploaded.
void resize_bicubic(const ResizeBicubicArgs& device_args, void* stream);
void resize_bicubic_host(const ResizeBicubicArgs& host_args);
}  // namespace cuda
#endif

}  // namespace sr3d
