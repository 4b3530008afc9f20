// Standalone kernel tests and benchmarks (no Node).
//
//   sr3d_kernel_tests [--filter SUBSTR]        every op's Impl::kFast (and Impl::kCuda when a
//                                              device is usable) against Impl::kReference over
//                                              awkward sizes; exit status 1 on any failure
//   sr3d_kernel_tests --bench [--json] [--json-out FILE] [--device cpu|cuda|all]
//                                              median time, minimal bytes, GB/s and % of the
//                                              peak measured in the same run
//
// Tolerances: backproject, canonicalize, scene_points and pool_points are bit-exact (NaN
// equals NaN); sinusoidal_encode has atol 2e-6 (the reference computes sin(2^k*pi*p) with
// a rounded float64 argument, ~1e-6 off at k = 29; the fast paths reduce exactly).
// Case names carry their parameters: `--filter 'scene_points/F=2,H=448'` reruns one.
#include <algorithm>
#include <cfloat>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "harness.h"
#include "backproject.h"
#include "canonicalize.h"
#include "device.h"
#include "pool_points.h"
#include "scene_points.h"
#include "sinusoidal_encode.h"

using namespace sr3d;
using namespace sr3d_test;

namespace {

void check_transform(const std::string& ctx, const CanonicalTransform& got,
                     const CanonicalTransform& want, const char* known = nullptr) {
  std::string detail;
  for (int a = 0; a < 3; ++a) {
    char buf[200];
    if (double_bits(got.center[a]) != double_bits(want.center[a])) {
      std::snprintf(buf, sizeof buf, "center[%d] %.17g != %.17g; ", a, got.center[a], want.center[a]);
      detail += buf;
    }
    if (double_bits(got.scale[a]) != double_bits(want.scale[a])) {
      std::snprintf(buf, sizeof buf, "scale[%d] %.17g != %.17g; ", a, got.scale[a], want.scale[a]);
      detail += buf;
    }
  }
  if (got.valid_count != want.valid_count)
    detail += "valid_count " + std::to_string(got.valid_count) + " != " +
              std::to_string(want.valid_count);
  record(detail.empty(), ctx, detail, known);
}

// ---- inputs ----------------------------------------------------------------------------

enum class Content { kValid, kMixed, kInvalid, kHuge };
const char* content_name(Content c) {
  switch (c) {
    case Content::kValid: return "valid";
    case Content::kMixed: return "mixed";
    case Content::kInvalid: return "invalid";
    case Content::kHuge: return "huge";
  }
  return "?";
}

// Depth (F,H,W) with intrinsics and optional rigid poses.
struct DepthScene {
  int64_t F = 0, H = 0, W = 0;
  DType dtype = DType::kFloat32;
  float scale = 1.0f;
  std::vector<float> f32, K, poses;
  std::vector<uint16_t> u16;
  bool has_poses = false;
  int64_t pixels() const { return F * H * W; }
  BackprojectArgs args(float* points, uint8_t* valid) const {
    BackprojectArgs a;
    a.depth = dtype == DType::kUint16 ? static_cast<const void*>(u16.data())
                                      : static_cast<const void*>(f32.data());
    a.depth_dtype = dtype;
    a.frames = F;
    a.height = H;
    a.width = W;
    a.depth_scale = scale;
    a.intrinsics = K.data();
    a.poses = has_poses ? poses.data() : nullptr;
    a.points = points;
    a.valid = valid;
    return a;
  }
};

DepthScene make_depth(int64_t F, int64_t H, int64_t W, DType dtype, bool poses, Content content,
                      uint64_t seed) {
  Rng rng(seed);
  DepthScene s;
  s.F = F;
  s.H = H;
  s.W = W;
  s.dtype = dtype;
  s.has_poses = poses;
  const int64_t n = F * H * W;
  const float bad_f32[] = {0.0f, -1.5f, kNaN, kInf, -kInf, -0.0f};
  if (dtype == DType::kFloat32) {
    s.f32.resize(n);
    for (float& d : s.f32) {
      switch (content) {
        case Content::kValid: d = static_cast<float>(rng.uniform(0.3, 12)); break;
        case Content::kMixed:
          d = rng.chance(0.25) ? bad_f32[rng.integer(0, 5)]
                               : (rng.chance(0.01) ? 1e-45f : static_cast<float>(rng.uniform(0.3, 12)));
          break;
        case Content::kInvalid: d = bad_f32[rng.integer(0, 5)]; break;
        case Content::kHuge: d = static_cast<float>(rng.uniform(1e37, 3.4e38)); break;
      }
    }
  } else {
    s.scale = content == Content::kHuge ? 5e33f : 0.001f;
    s.u16.resize(n);
    for (uint16_t& d : s.u16) {
      switch (content) {
        case Content::kValid: d = static_cast<uint16_t>(rng.integer(300, 12000)); break;
        case Content::kMixed:
          d = rng.chance(0.25) ? 0 : static_cast<uint16_t>(rng.chance(0.02) ? 65535 : rng.integer(1, 12000));
          break;
        case Content::kInvalid: d = 0; break;
        case Content::kHuge: d = static_cast<uint16_t>(rng.integer(1, 65535)); break;
      }
    }
  }
  for (int64_t f = 0; f < F; ++f) {
    float fx = static_cast<float>(rng.uniform(80, 900)), fy = static_cast<float>(rng.uniform(80, 900));
    // frame 0: principal point on a pixel centre (u - cx == 0 exactly somewhere)
    float cx = f == 0 ? std::floor(W / 2.0f) : static_cast<float>(rng.uniform(0, W));
    float cy = f == 0 ? std::floor(H / 2.0f) : static_cast<float>(rng.uniform(0, H));
    if (content == Content::kHuge) fx = fy = 1.0f;  // make the x/y overflow reachable
    s.K.insert(s.K.end(), {fx, fy, cx, cy});
    if (poses) {  // random rotation (unit quaternion) + translation
      double q[4], norm = 0;
      for (double& v : q) { v = rng.uniform(-1, 1); norm += v * v; }
      norm = std::sqrt(norm);
      for (double& v : q) v /= norm;
      const double w = q[0], x = q[1], y = q[2], z = q[3];
      const double R[9] = {1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                           2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                           2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)};
      for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 3; ++c) s.poses.push_back(static_cast<float>(R[3 * r + c]));
        s.poses.push_back(static_cast<float>(rng.uniform(-3, 3)));
      }
      s.poses.insert(s.poses.end(), {0, 0, 0, 1});
    }
  }
  return s;
}

std::string depth_name(const char* op, const DepthScene& s, Content c) {
  return std::string(op) + "/F=" + std::to_string(s.F) + ",H=" + std::to_string(s.H) +
         ",W=" + std::to_string(s.W) + ",dtype=" + dtype_name(s.dtype) +
         ",poses=" + (s.has_poses ? "yes" : "no") + ",depth=" + content_name(c);
}

const char* mode_name(CanonicalMode m) {
  switch (m) {
    case CanonicalMode::kIsotropic: return "isotropic";
    case CanonicalMode::kMinMax: return "minmax";
    case CanonicalMode::kMetric: return "metric";
  }
  return "?";
}

struct ModeCase {
  CanonicalMode mode;
  double q;
};
const ModeCase kAllModes[] = {{CanonicalMode::kIsotropic, 0.0},
                              {CanonicalMode::kIsotropic, 0.01},
                              {CanonicalMode::kIsotropic, 0.25},
                              {CanonicalMode::kMinMax, 0.01},
                              {CanonicalMode::kMetric, 0.01}};
std::string mode_str(const ModeCase& m) {
  std::string s = std::string(",mode=") + mode_name(m.mode);
  if (m.mode == CanonicalMode::kIsotropic) {
    char buf[32];
    std::snprintf(buf, sizeof buf, ",q=%g", m.q);
    s += buf;
  }
  return s;
}

// ---- per-op cases ----------------------------------------------------------------------
void test_backproject(const DepthScene& s, Content c) {
  const std::string name = depth_name("backproject", s, c);
  if (!begin_case(name)) return;
  const int64_t n = s.pixels();
  std::vector<float> want(3 * n);
  std::vector<uint8_t> want_valid(n);
  Outcome wo = run_op([&] { backproject(s.args(want.data(), want_valid.data()), Impl::kReference); });
  for (Impl impl : impls_under_test()) {
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    std::vector<float> got(3 * n, 12345.0f);  // sentinel: unwritten outputs show up
    std::vector<uint8_t> got_valid(n, 0xCD);
    Outcome go = run_op([&] { backproject(s.args(got.data(), got_valid.data()), impl); });
    if (same_outcome(ctx, go, wo)) continue;
    check_floats(ctx + " points", got, want, {s.F, s.H, s.W, 3}, 0);
    check_bytes(ctx + " valid", got_valid, want_valid, {s.F, s.H, s.W});
  }
}

void test_scene_points(const DepthScene& s, Content c, const ModeCase& m) {
  for (bool world : {false, true}) {
    const std::string name = depth_name("scene_points", s, c) + mode_str(m) +
                             (world ? ",output=world" : "");
    if (!begin_case(name)) continue;
    const int64_t n = s.pixels();
    auto run = [&](Impl impl, std::vector<float>& pts, std::vector<uint8_t>& valid,
                   CanonicalTransform& t) {
      return run_op([&] {
        ScenePointsArgs a;
        a.bp = s.args(pts.data(), valid.data());
        a.mode = m.mode;
        a.quantile = m.q;
        a.world_points = world;
        t = scene_points(a, impl);
      });
    };
    std::vector<float> want(3 * n);
    std::vector<uint8_t> want_valid(n);
    CanonicalTransform wt;
    Outcome wo = run(Impl::kReference, want, want_valid, wt);
    if (world && !wo.threw) {  // the world output is backproject's, bit for bit
      std::vector<float> bp(3 * n);
      std::vector<uint8_t> bv(n);
      backproject(s.args(bp.data(), bv.data()), Impl::kReference);
      check_floats(name + " [reference world output vs backproject]", want, bp, {s.F, s.H, s.W, 3}, 0);
    }
    for (Impl impl : impls_under_test()) {
      const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
      std::vector<float> got(3 * n, 12345.0f);
      std::vector<uint8_t> got_valid(n, 0xCD);
      CanonicalTransform gt;
      Outcome go = run(impl, got, got_valid, gt);
      if (same_outcome(ctx, go, wo)) continue;
      check_transform(ctx + " transform", gt, wt);
      check_floats(ctx + " points", got, want, {s.F, s.H, s.W, 3}, 0);
      check_bytes(ctx + " valid", got_valid, want_valid, {s.F, s.H, s.W});
    }
  }
}

// Points (n,3) for canonicalize.
enum class PointsKind { kRandom, kScene, kAdversarial, kConstant, kAllInvalid };
const char* points_kind_name(PointsKind k) {
  switch (k) {
    case PointsKind::kRandom: return "random";
    case PointsKind::kScene: return "scene";
    case PointsKind::kAdversarial: return "adversarial";
    case PointsKind::kConstant: return "constant";
    case PointsKind::kAllInvalid: return "all-invalid";
  }
  return "?";
}

std::vector<float> make_points(PointsKind kind, int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> p(3 * n);
  const float bad[] = {kNaN, kInf, -kInf};
  switch (kind) {
    case PointsKind::kRandom:
      for (int64_t i = 0; i < n; ++i) {
        for (int a = 0; a < 3; ++a) p[3 * i + a] = static_cast<float>(rng.uniform(-50, 50) * (a + 1));
        if (rng.chance(0.1)) p[3 * i + rng.integer(0, 2)] = bad[rng.integer(0, 2)];
      }
      break;
    case PointsKind::kScene: {  // back-projected world points, 25% invalid pixels
      const int64_t W = 211, H = 97, F = (n + H * W - 1) / (H * W);
      DepthScene s = make_depth(F, H, W, DType::kFloat32, true, Content::kMixed, seed);
      std::vector<float> all(3 * F * H * W);
      backproject(s.args(all.data(), nullptr), Impl::kFast);
      std::copy(all.begin(), all.begin() + 3 * n, p.begin());
      break;
    }
    case PointsKind::kAdversarial:
      // The points the GPU samples for its brackets (every 6th at n = 401408) sit far from
      // the rest, so its first brackets miss and the widening retry runs. (The CPU samples
      // at hashed offsets; test_reduce_retry forces its retry path.)
      for (int64_t i = 0; i < n; ++i) {
        bool sampled = i % 6 == 0 || (i / 4096) % 6 == 0;
        p[3 * i] = static_cast<float>(rng.uniform(0, 1) + (sampled ? 1000 : 0));
        p[3 * i + 1] = static_cast<float>(rng.uniform(0, 1) - (sampled ? 1000 : 0));
        p[3 * i + 2] = static_cast<float>(rng.uniform(-1, 1));
      }
      break;
    case PointsKind::kConstant:
      for (int64_t i = 0; i < n; ++i) { p[3 * i] = 1.5f; p[3 * i + 1] = -2.0f; p[3 * i + 2] = 7.25f; }
      break;
    case PointsKind::kAllInvalid:
      for (int64_t i = 0; i < n; ++i)
        for (int a = 0; a < 3; ++a) p[3 * i + a] = a == static_cast<int>(i % 3) ? bad[i % 3] : 1.0f;
      break;
  }
  return p;
}

void test_canonicalize(PointsKind kind, int64_t n, const ModeCase& m, bool in_place) {
  const std::string name = std::string("canonicalize/n=") + std::to_string(n) +
                           ",points=" + points_kind_name(kind) + mode_str(m) +
                           (in_place ? ",in-place" : "");
  if (!begin_case(name)) return;
  const std::vector<float> input = make_points(kind, n, 1000 + n);
  auto run = [&](Impl impl, std::vector<float>& out, CanonicalTransform& t) {
    if (in_place) out = input;
    return run_op([&] {
      CanonicalizeArgs a;
      a.points = in_place ? out.data() : input.data();
      a.n = n;
      a.mode = m.mode;
      a.quantile = m.q;
      a.points_out = out.data();
      t = canonicalize(a, impl);
    });
  };
  std::vector<float> want(3 * n);
  CanonicalTransform wt;
  Outcome wo = run(Impl::kReference, want, wt);
  for (Impl impl : impls_under_test()) {
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    std::vector<float> got(3 * n, 12345.0f);
    CanonicalTransform gt;
    Outcome go = run(impl, got, gt);
    if (same_outcome(ctx, go, wo)) continue;
    check_transform(ctx + " transform", gt, wt);
    check_floats(ctx + " points", got, want, {n, 3}, 0);
  }
}

// The CPU selection's retry path: zero-margin brackets make the first brackets miss, so
// the later sweeps (bracket moved toward the rank, 4x wider, finally opened) must still give
// exactly the reference transform.
int g_retry_sweeps = 0;
void test_reduce_retry(PointsKind kind, int64_t n, double q, double margin) {
  const std::string name = std::string("reduce_retry/n=") + std::to_string(n) + ",points=" +
                           points_kind_name(kind) + ",q=" + std::to_string(q) +
                           ",margin=" + std::to_string(margin);
  if (!begin_case(name)) return;
  const std::vector<float> input = make_points(kind, n, 77 + n);
  std::vector<float> want(3 * n);
  CanonicalizeArgs a;
  a.points = input.data();
  a.n = n;
  a.quantile = q;
  a.points_out = want.data();
  CanonicalTransform wt = canonicalize(a, Impl::kReference);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  int sweeps = 0;
  cpu::ReduceTuning tuning;
  tuning.margin = margin;
  tuning.sweeps_done = &sweeps;
  CanonicalTransform gt = cpu::reduce_points(
      [&](int64_t begin, int64_t count, float* x, float* y, float* z) {
        for (int64_t i = 0; i < count; ++i) {
          const float* p = input.data() + 3 * (begin + i);
          bool ok = std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]);
          x[i] = ok ? p[0] : nan;
          y[i] = ok ? p[1] : nan;
          z[i] = ok ? p[2] : nan;
        }
      },
      n, 1024, CanonicalMode::kIsotropic, q, tuning);
  g_retry_sweeps = std::max(g_retry_sweeps, sweeps);
  check_transform(name + " [reduce_points vs reference]", gt, wt);
}

enum class PoolContent { kMixed, kInvalidPatches, kAllInvalid };
const char* pool_content_name(PoolContent c) {
  switch (c) {
    case PoolContent::kMixed: return "mixed";
    case PoolContent::kInvalidPatches: return "invalid-patches";
    case PoolContent::kAllInvalid: return "all-invalid";
  }
  return "?";
}

void test_pool_points(int64_t B, int64_t H, int64_t W, int64_t P, PoolContent c) {
  const std::string name = "pool_points/B=" + std::to_string(B) + ",H=" + std::to_string(H) +
                           ",W=" + std::to_string(W) + ",patch=" + std::to_string(P) +
                           ",points=" + pool_content_name(c);
  if (!begin_case(name)) return;
  Rng rng(77 + B * 1000 + H * 10 + W + P);
  const int64_t n = B * H * W, Hp = pool_out_size(H, P), Wp = pool_out_size(W, P);
  std::vector<float> pts(3 * n);
  const float bad[] = {kNaN, kInf, -kInf};
  for (int64_t i = 0; i < n; ++i) {
    for (int a = 0; a < 3; ++a) pts[3 * i + a] = static_cast<float>(rng.uniform(-10, 10));
    const int64_t u = i % W, v = (i / W) % H;
    bool invalid = c == PoolContent::kAllInvalid ||
                   (c == PoolContent::kMixed && rng.chance(0.1)) ||
                   (c == PoolContent::kInvalidPatches && ((u / P + v / P) % 3 == 0 || rng.chance(0.3)));
    if (invalid) pts[3 * i + rng.integer(0, 2)] = bad[rng.integer(0, 2)];
  }
  auto run = [&](Impl impl, std::vector<float>& pooled, std::vector<uint8_t>& valid) {
    return run_op([&] {
      PoolPointsArgs a;
      a.points = pts.data();
      a.batch = B;
      a.height = H;
      a.width = W;
      a.patch = P;
      a.pooled = pooled.data();
      a.valid = valid.data();
      pool_points(a, impl);
    });
  };
  std::vector<float> want(3 * B * Hp * Wp);
  std::vector<uint8_t> want_valid(B * Hp * Wp);
  Outcome wo = run(Impl::kReference, want, want_valid);
  for (Impl impl : impls_under_test()) {
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    std::vector<float> got(want.size(), 12345.0f);
    std::vector<uint8_t> got_valid(want_valid.size(), 0xCD);
    Outcome go = run(impl, got, got_valid);
    if (same_outcome(ctx, go, wo)) continue;
    check_floats(ctx + " pooled", got, want, {B, Hp, Wp, 3}, 0);
    check_bytes(ctx + " valid", got_valid, want_valid, {B, Hp, Wp});
  }
}

void test_sinusoidal(int64_t n, int freqs, bool include_input, double range) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "sinusoidal_encode/n=%" PRId64 ",num_freqs=%d,include_input=%s,range=%g",
                n, freqs, include_input ? "yes" : "no", range);
  const std::string name = buf;
  if (!begin_case(name)) return;
  Rng rng(5 + n + freqs);
  std::vector<float> pts(3 * n);
  const float special[] = {0.0f, -0.0f, 0.5f, -0.5f, 1.0f, -1.0f, 0.25f, 1.0f / 3};
  for (int64_t i = 0; i < n; ++i) {
    for (int a = 0; a < 3; ++a)
      pts[3 * i + a] = rng.chance(0.05) ? special[rng.integer(0, 7)]
                                        : static_cast<float>(rng.uniform(-range, range));
    if (rng.chance(0.05)) pts[3 * i + rng.integer(0, 2)] = rng.chance(0.5) ? kNaN : -kInf;
  }
  const int64_t D = sinusoidal_width(freqs, include_input);
  auto run = [&](Impl impl, std::vector<float>& out) {
    return run_op([&] {
      SinusoidalEncodeArgs a;
      a.points = pts.data();
      a.n = n;
      a.num_freqs = freqs;
      a.include_input = include_input;
      a.features = out.data();
      sinusoidal_encode(a, impl);
    });
  };
  std::vector<float> want(n * D);
  Outcome wo = run(Impl::kReference, want);
  for (Impl impl : impls_under_test()) {
    const std::string ctx = name + " [" + impl_name(impl) + " vs reference]";
    std::vector<float> got(want.size(), 12345.0f);
    Outcome go = run(impl, got);
    if (same_outcome(ctx, go, wo)) continue;
    check_floats(ctx + " features", got, want, {n, D}, 2e-6);
  }
}

// ---- argument errors and the device plumbing -------------------------------------------

void test_errors() {
  std::vector<Impl> all = {Impl::kReference, Impl::kFast, Impl::kCuda};
  DepthScene s = make_depth(2, 3, 5, DType::kFloat32, true, Content::kValid, 9);
  std::vector<float> pts(3 * 30);
  std::vector<uint8_t> valid(30);
  // Validation runs before dispatch: every Impl (kCuda too, device or not) rejects these.
  for (Impl impl : all) {
    const std::string suffix = std::string(" [") + impl_name(impl) + "]";
    expect_error("errors/backproject zero fx" + suffix, ErrorKind::kInvalidArgument, [&] {
      DepthScene bad = s;
      bad.K[4] = 0;  // frame 1 fx
      backproject(bad.args(pts.data(), valid.data()), impl);
    });
    expect_error("errors/backproject non-finite pose" + suffix, ErrorKind::kInvalidArgument, [&] {
      DepthScene bad = s;
      bad.poses[16 + 7] = kNaN;
      backproject(bad.args(pts.data(), valid.data()), impl);
    });
    expect_error("errors/canonicalize quantile 0.7" + suffix, ErrorKind::kInvalidArgument, [&] {
      CanonicalizeArgs a;
      a.points = pts.data();
      a.points_out = pts.data();
      a.n = 30;
      a.quantile = 0.7;
      canonicalize(a, impl);
    });
    expect_error("errors/scene_points quantile 0.7" + suffix, ErrorKind::kInvalidArgument, [&] {
      ScenePointsArgs a;
      a.bp = s.args(pts.data(), valid.data());
      a.quantile = 0.7;
      scene_points(a, impl);
    });
    expect_error("errors/pool_points patch 0" + suffix, ErrorKind::kInvalidArgument, [&] {
      PoolPointsArgs a;
      a.points = pts.data();
      a.batch = 1;
      a.height = 5;
      a.width = 6;
      a.patch = 0;
      a.pooled = pts.data();
      a.valid = valid.data();
      pool_points(a, impl);
    });
    expect_error("errors/sinusoidal_encode num_freqs 31" + suffix, ErrorKind::kInvalidArgument, [&] {
      SinusoidalEncodeArgs a;
      a.points = pts.data();
      a.n = 1;
      a.num_freqs = 31;
      a.features = pts.data();
      sinusoidal_encode(a, impl);
    });
  }
  expect_error("errors/canonicalize no valid point [reference]", ErrorKind::kInvalidArgument, [&] {
    std::vector<float> p(9, kNaN);
    CanonicalizeArgs a;
    a.points = p.data();
    a.points_out = p.data();
    a.n = 3;
    canonicalize(a, Impl::kReference);
  });

  if (begin_case("device/build_info and cuda_devices")) {
    BuildInfo b = build_info();
    std::string err;
    std::vector<CudaDeviceInfo> devs = cuda_devices(&err);
    std::printf("  cuda_compiled=%d runtime=%d archs='%s' driver=%d devices=%zu%s%s\n",
                b.cuda_compiled, b.cuda_runtime_version, b.cuda_archs.c_str(),
                cuda_driver_version(), devs.size(), devs.empty() ? " why: " : "", err.c_str());
#ifdef SR3D_WITH_CUDA
    record(b.cuda_compiled && b.cuda_runtime_version > 0 && !b.cuda_archs.empty(),
           "device/build_info", "CUDA build must report cuda_compiled, runtime and archs", nullptr);
#else
    record(!b.cuda_compiled, "device/build_info", "CPU build reports cuda_compiled", nullptr);
#endif
    record(!devs.empty() || !err.empty(), "device/cuda_devices",
           "an empty device list must say why", nullptr);
  }

  // Impl::kCuda without a usable device: a typed error, never an abort.
  if (!g_cuda) {
#ifdef SR3D_WITH_CUDA
    const ErrorKind want = ErrorKind::kCuda;
#else
    const ErrorKind want = ErrorKind::kInvalidArgument;  // "built without CUDA"
#endif
    const std::string name = "errors/cuda op without a usable device";
    if (begin_case(name)) {
      Outcome o = run_op([&] { backproject(s.args(pts.data(), valid.data()), Impl::kCuda); });
      std::string detail;
      if (!o.threw) detail = "returned normally";
      else if (o.kind != want) detail = std::string("threw ") + kind_name(o.kind) + ": " + o.msg;
      else std::printf("  ok: %s\n", o.msg.c_str());
#ifdef SR3D_WITH_CUDA
      try {
        backproject(s.args(pts.data(), valid.data()), Impl::kCuda);
      } catch (const Error& e) {
        if (e.call.empty() || e.file.empty() || e.line <= 0)
          detail += " (the CUDA error lacks call/file/line: call='" + e.call + "' file='" +
                    e.file + "' line=" + std::to_string(e.line) + ")";
      }
#endif
      record(detail.empty(), name, detail, nullptr);
    }
  }
}

void run_tests() {
  struct Shape { int64_t F, H, W; };
  const Shape small[] = {{1, 1, 1}, {1, 7, 13}, {2, 5, 3}, {0, 4, 4}, {2, 0, 5}, {1, 13, 7}};
  const DType dtypes[] = {DType::kFloat32, DType::kUint16};
  uint64_t seed = 1;

  // backproject: every small shape x dtype x poses x content, plus 3 frames of 97x211.
  for (const Shape& sh : small)
    for (DType dt : dtypes)
      for (bool poses : {false, true})
        for (Content c : {Content::kValid, Content::kMixed, Content::kInvalid, Content::kHuge})
          test_backproject(make_depth(sh.F, sh.H, sh.W, dt, poses, c, seed++), c);
  for (DType dt : dtypes)
    for (bool poses : {false, true})
      test_backproject(make_depth(3, 97, 211, dt, poses, Content::kMixed, seed++), Content::kMixed);

  // canonicalize: every mode on each input; > 131072 points takes the sampled-bracket path.
  struct PointsCase { PointsKind kind; int64_t n; bool in_place; };
  const PointsCase pcases[] = {
      {PointsKind::kRandom, 0, false},       {PointsKind::kRandom, 1, false},
      {PointsKind::kRandom, 7, false},       {PointsKind::kRandom, 1000, false},
      {PointsKind::kRandom, 1000, true},     {PointsKind::kConstant, 100, false},
      {PointsKind::kConstant, 401408, false},  // one value: the GPU's candidate buffer overflows
      {PointsKind::kAllInvalid, 50, false},  {PointsKind::kScene, 61401, false},
      {PointsKind::kScene, 143269, false},   {PointsKind::kRandom, 401408, true},
      {PointsKind::kAdversarial, 401408, false}};
  for (const PointsCase& pc : pcases)
    for (const ModeCase& m : kAllModes) test_canonicalize(pc.kind, pc.n, m, pc.in_place);

  // The CPU selection's retry path, forced with zero-margin brackets (and the default).
  for (PointsKind k : {PointsKind::kRandom, PointsKind::kScene, PointsKind::kConstant})
    for (double q : {0.01, 0.25})
      for (double margin : {0.0, 1.0})
        test_reduce_retry(k, 200003, q, margin);
  if (g_filter.empty())  // with --filter the retry cases may not have run
    record(g_retry_sweeps > 1, "reduce_retry",
           "no case needed a second sweep: the retry path was not exercised", nullptr);

  // scene_points: small shapes exhaustively, larger ones on a subset.
  for (const Shape& sh : small)
    for (DType dt : dtypes)
      for (bool poses : {false, true})
        for (Content c : {Content::kValid, Content::kMixed, Content::kInvalid})
          for (const ModeCase& m : kAllModes)
            test_scene_points(make_depth(sh.F, sh.H, sh.W, dt, poses, c, seed++), c, m);
  for (const ModeCase& m : kAllModes) {
    test_scene_points(make_depth(1, 7, 13, DType::kFloat32, true, Content::kHuge, 4242), Content::kHuge, m);
    for (DType dt : dtypes)
      for (bool poses : {false, true})
        test_scene_points(make_depth(3, 97, 211, dt, poses, Content::kMixed, seed++), Content::kMixed, m);
    test_scene_points(make_depth(7, 97, 211, DType::kFloat32, true, Content::kMixed, seed++), Content::kMixed, m);
    test_scene_points(make_depth(2, 448, 448, DType::kUint16, true, Content::kMixed, seed++), Content::kMixed, m);
    test_scene_points(make_depth(2, 448, 448, DType::kFloat32, false, Content::kValid, seed++), Content::kValid, m);
  }

  // pool_points
  struct PoolShape { int64_t B, H, W, P; };
  const PoolShape pshapes[] = {{1, 1, 1, 1},     {1, 1, 1, 14},    {1, 7, 13, 3},  {2, 15, 29, 14},
                               {0, 5, 5, 2},     {2, 0, 3, 2},     {2, 28, 28, 14}, {3, 97, 211, 14},
                               {1, 448, 448, 14}};
  for (const PoolShape& p : pshapes)
    for (PoolContent c : {PoolContent::kMixed, PoolContent::kInvalidPatches, PoolContent::kAllInvalid})
      test_pool_points(p.B, p.H, p.W, p.P, c);

  // sinusoidal_encode (the reference's float64 argument is accurate to ~1e-6 up to 2^29 * 1)
  for (int64_t n : {0, 1, 7, 1000, 32768}) {
    test_sinusoidal(n, 16, true, 4.0);
    test_sinusoidal(n, 16, false, 4.0);
    test_sinusoidal(n, 1, true, 4.0);
    test_sinusoidal(n, 0, true, 4.0);
    test_sinusoidal(n, 30, true, 1.0);
  }

  test_errors();
}

// ---- benchmarks ----------------------------------------------------------------------

// Bench inputs: random, never zeros (all depth valid: the full per-pixel work).
DepthScene bench_depth(int64_t F, int64_t H, int64_t W, DType dt, uint64_t seed) {
  return make_depth(F, H, W, dt, true, Content::kValid, seed);
}
double depth_bytes(const DepthScene& s) {  // depth read + points/valid written + K/poses
  const double esize = s.dtype == DType::kUint16 ? 2 : 4;
  return s.pixels() * (esize + 12 + 1) + s.F * (16.0 + (s.has_poses ? 64 : 0));
}
std::string depth_shape(const DepthScene& s) {
  return std::to_string(s.F) + "x" + std::to_string(s.H) + "x" + std::to_string(s.W) + " " +
         dtype_name(s.dtype) + (s.has_poses ? "+pose" : "");
}

struct BenchInputs {
  DepthScene bp_vga = bench_depth(1, 480, 640, DType::kFloat32, 11);
  DepthScene bp_fhd = bench_depth(1, 1080, 1920, DType::kFloat32, 12);
  DepthScene scene_u16 = bench_depth(32, 448, 448, DType::kUint16, 13);
  DepthScene scene_f32 = bench_depth(32, 448, 448, DType::kFloat32, 14);
  std::vector<float> scene_points;  // canonicalize / pool_points input: 32x448x448 world points
  std::vector<float> pe_points;     // sinusoidal_encode input: 32*1024 canonical points
  BenchInputs() {
    scene_points.resize(3 * scene_f32.pixels());
    backproject(scene_f32.args(scene_points.data(), nullptr), Impl::kFast);
    Rng rng(15);
    pe_points.resize(3 * 32 * 1024);
    for (float& v : pe_points) v = static_cast<float>(rng.uniform(-1, 1));
  }
};
const int64_t kScenePx = 32LL * 448 * 448;

void bench_cpu(const BenchInputs& in, std::vector<BenchRow>& rows) {
  const int thr = cpu_threads();
  const double cache = kCpuCacheBytes;
  const double peak = measure_cpu_peak(rows);

  for (const DepthScene* s : {&in.bp_vga, &in.bp_fhd}) {
    std::vector<float> pts(3 * s->pixels());
    std::vector<uint8_t> valid(s->pixels());
    double ms = cpu_median_ms([&] { backproject(s->args(pts.data(), valid.data()), Impl::kFast); });
    rows.push_back(make_row("backproject", depth_shape(*s), "cpu", thr, ms, depth_bytes(*s), peak, cache));
  }
  for (const DepthScene* s : {&in.scene_u16, &in.scene_f32}) {
    std::vector<float> pts(3 * s->pixels());
    std::vector<uint8_t> valid(s->pixels());
    for (bool world : {true, false})
      for (const ModeCase& m : {ModeCase{CanonicalMode::kIsotropic, 0.01},
                                ModeCase{CanonicalMode::kMinMax, 0.0}}) {
        double ms = cpu_median_ms([&] {
          ScenePointsArgs a;
          a.bp = s->args(pts.data(), valid.data());
          a.mode = m.mode;
          a.quantile = m.q;
          a.world_points = world;
          scene_points(a, Impl::kFast);
        });
        std::string label = (m.mode == CanonicalMode::kIsotropic ? " iso q=0.01" : " minmax") +
                            std::string(world ? " world" : " canonical");
        rows.push_back(make_row("scene_points", depth_shape(*s) + label, "cpu", thr, ms,
                                depth_bytes(*s), peak, cache));
      }
  }
  {
    std::vector<float> out(in.scene_points.size());
    double ms = cpu_median_ms([&] {
      CanonicalizeArgs a;
      a.points = in.scene_points.data();
      a.n = kScenePx;
      a.points_out = out.data();
      canonicalize(a, Impl::kFast);
    });
    rows.push_back(make_row("canonicalize", std::to_string(kScenePx) + " pts iso q=0.01", "cpu",
                            thr, ms, 24.0 * kScenePx, peak, cache));
  }
  {
    const int64_t hp = pool_out_size(448, 14), outs = 32 * hp * hp;
    std::vector<float> pooled(3 * outs);
    std::vector<uint8_t> valid(outs);
    double ms = cpu_median_ms([&] {
      PoolPointsArgs a;
      a.points = in.scene_points.data();
      a.batch = 32;
      a.height = a.width = 448;
      a.patch = 14;
      a.pooled = pooled.data();
      a.valid = valid.data();
      pool_points(a, Impl::kFast);
    });
    rows.push_back(make_row("pool_points", "32x448x448 patch 14", "cpu", thr, ms,
                            12.0 * kScenePx + 13.0 * outs, peak, cache));
  }
  {
    const int64_t n = 32 * 1024, D = sinusoidal_width(16, true);
    std::vector<float> feats(n * D);
    double ms = cpu_median_ms([&] {
      SinusoidalEncodeArgs a;
      a.points = in.pe_points.data();
      a.n = n;
      a.features = feats.data();
      sinusoidal_encode(a, Impl::kFast);
    });
    rows.push_back(make_row("sinusoidal_encode", "32768 pts L=16+input", "cpu", thr, ms,
                            12.0 * n + 4.0 * n * D, peak, cache));
  }
}

#ifdef SR3D_WITH_CUDA

struct DeviceDepth {
  cuda::DeviceBuffer<uint8_t> depth;
  cuda::DeviceBuffer<float> K, poses, points;
  cuda::DeviceBuffer<uint8_t> valid;
  BackprojectArgs args;
  explicit DeviceDepth(const DepthScene& s) {
    const size_t esize = s.dtype == DType::kUint16 ? 2 : 4;
    depth.allocate(s.pixels() * esize);
    const void* src = s.dtype == DType::kUint16 ? static_cast<const void*>(s.u16.data())
                                                : static_cast<const void*>(s.f32.data());
    SR3D_CUDA_CHECK(cudaMemcpy(depth.get(), src, depth.bytes(), cudaMemcpyHostToDevice));
    K = to_device(s.K);
    poses = to_device(s.poses);
    points.allocate(3 * s.pixels());
    valid.allocate(s.pixels());
    args = s.args(points.get(), valid.get());
    args.depth = depth.get();
    args.intrinsics = K.get();
    args.poses = s.has_poses ? poses.get() : nullptr;
  }
};

void bench_cuda(const BenchInputs& in, std::vector<BenchRow>& rows) {
  std::string dev;
  if (!bench_cuda_device(&dev)) return;
  const double cache = kGpuCacheBytes;
  cuda::Stream stream_holder;
  cudaStream_t stream = stream_holder.get();
  const double peak = measure_gpu_peak(stream, dev, rows);
  for (const DepthScene* s : {&in.bp_vga, &in.bp_fhd}) {
    DeviceDepth d(*s);
    double ms = gpu_median_ms(stream, [&] { cuda::backproject(d.args, stream); });
    rows.push_back(make_row("backproject", depth_shape(*s), dev, 0, ms, depth_bytes(*s), peak, cache));
  }
  for (const DepthScene* s : {&in.scene_u16, &in.scene_f32}) {
    DeviceDepth d(*s);
    for (bool world : {true, false})
      for (const ModeCase& m : {ModeCase{CanonicalMode::kIsotropic, 0.01},
                                ModeCase{CanonicalMode::kMinMax, 0.0}}) {
        double ms = gpu_median_ms(stream, [&] {
          ScenePointsArgs a;
          a.bp = d.args;
          a.mode = m.mode;
          a.quantile = m.q;
          a.world_points = world;
          cuda::scene_points(a, stream);
        });
        std::string label = (m.mode == CanonicalMode::kIsotropic ? " iso q=0.01" : " minmax") +
                            std::string(world ? " world" : " canonical");
        rows.push_back(make_row("scene_points", depth_shape(*s) + label, dev, 0, ms,
                                depth_bytes(*s), peak, cache));
      }
  }
  cuda::DeviceBuffer<float> scene_pts = to_device(in.scene_points);
  {
    cuda::DeviceBuffer<float> out(scene_pts.size());
    double ms = gpu_median_ms(stream, [&] {
      CanonicalizeArgs a;
      a.points = scene_pts.get();
      a.n = kScenePx;
      a.points_out = out.get();
      cuda::canonicalize(a, stream);
    });
    rows.push_back(make_row("canonicalize", std::to_string(kScenePx) + " pts iso q=0.01", dev, 0,
                            ms, 24.0 * kScenePx, peak, cache));
  }
  {
    const int64_t hp = pool_out_size(448, 14), outs = 32 * hp * hp;
    cuda::DeviceBuffer<float> pooled(3 * outs);
    cuda::DeviceBuffer<uint8_t> valid(outs);
    double ms = gpu_median_ms(stream, [&] {
      PoolPointsArgs a;
      a.points = scene_pts.get();
      a.batch = 32;
      a.height = a.width = 448;
      a.patch = 14;
      a.pooled = pooled.get();
      a.valid = valid.get();
      cuda::pool_points(a, stream);
    });
    rows.push_back(make_row("pool_points", "32x448x448 patch 14", dev, 0, ms,
                            12.0 * kScenePx + 13.0 * outs, peak, cache));
  }
  {
    const int64_t n = 32 * 1024, D = sinusoidal_width(16, true);
    cuda::DeviceBuffer<float> pts = to_device(in.pe_points), feats(n * D);
    double ms = gpu_median_ms(stream, [&] {
      SinusoidalEncodeArgs a;
      a.points = pts.get();
      a.n = n;
      a.features = feats.get();
      cuda::sinusoidal_encode(a, stream);
    });
    rows.push_back(make_row("sinusoidal_encode", "32768 pts L=16+input", dev, 0, ms,
                            12.0 * n + 4.0 * n * D, peak, cache));
  }
}
#endif  // SR3D_WITH_CUDA

void run_bench(const std::string& device, std::vector<BenchRow>& rows) {
  std::fprintf(stderr, "preparing bench inputs...\n");
  BenchInputs in;
  if (device == "cpu" || device == "all") bench_cpu(in, rows);
#ifdef SR3D_WITH_CUDA
  if (device == "cuda" || device == "all") bench_cuda(in, rows);
#endif
}

}  // namespace

int main(int argc, char** argv) { return harness_main(argc, argv, run_tests, run_bench); }
