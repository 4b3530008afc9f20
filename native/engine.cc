// N-API binding of the inference engine (kernels/engine.h); the nn ops' bindings are in
// native/nn.cc. See native/common.h for the conventions.
//
// The engine is an ObjectWrap ("NativeEngine", never constructed from JS: createEngine
// resolves with one). It is internal surface: only the TypeScript Engine (lib/engine.ts) calls
// it, and that owns every rule of a call: one call at a time in call order, nothing after
// dispose(), the parts the model has, every argument (EngineBusyError, EngineDisposedError,
// InvalidArgumentError). The checks here stay as guards; one failing is a bug in sr3d, so it
// rejects (info() and seed() throw) with code SR3D_INTERNAL naming the broken rule (a call
// while another is in flight, any call after dispose(), an argument). Its other rules:
//  - dispose() during a call waits for it, then frees; a second dispose() is a no-op.
//  - The CPU engine borrows the weight buffers: a reference to every one is kept until
//    dispose / finalization. The CUDA engine copies them at creation; the references are
//    dropped then.
//  - Engine-owned host memory (KV cache, scratch) is reported to V8 with
//    AdjustExternalMemory after every call.
// createEngine's options stay typed argument errors: they carry the checkpoint's config.
#include "common.h"

#include <cstdlib>
#include <map>

#include "../kernels/engine.h"
#include "../kernels/sampling.h"
#include "../kernels/weight_names.h"

namespace sr3d_napi {
namespace {

namespace wn = sr3d::weight_names;

// ---- createEngine's nested options ---------------------------------------------------------

float read_eps(Baton& o, const char* key) {
  double e = o.finite_number(key);
  if (!(e > 0) || !(e < 1)) bad("a number in (0, 1)", o.name(key), sr3d::format_number(e));
  return static_cast<float>(e);
}

sr3d::VisionSpec read_vision(Baton o) {
  sr3d::VisionSpec s;
  s.hidden = o.integer("hidden", 1, 1 << 20);
  s.heads = o.integer("heads", 1, 1 << 12);
  if (s.hidden % s.heads) bad("a head count dividing vision.hidden (" + std::to_string(s.hidden) + ")", "vision.heads", std::to_string(s.heads));
  s.intermediate = o.integer("intermediate", 1, 1 << 22);
  s.layers_run = o.integer("layersRun", 0, 4096);
  s.image_size = o.integer("imageSize", 1, 1 << 14);
  s.patch_size = o.integer("patchSize", 1, 1 << 10);
  if (s.image_size % s.patch_size) bad("an image size divisible by vision.patchSize (" + std::to_string(s.patch_size) + ")", "vision.imageSize", std::to_string(s.image_size));
  s.eps = read_eps(o, "eps");
  std::string act = o.string("act");
  if (act == "gelu_tanh") s.act = sr3d::Act::kGeluTanh;
  else if (act == "gelu_erf") s.act = sr3d::Act::kGeluErf;
  else bad("'gelu_tanh' or 'gelu_erf'", "vision.act", "'" + act + "'");
  return s;
}

sr3d::LlmSpec read_llm(Baton o) {
  sr3d::LlmSpec s;
  s.hidden = o.integer("hidden", 1, 1 << 20);
  s.layers = o.integer("layers", 1, 4096);
  s.heads = o.integer("heads", 1, 1 << 12);
  s.kv_heads = o.integer("kvHeads", 1, 1 << 12);
  if (s.heads % s.kv_heads) bad("a KV head count dividing llm.heads (" + std::to_string(s.heads) + ")", "llm.kvHeads", std::to_string(s.kv_heads));
  s.head_dim = o.integer("headDim", 2, 1 << 12);
  if (s.head_dim % 2) bad("an even head dimension", "llm.headDim", std::to_string(s.head_dim));
  s.intermediate = o.integer("intermediate", 1, 1 << 22);
  s.vocab = o.integer("vocab", 1, int64_t(1) << 24);
  s.eps = read_eps(o, "eps");
  s.rope_theta = o.finite_number("ropeTheta");
  if (!(s.rope_theta > 1)) bad("a RoPE base > 1", "llm.ropeTheta", sr3d::format_number(s.rope_theta));
  s.tie_word_embeddings = o.boolean("tieWordEmbeddings");
  return s;
}

std::vector<sr3d::MlpStep> read_mlp(const Baton& parent, Napi::Value v, const std::string& name) {
  if (!v.IsArray()) bad("an array of steps", name, describe(v));
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() == 0) bad("at least one step", name, "an empty array");
  std::vector<sr3d::MlpStep> steps;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const std::string sn = name + "[" + std::to_string(i) + "]";
    Napi::Value sv = a.Get(i);
    if (!sv.IsObject() || sv.IsArray()) bad("a step object", sn, describe(sv));
    Baton so = parent.nested(sv.As<Napi::Object>(), sn + ".");
    std::string kind = so.string("kind");
    sr3d::MlpStep st{};
    if (kind == "linear") {
      st.kind = sr3d::MlpStep::kLinear;
      st.weight = so.string("weight");
      st.bias = so.string("bias", true);
    } else if (kind == "layer_norm") {
      st.kind = sr3d::MlpStep::kLayerNorm;
      st.weight = so.string("weight");
      st.bias = so.string("bias");
      st.eps = read_eps(so, "eps");
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

// The owner of every rule the engine object's methods check (see the top of this file).
constexpr const char* kEngineOwner = "The TypeScript Engine (lib/engine.ts)";
[[noreturn]] void unchecked(const std::string& what, const std::string& name, const std::string& got) {
  sr3d::throw_internal_argument(what, name, got, kEngineOwner);
}
// The synchronous methods (seed, info) throw JS errors: a C++ exception must not leave them.
template <typename F>
auto js_errors(Napi::Env env, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw make_error(env, e);
  }
}

// The engine's copies of the weights start on a 64-byte line, so each 64-byte SIMD load of a
// row (rows of the LLM's matrices are whole lines) reads one cache line, not two: glibc's
// large blocks start 16 bytes into a page, and a split load costs the one-core int4 GEMV
// 5-10% (measured on its own; not visible in the engine's decode noise on the 2-core VM).
struct FreeBlock {
  void operator()(uint8_t* p) const noexcept { std::free(p); }
};
using HostCopy = std::unique_ptr<uint8_t, FreeBlock>;
HostCopy line_aligned_block(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, bytes > 0 ? bytes : 1) != 0 || p == nullptr) throw std::bad_alloc();
  return HostCopy(static_cast<uint8_t*>(p));
}

struct EngineState {
  std::unique_ptr<sr3d::Engine> engine;
  sr3d::ModelSpec spec;
  sr3d::WeightMap weights;  // CUDA: kept for the shapes only (data pointers cleared)
  std::vector<Napi::ObjectReference> weight_refs;            // SharedArrayBuffer weights, used in place
  std::vector<HostCopy> owned_weights;                      // every other weight: the engine's own copy
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

  // JS thread, when a call settles: clears `busy`, refreshes the info snapshot and completes
  // a dispose() requested meanwhile.
  void settle(Napi::Env env) {
    busy = false;
    refresh(env);
    if (dispose_requested && !disposed) {
      release(env);
      for (auto& d : dispose_waiters) d.Resolve(env.Undefined());
      dispose_waiters.clear();
    }
  }
};

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {InstanceMethod("encodeTiles", &EngineWrap::EncodeTiles),
                        InstanceMethod("project", &EngineWrap::Project),
                        InstanceMethod("runMlp", &EngineWrap::RunMlp),
                        InstanceMethod("addSpatialPe", &EngineWrap::AddSpatialPe),
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
  // The live state; an internal error (sr3d::Error) when disposed or busy.
  EngineState& live() {
    if (!st_ || st_->disposed || st_->dispose_requested)
      unchecked("an engine that is not disposed", "this", "a disposed engine");
    if (st_->busy) unchecked("an idle engine (one call at a time)", "this", "an engine with a call in flight");
    return *st_;
  }

  template <typename Build>
  Napi::Value call(const Napi::CallbackInfo& info, Build build) {
    return run_op(info, [&](const Napi::CallbackInfo& info) -> Napi::Value {
      EngineState& st = live();
      Baton b(info, kEngineOwner);
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
    std::shared_ptr<EngineState> keep = st_;
    // The engine object too: its finalizer would free the engine under the running call.
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
    auto* w = new OpWorker(info.Env(), std::move(staged), st.device, std::move(work), std::move(result),
                           [keep, self](Napi::Env env) { keep->settle(env); }, "sr3d-engine");
    st.busy = true;
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  }

  Napi::Value EncodeTiles(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work, auto&) {
      if (!st.spec.has_vision) unchecked("an engine with a vision tower", "encodeTiles", "an engine without one");
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
        unchecked("an engine with a vision tower and a projector", "project", "an engine without them");
      const std::string last = wn::weight_of(wn::projector_key(wn::projector::kFc3));
      auto it = st.weights.find(last);
      if (it == st.weights.end() || it->second.shape.size() != 2)
        unchecked("a projector weight " + last, "weights", "none");
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
      if (names.empty()) unchecked("an engine with MLP modules", "runMlp", "an engine without any");
      const std::string module = b.str("module", names);
      const int64_t rows = b.integer("rows", 0, kMaxDim);
      sr3d::Engine* e = st.engine.get();
      const int64_t in = e->mlp_in_dim(module), outDim = e->mlp_out_dim(module);
      const float* x = static_cast<const float*>(b.array("x", napi_float32_array, checked_mul({rows, in}, "x")));
      float* out = static_cast<float*>(b.output("out", napi_float32_array, checked_mul({rows, outDim}, "out")));
      work = [=] { e->run_mlp(module, x, rows, out); };
    });
  }

  // { features: Float32Array(n*tokens*hidden) (updated in place), points:
  // Float32Array(n*tile*tile*3), n, tile, numFreqs, includeInput, tilesPerImage }:
  // kernels/spatial_pe.h.
  Napi::Value AddSpatialPe(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work, auto&) {
      if (!st.spec.has_vision) unchecked("an engine with a vision tower", "addSpatialPe", "an engine without one");
      sr3d::SpatialPeArgs a;
      const sr3d::VisionSpec& v = st.spec.vision;
      a.n = b.integer("n", 0, 1 << 20);
      a.tile = b.integer("tile", 1, 1 << 16);
      a.patch = v.patch_size;
      const int64_t g = (a.tile + a.patch - 1) / a.patch;
      a.tokens = g * g;
      a.hidden = v.hidden;
      a.num_freqs = static_cast<int>(b.integer("numFreqs", 0, 30));
      a.include_input = b.boolean("includeInput");
      a.tiles_per_image = b.integer("tilesPerImage", 0, 1 << 20);
      a.points = static_cast<const float*>(b.array("points", napi_float32_array, checked_mul({a.n, a.tile, a.tile, 3}, "points")));
      a.features = static_cast<float*>(b.in_out("features", napi_float32_array, checked_mul({a.n, a.tokens, a.hidden}, "features")));
      sr3d::Engine* e = st.engine.get();
      sr3d::spatial_pe_check(*e, a);  // argument errors at the call, not from the worker
      work = [=] { e->add_spatial_pe(a); };
    });
  }

  Napi::Value EmbedTokens(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work, auto&) {
      if (!st.spec.has_llm) unchecked("an engine with a language model", "embedTokens", "an engine without one");
      const int64_t n = b.integer("n", 0, kMaxDim), V = st.spec.llm.vocab;
      const int32_t* ids = static_cast<const int32_t*>(b.array("ids", napi_int32_array, n));
      for (int64_t i = 0; i < n; ++i)
        if (ids[i] < 0 || ids[i] >= V)
          unchecked("token ids in [0, " + std::to_string(V) + ")", "ids", "id " + std::to_string(ids[i]) + " at index " + std::to_string(i));
      float* out = static_cast<float*>(b.output("out", napi_float32_array, checked_mul({n, st.spec.llm.hidden}, "out")));
      sr3d::Engine* e = st.engine.get();
      work = [=] { e->embed_tokens(ids, n, out); };
    });
  }

  // Empties the KV cache (no arguments).
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    return run_op(info, [&](const Napi::CallbackInfo& info) -> Napi::Value {
      EngineState& st = live();
      if (!st.spec.has_llm) unchecked("an engine with a language model", "reset", "an engine without one");
      sr3d::Engine* e = st.engine.get();
      return start(info, st, {}, [e] { e->reset(); }, undefined_result);
    });
  }

  // { embeddings: Float32Array(n*hidden), n, reset: boolean, out?: Float32Array(vocab) }:
  // [reset,] append n positions, [copy the last position's logits to out].
  Napi::Value Prefill(const Napi::CallbackInfo& info) {
    return call(info, [](EngineState& st, Baton& b, std::function<void()>& work, auto&) {
      if (!st.spec.has_llm) unchecked("an engine with a language model", "prefill", "an engine without one");
      const sr3d::LlmSpec& l = st.spec.llm;
      const bool reset = b.boolean("reset");
      const int64_t start = reset ? 0 : st.cached, room = st.spec.max_context - start;
      const int64_t n = b.integer("n", 1, kMaxDim);
      if (n > room)
        unchecked("at most " + std::to_string(room) + " positions (maxContext " + std::to_string(st.spec.max_context) +
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
      if (!st.spec.has_llm) unchecked("an engine with a language model", "logits", "an engine without one");
      if (st.cached == 0) unchecked("a prefilled engine (call prefill first)", "logits", "an empty KV cache");
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
      if (!st.spec.has_llm) unchecked("an engine with a language model", "step", "an engine without one");
      if (st.cached == 0) unchecked("a prefilled engine (call prefill first)", "step", "an empty KV cache");
      const int64_t V = st.spec.llm.vocab;
      const int64_t prev = b.integer("prevToken", -1, V - 1);
      if (prev >= 0 && st.cached >= st.spec.max_context)
        unchecked("room in the KV cache for one more position (maxContext " + std::to_string(st.spec.max_context) + ")",
            "prevToken", "a full cache");
      sr3d::Sampling s;
      const double t = b.number("temperature");
      if (!(t >= 0) || !std::isfinite(t)) unchecked("a finite temperature >= 0", "temperature", sr3d::format_number(t));
      const double p = b.number("topP");
      if (!(p > 0 && p <= 1)) unchecked("a number in (0, 1]", "topP", sr3d::format_number(p));
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
    return js_errors(env, [&]() -> Napi::Value {
      EngineState& st = live();
      double d = info.Length() && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0 && d <= 9007199254740991.0 && d == std::floor(d)))
        unchecked("an integer in [0, 2^53)", "seed", info.Length() ? describe(info[0]) : std::string("nothing"));
      sr3d::seed_rng(static_cast<uint64_t>(d), st.rng);
      return env.Undefined();
    });
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    js_errors(env, [&] {
      if (!st_ || st_->disposed || st_->dispose_requested)
        unchecked("an engine that is not disposed", "this", "a disposed engine");
    });
    const sr3d::EngineInfo& i = st_->info;
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", i.device);
    o.Set("weightBytes", Napi::Number::New(env, static_cast<double>(i.weight_bytes)));
    o.Set("kvCacheBytes", Napi::Number::New(env, static_cast<double>(i.kv_cache_bytes)));
    o.Set("scratchBytes", Napi::Number::New(env, static_cast<double>(i.scratch_bytes)));
    o.Set("maxContext", Napi::Number::New(env, static_cast<double>(i.max_context)));
    o.Set("activations", i.activations);
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
  size_t elem = 1;
  switch (type) {
    case napi_float32_array: case napi_int32_array: case napi_uint32_array: elem = 4; break;
    case napi_uint16_array: case napi_int16_array: elem = 2; break;
    case napi_float64_array: elem = 8; break;
    default: elem = 1;
  }
  const size_t bytes = length * elem;
  bool plain = false, detached = false;
  napi_is_arraybuffer(env, ab, &plain);
  if (!plain) {
    st.weight_refs.push_back(Napi::Persistent(v.As<Napi::Object>()));
    return static_cast<const uint8_t*>(data);
  }
  if (napi_is_detached_arraybuffer(env, ab, &detached) == napi_ok && detached)
    bad("an attached buffer (it was transferred or detached)", name, "a detached buffer");
  HostCopy copy = line_aligned_block(bytes);
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
    auto st = std::make_shared<EngineState>();
    sr3d::ModelSpec& spec = st->spec;
    if (b.has("vision")) {
      spec.has_vision = true;
      spec.vision = read_vision(b.object("vision"));
    }
    if (b.has("projector")) {
      spec.has_projector = true;
      Baton p = b.object("projector");
      spec.projector.eps = read_eps(p, "eps");
    }
    if (b.has("llm")) {
      spec.has_llm = true;
      spec.llm = read_llm(b.object("llm"));
    }
    if (b.has("mlps")) {
      Napi::Object m = b.object("mlps").options();
      Napi::Array keys = m.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
        spec.mlps[k] = read_mlp(b, m.Get(k), "mlps." + k);
      }
    }
    spec.max_context = b.integer("maxContext", 1, int64_t(1) << 24);
    const std::string dev = b.str("device", {"cpu", "cuda"});
    // The LLM's linears: exact f32 activations, int8 blocks (int4 / int8 weights) or bf16
    // (bf16 weights); CPU only.
    const std::string act = b.has("activations") ? b.str("activations", {"f32", "int8", "bf16"}) : "f32";
    if (act != "f32") {
      if (dev == "cuda") bad("activations 'f32' on CUDA (int8 / bf16 activations run on the CPU engine)", "activations", "'" + act + "'");
      spec.llm_activations = act == "int8" ? sr3d::ActPrecision::kInt8 : sr3d::ActPrecision::kBF16;
    }
    st->device = dev == "cuda" ? static_cast<int>(b.integer("deviceIndex", 0, 1023)) : -1;

    Napi::Value wv = b.value("weights");
    if (!wv.IsArray()) bad("an array of weights { name, dtype, shape, data }", "weights", describe(wv));
    Napi::Array wa = wv.As<Napi::Array>();
    for (uint32_t i = 0; i < wa.Length(); ++i) {
      const std::string wn = "weights[" + std::to_string(i) + "]";
      Napi::Value ev = wa.Get(i);
      if (!ev.IsObject() || ev.IsArray()) bad("a weight { name, dtype, shape, data }", wn, describe(ev));
      Baton we = b.nested(ev.As<Napi::Object>(), wn + ".");
      const std::string name = we.string("name");
      if (st->weights.count(name)) bad("unique weight names", wn + ".name", "a second '" + name + "'");
      sr3d::WeightTensor t;
      const std::string dt = we.string("dtype");
      if (dt == "f32") t.type = sr3d::WType::kF32;
      else if (dt == "f16") t.type = sr3d::WType::kF16;
      else if (dt == "bf16") t.type = sr3d::WType::kBF16;
      else if (dt == "q4") t.type = sr3d::WType::kQ4;
      else if (dt == "q8") t.type = sr3d::WType::kQ8;
      else bad("'f32', 'f16', 'bf16', 'q4' or 'q8'", wn + ".dtype", "'" + dt + "'");
      Napi::Value sv = we.value("shape");
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
      if (sr3d::wtype_quantized(t.type)) {
        // sr3d's quantized layout (kernels/weights.h): data = q bytes, scales, zeros, group,
        // perm (optional); the engine checks which tensors may be quantized.
        if (t.shape.size() != 2 || t.shape[0] < 1 || t.shape[1] < 1)
          bad("a shape [out, in] of positive dimensions", name + ".shape", std::to_string(t.shape.size()) + " dimensions");
        const int64_t rows = t.shape[0], cols = t.shape[1];
        t.group = we.integer("group", 1, cols);
        if (cols % t.group != 0 || (t.type == sr3d::WType::kQ4 && t.group % 2 != 0))
          bad("a group size dividing in features " + std::to_string(cols) + (t.type == sr3d::WType::kQ4 ? " and even" : ""),
              name + ".group", std::to_string(t.group));
        const int64_t groups = checked_mul({rows, cols / t.group}, name.c_str());
        // Each array is owned by the engine like any weight (own_weight), never a staged copy:
        // staged memory goes back to the pool when createEngine resolves.
        auto owned = [&](const char* key, napi_typedarray_type type, const char* tname, int64_t n, bool optional) -> const void* {
          Napi::Value v = we.value(key);
          if (optional && (v.IsUndefined() || v.IsNull())) return nullptr;
          const std::string what = std::string("a ") + tname + " of " + std::to_string(n) + " elements";
          if (!v.IsTypedArray()) bad(what, name + "." + key, describe(v));
          Napi::TypedArray ta = v.As<Napi::TypedArray>();
          if (ta.TypedArrayType() != type || static_cast<int64_t>(ta.ElementLength()) != n) bad(what, name + "." + key, describe(v));
          return own_weight(env, *st, v, name + "." + key);
        };
        t.data = owned("data", napi_uint8_array, "Uint8Array", checked_mul({rows, t.type == sr3d::WType::kQ4 ? cols / 2 : cols}, name.c_str()), false);
        t.scales = static_cast<const float*>(owned("scales", napi_float32_array, "Float32Array", groups, false));
        t.zeros = static_cast<const uint8_t*>(owned("zeros", napi_uint8_array, "Uint8Array", groups, false));
        t.perm = static_cast<const int32_t*>(owned("perm", napi_int32_array, "Int32Array", cols, true));
        st->weights.emplace(name, std::move(t));
        continue;
      }
      Napi::Value dv = we.value("data");
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
  // The class stays private (only createEngine makes instances); one constructor per env.
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(EngineWrap::Define(env)));
  env.AddCleanupHook([ctor] { delete ctor; });
  exports.Set("createEngine", Napi::Function::New(env, CreateEngine, "createEngine", ctor));
}

}  // namespace sr3d_napi
