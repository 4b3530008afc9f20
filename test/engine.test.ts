// The engine on the tiny checkpoint (writeTinyModel -> loadCheckpoint -> createEngine):
// every stage against the float64 JavaScript model (test/reference64.ts), greedy determinism,
// spliced-embedding prefill vs token-by-token prefill, streaming, cancellation, the busy and
// disposed states, and CUDA vs CPU where a GPU is usable.
//
// Bounds (whole-stage relative error in the max norm, max|got - want| / max|want|; the
// weights are bf16, decoded exactly on both sides, so this is the float32 arithmetic over the
// whole stack, not the bf16 rounding). Measured on this checkpoint (CPU engine), bound ~10x:
//   SigLIP (2 layers, 1024 tokens)      3.2e-7  -> 3e-6
//   projector                           2.5e-7  -> 3e-6
//   spatial_pe / region MLPs            1.3e-7  -> 2e-6
//   Qwen2 logits (2 layers, L = 130)    2.2e-7  -> 3e-6
//   pixels -> logits end to end         2.4e-7  -> 3e-6
// CUDA vs CPU: 1e-5 per stage (a different summation order on each side).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { loadCheckpoint } from '../lib/checkpoint';
import type { Checkpoint } from '../lib/checkpoint_types';
import { createEngine, DEFAULT_MAX_CONTEXT, Engine, EngineBusyError, EngineDisposedError, nativeEngineOf } from '../lib/engine';
import type { GenerateOptions } from '../lib/engine';
import { InternalError, InvalidArgumentError, fromNative } from '../lib/errors';
import { native } from '../lib/native';
import { writeTinyModel } from '../lib/tinymodel';
import { rng, collect } from './helpers';
import { ModelRef, argmaxWithMargin, relMaxErr } from './reference64';
import { LLM_WEIGHTS, SPATIAL_PE_WEIGHTS, weightOf } from '../lib/weights';

let dir: string;
let ckpt: Checkpoint;
let engine: Engine;
let ref: ModelRef;
let tile: Float32Array;
let prompt: Float32Array; // spliced embeddings: 4 text tokens, one tile's 121 projector tokens, 5 text tokens
let promptLen: number;

const TEXT_A = [151644, 872, 198, 151649];
const TEXT_B = [198, 3838, 374, 419, 30];

function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (2 * r() - 1) * scale);
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-engine-'));
  await writeTinyModel(dir, { seed: 3 });
  ckpt = await loadCheckpoint(dir);
  engine = await createEngine(ckpt, { device: 'cpu', maxContext: 256 });
  ref = new ModelRef(ckpt);
  tile = rand(3 * 448 * 448, 5, 2);
  const H = ckpt.llm.config.hiddenSize;
  const a = await engine.embedTokens(TEXT_A);
  const feats = await engine.encodeTiles({ data: tile, shape: [1, 3, 448, 448] });
  const img = await engine.project(feats);
  const b = await engine.embedTokens(TEXT_B);
  promptLen = TEXT_A.length + img.shape[1] + TEXT_B.length;
  prompt = new Float32Array(promptLen * H);
  prompt.set(a.data, 0);
  prompt.set(img.data, TEXT_A.length * H);
  prompt.set(b.data, (TEXT_A.length + img.shape[1]) * H);
}, 300000);

afterAll(async () => {
  await engine?.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('stages vs the float64 model', () => {
  it('the tiny checkpoint is what the bounds were measured on (bf16, SigLIP layers to run 2, LLM hidden 64)', () => {
    expect(ckpt.llm.weights.info(weightOf(LLM_WEIGHTS.lmHead)).dtype).toBe('bf16');
    expect(ckpt.vision.config.layersToRun).toBe(2);
    expect(ckpt.llm.config.hiddenSize).toBe(64);
  });

  it('encodeTiles (1, 3, 448, 448) -> (1, 1024, visionHidden): rel max err <= 3e-6', async () => {
    const got = await engine.encodeTiles({ data: tile, shape: [1, 3, 448, 448] });
    expect(got.shape).toEqual([1, 1024, ckpt.vision.config.hiddenSize]);
    const want = ref.encodeTiles(tile, 1);
    expect(relMaxErr(got.data, want)).toBeLessThanOrEqual(3e-6);
  });

  it('project (1, 1024, visionHidden) -> (1, 121, llmHidden): rel max err <= 3e-6', async () => {
    const feats = rand(1024 * ckpt.vision.config.hiddenSize, 9, 3);
    const got = await engine.project({ data: feats, shape: [1, 1024, ckpt.vision.config.hiddenSize] });
    expect(got.shape).toEqual([1, 121, ckpt.llm.config.hiddenSize]);
    expect(relMaxErr(got.data, ref.project(feats, 1))).toBeLessThanOrEqual(3e-6);
  });

  it('project of two tiles = each tile projected alone (batched tiles are independent)', async () => {
    const V = ckpt.vision.config.hiddenSize;
    const f = rand(2 * 1024 * V, 12);
    const both = await engine.project({ data: f, shape: [2, 1024, V] });
    const second = await engine.project({ data: f.subarray(1024 * V), shape: [1, 1024, V] });
    expect(relMaxErr(both.data.subarray(121 * 64), second.data)).toBeLessThanOrEqual(1e-6);
  });

  it("runMlp 'spatial_pe' and 'region': rel max err <= 2e-6; 1-D input gives 1-D output", async () => {
    const pe = ckpt.spatialPe!.config, V = ckpt.vision.config.hiddenSize;
    const inDim = ckpt.spatialPe!.weights.info(weightOf(SPATIAL_PE_WEIGHTS.fc1)).shape[1];
    const x = rand(7 * inDim, 21);
    const y = await engine.runMlp('spatial_pe', { data: x, shape: [7, inDim] });
    expect(y.shape).toEqual([7, pe.outDim]);
    expect(relMaxErr(y.data, ref.spatialPe(x, 7))).toBeLessThanOrEqual(2e-6);
    const r = rand(3 * V, 22, 2);
    const z = await engine.runMlp('region', { data: r, shape: [3, V] });
    expect(z.shape).toEqual([3, ckpt.llm.config.hiddenSize]);
    expect(relMaxErr(z.data, ref.region(r, 3))).toBeLessThanOrEqual(2e-6);
    const one = await engine.runMlp('region', { data: r.subarray(0, V), shape: [V] });
    expect(one.shape).toEqual([ckpt.llm.config.hiddenSize]);
  });

  it('embedTokens: exactly the stored embedding rows', async () => {
    const ids = [0, 198, 151645, 152063];
    const got = await engine.embedTokens(ids);
    expect(Array.from(got.data)).toEqual(Array.from(ref.embed(ids)));
  });

  it('logits of the spliced prompt (text + 121 image tokens + text): rel max err <= 3e-6, same argmax', async () => {
    const got = await engine.logits({ data: prompt, shape: [promptLen, 64] });
    const want = ref.logits(prompt, promptLen);
    expect(got.length).toBe(ckpt.llm.config.vocabSize);
    expect(relMaxErr(got, want)).toBeLessThanOrEqual(3e-6);
    const a = argmaxWithMargin(want);
    if (a.margin > 1e-3) expect(argmaxWithMargin(got).index).toBe(a.index);
  });

  it('the whole model from pixels: encodeTiles -> project -> splice -> logits vs float64 end to end: rel max err <= 3e-6', async () => {
    const H = 64;
    const img = ref.project(ref.encodeTiles(tile, 1), 1);
    const emb = new Float64Array(promptLen * H);
    emb.set(ref.embed(TEXT_A), 0);
    emb.set(img, TEXT_A.length * H);
    emb.set(ref.embed(TEXT_B), (TEXT_A.length + 121) * H);
    const want = ref.logits(emb, promptLen);
    const got = await engine.logits({ data: prompt, shape: [promptLen, H] });
    expect(relMaxErr(got, want)).toBeLessThanOrEqual(3e-6);
  });
});

describe('f16 and f32 checkpoints', () => {
  for (const dtype of ['f16', 'f32'] as const) {
    it(`${dtype} weights: pixels -> logits vs float64 of the stored weights, rel max err <= 3e-6`, async () => {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), `sr3d-engine-${dtype}-`));
      try {
        await writeTinyModel(d, { seed: 4, dtype, regionProjector: 'linear' });
        const c = await loadCheckpoint(d);
        expect(c.llm.weights.info(weightOf(LLM_WEIGHTS.lmHead)).dtype).toBe(dtype);
        const r = new ModelRef(c);
        const e = await createEngine(c, { device: 'cpu', maxContext: 200 });
        try {
          const H = c.llm.config.hiddenSize;
          const img = await e.project(await e.encodeTiles({ data: tile, shape: [1, 3, 448, 448] }));
          const text = await e.embedTokens(TEXT_B);
          const L = 121 + TEXT_B.length;
          const emb = new Float32Array(L * H);
          emb.set(img.data);
          emb.set(text.data, 121 * H);
          const want64 = new Float64Array(L * H);
          want64.set(r.project(r.encodeTiles(tile, 1), 1));
          want64.set(r.embed(TEXT_B), 121 * H);
          expect(relMaxErr(await e.logits({ data: emb, shape: [L, H] }), r.logits(want64, L))).toBeLessThanOrEqual(3e-6);
          const V = c.vision.config.hiddenSize, x = rand(2 * V, 40);
          expect(relMaxErr((await e.runMlp('region', { data: x, shape: [2, V] })).data, r.region(x, 2))).toBeLessThanOrEqual(2e-6);
        } finally {
          await e.dispose();
        }
      } finally {
        fs.rmSync(d, { recursive: true, force: true });
      }
    });
  }
});

describe('generation', () => {
  it('greedy generation is deterministic across runs and starts with the argmax of the logits', async () => {
    const e = { data: prompt, shape: [promptLen, 64] };
    const a = await collect(engine.generate(e, { maxNewTokens: 12, stopTokenIds: [] }));
    const b = await collect(engine.generate(e, { maxNewTokens: 12, stopTokenIds: [] }));
    expect(a).toHaveLength(12);
    expect(b).toEqual(a);
    const logits = await engine.logits(e);
    expect(a[0]).toBe(argmaxWithMargin(logits).index);
  });

  it('generation from spliced embeddings == prefilling the same sequence one position at a time', async () => {
    const e = { data: prompt, shape: [promptLen, 64] };
    const want = await collect(engine.generate(e, { maxNewTokens: 10, stopTokenIds: [] }));
    const h = nativeEngineOf(engine);
    await h.reset();
    for (let i = 0; i < promptLen; i++) {
      await h.prefill({ embeddings: prompt.subarray(i * 64, (i + 1) * 64), n: 1, reset: false });
    }
    expect(h.info().cached).toBe(promptLen);
    const got: number[] = [];
    let prev = -1;
    for (let i = 0; i < 10; i++) {
      prev = await h.step({ prevToken: prev, temperature: 0, topP: 1, topK: 0 });
      got.push(prev);
    }
    expect(got).toEqual(want);
  });

  it('append: a second generate continues the KV cache (pendingToken first) == one generate over the whole sequence', async () => {
    const e = { data: prompt, shape: [promptLen, 64] };
    const epoch = engine.cacheEpoch;
    const first = await collect(engine.generate(e, { maxNewTokens: 4, stopTokenIds: [] }));
    expect(engine.cacheEpoch).toBe(epoch + 1);
    expect(engine.pendingToken).toBe(first[3]); // stopped by maxNewTokens: the last token was not fed
    const more = [11, 22, 33];
    const tail = (await engine.embedTokens([engine.pendingToken!, ...more])).data;
    const second = await collect(engine.generate({ data: tail, shape: [4, 64] }, { maxNewTokens: 5, stopTokenIds: [], append: true }));
    expect(engine.cacheEpoch).toBe(epoch + 1); // appended, not started over
    const whole = new Float32Array(prompt.length + 7 * 64);
    whole.set(prompt);
    whole.set((await engine.embedTokens([...first, ...more])).data, prompt.length);
    expect(await collect(engine.generate({ data: whole, shape: [promptLen + 7, 64] }, { maxNewTokens: 5, stopTokenIds: [] }))).toEqual(second);
    expect(engine.cacheEpoch).toBe(epoch + 2);
    await engine.logits(e);
    expect([engine.cacheEpoch, engine.pendingToken]).toEqual([epoch + 3, null]);
    expect(() => engine.generate(e, { append: 1 as never })).toThrow('Expected a boolean for append but received 1');
  });

  it('decoding a token by id == prefilling its embedding row (the decode path vs the prefill path)', async () => {
    const e = { data: prompt, shape: [promptLen, 64] };
    const toks = await collect(engine.generate(e, { maxNewTokens: 4, stopTokenIds: [] }));
    const extra = await engine.embedTokens(toks.slice(0, 3));
    const longer = new Float32Array((promptLen + 3) * 64);
    longer.set(prompt);
    longer.set(extra.data, promptLen * 64);
    const logits = await engine.logits({ data: longer, shape: [promptLen + 3, 64] });
    expect(argmaxWithMargin(logits).index).toBe(toks[3]);
  });

  it('seeded sampling is reproducible; a different seed or greedy gives a different stream', async () => {
    const e = { data: prompt, shape: [promptLen, 64] };
    const opts = { maxNewTokens: 16, temperature: 1.5, topP: 0.95, topK: 200, stopTokenIds: [] };
    const a = await collect(engine.generate(e, { ...opts, seed: 42 }));
    const b = await collect(engine.generate(e, { ...opts, seed: 42 }));
    const c = await collect(engine.generate(e, { ...opts, seed: 43 }));
    const g = await collect(engine.generate(e, { maxNewTokens: 16, stopTokenIds: [] }));
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(a).not.toEqual(g);
  });

  it('stop tokens end generation and are not yielded (default: the checkpoint eos ids)', async () => {
    const e = { data: prompt, shape: [promptLen, 64] };
    const free = await collect(engine.generate(e, { maxNewTokens: 6, stopTokenIds: [] }));
    const stopped = await collect(engine.generate(e, { maxNewTokens: 6, stopTokenIds: [free[2]] }));
    expect(stopped).toEqual(free.slice(0, free.indexOf(free[2])));
    // The default stop set is the checkpoint's eos ids: a checkpoint whose eos is that token.
    const c2: Checkpoint = { ...ckpt, llm: { ...ckpt.llm, config: { ...ckpt.llm.config, eosTokenIds: [free[2]] } } };
    const e2 = await createEngine(c2, { device: 'cpu', maxContext: 256 });
    try {
      expect(await collect(e2.generate(e, { maxNewTokens: 6 }))).toEqual(stopped);
    } finally {
      await e2.dispose();
    }
  });

  it('streams: each token is yielded before the next one is decoded', async () => {
    const h = nativeEngineOf(engine);
    const seen: number[] = [];
    for await (const _t of engine.generate({ data: prompt, shape: [promptLen, 64] }, { maxNewTokens: 5, stopTokenIds: [] })) {
      seen.push(h.info().cached); // the KV cache grows by one per yielded token, after it
    }
    expect(seen).toEqual([promptLen, promptLen + 1, promptLen + 2, promptLen + 3, promptLen + 4]);
  });

  it('aborting the signal after 2 tokens ends the iteration; the engine is reusable', async () => {
    const e = { data: prompt, shape: [promptLen, 64] };
    const full = await collect(engine.generate(e, { maxNewTokens: 8, stopTokenIds: [] }));
    const ctl = new AbortController();
    const got: number[] = [];
    for await (const t of engine.generate(e, { maxNewTokens: 8, stopTokenIds: [], signal: ctl.signal })) {
      got.push(t);
      if (got.length === 2) ctl.abort();
    }
    expect(got).toEqual(full.slice(0, 2));
    expect(await collect(engine.generate(e, { maxNewTokens: 8, stopTokenIds: [] }))).toEqual(full);
  });

  it('breaking out of for-await frees the engine; calls during an iteration reject with EngineBusyError', async () => {
    const e = { data: prompt, shape: [promptLen, 64] };
    let busy: unknown;
    for await (const _t of engine.generate(e, { maxNewTokens: 50, stopTokenIds: [] })) {
      busy = await engine.embedTokens([1]).catch((x) => x);
      break;
    }
    expect(busy).toBeInstanceOf(EngineBusyError);
    const again = await engine.embedTokens([1]);
    expect(again.shape).toEqual([1, 64]);
  });

  it('concurrent calls are queued and each gets its own result', async () => {
    const [a, b, c] = await Promise.all([engine.embedTokens([5]), engine.logits({ data: prompt, shape: [promptLen, 64] }), engine.embedTokens([6])]);
    expect(Array.from(a.data)).toEqual(Array.from(ref.embed([5])));
    expect(Array.from(c.data)).toEqual(Array.from(ref.embed([6])));
    expect(b.length).toBe(ckpt.llm.config.vocabSize);
  });

  it('generation stops when the KV cache is full', async () => {
    const small = await createEngine(ckpt, { device: 'cpu', maxContext: promptLen + 3 });
    try {
      const got = await collect(small.generate({ data: prompt, shape: [promptLen, 64] }, { maxNewTokens: 20, stopTokenIds: [] }));
      expect(got).toHaveLength(4); // positions promptLen..promptLen+2 hold 3 of them; the 4th is sampled from the last logits
    } finally {
      await small.dispose();
    }
  });
});

describe('inputs and lifetime', () => {
  it('wrong shapes, dtypes and ids are typed errors naming the argument', async () => {
    await expect(engine.encodeTiles({ data: new Float32Array(3 * 224 * 224), shape: [1, 3, 224, 224] })).rejects.toThrow(
      'Expected tiles (N, 3, 448, 448) float32 for tiles.shape but received [1, 3, 224, 224]');
    await expect(engine.encodeTiles({ data: new Uint8Array(3 * 448 * 448), shape: [1, 3, 448, 448] })).rejects.toThrow(InvalidArgumentError);
    await expect(engine.project({ data: new Float32Array(10), shape: [1, 10, 1] })).rejects.toThrow(/for features\.shape but received \[1, 10, 1\]/);
    await expect(engine.embedTokens([1, 152064])).rejects.toThrow('Expected a token id in [0, 152064) for ids[1] but received 152064');
    await expect(engine.logits({ data: new Float32Array(63), shape: [1, 63] })).rejects.toThrow(/last dimension 64/);
    await expect(engine.logits({ data: new Float32Array(0), shape: [0, 64] })).rejects.toThrow('Expected between 1 and 256 positions (maxContext) for embeddings.shape but received [0, 64]');
    await expect(engine.runMlp('depth' as never, { data: new Float32Array(1), shape: [1, 1] })).rejects.toThrow(/for module but received 'depth'/);
    expect(() => engine.generate({ data: prompt, shape: [promptLen, 64] }, { temperature: -1 })).toThrow('Expected a finite number >= 0 (0 = greedy) for temperature but received -1');
    expect(() => engine.generate({ data: prompt, shape: [promptLen, 64] }, { topP: 0 })).toThrow('Expected a number in (0, 1] for topP but received 0');
    expect(() => engine.generate({ data: prompt, shape: [promptLen, 64] }, { stopTokenIds: [-1] })).toThrow(/stopTokenIds\[0\]/);
    await expect(createEngine(ckpt, { device: 'tpu' as never })).rejects.toThrow(/for device but received 'tpu'/);
    await expect(createEngine(ckpt, { maxContext: 0 })).rejects.toThrow(/for maxContext but received 0/);
  });

  it('the KV cache is not sized by a config maximum alone (issue 10): default min(4096, model_max_length, max_position_embeddings), maxContext raises it', async () => {
    const huge = {
      ...ckpt, config: { ...ckpt.config, modelMaxLength: 1 << 16 },
      llm: { ...ckpt.llm, config: { ...ckpt.llm.config, maxPositionEmbeddings: 1 << 16 } },
    } as Checkpoint;
    const lc = ckpt.llm.config;
    const perPosition = 2 * lc.numLayers * lc.numKvHeads * lc.headDim * 4;
    const e = await createEngine(huge, { device: 'cpu' });
    expect(DEFAULT_MAX_CONTEXT).toBe(4096);
    expect(e.info().maxContext).toBe(DEFAULT_MAX_CONTEXT);
    expect(e.info().kvCacheBytes).toBeLessThanOrEqual(perPosition * DEFAULT_MAX_CONTEXT);
    const H = lc.hiddenSize;
    await expect(e.logits({ data: new Float32Array(4097 * H), shape: [4097, H] })).rejects.toThrow(
      `Expected between 1 and 4096 positions (maxContext) for embeddings.shape but received [4097, ${H}]`);
    await e.dispose();
    const small = { ...ckpt, config: { ...ckpt.config, modelMaxLength: 300 } } as Checkpoint;
    const e2 = await createEngine(small, { device: 'cpu' });
    expect(e2.info().maxContext).toBe(300);
    await e2.dispose();
    const e3 = await createEngine(huge, { device: 'cpu', maxContext: 5000 });
    expect(e3.info().maxContext).toBe(5000);
    await e3.dispose();
  });

  it('NaN or Inf inputs are typed errors naming the element (they would only come out as NaN)', async () => {
    const tiles = new Float32Array(3 * 448 * 448).fill(0.25);
    tiles[448 * 448 + 7] = NaN;
    await expect(engine.encodeTiles({ data: tiles, shape: [1, 3, 448, 448] })).rejects.toThrow(
      'Expected finite values for tiles[0, 1, 0, 7] but received NaN. Fix: pass normalized pixels');
    const emb = prompt.slice();
    emb[64 + 3] = Infinity;
    await expect(engine.logits({ data: emb, shape: [promptLen, 64] })).rejects.toThrow('Expected finite values for embeddings[1, 3] but received Infinity');
    expect(() => engine.generate({ data: emb, shape: [promptLen, 64] })).toThrow(/for embeddings\[1, 3\]/);
    const x = new Float32Array(2 * 99).fill(0.5);
    x[99] = NaN;
    await expect(engine.runMlp('spatial_pe', { data: x, shape: [2, 99] })).rejects.toThrow(/for x\[1, 0\] but received NaN\. Fix: encode only points with valid depth/);
    // The engine is still usable afterwards.
    expect((await engine.logits({ data: prompt, shape: [promptLen, 64] })).length).toBe(152064);
  });

  it('the native engine refuses a second call while one is in flight: an internal error (the Engine owns the rule)', async () => {
    const h = nativeEngineOf(engine);
    const out = new Float32Array(1024 * 32);
    const first = h.encodeTiles({ tiles: tile, n: 1, out });
    await expect(h.embedTokens({ ids: new Int32Array([1]), n: 1, out: new Float32Array(64) })).rejects.toMatchObject({
      code: 'SR3D_INTERNAL',
      message: expect.stringMatching(/^sr3d internal error: Expected an idle engine \(one call at a time\) for this but received an engine with a call in flight\. The TypeScript Engine \(lib\/engine\.ts\) checks this before the native call, so this is a bug in sr3d: please report it$/),
    });
    await first;
  });

  it('info() reports the device and memory; dispose releases, waits for a call in flight, and is idempotent', async () => {
    const e = await createEngine(ckpt, { device: 'cpu', maxContext: 64 });
    const info = e.info();
    expect(info.device).toBe('cpu');
    expect(info.maxContext).toBe(64);
    // Every weight except vision layers past the selected one (bf16: 2 bytes each); small
    // vectors may be widened to float32 by the engine.
    expect(info.weightBytes).toBeGreaterThan(0.9 * (ckpt.llm.weights.bytes + ckpt.projector.weights.bytes));
    expect(info.kvCacheBytes).toBeGreaterThanOrEqual(0);
    const h = nativeEngineOf(e);
    const inflight = e.encodeTiles({ data: tile, shape: [1, 3, 448, 448] });
    await new Promise((r) => setImmediate(r));
    const disposed = e.dispose();
    expect(e.dispose()).toBe(disposed); // a second dispose is a no-op
    await expect(inflight).resolves.toBeDefined(); // the call in flight completed
    await disposed;
    expect(() => e.info()).toThrow(EngineDisposedError);
    expect(() => h.info()).toThrow(expect.objectContaining({ code: 'SR3D_INTERNAL', message: expect.stringMatching(/an engine that is not disposed for this but received a disposed engine/) }));
    await expect(e.embedTokens([1])).rejects.toThrow(EngineDisposedError);
    await expect(h.embedTokens({ ids: new Int32Array([1]), n: 1, out: new Float32Array(64) })).rejects.toMatchObject({ code: 'SR3D_INTERNAL' });
    expect(() => h.seed(1)).toThrow(expect.objectContaining({ code: 'SR3D_INTERNAL' }));
    const short = { data: prompt.subarray(0, 4 * 64), shape: [4, 64] };
    await expect(collect(e.generate(short))).rejects.toThrow(EngineDisposedError);
    await e.dispose();
  });
});

// One owner per rule (issue 9): the TypeScript Engine gives the typed error; the native
// engine's copy of the check is a guard that reports a bug (SR3D_INTERNAL) when the Engine is
// bypassed. Rule -> owner: temperature, maxNewTokens -> lib/validate.ts; topP, topK, seed, stop
// ids, token ids, the KV-cache room (prefill and append), the model's parts, busy / disposed ->
// lib/engine.ts (Engine).
describe('one owner per rule', () => {
  const e = () => ({ data: prompt, shape: [promptLen, 64] });

  it("each generation rule: the Engine's typed error naming the argument", async () => {
    const cases: [GenerateOptions, string][] = [
      [{ temperature: NaN }, 'Expected a finite number >= 0 (0 = greedy) for temperature but received NaN'],
      [{ temperature: Infinity }, 'Expected a finite number >= 0 (0 = greedy) for temperature but received Infinity'],
      [{ maxNewTokens: -1 }, 'Expected a non-negative integer for maxNewTokens but received -1'],
      [{ maxNewTokens: 1.5 }, 'Expected a non-negative integer for maxNewTokens but received 1.5'],
      [{ topP: 1.5 }, 'Expected a number in (0, 1] for topP but received 1.5'],
      [{ topK: -1 }, 'Expected a non-negative integer (0 = off) for topK but received -1'],
      [{ seed: -1 }, 'Expected an integer in [0, 2^53) for seed but received -1'],
    ];
    for (const [opts, msg] of cases) {
      let err: unknown;
      try {
        engine.generate(e(), opts);
      } catch (x) {
        err = x;
      }
      expect([opts, err instanceof InvalidArgumentError, (err as Error)?.message]).toEqual([opts, true, msg]);
    }
    // maxNewTokens 0 is allowed (the API's and every CLI's rule): nothing is generated.
    const none = engine.generate(e(), { maxNewTokens: 0 });
    expect(await collect(none)).toEqual([]);
    expect(none.stopReason).toBe('length');
  });

  it("appending past maxContext: the Engine's typed error before any native call", async () => {
    const small = await createEngine(ckpt, { device: 'cpu', maxContext: promptLen + 4 });
    try {
      await collect(small.generate(e(), { maxNewTokens: 2, stopTokenIds: [] }));
      const cached = small.cachedPositions;
      const more = { data: prompt.subarray(0, 5 * 64), shape: [5, 64] };
      const err = await collect(small.generate(more, { append: true })).catch((x) => x);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err.message).toBe(`Expected at most ${promptLen + 4 - cached} positions (maxContext ${promptLen + 4}, ${cached} cached) for embeddings.shape but received [5, 64]`);
      expect(small.cachedPositions).toBe(cached); // nothing ran
    } finally {
      await small.dispose();
    }
  });

  it('the same rules broken on the internal native engine (bypassing the Engine) are internal errors', async () => {
    const h = nativeEngineOf(engine);
    await h.prefill({ embeddings: prompt, n: promptLen, reset: true });
    const internal = (message: RegExp) => ({ code: 'SR3D_INTERNAL', message: expect.stringMatching(message) });
    await expect(h.step({ prevToken: -1, temperature: NaN, topP: 1, topK: 0 })).rejects.toMatchObject(
      internal(/^sr3d internal error: Expected a finite temperature >= 0 for temperature but received NaN\. The TypeScript Engine \(lib\/engine\.ts\) checks this/));
    await expect(h.step({ prevToken: 152064, temperature: 0, topP: 1, topK: 0 })).rejects.toMatchObject(internal(/for prevToken but received 152064/));
    await expect(h.prefill({ embeddings: new Float32Array(64 * 300), n: 300, reset: true })).rejects.toMatchObject(internal(/at most 256 positions .* for n but received 300/));
    await expect(h.embedTokens({ ids: new Int32Array([-1]), n: 1, out: new Float32Array(64) })).rejects.toMatchObject(internal(/for ids but received id -1 at index 0/));
    await expect(h.runMlp({ module: 'depth', x: new Float32Array(1), rows: 1, out: new Float32Array(1) })).rejects.toMatchObject(internal(/for module but received 'depth'/));
    expect(() => h.seed(-1)).toThrow(expect.objectContaining(internal(/for seed but received -1/)));
    // Through the library's error mapping it is an InternalError (a bug to report), never an argument error.
    const mapped = fromNative(await h.step({ prevToken: -1, temperature: -1, topP: 1, topK: 0 }).catch((x) => x));
    expect(mapped).toBeInstanceOf(InternalError);
    expect(mapped).not.toBeInstanceOf(InvalidArgumentError);
    // The engine is intact: the Engine's calls still work.
    expect((await engine.logits(e())).length).toBe(152064);
  });
});

describe('CUDA vs CPU', () => {
  const addon = native();
  const gpus = addon.variant === 'cuda' ? addon.devices().devices.length : 0;
  const why = addon.variant !== 'cuda' ? 'the loaded binary is the CPU build' : 'the CUDA build sees no usable GPU';
  const maybe = gpus > 0 ? it : it.skip;
  maybe(`every stage and greedy tokens match the CPU engine${gpus > 0 ? '' : ` (skipped: ${why})`}`, async () => {
    const g = await createEngine(ckpt, { device: 'cuda', maxContext: 256 });
    try {
      expect(g.info().device).toMatch(/^cuda:\d+$/);
      const V = ckpt.vision.config.hiddenSize;
      const [fc, fg] = [await engine.encodeTiles({ data: tile, shape: [1, 3, 448, 448] }), await g.encodeTiles({ data: tile, shape: [1, 3, 448, 448] })];
      expect(relMaxErr(fg.data, fc.data)).toBeLessThanOrEqual(1e-5);
      const [pc, pg] = [await engine.project(fc), await g.project(fc)];
      expect(relMaxErr(pg.data, pc.data)).toBeLessThanOrEqual(1e-5);
      const x = rand(3 * V, 30);
      expect(relMaxErr((await g.runMlp('region', { data: x, shape: [3, V] })).data, (await engine.runMlp('region', { data: x, shape: [3, V] })).data)).toBeLessThanOrEqual(1e-5);
      const e = { data: prompt, shape: [promptLen, 64] };
      expect(relMaxErr(await g.logits(e), await engine.logits(e))).toBeLessThanOrEqual(1e-5);
      const a = await collect(engine.generate(e, { maxNewTokens: 8, stopTokenIds: [] }));
      const b = await collect(g.generate(e, { maxNewTokens: 8, stopTokenIds: [] }));
      expect(b).toEqual(a);
    } finally {
      await g.dispose();
    }
  });
  // Jetson's default (integrated GPUs) forced on this GPU: the engine, created with
  // SR3D_ZERO_COPY=1, keeps ids / logits in mapped host memory and maps its inputs.
  maybe(`with SR3D_ZERO_COPY=1 every stage and greedy tokens match the CPU engine${gpus > 0 ? '' : ` (skipped: ${why})`}`, async () => {
    const old = process.env.SR3D_ZERO_COPY;
    process.env.SR3D_ZERO_COPY = '1';
    let g: Engine | undefined;
    try {
      expect(addon.devices().devices.every((d) => d.zeroCopy === d.canMapHostMemory)).toBe(true);
      g = await createEngine(ckpt, { device: 'cuda', maxContext: 256 });
      const V = ckpt.vision.config.hiddenSize;
      const [fc, fg] = [await engine.encodeTiles({ data: tile, shape: [1, 3, 448, 448] }), await g.encodeTiles({ data: tile, shape: [1, 3, 448, 448] })];
      expect(relMaxErr(fg.data, fc.data)).toBeLessThanOrEqual(1e-5);
      const [pc, pg] = [await engine.project(fc), await g.project(fc)];
      expect(relMaxErr(pg.data, pc.data)).toBeLessThanOrEqual(1e-5);
      const x = rand(3 * V, 30);
      expect(relMaxErr((await g.runMlp('region', { data: x, shape: [3, V] })).data, (await engine.runMlp('region', { data: x, shape: [3, V] })).data)).toBeLessThanOrEqual(1e-5);
      const e = { data: prompt, shape: [promptLen, 64] };
      expect(relMaxErr(await g.logits(e), await engine.logits(e))).toBeLessThanOrEqual(1e-5);
      const a = await collect(engine.generate(e, { maxNewTokens: 8, stopTokenIds: [] }));
      const b = await collect(g.generate(e, { maxNewTokens: 8, stopTokenIds: [] }));
      expect(b).toEqual(a);
    } finally {
      await g?.dispose();
      if (old === undefined) delete process.env.SR3D_ZERO_COPY;
      else process.env.SR3D_ZERO_COPY = old;
    }
  });
});
