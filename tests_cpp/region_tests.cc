// Standalone tests and benchmarks of the region kernels (stitch_tiles, mask_pool,
// box3d_masks); no Node. Same command line as every tests_cpp executable (harness.h):
//
//   sr3d_region_tests [--filter SUBSTR]      Impl::kFast (and Impl::kCuda with a usable device)
//                                            against Impl::kReference over awkward sizes
//   sr3d_region_tests --bench [--json] [--json-out FILE] [--device cpu|cuda|all]
//
// Tolerances: stitch_tiles and box3d_masks are exact everywhere (a copy; predicates evaluated
// with the same roundings). mask_pool: fast CPU is bit-exact (it splits the outputs, not the
// token order); CUDA sums 512-token chunks, so it may differ by 1 float32 ulp: atol 1.2e-7
// with features in [-1, 1] (|out| <= 1). The reference itself is checked against float64
// JavaScript and torch 1.13 outputs in test/region.test.ts.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "box3d_masks.h"
#include "harness.h"
#include "mask_pool.h"
#include "mask_pool_tiles.h"
#include "stitch_tiles.h"

using namespace sr3d;
using namespace sr3d_test;

namespace {

std::string grid_name(const TokenGrid& g) {
  char buf[160];
  if (g.tile_cols == 1 && g.tiles_per_frame == 1 && g.tile_h == g.height)
    std::snprintf(buf, sizeof buf, "frames F=%" PRId64 ",h=%" PRId64 ",w=%" PRId64 ",C=%" PRId64, g.frames,
                  g.height, g.width, g.channels);
  else
    std::snprintf(buf, sizeof buf, "tiles N=%" PRId64 ",g=%" PRId64 ",cols=%" PRId64 ",rows=%" PRId64 ",C=%" PRId64,
                  g.tiles_per_frame, g.tile_h, g.tile_cols, g.tile_rows(), g.channels);
  return buf;
}

std::vector<float> random_features(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> f(static_cast<size_t>(n));
  for (float& v : f) v = static_cast<float>(rng.uniform(-1, 1));
  return f;
}

// ---- stitch_tiles ------------------------------------------------------------------------

void test_stitch(const TokenGrid& g) {
  const std::string name = "stitch_tiles/" + grid_name(g);
  if (!begin_case(name)) return;
  std::vector<float> feats = random_features(g.feature_elements(), 3 + g.feature_elements());
  // A thumbnail (or any tile past the grid) must never be read: NaN would show.
  const int64_t grid_floats = g.tile_rows() * g.tile_cols * g.tile_h * g.tile_w * g.channels;
  for (int64_t f = 0; f < g.frames; ++f)
    std::fill(feats.begin() + f * g.tiles_per_frame * g.tile_h * g.tile_w * g.channels + grid_floats,
              feats.begin() + (f + 1) * g.tiles_per_frame * g.tile_h * g.tile_w * g.channels, kNaN);
  auto run = [&](Impl impl, std::vector<float>& out) {
    return run_op([&] {
      StitchTilesArgs a;
      a.features = feats.data();
      a.grid = g;
      a.out = out.data();
      stitch_tiles(a, impl);
    });
  };
  const std::vector<int64_t> shape = {g.frames, g.height, g.width, g.channels};
  std::vector<float> want(static_cast<size_t>(g.tokens() * g.channels));
  Outcome wo = run(Impl::kReference, want);
  record(!wo.threw && std::none_of(want.begin(), want.end(), [](float v) { return std::isnan(v); }),
         name + " [reference reads only grid tiles]", wo.msg, nullptr);
  for (Impl impl : impls_under_test()) {
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    std::vector<float> got(want.size(), 12345.0f);
    Outcome go = run(impl, got);
    if (same_outcome(ctx, go, wo)) continue;
    check_floats(ctx, got, want, shape, 0);
  }
}

// ---- mask_pool ---------------------------------------------------------------------------

enum class MaskContent { kBlobs, kNoCentre, kValue255 };
const char* content_name(MaskContent c) {
  switch (c) {
    case MaskContent::kBlobs: return "blobs";
    case MaskContent::kNoCentre: return "no-centre";
    case MaskContent::kValue255: return "value-255";
  }
  return "?";
}

// (M, F, P*h, P*w): rectangles and discs per region, some frames empty; kNoCentre keeps every
// pixel off SpatialRGPT's sample rows/columns (P = 14: 6 and 7 in each block), so that mode
// pools to zero while area does not.
std::vector<uint8_t> make_masks(int64_t M, const TokenGrid& g, int64_t P, MaskContent c, uint64_t seed) {
  Rng rng(seed);
  const int64_t H = g.height * P, W = g.width * P, n = H * W;
  std::vector<uint8_t> m(static_cast<size_t>(M * g.frames * n), 0);
  const uint8_t one = c == MaskContent::kValue255 ? 255 : 1;
  for (int64_t r = 0; r < M; ++r)
    for (int64_t f = 0; f < g.frames; ++f) {
      uint8_t* frame = m.data() + (r * g.frames + f) * n;
      if (g.frames > 1 && rng.chance(0.3)) continue;
      for (int s = 0, shapes = static_cast<int>(rng.integer(1, 3)); s < shapes; ++s) {
        const int64_t y0 = rng.integer(0, H - 1), x0 = rng.integer(0, W - 1);
        const int64_t y1 = std::min(H, y0 + 1 + rng.integer(0, H * 6 / 10)), x1 = std::min(W, x0 + 1 + rng.integer(0, W * 6 / 10));
        const bool disc = rng.chance(0.5);
        for (int64_t y = y0; y < y1; ++y)
          for (int64_t x = x0; x < x1; ++x) {
            const double dy = (y - 0.5 * (y0 + y1)) / (0.5 * (y1 - y0)), dx = (x - 0.5 * (x0 + x1)) / (0.5 * (x1 - x0));
            if (!disc || dy * dy + dx * dx <= 1) frame[y * W + x] = one;
          }
      }
      for (int k = 0; k < 5; ++k) frame[rng.integer(0, n - 1)] = one;
    }
  for (int64_t r = 0; r < M; ++r) {  // every region non-empty somewhere
    uint8_t* region = m.data() + r * g.frames * n;
    if (std::none_of(region, region + g.frames * n, [](uint8_t v) { return v != 0; }))
      region[rng.integer(0, g.frames * n - 1)] = one;
  }
  if (c == MaskContent::kNoCentre)
    for (int64_t i = 0; i < static_cast<int64_t>(m.size()); ++i) {
      const int64_t x = i % W, y = (i / W) % H;
      if (x % P == 6 || x % P == 7 || y % P == 6 || y % P == 7) m[i] = 0;
      else if (i % 97 == 0) m[i] = 1;  // keep every region non-empty
    }
  return m;
}

void test_mask_pool(const TokenGrid& g, int64_t M, int64_t P, MaskPoolMode mode, MaskContent content) {
  const std::string name = std::string("mask_pool/") + grid_name(g) + ",M=" + std::to_string(M) +
                           ",patch=" + std::to_string(P) + ",mode=" +
                           (mode == MaskPoolMode::kArea ? "area" : "spatialrgpt") + ",masks=" + content_name(content);
  if (!begin_case(name)) return;
  const std::vector<float> feats = random_features(g.feature_elements(), 7 + g.feature_elements() + M);
  const std::vector<uint8_t> masks = make_masks(M, g, P, content, 11 + M + P);
  auto run = [&](Impl impl, std::vector<float>& out) {
    return run_op([&] {
      MaskPoolArgs a;
      a.features = feats.data();
      a.grid = g;
      a.masks = masks.data();
      a.regions = M;
      a.patch = P;
      a.mode = mode;
      a.out = out.data();
      mask_pool(a, impl);
    });
  };
  std::vector<float> want(static_cast<size_t>(M * g.channels));
  Outcome wo = run(Impl::kReference, want);
  if (content == MaskContent::kNoCentre) {  // the reference's answer: zero (spatialrgpt) vs a real mean (area)
    const bool all_zero = std::all_of(want.begin(), want.end(), [](float v) { return v == 0; });
    const bool expect_zero = mode == MaskPoolMode::kSpatialRgpt && P == 14;
    record(!wo.threw && all_zero == expect_zero, name + " [reference: zero vector iff spatialrgpt]",
           wo.threw ? wo.msg : std::string(all_zero ? "all zero" : "not all zero"), nullptr);
  }
  for (Impl impl : impls_under_test()) {
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    std::vector<float> got(want.size(), 12345.0f);
    Outcome go = run(impl, got);
    if (same_outcome(ctx, go, wo)) continue;
    check_floats(ctx, got, want, {M, g.channels}, impl == Impl::kCuda ? 1.2e-7 : 0);
  }
}

// The tiles layout and the frames layout of the stitched grid pool identically.
void test_mask_pool_layouts(int64_t cols, int64_t rows, int64_t tile, int64_t C, MaskPoolMode mode) {
  const std::string name = "mask_pool_layouts/cols=" + std::to_string(cols) + ",rows=" + std::to_string(rows) +
                           ",g=" + std::to_string(tile) + ",C=" + std::to_string(C) +
                           (mode == MaskPoolMode::kArea ? ",mode=area" : ",mode=spatialrgpt");
  if (!begin_case(name)) return;
  const TokenGrid tiles = tiles_grid(cols * rows + 1, tile, cols, rows, C);
  const TokenGrid frames = frames_grid(1, rows * tile, cols * tile, C);
  const std::vector<float> feats = random_features(tiles.feature_elements(), 5);
  std::vector<float> grid(static_cast<size_t>(frames.feature_elements()));
  StitchTilesArgs s;
  s.features = feats.data();
  s.grid = tiles;
  s.out = grid.data();
  stitch_tiles(s, Impl::kReference);
  const int64_t M = 6;
  const std::vector<uint8_t> masks = make_masks(M, frames, 14, MaskContent::kBlobs, 9);
  for (Impl impl : {Impl::kReference, Impl::kFast, Impl::kCuda}) {
    if (impl == Impl::kCuda && !g_cuda) continue;
    std::vector<float> a_out(static_cast<size_t>(M * C)), b_out(a_out.size());
    MaskPoolArgs a;
    a.features = feats.data();
    a.grid = tiles;
    a.masks = masks.data();
    a.regions = M;
    a.mode = mode;
    a.out = a_out.data();
    MaskPoolArgs b = a;
    b.features = grid.data();
    b.grid = frames;
    b.out = b_out.data();
    Outcome oa = run_op([&] { mask_pool(a, impl); }), ob = run_op([&] { mask_pool(b, impl); });
    const std::string ctx = name + " [" + impl_name(impl) + ": tiles vs stitched frames]";
    if (same_outcome(ctx, oa, ob)) continue;
    check_floats(ctx, a_out, b_out, {M, C}, 0);
  }
}

// ---- box3d_masks -------------------------------------------------------------------------

void rotation(const double axis[3], double angle, double R[9]) {
  const double n = std::sqrt(axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]);
  const double x = axis[0] / n, y = axis[1] / n, z = axis[2] / n, c = std::cos(angle), s = std::sin(angle), t = 1 - c;
  const double r[9] = {t * x * x + c, t * x * y - s * z, t * x * z + s * y, t * x * y + s * z, t * y * y + c,
                       t * y * z - s * x, t * x * z - s * y, t * y * z + s * x, t * z * z + c};
  std::copy(r, r + 9, R);
}

// Camera-to-world pose at `eye` looking at `target` (OpenCV axes, world z up), row-major 4x4.
void look_at(const double eye[3], const double target[3], float pose[16]) {
  double z[3] = {target[0] - eye[0], target[1] - eye[1], target[2] - eye[2]};
  double n = std::sqrt(z[0] * z[0] + z[1] * z[1] + z[2] * z[2]);
  for (double& v : z) v /= n;
  double x[3] = {z[1], -z[0], 0};  // z x (0,0,1)
  n = std::sqrt(x[0] * x[0] + x[1] * x[1]);
  for (double& v : x) v /= n;
  const double y[3] = {z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2], z[0] * x[1] - z[1] * x[0]};
  const double p[16] = {x[0], y[0], z[0], eye[0], x[1], y[1], z[1], eye[1], x[2], y[2], z[2], eye[2], 0, 0, 0, 1};
  for (int i = 0; i < 16; ++i) pose[i] = static_cast<float>(p[i]);
}

Box3d test_box(double angle) {
  Box3d b;
  const double c[3] = {0.2, 1.5, 0.5}, h[3] = {0.25, 0.3, 0.45}, axis[3] = {0.2, 0.1, 1};
  std::copy(c, c + 3, b.center);
  std::copy(h, h + 3, b.half);
  rotation(axis, angle, b.rotation);
  return b;
}

void compare_box_masks(const std::string& name, const Box3dMasksArgs& base) {
  const int64_t n = base.frames * base.height * base.width;
  auto run = [&](Impl impl, std::vector<uint8_t>& masks, std::vector<int64_t>& counts) {
    return run_op([&] {
      Box3dMasksArgs a = base;
      a.masks = masks.data();
      a.inside = counts.data();
      a.valid = counts.data() + base.frames;
      box3d_masks(a, impl);
    });
  };
  std::vector<uint8_t> want(static_cast<size_t>(n));
  std::vector<int64_t> want_counts(static_cast<size_t>(2 * base.frames));
  Outcome wo = run(Impl::kReference, want, want_counts);
  for (Impl impl : impls_under_test()) {
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    std::vector<uint8_t> got(want.size(), 0xCD);
    std::vector<int64_t> got_counts(want_counts.size(), -7);
    Outcome go = run(impl, got, got_counts);
    if (same_outcome(ctx, go, wo)) continue;
    check_bytes(ctx + " masks", got, want, {base.frames, base.height, base.width});
    std::string detail;
    for (size_t i = 0; i < want_counts.size(); ++i)
      if (got_counts[i] != want_counts[i])
        detail += (i < static_cast<size_t>(base.frames) ? "inside[" : "valid[") + std::to_string(i % base.frames) +
                  "] " + std::to_string(got_counts[i]) + " != " + std::to_string(want_counts[i]) + "; ";
    record(detail.empty(), ctx + " counts", detail, nullptr);
  }
  // The counts are the masks' (and, for kInside, the finite points').
  if (!wo.threw) {
    std::string detail;
    const int64_t HW = base.height * base.width;
    for (int64_t f = 0; f < base.frames; ++f) {
      int64_t in = 0, ok = 0;
      for (int64_t i = f * HW; i < (f + 1) * HW; ++i) {
        in += want[i];
        if (base.mode == Box3dMaskMode::kProject) ++ok;
        else ok += std::isfinite(base.points[3 * i]) && std::isfinite(base.points[3 * i + 1]) && std::isfinite(base.points[3 * i + 2]);
      }
      if (in != want_counts[f] || ok != want_counts[base.frames + f])
        detail += "frame " + std::to_string(f) + ": counts " + std::to_string(want_counts[f]) + "/" +
                  std::to_string(want_counts[base.frames + f]) + " vs masks " + std::to_string(in) + "/" + std::to_string(ok) + "; ";
    }
    record(detail.empty(), name + " [reference counts match its masks]", detail, nullptr);
  }
}

void test_box3d_inside(int64_t F, int64_t H, int64_t W, double angle) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "box3d_masks/inside,F=%" PRId64 ",H=%" PRId64 ",W=%" PRId64 ",angle=%g", F, H, W, angle);
  if (!begin_case(buf)) return;
  const Box3d box = test_box(angle);
  Rng rng(F * 31 + H + W);
  std::vector<float> pts(static_cast<size_t>(3 * F * H * W));
  for (int64_t i = 0; i < F * H * W; ++i) {
    if (rng.chance(0.1)) {  // invalid: NaN, Inf in one coordinate
      pts[3 * i] = pts[3 * i + 1] = pts[3 * i + 2] = 0.5f;
      pts[3 * i + rng.integer(0, 2)] = rng.chance(0.5) ? kNaN : -kInf;
      continue;
    }
    double l[3];
    for (int a = 0; a < 3; ++a) l[a] = rng.uniform(-1.6, 1.6) * box.half[a];
    if (rng.chance(0.05)) l[rng.integer(0, 2)] = box.half[rng.integer(0, 2)];  // on a face
    for (int a = 0; a < 3; ++a)
      pts[3 * i + a] = static_cast<float>(box.center[a] + box.rotation[3 * a] * l[0] +
                                          box.rotation[3 * a + 1] * l[1] + box.rotation[3 * a + 2] * l[2]);
  }
  Box3dMasksArgs a;
  a.mode = Box3dMaskMode::kInside;
  a.frames = F;
  a.height = H;
  a.width = W;
  a.box = box;
  a.points = pts.data();
  compare_box_masks(buf, a);
}

void test_box3d_project(int64_t H, int64_t W, double fx) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "box3d_masks/project,H=%" PRId64 ",W=%" PRId64 ",fx=%g", H, W, fx);
  if (!begin_case(buf)) return;
  const Box3d box = test_box(0.6);
  // In front; close (partly out of frame); inside the box; behind; near-plane clipped; grazing.
  const double views[][6] = {{0, -1, 1.2, 0.2, 1.5, 0.5},    {0.3, 0.9, 0.8, 0.2, 1.5, 0.5},
                             {0.1, 1.45, 0.55, 0, 3, 0.5},   {0.2, 3.5, 0.5, 0.2, 6, 0.5},
                             {0.45, 1.3, 0.5, 0.45, 3, 0.2}, {0.2, -3, 0.95, 0.2, 1.5, 0.95}};
  const int64_t F = 6;
  std::vector<float> K, poses(static_cast<size_t>(16 * F));
  for (int64_t f = 0; f < F; ++f) {
    K.insert(K.end(), {static_cast<float>(fx), static_cast<float>(fx * 1.03), W / 2.0f - 0.5f, H / 2.0f + 0.3f});
    look_at(views[f], views[f] + 3, poses.data() + 16 * f);
  }
  Box3dMasksArgs a;
  a.mode = Box3dMaskMode::kProject;
  a.frames = F;
  a.height = H;
  a.width = W;
  a.box = box;
  a.intrinsics = K.data();
  a.poses = poses.data();
  compare_box_masks(buf, a);
}

// ---- argument errors -----------------------------------------------------------------------

void test_errors() {
  const TokenGrid g = frames_grid(1, 2, 3, 4);
  std::vector<float> feats(24), out(8);
  std::vector<uint8_t> masks(2 * 28 * 42, 1);
  MaskPoolArgs mp;
  mp.features = feats.data();
  mp.grid = g;
  mp.masks = masks.data();
  mp.regions = 2;
  mp.out = out.data();
  for (Impl impl : {Impl::kReference, Impl::kFast, Impl::kCuda}) {
    const std::string sfx = std::string(" [") + impl_name(impl) + "]";
    expect_error("errors/mask_pool no regions" + sfx, ErrorKind::kInvalidArgument, [&] {
      MaskPoolArgs a = mp;
      a.regions = 0;
      mask_pool(a, impl);
    });
    expect_error("errors/mask_pool tiles not covering the grid" + sfx, ErrorKind::kInvalidArgument, [&] {
      MaskPoolArgs a = mp;
      a.grid = tiles_grid(5, 2, 3, 2, 4);  // 6 tiles needed
      mask_pool(a, impl);
    });
    expect_error("errors/mask_pool spatialrgpt patch=65 (torch resizes 130 px to 1 row, not 2)" + sfx,
                 ErrorKind::kInvalidArgument, [&] {
      // floor(130 * sqrt(1/65^2)) = 1 in float64: the reference itself would fail there.
      MaskPoolArgs a = mp;
      a.mode = MaskPoolMode::kSpatialRgpt;
      a.patch = 65;
      std::vector<uint8_t> big(static_cast<size_t>(2 * 130 * 195), 1);
      a.masks = big.data();
      mask_pool(a, impl);
    });
    expect_error("errors/stitch_tiles empty grid" + sfx, ErrorKind::kInvalidArgument, [&] {
      StitchTilesArgs a;
      a.features = feats.data();
      a.grid = frames_grid(1, 0, 3, 4);
      a.out = out.data();
      stitch_tiles(a, impl);
    });
    Box3dMasksArgs b;
    b.frames = 1;
    b.height = 2;
    b.width = 3;
    b.box = test_box(0.3);
    std::vector<float> pts(18, 0.0f), K = {100, 100, 1, 1};
    std::vector<uint8_t> bm(6);
    std::vector<int64_t> counts(2);
    b.points = pts.data();
    b.intrinsics = K.data();
    b.masks = bm.data();
    b.inside = counts.data();
    b.valid = counts.data() + 1;
    expect_error("errors/box3d_masks zero size" + sfx, ErrorKind::kInvalidArgument, [&] {
      Box3dMasksArgs a = b;
      a.box.half[1] = 0;
      box3d_masks(a, impl);
    });
    expect_error("errors/box3d_masks non-finite rotation" + sfx, ErrorKind::kInvalidArgument, [&] {
      Box3dMasksArgs a = b;
      a.box.rotation[4] = NAN;
      box3d_masks(a, impl);
    });
    expect_error("errors/box3d_masks project near <= 0" + sfx, ErrorKind::kInvalidArgument, [&] {
      Box3dMasksArgs a = b;
      a.mode = Box3dMaskMode::kProject;
      a.near_z = 0;
      box3d_masks(a, impl);
    });
    expect_error("errors/box3d_masks project singular pose" + sfx, ErrorKind::kInvalidArgument, [&] {
      Box3dMasksArgs a = b;
      a.mode = Box3dMaskMode::kProject;
      std::vector<float> pose(16, 0.0f);
      pose[15] = 1;
      a.poses = pose.data();
      box3d_masks(a, impl);
    });
    expect_error("errors/box3d_masks project fx = 0" + sfx, ErrorKind::kInvalidArgument, [&] {
      Box3dMasksArgs a = b;
      a.mode = Box3dMaskMode::kProject;
      std::vector<float> k = {0, 100, 1, 1};
      a.intrinsics = k.data();
      box3d_masks(a, impl);
    });
  }
  // Found only by reading the masks: every path that runs reports it the same way.
  std::vector<Impl> run_impls = {Impl::kReference};
  for (Impl i : impls_under_test()) run_impls.push_back(i);
  for (Impl impl : run_impls)
    for (MaskPoolMode mode : {MaskPoolMode::kArea, MaskPoolMode::kSpatialRgpt}) {
      expect_error(std::string("errors/mask_pool empty region, mode=") +
                       (mode == MaskPoolMode::kArea ? "area" : "spatialrgpt") + " [" + impl_name(impl) + "]",
                   ErrorKind::kInvalidArgument, [&] {
                     std::vector<uint8_t> m = masks;
                     std::fill(m.begin() + 28 * 42, m.end(), 0);
                     MaskPoolArgs a = mp;
                     a.masks = m.data();
                     a.mode = mode;
                     mask_pool(a, impl);
                   });
    }
}

// ---- mask_pool_tiles -----------------------------------------------------------------------

// Per-tile masks (M, K, T, T) pooled with the stitch inside equal mask_pool over masks stitched
// here, bit for bit on every path (the thumbnail's masks, K = grid + 1, are never read).
void test_mask_pool_tiles(int64_t cols, int64_t rows, bool thumbnail, int64_t g, int64_t P, MaskPoolMode mode) {
  const int64_t grid = cols * rows, K = grid + (thumbnail ? 1 : 0), T = g * P, M = 3, C = 7;
  const std::string name = fmt("mask_pool_tiles/%" PRId64 "x%" PRId64 "%s g=%" PRId64 " P=%" PRId64 " %s", cols, rows,
                               thumbnail ? "+thumb" : "", g, P, mode == MaskPoolMode::kArea ? "area" : "spatialrgpt");
  if (!begin_case(name)) return;
  Rng rng(static_cast<uint64_t>(cols * 131 + rows * 17 + g));
  std::vector<uint8_t> tiles(static_cast<size_t>(M * K * T * T));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t i = 0; i < T * T; ++i)
        tiles[(m * K + k) * T * T + i] = k == grid ? 1 : static_cast<uint8_t>(rng.chance(m == 0 ? 0.3 : 0.02) ? 1 : 0);
  for (int64_t m = 0; m < M; ++m) tiles[(m * K + grid - 1) * T * T + T * T / 2] = 1;  // never empty
  const int64_t H = rows * T, W = cols * T;
  std::vector<uint8_t> stitched(static_cast<size_t>(M * H * W));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        stitched[(m * H + y) * W + x] = tiles[((m * K + (y / T) * cols + x / T) * T + y % T) * T + x % T];
  const TokenGrid tg = tiles_grid(K, g, cols, rows, C);
  std::vector<float> feats = random_features(tg.feature_elements(), 7 + K);
  MaskPoolArgs base;
  base.features = feats.data();
  base.grid = tg;
  base.regions = M;
  base.patch = P;
  base.mode = mode;
  std::vector<Impl> impls = impls_under_test();
  impls.insert(impls.begin(), Impl::kReference);
  for (Impl impl : impls) {
    std::vector<float> want(static_cast<size_t>(M * C)), got(want.size(), 12345.0f);
    MaskPoolArgs a = base;
    a.masks = stitched.data();
    a.out = want.data();
    Outcome wo = run_op([&] { mask_pool(a, impl); });
    MaskPoolTilesArgs t;
    t.pool = base;
    t.pool.out = got.data();
    t.tile_masks = tiles.data();
    t.mask_tiles = K;
    Outcome go = run_op([&] { mask_pool_tiles(t, impl); });
    const std::string ctx = name + " [" + impl_name(impl) + " vs stitched]";
    if (same_outcome(ctx, go, wo)) continue;
    check_floats(ctx, got, want, {M, C}, 0);
  }
}

void test_mask_pool_tiles_errors() {
  const TokenGrid tg = tiles_grid(3, 2, 2, 1, 4);
  std::vector<float> feats(static_cast<size_t>(tg.feature_elements()), 1.0f), out(8);
  std::vector<uint8_t> tiles(static_cast<size_t>(2 * 4 * 4 * 4), 1);
  MaskPoolTilesArgs t;
  t.pool.features = feats.data();
  t.pool.grid = tg;
  t.pool.regions = 2;
  t.pool.patch = 2;
  t.pool.out = out.data();
  t.tile_masks = tiles.data();
  t.mask_tiles = 4;  // grid 2: 2 or 3
  expect_error("mask_pool_tiles/bad mask_tiles", ErrorKind::kInvalidArgument, [&] { mask_pool_tiles(t, Impl::kFast); });
  t.mask_tiles = 2;
  std::fill(tiles.begin(), tiles.begin() + 2 * 16, 0);  // region 0 empty on both grid tiles
  expect_error("mask_pool_tiles/empty region", ErrorKind::kInvalidArgument, [&] { mask_pool_tiles(t, Impl::kFast); });
  t.pool.grid = frames_grid(2, 2, 2, 4);
  expect_error("mask_pool_tiles/frames grid", ErrorKind::kInvalidArgument, [&] { mask_pool_tiles(t, Impl::kFast); });
}

void run_tests() {
  for (const TokenGrid& g : {frames_grid(1, 1, 1, 1), frames_grid(3, 5, 7, 3), tiles_grid(13, 32, 4, 3, 5),
                             tiles_grid(6, 3, 3, 2, 1152), tiles_grid(1, 4, 1, 1, 2), frames_grid(2, 2, 2, 1)})
    test_stitch(g);
  for (MaskPoolMode mode : {MaskPoolMode::kArea, MaskPoolMode::kSpatialRgpt}) {
    test_mask_pool(frames_grid(1, 1, 1, 1), 1, 14, mode, MaskContent::kBlobs);
    test_mask_pool(frames_grid(1, 3, 5, 3), 4, 14, mode, MaskContent::kBlobs);
    test_mask_pool(frames_grid(1, 7, 2, 1152), 2, 14, mode, MaskContent::kBlobs);
    test_mask_pool(frames_grid(4, 4, 3, 3), 9, 14, mode, MaskContent::kBlobs);
    test_mask_pool(frames_grid(3, 2, 3, 64), 40, 14, mode, MaskContent::kBlobs);  // > 32 regions: two CUDA passes
    test_mask_pool(frames_grid(2, 5, 4, 3), 3, 1, mode, MaskContent::kBlobs);
    test_mask_pool(frames_grid(1, 6, 5, 5), 2, 16, mode, MaskContent::kBlobs);
    test_mask_pool(frames_grid(2, 9, 31, 7), 3, 14, mode, MaskContent::kValue255);  // > 512 tokens: several CUDA chunks
    test_mask_pool(frames_grid(1, 3, 4, 6), 3, 14, mode, MaskContent::kNoCentre);
    test_mask_pool(tiles_grid(13, 32, 4, 3, 16), 8, 14, mode, MaskContent::kBlobs);
    test_mask_pool(tiles_grid(3, 5, 2, 1, 1152), 5, 14, mode, MaskContent::kBlobs);
    test_mask_pool_layouts(4, 3, 8, 33, mode);
    test_mask_pool_layouts(2, 1, 32, 1152, mode);
  }
  for (double angle : {0.0, 0.6, 2.9}) test_box3d_inside(2, 17, 23, angle);
  test_box3d_inside(1, 1, 1, 0.3);
  test_box3d_inside(3, 64, 48, 1.2);
  test_box3d_project(48, 64, 40);
  test_box3d_project(61, 80, 60);
  test_box3d_project(1, 1, 30);
  test_box3d_project(480, 640, 525);
  for (MaskPoolMode mode : {MaskPoolMode::kArea, MaskPoolMode::kSpatialRgpt}) {
    test_mask_pool_tiles(1, 1, false, 4, 14, mode);
    test_mask_pool_tiles(1, 3, true, 3, 14, mode);
    test_mask_pool_tiles(4, 3, true, 5, 14, mode);
    test_mask_pool_tiles(4, 3, false, 2, 3, mode);
    test_mask_pool_tiles(2, 1, true, 32, 14, mode);
  }
  test_mask_pool_tiles_errors();
  test_errors();
}

// ---- benchmarks ----------------------------------------------------------------------------

// 8 regions on a token grid: random boxes of 10-40% of each side (a few frames skipped on
// scenes), like region prompts; the byte floor counts only the tokens some region touches.
struct PoolBench {
  std::string shape;
  TokenGrid grid;
  int64_t regions = 8;
  std::vector<float> features;
  std::vector<uint8_t> masks;
  int64_t active_tokens = 0;
  PoolBench(const std::string& s, const TokenGrid& g) : shape(s), grid(g) {
    Rng rng(21);
    features.resize(static_cast<size_t>(g.feature_elements()));
    for (float& v : features) v = static_cast<float>(rng.uniform(-1, 1));
    const int64_t H = g.height * 14, W = g.width * 14, n = H * W;
    masks.assign(static_cast<size_t>(regions * g.frames * n), 0);
    std::vector<uint8_t> touched(static_cast<size_t>(g.tokens()), 0);
    for (int64_t m = 0; m < regions; ++m)
      for (int64_t f = 0; f < g.frames; ++f) {
        if (g.frames > 1 && rng.chance(0.25)) continue;
        const int64_t bh = rng.integer(H / 10, H * 4 / 10), bw = rng.integer(W / 10, W * 4 / 10);
        const int64_t y0 = rng.integer(0, H - bh), x0 = rng.integer(0, W - bw);
        for (int64_t y = y0; y < y0 + bh; ++y) {
          std::memset(masks.data() + (m * g.frames + f) * n + y * W + x0, 1, static_cast<size_t>(bw));
          for (int64_t x = x0 / 14; x <= (x0 + bw - 1) / 14; ++x) touched[(f * g.height + y / 14) * g.width + x] = 1;
        }
      }
    for (uint8_t t : touched) active_tokens += t;
  }
  MaskPoolArgs args(MaskPoolMode mode, float* out) const {
    MaskPoolArgs a;
    a.features = features.data();
    a.grid = grid;
    a.masks = masks.data();
    a.regions = regions;
    a.mode = mode;
    a.out = out;
    return a;
  }
  // Features of the touched tokens + the mask bytes the mode needs (area: all; spatialrgpt:
  // 2 of every 14 pixel rows) + the output.
  double bytes(MaskPoolMode mode) const {
    const double mask_rows = mode == MaskPoolMode::kArea ? grid.height * 14.0 : grid.height * 2.0;
    return 4.0 * active_tokens * grid.channels + regions * grid.frames * mask_rows * grid.width * 14.0 +
           4.0 * regions * grid.channels;
  }
};

struct BoxBench {
  int64_t F = 32, H = 448, W = 448;
  std::vector<float> points, K, poses;
  Box3d box = test_box(0.6);
  BoxBench() {
    Rng rng(23);
    points.resize(static_cast<size_t>(3 * F * H * W));
    for (int64_t i = 0; i < F * H * W; ++i) {
      double l[3];
      for (int a = 0; a < 3; ++a) l[a] = rng.uniform(-3, 3) * box.half[a];
      for (int a = 0; a < 3; ++a)
        points[3 * i + a] = static_cast<float>(box.center[a] + box.rotation[3 * a] * l[0] +
                                               box.rotation[3 * a + 1] * l[1] + box.rotation[3 * a + 2] * l[2]);
    }
    poses.resize(static_cast<size_t>(16 * F));
    for (int64_t f = 0; f < F; ++f) {
      const double a = 6.283185307179586 * f / F, eye[3] = {0.2 + 2 * std::cos(a), 1.5 + 2 * std::sin(a), 1.2}, at[3] = {0.2, 1.5, 0.5};
      look_at(eye, at, poses.data() + 16 * f);
      K.insert(K.end(), {400, 400, 223.5f, 223.5f});
    }
  }
  Box3dMasksArgs args(Box3dMaskMode mode, const float* pts, uint8_t* masks, int64_t* counts) const {
    Box3dMasksArgs a;
    a.mode = mode;
    a.frames = F;
    a.height = H;
    a.width = W;
    a.box = box;
    a.points = pts;
    a.intrinsics = K.data();
    a.poses = poses.data();
    a.masks = masks;
    a.inside = counts;
    a.valid = counts + F;
    return a;
  }
  double bytes(Box3dMaskMode mode) const { return (mode == Box3dMaskMode::kInside ? 13.0 : 1.0) * F * H * W; }
};

const char* mode_label(MaskPoolMode m) { return m == MaskPoolMode::kArea ? "mask_pool area" : "mask_pool spatialrgpt"; }

void bench_cpu(std::vector<BenchRow>& rows) {
  const int thr = cpu_threads();
  const double peak = measure_cpu_peak(rows);
  std::fprintf(stderr, "preparing region bench inputs...\n");
  const PoolBench image("8 regions, 13 tiles (4x3+1) 32x32x1152", tiles_grid(13, 32, 4, 3, 1152));
  const PoolBench scene("8 regions, 32x32x32x1152 frames", frames_grid(32, 32, 32, 1152));
  for (const PoolBench* b : {&image, &scene})
    for (MaskPoolMode mode : {MaskPoolMode::kArea, MaskPoolMode::kSpatialRgpt}) {
      std::vector<float> out(static_cast<size_t>(b->regions * b->grid.channels));
      const double ms = cpu_median_ms([&] { mask_pool(b->args(mode, out.data()), Impl::kFast); });
      rows.push_back(make_row(mode_label(mode), b->shape, "cpu", thr, ms, b->bytes(mode), peak, kCpuCacheBytes));
    }
  {
    std::vector<float> grid(static_cast<size_t>(12 * 1024 * 1152));
    StitchTilesArgs s;
    s.features = image.features.data();
    s.grid = image.grid;
    s.out = grid.data();
    // Streaming stores skip the read-for-ownership the triad's plain stores pay (16 B moved per
    // 12 B counted): this copy can pass 100% of the triad from DRAM (37 GB/s moving 453 MB
    // against a 25 GB/s triad on the 2-core VM), not only from cache.
    const double ms = cpu_median_ms([&] { stitch_tiles(s, Impl::kFast); });
    rows.push_back(make_row("stitch_tiles", "13 tiles (4x3+1) 32x32x1152", "cpu", thr, ms, 2.0 * grid.size() * 4, peak, kCpuCacheBytes));
  }
  const BoxBench box;
  std::vector<uint8_t> masks(static_cast<size_t>(box.F * box.H * box.W));
  std::vector<int64_t> counts(static_cast<size_t>(2 * box.F));
  for (Box3dMaskMode mode : {Box3dMaskMode::kInside, Box3dMaskMode::kProject}) {
    const Box3dMasksArgs a = box.args(mode, box.points.data(), masks.data(), counts.data());
    const double ms = cpu_median_ms([&] { box3d_masks(a, Impl::kFast); });
    rows.push_back(make_row(mode == Box3dMaskMode::kInside ? "box3d_masks inside" : "box3d_masks project",
                            "32x448x448", "cpu", thr, ms, box.bytes(mode), peak, kCpuCacheBytes));
  }
}

#ifdef SR3D_WITH_CUDA
void bench_cuda(std::vector<BenchRow>& rows) {
  std::string dev;
  if (!bench_cuda_device(&dev)) return;
  cuda::Stream stream_holder;
  cudaStream_t stream = stream_holder.get();
  const double peak = measure_gpu_peak(stream, dev, rows);
  const PoolBench image("8 regions, 13 tiles (4x3+1) 32x32x1152", tiles_grid(13, 32, 4, 3, 1152));
  const PoolBench scene("8 regions, 32x32x32x1152 frames", frames_grid(32, 32, 32, 1152));
  for (const PoolBench* b : {&image, &scene}) {
    cuda::DeviceBuffer<float> feats = to_device(b->features), out(static_cast<size_t>(b->regions * b->grid.channels));
    cuda::DeviceBuffer<uint8_t> masks = to_device(b->masks);
    for (MaskPoolMode mode : {MaskPoolMode::kArea, MaskPoolMode::kSpatialRgpt}) {
      MaskPoolArgs a = b->args(mode, out.get());
      a.features = feats.get();
      a.masks = masks.get();
      // Includes the one mid-op host sync (the per-region totals).
      const double ms = gpu_median_ms(stream, [&] { cuda::mask_pool(a, stream); });
      rows.push_back(make_row(mode_label(mode), b->shape, dev, 0, ms, b->bytes(mode), peak, kGpuCacheBytes));
    }
  }
  {
    cuda::DeviceBuffer<float> feats = to_device(image.features), grid(static_cast<size_t>(12 * 1024 * 1152));
    StitchTilesArgs s;
    s.features = feats.get();
    s.grid = image.grid;
    s.out = grid.get();
    const double ms = gpu_median_ms(stream, [&] { cuda::stitch_tiles(s, stream); });
    rows.push_back(make_row("stitch_tiles", "13 tiles (4x3+1) 32x32x1152", dev, 0, ms, 2.0 * grid.bytes(), peak, kGpuCacheBytes));
  }
  const BoxBench box;
  cuda::DeviceBuffer<float> pts = to_device(box.points);
  cuda::DeviceBuffer<uint8_t> masks(static_cast<size_t>(box.F * box.H * box.W));
  cuda::DeviceBuffer<int64_t> counts(static_cast<size_t>(2 * box.F));
  for (Box3dMaskMode mode : {Box3dMaskMode::kInside, Box3dMaskMode::kProject}) {
    const Box3dMasksArgs a = box.args(mode, pts.get(), masks.get(), counts.get());
    const double ms = gpu_median_ms(stream, [&] { cuda::box3d_masks(a, stream); });
    rows.push_back(make_row(mode == Box3dMaskMode::kInside ? "box3d_masks inside" : "box3d_masks project",
                            "32x448x448", dev, 0, ms, box.bytes(mode), peak, kGpuCacheBytes));
  }
}
#endif

void run_bench(const std::string& device, std::vector<BenchRow>& rows) {
  if (device == "cpu" || device == "all") bench_cpu(rows);
#ifdef SR3D_WITH_CUDA
  if (device == "cuda" || device == "all") bench_cuda(rows);
#endif
}

}  // namespace

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
