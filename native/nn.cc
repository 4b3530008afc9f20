// N-API bindings of the neural-network ops (kernels/linear.h, attention.h, norms.h,
// activation.h, rope.h, projector.h): one Promise-returning function per op, host buffers in
// and out. See native/common.h for the conventions.
#include "common.h"

#include "../kernels/activation.h"
#include "../kernels/attention.h"
#include "../kernels/linear.h"
#include "../kernels/norms.h"
#include "../kernels/projector.h"
#include "../kernels/rope.h"

namespace sr3d_napi {
namespace {

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

// A Linear weight of `rows` x `cols`: read_weight's dense dtypes, or 'q4' / 'q8' in sr3d's
// quantized layout (kernels/weights.h): weight = q (Uint8Array of rows * cols * bits / 8),
// weightScales (Float32Array) and weightZeros (Uint8Array) of rows * cols / weightGroup,
// weightPerm (Int32Array of cols) or null. The kernel checks that perm is a permutation.
sr3d::WeightRef read_linear_weight(Baton& b, int64_t rows, int64_t cols) {
  const std::string dt = b.str("weightDtype", {"f32", "f16", "bf16", "q4", "q8"});
  if (dt != "q4" && dt != "q8") return read_weight(b, "weight", "weightDtype", rows, cols);
  sr3d::WeightRef w;
  w.type = dt == "q4" ? sr3d::WType::kQ4 : sr3d::WType::kQ8;
  w.rows = rows;
  w.cols = cols;
  w.group = b.integer("weightGroup", 1, cols);
  if (cols % w.group != 0 || (dt == "q4" && w.group % 2 != 0))
    bad(std::string("a group size dividing inDim ") + std::to_string(cols) +
            (dt == "q4" ? " and even (two int4 inputs per byte)" : ""),
        "weightGroup", std::to_string(w.group));
  const int64_t groups = checked_mul({rows, cols / w.group}, "weightScales");
  w.data = b.array("weight", napi_uint8_array,
                   checked_mul({rows, dt == "q4" ? cols / 2 : cols}, "weight"));
  w.scales = static_cast<const float*>(b.array("weightScales", napi_float32_array, groups));
  w.zeros = static_cast<const uint8_t*>(b.array("weightZeros", napi_uint8_array, groups));
  w.perm = static_cast<const int32_t*>(b.array("weightPerm", napi_int32_array, cols, true));
  return w;
}

float read_eps(Baton& b, const char* key) {
  double e = b.number(key);
  if (!(e > 0) || !(e < 1)) bad("a number in (0, 1)", key, sr3d::format_number(e));
  return static_cast<float>(e);
}

Napi::Value Linear(const Napi::CallbackInfo& info) {
  return run_op(info, [](const Napi::CallbackInfo& info) {
    Baton b(info);
    const int64_t n = b.integer("n", 0, kMaxDim);
    const int64_t in = b.integer("inDim", 1, kMaxDim), out = b.integer("outDim", 1, kMaxDim);
    const float* x = static_cast<const float*>(b.array("x", napi_float32_array, checked_mul({n, in}, "x")));
    sr3d::WeightRef w = read_linear_weight(b, out, in);
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

}  // namespace

void register_nn(Napi::Env env, Napi::Object exports) {
  exports.Set("nnLinear", Napi::Function::New(env, Linear));
  exports.Set("nnLayerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("nnRmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("nnActivation", Napi::Function::New(env, Activation));
  exports.Set("nnSiluMul", Napi::Function::New(env, SiluMul));
  exports.Set("nnRope", Napi::Function::New(env, Rope));
  exports.Set("nnAttention", Napi::Function::New(env, Attention));
  exports.Set("nnSpaceToChannel3", Napi::Function::New(env, SpaceToChannel3));
  exports.Set("nnPatchEmbed", Napi::Function::New(env, PatchEmbed));
}

}  // namespace sr3d_napi
