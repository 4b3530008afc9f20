// tile_nearest on CUDA: the index tables (Pillow's float64 accumulation) come from the host;
// one thread per output pixel copies its bytes (the gather reads each source line about once).
#ifdef SR3D_WITH_CUDA
#include "../tile_nearest.h"

#include <algorithm>
#include <vector>

#include "cuda_util.h"

namespace sr3d {
namespace cuda {

namespace {

// For every tile: its column table (tile entries) and row table (tile entries), -1 = zero fill.
__global__ void tile_nearest_kernel(const uint8_t* __restrict__ src, int64_t width, int64_t pixel_bytes,
                                    int64_t tile, int64_t n_tiles, const int32_t* __restrict__ xs,
                                    const int32_t* __restrict__ ys, uint8_t* __restrict__ dst) {
  const int64_t per_tile = tile * tile, total = n_tiles * per_tile;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = i / per_tile, rem = i - k * per_tile;
    const int64_t y = rem / tile, x = rem - y * tile;
    const int32_t sx = xs[k * tile + x], sy = ys[k * tile + y];
    uint8_t* o = dst + i * pixel_bytes;
    if (sx < 0 || sy < 0) {
      for (int64_t b = 0; b < pixel_bytes; ++b) o[b] = 0;
    } else {
      const uint8_t* p = src + (sy * width + sx) * pixel_bytes;
      for (int64_t b = 0; b < pixel_bytes; ++b) o[b] = p[b];
    }
  }
}

}  // namespace

void tile_nearest(const TileNearestArgs& a, void* stream) {
  tile_nearest_check(a);
  cudaStream_t s = as_stream(stream);
  const int64_t T = a.tile, grid_tiles = a.cols * a.rows, n_tiles = tile_count(a.cols, a.rows);
  const std::vector<int32_t> gx = nearest_index(a.width, T * a.cols), gy = nearest_index(a.height, T * a.rows);
  std::vector<int32_t> xs(n_tiles * T), ys(n_tiles * T);
  for (int64_t k = 0; k < grid_tiles; ++k)
    for (int64_t i = 0; i < T; ++i) {
      xs[k * T + i] = gx[(k % a.cols) * T + i];
      ys[k * T + i] = gy[(k / a.cols) * T + i];
    }
  if (n_tiles > grid_tiles) {
    const std::vector<int32_t> tx = nearest_index(a.width, T), ty = nearest_index(a.height, T);
    std::copy(tx.begin(), tx.end(), xs.begin() + grid_tiles * T);
    std::copy(ty.begin(), ty.end(), ys.begin() + grid_tiles * T);
  }
  DeviceBuffer<int32_t> dxs(xs.size(), s), dys(ys.size(), s);
  SR3D_CUDA_CHECK(cudaMemcpyAsync(dxs.get(), xs.data(), dxs.bytes(), cudaMemcpyHostToDevice, s));
  SR3D_CUDA_CHECK(cudaMemcpyAsync(dys.get(), ys.data(), dys.bytes(), cudaMemcpyHostToDevice, s));
  SR3D_LAUNCH(tile_nearest_kernel, grid_for(n_tiles * T * T), kBlock, 0, s, a.src, a.width,
              a.pixel_bytes, T, n_tiles, dxs.get(), dys.get(), a.dst);
}

void tile_nearest_host(const TileNearestArgs& a) {
  tile_nearest_check(a);
  RoundTrip rt;
  const int64_t out = tile_count(a.cols, a.rows) * a.tile * a.tile * a.pixel_bytes;
  DeviceBuffer<uint8_t> src = rt.upload(a.src, a.height * a.width * a.pixel_bytes), dst = rt.output(a.dst, out);
  TileNearestArgs d = a;
  d.src = src.get();
  d.dst = dst.get();
  tile_nearest(d, rt.stream());
  rt.download(a.dst, dst);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
