#!/usr/bin/env node
// Engine benchmarks (issue 4): prefill and decode tokens/s of the Qwen2 decoder, SigLIP and
// projector tiles/s, through the public API (createEngine over a checkpoint on disk).
//   npm run bench:engine                     a table
//   npm run -s bench:engine -- --json        one JSON array of rows
//     { op, model, device, threads, runs, medianMs, rate, unit, bytesPerToken, gbps, peakGbps, pctBound, inCache }
//     (decode rows of sr3d also residentBytes: engine.info().weightBytes)
//   --quick       fewer runs (a smoke check, noisier numbers)
//   --skip-0.5b   only the tiny model (no ~1.2 GB checkpoint written or loaded)
//   --peer        llama.cpp rows next to sr3d's: the same checkpoints written as GGUF (bf16, f16,
//                 q8_0, q4_0; bench/gguf.js), timed through node-llama-cpp (bench/peer.js, installed
//                 on demand into bench/.peer/) with the same prompts and thread count
//   --peer-threads N  llama.cpp's thread count (default: sr3d's); ggml's workers spin at their
//                 barriers, so on oversubscribed cores it can lose far more than sr3d's pool
//   --gpu-gbps N  the GPU's DRAM bandwidth in GB/s, for the CUDA rows' % of bound (the addon has
//                 no device-side triad; without it those rows leave % of bound empty)
//
// Models: the tiny random checkpoint (writeTinyModel) and a 0.5B-class Qwen2 LLM (hidden 896,
// 24 layers, 14 heads, 2 KV heads, MLP 4864, vocab 151936, random bf16) written once into
// os.tmpdir()/sr3d-bench-qwen2-0.5b and reused; both are loaded with loadCheckpoint, like a
// real checkpoint.
//
// int8 / int4 rows: the 0.5B checkpoint's LLM projections, its lm_head AND its embedding table
// quantized by `sr3d quantize --lm-head --embeddings` (round-to-nearest; int8 GPTQ per-channel,
// int4 AWQ gemm group 128; the model column says "+ lm_head + embeddings"), CPU engine only (the
// CUDA engine's int kernels are timed by bench/gpu_full.sh on a lent GPU); their bytes/token count the quantized tensors
// at their stored size (q + f16 scales + packed zeros), within a few % of what the engine keeps
// resident. The untied lm_head (151936 x 896) is 28% of the bf16 model's bytes per token: left
// bf16 it would cap int4 near 2.1x. The embedding table (as large, one row read per token) only
// weighs on the resident bytes: bf16, it kept int4's at 0.43x of bf16's.
// Each model runs twice: exact f32 activations, then llama.cpp's precision on the CPU engine:
// the quantized ones with `activations: 'int8'` (", int8 acts": per-32-input int8 blocks, Q8_0's
// activations, the integer dot-product kernels), the bf16 one with `activations: 'bf16'`
// (", bf16 acts": activations rounded to bf16, vdpbf16ps).
// Decode bound: a decode step reads every LLM weight once — all decoder matrices, the norms and
// lm_head — plus one row of the embedding table (bytes/token, from the checkpoint's WeightSet
// infos; the KV cache read, under 0.5% here, is left out). The fastest decode the memory system
// allows is bandwidth ÷ bytes/token, so % of bound = (bytes/token × tokens/s) ÷ bandwidth, with
// the CPU bandwidth measured in this run by the STREAM-like triad of bench/run.js.
// Timings: prefill rows time engine.logits(emb) (reset + prefill + last logits) on embeddings
// of random ids; decode rows time generate() from its first to its last token (greedy, no stop
// tokens), so the prefill is not counted. Medians after warm-up.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { performance } = require('perf_hooks');
const root = path.resolve(__dirname, '..');
require('./common').requireFreshDist(root);
const sr3d = require(root);
const { native } = require(path.join(root, 'dist', 'native.js'));
const common = require('./common');
const { peerRows, PEER_VERSION } = require('./peer');

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const quick = argv.includes('--quick');
const skip05 = argv.includes('--skip-0.5b');
const peer = argv.includes('--peer');
const peerThreadsArg = (() => {
  const i = argv.indexOf('--peer-threads');
  if (i < 0) return null;
  const v = Number(argv[i + 1]);
  if (!(Number.isInteger(v) && v > 0)) {
    console.error(`Expected a positive integer for --peer-threads but received ${argv[i + 1]}: pass e.g. --peer-threads 1`);
    process.exit(2);
  }
  return v;
})();
const gpuGbps = (() => {
  const i = argv.indexOf('--gpu-gbps');
  if (i < 0) return null;
  const v = Number(argv[i + 1]);
  if (!(v > 0)) {
    console.error(`Expected a bandwidth in GB/s for --gpu-gbps but received ${argv[i + 1]}: pass e.g. --gpu-gbps 3350`);
    process.exit(2);
  }
  return v;
})();
const addon = native();
const threads = addon.buildInfo().cpuThreads;
const peerThreads = peerThreadsArg ?? threads;
// A decode whose weights fit the last-level cache (LLC) measures the cache, not DRAM (labelled).
const { LLC, median, rand, randIds } = common;
const timeIt = (fn, runs, warm = 1) => common.timeIt(fn, runs, warm);
const triadPeak = () => common.triadPeak(addon, quick ? 5 : 15);
const log = (msg) => { if (!json) process.stderr.write(msg + '\n'); };





/**
 * Bytes one decode step reads from the weights: every LLM tensor once (decoder matrices and
 * biases, the norms, lm_head — the embedding table when tied) plus one embedding row.
 */
function decodeBytesPerToken(ckpt) {
  const w = ckpt.llm.weights, lc = ckpt.llm.config;
  const embed = 'model.embed_tokens.weight';
  let bytes = 0;
  for (const k of w.keys()) {
    if (k === embed || (lc.tieWordEmbeddings && k === 'lm_head.weight')) continue;
    bytes += w.info(k).bytes;
  }
  const e = w.info(embed);
  if (lc.tieWordEmbeddings) bytes += e.bytes;
  return bytes + Math.round(e.bytes / e.shape[0]); // a quantized table's row: its share of the stored bytes
}

/** The 0.5B-class checkpoint, written once (~1.2 GB) into the temp dir and reused. */
async function qwen05Dir() {
  const dir = path.join(os.tmpdir(), 'sr3d-bench-qwen2-0.5b');
  const marker = path.join(dir, 'sr3d-bench.json');
  const want = { preset: 'qwen2-0.5b', seed: 0, dtype: 'bf16', sr3d: sr3d.version };
  try {
    const have = JSON.parse(fs.readFileSync(marker, 'utf8'));
    if (Object.keys(want).every((k) => have[k] === want[k])) return dir;
  } catch { /* absent or unreadable: write it */ }
  const tmp = `${dir}.tmp-${process.pid}`;
  log(`writing the 0.5B-class checkpoint into ${dir} (once, ~1.2 GB)...`);
  const s = performance.now();
  try {
    await sr3d.writeTinyModel(tmp, { preset: 'qwen2-0.5b', seed: want.seed, dtype: want.dtype });
    fs.writeFileSync(path.join(tmp, 'sr3d-bench.json'), JSON.stringify(want) + '\n');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  log(`  written in ${((performance.now() - s) / 1e3).toFixed(1)} s`);
  return dir;
}

/** `sr3d quantize --lm-head --embeddings` of a checkpoint (round-to-nearest; int4 AWQ gemm / int8 GPTQ), written once beside it. */
async function quantizedDir(src, bits, group) {
  const dir = `${src}-int${bits}-head-emb`;
  const marker = path.join(dir, 'sr3d-bench.json');
  const want = { src, bits, group: bits === 4 ? group : -1, lmHead: true, embeddings: true, sr3d: sr3d.version };
  try {
    const have = JSON.parse(fs.readFileSync(marker, 'utf8'));
    if (Object.keys(want).every((k) => have[k] === want[k])) return dir;
  } catch { /* absent or unreadable: write it */ }
  log(`quantizing ${src} to int${bits} into ${dir} (once)...`);
  fs.rmSync(dir, { recursive: true, force: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    await sr3d.quantizeCheckpoint(src, tmp, { bits, group: want.group, lmHead: true, embeddings: true });
    fs.writeFileSync(path.join(tmp, 'sr3d-bench.json'), JSON.stringify(want) + '\n');
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return dir;
}

(async () => {
  const load = os.loadavg()[0]; // other processes on the cores skew every row: printed with the table
  const peak = triadPeak();
  const rows = [];
  const cuda = addon.variant === 'cuda' && sr3d.devices().length > 0;
  const deviceList = cuda ? ['cpu', 'cuda'] : ['cpu'];
  // model names the precision of the weights timed ('qwen2-0.5b bf16'); device 'llama.cpp-cpu'
  // marks the peer's rows (same CPU, same triad bound).
  const row = (op, model, device, runs, ms, rate, unit, bytesPerToken = null, rowThreads = null) => {
    const onCpu = device !== 'cuda';
    const bw = onCpu ? peak : gpuGbps;
    const gbps = bytesPerToken ? (bytesPerToken * rate) / 1e9 : null;
    rows.push({
      op, model, device, threads: onCpu ? rowThreads ?? threads : 0, runs,
      medianMs: +ms.toFixed(3), rate: +rate.toFixed(2), unit,
      bytesPerToken, gbps: gbps === null ? null : +gbps.toFixed(2), peakGbps: bw === null ? null : +bw.toFixed(2),
      pctBound: gbps === null || bw === null ? null : +((100 * gbps) / bw).toFixed(1),
      inCache: bytesPerToken === null ? null : onCpu && bytesPerToken < LLC,
    });
    const r = rows[rows.length - 1];
    log(`  ${op} ${model} ${device}: ${r.medianMs} ms, ${r.rate} ${unit}${r.pctBound !== null ? `, ${r.pctBound}% of bound` : ''}`);
  };

  /** Prefill and decode rows of one checkpoint on one device. */
  // 'qwen2-0.5b bf16': the precision the rows timed (int8 / int4 models name theirs).
  const label = (model, ckpt) => (/\bint\d\b/.test(model) ? model : `${model} ${ckpt.llm.weights.info('model.norm.weight').dtype}`);
  async function llmRows(engine, ckpt, model, device, cfg) {
    const vocab = ckpt.llm.config.vocabSize;
    for (const [L, runs] of cfg.prefill) {
      const emb = await engine.embedTokens(randIds(L, vocab, 7 + L));
      const ms = await timeIt(() => engine.logits(emb), runs);
      row(`prefill ${L}`, label(model, ckpt), device, runs, ms, L / (ms / 1e3), 'tokens/s');
    }
    // Decode: a short prompt, then `tokens` greedy steps; a run's rate is (n-1) tokens over the
    // time from its first to its last token.
    const prompt = await engine.embedTokens(randIds(32, vocab, 3));
    const bytesPerToken = decodeBytesPerToken(ckpt);
    const perToken = [];
    for (let r = 0; r < cfg.decodeRuns + 1; r++) {
      const stamps = [];
      for await (const _id of engine.generate(prompt, { maxNewTokens: cfg.decodeTokens, stopTokenIds: [] })) stamps.push(performance.now());
      if (stamps.length < 2) throw new Error(`generate() yielded ${stamps.length} tokens where ${cfg.decodeTokens} were asked`);
      if (r > 0) perToken.push((stamps[stamps.length - 1] - stamps[0]) / (stamps.length - 1)); // run 0 is the warm-up
    }
    const ms = median(perToken);
    row(`decode ${cfg.decodeTokens}`, label(model, ckpt), device, cfg.decodeRuns, ms, 1e3 / ms, 'tokens/s', bytesPerToken);
    // What the engine keeps resident for its weights (engine.info().weightBytes: all of them,
    // the LLM's as stored for int4/int8 (q + f32 scales + u8 zeros) and float tensors as given).
    rows[rows.length - 1].residentBytes = engine.info().weightBytes;
  }

  // ---- tiny model ----
  const tinyCfg = { prefill: [[128, quick ? 3 : 11], [1024, quick ? 2 : 5]], decodeTokens: 64, decodeRuns: quick ? 2 : 5 };
  const tinyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-bench-tiny-'));
  try {
    await sr3d.writeTinyModel(tinyDir);
    const ckpt = await sr3d.loadCheckpoint(tinyDir);
    const S = ckpt.vision.config.imageSize;
    const pixels = rand(4 * 3 * S * S, 11, -1, 1); // normalized pixels in [-1, 1]
    for (const device of deviceList) {
      log(`tiny model, ${device}`);
      const engine = await sr3d.createEngine(ckpt, { device, maxContext: 1024 });
      try {
        const tileRuns = quick ? 3 : 11;
        const input = { data: pixels, shape: [4, 3, S, S] };
        const ms = await timeIt(() => engine.encodeTiles(input), tileRuns);
        row('siglip 4 tiles', 'tiny', device, tileRuns, ms, 4 / (ms / 1e3), 'tiles/s');
        const feats = await engine.encodeTiles(input);
        const pms = await timeIt(() => engine.project(feats), tileRuns);
        row('projector 4 tiles', 'tiny', device, tileRuns, pms, 4 / (pms / 1e3), 'tiles/s');
        await llmRows(engine, ckpt, 'tiny', device, tinyCfg);
      } finally {
        await engine.dispose();
      }
    }
    if (peer && skip05) {
      await peerRows({ ckptDir: tinyDir, key: null, model: 'tiny', vocab: ckpt.llm.config.vocabSize, threads: peerThreads, cfg: tinyCfg, row, log, types: ['bf16'] });
    }
  } finally {
    fs.rmSync(tinyDir, { recursive: true, force: true });
  }

  // ---- 0.5B-class Qwen2 (bf16, then its LLM projections quantized: int8 and int4, CPU engine only) ----
  if (!skip05) {
    const dir05 = await qwen05Dir();
    const cfg05 = { prefill: [[128, quick ? 1 : 5], [512, quick ? 1 : 3]], decodeTokens: 32, decodeRuns: quick ? 1 : 3 };
    for (const bits of [0, 8, 4]) {
      const ckpt = await sr3d.loadCheckpoint(bits ? await quantizedDir(dir05, bits, 128) : dir05);
      // Each model twice: exact f32 activations, then llama.cpp's precision on the CPU: bf16
      // activations for the bf16 model, int8 (Q8_0's) for int8 / int4.
      for (const activations of bits ? ['f32', 'int8'] : ['f32', 'bf16']) {
        const acts = activations === 'f32' ? '' : `, ${activations} acts`;
        const model = bits ? `qwen2-0.5b int${bits} + lm_head + embeddings${acts}` : `qwen2-0.5b${acts}`;
        for (const device of bits || activations !== 'f32' ? ['cpu'] : deviceList) {
          log(`${model}, ${device}`);
          const engine = await sr3d.createEngine(ckpt, { device, maxContext: 512, activations });
          try {
            await llmRows(engine, ckpt, model, device, cfg05);
          } finally {
            await engine.dispose();
          }
        }
      }
    }
    if (peer) {
      // The GGUFs are cached beside the checkpoint under its marker's identity.
      const m = JSON.parse(fs.readFileSync(path.join(dir05, 'sr3d-bench.json'), 'utf8'));
      const key = `${m.preset}-s${m.seed}-${m.dtype}-sr3d${m.sr3d}`;
      const vocab = (await sr3d.loadCheckpoint(dir05)).llm.config.vocabSize;
      await peerRows({ ckptDir: dir05, key, model: 'qwen2-0.5b', vocab, threads: peerThreads, cfg: cfg05, row, log });
    }
  }

  if (json) {
    process.stdout.write(JSON.stringify(rows) + '\n');
    return;
  }
  console.log(`sr3d ${sr3d.version} engine — CPU triad ${peak.toFixed(1)} GB/s with ${threads} threads (${addon.buildInfo().simd}), ` +
    `${os.cpus().length} cores, load average ${load.toFixed(2)} at start` +
    (cuda ? `; GPU bandwidth ${gpuGbps === null ? 'not given (--gpu-gbps)' : `${gpuGbps} GB/s`}` : '') +
    (peer ? `; llama.cpp-cpu rows: node-llama-cpp ${PEER_VERSION}'s prebuilt CPU binary, ${peerThreads} threads, the same weights as GGUF` : ''));
  const cols = [['op', 'op'], ['model', 'model'], ['device', 'device'], ['threads', 'threads'], ['median ms', 'medianMs'],
    ['rate', (r) => `${r.rate} ${r.unit}`], ['bytes/token', 'bytesPerToken'], ['GB/s', 'gbps'], ['% of bound', 'pctBound'], ['in cache', 'inCache'], ['resident bytes', 'residentBytes']];
  const cell = (r, k) => {
    const v = typeof k === 'function' ? k(r) : r[k];
    return v === null || v === undefined ? '-' : String(v);
  };
  const w = cols.map(([h, k]) => Math.max(h.length, ...rows.map((r) => cell(r, k).length)));
  console.log(cols.map(([h], i) => h.padEnd(w[i])).join('  '));
  for (const r of rows) console.log(cols.map(([, k], i) => cell(r, k).padEnd(w[i])).join('  '));
  console.log('decode target: >= 60% of the bandwidth bound (bytes/token x tokens/s / bandwidth)');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
