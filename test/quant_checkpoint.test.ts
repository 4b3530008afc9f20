// Quantized checkpoints end to end: a tiny model whose LLM projections are written in the exact
// published layouts (AWQ gemm int4; GPTQ int4 with act-order g_idx; GPTQ int8 symmetric
// per-channel), with llm/config.json quantization_config, loaded (lib/quant_weights.ts repacks
// them with fromAwq / fromGptq) and run on the CPU engine: logits within 1e-5 relative of an f32
// checkpoint whose LLM projections are the dequantize()d weights the writer started from, greedy
// tokens identical; mixed checkpoints (a module left unquantized); typed errors for tensors that
// do not match the declared layout, of a projection and of a quantized embedding table
// (`sr3d quantize --embeddings`).
import fs from 'fs';
import os from 'os';
import path from 'path';
import { loadCheckpoint } from '../lib/checkpoint';
import { createEngine } from '../lib/engine';
import { CheckpointError } from '../lib/errors';
import { dequantize, quantizeRtn, toAwq, toGptq } from '../lib/quant';
import type { QuantWeight } from '../lib/quant';
import { openWeights, writeSafetensorsStreaming } from '../lib/safetensors';
import type { TensorSpec } from '../lib/safetensors';
import { quantizeCheckpoint } from '../lib/quantize_checkpoint';
import { writeTinyModel } from '../lib/tinymodel';
import { collect, shuffled } from './helpers';
import { relMaxErr } from './reference64';

const LINEAR = /\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$/;

interface Variant { format: 'awq' | 'gptq'; bits: 4 | 8; group: number; actOrder: boolean; skip?: RegExp }

/** GPTQ tensors of an act-order weight (toGptq writes none): inputs in their own order, g_idx their group. */
function toGptqActOrder(w: QuantWeight): ReturnType<typeof toGptq> {
  const { rows, cols, perm } = w;
  const inv = new Int32Array(cols);
  perm!.forEach((input, j) => { inv[input] = j; });
  const bpr = (cols * w.bits) / 8, q = new Uint8Array(w.q.length);
  const at = (r: number, j: number) => (w.bits === 8 ? w.q[r * bpr + j] : (j & 1 ? w.q[r * bpr + (j >> 1)] >> 4 : w.q[r * bpr + (j >> 1)] & 15));
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < cols; i++) {
      const v = at(r, inv[i]);
      if (w.bits === 8) q[r * bpr + i] = v;
      else q[r * bpr + (i >> 1)] |= i & 1 ? v << 4 : v;
    }
  }
  const t = toGptq({ ...w, q, perm: null });
  t.gIdx = Int32Array.from({ length: cols }, (_, i) => Math.floor(inv[i] / w.groupSize));
  return t;
}

/**
 * Writes `qdir` (the LLM projections quantized in the variant's published layout) and `fdir`
 * (the same model with those projections as the dequantized float32 weights) from a tiny f32 model.
 */
async function writePair(root: string, v: Variant, seed: number): Promise<{ qdir: string; fdir: string }> {
  const qdir = path.join(root, 'q'), fdir = path.join(root, 'f');
  await writeTinyModel(qdir, { seed, dtype: 'f32' });
  await writeTinyModel(fdir, { seed, dtype: 'f32' });
  const qllm = path.join(qdir, 'llm'), fllm = path.join(fdir, 'llm');
  const src = openWeights(qllm);
  const qSpecs: TensorSpec[] = [], qData: Array<Float32Array | Uint16Array | Int32Array> = [];
  const fSpecs: TensorSpec[] = [], fData: Float32Array[] = [];
  let n = 0;
  for (const key of src.keys()) {
    const t = src.read(key);
    const quantize = LINEAR.test(key) && !(v.skip && v.skip.test(key));
    if (!quantize) {
      qSpecs.push({ name: key, dtype: 'f32', shape: t.shape }); qData.push(t.data);
      fSpecs.push({ name: key, dtype: 'f32', shape: t.shape }); fData.push(t.data as Float32Array);
      continue;
    }
    const [rows, cols] = t.shape;
    let w = quantizeRtn(t.data as Float32Array, rows, cols, v.bits, v.group);
    if (v.actOrder && n++ % 2 === 0) w = { ...w, perm: shuffled(cols, seed + n) };
    fSpecs.push({ name: key, dtype: 'f32', shape: t.shape }); fData.push(dequantize(w));
    const p = key.slice(0, -'.weight'.length);
    if (v.format === 'awq') {
      const a = toAwq(w);
      qSpecs.push({ name: `${p}.qweight`, dtype: 'i32', shape: a.shapes.qweight }, { name: `${p}.qzeros`, dtype: 'i32', shape: a.shapes.qzeros },
        { name: `${p}.scales`, dtype: 'f16', shape: a.shapes.scales });
      qData.push(a.qweight, a.qzeros, a.scales);
    } else {
      const g = w.perm ? toGptqActOrder(w) : toGptq(w);
      qSpecs.push({ name: `${p}.qweight`, dtype: 'i32', shape: g.shapes.qweight }, { name: `${p}.qzeros`, dtype: 'i32', shape: g.shapes.qzeros },
        { name: `${p}.scales`, dtype: 'f16', shape: g.shapes.scales }, { name: `${p}.g_idx`, dtype: 'i32', shape: g.shapes.g_idx });
      qData.push(g.qweight, g.qzeros, g.scales, g.gIdx);
    }
  }
  for (const [dir, specs, data] of [[qllm, qSpecs, qData], [fllm, fSpecs, fData]] as const) {
    for (const f of fs.readdirSync(dir)) if (f.endsWith('.safetensors') || f.endsWith('.index.json')) fs.rmSync(path.join(dir, f));
    writeSafetensorsStreaming(path.join(dir, 'model.safetensors'), specs, (_s, i) => data[i], { format: 'pt' });
  }
  const cfgFile = path.join(qllm, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  cfg.quantization_config = v.format === 'awq'
    ? { quant_method: 'awq', bits: 4, group_size: v.group, version: 'gemm', zero_point: true }
    : { quant_method: 'gptq', bits: v.bits, group_size: v.group, desc_act: v.actOrder, sym: v.bits === 8, checkpoint_format: 'gptq' };
  fs.writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  return { qdir, fdir };
}

async function compare(qdir: string, fdir: string): Promise<void> {
  const qc = await loadCheckpoint(qdir), fc = await loadCheckpoint(fdir);
  const qe = await createEngine(qc, { device: 'cpu', maxContext: 128 });
  const fe = await createEngine(fc, { device: 'cpu', maxContext: 128 });
  try {
    expect(qe.info().weightBytes).toBeLessThan(fe.info().weightBytes);
    const H = fc.llm.config.hiddenSize, ids = [3, 1000, 77, 151000, 5, 42, 9];
    const emb = await fe.embedTokens(ids);
    const x = { data: emb.data, shape: [ids.length, H] };
    expect(relMaxErr(await qe.logits(x), await fe.logits(x))).toBeLessThanOrEqual(1e-5);
    const opts = { maxNewTokens: 8, stopTokenIds: [] };
    expect(await collect(qe.generate(x, opts))).toEqual(await collect(fe.generate(x, opts)));
  } finally {
    await qe.dispose();
    await fe.dispose();
  }
}

const tmp: string[] = [];
const mk = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-qckpt-')); tmp.push(d); return d; };
afterAll(() => { for (const d of tmp) fs.rmSync(d, { recursive: true, force: true }); });

describe('quantized checkpoints load and run like their dequantized f32 twin', () => {
  it.each([
    ['AWQ gemm int4 group 32, one module left unquantized (mixed)', { format: 'awq', bits: 4, group: 32, actOrder: false, skip: /layers\.1\.mlp\.down_proj/ }],
    ['GPTQ int4 group 32 act-order', { format: 'gptq', bits: 4, group: 32, actOrder: true }],
    ['GPTQ int8 symmetric per-channel', { format: 'gptq', bits: 8, group: -1, actOrder: false }],
  ] as Array<[string, Variant]>)('%s', async (_name, v) => {
    const { qdir, fdir } = await writePair(mk(), v, 11);
    await compare(qdir, fdir);
  }, 120000);
});

/** A copy of the checkpoint `from` whose LLM tensors `edit` changed. */
function rewriteFrom(from: string, edit: (specs: TensorSpec[], data: Array<Float32Array | Uint16Array | Int32Array>) => void): string {
  const dir = mk();
  fs.cpSync(from, dir, { recursive: true });
  const llm = path.join(dir, 'llm'), src = openWeights(llm) as ReturnType<typeof openWeights>;
  const specs: TensorSpec[] = [], data: Array<Float32Array | Uint16Array | Int32Array> = [];
  for (const k of src.keys()) {
    const r = src.rawInfo(k);
    if (r.dtype === 'F32') { specs.push({ name: k, dtype: 'f32', shape: r.shape }); data.push(src.read(k).data); }
    else if (r.dtype === 'I32') { specs.push({ name: k, dtype: 'i32', shape: r.shape }); data.push(src.readRaw(k, 'I32').data); }
    else { specs.push({ name: k, dtype: 'f16', shape: r.shape }); data.push(src.readRaw(k, 'F16').data); }
  }
  edit(specs, data);
  writeSafetensorsStreaming(path.join(llm, 'model.safetensors'), specs, (_s, i) => data[i]);
  return dir;
}

describe('quantized checkpoint errors name the tensor', () => {
  let qdir: string;
  beforeAll(async () => {
    ({ qdir } = await writePair(mk(), { format: 'awq', bits: 4, group: 32, actOrder: false }, 12));
  }, 120000);
  const rewrite = (edit: Parameters<typeof rewriteFrom>[1]) => rewriteFrom(qdir, edit);
  const Q = 'model.layers.0.self_attn.q_proj';

  it('a missing qzeros', async () => {
    const dir = rewrite((s, d) => { const i = s.findIndex((t) => t.name === `${Q}.qzeros`); s.splice(i, 1); d.splice(i, 1); });
    await expect(loadCheckpoint(dir)).rejects.toThrow(CheckpointError);
    await expect(loadCheckpoint(dir)).rejects.toThrow(`tensor '${Q}.qzeros'`);
  });
  it('scales stored as F32', async () => {
    const dir = rewrite((s, d) => { const i = s.findIndex((t) => t.name === `${Q}.scales`); s[i] = { ...s[i], dtype: 'f32' }; d[i] = new Float32Array(d[i].length); });
    await expect(loadCheckpoint(dir)).rejects.toThrow(/Expected dtype F16 for tensor 'model\.layers\.0\.self_attn\.q_proj\.scales' but received F32/);
  });
  it('a qweight whose shape disagrees with the scales', async () => {
    const dir = rewrite((s, d) => { const i = s.findIndex((t) => t.name === `${Q}.qweight`); s[i] = { ...s[i], shape: [s[i].shape[0] / 2, s[i].shape[1] * 2] }; void d; });
    await expect(loadCheckpoint(dir)).rejects.toThrow(/for tensor 'model\.layers\.0\.self_attn\.q_proj\.qweight'/);
  });
  it('qzeros of the wrong group count (found when the engine repacks it)', async () => {
    const dir = rewrite((s, d) => { const i = s.findIndex((t) => t.name === `${Q}.qzeros`); s[i] = { ...s[i], shape: [1, s[i].shape[0] * s[i].shape[1]] }; void d; });
    const c = await loadCheckpoint(dir);
    await expect(createEngine(c, { device: 'cpu', maxContext: 32 })).rejects.toThrow(/qzeros/);
  });
});

describe('quantized embedding table errors name the tensor', () => {
  let qdir: string;
  beforeAll(async () => {
    const src = mk();
    await writeTinyModel(src, { seed: 13, dtype: 'f32' });
    qdir = path.join(mk(), 'q');
    await quantizeCheckpoint(src, qdir, { bits: 4, group: 32, embeddings: true });
  }, 300000);
  const E = 'model.embed_tokens';
  const at = (s: TensorSpec[], name: string) => s.findIndex((t) => t.name === name);

  it('a missing qzeros', async () => {
    const dir = rewriteFrom(qdir, (s, d) => { const i = at(s, `${E}.qzeros`); s.splice(i, 1); d.splice(i, 1); });
    await expect(loadCheckpoint(dir)).rejects.toThrow(CheckpointError);
    await expect(loadCheckpoint(dir)).rejects.toThrow(`tensor '${E}.qzeros'`);
  }, 120000);
  it('scales stored as F32', async () => {
    const dir = rewriteFrom(qdir, (s, d) => { const i = at(s, `${E}.scales`); s[i] = { ...s[i], dtype: 'f32' }; d[i] = new Float32Array(d[i].length); });
    await expect(loadCheckpoint(dir)).rejects.toThrow(/Expected dtype F16 for tensor 'model\.embed_tokens\.scales' but received F32/);
  }, 120000);
  it('a qweight whose shape disagrees with the scales', async () => {
    const dir = rewriteFrom(qdir, (s) => { const i = at(s, `${E}.qweight`); s[i] = { ...s[i], shape: [s[i].shape[0] / 2, s[i].shape[1] * 2] }; });
    await expect(loadCheckpoint(dir)).rejects.toThrow(/for tensor 'model\.embed_tokens\.qweight'/);
  }, 120000);
  it('a table with fewer rows than the vocabulary (every part consistent)', async () => {
    // AWQ gemm: qweight [hidden][vocab / 8], qzeros [groups][vocab / 8], scales [groups][vocab]: keep the first 8 · 100 rows.
    const dir = rewriteFrom(qdir, (s, d) => {
      for (const part of ['qweight', 'qzeros', 'scales']) {
        const i = at(s, `${E}.${part}`), [r, c] = s[i].shape, keep = part === 'scales' ? 800 : 100;
        const src = d[i], out = new (src.constructor as Int32ArrayConstructor)(r * keep);
        for (let y = 0; y < r; y++) out.set(src.subarray(y * c, y * c + keep), y * keep);
        s[i] = { ...s[i], shape: [r, keep] };
        d[i] = out;
      }
    });
    await expect(loadCheckpoint(dir)).rejects.toThrow(/Expected shape \[152064, 64\] for llm\/model\.embed_tokens\.weight but received \[800, 64\]/);
  }, 120000);
});
