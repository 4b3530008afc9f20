// Shared plumbing of the N-API bindings (one file per op family includes it): the
// options "baton" reader with the one error-message shape, the Promise-returning
// AsyncWorker that owns a copy of every buffer in flight, and error conversion. Nothing here aborts.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
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

// How an op uses a buffer. Decides what crosses between the user's memory and the op's own.
enum class Access { kIn, kOut, kInOut };

// The native-owned stand-in of one user buffer for the time the op is in flight. A user may
// detach (transfer) an ArrayBuffer while the worker runs, and V8 then frees its memory: the
// kernels never see user memory, only `data` here, which the op owns. Inputs are copied in on
// the JS thread before queueing; outputs are copied back on the JS thread after the work
// (OnOK), where a buffer detached meanwhile is reported instead of written. SharedArrayBuffer
// memory cannot be freed by a detach, so it is used in place (`shadow` empty).
// Shadow memory is recycled: a fresh large block comes from mmap and faults in every page on
// first touch, which here costs ~40x the copy itself (backproject 32x448x448: 6 ms -> 256 ms
// uncached, ~18 ms cached). A few freed blocks (at most 2 GiB) are kept for the next call.
class ShadowPool {
 public:
  struct Block {
    std::unique_ptr<uint8_t[]> p;
    size_t cap = 0;
  };
  static Block take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu());
      auto& fl = free_list();
      for (size_t i = 0; i < fl.size(); ++i) {
        if (fl[i].cap >= bytes && fl[i].cap / 2 <= bytes) {
          Block b = std::move(fl[i]);
          fl.erase(fl.begin() + static_cast<std::ptrdiff_t>(i));
          cached() -= b.cap;
          return b;
        }
      }
    }
    Block b;
    b.p.reset(new uint8_t[bytes]);
    b.cap = bytes;
    return b;
  }
  static void give(Block b) {
    if (!b.p) return;
    std::lock_guard<std::mutex> lock(mu());
    auto& fl = free_list();
    const size_t kMaxBytes = size_t(2) << 30, kMaxBlocks = 8;
    while (!fl.empty() && (fl.size() >= kMaxBlocks || cached() + b.cap > kMaxBytes)) {
      cached() -= fl.front().cap;
      fl.erase(fl.begin());
    }
    if (b.cap > kMaxBytes) return;
    cached() += b.cap;
    fl.push_back(std::move(b));
  }

 private:
  static std::mutex& mu() { static std::mutex m; return m; }
  static std::vector<Block>& free_list() { static std::vector<Block> f; return f; }
  static size_t& cached() { static size_t c = 0; return c; }
};

struct Staged {
  ~Staged() { ShadowPool::give(std::move(shadow)); }
  std::string name;
  Access access = Access::kIn;
  Napi::ObjectReference ref;      // the typed array (keeps a SharedArrayBuffer alive too)
  ShadowPool::Block shadow;       // the op's copy; empty when shared or zero-length
  uint8_t* user = nullptr;        // the user's bytes at queue time (for the overlap check only)
  size_t bytes = 0;
  size_t count = 0;
  void* data() { return shadow.p ? static_cast<void*>(shadow.p.get()) : static_cast<void*>(user); }
};

// Reads and validates the baton; stages every buffer it hands out (see Staged). A nested
// options object (createEngine's `vision`, `llm`, ...) is read through a child Baton whose
// errors name the full path ("vision.hidden", "mlps.a[0].kind") and whose buffers join the
// parent's staged list (the one worker holds them all).
class Baton {
 public:
  // `owner`: the layer that validates every argument of this call before it (e.g. the
  // TypeScript Engine for the engine's methods). Given, an argument this Baton refuses is an
  // internal error naming it (throw_internal_argument); without, the typed argument error.
  explicit Baton(const Napi::CallbackInfo& info, const char* owner = nullptr)
      : env_(info.Env()), staged_(std::make_shared<std::vector<std::unique_ptr<Staged>>>()),
        owner_(owner ? owner : "") {
    if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray())
      fail("an options object", "options", info.Length() ? describe(info[0]) : "nothing");
    opts_ = info[0].As<Napi::Object>();
  }

  // The nested object at `key` (not an array or typed array).
  Baton object(const char* key) {
    Napi::Value v = opts_.Get(key);
    if (!v.IsObject() || v.IsArray() || v.IsTypedArray()) fail("an object", name(key), describe(v));
    return nested(v.As<Napi::Object>(), name(key) + ".");
  }
  // A child over an already validated object (an array element, say); `path` prefixes every
  // key in its error messages. Its buffers are staged into this Baton's list.
  Baton nested(Napi::Object opts, std::string path) const {
    return Baton(env_, opts, std::move(path), staged_, owner_);
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
      fail("an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", name(key), describe(v));
    return static_cast<int64_t>(d);
  }
  double number(const char* key) {
    Napi::Value v = opts_.Get(key);
    if (!v.IsNumber()) fail("a number", name(key), describe(v));
    return v.As<Napi::Number>().DoubleValue();
  }
  double finite_number(const char* key) {
    Napi::Value v = opts_.Get(key);
    if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
      fail("a finite number", name(key), describe(v));
    return v.As<Napi::Number>().DoubleValue();
  }
  bool boolean(const char* key) {
    Napi::Value v = opts_.Get(key);
    if (!v.IsBoolean()) fail("a boolean", name(key), describe(v));
    return v.As<Napi::Boolean>().Value();
  }
  // Any string; "" for undefined / null when optional.
  std::string string(const char* key, bool optional = false) {
    Napi::Value v = opts_.Get(key);
    if (optional && (v.IsUndefined() || v.IsNull())) return std::string();
    if (!v.IsString()) fail("a string", name(key), describe(v));
    return v.As<Napi::String>().Utf8Value();
  }
  std::string str(const char* key, const std::vector<std::string>& allowed) {
    Napi::Value v = opts_.Get(key);
    std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
    for (const auto& a : allowed)
      if (s == a) return s;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "'" : ", '") + a + "'";
    fail("one of " + list, name(key), describe(v));
  }

  // An input typed array of `type` with exactly `count` elements (or null when optional).
  void* array(const char* key, napi_typedarray_type type, int64_t count, bool optional = false) {
    return stage(key, type, count, optional, Access::kIn);
  }
  // An output the op writes (every element it means to set; the rest keep the user's values).
  // `in_place_of`: the input this op may write over when given the very same elements.
  void* output(const char* key, napi_typedarray_type type, int64_t count, bool optional = false,
               const char* in_place_of = nullptr) {
    return stage(key, type, count, optional, Access::kOut, in_place_of);
  }
  // A buffer the op updates in place (read, then written back).
  void* in_out(const char* key, napi_typedarray_type type, int64_t count) {
    return stage(key, type, count, false, Access::kInOut);
  }

  sr3d::Impl impl() {
    std::string s = str("impl", {"reference", "fast", "cuda"});
    if (s == "reference") return sr3d::Impl::kReference;
    if (s == "fast") return sr3d::Impl::kFast;
    device_ = static_cast<int>(integer("device", 0, 1023));
    return sr3d::Impl::kCuda;
  }
  int device() const { return device_; }

  // Every buffer staged by this Baton and its children (queue() moves them to the worker).
  std::vector<std::unique_ptr<Staged>>& staged() { return *staged_; }

  // `key` as error messages name it (with the path of a nested Baton).
  std::string name(const char* key) const { return path_ + key; }

  // An argument error in this Baton's kind (see the constructor).
  [[noreturn]] void fail(const std::string& what, const std::string& name, const std::string& got) const {
    if (owner_.empty()) bad(what, name, got);
    sr3d::throw_internal_argument(what, name, got, owner_);
  }

 private:
  Baton(Napi::Env env, Napi::Object opts, std::string path,
        std::shared_ptr<std::vector<std::unique_ptr<Staged>>> staged, std::string owner)
      : env_(env), opts_(opts), path_(std::move(path)), staged_(std::move(staged)), owner_(std::move(owner)) {}

  void* stage(const char* key, napi_typedarray_type type, int64_t count, bool optional, Access access,
              const char* in_place_of = nullptr) {
    Napi::Value v = opts_.Get(key);
    if (optional && (v.IsNull() || v.IsUndefined())) return nullptr;
    static const char* names[] = {"Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array",
                                  "Uint16Array", "Int32Array", "Uint32Array", "Float32Array",
                                  "Float64Array"};
    std::string what = std::string("a ") + names[type] + " of " + std::to_string(count) + " elements";
    if (!v.IsTypedArray()) fail(what, name(key), describe(v));
    // napi_get_typedarray_info, unlike Napi::ArrayBuffer, also answers for a SharedArrayBuffer.
    napi_typedarray_type got;
    size_t length = 0, offset = 0;
    void* data = nullptr;
    napi_value ab;
    if (napi_get_typedarray_info(env_, v, &got, &length, &data, &ab, &offset) != napi_ok)
      fail(what, name(key), describe(v));
    if (got != type || static_cast<int64_t>(length) != count) fail(what, name(key), describe(v));
    bool plain = false;
    napi_is_arraybuffer(env_, ab, &plain);  // false: a SharedArrayBuffer (nothing else backs a typed array)
    bool detached = false;
    if (plain && napi_is_detached_arraybuffer(env_, ab, &detached) == napi_ok && detached)
      fail("an attached buffer (it was transferred or detached)", name(key), "a detached buffer");
    auto s = std::unique_ptr<Staged>(new Staged());
    s->name = name(key);
    s->access = access;
    s->ref = Napi::Persistent(v.As<Napi::Object>());
    s->count = static_cast<size_t>(count);
    s->bytes = s->count * element_size(type);
    s->user = count == 0 ? nullptr : static_cast<uint8_t*>(data);
    if (in_place_of && s->bytes > 0) {
      for (auto& o : *staged_) {
        if (o->name == name(in_place_of) && o->user == s->user && o->bytes == s->bytes) {
          o->access = Access::kInOut;  // one copy, read then written back
          return o->data();
        }
      }
    }
    check_overlap(*s);
    if (plain && s->bytes > 0) {
      // Outputs are copied in too: a kernel may leave elements unwritten (they keep the
      // user's values, as before staging).
      s->shadow = ShadowPool::take(s->bytes);
      std::memcpy(s->shadow.p.get(), s->user, s->bytes);
    }
    void* p = s->data();
    staged_->push_back(std::move(s));
    // Length 0 may come with a null pointer; kernels never touch it then.
    return count == 0 ? nullptr : p;
  }

  // An output that shares bytes with another argument would be read while written (and, with
  // the copy-back, the last copy would win): refused, naming both. In-place ops take one
  // in_out buffer instead.
  void check_overlap(const Staged& s) const {
    if (s.bytes == 0) return;
    for (const auto& o : *staged_) {
      if (o->bytes == 0 || (s.access == Access::kIn && o->access == Access::kIn)) continue;
      if (s.user < o->user + o->bytes && o->user < s.user + s.bytes)
        fail("a buffer that does not overlap '" + o->name + "' (this op is not in-place safe)", s.name,
            "a view sharing memory with '" + o->name + "'");
    }
  }

  static size_t element_size(napi_typedarray_type t) {
    switch (t) {
      case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: return 1;
      case napi_int16_array: case napi_uint16_array: return 2;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: return 4;
      default: return 8;
    }
  }

  Napi::Env env_;
  Napi::Object opts_;
  std::string path_;
  // Shared with every child Baton (object(), nested()): one list for the worker to hold.
  std::shared_ptr<std::vector<std::unique_ptr<Staged>>> staged_;
  std::string owner_;
  int device_ = -1;
};

// Upper bound of a row / token count or feature size read from JS (2^31).
constexpr int64_t kMaxDim = int64_t(1) << 31;

// Copies the op's outputs back into the user's buffers (JS thread, after the work). A buffer
// detached meanwhile cannot take them: an error naming it, so the caller never reads a result
// that was not written.
inline void copy_back(Napi::Env env, std::vector<std::unique_ptr<Staged>>& staged) {
  for (auto& s : staged) {
    if (s->access == Access::kIn || !s->shadow.p) continue;
    Napi::Value v = s->ref.Value();
    napi_typedarray_type type;
    size_t length = 0, offset = 0;
    void* data = nullptr;
    napi_value ab;
    bool detached = false;
    if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok ||
        (napi_is_detached_arraybuffer(env, ab, &detached) == napi_ok && detached) || data == nullptr ||
        length != s->count)
      bad("an output buffer that stays attached until the op resolves", s->name,
          "a buffer detached (transferred) while the op ran; its result was dropped");
    std::memcpy(data, s->shadow.p.get(), s->bytes);
  }
}

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
  OpWorker(Napi::Env env, std::vector<std::unique_ptr<Staged>>&& staged, int device,
           std::function<void()> work, std::function<Napi::Value(Napi::Env)> result,
           std::function<void(Napi::Env)> settle = nullptr, const char* name = "sr3d")
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        staged_(std::move(staged)),
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
      copy_back(Env(), staged_);
      v = result_(Env());
    } catch (const Error& e) {
      ok = false;
      v = make_error(Env(), e).Value();
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
  std::vector<std::unique_ptr<Staged>> staged_;  // the op's own copies of every buffer in flight
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
  auto* w = new OpWorker(env, std::move(b.staged()), b.device(), std::move(work), std::move(result));
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
