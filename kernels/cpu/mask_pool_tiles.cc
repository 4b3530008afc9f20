#include "../mask_pool_tiles.h"

#include <cstring>
#include <string>
#include <vector>

namespace sr3d {

void mask_pool_tiles_check(const MaskPoolTilesArgs& a) {
  const TokenGrid& g = a.pool.grid;
  if (g.frames != 1 || g.tile_h < 1 || g.tile_h != g.tile_w)
    throw_invalid_argument("a tiles grid (features (N,g,g,C) of a cols x rows plan)", "features", "a frames grid");
  const int64_t grid = g.tile_cols * g.tile_rows();
  if (a.mask_tiles != grid && a.mask_tiles != grid + 1)
    throw_invalid_argument(std::to_string(grid) + " mask tiles per region (cols x rows) or " + std::to_string(grid + 1) +
                               " (with the thumbnail last)",
                           "maskTiles", std::to_string(a.mask_tiles));
  if (!a.tile_masks) throw_invalid_argument("a non-null buffer", "masks", "nullptr");
}

void stitch_tile_masks(const MaskPoolTilesArgs& a, uint8_t* out) {
  const TokenGrid& g = a.pool.grid;
  const int64_t T = a.pool.patch * g.tile_h, cols = g.tile_cols, rows = g.tile_rows();
  const int64_t W = cols * T, H = rows * T;
  for (int64_t m = 0; m < a.pool.regions; ++m) {
    for (int64_t k = 0; k < cols * rows; ++k) {
      const int64_t r = k / cols, c = k % cols;
      const uint8_t* src = a.tile_masks + (m * a.mask_tiles + k) * T * T;
      uint8_t* dst = out + m * H * W + (r * T) * W + c * T;
      for (int64_t y = 0; y < T; ++y) std::memcpy(dst + y * W, src + y * T, static_cast<size_t>(T));
    }
  }
}

void mask_pool_tiles(const MaskPoolTilesArgs& a, Impl impl) {
  mask_pool_tiles_check(a);
  const TokenGrid& g = a.pool.grid;
  const int64_t T = a.pool.patch * g.tile_h;
  // The stitched masks are 1 byte per pixel (M * rows*cols * T^2): small next to the features
  // mask_pool reads, and it keeps the pooling one code path.
  std::vector<uint8_t> stitched(static_cast<size_t>(a.pool.regions * g.tile_rows() * g.tile_cols * T * T));
  stitch_tile_masks(a, stitched.data());
  MaskPoolArgs p = a.pool;
  p.masks = stitched.data();
  mask_pool(p, impl);
}

}  // namespace sr3d
