#include "../spatial_pe.h"

#include <cstdint>
#include <string>
#include <vector>

#include "../engine.h"
#include "../pool_points.h"
#include "../sinusoidal_encode.h"
#include "../weight_names.h"

namespace sr3d {

void spatial_pe_check(const Engine& e, const SpatialPeArgs& a) {
  if (e.spec().mlps.count(weight_names::mlp_module::kSpatialPe) == 0)
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
  const int64_t in = e.mlp_in_dim(weight_names::mlp_module::kSpatialPe),
                out = e.mlp_out_dim(weight_names::mlp_module::kSpatialPe);
  if (width != in)
    throw_invalid_argument("numFreqs / includeInput giving the spatial_pe MLP's input width " + std::to_string(in),
                           "numFreqs", std::to_string(a.num_freqs) + (a.include_input ? " with" : " without") +
                                           " the input (width " + std::to_string(width) + ")");
  if (a.hidden != out)
    throw_invalid_argument("hidden = the spatial_pe MLP's output width " + std::to_string(out), "hidden",
                           std::to_string(a.hidden));
  if (a.tiles_per_image < 0 || (a.tiles_per_image > 0 && a.n % a.tiles_per_image != 0))
    throw_invalid_argument("0 (one image) or a divisor of n = " + std::to_string(a.n), "tiles_per_image",
                           std::to_string(a.tiles_per_image));
  if (a.n * a.tokens > INT32_MAX)
    throw_invalid_argument("at most 2^31 - 1 tokens", "n", std::to_string(a.n));
  if (a.n > 0 && (!a.features || !a.points))
    throw_invalid_argument("non-null features and points", a.features ? "points" : "features", "nullptr");
}

ValidRows spatial_pe_valid_rows(const SpatialPeArgs& a, const uint8_t* valid) {
  ValidRows v;
  const int64_t images = spatial_pe_images(a), per = images > 0 ? a.n / images * a.tokens : 0;
  v.starts.push_back(0);
  for (int64_t i = 0; i < images; ++i) {
    for (int64_t r = i * per; r < (i + 1) * per; ++r)
      if (valid[r]) v.rows.push_back(static_cast<int32_t>(r));
    v.starts.push_back(static_cast<int64_t>(v.rows.size()));
  }
  return v;
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

  const ValidRows v = spatial_pe_valid_rows(a, valid.data());
  const int64_t width = sinusoidal_width(a.num_freqs, a.include_input);
  std::vector<float> pts, enc, pe;
  for (size_t i = 0; i + 1 < v.starts.size(); ++i) {
    const int32_t* at = v.rows.data() + v.starts[i];
    const int64_t nv = v.starts[i + 1] - v.starts[i];
    if (nv == 0) continue;
    pts.resize(static_cast<size_t>(nv) * 3);
    for (int64_t j = 0; j < nv; ++j)
      for (int k = 0; k < 3; ++k) pts[3 * j + k] = pooled[3 * static_cast<int64_t>(at[j]) + k];
    enc.resize(static_cast<size_t>(nv * width));
    SinusoidalEncodeArgs sa;
    sa.points = pts.data();
    sa.n = nv;
    sa.num_freqs = a.num_freqs;
    sa.include_input = a.include_input;
    sa.features = enc.data();
    sinusoidal_encode(sa, geometry);
    pe.resize(static_cast<size_t>(nv * a.hidden));
    e.run_mlp(weight_names::mlp_module::kSpatialPe, enc.data(), nv, pe.data());
    spatial_pe_add(a, at, nv, pe.data());
  }
  return static_cast<int64_t>(v.rows.size());
}

void spatial_pe_add(const SpatialPeArgs& a, const int32_t* rows, int64_t n, const float* pe) {
  for (int64_t i = 0; i < n; ++i) {
    float* dst = a.features + static_cast<int64_t>(rows[i]) * a.hidden;
    const float* src = pe + i * a.hidden;
    for (int64_t c = 0; c < a.hidden; ++c) dst[c] += src[c];
  }
}

void Engine::add_spatial_pe(const SpatialPeArgs& a) { add_spatial_pe_chain(*this, a, Impl::kFast); }

}  // namespace sr3d
