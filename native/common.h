// Shared plumbing of the N-API bindings (one file per op family includes it): the
// options "baton" reader with the one error-message shape, the Promise-returning
// AsyncWorker that pins every buffer in flight, and error conversion. Nothing here aborts.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../kernels/common.h"
#include "../kernels/device.h"

namespace sr3d_napi {


using sr3d::Error;
using sr3d::ErrorKind;

inline const char* code_of(ErrorKind k) {
  switch (k) {
    case ErrorKind::kInvalidArgument: return "SR3D_INVALID_ARGUMENT";
    case ErrorKind::kCuda: return "SR3D_CUDA";
    case ErrorKind::kInternal: return "SR3D_INTERNAL";
    case ErrorKind::kCudaOutOfMemory: return "SR3D_CUDA_OUT_OF_MEMORY";
  }
  return "SR3D_INTERNAL";
}

inline Napi::Error make_error(Napi::Env env, const Error& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", code_of(e.kind));
  if (e.kind == ErrorKind::kCuda || e.kind == ErrorKind::kCudaOutOfMemory) {
    err.Set("call", e.call);
    err.Set("file", e.file);
    err.Set("line", Napi::Number::New(env, e.line));
    err.Set("device", Napi::Number::New(env, e.device));
  }
  if (e.kind == ErrorKind::kCudaOutOfMemory) {
    err.Set("requestedBytes", Napi::Number::New(env, static_cast<double>(e.requested_bytes)));
    err.Set("freeBytes", Napi::Number::New(env, static_cast<double>(e.free_bytes)));
    err.Set("totalBytes", Napi::Number::New(env, static_cast<double>(e.total_bytes)));
  }
  return err;
}

[[noreturn]] inline void bad(const std::string& what, const std::string& name, const std::string& got) {
  sr3d::throw_invalid_argument(what, name, got);
}

inline std::string describe(const Napi::Value& v) {
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

// Reads and validates the baton; keeps references to every buffer it hands out. A nested
// options object (createEngine's `vision`, `llm`, ...) is read through a child Baton whose
// errors name the full path ("vision.hidden", "mlps.a[0].kind").
class Baton {
 public:
  Baton(const Napi::CallbackInfo& info) : env_(info.Env()) {
    if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray())
      bad("an options object", "options", info.Length() ? describe(info[0]) : "nothing");
    opts_ = info[0].As<Napi::Object>();
  }
  // Over an already validated object; `path` prefixes every key in error messages.
  Baton(Napi::Env env, Napi::Object opts, std::string path)
      : env_(env), opts_(opts), path_(std::move(path)) {}

  // The nested object at `key` (not an array or typed array).
  Baton object(const char* key) {
    Napi::Value v = opts_.Get(key);
    if (!v.IsObject() || v.IsArray() || v.IsTypedArray()) bad("an object", name(key), describe(v));
    return Baton(env_, v.As<Napi::Object>(), name(key) + ".");
  }
  // Whether `key` holds something other than undefined / null.
  bool has(const char* key) {
    Napi::Value v = opts_.Get(key);
    return !(v.IsUndefined() || v.IsNull());
  }
  Napi::Value value(const char* key) { return opts_.Get(key); }
  Napi::Object options() const { return opts_; }

  int64_t integer(const char* key, int64_t lo, int64_t hi) {
    Napi::Value v = opts_.Get(key);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : std::nan("");
    if (!(d == std::floor(d)) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
      bad("an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", name(key), describe(v));
    return static_cast<int64_t>(d);
  }
  double number(const char* key) {
    Napi::Value v = opts_.Get(key);
    if (!v.IsNumber()) bad("a number", name(key), describe(v));
    return v.As<Napi::Number>().DoubleValue();
  }
  double finite_number(const char* key) {
    Napi::Value v = opts_.Get(key);
    if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
      bad("a finite number", name(key), describe(v));
    return v.As<Napi::Number>().DoubleValue();
  }
  bool boolean(const char* key) {
    Napi::Value v = opts_.Get(key);
    if (!v.IsBoolean()) bad("a boolean", name(key), describe(v));
    return v.As<Napi::Boolean>().Value();
  }
  // Any string; "" for undefined / null when optional.
  std::string string(const char* key, bool optional = false) {
    Napi::Value v = opts_.Get(key);
    if (optional && (v.IsUndefined() || v.IsNull())) return std::string();
    if (!v.IsString()) bad("a string", name(key), describe(v));
    return v.As<Napi::String>().Utf8Value();
  }
  std::string str(const char* key, const std::vector<std::string>& allowed) {
    Napi::Value v = opts_.Get(key);
    std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
    for (const auto& a : allowed)
      if (s == a) return s;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "'" : ", '") + a + "'";
    bad("one of " + list, name(key), describe(v));
  }

  // A typed array of `type` with exactly `count` elements (or null when optional).
  void* array(const char* key, napi_typedarray_type type, int64_t count, bool optional = false) {
    Napi::Value v = opts_.Get(key);
    if (optional && (v.IsNull() || v.IsUndefined())) return nullptr;
    static const char* names[] = {"Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array",
                                  "Uint16Array", "Int32Array", "Uint32Array", "Float32Array",
                                  "Float64Array"};
    std::string what = std::string("a ") + names[type] + " of " + std::to_string(count) + " elements";
    if (!v.IsTypedArray()) bad(what, name(key), describe(v));
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    if (t.TypedArrayType() != type || static_cast<int64_t>(t.ElementLength()) != count)
      bad(what, name(key), describe(v));
    if (t.ArrayBuffer().IsDetached())
      bad("an attached buffer (it was transferred or detached)", name(key), "a detached buffer");
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

  // `key` as error messages name it (with the path of a nested Baton).
  std::string name(const char* key) const { return path_ + key; }

 private:
  Napi::Env env_;
  Napi::Object opts_;
  std::string path_;
  std::vector<Napi::ObjectReference> refs_;
  int device_ = -1;
};

// Upper bound of a row / token count or feature size read from JS (2^31).
constexpr int64_t kMaxDim = int64_t(1) << 31;

inline int64_t checked_mul(std::initializer_list<int64_t> xs, const char* name) {
  const int64_t cap = int64_t(1) << 40;
  int64_t r = 1;
  for (int64_t x : xs) {
    if (x < 0) bad("non-negative sizes", name, std::to_string(x));
    if (x != 0 && r > cap / x) bad("a tensor smaller than 2^40 elements", name, "a larger one");
    r *= x;
  }
  return r;
}

// Runs fn on a worker thread and turns any exception into a stored sr3d::Error (none may escape
// a worker thread; the Promise is rejected with it on the JS thread). `oom` is the message for
// std::bad_alloc.
inline std::unique_ptr<Error> capture_errors(const std::function<void()>& fn,
                                             const char* oom = "sr3d: out of host memory") {
  try {
    fn();
  } catch (const Error& e) {
    return std::unique_ptr<Error>(new Error(e));
  } catch (const std::bad_alloc&) {
    return std::unique_ptr<Error>(new Error(ErrorKind::kInternal, oom));
  } catch (const std::exception& e) {
    return std::unique_ptr<Error>(new Error(ErrorKind::kInternal, std::string("sr3d internal error: ") + e.what()));
  } catch (...) {
    return std::unique_ptr<Error>(new Error(ErrorKind::kInternal, "sr3d internal error: unknown exception"));
  }
  return nullptr;
}

// Runs `work` off the JS thread (on CUDA device `device` when >= 0); resolves with
// `result(env)`. `settle`, when given, runs on the JS thread after `result` and before the
// promise settles, on success and on error alike (the engine clears its busy flag there).
class OpWorker : public Napi::AsyncWorker {
 public:
  OpWorker(Napi::Env env, std::vector<Napi::ObjectReference>&& refs, int device,
           std::function<void()> work, std::function<Napi::Value(Napi::Env)> result,
           std::function<void(Napi::Env)> settle = nullptr, const char* name = "sr3d")
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        refs_(std::move(refs)),
        device_(device),
        work_(std::move(work)),
        result_(std::move(result)),
        settle_(std::move(settle)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    error_ = capture_errors([&] {
      if (device_ >= 0) sr3d::cuda_set_device(device_);
      work_();
    });
    if (error_) SetError(error_->what());
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    Napi::Value v;
    bool ok = true;
    try {
      v = result_(Env());
    } catch (const Napi::Error& e) {
      ok = false;
      v = e.Value();
    }
    if (settle_) settle_(Env());
    if (ok) deferred_.Resolve(v);
    else deferred_.Reject(v);
  }
  void OnError(const Napi::Error&) override {
    Napi::HandleScope scope(Env());
    if (settle_) settle_(Env());
    deferred_.Reject(make_error(Env(), *error_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> refs_;  // pins every buffer in flight
  int device_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::function<void(Napi::Env)> settle_;
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

inline Napi::Value queue(Napi::Env env, Baton& b, std::function<void()> work,
                  std::function<Napi::Value(Napi::Env)> result) {
  auto* w = new OpWorker(env, std::move(b.refs()), b.device(), std::move(work), std::move(result));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

inline Napi::Value undefined_result(Napi::Env env) { return env.Undefined(); }

// Each op family registers its functions on the exports (native/<family>.cc).
void register_geometry(Napi::Env env, Napi::Object exports);
void register_tiling(Napi::Env env, Napi::Object exports);
void register_region(Napi::Env env, Napi::Object exports);
void register_nn(Napi::Env env, Napi::Object exports);
void register_engine(Napi::Env env, Napi::Object exports);

}  // namespace sr3d_napi
