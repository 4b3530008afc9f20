/**
 * Scenes: RGB-D (or point-map) frames with intrinsics and optional camera-to-world poses,
 * in memory ({@link sceneFromFrames}) or on disk as a `scene.json` manifest
 * ({@link loadScene}, {@link saveScene}, {@link writeManifest}):
 *
 * ```json
 * { "frames": [ { "image": "rgb/0.png", "depth": "depth/0.png", "depthScale": 0.0002,
 *                 "intrinsics": { "fx": 535.4, "fy": 539.2, "cx": 320.1, "cy": 247.6 },
 *                 "pose": [16 numbers, row-major camera-to-world, OpenCV camera axes] } ],
 *   "up": [0, 0, 1] }
 * ```
 *
 * Paths are relative to the manifest's folder and may not leave it (symlinks are resolved).
 * `depth` is a 16-bit greyscale PNG (with `depthScale`, metres per unit) or a `.npy` of
 * float32 metres (or uint16 with `depthScale`); instead of depth a frame may give `points`,
 * a `.npy` (H,W,3) float32 point map in WORLD coordinates (metres, NaN = invalid). Every
 * problem is a {@link SceneError} naming the frame and the fix.
 */
import * as fs from 'fs';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';

import { finite, readIntrinsics } from './camera';
import type { Intrinsics } from './camera';
import { backproject } from './geometry';
import type { DeviceOptions } from './dispatch';
import { describeValue, InvalidArgumentError } from './errors';
import { defaultMaxImagePixels, readDepth, readImage } from './image';
import { encodeNpy, readNpy } from './npy';
import { toContiguous, toNdArray } from './tensor';
import type { NdArray, TensorLike } from './tensor';
import { SceneError } from './errors';
import { DEPTH_SCALE_NEEDED } from './validate';
export { SceneError };

// ---- types ---------------------------------------------------------------------------

/** One frame of a validated scene. */
export interface SceneFrame {
  /** A name for messages and overlays (the manifest's `name`, or the image file's stem, or `frame<i>`). */
  name: string;
  /** (H,W,3) uint8 RGB. */
  image: NdArray<Uint8Array>;
  /** (H,W) depth: uint16 sensor units (metres = value · `depthScale`) or float32 metres; 0/NaN = invalid. Absent when `points` is given. */
  depth?: NdArray<Uint16Array> | NdArray<Float32Array>;
  /** Metres per depth unit (uint16 depth: required; float32 depth: `1`). Absent without depth. */
  depthScale?: number;
  /** (H,W,3) float32 point map in world coordinates, metres, NaN = invalid. Absent when `depth` is given. */
  points?: NdArray<Float32Array>;
  /** Pinhole intrinsics in pixels (pixel centres at integer coordinates). */
  intrinsics: Intrinsics;
  /** Camera-to-world pose, 16 numbers row-major, OpenCV camera axes (x right, y down, z forward). Absent: the camera frame is the world frame. */
  pose?: number[];
  /** Image width, pixels. */
  width: number;
  /** Image height, pixels. */
  height: number;
}

/** A validated scene. */
export interface Scene {
  frames: SceneFrame[];
  /** The world's up direction, a unit vector (normalized from what was given). Absent: unknown. */
  up?: [number, number, number];
  /** Absolute folder of the manifest the scene was loaded from (absent for in-memory scenes). */
  dir?: string;
}

/** A frame as given to {@link sceneFromFrames}: any tensor-like arrays. */
export interface SceneFrameInput {
  /** (H,W,3) uint8 RGB. */
  image: TensorLike;
  /** (H,W) uint16 with `depthScale`, or float32 metres. Give `depth` or `points`. */
  depth?: TensorLike;
  /** Metres per depth unit. Required for uint16 depth; float32 depth defaults to `1`. */
  depthScale?: number;
  /** (H,W,3) float32 world point map, metres, NaN = invalid. Give `depth` or `points`. */
  points?: TensorLike;
  /** Pinhole intrinsics in pixels. */
  intrinsics: Intrinsics;
  /** Camera-to-world pose: 16 numbers row-major or a 4x4 array, OpenCV axes. Defaults to none. */
  pose?: ArrayLike<number> | readonly (readonly number[])[];
  /** Defaults to `frame<i>`. */
  name?: string;
}

export interface SceneOptions {
  /** The most frames a scene may hold (the model takes up to 32, spec Part A §A8). Defaults to `32`. */
  maxFrames?: number;
  /**
   * The most pixels (width × height) each image, depth map or point map may have; image
   * headers are checked before decoding. Defaults to `defaultMaxImagePixels()` (2^26, or
   * `SR3D_MAX_IMAGE_PIXELS`).
   */
  maxPixels?: number;
  /** The world's up direction (3 numbers, not all 0). Defaults to none (unknown). */
  up?: ArrayLike<number>;
}

/** One frame of a `scene.json` manifest (paths relative to the manifest's folder). */
export interface ManifestFrame {
  image: string;
  depth?: string;
  depthScale?: number;
  points?: string;
  intrinsics: Intrinsics;
  pose?: number[];
  name?: string;
}

/** The contents of a `scene.json` manifest. */
export interface SceneManifest {
  frames: ManifestFrame[];
  up?: [number, number, number];
}


// ---- validation helpers --------------------------------------------------------------

const MANIFEST_NAME = 'scene.json';
const ORTHO_TOL = 1e-3;

/**
 * Bounds on a frame's camera numbers. Back-projection runs in float32 (max 3.4e38): with these,
 * |x| <= (2·1e8 px) · (65535 · 1e6 m) / 1e-3 px ≈ 1.3e22 m, so no point overflows, while every
 * real camera (focal lengths of 1e1-1e5 px, depth units of 1e-4-1e-3 m) is far inside.
 */
export const SCENE_LIMITS = {
  /** Smallest focal length fx, fy, pixels. */
  minFocal: 1e-3,
  /** Largest |fx|, |fy|, |cx|, |cy|, pixels. */
  maxIntrinsic: 1e8,
  /** Smallest depthScale, metres per unit. */
  minDepthScale: 1e-12,
  /** Largest depthScale, metres per unit. */
  maxDepthScale: 1e6,
} as const;

function sceneError(what: string, name: string, received: string, fix: string, frame: number | null): SceneError {
  return new SceneError(`Expected ${what} for ${name} but received ${received}. Fix: ${fix}`, frame);
}

/** Re-raises an error of a lower layer as a SceneError naming the frame. */
function wrap(e: unknown, at: string, fix: string, frame: number | null): SceneError {
  if (e instanceof SceneError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new SceneError(`${at}: ${msg}. Fix: ${fix}`, frame);
}

function readMaxFrames(opts: SceneOptions | undefined): number {
  const m = opts?.maxFrames ?? 32;
  if (!Number.isInteger(m) || m < 1) {
    throw sceneError('a positive integer', 'maxFrames', describeValue(m), 'pass maxFrames >= 1 (the model takes up to 32 frames)', null);
  }
  return m;
}

function readUp(up: unknown, name: string): [number, number, number] | undefined {
  if (up === undefined || up === null) return undefined;
  const a = Array.isArray(up) || ArrayBuffer.isView(up) ? Array.from(up as ArrayLike<number>) : null;
  const norm = a && a.length === 3 && a.every(finite) ? Math.hypot(a[0], a[1], a[2]) : 0;
  if (!a || !(norm > 0)) {
    throw sceneError('3 finite numbers, not all 0 (the world up direction, e.g. [0, 0, 1])', name,
      a ? `[${a.join(', ')}]` : describeValue(up), `give "up" as [x, y, z] or leave it out when the up direction is unknown`, null);
  }
  return [a[0] / norm, a[1] / norm, a[2] / norm];
}

function readIntrinsicsOf(k: unknown, at: string, frame: number): Intrinsics {
  let out: Intrinsics;
  try {
    readIntrinsics(k, 1, at); // validates; it stores float32, the numbers are kept as given
    const { fx, fy, cx, cy } = k as Intrinsics;
    out = { fx, fy, cx, cy };
  } catch (e) {
    throw wrap(e, `frame ${frame}`, 'give "intrinsics": { "fx", "fy", "cx", "cy" } in pixels with fx, fy > 0', frame);
  }
  const L = SCENE_LIMITS;
  for (const key of ['fx', 'fy', 'cx', 'cy'] as const) {
    const v = out[key];
    const focal = key === 'fx' || key === 'fy';
    if (Math.abs(v) > L.maxIntrinsic || (focal && v < L.minFocal)) {
      throw sceneError(focal ? `a focal length in [${L.minFocal}, ${L.maxIntrinsic}] pixels` : `a principal point within ±${L.maxIntrinsic} pixels`,
        `${at}.${key}`, `${v} (frame ${frame})`, 'give the intrinsics in pixels of this image (SCENE_LIMITS bounds them so float32 back-projection cannot overflow)', frame);
    }
  }
  return out;
}

function checkDepthScale(scale: unknown, at: string, fix: string, frame: number): number {
  const L = SCENE_LIMITS;
  if (!finite(scale) || !(scale >= L.minDepthScale && scale <= L.maxDepthScale)) {
    throw sceneError(`a finite number in [${L.minDepthScale}, ${L.maxDepthScale}] (metres per depth unit)`, `${at}.depthScale`, describeValue(scale), fix, frame);
  }
  return scale;
}

/** 16 finite numbers, last row 0 0 0 1, rotation orthonormal (to 1e-3) with det +1. */
function readPoseOf(p: unknown, at: string, frame: number): number[] {
  const fix = 'give "pose" as 16 numbers, the row-major 4x4 camera-to-world matrix [R t; 0 0 0 1] with R a rotation (or leave it out)';
  let flat: unknown[] | null = null;
  if (Array.isArray(p) && p.length === 4 && p.every((r) => Array.isArray(r))) flat = (p as unknown[][]).flat();
  else if (Array.isArray(p) || ArrayBuffer.isView(p)) flat = Array.from(p as ArrayLike<unknown>);
  if (!flat || flat.length !== 16 || !flat.every(finite)) {
    const got = flat ? `${flat.length} values${flat.length === 16 ? ` with a non-finite entry (${describeValue(flat.find((x) => !finite(x)))})` : ''}` : describeValue(p);
    throw sceneError('16 finite numbers (row-major 4x4 camera-to-world) or a 4x4 array', at, `${got} (frame ${frame})`, fix, frame);
  }
  // + 0 turns -0 into 0, so a pose survives a JSON round trip unchanged.
  const v = (flat as number[]).map((x) => x + 0);
  if (Math.abs(v[12]) > 1e-6 || Math.abs(v[13]) > 1e-6 || Math.abs(v[14]) > 1e-6 || Math.abs(v[15] - 1) > 1e-6) {
    throw sceneError('a pose whose last row is 0 0 0 1', at, `last row ${v.slice(12).join(' ')} (frame ${frame})`, fix, frame);
  }
  let err = 0;
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
    let d = 0;
    for (let k = 0; k < 3; k++) d += v[4 * k + i] * v[4 * k + j];
    err = Math.max(err, Math.abs(d - (i === j ? 1 : 0)));
  }
  const det = v[0] * (v[5] * v[10] - v[6] * v[9]) - v[1] * (v[4] * v[10] - v[6] * v[8]) + v[2] * (v[4] * v[9] - v[5] * v[8]);
  if (err > ORTHO_TOL || !(det > 0)) {
    throw sceneError(`a rotation in the pose's upper-left 3x3 (R^T R = I to ${ORTHO_TOL}, det +1)`, at,
      `a matrix with max |R^T R - I| = ${err.toPrecision(3)}, det ${det.toPrecision(3)} (frame ${frame})`,
      'normalize the quaternion or orthonormalize R before writing the pose; a scaled or mirrored matrix is not a camera pose', frame);
  }
  return v;
}

function dims(name: string, shape: readonly number[]): string {
  return `${name} ${shape[1]}x${shape[0]}`;
}

// ---- in memory -----------------------------------------------------------------------

function frameFromInput(f: SceneFrameInput, i: number): SceneFrame {
  const at = `frames[${i}]`;
  if (f === null || typeof f !== 'object') {
    throw sceneError('a frame { image, depth | points, intrinsics, pose? }', at, describeValue(f), 'pass one object per frame', i);
  }
  const tensorFix = 'pass an ndarray or { data, shape } with the stated dtype and shape';
  let image: NdArray<Uint8Array>;
  try {
    const c = toContiguous(f.image, `${at}.image`, { dtypes: ['uint8'], ranks: [3], lastDim: 3, what: 'an RGB image (H,W,3) uint8' });
    image = toNdArray(c.data as Uint8Array, c.shape);
  } catch (e) {
    throw wrap(e, `frame ${i}`, tensorFix, i);
  }
  const [height, width] = image.shape;
  if (height < 1 || width < 1) throw sceneError('a non-empty image', `${at}.image`, `shape [${image.shape.join(', ')}]`, 'pass an image of at least 1x1 pixels', i);
  if ((f.depth === undefined) === (f.points === undefined)) {
    throw sceneError('exactly one of depth and points', at, f.depth === undefined ? 'neither' : 'both',
      'give a depth map (with depthScale for uint16) or a world point map, not both', i);
  }
  const out: SceneFrame = { name: f.name ?? `frame${i}`, image, intrinsics: readIntrinsicsOf(f.intrinsics, `${at}.intrinsics`, i), width, height };
  if (typeof out.name !== 'string') throw sceneError('a string', `${at}.name`, describeValue(f.name), 'give the frame a string name or leave it out', i);
  if (f.depth !== undefined) {
    let d;
    try {
      d = toContiguous(f.depth, `${at}.depth`, { dtypes: ['uint16', 'float32'], ranks: [2], what: 'a depth map (H,W), uint16 units or float32 metres' });
    } catch (e) {
      throw wrap(e, `frame ${i}`, tensorFix, i);
    }
    if (d.shape[0] !== height || d.shape[1] !== width) {
      throw sceneError(`a depth map of the image's size (${width}x${height})`, `${at}.depth`, `${dims('a depth map of', d.shape)} (frame ${i})`,
        'register the depth to the colour image and resize both to the same size', i);
    }
    let scale = f.depthScale;
    if (scale === undefined) {
      if (d.dtype === 'uint16') {
        throw sceneError(DEPTH_SCALE_NEEDED, `${at}.depthScale`, 'undefined',
          'give "depthScale" with the depth map', i);
      }
      scale = 1;
    }
    checkDepthScale(scale, at, 'give depthScale > 0, e.g. 0.0002 for TUM', i);
    out.depth = d.dtype === 'uint16' ? toNdArray(d.data as Uint16Array, d.shape) : toNdArray(d.data as Float32Array, d.shape);
    out.depthScale = scale;
  } else {
    let p;
    try {
      p = toContiguous(f.points, `${at}.points`, { dtypes: ['float32'], ranks: [3], lastDim: 3, what: 'a world point map (H,W,3) float32' });
    } catch (e) {
      throw wrap(e, `frame ${i}`, tensorFix, i);
    }
    if (p.shape[0] !== height || p.shape[1] !== width) {
      throw sceneError(`a point map of the image's size (${width}x${height})`, `${at}.points`, `${dims('a point map of', p.shape)} (frame ${i})`,
        'give one 3D point per image pixel', i);
    }
    out.points = toNdArray(p.data as Float32Array, p.shape);
  }
  if (f.pose !== undefined && f.pose !== null) out.pose = readPoseOf(f.pose, `${at}.pose`, i);
  return out;
}

/**
 * An in-memory scene from arrays, validated as a loaded manifest is.
 *
 * @param frames one entry per frame (1 to `maxFrames`).
 * @throws {@link SceneError} naming the frame and the fix.
 */
export function sceneFromFrames(frames: readonly SceneFrameInput[], opts?: SceneOptions): Scene {
  const maxFrames = readMaxFrames(opts);
  if (!Array.isArray(frames) || frames.length === 0) {
    throw sceneError('at least one frame', 'frames', describeValue(frames), 'pass an array of frames { image, depth | points, intrinsics, pose? }', null);
  }
  checkFrameCount(frames.length, maxFrames);
  const scene: Scene = { frames: frames.map(frameFromInput) };
  const up = readUp(opts?.up, 'up');
  if (up) scene.up = up;
  return scene;
}

function checkFrameCount(n: number, maxFrames: number): void {
  if (n > maxFrames) {
    throw sceneError(`at most ${maxFrames} frames (maxFrames)`, 'frames', `${n} frames (frames[${maxFrames}] onward are too many)`,
      `keep ${maxFrames} frames, e.g. every ${Math.ceil(n / maxFrames)}th (sr3d import tum --max-frames ${maxFrames}), or raise maxFrames`, maxFrames);
  }
}

// ---- on disk -------------------------------------------------------------------------

/** Resolves a manifest path; refuses one that leaves `dir` lexically or through symlinks. */
function resolveInside(dir: string, realDir: string, rel: unknown, at: string, frame: number): string {
  if (typeof rel !== 'string' || rel.length === 0) {
    throw sceneError('a file path relative to the manifest', at, describeValue(rel), `give "${at.split('.').pop()}" as a path like "rgb/0.png"`, frame);
  }
  const abs = path.resolve(dir, rel);
  const escapes = (base: string, p: string) => {
    const r = path.relative(base, p);
    return r === '..' || r.startsWith('..' + path.sep) || path.isAbsolute(r);
  };
  const fix = `keep the scene's files inside the manifest's folder ${dir} (copy them there, or write the manifest in a folder that contains them)`;
  if (escapes(dir, abs)) throw sceneError(`a path inside the manifest's folder`, at, `'${rel}' (frame ${frame})`, fix, frame);
  let real: string;
  try {
    real = fs.realpathSync(abs);
  } catch {
    throw sceneError('an existing file', at, `'${rel}' (frame ${frame}; ${abs} does not exist)`,
      'check the path (relative to the manifest) and that the file was copied with the manifest', frame);
  }
  if (escapes(realDir, real)) {
    throw sceneError(`a path inside the manifest's folder`, at, `'${rel}' (frame ${frame}), a symlink to ${real}`, fix, frame);
  }
  if (!fs.statSync(real).isFile()) throw sceneError('a file', at, `'${rel}' (frame ${frame}), which is not a regular file`, 'point it at an image/depth file', frame);
  return real;
}

function manifestPathOf(p: string): string {
  try {
    if (fs.statSync(p).isDirectory()) return path.join(p, MANIFEST_NAME);
  } catch {
    // a missing path is reported when it is read
  }
  return p;
}

/**
 * Validates the JSON of a manifest (shape, camera data, paths, frame count) without reading
 * the images.
 *
 * @param json the parsed `scene.json`.
 * @param dir the manifest's folder: paths resolve against it and may not leave it.
 * @returns the manifest with each frame's files as absolute resolved paths in `files`.
 */
export function checkManifest(json: unknown, dir: string, opts?: SceneOptions): { manifest: SceneManifest; files: { image: string; depth?: string; points?: string }[] } {
  const maxFrames = readMaxFrames(opts);
  const absDir = path.resolve(dir);
  let realDir: string;
  try {
    realDir = fs.realpathSync(absDir);
  } catch {
    throw sceneError('an existing folder', 'the manifest folder', `'${absDir}'`, 'check the scene path', null);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw sceneError('a JSON object { "frames": [...], "up"?: [x, y, z] }', 'the manifest', describeValue(json), 'see the scene format in the README', null);
  }
  const j = json as { frames?: unknown; up?: unknown };
  if (!Array.isArray(j.frames) || j.frames.length === 0) {
    throw sceneError('a non-empty "frames" array', 'the manifest', Array.isArray(j.frames) ? 'no frames' : describeValue(j.frames),
      'list at least one frame { "image", "depth" | "points", "intrinsics", "pose"? }', null);
  }
  checkFrameCount(j.frames.length, maxFrames);
  const frames: ManifestFrame[] = [];
  const files: { image: string; depth?: string; points?: string }[] = [];
  j.frames.forEach((fr: unknown, i: number) => {
    const at = `frames[${i}]`;
    if (fr === null || typeof fr !== 'object' || Array.isArray(fr)) {
      throw sceneError('a frame object { "image", "depth" | "points", "intrinsics", "pose"? }', at, describeValue(fr), 'write each frame as a JSON object', i);
    }
    const f = fr as Record<string, unknown>;
    const mf: ManifestFrame = { image: f.image as string, intrinsics: readIntrinsicsOf(f.intrinsics, `${at}.intrinsics`, i) };
    const file: { image: string; depth?: string; points?: string } = { image: resolveInside(absDir, realDir, f.image, `${at}.image`, i) };
    if ((f.depth === undefined) === (f.points === undefined)) {
      throw sceneError('exactly one of "depth" and "points"', at, f.depth === undefined ? 'neither' : 'both',
        'give "depth" (a 16-bit PNG with "depthScale", or a float32 .npy in metres) or "points" (an (H,W,3) float32 .npy)', i);
    }
    if (f.depth !== undefined) {
      mf.depth = f.depth as string;
      file.depth = resolveInside(absDir, realDir, f.depth, `${at}.depth`, i);
      if (f.depthScale !== undefined) mf.depthScale = checkDepthScale(f.depthScale, at, 'e.g. 0.0002 for TUM (1/5000)', i);
    } else {
      mf.points = f.points as string;
      file.points = resolveInside(absDir, realDir, f.points, `${at}.points`, i);
      if (!/\.npy$/i.test(mf.points)) {
        throw sceneError('a .npy point map (H,W,3) float32', `${at}.points`, `'${mf.points}'`, 'save the point map with np.save(path, points.astype("<f4"))', i);
      }
    }
    if (f.pose !== undefined && f.pose !== null) mf.pose = readPoseOf(f.pose, `${at}.pose`, i);
    if (f.name !== undefined) {
      if (typeof f.name !== 'string') throw sceneError('a string', `${at}.name`, describeValue(f.name), 'give "name" as a string or leave it out', i);
      mf.name = f.name;
    }
    frames.push(mf);
    files.push(file);
  });
  const manifest: SceneManifest = { frames };
  const up = readUp(j.up, 'up');
  if (up) manifest.up = Array.from(j.up as number[]) as [number, number, number];
  return { manifest, files };
}

async function readFrameFiles(mf: ManifestFrame, file: { image: string; depth?: string; points?: string }, i: number, maxPixels: number): Promise<SceneFrameInput> {
  const at = `frames[${i}]`;
  const input: SceneFrameInput = { image: undefined as unknown as TensorLike, intrinsics: mf.intrinsics, name: mf.name ?? path.parse(mf.image).name };
  let image: NdArray<Uint8Array>;
  try {
    image = await readImage(file.image, { maxPixels });
    input.image = image;
  } catch (e) {
    throw wrap(e, `${at}.image '${mf.image}' (frame ${i})`, 'give a PNG or JPEG colour image', i);
  }
  if (file.depth) {
    try {
      if (/\.npy$/i.test(file.depth)) {
        const a = await readNpy(file.depth);
        if (a.dtype === 'uint8' || a.shape.length !== 2) {
          throw new InvalidArgumentError(`Expected an (H,W) float32 (metres) or uint16 depth .npy but received ${a.dtype} of shape (${a.shape.join(', ')})`);
        }
        input.depth = toNdArray(a.data as Float32Array | Uint16Array, a.shape);
      } else {
        // The depth header must give the image's size: a bigger one is refused before it is inflated.
        const [height, width] = image.shape;
        input.depth = await readDepth(file.depth, { maxPixels, expectSize: { width, height, what: "a depth map of the image's size" } });
      }
    } catch (e) {
      throw wrap(e, `${at}.depth '${mf.depth}' (frame ${i})`, 'give a 16-bit greyscale PNG with "depthScale", or an (H,W) float32 .npy in metres', i);
    }
    if (mf.depthScale !== undefined) input.depthScale = mf.depthScale;
  } else {
    try {
      const a = await readNpy(file.points!);
      if (a.dtype !== 'float32' || a.shape.length !== 3 || a.shape[2] !== 3) {
        throw new InvalidArgumentError(`Expected an (H,W,3) float32 point map but received ${a.dtype} of shape (${a.shape.join(', ')})`);
      }
      input.points = toNdArray(a.data as Float32Array, a.shape);
    } catch (e) {
      throw wrap(e, `${at}.points '${mf.points}' (frame ${i})`, 'save the point map with np.save(path, points.astype("<f4")) as (H,W,3)', i);
    }
  }
  if (mf.pose) input.pose = mf.pose;
  return input;
}

/**
 * Builds a scene from a manifest object whose paths are relative to `dir` (what
 * {@link loadScene} does after parsing `scene.json`).
 */
export async function sceneFromManifest(json: unknown, dir: string, opts?: SceneOptions): Promise<Scene> {
  const { manifest, files } = checkManifest(json, dir, opts);
  const maxPixels = opts?.maxPixels ?? defaultMaxImagePixels();
  const inputs: SceneFrameInput[] = [];
  // Sequential reads: a 32-frame scene decoded all at once would hold every file's bytes at the same time.
  for (let i = 0; i < files.length; i++) inputs.push(await readFrameFiles(manifest.frames[i], files[i], i, maxPixels));
  const scene = sceneFromFrames(inputs, { maxFrames: opts?.maxFrames, up: manifest.up });
  scene.dir = path.resolve(dir);
  return scene;
}

/**
 * Loads a scene from a `scene.json` manifest.
 *
 * @param manifestPath the manifest file, or a folder holding `scene.json`.
 * @throws {@link SceneError} for invalid JSON, no frames, more than `maxFrames`, a path leaving
 *   the manifest's folder, a missing file, image and depth sizes that differ, bad intrinsics or
 *   a bad pose — naming the frame and the fix.
 */
export async function loadScene(manifestPath: string, opts?: SceneOptions): Promise<Scene> {
  if (typeof manifestPath !== 'string') throw sceneError('a path to scene.json', 'manifestPath', describeValue(manifestPath), 'pass the manifest path', null);
  const file = manifestPathOf(manifestPath);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw sceneError('a readable scene manifest', `'${file}'`, `${err.code ?? 'an error'} (${err.message})`,
      'pass the path of a scene.json (or its folder); `sr3d import tum <dir>` writes one for a TUM folder', null);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw sceneError('valid JSON', `'${file}'`, `invalid JSON (${(e as Error).message})`, 'fix the syntax of the manifest (a JSON object with "frames")', null);
  }
  return sceneFromManifest(json, path.dirname(path.resolve(file)), opts);
}

/**
 * Writes a manifest after validating it (the files it names must exist inside its folder).
 *
 * @param manifestPath where to write `scene.json`; the manifest's paths are relative to its folder.
 */
export async function writeManifest(manifestPath: string, manifest: SceneManifest, opts?: SceneOptions): Promise<void> {
  const dir = path.dirname(path.resolve(manifestPath));
  const { manifest: checked } = checkManifest(manifest, dir, opts);
  await fsp.writeFile(manifestPath, formatManifest(checked));
}

/** The manifest as JSON text: one line per frame's pose, stable key order. */
export function formatManifest(m: SceneManifest): string {
  const num = (x: number) => (Object.is(x, -0) ? '0' : String(x));
  const frames = m.frames.map((f) => {
    const parts = [`"image": ${JSON.stringify(f.image)}`];
    if (f.name !== undefined) parts.unshift(`"name": ${JSON.stringify(f.name)}`);
    if (f.depth !== undefined) parts.push(`"depth": ${JSON.stringify(f.depth)}`);
    if (f.depthScale !== undefined) parts.push(`"depthScale": ${num(f.depthScale)}`);
    if (f.points !== undefined) parts.push(`"points": ${JSON.stringify(f.points)}`);
    const k = f.intrinsics;
    parts.push(`"intrinsics": { "fx": ${num(k.fx)}, "fy": ${num(k.fy)}, "cx": ${num(k.cx)}, "cy": ${num(k.cy)} }`);
    if (f.pose) parts.push(`"pose": [${f.pose.map(num).join(', ')}]`);
    return `    { ${parts.join(',\n      ')} }`;
  });
  const up = m.up ? `,\n  "up": [${m.up.map(num).join(', ')}]` : '';
  return `{\n  "frames": [\n${frames.join(',\n')}\n  ]${up}\n}\n`;
}

function encodePng(data: Uint8Array | Uint16Array, width: number, height: number, kind: 'rgb' | 'grey16'): Buffer {
  const png = new PNG({ width, height, colorType: kind === 'rgb' ? 2 : 0, inputColorType: kind === 'rgb' ? 2 : 0, bitDepth: kind === 'rgb' ? 8 : 16, inputHasAlpha: false });
  // pngjs takes 16-bit samples as native-endian uint16 bytes and swaps them to PNG's big-endian.
  const copy = kind === 'rgb' ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(new Uint16Array(data).buffer);
  png.data = copy;
  return PNG.sync.write(png, { colorType: kind === 'rgb' ? 2 : 0, inputColorType: kind === 'rgb' ? 2 : 0, bitDepth: kind === 'rgb' ? 8 : 16, inputHasAlpha: false });
}

/**
 * Writes a scene to disk: `rgb/NNNN.png`, `depth/NNNN.png` (uint16 depth) or `depth/NNNN.npy`
 * (float32 metres), `points/NNNN.npy` (point maps), and the manifest at `manifestPath`.
 * Loading it back gives the same arrays, intrinsics, poses and up.
 *
 * @returns the manifest written.
 */
export async function saveScene(scene: Scene, manifestPath: string): Promise<SceneManifest> {
  if (!scene || !Array.isArray(scene.frames)) throw sceneError('a scene { frames, up? }', 'scene', describeValue(scene), 'pass a scene from sceneFromFrames or loadScene', null);
  const dir = path.dirname(path.resolve(manifestPath));
  const frames: ManifestFrame[] = [];
  for (let i = 0; i < scene.frames.length; i++) {
    const f = scene.frames[i];
    const id = String(i).padStart(4, '0');
    const mf: ManifestFrame = { name: f.name, image: `rgb/${id}.png`, intrinsics: { ...f.intrinsics } };
    await fsp.mkdir(path.join(dir, 'rgb'), { recursive: true });
    await fsp.writeFile(path.join(dir, mf.image), encodePng(f.image.data, f.width, f.height, 'rgb'));
    if (f.depth) {
      await fsp.mkdir(path.join(dir, 'depth'), { recursive: true });
      if (f.depth.data instanceof Uint16Array) {
        mf.depth = `depth/${id}.png`;
        await fsp.writeFile(path.join(dir, mf.depth), encodePng(f.depth.data, f.width, f.height, 'grey16'));
      } else {
        mf.depth = `depth/${id}.npy`;
        await fsp.writeFile(path.join(dir, mf.depth), encodeNpy(f.depth));
      }
      mf.depthScale = f.depthScale;
    } else if (f.points) {
      await fsp.mkdir(path.join(dir, 'points'), { recursive: true });
      mf.points = `points/${id}.npy`;
      await fsp.writeFile(path.join(dir, mf.points), encodeNpy(f.points));
    }
    if (f.pose) mf.pose = [...f.pose];
    frames.push(mf);
  }
  const manifest: SceneManifest = { frames };
  if (scene.up) manifest.up = [...scene.up];
  await writeManifest(manifestPath, manifest, { maxFrames: Math.max(32, frames.length) });
  return manifest;
}

// ---- geometry ------------------------------------------------------------------------

/**
 * Each frame's world point map, (H,W,3) float32 metres, NaN where invalid: depth frames are
 * back-projected (`backproject` with the frame's pose; no pose: camera coordinates), point-map
 * frames are returned as given.
 */
export async function sceneWorldPoints(scene: Scene, opts?: DeviceOptions): Promise<NdArray<Float32Array>[]> {
  const out: NdArray<Float32Array>[] = [];
  for (const f of scene.frames) {
    if (f.points) {
      out.push(f.points);
    } else {
      const r = await backproject(f.depth!, f.intrinsics, { ...opts, depthScale: f.depthScale, pose: f.pose });
      out.push(r.points);
    }
  }
  return out;
}
