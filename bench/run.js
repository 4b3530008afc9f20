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
const root = path.resolve(__dirname, '..');
require('./common').requireFreshDist(root);
const sr3d = require(root);
const { native } = require(path.join(root, 'dist', 'native.js'));
const common = require('./common');

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const addon = native();
const threads = addon.buildInfo().cpuThreads;
// Rows whose working set fits the last-level cache (common.LLC) measure the cache, not DRAM (labelled).
const { LLC } = common;
// Inputs hold 10% invalid (0) values by default: depth holes.
const rand = (n, seed, lo, hi, Ctor = Float32Array, invalid = 0.1) => common.rand(n, seed, lo, hi, Ctor, invalid);
const timeIt = (fn, runs = quick ? 5 : 21, warm = 3) => common.timeIt(fn, runs, warm);
const triadPeak = () => common.triadPeak(addon, quick ? 5 : 15);




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
  // VILA tiling of a 640x480 (grid 4x3 -> 13 tiles) and a 1920x1080 image (4x2 -> 9 tiles):
  // bytes = the source read once + the float32 tiles written once.
  {
    // A plain JavaScript port of Pillow's bicubic resample (Resample.c, 8-bit RGB) and VILA's
    // crop + SigLIP normalize: the tiling a user would write without the addon.
    function pillowCoeffs(inSize, outSize) {
      const scale = inSize / outSize, fscale = Math.max(scale, 1), support = 2 * fscale;
      const first = new Int32Array(outSize), count = new Int32Array(outSize), taps = Math.ceil(support) * 2 + 1;
      const k = new Int32Array(outSize * taps);
      const cubic = (x) => { x = Math.abs(x); return x < 1 ? (1.5 * x - 2.5) * x * x + 1 : x < 2 ? (((x - 5) * x + 8) * x - 4) * -0.5 : 0; };
      for (let i = 0; i < outSize; i++) {
        const center = (i + 0.5) * scale;
        const lo = Math.max(0, Math.trunc(center - support + 0.5)), n = Math.min(inSize, Math.trunc(center + support + 0.5)) - lo;
        const w = [];
        let sum = 0;
        for (let t = 0; t < n; t++) { w.push(cubic((t + lo - center + 0.5) * (1 / fscale))); sum += w[t]; }
        for (let t = 0; t < n; t++) { const v = w[t] / sum; k[i * taps + t] = Math.trunc(v < 0 ? v * 4194304 - 0.5 : v * 4194304 + 0.5); }
        first[i] = lo;
        count[i] = n;
      }
      return { first, count, k, taps };
    }
    function jsResample(src, W, H, ow, oh) {
      const clip = (s) => { s >>= 22; return s < 0 ? 0 : s > 255 ? 255 : s; };
      const h = pillowCoeffs(W, ow), v = pillowCoeffs(H, oh);
      const mid = new Uint8Array(H * ow * 3), out = new Uint8Array(oh * ow * 3);
      for (let y = 0; y < H; y++) for (let x = 0; x < ow; x++) for (let c = 0; c < 3; c++) {
        let s = 1 << 21;
        for (let t = 0; t < h.count[x]; t++) s += src[(y * W + h.first[x] + t) * 3 + c] * h.k[x * h.taps + t];
        mid[(y * ow + x) * 3 + c] = clip(s);
      }
      for (let y = 0; y < oh; y++) for (let i = 0; i < ow * 3; i++) {
        let s = 1 << 21;
        for (let t = 0; t < v.count[y]; t++) s += mid[(v.first[y] + t) * ow * 3 + i] * v.k[y * v.taps + t];
        out[y * ow * 3 + i] = clip(s);
      }
      return out;
    }
    function jsTileImage(src, W, H, cols, rows, T, tiles) {
      const put = (img, imgW, x0, y0, k) => {
        for (let c = 0; c < 3; c++) for (let y = 0; y < T; y++) for (let x = 0; x < T; x++) {
          tiles[((k * 3 + c) * T + y) * T + x] = (img[((y0 + y) * imgW + x0 + x) * 3 + c] / 255 - 0.5) / 0.5;
        }
      };
      const grid = jsResample(src, W, H, T * cols, T * rows);
      for (let k = 0; k < cols * rows; k++) put(grid, T * cols, (k % cols) * T, Math.floor(k / cols) * T, k);
      if (cols * rows > 1) put(jsResample(src, W, H, T, T), T, 0, 0, cols * rows);
    }
    const tileBytes = (n) => n * 3 * 448 * 448 * 4;
    const images = [[480, 640, 4, 3], [1080, 1920, 4, 2]].map(([H, W, cols, rows]) => {
      const n = cols * rows + 1;
      return { H, W, cols, rows, n, src: rand(H * W * 3, 9, 0, 256, Uint8Array, 0), tiles: new Float32Array(n * 3 * 448 * 448) };
    });
    for (const [device, impl] of devicesToRun) {
      for (const im of images) {
        const bytes = im.H * im.W * 3 + tileBytes(im.n);
        row('tile_image', `${im.H}x${im.W}x3 -> ${im.n}x3x448x448`, device, await timeIt(() => addon.tileImage({
          src: im.src, height: im.H, width: im.W, cols: im.cols, rows: im.rows, tileSize: 448, tiles: im.tiles, impl, device: 0,
        })), bytes, bytes);
      }
      const vga = images[0];
      const resized = new Uint8Array(1344 * 1792 * 3);
      const rbytes = vga.src.length + resized.length;
      row('resize_bicubic', '480x640x3 -> 1344x1792x3', device, await timeIt(() => addon.resizeBicubic({
        src: vga.src, height: 480, width: 640, dst: resized, outHeight: 1344, outWidth: 1792, impl, device: 0,
      })), rbytes, rbytes);
      const points = rand(480 * 640 * 3, 4, -3, 3, Float32Array, 0.05);
      const ptiles = new Float32Array(13 * 448 * 448 * 3);
      const pbytes = points.byteLength + ptiles.byteLength;
      row('tile_nearest (point map)', '480x640x3 f32 -> 13x448x448x3', device, await timeIt(() => addon.tileNearest({
        src: points, dtype: 'float32', channels: 3, height: 480, width: 640, cols: 4, rows: 3, tileSize: 448, dst: ptiles, impl, device: 0,
      })), pbytes, pbytes);
    }
    // Baselines: the plain C++ reference loop (one thread) and a plain JavaScript port of
    // Pillow's resample + crop + normalize (what PIL + numpy do, ~57 ms per 1080p image in Python).
    for (const im of images) {
      const bytes = im.H * im.W * 3 + tileBytes(im.n);
      const shape = `${im.H}x${im.W}x3 -> ${im.n}x3x448x448`;
      row('tile_image (C++ reference loop)', shape, 'cpu-1', await timeIt(() => addon.tileImage({
        src: im.src, height: im.H, width: im.W, cols: im.cols, rows: im.rows, tileSize: 448, tiles: im.tiles, impl: 'reference',
      }), quick ? 3 : 11), bytes, bytes);
      rows[rows.length - 1].threads = 1;
      row('tile_image (plain JavaScript)', shape, 'js', await timeIt(() => jsTileImage(im.src, im.W, im.H, im.cols, im.rows, 448, im.tiles), quick ? 3 : 11), bytes, bytes);
    }
  }


  // ---- region rows (mask pooling, 3D boxes to masks) ----
  {
    // 8 regions as random boxes of 10-40% of each side (a quarter of the frames skipped on
    // scenes), like region prompts. Byte floor: the features of the tokens some region touches
    // (the others are never read) + the mask bytes the mode reads (area: all; spatialrgpt: 2 of
    // every 14 pixel rows) + the output.
    const poolCase = (grid, frames, h, w, C) => {
      const M = 8, H = 14 * h, W = 14 * w;
      let seed = 31;
      const next = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 4294967296);
      const masks = new Uint8Array(M * frames * H * W);
      const touched = new Uint8Array(frames * h * w);
      for (let m = 0; m < M; m++) for (let f = 0; f < frames; f++) {
        if (frames > 1 && next() < 0.25) continue;
        const bh = Math.floor(H * (0.1 + 0.3 * next())), bw = Math.floor(W * (0.1 + 0.3 * next()));
        const y0 = Math.floor(next() * (H - bh)), x0 = Math.floor(next() * (W - bw));
        for (let y = y0; y < y0 + bh; y++) {
          masks.fill(1, ((m * frames + f) * H + y) * W + x0, ((m * frames + f) * H + y) * W + x0 + bw);
          for (let x = Math.floor(x0 / 14); x <= Math.floor((x0 + bw - 1) / 14); x++) touched[(f * h + Math.floor(y / 14)) * w + x] = 1;
        }
      }
      const active = touched.reduce((a, b) => a + b, 0);
      const features = rand(grid.layout === 'tiles' ? grid.tiles * 1024 * C : frames * h * w * C, 17, -1, 1, Float32Array, 0);
      const bytes = (mode) => 4 * active * C + M * frames * (mode === 'area' ? H : 2 * h) * W + 4 * M * C;
      return { grid: { ...grid, channels: C }, features, masks, M, bytes, C };
    };
    const image = poolCase({ layout: 'tiles', tiles: 13, tile: 32, cols: 4, rows: 3 }, 1, 96, 128, 1152);
    const scene = poolCase({ layout: 'frames', frames: 32, height: 32, width: 32 }, 32, 32, 32, 1152);
    const out = new Float32Array(8 * 1152);
    for (const [device, impl] of devicesToRun) {
      for (const [label, c] of [['13 tiles (4x3+1) 32x32x1152, 8 regions', image], ['32x32x32x1152 frames, 8 regions', scene]]) {
        for (const mode of ['area', 'spatialrgpt']) {
          const ws = c.features.byteLength + c.masks.byteLength;
          row(`mask_pool ${mode}`, label, device,
            await timeIt(() => addon.maskPool({ ...c.grid, features: c.features, masks: c.masks, regions: c.M, patch: 14, mode, out, impl, device: 0 })),
            c.bytes(mode), ws);
        }
      }
      // A copy with streaming stores: no read-for-ownership, which the triad's plain stores pay
      // (16 B moved per 12 B counted), so this row can pass 100% of the triad out of DRAM
      // (measured: 37 GB/s moving 453 MB against a 25 GB/s triad).
      const grid = new Float32Array(12 * 1024 * 1152);
      row('stitch_tiles', '13 tiles (4x3+1) 32x32x1152', device,
        await timeIt(() => addon.stitchTiles({ ...image.grid, features: image.features, out: grid, impl, device: 0 })), 2 * grid.byteLength, 2 * grid.byteLength);
    }
    // box3d_masks over a 32-frame 448x448 scene: points scattered around a rotated box (about a
    // tenth inside); cameras on a circle around it for the projected hulls.
    const F = 32, H = 448, W = 448, n = F * H * W;
    const c = Math.cos(0.6), s = Math.sin(0.6);
    const box = Float64Array.from([0.2, 1.5, 0.5, c, -s, 0, s, c, 0, 0, 0, 1, 0.25, 0.3, 0.45]);
    const local = rand(3 * n, 29, -3, 3, Float32Array, 0);
    const points = new Float32Array(3 * n);
    for (let i = 0; i < n; i++) {
      const l = [local[3 * i] * 0.25, local[3 * i + 1] * 0.3, local[3 * i + 2] * 0.45];
      points[3 * i] = 0.2 + c * l[0] - s * l[1];
      points[3 * i + 1] = 1.5 + s * l[0] + c * l[1];
      points[3 * i + 2] = 0.5 + l[2];
    }
    const K = new Float32Array(4 * F), P = new Float32Array(16 * F);
    for (let f = 0; f < F; f++) {
      K.set([400, 400, 223.5, 223.5], 4 * f);
      const a = (2 * Math.PI * f) / F, eye = [0.2 + 2 * Math.cos(a), 1.5 + 2 * Math.sin(a), 1.2];
      const z = [0.2 - eye[0], 1.5 - eye[1], 0.5 - eye[2]].map((v, _i, arr) => v / Math.hypot(...arr));
      const x = [z[1], -z[0], 0].map((v, _i, arr) => v / Math.hypot(...arr));
      const y = [z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2], z[0] * x[1] - z[1] * x[0]];
      P.set([x[0], y[0], z[0], eye[0], x[1], y[1], z[1], eye[1], x[2], y[2], z[2], eye[2], 0, 0, 0, 1], 16 * f);
    }
    const masks = new Uint8Array(n);
    for (const [device, impl] of devicesToRun) {
      row('box3d_masks inside', `${F}x${H}x${W}`, device,
        await timeIt(() => addon.box3dMasks({ mode: 'inside', frames: F, height: H, width: W, box, points, masks, impl, device: 0 })), 13 * n, 13 * n);
      row('box3d_masks project', `${F}x${H}x${W}`, device,
        await timeIt(() => addon.box3dMasks({ mode: 'project', frames: F, height: H, width: W, box, intrinsics: K, poses: P, near: 1e-3, masks, impl, device: 0 })), n, n);
    }
  }

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
