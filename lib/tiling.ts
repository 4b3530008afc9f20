/**
 * Image preprocessing of NVILA-Lite / SR-3D (spec Part B §2): VILA's dynamic tiling plan,
 * Pillow-exact bicubic resizing, the fused resize + crop + SigLIP normalization into tiles,
 * the same tiling of point maps and region masks (Pillow NEAREST), and multi-view frame
 * sampling. The plan functions are plain TypeScript; the pixel ops run in a native worker
 * thread and return Promises.
 */
import { invalidArgument } from './errors';
import { callNative, outArray, pickImpl } from './dispatch';
import type { DeviceOptions } from './geometry';
import { native } from './native';
import { toContiguous, toNdArray } from './tensor';
import type { NdArray, TensorLike } from './tensor';

/** How an image is cut into SigLIP tiles (VILA `dynamic_preprocess`). */
export interface TilePlan {
  /** Tiles across (the image is resized to `cols·tileSize` pixels wide). */
  cols: number;
  /** Tiles down (the image is resized to `rows·tileSize` pixels high). */
  rows: number;
  /** Tiles fed to SigLIP: `cols·rows`, plus 1 for the thumbnail when `cols·rows > 1`. */
  tiles: number;
  /** Whether the last tile is the thumbnail (the whole image resized to one tile): `cols·rows > 1`. */
  thumbnail: boolean;
  /** Tile side in pixels. */
  tileSize: number;
}

export interface PlanTilesOptions {
  /** Fewest grid tiles (`min_num`), excluding the thumbnail. Defaults to `1`. */
  minTiles?: number;
  /** Most grid tiles (`max_num`), excluding the thumbnail; at most 64. Defaults to `12`. */
  maxTiles?: number;
  /** Tile side in pixels (SigLIP so400m-patch14-448: 448). Defaults to `448`. */
  tileSize?: number;
}

export interface FramePlanOptions {
  /** Tile side in pixels (SigLIP so400m-patch14-448: 448). Defaults to `448`. */
  tileSize?: number;
}

// ---- the candidate grids: a port of CPython's set iteration order -------------------------
//
// VILA builds the candidates as a Python set of (cols, rows) tuples and sorts them by
// cols·rows with a stable sort, so equal products keep the set's iteration order, which is
// CPython's hash-table order. That order is reproduced here: tuple hashes (xxHash-based
// tuplehash, CPython >= 3.8; hash(i) = i for small ints) inserted into a set table exactly as
// Objects/setobject.c does (mask = size - 1, 10-slot linear probes then perturbed jumps, growth
// to the next power of two above 4x the entries once fill·5 >= mask·3). The result is checked
// against CPython 3.11 for 136 (min, max) ranges (test/fixtures/tiling/plans.json); CPython
// 3.8-3.13 all give the same lists there (3.7 and older hash tuples differently).

const U64 = (1n << 64n) - 1n;
const XXPRIME_1 = 11400714785074694791n;
const XXPRIME_2 = 14029467366897019727n;
const XXPRIME_5 = 2870177450012600261n;

/** CPython's tuplehash of a tuple of small non-negative ints, as an unsigned 64-bit value. */
function tupleHash(items: readonly number[]): bigint {
  let acc = XXPRIME_5;
  for (const item of items) {
    acc = (acc + BigInt(item) * XXPRIME_2) & U64;
    acc = ((acc << 31n) | (acc >> 33n)) & U64; // rotate left 31
    acc = (acc * XXPRIME_1) & U64;
  }
  acc = (acc + (BigInt(items.length) ^ (XXPRIME_5 ^ 3527539n))) & U64;
  return acc === U64 ? 1546275796n : acc; // -1 is reserved for errors
}

const LINEAR_PROBES = 9n;
const PERTURB_SHIFT = 5n;

/** The insertion and iteration behaviour of a CPython set that only grows (no deletions). */
class PySetEmulation {
  private table: ({ key: [number, number]; hash: bigint } | null)[] = new Array(8).fill(null);
  private mask = 7n;
  private fill = 0;

  add(key: [number, number]): void {
    const hash = tupleHash(key);
    const slot = this.probe(key, hash);
    if (slot < 0) return; // already present
    this.table[slot] = { key, hash };
    this.fill++;
    if (BigInt(this.fill) * 5n >= this.mask * 3n) this.resize(this.fill > 50000 ? this.fill * 2 : this.fill * 4);
  }

  /**
   * CPython's probe sequence (setobject.c set_add_entry / set_insert_clean): from `hash & mask`,
   * one slot plus LINEAR_PROBES more when they fit before the end of the table, then a
   * perturbed jump. Returns the first empty slot, or -1 when an equal key is met first.
   */
  private probe(key: [number, number], hash: bigint): number {
    let i = hash & this.mask;
    let perturb = hash;
    for (;;) {
      const probes = i + LINEAR_PROBES <= this.mask ? Number(LINEAR_PROBES) : 0;
      for (let j = 0; j <= probes; j++) {
        const slot = Number(i) + j;
        const e = this.table[slot];
        if (e === null) return slot;
        if (e.hash === hash && e.key[0] === key[0] && e.key[1] === key[1]) return -1;
      }
      perturb >>= PERTURB_SHIFT;
      i = (i * 5n + 1n + perturb) & this.mask;
    }
  }

  private resize(minUsed: number): void {
    let size = 8;
    while (size <= minUsed) size <<= 1;
    const old = this.table;
    this.table = new Array(size).fill(null);
    this.mask = BigInt(size - 1);
    // Re-insert in table order; keys are distinct, so the probe never meets an equal one.
    for (const e of old) if (e !== null) this.table[this.probe(e.key, e.hash)] = e;
  }

  /** Iteration order: table order. */
  keys(): [number, number][] {
    return this.table.filter((e): e is { key: [number, number]; hash: bigint } => e !== null).map((e) => e.key);
  }
}

const candidateCache = new Map<string, readonly (readonly [number, number])[]>();

/**
 * VILA's candidate grids `(cols, rows)` for `minTiles ≤ cols·rows ≤ maxTiles`, in the order its
 * Python code visits them: the set built by
 * `set((i, j) for n in range(min, max + 1) for i in range(1, n + 1) for j in range(1, n + 1) if min <= i * j <= max)`,
 * iterated as CPython does, then stably sorted by `i·j`. For (1, 12) this is the 35-entry list of
 * spec Part B §2.1 (`(1,1) (1,2) (2,1) (3,1) (1,3) (2,2) …`).
 *
 * @param minTiles fewest grid tiles, in [1, 64]. Defaults to `1`.
 * @param maxTiles most grid tiles, in [minTiles, 64]. Defaults to `12`.
 */
export function candidateGrids(minTiles = 1, maxTiles = 12): readonly (readonly [number, number])[] {
  checkTileRange(minTiles, maxTiles);
  const cacheKey = `${minTiles},${maxTiles}`;
  const hit = candidateCache.get(cacheKey);
  if (hit) return hit;
  const set = new PySetEmulation();
  for (let n = minTiles; n <= maxTiles; n++) {
    for (let i = 1; i <= n; i++) {
      for (let j = 1; j <= n; j++) if (i * j <= maxTiles && i * j >= minTiles) set.add([i, j]);
    }
  }
  const sorted = set.keys().sort((a, b) => a[0] * a[1] - b[0] * b[1]); // Array.prototype.sort is stable
  const frozen = Object.freeze(sorted.map((c) => Object.freeze([c[0], c[1]] as const)));
  candidateCache.set(cacheKey, frozen);
  return frozen;
}

function checkTileRange(minTiles: unknown, maxTiles: unknown): void {
  if (!Number.isInteger(minTiles) || (minTiles as number) < 1 || (minTiles as number) > 64) {
    throw invalidArgument('an integer in [1, 64]', 'minTiles', minTiles);
  }
  if (!Number.isInteger(maxTiles) || (maxTiles as number) < (minTiles as number) || (maxTiles as number) > 64) {
    throw invalidArgument(`an integer in [minTiles = ${minTiles as number}, 64]`, 'maxTiles', maxTiles);
  }
}

function checkTileSize(tileSize: unknown, name = 'tileSize'): number {
  if (!Number.isInteger(tileSize) || (tileSize as number) < 1 || (tileSize as number) > 4096) {
    throw invalidArgument('an integer in [1, 4096] (pixels)', name, tileSize);
  }
  return tileSize as number;
}

const MAX_SIDE = 2 ** 24;

function checkSide(v: unknown, name: string): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > MAX_SIDE) throw invalidArgument('an integer in [1, 2^24] (pixels)', name, v);
  return v as number;
}

function makePlan(cols: number, rows: number, tileSize: number): TilePlan {
  const grid = cols * rows;
  return { cols, rows, tiles: grid > 1 ? grid + 1 : 1, thumbnail: grid > 1, tileSize };
}

/**
 * VILA's tiling plan for a `width`x`height` image (`dynamic_preprocess`, spec Part B §2.1-2.2):
 * the candidate grid whose aspect ratio `cols/rows` is closest to `width/height` (float64, exact
 * comparisons); on an exact tie a later candidate wins only when the image area exceeds half of
 * its target area (`width·height > 0.5·tileSize²·cols·rows`).
 *
 * Test vectors (1..12, 448): 640x480 → 4x3 (13 tiles), 1920x1080 → 4x2 (9), 448x448 → 1x1 (1).
 *
 * @param width image width in pixels.
 * @param height image height in pixels.
 */
export function planTiles(width: number, height: number, opts?: PlanTilesOptions): TilePlan {
  checkSide(width, 'width');
  checkSide(height, 'height');
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgument('an options object', 'options', opts);
  const tileSize = checkTileSize(opts?.tileSize ?? 448);
  const candidates = candidateGrids(opts?.minTiles ?? 1, opts?.maxTiles ?? 12);
  const aspect = width / height;
  const area = width * height;
  let bestDiff = Infinity;
  let best: readonly [number, number] = [1, 1];
  for (const c of candidates) {
    const diff = Math.abs(aspect - c[0] / c[1]);
    if (diff < bestDiff) {
      bestDiff = diff;
      best = c;
    } else if (diff === bestDiff && area > 0.5 * tileSize * tileSize * c[0] * c[1]) {
      best = c;
    }
  }
  return makePlan(best[0], best[1], tileSize);
}

/**
 * The plan of a multi-view or video frame (spec Part A §A8, Part B §2.3/§2.5): no tiling, the
 * frame stretched to one `tileSize` tile, no thumbnail. Pass it to {@link tileImage},
 * {@link tilePointMap} and {@link tileMask} for each frame.
 */
export function framePlan(opts?: FramePlanOptions): TilePlan {
  return makePlan(1, 1, checkTileSize(opts?.tileSize ?? 448));
}

/** numpy's `np.round` (round half to even) of a float64. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for the values linspace produces here
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Indices of `count` frames sampled uniformly from `n` (VILA, spec Part A §A8 / Part B §2.5):
 * `np.round(np.linspace(0, n - 1, count)).astype(int)`, with numpy's arithmetic: element i is
 * `i · ((n - 1) / (count - 1))` in float64, the last exactly `n - 1`, rounded half to even.
 * Indices repeat when `count > n`.
 *
 * @param n number of frames available (>= 1).
 * @param count number of frames wanted (>= 1; SR-3D uses 32).
 */
export function sampleFrames(n: number, count: number): number[] {
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 31) throw invalidArgument('an integer in [1, 2^31] (frames available)', 'n', n);
  if (!Number.isInteger(count) || count < 1 || count > 2 ** 20) throw invalidArgument('an integer in [1, 2^20] (frames wanted)', 'count', count);
  const stop = n - 1;
  if (count === 1) return [0];
  const step = stop / (count - 1);
  const out = new Array<number>(count);
  for (let i = 0; i < count; i++) out[i] = roundHalfEven(i === count - 1 ? stop : i * step);
  return out;
}

// ---- pixel ops -------------------------------------------------------------------------------

export interface ResizeOptions extends DeviceOptions {
  /** Write the result into this Uint8Array of `height·width·3` elements. Defaults to a new array. */
  out?: Uint8Array;
}

export interface TileOptions extends DeviceOptions {
  /** Write the tiles into this array (the result's element count and type). Defaults to a new array. */
  out?: Float32Array | Uint8Array;
}

const IMAGE_SPEC = { dtypes: ['uint8' as const], ranks: [3], lastDim: 3, what: 'an RGB image (H,W,3) uint8' };

function nonEmpty(shape: number[], name: string): void {
  if (shape[0] < 1 || shape[1] < 1) {
    throw invalidArgument('a non-empty image (height and width >= 1)', `${name}.shape`, `[${shape.join(', ')}]`, true);
  }
  if (shape[0] > MAX_SIDE || shape[1] > MAX_SIDE) {
    throw invalidArgument('sides up to 2^24 pixels', `${name}.shape`, `[${shape.join(', ')}]`, true);
  }
}

/** Validates a plan: integers in range and `tiles`/`thumbnail` consistent with the grid. */
function readPlan(plan: unknown): TilePlan {
  if (plan === null || typeof plan !== 'object') throw invalidArgument('a tiling plan { cols, rows, tiles, thumbnail, tileSize } (planTiles / framePlan)', 'plan', plan);
  const p = plan as Partial<TilePlan>;
  for (const key of ['cols', 'rows'] as const) {
    if (!Number.isInteger(p[key]) || p[key]! < 1 || p[key]! > 64) throw invalidArgument('an integer in [1, 64]', `plan.${key}`, p[key]);
  }
  const tileSize = checkTileSize(p.tileSize ?? 448, 'plan.tileSize');
  const expected = makePlan(p.cols!, p.rows!, tileSize);
  if (p.tiles !== undefined && p.tiles !== expected.tiles) {
    throw invalidArgument(`${expected.tiles} tiles for a ${p.cols}x${p.rows} grid (cols·rows${expected.thumbnail ? ' + 1 thumbnail' : ''})`, 'plan.tiles', p.tiles);
  }
  if (p.thumbnail !== undefined && p.thumbnail !== expected.thumbnail) {
    throw invalidArgument(`thumbnail ${String(expected.thumbnail)} for a ${p.cols}x${p.rows} grid (a thumbnail exactly when cols·rows > 1)`, 'plan.thumbnail', p.thumbnail);
  }
  return expected;
}

function checkOptions(opts: unknown): void {
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgument('an options object', 'options', opts);
}

/**
 * Resizes an RGB image exactly as Pillow's `Image.resize((width, height), Image.BICUBIC)`
 * (Pillow ≥ 7; verified bit for bit against Pillow 9.4): bicubic a = -0.5, antialiased (the
 * kernel widened by the downscale factor), horizontal pass then vertical, each rounded to uint8
 * in Pillow's 22-bit fixed point. A same-size resize returns a copy.
 *
 * @param image (H,W,3) uint8.
 * @param width output width in pixels.
 * @param height output height in pixels.
 * @returns (height,width,3) uint8.
 */
export async function resizeBicubic(image: TensorLike, width: number, height: number, opts?: ResizeOptions): Promise<NdArray<Uint8Array>> {
  const addon = native();
  checkOptions(opts);
  const img = toContiguous(image, 'image', IMAGE_SPEC);
  nonEmpty(img.shape, 'image');
  checkSide(width, 'width');
  checkSide(height, 'height');
  const dst = outArray(opts?.out, Uint8Array, height * width * 3, 'out');
  const sel = pickImpl(opts, addon);
  await callNative(() => addon.resizeBicubic({
    src: img.data as Uint8Array, height: img.shape[0], width: img.shape[1], dst, outHeight: height, outWidth: width, ...sel,
  }));
  return toNdArray(dst, [height, width, 3]);
}

/**
 * Cuts an RGB image into SigLIP's input tiles exactly as NVILA does (VILA `dynamic_preprocess` +
 * `SiglipImageProcessor`, spec Part B §2.3), in one pass from the source: the image resized
 * (Pillow bicubic, stretched) to `cols·T`x`rows·T`, cut into row-major TxT tiles, then, when
 * `cols·rows > 1`, the whole image resized to TxT as the last tile (the thumbnail). Values are
 * normalized per channel to [-1, 1]: `v = x / 255` then `(v - 0.5) / 0.5`, every step in float32
 * (for all 256 byte values this equals transformers' float64 rescale cast to float32 followed by
 * its float32 normalize). Bit for bit what Pillow + transformers give (the uint8 rounding of
 * Pillow's two passes included).
 *
 * @param image (H,W,3) uint8.
 * @param plan the grid, from {@link planTiles} (single image) or {@link framePlan} (multi-view frame).
 * @returns (plan.tiles, 3, T, T) float32, T = plan.tileSize.
 */
export async function tileImage(image: TensorLike, plan: TilePlan, opts?: TileOptions): Promise<NdArray<Float32Array>> {
  const addon = native();
  checkOptions(opts);
  const img = toContiguous(image, 'image', IMAGE_SPEC);
  nonEmpty(img.shape, 'image');
  const p = readPlan(plan);
  const T = p.tileSize;
  const tiles = outArray(opts?.out, Float32Array, p.tiles * 3 * T * T, 'out');
  const sel = pickImpl(opts, addon);
  await callNative(() => addon.tileImage({
    src: img.data as Uint8Array, height: img.shape[0], width: img.shape[1], cols: p.cols, rows: p.rows, tileSize: T, tiles, ...sel,
  }));
  return toNdArray(tiles, [p.tiles, 3, T, T]);
}

async function tileNearest<A extends Float32Array | Uint8Array>(
  src: A, height: number, width: number, channels: number, p: TilePlan, Ctor: { new (n: number): A; name: string; BYTES_PER_ELEMENT: number },
  opts: TileOptions | undefined,
): Promise<A> {
  const addon = native();
  const T = p.tileSize;
  const dst = outArray(opts?.out, Ctor, p.tiles * T * T * channels, 'out');
  const sel = pickImpl(opts, addon);
  await callNative(() => addon.tileNearest({
    src, dtype: src instanceof Float32Array ? 'float32' : 'uint8', channels, height, width,
    cols: p.cols, rows: p.rows, tileSize: T, dst, ...sel,
  }));
  return dst;
}

/**
 * Tiles a point map like its image (spec Part A §A4, Part B §2.4): the same grid, crops and
 * thumbnail as {@link tileImage}, resized with Pillow's NEAREST so points are never blended
 * across depth edges or with invalid (NaN) pixels. NEAREST here is Pillow's exactly: output x
 * reads input `floor(s_x)` with `s_0 = (in/out)/2` and `s_(x+1) = s_x + in/out` accumulated in
 * float64 (which differs from `floor((x + 0.5)·in/out)`, e.g. for 2 → 7 pixels). The map may have
 * another resolution than the image. Values are copied bit for bit (NaN stays NaN).
 *
 * @param points (H,W,3) float32 (metres or canonical units; NaN = invalid).
 * @param plan the image's plan ({@link planTiles} or {@link framePlan}).
 * @returns (plan.tiles, T, T, 3) float32, T = plan.tileSize.
 */
export async function tilePointMap(points: TensorLike, plan: TilePlan, opts?: TileOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const pts = toContiguous(points, 'points', { dtypes: ['float32'], ranks: [3], lastDim: 3, what: 'a point map (H,W,3) float32' });
  nonEmpty(pts.shape, 'points');
  const p = readPlan(plan);
  const out = await tileNearest(pts.data as Float32Array, pts.shape[0], pts.shape[1], 3, p, Float32Array, opts);
  return toNdArray(out, [p.tiles, p.tileSize, p.tileSize, 3]);
}

/**
 * Tiles a region mask like its image (spec Part B §2.4): the same grid, crops and thumbnail as
 * {@link tileImage}, resized with Pillow's NEAREST (as {@link tilePointMap}), so the tiles hold
 * only the mask's own values.
 *
 * @param mask (H,W) uint8 (0 = outside the region).
 * @param plan the image's plan ({@link planTiles} or {@link framePlan}).
 * @returns (plan.tiles, T, T) uint8, T = plan.tileSize.
 */
export async function tileMask(mask: TensorLike, plan: TilePlan, opts?: TileOptions): Promise<NdArray<Uint8Array>> {
  checkOptions(opts);
  const m = toContiguous(mask, 'mask', { dtypes: ['uint8'], ranks: [2], what: 'a mask (H,W) uint8' });
  nonEmpty(m.shape, 'mask');
  const p = readPlan(plan);
  const out = await tileNearest(m.data as Uint8Array, m.shape[0], m.shape[1], 1, p, Uint8Array, opts);
  return toNdArray(out, [p.tiles, p.tileSize, p.tileSize]);
}
