#include "../tile_nearest.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

namespace sr3d {

std::vector<int32_t> nearest_index(int64_t in_size, int64_t out_size) {
  // Pillow's _resize: a[0] = (double)(box[2] - box[0]) / xsize with a float box, then
  // ImagingScaleAffine: xo = a[2] + a[0] * 0.5, COORD(xo), xo += a[0].
  const double step = static_cast<double>(static_cast<float>(in_size)) / static_cast<double>(out_size);
  std::vector<int32_t> idx(out_size);
  double s = 0.0 + step * 0.5;
  for (int64_t x = 0; x < out_size; ++x) {
    const int coord = s < 0.0 ? -1 : static_cast<int>(s);
    idx[x] = coord >= 0 && coord < in_size ? coord : -1;
    s += step;
  }
  return idx;
}

void tile_nearest_check(const TileNearestArgs& a) {
  tile_grid_check(a.height, a.width, a.cols, a.rows, a.tile);
  if (a.pixel_bytes < 1 || a.pixel_bytes > 64)
    throw_invalid_argument("1 to 64 bytes per pixel", "pixel_bytes", std::to_string(a.pixel_bytes));
  const int64_t limit = int64_t(1) << 24;
  if (a.width > limit || a.height > limit)
    throw_invalid_argument("sizes up to 2^24", "image", std::to_string(a.height) + "x" + std::to_string(a.width));
  if (!a.src || !a.dst) throw_internal("tile_nearest: null buffer");
}

void tile_nearest(const TileNearestArgs& a, Impl impl) {
  tile_nearest_check(a);
  return run_impl(
      impl, [&] { return cpu::tile_nearest_reference(a); },
      [&] { return cpu::tile_nearest_fast(a); },
      SR3D_CUDA_PATH(cuda::tile_nearest_host(a)));
}

namespace cpu {

namespace {

// Pillow's NEAREST resize of the whole map (zero where the coordinate falls outside).
std::vector<uint8_t> nearest_resize(const TileNearestArgs& a, int64_t out_h, int64_t out_w) {
  const std::vector<int32_t> xs = nearest_index(a.width, out_w), ys = nearest_index(a.height, out_h);
  const int64_t pb = a.pixel_bytes;
  std::vector<uint8_t> out(out_h * out_w * pb, 0);
  for (int64_t y = 0; y < out_h; ++y)
    for (int64_t x = 0; x < out_w; ++x)
      if (ys[y] >= 0 && xs[x] >= 0)
        std::memcpy(&out[(y * out_w + x) * pb], a.src + (ys[y] * a.width + xs[x]) * pb, pb);
  return out;
}

}  // namespace

void tile_nearest_reference(const TileNearestArgs& a) {
  const int64_t T = a.tile, pb = a.pixel_bytes, GW = T * a.cols;
  const std::vector<uint8_t> grid = nearest_resize(a, T * a.rows, GW);
  for (int64_t k = 0; k < a.cols * a.rows; ++k) {
    const int64_t x0 = (k % a.cols) * T, y0 = (k / a.cols) * T;
    for (int64_t y = 0; y < T; ++y)
      std::memcpy(a.dst + ((k * T + y) * T) * pb, &grid[((y0 + y) * GW + x0) * pb], T * pb);
  }
  if (a.cols * a.rows > 1) {
    const std::vector<uint8_t> thumb = nearest_resize(a, T, T);
    std::memcpy(a.dst + a.cols * a.rows * T * T * pb, thumb.data(), thumb.size());
  }
}

namespace {

// One output row of one tile: a gather of whole pixels through the column table.
template <int64_t kBytes>
void gather_row(const uint8_t* src_row, const int32_t* xs, int64_t n, int64_t pb, uint8_t* out) {
  const int64_t bytes = kBytes > 0 ? kBytes : pb;
  for (int64_t x = 0; x < n; ++x) {
    if (xs[x] >= 0) std::memcpy(out + x * bytes, src_row + xs[x] * bytes, bytes);
    else std::memset(out + x * bytes, 0, bytes);
  }
}

}  // namespace

void tile_nearest_fast(const TileNearestArgs& a) {
  const int64_t T = a.tile, pb = a.pixel_bytes, grid_tiles = a.cols * a.rows;
  const int64_t n_tiles = tile_count(a.cols, a.rows);
  const std::vector<int32_t> gx = nearest_index(a.width, T * a.cols), gy = nearest_index(a.height, T * a.rows);
  std::vector<int32_t> tx, ty;
  if (n_tiles > grid_tiles) {
    tx = nearest_index(a.width, T);
    ty = nearest_index(a.height, T);
  }
  // Tasks: (tile, row) pairs, in blocks of rows.
  const int64_t tasks = n_tiles * T;
  parallel_for(tasks, 0, [&](int, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t k = t / T, y = t % T;
      const bool thumb = k >= grid_tiles;
      const int32_t* xs = thumb ? tx.data() : gx.data() + (k % a.cols) * T;
      const int32_t sy = thumb ? ty[y] : gy[(k / a.cols) * T + y];
      uint8_t* out = a.dst + ((k * T + y) * T) * pb;
      if (sy < 0) {
        std::memset(out, 0, T * pb);
        continue;
      }
      const uint8_t* src_row = a.src + sy * a.width * pb;
      switch (pb) {
        case 1: gather_row<1>(src_row, xs, T, pb, out); break;
        case 4: gather_row<4>(src_row, xs, T, pb, out); break;
        case 12: gather_row<12>(src_row, xs, T, pb, out); break;
        default: gather_row<0>(src_row, xs, T, pb, out); break;
      }
    }
  });
}

}  // namespace cpu
}  // namespace sr3d
