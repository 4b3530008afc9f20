/**
 * The one table of checkpoint weight names (HF safetensors keys) the TypeScript side uses:
 * the checkpoint reader checks them, the tiny-model writer writes them, the engine hands them
 * to the native addon under its module prefixes, and the float64 test reference reads them.
 * Entries are module names; a tensor is `<module>.weight` / `<module>.bias` ({@link weightOf},
 * {@link biasOf}). kernels/weight_names.h is the same table for the C++ engines and tests;
 * test/weight_names.test.ts reads that header and fails when the two differ.
 */

/** `<module>.weight`. */
export const weightOf = (module: string): string => `${module}.weight`;
/** `<module>.bias`. */
export const biasOf = (module: string): string => `${module}.bias`;

/** SigLIP (vision_tower/). Layer modules are relative to {@link VISION_WEIGHTS.layer}. */
export const VISION_WEIGHTS = {
  patchEmbedding: 'vision_model.embeddings.patch_embedding',
  positionEmbedding: 'vision_model.embeddings.position_embedding',
  postLayerNorm: 'vision_model.post_layernorm',
  /** The prefix of encoder layer `l` (no trailing dot). */
  layer: (l: number): string => `vision_model.encoder.layers.${l}`,
  layerNorm1: 'layer_norm1',
  layerNorm2: 'layer_norm2',
  q: 'self_attn.q_proj',
  k: 'self_attn.k_proj',
  v: 'self_attn.v_proj',
  out: 'self_attn.out_proj',
  fc1: 'mlp.fc1',
  fc2: 'mlp.fc2',
} as const;

/** NVILA's `mlp_downsample_3x3_fix` (mm_projector/): LN, Linear, GELU, LN, Linear, GELU, Linear. */
export const PROJECTOR_WEIGHTS = {
  layerNorm1: 'layers.1',
  fc1: 'layers.2',
  layerNorm2: 'layers.4',
  fc2: 'layers.5',
  fc3: 'layers.7',
} as const;

/** Qwen2 (llm/). Layer modules are relative to {@link LLM_WEIGHTS.layer}. */
export const LLM_WEIGHTS = {
  embedTokens: 'model.embed_tokens',
  norm: 'model.norm',
  lmHead: 'lm_head',
  /** The prefix of decoder layer `l` (no trailing dot). */
  layer: (l: number): string => `model.layers.${l}`,
  inputNorm: 'input_layernorm',
  postAttentionNorm: 'post_attention_layernorm',
  q: 'self_attn.q_proj',
  k: 'self_attn.k_proj',
  v: 'self_attn.v_proj',
  o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj',
  up: 'mlp.up_proj',
  down: 'mlp.down_proj',
} as const;

/** SR-3D's 3D-PE MLP (spatial_pe/, §A5): Linear, GELU, Linear. */
export const SPATIAL_PE_WEIGHTS = {
  fc1: 'mlp.0',
  fc2: 'mlp.2',
} as const;

/** SR-3D's region projector (region_extractor/, §A6): one Linear (`linear`) or Linear, GELU, Linear (`mlp2x_gelu`). */
export const REGION_WEIGHTS = {
  linear: 'projector',
  fc1: 'projector.0',
  fc2: 'projector.2',
} as const;

/** The SR-3D MLP modules of the native engine spec ({@link NATIVE_PREFIX}: their weights' prefixes). */
export const MLP_MODULES = {
  spatialPe: 'spatial_pe',
  region: 'region',
} as const;

/** The prefix of each checkpoint folder's weights in the native engine spec. */
export const NATIVE_PREFIX = {
  vision: 'vision.',
  projector: 'projector.',
  llm: 'llm.',
  spatialPe: 'spatial_pe.',
  region: 'region.',
} as const;
