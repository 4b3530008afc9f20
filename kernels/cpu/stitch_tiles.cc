#include "../stitch_tiles.h"

#include <cstring>

#include "simd.h"

namespace sr3d {

void stitch_tiles_check(const StitchTilesArgs& a) {
  token_grid_check(a.grid, "features");
  if (!a.features || !a.out) throw_internal("stitch_tiles: null buffer");
}

void stitch_tiles(const StitchTilesArgs& a, Impl impl) {
  stitch_tiles_check(a);
  return run_impl(
      impl, [&] { return cpu::stitch_tiles_reference(a); },
      [&] { return cpu::stitch_tiles_fast(a); },
      SR3D_CUDA_PATH(cuda::stitch_tiles_host(a)));
}

namespace cpu {

void stitch_tiles_reference(const StitchTilesArgs& a) {
  const TokenGrid& g = a.grid;
  for (int64_t f = 0; f < g.frames; ++f)
    for (int64_t y = 0; y < g.height; ++y)
      for (int64_t x = 0; x < g.width; ++x)
        for (int64_t c = 0; c < g.channels; ++c)
          a.out[((f * g.height + y) * g.width + x) * g.channels + c] = a.features[g.offset(f, y, x) + c];
}

// One task per output row: a row is tile_cols contiguous runs of tile_w*C floats, copied
// with streaming stores (the output is not read back here, so skip the read-for-ownership:
// 8 B/float moved instead of 12).
void stitch_tiles_fast(const StitchTilesArgs& a) {
  const TokenGrid g = a.grid;
  const int64_t run = g.tile_w * g.channels;
  parallel_for(g.frames * g.height, 0, [&](int, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t f = r / g.height, y = r % g.height;
      float* dst = a.out + r * g.width * g.channels;
      for (int64_t tx = 0; tx < g.tile_cols; ++tx)
        stream_copy(a.features + g.offset(f, y, tx * g.tile_w), run, dst + tx * run);
    }
    stream_fence();
  });
}

}  // namespace cpu
}  // namespace sr3d
