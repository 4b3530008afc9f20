/**
 * Region prompts (spec Part A §A6-A7, Part B §6, §8): 2D boxes and 3D boxes to masks, the
 * stitched feature grid of a tiled image, and mask pooling of vision features into one
 * vector per region. The native ops validate here, run in a native worker thread and return
 * a Promise; {@link boxToMask} is plain JavaScript.
 *
 * What is this project's reconstruction ([INFERRED] in the spec, not a published SR-3D
 * choice): the `area` pooling mode (the default), joint pooling of a region over several
 * frames, the 3D box to mask methods (point-in-box test, projected hull), and the box
 * conventions below. `spatialrgpt` pooling reproduces SpatialRGPT's public MaskPooling.
 */
import { finite, isSinglePose, readIntrinsics, readPoses } from './camera';
import type { Intrinsics, Pose } from './camera';
import { allocArray, callNative, outArray, pickImpl } from './dispatch';
import type { DeviceOptions } from './dispatch';
import { invalidArgument } from './errors';
import { native } from './native';
import { toContiguous, toNdArray } from './tensor';
import type { NdArray, TensorLike } from './tensor';

function checkOptions(opts: unknown): void {
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgument('an options object', 'options', opts);
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

// ---- 2D boxes ------------------------------------------------------------------------

/** A 2D box in pixels: columns `x0 <= x < x1`, rows `y0 <= y < y1` (x right, y down). */
export interface Box2d {
  /** Left edge, pixels (first column in the box, after truncation). */
  x0: number;
  /** Top edge, pixels (first row in the box, after truncation). */
  y0: number;
  /** Right edge, pixels (exclusive). */
  x1: number;
  /** Bottom edge, pixels (exclusive). */
  y1: number;
}

/**
 * A box prompt as a mask, the SpatialRGPT way (`x1, y1, x2, y2 = map(int, bbox);
 * mask[y1:y2, x1:x2] = 1`): each coordinate is truncated toward zero (Python `int()`), then
 * clamped to `[0, width]` (x) and `[0, height]` (y) — where numpy would wrap a negative index
 * instead — and `mask[y0:y1, x0:x1] = 1` with the upper bounds exclusive. Plain JavaScript
 * (no native call, no CUDA path: it only fills a rectangle).
 *
 * A box with a non-finite coordinate, or one that covers no pixel after clamping (empty,
 * reversed, or fully outside the frame), is an {@link InvalidArgumentError} naming `box`.
 *
 * @param box pixel coordinates.
 * @param width frame width in pixels (a positive integer).
 * @param height frame height in pixels (a positive integer).
 * @returns (height, width) uint8 mask of 0/1.
 */
export function boxToMask(box: Box2d, width: number, height: number): NdArray<Uint8Array> {
  if (!Number.isInteger(width) || width < 1) throw invalidArgument('a positive integer (pixels)', 'width', width);
  if (!Number.isInteger(height) || height < 1) throw invalidArgument('a positive integer (pixels)', 'height', height);
  if (box === null || typeof box !== 'object') throw invalidArgument('a box { x0, y0, x1, y1 } in pixels', 'box', box);
  for (const k of ['x0', 'y0', 'x1', 'y1'] as const) {
    if (!finite(box[k])) throw invalidArgument('a finite number (pixels)', `box.${k}`, box[k]);
  }
  const clamp = (v: number, hi: number) => Math.min(Math.max(Math.trunc(v), 0), hi);
  const x0 = clamp(box.x0, width), x1 = clamp(box.x1, width), y0 = clamp(box.y0, height), y1 = clamp(box.y1, height);
  if (x1 <= x0 || y1 <= y0) {
    throw invalidArgument(`a box covering at least one pixel of the ${width}x${height} frame`, 'box',
      `{ x0: ${box.x0}, y0: ${box.y0}, x1: ${box.x1}, y1: ${box.y1} } (columns ${x0}..${x1}, rows ${y0}..${y1} after truncation and clamping)`, true);
  }
  const mask = allocArray(Uint8Array, width * height, 'width x height');
  for (let y = y0; y < y1; y++) mask.fill(1, y * width + x0, y * width + x1);
  return toNdArray(mask, [height, width]);
}

// ---- 3D boxes ------------------------------------------------------------------------

/**
 * An oriented 3D box in world coordinates (metres): `p_world = R p_box + center`, the box
 * spanning `[-size/2, size/2]` on each of its own axes. Give either `yaw` or `rotation`
 * (neither: axis-aligned). [INFERRED: SR-3D names "3D bounding boxes" without a format; this
 * is the EmbodiedScan-style center/size/rotation form.]
 */
export interface Box3d {
  /** Centre, metres (world frame). */
  center: ArrayLike<number>;
  /** FULL extents along the box's own x, y, z axes, metres (all positive). */
  size: ArrayLike<number>;
  /** Rotation about the world +z axis, radians (`R = Rz(yaw)`). Defaults to `0`. */
  yaw?: number;
  /** Box-to-world rotation: 9 numbers row-major or a 3x3 array (orthonormal, det +1). Defaults to the identity. */
  rotation?: ArrayLike<number> | readonly (readonly number[])[];
}

export interface Box3dMasksOptions extends DeviceOptions {
  /**
   * `'inside'`: a pixel is in the mask when its point lies in the box (occlusion-aware: only
   * the surfaces each frame sees). `'project'`: the box's projected outline, filled
   * (ignores occlusion; needs `intrinsics`). [INFERRED, spec Part A §A7, Part B §8.]
   * Defaults to `'inside'`.
   */
  mode?: 'inside' | 'project';
  /** `'project'` only: pinhole intrinsics in pixels, one for all frames or one per frame. Required there. */
  intrinsics?: Intrinsics | readonly Intrinsics[];
  /**
   * `'project'` only: camera-to-world poses (row-major 4x4 or 4x4 arrays, OpenCV axes), one
   * per frame (a single pose for one frame). Defaults to none: the box is in camera coordinates.
   */
  poses?: Pose | readonly Pose[];
  /** `'project'` only: frame width in pixels. Defaults to the width of `points` (required without points). */
  width?: number;
  /** `'project'` only: frame height in pixels. Defaults to the height of `points` (required without points). */
  height?: number;
  /**
   * `'project'` only: the box is clipped to `z >= near` in each camera before projecting,
   * metres. Defaults to `0.001`.
   */
  near?: number;
  /**
   * Grow the box by this much on every side (both modes), metres. A box fitted tightly to an
   * object has the object's surfaces on its faces, where depth noise and fitting error put
   * about half of the measured points just outside: a few centimetres recover them (the TUM
   * cabinet test uses 0.05). Defaults to `0` (the box as given).
   */
  margin?: number;
  /** Write the masks into this Uint8Array (F·H·W elements). Defaults to a new array. */
  out?: Uint8Array;
}

export interface Box3dMasksResult {
  /** (F,H,W) uint8 0/1 ((H,W) for a single (H,W,3) point map). */
  masks: NdArray<Uint8Array>;
  /**
   * Per frame: `'inside'`: the fraction of the frame's valid pixels (finite points) in the
   * mask (0 when none is valid); `'project'`: the fraction of all its pixels.
   */
  coverage: number[];
  /** Per frame: pixels in the mask. */
  pixels: number[];
}

function vec3(v: unknown, name: string, positive: boolean): number[] {
  const what = positive ? '3 finite positive numbers (metres)' : '3 finite numbers (metres)';
  if (!(Array.isArray(v) || ArrayBuffer.isView(v))) throw invalidArgument(what, name, v);
  const a = Array.from(v as ArrayLike<number>);
  if (a.length !== 3 || !a.every((x) => finite(x) && (!positive || x > 0))) throw invalidArgument(what, name, `[${a.join(', ')}]`, true);
  return a;
}

/** center (3), box-to-world rotation (9, row-major), half extents + margin (3). */
function readBox3d(box: unknown, margin: number): Float64Array {
  if (box === null || typeof box !== 'object' || Array.isArray(box)) {
    throw invalidArgument('a box { center, size, yaw? | rotation? }', 'box3d', box);
  }
  const b = box as Partial<Box3d>;
  const center = vec3(b.center, 'box3d.center', false);
  const size = vec3(b.size, 'box3d.size', true);
  if (b.yaw !== undefined && b.rotation !== undefined) {
    throw invalidArgument('either yaw or rotation, not both', 'box3d', 'both', true);
  }
  let R = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  if (b.yaw !== undefined) {
    if (!finite(b.yaw)) throw invalidArgument('a finite angle (radians)', 'box3d.yaw', b.yaw);
    const c = Math.cos(b.yaw), s = Math.sin(b.yaw);
    R = [c, -s, 0, s, c, 0, 0, 0, 1];
  } else if (b.rotation !== undefined) {
    const r = b.rotation as unknown;
    const flat = Array.isArray(r) && r.length === 3 && r.every((row) => Array.isArray(row))
      ? (r as number[][]).flat()
      : Array.isArray(r) || ArrayBuffer.isView(r) ? Array.from(r as ArrayLike<number>) : null;
    if (!flat || flat.length !== 9 || !flat.every(finite)) {
      throw invalidArgument('9 finite numbers (row-major 3x3) or a 3x3 array', 'box3d.rotation', r);
    }
    // Orthonormal with det +1 (to 1e-4: float32-derived rotations pass).
    let err = 0;
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
      let d = 0;
      for (let k = 0; k < 3; k++) d += flat[3 * k + i] * flat[3 * k + j];
      err = Math.max(err, Math.abs(d - (i === j ? 1 : 0)));
    }
    const det = flat[0] * (flat[4] * flat[8] - flat[5] * flat[7]) - flat[1] * (flat[3] * flat[8] - flat[5] * flat[6]) +
      flat[2] * (flat[3] * flat[7] - flat[4] * flat[6]);
    if (err > 1e-4 || det < 0) {
      throw invalidArgument('a rotation (R^T R = I to 1e-4, det +1)', 'box3d.rotation',
        `a matrix with |R^T R - I| = ${err.toPrecision(3)}, det ${det.toPrecision(3)}`, true);
    }
    R = flat;
  }
  return Float64Array.from([...center, ...R, ...size.map((s) => s / 2 + margin)]);
}




/**
 * Per-frame masks of a 3D box (spec Part A §A7; [INFERRED] method, Part B §8).
 *
 * `'inside'` (default): pixel (f, v, u) is in the mask when its point `p` is valid (three
 * finite coordinates) and `p_local = R^T (p - center)` satisfies `|p_local| <= size / 2 + margin`
 * on all three axes (boundary included), evaluated in float32 in a fixed order on every path.
 * Because only the points each frame actually sees are tested, occluded parts of the box
 * are not in the mask.
 *
 * `'project'`: per frame, the 8 corners go to the camera frame (inverse of the camera-to-world
 * pose), the box is clipped to `z >= near` (corners in front plus the points where its 12
 * edges cross the plane; nothing in front: an empty mask), projected with
 * `u = fx x / z + cx, v = fy y / z + cy`, and the pixels whose centre (integer `(u, v)`) lies
 * in the closed 2D convex hull are set (float64). A hull of zero area gives an empty mask.
 *
 * @param points (F,H,W,3) or (H,W,3) float32 world points, NaN = invalid, e.g. `backproject`
 *   with poses; `null` is allowed in `'project'` mode (then `width`/`height` and the number
 *   of poses or intrinsics give the frames).
 * @param box3d the box, metres.
 */
export async function box3dToMasks(points: TensorLike | null, box3d: Box3d, opts?: Box3dMasksOptions): Promise<Box3dMasksResult> {
  checkOptions(opts);
  const addon = native();
  const mode = opts?.mode ?? 'inside';
  if (mode !== 'inside' && mode !== 'project') throw invalidArgument("'inside' or 'project'", 'mode', mode);
  const margin = opts?.margin ?? 0;
  if (!finite(margin) || margin < 0) throw invalidArgument('a finite non-negative distance (metres)', 'margin', margin);
  const box = readBox3d(box3d, margin);
  let frames: number, height: number, width: number, outShape: number[];
  let pts: Float32Array | undefined;
  if (points !== null && points !== undefined) {
    const p = toContiguous(points, 'points', { dtypes: ['float32'], ranks: [3, 4], lastDim: 3, what: 'a point map (H,W,3) or frames (F,H,W,3)' });
    [frames, height, width] = p.shape.length === 3 ? [1, p.shape[0], p.shape[1]] : p.shape;
    outShape = p.shape.slice(0, -1);
    pts = p.data as Float32Array;
  } else {
    if (mode === 'inside') throw invalidArgument("a point map (F,H,W,3) (only mode 'project' works without points)", 'points', points);
    const poses: unknown = opts?.poses, intr: unknown = opts?.intrinsics;
    frames = Array.isArray(poses) && !isSinglePose(poses) ? poses.length : Array.isArray(intr) ? intr.length : 1;
    if (frames < 1) throw invalidArgument('at least one frame (one pose or intrinsics each)', 'poses', 'an empty list', true);
    [height, width] = [opts?.height as number, opts?.width as number];
    for (const [k, v] of [['width', width], ['height', height]] as const) {
      if (!Number.isInteger(v) || v < 1) throw invalidArgument('a positive integer (pixels; required without points)', k, v);
    }
    outShape = [frames, height, width];
  }
  const extra: { points?: Float32Array; intrinsics?: Float32Array; poses?: Float32Array | null; near?: number } = {};
  if (mode === 'inside') {
    extra.points = pts;
  } else {
    for (const [k, v] of [['width', width], ['height', height]] as const) {
      const given = opts?.[k];
      if (given !== undefined && given !== v) throw invalidArgument(`${v} (the ${k} of points)`, k, given);
    }
    if (opts?.intrinsics === undefined) throw invalidArgument("pinhole intrinsics for mode 'project'", 'intrinsics', undefined);
    extra.intrinsics = readIntrinsics(opts.intrinsics, frames);
    extra.poses = readPoses(opts.poses, frames, 'poses');
    const near = opts.near ?? 1e-3;
    if (!finite(near) || !(near > 0)) throw invalidArgument('a finite positive distance (metres)', 'near', near);
    extra.near = near;
  }
  const masks = outArray(opts?.out, Uint8Array, frames * height * width, 'out');
  const sel = pickImpl(opts, addon);
  const r = await callNative(() => addon.box3dMasks({ mode, frames, height, width, box, masks, ...extra, ...sel }));
  return {
    masks: toNdArray(masks, outShape),
    pixels: r.inside,
    coverage: r.inside.map((n, f) => (r.valid[f] > 0 ? n / r.valid[f] : 0)),
  };
}

// ---- stitching and pooling -----------------------------------------------------------

/**
 * A tiling's grid: `cols` tiles across, `rows` down, row-major (NVILA `dynamic_preprocess`,
 * spec Part B §2.3). Any object with these two fields works, e.g. a tiling plan.
 */
export interface StitchPlan {
  /** Tiles across (a positive integer). */
  cols: number;
  /** Tiles down (a positive integer). */
  rows: number;
  /**
   * Tiles the features hold (a tiling plan's count: cols·rows, + 1 for the thumbnail). Defaults
   * to none: cols·rows or cols·rows + 1 are both accepted.
   */
  tiles?: number;
}

interface Grid {
  baton: { layout: 'frames'; frames: number; height: number; width: number; channels: number } |
    { layout: 'tiles'; tiles: number; tile: number; cols: number; rows: number; channels: number };
  frames: number;
  height: number;
  width: number;
  channels: number;
  data: Float32Array;
}

function readGrid(features: TensorLike, plan: unknown, planName: string): Grid {
  if (plan !== undefined) {
    if (plan === null || typeof plan !== 'object') throw invalidArgument('a plan { cols, rows }', planName, plan);
    const { cols, rows } = plan as Partial<StitchPlan>;
    if (!Number.isInteger(cols) || cols! < 1) throw invalidArgument('a positive integer', `${planName}.cols`, cols);
    if (!Number.isInteger(rows) || rows! < 1) throw invalidArgument('a positive integer', `${planName}.rows`, rows);
    const f = toContiguous(features, 'features', { dtypes: ['float32'], ranks: [4], what: 'tile features (N,g,g,C)' });
    const [n, g, g2, channels] = f.shape;
    const grid = cols! * rows!;
    if (g !== g2 || g < 1 || channels < 1) {
      throw invalidArgument('tile features (N,g,g,C) with square, non-empty tiles', 'features.shape', shapeText(f.shape), true);
    }
    // A tiling plan also says how many tiles it made (planTiles: cols·rows, + 1 thumbnail when > 1).
    const planned = (plan as { tiles?: unknown }).tiles;
    if (typeof planned === 'number' ? n !== planned : n !== grid && n !== grid + 1) {
      const want = typeof planned === 'number' ? `${planned} tiles (${planName}.tiles)` : `${grid} tiles (cols x rows = ${cols} x ${rows}) or ${grid + 1} (with the thumbnail last)`;
      throw invalidArgument(want, 'features.shape', `${shapeText(f.shape)} (${n} tiles)`, true);
    }
    return { baton: { layout: 'tiles', tiles: n, tile: g, cols: cols!, rows: rows!, channels },
      frames: 1, height: rows! * g, width: cols! * g, channels, data: f.data as Float32Array };
  }
  const f = toContiguous(features, 'features', { dtypes: ['float32'], ranks: [3, 4], what: 'features (h,w,C) or frames (F,h,w,C)' });
  const [frames, height, width, channels] = f.shape.length === 3 ? [1, ...f.shape] : f.shape;
  if (frames < 1 || height < 1 || width < 1 || channels < 1) {
    throw invalidArgument('non-empty features (h,w,C) or (F,h,w,C)', 'features.shape', shapeText(f.shape), true);
  }
  return { baton: { layout: 'frames', frames, height, width, channels }, frames, height, width, channels, data: f.data as Float32Array };
}

// maskPool's masksLayout 'tiles': per-tile masks (M,K,T,T) of a tiles grid, stitched natively.
async function maskPoolTiles(g: Grid, masks: TensorLike, mode: 'area' | 'spatialrgpt', patch: number, opts: MaskPoolOptions): Promise<NdArray<Float32Array>> {
  const addon = native();
  if (g.baton.layout !== 'tiles') throw invalidArgument("a plan { cols, rows } (masksLayout 'tiles' pools tile features)", 'plan', opts.plan);
  const { tile, cols, rows } = g.baton;
  const T = patch * tile, grid = cols * rows;
  const what = `per-tile masks (M,${grid},${T},${T}) or (M,${grid + 1},${T},${T}) with the thumbnail (${patch} px per token of the ${tile}x${tile} tiles)`;
  const m = toContiguous(masks, 'masks', { dtypes: ['uint8'], ranks: [4], what });
  const [regions, K, th, tw] = m.shape;
  if (regions < 1) throw invalidArgument('at least one region', 'masks.shape', shapeText(m.shape), true);
  if (regions > 65535) throw invalidArgument('at most 65535 regions', 'masks.shape', shapeText(m.shape), true);
  if ((K !== grid && K !== grid + 1) || th !== T || tw !== T) throw invalidArgument(what, 'masks.shape', shapeText(m.shape), true);
  const out = outArray(opts.out, Float32Array, regions * g.channels, 'out');
  const sel = pickImpl(opts, addon);
  await callNative(() => addon.maskPool({ ...g.baton, features: g.data, masks: m.data as Uint8Array, maskTiles: K, regions, patch, mode, out, ...sel }));
  return toNdArray(out, [regions, g.channels]);
}

export interface StitchOptions extends DeviceOptions {
  /** Write the grid into this Float32Array (rows·g·cols·g·C elements). Defaults to a new array. */
  out?: Float32Array;
}

/**
 * The stitched feature grid of a tiled image (spec Part A §A6, Part B §6.2 step 2): tile k
 * (row-major, `k = row * cols + col`) goes to rows `row*g..`, columns `col*g..`. A thumbnail
 * (tile `cols*rows`, last) is not used. {@link maskPool} reads the tiles in place with the same
 * mapping; this materialized copy is for callers that want the grid itself.
 *
 * @param features (N,g,g,C) float32 per-tile features (SigLIP: g = 32, C = 1152), N = cols·rows
 *   or cols·rows + 1.
 * @returns (rows·g, cols·g, C) float32.
 */
export async function stitchTiles(features: TensorLike, plan: StitchPlan, opts?: StitchOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const addon = native();
  if (plan === undefined) throw invalidArgument('a plan { cols, rows }', 'plan', plan);
  const g = readGrid(features, plan, 'plan');
  const out = outArray(opts?.out, Float32Array, g.height * g.width * g.channels, 'out');
  const sel = pickImpl(opts, addon);
  await callNative(() => addon.stitchTiles({ ...g.baton, features: g.data, out, ...sel }));
  return toNdArray(out, [g.height, g.width, g.channels]);
}

export interface MaskPoolOptions extends DeviceOptions {
  /**
   * `'area'`: a token's weight is the fraction of its patch×patch pixels inside the mask,
   * `out = Σ w f / Σ w`, so any non-empty mask pools to a non-zero vector [INFERRED, spec Part A
   * §A6]. `'spatialrgpt'`: SpatialRGPT's MaskPooling exactly (spec Part B §6.1): the mask
   * downsampled by torch's bilinear `F.interpolate(scale_factor = 1/patch,
   * align_corners=False)` (no antialias: for patch 14 the mean of the 2x2 pixels at each block
   * centre), `w = d / (Σ d + 1e-8)` in float32, `out = Σ w f`; a mask that covers no block
   * centre gives the zero vector, as the reference does. Defaults to `'area'`.
   */
  mode?: 'area' | 'spatialrgpt';
  /**
   * `features` are per-tile (N,g,g,C) of this tiling grid, read in place as the stitched
   * (rows·g, cols·g) grid (no stitched copy is made). Defaults to none: `features` are
   * (h,w,C) or frames (F,h,w,C).
   */
  plan?: StitchPlan;
  /** Pixels per token along each side (SigLIP so400m/14: 14). Defaults to `14`. */
  patch?: number;
  /** Write the result into this Float32Array (M·C elements). Defaults to a new array. */
  out?: Float32Array;
  /**
   * `'tiles'` (with `plan`): `masks` are per tile as {@link tileMask} gives them, (M,K,T,T)
   * with K = cols·rows grid tiles, or cols·rows + 1 with the thumbnail last (not used), and
   * T = patch·g; they pool exactly as the stitched (M, rows·T, cols·T) mask would (the
   * stitch happens natively). Defaults to `'stitched'`.
   */
  masksLayout?: 'stitched' | 'tiles';
}

/**
 * One feature vector per region: the mask-weighted mean of the vision tokens (spec Part A
 * §A6, Part B §6). All regions are pooled in one pass over the features (the per-region token
 * weights, M×F×h×w numbers, come first). A region with masks on several frames pools jointly
 * into one vector (frames where its mask is empty add nothing) [INFERRED, Part B §6.2 step 5].
 *
 * Arithmetic: float64 sums over the tokens in (frame, row, column) order, rounded to float32
 * once; tokens of zero weight are not read. The fast CPU path equals the C++ reference bit for
 * bit; CUDA is within 1 float32 ulp of it. `'spatialrgpt'` weights are bit-exact to torch's
 * float32 `mask / (mask.sum() + 1e-8)` (for patch 14); the weighted sum differs from torch's
 * float32 einsum only by torch's own float32 rounding.
 *
 * A region whose mask is zero on every frame is an {@link InvalidArgumentError} naming
 * `masks[m]` (in both modes).
 *
 * @param features (h,w,C) or (F,h,w,C) float32 token features (a stitched grid, or frames);
 *   or, with `plan`, the (N,g,g,C) tiles.
 * @param masks (M,H,W) or (M,F,H,W) uint8 region masks (nonzero = inside) at the features'
 *   pixel resolution: H = patch·h, W = patch·w (a tiled image: rows·448 x cols·448).
 * @returns (M,C) float32.
 */
export async function maskPool(features: TensorLike, masks: TensorLike, opts?: MaskPoolOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const addon = native();
  const mode = opts?.mode ?? 'area';
  if (mode !== 'area' && mode !== 'spatialrgpt') throw invalidArgument("'area' or 'spatialrgpt'", 'mode', mode);
  const patch = opts?.patch ?? 14;
  if (!Number.isInteger(patch) || patch < 1 || patch > 1024) throw invalidArgument('an integer in [1, 1024] (pixels)', 'patch', patch);
  const g = readGrid(features, opts?.plan, 'plan');
  const layout = opts?.masksLayout ?? 'stitched';
  if (layout !== 'stitched' && layout !== 'tiles') throw invalidArgument("'stitched' or 'tiles'", 'masksLayout', layout);
  if (layout === 'tiles') return maskPoolTiles(g, masks, mode, patch, opts!);
  const m = toContiguous(masks, 'masks', { dtypes: ['uint8'], ranks: [3, 4], what: 'region masks (M,H,W) or (M,F,H,W)' });
  const [regions, mframes, H, W] = m.shape.length === 3 ? [m.shape[0], 1, m.shape[1], m.shape[2]] : m.shape;
  if (regions < 1) throw invalidArgument('at least one region', 'masks.shape', shapeText(m.shape), true);
  if (regions > 65535) throw invalidArgument('at most 65535 regions', 'masks.shape', shapeText(m.shape), true);
  if (m.shape.length === 3 && g.frames > 1) {
    throw invalidArgument(`masks (M,F,H,W) with F = ${g.frames} for ${g.frames} frames of features`, 'masks.shape', shapeText(m.shape), true);
  }
  if (mframes !== g.frames || H !== patch * g.height || W !== patch * g.width) {
    const lead = m.shape.length === 3 ? 'M' : `M,${g.frames}`;
    throw invalidArgument(
      `masks (${lead},${patch * g.height},${patch * g.width}): ${patch} px per token of the ${g.height}x${g.width} token grid` +
        (g.frames > 1 ? ` on each of ${g.frames} frames` : ''),
      'masks.shape', shapeText(m.shape), true);
  }
  const out = outArray(opts?.out, Float32Array, regions * g.channels, 'out');
  const sel = pickImpl(opts, addon);
  await callNative(() => addon.maskPool({ ...g.baton, features: g.data, masks: m.data as Uint8Array, regions, patch, mode, out, ...sel }));
  return toNdArray(out, [regions, g.channels]);
}
