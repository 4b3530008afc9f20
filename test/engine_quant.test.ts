// The CPU engine with int4 / int8 LLM projections (q/k/v/o, gate/up/down; embeddings, lm_head,
// norms, vision and projector as they are): the tiny model's LLM linears quantized in memory
// (quantizeRtn, some act-order) and handed to createEngine through WeightSet.quantized, against
// the same checkpoint with those weights dequantize()d to float32: logits within 1e-5 relative
// (the int kernels use the exactly dequantized weights with their own fused summation order,
// kernels/linear.h), greedy tokens identical; also with lm_head quantized. The CUDA engine on
// the same quantized weights (its int4 / int8 GEMV and GEMM, kernels/cuda/linear_q.cu) against
// the CPU engine: 1e-5 relative, greedy tokens identical (CUDA-only, skipped without a GPU).
// The embedding table quantized too (some with act-order), untied and as the tied lm_head: its
// rows equal to the dequantized table's bit for bit, logits and tokens as above; on CUDA too.
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { Checkpoint, WeightSet } from '../lib/checkpoint_types';
import { loadCheckpoint } from '../lib/checkpoint';
import { createEngine } from '../lib/engine';
import { native } from '../lib/native';
import { dequantize, quantizeRtn } from '../lib/quant';
import type { QuantWeight } from '../lib/quant';
import { writeTinyModel } from '../lib/tinymodel';
import { collect, shuffled } from './helpers';
import { relMaxErr } from './reference64';

const LINEAR = /\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$/;
let dir: string;
let ckpt: Checkpoint;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-engine-quant-'));
  await writeTinyModel(dir, { seed: 7, dtype: 'f32' });
  ckpt = await loadCheckpoint(dir);
}, 300000);

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const EMBED = 'model.embed_tokens.weight';

/**
 * The llm WeightSet with its projections quantized (`quant`) or their dequantized f32 (`dense`);
 * `embed`: the embedding table too, with an act-order perm when 'act-order'.
 */
function variants(set: WeightSet, bits: 4 | 8, group: number, lmHead = false, embed: false | 'plain' | 'act-order' = false): { quant: WeightSet; dense: WeightSet } {
  const q = new Map<string, QuantWeight>();
  set.keys().filter((k) => LINEAR.test(k) || (lmHead && k === 'lm_head.weight')).forEach((k, i) => {
    const t = set.read(k);
    const [rows, cols] = t.shape;
    const w = quantizeRtn(t.data as Float32Array, rows, cols, bits, group);
    q.set(k, i % 3 === 1 ? { ...w, perm: shuffled(cols, i) } : w); // act-order on some
  });
  if (embed) {
    const t = set.read(EMBED);
    const [rows, cols] = t.shape;
    const w = quantizeRtn(t.data as Float32Array, rows, cols, bits, group);
    q.set(EMBED, embed === 'act-order' ? { ...w, perm: shuffled(cols, 99) } : w);
  }
  const base = { keys: () => set.keys(), has: (k: string) => set.has(k), info: (k: string) => set.info(k), bytes: set.bytes };
  return {
    quant: { ...base, read: (k) => set.read(k), quantized: (k) => q.get(k) },
    dense: { ...base, read: (k) => (q.has(k) ? { ...set.read(k), data: dequantize(q.get(k)!) } : set.read(k)) },
  };
}

describe.each([[4, 32, false], [8, -1, false], [4, 32, true], [8, -1, true]] as const)('int%i LLM projections (group %i, lm_head too: %s)', (bits, group, lmHead) => {
  it('logits within 1e-5 relative of the dequantized f32 checkpoint, greedy tokens identical', async () => {
    const v = variants(ckpt.llm.weights, bits, group, lmHead);
    expect(v.quant.quantized!('lm_head.weight') !== undefined).toBe(lmHead);
    const qc = { ...ckpt, llm: { ...ckpt.llm, weights: v.quant } } as Checkpoint;
    const dc = { ...ckpt, llm: { ...ckpt.llm, weights: v.dense } } as Checkpoint;
    // The dense twin first: it dequantizes the same arrays that createEngine(qc) then takes over
    // (the engine copies each weight and detaches a caller's buffer that the weight spans).
    const de = await createEngine(dc, { device: 'cpu', maxContext: 128 });
    const qe = await createEngine(qc, { device: 'cpu', maxContext: 128 });
    try {
      expect(qe.info().weightBytes).toBeLessThan(de.info().weightBytes);
      const H = ckpt.llm.config.hiddenSize, L = 9;
      const emb = await de.embedTokens([1, 17, 300, 4096, 9, 151000, 42, 7, 88]);
      const x = { data: emb.data, shape: [L, H] };
      const got = await qe.logits(x), want = await de.logits(x);
      expect(relMaxErr(got, want)).toBeLessThanOrEqual(1e-5);
      const opts = { maxNewTokens: 8, stopTokenIds: [] };
      expect(await collect(qe.generate(x, opts))).toEqual(await collect(de.generate(x, opts)));
      // The engine owns its quantized arrays: the caller's buffers may be transferred and the
      // native staging pool reused by other ops without changing a logit.
      for (const k of v.quant.keys()) {
        const w = v.quant.quantized!(k);
        if (!w) continue;
        for (const a of [w.q, w.scales, w.zeros]) if (a.byteLength) structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });
      }
      for (let i = 0; i < 4; i++) await de.logits({ data: new Float32Array(L * H).fill(0.5 + i), shape: [L, H] });
      expect(await qe.logits(x)).toEqual(got);
    } finally {
      await qe.dispose();
      await de.dispose();
    }
  }, 120000);
});

/** `c` with its lm_head tied to the embedding table (the engine then ignores lm_head.weight). */
function tiedTo(c: Checkpoint, weights: WeightSet): Checkpoint {
  return { ...c, llm: { ...c.llm, config: { ...c.llm.config, tieWordEmbeddings: true }, weights } } as Checkpoint;
}

// [bits, group, embedding act-order, lm_head tied to the table]
describe.each([[4, 32, false, false], [8, -1, true, false], [4, 32, true, true], [8, -1, false, true]] as const)('int%i embedding table (group %i, act-order: %s, tied lm_head: %s)', (bits, group, actOrder, tied) => {
  it('rows equal to the dequantized table\'s, logits within 1e-5 relative, greedy tokens identical', async () => {
    const v = variants(ckpt.llm.weights, bits, group, false, actOrder ? 'act-order' : 'plain');
    const qc = tied ? tiedTo(ckpt, v.quant) : { ...ckpt, llm: { ...ckpt.llm, weights: v.quant } } as Checkpoint;
    const dc = tied ? tiedTo(ckpt, v.dense) : { ...ckpt, llm: { ...ckpt.llm, weights: v.dense } } as Checkpoint;
    const de = await createEngine(dc, { device: 'cpu', maxContext: 128 });
    const qe = await createEngine(qc, { device: 'cpu', maxContext: 128 });
    try {
      expect(qe.info().weightBytes).toBeLessThan(de.info().weightBytes);
      const H = ckpt.llm.config.hiddenSize, ids = [1, 17, 300, 4096, 9, 151000, 42, 0, 152063];
      const emb = await de.embedTokens(ids);
      expect(Buffer.from((await qe.embedTokens(ids)).data.buffer).equals(Buffer.from(emb.data.buffer))).toBe(true);
      const x = { data: emb.data, shape: [ids.length, H] };
      expect(relMaxErr(await qe.logits(x), await de.logits(x))).toBeLessThanOrEqual(1e-5);
      const opts = { maxNewTokens: 8, stopTokenIds: [] };
      expect(await collect(qe.generate(x, opts))).toEqual(await collect(de.generate(x, opts)));
    } finally {
      await qe.dispose();
      await de.dispose();
    }
  }, 300000); // a vocab-sized (152064 x 64) table quantized and dequantized in JavaScript
});

describe('CUDA vs CPU on quantized LLM projections', () => {
  const addon = native();
  const gpus = addon.variant === 'cuda' ? addon.devices().devices.length : 0;
  const why = addon.variant !== 'cuda' ? 'the loaded binary is the CPU build' : 'the CUDA build sees no usable GPU';
  const maybe = gpus > 0 ? it : it.skip;
  // group -1 = one group per row; int4 group 32 takes the 16-byte vector GEMV, int8 per-row
  // groups of the tiny model's widths too; prefill (9 positions) runs the tiled GEMM.
  // embed: the table quantized too (its rows gathered and dequantized on the device), tied
  // to lm_head (the quantized GEMV over the vocab) when 'tied'.
  maybe.each([[4, 32, false], [8, -1, false], [4, 32, 'tied'], [8, -1, 'act-order']] as const)(`int%i group %i (embedding table: %s): logits within 1e-5 relative, greedy tokens identical${gpus > 0 ? '' : ` (skipped: ${why})`}`, async (bits, group, embed) => {
    const v = variants(ckpt.llm.weights, bits, group, false, embed === 'tied' ? 'plain' : embed);
    const qc = embed === 'tied' ? tiedTo(ckpt, v.quant) : { ...ckpt, llm: { ...ckpt.llm, weights: v.quant } } as Checkpoint;
    const ce = await createEngine(qc, { device: 'cpu', maxContext: 128 });
    const ge = await createEngine(qc, { device: 'cuda', maxContext: 128 });
    try {
      expect(ge.info().device).toMatch(/^cuda:\d+$/);
      const H = ckpt.llm.config.hiddenSize, L = 9;
      const ids = [1, 17, 300, 4096, 9, 151000, 42, 7, 88];
      const emb = await ce.embedTokens(ids);
      expect(Buffer.from((await ge.embedTokens(ids)).data.buffer).equals(Buffer.from(emb.data.buffer))).toBe(true);
      const x = { data: emb.data, shape: [L, H] };
      expect(relMaxErr(await ge.logits(x), await ce.logits(x))).toBeLessThanOrEqual(1e-5);
      const opts = { maxNewTokens: 8, stopTokenIds: [] };
      expect(await collect(ge.generate(x, opts))).toEqual(await collect(ce.generate(x, opts)));
    } finally {
      await ge.dispose();
      await ce.dispose();
    }
  }, 120000);
});

describe('quantized weights where the engine cannot take them', () => {
  it('a quantized vision weight is refused with a typed error naming it', async () => {
    const set = ckpt.vision.weights;
    const key = set.keys().find((k) => /mlp\.fc1\.weight$/.test(k))!;
    const t = set.read(key);
    const w = quantizeRtn(t.data as Float32Array, t.shape[0], t.shape[1], 8, -1);
    const vision: WeightSet = { keys: () => set.keys(), has: (k) => set.has(k), info: (k) => set.info(k), bytes: set.bytes, read: (k) => set.read(k), quantized: (k) => (k === key ? w : undefined) };
    const c = { ...ckpt, vision: { ...ckpt.vision, weights: vision } } as Checkpoint;
    await expect(createEngine(c, { device: 'cpu', maxContext: 64 })).rejects.toThrow(/int4\/int8 only for the LLM's attention and MLP projections/);
  });

  it.each([['a projection', /mlp\.down_proj\.weight$/], ['the embedding table', /^model\.embed_tokens\.weight$/]])('an act-order perm of %s that is not a permutation is refused, naming the weight (it would index out of bounds)', async (_what, re) => {
    const set = ckpt.llm.weights;
    const key = set.keys().find((k) => re.test(k))!;
    const t = set.read(key);
    const cols = t.shape[1];
    for (const bad of [(p: Int32Array) => { p[3] = p[4]; }, (p: Int32Array) => { p[0] = cols; }]) {
      const perm = Int32Array.from({ length: cols }, (_, i) => i);
      bad(perm);
      const w = { ...quantizeRtn(t.data as Float32Array, t.shape[0], cols, 4, 32), perm };
      const llm: WeightSet = { keys: () => set.keys(), has: (k) => set.has(k), info: (k) => set.info(k), bytes: set.bytes, read: (k) => set.read(k), quantized: (k) => (k === key ? w : undefined) };
      const c = { ...ckpt, llm: { ...ckpt.llm, weights: llm } } as Checkpoint;
      await expect(createEngine(c, { device: 'cpu', maxContext: 64 })).rejects.toThrow(new RegExp(`a permutation of 0\\.\\.${cols - 1}.*perm\\[\\d+\\] of weight 'llm\\.${key.replace(/\./g, '\\.')}'`));
    }
  });
});
