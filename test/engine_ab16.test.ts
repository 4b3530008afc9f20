// The CPU engine with `activations: 'bf16'` (kernels/linear.h's linear_ab16: activations rounded
// to bf16, bf16 x bf16 products summed in float32 as vdpbf16ps does; llama.cpp's precision for
// bf16 weights) on the tiny model stored in bf16, against the same weights with exact float32
// activations: logits within the measured activation-rounding deviation (and not equal: the
// bf16 kernels ran), greedy tokens identical on this model; a prefill continued by append == one
// prefill (the kernels' batch == row identity, bit for bit in tests_cpp/ab16_tests.cc); float32 weights keep the exact
// path bit for bit; the engine and buildInfo report the kernels' ISA.
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { Checkpoint } from '../lib/checkpoint_types';
import { loadCheckpoint } from '../lib/checkpoint';
import { createEngine } from '../lib/engine';
import { buildInfo } from '../lib/info';
import { writeTinyModel } from '../lib/tinymodel';
import { appendVsWhole, collect } from './helpers';
import { relMaxErr } from './reference64';

let root: string;
let bf16: Checkpoint;
let f32: Checkpoint;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-engine-ab16-'));
  await writeTinyModel(path.join(root, 'bf16'), { seed: 11, dtype: 'bf16' });
  await writeTinyModel(path.join(root, 'f32'), { seed: 11, dtype: 'f32' });
  bf16 = await loadCheckpoint(path.join(root, 'bf16'));
  f32 = await loadCheckpoint(path.join(root, 'f32'));
}, 300000);

afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

const IDS = [1, 17, 300, 4096, 9, 151000, 42, 7, 88];

// Measured max |Δlogit| / max |logit| of bf16 vs f32 activations on this model and prompt
// (x86-64 AVX-512 BF16; every ISA gives the same bits): 3.44e-3 (bf16 keeps 8 significant bits:
// up to 2^-9 relative per activation, through 2 random layers and lm_head). ~3x headroom.
const AB16_REL_BOUND = 1e-2;

it('bf16 weights: logits within the activation-rounding deviation of exact activations, greedy tokens identical', async () => {
  const exact = await createEngine(bf16, { device: 'cpu', maxContext: 128 });
  const ab16 = await createEngine(bf16, { device: 'cpu', maxContext: 128, activations: 'bf16' });
  try {
    expect(exact.info().activations).toBe('f32');
    expect(ab16.info().activations).toBe(`bf16 (${buildInfo().cpu.bf16Activations})`);
    const H = bf16.llm.config.hiddenSize;
    const x = { data: (await exact.embedTokens(IDS)).data, shape: [IDS.length, H] };
    const got = await ab16.logits(x), want = await exact.logits(x);
    const rel = relMaxErr(got, want);
    if (process.env.SR3D_AB16_REPORT) console.log(`bf16 activations: max |dlogit| / max |logit| = ${rel.toExponential(2)}`);
    expect(rel).toBeGreaterThan(0); // the bf16 kernels ran
    expect(rel).toBeLessThanOrEqual(AB16_REL_BOUND);
    const opts = { maxNewTokens: 8, stopTokenIds: [] };
    expect(await collect(ab16.generate(x, opts))).toEqual(await collect(exact.generate(x, opts)));
  } finally {
    await ab16.dispose();
    await exact.dispose();
  }
}, 120000);

it('bf16 activations: a prefill continued by append (decode steps, then a 4-row prefill) == one prefill of the whole sequence', async () => {
  const engine = await createEngine(bf16, { device: 'cpu', maxContext: 128, activations: 'bf16' });
  try {
    const H = bf16.llm.config.hiddenSize;
    const [appended, whole] = await appendVsWhole(engine, (await engine.embedTokens(IDS)).data, H);
    expect(whole).toEqual(appended);
  } finally {
    await engine.dispose();
  }
}, 120000);

it('float32 weights keep the exact path under bf16 activations: logits bit-identical', async () => {
  const exact = await createEngine(f32, { device: 'cpu', maxContext: 64 });
  const ab16 = await createEngine(f32, { device: 'cpu', maxContext: 64, activations: 'bf16' });
  try {
    const x = { data: (await exact.embedTokens(IDS)).data, shape: [IDS.length, f32.llm.config.hiddenSize] };
    expect(await ab16.logits(x)).toEqual(await exact.logits(x));
  } finally {
    await ab16.dispose();
    await exact.dispose();
  }
}, 120000);

it("buildInfo reports the bf16 kernels' ISA", () => {
  expect(['avx512bf16', 'avx512f', 'avx2', 'portable']).toContain(buildInfo().cpu.bf16Activations);
});
