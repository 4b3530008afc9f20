// mask_pool_tiles: mask_pool over per-tile masks (spec Part A §A6, the tiled form): the
// region masks arrive tiled as the image was (tile_nearest: (M, K, T, T), K = cols*rows grid
// tiles, or cols*rows + 1 with the thumbnail last, which is not used), T = patch * g pixels
// per tile. The grid tiles are placed at their (row, col) of the stitched (rows*T, cols*T)
// mask and pooled as mask_pool does over it, so the caller never stitches.
//
//   a:          mask_pool's arguments with a.grid a tiles grid (token_grid.h tiles_grid) and
//               a.masks unused (nullptr).
//   tile_masks: (M, mask_tiles, T, T) uint8.
// Bit-identical to stitching the masks on the host and calling mask_pool on every path (the
// stitch is a copy; the pooling is mask_pool itself). A region empty on every grid tile is
// mask_pool's argument error naming masks[m].
#pragma once
#include <cstdint>

#include "common.h"
#include "mask_pool.h"

namespace sr3d {

struct MaskPoolTilesArgs {
  MaskPoolArgs pool;
  const uint8_t* tile_masks = nullptr;
  int64_t mask_tiles = 0;  // K: cols*rows, or cols*rows + 1 (thumbnail, ignored)
};

void mask_pool_tiles_check(const MaskPoolTilesArgs& a);
// out: (M, rows*T, cols*T) uint8, the stitched masks mask_pool reads.
void stitch_tile_masks(const MaskPoolTilesArgs& a, uint8_t* out);
void mask_pool_tiles(const MaskPoolTilesArgs& a, Impl impl);

}  // namespace sr3d
