// The backend-neutral half of the engines (engine.h): spec and weight validation
// (check_weights), the argument checks both engines share, and the CUDA factory's stub in
// CPU-only builds. The engines themselves are kernels/cpu/engine_cpu.cc and
// kernels/cuda/engine_cuda.cu; what they share beyond this is in engine_detail.h.
#include "engine.h"

#include <cmath>
#include <string>
#include <vector>

#include "engine_detail.h"

namespace sr3d {

namespace {

using engine_detail::llm_head_dim;
namespace wn = weight_names;
using wn::bias_of;
using wn::weight_of;

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

std::string weight_name(const std::string& key) { return "weight '" + key + "'"; }

// The tensor `key` of any rank; throws when missing or malformed.
// `quant`: int4 / int8 allowed too (the LLM's projections, an untied lm_head, the embedding
// table), their group checked against the last dimension.
const WeightTensor& find_tensor(const WeightMap& w, const std::string& key,
                                const std::string& expect, bool quant = false) {
  auto it = w.find(key);
  if (it == w.end())
    throw_invalid_argument("a tensor of shape " + expect + " (float32, float16 or bfloat16)",
                           weight_name(key), "no such key in the weights");
  const WeightTensor& t = it->second;
  if (wtype_quantized(t.type) && quant) {
    if (!t.scales || !t.zeros)
      throw_invalid_argument("int4/int8 scales and zeros", weight_name(key), "nullptr");
    const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 0;
    if (t.group < 1 || cols % t.group != 0 || (t.type == WType::kQ4 && t.group % 2 != 0))
      throw_invalid_argument("a quantization group size dividing in features " +
                                 std::to_string(cols) + (t.type == WType::kQ4 ? " (even for int4)" : ""),
                             weight_name(key), std::to_string(t.group));
    // Both engines index x through perm: anything but a permutation would read out of bounds.
    if (t.perm) {
      std::vector<char> seen(static_cast<size_t>(cols), 0);
      for (int64_t j = 0; j < cols; ++j) {
        const int32_t p = t.perm[j];
        if (p < 0 || p >= cols || seen[static_cast<size_t>(p)])
          throw_invalid_argument("a permutation of 0.." + std::to_string(cols - 1) + " (each input once)",
                                 "perm[" + std::to_string(j) + "] of " + weight_name(key), std::to_string(p));
        seen[static_cast<size_t>(p)] = 1;
      }
    }
  } else if (t.type != WType::kF32 && t.type != WType::kF16 && t.type != WType::kBF16) {
    throw_invalid_argument(quant ? "dtype float32, float16, bfloat16, int4 or int8"
                                 : "dtype float32, float16 or bfloat16 (int4/int8 only for the "
                                   "LLM's attention and MLP projections, lm_head and embed_tokens)",
                           weight_name(key),
                           wtype_quantized(t.type) ? std::string(wtype_name(t.type))
                                                   : "dtype code " + std::to_string(static_cast<int>(t.type)));
  }
  if (!t.data) throw_invalid_argument("a non-null data pointer", weight_name(key), "nullptr");
  return t;
}

const WeightTensor& expect_shape(const WeightMap& w, const std::string& key,
                                 const std::vector<int64_t>& shape, bool quant = false) {
  const WeightTensor& t = find_tensor(w, key, shape_text(shape), quant);
  if (t.shape != shape)
    throw_invalid_argument("shape " + shape_text(shape), weight_name(key),
                           shape_text(t.shape) + " (" + wtype_name(t.type) + ")");
  return t;
}

// 2-D tensor with the given column count; rows free (< 0 = free columns too).
const WeightTensor& expect_matrix(const WeightMap& w, const std::string& key, int64_t rows,
                                  int64_t cols) {
  auto dim = [](int64_t v) { return v < 0 ? std::string("?") : std::to_string(v); };
  const std::string want = "[" + dim(rows) + ", " + dim(cols) + "]";
  const WeightTensor& t = find_tensor(w, key, want);
  if (t.shape.size() != 2 || t.shape[0] < 1 || t.shape[1] < 1 ||
      (rows >= 0 && t.shape[0] != rows) || (cols >= 0 && t.shape[1] != cols))
    throw_invalid_argument("shape " + want, weight_name(key),
                           shape_text(t.shape) + " (" + wtype_name(t.type) + ")");
  return t;
}

void need_positive(int64_t v, const std::string& name) {
  if (v < 1) throw_invalid_argument("a positive integer", name, std::to_string(v));
}
void need_eps(float v, const std::string& name) {
  if (!(v >= 0) || !std::isfinite(v))
    throw_invalid_argument("a finite eps >= 0", name, format_number(v));
}

// Width of an MLP module's input and output, checking every step's shapes along the way.
void check_mlp(const std::string& module, const std::vector<MlpStep>& steps, const WeightMap& w,
               int64_t* in_dim, int64_t* out_dim) {
  if (steps.empty())
    throw_invalid_argument("at least one step", "mlp module '" + module + "'", "0 steps");
  int64_t cur = -1, first = -1;
  for (size_t s = 0; s < steps.size(); ++s) {
    const MlpStep& st = steps[s];
    const std::string base = module + ".";
    switch (st.kind) {
      case MlpStep::kLinear: {
        const WeightTensor& t = expect_matrix(w, base + st.weight, -1, cur);
        if (cur < 0) first = t.shape[1];
        cur = t.shape[0];
        if (!st.bias.empty()) expect_shape(w, base + st.bias, {cur});
        break;
      }
      case MlpStep::kLayerNorm: {
        if (cur < 0) {
          const WeightTensor& g = find_tensor(w, base + st.weight, "[width]");
          if (g.shape.size() != 1 || g.shape[0] < 1)
            throw_invalid_argument("shape [width]", weight_name(base + st.weight),
                                   shape_text(g.shape));
          first = cur = g.shape[0];
        }
        expect_shape(w, base + st.weight, {cur});
        expect_shape(w, base + st.bias, {cur});
        need_eps(st.eps, "eps of mlp module '" + module + "' step " + std::to_string(s));
        break;
      }
      case MlpStep::kGeluErf:
      case MlpStep::kGeluTanh: break;
      default:
        throw_invalid_argument("a step kind (linear, layer_norm, gelu_erf, gelu_tanh)",
                               "mlp module '" + module + "' step " + std::to_string(s),
                               "kind " + std::to_string(static_cast<int>(st.kind)));
    }
  }
  if (cur < 0)
    throw_invalid_argument("at least one linear or layer_norm step", "mlp module '" + module + "'",
                           "only activations");
  *in_dim = first;
  *out_dim = cur;
}

void check_spec_numbers(const ModelSpec& spec) {
  if (spec.has_vision || spec.has_projector) {
    const VisionSpec& v = spec.vision;
    need_positive(v.image_size, "vision.image_size");
    need_positive(v.patch_size, "vision.patch_size");
    if (v.image_size % v.patch_size != 0)
      throw_invalid_argument("an image size divisible by the patch size " +
                                 std::to_string(v.patch_size),
                             "vision.image_size", std::to_string(v.image_size));
  }
  if (spec.has_vision) {
    const VisionSpec& v = spec.vision;
    need_positive(v.hidden, "vision.hidden");
    need_positive(v.heads, "vision.heads");
    need_positive(v.intermediate, "vision.intermediate");
    if (v.hidden % v.heads != 0)
      throw_invalid_argument("a hidden size divisible by the head count " + std::to_string(v.heads),
                             "vision.hidden", std::to_string(v.hidden));
    if (v.layers_run < 0)
      throw_invalid_argument("a layer count >= 0", "vision.layers_run", std::to_string(v.layers_run));
    need_eps(v.eps, "vision.eps");
    if (v.act != Act::kGeluTanh && v.act != Act::kGeluErf && v.act != Act::kSilu)
      throw_invalid_argument("an activation", "vision.act", std::to_string(static_cast<int>(v.act)));
  }
  if (spec.has_projector) need_eps(spec.projector.eps, "projector.eps");
  if (spec.has_llm) {
    const LlmSpec& l = spec.llm;
    need_positive(l.hidden, "llm.hidden");
    need_positive(l.layers, "llm.layers");
    need_positive(l.heads, "llm.heads");
    need_positive(l.kv_heads, "llm.kv_heads");
    need_positive(l.intermediate, "llm.intermediate");
    need_positive(l.vocab, "llm.vocab");
    if (l.heads % l.kv_heads != 0)
      throw_invalid_argument("a head count divisible by kv_heads " + std::to_string(l.kv_heads),
                             "llm.heads", std::to_string(l.heads));
    const int64_t hd = llm_head_dim(l);
    if (hd < 2 || hd % 2 != 0 || (l.head_dim <= 0 && l.hidden % l.heads != 0))
      throw_invalid_argument("an even head_dim >= 2 (or hidden divisible by heads)",
                             "llm.head_dim", std::to_string(l.head_dim));
    if (!(l.rope_theta > 0) || !std::isfinite(l.rope_theta))
      throw_invalid_argument("a finite rope_theta > 0", "llm.rope_theta", format_number(l.rope_theta));
    need_eps(l.eps, "llm.eps");
    need_positive(spec.max_context, "max_context");
  }
  if (spec.llm_activations != ActPrecision::kF32 && spec.llm_activations != ActPrecision::kInt8 &&
      spec.llm_activations != ActPrecision::kBF16)
    throw_invalid_argument("ActPrecision::kF32, kInt8 or kBF16", "llm_activations",
                           std::to_string(static_cast<int>(spec.llm_activations)));
}

}  // namespace

const char* act_precision_name(ActPrecision a) {
  return a == ActPrecision::kInt8 ? "int8" : a == ActPrecision::kBF16 ? "bf16" : "f32";
}

void check_weights(const ModelSpec& spec, const WeightMap& w) {
  check_spec_numbers(spec);
  if (spec.has_vision) {
    const VisionSpec& v = spec.vision;
    const int64_t H = v.hidden, p = v.patch_size, P = v.image_size / p, I = v.intermediate;
    namespace V = wn::vision;
    const std::string patch = wn::vision_key(V::kPatchEmbedding);
    expect_shape(w, weight_of(patch), {H, 3, p, p});
    expect_shape(w, bias_of(patch), {H});
    expect_shape(w, weight_of(wn::vision_key(V::kPositionEmbedding)), {P * P, H});
    for (int64_t i = 0; i < v.layers_run; ++i) {
      for (const char* n : {V::kLayerNorm1, V::kLayerNorm2}) {
        expect_shape(w, weight_of(wn::vision_layer_key(i, n)), {H});
        expect_shape(w, bias_of(wn::vision_layer_key(i, n)), {H});
      }
      for (const char* n : {V::kQ, V::kK, V::kV, V::kOut}) {
        expect_shape(w, weight_of(wn::vision_layer_key(i, n)), {H, H});
        expect_shape(w, bias_of(wn::vision_layer_key(i, n)), {H});
      }
      const std::string fc1 = wn::vision_layer_key(i, V::kFc1), fc2 = wn::vision_layer_key(i, V::kFc2);
      expect_shape(w, weight_of(fc1), {I, H});
      expect_shape(w, bias_of(fc1), {I});
      expect_shape(w, weight_of(fc2), {H, I});
      expect_shape(w, bias_of(fc2), {H});
    }
  }
  if (spec.has_projector) {
    namespace Pj = wn::projector;
    const std::string ln1 = wn::projector_key(Pj::kLayerNorm1), fc1 = wn::projector_key(Pj::kFc1),
                      ln2 = wn::projector_key(Pj::kLayerNorm2), fc2 = wn::projector_key(Pj::kFc2),
                      fc3 = wn::projector_key(Pj::kFc3);
    const int64_t c9 = spec.has_vision ? 9 * spec.vision.hidden : -1;
    const WeightTensor& g1 = find_tensor(w, weight_of(ln1), c9 > 0 ? shape_text({c9}) : "[9*c]");
    if (g1.shape.size() != 1 || g1.shape[0] < 9 || g1.shape[0] % 9 != 0 ||
        (c9 > 0 && g1.shape[0] != c9))
      throw_invalid_argument(c9 > 0 ? "shape " + shape_text({c9}) : "shape [9*c]",
                             weight_name(weight_of(ln1)), shape_text(g1.shape));
    const int64_t in = g1.shape[0];
    expect_shape(w, bias_of(ln1), {in});
    const int64_t w2 = expect_matrix(w, weight_of(fc1), -1, in).shape[0];
    expect_shape(w, bias_of(fc1), {w2});
    expect_shape(w, weight_of(ln2), {w2});
    expect_shape(w, bias_of(ln2), {w2});
    const int64_t w5 = expect_matrix(w, weight_of(fc2), -1, w2).shape[0];
    expect_shape(w, bias_of(fc2), {w5});
    const int64_t w7 =
        expect_matrix(w, weight_of(fc3), spec.has_llm ? spec.llm.hidden : -1, w5).shape[0];
    expect_shape(w, bias_of(fc3), {w7});
  }
  if (spec.has_llm) {
    const LlmSpec& l = spec.llm;
    const int64_t H = l.hidden, hd = llm_head_dim(l), qd = l.heads * hd, kvd = l.kv_heads * hd;
    namespace L = wn::llm;
    // A quantized table is dequantized row by row at lookup, and is the tied lm_head's matrix.
    expect_shape(w, weight_of(wn::llm_key(L::kEmbedTokens)), {l.vocab, H}, true);
    for (int64_t i = 0; i < l.layers; ++i) {
      auto key = [i](const char* module) { return wn::llm_layer_key(i, module); };
      expect_shape(w, weight_of(key(L::kInputNorm)), {H});
      expect_shape(w, weight_of(key(L::kQ)), {qd, H}, true);
      expect_shape(w, bias_of(key(L::kQ)), {qd});
      expect_shape(w, weight_of(key(L::kK)), {kvd, H}, true);
      expect_shape(w, bias_of(key(L::kK)), {kvd});
      expect_shape(w, weight_of(key(L::kV)), {kvd, H}, true);
      expect_shape(w, bias_of(key(L::kV)), {kvd});
      expect_shape(w, weight_of(key(L::kO)), {H, qd}, true);
      expect_shape(w, weight_of(key(L::kPostAttentionNorm)), {H});
      expect_shape(w, weight_of(key(L::kGate)), {l.intermediate, H}, true);
      expect_shape(w, weight_of(key(L::kUp)), {l.intermediate, H}, true);
      expect_shape(w, weight_of(key(L::kDown)), {H, l.intermediate}, true);
    }
    expect_shape(w, weight_of(wn::llm_key(L::kNorm)), {H});
    if (!l.tie_word_embeddings) expect_shape(w, weight_of(wn::llm_key(L::kLmHead)), {l.vocab, H}, true);
  }
  for (const auto& m : spec.mlps) {
    int64_t in = 0, out = 0;
    check_mlp(m.first, m.second, w, &in, &out);
  }
}

namespace engine_detail {
void check_call(const float* in, const float* out, int64_t n, const char* name) {
  if (n < 1) throw_invalid_argument("a positive count", "n", std::to_string(n));
  if (!in) throw_invalid_argument("a non-null buffer", name, "nullptr");
  if (!out) throw_invalid_argument("a non-null buffer", "out", "nullptr");
}
void need_llm(const ModelSpec& spec, const char* what) {
  if (!spec.has_llm) throw_invalid_argument("a model with a language model", what, "has_llm = false");
}
void check_token(const ModelSpec& spec, int64_t id, const std::string& name) {
  if (id < 0 || id >= spec.llm.vocab)
    throw_invalid_argument("a token id in [0, " + std::to_string(spec.llm.vocab) + ")", name, std::to_string(id));
}
}  // namespace engine_detail

#ifndef SR3D_WITH_CUDA
std::unique_ptr<Engine> make_cuda_engine(const ModelSpec&, const WeightMap&, int) {
  throw_cpu_only_build();
}
#endif

}  // namespace sr3d
