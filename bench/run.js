#!/usr/bin/env node
// Kernel microbenchmarks through the addon (CPU; CUDA rows when a GPU is usable).
//   npm run bench              a table
//   npm run -s bench -- --json one JSON array of rows
//     { op, shape, device, threads, medianMs, bytes, gbps, peakGbps, pctPeak, inCache }
// bytes = the op's byte floor (each input read once, each output written once,
// ../shared/spec/performance.md); % of peak against a STREAM-like triad measured in this run.
// Outputs are preallocated and reused (what a latency-sensitive caller does), so rows time
// the kernels plus the N-API hop, not page faults of fresh arrays.
// GPU rows here include host<->device copies; device-resident GPU timings: bench/gpu.sh.
'use strict';
const path = require('path');
const { performance } = require('perf_hooks');
const root = path.resolve(__dirname, '..');
const sr3d = require(root);
const { native } = require(path.join(root, 'dist', 'native.js'));

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const addon = native();
const threads = addon.buildInfo().cpuThreads;
// Rows whose working set fits the last-level cache measure the cache, not DRAM (labelled).
const LLC = (() => {
  try {
    const txt = require('fs').readFileSync('/sys/devices/system/cpu/cpu0/cache/index3/size', 'utf8').trim();
    const m = /^(\d+)([KMG]?)/.exec(txt);
    if (m) return Number(m[1]) * { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2]];
  } catch { /* not Linux, or no L3 entry */ }
  return 32 * 2 ** 20;
})();

function rand(n, seed, lo, hi, Ctor = Float32Array, invalid = 0.1) {
  let a = seed >>> 0;
  const out = new Ctor(n);
  for (let i = 0; i < n; i++) {
    a = (a * 1664525 + 1013904223) >>> 0;
    const r = a / 4294967296;
    out[i] = r < invalid ? 0 : lo + (hi - lo) * ((r - invalid) / (1 - invalid));
  }
  return out;
}

async function timeIt(fn, runs = quick ? 5 : 21, warm = 3) {
  for (let i = 0; i < warm; i++) await fn();
  const t = [];
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    await fn();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

function triadPeak() {
  const n = 16 * 2 ** 20; // 3 x 64 MiB, far beyond the caches
  const a = new Float32Array(n), b = rand(n, 1, 0, 1, Float32Array, 0), c = rand(n, 2, 0, 1, Float32Array, 0);
  addon.triad(a, b, c);
  const t = [];
  for (let i = 0; i < (quick ? 5 : 15); i++) {
    const s = performance.now();
    addon.triad(a, b, c);
    t.push(performance.now() - s);
  }
  t.sort((x, y) => x - y);
  return (3 * 4 * n) / (t[Math.floor(t.length / 2)] / 1e3) / 1e9;
}

// What a user would write: a plain JS loop with a 4x4 pose.
function jsBackproject(depth, H, W, K, P, scale, out) {
  for (let v = 0; v < H; v++) {
    for (let u = 0; u < W; u++) {
      const i = v * W + u;
      const z = depth[i] * scale;
      if (!(z > 0)) { out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = NaN; continue; }
      const x = ((u - K.cx) * z) / K.fx, y = ((v - K.cy) * z) / K.fy;
      out[3 * i] = P[0] * x + P[1] * y + P[2] * z + P[3];
      out[3 * i + 1] = P[4] * x + P[5] * y + P[6] * z + P[7];
      out[3 * i + 2] = P[8] * x + P[9] * y + P[10] * z + P[11];
    }
  }
}

(async () => {
  const peak = triadPeak();
  const rows = [];
  const gpu = addon.variant === 'cuda' && addon.devices().devices.length > 0;
  const devicesToRun = gpu ? [['cpu', 'fast'], ['cuda (incl. copies)', 'cuda']] : [['cpu', 'fast']];
  const row = (op, shape, device, ms, bytes, workingSet, peakGbps = peak) => {
    const gbps = bytes / (ms / 1e3) / 1e9;
    rows.push({ op, shape, device, threads: device === 'cpu' || device.startsWith('js') ? (device.startsWith('js') ? 1 : threads) : 0,
      medianMs: +ms.toFixed(4), bytes, gbps: +gbps.toFixed(2), peakGbps: +peakGbps.toFixed(2),
      pctPeak: +((100 * gbps) / peakGbps).toFixed(1), inCache: workingSet < LLC });
  };
  const pose = [0.36, -0.48, 0.8, 1.2, 0.8, 0.6, 0, -0.5, -0.48, 0.64, 0.6, 0.9, 0, 0, 0, 1];
  const frames = (F, H, W, dtype) => {
    const n = F * H * W;
    const depth = dtype === 'uint16' ? rand(n, 7, 500, 30000, Uint16Array) : rand(n, 7, 0.2, 6);
    const K = new Float32Array(4 * F);
    for (let f = 0; f < F; f++) K.set([525, 525, W / 2, H / 2], 4 * f);
    const P = new Float32Array(16 * F);
    for (let f = 0; f < F; f++) P.set(pose, 16 * f);
    return { depth, depthDtype: dtype, frames: F, height: H, width: W, depthScale: dtype === 'uint16' ? 1 / 5000 : 1,
      intrinsics: K, poses: P, points: new Float32Array(3 * n), valid: new Uint8Array(n) };
  };
  const dbytes = (d) => (d === 'uint16' ? 2 : 4);

  for (const [device, impl] of devicesToRun) {
    for (const [F, H, W, dt] of [[1, 480, 640, 'float32'], [1, 1080, 1920, 'float32'], [32, 448, 448, 'float32'], [32, 448, 448, 'uint16']]) {
      const b = frames(F, H, W, dt);
      const n = F * H * W;
      const bytes = n * (dbytes(dt) + 12 + 1);
      row('backproject', `${F}x${H}x${W} ${dt}`, device, await timeIt(() => addon.backproject({ ...b, impl, device: 0 })), bytes, bytes);
    }
    for (const output of ['world', 'canonical']) {
      for (const [dt, q] of [['float32', 0], ['float32', 0.01], ['uint16', 0], ['uint16', 0.01]]) {
        const b = frames(32, 448, 448, dt);
        const n = 32 * 448 * 448;
        const bytes = n * (dbytes(dt) + 12 + 1);
        row(`scene_points ${output} q=${q}`, `32x448x448 ${dt}`, device,
          await timeIt(() => addon.scenePoints({ ...b, mode: 'isotropic', quantile: q, output, impl, device: 0 })), bytes, bytes);
      }
    }
    {
      const n = 32 * 448 * 448;
      const points = rand(3 * n, 3, -3, 3, Float32Array, 0.05);
      const out = new Float32Array(3 * n);
      for (const q of [0, 0.01]) {
        const bytes = n * 24;
        row(`canonicalize q=${q}`, `${n}x3`, device,
          await timeIt(() => addon.canonicalize({ points, out, count: n, mode: 'isotropic', quantile: q, impl, device: 0 })), bytes, bytes);
      }
      const pooled = new Float32Array(32 * 32 * 32 * 3), valid = new Uint8Array(32 * 32 * 32);
      const pbytes = n * 12 + pooled.byteLength + valid.byteLength;
      row('pool_points p=14', '32x448x448x3', device,
        await timeIt(() => addon.poolPoints({ points, batch: 32, height: 448, width: 448, patch: 14, pooled, valid, impl, device: 0 })), pbytes, pbytes);
      const m = 32 * 1024;
      const pts = rand(3 * m, 5, -1, 1, Float32Array, 0);
      const features = new Float32Array(m * 99);
      const ebytes = pts.byteLength + features.byteLength;
      row('sinusoidal_encode L=16', `${m}x3 -> ${m}x99`, device,
        await timeIt(() => addon.sinusoidalEncode({ points: pts, count: m, numFreqs: 16, includeInput: true, features, impl, device: 0 })), ebytes, ebytes);
    }
  }
  // ---- tiling rows (resize + tile) ----

  // ---- region rows (mask pooling, 3D boxes to masks) ----

  // Baselines: the plain C++ reference loop and a straightforward JavaScript loop.
  for (const [H, W] of [[480, 640], [1080, 1920]]) {
    const b = frames(1, H, W, 'float32');
    const bytes = H * W * 17;
    row('backproject (C++ reference loop)', `1x${H}x${W} float32`, 'cpu-1', await timeIt(() => addon.backproject({ ...b, impl: 'reference' }), quick ? 3 : 21), bytes, bytes);
    rows[rows.length - 1].threads = 1;
    row('backproject (plain JavaScript)', `1x${H}x${W} float32`, 'js', await timeIt(() => jsBackproject(b.depth, H, W, { fx: 525, fy: 525, cx: W / 2, cy: H / 2 }, pose, 1, b.points), quick ? 3 : 21), H * W * 16, H * W * 17);
  }
  if (json) {
    process.stdout.write(JSON.stringify(rows) + '\n');
    return;
  }
  console.log(`sr3d ${sr3d.version} — CPU triad peak ${peak.toFixed(1)} GB/s with ${threads} threads (${addon.buildInfo().simd})`);
  const cols = ['op', 'shape', 'device', 'threads', 'medianMs', 'gbps', 'pctPeak', 'inCache'];
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  console.log(cols.map((c, i) => c.padEnd(w[i])).join('  '));
  for (const r of rows) console.log(cols.map((c, i) => String(r[c]).padEnd(w[i])).join('  '));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
