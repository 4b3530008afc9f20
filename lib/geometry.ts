/**
 * The 3D geometry of SR-3D (spec Part A §A1-A5): back-projection, the scene-wide canonical
 * normalization, the fused scene path, point pooling to patches, and the sinusoidal
 * features of the 3D positional encoding. Every op validates here, runs in a native
 * worker thread and returns a Promise.
 */
import { callNative, outArray, pickImpl } from './dispatch';
import type { DeviceOptions } from './dispatch';
import { finite, readIntrinsics, readPoses } from './camera';
import type { Intrinsics, Pose } from './camera';
import { invalidArgument } from './errors';
import { native } from './native';
import type { NativeMode, NativeTransform } from './native';

export type { DeviceOptions, Intrinsics, Pose };
import { toContiguous, toNdArray } from './tensor';
import type { NdArray, TensorLike } from './tensor';
import { DEPTH_SCALE_NEEDED, DEPTH_SCALE_RULE, isDepthScale } from './validate';




/**
 * Preallocated outputs, reused across calls to avoid allocating (and page-faulting) large
 * arrays every time: each must have exactly the output's element count.
 */
export interface PointsOut {
  /** Float32Array of 3·N elements (N = number of pixels/patches). */
  points?: Float32Array;
  /** Uint8Array of N elements. */
  valid?: Uint8Array;
}

export interface BackprojectOptions extends DeviceOptions {
  /** Write into these arrays instead of allocating new ones. Defaults to none. */
  out?: PointsOut;
  /**
   * Metres per depth unit. Required for uint16 depth (TUM: `1/5000`, ScanNet: `1/1000`);
   * for float32 depth in metres it defaults to `1`.
   */
  depthScale?: number;
  /** Camera-to-world pose: one, or one per frame for a scene. Defaults to none (camera frame). */
  pose?: Pose | readonly Pose[];
}

export type CanonicalMode = 'isotropic' | 'minmax' | 'metric';

export interface CanonicalizeOptions extends DeviceOptions {
  /**
   * canonicalize only: write the canonical points into this Float32Array (same length as
   * the input; it may be the input's own contiguous data for an in-place update). Defaults to a new array.
   */
  outPoints?: Float32Array;
  /**
   * `'isotropic'`: centre of the per-axis quantile box, one scale (half the largest box
   * extent), so the scene fits [-1, 1] with its aspect kept; `'minmax'`: per axis to [0, 1];
   * `'metric'`: unchanged metres. Part A §A3 (our reconstruction, not a published SR-3D
   * value). Defaults to `'isotropic'`.
   */
  mode?: CanonicalMode;
  /**
   * Quantile q of the isotropic box [Q(q), Q(1-q)] per axis (numpy 'linear' quantiles over all
   * valid points of all frames), in [0, 0.5); 0 gives min/max. Defaults to `0.01`.
   */
  quantile?: number;
}

/** `canonical = (world - center) / scale` per axis; `world = canonical * scale + center`. */
export interface CanonicalTransform {
  mode: CanonicalMode;
  /** Metres. */
  center: [number, number, number];
  /** Metres per canonical unit, per axis (equal on all axes for isotropic and metric). */
  scale: [number, number, number];
  /** Number of valid points the reduction saw. */
  validCount: number;
}

export interface BackprojectResult {
  /** (…,H,W,3) float32 metres; NaN where the depth was invalid. */
  points: NdArray<Float32Array>;
  /** (…,H,W) uint8: 1 where the depth was valid (finite, > 0). */
  valid: NdArray<Uint8Array>;
}

export interface CanonicalizeResult extends CanonicalTransform {
  /** Canonical points, same shape as the input; NaN where invalid. */
  points: NdArray<Float32Array>;
}

export type ScenePointsResult = CanonicalizeResult & { valid: NdArray<Uint8Array> };

/** Options of {@link scenePoints}: back-projection and canonicalization (outputs via `out`). */
export type ScenePointsOptions = BackprojectOptions & Omit<CanonicalizeOptions, 'outPoints'> & {
  /**
   * `'canonical'`: the points come back normalized. `'world'`: they come back in metres
   * (exactly `backproject`'s) with the transform to apply downstream, e.g. after pooling
   * (pooling is linear): the fusion plan of performance.md §2, one pass over the depth on the
   * CPU and the fastest choice for a pipeline. Defaults to `'canonical'`.
   */
  output?: 'canonical' | 'world';
};

// ------------------------------------------------------------------------------------







function depthBaton(depth: TensorLike, intrinsics: Intrinsics | readonly Intrinsics[], opts: BackprojectOptions | undefined) {
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgument('an options object', 'options', opts);
  const d = toContiguous(depth, 'depth', {
    dtypes: ['float32', 'uint16'], ranks: [2, 3], what: 'a depth map (H,W) or a scene (F,H,W), float32 metres or uint16 units',
  });
  const [frames, height, width] = d.shape.length === 2 ? [1, d.shape[0], d.shape[1]] : d.shape;
  let depthScale = opts?.depthScale;
  if (depthScale === undefined) {
    if (d.dtype === 'uint16') {
      throw invalidArgument(DEPTH_SCALE_NEEDED, 'depthScale', undefined);
    }
    depthScale = 1;
  }
  if (!isDepthScale(depthScale)) throw invalidArgument(DEPTH_SCALE_RULE, 'depthScale', depthScale);
  const n = frames * height * width;
  return {
    outShape: d.shape,
    baton: {
      depth: d.data as Float32Array | Uint16Array,
      depthDtype: d.dtype as 'float32' | 'uint16',
      frames, height, width, depthScale,
      intrinsics: readIntrinsics(intrinsics, frames),
      poses: readPoses(opts?.pose, frames),
      points: outArray(opts?.out?.points, Float32Array, 3 * n, 'out.points'),
      valid: outArray(opts?.out?.valid, Uint8Array, n, 'out.valid'),
    },
  };
}


function readCanonical(opts: CanonicalizeOptions | undefined): { mode: NativeMode; quantile: number } {
  const mode = opts?.mode ?? 'isotropic';
  if (!['isotropic', 'minmax', 'metric'].includes(mode)) throw invalidArgument("'isotropic', 'minmax' or 'metric'", 'mode', mode);
  const quantile = opts?.quantile ?? 0.01;
  if (!finite(quantile) || quantile < 0 || quantile >= 0.5) throw invalidArgument('a number in [0, 0.5)', 'quantile', quantile);
  return { mode, quantile };
}

function transformOf(mode: CanonicalMode, t: NativeTransform): CanonicalTransform {
  return { mode, center: t.center, scale: t.scale, validCount: t.validCount };
}

// ------------------------------------------------------------------------------------

/**
 * Back-projects depth to 3D points (Part A §A2): `x = (u - cx) z / fx`, `y = (v - cy) z / fy`,
 * `z`, at integer pixel centres, then `R p + t` when a camera-to-world pose is given.
 *
 * @param depth (H,W) or a scene (F,H,W): float32 metres, or uint16 with `depthScale`.
 *   0, negative, NaN and Inf are invalid.
 * @param intrinsics one `{fx, fy, cx, cy}` for all frames, or one per frame.
 */
export async function backproject(
  depth: TensorLike, intrinsics: Intrinsics | readonly Intrinsics[], opts?: BackprojectOptions,
): Promise<BackprojectResult> {
  const addon = native();
  const { baton, outShape } = depthBaton(depth, intrinsics, opts);
  const sel = pickImpl(opts, addon);
  await callNative(() => addon.backproject({ ...baton, ...sel }));
  return { points: toNdArray(baton.points, [...outShape, 3]), valid: toNdArray(baton.valid, outShape) };
}

/**
 * The fused scene path: depth + intrinsics + poses of all frames -> canonical points and
 * the scene-wide transform in one call (the world points are never stored on the CPU).
 * Gives exactly `canonicalize((await backproject(...)).points, opts)`.
 */
export async function scenePoints(
  depth: TensorLike, intrinsics: Intrinsics | readonly Intrinsics[], opts?: ScenePointsOptions,
): Promise<ScenePointsResult> {
  const addon = native();
  const { baton, outShape } = depthBaton(depth, intrinsics, opts);
  const c = readCanonical(opts);
  const output = opts?.output ?? 'canonical';
  if (output !== 'canonical' && output !== 'world') throw invalidArgument("'canonical' or 'world'", 'output', output);
  const sel = pickImpl(opts, addon);
  const t = await callNative(() => addon.scenePoints({ ...baton, ...c, output, ...sel }));
  return {
    ...transformOf(c.mode, t),
    points: toNdArray(baton.points, [...outShape, 3]),
    valid: toNdArray(baton.valid, outShape),
  };
}

/**
 * Normalizes points of a whole scene to the canonical space (Part A §A3). The reduction
 * runs over every valid point (all three coordinates finite) of all frames.
 *
 * @param points (…,3) float32 metres.
 */
export async function canonicalize(points: TensorLike, opts?: CanonicalizeOptions): Promise<CanonicalizeResult> {
  const addon = native();
  const p = toContiguous(points, 'points', { dtypes: ['float32'], lastDim: 3, what: 'points (…,3)' });
  if (p.shape.length < 1) throw invalidArgument('points (…,3)', 'points.shape', '[]', true);
  const c = readCanonical(opts);
  const count = p.data.length / 3;
  const out = outArray(opts?.outPoints, Float32Array, p.data.length, 'outPoints');
  const sel = pickImpl(opts, addon);
  const t = await callNative(() => addon.canonicalize({ points: p.data as Float32Array, out, count, ...c, ...sel }));
  return { ...transformOf(c.mode, t), points: toNdArray(out, p.shape) };
}

/**
 * Applies a canonical transform to points in metres: `canonical = (world - center) / scale`
 * per axis, with the kernels' float32 arithmetic (`(p - f32(center)) * f32(1 / scale)`), so it
 * equals what `canonicalize` / `scenePoints` write bit for bit. Use it after pooling the
 * `scenePoints({ output: 'world' })` points. Non-finite points stay NaN.
 */
export function toCanonical(points: TensorLike, transform: Pick<CanonicalTransform, 'center' | 'scale'>): NdArray<Float32Array> {
  const p = toContiguous(points, 'points', { dtypes: ['float32'], lastDim: 3, what: 'points in metres (…,3)' });
  const { center, scale } = transform ?? ({} as CanonicalTransform);
  if (!Array.isArray(center) || center.length !== 3 || !center.every(finite)) throw invalidArgument('3 finite numbers', 'transform.center', center);
  if (!Array.isArray(scale) || scale.length !== 3 || !scale.every((s) => finite(s) && s > 0)) throw invalidArgument('3 positive numbers', 'transform.scale', scale);
  const c = center.map(Math.fround), inv = scale.map((s) => Math.fround(1 / s));
  const out = new Float32Array(p.data.length);
  for (let i = 0; i < out.length; i += 3) {
    const ok = Number.isFinite(p.data[i]) && Number.isFinite(p.data[i + 1]) && Number.isFinite(p.data[i + 2]);
    for (let a = 0; a < 3; a++) out[i + a] = ok ? Math.fround(Math.fround(p.data[i + a] - c[a]) * inv[a]) : NaN;
  }
  return toNdArray(out, p.shape);
}

/** Maps canonical points back to metres: `world = canonical * scale + center` (float64 math, float32 out). */
export function toMetric(points: TensorLike, transform: Pick<CanonicalTransform, 'center' | 'scale'>): NdArray<Float32Array> {
  const p = toContiguous(points, 'points', { dtypes: ['float32'], lastDim: 3, what: 'canonical points (…,3)' });
  const { center, scale } = transform ?? ({} as CanonicalTransform);
  if (!Array.isArray(center) || center.length !== 3 || !center.every(finite)) throw invalidArgument('3 finite numbers', 'transform.center', center);
  if (!Array.isArray(scale) || scale.length !== 3 || !scale.every((s) => finite(s) && s > 0)) throw invalidArgument('3 positive numbers', 'transform.scale', scale);
  const out = new Float32Array(p.data.length);
  for (let i = 0; i < out.length; i += 3) {
    for (let a = 0; a < 3; a++) out[i + a] = p.data[i + a] * scale[a] + center[a];
  }
  return toNdArray(out, p.shape);
}

export interface PoolOptions extends DeviceOptions {
  /** Write into these arrays instead of allocating new ones. Defaults to none. */
  out?: PointsOut;
  /** Patch size in pixels (SigLIP: 14, so a 448 tile gives 32x32 patches). Defaults to `14`. */
  patch?: number;
}

export interface PoolResult {
  /** (…,ceil(H/P),ceil(W/P),3) mean of the valid points of each patch; NaN where none. */
  points: NdArray<Float32Array>;
  /** (…,ceil(H/P),ceil(W/P)) uint8: 1 where the patch had a valid point (0 = no PE there). */
  valid: NdArray<Uint8Array>;
}

/**
 * Masked mean of the valid points in each `patch`x`patch` block (Part A §A4). Edge patches
 * of sizes that are not multiples of `patch` average the pixels they have.
 *
 * @param points (…,H,W,3) float32; invalid points are NaN (any non-finite coordinate).
 */
export async function poolPointsToPatches(points: TensorLike, opts?: PoolOptions): Promise<PoolResult> {
  const addon = native();
  const p = toContiguous(points, 'points', { dtypes: ['float32'], lastDim: 3, what: 'a point map (…,H,W,3)' });
  if (p.shape.length < 3) throw invalidArgument('a point map (…,H,W,3) of rank >= 3', 'points.shape', `[${p.shape.join(', ')}]`, true);
  const patch = opts?.patch ?? 14;
  if (!Number.isInteger(patch) || patch < 1) throw invalidArgument('a positive integer (pixels)', 'patch', patch);
  const lead = p.shape.slice(0, -3);
  const [height, width] = p.shape.slice(-3, -1);
  const batch = lead.reduce((a, b) => a * b, 1);
  const hp = Math.ceil(height / patch), wp = Math.ceil(width / patch);
  const pooled = outArray(opts?.out?.points, Float32Array, batch * hp * wp * 3, 'out.points');
  const valid = outArray(opts?.out?.valid, Uint8Array, batch * hp * wp, 'out.valid');
  const sel = pickImpl(opts, addon);
  await callNative(() => addon.poolPoints({ points: p.data as Float32Array, batch, height, width, patch, pooled, valid, ...sel }));
  return { points: toNdArray(pooled, [...lead, hp, wp, 3]), valid: toNdArray(valid, [...lead, hp, wp]) };
}

export interface SinusoidalOptions extends DeviceOptions {
  /** Number of frequencies L (2^0 … 2^(L-1), times pi). Defaults to `16`. */
  numFreqs?: number;
  /** Put the coordinate itself first in each axis block. Defaults to `true`. */
  includeInput?: boolean;
  /** Write the features into this Float32Array (N·width elements). Defaults to a new array. */
  out?: Float32Array;
}

/**
 * Sinusoidal features of the 3D PE (Part A §A5), axis-major: for each of x, y, z the block
 * `[p, sin(2^0 π p), cos(2^0 π p), …, sin(2^(L-1) π p), cos(2^(L-1) π p)]`, so L = 16 with the
 * input gives 3·33 = 99 features. A point with a non-finite coordinate gives a row of NaN.
 *
 * @param points (…,3) float32, canonical coordinates.
 * @returns (…,3·((includeInput ? 1 : 0) + 2L)) float32.
 */
export async function sinusoidalEncode(points: TensorLike, opts?: SinusoidalOptions): Promise<NdArray<Float32Array>> {
  const addon = native();
  const p = toContiguous(points, 'points', { dtypes: ['float32'], lastDim: 3, what: 'points (…,3)' });
  const numFreqs = opts?.numFreqs ?? 16;
  const includeInput = opts?.includeInput ?? true;
  if (!Number.isInteger(numFreqs) || numFreqs < 0 || numFreqs > 30) throw invalidArgument('an integer in [0, 30]', 'numFreqs', numFreqs);
  if (typeof includeInput !== 'boolean') throw invalidArgument('a boolean', 'includeInput', includeInput);
  const width = 3 * ((includeInput ? 1 : 0) + 2 * numFreqs);
  if (width === 0) throw invalidArgument('at least one feature (numFreqs > 0 or includeInput)', 'numFreqs', numFreqs);
  const count = p.data.length / 3;
  const features = outArray(opts?.out, Float32Array, count * width, 'out');
  const sel = pickImpl(opts, addon);
  await callNative(() => addon.sinusoidalEncode({ points: p.data as Float32Array, count, numFreqs, includeInput, features, ...sel }));
  return toNdArray(features, [...p.shape.slice(0, -1), width]);
}
