// N-API bindings of the neural-network ops (kernels/nn.h) and of the inference engine
// (kernels/engine.h). See native/common.h for the conventions.
//
// The engine is an ObjectWrap ("NativeEngine", never constructed from JS: createEngine
// resolves with one). Its rules:
//  - One call at a time: a call made while another is in flight rejects with code
//    SR3D_ENGINE_BUSY (the TypeScript Engine queues its calls, so users never see it).
//  - After dispose() every method rejects (info() and seed() throw) with code
//    SR3D_ENGINE_DISPOSED. dispose() during a call waits for it, then frees; a second
//    dispose() is a no-op.
//  - The CPU engine borrows the weight buffers: a reference to every one is kept until
//    dispose / finalization. The CUDA engine copies them at creation; the references are
//    dropped then.
//  - Engine-owned host memory (KV cache, scratch) is reported to V8 with
//    AdjustExternalMemory after every call.
#include "common.h"

#include <map>

#include "../kernels/engine.h"
#include "../kernels/nn.h"

namespace sr3d_napi {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 31;

sr3d::WType read_wtype(Baton& b, const char* key) {
  std::string s = b.str(key, {"f32", "f16", "bf16"});
  return s == "f32" ? sr3d::WType::kF32 : s == "f16" ? sr3d::WType::kF16 : sr3d::WType::kBF16;
}

// A weight of `rows` x `cols` in `dtype`: a Float32Array for f32, a Uint16Array (raw bits) else.
sr3d::WeightRef read_weight(Baton& b, const char* key, const char* dtype_key, int64_t rows,
                            int64_t cols) {
  sr3d::WeightRef w;
  w.type = read_wtype(b, dtype_key);
  w.rows = rows;
  w.cols = cols;
  w.data = b.array(key, w.type == sr3d::WType::kF32 ? napi_float32_array : napi_uint16_array,
                   checked_mul({rows, cols}, key));
  return w;
}

float read_eps(Baton& b, const char* key) {
  double e = b.number(key);
  if (!(e > 0) || !(e < 1)) bad("a number in (0, 1)", key, sr3d::format_number(e));
  return static_cast<float>(e);
}

// ---- op level --------------------------------------------------------------------------

Napi::Value Linear(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const int64_t n = b.integer("n", 0, kMaxDim);
    const int64_t in = b.integer("inDim", 1, kMaxDim), out = b.integer("outDim", 1, kMaxDim);
    const float* x = static_cast<const float*>(b.array("x", napi_float32_array, checked_mul({n, in}, "x")));
    sr3d::WeightRef w = read_weight(b, "weight", "weightDtype", out, in);
    const float* bias = static_cast<const float*>(b.array("bias", napi_float32_array, out, true));
    float* y = static_cast<float*>(b.output("out", napi_float32_array, checked_mul({n, out}, "out")));
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [=] { sr3d::linear(x, n, w, bias, y, impl); }, undefined_result);
  });
}

Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const int64_t n = b.integer("n", 0, kMaxDim), d = b.integer("d", 1, kMaxDim);
    const int64_t count = checked_mul({n, d}, "x");
    const float* x = static_cast<const float*>(b.array("x", napi_float32_array, count));
    const float* gamma = static_cast<const float*>(b.array("gamma", napi_float32_array, d));
    const float* beta = static_cast<const float*>(b.array("beta", napi_float32_array, d));
    const float eps = read_eps(b, "eps");
    float* y = static_cast<float*>(b.output("out", napi_float32_array, count));
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [=] { sr3d::layer_norm(x, n, d, gamma, beta, eps, y, impl); },
                 undefined_result);
  });
}

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const int64_t n = b.integer("n", 0, kMaxDim), d = b.integer("d", 1, kMaxDim);
    const int64_t count = checked_mul({n, d}, "x");
    const float* x = static_cast<const float*>(b.array("x", napi_float32_array, count));
    const float* gamma = static_cast<const float*>(b.array("gamma", napi_float32_array, d));
    const float eps = read_eps(b, "eps");
    float* y = static_cast<float*>(b.output("out", napi_float32_array, count));
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [=] { sr3d::rms_norm(x, n, d, gamma, eps, y, impl); },
                 undefined_result);
  });
}

sr3d::Act read_act(Baton& b) {
  std::string a = b.str("act", {"gelu_tanh", "gelu_erf", "silu"});
  return a == "gelu_tanh" ? sr3d::Act::kGeluTanh
         : a == "gelu_erf" ? sr3d::Act::kGeluErf
                           : sr3d::Act::kSilu;
}

// In place on x.
Napi::Value Activation(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const int64_t count = b.integer("count", 0, int64_t(1) << 40);
    float* x = static_cast<float*>(b.in_out("x", napi_float32_array, count));
    const sr3d::Act act = read_act(b);
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [=] { sr3d::activation(x, count, act, impl); }, undefined_result);
  });
}

Napi::Value SiluMul(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const int64_t count = b.integer("count", 0, int64_t(1) << 40);
    const float* gate = static_cast<const float*>(b.array("gate", napi_float32_array, count));
    const float* up = static_cast<const float*>(b.array("up", napi_float32_array, count));
    float* out = static_cast<float*>(b.output("out", napi_float32_array, count));
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [=] { sr3d::silu_mul(gate, up, count, out, impl); }, undefined_result);
  });
}

// In place on x [tokens][heads][headDim].
Napi::Value Rope(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const int64_t tokens = b.integer("tokens", 0, kMaxDim), heads = b.integer("heads", 1, 1 << 16);
    const int64_t hd = b.integer("headDim", 2, 1 << 16);
    if (hd % 2) bad("an even head dimension (rotate_half pairs i and i + d/2)", "headDim", std::to_string(hd));
    float* x = static_cast<float*>(b.in_out("x", napi_float32_array, checked_mul({tokens, heads, hd}, "x")));
    const int32_t* pos = static_cast<const int32_t*>(b.array("positions", napi_int32_array, tokens));
    for (int64_t i = 0; i < tokens; ++i)
      if (pos[i] < 0) bad("non-negative positions", "positions", "position " + std::to_string(pos[i]) + " at index " + std::to_string(i));
    const double theta = b.number("theta");
    if (!(theta > 1) || !std::isfinite(theta)) bad("a finite RoPE base > 1", "theta", sr3d::format_number(theta));
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [=] { sr3d::rope(x, tokens, heads, hd, pos, theta, impl); }, undefined_result);
  });
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const int64_t nq = b.integer("nq", 0, kMaxDim), nk = b.integer("nk", 1, kMaxDim);
    const int64_t hq = b.integer("hq", 1, 1 << 16), hkv = b.integer("hkv", 1, 1 << 16);
    const int64_t d = b.integer("d", 1, 1 << 16);
    if (hq % hkv) bad("a query head count divisible by the KV head count (" + std::to_string(hkv) + ")", "hq", std::to_string(hq));
    const float* q = static_cast<const float*>(b.array("q", napi_float32_array, checked_mul({nq, hq, d}, "q")));
    const float* k = static_cast<const float*>(b.array("k", napi_float32_array, checked_mul({nk, hkv, d}, "k")));
    const float* v = static_cast<const float*>(b.array("v", napi_float32_array, checked_mul({nk, hkv, d}, "v")));
    const double scale = b.number("scale");
    if (!std::isfinite(scale) || !(scale > 0)) bad("a finite positive scale", "scale", sr3d::format_number(scale));
    const bool causal = b.boolean("causal");
    const int64_t q_offset = b.integer("qOffset", 0, kMaxDim);
    float* out = static_cast<float*>(b.output("out", napi_float32_array, checked_mul({nq, hq, d}, "out")));
    sr3d::Impl impl = b.impl();
    const float s = static_cast<float>(scale);
    return queue(info.Env(), b,
                 [=] { sr3d::attention(q, k, v, nq, nk, hq, hkv, d, s, causal, q_offset, out, impl); },
                 undefined_result);
  });
}

Napi::Value SpaceToChannel3(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const int64_t n = b.integer("n", 0, kMaxDim), g = b.integer("g", 1, 1 << 16);
    const int64_t c = b.integer("c", 1, kMaxDim);
    const int64_t G = (g + 2) / 3;
    const float* x = static_cast<const float*>(b.array("x", napi_float32_array, checked_mul({n, g, g, c}, "x")));
    float* y = static_cast<float*>(b.output("out", napi_float32_array, checked_mul({n, G, G, 9, c}, "out")));
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [=] { sr3d::space_to_channel3(x, n, g, c, y, impl); }, undefined_result);
  });
}

Napi::Value PatchEmbed(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const int64_t n = b.integer("n", 0, 1 << 20), size = b.integer("size", 1, 1 << 16);
    const int64_t patch = b.integer("patch", 1, 1 << 12), hidden = b.integer("hidden", 1, 1 << 20);
    if (size % patch) bad("an image size divisible by the patch size (" + std::to_string(patch) + ")", "size", std::to_string(size));
    const int64_t tokens = (size / patch) * (size / patch);
    const float* img = static_cast<const float*>(b.array("img", napi_float32_array, checked_mul({n, 3, size, size}, "img")));
    sr3d::WeightRef w = read_weight(b, "weight", "weightDtype", hidden, 3 * patch * patch);
    const float* bias = static_cast<const float*>(b.array("bias", napi_float32_array, hidden, true));
    float* out = static_cast<float*>(b.output("out", napi_float32_array, checked_mul({n, tokens, hidden}, "out")));
    sr3d::Impl impl = b.impl();
    return queue(info.Env(), b, [=] { sr3d::patch_embed(img, n, size, patch, w, bias, out, impl); },
                 undefined_result);
  });
}

// ---- nested option readers (createEngine) ------------------------------------------------

Napi::Object get_object(Napi::Object o, const char* key, const std::string& name) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray()) bad("an object", name, describe(v));
  return v.As<Napi::Object>();
}
int64_t get_int(Napi::Object o, const char* key, const std::string& name, int64_t lo, int64_t hi) {
  Napi::Value v = o.Get(key);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : std::nan("");
  if (!(d == std::floor(d)) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
    bad("an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", name, describe(v));
  return static_cast<int64_t>(d);
}
double get_number(Napi::Object o, const char* key, const std::string& name) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue())) bad("a finite number", name, describe(v));
  return v.As<Napi::Number>().DoubleValue();
}
float get_eps(Napi::Object o, const char* key, const std::string& name) {
  double e = get_number(o, key, name);
  if (!(e > 0) || !(e < 1)) bad("a number in (0, 1)", name, sr3d::format_number(e));
  return static_cast<float>(e);
}
std::string get_string(Napi::Object o, const char* key, const std::string& name, bool optional = false) {
  Napi::Value v = o.Get(key);
  if (optional && (v.IsUndefined() || v.IsNull())) return std::string();
  if (!v.IsString()) bad("a string", name, describe(v));
  return v.As<Napi::String>().Utf8Value();
}
bool get_bool(Napi::Object o, const char* key, const std::string& name) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) bad("a boolean", name, describe(v));
  return v.As<Napi::Boolean>().Value();
}
bool present(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  return !(v.IsUndefined() || v.IsNull());
}

sr3d::VisionSpec read_vision(Napi::Object o) {
  sr3d::VisionSpec s;
  s.hidden = get_int(o, "hidden", "vision.hidden", 1, 1 << 20);
  s.heads = get_int(o, "heads", "vision.heads", 1, 1 << 12);
  if (s.hidden % s.heads) bad("a head count dividing vision.hidden (" + std::to_string(s.hidden) + ")", "vision.heads", std::to_string(s.heads));
  s.intermediate = get_int(o, "intermediate", "vision.intermediate", 1, 1 << 22);
  s.layers_run = get_int(o, "layersRun", "vision.layersRun", 0, 4096);
  s.image_size = get_int(o, "imageSize", "vision.imageSize", 1, 1 << 14);
  s.patch_size = get_int(o, "patchSize", "vision.patchSize", 1, 1 << 10);
  if (s.image_size % s.patch_size) bad("an image size divisible by vision.patchSize (" + std::to_string(s.patch_size) + ")", "vision.imageSize", std::to_string(s.image_size));
  s.eps = get_eps(o, "eps", "vision.eps");
  std::string act = get_string(o, "act", "vision.act");
  if (act == "gelu_tanh") s.act = sr3d::Act::kGeluTanh;
  else if (act == "gelu_erf") s.act = sr3d::Act::kGeluErf;
  else bad("'gelu_tanh' or 'gelu_erf'", "vision.act", "'" + act + "'");
  return s;
}

sr3d::LlmSpec read_llm(Napi::Object o) {
  sr3d::LlmSpec s;
  s.hidden = get_int(o, "hidden", "llm.hidden", 1, 1 << 20);
  s.layers = get_int(o, "layers", "llm.layers", 1, 4096);
  s.heads = get_int(o, "heads", "llm.heads", 1, 1 << 12);
  s.kv_heads = get_int(o, "kvHeads", "llm.kvHeads", 1, 1 << 12);
  if (s.heads % s.kv_heads) bad("a KV head count dividing llm.heads (" + std::to_string(s.heads) + ")", "llm.kvHeads", std::to_string(s.kv_heads));
  s.head_dim = get_int(o, "headDim", "llm.headDim", 2, 1 << 12);
  if (s.head_dim % 2) bad("an even head dimension", "llm.headDim", std::to_string(s.head_dim));
  s.intermediate = get_int(o, "intermediate", "llm.intermediate", 1, 1 << 22);
  s.vocab = get_int(o, "vocab", "llm.vocab", 1, int64_t(1) << 24);
  s.eps = get_eps(o, "eps", "llm.eps");
  s.rope_theta = get_number(o, "ropeTheta", "llm.ropeTheta");
  if (!(s.rope_theta > 1)) bad("a RoPE base > 1", "llm.ropeTheta", sr3d::format_number(s.rope_theta));
  s.tie_word_embeddings = get_bool(o, "tieWordEmbeddings", "llm.tieWordEmbeddings");
  return s;
}

std::vector<sr3d::MlpStep> read_mlp(Napi::Value v, const std::string& name) {
  if (!v.IsArray()) bad("an array of steps", name, describe(v));
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() == 0) bad("at least one step", name, "an empty array");
  std::vector<sr3d::MlpStep> steps;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const std::string sn = name + "[" + std::to_string(i) + "]";
    Napi::Value sv = a.Get(i);
    if (!sv.IsObject() || sv.IsArray()) bad("a step object", sn, describe(sv));
    Napi::Object so = sv.As<Napi::Object>();
    std::string kind = get_string(so, "kind", sn + ".kind");
    sr3d::MlpStep st{};
    if (kind == "linear") {
      st.kind = sr3d::MlpStep::kLinear;
      st.weight = get_string(so, "weight", sn + ".weight");
      st.bias = get_string(so, "bias", sn + ".bias", true);
    } else if (kind == "layer_norm") {
      st.kind = sr3d::MlpStep::kLayerNorm;
      st.weight = get_string(so, "weight", sn + ".weight");
      st.bias = get_string(so, "bias", sn + ".bias");
      st.eps = get_eps(so, "eps", sn + ".eps");
    } else if (kind == "gelu_erf") {
      st.kind = sr3d::MlpStep::kGeluErf;
    } else if (kind == "gelu_tanh") {
      st.kind = sr3d::MlpStep::kGeluTanh;
    } else {
      bad("one of 'linear', 'layer_norm', 'gelu_erf', 'gelu_tanh'", sn + ".kind", "'" + kind + "'");
    }
    steps.push_back(st);
  }
  return steps;
}

// ---- the engine object -----------------------------------------------------------------

Napi::Error state_error(Napi::Env env, const char* code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", code);
  return e;
}

struct EngineState {
  std::unique_ptr<sr3d::Engine> engine;
  sr3d::ModelSpec spec;
  sr3d::WeightMap weights;  // CUDA: kept for the shapes only (data pointers cleared)
  std::vector<Napi::ObjectReference> weight_refs;            // SharedArrayBuffer weights, used in place
  std::vector<std::unique_ptr<uint8_t[]>> owned_weights;   // every other weight: the engine's own copy
  int64_t owned_bytes = 0;
  int device = -1;          // CUDA device index, -1 for the CPU engine
  bool busy = false, disposed = false, dispose_requested = false;
  std::vector<Napi::Promise::Deferred> dispose_waiters;
  uint64_t rng[4] = {0, 0, 0, 0};
  sr3d::EngineInfo info;    // snapshot, refreshed on the JS thread after each call
  int64_t cached = 0;
  int64_t reported_external = 0;

  // JS thread, nothing in flight.
  void refresh(Napi::Env env) {
    if (!engine) return;
    try {
      info = engine->info();
      cached = engine->cached();
    } catch (...) {
      return;
    }
    // What the engine allocated itself (its weight copies included: V8 freed its own).
    const int64_t host = device < 0 ? info.kv_cache_bytes + info.scratch_bytes + owned_bytes : 0;
    if (host != reported_external) {
      Napi::MemoryManagement::AdjustExternalMemory(env, host - reported_external);
      reported_external = host;
    }
  }

  // JS thread (or the wrapper's finalizer), nothing in flight. Frees the engine (device
  // memory included) and unpins the weights.
  void release(Napi::Env env) {
    if (engine) {
      try {
        if (device >= 0) sr3d::cuda_set_device(device);
      } catch (...) {
      }
      try {
        engine.reset();
      } catch (...) {
        engine.release();  // a throwing destructor: leak rather than abort
      }
    }
    weights.clear();
    weight_refs.clear();
    owned_weights.clear();
    owned_bytes = 0;
    if (reported_external) Napi::MemoryManagement::AdjustExternalMemory(env, -reported_external);
    reported_external = 0;
    disposed = true;
  }
};

// Runs an engine call off the JS thread; on completion (JS thread) clears `busy`, refreshes
// the info snapshot and completes a pending dispose() before settling the promise.
class EngineWorker : public Napi::AsyncWorker {
 public:
  EngineWorker(Napi::Env env, std::shared_ptr<EngineState> st, Napi::Object self,
               std::vector<std::unique_ptr<Staged>>&& staged, std::function<void()> work,
               std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, "sr3d-engine"),
        deferred_(Napi::Promise::Deferred::New(env)),
        st_(std::move(st)),
        self_(Napi::Persistent(self)),
        staged_(std::move(staged)),
        work_(std::move(work)),
        result_(std::move(result)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    error_ = capture_errors([&] {
      if (st_->device >= 0) sr3d::cuda_set_device(st_->device);
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
    finish();
    if (ok) deferred_.Resolve(v);
    else deferred_.Reject(v);
  }
  void OnError(const Napi::Error&) override {
    Napi::HandleScope scope(Env());
    finish();
    deferred_.Reject(make_error(Env(), *error_).Value());
  }

 private:
  void finish() {
    st_->busy = false;
    st_->refresh(Env());
    if (st_->dispose_requested && !st_->disposed) {
      st_->release(Env());
      for (auto& d : st_->dispose_waiters) d.Resolve(Env().Undefined());
      st_->dispose_waiters.clear();
    }
  }
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<EngineState> st_;
  Napi::ObjectReference self_;                    // the engine object
  std::vector<std::unique_ptr<Staged>> staged_;  // the call's own copies of its buffers
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::unique_ptr<Error> error_;
};

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {InstanceMethod("encodeTiles", &EngineWrap::EncodeTiles),
                        InstanceMethod("project", &EngineWrap::Project),
                        InstanceMethod("runMlp", &EngineWrap::RunMlp),
                        InstanceMethod("embedTokens", &EngineWrap::EmbedTokens),
                        InstanceMethod("reset", &EngineWrap::Reset),
                        InstanceMethod("prefill", &EngineWrap::Prefill),
                        InstanceMethod("logits", &EngineWrap::Logits),
                        InstanceMethod("step", &EngineWrap::Step),
                        InstanceMethod("seed", &EngineWrap::Seed),
                        InstanceMethod("info", &EngineWrap::Info),
                        InstanceMethod("dispose", &EngineWrap::Dispose)});
  }

  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {}
  ~EngineWrap() override {
    // Garbage-collected without dispose(): nothing can be in flight (every worker holds a
    // reference to this object), so free now.
    if (st_ && !st_->disposed) st_->release(Env());
  }

  void attach(std::shared_ptr<EngineState> st) { st_ = std::move(st); }

 private:
  // Throws the typed state errors; returns the live state.
  EngineState& live(Napi::Env env) {
    if (!st_ || st_->disposed || st_->dispose_requested)
      throw state_error(env, "SR3D_ENGINE_DISPOSED",
                        "This engine was disposed: create a new one with createEngine()");
    if (st_->busy)
      throw state_error(env, "SR3D_ENGINE_BUSY",
                        "This engine is busy with another call: await it first (one call at a time per engine)");
    return *st_;
  }

  template <typename Build>
  Napi::Value call(const Napi::CallbackInfo& info, Build build) {
    return run_op(info, [&](const Napi::CallbackInfo& info) -> Napi::Value {
      EngineState& st = live(info.Env());
      Baton b(info);
      std::function<void()> work;
      std::function<Napi::Value(Napi::Env)> result = undefined_result;
      build(st, b, work, result);
      return start(info, st, std::move(b.staged()), std::move(work), std::move(result));
    });
  }

  // Queues `work` on a worker holding the staged buffers and this engine; the engine is busy
  // until it settles.
  Napi::Promise start(const Napi::CallbackInfo& info, EngineState& st, std::vector<std::unique_ptr<Staged>> staged,
                      std::function<void()> work, std::function<Napi::Value(Napi::Env)> result) {
    auto* w = new EngineWorker(info.Env(), st_, info.This().As<Napi::Object>(), std::move(staged), std::move(work),
                               std::move(result));
    st.busy = true;
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  }

  Napi::Value EncodeTiles(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work, auto&) {
      if (!st.spec.has_vision) bad("an engine with a vision tower", "encodeTiles", "an engine without one");
      const sr3d::VisionSpec& v = st.spec.vision;
      const int64_t n = b.integer("n", 0, 1 << 20), S = v.image_size, g = S / v.patch_size;
      const float* tiles = static_cast<const float*>(b.array("tiles", napi_float32_array, checked_mul({n, 3, S, S}, "tiles")));
      float* out = static_cast<float*>(b.output("out", napi_float32_array, checked_mul({n, g * g, v.hidden}, "out")));
      sr3d::Engine* e = st.engine.get();
      work = [=] { e->encode_tiles(tiles, n, out); };
    });
  }

  Napi::Value Project(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work, auto&) {
      if (!st.spec.has_projector || !st.spec.has_vision)
        bad("an engine with a vision tower and a projector", "project", "an engine without them");
      auto it = st.weights.find("projector.layers.7.weight");
      if (it == st.weights.end() || it->second.shape.size() != 2)
        bad("a projector weight projector.layers.7.weight", "weights", "none");
      const sr3d::VisionSpec& v = st.spec.vision;
      const int64_t g = v.image_size / v.patch_size, G = (g + 2) / 3, outDim = it->second.shape[0];
      const int64_t n = b.integer("n", 0, 1 << 20);
      const float* f = static_cast<const float*>(b.array("features", napi_float32_array, checked_mul({n, g * g, v.hidden}, "features")));
      float* out = static_cast<float*>(b.output("out", napi_float32_array, checked_mul({n, G * G, outDim}, "out")));
      sr3d::Engine* e = st.engine.get();
      work = [=] { e->project(f, n, out); };
    });
  }

  Napi::Value RunMlp(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work, auto&) {
      std::vector<std::string> names;
      for (const auto& kv : st.spec.mlps) names.push_back(kv.first);
      if (names.empty()) bad("an engine with MLP modules", "runMlp", "an engine without any");
      const std::string module = b.str("module", names);
      const int64_t rows = b.integer("rows", 0, kMaxDim);
      sr3d::Engine* e = st.engine.get();
      const int64_t in = e->mlp_in_dim(module), outDim = e->mlp_out_dim(module);
      const float* x = static_cast<const float*>(b.array("x", napi_float32_array, checked_mul({rows, in}, "x")));
      float* out = static_cast<float*>(b.output("out", napi_float32_array, checked_mul({rows, outDim}, "out")));
      work = [=] { e->run_mlp(module, x, rows, out); };
    });
  }

  Napi::Value EmbedTokens(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work, auto&) {
      if (!st.spec.has_llm) bad("an engine with a language model", "embedTokens", "an engine without one");
      const int64_t n = b.integer("n", 0, kMaxDim), V = st.spec.llm.vocab;
      const int32_t* ids = static_cast<const int32_t*>(b.array("ids", napi_int32_array, n));
      for (int64_t i = 0; i < n; ++i)
        if (ids[i] < 0 || ids[i] >= V)
          bad("token ids in [0, " + std::to_string(V) + ")", "ids", "id " + std::to_string(ids[i]) + " at index " + std::to_string(i));
      float* out = static_cast<float*>(b.output("out", napi_float32_array, checked_mul({n, st.spec.llm.hidden}, "out")));
      sr3d::Engine* e = st.engine.get();
      work = [=] { e->embed_tokens(ids, n, out); };
    });
  }

  // Empties the KV cache (no arguments).
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    return run_op(info, [&](const Napi::CallbackInfo& info) -> Napi::Value {
      EngineState& st = live(info.Env());
      if (!st.spec.has_llm) bad("an engine with a language model", "reset", "an engine without one");
      sr3d::Engine* e = st.engine.get();
      return start(info, st, {}, [e] { e->reset(); }, undefined_result);
    });
  }

  // { embeddings: Float32Array(n*hidden), n, reset: boolean, out?: Float32Array(vocab) }:
  // [reset,] append n positions, [copy the last position's logits to out].
  Napi::Value Prefill(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work, auto&) {
      if (!st.spec.has_llm) bad("an engine with a language model", "prefill", "an engine without one");
      const sr3d::LlmSpec& l = st.spec.llm;
      const bool reset = b.boolean("reset");
      const int64_t start = reset ? 0 : st.cached, room = st.spec.max_context - start;
      const int64_t n = b.integer("n", 1, kMaxDim);
      if (n > room)
        bad("at most " + std::to_string(room) + " positions (maxContext " + std::to_string(st.spec.max_context) +
                ", " + std::to_string(start) + " cached)",
            "n", std::to_string(n));
      const float* emb = static_cast<const float*>(b.array("embeddings", napi_float32_array, checked_mul({n, l.hidden}, "embeddings")));
      float* out = static_cast<float*>(b.output("out", napi_float32_array, l.vocab, true));
      sr3d::Engine* e = st.engine.get();
      const int64_t V = l.vocab;
      work = [=] {
        if (reset) e->reset();
        e->prefill(emb, n);
        if (out) std::memcpy(out, e->last_logits(), static_cast<size_t>(V) * sizeof(float));
      };
    });
  }

  // { out: Float32Array(vocab) }: a copy of the last position's logits.
  Napi::Value Logits(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work, auto&) {
      if (!st.spec.has_llm) bad("an engine with a language model", "logits", "an engine without one");
      if (st.cached == 0) bad("a prefilled engine (call prefill first)", "logits", "an empty KV cache");
      float* out = static_cast<float*>(b.output("out", napi_float32_array, st.spec.llm.vocab));
      sr3d::Engine* e = st.engine.get();
      const int64_t V = st.spec.llm.vocab;
      work = [=] { std::memcpy(out, e->last_logits(), static_cast<size_t>(V) * sizeof(float)); };
    });
  }

  // { prevToken: -1 | id, temperature, topP, topK } -> Promise<token>: decode prevToken (when
  // >= 0), then sample from the last logits with the engine's RNG.
  Napi::Value Step(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work,
                         std::function<Napi::Value(Napi::Env)>& result) {
      if (!st.spec.has_llm) bad("an engine with a language model", "step", "an engine without one");
      if (st.cached == 0) bad("a prefilled engine (call prefill first)", "step", "an empty KV cache");
      const int64_t V = st.spec.llm.vocab;
      const int64_t prev = b.integer("prevToken", -1, V - 1);
      if (prev >= 0 && st.cached >= st.spec.max_context)
        bad("room in the KV cache for one more position (maxContext " + std::to_string(st.spec.max_context) + ")",
            "prevToken", "a full cache");
      sr3d::Sampling s;
      const double t = b.number("temperature");
      if (!(t >= 0) || !std::isfinite(t)) bad("a finite temperature >= 0", "temperature", sr3d::format_number(t));
      const double p = b.number("topP");
      if (!(p > 0 && p <= 1)) bad("a number in (0, 1]", "topP", sr3d::format_number(p));
      s.temperature = static_cast<float>(t);
      s.top_p = static_cast<float>(p);
      s.top_k = static_cast<int32_t>(b.integer("topK", 0, V));
      sr3d::Engine* e = st.engine.get();
      uint64_t* rng = st.rng;
      auto token = std::make_shared<int32_t>(-1);
      work = [=] {
        if (prev >= 0) e->decode(static_cast<int32_t>(prev));
        *token = sr3d::sample_token(e->last_logits(), V, s, rng);
      };
      result = [token](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *token); };
    });
  }

  Napi::Value Seed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineState& st = live(env);
    double d = info.Length() && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 9007199254740991.0 && d == std::floor(d)))
      throw state_error(env, "SR3D_INVALID_ARGUMENT",
                        "Expected an integer in [0, 2^53) for seed but received " +
                            (info.Length() ? describe(info[0]) : std::string("nothing")));
    sr3d::seed_rng(static_cast<uint64_t>(d), st.rng);
    return env.Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!st_ || st_->disposed || st_->dispose_requested)
      throw state_error(env, "SR3D_ENGINE_DISPOSED", "This engine was disposed: create a new one with createEngine()");
    const sr3d::EngineInfo& i = st_->info;
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", i.device);
    o.Set("weightBytes", Napi::Number::New(env, static_cast<double>(i.weight_bytes)));
    o.Set("kvCacheBytes", Napi::Number::New(env, static_cast<double>(i.kv_cache_bytes)));
    o.Set("scratchBytes", Napi::Number::New(env, static_cast<double>(i.scratch_bytes)));
    o.Set("maxContext", Napi::Number::New(env, static_cast<double>(i.max_context)));
    o.Set("cached", Napi::Number::New(env, static_cast<double>(st_->cached)));
    return o;
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto d = Napi::Promise::Deferred::New(env);
    if (!st_ || st_->disposed) {
      d.Resolve(env.Undefined());
    } else if (st_->busy) {
      st_->dispose_requested = true;  // completed by the in-flight call's worker
      st_->dispose_waiters.push_back(d);
    } else {
      st_->release(env);
      d.Resolve(env.Undefined());
    }
    return d.Promise();
  }

  std::shared_ptr<EngineState> st_;
};

// Creates the engine off the JS thread (the CUDA engine uploads every weight), then
// resolves with a NativeEngine object.
class CreateWorker : public Napi::AsyncWorker {
 public:
  CreateWorker(Napi::Env env, std::shared_ptr<EngineState> st, Napi::FunctionReference* ctor)
      : Napi::AsyncWorker(env, "sr3d-engine-create"),
        deferred_(Napi::Promise::Deferred::New(env)),
        st_(std::move(st)),
        ctor_(ctor) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    error_ = capture_errors([&] {
      if (st_->device >= 0) {
        sr3d::cuda_set_device(st_->device);
        st_->engine = sr3d::make_cuda_engine(st_->spec, st_->weights, st_->device);
      } else {
        st_->engine = sr3d::make_cpu_engine(st_->spec, st_->weights);
      }
    }, "sr3d: out of host memory creating the engine");
    if (error_) SetError(error_->what());
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (st_->device >= 0) {
      // The device holds its own copy: drop the host buffers (and their pointers).
      st_->weight_refs.clear();
      st_->owned_weights.clear();
      st_->owned_bytes = 0;
      for (auto& kv : st_->weights) kv.second.data = nullptr;
    }
    st_->busy = false;
    sr3d::seed_rng(0, st_->rng);
    st_->refresh(env);
    try {
      Napi::Object obj = ctor_->New({});
      EngineWrap::Unwrap(obj)->attach(st_);
      deferred_.Resolve(obj);
    } catch (const Napi::Error& e) {
      st_->release(env);
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error&) override {
    Napi::HandleScope scope(Env());
    st_->release(Env());
    deferred_.Reject(make_error(Env(), *error_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<EngineState> st_;
  Napi::FunctionReference* ctor_;
  std::unique_ptr<Error> error_;
};

// The engine reads its weights for its whole life, so they must outlive any detach (transfer)
// of the caller's buffer: a SharedArrayBuffer (never freed by a detach) is used in place;
// anything else is copied into memory the engine owns, and the caller's buffer is detached
// when the weight spans all of it (what WeightSet.read gives), so V8 frees it at once and the
// weights are resident once, not twice. A view into a larger buffer is copied and left as is.
const uint8_t* own_weight(Napi::Env env, EngineState& st, Napi::Value v, const std::string& name) {
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok)
    bad("a typed array", name, describe(v));
  const size_t bytes = length * (type == napi_float32_array ? 4 : 2);
  bool plain = false, detached = false;
  napi_is_arraybuffer(env, ab, &plain);
  if (!plain) {
    st.weight_refs.push_back(Napi::Persistent(v.As<Napi::Object>()));
    return static_cast<const uint8_t*>(data);
  }
  if (napi_is_detached_arraybuffer(env, ab, &detached) == napi_ok && detached)
    bad("an attached buffer (it was transferred or detached)", name, "a detached buffer");
  std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes > 0 ? bytes : 1]);
  if (bytes > 0) std::memcpy(copy.get(), data, bytes);
  void* ab_data = nullptr;
  size_t ab_bytes = 0;
  // A non-detachable buffer (e.g. wasm memory) is refused with a status, no exception: kept.
  if (napi_get_arraybuffer_info(env, ab, &ab_data, &ab_bytes) == napi_ok && offset == 0 && ab_bytes == bytes)
    napi_detach_arraybuffer(env, ab);
  st.owned_bytes += static_cast<int64_t>(bytes);
  st.owned_weights.push_back(std::move(copy));
  return st.owned_weights.back().get();
}

// createEngine({ vision?, projector?, llm?, mlps?, maxContext, weights: [{name, dtype, shape,
// data}], device: 'cpu' | 'cuda', deviceIndex }) -> Promise<NativeEngine>.
Napi::Value CreateEngine(const Napi::CallbackInfo& info) {
  auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
  return run_op(info, [ctor](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env env = info.Env();
    Baton b(info);
    Napi::Object opts = info[0].As<Napi::Object>();
    auto st = std::make_shared<EngineState>();
    sr3d::ModelSpec& spec = st->spec;
    if (present(opts, "vision")) {
      spec.has_vision = true;
      spec.vision = read_vision(get_object(opts, "vision", "vision"));
    }
    if (present(opts, "projector")) {
      spec.has_projector = true;
      spec.projector.eps = get_eps(get_object(opts, "projector", "projector"), "eps", "projector.eps");
    }
    if (present(opts, "llm")) {
      spec.has_llm = true;
      spec.llm = read_llm(get_object(opts, "llm", "llm"));
    }
    if (present(opts, "mlps")) {
      Napi::Object m = get_object(opts, "mlps", "mlps");
      Napi::Array keys = m.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
        spec.mlps[k] = read_mlp(m.Get(k), "mlps." + k);
      }
    }
    spec.max_context = b.integer("maxContext", 1, int64_t(1) << 24);
    const std::string dev = b.str("device", {"cpu", "cuda"});
    st->device = dev == "cuda" ? static_cast<int>(b.integer("deviceIndex", 0, 1023)) : -1;

    Napi::Value wv = opts.Get("weights");
    if (!wv.IsArray()) bad("an array of weights { name, dtype, shape, data }", "weights", describe(wv));
    Napi::Array wa = wv.As<Napi::Array>();
    for (uint32_t i = 0; i < wa.Length(); ++i) {
      const std::string wn = "weights[" + std::to_string(i) + "]";
      Napi::Value ev = wa.Get(i);
      if (!ev.IsObject() || ev.IsArray()) bad("a weight { name, dtype, shape, data }", wn, describe(ev));
      Napi::Object eo = ev.As<Napi::Object>();
      const std::string name = get_string(eo, "name", wn + ".name");
      if (st->weights.count(name)) bad("unique weight names", wn + ".name", "a second '" + name + "'");
      sr3d::WeightTensor t;
      const std::string dt = get_string(eo, "dtype", wn + ".dtype");
      if (dt == "f32") t.type = sr3d::WType::kF32;
      else if (dt == "f16") t.type = sr3d::WType::kF16;
      else if (dt == "bf16") t.type = sr3d::WType::kBF16;
      else bad("'f32', 'f16' or 'bf16'", wn + ".dtype", "'" + dt + "'");
      Napi::Value sv = eo.Get("shape");
      if (!sv.IsArray()) bad("an array of dimensions", name + ".shape", describe(sv));
      Napi::Array sa = sv.As<Napi::Array>();
      if (sa.Length() > 8) bad("at most 8 dimensions", name + ".shape", std::to_string(sa.Length()));
      for (uint32_t j = 0; j < sa.Length(); ++j) {
        Napi::Value dv = sa.Get(j);
        double d = dv.IsNumber() ? dv.As<Napi::Number>().DoubleValue() : -1;
        if (!(d >= 0 && d == std::floor(d) && d < 1e12)) bad("non-negative integer dimensions", name + ".shape", describe(dv));
        t.shape.push_back(static_cast<int64_t>(d));
      }
      int64_t count = 1;
      for (int64_t d : t.shape) count = checked_mul({count, d}, name.c_str());
      Napi::Value dv = eo.Get("data");
      const napi_typedarray_type want = t.type == sr3d::WType::kF32 ? napi_float32_array : napi_uint16_array;
      const std::string what = std::string(t.type == sr3d::WType::kF32 ? "a Float32Array" : "a Uint16Array (raw ") +
                               (t.type == sr3d::WType::kF32 ? "" : dt + " bits)") + " of " + std::to_string(count) + " elements";
      if (!dv.IsTypedArray()) bad(what, name + ".data", describe(dv));
      Napi::TypedArray ta = dv.As<Napi::TypedArray>();
      if (ta.TypedArrayType() != want || static_cast<int64_t>(ta.ElementLength()) != count)
        bad(what, name + ".data", describe(dv));
      t.data = own_weight(env, *st, dv, name + ".data");
      st->weights.emplace(name, std::move(t));
    }
    if (!spec.has_vision && !spec.has_projector && !spec.has_llm && spec.mlps.empty())
      bad("at least one of vision, projector, llm, mlps", "createEngine options", "none");
    st->busy = true;  // until created
    auto* w = new CreateWorker(env, st, ctor);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

}  // namespace

void register_engine(Napi::Env env, Napi::Object exports) {
  exports.Set("nnLinear", Napi::Function::New(env, Linear));
  exports.Set("nnLayerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("nnRmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("nnActivation", Napi::Function::New(env, Activation));
  exports.Set("nnSiluMul", Napi::Function::New(env, SiluMul));
  exports.Set("nnRope", Napi::Function::New(env, Rope));
  exports.Set("nnAttention", Napi::Function::New(env, Attention));
  exports.Set("nnSpaceToChannel3", Napi::Function::New(env, SpaceToChannel3));
  exports.Set("nnPatchEmbed", Napi::Function::New(env, PatchEmbed));
  // The class stays private (only createEngine makes instances); one constructor per env.
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(EngineWrap::Define(env)));
  env.AddCleanupHook([ctor] { delete ctor; });
  exports.Set("createEngine", Napi::Function::New(env, CreateEngine, "createEngine", ctor));
}

}  // namespace sr3d_napi
