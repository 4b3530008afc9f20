// The N-API surface of sr3d. lib/native.ts declares it; nothing else calls it.
//
// Every op takes one options object ("baton"), validates it completely on the JS thread
// (types, sizes with overflow checks, detached buffers), keeps a reference to every typed
// array it touches, and runs the kernel in an AsyncWorker. It returns a Promise; failures
// reject with an Error whose `code` is SR3D_INVALID_ARGUMENT | SR3D_CUDA | SR3D_INTERNAL
// (CUDA errors also carry call, file, line, device). Nothing here aborts the process.
#include "common.h"
#include "../kernels/linear.h"

namespace sr3d_napi {

namespace {

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sr3d::BuildInfo bi = sr3d::build_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cudaCompiled", bi.cuda_compiled);
  o.Set("cudaRuntimeVersion", Napi::Number::New(env, bi.cuda_runtime_version));
  o.Set("cudaArchs", bi.cuda_archs);
  o.Set("cpuThreads", Napi::Number::New(env, sr3d::cpu_threads()));
  o.Set("simd", sr3d::cpu_simd());
  o.Set("int8Activations", sr3d::cpu::a8_isa_name());
  o.Set("bf16Activations", sr3d::cpu::ab16_isa_name());
  const std::vector<std::string> feats = sr3d::cpu_features();
  Napi::Array fa = Napi::Array::New(env, feats.size());
  for (size_t i = 0; i < feats.size(); ++i) fa.Set(static_cast<uint32_t>(i), feats[i]);
  o.Set("simdFeatures", fa);
  return o;
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string why;
  const bool with_free = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  std::vector<sr3d::CudaDeviceInfo> ds = sr3d::cuda_devices(&why, with_free);
  Napi::Object o = Napi::Object::New(env);
  Napi::Array arr = Napi::Array::New(env, ds.size());
  for (size_t i = 0; i < ds.size(); ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", Napi::Number::New(env, ds[i].index));
    d.Set("name", ds[i].name);
    d.Set("totalMemory", Napi::Number::New(env, static_cast<double>(ds[i].total_memory)));
    d.Set("computeCapability", std::to_string(ds[i].major) + "." + std::to_string(ds[i].minor));
    d.Set("multiprocessors", Napi::Number::New(env, ds[i].multiprocessors));
    d.Set("integrated", Napi::Boolean::New(env, ds[i].integrated));
    d.Set("canMapHostMemory", Napi::Boolean::New(env, ds[i].can_map_host_memory));
    d.Set("zeroCopy", Napi::Boolean::New(env, ds[i].zero_copy));
    if (ds[i].free_memory >= 0) d.Set("freeMemory", Napi::Number::New(env, static_cast<double>(ds[i].free_memory)));
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
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  exports.Set("devices", Napi::Function::New(env, Devices));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("triad", Napi::Function::New(env, Triad));
  register_geometry(env, exports);
  register_tiling(env, exports);
  register_region(env, exports);
  register_nn(env, exports);
  register_engine(env, exports);
#ifdef SR3D_WITH_CUDA
  exports.Set("variant", "cuda");
#else
  exports.Set("variant", "cpu");
#endif
  return exports;
}

}  // namespace
}  // namespace sr3d_napi

Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return sr3d_napi::Init(env, exports); }

NODE_API_MODULE(sr3d, InitModule)
