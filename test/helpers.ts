// Shared test helpers: a float64 JavaScript reference of every geometry op (written for
// obviousness), seeded random data, comparison with informative failures, TUM loaders.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';

import type { Engine } from '../lib/engine';
import { CheckpointError, InvalidArgumentError } from '../lib/errors';

/** Real RGB-D data inside the repository (a clone alone passes the tests): test/data/ holds
 * tum_fr1_rpy; the cabinet is the bundled example scene. */
export const RPY_DIR = path.resolve(__dirname, 'data', 'tum_fr1_rpy');
export const CABINET_DIR = path.resolve(__dirname, '..', 'examples', 'data', 'tum_fr3_cabinet');

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A permutation of 0..n-1 (Fisher-Yates over rng(seed)), e.g. a GPTQ act-order perm. */
export function shuffled(n: number, seed: number): Int32Array {
  const r = rng(seed), p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

export interface K { fx: number; fy: number; cx: number; cy: number }

const f32 = Math.fround;

/** Float64 back-projection with float32-rounded inputs (the kernel's inputs). */
export function refBackproject(depth: ArrayLike<number>, F: number, H: number, W: number, k: K[], scale: number, poses: number[][] | null) {
  const pts = new Float64Array(F * H * W * 3);
  const valid = new Uint8Array(F * H * W);
  const s = f32(scale);
  for (let f = 0; f < F; f++) {
    const kk = k[k.length === 1 ? 0 : f];
    const [fx, fy, cx, cy] = [f32(kk.fx), f32(kk.fy), f32(kk.cx), f32(kk.cy)];
    const P = poses ? poses[f].map(f32) : null;
    for (let v = 0; v < H; v++) for (let u = 0; u < W; u++) {
      const i = (f * H + v) * W + u;
      const z = depth[i] * s;
      const ok = Number.isFinite(z) && z > 0;
      valid[i] = ok ? 1 : 0;
      if (!ok) { pts[3 * i] = pts[3 * i + 1] = pts[3 * i + 2] = NaN; continue; }
      const x = ((u - cx) * z) / fx, y = ((v - cy) * z) / fy;
      if (P) {
        pts[3 * i] = P[0] * x + P[1] * y + P[2] * z + P[3];
        pts[3 * i + 1] = P[4] * x + P[5] * y + P[6] * z + P[7];
        pts[3 * i + 2] = P[8] * x + P[9] * y + P[10] * z + P[11];
      } else { pts[3 * i] = x; pts[3 * i + 1] = y; pts[3 * i + 2] = z; }
      // A point beyond float32 range is invalid (as the kernels define it).
      if (![0, 1, 2].every((a) => Math.abs(Math.fround(pts[3 * i + a])) !== Infinity)) {
        valid[i] = 0;
        pts[3 * i] = pts[3 * i + 1] = pts[3 * i + 2] = NaN;
      }
    }
  }
  return { pts, valid };
}

/** numpy 'linear' quantile of sorted values. */
export function quantileSorted(a: Float64Array, q: number): number {
  const pos = q * (a.length - 1);
  const k = Math.floor(pos);
  const k2 = Math.min(k + 1, a.length - 1);
  return a[k] + (a[k2] - a[k]) * (pos - k);
}

/** Float64 canonical transform of float32 points (NaN/Inf = invalid). */
export function refCanonical(points: Float32Array, mode: 'isotropic' | 'minmax' | 'metric', q: number) {
  const axes: number[][] = [[], [], []];
  for (let i = 0; i < points.length; i += 3) {
    if (Number.isFinite(points[i]) && Number.isFinite(points[i + 1]) && Number.isFinite(points[i + 2])) {
      for (let a = 0; a < 3; a++) axes[a].push(points[i + a]);
    }
  }
  const n = axes[0].length;
  if (mode === 'metric') return { center: [0, 0, 0], scale: [1, 1, 1], validCount: n };
  const lo: number[] = [], hi: number[] = [];
  const qq = mode === 'isotropic' ? q : 0;
  for (let a = 0; a < 3; a++) {
    const s = Float64Array.from(axes[a]).sort();
    lo.push(quantileSorted(s, qq));
    hi.push(quantileSorted(s, 1 - qq));
  }
  if (mode === 'minmax') return { center: lo, scale: lo.map((l, a) => (hi[a] - l > 0 ? hi[a] - l : 1)), validCount: n };
  const c = lo.map((l, a) => 0.5 * (l + hi[a]));
  let s = Math.max(...lo.map((l, a) => 0.5 * (hi[a] - l)));
  if (!(s > 0)) s = 1;
  return { center: c, scale: [s, s, s], validCount: n };
}

export function refPool(points: Float32Array, B: number, H: number, W: number, P: number) {
  const Hp = Math.ceil(H / P), Wp = Math.ceil(W / P);
  const out = new Float64Array(B * Hp * Wp * 3), valid = new Uint8Array(B * Hp * Wp);
  for (let b = 0; b < B; b++) for (let py = 0; py < Hp; py++) for (let px = 0; px < Wp; px++) {
    const s = [0, 0, 0]; let c = 0;
    for (let v = py * P; v < Math.min(H, (py + 1) * P); v++) for (let u = px * P; u < Math.min(W, (px + 1) * P); u++) {
      const i = 3 * ((b * H + v) * W + u);
      if (![0, 1, 2].every((a) => Number.isFinite(points[i + a]))) continue;
      for (let a = 0; a < 3; a++) s[a] += points[i + a];
      c++;
    }
    const o = (b * Hp + py) * Wp + px;
    for (let a = 0; a < 3; a++) out[3 * o + a] = c ? s[a] / c : NaN;
    valid[o] = c ? 1 : 0;
  }
  return { out, valid, Hp, Wp };
}

export function refEncode(points: Float32Array, L: number, inc: boolean): Float64Array {
  const D = (inc ? 1 : 0) + 2 * L, n = points.length / 3;
  const out = new Float64Array(n * 3 * D);
  for (let i = 0; i < n; i++) {
    const ok = [0, 1, 2].every((a) => Number.isFinite(points[3 * i + a]));
    for (let a = 0; a < 3; a++) {
      let o = i * 3 * D + a * D;
      const p = points[3 * i + a];
      if (inc) out[o++] = ok ? p : NaN;
      for (let k = 0; k < L; k++) {
        // 2^k p is exact in float64; reducing it mod 2 first keeps sin(pi y) exact to float64
        // rounding even for k = 29 (a direct 2^k*pi*p argument would carry ~1e-7 error there).
        const y = 2 ** k * p;
        const arg = Math.PI * (y - 2 * Math.round(y / 2));
        out[o++] = ok ? Math.sin(arg) : NaN;
        out[o++] = ok ? Math.cos(arg) : NaN;
      }
    }
  }
  return out;
}

/**
 * Asserts |got - want| <= atol + rtol*|want| elementwise, NaN matching NaN. On failure the
 * message gives the worst index, both values, the shape and the ratio to the tolerance.
 */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, label: string, shape?: number[]): { maxAbs: number } {
  if (got.length !== want.length) throw new Error(`${label}: length ${got.length} != ${want.length}`);
  let worst = -1, worstRatio = 0, maxAbs = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i], w = want[i];
    if (Number.isNaN(w) || Number.isNaN(g)) {
      if (Number.isNaN(w) !== Number.isNaN(g)) { worst = i; worstRatio = Infinity; break; }
      continue;
    }
    const d = Math.abs(g - w);
    maxAbs = Math.max(maxAbs, d);
    const r = d / (atol + rtol * Math.abs(w));
    if (r > worstRatio) { worstRatio = r; worst = i; }
  }
  if (worstRatio > 1) {
    throw new Error(`${label}: mismatch at flat index ${worst} (shape [${shape?.join(', ') ?? got.length}]): got ${got[worst]}, want ${want[worst]}, ` +
      `|diff| = ${Math.abs(got[worst] - want[worst])}, ${worstRatio.toFixed(2)}x the tolerance (atol ${atol}, rtol ${rtol})`);
  }
  return { maxAbs };
}

/** Bitwise equality of float arrays (NaN == NaN). */
export function expectBitEqual(a: Float32Array | Uint8Array, b: Float32Array | Uint8Array, label: string) {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength), y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (x.length !== y.length) throw new Error(`${label}: byte length ${x.length} != ${y.length}`);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) {
      const e = Math.floor(i / a.BYTES_PER_ELEMENT);
      throw new Error(`${label}: first difference at element ${e}: ${a[e]} vs ${b[e]}`);
    }
  }
}

// ---- TUM data ---------------------------------------------------------------------

export function readDepthPng(file: string): { data: Uint16Array; width: number; height: number } {
  const png = PNG.sync.read(fs.readFileSync(file), { skipRescale: true });
  const rgba = png.data as unknown as Uint16Array;
  const out = new Uint16Array(png.width * png.height);
  for (let i = 0; i < out.length; i++) out[i] = rgba[4 * i];
  return { data: out, width: png.width, height: png.height };
}

/** Camera-to-world 4x4 (row-major) from t and a Hamilton (x,y,z,w) quaternion. */
export function poseFromTQ(t: number[], q: number[]): number[] {
  const [x, y, z, w] = q;
  const n = Math.hypot(x, y, z, w);
  const [a, b, c, d] = [x / n, y / n, z / n, w / n];
  return [
    1 - 2 * (b * b + c * c), 2 * (a * b - c * d), 2 * (a * c + b * d), t[0],
    2 * (a * b + c * d), 1 - 2 * (a * a + c * c), 2 * (b * c - a * d), t[1],
    2 * (a * c - b * d), 2 * (b * c + a * d), 1 - 2 * (a * a + b * b), t[2],
    0, 0, 0, 1,
  ];
}

export const CABINET_FRAMES = ['0003', '0007', '0010', '0014', '0017', '0021', '0025', '0028', '0032', '0035', '0039', '0043', '0046', '0050', '0053', '0057'];
export const CABINET_K = { fx: 535.4, fy: 539.2, cx: 320.1, cy: 247.6 };

export function loadCabinet(frames = CABINET_FRAMES) {
  const dir = CABINET_DIR;
  const poseLines = fs.readFileSync(path.join(dir, 'truth_cam_poses.txt'), 'utf8').trim().split('\n');
  const depths = frames.map((f) => readDepthPng(path.join(dir, 'depth_imgs', `${f}_depth_raw.png`)));
  const { width: W, height: H } = depths[0];
  const depth = new Uint16Array(frames.length * H * W);
  depths.forEach((d, i) => depth.set(d.data, i * H * W));
  const poses = frames.map((f) => {
    const v = poseLines[Number(f)].trim().split(/\s+/).map(Number);
    return poseFromTQ(v.slice(1, 4), v.slice(4, 8));
  });
  const box = fs.readFileSync(path.join(dir, 'truth_objects.txt'), 'utf8').trim().split(/\s+/).map(Number);
  return { depth, F: frames.length, H, W, poses, box: { center: box.slice(0, 3), yaw: box[3], half: box.slice(4, 7) } };
}

/** Asserts that `caught` is a typed checkpoint error (SR3D_INVALID_ARGUMENT, the one message shape) matching `re`. */
export function expectCheckpointError(caught: unknown, re: RegExp): CheckpointError {
  expect(caught).toBeInstanceOf(CheckpointError);
  expect(caught).toBeInstanceOf(InvalidArgumentError);
  const e = caught as CheckpointError;
  expect(e.code).toBe('SR3D_INVALID_ARGUMENT');
  expect(e.message).toMatch(/^Expected .+ for .+ but received .+/);
  expect(e.message).toMatch(re);
  return e;
}

/** Drains a token stream (engine.generate) into an array. */
export async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

/**
 * Greedy tokens of a prompt (`hidden`-wide embeddings) continued by `append` — 4 generated, then
 * the pending token and 3 more ids as a 4-row prefill, 5 generated — and of one prefill of the
 * whole sequence: [appended, whole], equal when a prefill of n rows equals n decode steps.
 */
export async function appendVsWhole(engine: Engine, prompt: Float32Array, hidden: number): Promise<[number[], number[]]> {
  const rows = prompt.length / hidden;
  const first = await collect(engine.generate({ data: prompt, shape: [rows, hidden] }, { maxNewTokens: 4, stopTokenIds: [] }));
  const more = [11, 22, 33];
  const tail = (await engine.embedTokens([engine.pendingToken!, ...more])).data;
  const appended = await collect(engine.generate({ data: tail, shape: [4, hidden] }, { maxNewTokens: 5, stopTokenIds: [], append: true }));
  const whole = new Float32Array((rows + 7) * hidden);
  whole.set(prompt);
  whole.set((await engine.embedTokens([...first, ...more])).data, rows * hidden);
  return [appended, await collect(engine.generate({ data: whole, shape: [rows + 7, hidden] }, { maxNewTokens: 5, stopTokenIds: [] }))];
}

/** n random points in [-4, 4)³; a fraction `invalidFrac` invalid (NaN, or y = Infinity). */
export function randomPointMap(n: number, seed: number, invalidFrac: number): Float32Array {
  const r = rng(seed);
  const p = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    const bad = r() < invalidFrac;
    for (let a = 0; a < 3; a++) p[3 * i + a] = bad ? (a === 1 ? Infinity : NaN) : (r() - 0.5) * 8;
  }
  return p;
}

/** Newest mtime of the .ts files under a folder. */
function newestTs(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestTs(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Rebuilds dist/ (npm run build:ts) when `file` under it is missing or older than lib/: for tests
 * that run the compiled library or CLI in a child process, as a user does.
 */
export function ensureDistBuilt(file = 'index.js'): void {
  const root = path.resolve(__dirname, '..');
  const f = path.join(root, 'dist', file);
  if (!fs.existsSync(f) || fs.statSync(f).mtimeMs < newestTs(path.join(root, 'lib'))) {
    const r = spawnSync('npm', ['run', '-s', 'build:ts'], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`npm run build:ts failed:\n${r.stdout}${r.stderr}`);
  }
}
