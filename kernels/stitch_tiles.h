// stitch_tiles: the materialized stitched feature grid (spec Part A §A6, Part B §6.2 step 2).
//
//   features: a TokenGrid's buffer (token_grid.h), float32 (tiles: (N,g,g,C) of a (cols,rows)
//             plan, the thumbnail tile, if any, not read).
//   -> out:   (F, height, width, C) float32, token (f, y, x) of the grid at row-major position.
// A pure copy: every path is bit-identical. mask_pool reads the tiles in place; this op is for
// callers that want the grid itself (it moves 2 x the features' bytes; pooling moves 0 extra).
#pragma once
#include "common.h"
#include "token_grid.h"

namespace sr3d {

struct StitchTilesArgs {
  const float* features = nullptr;
  TokenGrid grid;
  float* out = nullptr;
};

void stitch_tiles_check(const StitchTilesArgs& a);
void stitch_tiles(const StitchTilesArgs& a, Impl impl);

namespace cpu {
void stitch_tiles_reference(const StitchTilesArgs& a);
void stitch_tiles_fast(const StitchTilesArgs& a);
}  // namespace cpu

#ifdef SR3D_WITH_CUDA
namespace cuda {
void stitch_tiles(const StitchTilesArgs& device_args, void* stream);
void stitch_tiles_host(const StitchTilesArgs& host_args);
}  // namespace cuda
#endif

}  // namespace sr3d
