// Tiling (spec Part B §2): the plan against VILA's Python rule and CPython 3.11's output,
// frame sampling against numpy, and every pixel op (reference, fast, CUDA when there is a GPU)
// against Pillow 9.4 bit for bit (fixtures of scripts/make_resize_fixtures.py and
// scripts/make_plan_fixtures.py) and against plain float64 JavaScript ports.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';

import { InvalidArgumentError } from '../lib/errors';
import { devices } from '../lib/info';
import {
  candidateGrids, framePlan, planTiles, resizeBicubic, sampleFrames, tileImage, tileMask, tilePointMap,
} from '../lib/tiling';
import type { TilePlan } from '../lib/tiling';
import { rng } from './helpers';

const hasGpu = devices().length > 0;
const impls: { name: string; opts: { impl?: 'reference' | 'fast'; device?: 'cpu' | 'cuda' } }[] = [
  { name: 'reference', opts: { impl: 'reference' } },
  { name: 'fast', opts: { device: 'cpu' } },
  ...(hasGpu ? [{ name: 'cuda', opts: { device: 'cuda' as const } }] : []),
];

const FIX = path.join(__dirname, 'fixtures');
const plansFix = JSON.parse(fs.readFileSync(path.join(FIX, 'tiling', 'plans.json'), 'utf8')) as {
  _python: string; candidates: Record<string, [number, number][]>; plans: number[][]; frames: [number, number, number[]][];
};
interface ResizeCase { name: string; source: (string | number)[]; width: number; height: number; sha256: string; png: string | null }
const resizeFix = JSON.parse(fs.readFileSync(path.join(FIX, 'resize', 'index.json'), 'utf8')) as {
  _pillow: string; cases: ResizeCase[];
  tiles: { source: (string | number)[]; cols: number; rows: number; shape: number[]; sha256: string }[];
  nearest: [number, number, number[]][];
};

// Jest runs tests in a vm context where every global lookup (Math.*) is slow: hot loops use locals.
const { floor, fround, max, min, trunc } = Math;

const sha256 = (a: Uint8Array | Float32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

// ---- literal ports of the reference code (written for obviousness) ------------------------

/** The 35 candidates of spec Part B §2.1 (CPython 3.11 set order, stable-sorted by i*j). */
const SPEC_CANDIDATES_1_12: [number, number][] = [
  [1, 1], [1, 2], [2, 1], [3, 1], [1, 3], [2, 2], [4, 1], [1, 4], [5, 1], [1, 5], [1, 6], [6, 1], [3, 2], [2, 3], [7, 1], [1, 7],
  [4, 2], [2, 4], [1, 8], [8, 1], [1, 9], [3, 3], [9, 1], [2, 5], [5, 2], [10, 1], [1, 10], [11, 1], [1, 11], [12, 1], [3, 4],
  [4, 3], [1, 12], [6, 2], [2, 6],
];

/** VILA find_closest_aspect_ratio, line by line. */
function pyFindClosest(aspectRatio: number, targetRatios: [number, number][], width: number, height: number, imageSize: number): [number, number] {
  let bestRatioDiff = Infinity;
  let bestRatio: [number, number] = [1, 1];
  const area = width * height;
  for (const ratio of targetRatios) {
    const targetAspectRatio = ratio[0] / ratio[1];
    const ratioDiff = Math.abs(aspectRatio - targetAspectRatio);
    if (ratioDiff < bestRatioDiff) {
      bestRatioDiff = ratioDiff;
      bestRatio = ratio;
    } else if (ratioDiff === bestRatioDiff) {
      if (area > 0.5 * imageSize * imageSize * ratio[0] * ratio[1]) bestRatio = ratio;
    }
  }
  return bestRatio;
}

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Pillow precompute_coeffs + normalize_coeffs_8bpc (bicubic). */
function pillowCoeffs(inSize: number, outSize: number): { first: number[]; k: number[][] } {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = 2 * filterscale;
  const first: number[] = [], k: number[][] = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    const w: number[] = [];
    const ss = 1 / filterscale;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const v = bicubic((x + xmin - center + 0.5) * ss);
      w.push(v);
      ww += v;
    }
    first.push(xmin);
    k.push(w.map((v) => (ww !== 0 ? v / ww : v)).map((v) => (v < 0 ? trunc(-0.5 + v * 2 ** 22) : trunc(0.5 + v * 2 ** 22))));
  }
  return { first, k };
}

const clip8 = (s: number) => min(255, max(0, s >> 22));

/** Pillow ImagingResample for RGB: horizontal then vertical, a pass skipped when its size is unchanged. */
function jsResize(src: Uint8Array, W: number, H: number, ow: number, oh: number): Uint8Array {
  let cur = src, cw = W;
  if (ow !== W) {
    const { first, k } = pillowCoeffs(W, ow);
    const out = new Uint8Array(H * ow * 3);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < ow; x++) {
        for (let c = 0; c < 3; c++) {
          let s = 1 << 21;
          for (let t = 0; t < k[x].length; t++) s += src[(y * W + first[x] + t) * 3 + c] * k[x][t];
          out[(y * ow + x) * 3 + c] = clip8(s);
        }
      }
    }
    cur = out;
    cw = ow;
  }
  if (oh !== H) {
    const { first, k } = pillowCoeffs(H, oh);
    const out = new Uint8Array(oh * cw * 3);
    for (let y = 0; y < oh; y++) {
      for (let i = 0; i < cw * 3; i++) {
        let s = 1 << 21;
        for (let t = 0; t < k[y].length; t++) s += cur[(first[y] + t) * cw * 3 + i] * k[y][t];
        out[y * cw * 3 + i] = clip8(s);
      }
    }
    cur = out;
  }
  return cur === src ? src.slice() : cur;
}

/** transformers SiglipImageProcessor: float64 x * (1/255) cast to float32, then (v - 0.5) / 0.5 in float32. */
const siglip = (x: number) => fround(fround(fround(x * (1 / 255)) - 0.5) / 0.5);

/** VILA dynamic_preprocess + SiglipImageProcessor with the JS resize: (N,3,T,T). */
function jsTiles(src: Uint8Array, W: number, H: number, plan: TilePlan): Float32Array {
  const T = plan.tileSize;
  const grid = jsResize(src, W, H, T * plan.cols, T * plan.rows);
  const crops: { img: Uint8Array; w: number; x0: number; y0: number }[] = [];
  for (let i = 0; i < plan.cols * plan.rows; i++) crops.push({ img: grid, w: T * plan.cols, x0: (i % plan.cols) * T, y0: floor(i / plan.cols) * T });
  if (plan.cols * plan.rows !== 1) crops.push({ img: jsResize(src, W, H, T, T), w: T, x0: 0, y0: 0 });
  const out = new Float32Array(crops.length * 3 * T * T);
  crops.forEach(({ img, w, x0, y0 }, k) => {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < T; y++) for (let x = 0; x < T; x++) out[((k * 3 + c) * T + y) * T + x] = siglip(img[((y0 + y) * w + x0 + x) * 3 + c]);
    }
  });
  return out;
}

/** Pillow NEAREST along one axis (ImagingScaleAffine: the coordinate accumulates in float64). */
function pilNearest(inSize: number, outSize: number): number[] {
  const a0 = inSize / outSize;
  let xo = a0 * 0.5;
  const out: number[] = [];
  for (let x = 0; x < outSize; x++) {
    out.push(xo < 0 ? -1 : trunc(xo));
    xo += a0;
  }
  return out;
}

/** Nearest tiling of a (H,W,C) map: (N,T,T,C). */
function jsTileNearest<A extends Float32Array | Uint8Array>(src: A, W: number, H: number, C: number, plan: TilePlan, make: (n: number) => A): A {
  const T = plan.tileSize;
  const out = make(plan.tiles * T * T * C);
  const put = (k: number, xs: number[], ys: number[], x0: number, y0: number) => {
    for (let y = 0; y < T; y++) for (let x = 0; x < T; x++) for (let c = 0; c < C; c++) {
      out[((k * T + y) * T + x) * C + c] = src[(ys[y0 + y] * W + xs[x0 + x]) * C + c];
    }
  };
  const gx = pilNearest(W, T * plan.cols), gy = pilNearest(H, T * plan.rows);
  for (let k = 0; k < plan.cols * plan.rows; k++) put(k, gx, gy, (k % plan.cols) * T, floor(k / plan.cols) * T);
  if (plan.thumbnail) put(plan.cols * plan.rows, pilNearest(W, T), pilNearest(H, T), 0, 0);
  return out;
}

// ---- fixture sources ---------------------------------------------------------------------------

function readPng(file: string): { data: Uint8Array; width: number; height: number } {
  const png = PNG.sync.read(fs.readFileSync(file));
  const data = new Uint8Array(png.width * png.height * 3);
  for (let i = 0; i < png.width * png.height; i++) for (let c = 0; c < 3; c++) data[3 * i + c] = png.data[4 * i + c];
  return { data, width: png.width, height: png.height };
}

/** scripts/make_resize_fixtures.py synth(): xorshift32 noise over a gradient, full-range noise blocks. */
function synth(w: number, h: number, seed: number): Uint8Array {
  let s = Number((BigInt(seed) * 2654435761n + 1n) & 0xffffffffn) || 1;
  const out = new Uint8Array(w * h * 3);
  const span = max(w + h - 2, 1);
  let i = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        s = (s ^ (s << 13)) >>> 0;
        s = (s ^ (s >>> 17)) >>> 0;
        s = (s ^ (s << 5)) >>> 0;
        const v = ((x >> 5) + (y >> 5) + c) % 3 === 0 ? s & 255 : floor(((x + y) * 255) / span) + (s & 63) - 32;
        out[i++] = min(255, max(0, v));
      }
    }
  }
  return out;
}

const photos: Record<string, { data: Uint8Array; width: number; height: number }> = {};
function source(spec: (string | number)[]): { data: Uint8Array; width: number; height: number } {
  if (spec[0] === 'synth') return { data: synth(spec[1] as number, spec[2] as number, spec[3] as number), width: spec[1] as number, height: spec[2] as number };
  const name = spec[1] as string;
  photos[name] ??= readPng(path.join(FIX, 'resize', `src_${name}.png`));
  const p = photos[name];
  if (spec[0] === 'photo') return p;
  const [, , x0, y0, w, h] = spec as [string, string, number, number, number, number];
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(p.data.subarray(((y0 + y) * p.width + x0) * 3, ((y0 + y) * p.width + x0 + w) * 3), y * w * 3);
  return { data, width: w, height: h };
}

const image = (s: { data: Uint8Array; width: number; height: number }) => ({ data: s.data, shape: [s.height, s.width, 3] });

function randomImage(h: number, w: number, seed: number): Uint8Array {
  const r = rng(seed);
  const a = new Uint8Array(h * w * 3);
  for (let i = 0; i < a.length; i++) a[i] = r() < 0.2 ? (r() < 0.5 ? 0 : 255) : floor(r() * 256);
  return a;
}

function firstDiff(got: ArrayLike<number>, want: ArrayLike<number>): string {
  if (got.length !== want.length) return `length ${got.length} != ${want.length}`;
  let n = 0, first = -1;
  for (let i = 0; i < got.length; i++) if (!Object.is(got[i], want[i]) && n++ === 0) first = i;
  return n ? `${n} of ${got.length} differ, first at ${first} (got ${got[first]}, want ${want[first]})` : 'identical';
}

// ---- planTiles ---------------------------------------------------------------------------------

describe('planTiles (VILA dynamic_preprocess grid)', () => {
  it('candidateGrids(1, 12) is the spec list (CPython 3.11 set order)', () => {
    expect(candidateGrids(1, 12).map((c) => [...c])).toEqual(SPEC_CANDIDATES_1_12);
  });

  it(`the set-order emulation equals CPython ${plansFix._python} for every fixture range`, () => {
    const keys = Object.keys(plansFix.candidates);
    expect(keys.length).toBeGreaterThan(100);
    for (const key of keys) {
      const [mn, mx] = key.split(',').map(Number);
      expect({ key, list: candidateGrids(mn, mx).map((c) => [...c]) }).toEqual({ key, list: plansFix.candidates[key] });
    }
  });

  it('spec test vectors (Part B §2.2)', () => {
    const vectors: [number, number, number, number, number][] = [
      [448, 448, 1, 1, 1], [500, 500, 1, 1, 1], [640, 480, 4, 3, 13], [480, 640, 3, 4, 13], [1920, 1080, 4, 2, 9],
      [1280, 720, 4, 2, 9], [640, 360, 2, 1, 3], [1000, 300, 3, 1, 4], [2000, 2000, 3, 3, 10], [1296, 968, 4, 3, 13],
    ];
    for (const [w, h, cols, rows, tiles] of vectors) {
      expect({ w, h, plan: planTiles(w, h) }).toEqual({ w, h, plan: { cols, rows, tiles, thumbnail: tiles > 1, tileSize: 448 } });
    }
  });

  it(`every fixture plan equals CPython ${plansFix._python} running VILA's code`, () => {
    expect(plansFix.plans.length).toBeGreaterThan(3000);
    for (const [w, h, mn, mx, ts, cols, rows] of plansFix.plans) {
      const p = planTiles(w, h, { minTiles: mn, maxTiles: mx, tileSize: ts });
      if (p.cols !== cols || p.rows !== rows) throw new Error(`${w}x${h} (${mn}..${mx}, ${ts}): got ${p.cols}x${p.rows}, Python ${cols}x${rows}`);
    }
  });

  it('every size 1..64 x 1..64, scaled by 1, 7, 14, 32 and 63, and 3000 random sizes equal the literal Python port', () => {
    const sizes: [number, number][] = [];
    for (const f of [1, 7, 14, 32, 63]) for (let w = 1; w <= 64; w++) for (let h = 1; h <= 64; h++) sizes.push([w * f, h * f]);
    const r = rng(11);
    for (let i = 0; i < 3000; i++) sizes.push([1 + floor(r() * 6000), 1 + floor(r() * 6000)]);
    let ties = 0;
    for (const [w, h] of sizes) {
      const [cols, rows] = pyFindClosest(w / h, SPEC_CANDIDATES_1_12, w, h, 448);
      const p = planTiles(w, h);
      if (p.cols !== cols || p.rows !== rows) throw new Error(`${w}x${h}: got ${p.cols}x${p.rows}, Python rule ${cols}x${rows}`);
      if (SPEC_CANDIDATES_1_12.filter((c) => Math.abs(w / h - c[0] / c[1]) === Math.abs(w / h - cols / rows)).length > 1) ties++;
    }
    expect(ties).toBeGreaterThan(100); // the tie rule was exercised (e.g. 2:1 vs 4:2)
  });

  it('other ranges and tile sizes follow the same rule with their own candidate order', () => {
    const r = rng(5);
    for (let i = 0; i < 500; i++) {
      const w = 1 + floor(r() * 4000), h = 1 + floor(r() * 4000);
      for (const [mn, mx, ts] of [[1, 6, 448], [2, 9, 384], [3, 16, 224], [1, 24, 448]]) {
        const [cols, rows] = pyFindClosest(w / h, plansFix.candidates[`${mn},${mx}`], w, h, ts);
        expect(planTiles(w, h, { minTiles: mn, maxTiles: mx, tileSize: ts })).toMatchObject({ cols, rows, tileSize: ts });
      }
    }
  });

  it('the tie rule: 2:1 images pick (2,1) when small and (4,2) when large enough', () => {
    // (2,1) and (4,2) have the same ratio; (4,2) comes later and wins when area > 0.5*448^2*8.
    expect(planTiles(896, 448)).toMatchObject({ cols: 2, rows: 1, tiles: 3 });
    expect(planTiles(1792, 896)).toMatchObject({ cols: 4, rows: 2, tiles: 9 });
    expect(planTiles(896, 448, { tileSize: 224 })).toMatchObject({ cols: 4, rows: 2 });
  });

  it('framePlan is one stretched tile, no thumbnail', () => {
    expect(framePlan()).toEqual({ cols: 1, rows: 1, tiles: 1, thumbnail: false, tileSize: 448 });
    expect(framePlan({ tileSize: 384 }).tileSize).toBe(384);
  });

  it('bad arguments are typed errors naming the argument', () => {
    expect(() => planTiles(0, 480)).toThrow(/^Expected an integer in \[1, 2\^24\] \(pixels\) for width but received 0$/);
    expect(() => planTiles(640, 1.5)).toThrow(/for height but received 1.5$/);
    expect(() => planTiles(640, 480, { minTiles: 5, maxTiles: 4 })).toThrow(/^Expected an integer in \[minTiles = 5, 64\] for maxTiles but received 4$/);
    expect(() => planTiles(640, 480, { minTiles: 0 })).toThrow(/for minTiles but received 0$/);
    expect(() => planTiles(640, 480, { tileSize: 0 })).toThrow(/for tileSize but received 0$/);
    expect(() => planTiles(640, 480, 'x' as never)).toThrow(InvalidArgumentError);
    expect(() => framePlan({ tileSize: -1 })).toThrow(/for tileSize/);
  });
});

// ---- sampleFrames --------------------------------------------------------------------------------

describe('sampleFrames = np.round(np.linspace(0, n - 1, count)).astype(int)', () => {
  it('equals numpy on every fixture case', () => {
    for (const [n, count, want] of plansFix.frames) expect({ n, count, got: sampleFrames(n, count) }).toEqual({ n, count, got: want });
  });

  it('rounds half to even, keeps the last index exact, repeats when count > n', () => {
    expect(sampleFrames(4, 3)).toEqual([0, 2, 3]); // 1.5 -> 2
    expect(sampleFrames(6, 3)).toEqual([0, 2, 5]); // 2.5 -> 2
    expect(sampleFrames(10, 4)).toEqual([0, 3, 6, 9]);
    expect(sampleFrames(1, 3)).toEqual([0, 0, 0]);
    expect(sampleFrames(7, 1)).toEqual([0]);
    expect(sampleFrames(3, 5)).toEqual([0, 0, 1, 2, 2]); // 0.5 -> 0, 1.5 -> 2
    const s = sampleFrames(1000, 32);
    expect(s[31]).toBe(999);
  });

  it('bad arguments are typed errors', () => {
    expect(() => sampleFrames(0, 4)).toThrow(/for n but received 0$/);
    expect(() => sampleFrames(5, 0)).toThrow(/for count but received 0$/);
    expect(() => sampleFrames(5, 2.5)).toThrow(/for count but received 2.5$/);
  });
});

// ---- resizeBicubic -----------------------------------------------------------------------------

describe(`resizeBicubic equals Pillow ${resizeFix._pillow} Image.resize(BICUBIC)`, () => {
  for (const c of resizeFix.cases) {
    it(`${c.name}: ${c.source.join(' ')} -> ${c.width}x${c.height} (${impls.map((i) => i.name).join(', ')})`, async () => {
      const src = source(c.source);
      const want = c.png ? readPng(path.join(FIX, 'resize', c.png)).data : null;
      for (const { name, opts } of impls) {
        const out = await resizeBicubic(image(src), c.width, c.height, opts);
        expect(out.shape).toEqual([c.height, c.width, 3]);
        if (want) expect(`${name}: ${firstDiff(out.data, want)}`).toBe(`${name}: identical`);
        expect(`${name}: ${sha256(out.data)}`).toBe(`${name}: ${c.sha256}`);
      }
    });
  }

  it('the plain JavaScript port of Resample.c matches Pillow too (it is the reference of the sizes below)', () => {
    for (const c of resizeFix.cases.filter((x) => x.width * x.height <= 448 * 896)) {
      const src = source(c.source);
      expect(`${c.name}: ${sha256(jsResize(src.data, src.width, src.height, c.width, c.height))}`).toBe(`${c.name}: ${c.sha256}`);
    }
  });

  const awkward: [number, number, number, number][] = [
    [1, 1, 1, 1], [1, 1, 3, 2], [2, 3, 1, 1], [17, 5, 4, 29], [5, 17, 300, 2], [64, 64, 63, 65], [97, 31, 31, 97], [300, 7, 448, 448], [7, 300, 13, 1],
  ];
  for (const [w, h, ow, oh] of awkward) {
    it(`${w}x${h} -> ${ow}x${oh} random pixels: native == float64 JavaScript port`, async () => {
      const src = randomImage(h, w, w * 31 + h);
      const want = jsResize(src, w, h, ow, oh);
      for (const { name, opts } of impls) {
        const out = await resizeBicubic({ data: src, shape: [h, w, 3] }, ow, oh, opts);
        expect(`${name}: ${firstDiff(out.data, want)}`).toBe(`${name}: identical`);
      }
    });
  }

  it('same size returns a copy; strided input views work; out is reused', async () => {
    const src = randomImage(6, 9, 3);
    const same = await resizeBicubic({ data: src, shape: [6, 9, 3] }, 9, 6);
    expect(same.data).not.toBe(src);
    expect(firstDiff(same.data, src)).toBe('identical');
    // A horizontally flipped view (negative stride) equals resizing the flipped copy.
    const flipped = new Uint8Array(src.length);
    for (let y = 0; y < 6; y++) for (let x = 0; x < 9; x++) for (let c = 0; c < 3; c++) flipped[(y * 9 + x) * 3 + c] = src[(y * 9 + 8 - x) * 3 + c];
    const view = await resizeBicubic({ data: src, shape: [6, 9, 3], stride: [27, -3, 1], offset: 24 }, 4, 5);
    expect(firstDiff(view.data, jsResize(flipped, 9, 6, 4, 5))).toBe('identical');
    const out = new Uint8Array(4 * 5 * 3);
    const r = await resizeBicubic({ data: src, shape: [6, 9, 3] }, 4, 5, { out });
    expect(r.data).toBe(out);
  });

  it('bad input is a typed error naming the argument', async () => {
    const img = { data: new Uint8Array(12), shape: [2, 2, 3] };
    await expect(resizeBicubic({ data: new Float32Array(12), shape: [2, 2, 3] }, 4, 4)).rejects.toThrow(/^Expected data of type Uint8Array for image.data but received Float32Array\(12\)$/);
    await expect(resizeBicubic({ data: new Uint8Array(16), shape: [2, 2, 4] }, 4, 4)).rejects.toThrow(/for image.shape but received \[2, 2, 4\]$/);
    await expect(resizeBicubic({ data: new Uint8Array(0), shape: [0, 2, 3] }, 4, 4)).rejects.toThrow(/^Expected a non-empty image \(height and width >= 1\) for image.shape but received \[0, 2, 3\]$/);
    await expect(resizeBicubic(img, 0, 4)).rejects.toThrow(/^Expected an integer in \[1, 2\^24\] \(pixels\) for width but received 0$/);
    await expect(resizeBicubic(img, 4, 2.5)).rejects.toThrow(/for height but received 2.5$/);
    await expect(resizeBicubic(img, 4, 4, { out: new Uint8Array(3) })).rejects.toThrow(/^Expected a Uint8Array of 48 elements for out but received Uint8Array\(3\)$/);
    await expect(resizeBicubic(img, 4, 4, { impl: 'slow' as never })).rejects.toThrow(/for impl/);
    await expect(resizeBicubic(img, 4, 4)).resolves.toBeDefined();
  });
});

// ---- tileImage -----------------------------------------------------------------------------------

describe('tileImage equals Pillow resize + crop + SiglipImageProcessor', () => {
  for (const t of resizeFix.tiles) {
    it(`${t.source.join(' ')} grid ${t.cols}x${t.rows}: SHA-256 of the (${t.shape.join(',')}) float32 tensor (${impls.map((i) => i.name).join(', ')})`, async () => {
      const src = source(t.source);
      const plan = planTiles(src.width, src.height);
      const forced: TilePlan = { cols: t.cols, rows: t.rows, tiles: t.shape[0], thumbnail: t.shape[0] > 1, tileSize: 448 };
      if (t.source[0] !== 'crop' && t.cols * t.rows > 1) expect(plan).toEqual(forced); // the grid VILA picks for this image
      for (const { name, opts } of impls) {
        const tiles = await tileImage(image(src), forced, opts);
        expect(tiles.shape).toEqual(t.shape);
        expect(`${name}: ${sha256(tiles.data)}`).toBe(`${name}: ${t.sha256}`);
      }
    });
  }

  it('the normalization equals transformers (float64 x/255 -> float32) and numpy float32 (x/255 - 0.5)/0.5 for all 256 values', async () => {
    const src = new Uint8Array(16 * 16 * 3);
    for (let i = 0; i < 256; i++) src.set([i, 255 - i, (i * 7) % 256], 3 * i);
    const t = await tileImage({ data: src, shape: [16, 16, 3] }, framePlan({ tileSize: 16 })); // same size: no resampling
    for (let i = 0; i < 256; i++) {
      const v = t.data[i];
      expect(v).toBe(siglip(i));
      expect(v).toBe(fround(fround(fround(i / 255) - 0.5) / 0.5));
      expect(t.data[256 + i]).toBe(siglip(255 - i));
    }
    expect([t.data[0], t.data[255]]).toEqual([-1, 1]);
  });

  const grids: [number, number, number, number, number][] = [
    // w, h, cols, rows, tileSize
    [31, 17, 2, 1, 14], [17, 31, 1, 3, 9], [5, 5, 3, 3, 7], [1, 1, 2, 2, 5], [100, 3, 4, 1, 16], [3, 100, 1, 1, 20], [28, 28, 2, 1, 14], [640, 480, 4, 3, 32],
  ];
  for (const [w, h, cols, rows, T] of grids) {
    it(`${w}x${h} grid ${cols}x${rows} tile ${T}: native == JavaScript resize + crop + normalize`, async () => {
      const src = randomImage(h, w, w * 13 + h);
      const plan: TilePlan = { cols, rows, tiles: cols * rows > 1 ? cols * rows + 1 : 1, thumbnail: cols * rows > 1, tileSize: T };
      const want = jsTiles(src, w, h, plan);
      for (const { name, opts } of impls) {
        const got = await tileImage({ data: src, shape: [h, w, 3] }, plan, opts);
        expect(got.shape).toEqual([plan.tiles, 3, T, T]);
        expect(`${name}: ${firstDiff(got.data, want)}`).toBe(`${name}: identical`);
      }
    });
  }

  it('a multi-view frame (framePlan) is the image stretched to one tile', async () => {
    const src = randomImage(37, 50, 9);
    const got = await tileImage({ data: src, shape: [37, 50, 3] }, framePlan({ tileSize: 24 }));
    expect(got.shape).toEqual([1, 3, 24, 24]);
    expect(firstDiff(got.data, jsTiles(src, 50, 37, framePlan({ tileSize: 24 })))).toBe('identical');
  });

  it('out is reused', async () => {
    const plan = planTiles(64, 32, { tileSize: 16 });
    const out = new Float32Array(plan.tiles * 3 * 16 * 16);
    const got = await tileImage({ data: randomImage(32, 64, 1), shape: [32, 64, 3] }, plan, { out });
    expect(got.data).toBe(out);
  });

  it('bad input is a typed error naming the argument', async () => {
    const img = { data: new Uint8Array(4 * 8 * 3), shape: [4, 8, 3] };
    const plan = planTiles(8, 4, { tileSize: 8 }); // 2x1 + thumbnail
    await expect(tileImage(img, { ...plan, tiles: plan.tiles + 1 })).rejects.toThrow(/^Expected 3 tiles for a 2x1 grid \(cols·rows \+ 1 thumbnail\) for plan.tiles but received 4$/);
    await expect(tileImage(img, { ...framePlan(), tiles: 2 })).rejects.toThrow(/^Expected 1 tiles for a 1x1 grid \(cols·rows\) for plan.tiles but received 2$/);
    await expect(tileImage(img, { ...plan, thumbnail: false })).rejects.toThrow(/for plan.thumbnail but received false of type boolean$/);
    await expect(tileImage(img, { ...plan, cols: 0 })).rejects.toThrow(/^Expected an integer in \[1, 64\] for plan.cols but received 0$/);
    await expect(tileImage(img, { ...plan, tileSize: 0 })).rejects.toThrow(/for plan.tileSize but received 0$/);
    await expect(tileImage(img, undefined as never)).rejects.toThrow(/for plan but received undefined$/);
    await expect(tileImage({ data: new Uint16Array(96), shape: [4, 8, 3] }, plan)).rejects.toThrow(/for image.data but received Uint16Array\(96\)$/);
    await expect(tileImage({ data: new Uint8Array(24), shape: [4, 6] }, plan)).rejects.toThrow(/for image.shape but received \[4, 6\]$/);
    await expect(tileImage({ data: new Uint8Array(0), shape: [4, 0, 3] }, plan)).rejects.toThrow(/^Expected a non-empty image .* for image.shape but received \[4, 0, 3\]$/);
    await expect(tileImage(img, plan, { out: new Float32Array(5) })).rejects.toThrow(/for out but received Float32Array\(5\)$/);
    await expect(tileImage(img, plan, { device: 'gpu' as never })).rejects.toThrow(/for device but received 'gpu'/);
    if (!hasGpu) await expect(tileImage(img, plan, { device: 'cuda' })).rejects.toThrow(/for device but received 'cuda'$/);
  });
});

// ---- tilePointMap / tileMask -----------------------------------------------------------------------

describe('tilePointMap / tileMask: Pillow NEAREST, same grid as the image', () => {
  it(`Pillow ${resizeFix._pillow} NEAREST index maps, along x and y, through both ops`, async () => {
    expect(resizeFix.nearest.length).toBeGreaterThan(1500);
    for (const [n, out, want] of resizeFix.nearest) {
      expect({ n, out, map: pilNearest(n, out) }).toEqual({ n, out, map: want }); // the JS port
    }
    // Through the native ops: a (1, n) mask / (n, 1, 3) point map holding each pixel's index,
    // resized to one out x out tile (the frame plan).
    for (const [n, out, want] of resizeFix.nearest.filter(([, o]) => o <= 1000)) {
      const plan = framePlan({ tileSize: out });
      if (n <= 255) {
        const m = Uint8Array.from({ length: n }, (_, i) => i);
        const t = await tileMask({ data: m, shape: [1, n] }, plan);
        expect({ n, out, row: Array.from(t.data.subarray(0, out)) }).toEqual({ n, out, row: want });
      }
      const p = new Float32Array(3 * n);
      for (let i = 0; i < n; i++) p[3 * i + 1] = i;
      const t = await tilePointMap({ data: p, shape: [n, 1, 3] }, plan);
      const col = Array.from({ length: out }, (_, y) => t.data[y * out * 3 + 1]);
      expect({ n, out, col }).toEqual({ n, out, col: want });
    }
    // The grid sizes of real plans (e.g. 640 -> 1792 wide, 480 -> 1344 high).
    const p = new Float32Array(480 * 640 * 3);
    for (let y = 0; y < 480; y++) for (let x = 0; x < 640; x++) p.set([x, y, 0], (y * 640 + x) * 3);
    const t = await tilePointMap({ data: p, shape: [480, 640, 3] }, planTiles(640, 480));
    const fx = resizeFix.nearest.find(([n, o]) => n === 640 && o === 1792)![2];
    const fy = resizeFix.nearest.find(([n, o]) => n === 480 && o === 1344)![2];
    const T = 448;
    for (const k of [0, 5, 11]) {
      const x0 = (k % 4) * T, y0 = floor(k / 4) * T;
      for (const [y, x] of [[0, 0], [447, 447], [100, 333], [7, 300]]) {
        const o = ((k * T + y) * T + x) * 3;
        expect([t.data[o], t.data[o + 1]]).toEqual([fx[x0 + x], fy[y0 + y]]);
      }
    }
  });

  const maps: [number, number, number, number, number][] = [
    [31, 17, 2, 1, 14], [17, 31, 1, 3, 9], [5, 5, 3, 3, 7], [1, 1, 2, 2, 5], [640, 480, 4, 3, 16], [7, 3, 1, 1, 30], [100, 3, 4, 1, 16],
  ];
  for (const [w, h, cols, rows, T] of maps) {
    it(`${w}x${h} grid ${cols}x${rows} tile ${T}: native == JavaScript nearest tiling (points with NaN, masks)`, async () => {
      const plan: TilePlan = { cols, rows, tiles: cols * rows > 1 ? cols * rows + 1 : 1, thumbnail: cols * rows > 1, tileSize: T };
      const r = rng(w * 7 + h);
      const pts = Float32Array.from({ length: w * h * 3 }, () => (r() < 0.1 ? NaN : (r() - 0.5) * 10));
      const mask = Uint8Array.from({ length: w * h }, () => (r() < 0.3 ? 1 : 0));
      const wantP = jsTileNearest(pts, w, h, 3, plan, (n) => new Float32Array(n));
      const wantM = jsTileNearest(mask, w, h, 1, plan, (n) => new Uint8Array(n));
      for (const { name, opts } of impls) {
        const gp = await tilePointMap({ data: pts, shape: [h, w, 3] }, plan, opts);
        expect(gp.shape).toEqual([plan.tiles, T, T, 3]);
        expect(`${name}: ${firstDiff(gp.data, wantP)}`).toBe(`${name}: identical`);
        const gm = await tileMask({ data: mask, shape: [h, w] }, plan, opts);
        expect(gm.shape).toEqual([plan.tiles, T, T]);
        expect(`${name}: ${firstDiff(gm.data, wantM)}`).toBe(`${name}: identical`);
      }
    });
  }

  it('bad input is a typed error naming the argument', async () => {
    const plan = planTiles(8, 4, { tileSize: 8 }); // 2x1 + thumbnail
    await expect(tilePointMap({ data: new Float32Array(24 * 3), shape: [4, 6, 3] }, { ...plan, rows: 2 })).rejects.toThrow(/^Expected 5 tiles for a 2x2 grid .* for plan.tiles but received 3$/);
    await expect(tilePointMap({ data: new Uint8Array(72), shape: [4, 6, 3] }, plan)).rejects.toThrow(/for points.data but received Uint8Array\(72\)$/);
    await expect(tilePointMap({ data: new Float32Array(48), shape: [4, 6, 2] }, plan)).rejects.toThrow(/for points.shape but received \[4, 6, 2\]$/);
    await expect(tilePointMap({ data: new Float32Array(0), shape: [0, 6, 3] }, plan)).rejects.toThrow(/for points.shape but received \[0, 6, 3\]$/);
    await expect(tileMask({ data: new Float32Array(24), shape: [4, 6] }, plan)).rejects.toThrow(/for mask.data but received Float32Array\(24\)$/);
    await expect(tileMask({ data: new Uint8Array(24), shape: [4, 6, 1] }, plan)).rejects.toThrow(/for mask.shape but received \[4, 6, 1\]$/);
    await expect(tileMask({ data: new Uint8Array(24), shape: [4, 6] }, plan, { out: new Float32Array(3 * 64) })).rejects.toThrow(/^Expected a Uint8Array of 192 elements for out but received Float32Array\(192\)$/);
  });
});
