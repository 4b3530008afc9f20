// stitch_tiles on CUDA: one thread per output float, grid-stride. Consecutive threads write
// consecutive outputs and read runs of tile_w*C contiguous floats, so both sides coalesce:
// 8 B per float moved, one launch for all frames.
#ifdef SR3D_WITH_CUDA
#include "../stitch_tiles.h"

#include "cuda_util.h"

namespace sr3d {
namespace cuda {

namespace {

__global__ void stitch_tiles_kernel(const float* __restrict__ features, TokenGrid g,
                                    float* __restrict__ out) {
  const int64_t total = g.tokens() * g.channels;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / g.channels, c = i - t * g.channels;
    const int64_t f = t / (g.height * g.width), yx = t - f * g.height * g.width;
    out[i] = features[g.offset(f, yx / g.width, yx % g.width) + c];
  }
}

}  // namespace

void stitch_tiles(const StitchTilesArgs& a, void* stream) {
  stitch_tiles_check(a);
  const int64_t total = a.grid.tokens() * a.grid.channels;
  SR3D_LAUNCH(stitch_tiles_kernel, grid_for(total), kBlock, 0, as_stream(stream), a.features, a.grid,
              a.out);
}

void stitch_tiles_host(const StitchTilesArgs& a) {
  stitch_tiles_check(a);
  RoundTrip rt;
  DeviceBuffer<float> features = rt.upload(a.features, a.grid.feature_elements()),
                      out = rt.output(a.out, a.grid.tokens() * a.grid.channels);
  StitchTilesArgs d = a;
  d.features = features.get();
  d.out = out.get();
  stitch_tiles(d, rt.stream());
  rt.download(a.out, out);
}

}  // namespace cuda
}  // namespace sr3d
#endif  // SR3D_WITH_CUDA
