// The CPU engine (engine.h): SigLIP, the 3x3 projector, MLP modules and the Qwen2 decoder on
// the fast CPU ops of nn.h, weights used in place, biases / norm weights / the position
// embedding converted to float32 once at creation. Also check_weights, shared by both engines.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "../engine.h"
#include "../engine_mlp.h"
#include "nn_cpu.h"

namespace sr3d {

namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

std::string weight_name(const std::string& key) { return "weight '" + key + "'"; }

// The tensor `key` of any rank; throws when missing or malformed.
const WeightTensor& find_tensor(const WeightMap& w, const std::string& key,
                                const std::string& expect) {
  auto it = w.find(key);
  if (it == w.end())
    throw_invalid_argument("a tensor of shape " + expect + " (float32, float16 or bfloat16)",
                           weight_name(key), "no such key in the weights");
  const WeightTensor& t = it->second;
  if (t.type != WType::kF32 && t.type != WType::kF16 && t.type != WType::kBF16)
    throw_invalid_argument("dtype float32, float16 or bfloat16", weight_name(key),
                           "dtype code " + std::to_string(static_cast<int>(t.type)));
  if (!t.data) throw_invalid_argument("a non-null data pointer", weight_name(key), "nullptr");
  return t;
}

const WeightTensor& expect_shape(const WeightMap& w, const std::string& key,
                                 const std::vector<int64_t>& shape) {
  const WeightTensor& t = find_tensor(w, key, shape_text(shape));
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

const std::string kV = "vision.vision_model.";
const std::string kL = "llm.";

std::string vlayer(int64_t i) { return kV + "encoder.layers." + std::to_string(i) + "."; }
std::string llayer(int64_t i) { return kL + "model.layers." + std::to_string(i) + "."; }

int64_t llm_head_dim(const LlmSpec& s) {
  return s.head_dim > 0 ? s.head_dim : (s.heads > 0 ? s.hidden / s.heads : 0);
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
}

// ---- engine helpers ------------------------------------------------------------------------

WeightRef as_ref(const WeightTensor& t) {
  WeightRef r;
  r.data = t.data;
  r.type = t.type;
  r.rows = t.shape[0];
  r.cols = 1;
  for (size_t i = 1; i < t.shape.size(); ++i) r.cols *= t.shape[i];
  return r;
}

int64_t tensor_bytes(const WeightTensor& t) {
  int64_t n = wtype_size(t.type);
  for (int64_t d : t.shape) n *= d;
  return n;
}

void add_inplace(float* h, const float* a, int64_t n) {
  parallel_for(n, static_cast<int>(std::min<int64_t>(cpu_threads(), (n + 16383) / 16384)),
               [&](int, int64_t b, int64_t e) {
                 for (int64_t i = b; i < e; ++i) h[i] += a[i];
               });
}

struct VisionLayer {
  const float *ln1_g, *ln1_b, *ln2_g, *ln2_b, *qb, *kb, *vb, *ob, *fc1b, *fc2b;
  WeightRef q, k, v, o, fc1, fc2;
};
struct LlmLayer {
  const float *in_norm, *post_norm, *qb, *kb, *vb;
  WeightRef q, k, v, o, gate, up, down;
};
using engine_detail::MlpModule;
using engine_detail::MlpOp;

class CpuEngine final : public Engine {
 public:
  CpuEngine(const ModelSpec& spec, const WeightMap& weights) : spec_(spec), weights_(weights) {
    check_weights(spec, weights);
    if (spec_.has_llm && spec_.llm.head_dim <= 0) spec_.llm.head_dim = llm_head_dim(spec_.llm);
    if (spec_.has_vision) build_vision();
    if (spec_.has_projector) build_projector();
    if (spec_.has_llm) build_llm();
    for (const auto& m : spec_.mlps) build_mlp(m.first, m.second);
  }

  EngineInfo info() const override {
    EngineInfo i;
    i.device = "cpu";
    i.weight_bytes = weight_bytes_;
    for (const auto& s : small_) i.weight_bytes += static_cast<int64_t>(s.second.size() * 4);
    i.kv_cache_bytes = static_cast<int64_t>(kcache_.size() + vcache_.size()) * 4;
    i.scratch_bytes = 0;
    for (const std::vector<float>* b : {&s_h_, &s_a_, &s_b_, &s_q_, &s_k_, &s_v_, &s_m_})
      i.scratch_bytes += static_cast<int64_t>(b->capacity() * 4);
    i.scratch_bytes += static_cast<int64_t>(logits_.capacity() * 4);
    i.max_context = spec_.has_llm ? spec_.max_context : 0;
    return i;
  }
  const ModelSpec& spec() const override { return spec_; }

  void encode_tiles(const float* tiles, int64_t n, float* out) override {
    if (!spec_.has_vision)
      throw_invalid_argument("a model with a vision tower", "encode_tiles", "has_vision = false");
    engine_detail::check_call(tiles, out, n, "tiles");
    const VisionSpec& vs = spec_.vision;
    const int64_t P = vs.image_size / vs.patch_size, T = P * P, H = vs.hidden;
    const int64_t rows = n * T, hd = H / vs.heads;
    const float scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));
    float* h = out;  // the residual stream lives in the caller's output
    patch_embed(tiles, n, vs.image_size, vs.patch_size, patch_w_, patch_b_, h, Impl::kFast);
    parallel_for(rows, 0, [&](int, int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const float* pe = pos_ + (r % T) * H;
        for (int64_t c = 0; c < H; ++c) h[r * H + c] += pe[c];
      }
    });
    float* a = grow(s_a_, rows * H);
    float* q = grow(s_q_, rows * H);
    float* k = grow(s_k_, rows * H);
    float* v = grow(s_v_, rows * H);
    float* att = grow(s_b_, rows * H);
    float* m = grow(s_m_, rows * vs.intermediate);
    for (const VisionLayer& L : vlayers_) {
      layer_norm(h, rows, H, L.ln1_g, L.ln1_b, vs.eps, a, Impl::kFast);
      {
        const WeightRef ws[3] = {L.q, L.k, L.v};
        const float* bs[3] = {L.qb, L.kb, L.vb};
        float* ys[3] = {q, k, v};
        cpu::linear_multi_fast(a, rows, ws, bs, ys, 3);
      }
      for (int64_t t = 0; t < n; ++t)
        attention(q + t * T * H, k + t * T * H, v + t * T * H, T, T, vs.heads, vs.heads, hd,
                  scale, false, 0, att + t * T * H, Impl::kFast);
      linear(att, rows, L.o, L.ob, a, Impl::kFast);
      add_inplace(h, a, rows * H);
      layer_norm(h, rows, H, L.ln2_g, L.ln2_b, vs.eps, a, Impl::kFast);
      linear(a, rows, L.fc1, L.fc1b, m, Impl::kFast);
      activation(m, rows * vs.intermediate, vs.act, Impl::kFast);
      linear(m, rows, L.fc2, L.fc2b, a, Impl::kFast);
      add_inplace(h, a, rows * H);
    }
  }

  void project(const float* features, int64_t n, float* out) override {
    if (!spec_.has_projector)
      throw_invalid_argument("a model with a projector", "project", "has_projector = false");
    engine_detail::check_call(features, out, n, "features");
    const int64_t g = spec_.vision.image_size / spec_.vision.patch_size, G = (g + 2) / 3;
    const int64_t rows = n * G * G;
    float* a = grow(s_a_, rows * std::max(9 * proj_c_, proj_[2].w.rows));
    float* b = grow(s_b_, rows * proj_[1].w.rows);
    space_to_channel3(features, n, g, proj_c_, a, Impl::kFast);
    layer_norm(a, rows, 9 * proj_c_, proj_[0].gamma, proj_[0].beta, spec_.projector.eps, a,
               Impl::kFast);
    linear(a, rows, proj_[1].w, proj_[1].bias, b, Impl::kFast);
    activation(b, rows * proj_[1].w.rows, Act::kGeluErf, Impl::kFast);
    layer_norm(b, rows, proj_[1].w.rows, proj_[3].gamma, proj_[3].beta, spec_.projector.eps, b,
               Impl::kFast);
    linear(b, rows, proj_[2].w, proj_[2].bias, a, Impl::kFast);
    activation(a, rows * proj_[2].w.rows, Act::kGeluErf, Impl::kFast);
    linear(a, rows, proj_[4].w, proj_[4].bias, out, Impl::kFast);
  }

  void run_mlp(const std::string& module, const float* x, int64_t rows, float* out) override {
    const MlpModule& m = mlp(module);
    engine_detail::check_call(x, out, rows, "x");
    int64_t widest = m.in;
    for (const MlpOp& op : m.ops) widest = std::max(widest, op.width);
    float* cur = grow(s_a_, rows * widest);
    float* nxt = grow(s_b_, rows * widest);
    std::memcpy(cur, x, static_cast<size_t>(rows * m.in) * sizeof(float));
    int64_t width = m.in;
    for (const MlpOp& op : m.ops) {
      switch (op.kind) {
        case MlpStep::kLinear:
          linear(cur, rows, op.w, op.bias, nxt, Impl::kFast);
          std::swap(cur, nxt);
          break;
        case MlpStep::kLayerNorm:
          layer_norm(cur, rows, width, op.gamma, op.beta, op.eps, cur, Impl::kFast);
          break;
        case MlpStep::kGeluErf: activation(cur, rows * width, Act::kGeluErf, Impl::kFast); break;
        case MlpStep::kGeluTanh: activation(cur, rows * width, Act::kGeluTanh, Impl::kFast); break;
      }
      width = op.width;
    }
    std::memcpy(out, cur, static_cast<size_t>(rows * m.out) * sizeof(float));
  }
  int64_t mlp_in_dim(const std::string& module) const override { return mlp(module).in; }
  int64_t mlp_out_dim(const std::string& module) const override { return mlp(module).out; }

  void embed_tokens(const int32_t* ids, int64_t n, float* out) override {
    engine_detail::need_llm(spec_, "embed_tokens");
    if (n < 1) throw_invalid_argument("a positive token count", "n", std::to_string(n));
    if (!ids) throw_invalid_argument("a non-null buffer", "ids", "nullptr");
    if (!out) throw_invalid_argument("a non-null buffer", "out", "nullptr");
    for (int64_t i = 0; i < n; ++i) engine_detail::check_token(spec_, ids[i], "ids[" + std::to_string(i) + "]");
    const int64_t H = spec_.llm.hidden;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t base = static_cast<int64_t>(ids[i]) * H;
      if (embed_.type == WType::kF32)
        std::memcpy(out + i * H, static_cast<const float*>(embed_.data) + base, H * sizeof(float));
      else
        for (int64_t c = 0; c < H; ++c) out[i * H + c] = load_weight(embed_.data, embed_.type, base + c);
    }
  }

  void reset() override {
    cached_ = 0;
    has_logits_ = false;
  }
  int64_t cached() const override { return cached_; }

  void prefill(const float* emb, int64_t n) override {
    engine_detail::need_llm(spec_, "prefill");
    if (n < 1) throw_invalid_argument("a positive position count", "n", std::to_string(n));
    if (!emb) throw_invalid_argument("a non-null buffer", "embeddings", "nullptr");
    if (cached_ + n > spec_.max_context)
      throw_invalid_argument("at most " + std::to_string(spec_.max_context - cached_) +
                                 " new positions (max_context " +
                                 std::to_string(spec_.max_context) + ", " +
                                 std::to_string(cached_) + " cached)",
                             "n", std::to_string(n));
    run_llm(emb, n);
  }

  void decode(int32_t token) override {
    engine_detail::need_llm(spec_, "decode");
    engine_detail::check_token(spec_, token, "token");
    if (cached_ + 1 > spec_.max_context)
      throw_invalid_argument("a free KV-cache position (max_context " +
                                 std::to_string(spec_.max_context) + " reached; reset())",
                             "decode", std::to_string(cached_) + " cached");
    std::vector<float>& e = tok_emb_;
    e.resize(static_cast<size_t>(spec_.llm.hidden));
    embed_tokens(&token, 1, e.data());
    run_llm(e.data(), 1);
  }

  const float* last_logits() override {
    engine_detail::need_llm(spec_, "last_logits");
    if (!has_logits_)
      throw_invalid_argument("a prefill() or decode() before last_logits()", "last_logits",
                             "an empty session");
    return logits_.data();
  }

 private:
  static float* grow(std::vector<float>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
    return v.data();
  }

  const MlpModule& mlp(const std::string& module) const { return engine_detail::find_mlp(mlps_, module); }

  const WeightTensor& tensor(const std::string& key) {
    const WeightTensor& t = weights_.at(key);
    if (used_.insert(key).second) weight_bytes_ += tensor_bytes(t);
    return t;
  }
  WeightRef big(const std::string& key) { return as_ref(tensor(key)); }
  // A float32 copy, made once (biases, norm weights, the position embedding).
  const float* small(const std::string& key) {
    auto it = small_.find(key);
    if (it != small_.end()) return it->second.data();
    const WeightTensor& t = weights_.at(key);
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = load_weight(t.data, t.type, i);
    return small_.emplace(key, std::move(v)).first->second.data();
  }

  void build_vision() {
    patch_w_ = big(kV + "embeddings.patch_embedding.weight");
    patch_b_ = small(kV + "embeddings.patch_embedding.bias");
    pos_ = small(kV + "embeddings.position_embedding.weight");
    for (int64_t i = 0; i < spec_.vision.layers_run; ++i) {
      const std::string p = vlayer(i);
      VisionLayer L;
      L.ln1_g = small(p + "layer_norm1.weight");
      L.ln1_b = small(p + "layer_norm1.bias");
      L.ln2_g = small(p + "layer_norm2.weight");
      L.ln2_b = small(p + "layer_norm2.bias");
      L.q = big(p + "self_attn.q_proj.weight");
      L.qb = small(p + "self_attn.q_proj.bias");
      L.k = big(p + "self_attn.k_proj.weight");
      L.kb = small(p + "self_attn.k_proj.bias");
      L.v = big(p + "self_attn.v_proj.weight");
      L.vb = small(p + "self_attn.v_proj.bias");
      L.o = big(p + "self_attn.out_proj.weight");
      L.ob = small(p + "self_attn.out_proj.bias");
      L.fc1 = big(p + "mlp.fc1.weight");
      L.fc1b = small(p + "mlp.fc1.bias");
      L.fc2 = big(p + "mlp.fc2.weight");
      L.fc2b = small(p + "mlp.fc2.bias");
      vlayers_.push_back(L);
    }
  }

  void build_projector() {
    const std::string p = "projector.layers.";
    proj_[0].gamma = small(p + "1.weight");
    proj_[0].beta = small(p + "1.bias");
    proj_c_ = weights_.at(p + "1.weight").shape[0] / 9;
    proj_[3].gamma = small(p + "4.weight");
    proj_[3].beta = small(p + "4.bias");
    const char* lin[3] = {"2", "5", "7"};
    for (int i = 0; i < 3; ++i) {
      MlpOp& op = proj_[i == 0 ? 1 : i == 1 ? 2 : 4];
      op.w = big(p + lin[i] + ".weight");
      op.bias = small(p + lin[i] + ".bias");
    }
  }

  void build_llm() {
    const LlmSpec& l = spec_.llm;
    embed_ = big(kL + "model.embed_tokens.weight");
    lm_head_ = l.tie_word_embeddings ? embed_ : big(kL + "lm_head.weight");
    final_norm_ = small(kL + "model.norm.weight");
    for (int64_t i = 0; i < l.layers; ++i) {
      const std::string p = llayer(i);
      LlmLayer L;
      L.in_norm = small(p + "input_layernorm.weight");
      L.post_norm = small(p + "post_attention_layernorm.weight");
      L.q = big(p + "self_attn.q_proj.weight");
      L.qb = small(p + "self_attn.q_proj.bias");
      L.k = big(p + "self_attn.k_proj.weight");
      L.kb = small(p + "self_attn.k_proj.bias");
      L.v = big(p + "self_attn.v_proj.weight");
      L.vb = small(p + "self_attn.v_proj.bias");
      L.o = big(p + "self_attn.o_proj.weight");
      L.gate = big(p + "mlp.gate_proj.weight");
      L.up = big(p + "mlp.up_proj.weight");
      L.down = big(p + "mlp.down_proj.weight");
      llayers_.push_back(L);
    }
    const int64_t per_layer = spec_.max_context * l.kv_heads * l.head_dim;
    try {
      kcache_.assign(static_cast<size_t>(per_layer * l.layers), 0.f);
      vcache_.assign(static_cast<size_t>(per_layer * l.layers), 0.f);
    } catch (const std::bad_alloc&) {
      throw_invalid_argument("a max_context whose float32 KV cache fits in memory", "max_context",
                             std::to_string(spec_.max_context) + " (" +
                                 std::to_string(2 * per_layer * l.layers * 4) + " bytes)");
    }
    logits_.assign(static_cast<size_t>(l.vocab), 0.f);
  }

  void build_mlp(const std::string& name, const std::vector<MlpStep>& steps) {
    mlps_[name] = engine_detail::resolve_mlp(
        name, steps, weights_, [&](const std::string& k) { return big(k); },
        [&](const std::string& k) { return small(k); });
  }

  // Appends n positions starting at cached_ and keeps the last position's logits.
  void run_llm(const float* emb, int64_t n) {
    const LlmSpec& l = spec_.llm;
    const int64_t H = l.hidden, hd = l.head_dim, qd = l.heads * hd, kvd = l.kv_heads * hd;
    const int64_t I = l.intermediate, start = cached_, total = start + n;
    const float scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));
    float* h = grow(s_h_, n * H);
    std::memcpy(h, emb, static_cast<size_t>(n * H) * sizeof(float));
    float* a = grow(s_a_, n * std::max(H, qd));
    float* q = grow(s_q_, n * qd);
    float* att = grow(s_b_, n * qd);
    float* gate = grow(s_m_, n * I);
    float* up = grow(s_v_, n * I);
    pos_ids_.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pos_ids_[i] = static_cast<int32_t>(start + i);
    has_logits_ = false;
    for (size_t li = 0; li < llayers_.size(); ++li) {
      const LlmLayer& L = llayers_[li];
      float* kc = kcache_.data() + static_cast<int64_t>(li) * spec_.max_context * kvd;
      float* vc = vcache_.data() + static_cast<int64_t>(li) * spec_.max_context * kvd;
      rms_norm(h, n, H, L.in_norm, l.eps, a, Impl::kFast);
      {  // q, k, v in one pass; k and v straight into the cache
        const WeightRef ws[3] = {L.q, L.k, L.v};
        const float* bs[3] = {L.qb, L.kb, L.vb};
        float* ys[3] = {q, kc + start * kvd, vc + start * kvd};
        cpu::linear_multi_fast(a, n, ws, bs, ys, 3);
      }
      rope(q, n, l.heads, hd, pos_ids_.data(), l.rope_theta, Impl::kFast);
      rope(kc + start * kvd, n, l.kv_heads, hd, pos_ids_.data(), l.rope_theta, Impl::kFast);
      attention(q, kc, vc, n, total, l.heads, l.kv_heads, hd, scale, true, start, att,
                Impl::kFast);
      linear(att, n, L.o, nullptr, a, Impl::kFast);
      add_inplace(h, a, n * H);
      rms_norm(h, n, H, L.post_norm, l.eps, a, Impl::kFast);
      {
        const WeightRef ws[2] = {L.gate, L.up};
        const float* bs[2] = {nullptr, nullptr};
        float* ys[2] = {gate, up};
        cpu::linear_multi_fast(a, n, ws, bs, ys, 2);
      }
      silu_mul(gate, up, n * I, gate, Impl::kFast);
      linear(gate, n, L.down, nullptr, a, Impl::kFast);
      add_inplace(h, a, n * H);
    }
    rms_norm(h + (n - 1) * H, 1, H, final_norm_, l.eps, a, Impl::kFast);
    linear(a, 1, lm_head_, nullptr, logits_.data(), Impl::kFast);
    cached_ = total;
    has_logits_ = true;
  }

  ModelSpec spec_;
  WeightMap weights_;
  std::map<std::string, std::vector<float>> small_;
  std::set<std::string> used_;
  int64_t weight_bytes_ = 0;

  WeightRef patch_w_;
  const float *patch_b_ = nullptr, *pos_ = nullptr;
  std::vector<VisionLayer> vlayers_;

  MlpOp proj_[5];  // [0] LN layers.1, [1] Linear layers.2, [2] Linear layers.5,
  int64_t proj_c_ = 0;  // [3] LN layers.4, [4] Linear layers.7

  WeightRef embed_, lm_head_;
  const float* final_norm_ = nullptr;
  std::vector<LlmLayer> llayers_;
  std::vector<float> kcache_, vcache_, logits_, tok_emb_;
  std::vector<int32_t> pos_ids_;
  int64_t cached_ = 0;
  bool has_logits_ = false;

  engine_detail::MlpModules mlps_;
  std::vector<float> s_h_, s_a_, s_b_, s_q_, s_k_, s_v_, s_m_;  // scratch, grown on demand
};

}  // namespace

void check_weights(const ModelSpec& spec, const WeightMap& w) {
  check_spec_numbers(spec);
  if (spec.has_vision) {
    const VisionSpec& v = spec.vision;
    const int64_t H = v.hidden, p = v.patch_size, P = v.image_size / p, I = v.intermediate;
    expect_shape(w, kV + "embeddings.patch_embedding.weight", {H, 3, p, p});
    expect_shape(w, kV + "embeddings.patch_embedding.bias", {H});
    expect_shape(w, kV + "embeddings.position_embedding.weight", {P * P, H});
    for (int64_t i = 0; i < v.layers_run; ++i) {
      const std::string l = vlayer(i);
      for (const char* n : {"layer_norm1", "layer_norm2"}) {
        expect_shape(w, l + n + ".weight", {H});
        expect_shape(w, l + n + ".bias", {H});
      }
      for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
        expect_shape(w, l + "self_attn." + n + ".weight", {H, H});
        expect_shape(w, l + "self_attn." + n + ".bias", {H});
      }
      expect_shape(w, l + "mlp.fc1.weight", {I, H});
      expect_shape(w, l + "mlp.fc1.bias", {I});
      expect_shape(w, l + "mlp.fc2.weight", {H, I});
      expect_shape(w, l + "mlp.fc2.bias", {H});
    }
  }
  if (spec.has_projector) {
    const std::string p = "projector.layers.";
    const int64_t c9 = spec.has_vision ? 9 * spec.vision.hidden : -1;
    const WeightTensor& g1 = find_tensor(w, p + "1.weight", c9 > 0 ? shape_text({c9}) : "[9*c]");
    if (g1.shape.size() != 1 || g1.shape[0] < 9 || g1.shape[0] % 9 != 0 ||
        (c9 > 0 && g1.shape[0] != c9))
      throw_invalid_argument(c9 > 0 ? "shape " + shape_text({c9}) : "shape [9*c]",
                             weight_name(p + "1.weight"), shape_text(g1.shape));
    const int64_t in = g1.shape[0];
    expect_shape(w, p + "1.bias", {in});
    const int64_t w2 = expect_matrix(w, p + "2.weight", -1, in).shape[0];
    expect_shape(w, p + "2.bias", {w2});
    expect_shape(w, p + "4.weight", {w2});
    expect_shape(w, p + "4.bias", {w2});
    const int64_t w5 = expect_matrix(w, p + "5.weight", -1, w2).shape[0];
    expect_shape(w, p + "5.bias", {w5});
    const int64_t w7 =
        expect_matrix(w, p + "7.weight", spec.has_llm ? spec.llm.hidden : -1, w5).shape[0];
    expect_shape(w, p + "7.bias", {w7});
  }
  if (spec.has_llm) {
    const LlmSpec& l = spec.llm;
    const int64_t H = l.hidden, hd = llm_head_dim(l), qd = l.heads * hd, kvd = l.kv_heads * hd;
    expect_shape(w, kL + "model.embed_tokens.weight", {l.vocab, H});
    for (int64_t i = 0; i < l.layers; ++i) {
      const std::string p = llayer(i);
      expect_shape(w, p + "input_layernorm.weight", {H});
      expect_shape(w, p + "self_attn.q_proj.weight", {qd, H});
      expect_shape(w, p + "self_attn.q_proj.bias", {qd});
      expect_shape(w, p + "self_attn.k_proj.weight", {kvd, H});
      expect_shape(w, p + "self_attn.k_proj.bias", {kvd});
      expect_shape(w, p + "self_attn.v_proj.weight", {kvd, H});
      expect_shape(w, p + "self_attn.v_proj.bias", {kvd});
      expect_shape(w, p + "self_attn.o_proj.weight", {H, qd});
      expect_shape(w, p + "post_attention_layernorm.weight", {H});
      expect_shape(w, p + "mlp.gate_proj.weight", {l.intermediate, H});
      expect_shape(w, p + "mlp.up_proj.weight", {l.intermediate, H});
      expect_shape(w, p + "mlp.down_proj.weight", {H, l.intermediate});
    }
    expect_shape(w, kL + "model.norm.weight", {H});
    if (!l.tie_word_embeddings) expect_shape(w, kL + "lm_head.weight", {l.vocab, H});
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

std::unique_ptr<Engine> make_cpu_engine(const ModelSpec& spec, const WeightMap& weights) {
  return std::unique_ptr<Engine>(new CpuEngine(spec, weights));
}

#ifndef SR3D_WITH_CUDA
std::unique_ptr<Engine> make_cuda_engine(const ModelSpec&, const WeightMap&, int) {
  throw_cpu_only_build();
}
#endif

}  // namespace sr3d
