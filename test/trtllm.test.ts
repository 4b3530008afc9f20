// The TensorRT-LLM backend's TypeScript side (issue 14), without TensorRT-LLM: the prompt-table
// request built from a splice (ids, table rows, dtype rounding), follow-up ids, the engine
// config checks and their errors, the sampling mapping, streaming / stop / cancel through a
// stand-in native executor, and SR3D.load + ask + a chat follow-up end to end with a stand-in addon
// (a JS file the loader requires as it would sr3d_trtllm.node).
import fs from 'fs';
import os from 'os';
import path from 'path';

import { loadCheckpoint } from '../lib/checkpoint';
import type { LlmConfig } from '../lib/checkpoint_types';
import { TrtllmError, TrtllmLlm, checkEngineMatches, checkLlmOptions, checkRequestFits, openTrtllm, readTrtllmEngineConfig, trtllmSampling } from '../lib/llm/trtllm';
import type { TrtllmEngineConfig } from '../lib/llm/trtllm';
import { followUpIds, promptTableExtraIds, promptTableRequest, toEngineDtype } from '../lib/llm/trtllm_request';
import type { NativeTrtllmAddon, NativeTrtllmExecutor, NativeTrtllmRequest, NativeTrtllmResponse } from '../lib/native';
import { encodeFollowUpTurn, rewriteRegionPlaceholders, spliceEmbeddings } from '../lib/prompt';
import type { BuiltPrompt } from '../lib/prompt';
import { bf16ToFloat, f16ToFloat } from '../lib/safetensors';
import { loadTokenizer } from '../lib/tokenizer';
import { writeTinyModel } from '../lib/tinymodel';
import { collect, rng } from './helpers';

const V = 1000, D = 4;

/** A prompt: text, an image, text, a region, an image, a region (region 1 then 0), text. */
function crafted(): { prompt: BuiltPrompt; blocks: Float32Array[]; regions: Float32Array; end: number[] } {
  const r = rng(3);
  const ids = [5, 6, 900, 7, 901, 900, 902, 8];
  const prompt: BuiltPrompt = { text: '', ids, imagePositions: [2, 5], regionPositions: [4, 6], regionIndices: [1, 0] };
  const blocks = [0, 1].map(() => Float32Array.from({ length: 3 * D }, () => r() * 2 - 1));
  const regions = Float32Array.from({ length: 2 * D }, () => r() * 2 - 1);
  return { prompt, blocks, regions, end: [198] };
}

async function splice(c: ReturnType<typeof crafted>) {
  return spliceEmbeddings({
    ids: c.prompt.ids, imagePositions: c.prompt.imagePositions, imageBlocks: c.blocks, endTokenIds: c.end, tokensPerBlock: 3,
    regionPositions: c.prompt.regionPositions, regionEmbeddings: c.regions, regionIndices: c.prompt.regionIndices,
    embed: async (x) => Float32Array.from({ length: x.length * D }, (_, i) => x[Math.floor(i / D)] + (i % D) / 8), hidden: D,
  });
}

describe('promptTableRequest', () => {
  it('text ids stay, block and region rows become vocabSize + i, end tokens stay after each block', async () => {
    const c = crafted();
    const spliced = await splice(c);
    const req = promptTableRequest({ prompt: c.prompt, spliced, endTokenIds: c.end, vocabSize: V, hidden: D, dtype: 'float32' });
    expect(Array.from(req.inputIds)).toEqual([5, 6, V, V + 1, V + 2, 198, 7, V + 3, V + 4, V + 5, V + 6, 198, V + 7, 8]);
    expect(req.inputIds.length).toBe(spliced.length);
    expect(req.rows).toBe(8);
    // Every table row is the spliced row its id stands for, and the region rows are region 1 then region 0.
    for (let i = 0; i < spliced.length; i++) {
      const id = req.inputIds[i];
      if (id < V) continue;
      expect(Array.from(req.table.subarray((id - V) * D, (id - V + 1) * D))).toEqual(Array.from(spliced.embeddings.subarray(i * D, (i + 1) * D)));
    }
    expect(Array.from(req.table.subarray(3 * D, 4 * D))).toEqual(Array.from(c.regions.subarray(D, 2 * D)));
    expect(Array.from(req.table.subarray(7 * D, 8 * D))).toEqual(Array.from(c.regions.subarray(0, D)));
    expect(req.regionRows).toEqual([7, 3]);
  });

  it('converts the table to bf16 / fp16 bits row for row', async () => {
    const c = crafted();
    const spliced = await splice(c);
    const f32 = promptTableRequest({ prompt: c.prompt, spliced, endTokenIds: c.end, vocabSize: V, hidden: D, dtype: 'float32' });
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const r = promptTableRequest({ prompt: c.prompt, spliced, endTokenIds: c.end, vocabSize: V, hidden: D, dtype });
      expect(r.table).toBeInstanceOf(Uint16Array);
      expect(Array.from(r.table)).toEqual(Array.from(toEngineDtype(f32.table as Float32Array, dtype)));
      expect(Array.from(r.inputIds)).toEqual(Array.from(f32.inputIds));
    }
  });

  it('a prompt without images or regions is all text ids and an empty table', async () => {
    const prompt: BuiltPrompt = { text: '', ids: [1, 2, 3], imagePositions: [], regionPositions: [], regionIndices: [] };
    const spliced = await spliceEmbeddings({ ids: prompt.ids, imagePositions: [], imageBlocks: [], embed: async (x) => new Float32Array(x.length * D), hidden: D });
    const r = promptTableRequest({ prompt, spliced, endTokenIds: [198], vocabSize: V, hidden: D, dtype: 'bfloat16' });
    expect(Array.from(r.inputIds)).toEqual([1, 2, 3]);
    expect(r.rows).toBe(0);
    expect(r.table.length).toBe(0);
  });

  it('refuses a splice that does not match the prompt, ids past the vocabulary, non-finite rows, bad options', async () => {
    const c = crafted();
    const spliced = await splice(c);
    const base = { prompt: c.prompt, spliced, endTokenIds: c.end, vocabSize: V, hidden: D, dtype: 'float16' as const };
    // Without the block size, an image range with its end token read as one more block row is still a valid request.
    expect(promptTableRequest({ ...base, endTokenIds: [] }).rows).toBe(10);
    expect(() => promptTableRequest({ ...base, endTokenIds: [], tokensPerTile: 3 })).toThrow(/Expected image 0 at row 2 with 3 block row\(s\) before 0 end token\(s\) for spliced\.layout\.imageRanges\[0\] but received \[2, 6\)/);
    expect(() => promptTableRequest({ ...base, endTokenIds: [198, 198], tokensPerTile: 3 })).toThrow(/imageRanges\[0\]/);
    expect(promptTableRequest({ ...base, tokensPerTile: 3 }).rows).toBe(8);
    expect(() => promptTableRequest({ ...base, vocabSize: 8 })).toThrow(/token ids in \[0, 8\) for endTokenIds/);
    expect(() => promptTableRequest({ ...base, prompt: { ...c.prompt, ids: c.prompt.ids.map((x, i) => (i === 7 ? V : x)) } }))
      .toThrow(/Expected a text token id in \[0, 1000\) \(the engine's vocabulary\) for prompt\.ids\[7\] but received 1000/);
    expect(() => promptTableRequest({ ...base, prompt: { ...c.prompt, imagePositions: [2] } })).toThrow(/Expected 1 image ranges/);
    expect(() => promptTableRequest({ ...base, prompt: { ...c.prompt, ids: [...c.prompt.ids, 9] } })).toThrow(/spliced\.length/);
    expect(() => promptTableRequest({ ...base, hidden: 3 })).toThrow(/spliced\.embeddings/);
    expect(() => promptTableRequest({ ...base, dtype: 'int8' as never })).toThrow(/Expected one of 'float16', 'bfloat16', 'float32' for dtype/);
    const bad = { ...spliced, embeddings: Float32Array.from(spliced.embeddings) };
    bad.embeddings[3 * D + 2] = NaN; // row 3 is table row 1
    expect(() => promptTableRequest({ ...base, spliced: bad })).toThrow(/Expected finite values for spliced\.embeddings\[3, 2\] but received NaN/);
  });
});

describe('toEngineDtype (round to nearest even, as torch .half() / .bfloat16())', () => {
  // Every finite half value and the midpoint above it: values round trip, a midpoint goes to the
  // even neighbour, anything past it goes up. float32 holds every such midpoint exactly.
  it('fp16: all 63488 finite values, their midpoints and just past them', () => {
    const xs: number[] = [], want: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      if (((h >> 10) & 0x1f) === 0x1f) continue;
      const v = f16ToFloat(h);
      xs.push(v);
      want.push(h === 0x8000 ? 0x8000 : h);
      if ((h & 0x7fff) === 0x7bff) continue; // the largest: its midpoint is the overflow case below
      const next = f16ToFloat(h + 1), mid = (v + next) / 2;
      if (Math.fround(mid) !== mid) throw new Error(`midpoint of ${h} not a float32`);
      xs.push(mid);
      want.push((h & 1) === 0 ? h : h + 1);
      const past = mid + (next - v) / 1024;
      xs.push(Math.fround(past));
      want.push(h + 1);
    }
    const got = toEngineDtype(Float32Array.from(xs), 'float16');
    const bad = xs.map((x, i) => [x, got[i], want[i]]).filter(([, g, w]) => g !== w);
    expect(bad.slice(0, 5)).toEqual([]);
    // Overflow: 65520 (the midpoint past 65504) and above are Inf, just below is 65504; tiny values flush to ±0.
    expect(Array.from(toEngineDtype(Float32Array.of(65520, 65519.996, -70000, 2 ** -25, 2 ** -25 * 1.0001, -(2 ** -26)), 'float16')))
      .toEqual([0x7c00, 0x7bff, 0xfc00, 0x0000, 0x0001, 0x8000]);
    // Known torch values: torch.tensor(0.1).half(), (1/3).half().
    expect(Array.from(toEngineDtype(Float32Array.of(0.1, 1 / 3), 'float16'))).toEqual([0x2e66, 0x3555]);
  });

  it('bf16: every bf16 value, its midpoint and just past it', () => {
    const xs = new Float32Array(3 * 0x10000), want = new Uint16Array(3 * 0x10000);
    const u = new Uint32Array(xs.buffer);
    let n = 0;
    for (let h = 0; h < 0x10000; h++) {
      if (((h >> 7) & 0xff) === 0xff) continue;
      u[n] = h << 16; want[n++] = h;
      if ((h & 0x7fff) === 0x7f7f) continue;
      u[n] = (h << 16) | 0x8000; want[n++] = (h & 1) === 0 ? h : h + 1;
      u[n] = (h << 16) | 0x8001; want[n++] = h + 1;
    }
    const got = toEngineDtype(xs.subarray(0, n), 'bfloat16');
    let bad = -1;
    for (let i = 0; i < n && bad < 0; i++) if (got[i] !== want[i]) bad = i;
    expect(bad).toBe(-1);
    expect(bf16ToFloat(toEngineDtype(Float32Array.of(0.1), 'bfloat16')[0])).toBe(0.10009765625); // torch.tensor(0.1).bfloat16()
    expect(Array.from(toEngineDtype(Float32Array.of(1 / 3), 'bfloat16'))).toEqual([0x3eab]);
  });

  it('float32 is a copy', () => {
    const x = Float32Array.of(1.5, -2);
    const y = toEngineDtype(x, 'float32');
    expect(y).not.toBe(x);
    expect(Array.from(y)).toEqual([1.5, -2]);
  });
});

describe('follow-up turns', () => {
  it('followUpIds: the conversation, then the turn with region tokens as their table ids', async () => {
    const c = crafted();
    const req = promptTableRequest({ prompt: c.prompt, spliced: await splice(c), endTokenIds: c.end, vocabSize: V, hidden: D, dtype: 'float32' });
    const REGION = 903;
    const prev = [...req.inputIds, 40, 41, 42];
    const ids = followUpIds(req, prev, [10, REGION, 11, REGION], REGION, [0, 1]);
    expect(Array.from(ids)).toEqual([...prev, 10, V + 7, 11, V + 3]);
    expect(() => followUpIds(req, prev, [REGION], REGION, [2])).toThrow(/Expected a region named in the first question .* for regionIndices\[0\] but received 2/);
    expect(() => followUpIds(req, prev, [REGION], REGION, [])).toThrow(/regionIndices/);
    expect(() => followUpIds(req, prev, [V], REGION, [])).toThrow(/turnIds\[0\]/);
  });

  it('promptTableExtraIds: 0 on text, the table key on table ids', () => {
    expect(Array.from(promptTableExtraIds(Int32Array.of(1, V, V + 1, 7), V, 9))).toEqual([0, 9, 9, 0]);
    expect(() => promptTableExtraIds(Int32Array.of(1), V, 0)).toThrow(/tableKey/);
  });
});

// ---- the engine folder ---------------------------------------------------------------------

let root: string;
beforeAll(() => { root = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-trtllm-')); });
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

interface EngineCfg { vocab?: number; hidden?: number; dtype?: string; table?: number; maxInput?: number; maxSeq?: number; world?: number; arch?: string }
function engineDir(name: string, o: EngineCfg = {}, files: { config?: boolean; engine?: boolean } = {}): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  if (files.config !== false) {
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
      version: '0.12.0',
      pretrained_config: {
        architecture: o.arch ?? 'Qwen2ForCausalLM', dtype: o.dtype ?? 'bfloat16', vocab_size: o.vocab ?? V, hidden_size: o.hidden ?? D,
        mapping: { world_size: o.world ?? 1, tp_size: o.world ?? 1, pp_size: 1 },
      },
      build_config: { max_input_len: o.maxInput ?? 64, max_seq_len: o.maxSeq ?? 96, max_batch_size: 1, max_prompt_embedding_table_size: o.table ?? 16 },
    }));
  }
  if (files.engine !== false) fs.writeFileSync(path.join(dir, 'rank0.engine'), 'not a real engine');
  return dir;
}

const llmConfig = (o: Partial<LlmConfig> = {}) => ({ vocabSize: V, hiddenSize: D, ...o }) as LlmConfig;

describe('engine config.json', () => {
  it('reads what sr3d needs', () => {
    const cfg = readTrtllmEngineConfig(engineDir('ok'));
    expect(cfg).toMatchObject({ architecture: 'Qwen2ForCausalLM', dtype: 'bfloat16', vocabSize: V, hiddenSize: D, maxInputLen: 64, maxSeqLen: 96, maxPromptTableRows: 16, maxBatchSize: 1, worldSize: 1, version: '0.12.0' });
  });

  it('a missing, unreadable or incomplete engine folder is SR3D_TRTLLM_ENGINE_DIR naming the fix', () => {
    const cases: [string, RegExp][] = [
      [path.join(root, 'nope'), /cannot be read \(ENOENT\)/],
      [path.join(engineDir('file'), 'rank0.engine'), /is a file/],
      [engineDir('noconfig', {}, { config: false }), /config\.json in llm\.engineDir but .* does not exist/],
      [engineDir('noengine', {}, { engine: false }), /Expected rank0\.engine beside/],
      [engineDir('dtype', { dtype: 'int8' }), /Expected pretrained_config\.dtype 'float16', 'bfloat16' or 'float32' .* but received "int8"/],
    ];
    for (const [dir, re] of cases) {
      const e = (() => { try { readTrtllmEngineConfig(dir); } catch (x) { return x; } })() as TrtllmError;
      expect(e).toBeInstanceOf(TrtllmError);
      expect([e.code, e.message]).toEqual(['SR3D_TRTLLM_ENGINE_DIR', expect.stringMatching(re)]);
      if (!/dtype/.test(String(re))) expect(e.message).toMatch(/Fix: pass the folder `trtllm-build --output_dir` wrote/);
    }
    fs.writeFileSync(path.join(engineDir('badjson', {}, { config: false }), 'config.json'), '{');
    expect(() => readTrtllmEngineConfig(path.join(root, 'badjson'))).toThrow(/cannot be read/);
    fs.writeFileSync(path.join(engineDir('noint'), 'config.json'), JSON.stringify({ pretrained_config: { dtype: 'float16', vocab_size: 'x' }, build_config: {} }));
    expect(() => readTrtllmEngineConfig(path.join(root, 'noint'))).toThrow(/Expected an integer pretrained_config\.vocab_size .* but received "x"/);
    expect(() => readTrtllmEngineConfig('')).toThrow(/llm\.engineDir/);
  });

  it('an engine not built for the checkpoint is SR3D_TRTLLM_MISMATCH: vocab, hidden, architecture, ranks, no prompt tables', () => {
    const cases: [EngineCfg, RegExp][] = [
      [{ vocab: V + 64 }, /vocab_size 1000\) but the engine has 1064/],
      [{ hidden: 8 }, /hidden size 4 but the engine has 8/],
      [{ arch: 'LlamaForCausalLM' }, /architecture is LlamaForCausalLM/],
      [{ world: 2 }, /world_size 2/],
      [{ table: 0 }, /max_prompt_embedding_table_size > 0, alias --max_multimodal_len/],
    ];
    cases.forEach(([o, re], i) => {
      const cfg = readTrtllmEngineConfig(engineDir(`mm${i}`, o));
      const e = (() => { try { checkEngineMatches(cfg, llmConfig()); } catch (x) { return x; } })() as TrtllmError;
      expect([e?.code, e?.message]).toEqual(['SR3D_TRTLLM_MISMATCH', expect.stringMatching(re)]);
      expect(e.message).toMatch(/sr3d export trtllm/);
    });
    expect(() => checkEngineMatches(readTrtllmEngineConfig(engineDir('ok')), llmConfig())).not.toThrow();
  });

  it('a request too big for the engine names the build option to raise', () => {
    const cfg: TrtllmEngineConfig = readTrtllmEngineConfig(engineDir('small', { table: 4, maxInput: 10, maxSeq: 12 }));
    const ids = (n: number) => new Int32Array(n);
    expect(() => checkRequestFits(cfg, { rows: 5, inputIds: ids(8) }, 1)).toThrow(/at most 4 prompt-table rows .* has 5 .*--max_prompt_embedding_table_size/);
    expect(() => checkRequestFits(cfg, { rows: 4, inputIds: ids(11) }, 1)).toThrow(/at most 10 positions .* has 11.*--max_input_len/);
    expect(() => checkRequestFits(cfg, { rows: 4, inputIds: ids(10) }, 3)).toThrow(/max_seq_len 12 .* needs 10 \+ 3.*smaller maxNewTokens/);
    expect(() => checkRequestFits(cfg, { rows: 4, inputIds: ids(10) }, 2)).not.toThrow();
  });
});

describe('sampling options', () => {
  const d = { vocabSize: V, eos: [151, 7], defaultMaxNewTokens: 9 };
  it('greedy is top-1 without temperature or seed; the stop ids are stop words, the first the end id', () => {
    expect(trtllmSampling({}, d)).toEqual({ maxNewTokens: 9, temperature: null, topK: 1, topP: null, seed: null, endId: 151, stopIds: Int32Array.of(151, 7) });
  });
  it('sampling maps temperature, topK (0 = unset), topP (1 = unset) and the seed', () => {
    expect(trtllmSampling({ temperature: 0.7, topK: 20, topP: 0.8, seed: 5, maxNewTokens: 3, stopTokenIds: [9, 9] }, d))
      .toEqual({ maxNewTokens: 3, temperature: 0.7, topK: 20, topP: 0.8, seed: 5, endId: 9, stopIds: Int32Array.of(9) });
    const s = trtllmSampling({ temperature: 1 }, d);
    expect([s.topK, s.topP, Number.isSafeInteger(s.seed)]).toEqual([null, null, true]);
    expect(trtllmSampling({ stopTokenIds: [] }, d)).toMatchObject({ endId: -1, stopIds: new Int32Array(0) });
  });
  it('the same option errors as sr3d\'s engine', () => {
    expect(() => trtllmSampling({ topP: 0 }, d)).toThrow(/Expected a number in \(0, 1\] for topP but received 0/);
    expect(() => trtllmSampling({ topK: -1 }, d)).toThrow(/for topK/);
    expect(() => trtllmSampling({ seed: 1.5 }, d)).toThrow(/for seed/);
    expect(() => trtllmSampling({ temperature: -1 }, d)).toThrow(/temperature/);
    expect(() => trtllmSampling({ maxNewTokens: -1 }, d)).toThrow(/maxNewTokens/);
    expect(() => trtllmSampling({ stopTokenIds: [V] }, d)).toThrow(/Expected a token id in \[0, 1000\) for stopTokenIds\[0\]/);
  });
  it('the llm option is checked before anything loads', () => {
    expect(checkLlmOptions(undefined)).toBeNull();
    expect(checkLlmOptions({ backend: 'sr3d' })).toBeNull();
    expect(() => checkLlmOptions({ backend: 'vllm' })).toThrow(/Expected 'tensorrt-llm' or 'sr3d' for options\.llm\.backend but received 'vllm'/);
    expect(() => checkLlmOptions({ backend: 'tensorrt-llm' })).toThrow(/options\.llm\.engineDir/);
    expect(() => checkLlmOptions({ backend: 'tensorrt-llm', engineDir: 'x', blockReuse: 1 })).toThrow(/options\.llm\.blockReuse/);
    expect(() => checkLlmOptions({ backend: 'tensorrt-llm', engineDir: 'x', freeGpuMemoryFraction: 2 })).toThrow(/options\.llm\.freeGpuMemoryFraction/);
  });
});

// ---- streaming through a stand-in executor ----------------------------------------------------

/** A stand-in addon: records requests, answers each with the scripted steps (tokens per response). */
function fakeAddon(api: string, script: (req: NativeTrtllmRequest) => { tokens: number[]; final?: boolean; error?: string; finishReason?: number }[]) {
  const log = { requests: [] as NativeTrtllmRequest[], cancelled: [] as number[], shutdown: 0, created: [] as unknown[] };
  const addon: NativeTrtllmAddon = {
    api,
    version: () => 'fake',
    async createExecutor(b) {
      log.created.push({ engineDir: b.engineDir, enableBlockReuse: b.enableBlockReuse, freeGpuMemoryFraction: b.freeGpuMemoryFraction });
      let next = 1;
      const ex: NativeTrtllmExecutor = {
        enqueue(req) {
          const id = next++;
          log.requests.push(req);
          const steps = script(req);
          // Responses arrive later on the JS thread, as from the native response thread.
          steps.forEach((s, i) => setTimeout(() => {
            if (log.cancelled.includes(id)) return;
            const r: NativeTrtllmResponse = { requestId: id, tokens: Int32Array.from(s.tokens), isFinal: s.final ?? i === steps.length - 1, error: s.error ?? null, finishReason: s.finishReason ?? -1 };
            b.onResponse(r);
          }, 1 + i));
          return id;
        },
        cancel(id) { log.cancelled.push(id); },
        async shutdown() { log.shutdown++; },
      };
      return ex;
    },
  };
  return { addon, log };
}

describe('TrtllmLlm with a stand-in executor', () => {
  let ckpt: Awaited<ReturnType<typeof loadCheckpoint>>, tok: Awaited<ReturnType<typeof loadTokenizer>>, tinyDir: string, tinyEngine: string;
  beforeAll(async () => {
    tinyDir = path.join(root, 'tiny');
    await writeTinyModel(tinyDir, { seed: 3 });
    ckpt = await loadCheckpoint(tinyDir);
    tok = await loadTokenizer(ckpt.llm.config.tokenizerDir, { regionToken: ckpt.regionExtractor?.config.regionToken, generationEosTokenIds: ckpt.llm.config.eosTokenIds, embeddingRows: ckpt.llm.config.vocabSize });
    const lc = ckpt.llm.config;
    tinyEngine = engineDir('tiny-engine', { vocab: lc.vocabSize, hidden: lc.hiddenSize, table: 2000, maxInput: 4096, maxSeq: 4200 });
  }, 120000);

  async function open(api: string, script: Parameters<typeof fakeAddon>[1], opts: { blockReuse?: boolean } = {}) {
    const f = fakeAddon(api, script);
    const llm = await openTrtllm(ckpt, tok, { backend: 'tensorrt-llm', engineDir: tinyEngine, ...opts }, f.addon);
    return { llm, log: f.log };
  }
  const req = (llm: TrtllmLlm) => {
    const t = llm.request({
      prompt: { text: '', ids: [1, 2, 3], imagePositions: [], regionPositions: [], regionIndices: [] },
      spliced: { embeddings: new Float32Array(3 * ckpt.llm.config.hiddenSize), length: 3, layout: { imageRanges: [], regionPositions: [] } },
    });
    return t;
  };
  const stop = () => ckpt.llm.config.eosTokenIds[0];

  it('streams tokens across responses and ends at a stop token without yielding it', async () => {
    const { llm, log } = await open('main', () => [{ tokens: [10, 11] }, { tokens: [12, stop()] }]);
    const r = req(llm);
    const s = llm.generate(r, r.inputIds, { maxNewTokens: 8 });
    expect(log.requests).toHaveLength(0); // nothing runs before the first next()
    expect(await collect(s)).toEqual([10, 11, 12]);
    expect(s.stopReason).toBe('stop');
    expect(log.requests[0]).toMatchObject({ maxNewTokens: 8, topK: 1, temperature: null, endId: stop(), tableRows: 0, tableDtype: 'bfloat16' });
    expect(log.created).toEqual([{ engineDir: path.resolve(tinyEngine), enableBlockReuse: true, freeGpuMemoryFraction: null }]);
    expect(Array.from(log.requests[0].extraIds!)).toEqual([0, 0, 0]);
    await llm.dispose();
    await llm.dispose();
    expect(log.shutdown).toBe(1);
  });

  it('a stop token before the request is final cancels it; maxNewTokens ends with length', async () => {
    const { llm, log } = await open('main', () => [{ tokens: [10, stop(), 5], final: false }]);
    const r = req(llm);
    const s = llm.generate(r, r.inputIds, {});
    expect(await collect(s)).toEqual([10]);
    expect([s.stopReason, log.cancelled]).toEqual(['stop', [1]]);
    const { llm: l2 } = await open('main', () => [{ tokens: [1, 2, 3, 4] }]);
    const s3 = l2.generate(r, r.inputIds, { maxNewTokens: 2 });
    expect(await collect(s3)).toEqual([1, 2]);
    expect(s3.stopReason).toBe('length');
  });

  it('a final response without the stop token ends as TensorRT-LLM\'s finish reason says (after v0.12)', async () => {
    const cases: [number, string, number | null][] = [[1, 'stop', stop()], [2, 'stop', null], [5, 'aborted', null], [3, 'length', null], [-1, 'length', null]];
    for (const [fr, reason, token] of cases) {
      const { llm } = await open('main', () => [{ tokens: [7], finishReason: fr }]);
      const r = req(llm);
      const s = llm.generate(r, r.inputIds, { maxNewTokens: 5 });
      expect([fr, await collect(s), s.stopReason, s.stopToken]).toEqual([fr, [7], reason, token]);
    }
  });

  it('abort cancels the request and ends with aborted; breaking out cancels too', async () => {
    // One response that is never final: the request is still running when the consumer stops.
    const { llm, log } = await open('main', () => [{ tokens: [1], final: false }]);
    const r = req(llm);
    const ac = new AbortController();
    const s = llm.generate(r, r.inputIds, { signal: ac.signal });
    const got: number[] = [];
    for await (const t of s) {
      got.push(t);
      ac.abort();
    }
    expect([got, s.stopReason, log.cancelled]).toEqual([[1], 'aborted', [1]]);
    const s2 = llm.generate(r, r.inputIds, {});
    for await (const t of s2) { void t; break; }
    expect([s2.stopReason, log.cancelled]).toEqual([null, [1, 2]]);
    const pre = new AbortController();
    pre.abort();
    const s3 = llm.generate(r, r.inputIds, { signal: pre.signal });
    expect([await collect(s3), s3.stopReason, log.requests.length]).toEqual([[], 'aborted', 2]);
  });

  it('an executor error rejects with SR3D_TRTLLM_REQUEST; v0.12 sends no extra ids and turns block reuse off', async () => {
    const { llm } = await open('main', () => [{ tokens: [], error: 'boom' }]);
    const r = req(llm);
    await expect(collect(llm.generate(r, r.inputIds, {}))).rejects.toMatchObject({ code: 'SR3D_TRTLLM_REQUEST', message: expect.stringMatching(/boom/) });
    const { llm: old, log } = await open('v0.12', () => [{ tokens: [4] }]);
    await collect(old.generate(r, r.inputIds, {}));
    expect([log.requests[0].extraIds, log.created]).toEqual([null, [expect.objectContaining({ enableBlockReuse: false })]]);
    const { log: off } = await open('main', () => [], { blockReuse: false });
    expect(off.created).toEqual([expect.objectContaining({ enableBlockReuse: false })]);
  });

  it('enqueue errors: TensorRT-LLM\'s become TrtllmError, the addon\'s argument errors stay InvalidArgumentError', async () => {
    const { llm } = await open('main', () => []);
    const ex = (llm as unknown as { executor: { enqueue: (r: NativeTrtllmRequest) => number } }).executor;
    const r = req(llm);
    ex.enqueue = () => { throw Object.assign(new Error('TensorRT-LLM enqueueRequest failed: no slot'), { code: 'SR3D_TRTLLM_REQUEST' }); };
    await expect(collect(llm.generate(r, r.inputIds, {}))).rejects.toMatchObject({ name: 'TrtllmError', code: 'SR3D_TRTLLM_REQUEST', message: expect.stringMatching(/no slot/) });
    ex.enqueue = () => { throw Object.assign(new Error('Expected an Int32Array for inputIds but received a Float32Array'), { code: 'SR3D_INVALID_ARGUMENT' }); };
    await expect(collect(llm.generate(r, r.inputIds, {}))).rejects.toMatchObject({ name: 'InvalidArgumentError', code: 'SR3D_INVALID_ARGUMENT' });
  });

  it('a request too big for the engine fails before it is sent', async () => {
    const { llm, log } = await open('main', () => [{ tokens: [1] }]);
    const r = req(llm);
    expect(() => llm.generate(r, new Int32Array(4097), {})).toThrow(/max_input_len/);
    expect(log.requests).toHaveLength(0);
  });

  it('SR3D.load: the addon not built is SR3D_TRTLLM_NOT_BUILT with the build command; a mismatch fails before loading it', async () => {
    const prev = process.env.SR3D_TRTLLM_ADDON;
    process.env.SR3D_TRTLLM_ADDON = path.join(root, 'missing', 'sr3d_trtllm.node');
    jest.resetModules();
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fresh = require('../lib') as typeof import('../lib');
      const e = await fresh.SR3D.load(tinyDir, { device: 'cpu', onNotice: () => undefined, llm: { backend: 'tensorrt-llm', engineDir: tinyEngine } }).catch((x) => x);
      expect([e.code, e.name]).toEqual(['SR3D_TRTLLM_NOT_BUILT', 'TrtllmError']);
      expect(e.message).toMatch(/SR3D_TRTLLM_ROOT=.* npx sr3d build/);
      const mm = await fresh.SR3D.load(tinyDir, { device: 'cpu', onNotice: () => undefined, llm: { backend: 'tensorrt-llm', engineDir: engineDir('mm-vocab', { vocab: 5 }) } }).catch((x) => x);
      expect([mm.code, mm.message]).toEqual(['SR3D_TRTLLM_MISMATCH', expect.stringMatching(/the engine has 5/)]);
    } finally {
      if (prev === undefined) delete process.env.SR3D_TRTLLM_ADDON; else process.env.SR3D_TRTLLM_ADDON = prev;
      jest.resetModules();
    }
  });

  it('SR3D.load + ask and chat end to end: the stand-in executor receives the prepared request\'s ids and bf16 table; a follow-up resends the conversation with the same table', async () => {
    // A JS file standing in for sr3d_trtllm.node: it answers every request with tokens 5, 6, then the stop id.
    const file = path.join(root, 'fake_trtllm.js');
    fs.writeFileSync(file, `
      exports.api = 'main';
      exports.version = () => 'fake';
      exports.requests = [];
      exports.createExecutor = async (b) => ({
        enqueue(r) { exports.requests.push(r); setTimeout(() => b.onResponse({ requestId: 1, tokens: Int32Array.of(5, 6, ${stop()}), isFinal: true, error: null, finishReason: 1 }), 1); return 1; },
        cancel() {}, async shutdown() { exports.shutdown = true; },
      });`);
    const prev = process.env.SR3D_TRTLLM_ADDON;
    process.env.SR3D_TRTLLM_ADDON = file;
    jest.resetModules();
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fresh = require('../lib') as typeof import('../lib');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fake = require(file) as { requests: NativeTrtllmRequest[]; shutdown?: boolean };
      const model = await fresh.SR3D.load(tinyDir, { device: 'cpu', onNotice: () => undefined, llm: { backend: 'tensorrt-llm', engineDir: tinyEngine } });
      const img = { data: new Uint8Array(40 * 56 * 3).map((_, i) => (i * 37) % 256), shape: [40, 56, 3] };
      const input = { image: img, question: 'What is this?' };
      const prep = await model.prepare(input);
      const r = await model.ask({ ...input, maxNewTokens: 4 });
      expect([r.tokens, r.stopReason]).toEqual([[5, 6], 'stop']);
      const sent = fake.requests[0];
      const lc = ckpt.llm.config;
      const want = promptTableRequest({ prompt: prep.prompt, spliced: prep.spliced, endTokenIds: ckpt.config.imageEndTokens ? tok.encode(ckpt.config.imageEndTokens) : [], vocabSize: lc.vocabSize, hidden: lc.hiddenSize, dtype: 'bfloat16' });
      expect(Array.from(sent.inputIds)).toEqual(Array.from(want.inputIds));
      expect(Buffer.from(sent.table.buffer, sent.table.byteOffset, sent.table.byteLength).equals(Buffer.from(want.table.buffer))).toBe(true);
      expect(sent.tableRows).toBe(prep.details.images * ckpt.projector.config.tokensPerTile);
      expect(sent.inputIds.filter((id) => id >= lc.vocabSize).length).toBe(sent.tableRows);
      // A chat: the follow-up is a new request with the whole conversation and the same table.
      const chat = model.chat({ image: img });
      const first = await chat.ask('What is this?', { maxNewTokens: 4 });
      const second = await chat.ask('And the colour?', { maxNewTokens: 4 });
      expect([first.tokens, second.tokens, second.details.cached]).toEqual([[5, 6], [5, 6], true]);
      const [, r1, r2] = fake.requests;
      const imEnd = tok.tokenToId('<|im_end|>');
      const { pieces } = rewriteRegionPlaceholders('And the colour?', 0, ckpt.regionExtractor?.config.regionToken ?? '<mask>', { requireAll: false });
      const turn = stop() === imEnd ? [imEnd, ...encodeFollowUpTurn(tok, pieces, false)] : encodeFollowUpTurn(tok, pieces, true);
      expect(Array.from(r2.inputIds)).toEqual([...Array.from(r1.inputIds), 5, 6, ...turn]);
      expect(second.details.promptLength).toBe(r2.inputIds.length);
      expect(Buffer.from(r2.table.buffer, r2.table.byteOffset, r2.table.byteLength).equals(Buffer.from(r1.table.buffer, r1.table.byteOffset, r1.table.byteLength))).toBe(true);
      // Block reuse keys: the same key on the table positions of both turns, 0 on text.
      const key = r1.extraIds![r1.inputIds.findIndex((id) => id >= lc.vocabSize)];
      expect(key).toBeGreaterThan(0);
      expect(Array.from(r2.extraIds!).every((k, i) => k === (r2.inputIds[i] >= lc.vocabSize ? key : 0))).toBe(true);
      await model.dispose();
      expect(fake.shutdown).toBe(true);
    } finally {
      if (prev === undefined) delete process.env.SR3D_TRTLLM_ADDON; else process.env.SR3D_TRTLLM_ADDON = prev;
      jest.resetModules();
    }
  }, 120000);
});
