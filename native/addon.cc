// The N-API surface of sr3d. lib/native.ts declares it; nothing else calls it.
//
// Every op takes one options object ("baton"), validates it completely on the JS thread
// (types, sizes with overflow checks, detached buffers), keeps a reference to every typed
// array it touches, and runs the kernel in an AsyncWorker. It returns a Promise; failures
// reject with an Error whose `code` is SR3D_INVALID_ARGUMENT | SR3D_CUDA | SR3D_INTERNAL
// (CUDA errors also carry call, file, line, device). Nothing here aborts the process.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../kernels/backproject.h"
#include "../kernels/canonicalize.h"
#include "../kernels/common.h"
#include "../kernels/device.h"
#include "../kernels/pool_points.h"
#include "../kernels/scene_points.h"
#include "../kernels/sinusoidal_encode.h"

namespace {

using sr3d::Error;
using sr3d::ErrorKind;

const char* code_of(ErrorKind k) {
  switch (k) {
    case ErrorKind::kInvalidArgument: return "SR3D_INVALID_ARGUMENT";
    case ErrorKind::kCuda: return "SR3D_CUDA";
    case ErrorKind::kInternal: return "SR3D_INTERNAL";
  }
  return "SR3D_INTERNAL";
}

Napi::Error make_error(Napi::Env env, const Error& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", code_of(e.kind));
  if (e.kind == ErrorKind::kCuda) {
    err.Set("call", e.call);
    err.Set("file", e.file);
    err.Set("line", Napi::Number::New(env, e.line));
    err.Set("device", Napi::Number::New(env, e.device));
  }
  return err;
}

[[noreturn]] void bad(const std::string& what, const std::string& name, const std::string& got) {
  sr3d::throw_invalid_argument(what, name, got);
}

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) {
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    static const char* names[] = {"Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array",
                                  "Uint16Array", "Int32Array", "Uint32Array", "Float32Array",
                                  "Float64Array", "BigInt64Array", "BigUint64Array"};
    int ty = static_cast<int>(t.TypedArrayType());
    std::string n = ty >= 0 && ty < 11 ? names[ty] : "TypedArray";
    return n + "(" + std::to_string(t.ElementLength()) + ")";
  }
  if (v.IsNumber()) return sr3d::format_number(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  return "an object";
}

// Reads and validates the baton; keeps references to every buffer it hands out.
class Baton {
 public:
  Baton(const Napi::CallbackInfo& info) : env_(info.Env()) {
    if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray())
      bad("an options object", "options", info.Length() ? describe(info[0]) : "nothing");
    opts_ = info[0].As<Napi::Object>();
  }

  int64_t integer(const char* key, int64_t lo, int64_t hi) {
    Napi::Value v = opts_.Get(key);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : std::nan("");
    if (!(d == std::floor(d)) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
      bad("an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", key, describe(v));
    return static_cast<int64_t>(d);
  }
  double number(const char* key) {
    Napi::Value v = opts_.Get(key);
    if (!v.IsNumber()) bad("a number", key, describe(v));
    return v.As<Napi::Number>().DoubleValue();
  }
  bool boolean(const char* key) {
    Napi::Value v = opts_.Get(key);
    if (!v.IsBoolean()) bad("a boolean", key, describe(v));
    return v.As<Napi::Boolean>().Value();
  }
  std::string str(const char* key, const std::vector<std::string>& allowed) {
    Napi::Value v = opts_.Get(key);
    std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
    for (const auto& a : allowed)
      if (s == a) return s;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "'" : ", '") + a + "'";
    bad("one of " + list, key, describe(v));
  }

  // A typed array of `type` with exactly `count` elements (or null when optional).
  void* array(const char* key, napi_typedarray_type type, int64_t count, bool optional = false) {
    Napi::Value v = opts_.Get(key);
    if (optional && (v.IsNull() || v.IsUndefined())) return nullptr;
    static const char* names[] = {"Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array",
                                  "Uint16Array", "Int32Array", "Uint32Array", "Float32Array",
                                  "Float64Array"};
    std::string what = std::string("a ") + names[type] + " of " + std::to_string(count) + " elements";
    if (!v.IsTypedArray()) bad(what, key, describe(v));
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    if (t.TypedArrayType() != type || static_cast<int64_t>(t.ElementLength()) != count)
      bad(what, key, describe(v));
    if (t.ArrayBuffer().IsDetached())
      bad("an attached buffer (it was transferred or detached)", key, "a detached buffer");
    refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    void* data = static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    // Length 0 may come with a null pointer; kernels never touch it then.
    return count == 0 ? nullptr : data;
  }

  sr3d::Impl impl() {
    std::string s = str("impl", {"reference", "fast", "cuda"});
    if (s == "reference") return sr3d::Impl::kReference;
    if (s == "fast") return sr3d::Impl::kFast;
    device_ = static_cast<int>(integer("device", 0, 1023));
    return sr3d::Impl::kCuda;
  }
  int device() const { return device_; }

  std::vector<Napi::ObjectReference>& refs() { return refs_; }

 private:
  Napi::Env env_;
  Napi::Object opts_;
  std::vector<Napi::ObjectReference> refs_;
  int device_ = -1;
};

int64_t checked_mul(std::initializer_list<int64_t> xs, const char* name) {
  const int64_t cap = int64_t(1) << 40;
  int64_t r = 1;
  for (int64_t x : xs) {
    if (x < 0) bad("non-negative sizes", name, std::to_string(x));
    if (x != 0 && r > cap / x) bad("a tensor smaller than 2^40 elements", name, "a larger one");
    r *= x;
  }
  return r;
}

// Runs `work` off the JS thread; resolves with `result(env)`.
class OpWorker : public Napi::AsyncWorker {
 public:
  OpWorker(Napi::Env env, std::vector<Napi::ObjectReference>&& refs, int device,
           std::function<void()> work, std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, "sr3d"),
        deferred_(Napi::Promise::Deferred::New(env)),
        refs_(std::move(refs)),
        device_(device),
        work_(std::move(work)),
        result_(std::move(result)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      if (device_ >= 0) sr3d::cuda_set_device(device_);
      work_();
    } catch (const Error& e) {
      error_.reset(new Error(e));
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      error_.reset(new Error(ErrorKind::kInternal, "sr3d: out of host memory"));
      SetError("out of memory");
    } catch (const std::exception& e) {
      error_.reset(new Error(ErrorKind::kInternal, std::string("sr3d internal error: ") + e.what()));
      SetError(e.what());
    } catch (...) {
      error_.reset(new Error(ErrorKind::kInternal, "sr3d internal error: unknown exception"));
      SetError("unknown");
    }
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(result_(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error&) override {
    Napi::HandleScope scope(Env());
    deferred_.Reject(make_error(Env(), *error_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> refs_;  // pins every buffer in flight
  int device_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::unique_ptr<Error> error_;
};

// Wraps an op body: argument errors reject the promise (never throw synchronously).
template <typename F>
Napi::Value run_op(const Napi::CallbackInfo& info, F build) {
  Napi::Env env = info.Env();
  try {
    return build(info);
  } catch (const Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(make_error(env, e).Value());
    return d.Promise();
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  } catch (const std::exception& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(make_error(env, Error(ErrorKind::kInternal, e.what())).Value());
    return d.Promise();
  }
}

Napi::Value queue(Napi::Env env, Baton& b, std::function<void()> work,
                  std::function<Napi::Value(Napi::Env)> result) {
  auto* w = new OpWorker(env, std::move(b.refs()), b.device(), std::move(work), std::move(result));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value undefined_result(Napi::Env env) { return env.Undefined(); }

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
  double scale = b.number("depthScale");
  if (!(scale > 0) || !(scale <= std::numeric_limits<float>::max()))
    bad("a finite positive number (metres per depth unit)", "depthScale", sr3d::format_number(scale));
  a.depth_scale = static_cast<float>(scale);
  a.intrinsics = static_cast<const float*>(b.array("intrinsics", napi_float32_array, 4 * a.frames));
  a.poses = static_cast<const float*>(b.array("poses", napi_float32_array, 16 * a.frames, true));
  a.points = static_cast<float*>(b.array("points", napi_float32_array, 3 * n));
  a.valid = static_cast<uint8_t*>(b.array("valid", napi_uint8_array, n));
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
    a.points_out = static_cast<float*>(b.array("out", napi_float32_array, 3 * a.n));
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
    a.pooled = static_cast<float*>(b.array("pooled", napi_float32_array, 3 * m));
    a.valid = static_cast<uint8_t*>(b.array("valid", napi_uint8_array, m));
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
        b.array("features", napi_float32_array, checked_mul({a.n, w}, "features")));
    sr3d::sinusoidal_encode_check(a);
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [a, impl] { sr3d::sinusoidal_encode(a, impl); }, undefined_result);
  });
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sr3d::BuildInfo bi = sr3d::build_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cudaCompiled", bi.cuda_compiled);
  o.Set("cudaRuntimeVersion", Napi::Number::New(env, bi.cuda_runtime_version));
  o.Set("cudaArchs", bi.cuda_archs);
  o.Set("cpuThreads", Napi::Number::New(env, sr3d::cpu_threads()));
  o.Set("simd", sr3d::cpu_simd());
  return o;
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string why;
  std::vector<sr3d::CudaDeviceInfo> ds = sr3d::cuda_devices(&why);
  Napi::Object o = Napi::Object::New(env);
  Napi::Array arr = Napi::Array::New(env, ds.size());
  for (size_t i = 0; i < ds.size(); ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", Napi::Number::New(env, ds[i].index));
    d.Set("name", ds[i].name);
    d.Set("totalMemory", Napi::Number::New(env, static_cast<double>(ds[i].total_memory)));
    d.Set("computeCapability", std::to_string(ds[i].major) + "." + std::to_string(ds[i].minor));
    d.Set("multiprocessors", Napi::Number::New(env, ds[i].multiprocessors));
    arr.Set(static_cast<uint32_t>(i), d);
  }
  o.Set("devices", arr);
  o.Set("reason", why);
  o.Set("driverVersion", Napi::Number::New(env, sr3d::cuda_driver_version()));
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double n = info.Length() && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(n >= 0 && n <= 256 && n == std::floor(n))) {
    Napi::Error e = Napi::Error::New(
        env, "Expected an integer in [0, 256] (0 = default) for threads but received " +
                 (info.Length() ? describe(info[0]) : std::string("nothing")));
    e.Set("code", "SR3D_INVALID_ARGUMENT");
    throw e;
  }
  sr3d::set_cpu_threads(static_cast<int>(n));
  return Napi::Number::New(env, sr3d::cpu_threads());
}

// STREAM-like triad a = b + s*c on the kernels' thread pool: the bandwidth peak the
// benchmarks report against, measured in the same process and run.
Napi::Value Triad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto arr = [&](size_t i) -> Napi::Float32Array {
    if (info.Length() <= i || !info[i].IsTypedArray() ||
        info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      Napi::Error e = Napi::Error::New(env, "Expected three Float32Arrays of equal length for triad but received " +
                                                (info.Length() > i ? describe(info[i]) : std::string("nothing")));
      e.Set("code", "SR3D_INVALID_ARGUMENT");
      throw e;
    }
    return info[i].As<Napi::Float32Array>();
  };
  Napi::Float32Array a = arr(0), b = arr(1), c = arr(2);
  size_t n = a.ElementLength();
  if (b.ElementLength() != n || c.ElementLength() != n) {
    Napi::Error e = Napi::Error::New(env, "Expected three Float32Arrays of equal length for triad but received different lengths");
    e.Set("code", "SR3D_INVALID_ARGUMENT");
    throw e;
  }
  float* pa = a.Data();
  const float *pb = b.Data(), *pc = c.Data();
  const float scalar = 3.0f;
  sr3d::parallel_for(static_cast<int64_t>(n), 0, [&](int, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) pa[i] = pb[i] + scalar * pc[i];
  });
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("triad", Napi::Function::New(env, Triad));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  exports.Set("devices", Napi::Function::New(env, Devices));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("backproject", Napi::Function::New(env, Backproject));
  exports.Set("scenePoints", Napi::Function::New(env, ScenePoints));
  exports.Set("canonicalize", Napi::Function::New(env, Canonicalize));
  exports.Set("poolPoints", Napi::Function::New(env, PoolPoints));
  exports.Set("sinusoidalEncode", Napi::Function::New(env, SinusoidalEncode));
#ifdef SR3D_WITH_CUDA
  exports.Set("variant", "cuda");
#else
  exports.Set("variant", "cpu");
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(sr3d, Init)
