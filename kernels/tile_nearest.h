// tile_nearest: a per-pixel map tiled like tile_image (same grid, crops and thumbnail) but
// resized with Pillow's NEAREST: point maps, which must never be blended across depth edges or
// invalid pixels (spec Part A §A2, §A4), and region masks (Part B §2.4).
//
//   src: (height,width,pixel_bytes): (H,W,3) float32 points -> 12 bytes, (H,W) uint8 masks -> 1
//   -> dst: (N,tile,tile,pixel_bytes), N = tile_count(cols, rows); tile k < cols*rows is the crop
//      (k % cols, k / cols) of the map resized to (tile*rows, tile*cols); the last tile, when
//      cols*rows > 1, is the whole map resized to (tile, tile).
// Pillow's NEAREST resize (ImagingScaleAffine): output x reads input floor(s_x) with
// s_0 = (in/out) * 0.5 and s_{x+1} = s_x + in/out accumulated in float64. That accumulation is
// not (x + 0.5) * in/out: the two differ, e.g. for 2 -> 7 (checked against Pillow 9.4's maps).
// Bytes are copied, never interpreted: NaN payloads survive.
#pragma once
#include <vector>

#include "common.h"
#include "tile_image.h"

namespace sr3d {

// Source index of each output along one axis; -1 where Pillow's coordinate falls outside
// the input (Pillow writes 0 there; it does not happen for in, out >= 1 in practice).
std::vector<int32_t> nearest_index(int64_t in_size, int64_t out_size);

struct TileNearestArgs {
  const uint8_t* src = nullptr;  // (height, width, pixel_bytes)
  int64_t height = 0, width = 0, pixel_bytes = 1;
  int64_t cols = 1, rows = 1, tile = 448;
  uint8_t* dst = nullptr;  // (tile_count(cols, rows), tile, tile, pixel_bytes)
};

void tile_nearest_check(const TileNearestArgs& a);
void tile_nearest(const TileNearestArgs& a, Impl impl);

namespace cpu {
void tile_nearest_reference(const TileNearestArgs& a);
void tile_nearest_fast(const TileNearestArgs& a);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
void tile_nearest(const TileNearestArgs& device_args, void* stream);
void tile_nearest_host(const TileNearestArgs& host_args);
}  // namespace cuda
#endif

}  // namespace sr3d
