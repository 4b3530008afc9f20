// The one table of checkpoint weight names on the C++ side (HF safetensors module names; a
// tensor is "<module>.weight" / "<module>.bias"): the engines' weight checks and lookups and the
// C++ tests build every key from it. lib/weights.ts is the same table for TypeScript (the
// checkpoint reader, the tiny-model writer, the engine spec); test/weight_names.test.ts reads
// this file's text and fails when the two differ: each `kName = "..."` below is the entry
// `name: '...'` of the TS group named in its namespace's comment, and `kLayer` + ".<l>" is the
// group's `layer(l)`. Keep to that one line shape, so the comparison sees every name.
#pragma once
#include <cstdint>
#include <string>

namespace sr3d {
namespace weight_names {

// VISION_WEIGHTS: SigLIP (vision_tower/). Layer modules are relative to layer l's prefix.
namespace vision {
constexpr const char* kPatchEmbedding = "vision_model.embeddings.patch_embedding";
constexpr const char* kPositionEmbedding = "vision_model.embeddings.position_embedding";
constexpr const char* kPostLayerNorm = "vision_model.post_layernorm";
constexpr const char* kLayer = "vision_model.encoder.layers";
constexpr const char* kLayerNorm1 = "layer_norm1";
constexpr const char* kLayerNorm2 = "layer_norm2";
constexpr const char* kQ = "self_attn.q_proj";
constexpr const char* kK = "self_attn.k_proj";
constexpr const char* kV = "self_attn.v_proj";
constexpr const char* kOut = "self_attn.out_proj";
constexpr const char* kFc1 = "mlp.fc1";
constexpr const char* kFc2 = "mlp.fc2";
}  // namespace vision

// PROJECTOR_WEIGHTS: NVILA's mlp_downsample_3x3_fix (mm_projector/): LN, Linear, GELU, LN,
// Linear, GELU, Linear.
namespace projector {
constexpr const char* kLayerNorm1 = "layers.1";
constexpr const char* kFc1 = "layers.2";
constexpr const char* kLayerNorm2 = "layers.4";
constexpr const char* kFc2 = "layers.5";
constexpr const char* kFc3 = "layers.7";
}  // namespace projector

// LLM_WEIGHTS: Qwen2 (llm/). Layer modules are relative to layer l's prefix.
namespace llm {
constexpr const char* kEmbedTokens = "model.embed_tokens";
constexpr const char* kNorm = "model.norm";
constexpr const char* kLmHead = "lm_head";
constexpr const char* kLayer = "model.layers";
constexpr const char* kInputNorm = "input_layernorm";
constexpr const char* kPostAttentionNorm = "post_attention_layernorm";
constexpr const char* kQ = "self_attn.q_proj";
constexpr const char* kK = "self_attn.k_proj";
constexpr const char* kV = "self_attn.v_proj";
constexpr const char* kO = "self_attn.o_proj";
constexpr const char* kGate = "mlp.gate_proj";
constexpr const char* kUp = "mlp.up_proj";
constexpr const char* kDown = "mlp.down_proj";
}  // namespace llm

// SPATIAL_PE_WEIGHTS: SR-3D's 3D-PE MLP (spatial_pe/, spec §A5): Linear, GELU, Linear.
namespace spatial_pe {
constexpr const char* kFc1 = "mlp.0";
constexpr const char* kFc2 = "mlp.2";
}  // namespace spatial_pe

// REGION_WEIGHTS: SR-3D's region projector (region_extractor/, §A6): one Linear (`linear`)
// or Linear, GELU, Linear (`mlp2x_gelu`).
namespace region {
constexpr const char* kLinear = "projector";
constexpr const char* kFc1 = "projector.0";
constexpr const char* kFc2 = "projector.2";
}  // namespace region

// MLP_MODULES: the SR-3D modules of ModelSpec::mlps (Engine::run_mlp's names).
namespace mlp_module {
constexpr const char* kSpatialPe = "spatial_pe";
constexpr const char* kRegion = "region";
}  // namespace mlp_module

// NATIVE_PREFIX: each checkpoint folder's prefix in the engine's WeightMap (engine.h).
namespace native_prefix {
constexpr const char* kVision = "vision.";
constexpr const char* kProjector = "projector.";
constexpr const char* kLlm = "llm.";
constexpr const char* kSpatialPe = "spatial_pe.";
constexpr const char* kRegion = "region.";
}  // namespace native_prefix

// "<module>.weight" / "<module>.bias" (lib/weights.ts: weightOf / biasOf).
inline std::string weight_of(const std::string& module) { return module + ".weight"; }
inline std::string bias_of(const std::string& module) { return module + ".bias"; }

// A module's name in the engine's WeightMap: its folder's prefix, then the HF module name
// (layer modules after their layer's prefix "<kLayer>.<l>.").
inline std::string vision_key(const char* module) { return std::string(native_prefix::kVision) + module; }
inline std::string vision_layer_key(int64_t l, const char* module) {
  return vision_key(vision::kLayer) + "." + std::to_string(l) + "." + module;
}
inline std::string projector_key(const char* module) { return std::string(native_prefix::kProjector) + module; }
inline std::string llm_key(const char* module) { return std::string(native_prefix::kLlm) + module; }
inline std::string llm_layer_key(int64_t l, const char* module) {
  return llm_key(llm::kLayer) + "." + std::to_string(l) + "." + module;
}

}  // namespace weight_names
}  // namespace sr3d
