// The native inference engine: SigLIP vision tower, the NVILA 3x3 projector, small MLP
// modules (SR-3D's 3D-PE MLP and region projector), and the Qwen2 decoder with a KV cache.
// One interface, two implementations (CPU: kernels/cpu/engine_cpu.cc; CUDA:
// kernels/cuda/engine_cuda.cu). Model-level configuration arrives already read from the
// checkpoint's config files (the TypeScript loader does that); nothing here is hard-coded
// to NVILA-Lite-8B's sizes.
//
// Weights are borrowed: the CPU engine uses the caller's buffers in place for its whole
// life (the caller keeps them alive); the CUDA engine copies them to the device at
// creation and keeps no host pointer.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "activation.h"
#include "spatial_pe.h"
#include "weights.h"

namespace sr3d {

struct VisionSpec {          // SigLIP (HF SiglipVisionModel)
  int64_t hidden = 0;        // 1152
  int64_t heads = 0;         // 16
  int64_t intermediate = 0;  // 4304
  int64_t layers_run = 0;    // encoder layers to run: the selected hidden state's index
                             // (select_layer -2 of 27 layers -> 26)
  int64_t image_size = 0;    // 448
  int64_t patch_size = 0;    // 14
  float eps = 1e-6f;
  Act act = Act::kGeluTanh;  // hidden_act "gelu_pytorch_tanh"
};

struct ProjectorSpec {       // mlp_downsample_3x3_fix: pad+3x3 space-to-channel, then
  float eps = 1e-5f;         // LN(9c), Linear, GELU(erf), LN, Linear, GELU(erf), Linear.
};                           // Widths come from the weight shapes (layers.{1,2,4,5,7}).

struct LlmSpec {             // Qwen2ForCausalLM
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0;
  int64_t vocab = 0;
  float eps = 1e-6f;
  double rope_theta = 1e6;
  bool tie_word_embeddings = false;  // lm_head = embed_tokens when true
};

// A small sequential module, e.g. spatial_pe (Linear, GELU(erf), Linear) or the region
// projector. Weight names are looked up as "<module>.<name>".
struct MlpStep {
  enum Kind : int32_t { kLinear = 0, kLayerNorm = 1, kGeluErf = 2, kGeluTanh = 3 } kind;
  std::string weight, bias;  // empty bias = none (Linear); LayerNorm: gamma, beta
  float eps = 1e-5f;
};

// The activations the LLM's linears multiply with (kernels/linear.h): kF32 the exact path;
// kInt8 per-32-input int8 blocks for int4 / int8 weights (linear_a8, llama.cpp's Q8_0
// precision); kBF16 activations rounded to bf16 for bf16 weights (linear_ab16, vdpbf16ps:
// llama.cpp's precision for bf16 weights). CPU only. Weights the mode does not cover (int
// groups not a multiple of 32 under kInt8; anything but bf16 under kBF16) keep the exact path.
// A new precision goes here with its code in native/engine.cc.
enum class ActPrecision : int32_t { kF32 = 0, kInt8 = 1, kBF16 = 2 };
const char* act_precision_name(ActPrecision a);  // "f32", "int8", "bf16"

struct ModelSpec {
  bool has_vision = false, has_projector = false, has_llm = false;
  VisionSpec vision;
  ProjectorSpec projector;
  LlmSpec llm;
  std::map<std::string, std::vector<MlpStep>> mlps;  // "spatial_pe", "region", ...
  int64_t max_context = 4096;                        // KV-cache capacity in positions
  ActPrecision llm_activations = ActPrecision::kF32;  // the CUDA engine takes kF32 only
};

struct WeightTensor {
  const void* data = nullptr;
  WType type = WType::kF32;
  std::vector<int64_t> shape;
  // kQ4 / kQ8 (the LLM's q/k/v/o/gate/up/down projections, lm_head and embed_tokens only):
  // shape is the logical [out, in] ([vocab, hidden] for the embedding table), data the q
  // bytes, and these the rest of weights.h's quantized layout.
  const float* scales = nullptr;
  const uint8_t* zeros = nullptr;
  int64_t group = 0;
  const int32_t* perm = nullptr;
};
// Keys: "vision.<HF key>" (vision_model.embeddings.patch_embedding.weight, ...),
// "projector.<key>" (layers.1.weight, ...), "llm.<HF key>" (model.embed_tokens.weight,
// model.layers.0.self_attn.q_proj.weight, ..., lm_head.weight), "<mlp module>.<key>".
using WeightMap = std::map<std::string, WeightTensor>;

struct EngineInfo {
  std::string device;          // "cpu" or "cuda:0"
  int64_t weight_bytes = 0;    // resident weight bytes (device bytes for CUDA)
  int64_t kv_cache_bytes = 0;  // allocated KV cache
  int64_t scratch_bytes = 0;   // activation buffers currently held
  int64_t max_context = 0;
  std::string activations = "f32";  // act_precision_name; int8 adds the kernels' ISA: "int8 (avx512vnni)"
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual EngineInfo info() const = 0;
  virtual const ModelSpec& spec() const = 0;

  // [n][3][S][S] normalized tiles -> [n][(S/p)^2][vision hidden], the selected layer.
  virtual void encode_tiles(const float* tiles, int64_t n, float* out) = 0;
  // [n][T][vision hidden] -> [n][G*G][llm hidden] (T = g*g, G = ceil(g/3)).
  virtual void project(const float* features, int64_t n, float* out) = 0;
  // rows x in -> rows x out through the named MLP module.
  virtual void run_mlp(const std::string& module, const float* x, int64_t rows, float* out) = 0;
  virtual int64_t mlp_in_dim(const std::string& module) const = 0;
  virtual int64_t mlp_out_dim(const std::string& module) const = 0;
  // The 3D PE added into encode_tiles' features in place (kernels/spatial_pe.h). The default
  // runs the chain with the CPU fast kernels; the CUDA engine runs it with the CUDA kernels.
  virtual void add_spatial_pe(const SpatialPeArgs& a);
  // Token embedding rows: ids in [0, vocab) -> [n][llm hidden] (a quantized table's rows
  // dequantized exactly as cpu::dequantize_rows does).
  virtual void embed_tokens(const int32_t* ids, int64_t n, float* out) = 0;

  // KV-cache session. reset() empties it. prefill() appends n positions from their input
  // embeddings ([n][hidden], positions cached()..cached()+n-1) and keeps the last position's
  // logits; decode() appends one token by id. Both throw kInvalidArgument past max_context.
  virtual void reset() = 0;
  virtual int64_t cached() const = 0;
  virtual void prefill(const float* embeddings, int64_t n) = 0;
  virtual void decode(int32_t token) = 0;
  // The logits of the last appended position ([vocab], host memory owned by the engine).
  virtual const float* last_logits() = 0;
};

std::unique_ptr<Engine> make_cpu_engine(const ModelSpec& spec, const WeightMap& weights);
// Throws (throw_cpu_only_build) in a build without CUDA.
std::unique_ptr<Engine> make_cuda_engine(const ModelSpec& spec, const WeightMap& weights,
                                         int device);

// Validates that `weights` holds every tensor `spec` needs with the right shape; throws
// kInvalidArgument naming the key, its expected and received shape. Both engines call it.
void check_weights(const ModelSpec& spec, const WeightMap& weights);

// Argument checks both engines share (one message per mistake).
namespace engine_detail {
// n >= 1 rows and non-null input / output buffers.
void check_call(const float* in, const float* out, int64_t n, const char* name);
// The model has a language model (`what` names the call).
void need_llm(const ModelSpec& spec, const char* what);
// A token id in [0, vocab).
void check_token(const ModelSpec& spec, int64_t id, const std::string& name);
}  // namespace engine_detail

}  // namespace sr3d
