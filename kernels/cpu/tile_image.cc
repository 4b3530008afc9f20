#include "../tile_image.h"

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#include "../resize_bicubic.h"
#include "simd.h"

namespace sr3d {

void tile_grid_check(int64_t height, int64_t width, int64_t cols, int64_t rows, int64_t tile) {
  if (cols < 1 || cols > 64) throw_invalid_argument("an integer in [1, 64]", "cols", std::to_string(cols));
  if (rows < 1 || rows > 64) throw_invalid_argument("an integer in [1, 64]", "rows", std::to_string(rows));
  if (tile < 1 || tile > 4096) throw_invalid_argument("an integer in [1, 4096]", "tileSize", std::to_string(tile));
  if (height < 1 || width < 1)
    throw_invalid_argument("a non-empty image", "image", std::to_string(height) + "x" + std::to_string(width));
}

void tile_image_check(const TileImageArgs& a) {
  tile_grid_check(a.height, a.width, a.cols, a.rows, a.tile);
  resample_axis_check(a.width, a.tile * a.cols, "width");
  resample_axis_check(a.height, a.tile * a.rows, "height");
  resample_axis_check(a.width, a.tile, "width");
  resample_axis_check(a.height, a.tile, "height");
  if (!a.src || !a.tiles) throw_internal("tile_image: null buffer");
}

void tile_image(const TileImageArgs& a, Impl impl) {
  tile_image_check(a);
  return run_impl(
      impl, [&] { return cpu::tile_image_reference(a); }, [&] { return cpu::tile_image_fast(a); },
      SR3D_CUDA_PATH(cuda::tile_image_host(a)));
}

namespace cpu {

namespace {

// One channel of an RGB row, normalized: the float32 formula vectorizes (a 256-entry table
// lookup does not), and it is the same function, so the values are the same.
SR3D_TARGET_CLONES
void normalize_channel(const uint8_t* rgb, int64_t n, float* out) {
  for (int64_t x = 0; x < n; ++x) out[x] = siglip_normalize(rgb[3 * x]);
}

}  // namespace

// The reference pipeline spelled out: Pillow's resize to the grid, crop, normalize; the
// thumbnail from its own resize of the original.
void tile_image_reference(const TileImageArgs& a) {
  const int64_t T = a.tile, GW = T * a.cols, GH = T * a.rows;
  std::vector<uint8_t> grid(GH * GW * 3);
  ResizeBicubicArgs r;
  r.src = a.src;
  r.height = a.height;
  r.width = a.width;
  r.dst = grid.data();
  r.out_height = GH;
  r.out_width = GW;
  resize_bicubic_reference(r);
  auto store = [&](const uint8_t* img, int64_t img_w, int64_t x0, int64_t y0, int64_t tile_index) {
    for (int c = 0; c < 3; ++c)
      for (int64_t y = 0; y < T; ++y)
        for (int64_t x = 0; x < T; ++x)
          a.tiles[((tile_index * 3 + c) * T + y) * T + x] =
              siglip_normalize(img[((y0 + y) * img_w + x0 + x) * 3 + c]);
  };
  for (int64_t k = 0; k < a.cols * a.rows; ++k) store(grid.data(), GW, (k % a.cols) * T, (k / a.cols) * T, k);
  if (a.cols * a.rows > 1) {
    std::vector<uint8_t> thumb(T * T * 3);
    r.dst = thumb.data();
    r.out_height = r.out_width = T;
    resize_bicubic_reference(r);
    store(thumb.data(), T, 0, 0, a.cols * a.rows);
  }
}

// Both resizes run as bands of output rows in one parallel loop; each finished uint8 row goes
// straight into the three channel planes of the tiles it crosses.
void tile_image_fast(const TileImageArgs& a) {
  const int64_t T = a.tile, plane = T * T, grid_tiles = a.cols * a.rows;
  const bool thumbnail = grid_tiles > 1;
  const ResamplePlan grid = resample_plan(a.height, a.width, T * a.rows, T * a.cols);
  ResamplePlan thumb;
  if (thumbnail) thumb = resample_plan(a.height, a.width, T, T);
  const int64_t band = kResampleBandRows;
  const int64_t grid_bands = (T * a.rows + band - 1) / band;
  const int64_t thumb_bands = thumbnail ? (T + band - 1) / band : 0;
  // One row of `cols` tiles side by side -> rows of the tile planes. The planes are written
  // once and not read back here: streaming stores skip the read-for-ownership of each line.
  auto emit = [&](int64_t first_tile, int64_t cols, int64_t y, const uint8_t* row, float* staging) {
    const int64_t tile_row = y / T, yy = y % T;
    for (int64_t tc = 0; tc < cols; ++tc) {
      float* d = a.tiles + ((first_tile + tile_row * cols + tc) * 3) * plane + yy * T;
      const uint8_t* p = row + tc * T * 3;
      for (int c = 0; c < 3; ++c) {
        normalize_channel(p + c, T, staging);
        stream_copy(staging, T, d + c * plane);
      }
    }
  };
  const int64_t bands = grid_bands + thumb_bands;
  parallel_for(bands, static_cast<int>(std::min<int64_t>(bands, INT_MAX)), [&](int, int64_t b0, int64_t b1) {
    std::vector<float> staging(T);
    for (int64_t b = b0; b < b1; ++b) {
      if (b < grid_bands) {
        resample_rows(a.src, a.height, a.width, grid, b * band, std::min((b + 1) * band, T * a.rows),
                      [&](int64_t y, const uint8_t* row) { emit(0, a.cols, y, row, staging.data()); });
      } else {
        const int64_t tb = b - grid_bands;
        resample_rows(a.src, a.height, a.width, thumb, tb * band, std::min((tb + 1) * band, T),
                      [&](int64_t y, const uint8_t* row) { emit(grid_tiles, 1, y, row, staging.data()); });
      }
    }
    stream_fence();  // the streaming stores are visible before the pool reports this chunk done
  });
}

}  // namespace cpu
}  // namespace sr3d
