// Drives every native entry point with random shapes, dtypes, strides and values, both
// through the public API and straight at the raw addon: no crash, every failure typed.
import * as sr3d from '../lib';
import { native } from '../lib/native';
import { rng } from './helpers';

const CTORS = [Float32Array, Float64Array, Uint16Array, Uint8Array, Int32Array, Int8Array];
const KNOWN = ['SR3D_INVALID_ARGUMENT', 'SR3D_CUDA', 'SR3D_INTERNAL'];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)];
}

function randomValue(r: () => number): unknown {
  const kinds = [
    () => undefined, () => null, () => Math.floor(r() * 10) - 2, () => r() * 1e6, () => NaN, () => -Infinity,
    () => 'x', () => true, () => [], () => ({}), () => new (pick(r, CTORS))(Math.floor(r() * 40)), () => 2 ** 40,
  ];
  return pick(r, kinds)();
}

function randomTensor(r: () => number, lastDim?: number): unknown {
  const rank = Math.floor(r() * 5);
  const shape = Array.from({ length: rank }, () => Math.floor(r() * 6));
  if (lastDim !== undefined && rank > 0 && r() < 0.7) shape[rank - 1] = lastDim;
  const n = shape.reduce((a, b) => a * b, 1);
  const Ctor = pick(r, CTORS);
  const data = new Ctor(Math.max(0, n + Math.floor(r() * 3) - 1 + (r() < 0.3 ? 10 : 0)));
  for (let i = 0; i < data.length; i++) data[i] = r() < 0.1 ? NaN : (r() - 0.3) * 10;
  const t: Record<string, unknown> = { data, shape };
  if (r() < 0.3) t.stride = shape.map(() => Math.floor(r() * 7) - 3);
  if (r() < 0.2) t.offset = Math.floor(r() * 5) - 1;
  if (r() < 0.05) return randomValue(r);
  return t;
}

const tally = { ok: 0, typed: 0 };
async function expectTypedOrOk(p: () => Promise<unknown>) {
  try {
    await p();
    tally.ok++;
  } catch (e) {
    tally.typed++;
    expect(e).toBeInstanceOf(sr3d.Sr3dError);
    expect((e as Error).message).toMatch(/^Expected .+ for .+ but received /);
  }
}

describe('fuzz', () => {
  it('public API: 4500 random calls, each resolves or rejects with a typed error', async () => {
    const r = rng(12345);
    for (let i = 0; i < 300; i++) {
      const K = r() < 0.8 ? { fx: r() * 600 - 50, fy: 500, cx: r() * 10, cy: r() < 0.1 ? NaN : 3 } : randomValue(r);
      const opts: Record<string, unknown> = {};
      if (r() < 0.5) opts.depthScale = r() < 0.8 ? r() : randomValue(r);
      if (r() < 0.3) opts.pose = r() < 0.5 ? Array.from({ length: 16 }, (_, j) => (j === 15 ? 1 : j > 11 ? 0 : r())) : randomValue(r);
      if (r() < 0.3) opts.mode = pick(r, ['isotropic', 'minmax', 'metric', 'bad']);
      if (r() < 0.3) opts.quantile = r() < 0.8 ? r() * 0.6 : randomValue(r);
      if (r() < 0.2) opts.impl = pick(r, ['fast', 'reference', 'slow']);
      if (r() < 0.2) opts.patch = Math.floor(r() * 20) - 2;
      if (r() < 0.2) opts.numFreqs = Math.floor(r() * 40) - 5;
      if (r() < 0.2) opts.output = pick(r, ['canonical', 'world', 'metres']);
      await expectTypedOrOk(() => sr3d.backproject(randomTensor(r) as never, K as never, opts));
      await expectTypedOrOk(() => sr3d.scenePoints(randomTensor(r) as never, K as never, opts));
      await expectTypedOrOk(() => sr3d.canonicalize(randomTensor(r, 3) as never, opts));
      await expectTypedOrOk(() => sr3d.poolPointsToPatches(randomTensor(r, 3) as never, opts));
      await expectTypedOrOk(() => sr3d.sinusoidalEncode(randomTensor(r, 3) as never, opts));
      const plan = r() < 0.8 ? sr3d.planTiles(1 + Math.floor(r() * 900), 1 + Math.floor(r() * 900), { tileSize: 1 + Math.floor(r() * 8) }) : randomValue(r);
      await expectTypedOrOk(() => sr3d.resizeBicubic(randomTensor(r, 3) as never, Math.floor(r() * 9) - 1, Math.floor(r() * 9) - 1, opts));
      await expectTypedOrOk(() => sr3d.tileImage(randomTensor(r, 3) as never, plan as never, opts));
      await expectTypedOrOk(() => sr3d.tilePointMap(randomTensor(r, 3) as never, plan as never, opts));
      await expectTypedOrOk(() => sr3d.tileMask(randomTensor(r) as never, plan as never, opts));
      await expectTypedOrOk(() => sr3d.stitchTiles(randomTensor(r) as never, plan as never, opts));
      await expectTypedOrOk(() => sr3d.maskPool(randomTensor(r) as never, randomTensor(r) as never, { ...opts, plan: r() < 0.5 ? plan : undefined } as never));
      await expectTypedOrOk(() => sr3d.box3dToMasks(randomTensor(r, 3) as never, { center: [r(), r(), r()], size: [r(), r(), r() - 0.1], yaw: r() } as never, opts as never));
    }
    expect(tally.ok).toBeGreaterThan(20); // the fuzz reaches the kernels, not only the validation
    expect(tally.typed).toBeGreaterThan(200);
  });

  it('raw addon: 2000 random batons never crash; rejections carry a known code', async () => {
    const r = rng(777);
    const addon = native() as unknown as Record<string, (b: unknown) => Promise<unknown>>;
    // Every asynchronous op the addon exports (the synchronous info calls are tested elsewhere).
    const ops = Object.keys(addon).filter((k) => typeof addon[k] === 'function' && !['buildInfo', 'devices', 'setThreads', 'triad'].includes(k));
    expect(ops).toEqual(expect.arrayContaining(['backproject', 'scenePoints', 'canonicalize', 'poolPoints', 'sinusoidalEncode',
      'resizeBicubic', 'tileImage', 'tileNearest', 'stitchTiles', 'maskPool', 'box3dMasks']));
    const keys = ['depth', 'depthDtype', 'frames', 'height', 'width', 'depthScale', 'intrinsics', 'poses', 'points', 'valid',
      'impl', 'device', 'mode', 'quantile', 'output', 'count', 'out', 'batch', 'patch', 'pooled', 'numFreqs', 'includeInput', 'features',
      'src', 'dst', 'outHeight', 'outWidth', 'cols', 'rows', 'tileSize', 'tiles', 'dtype', 'channels', 'layout', 'tile', 'masks',
      'regions', 'box', 'near'];
    let resolved = 0, rejected = 0;
    for (let i = 0; i < 2000; i++) {
      const b: Record<string, unknown> = {};
      for (const k of keys) if (r() < 0.8) b[k] = randomValue(r);
      // Often make the sizes consistent so deeper checks run.
      if (r() < 0.5) {
        const f = Math.floor(r() * 3), h = Math.floor(r() * 4), w = Math.floor(r() * 4);
        Object.assign(b, { frames: f, height: h, width: w, batch: f, count: f * h * w, patch: 1 + Math.floor(r() * 3), depthDtype: 'float32',
          depth: new Float32Array(f * h * w), intrinsics: new Float32Array(4 * f).fill(r() < 0.5 ? 0 : 100), poses: null,
          points: new Float32Array(3 * f * h * w), valid: new Uint8Array(f * h * w), out: new Float32Array(3 * f * h * w),
          depthScale: 1, impl: pick(r, ['fast', 'reference', 'cuda']), device: 0, mode: 'isotropic', quantile: 0.01, output: pick(r, ['canonical', 'world']) });
        // ... and for the image/region ops: small consistent images, plans, features, masks.
        const cols = 1 + Math.floor(r() * 2), rows = 1 + Math.floor(r() * 2), ts = 1 + Math.floor(r() * 4), ch = 1 + Math.floor(r() * 3);
        const nt = cols * rows + (cols * rows > 1 ? 1 : 0);
        Object.assign(b, { src: new Uint8Array(3 * h * w), outHeight: 1 + Math.floor(r() * 5), outWidth: 1 + Math.floor(r() * 5),
          cols, rows, tileSize: ts, tiles: pick(r, [new Float32Array(nt * 3 * ts * ts), nt]), dtype: pick(r, ['float32', 'uint8']), channels: ch,
          layout: pick(r, ['frames', 'tiles']), tile: ts, regions: 1 + Math.floor(r() * 2), box: new Float64Array(15).fill(0.5), near: 0.001 });
        b.dst = new Uint8Array((b.outHeight as number) * (b.outWidth as number) * 3);
        b.masks = new Uint8Array((b.regions as number) * f * h * w).fill(1);
      }
      const op = pick(r, ops);
      let res: unknown;
      try {
        res = await addon[op](r() < 0.02 ? randomValue(r) : b);
      } catch (e) {
        expect(KNOWN).toContain((e as { code?: string }).code);
        rejected++;
        continue;
      }
      resolved++;
      expect(res === undefined || typeof res === 'object').toBe(true);
    }
    expect(resolved).toBeGreaterThan(10);
    expect(rejected).toBeGreaterThan(500);
  });
});
