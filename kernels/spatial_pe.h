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
// Numerics: the same kernels, in the same order, as the unfused chain (poolPointsToPatches ->
// gather valid rows -> sinusoidalEncode -> runMlp('spatial_pe') -> float32 add): the MLP's
// rows are independent on every path, so encoding only the valid rows of all n tiles at once
// gives the bits of the per-image chain.
#pragma once
#include <cstdint>

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
};

// Shapes and the engine's spatial_pe module (throws kInvalidArgument naming the argument).
void spatial_pe_check(const Engine& e, const SpatialPeArgs& a);

// The chain on host buffers: pool and encode with `geometry` (kFast on the CPU engine, kCuda
// on the CUDA engine: the kernels the unfused chain picks by default there), then
// e.run_mlp("spatial_pe", ...) and the add. Rows with a valid patch: returned.
int64_t add_spatial_pe_chain(Engine& e, const SpatialPeArgs& a, Impl geometry);

}  // namespace sr3d
