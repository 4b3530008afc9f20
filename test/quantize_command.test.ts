// `sr3d quantize` / quantizeCheckpoint: round-to-nearest int4 (AWQ gemm) and int8 (GPTQ
// symmetric per-channel) LLM projections, lm_head too with lmHead / --lm-head. Round trip: the tiny model quantized, loaded, and its
// projections read back exactly as dequantize(quantizeRtn(original)); everything else unchanged;
// the quantized engine's logits within 1e-5 relative of the engine over those dequantized
// weights, greedy tokens identical; argument errors.
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { Checkpoint, WeightSet } from '../lib/checkpoint_types';
import { loadCheckpoint } from '../lib/checkpoint';
import { quantizeCommand } from '../lib/commands/quantize';
import { createEngine } from '../lib/engine';
import { dequantize, parseQuantConfig, quantizeRtn } from '../lib/quant';
import { QUANTIZABLE, quantizeCheckpoint } from '../lib/quantize_checkpoint';
import { toFloat32, writeSafetensors } from '../lib/safetensors';
import { writeTinyModel } from '../lib/tinymodel';
import { collect } from './helpers';
import { relMaxErr } from './reference64';

let root: string, src: string;
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-quantize-'));
  src = path.join(root, 'src');
  await writeTinyModel(src, { seed: 5 }); // bf16
}, 120000);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe.each([[4, 32, false], [8, -1, false], [4, 32, true], [8, -1, true]] as const)('int%i (group %i, lm_head too: %s)', (bits, group, lmHead) => {
  it('round trip: projections read back as dequantize(quantizeRtn(original)), the rest unchanged, engine matches', async () => {
    const out = path.join(root, `q${bits}${lmHead ? '-head' : ''}`);
    const r = await quantizeCheckpoint(src, out, { bits, group, lmHead });
    expect(r.quantized).toBe(2 * 7 + (lmHead ? 1 : 0));
    expect(r.bytesOut).toBeLessThan(r.bytesIn);
    const orig = await loadCheckpoint(src), q = await loadCheckpoint(out);
    const qc = parseQuantConfig(q.llm.config.raw, 'config.json')!;
    expect(qc).toMatchObject(bits === 4 ? { method: 'awq', bits: 4, groupSize: 32 } : { method: 'gptq', bits: 8, groupSize: -1, sym: true, descAct: false, checkpointFormat: 'gptq' });
    expect(qc.lmHead).toBe(lmHead);
    expect((q.llm.config.raw.quantization_config as Record<string, unknown>).lm_head).toBe(lmHead ? true : undefined);
    const ow = orig.llm.weights, qw = q.llm.weights;
    expect(qw.keys().sort()).toEqual(ow.keys().sort());
    for (const k of ow.keys()) {
      const a = ow.read(k);
      if (!QUANTIZABLE.test(k) && !(lmHead && k === 'lm_head.weight')) {
        expect(qw.quantized?.(k)).toBeUndefined();
        const b = qw.read(k);
        expect(b.dtype).toBe(a.dtype);
        expect(Buffer.from(b.data.buffer).equals(Buffer.from(a.data.buffer))).toBe(true);
        continue;
      }
      const want = dequantize(quantizeRtn(toFloat32(a), a.shape[0], a.shape[1], bits, group));
      expect(Buffer.from((qw.read(k).data as Float32Array).buffer).equals(Buffer.from(want.buffer))).toBe(true);
    }
    for (const f of ['vision_tower/model.safetensors', 'mm_projector/model.safetensors', 'config.json']) {
      if (fs.existsSync(path.join(src, f))) expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(src, f)))).toBe(true);
    }
    // The engine over the quantized weights vs over their dequantized float32 values.
    const dense: WeightSet = { keys: () => qw.keys(), has: (k) => qw.has(k), info: (k) => qw.info(k), read: (k) => qw.read(k), bytes: qw.bytes };
    const qe = await createEngine(q, { device: 'cpu', maxContext: 64 });
    const de = await createEngine({ ...q, llm: { ...q.llm, weights: dense } } as Checkpoint, { device: 'cpu', maxContext: 64 });
    try {
      const H = q.llm.config.hiddenSize, ids = [11, 2000, 7, 150000, 64];
      const x = { data: (await de.embedTokens(ids)).data, shape: [ids.length, H] };
      expect(relMaxErr(await qe.logits(x), await de.logits(x))).toBeLessThanOrEqual(1e-5);
      const opts = { maxNewTokens: 6, stopTokenIds: [] };
      expect(await collect(qe.generate(x, opts))).toEqual(await collect(de.generate(x, opts)));
    } finally {
      await qe.dispose();
      await de.dispose();
    }
  }, 120000);
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
    // --lm-head on a model whose lm_head is tied to the embeddings (no lm_head tensor).
    const tied = path.join(root, 'tied');
    fs.mkdirSync(path.join(tied, 'llm'), { recursive: true });
    fs.copyFileSync(path.join(src, 'llm', 'config.json'), path.join(tied, 'llm', 'config.json'));
    writeSafetensors(path.join(tied, 'llm', 'model.safetensors'), [{ name: 'model.norm.weight', dtype: 'f32', shape: [2], data: new Float32Array(2) }]);
    await expect(quantizeCheckpoint(tied, path.join(root, 'tiedq'), { bits: 8, lmHead: true })).rejects.toThrow(/Expected an lm_head\.weight tensor for lmHead \(--lm-head\) but .* has none/);
  }, 120000);
});
