// `sr3d quantize` / quantizeCheckpoint: round-to-nearest int4 (AWQ gemm) and int8 (GPTQ
// symmetric per-channel) LLM projections, lm_head too with lmHead / --lm-head, the embedding
// table too with embeddings / --embeddings (on an untied model and on one whose lm_head is tied
// to the table). Round trip: the tiny model quantized, loaded, and its quantized matrices read
// back exactly as dequantize(quantizeRtn(original)); everything else unchanged; the quantized
// engine's embedding rows equal to the dequantized table's, its logits within 1e-5 relative of
// the engine over those dequantized weights, greedy tokens identical; argument errors.
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { Checkpoint, WeightSet } from '../lib/checkpoint_types';
import { loadCheckpoint } from '../lib/checkpoint';
import { quantizeCommand } from '../lib/commands/quantize';
import { createEngine } from '../lib/engine';
import { dequantize, parseQuantConfig, quantizeRtn } from '../lib/quant';
import { QUANTIZABLE, quantizeCheckpoint } from '../lib/quantize_checkpoint';
import { openWeights, toFloat32, writeSafetensors, writeSafetensorsStreaming } from '../lib/safetensors';
import { writeTinyModel } from '../lib/tinymodel';
import { collect } from './helpers';
import { relMaxErr } from './reference64';

/** A copy of the tiny model `from` whose lm_head is tied to the embeddings (no lm_head tensor, tie_word_embeddings true). */
function writeTied(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true });
  const llm = path.join(to, 'llm'), w = openWeights(llm);
  const keys = w.keys().filter((k) => k !== 'lm_head.weight');
  const tensors = keys.map((k) => w.read(k));
  for (const f of fs.readdirSync(llm)) if (f.endsWith('.safetensors') || f.endsWith('.index.json')) fs.rmSync(path.join(llm, f));
  writeSafetensorsStreaming(path.join(llm, 'model.safetensors'), tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })), (_s, i) => tensors[i].data, { format: 'pt' });
  const cfgFile = path.join(llm, 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), tie_word_embeddings: true }, null, 2));
}

let root: string, src: string, tiedSrc: string;
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-quantize-'));
  src = path.join(root, 'src');
  await writeTinyModel(src, { seed: 5 }); // bf16
  tiedSrc = path.join(root, 'src-tied');
  writeTied(src, tiedSrc);
}, 120000);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

// [bits, group, lmHead, embeddings, tied]: a tied model with lmHead asks for what embeddings implies.
describe.each([
  [4, 32, false, false, false], [8, -1, false, false, false], [4, 32, true, false, false], [8, -1, true, false, false],
  [4, 32, true, true, false], [8, -1, false, true, false], [4, 32, true, true, true],
] as const)('int%i (group %i, lm_head too: %s, embeddings too: %s, tied lm_head: %s)', (bits, group, lmHead, embeddings, tied) => {
  it('round trip: quantized matrices read back as dequantize(quantizeRtn(original)), the rest unchanged, engine matches', async () => {
    const from = tied ? tiedSrc : src;
    const out = path.join(root, `q${bits}${lmHead ? '-head' : ''}${embeddings ? '-emb' : ''}${tied ? '-tied' : ''}`);
    const r = await quantizeCheckpoint(from, out, { bits, group, lmHead, embeddings });
    const headQuantized = lmHead && !tied;
    expect(r.quantized).toBe(2 * 7 + (headQuantized ? 1 : 0) + (embeddings ? 1 : 0));
    expect(r.embeddings).toBe(embeddings);
    expect(r.lmHead).toBe(headQuantized ? 'quantized' : tied && embeddings ? 'tied' : 'float');
    expect(r.bytesOut).toBeLessThan(r.bytesIn);
    const orig = await loadCheckpoint(from), q = await loadCheckpoint(out);
    expect(q.llm.config.tieWordEmbeddings).toBe(tied);
    const qc = parseQuantConfig(q.llm.config.raw, 'config.json')!;
    expect(qc).toMatchObject(bits === 4 ? { method: 'awq', bits: 4, groupSize: 32 } : { method: 'gptq', bits: 8, groupSize: -1, sym: true, descAct: false, checkpointFormat: 'gptq' });
    expect(qc.lmHead).toBe(headQuantized);
    expect(qc.embedTokens).toBe(embeddings);
    const raw = q.llm.config.raw.quantization_config as Record<string, unknown>;
    expect(raw.lm_head).toBe(headQuantized ? true : undefined);
    expect(raw.embed_tokens).toBe(embeddings ? true : undefined);
    const ow = orig.llm.weights, qw = q.llm.weights;
    expect(qw.keys().sort()).toEqual(ow.keys().sort());
    const quantizedKey = (k: string) => QUANTIZABLE.test(k) || (headQuantized && k === 'lm_head.weight') || (embeddings && k === 'model.embed_tokens.weight');
    for (const k of ow.keys()) {
      const a = ow.read(k);
      if (!quantizedKey(k)) {
        expect(qw.quantized?.(k)).toBeUndefined();
        const b = qw.read(k);
        expect(b.dtype).toBe(a.dtype);
        expect(Buffer.from(b.data.buffer).equals(Buffer.from(a.data.buffer))).toBe(true);
        continue;
      }
      expect(qw.quantized?.(k)).toMatchObject({ bits, rows: a.shape[0], cols: a.shape[1] });
      const want = dequantize(quantizeRtn(toFloat32(a), a.shape[0], a.shape[1], bits, group));
      expect(Buffer.from((qw.read(k).data as Float32Array).buffer).equals(Buffer.from(want.buffer))).toBe(true);
    }
    for (const f of ['vision_tower/model.safetensors', 'mm_projector/model.safetensors', 'config.json']) {
      if (fs.existsSync(path.join(from, f))) expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(from, f)))).toBe(true);
    }
    // The engine over the quantized weights vs over their dequantized float32 values.
    const dense: WeightSet = { keys: () => qw.keys(), has: (k) => qw.has(k), info: (k) => qw.info(k), read: (k) => qw.read(k), bytes: qw.bytes };
    const qe = await createEngine(q, { device: 'cpu', maxContext: 64 });
    const de = await createEngine({ ...q, llm: { ...q.llm, weights: dense } } as Checkpoint, { device: 'cpu', maxContext: 64 });
    try {
      expect(qe.info().weightBytes).toBeLessThan(de.info().weightBytes);
      const H = q.llm.config.hiddenSize, ids = [11, 2000, 7, 150000, 64, 152063, 0];
      const x = { data: (await de.embedTokens(ids)).data, shape: [ids.length, H] };
      // The quantized table's rows are the dequantized table's, bit for bit.
      expect(Buffer.from((await qe.embedTokens(ids)).data.buffer).equals(Buffer.from(x.data.buffer))).toBe(true);
      expect(relMaxErr(await qe.logits(x), await de.logits(x))).toBeLessThanOrEqual(1e-5);
      const opts = { maxNewTokens: 6, stopTokenIds: [] };
      expect(await collect(qe.generate(x, opts))).toEqual(await collect(de.generate(x, opts)));
    } finally {
      await qe.dispose();
      await de.dispose();
    }
  }, 300000); // vocab-sized matrices (152064 x 64) quantized, repacked and dequantized in JavaScript
});

describe('sr3d quantize arguments', () => {
  let err: jest.SpyInstance, out: jest.SpyInstance;
  beforeEach(() => {
    err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    out = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  });
  afterEach(() => { err.mockRestore(); out.mockRestore(); });
  const stderr = () => err.mock.calls.map((c) => String(c[0])).join('');

  it('writes a checkpoint and says so', async () => {
    const dst = path.join(root, 'cli4');
    expect(await quantizeCommand.run([src, dst, '--bits', '4', '--group', '32'])).toBe(0);
    expect(String(out.mock.calls[0][0])).toMatch(/14 LLM projections as int4 \(round-to-nearest\)/);
    expect(fs.existsSync(path.join(dst, 'llm', 'model.safetensors'))).toBe(true);
    expect(await quantizeCommand.run([src, path.join(root, 'cli8h'), '--bits', '8', '--lm-head'])).toBe(0);
    expect(String(out.mock.calls[1][0])).toMatch(/15 LLM linears \(lm_head included\) as int8/);
  }, 120000);
  it('--embeddings: the table (and a tied lm_head) quantized, recorded, and loaded back', async () => {
    const untied = path.join(root, 'cli4he'), tied = path.join(root, 'cli8te');
    expect(await quantizeCommand.run([src, untied, '--bits', '4', '--group', '32', '--lm-head', '--embeddings'])).toBe(0);
    expect(String(out.mock.calls[0][0])).toMatch(/16 LLM matrices \(lm_head and the embedding table included\) as int4/);
    expect(await quantizeCommand.run([tiedSrc, tied, '--bits', '8', '--embeddings', '--lm-head'])).toBe(0);
    expect(String(out.mock.calls[1][0])).toMatch(/15 LLM matrices \(the embedding table, also the tied lm_head, included\) as int8/);
    for (const [dir, head] of [[untied, true], [tied, undefined]] as const) {
      const qc = JSON.parse(fs.readFileSync(path.join(dir, 'llm', 'config.json'), 'utf8')).quantization_config;
      expect(qc.embed_tokens).toBe(true);
      expect(qc.lm_head).toBe(head);
      const c = await loadCheckpoint(dir);
      expect(c.llm.weights.quantized?.('model.embed_tokens.weight')).toMatchObject({ rows: 152064, cols: 64 });
      expect(c.llm.weights.has('model.embed_tokens.qweight')).toBe(false);
    }
    const stored = openWeights(path.join(untied, 'llm'));
    expect(stored.rawInfo('model.embed_tokens.qweight').shape).toEqual([64, 152064 / 8]); // AWQ gemm: [in][out / 8], as lm_head
    expect(stored.has('model.embed_tokens.weight')).toBe(false);
  }, 300000);
  it('refuses bad arguments', async () => {
    expect(await quantizeCommand.run([src, path.join(root, 'x')])).toBe(2);
    expect(stderr()).toMatch(/expected --bits 4 or --bits 8/);
    expect(await quantizeCommand.run([src, path.join(root, 'x'), '--bits', '3'])).toBe(2);
    expect(await quantizeCommand.run([src, '--bits', '4'])).toBe(2);
    expect(await quantizeCommand.run([src, path.join(root, 'x'), '--bits', '4', '--frob'])).toBe(2);
  });
  it('refuses a group that does not divide the in features, int8 groups, a non-empty <out>, a quantized <in>', async () => {
    expect(await quantizeCommand.run([src, path.join(root, 'g128'), '--bits', '4'])).toBe(1);
    expect(stderr()).toMatch(/Expected --group 128 to divide the in features of model\.layers\.0\.\S+_proj\.weight but received 64/);
    await expect(quantizeCheckpoint(src, path.join(root, 'g8'), { bits: 8, group: 32 })).rejects.toThrow(/Expected group -1 \(per channel\) for int8/);
    await expect(quantizeCheckpoint(src, src, { bits: 4, group: 32 })).rejects.toThrow(/not empty|differ/);
    const q = path.join(root, 'q4src');
    await quantizeCheckpoint(src, q, { bits: 4, group: 32 });
    await expect(quantizeCheckpoint(q, path.join(root, 'qq'), { bits: 4, group: 32 })).rejects.toThrow(/has a quantization_config/);
    // A config that says lm_head is quantized over weights whose lm_head is not.
    const cfgFile = path.join(q, 'llm', 'config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, quantization_config: { ...cfg.quantization_config, lm_head: true } }));
    await expect(loadCheckpoint(q)).rejects.toThrow(/Expected lm_head\.qweight \(quantization_config says "lm_head": true\) in the LLM weights but received an unquantized lm_head\.weight/);
    // A config that says the embedding table is quantized over weights whose table is not.
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, quantization_config: { ...cfg.quantization_config, embed_tokens: true } }));
    await expect(loadCheckpoint(q)).rejects.toThrow(/Expected model\.embed_tokens\.qweight \(quantization_config says "embed_tokens": true\) in the LLM weights but received an unquantized model\.embed_tokens\.weight/);
    // --lm-head on a model whose lm_head is tied to the embeddings (no lm_head tensor), without --embeddings.
    const tied = path.join(root, 'tied');
    fs.mkdirSync(path.join(tied, 'llm'), { recursive: true });
    fs.copyFileSync(path.join(src, 'llm', 'config.json'), path.join(tied, 'llm', 'config.json'));
    writeSafetensors(path.join(tied, 'llm', 'model.safetensors'), [{ name: 'model.norm.weight', dtype: 'f32', shape: [2], data: new Float32Array(2) }]);
    await expect(quantizeCheckpoint(tied, path.join(root, 'tiedq'), { bits: 8, lmHead: true })).rejects.toThrow(/Expected an lm_head\.weight tensor for lmHead \(--lm-head\) but .* has none .*; add embeddings \(--embeddings\)/);
    // --embeddings on weights without an embedding table.
    await expect(quantizeCheckpoint(tied, path.join(root, 'tiedq'), { bits: 8, embeddings: true })).rejects.toThrow(/Expected a model\.embed_tokens\.weight tensor for embeddings \(--embeddings\) but .* has none/);
  }, 120000);
});
