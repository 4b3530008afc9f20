// N-API bindings of the geometry ops (kernels/backproject, canonicalize, scene_points,
// pool_points, sinusoidal_encode). See native/common.h for the conventions.
#include "common.h"

#include "../kernels/backproject.h"
#include "../kernels/canonicalize.h"
#include "../kernels/pool_points.h"
#include "../kernels/scene_points.h"
#include "../kernels/sinusoidal_encode.h"

namespace sr3d_napi {
namespace {

Napi::Object transform_object(Napi::Env env, const sr3d::CanonicalTransform& t) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Array c = Napi::Array::New(env, 3), s = Napi::Array::New(env, 3);
  for (uint32_t i = 0; i < 3; ++i) {
    c.Set(i, Napi::Number::New(env, t.center[i]));
    s.Set(i, Napi::Number::New(env, t.scale[i]));
  }
  o.Set("center", c);
  o.Set("scale", s);
  o.Set("validCount", Napi::Number::New(env, static_cast<double>(t.valid_count)));
  return o;
}

sr3d::BackprojectArgs read_backproject(Baton& b) {
  sr3d::BackprojectArgs a;
  a.frames = b.integer("frames", 0, 1 << 20);
  a.height = b.integer("height", 0, 1 << 20);
  a.width = b.integer("width", 0, 1 << 20);
  int64_t n = checked_mul({a.frames, a.height, a.width}, "depth");
  std::string dt = b.str("depthDtype", {"float32", "uint16"});
  a.depth_dtype = dt == "uint16" ? sr3d::DType::kUint16 : sr3d::DType::kFloat32;
  a.depth = b.array("depth", dt == "uint16" ? napi_uint16_array : napi_float32_array, n);
  // lib/validate.ts owns the depthScale rule (isDepthScale); backproject_check below is the
  // kernel's own guard (a NaN, 0 or Infinity after the float32 cast).
  a.depth_scale = static_cast<float>(b.number("depthScale"));
  a.intrinsics = static_cast<const float*>(b.array("intrinsics", napi_float32_array, 4 * a.frames));
  a.poses = static_cast<const float*>(b.array("poses", napi_float32_array, 16 * a.frames, true));
  a.points = static_cast<float*>(b.output("points", napi_float32_array, 3 * n));
  a.valid = static_cast<uint8_t*>(b.output("valid", napi_uint8_array, n));
  sr3d::backproject_check(a);
  return a;
}

sr3d::CanonicalMode read_mode(Baton& b) {
  std::string m = b.str("mode", {"isotropic", "minmax", "metric"});
  return m == "minmax" ? sr3d::CanonicalMode::kMinMax
         : m == "metric" ? sr3d::CanonicalMode::kMetric
                         : sr3d::CanonicalMode::kIsotropic;
}

Napi::Value Backproject(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    sr3d::BackprojectArgs a = read_backproject(b);
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [a, impl] { sr3d::backproject(a, impl); }, undefined_result);
  });
}

Napi::Value ScenePoints(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    sr3d::ScenePointsArgs a;
    a.bp = read_backproject(b);
    a.mode = read_mode(b);
    a.quantile = b.number("quantile");
    a.world_points = b.str("output", {"canonical", "world"}) == "world";
    sr3d::Impl impl = b.impl();
    auto t = std::make_shared<sr3d::CanonicalTransform>();
    return queue(info.Env(), b, [a, impl, t] { *t = sr3d::scene_points(a, impl); },
                 [t](Napi::Env env) -> Napi::Value { return transform_object(env, *t); });
  });
}

Napi::Value Canonicalize(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    sr3d::CanonicalizeArgs a;
    a.n = b.integer("count", 0, int64_t(1) << 38);
    a.points = static_cast<const float*>(b.array("points", napi_float32_array, 3 * a.n));
    a.points_out = static_cast<float*>(b.output("out", napi_float32_array, 3 * a.n, false, "points"));
    a.mode = read_mode(b);
    a.quantile = b.number("quantile");
    sr3d::canonicalize_check(a);
    sr3d::Impl impl = b.impl();
    auto t = std::make_shared<sr3d::CanonicalTransform>();
    return queue(info.Env(), b, [a, impl, t] { *t = sr3d::canonicalize(a, impl); },
                 [t](Napi::Env env) -> Napi::Value { return transform_object(env, *t); });
  });
}

Napi::Value PoolPoints(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    sr3d::PoolPointsArgs a;
    a.batch = b.integer("batch", 0, int64_t(1) << 30);
    a.height = b.integer("height", 0, 1 << 20);
    a.width = b.integer("width", 0, 1 << 20);
    a.patch = b.integer("patch", 1, 1 << 20);
    int64_t n = checked_mul({a.batch, a.height, a.width}, "points");
    int64_t m = checked_mul({a.batch, sr3d::pool_out_size(a.height, a.patch),
                             sr3d::pool_out_size(a.width, a.patch)}, "pooled");
    a.points = static_cast<const float*>(b.array("points", napi_float32_array, 3 * n));
    a.pooled = static_cast<float*>(b.output("pooled", napi_float32_array, 3 * m));
    a.valid = static_cast<uint8_t*>(b.output("valid", napi_uint8_array, m));
    sr3d::pool_points_check(a);
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [a, impl] { sr3d::pool_points(a, impl); }, undefined_result);
  });
}

Napi::Value SinusoidalEncode(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    sr3d::SinusoidalEncodeArgs a;
    a.n = b.integer("count", 0, int64_t(1) << 34);
    a.num_freqs = static_cast<int>(b.integer("numFreqs", 0, 30));
    a.include_input = b.boolean("includeInput");
    int64_t w = sr3d::sinusoidal_width(a.num_freqs, a.include_input);
    a.points = static_cast<const float*>(b.array("points", napi_float32_array, 3 * a.n));
    a.features = static_cast<float*>(
        b.output("features", napi_float32_array, checked_mul({a.n, w}, "features")));
    sr3d::sinusoidal_encode_check(a);
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [a, impl] { sr3d::sinusoidal_encode(a, impl); }, undefined_result);
  });
}

}  // namespace

void register_geometry(Napi::Env env, Napi::Object exports) {
  exports.Set("backproject", Napi::Function::New(env, Backproject));
  exports.Set("scenePoints", Napi::Function::New(env, ScenePoints));
  exports.Set("canonicalize", Napi::Function::New(env, Canonicalize));
  exports.Set("poolPoints", Napi::Function::New(env, PoolPoints));
  exports.Set("sinusoidalEncode", Napi::Function::New(env, SinusoidalEncode));
}

}  // namespace sr3d_napi
