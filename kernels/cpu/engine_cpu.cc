// The CPU engine (engine.h): SigLIP, the 3x3 projector, MLP modules and the Qwen2 decoder on
// the fast CPU nn ops (linear.h, attention.h, norms.h, ...), weights used in place, biases /
// norm weights / the position embedding converted to float32 once at creation.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "../activation.h"
#include "../attention.h"
#include "../engine.h"
#include "../engine_detail.h"
#include "../linear.h"
#include "../norms.h"
#include "../projector.h"
#include "../rope.h"

namespace sr3d {

namespace {

using engine_detail::llm_head_dim;
namespace wn = weight_names;
using wn::bias_of;
using wn::weight_of;

// ---- engine helpers ------------------------------------------------------------------------

WeightRef as_ref(const WeightTensor& t) {
  WeightRef r;
  r.data = t.data;
  r.type = t.type;
  r.rows = t.shape[0];
  r.cols = 1;
  for (size_t i = 1; i < t.shape.size(); ++i) r.cols *= t.shape[i];
  r.scales = t.scales;
  r.zeros = t.zeros;
  r.group = t.group;
  r.perm = t.perm;
  return r;
}

int64_t tensor_bytes(const WeightTensor& t) {
  if (wtype_quantized(t.type)) {  // q, then f32 scales + u8 zeros per group, the perm
    const WeightRef r = as_ref(t);
    return r.rows * quant_row_bytes(r) + r.rows * (r.cols / r.group) * 5 + (r.perm ? 4 * r.cols : 0);
  }
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
    i.activations = act_precision_name(spec_.llm_activations);
    if (spec_.llm_activations == ActPrecision::kInt8) i.activations += std::string(" (") + cpu::a8_isa_name() + ")";
    if (spec_.llm_activations == ActPrecision::kBF16) i.activations += std::string(" (") + cpu::ab16_isa_name() + ")";
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
      if (wtype_quantized(embed_.type))
        cpu::dequantize_rows(embed_, ids[i], 1, out + i * H);
      else if (embed_.type == WType::kF32)
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
    namespace V = wn::vision;
    patch_w_ = big(weight_of(wn::vision_key(V::kPatchEmbedding)));
    patch_b_ = small(bias_of(wn::vision_key(V::kPatchEmbedding)));
    pos_ = small(weight_of(wn::vision_key(V::kPositionEmbedding)));
    for (int64_t i = 0; i < spec_.vision.layers_run; ++i) {
      auto key = [i](const char* module) { return wn::vision_layer_key(i, module); };
      VisionLayer L;
      L.ln1_g = small(weight_of(key(V::kLayerNorm1)));
      L.ln1_b = small(bias_of(key(V::kLayerNorm1)));
      L.ln2_g = small(weight_of(key(V::kLayerNorm2)));
      L.ln2_b = small(bias_of(key(V::kLayerNorm2)));
      L.q = big(weight_of(key(V::kQ)));
      L.qb = small(bias_of(key(V::kQ)));
      L.k = big(weight_of(key(V::kK)));
      L.kb = small(bias_of(key(V::kK)));
      L.v = big(weight_of(key(V::kV)));
      L.vb = small(bias_of(key(V::kV)));
      L.o = big(weight_of(key(V::kOut)));
      L.ob = small(bias_of(key(V::kOut)));
      L.fc1 = big(weight_of(key(V::kFc1)));
      L.fc1b = small(bias_of(key(V::kFc1)));
      L.fc2 = big(weight_of(key(V::kFc2)));
      L.fc2b = small(bias_of(key(V::kFc2)));
      vlayers_.push_back(L);
    }
  }

  void build_projector() {
    namespace Pj = wn::projector;
    const std::string ln1 = wn::projector_key(Pj::kLayerNorm1), ln2 = wn::projector_key(Pj::kLayerNorm2);
    proj_[0].gamma = small(weight_of(ln1));
    proj_[0].beta = small(bias_of(ln1));
    proj_c_ = weights_.at(weight_of(ln1)).shape[0] / 9;
    proj_[3].gamma = small(weight_of(ln2));
    proj_[3].beta = small(bias_of(ln2));
    const char* lin[3] = {Pj::kFc1, Pj::kFc2, Pj::kFc3};
    for (int i = 0; i < 3; ++i) {
      MlpOp& op = proj_[i == 0 ? 1 : i == 1 ? 2 : 4];
      op.w = big(weight_of(wn::projector_key(lin[i])));
      op.bias = small(bias_of(wn::projector_key(lin[i])));
    }
  }

  void build_llm() {
    const LlmSpec& l = spec_.llm;
    namespace W = wn::llm;
    embed_ = big(weight_of(wn::llm_key(W::kEmbedTokens)));
    lm_head_ = l.tie_word_embeddings ? embed_ : big(weight_of(wn::llm_key(W::kLmHead)));
    final_norm_ = small(weight_of(wn::llm_key(W::kNorm)));
    for (int64_t i = 0; i < l.layers; ++i) {
      auto key = [i](const char* module) { return wn::llm_layer_key(i, module); };
      LlmLayer L;
      L.in_norm = small(weight_of(key(W::kInputNorm)));
      L.post_norm = small(weight_of(key(W::kPostAttentionNorm)));
      L.q = big(weight_of(key(W::kQ)));
      L.qb = small(bias_of(key(W::kQ)));
      L.k = big(weight_of(key(W::kK)));
      L.kb = small(bias_of(key(W::kK)));
      L.v = big(weight_of(key(W::kV)));
      L.vb = small(bias_of(key(W::kV)));
      L.o = big(weight_of(key(W::kO)));
      L.gate = big(weight_of(key(W::kGate)));
      L.up = big(weight_of(key(W::kUp)));
      L.down = big(weight_of(key(W::kDown)));
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
  // The decoder layers' linears and lm_head: int8 activations (linear_a8) when the spec asks
  // for them and the weight is int4 / int8 with 32-multiple groups; bf16 activations
  // (linear_ab16) when it asks for those and every weight of the call is bf16; else the exact
  // path.
  void llm_linear(const float* x, int64_t n, const WeightRef* ws, const float* const* bs,
                  float* const* ys, int count) {
    if (spec_.llm_activations == ActPrecision::kInt8) return cpu::linear_a8_fast(x, n, ws, bs, ys, count);
    if (spec_.llm_activations == ActPrecision::kBF16 &&
        std::all_of(ws, ws + count, [](const WeightRef& w) { return w.type == WType::kBF16; }))
      return cpu::linear_ab16_fast(x, n, ws, bs, ys, count);
    cpu::linear_multi_fast(x, n, ws, bs, ys, count);
  }
  void llm_linear(const float* x, int64_t n, const WeightRef& w, float* y) {
    const float* b = nullptr;
    llm_linear(x, n, &w, &b, &y, 1);
  }

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
        llm_linear(a, n, ws, bs, ys, 3);
      }
      rope(q, n, l.heads, hd, pos_ids_.data(), l.rope_theta, Impl::kFast);
      rope(kc + start * kvd, n, l.kv_heads, hd, pos_ids_.data(), l.rope_theta, Impl::kFast);
      attention(q, kc, vc, n, total, l.heads, l.kv_heads, hd, scale, true, start, att,
                Impl::kFast);
      llm_linear(att, n, L.o, a);
      add_inplace(h, a, n * H);
      rms_norm(h, n, H, L.post_norm, l.eps, a, Impl::kFast);
      {
        const WeightRef ws[2] = {L.gate, L.up};
        const float* bs[2] = {nullptr, nullptr};
        float* ys[2] = {gate, up};
        llm_linear(a, n, ws, bs, ys, 2);
      }
      silu_mul(gate, up, n * I, gate, Impl::kFast);
      llm_linear(gate, n, L.down, a);
      add_inplace(h, a, n * H);
    }
    rms_norm(h + (n - 1) * H, 1, H, final_norm_, l.eps, a, Impl::kFast);
    llm_linear(a, 1, lm_head_, logits_.data());  // int8 activations too when lm_head is int4 / int8
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

std::unique_ptr<Engine> make_cpu_engine(const ModelSpec& spec, const WeightMap& weights) {
  return std::unique_ptr<Engine>(new CpuEngine(spec, weights));
}


}  // namespace sr3d
