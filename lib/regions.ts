/**
 * Region specs of a question: `<region0>`, `<region1>`, … refer to the specs in order.
 *  - `{ frame, box: [x0, y0, x1, y1] }`: a 2D box on one frame (pixels, upper bounds exclusive);
 *  - `{ frame, mask }`: a mask on one frame ((H,W) uint8, nonzero = inside, or a PNG path);
 *  - `{ masks: [{ frame, mask }, …] }`: masks on several frames;
 *  - `{ box3d: { center, size, yaw? | rotation? } }`: a 3D box in world coordinates (metres,
 *    FULL sizes), turned into per-frame masks by the point-in-box test on each frame's world
 *    points (occlusion-aware; see `box3dToMasks`).
 * {@link resolveRegions} turns them into per-frame masks; {@link parseRegionArg} reads the CLI
 * syntax; {@link checkRegionPlaceholders} checks a question against the regions given.
 */
import { finite } from './camera';
import type { DeviceOptions } from './dispatch';
import { describeValue, InvalidArgumentError } from './errors';
import { ImageSizeError, readImage } from './image';
import { box3dToMasks, boxToMask } from './region';
import type { Box3d } from './region';
import { sceneWorldPoints } from './scene';
import type { Scene } from './scene';
import { toContiguous, toNdArray } from './tensor';
import type { NdArray, TensorLike } from './tensor';
import { RegionError } from './errors';
export { RegionError };

// ---- types ---------------------------------------------------------------------------

/** A 2D box on one frame: `[x0, y0, x1, y1]` pixels, columns x0 <= x < x1, rows y0 <= y < y1. */
export interface BoxRegion {
  /** 0-based frame index. */
  frame: number;
  box: readonly [number, number, number, number] | readonly number[];
}

/** A mask on one frame: (H,W) uint8 (nonzero = inside) at the frame's resolution, or a PNG file (nonzero pixels = inside). */
export interface MaskRegion {
  /** 0-based frame index. */
  frame: number;
  mask: TensorLike | string;
}

/** Masks on several frames (each frame at most once). */
export interface MultiMaskRegion {
  masks: readonly MaskRegion[];
}

/** A 3D box in world coordinates: centre and FULL sizes in metres, `yaw` (radians, about +z) or `rotation` (3x3 row-major). */
export interface Box3dRegion {
  box3d: Box3d;
}

/** One region prompt. */
export type RegionSpec = BoxRegion | MaskRegion | MultiMaskRegion | Box3dRegion;

/** A region as per-frame masks. */
export interface ResolvedRegion {
  /** `region<i>`, the name used in questions (`<region0>`) and in `measure` output. */
  id: string;
  /** What the spec was. */
  kind: 'box' | 'mask' | 'box3d';
  /** One (H,W) uint8 0/1 mask per scene frame, at that frame's resolution (all zero where the region is not on the frame). */
  masks: NdArray<Uint8Array>[];
  /** Per frame: pixels in the mask. */
  pixels: number[];
}

export interface ResolveRegionsOptions extends DeviceOptions {
  /**
   * Each frame's world points, (H,W,3) float32 metres (NaN = invalid), e.g. from
   * `sceneWorldPoints`; used by 3D boxes. Defaults to computing them from the scene when a
   * 3D box is given.
   */
  worldPoints?: readonly TensorLike[];
  /** 3D boxes only: grow the box by this much on every side, metres (see `box3dToMasks`). Defaults to `0`. */
  margin?: number;
}


function regionError(what: string, name: string, received: string, fix: string, region: number | null): RegionError {
  return new RegionError(`Expected ${what} for ${name} but received ${received}. Fix: ${fix}`, region);
}

// ---- CLI syntax ----------------------------------------------------------------------

const SYNTAX = 'box3d=cx,cy,cz,sx,sy,sz[,yaw] | frame=N,box=x0,y0,x1,y1 | frame=N,mask=path.png';

function numbers(text: string, name: string, arg: string): number[] {
  const parts = text.split(',');
  const v = parts.map((s) => (s.trim() === '' ? NaN : Number(s)));
  if (!v.every(finite)) {
    throw regionError('comma-separated finite numbers', name, `'${text}' in --region '${arg}'`, `write ${SYNTAX}`, null);
  }
  return v;
}

/**
 * Parses one `--region` argument:
 * `box3d=cx,cy,cz,sx,sy,sz[,yaw]` (metres, full sizes, yaw in radians),
 * `frame=N,box=x0,y0,x1,y1` (pixels) or `frame=N,mask=path.png`.
 *
 * @throws {@link RegionError} for malformed text.
 */
export function parseRegionArg(s: string): RegionSpec {
  if (typeof s !== 'string' || s.trim() === '') {
    throw regionError(`a region (${SYNTAX})`, '--region', describeValue(s), `write ${SYNTAX}`, null);
  }
  const arg = s.trim();
  if (arg.startsWith('box3d=')) {
    const v = numbers(arg.slice(6), 'box3d', arg);
    if (v.length !== 6 && v.length !== 7) {
      throw regionError('6 or 7 numbers (cx,cy,cz,sx,sy,sz[,yaw])', 'box3d', `${v.length} numbers in --region '${arg}'`,
        'write box3d=cx,cy,cz,sx,sy,sz with full sizes in metres and an optional yaw in radians', null);
    }
    if (!v.slice(3, 6).every((x) => x > 0)) {
      throw regionError('positive sizes sx,sy,sz (full extents, metres)', 'box3d', `[${v.slice(3, 6).join(', ')}] in --region '${arg}'`,
        'give the box its full size along each of its axes, all > 0', null);
    }
    const box3d: Box3d = { center: v.slice(0, 3), size: v.slice(3, 6) };
    if (v.length === 7) box3d.yaw = v[6];
    return { box3d };
  }
  const m = /^frame=([^,]*),(box|mask)=(.*)$/.exec(arg);
  if (!m) throw regionError(`a region (${SYNTAX})`, '--region', `'${arg}'`, `write ${SYNTAX}`, null);
  if (!/^\d+$/.test(m[1])) {
    throw regionError('a non-negative integer frame index', 'frame', `'${m[1]}' in --region '${arg}'`, 'write frame=N with N the 0-based frame index', null);
  }
  const frame = Number(m[1]);
  if (m[2] === 'box') {
    const v = numbers(m[3], 'box', arg);
    if (v.length !== 4) {
      throw regionError('4 numbers x0,y0,x1,y1 (pixels)', 'box', `${v.length} numbers in --region '${arg}'`, 'write frame=N,box=x0,y0,x1,y1', null);
    }
    return { frame, box: v };
  }
  if (m[3] === '') throw regionError('a PNG path', 'mask', `an empty path in --region '${arg}'`, 'write frame=N,mask=path.png', null);
  return { frame, mask: m[3] };
}

// ---- placeholders --------------------------------------------------------------------

/**
 * Checks that the question names exactly the regions given: every `<regionK>` has K <
 * `nRegions`, and every region 0..nRegions-1 is named at least once.
 *
 * @returns the region indices in order of first occurrence in the question.
 * @throws {@link RegionError} naming the placeholders without a region, or the regions never named.
 */
export function checkRegionPlaceholders(question: string, nRegions: number): number[] {
  if (typeof question !== 'string') throw regionError('a question string', 'question', describeValue(question), 'pass the question text', null);
  if (!Number.isInteger(nRegions) || nRegions < 0) throw regionError('a non-negative integer', 'nRegions', describeValue(nRegions), 'pass the number of regions', null);
  const seen: number[] = [];
  const missing: string[] = [];
  for (const m of question.matchAll(/<region(\d+)>/g)) {
    const k = Number(m[1]);
    if (k >= nRegions) { if (!missing.includes(m[0])) missing.push(m[0]); } else if (!seen.includes(k)) seen.push(k);
  }
  if (missing.length) {
    throw regionError(`only <region0>..<region${nRegions - 1}> (${nRegions} region${nRegions === 1 ? '' : 's'} given)`, 'question',
      `${missing.join(', ')} with no region given`, nRegions === 0
        ? 'give one region (--region) per placeholder, in order, or remove the placeholders'
        : `give a region for each placeholder (in order: the first --region is <region0>), or remove ${missing.join(', ')}`, Number(/\d+/.exec(missing[0])![0]));
  }
  const unnamed = Array.from({ length: nRegions }, (_, i) => i).filter((i) => !seen.includes(i));
  if (unnamed.length) {
    throw regionError('every region named in the question', 'question', `no ${unnamed.map((i) => `<region${i}>`).join(', ')} for the given region${unnamed.length === 1 ? '' : 's'} ${unnamed.join(', ')}`,
      `mention ${unnamed.map((i) => `<region${i}>`).join(', ')} in the question, or drop the unused region${unnamed.length === 1 ? '' : 's'}`, unnamed[0]);
  }
  return seen;
}

// ---- resolving -----------------------------------------------------------------------

function frameIndex(f: unknown, at: string, nFrames: number, r: number): number {
  if (!Number.isInteger(f) || (f as number) < 0 || (f as number) >= nFrames) {
    throw regionError(`a frame index in 0..${nFrames - 1}`, at, `${describeValue(f)} (region ${r})`,
      `frames are numbered from 0 in the order of the scene's frames (this scene has ${nFrames})`, r);
  }
  return f as number;
}

async function readMask(mask: unknown, at: string, width: number, height: number, r: number, frame: number): Promise<Uint8Array> {
  let data: Uint8Array, h: number, w: number;
  if (typeof mask === 'string') {
    let img: NdArray<Uint8Array>;
    try {
      // Read only as an image of the frame's size: the header is checked before decoding, so a
      // mask path can neither bomb memory nor show a non-image file's contents.
      img = await readImage(mask, { expectSize: { width, height }, maxPixels: Math.max(1, width * height) });
    } catch (e) {
      if (e instanceof ImageSizeError) {
        throw regionError(`a mask of frame ${frame}'s size (${width}x${height})`, at, `a ${e.width}x${e.height} mask (region ${r})`,
          'draw the mask on the frame\'s image at its full resolution', r);
      }
      throw new RegionError(`${at} (region ${r}): ${(e as Error).message}. Fix: give a PNG mask, nonzero pixels inside the region`, r);
    }
    [h, w] = img.shape;
    data = new Uint8Array(h * w);
    for (let i = 0; i < h * w; i++) data[i] = img.data[3 * i] | img.data[3 * i + 1] | img.data[3 * i + 2] ? 1 : 0;
  } else {
    try {
      const c = toContiguous(mask, at, { dtypes: ['uint8'], ranks: [2], what: 'a mask (H,W) uint8' });
      [h, w] = c.shape;
      data = new Uint8Array(h * w);
      const src = c.data as Uint8Array;
      for (let i = 0; i < h * w; i++) data[i] = src[i] ? 1 : 0;
    } catch (e) {
      if (e instanceof RegionError) throw e;
      throw new RegionError(`${(e as Error).message} (region ${r}). Fix: pass an (H,W) Uint8Array ndarray or { data, shape }`, r);
    }
  }
  if (h !== height || w !== width) {
    throw regionError(`a mask of frame ${frame}'s size (${width}x${height})`, at, `a ${w}x${h} mask (region ${r})`,
      'draw the mask on the frame\'s image at its full resolution', r);
  }
  return data;
}

function count(m: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < m.length; i++) n += m[i];
  return n;
}

/**
 * Turns region specs into per-frame masks at each frame's resolution. 2D boxes use
 * `boxToMask` (truncate, clamp, upper bounds exclusive); 3D boxes use `box3dToMasks` in
 * `'inside'` mode on each frame's world points (so only the surfaces a frame sees are in
 * its mask).
 *
 * @returns one {@link ResolvedRegion} per spec, in order (`region0`, `region1`, …).
 * @throws {@link RegionError} for a frame index out of range, a box outside its frame (empty
 *   after clamping), a mask whose size differs from its frame, or a region that covers no
 *   pixel in any frame.
 */
export async function resolveRegions(scene: Scene, regions: readonly RegionSpec[], opts?: ResolveRegionsOptions): Promise<ResolvedRegion[]> {
  if (!scene || !Array.isArray(scene.frames) || scene.frames.length === 0) {
    throw regionError('a scene with frames', 'scene', describeValue(scene), 'pass a scene from loadScene or sceneFromFrames', null);
  }
  if (!Array.isArray(regions)) throw regionError('an array of region specs', 'regions', describeValue(regions), 'pass [] or a list of { frame, box } / { frame, mask } / { masks } / { box3d }', null);
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw regionError('an options object', 'options', describeValue(opts), 'pass { worldPoints?, margin? }', null);
  const frames = scene.frames;
  const F = frames.length;
  let world: readonly TensorLike[] | undefined = opts?.worldPoints;
  if (world !== undefined && (!Array.isArray(world) || world.length !== F)) {
    throw regionError(`one world point map per frame (${F})`, 'worldPoints', describeValue(world), 'pass sceneWorldPoints(scene) or leave it out', null);
  }
  const device: DeviceOptions = { device: opts?.device };
  const out: ResolvedRegion[] = [];
  for (let r = 0; r < regions.length; r++) {
    const spec = regions[r] as unknown as Record<string, unknown>;
    const at = `regions[${r}]`;
    const zero = () => frames.map((f) => toNdArray(new Uint8Array(f.width * f.height), [f.height, f.width]));
    let kind: ResolvedRegion['kind'];
    let masks: NdArray<Uint8Array>[];
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
      throw regionError('a region { frame, box } | { frame, mask } | { masks } | { box3d }', at, describeValue(spec), 'see the region specs in the README', r);
    } else if ('box3d' in spec) {
      kind = 'box3d';
      world ??= await sceneWorldPoints(scene, device);
      masks = [];
      for (let f = 0; f < F; f++) {
        try {
          const res = await box3dToMasks(world[f], spec.box3d as Box3d, { ...device, mode: 'inside', margin: opts?.margin });
          masks.push(res.masks);
        } catch (e) {
          if (!(e instanceof InvalidArgumentError)) throw e;
          throw new RegionError(`${at} (region ${r}): ${e.message}. Fix: give box3d { center: [x, y, z], size: [sx, sy, sz] (full, metres), yaw? | rotation? }`, r);
        }
      }
    } else if ('box' in spec) {
      kind = 'box';
      const f = frameIndex(spec.frame, `${at}.frame`, F, r);
      const b = spec.box;
      const v = Array.isArray(b) || ArrayBuffer.isView(b) ? Array.from(b as ArrayLike<number>) : null;
      if (!v || v.length !== 4 || !v.every(finite)) {
        throw regionError('[x0, y0, x1, y1] (4 finite numbers, pixels)', `${at}.box`, v ? `[${v.join(', ')}]` : describeValue(b), 'give the box corners in pixels of the frame', r);
      }
      masks = zero();
      try {
        masks[f] = boxToMask({ x0: v[0], y0: v[1], x1: v[2], y1: v[3] }, frames[f].width, frames[f].height);
      } catch (e) {
        throw new RegionError(`${(e as Error).message} (region ${r}, frame ${f}). Fix: give a box that overlaps the ${frames[f].width}x${frames[f].height} frame with x0 < x1, y0 < y1`, r);
      }
    } else if ('mask' in spec || 'masks' in spec) {
      kind = 'mask';
      const list = 'masks' in spec ? spec.masks : [spec];
      if (!Array.isArray(list) || list.length === 0) {
        throw regionError('a non-empty array of { frame, mask }', `${at}.masks`, describeValue(list), 'give one { frame, mask } per frame the region is on', r);
      }
      masks = zero();
      const done = new Set<number>();
      for (let k = 0; k < list.length; k++) {
        const item = list[k] as Record<string, unknown>;
        const iat = 'masks' in spec ? `${at}.masks[${k}]` : at;
        if (item === null || typeof item !== 'object') throw regionError('{ frame, mask }', iat, describeValue(item), 'give each mask with its frame index', r);
        const f = frameIndex(item.frame, `${iat}.frame`, F, r);
        if (done.has(f)) throw regionError('each frame at most once', `${iat}.frame`, `frame ${f} again (region ${r})`, 'merge the masks of one frame into one mask', r);
        done.add(f);
        masks[f] = toNdArray(await readMask(item.mask, `${iat}.mask`, frames[f].width, frames[f].height, r, f), [frames[f].height, frames[f].width]);
      }
    } else {
      throw regionError('a region with "box", "mask", "masks" or "box3d"', at, `an object with keys ${Object.keys(spec).join(', ') || '(none)'}`,
        'see the region specs in the README', r);
    }
    const pixels = masks.map((m) => count(m.data));
    if (pixels.every((n) => n === 0)) {
      const why = kind === 'box3d'
        ? 'no valid point of any frame lies in the box: check that center/size are world metres (full sizes) in the scene\'s frame, or grow it with margin'
        : 'the mask is all zero: give a mask with nonzero pixels inside the region';
      throw new RegionError(`region ${r} covers no pixel in any frame (${kind}). Fix: ${why}`, r);
    }
    out.push({ id: `region${r}`, kind, masks, pixels });
  }
  return out;
}
