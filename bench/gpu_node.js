#!/usr/bin/env node
// GPU check through the public JavaScript API (run on a machine with a GPU and the CUDA
// binary; bench/gpu_full.sh calls it): the CUDA engine against the CPU engine on a tiny
// checkpoint (each stage, last-position logits, greedy tokens), then one `ask` of the whole
// SR-3D pipeline with device 'cuda' against device 'cpu' on synthetic RGB-D frames (single view,
// tiled, and 4-frame multi-view, with 2D and 3D regions). Prints a table; exit status 1 when a
// comparison fails.
//   node bench/gpu_node.js
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const sr3d = require(path.resolve(__dirname, '..'));

function relErr(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) return Infinity;
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

function lcg(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function frame(seed, W, H) {
  const r = lcg(seed);
  const image = new Uint8Array(H * W * 3);
  for (let i = 0; i < image.length; i++) image[i] = (r() * 256) | 0;
  const depth = new Float32Array(H * W);
  for (let v = 0; v < H; v++) for (let u = 0; u < W; u++) depth[v * W + u] = 1.5 + 0.5 * Math.sin(u / 40) + 0.3 * Math.cos(v / 30) + (r() < 0.05 ? NaN : 0);
  return { image: { data: image, shape: [H, W, 3] }, depth: { data: depth, shape: [H, W] }, depthScale: 1,
    intrinsics: { fx: 500, fy: 500, cx: W / 2, cy: H / 2 } };
}

(async () => {
  const info = sr3d.loadInfo();
  const gpus = sr3d.devices();
  console.log(`binary: ${info.variant}; GPUs: ${gpus.map((g) => g.name).join(', ') || 'none'}`);
  if (info.variant !== 'cuda' || gpus.length === 0) {
    console.log('no CUDA binary with a usable GPU: nothing to compare');
    process.exit(1);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-gpu-'));
  await sr3d.writeTinyModel(dir, { seed: 7 });
  const ckpt = await sr3d.loadCheckpoint(dir);
  const cpu = await sr3d.createEngine(ckpt, { device: 'cpu' });
  const gpu = await sr3d.createEngine(ckpt, { device: 'cuda' });
  const rows = [];
  let failed = 0;
  const check = (what, err, tol) => {
    const ok = err <= tol;
    if (!ok) failed++;
    rows.push([what, err.toExponential(2), tol.toExponential(0), ok ? 'ok' : 'FAIL']);
  };
  const S = ckpt.vision.config.imageSize;
  const r = lcg(3);
  const tiles = new Float32Array(3 * 3 * S * S).map(() => r() * 2 - 1);
  const t = { data: tiles, shape: [3, 3, S, S] };
  const fc = await cpu.encodeTiles(t), fg = await gpu.encodeTiles(t);
  check('encodeTiles (3 tiles)', relErr(fg.data, fc.data), 1e-4);
  const pc = await cpu.project(fc), pg = await gpu.project(fc);
  check('project', relErr(pg.data, pc.data), 1e-4);
  const inPe = ckpt.spatialPe ? 3 * (1 + 2 * ckpt.spatialPe.config.numFreqs) : 0;
  if (inPe) {
    const x = { data: new Float32Array(64 * inPe).map(() => r() * 2 - 1), shape: [64, inPe] };
    check("runMlp('spatial_pe')", relErr((await gpu.runMlp('spatial_pe', x)).data, (await cpu.runMlp('spatial_pe', x)).data), 1e-4);
  }
  const ids = Array.from({ length: 300 }, (_, i) => (i * 7919) % 151000);
  const ec = await cpu.embedTokens(ids), eg = await gpu.embedTokens(ids);
  check('embedTokens', relErr(eg.data, ec.data), 0);
  const lc = await cpu.logits(ec), lg = await gpu.logits(ec);
  check('logits after a 300-position prefill', relErr(lg, lc), 1e-3);
  const gen = async (e) => {
    const out = [];
    for await (const id of e.generate(ec, { maxNewTokens: 24, stopTokenIds: [] })) out.push(id);
    return out;
  };
  const tc = await gen(cpu), tg = await gen(gpu);
  const same = tc.filter((x, i) => x === tg[i]).length;
  check(`greedy tokens equal (${same}/${tc.length})`, tc.length - same, 0);
  console.log(`cuda engine: ${JSON.stringify(gpu.info())}`);
  await cpu.dispose();
  await gpu.dispose();

  // The whole pipeline on each device.
  const regions1 = [{ frame: 0, box: [100, 80, 300, 260] }];
  const regions4 = [{ frame: 1, box: [50, 50, 200, 200] }, { box3d: { center: [0, 0, 1.6], size: [0.6, 0.6, 0.6], yaw: 0.3 } }];
  const asks = [
    ['ask, single view 640x480 (13 tiles)', { frames: [frame(1, 640, 480)], regions: regions1, question: 'What is <region0>?' }],
    ['ask, 4 views', { frames: [1, 2, 3, 4].map((s) => frame(s, 320, 240)), regions: regions4, question: 'How far is <region0> from <region1>?' }],
  ];
  const mc = await sr3d.SR3D.load(dir, { device: 'cpu', onNotice: () => {} });
  const mg = await sr3d.SR3D.load(dir, { device: 'cuda', onNotice: () => {} });
  for (const [name, input] of asks) {
    const a = await mc.ask({ ...input, maxNewTokens: 16 });
    const b = await mg.ask({ ...input, maxNewTokens: 16 });
    const pa = await mc.prepare(input), pb = await mg.prepare(input);
    check(`${name}: spliced embeddings`, relErr(pb.spliced.embeddings, pa.spliced.embeddings), 1e-3);
    const same2 = a.tokens.filter((x, i) => x === b.tokens[i]).length;
    check(`${name}: tokens equal (${same2}/${a.tokens.length})`, a.tokens.length - same2, 0);
    const tm = (x) => Object.entries(x.timings).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
    console.log(`${name}\n  cpu  ms: ${tm(a)}\n  cuda ms: ${tm(b)}`);
  }
  await mc.dispose();
  await mg.dispose();
  console.log('\ncheck | rel. error | bound | result');
  for (const row of rows) console.log(row.join(' | '));
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
