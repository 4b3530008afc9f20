/**
 * The loaded-checkpoint contract shared by the loader (lib/checkpoint.ts), the engine
 * (lib/engine.ts) and the SR-3D pipeline. Every size here is read from the checkpoint's
 * config files, never assumed.
 */

import type { QuantWeight } from './quant';

/** Element types a weight can have (safetensors names: F32, F16, BF16). */
export type WeightDType = 'f32' | 'f16' | 'bf16';

/** One tensor's bytes, as read from disk: f32 → Float32Array, f16/bf16 → Uint16Array (raw bits). */
export interface WeightTensor {
  name: string;
  dtype: WeightDType;
  shape: number[];
  data: Float32Array | Uint16Array;
}

/** Tensor metadata from a safetensors header (no data read). */
export interface WeightInfo {
  name: string;
  dtype: WeightDType;
  shape: number[];
  /** Absolute path of the shard that holds it. */
  file: string;
  /** Byte size of the data. */
  bytes: number;
}

/** The weights of one module folder (possibly sharded). Reading is lazy. */
export interface WeightSet {
  /** Keys exactly as stored in the files (e.g. `model.layers.0.self_attn.q_proj.weight`). */
  keys(): string[];
  has(key: string): boolean;
  info(key: string): WeightInfo;
  /** Reads one tensor into a fresh buffer (one copy, nothing else held). Typed error when missing. */
  read(key: string): WeightTensor;
  /** Total data bytes. */
  bytes: number;
  /**
   * Quantized LLM Linears (int4 / int8 in sr3d's layout, lib/quant.ts): the repacked weight of
   * `<prefix>.weight` (listed by keys(), its info() the logical [out, in]), or undefined when that
   * key is a plain tensor. Absent on unquantized sets.
   */
  quantized?(key: string): QuantWeight | undefined;
}

export interface VisionConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  imageSize: number;
  patchSize: number;
  layerNormEps: number;
  hiddenAct: 'gelu_pytorch_tanh' | 'gelu';
  /** mm_vision_select_layer from the top-level config (e.g. -2). */
  selectLayer: number;
  /** Encoder layers that must run to produce the selected hidden state (-2 of 27 → 26). */
  layersToRun: number;
  /** mm_vision_select_feature ('cls_patch' keeps all tokens). */
  selectFeature: string;
}

export interface ProjectorConfig {
  type: 'mlp_downsample_3x3_fix';
  /** Vision width in, LLM width out (from the weight shapes). */
  inDim: number;
  outDim: number;
  /** Tokens per tile after the 3x3 downsample (11·11 = 121 at 448/14). */
  tokensPerTile: number;
  /** Width between the two projector Linears (3·visionHidden = 3456 in NVILA-Lite), from layers.2's shape. */
  midDim?: number;
}

export interface LlmConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** generation_config.json: eos ids (always an array), and the sampling defaults it names. */
  eosTokenIds: number[];
  generation: { temperature?: number; topP?: number; topK?: number; maxNewTokens?: number; doSample?: boolean };
  /** Folder holding tokenizer.json / tokenizer_config.json (the llm/ folder). */
  tokenizerDir: string;
  /** Raw llm/config.json. */
  raw: Record<string, unknown>;
}

/** spatial_pe/config.json (spec Part A §A5). */
export interface SpatialPeConfig {
  numFreqs: number;
  includeInput: boolean;
  hidden: number;
  outDim: number;
  inject: 'vision_tower';
}

/** region_extractor/config.json (spec Part A §A6). */
export interface RegionExtractorConfig {
  projector: 'linear' | 'mlp2x_gelu';
  /** 'area' (default) or 'spatialrgpt' pooling. */
  pooling: 'area' | 'spatialrgpt';
  inDim: number;
  outDim: number;
  /** The text each region placeholder becomes (default '<mask>'). */
  regionToken: string;
}

/** Top-level VILA config.json fields the pipeline uses (raw kept too). */
export interface VilaConfig {
  imageAspectRatio: string;
  minTiles: number;
  maxTiles: number;
  numVideoFrames: number;
  chatTemplate: string;
  /** image_encoder end_tokens (default "\n"): appended after each tile's embeddings. */
  imageEndTokens: string | null;
  modelMaxLength: number;
  raw: Record<string, unknown>;
  /** Keys absent from config.json that took their NVILA-Lite default (e.g. `max_tiles`). */
  defaulted?: string[];
}

export interface Checkpoint {
  dir: string;
  config: VilaConfig;
  vision: { config: VisionConfig; weights: WeightSet };
  projector: { config: ProjectorConfig; weights: WeightSet };
  llm: { config: LlmConfig; weights: WeightSet };
  spatialPe?: { config: SpatialPeConfig; weights: WeightSet };
  regionExtractor?: { config: RegionExtractorConfig; weights: WeightSet };
  /** Sum of all weight bytes. */
  bytes: number;
}
