// The CPU engine with `activations: 'int8'` (kernels/linear.h's linear_a8: per-32-input int8
// activation blocks, llama.cpp Q8_0's precision) on the tiny model's LLM projections quantized
// in memory (quantizeRtn, some act-order), against the same quantized weights with exact f32
// activations: logits within the measured activation-rounding deviation (and not equal: the
// int8 kernels ran), greedy tokens identical on this model; a prefill continued by append ==
// one prefill (the kernels' batch == row identity through the engine); groups that are not a
// multiple of 32 keep the exact path bit for bit; option validation.
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { Checkpoint, WeightSet } from '../lib/checkpoint_types';
import { loadCheckpoint } from '../lib/checkpoint';
import { createEngine } from '../lib/engine';
import { InvalidArgumentError } from '../lib/errors';
import { buildInfo } from '../lib/info';
import { quantizeRtn } from '../lib/quant';
import type { QuantWeight } from '../lib/quant';
import { writeTinyModel } from '../lib/tinymodel';
import { appendVsWhole, collect, shuffled } from './helpers';
import { relMaxErr } from './reference64';

const LINEAR = /\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$/;
let dir: string;
let ckpt: Checkpoint;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-engine-a8-'));
  await writeTinyModel(dir, { seed: 7, dtype: 'f32' });
  ckpt = await loadCheckpoint(dir);
}, 300000);

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * The checkpoint with its LLM projections (and lm_head) quantized in memory: the same values on
 * every call, fresh arrays (an engine takes over, and may detach, the buffers it is given).
 */
function quantized(bits: 4 | 8, group: number): Checkpoint {
  const set = ckpt.llm.weights;
  const q = new Map<string, QuantWeight>();
  set.keys().filter((k) => LINEAR.test(k) || k === 'lm_head.weight').forEach((k, i) => {
    const t = set.read(k);
    const [rows, cols] = t.shape;
    const w = quantizeRtn(t.data as Float32Array, rows, cols, bits, group);
    q.set(k, i % 3 === 1 ? { ...w, perm: shuffled(cols, i) } : w); // act-order on some
  });
  const weights: WeightSet = {
    keys: () => set.keys(), has: (k) => set.has(k), info: (k) => set.info(k), bytes: set.bytes,
    read: (k) => set.read(k), quantized: (k) => q.get(k),
  };
  return { ...ckpt, llm: { ...ckpt.llm, weights } } as Checkpoint;
}

const IDS = [1, 17, 300, 4096, 9, 151000, 42, 7, 88];

// Measured max |Δlogit| / max |logit| of int8 vs f32 activations on this model and prompt (x86-64,
// AVX-512 VNNI; every ISA gives the same bits): int4 g32 1.14e-2, int8 per-row 1.12e-2 (the
// activation rounding, up to d/2 per input of a 32-block, through 2 random layers and lm_head).
// The bound leaves ~2.5x headroom.
const A8_REL_BOUND = 3e-2;

describe.each([[4, 32], [8, -1]] as const)('int%i LLM projections + lm_head (group %i) with int8 activations', (bits, group) => {
  it('logits within the activation-rounding deviation of exact activations, greedy tokens identical', async () => {
    const exact = await createEngine(quantized(bits, group), { device: 'cpu', maxContext: 128 });
    const a8 = await createEngine(quantized(bits, group), { device: 'cpu', maxContext: 128, activations: 'int8' });
    try {
      expect(exact.info().activations).toBe('f32');
      expect(a8.info().activations).toBe(`int8 (${buildInfo().cpu.int8Activations})`);
      const H = ckpt.llm.config.hiddenSize;
      const emb = await exact.embedTokens(IDS);
      const x = { data: emb.data, shape: [IDS.length, H] };
      const got = await a8.logits(x), want = await exact.logits(x);
      const rel = relMaxErr(got, want);
      if (process.env.SR3D_A8_REPORT) console.log(`int${bits} g${group}: max |dlogit| / max |logit| = ${rel.toExponential(2)}`);
      expect(rel).toBeGreaterThan(0); // the int8 kernels ran
      expect(rel).toBeLessThanOrEqual(A8_REL_BOUND);
      const opts = { maxNewTokens: 8, stopTokenIds: [] };
      expect(await collect(a8.generate(x, opts))).toEqual(await collect(exact.generate(x, opts)));
    } finally {
      await a8.dispose();
      await exact.dispose();
    }
  }, 120000);

  it('a prefill continued by append (decode steps, then a 4-row prefill) == one prefill of the whole sequence', async () => {
    const engine = await createEngine(quantized(bits, group), { device: 'cpu', maxContext: 128, activations: 'int8' });
    try {
      const H = ckpt.llm.config.hiddenSize;
      const [appended, whole] = await appendVsWhole(engine, (await engine.embedTokens(IDS)).data, H);
      expect(whole).toEqual(appended);
    } finally {
      await engine.dispose();
    }
  }, 120000);
});

it('int4 group 16 (not a multiple of 32) keeps the exact path: logits bit-identical to f32 activations', async () => {
  const exact = await createEngine(quantized(4, 16), { device: 'cpu', maxContext: 64 });
  const a8 = await createEngine(quantized(4, 16), { device: 'cpu', maxContext: 64, activations: 'int8' });
  try {
    const emb = await exact.embedTokens(IDS);
    const x = { data: emb.data, shape: [IDS.length, ckpt.llm.config.hiddenSize] };
    expect(await a8.logits(x)).toEqual(await exact.logits(x));
  } finally {
    await a8.dispose();
    await exact.dispose();
  }
}, 120000);

describe('activations option', () => {
  it.each([['fp8'], ['INT8'], [8], [true]])('%p is refused naming the option', async (v) => {
    const err = await createEngine(ckpt, { device: 'cpu', maxContext: 64, activations: v as never }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(/^Expected one of 'f32', 'int8', 'bf16' for activations but received /);
  });

  it("buildInfo reports the int8 kernels' ISA", () => {
    expect(['avx512vnni', 'avx2', 'neon-dotprod', 'portable']).toContain(buildInfo().cpu.int8Activations);
  });
});
