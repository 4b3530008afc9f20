/**
 * `loadCheckpoint(dir)`: reads an NVILA/VILA checkpoint folder (spec Part B §1.1; SR-3D
 * folders of Part A §A5, §A6) into the {@link Checkpoint} contract. Every size comes from the
 * config files; every weight the engine needs is checked for presence, dtype and shape before
 * anything runs, so a broken checkpoint fails at load with the folder, the key, and expected vs
 * received shape. Weights themselves are read lazily (see lib/safetensors.ts).
 *
 * Layout:
 * ```
 * config.json                 top-level VILA config (tiling, select layer, template, …)
 * llm/                        Qwen2: config.json, generation_config.json, tokenizer files,
 *                             model.safetensors or model-*-of-*.safetensors + index
 * vision_tower/               SigLIP: config.json, model.safetensors
 * mm_projector/               config.json {mm_projector_type: mlp_downsample_3x3_fix}, model.safetensors
 * spatial_pe/        (SR-3D)  config.json {num_freqs, include_input, hidden, out_dim, inject}, model.safetensors
 * region_extractor/  (SR-3D)  config.json {projector, pooling?, region_token?}, model.safetensors
 * ```
 */
import * as fs from 'fs';
import * as path from 'path';

import type {
  Checkpoint, LlmConfig, ProjectorConfig, RegionExtractorConfig, SpatialPeConfig, VilaConfig, VisionConfig,
  WeightDType, WeightSet,
} from './checkpoint_types';
import { CheckpointError, openWeights, readJson } from './safetensors';
import { parseQuantConfig } from './quant';
import { quantizedWeightSet } from './quant_weights';
import { LLM_WEIGHTS, PROJECTOR_WEIGHTS, REGION_WEIGHTS, SPATIAL_PE_WEIGHTS, VISION_WEIGHTS, biasOf, weightOf } from './weights';

export type {
  Checkpoint, LlmConfig, ProjectorConfig, RegionExtractorConfig, SpatialPeConfig, VilaConfig, VisionConfig,
  WeightDType, WeightInfo, WeightSet, WeightTensor,
} from './checkpoint_types';

/**
 * NVILA-Lite values used only where the top-level config.json lacks the key (spec Part B §1.1,
 * from the NVILA-Lite training scripts; `num_video_frames` from Part A §A8). Which keys were
 * defaulted is recorded in {@link VilaConfig.defaulted}.
 */
export const NVILA_LITE_DEFAULTS = {
  image_aspect_ratio: 'dynamic',
  min_tiles: 1,
  max_tiles: 12,
  num_video_frames: 32,
  chat_template: 'qwen2',
  image_end_tokens: '\n',
  model_max_length: 4096,
  mm_vision_select_layer: -2,
  mm_vision_select_feature: 'cls_patch',
} as const;

/** The projector types this engine runs. */
export const SUPPORTED_PROJECTORS = ['mlp_downsample_3x3_fix'] as const;

const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`;

function err(file: string, what: string, name: string, received: string, fix: string, key = ''): CheckpointError {
  return new CheckpointError(`Expected ${what} for ${name} but received ${received} (in ${file}). ${fix}`, file, key);
}

/** A config value read with its type checked; `def` undefined means required. */
function num(cfg: Record<string, unknown>, key: string, file: string, opts: { def?: number; int?: boolean; min?: number } = {}): number {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (opts.def !== undefined) return opts.def;
    throw err(file, `a number "${key}"`, 'the config', 'none', 'Add the key (copy it from the original model config).');
  }
  const ok = typeof v === 'number' && Number.isFinite(v) && (!opts.int || Number.isInteger(v)) && (opts.min === undefined || v >= opts.min);
  if (!ok) {
    throw err(file, `${opts.int ? 'an integer' : 'a finite number'}${opts.min !== undefined ? ` >= ${opts.min}` : ''}`, `"${key}"`, JSON.stringify(v), 'Fix the config value.');
  }
  return v as number;
}

function str(cfg: Record<string, unknown>, key: string, file: string, def?: string): string {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (def !== undefined) return def;
    throw err(file, `a string "${key}"`, 'the config', 'none', 'Add the key.');
  }
  if (typeof v !== 'string') throw err(file, 'a string', `"${key}"`, JSON.stringify(v), 'Fix the config value.');
  return v;
}

function bool(cfg: Record<string, unknown>, key: string, file: string, def: boolean): boolean {
  const v = cfg[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') throw err(file, 'true or false', `"${key}"`, JSON.stringify(v), 'Fix the config value.');
  return v;
}

function folder(dir: string, name: string, required: boolean): string | null {
  const p = path.join(dir, name);
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(p);
  } catch {
    st = null;
  }
  if (st?.isDirectory()) return p;
  if (!required) {
    if (st) throw err(p, 'a folder', name, 'a file', 'Remove it or replace it with the module folder.');
    return null;
  }
  throw err(p, `a folder ${name}/`, 'the checkpoint', st ? 'a file' : 'no such folder',
    'Point at the root of an NVILA/VILA checkpoint (it holds config.json, llm/, vision_tower/ and mm_projector/), or write one with `sr3d tiny-model <dir>`.');
}

function configOf(dir: string, name: string): { file: string; cfg: Record<string, unknown> } {
  const file = path.join(dir, 'config.json');
  return { file, cfg: readJson(file, `the ${name} config`) };
}

const TORCH_DTYPES: Record<string, WeightDType> = { bfloat16: 'bf16', float16: 'f16', float32: 'f32' };

/**
 * The config's `torch_dtype` as a weight dtype (undefined when absent or not one of ours). A
 * module's 16-bit weights must then be that 16-bit type: bf16 bits stored under an F16 label
 * (or the reverse) decode to wrong numbers of the same size and would otherwise load silently.
 */
function torchDtypeOf(cfg: Record<string, unknown>, file: string): { dtype: WeightDType; file: string } | undefined {
  const v = cfg.torch_dtype;
  return typeof v === 'string' && v in TORCH_DTYPES ? { dtype: TORCH_DTYPES[v], file } : undefined;
}

/**
 * Checks keys of a weight set against expected shapes (and that each has a supported dtype,
 * agreeing with the config's `torch_dtype` when it names a 16-bit type). `optional` keys are
 * checked only when present.
 */
function checkWeights(ws: WeightSet, dir: string, required: Map<string, number[]>, optional = new Map<string, number[]>(),
  torchDtype?: { dtype: WeightDType; file: string }): void {
  const folderName = path.basename(dir);
  const check = (key: string, want: number[]): void => {
    const info = ws.info(key); // throws for an unsupported dtype, naming the key and dtype
    if (info.shape.length !== want.length || info.shape.some((d, i) => d !== want[i])) {
      throw err(info.file, `shape ${fmt(want)}`, `${folderName}/${key}`, fmt(info.shape),
        'The weights do not match the folder\'s config.json: fix the config or use the matching weights.', key);
    }
    const t = torchDtype?.dtype;
    if (t && t !== 'f32' && info.dtype !== 'f32' && info.dtype !== t) {
      const name = (d: WeightDType) => (d === 'bf16' ? 'BF16 (torch bfloat16)' : 'F16 (torch float16)');
      throw err(info.file, `dtype ${name(t)}, as torch_dtype in ${torchDtype!.file} says`, `${folderName}/${key}`, name(info.dtype),
        'A 16-bit tensor under the other 16-bit label decodes to wrong values: convert the weights again (or, if they really are that type, fix torch_dtype).', key);
    }
  };
  for (const [key, want] of required) {
    if (!ws.has(key)) {
      throw err(dir, `tensor '${key}' (shape ${fmt(want)})`, `${folderName} weights`, 'none',
        'The weights are incomplete or from another model: download the folder again.', key);
    }
    check(key, want);
  }
  for (const [key, want] of optional) if (ws.has(key)) check(key, want);
}

/**
 * Number of layers the weights hold (one more than the largest index under `prefix`), read
 * before any per-layer work: a config's layer count is trusted only up to what is on disk (a
 * `num_hidden_layers` of 1e8 would otherwise build maps of a billion keys before failing).
 */
function layersPresent(ws: WeightSet, prefix: string): number {
  let n = 0;
  for (const k of ws.keys()) {
    if (!k.startsWith(prefix)) continue;
    const m = /^(\d+)\./.exec(k.slice(prefix.length));
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

function checkLayerCount(ws: WeightSet, prefix: string, need: number, file: string, dir: string, key: string): void {
  const have = layersPresent(ws, prefix);
  if (need > have) {
    throw err(file, `at most ${have} layers (the weights in ${dir} hold ${have ? `${prefix}0..${have - 1}` : `no ${prefix}* tensors`})`, `"${key}"`, String(need),
      'The config does not match the weights: fix the layer count or use the matching weights.');
  }
}

/** Shape of one stored tensor, as a typed error when it is missing. */
function shapeOf(ws: WeightSet, folderName: string, key: string, dir: string): number[] {
  if (!ws.has(key)) {
    throw err(dir, `tensor '${key}'`, `${folderName} weights`, 'none', 'The weights are incomplete or from another model: download the folder again.', key);
  }
  return ws.info(key).shape;
}

function parseImageEncoder(v: unknown, file: string): { endTokens: string | null; given: boolean } {
  if (v === undefined || v === null) return { endTokens: NVILA_LITE_DEFAULTS.image_end_tokens, given: false };
  let obj: unknown = v;
  if (typeof v === 'string') {
    try {
      obj = JSON.parse(v);
    } catch {
      throw err(file, 'a JSON object (or a string holding one)', '"image_encoder"', JSON.stringify(v), 'Fix the config value, e.g. {"_target_": "llava.model.encoders.BasicImageEncoder"}.');
    }
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw err(file, 'a JSON object', '"image_encoder"', JSON.stringify(v), 'Fix the config value.');
  }
  const o = obj as Record<string, unknown>;
  if (!('end_tokens' in o)) return { endTokens: NVILA_LITE_DEFAULTS.image_end_tokens, given: false };
  if (o.end_tokens !== null && typeof o.end_tokens !== 'string') {
    throw err(file, 'a string or null', '"image_encoder.end_tokens"', JSON.stringify(o.end_tokens), 'Fix the config value.');
  }
  return { endTokens: o.end_tokens as string | null, given: true };
}

function readVilaConfig(dir: string): VilaConfig {
  const { file, cfg } = configOf(dir, 'top-level VILA');
  const defaulted: string[] = [];
  const pick = <T>(key: string, read: () => T, def: T): T => {
    if (cfg[key] === undefined || cfg[key] === null) {
      defaulted.push(key);
      return def;
    }
    return read();
  };
  const D = NVILA_LITE_DEFAULTS;
  const imageAspectRatio = pick('image_aspect_ratio', () => str(cfg, 'image_aspect_ratio', file), D.image_aspect_ratio);
  const minTiles = pick('min_tiles', () => num(cfg, 'min_tiles', file, { int: true, min: 1 }), D.min_tiles);
  const maxTiles = pick('max_tiles', () => num(cfg, 'max_tiles', file, { int: true, min: 1 }), D.max_tiles);
  if (maxTiles < minTiles) throw err(file, `max_tiles >= min_tiles (${minTiles})`, '"max_tiles"', String(maxTiles), 'Fix the config values.');
  const numVideoFrames = pick('num_video_frames', () => num(cfg, 'num_video_frames', file, { int: true, min: 1 }), D.num_video_frames);
  const chatTemplate = pick('chat_template', () => str(cfg, 'chat_template', file), D.chat_template);
  const modelMaxLength = pick('model_max_length', () => num(cfg, 'model_max_length', file, { int: true, min: 1 }), D.model_max_length);
  const enc = parseImageEncoder(cfg.image_encoder, file);
  if (!enc.given) defaulted.push('image_encoder.end_tokens');
  return { imageAspectRatio, minTiles, maxTiles, numVideoFrames, chatTemplate, imageEndTokens: enc.endTokens, modelMaxLength, raw: cfg, defaulted };
}

function readVision(dir: string, top: Record<string, unknown>, topFile: string, defaulted: string[]): { config: VisionConfig; weights: WeightSet } {
  const vdir = folder(dir, 'vision_tower', true)!;
  const { file, cfg: outer } = configOf(vdir, 'vision tower');
  // A full SiglipConfig nests the vision part under "vision_config".
  const nested = outer.vision_config;
  const cfg = nested && typeof nested === 'object' && !Array.isArray(nested) ? (nested as Record<string, unknown>) : outer;
  const hiddenSize = num(cfg, 'hidden_size', file, { int: true, min: 1 });
  const numLayers = num(cfg, 'num_hidden_layers', file, { int: true, min: 1 });
  const numHeads = num(cfg, 'num_attention_heads', file, { int: true, min: 1 });
  const intermediateSize = num(cfg, 'intermediate_size', file, { int: true, min: 1 });
  const imageSize = num(cfg, 'image_size', file, { int: true, min: 1 });
  const patchSize = num(cfg, 'patch_size', file, { int: true, min: 1 });
  // HF SiglipVisionConfig defaults.
  const layerNormEps = num(cfg, 'layer_norm_eps', file, { def: 1e-6, min: 0 });
  const act = str(cfg, 'hidden_act', file, 'gelu_pytorch_tanh');
  const channels = num(cfg, 'num_channels', file, { def: 3, int: true });
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu') {
    throw err(file, "hidden_act 'gelu_pytorch_tanh' or 'gelu'", 'the vision tower', JSON.stringify(act), 'Only SigLIP vision towers are supported.');
  }
  if (hiddenSize % numHeads !== 0) throw err(file, `hidden_size divisible by num_attention_heads (${numHeads})`, '"hidden_size"', String(hiddenSize), 'Fix the config.');
  if (imageSize % patchSize !== 0) throw err(file, `image_size divisible by patch_size (${patchSize})`, '"image_size"', String(imageSize), 'Fix the config.');
  if (channels !== 3) throw err(file, 'num_channels 3', 'the vision tower', String(channels), 'Only RGB vision towers are supported.');
  if (top.mm_vision_select_layer === undefined || top.mm_vision_select_layer === null) defaulted.push('mm_vision_select_layer');
  const selectLayer = num(top, 'mm_vision_select_layer', topFile, { def: NVILA_LITE_DEFAULTS.mm_vision_select_layer, int: true });
  if (top.mm_vision_select_feature === undefined || top.mm_vision_select_feature === null) defaulted.push('mm_vision_select_feature');
  const selectFeature = str(top, 'mm_vision_select_feature', topFile, NVILA_LITE_DEFAULTS.mm_vision_select_feature);
  if (selectFeature !== 'cls_patch') {
    throw err(topFile, "mm_vision_select_feature 'cls_patch' (SigLIP has no CLS token)", '"mm_vision_select_feature"', JSON.stringify(selectFeature), "Set it to 'cls_patch'.");
  }
  // hidden_states has numLayers + 1 entries (embeddings, then each layer).
  const layersToRun = selectLayer < 0 ? numLayers + 1 + selectLayer : selectLayer;
  if (layersToRun < 0 || layersToRun > numLayers) {
    throw err(topFile, `mm_vision_select_layer in [${-(numLayers + 1)}, ${numLayers}]`, '"mm_vision_select_layer"', String(selectLayer), 'Fix the config value (NVILA uses -2).');
  }
  const weights = openWeights(vdir);
  // Layers past the selected one may be left out of the files; those that run may not.
  checkLayerCount(weights, 'vision_model.encoder.layers.', layersToRun, file, vdir, layersToRun === numLayers ? 'num_hidden_layers' : 'num_hidden_layers" and "mm_vision_select_layer');
  const layersStored = Math.min(numLayers, layersPresent(weights, 'vision_model.encoder.layers.'));
  const H = hiddenSize, I = intermediateSize, P = patchSize, grid = imageSize / patchSize;
  const VW = VISION_WEIGHTS;
  const req = new Map<string, number[]>([
    [weightOf(VW.patchEmbedding), [H, 3, P, P]],
    [biasOf(VW.patchEmbedding), [H]],
    [weightOf(VW.positionEmbedding), [grid * grid, H]],
  ]);
  const opt = new Map<string, number[]>([
    [weightOf(VW.postLayerNorm), [H]],
    [biasOf(VW.postLayerNorm), [H]],
  ]);
  for (let l = 0; l < layersStored; l++) {
    const p = `${VW.layer(l)}.`;
    // Layers past the selected one never run: checked only when present.
    const m = l < layersToRun ? req : opt;
    for (const ln of [VW.layerNorm1, VW.layerNorm2]) {
      m.set(weightOf(p + ln), [H]);
      m.set(biasOf(p + ln), [H]);
    }
    for (const pr of [VW.q, VW.k, VW.v, VW.out]) {
      m.set(weightOf(p + pr), [H, H]);
      m.set(biasOf(p + pr), [H]);
    }
    m.set(weightOf(p + VW.fc1), [I, H]);
    m.set(biasOf(p + VW.fc1), [I]);
    m.set(weightOf(p + VW.fc2), [H, I]);
    m.set(biasOf(p + VW.fc2), [H]);
  }
  checkWeights(weights, vdir, req, opt, torchDtypeOf(outer, file));
  return {
    config: { hiddenSize, numLayers, numHeads, intermediateSize, imageSize, patchSize, layerNormEps, hiddenAct: act as VisionConfig['hiddenAct'], selectLayer, layersToRun, selectFeature },
    weights,
  };
}

function readProjector(dir: string, vision: VisionConfig, llmHidden: number): { config: ProjectorConfig; weights: WeightSet } {
  const pdir = folder(dir, 'mm_projector', true)!;
  const { file, cfg } = configOf(pdir, 'mm_projector');
  const type = str(cfg, 'mm_projector_type', file);
  if (!(SUPPORTED_PROJECTORS as readonly string[]).includes(type)) {
    throw err(file, `mm_projector_type ${SUPPORTED_PROJECTORS.map((t) => `'${t}'`).join(', ')} (the NVILA-Lite projector)`, 'the mm_projector', `'${type}'`,
      'Only NVILA-Lite checkpoints are supported; other VILA projector types are not implemented.');
  }
  const weights = openWeights(pdir);
  const PW = PROJECTOR_WEIGHTS;
  const ln1Key = weightOf(PW.layerNorm1), lastKey = weightOf(PW.fc3);
  const ln1 = shapeOf(weights, 'mm_projector', ln1Key, pdir);
  const l7 = shapeOf(weights, 'mm_projector', lastKey, pdir);
  const l2 = shapeOf(weights, 'mm_projector', weightOf(PW.fc1), pdir);
  const inDim = ln1.length === 1 && ln1[0] % 9 === 0 ? ln1[0] / 9 : NaN;
  if (inDim !== vision.hiddenSize) {
    throw err(weights.info(ln1Key).file, `shape [${9 * vision.hiddenSize}] (9 × vision hidden ${vision.hiddenSize})`, `mm_projector/${ln1Key}`, fmt(ln1),
      'The projector does not belong to this vision tower.', ln1Key);
  }
  const outDim = l7[0];
  if (l7.length !== 2 || outDim !== llmHidden) {
    throw err(weights.info(lastKey).file, `shape [${llmHidden}, ${llmHidden}] (LLM hidden)`, `mm_projector/${lastKey}`, fmt(l7),
      'The projector does not belong to this LLM.', lastKey);
  }
  const mid = l2[0];
  const D9 = 9 * inDim;
  checkWeights(weights, pdir, new Map([
    [weightOf(PW.layerNorm1), [D9]], [biasOf(PW.layerNorm1), [D9]],
    [weightOf(PW.fc1), [mid, D9]], [biasOf(PW.fc1), [mid]],
    [weightOf(PW.layerNorm2), [mid]], [biasOf(PW.layerNorm2), [mid]],
    [weightOf(PW.fc2), [outDim, mid]], [biasOf(PW.fc2), [outDim]],
    [weightOf(PW.fc3), [outDim, outDim]], [biasOf(PW.fc3), [outDim]],
  ]), undefined, torchDtypeOf(cfg, file));
  const g = Math.ceil(vision.imageSize / vision.patchSize / 3);
  return { config: { type: 'mlp_downsample_3x3_fix', inDim, outDim, tokensPerTile: g * g, midDim: mid }, weights };
}

function readEos(v: unknown, file: string): number[] {
  const arr = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(arr) || arr.length === 0 || !arr.every((x) => Number.isInteger(x) && x >= 0)) {
    throw err(file, 'eos_token_id as a token id or a non-empty array of ids', '"eos_token_id"', JSON.stringify(v), 'Fix generation_config.json (Qwen2: [151645, 151643]).');
  }
  return arr as number[];
}

function readLlm(dir: string): { config: LlmConfig; weights: WeightSet } {
  const ldir = folder(dir, 'llm', true)!;
  const { file, cfg } = configOf(ldir, 'LLM');
  const modelType = cfg.model_type;
  if (modelType !== undefined && modelType !== 'qwen2') {
    throw err(file, "model_type 'qwen2'", 'the LLM', JSON.stringify(modelType), 'Only Qwen2 language models (NVILA-Lite) are supported.');
  }
  const rs = cfg.rope_scaling;
  if (rs !== undefined && rs !== null) {
    throw err(file, 'rope_scaling null (plain RoPE)', '"rope_scaling"', JSON.stringify(rs), 'RoPE scaling is not supported by this engine.');
  }
  if (cfg.use_sliding_window === true) {
    throw err(file, 'use_sliding_window false (full causal attention)', '"use_sliding_window"', 'true', 'Sliding-window attention is not supported by this engine (NVILA-Lite does not use it).');
  }
  const llmAct = cfg.hidden_act;
  if (llmAct !== undefined && llmAct !== 'silu') {
    throw err(file, "hidden_act 'silu' (Qwen2's SwiGLU)", '"hidden_act"', JSON.stringify(llmAct), 'Only the SiLU-gated MLP of Qwen2 is supported.');
  }
  const hiddenSize = num(cfg, 'hidden_size', file, { int: true, min: 1 });
  const numLayers = num(cfg, 'num_hidden_layers', file, { int: true, min: 1 });
  const numHeads = num(cfg, 'num_attention_heads', file, { int: true, min: 1 });
  const numKvHeads = num(cfg, 'num_key_value_heads', file, { def: numHeads, int: true, min: 1 });
  if (numHeads % numKvHeads !== 0) throw err(file, `num_key_value_heads dividing num_attention_heads (${numHeads})`, '"num_key_value_heads"', String(numKvHeads), 'Fix the config.');
  if (cfg.head_dim === undefined && hiddenSize % numHeads !== 0) throw err(file, `hidden_size divisible by num_attention_heads (${numHeads})`, '"hidden_size"', String(hiddenSize), 'Fix the config or give head_dim.');
  const headDim = num(cfg, 'head_dim', file, { def: hiddenSize / numHeads, int: true, min: 1 });
  if (headDim % 2 !== 0) throw err(file, 'an even head_dim (RoPE rotates pairs)', '"head_dim"', String(headDim), 'Fix the config.');
  const intermediateSize = num(cfg, 'intermediate_size', file, { int: true, min: 1 });
  const vocabSize = num(cfg, 'vocab_size', file, { int: true, min: 1 });
  // HF Qwen2Config defaults.
  const rmsNormEps = num(cfg, 'rms_norm_eps', file, { def: 1e-6, min: 0 });
  const ropeTheta = num(cfg, 'rope_theta', file, { def: 10000, min: 0 });
  const maxPositionEmbeddings = num(cfg, 'max_position_embeddings', file, { def: 32768, int: true, min: 1 });
  const tieWordEmbeddings = bool(cfg, 'tie_word_embeddings', file, false);

  const genFile = path.join(ldir, 'generation_config.json');
  const gen = fs.existsSync(genFile) ? readJson(genFile, 'the generation config') : {};
  let eosTokenIds: number[];
  if (gen.eos_token_id !== undefined && gen.eos_token_id !== null) eosTokenIds = readEos(gen.eos_token_id, genFile);
  else if (cfg.eos_token_id !== undefined && cfg.eos_token_id !== null) eosTokenIds = readEos(cfg.eos_token_id, file);
  else throw err(genFile, 'eos_token_id in generation_config.json or config.json', 'the LLM', 'none', 'Add eos_token_id (Qwen2: [151645, 151643]).');
  const generation: LlmConfig['generation'] = {};
  if (gen.temperature != null) generation.temperature = num(gen, 'temperature', genFile, { min: 0 });
  if (gen.top_p != null) generation.topP = num(gen, 'top_p', genFile, { min: 0 });
  if (gen.top_k != null) generation.topK = num(gen, 'top_k', genFile, { int: true, min: 0 });
  if (gen.max_new_tokens != null) generation.maxNewTokens = num(gen, 'max_new_tokens', genFile, { int: true, min: 1 });
  if (gen.do_sample != null) generation.doSample = bool(gen, 'do_sample', genFile, false);

  const has = (f: string): boolean => fs.existsSync(path.join(ldir, f));
  if (!has('tokenizer_config.json') || !(has('tokenizer.json') || (has('vocab.json') && has('merges.txt')))) {
    throw err(ldir, 'tokenizer files (tokenizer_config.json and tokenizer.json, or vocab.json + merges.txt)', 'the llm folder',
      [has('tokenizer_config.json') && 'tokenizer_config.json', has('tokenizer.json') && 'tokenizer.json', has('vocab.json') && 'vocab.json', has('merges.txt') && 'merges.txt'].filter(Boolean).join(', ') || 'none of them',
      'Copy the tokenizer files of the checkpoint into llm/.');
  }

  // Quantized (AWQ gemm / GPTQ): each quantized Linear reads as `<prefix>.weight` (lib/quant_weights.ts).
  const quant = parseQuantConfig(cfg, file);
  const stored = openWeights(ldir);
  const weights = quant ? quantizedWeightSet(stored, quant, file) : stored;
  checkLayerCount(weights, 'model.layers.', numLayers, file, ldir, 'num_hidden_layers');
  const H = hiddenSize, Q = numHeads * headDim, KV = numKvHeads * headDim, I = intermediateSize, V = vocabSize;
  const LW = LLM_WEIGHTS;
  const req = new Map<string, number[]>([
    [weightOf(LW.embedTokens), [V, H]],
    [weightOf(LW.norm), [H]],
  ]);
  const opt = new Map<string, number[]>();
  (tieWordEmbeddings ? opt : req).set(weightOf(LW.lmHead), [V, H]);
  for (let l = 0; l < numLayers; l++) {
    const p = `${LW.layer(l)}.`;
    req.set(weightOf(p + LW.inputNorm), [H]);
    req.set(weightOf(p + LW.postAttentionNorm), [H]);
    req.set(weightOf(p + LW.q), [Q, H]);
    req.set(biasOf(p + LW.q), [Q]);
    req.set(weightOf(p + LW.k), [KV, H]);
    req.set(biasOf(p + LW.k), [KV]);
    req.set(weightOf(p + LW.v), [KV, H]);
    req.set(biasOf(p + LW.v), [KV]);
    req.set(weightOf(p + LW.o), [H, Q]);
    req.set(weightOf(p + LW.gate), [I, H]);
    req.set(weightOf(p + LW.up), [I, H]);
    req.set(weightOf(p + LW.down), [H, I]);
  }
  checkWeights(weights, ldir, req, opt, torchDtypeOf(cfg, file));
  return {
    config: {
      hiddenSize, numLayers, numHeads, numKvHeads, headDim, intermediateSize, vocabSize, rmsNormEps, ropeTheta,
      maxPositionEmbeddings, tieWordEmbeddings, eosTokenIds, generation, tokenizerDir: ldir, raw: cfg,
    },
    weights,
  };
}

/** Input width of the 3D PE MLP: per axis [p?, sin(2^k π p), cos(2^k π p)] for k < L (§A5). */
export function spatialPeInputDim(numFreqs: number, includeInput: boolean): number {
  return 3 * ((includeInput ? 1 : 0) + 2 * numFreqs);
}

function readSpatialPe(dir: string, vision: VisionConfig): { config: SpatialPeConfig; weights: WeightSet } | undefined {
  const sdir = folder(dir, 'spatial_pe', false);
  if (!sdir) return undefined;
  const { file, cfg } = configOf(sdir, 'spatial_pe');
  const numFreqs = num(cfg, 'num_freqs', file, { int: true, min: 0 });
  const includeInput = bool(cfg, 'include_input', file, true);
  const hidden = num(cfg, 'hidden', file, { int: true, min: 1 });
  const outDim = num(cfg, 'out_dim', file, { int: true, min: 1 });
  const inject = str(cfg, 'inject', file, 'vision_tower');
  if (inject !== 'vision_tower') throw err(file, "inject 'vision_tower' (added to the SigLIP tokens, §A5)", '"inject"', JSON.stringify(inject), 'Other injection points are not supported.');
  if (outDim !== vision.hiddenSize) throw err(file, `out_dim ${vision.hiddenSize} (the vision hidden size it is added to)`, '"out_dim"', String(outDim), 'Fix the config or the weights.');
  const inDim = spatialPeInputDim(numFreqs, includeInput);
  if (inDim === 0) throw err(file, 'num_freqs > 0 or include_input true', 'the spatial PE', 'no input features', 'Fix the config.');
  const weights = openWeights(sdir);
  const SW = SPATIAL_PE_WEIGHTS;
  checkWeights(weights, sdir, new Map([
    [weightOf(SW.fc1), [hidden, inDim]], [biasOf(SW.fc1), [hidden]],
    [weightOf(SW.fc2), [outDim, hidden]], [biasOf(SW.fc2), [outDim]],
  ]), undefined, torchDtypeOf(cfg, file));
  return { config: { numFreqs, includeInput, hidden, outDim, inject: 'vision_tower' }, weights };
}

function readRegionExtractor(dir: string, vision: VisionConfig, llmHidden: number): { config: RegionExtractorConfig; weights: WeightSet } | undefined {
  const rdir = folder(dir, 'region_extractor', false);
  if (!rdir) return undefined;
  const { file, cfg } = configOf(rdir, 'region_extractor');
  const projector = str(cfg, 'projector', file);
  if (projector !== 'linear' && projector !== 'mlp2x_gelu') {
    throw err(file, "projector 'linear' or 'mlp2x_gelu'", 'the region extractor', JSON.stringify(projector), 'Fix the config (spec §A6).');
  }
  const pooling = str(cfg, 'pooling', file, 'area');
  if (pooling !== 'area' && pooling !== 'spatialrgpt') throw err(file, "pooling 'area' or 'spatialrgpt'", '"pooling"', JSON.stringify(pooling), 'Fix the config.');
  const regionToken = str(cfg, 'region_token', file, '<mask>');
  if (regionToken === '') throw err(file, 'a non-empty string', '"region_token"', "''", 'Fix the config.');
  const weights = openWeights(rdir);
  const RW = REGION_WEIGHTS;
  const first = weightOf(projector === 'linear' ? RW.linear : RW.fc1);
  const s = shapeOf(weights, 'region_extractor', first, rdir);
  const want = [llmHidden, vision.hiddenSize];
  if (s.length !== 2 || s[0] !== want[0] || s[1] !== want[1]) {
    throw err(weights.info(first).file, `shape ${fmt(want)} (vision hidden → LLM hidden)`, `region_extractor/${first}`, fmt(s), 'The region projector does not match this model.', first);
  }
  const [outDim, inDim] = s;
  const req = projector === 'linear'
    ? new Map([[weightOf(RW.linear), [outDim, inDim]], [biasOf(RW.linear), [outDim]]])
    : new Map([[weightOf(RW.fc1), [outDim, inDim]], [biasOf(RW.fc1), [outDim]], [weightOf(RW.fc2), [outDim, outDim]], [biasOf(RW.fc2), [outDim]]]);
  checkWeights(weights, rdir, req, undefined, torchDtypeOf(cfg, file));
  return { config: { projector, pooling, inDim, outDim, regionToken }, weights };
}

/**
 * Loads an NVILA/VILA checkpoint folder: reads every config, opens the weight headers and checks
 * each weight's presence, dtype and shape against the configs. Tensor data is read later, on
 * demand, through the returned {@link WeightSet}s. Rejects with a {@link CheckpointError} naming
 * the file, the key and the fix when anything is missing or inconsistent.
 */
export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const root = path.resolve(dir);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    throw err(root, 'a checkpoint folder', 'dir', fs.existsSync(root) ? 'a file' : 'no such folder',
      'Download an NVILA-Lite checkpoint (Efficient-Large-Model/NVILA-Lite-8B) or write one with `sr3d tiny-model <dir>`.');
  }
  const config = readVilaConfig(root);
  const topFile = path.join(root, 'config.json');
  const vision = readVision(root, config.raw, topFile, config.defaulted!);
  const llm = readLlm(root);
  const projector = readProjector(root, vision.config, llm.config.hiddenSize);
  const spatialPe = readSpatialPe(root, vision.config);
  const regionExtractor = readRegionExtractor(root, vision.config, llm.config.hiddenSize);
  const ckpt: Checkpoint = {
    dir: root, config, vision, projector, llm,
    bytes: vision.weights.bytes + projector.weights.bytes + llm.weights.bytes + (spatialPe?.weights.bytes ?? 0) + (regionExtractor?.weights.bytes ?? 0),
  };
  if (spatialPe) ckpt.spatialPe = spatialPe;
  if (regionExtractor) ckpt.regionExtractor = regionExtractor;
  return ckpt;
}

