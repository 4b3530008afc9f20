// tile_image: VILA's dynamic tiling of an RGB image into SigLIP's input in one fused pass from
// the source (spec Part B §2.3; performance.md fusion plan (4)).
//
//   src: (height,width,3) uint8; grid of cols x rows tiles of tile x tile pixels
//   -> tiles: (N,3,tile,tile) float32, N = tile_count(cols, rows)
//      tile k < cols*rows (row-major): the crop at column k % cols, row k / cols of
//        resize_bicubic(src, tile*cols, tile*rows);
//      tile N-1 when cols*rows > 1: resize_bicubic(src, tile, tile) of the whole image (the thumbnail);
//      each uint8 x normalized as SiglipImageProcessor does: siglip_normalize(x).
// Bit for bit what Pillow's resize + crop + normalize gives: the uint8 rounding of both Pillow
// passes is kept (the fused path resamples rows, rounds them as Pillow does, and writes floats).
// A 1 x 1 grid is the multi-view frame (spec Part A §A8): the image stretched to one tile.
#pragma once
#include "common.h"

namespace sr3d {

inline int64_t tile_count(int64_t cols, int64_t rows) {
  return cols * rows + (cols * rows > 1 ? 1 : 0);
}

// float32((x / 255 - 0.5) / 0.5) with every step in float32 (x / 255 correctly rounded).
// For all 256 inputs it equals transformers' rescale (float64 x * (1/255) cast to float32)
// followed by the float32 normalize, and numpy's (x.astype(float32) / 255 - 0.5) / 0.5.
inline float siglip_normalize(uint8_t x) {
  return (static_cast<float>(x) / 255.0f - 0.5f) / 0.5f;
}

// The grid checks shared by tile_image and tile_nearest: cols, rows in [1, 64], tile >= 1,
// tile*cols and tile*rows within the resampler's limits.
void tile_grid_check(int64_t height, int64_t width, int64_t cols, int64_t rows, int64_t tile);

struct TileImageArgs {
  const uint8_t* src = nullptr;  // (height, width, 3)
  int64_t height = 0, width = 0;
  int64_t cols = 1, rows = 1, tile = 448;
  float* tiles = nullptr;  // (tile_count(cols, rows), 3, tile, tile)
};

void tile_image_check(const TileImageArgs& a);
void tile_image(const TileImageArgs& a, Impl impl);

namespace cpu {
void tile_image_reference(const TileImageArgs& a);
void tile_image_fast(const TileImageArgs& a);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
void tile_image(const TileImageArgs& device_args, void* stream);
void tile_image_host(const TileImageArgs& host_args);
}  // namespace cuda
#endif

}  // namespace sr3d
