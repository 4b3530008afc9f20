// token_grid: where each token of a frame's (height, width) token grid lives in memory, for
// the two layouts of vision features the region ops read (spec Part A §A6, Part B §6.2):
//
//   frames: features (F, h, w, C): one tile per frame, tile = the whole (h, w) grid.
//   tiles:  features (N, g, g, C) of a (cols, rows) tiling (Part B §2.3): the stitched grid is
//           (rows*g, cols*g); token (y, x) lives in tile (y/g)*cols + x/g (row-major tiles) at
//           (y%g, x%g). N = cols*rows, or cols*rows + 1 with the thumbnail last (never read).
//
// Reading tokens through this mapping is the stitch "folded into the pooling addressing" of
// performance.md §2: no stitched copy is ever made.
#pragma once
#include <cstdint>
#include <string>

#include "common.h"

namespace sr3d {

struct TokenGrid {
  int64_t frames = 0;           // F
  int64_t height = 0, width = 0;  // token grid of one frame (stitched: rows*g, cols*g)
  int64_t tile_h = 0, tile_w = 0;  // one tile's token grid (frames layout: height, width)
  int64_t tile_cols = 1;        // tiles per grid row (frames layout: 1)
  int64_t tiles_per_frame = 1;  // tiles stored per frame, >= the grid's (a thumbnail is extra)
  int64_t channels = 0;         // C

  SR3D_HOST_DEVICE int64_t tokens() const { return frames * height * width; }
  SR3D_HOST_DEVICE int64_t tile_rows() const { return tile_h > 0 ? height / tile_h : 0; }
  // Elements of the feature buffer.
  SR3D_HOST_DEVICE int64_t feature_elements() const { return frames * tiles_per_frame * tile_h * tile_w * channels; }
  // Element offset of channel 0 of token (f, y, x).
  SR3D_HOST_DEVICE int64_t offset(int64_t f, int64_t y, int64_t x) const {
    const int64_t ty = y / tile_h, tx = x / tile_w;
    const int64_t tile = f * tiles_per_frame + ty * tile_cols + tx;
    return ((tile * tile_h + (y - ty * tile_h)) * tile_w + (x - tx * tile_w)) * channels;
  }
};

// The grid of frames (F, h, w, C).
inline TokenGrid frames_grid(int64_t frames, int64_t height, int64_t width, int64_t channels) {
  TokenGrid g;
  g.frames = frames;
  g.height = g.tile_h = height;
  g.width = g.tile_w = width;
  g.tile_cols = 1;
  g.tiles_per_frame = 1;
  g.channels = channels;
  return g;
}

// The stitched grid of `tiles` (N, g, g, C) tiles laid out as (cols, rows).
inline TokenGrid tiles_grid(int64_t tiles, int64_t tile, int64_t cols, int64_t rows,
                            int64_t channels) {
  TokenGrid g;
  g.frames = 1;
  g.height = rows * tile;
  g.width = cols * tile;
  g.tile_h = g.tile_w = tile;
  g.tile_cols = cols;
  g.tiles_per_frame = tiles;
  g.channels = channels;
  return g;
}

// Validates a grid (argument errors name `name`); every op taking a TokenGrid calls it.
inline void token_grid_check(const TokenGrid& g, const std::string& name) {
  if (g.frames < 1 || g.height < 1 || g.width < 1 || g.channels < 1)
    throw_invalid_argument("a non-empty token grid (frames, height, width, channels >= 1)", name,
                           std::to_string(g.frames) + "x" + std::to_string(g.height) + "x" +
                               std::to_string(g.width) + "x" + std::to_string(g.channels));
  if (g.tile_h < 1 || g.tile_w < 1 || g.height % g.tile_h || g.width % g.tile_w ||
      g.tile_cols != g.width / g.tile_w || g.tiles_per_frame < g.tile_rows() * g.tile_cols)
    throw_invalid_argument("whole tiles covering the grid", name,
                           "tiles of " + std::to_string(g.tile_h) + "x" + std::to_string(g.tile_w) +
                               " tokens, " + std::to_string(g.tile_cols) + " per row, " +
                               std::to_string(g.tiles_per_frame) + " per frame for a " +
                               std::to_string(g.height) + "x" + std::to_string(g.width) + " grid");
}

}  // namespace sr3d
