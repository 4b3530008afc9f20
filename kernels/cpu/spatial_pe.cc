#include "../spatial_pe.h"

#include <string>
#include <vector>

#include "../engine.h"
#include "../pool_points.h"
#include "../sinusoidal_encode.h"

namespace sr3d {

void spatial_pe_check(const Engine& e, const SpatialPeArgs& a) {
  if (e.spec().mlps.count("spatial_pe") == 0)
    throw_invalid_argument("a model with a spatial_pe module (a checkpoint with spatial_pe/)", "module",
                           "a model without one");
  if (a.n < 0) throw_invalid_argument("a non-negative count", "n", std::to_string(a.n));
  if (a.patch < 1) throw_invalid_argument("a positive patch size", "patch", std::to_string(a.patch));
  if (a.tile < 1) throw_invalid_argument("a positive tile size", "tile", std::to_string(a.tile));
  const int64_t gp = pool_out_size(a.tile, a.patch);
  if (a.tokens != gp * gp)
    throw_invalid_argument("tokens = ceil(tile / patch)^2 = " + std::to_string(gp * gp), "tokens",
                           std::to_string(a.tokens));
  if (a.num_freqs < 0 || a.num_freqs > 30)
    throw_invalid_argument("an integer in [0, 30]", "num_freqs", std::to_string(a.num_freqs));
  const int64_t width = sinusoidal_width(a.num_freqs, a.include_input);
  const int64_t in = e.mlp_in_dim("spatial_pe"), out = e.mlp_out_dim("spatial_pe");
  if (width != in)
    throw_invalid_argument("numFreqs / includeInput giving the spatial_pe MLP's input width " + std::to_string(in),
                           "numFreqs", std::to_string(a.num_freqs) + (a.include_input ? " with" : " without") +
                                           " the input (width " + std::to_string(width) + ")");
  if (a.hidden != out)
    throw_invalid_argument("hidden = the spatial_pe MLP's output width " + std::to_string(out), "hidden",
                           std::to_string(a.hidden));
  if (a.n > 0 && (!a.features || !a.points))
    throw_invalid_argument("non-null features and points", a.features ? "points" : "features", "nullptr");
}

int64_t add_spatial_pe_chain(Engine& e, const SpatialPeArgs& a, Impl geometry) {
  spatial_pe_check(e, a);
  if (a.n == 0) return 0;
  const int64_t rows = a.n * a.tokens;
  std::vector<float> pooled(static_cast<size_t>(rows) * 3);
  std::vector<uint8_t> valid(static_cast<size_t>(rows));
  PoolPointsArgs pa;
  pa.points = a.points;
  pa.batch = a.n;
  pa.height = a.tile;
  pa.width = a.tile;
  pa.patch = a.patch;
  pa.pooled = pooled.data();
  pa.valid = valid.data();
  pool_points(pa, geometry);

  std::vector<int64_t> at;
  for (int64_t r = 0; r < rows; ++r)
    if (valid[r]) at.push_back(r);
  const int64_t nv = static_cast<int64_t>(at.size());
  if (nv == 0) return 0;
  std::vector<float> pts(static_cast<size_t>(nv) * 3);
  for (int64_t i = 0; i < nv; ++i)
    for (int k = 0; k < 3; ++k) pts[3 * i + k] = pooled[3 * at[i] + k];

  const int64_t width = sinusoidal_width(a.num_freqs, a.include_input);
  std::vector<float> enc(static_cast<size_t>(nv * width));
  SinusoidalEncodeArgs sa;
  sa.points = pts.data();
  sa.n = nv;
  sa.num_freqs = a.num_freqs;
  sa.include_input = a.include_input;
  sa.features = enc.data();
  sinusoidal_encode(sa, geometry);

  std::vector<float> pe(static_cast<size_t>(nv * a.hidden));
  e.run_mlp("spatial_pe", enc.data(), nv, pe.data());
  for (int64_t i = 0; i < nv; ++i) {
    float* dst = a.features + at[i] * a.hidden;
    const float* src = pe.data() + i * a.hidden;
    for (int64_t c = 0; c < a.hidden; ++c) dst[c] += src[c];
  }
  return nv;
}

void Engine::add_spatial_pe(const SpatialPeArgs& a) { add_spatial_pe_chain(*this, a, Impl::kFast); }

}  // namespace sr3d
