// spatial_pe: the 3D positional encoding added to the vision tokens (spec Part A §A4-§A5) as
// one engine call: pool the tiles' canonical points to patches (pool_points), sinusoid-encode
// the patches that had a valid point (sinusoidal_encode), run the engine's `spatial_pe` MLP
// on those rows only, and add the result into the vision features.
//
//   features: (n, tokens, hidden) float32, encode_tiles' output, updated in place.
//   points:   (n, tile, tile, 3) float32 canonical point maps of the same n tiles (what
//             tile_nearest gives for a point map); a pixel is valid when all three components
//             are finite. tokens must be ceil(tile / patch)^2.
//   num_freqs, include_input: the spatial_pe config (sinusoidal_encode's arguments); the width
//             3*((include_input ? 1 : 0) + 2*num_freqs) must be the MLP's input width and the
//             MLP's output width must be `hidden`.
// A token whose patch has no valid point is left as it is (the §A4 rule: no PE there).
//
//   tiles_per_image: the MLP runs once per image of this many tiles (0 = all n tiles at once),
//             on that image's valid rows, as the unfused per-image chain does.
//
// Numerics: the same kernels, in the same order, as the unfused chain (poolPointsToPatches ->
// gather the image's valid rows -> sinusoidalEncode -> runMlp('spatial_pe') -> float32 add),
// so the bits are the chain's. Pooling and encoding are per row. The CPU MLP is row-independent
// too (one call for all images gives the same bits), but the CUDA linear switches from GEMV to
// GEMM above 4 rows, so there an image's rows keep their own MLP call.
#pragma once
#include <cstdint>
#include <vector>

#include "common.h"

namespace sr3d {

class Engine;

struct SpatialPeArgs {
  float* features = nullptr;
  int64_t n = 0, tokens = 0, hidden = 0;
  const float* points = nullptr;
  int64_t tile = 0, patch = 14;
  int num_freqs = 16;
  bool include_input = true;
  int64_t tiles_per_image = 0;
};

// Shapes and the engine's spatial_pe module (throws kInvalidArgument naming the argument).
void spatial_pe_check(const Engine& e, const SpatialPeArgs& a);

// The rows (token indices into features' first two dims) with a valid patch, per image:
// rows[starts[i] .. starts[i+1]) belong to image i.
struct ValidRows {
  std::vector<int32_t> rows;
  std::vector<int64_t> starts;
};
ValidRows spatial_pe_valid_rows(const SpatialPeArgs& a, const uint8_t* valid);
// features[rows[i]] += pe[i] (float32 adds, channel order) for i < n.
void spatial_pe_add(const SpatialPeArgs& a, const int32_t* rows, int64_t n, const float* pe);
inline int64_t spatial_pe_images(const SpatialPeArgs& a) {
  return a.tiles_per_image > 0 ? a.n / a.tiles_per_image : (a.n > 0 ? 1 : 0);
}

// The chain on host buffers: pool and encode with `geometry` (kFast on the CPU engine, kCuda
// on the CUDA engine: the kernels the unfused chain picks by default there), then
// e.run_mlp("spatial_pe", ...) and the add. Rows with a valid patch: returned.
int64_t add_spatial_pe_chain(Engine& e, const SpatialPeArgs& a, Impl geometry);

#ifdef SR3D_WITH_CUDA
namespace cuda {
// out[i] = pooled[rows[i]] (3 floats each) for i < n; device pointers.
void gather_rows3(const float* pooled, const int32_t* rows, int64_t n, float* out, void* stream);
}  // namespace cuda
#endif

}  // namespace sr3d
