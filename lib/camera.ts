/**
 * Camera inputs shared by every op that takes them: pinhole intrinsics and camera-to-world
 * poses, validated once here with the one error-message shape.
 */
import { describeValue, invalidArgument } from './errors';

/** Pinhole intrinsics in pixels; pixel centres at integer coordinates (no +0.5). */
export interface Intrinsics {
  fx: number;
  fy: number;
  cx: number;
  cy: number;
}

/**
 * A camera-to-world pose: 16 numbers (row-major 4x4) or a 4x4 nested array, OpenCV
 * camera axes (x right, y down, z forward). The last row must be `0 0 0 1`.
 */
export type Pose = ArrayLike<number> | readonly (readonly number[])[];

export function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** One intrinsics object for all `frames`, or one per frame -> (frames,4) float32. */
export function readIntrinsics(k: unknown, frames: number, name = 'intrinsics'): Float32Array {
  const list = Array.isArray(k) ? k : [k];
  if (Array.isArray(k) && list.length !== frames) {
    throw invalidArgument(`one intrinsics object per frame (${frames})`, name, `an array of length ${list.length}`, true);
  }
  const out = new Float32Array(4 * frames);
  for (let f = 0; f < frames; f++) {
    const ki = (list.length === 1 ? list[0] : list[f]) as Partial<Intrinsics> | undefined;
    const at = list.length === 1 ? name : `${name}[${f}]`;
    if (ki === null || typeof ki !== 'object') throw invalidArgument('{ fx, fy, cx, cy } in pixels', at, ki);
    for (const key of ['fx', 'fy', 'cx', 'cy'] as const) {
      const v = ki[key];
      if (!finite(v)) throw invalidArgument('a finite number (pixels)', `${at}.${key}`, v);
      if ((key === 'fx' || key === 'fy') && !(v > 0)) throw invalidArgument('a positive focal length in pixels', `${at}.${key}`, v);
    }
    out.set([ki.fx!, ki.fy!, ki.cx!, ki.cy!], 4 * f);
  }
  return out;
}

/** Whether `p` is one pose (16 numbers, a typed array, or a 4x4 array) rather than a list of poses. */
export function isSinglePose(p: unknown): boolean {
  return ArrayBuffer.isView(p) ||
    (Array.isArray(p) && p.every((x) => typeof x === 'number')) ||
    (Array.isArray(p) && p.length === 4 && p.every((r) => Array.isArray(r) && r.length === 4 && r.every((x: unknown) => typeof x === 'number')));
}

function flattenPose(p: unknown, name: string): number[] {
  let flat: unknown[];
  if (Array.isArray(p) && p.length === 4 && p.every((r) => Array.isArray(r))) flat = (p as unknown[][]).flat();
  else if (Array.isArray(p) || ArrayBuffer.isView(p)) flat = Array.from(p as ArrayLike<number>);
  else throw invalidArgument('16 finite numbers (row-major 4x4 camera-to-world) or a 4x4 array', name, p);
  if (flat.length !== 16 || !flat.every(finite)) {
    throw invalidArgument('16 finite numbers (row-major 4x4 camera-to-world)', name, describeValue(p) + (flat.length === 16 ? ' with a non-finite entry' : ''), true);
  }
  const v = flat as number[];
  if (Math.abs(v[12]) > 1e-6 || Math.abs(v[13]) > 1e-6 || Math.abs(v[14]) > 1e-6 || Math.abs(v[15] - 1) > 1e-6) {
    throw invalidArgument('a rigid/affine pose whose last row is 0 0 0 1', name, `last row ${v.slice(12).join(' ')}`, true);
  }
  return v;
}

/** One pose, or one per frame -> (frames,16) float32; null when not given. */
export function readPoses(pose: unknown, frames: number, name = 'pose'): Float32Array | null {
  if (pose === undefined || pose === null) return null;
  const single = isSinglePose(pose);
  const list = single ? [pose] : pose;
  if (!Array.isArray(list)) throw invalidArgument('a pose or one pose per frame', name, pose);
  if (list.length !== frames) {
    throw invalidArgument(`one camera-to-world pose per frame (${frames})`, name, single ? 'a single pose' : `an array of ${list.length} poses`, true);
  }
  const out = new Float32Array(16 * frames);
  for (let f = 0; f < frames; f++) out.set(flattenPose(list[f], single ? name : `${name}[${f}]`), 16 * f);
  return out;
}
