/**
 * {@link importTum}: a scene manifest for a folder in the TUM RGB-D layout (rgb.txt,
 * depth.txt, groundtruth.txt); `sr3d import tum` (lib/commands/import.ts) is its CLI.
 *
 * What it reproduces: TUM's associate.py (every rgb/depth pair with |dt| < 0.02 s, taken
 * greedily by smallest |dt|, each timestamp used once), the ground-truth pose interpolated
 * at the rgb timestamp (positions linearly, quaternions by slerp between the two bracketing
 * mocap samples), `tx ty tz qx qy qz qw` = camera-to-world with OpenCV camera axes (TUM's
 * convention), depth in 1/5000 m, and TUM's published freiburg1/2/3 colour intrinsics.
 */
import * as fs from 'fs';
import * as path from 'path';

import type { Intrinsics } from './camera';
import { describeValue } from './errors';
import { SceneError, writeManifest } from './scene';
import type { ManifestFrame, SceneManifest } from './scene';

/** TUM's published colour-camera intrinsics (vision.in.tum.de, "File Formats" / camera calibration). */
export const TUM_INTRINSICS: Record<'fr1' | 'fr2' | 'fr3', Intrinsics> = {
  fr1: { fx: 517.3, fy: 516.5, cx: 318.6, cy: 255.3 },
  fr2: { fx: 520.9, fy: 521.0, cx: 325.1, cy: 249.7 },
  fr3: { fx: 535.4, fy: 539.2, cx: 320.1, cy: 247.6 },
};

/** TUM depth PNGs: metres = value / 5000. */
export const TUM_DEPTH_SCALE = 1 / 5000;

/** associate.py's default maximum |t_rgb - t_depth|, seconds. */
export const MAX_DT = 0.02;

export interface ImportTumOptions {
  /** Keep at most this many frames, sampled evenly as `round(linspace(0, N-1, n))` (spec Part A §A8). Defaults to `32`. */
  maxFrames?: number;
  /** Keep every `stride`-th associated frame (before `maxFrames`). Defaults to `1`. */
  stride?: number;
  /** Colour intrinsics in pixels. Defaults to TUM's fr1/fr2/fr3 values picked from the folder name (`freiburg1`, `fr1`, …); required when the name has none. */
  intrinsics?: Intrinsics;
  /** The world's up direction for the manifest. Defaults to none: TUM's mocap frame is z-up only for some sequences, so it is not assumed. */
  up?: [number, number, number];
}

export interface ImportTumResult {
  /** The manifest (paths relative to its folder). */
  manifest: SceneManifest;
  /** Where it was written (null when `out` was null). */
  path: string | null;
  /** The folder the manifest's paths are relative to. */
  dir: string;
  /** rgb timestamps of the kept frames, seconds. */
  timestamps: number[];
  /** Which intrinsics were used and why. */
  intrinsicsSource: string;
  /** Counts of rgb frames not kept, by reason. */
  dropped: { noDepth: number; outsideGroundtruth: number; sampled: number };
}

function importError(what: string, name: string, received: string, fix: string): SceneError {
  return new SceneError(`Expected ${what} for ${name} but received ${received}. Fix: ${fix}`, null);
}

/** Rows of a TUM text file: '#' comments and blank lines skipped, whitespace separated. */
function readTable(file: string, columns: number, what: string): { t: number; cols: string[]; line: number }[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw importError(`a TUM ${what} file`, `'${file}'`, (e as NodeJS.ErrnoException).code ?? 'an unreadable file',
      'point sr3d import tum at a folder with rgb.txt, depth.txt and groundtruth.txt (the TUM RGB-D layout)');
  }
  const rows: { t: number; cols: string[]; line: number }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const s = raw.trim();
    if (s === '' || s.startsWith('#')) return;
    const cols = s.split(/[\s,]+/);
    const t = Number(cols[0]);
    if (cols.length < columns || !Number.isFinite(t)) {
      throw importError(`${columns} columns starting with a timestamp`, `${path.basename(file)} line ${i + 1}`, `'${s.slice(0, 60)}'`,
        `fix or remove that line (the TUM format is ${what === 'groundtruth' ? 'timestamp tx ty tz qx qy qz qw' : 'timestamp filename'})`);
    }
    rows.push({ t, cols, line: i + 1 });
  });
  return rows;
}

/**
 * TUM associate.py: all pairs with |a - b| < maxDt, taken greedily by smallest difference,
 * each timestamp used at most once; returned sorted by `a`.
 */
export function associate(a: readonly number[], b: readonly number[], maxDt = MAX_DT): [number, number][] {
  const sortedB = b.map((t, j) => ({ t, j })).sort((x, y) => x.t - y.t);
  const cand: { d: number; i: number; j: number }[] = [];
  for (let i = 0; i < a.length; i++) {
    // Binary search for the window [a - maxDt, a + maxDt] in the sorted b.
    let lo = 0, hi = sortedB.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (sortedB[mid].t <= a[i] - maxDt) lo = mid + 1; else hi = mid; }
    for (let k = lo; k < sortedB.length && sortedB[k].t < a[i] + maxDt; k++) {
      const d = Math.abs(a[i] - sortedB[k].t);
      if (d < maxDt) cand.push({ d, i, j: sortedB[k].j });
    }
  }
  cand.sort((x, y) => x.d - y.d || x.i - y.i);
  const usedA = new Set<number>(), usedB = new Set<number>();
  const out: [number, number][] = [];
  for (const c of cand) {
    if (usedA.has(c.i) || usedB.has(c.j)) continue;
    usedA.add(c.i);
    usedB.add(c.j);
    out.push([c.i, c.j]);
  }
  return out.sort((x, y) => a[x[0]] - a[y[0]]);
}

/** Spherical linear interpolation of unit quaternions (x, y, z, w), shortest path. */
export function slerp(q0: readonly number[], q1: readonly number[], s: number): number[] {
  let dot = q0[0] * q1[0] + q0[1] * q1[1] + q0[2] * q1[2] + q0[3] * q1[3];
  let b = q1;
  if (dot < 0) { dot = -dot; b = q1.map((x) => -x); }
  let w0: number, w1: number;
  if (dot > 0.9995) {
    w0 = 1 - s; w1 = s; // nearly parallel: lerp (normalized below) avoids 0/0
  } else {
    const th = Math.acos(dot), sin = Math.sin(th);
    w0 = Math.sin((1 - s) * th) / sin; w1 = Math.sin(s * th) / sin;
  }
  const q = q0.map((x, k) => w0 * x + w1 * b[k]);
  const n = Math.hypot(q[0], q[1], q[2], q[3]);
  return q.map((x) => x / n);
}

/** `tx ty tz qx qy qz qw` (camera-to-world, Hamilton quaternion) -> row-major 4x4; q is normalized. */
export function tumPoseToMatrix(p: readonly number[]): number[] {
  const [tx, ty, tz] = p;
  const n = Math.hypot(p[3], p[4], p[5], p[6]);
  const [x, y, z, w] = [p[3] / n, p[4] / n, p[5] / n, p[6] / n];
  return [
    1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w), tx,
    2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w), ty,
    2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y), tz,
    0, 0, 0, 1,
  ];
}

/**
 * The ground-truth pose at time `t` as `tx ty tz qx qy qz qw`: linear position and slerp
 * between the two bracketing samples; null outside [first, last] sample.
 */
export function interpolatePose(gt: readonly { t: number; p: number[] }[], t: number): number[] | null {
  if (gt.length === 0 || t < gt[0].t || t > gt[gt.length - 1].t) return null;
  let lo = 0, hi = gt.length - 1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (gt[mid].t <= t) lo = mid; else hi = mid; }
  const a = gt[lo], b = gt[hi];
  const s = b.t > a.t ? (t - a.t) / (b.t - a.t) : 0;
  const pos = [0, 1, 2].map((k) => a.p[k] + s * (b.p[k] - a.p[k]));
  return [...pos, ...slerp(a.p.slice(3), b.p.slice(3), s)];
}

function intrinsicsFor(dir: string, given: Intrinsics | undefined): { k: Intrinsics; source: string } {
  if (given) return { k: given, source: 'given' };
  const m = /(?:freiburg|fr)_?([123])(?![0-9])/i.exec(path.basename(dir));
  if (!m) {
    throw importError('a folder name naming the TUM camera (freiburg1/2/3 or fr1/2/3)', 'the TUM folder', `'${path.basename(dir)}'`,
      'pass --intrinsics fx,fy,cx,cy (pixels), or rename the folder after its sequence, e.g. rgbd_dataset_freiburg1_desk');
  }
  const key = `fr${m[1]}` as 'fr1' | 'fr2' | 'fr3';
  return { k: TUM_INTRINSICS[key], source: `TUM ${key} defaults (from the folder name)` };
}

function readPositiveInt(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || (v as number) < 1) {
    throw importError('a positive integer', name, describeValue(v), `pass ${name} >= 1`);
  }
  return v as number;
}

/**
 * Builds (and writes, unless `out` is null) a scene manifest for a TUM RGB-D folder.
 *
 * @param dir the folder with rgb.txt, depth.txt and groundtruth.txt.
 * @param out the manifest path: it must lie in `dir` or a folder above it (manifest paths may
 *   not leave its folder); null: build the manifest without writing it. Defaults to `<dir>/scene.json`.
 */
export async function importTum(dir: string, out?: string | null, opts?: ImportTumOptions): Promise<ImportTumResult> {
  if (typeof dir !== 'string') throw importError('a folder path', 'dir', describeValue(dir), 'pass the TUM folder');
  const absDir = path.resolve(dir);
  if (!fs.existsSync(absDir) || !fs.statSync(absDir).isDirectory()) {
    throw importError('a TUM folder (rgb.txt, depth.txt, groundtruth.txt, rgb/, depth/)', 'dir', `'${dir}' (${fs.existsSync(absDir) ? 'not a folder' : 'no such folder'})`,
      'pass the folder of a TUM RGB-D sequence, e.g. rgbd_dataset_freiburg1_desk');
  }
  const maxFrames = readPositiveInt(opts?.maxFrames, 'maxFrames', 32);
  const stride = readPositiveInt(opts?.stride, 'stride', 1);
  const { k, source } = intrinsicsFor(absDir, opts?.intrinsics);
  const manifestPath = out === null ? null : path.resolve(out ?? path.join(absDir, 'scene.json'));
  const base = manifestPath ? path.dirname(manifestPath) : absDir;
  const rel = path.relative(base, absDir);
  if (rel === '..' || rel.startsWith('..' + path.sep) || path.isAbsolute(rel)) {
    throw importError('a manifest path in the TUM folder or a folder above it', '--out', `'${out}'`,
      `write the manifest inside ${absDir} (the default), because a manifest's paths may not leave its folder`);
  }
  const rgb = readTable(path.join(absDir, 'rgb.txt'), 2, 'rgb');
  const depth = readTable(path.join(absDir, 'depth.txt'), 2, 'depth');
  const gtRows = readTable(path.join(absDir, 'groundtruth.txt'), 8, 'groundtruth');
  const gt = gtRows.map((r) => {
    const p = r.cols.slice(1, 8).map(Number);
    if (!p.every(Number.isFinite) || !(Math.hypot(p[3], p[4], p[5], p[6]) > 0)) {
      throw importError('7 finite numbers tx ty tz qx qy qz qw (a non-zero quaternion)', `groundtruth.txt line ${r.line}`, `'${r.cols.join(' ')}'`, 'fix or remove that line');
    }
    return { t: r.t, p };
  }).sort((a, b) => a.t - b.t);
  if (rgb.length === 0) throw importError('at least one frame', 'rgb.txt', 'no frames', 'check that rgb.txt lists the colour images');
  if (gt.length === 0) throw importError('at least one pose', 'groundtruth.txt', 'no poses', 'a TUM folder needs groundtruth.txt to give the scene poses');

  const pairs = associate(rgb.map((r) => r.t), depth.map((r) => r.t));
  const noDepth = rgb.length - pairs.length;
  const posed: { rgb: (typeof rgb)[number]; depth: (typeof depth)[number]; pose: number[] }[] = [];
  let outside = 0;
  for (const [i, j] of pairs) {
    const p = interpolatePose(gt, rgb[i].t);
    if (p) posed.push({ rgb: rgb[i], depth: depth[j], pose: p }); else outside++;
  }
  const strided = posed.filter((_, i) => i % stride === 0);
  let kept = strided;
  if (strided.length > maxFrames) {
    const n = strided.length;
    // numpy round(linspace(0, N-1, n)): round half to even.
    const idx = Array.from({ length: maxFrames }, (_, i) => {
      const x = maxFrames === 1 ? 0 : (i * (n - 1)) / (maxFrames - 1);
      const r = Math.round(x);
      return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
    });
    kept = idx.map((i) => strided[i]);
  }
  if (kept.length === 0) {
    throw importError('at least one rgb frame with a depth frame within 0.02 s and a ground-truth pose', `'${absDir}'`,
      `none (${rgb.length} rgb frames: ${noDepth} without depth, ${outside} outside the ground-truth time range)`,
      'check that rgb.txt, depth.txt and groundtruth.txt come from the same sequence');
  }
  const toManifest = (file: string) => path.relative(base, path.join(absDir, file)).split(path.sep).join('/');
  const frames: ManifestFrame[] = kept.map((f) => ({
    name: f.rgb.cols[0],
    image: toManifest(f.rgb.cols[1]),
    depth: toManifest(f.depth.cols[1]),
    depthScale: TUM_DEPTH_SCALE,
    intrinsics: { ...k },
    pose: tumPoseToMatrix(f.pose),
  }));
  const manifest: SceneManifest = { frames };
  if (opts?.up) manifest.up = [...opts.up];
  if (manifestPath) await writeManifest(manifestPath, manifest, { maxFrames });
  return {
    manifest, path: manifestPath, dir: base, timestamps: kept.map((f) => f.rgb.t), intrinsicsSource: source,
    dropped: { noDepth, outsideGroundtruth: outside, sampled: posed.length - kept.length },
  };
}
