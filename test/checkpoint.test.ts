// loadCheckpoint over the tiny model (every field equal to the written configs), the tiny
// model's layout and determinism, and every broken-checkpoint case as a typed error.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { loadCheckpoint, NVILA_LITE_DEFAULTS, spatialPeInputDim } from '../lib/checkpoint';
import { expectCheckpointError } from './helpers';
import { CheckpointError, SafetensorsFile, ShardedWeights, toFloat32, writeSafetensors } from '../lib/safetensors';
import { writeTinyModel } from '../lib/tinymodel';
import type { TinyModelInfo } from '../lib/tinymodel';
import { tinyModelCommand } from '../lib/commands/tiny_model';
import { LLM_WEIGHTS, PROJECTOR_WEIGHTS, SPATIAL_PE_WEIGHTS, VISION_WEIGHTS, weightOf } from '../lib/weights';

let tmp: string;
let base: string;
let baseInfo: TinyModelInfo;
const FOLDERS = ['llm', 'vision_tower', 'mm_projector', 'spatial_pe', 'region_extractor'];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-ckpt-'));
  base = path.join(tmp, 'base');
  baseInfo = await writeTinyModel(base, { seed: 1 });
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const json = (f: string): Record<string, any> => JSON.parse(fs.readFileSync(f, 'utf8'));
const writeJsonFile = (f: string, v: unknown): void => fs.writeFileSync(f, JSON.stringify(v));

let n = 0;
/**
 * A variant of the base checkpoint: the named folders are copied (to be broken), the others
 * symlinked (unchanged), config.json copied.
 */
function variant(copy: string[] = []): string {
  const d = path.join(tmp, `v${n++}`);
  fs.mkdirSync(d);
  fs.copyFileSync(path.join(base, 'config.json'), path.join(d, 'config.json'));
  for (const f of FOLDERS) {
    if (copy.includes(f)) fs.cpSync(path.join(base, f), path.join(d, f), { recursive: true });
    else fs.symlinkSync(path.join(base, f), path.join(d, f));
  }
  return d;
}

function editJson(f: string, edit: (v: Record<string, any>) => void): void {
  const v = json(f);
  edit(v);
  writeJsonFile(f, v);
}

/** Rewrites one single-file weight set with an edit of its tensor list. */
function editWeights(file: string, edit: (ts: ReturnType<SafetensorsFile['read']>[]) => ReturnType<SafetensorsFile['read']>[]): void {
  const st = SafetensorsFile.open(file);
  const ts = edit(st.keys().map((k) => st.read(k)));
  writeSafetensors(file, ts, { format: 'pt' });
}

async function expectBroken(dir: string, re: RegExp): Promise<CheckpointError> {
  let caught: unknown;
  try {
    await loadCheckpoint(dir);
  } catch (e) {
    caught = e;
  }
  return expectCheckpointError(caught, re);
}

describe('tiny model layout', () => {
  test('exactly the NVILA-Lite layout plus the SR-3D folders', () => {
    expect(baseInfo.dir).toBe(path.resolve(base));
    expect(baseInfo.files).toEqual(expect.arrayContaining([
      'config.json',
      'llm/config.json', 'llm/generation_config.json', 'llm/tokenizer.json', 'llm/tokenizer_config.json',
      'llm/model.safetensors.index.json', 'llm/model-00001-of-00002.safetensors', 'llm/model-00002-of-00002.safetensors',
      'vision_tower/config.json', 'vision_tower/preprocessor_config.json', 'vision_tower/model.safetensors',
      'mm_projector/config.json', 'mm_projector/model.safetensors',
      'spatial_pe/config.json', 'spatial_pe/model.safetensors',
      'region_extractor/config.json', 'region_extractor/model.safetensors',
    ]));
    const idx = json(path.join(base, 'llm/model.safetensors.index.json'));
    expect(new Set(Object.values(idx.weight_map)).size).toBe(2);
    const shardBytes = [...new Set(Object.values(idx.weight_map) as string[])].reduce((a, f) => a + SafetensorsFile.open(path.join(base, 'llm', f)).bytes, 0);
    expect(idx.metadata.total_size).toBe(shardBytes);
    const top = json(path.join(base, 'config.json'));
    expect(top).toMatchObject({
      architectures: ['LlavaLlamaModel'], model_type: 'llava_llama', image_aspect_ratio: 'dynamic', mm_vision_select_layer: -2,
      mm_vision_select_feature: 'cls_patch', min_tiles: 1, max_tiles: 12, chat_template: 'qwen2', model_max_length: 4096,
      mm_use_im_start_end: false, mm_projector_cfg: { mm_projector_type: 'mlp_downsample_3x3_fix' },
    });
    expect(json(path.join(base, 'llm/config.json'))).toMatchObject({ model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], vocab_size: 152064 });
    expect(json(path.join(base, 'llm/generation_config.json')).eos_token_id).toEqual([151645, 151643]);
    expect(json(path.join(base, 'vision_tower/config.json'))).toMatchObject({ architectures: ['SiglipVisionModel'], image_size: 448, patch_size: 14, hidden_size: 32 });
    const tc = json(path.join(base, 'llm/tokenizer_config.json'));
    expect(tc.added_tokens_decoder['151645'].content).toBe('<|im_end|>');
  });

  test('weights: bf16, linears ~ std 1/sqrt(in), norm gains near 1', () => {
    const st = SafetensorsFile.open(path.join(base, 'vision_tower/model.safetensors'));
    const w = st.read('vision_model.encoder.layers.0.mlp.fc1.weight');
    expect(w.dtype).toBe('bf16');
    expect(w.shape).toEqual([64, 32]);
    const x = toFloat32(w);
    const mean = x.reduce((a, b) => a + b, 0) / x.length;
    const std = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length);
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(std).toBeGreaterThan(0.85 / Math.sqrt(32));
    expect(std).toBeLessThan(1.15 / Math.sqrt(32));
    const g = toFloat32(st.read(weightOf(`${VISION_WEIGHTS.layer(0)}.${VISION_WEIGHTS.layerNorm1}`)));
    expect(Math.min(...g)).toBeGreaterThanOrEqual(0.9);
    expect(Math.max(...g)).toBeLessThanOrEqual(1.1);
    expect(Math.max(...g) - Math.min(...g)).toBeGreaterThan(0.05);
  });

  test('same seed -> identical bytes; another seed -> other weights, same configs', async () => {
    const a = path.join(tmp, 'det-a'), c = path.join(tmp, 'det-c');
    const ia = await writeTinyModel(a, { seed: 1 });
    const ic = await writeTinyModel(c, { seed: 2 });
    expect(ia.files).toEqual(baseInfo.files);
    for (const f of ia.files) expect({ f, same: fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(base, f))) }).toEqual({ f, same: true });
    for (const f of ia.files) {
      const same = fs.readFileSync(path.join(c, f)).equals(fs.readFileSync(path.join(base, f)));
      expect({ f, same }).toEqual({ f, same: !f.endsWith('.safetensors') });
    }
    expect(ic.bytes).toBe(ia.bytes);
    fs.rmSync(a, { recursive: true });
    fs.rmSync(c, { recursive: true });
  });
});

describe('loadCheckpoint(writeTinyModel(...))', () => {
  test('every field equals the written configs', async () => {
    const ck = await loadCheckpoint(base);
    const top = json(path.join(base, 'config.json'));
    const llm = json(path.join(base, 'llm/config.json'));
    const vis = json(path.join(base, 'vision_tower/config.json'));
    const gen = json(path.join(base, 'llm/generation_config.json'));
    const pe = json(path.join(base, 'spatial_pe/config.json'));
    const re = json(path.join(base, 'region_extractor/config.json'));
    expect(ck.dir).toBe(path.resolve(base));
    expect(ck.config).toEqual({
      imageAspectRatio: top.image_aspect_ratio, minTiles: top.min_tiles, maxTiles: top.max_tiles, numVideoFrames: top.num_video_frames,
      chatTemplate: top.chat_template, imageEndTokens: '\n', modelMaxLength: top.model_max_length, raw: top, defaulted: ['image_encoder.end_tokens'],
    });
    expect(ck.vision.config).toEqual({
      hiddenSize: vis.hidden_size, numLayers: vis.num_hidden_layers, numHeads: vis.num_attention_heads, intermediateSize: vis.intermediate_size,
      imageSize: 448, patchSize: 14, layerNormEps: vis.layer_norm_eps, hiddenAct: 'gelu_pytorch_tanh', selectLayer: -2,
      layersToRun: vis.num_hidden_layers - 1, selectFeature: 'cls_patch',
    });
    expect(ck.projector.config).toEqual({ type: 'mlp_downsample_3x3_fix', inDim: vis.hidden_size, outDim: llm.hidden_size, tokensPerTile: 121, midDim: 3 * vis.hidden_size });
    expect(ck.llm.config).toEqual({
      hiddenSize: llm.hidden_size, numLayers: llm.num_hidden_layers, numHeads: llm.num_attention_heads, numKvHeads: llm.num_key_value_heads,
      headDim: llm.hidden_size / llm.num_attention_heads, intermediateSize: llm.intermediate_size, vocabSize: 152064, rmsNormEps: 1e-6,
      ropeTheta: 1e6, maxPositionEmbeddings: llm.max_position_embeddings, tieWordEmbeddings: false, eosTokenIds: [151645, 151643],
      generation: { temperature: gen.temperature, topP: gen.top_p, topK: gen.top_k, doSample: gen.do_sample },
      tokenizerDir: path.join(path.resolve(base), 'llm'), raw: llm,
    });
    expect(ck.spatialPe!.config).toEqual({ numFreqs: pe.num_freqs, includeInput: true, hidden: pe.hidden, outDim: pe.out_dim, inject: 'vision_tower' });
    expect(spatialPeInputDim(16, true)).toBe(99);
    expect(ck.spatialPe!.weights.info(weightOf(SPATIAL_PE_WEIGHTS.fc1)).shape).toEqual([32, 99]);
    expect(ck.regionExtractor!.config).toEqual({ projector: re.projector, pooling: 'area', inDim: 32, outDim: 64, regionToken: '<mask>' });
    expect(ck.llm.weights).toBeInstanceOf(ShardedWeights);
    expect(ck.bytes).toBe(baseInfo.bytes);
    expect(ck.bytes).toBe(ck.vision.weights.bytes + ck.projector.weights.bytes + ck.llm.weights.bytes + ck.spatialPe!.weights.bytes + ck.regionExtractor!.weights.bytes);
    // Two layers x 12 tensors + embed, norm, lm_head.
    expect(ck.llm.weights.keys().length).toBe(2 * 12 + 3);
    const q = ck.llm.weights.read(weightOf(`${LLM_WEIGHTS.layer(1)}.${LLM_WEIGHTS.k}`));
    expect(q.shape).toEqual([2 * 16, 64]);
  });

  test('f32 / f16 dtypes, linear region projector, optional folders absent', async () => {
    const d32 = path.join(tmp, 'f32');
    await writeTinyModel(d32, { dtype: 'f32', regionProjector: 'linear', withSpatialPe: false, seed: 1 });
    const c32 = await loadCheckpoint(d32);
    expect(c32.spatialPe).toBeUndefined();
    expect(c32.regionExtractor!.config.projector).toBe('linear');
    expect(c32.regionExtractor!.weights.keys().sort()).toEqual(['projector.bias', 'projector.weight']);
    expect(c32.vision.weights.info(weightOf(VISION_WEIGHTS.patchEmbedding))).toMatchObject({ dtype: 'f32', shape: [32, 3, 14, 14] });
    const c16dir = path.join(tmp, 'f16');
    await writeTinyModel(c16dir, { dtype: 'f16', withRegionExtractor: false, seed: 1 });
    const c16 = await loadCheckpoint(c16dir);
    expect(c16.regionExtractor).toBeUndefined();
    expect(c16.llm.weights.info(weightOf(LLM_WEIGHTS.lmHead)).dtype).toBe('f16');
    // Same seed, other dtype: the same values up to the dtype's rounding.
    const b = toFloat32((await loadCheckpoint(base)).projector.weights.read(weightOf(PROJECTOR_WEIGHTS.fc2)));
    const h = toFloat32(c16.projector.weights.read(weightOf(PROJECTOR_WEIGHTS.fc2)));
    const f = toFloat32(c32.projector.weights.read(weightOf(PROJECTOR_WEIGHTS.fc2)));
    // Round-to-nearest: half an ulp, at most 2^-8 (bf16) / 2^-11 (f16) relative, f16 subnormals 2^-25 absolute.
    let worstB = 0, worstH = 0;
    for (let i = 0; i < f.length; i++) {
      worstB = Math.max(worstB, Math.abs(b[i] - f[i]) / (2 ** -8 * Math.abs(f[i])));
      worstH = Math.max(worstH, Math.abs(h[i] - f[i]) / (2 ** -11 * Math.abs(f[i]) + 2 ** -25));
    }
    expect(worstB).toBeLessThanOrEqual(1);
    expect(worstH).toBeLessThanOrEqual(1);
    expect(worstB).toBeGreaterThan(0.1); // really rounded, not the same bits
    fs.rmSync(d32, { recursive: true });
    fs.rmSync(c16dir, { recursive: true });
  });

  test('absent top-level keys take the NVILA-Lite defaults and are recorded', async () => {
    const d = variant();
    editJson(path.join(d, 'config.json'), (c) => {
      for (const k of ['image_aspect_ratio', 'min_tiles', 'max_tiles', 'num_video_frames', 'chat_template', 'model_max_length', 'image_encoder', 'mm_vision_select_layer', 'mm_vision_select_feature']) delete c[k];
    });
    const ck = await loadCheckpoint(d);
    expect(ck.config).toMatchObject({ imageAspectRatio: 'dynamic', minTiles: 1, maxTiles: 12, numVideoFrames: NVILA_LITE_DEFAULTS.num_video_frames, chatTemplate: 'qwen2', imageEndTokens: '\n', modelMaxLength: 4096 });
    expect(ck.config.defaulted!.sort()).toEqual(['chat_template', 'image_aspect_ratio', 'image_encoder.end_tokens', 'max_tiles', 'min_tiles', 'mm_vision_select_feature', 'mm_vision_select_layer', 'model_max_length', 'num_video_frames']);
    expect(ck.vision.config.selectLayer).toBe(-2);
  });

  test('values given in config.json are read, not defaulted', async () => {
    const d = variant();
    editJson(path.join(d, 'config.json'), (c) => {
      Object.assign(c, { max_tiles: 6, min_tiles: 2, num_video_frames: 8, model_max_length: 8192, chat_template: 'custom', mm_vision_select_layer: 1 });
      c.image_encoder = { _target_: 'llava.model.encoders.BasicImageEncoder', end_tokens: null };
    });
    let ck = await loadCheckpoint(d);
    expect(ck.config).toMatchObject({ minTiles: 2, maxTiles: 6, numVideoFrames: 8, modelMaxLength: 8192, chatTemplate: 'custom', imageEndTokens: null, defaulted: [] });
    expect(ck.vision.config).toMatchObject({ selectLayer: 1, layersToRun: 1 });
    editJson(path.join(d, 'config.json'), (c) => {
      c.image_encoder = JSON.stringify({ _target_: 'x', end_tokens: '\n\n' });
      c.mm_vision_select_layer = -4;
    });
    ck = await loadCheckpoint(d);
    expect(ck.config.imageEndTokens).toBe('\n\n');
    expect(ck.vision.config.layersToRun).toBe(0);
  });

  test('a nested SiglipConfig ("vision_config") and a head_dim given explicitly', async () => {
    const d = variant(['vision_tower', 'llm']);
    editJson(path.join(d, 'vision_tower/config.json'), (c) => {
      const inner = { ...c };
      for (const k of Object.keys(c)) delete c[k];
      Object.assign(c, { model_type: 'siglip', vision_config: inner, text_config: {} });
    });
    editJson(path.join(d, 'llm/config.json'), (c) => { c.head_dim = 16; });
    const ck = await loadCheckpoint(d);
    expect(ck.vision.config.hiddenSize).toBe(32);
    expect(ck.llm.config.headDim).toBe(16);
  });
});

describe('broken checkpoints are typed errors naming the file, key and fix', () => {
  test('not a folder / missing module folder', async () => {
    await expectBroken(path.join(tmp, 'does-not-exist'), /checkpoint folder.*no such folder.*sr3d tiny-model/);
    const d = variant();
    fs.rmSync(path.join(d, 'vision_tower'));
    const e = await expectBroken(d, /folder vision_tower\/.*no such folder.*NVILA\/VILA checkpoint/);
    expect(e.file).toBe(path.join(d, 'vision_tower'));
  });

  test('missing or unreadable config.json', async () => {
    const d = variant(['llm']);
    fs.rmSync(path.join(d, 'config.json'));
    await expectBroken(d, /readable config\.json.*ENOENT/);
    fs.writeFileSync(path.join(d, 'config.json'), fs.readFileSync(path.join(base, 'config.json')));
    fs.writeFileSync(path.join(d, 'llm/config.json'), '{"hidden_size": ');
    const e = await expectBroken(d, /valid JSON for the LLM config/);
    expect(e.file).toBe(path.join(d, 'llm', 'config.json'));
  });

  test('unsupported projector type names it and what is supported', async () => {
    const d = variant(['mm_projector']);
    editJson(path.join(d, 'mm_projector/config.json'), (c) => { c.mm_projector_type = 'mlp2x_gelu'; });
    await expectBroken(d, /mm_projector_type 'mlp_downsample_3x3_fix'.*received 'mlp2x_gelu'.*Only NVILA-Lite/);
  });

  test('wrong shape from a config that disagrees with the weights', async () => {
    const d = variant(['vision_tower']);
    editJson(path.join(d, 'vision_tower/config.json'), (c) => { c.intermediate_size = 48; });
    const e = await expectBroken(d, /shape \[48, 32\] for vision_tower\/vision_model\.encoder\.layers\.0\.mlp\.fc1\.weight but received \[64, 32\]/);
    expect(e.key).toBe('vision_model.encoder.layers.0.mlp.fc1.weight');
  });

  test('wrong shape of one stored tensor', async () => {
    const d = variant(['mm_projector']);
    editWeights(path.join(d, 'mm_projector/model.safetensors'), (ts) => ts.map((t) => (t.name === 'layers.5.bias' ? { ...t, shape: [63], data: (t.data as Uint16Array).slice(0, 63) } : t)));
    await expectBroken(d, /shape \[64\] for mm_projector\/layers\.5\.bias but received \[63\]/);
  });

  test('projector that does not match the vision tower or the LLM', async () => {
    const d = variant(['llm']);
    editJson(path.join(d, 'llm/config.json'), (c) => { c.hidden_size = 128; c.num_attention_heads = 8; c.num_key_value_heads = 4; });
    await expectBroken(d, /for llm\/model\.embed_tokens\.weight but received \[152064, 64\]/);
  });

  test('missing key', async () => {
    const d = variant(['region_extractor']);
    editWeights(path.join(d, 'region_extractor/model.safetensors'), (ts) => ts.filter((t) => t.name !== 'projector.2.bias'));
    const e = await expectBroken(d, /tensor 'projector\.2\.bias' \(shape \[64\]\) for region_extractor weights but received none/);
    expect(e.key).toBe('projector.2.bias');
    expect(e.file).toBe(path.join(d, 'region_extractor'));
  });

  test('missing shard', async () => {
    const d = variant(['llm']);
    fs.rmSync(path.join(d, 'llm/model-00002-of-00002.safetensors'));
    await expectBroken(d, /model-00002-of-00002\.safetensors.*no such file.*Download the missing shard/);
  });

  test('unsupported dtype of a needed weight names the key and dtype', async () => {
    const d = variant(['spatial_pe']);
    const f = path.join(d, 'spatial_pe/model.safetensors');
    const buf = fs.readFileSync(f);
    const hlen = Number(buf.readBigUInt64LE(0));
    const hdr = buf.subarray(8, 8 + hlen).toString('utf8');
    // Same byte size: BF16 -> I16 in place keeps every offset valid.
    const patched = hdr.replace('{"dtype":"BF16","shape":[32],"data_offsets"', '{"dtype":"I16" ,"shape":[32],"data_offsets"');
    expect(patched.length).toBe(hdr.length);
    fs.writeFileSync(f, Buffer.concat([buf.subarray(0, 8), Buffer.from(patched), buf.subarray(8 + hlen)]));
    await expectBroken(d, /F32, F16 or BF16 for tensor 'mlp\.0\.bias' but received I16/);
  });

  test('missing tokenizer files, bad eos, unsupported LLM and SR-3D configs', async () => {
    const d = variant(['llm', 'spatial_pe', 'region_extractor']);
    fs.renameSync(path.join(d, 'llm/tokenizer.json'), path.join(d, 'llm/tok.bak'));
    await expectBroken(d, /tokenizer files .*received tokenizer_config\.json.*Copy the tokenizer files/);
    fs.renameSync(path.join(d, 'llm/tok.bak'), path.join(d, 'llm/tokenizer.json'));
    editJson(path.join(d, 'llm/generation_config.json'), (c) => { c.eos_token_id = 'x'; });
    await expectBroken(d, /eos_token_id as a token id/);
    editJson(path.join(d, 'llm/generation_config.json'), (c) => { c.eos_token_id = 151645; });
    expect((await loadCheckpoint(d)).llm.config.eosTokenIds).toEqual([151645]);
    editJson(path.join(d, 'llm/config.json'), (c) => { c.model_type = 'llama'; });
    await expectBroken(d, /model_type 'qwen2'.*"llama"/);
    editJson(path.join(d, 'llm/config.json'), (c) => { c.model_type = 'qwen2'; c.rope_scaling = { type: 'yarn', factor: 4 }; });
    await expectBroken(d, /rope_scaling null/);
    editJson(path.join(d, 'llm/config.json'), (c) => { c.rope_scaling = null; c.use_sliding_window = true; });
    await expectBroken(d, /use_sliding_window false .*Sliding-window attention is not supported/);
    editJson(path.join(d, 'llm/config.json'), (c) => { c.use_sliding_window = false; c.hidden_act = 'gelu'; });
    await expectBroken(d, /hidden_act 'silu'.*"gelu"/);
    editJson(path.join(d, 'llm/config.json'), (c) => { c.hidden_act = 'silu'; delete c.vocab_size; });
    await expectBroken(d, /a number "vocab_size"/);
    editJson(path.join(d, 'llm/config.json'), (c) => { c.vocab_size = 152064; });
    editJson(path.join(d, 'spatial_pe/config.json'), (c) => { c.num_freqs = 8; });
    await expectBroken(d, /shape \[32, 51\] for spatial_pe\/mlp\.0\.weight but received \[32, 99\]/);
    editJson(path.join(d, 'spatial_pe/config.json'), (c) => { c.num_freqs = 16; c.inject = 'llm'; });
    await expectBroken(d, /inject 'vision_tower'/);
    editJson(path.join(d, 'spatial_pe/config.json'), (c) => { c.inject = 'vision_tower'; });
    editJson(path.join(d, 'region_extractor/config.json'), (c) => { c.projector = 'linear'; });
    await expectBroken(d, /tensor 'projector\.weight' for region_extractor weights but received none/);
    editJson(path.join(d, 'region_extractor/config.json'), (c) => { c.projector = 'mlp2x_gelu'; c.pooling = 'max'; });
    await expectBroken(d, /pooling 'area' or 'spatialrgpt'/);
    editJson(path.join(d, 'region_extractor/config.json'), (c) => { c.pooling = 'spatialrgpt'; c.region_token = '<region>'; });
    expect((await loadCheckpoint(d)).regionExtractor!.config).toMatchObject({ pooling: 'spatialrgpt', regionToken: '<region>' });
  });

  test('select layer out of range and non-cls_patch features', async () => {
    const d = variant();
    editJson(path.join(d, 'config.json'), (c) => { c.mm_vision_select_layer = -5; });
    await expectBroken(d, /mm_vision_select_layer in \[-4, 3\].*-5/);
    editJson(path.join(d, 'config.json'), (c) => { c.mm_vision_select_layer = -2; c.mm_vision_select_feature = 'patch'; });
    await expectBroken(d, /cls_patch/);
  });

  test('layers past the selected one may be absent; needed ones may not', async () => {
    const d = variant(['vision_tower']);
    const f = path.join(d, 'vision_tower/model.safetensors');
    editWeights(f, (ts) => ts.filter((t) => !t.name.startsWith('vision_model.encoder.layers.2.') && !t.name.startsWith('vision_model.post_layernorm')));
    expect((await loadCheckpoint(d)).vision.config.layersToRun).toBe(2);
    editWeights(f, (ts) => ts.filter((t) => t.name !== 'vision_model.encoder.layers.1.self_attn.q_proj.bias'));
    await expectBroken(d, /'vision_model\.encoder\.layers\.1\.self_attn\.q_proj\.bias'/);
  });
});

describe('configs are checked against the weights before any per-layer work (issue 10)', () => {
  test.each([1e8, 1e6, 3])('LLM num_hidden_layers %d with 2 layers on disk: a typed error at once', async (layers) => {
    const d = variant(['llm']);
    editJson(path.join(d, 'llm/config.json'), (c) => { c.num_hidden_layers = layers; });
    const t0 = Date.now();
    await expectBroken(d, new RegExp(`at most 2 layers \\(the weights in .*llm hold model\\.layers\\.0\\.\\.1\\) for "num_hidden_layers" but received ${layers}.*fix the layer count`));
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  test('vision num_hidden_layers 1e8: refused from the weights present, not a 1e8-layer loop', async () => {
    const d = variant(['vision_tower']);
    editJson(path.join(d, 'vision_tower/config.json'), (c) => { c.num_hidden_layers = 1e8; });
    const t0 = Date.now();
    await expectBroken(d, /at most 3 layers \(the weights in .*vision_tower hold vision_model\.encoder\.layers\.0\.\.2\)/);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  test('a bf16 tensor relabelled F16 is refused when torch_dtype says bfloat16 (and accepted when it says float16)', async () => {
    const d = variant(['spatial_pe']);
    const f = path.join(d, 'spatial_pe/model.safetensors');
    const buf = fs.readFileSync(f);
    const hlen = Number(buf.readBigUInt64LE(0));
    const hdr = buf.subarray(8, 8 + hlen).toString('utf8');
    const patched = hdr.replace('{"dtype":"BF16","shape":[32],"data_offsets"', '{"dtype":"F16" ,"shape":[32],"data_offsets"');
    expect(patched.length).toBe(hdr.length);
    fs.writeFileSync(f, Buffer.concat([buf.subarray(0, 8), Buffer.from(patched), buf.subarray(8 + hlen)]));
    editJson(path.join(d, 'spatial_pe/config.json'), (c) => { c.torch_dtype = 'bfloat16'; });
    const e = await expectBroken(d, /Expected dtype BF16 \(torch bfloat16\), as torch_dtype in .*spatial_pe.config\.json says for spatial_pe\/mlp\.0\.bias but received F16 \(torch float16\)/);
    expect(e.key).toBe('mlp.0.bias');
    editJson(path.join(d, 'spatial_pe/config.json'), (c) => { c.torch_dtype = 'float16'; });
    await expectBroken(d, /dtype F16 \(torch float16\).* for spatial_pe\/mlp\.0\.weight but received BF16/);
    editJson(path.join(d, 'spatial_pe/config.json'), (c) => { delete c.torch_dtype; });
    expect((await loadCheckpoint(d)).spatialPe!.weights.info('mlp.0.bias').dtype).toBe('f16');
  });
});

describe('sr3d tiny-model command', () => {
  let out = '', errOut = '';
  beforeEach(() => {
    out = errOut = '';
    jest.spyOn(process.stdout, 'write').mockImplementation((s) => { out += String(s); return true; });
    jest.spyOn(process.stderr, 'write').mockImplementation((s) => { errOut += String(s); return true; });
  });
  afterEach(() => jest.restoreAllMocks());

  test('writes a loadable checkpoint, refuses a non-empty dir without --force', async () => {
    const d = path.join(tmp, 'cli');
    expect(await tinyModelCommand.run([d, '--seed', '3', '--dtype', 'f16', '--no-spatial-pe', '--region-projector', 'linear'])).toBe(0);
    expect(out).toMatch(/wrote .*cli: \d+ files/);
    const ck = await loadCheckpoint(d);
    expect(ck.spatialPe).toBeUndefined();
    expect(ck.regionExtractor!.config.projector).toBe('linear');
    expect(ck.llm.weights.info('model.norm.weight').dtype).toBe('f16');
    expect(await tinyModelCommand.run([d])).toBe(1);
    expect(errOut).toMatch(/not empty; pass --force/);
    expect(await tinyModelCommand.run([d, '--force', '--no-region-extractor'])).toBe(0);
    const ck2 = await loadCheckpoint(d);
    expect(ck2.regionExtractor).toBeUndefined();
    expect(ck2.llm.weights.info('model.norm.weight').dtype).toBe('bf16');
    fs.rmSync(d, { recursive: true });
  });

  test('usage errors', async () => {
    expect(await tinyModelCommand.run([])).toBe(2);
    expect(await tinyModelCommand.run(['x', '--dtype', 'f8'])).toBe(2);
    expect(await tinyModelCommand.run(['x', '--seed', '-1'])).toBe(2);
    expect(await tinyModelCommand.run(['x', '--preset', 'huge'])).toBe(2);
    expect(await tinyModelCommand.run(['x', '--bogus'])).toBe(2);
    expect(errOut).toMatch(/expected bf16, f16 or f32 for --dtype but received f8/);
    expect(errOut).toMatch(/unknown option --bogus/);
    expect(fs.existsSync('x')).toBe(false);
  });
});
