// The optional TensorRT-LLM backend of the language model (issue 14): build/Release/sr3d_trtllm.node,
// a separate addon built only when SR3D_TRTLLM_ROOT names a TensorRT-LLM install, so that the
// main addon never links libtensorrt_llm.so. lib/native.ts (NativeTrtllmAddon) declares it;
// lib/llm/trtllm.ts is its only user.
//
//   createExecutor({ engineDir, enableBlockReuse, freeGpuMemoryFraction, onResponse }) -> Promise<executor>
//   executor.enqueue({ inputIds, table, tableDtype, tableRows, hidden, extraIds, maxNewTokens,
//                      temperature, topK, topP, seed, endId, stopIds }) -> request id
//   executor.cancel(id); executor.shutdown() -> Promise
//
// One tensorrt_llm::executor::Executor per object. Requests are streaming; a response thread
// waits on Executor::awaitResponses and hands each response to the JS thread through a
// thread-safe function (onResponse). Nothing here aborts: TensorRT-LLM's exceptions become JS
// errors (code SR3D_TRTLLM_REQUEST) or error responses.
//
// API versions (the v0.12.0-jetson and current main). SR3D_TRTLLM_API_MAIN is 1 for the
// releases after v0.12 (CMake sets it when executor.h declares PromptTuningConfig's
// inputTokenExtraIds); where they differ:
//   - PromptTuningConfig(Tensor) on v0.12; PromptTuningConfig(Tensor, optional<VecTokenExtraIds>) after.
//   - SamplingConfig::setRandomSeed on v0.12; setSeed after (the field was renamed randomSeed -> seed).
//   - Result::finishReasons exists only after v0.12 (-1 is reported on v0.12).
//   - KvCacheConfig's constructor changed (maxAttentionWindow became a vector) and its default
//     block reuse flipped from off to on: only its setters are used, and reuse is set explicitly.
//   - The Executor constructor (engine folder, ModelType, ExecutorConfig) is the same in both;
//     the buffer-based ones differ (vector vs BufferView) and are not used.
#include <napi.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tensorrt_llm/executor/executor.h"

#include "common.h"

#ifndef SR3D_TRTLLM_API_MAIN
#define SR3D_TRTLLM_API_MAIN 0
#endif

// Registers TensorRT-LLM's TensorRT plugins (libnvinfer_plugin_tensorrt_llm.so). Declared here
// instead of including tensorrt_llm/plugins/api/tllmPlugin.h, which needs TensorRT's NvInfer
// headers; the symbol is extern "C" with this signature in both API versions.
extern "C" bool initTrtLlmPlugins(void* logger, char const* libNamespace);

namespace sr3d_napi {
namespace {

namespace tle = tensorrt_llm::executor;

#if SR3D_TRTLLM_API_MAIN
constexpr const char* kApi = "main";
#else
constexpr const char* kApi = "v0.12";
#endif

Napi::Error trtllm_error(Napi::Env env, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what);
  e.Set("code", "SR3D_TRTLLM_REQUEST");
  return e;
}

// One response as the JS thread receives it (owned by the thread-safe function call).
struct ResponseMsg {
  uint64_t id = 0;
  std::vector<int32_t> tokens;
  bool final = false;
  bool has_error = false;
  std::string error;
  int finish_reason = -1;
};

// State shared by the JS object, the response thread and the shutdown worker.
struct ExecutorState {
  std::unique_ptr<tle::Executor> executor;
  Napi::ThreadSafeFunction on_response;
  std::thread poller;
  std::atomic<bool> stopping{false};
  std::mutex shutdown_mu;
  bool shut_down = false;

  // The response thread: responses in, one JS call per response out. awaitResponses returns at
  // least every 50 ms so that shutdown is noticed.
  void poll() {
    while (!stopping.load()) {
      std::vector<tle::Response> rs;
      try {
        rs = executor->awaitResponses(std::chrono::milliseconds(50));
      } catch (const std::exception& e) {
        if (stopping.load()) break;
        auto* m = new ResponseMsg();
        m->has_error = true;
        m->final = true;
        m->id = 0;  // no request: lib/llm/trtllm.ts drops it, but it is logged there in debug
        m->error = std::string("awaitResponses failed: ") + e.what();
        deliver(m);
        continue;
      }
      for (auto& r : rs) {
        auto* m = new ResponseMsg();
        m->id = r.getRequestId();
        try {
          if (r.hasError()) {
            m->has_error = true;
            m->final = true;
            m->error = r.getErrorMsg();
          } else {
            auto const& result = r.getResult();
            m->final = result.isFinal;
            if (!result.outputTokenIds.empty()) {
              auto const& beam = result.outputTokenIds[0];
              m->tokens.assign(beam.begin(), beam.end());
            }
#if SR3D_TRTLLM_API_MAIN
            if (!result.finishReasons.empty()) m->finish_reason = static_cast<int>(result.finishReasons[0]);
#endif
          }
        } catch (const std::exception& e) {
          m->has_error = true;
          m->final = true;
          m->error = e.what();
        }
        deliver(m);
      }
    }
  }

  void deliver(ResponseMsg* m) {
    napi_status s = on_response.BlockingCall(m, [](Napi::Env env, Napi::Function fn, ResponseMsg* msg) {
      std::unique_ptr<ResponseMsg> own(msg);
      if (env == nullptr || fn.IsEmpty()) return;
      Napi::Object o = Napi::Object::New(env);
      o.Set("requestId", Napi::Number::New(env, static_cast<double>(own->id)));
      Napi::Int32Array t = Napi::Int32Array::New(env, own->tokens.size());
      if (!own->tokens.empty()) std::memcpy(t.Data(), own->tokens.data(), own->tokens.size() * sizeof(int32_t));
      o.Set("tokens", t);
      o.Set("isFinal", Napi::Boolean::New(env, own->final));
      o.Set("error", own->has_error ? Napi::String::New(env, own->error) : env.Null());
      o.Set("finishReason", Napi::Number::New(env, own->finish_reason));
      // A throwing callback must not take the process down: its exception is reported as an
      // uncaught exception by N-API, like any other callback's.
      fn.Call({o});
    });
    if (s != napi_ok) delete m;
  }

  // Stops the response thread, then the executor (blocking: run off the JS thread).
  void shutdown() {
    std::lock_guard<std::mutex> lock(shutdown_mu);
    if (shut_down) return;
    shut_down = true;
    stopping.store(true);
    if (poller.joinable()) poller.join();
    if (executor) executor->shutdown();
    executor.reset();
  }
};

tle::DataType table_dtype(const std::string& s) {
  if (s == "float16") return tle::DataType::kFP16;
  if (s == "bfloat16") return tle::DataType::kBF16;
  return tle::DataType::kFP32;
}

// Elements of the typed array at `key` (0 for anything else: Baton::array then names the mistake).
int64_t length_of(Baton& b, const char* key) {
  Napi::Value v = b.value(key);
  return v.IsTypedArray() ? static_cast<int64_t>(v.As<Napi::TypedArray>().ElementLength()) : 0;
}

// An optional number of the baton: null / undefined -> nullopt.
std::optional<double> optional_number(Baton& b, const char* key) {
  if (!b.has(key)) return std::nullopt;
  return b.finite_number(key);
}

class ExecutorWrap : public Napi::ObjectWrap<ExecutorWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeTrtllmExecutor",
                       {InstanceMethod("enqueue", &ExecutorWrap::Enqueue),
                        InstanceMethod("cancel", &ExecutorWrap::Cancel),
                        InstanceMethod("shutdown", &ExecutorWrap::Shutdown)});
  }
  explicit ExecutorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ExecutorWrap>(info) {}
  ~ExecutorWrap() override {
    // Collected without shutdown(): stop here (joins the response thread; the executor's own
    // shutdown waits for its requests, which were cancelled or finished).
    if (st_) {
      try { st_->shutdown(); } catch (...) {}
      st_->on_response.Release();
    }
  }
  void attach(std::shared_ptr<ExecutorState> st) { st_ = std::move(st); }

 private:
  tle::Executor& live(Napi::Env env) {
    if (!st_ || st_->stopping.load() || !st_->executor)
      throw trtllm_error(env, "This TensorRT-LLM executor was shut down: load the model again");
    return *st_->executor;
  }

  // Validation errors are thrown synchronously (lib/llm/trtllm.ts calls enqueue inside its
  // async iteration, where they reject it); TensorRT-LLM's own are SR3D_TRTLLM_REQUEST.
  Napi::Value Enqueue(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    tle::Executor& ex = live(env);
    try {
      Baton b(info);
      tle::Request req = build_request(b);
      const tle::IdType id = ex.enqueueRequest(req);
      return Napi::Number::New(env, static_cast<double>(id));
    } catch (const sr3d::Error& e) {
      throw make_error(env, e);
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw trtllm_error(env, std::string("TensorRT-LLM enqueueRequest failed: ") + e.what());
    }
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double id = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(id >= 0) || id != std::floor(id)) {
      Napi::Error e = Napi::Error::New(env, "Expected a request id for cancel but received " + (info.Length() ? describe(info[0]) : std::string("nothing")));
      e.Set("code", "SR3D_INVALID_ARGUMENT");
      throw e;
    }
    if (!st_ || st_->stopping.load() || !st_->executor) return env.Undefined();  // nothing left to cancel
    try {
      st_->executor->cancelRequest(static_cast<tle::IdType>(id));
    } catch (const std::exception& e) {
      throw trtllm_error(env, std::string("TensorRT-LLM cancelRequest failed: ") + e.what());
    }
    return env.Undefined();
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = st_;
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
    std::vector<std::unique_ptr<Staged>> none;
    auto* w = new OpWorker(env, std::move(none), -1, [st] { if (st) st->shutdown(); },
                           [st, self](Napi::Env e) {
                             if (st) st->on_response.Release();
                             return e.Undefined();
                           },
                           nullptr, "sr3d-trtllm-shutdown");
    Napi::Promise p = w->promise();
    w->Queue();
    st_.reset();
    return p;
  }

 public:
  // The request of one enqueue(): validated on the JS thread, then handed to the Executor.
  static tle::Request build_request(Baton& b) {
    const int64_t n_ids = length_of(b, "inputIds");
    if (n_ids < 1) bad("a non-empty Int32Array of token ids", b.name("inputIds"), describe(b.value("inputIds")));
    const int32_t* ids = static_cast<const int32_t*>(b.array("inputIds", napi_int32_array, n_ids));
    const int64_t rows = b.integer("tableRows", 0, kMaxDim), hidden = b.integer("hidden", 1, 1 << 20);
    const std::string dt = b.str("tableDtype", {"float16", "bfloat16", "float32"});
    const bool half = dt != "float32";
    const void* table = b.array("table", half ? napi_uint16_array : napi_float32_array, checked_mul({rows, hidden}, "table"));
    const int64_t max_new = b.integer("maxNewTokens", 1, 1 << 30);
    const int64_t end_id = b.integer("endId", -1, 0x7fffffff);
    const int64_t n_stop = length_of(b, "stopIds");
    const int32_t* stop = static_cast<const int32_t*>(b.array("stopIds", napi_int32_array, n_stop));

    tle::SamplingConfig sampling(1);
    if (b.has("topK")) sampling.setTopK(static_cast<tle::SizeType32>(b.integer("topK", 1, 1 << 30)));
    if (auto p = optional_number(b, "topP")) sampling.setTopP(static_cast<tle::FloatType>(*p));
    if (auto t = optional_number(b, "temperature")) sampling.setTemperature(static_cast<tle::FloatType>(*t));
    if (b.has("seed")) {
      const auto seed = static_cast<tle::RandomSeedType>(b.integer("seed", 0, (int64_t(1) << 53) - 1));
#if SR3D_TRTLLM_API_MAIN
      sampling.setSeed(seed);
#else
      sampling.setRandomSeed(seed);
#endif
    }
    tle::OutputConfig output;
    output.excludeInputFromOutput = true;  // only the new tokens, as sr3d's engine streams them

    tle::Request req(tle::VecTokens(ids, ids + n_ids), static_cast<tle::SizeType32>(max_new), /*streaming=*/true, sampling, output);
    if (end_id >= 0) {
      req.setEndId(static_cast<tle::SizeType32>(end_id));
      req.setPadId(static_cast<tle::SizeType32>(end_id));
    }
    if (n_stop > 0) {
      std::list<tle::VecTokens> words;
      for (int64_t i = 0; i < n_stop; ++i) words.push_back(tle::VecTokens{stop[i]});
      req.setStopWords(words);
    }
    if (rows > 0) {
      // The table is copied into a TensorRT-LLM-owned host tensor: the request outlives this call.
      tle::Tensor t = tle::Tensor::cpu(table_dtype(dt), {rows, hidden});
      std::memcpy(t.getData(), table, static_cast<size_t>(rows * hidden) * (half ? 2 : 4));
#if SR3D_TRTLLM_API_MAIN
      std::optional<tle::VecTokenExtraIds> extra;
      if (b.has("extraIds")) {
        const double* e = static_cast<const double*>(b.array("extraIds", napi_float64_array, n_ids));
        extra = tle::VecTokenExtraIds(n_ids);
        for (int64_t i = 0; i < n_ids; ++i) (*extra)[i] = static_cast<tle::IdType>(e[i]);
      }
      req.setPromptTuningConfig(tle::PromptTuningConfig(t, extra));
#else
      req.setPromptTuningConfig(tle::PromptTuningConfig(t));
#endif
    }
    return req;
  }

 private:
  std::shared_ptr<ExecutorState> st_;
};

Napi::Value CreateExecutor(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env env = info.Env();
    Baton b(info);
    const std::string dir = b.string("engineDir");
    const bool reuse = b.boolean("enableBlockReuse");
    std::optional<double> fraction = optional_number(b, "freeGpuMemoryFraction");
    if (fraction && !(*fraction > 0 && *fraction <= 1)) bad("a number in (0, 1]", "freeGpuMemoryFraction", sr3d::format_number(*fraction));
    Napi::Value cb = b.value("onResponse");
    if (!cb.IsFunction()) bad("a function (response) => void", "onResponse", describe(cb));

    auto st = std::make_shared<ExecutorState>();
    st->on_response = Napi::ThreadSafeFunction::New(env, cb.As<Napi::Function>(), "sr3d-trtllm-responses", 0, 1);
    // The response thread must not keep the process alive on its own; a request in flight does (lib/llm/trtllm.ts awaits it).
    st->on_response.Unref(env);
    // Node tearing the environment down (process exit) without shutdown(): stop the response
    // thread and the executor there, so no thread outlives the environment it calls into.
    std::weak_ptr<ExecutorState> weak = st;
    env.AddCleanupHook([weak] {
      if (auto s = weak.lock()) {
        try { s->shutdown(); } catch (...) {}
      }
    });
    auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
    auto holder = std::make_shared<Napi::ObjectReference>();
    *holder = Napi::Persistent(ctor->New({}));
    std::vector<std::unique_ptr<Staged>> none;
    auto* w = new OpWorker(
        env, std::move(none), -1,
        [st, dir, reuse, fraction] {
          try {
            initTrtLlmPlugins(nullptr, "tensorrt_llm");
            tle::KvCacheConfig kv;
            kv.setEnableBlockReuse(reuse);
            if (fraction) kv.setFreeGpuMemoryFraction(static_cast<tle::FloatType>(*fraction));
            tle::ExecutorConfig config;
            config.setMaxBeamWidth(1);
            config.setKvCacheConfig(kv);
            st->executor = std::make_unique<tle::Executor>(dir, tle::ModelType::kDECODER_ONLY, config);
          } catch (const sr3d::Error&) {
            throw;
          } catch (const std::exception& e) {
            throw sr3d::Error(sr3d::ErrorKind::kInternal,
                              std::string("TensorRT-LLM could not create an Executor for ") + dir + ": " + e.what() +
                                  ". Fix: build the engine with the TensorRT-LLM version this addon links (sr3d export trtllm prints the commands), on this GPU.");
          }
          st->poller = std::thread([st] { st->poll(); });
        },
        [st, holder](Napi::Env) -> Napi::Value {
          Napi::Object o = holder->Value();
          ExecutorWrap::Unwrap(o)->attach(st);
          return o;
        },
        [st](Napi::Env) {
          if (!st->executor) st->on_response.Release();
        },
        "sr3d-trtllm-create");
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

Napi::Value Version(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), tle::version()); }

}  // namespace

Napi::Object InitTrtllm(Napi::Env env, Napi::Object exports) {
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(ExecutorWrap::Define(env)));
  env.AddCleanupHook([ctor] { delete ctor; });
  exports.Set("api", kApi);
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  exports.Set("createExecutor", Napi::Function::New(env, CreateExecutor, "createExecutor", ctor));
  return exports;
}

}  // namespace sr3d_napi

Napi::Object InitTrtllmModule(Napi::Env env, Napi::Object exports) { return sr3d_napi::InitTrtllm(env, exports); }

NODE_API_MODULE(sr3d_trtllm, InitTrtllmModule)
