import ndarray from 'ndarray';

import { backproject, devices, InvalidArgumentError, scenePoints } from '../lib';
import { expectBitEqual, expectClose, K, refBackproject, rng } from './helpers';

const hasGpu = devices().length > 0;

function randomDepth(n: number, seed: number, dtype: 'float32' | 'uint16', invalidFrac = 0.15) {
  const r = rng(seed);
  const d = dtype === 'uint16' ? new Uint16Array(n) : new Float32Array(n);
  const specials = [0, NaN, Infinity, -1.5, -Infinity];
  for (let i = 0; i < n; i++) {
    if (r() < invalidFrac) d[i] = dtype === 'uint16' ? 0 : specials[Math.floor(r() * specials.length)];
    else d[i] = dtype === 'uint16' ? 1 + Math.floor(r() * 40000) : 0.1 + 7 * r();
  }
  return d;
}

function randomPose(seed: number): number[] {
  const r = rng(seed);
  const a = r() * 6, b = r() * 6, c = r() * 6;
  const [ca, sa, cb, sb, cc, sc] = [Math.cos(a), Math.sin(a), Math.cos(b), Math.sin(b), Math.cos(c), Math.sin(c)];
  // Rz(a) Ry(b) Rx(c)
  const R = [
    ca * cb, ca * sb * sc - sa * cc, ca * sb * cc + sa * sc,
    sa * cb, sa * sb * sc + ca * cc, sa * sb * cc - ca * sc,
    -sb, cb * sc, cb * cc,
  ];
  return [R[0], R[1], R[2], r() * 4 - 2, R[3], R[4], R[5], r() * 4 - 2, R[6], R[7], R[8], r() * 2, 0, 0, 0, 1];
}

const sizes: [number, number, number][] = [[1, 1, 1], [1, 7, 13], [2, 13, 7], [3, 31, 17], [1, 1, 97], [4, 2, 3], [1, 64, 64]];

describe('backproject', () => {
  for (const [F, H, W] of sizes) {
    for (const dtype of ['float32', 'uint16'] as const) {
      for (const withPose of [false, true]) {
        it(`F=${F} H=${H} W=${W} ${dtype} pose=${withPose}: fast == reference (bitwise), both ~ float64 JS`, async () => {
          const n = F * H * W;
          const depth = randomDepth(n, F * 1000 + H * 10 + W, dtype);
          const k: K[] = Array.from({ length: F }, (_, f) => ({ fx: 500 + f, fy: 510 - f, cx: W / 2 - 0.3, cy: H / 2 + 0.7 }));
          const poses = withPose ? Array.from({ length: F }, (_, f) => randomPose(f + 7)) : null;
          const scale = dtype === 'uint16' ? 1 / 5000 : 1;
          const shape = F === 1 && H % 2 === 1 ? [H, W] : [F, H, W];
          const opts = { depthScale: dtype === 'uint16' ? scale : undefined, pose: poses ? (shape.length === 2 ? poses[0] : poses) : undefined };
          const kk = shape.length === 2 ? k[0] : k;
          const fast = await backproject({ data: depth, shape }, kk, { ...opts, device: 'cpu' });
          const ref = await backproject({ data: depth, shape }, kk, { ...opts, impl: 'reference' });
          expect(fast.points.shape).toEqual([...shape, 3]);
          expect(fast.valid.shape).toEqual(shape);
          expectBitEqual(fast.points.data, ref.points.data, 'points fast vs reference');
          expectBitEqual(fast.valid.data, ref.valid.data, 'valid fast vs reference');
          const js = refBackproject(depth, F, H, W, k, scale, poses);
          expect(Array.from(fast.valid.data)).toEqual(Array.from(js.valid));
          // float32 math: a few ulp of the magnitudes involved (|p| <= ~50 m here).
          expectClose(fast.points.data, js.pts, 2e-5, 2e-6, 'points vs float64 JS', [...shape, 3]);
          if (hasGpu) {
            const gpu = await backproject({ data: depth, shape }, kk, { ...opts, device: 'cuda' });
            expectBitEqual(gpu.points.data, ref.points.data, 'points cuda vs reference');
            expectBitEqual(gpu.valid.data, ref.valid.data, 'valid cuda vs reference');
          }
        });
      }
    }
  }

  it('marks 0, NaN, Inf and negative depth invalid (NaN points)', async () => {
    const depth = new Float32Array([0, NaN, Infinity, -2, 1, -Infinity, 3e38, 1e-30]);
    // cx = 2, cy = 1 keep the 3e38 pixel's x and y at 0 (finite).
    const r = await backproject({ data: depth, shape: [2, 4] }, { fx: 1, fy: 1, cx: 2, cy: 1 });
    expect(Array.from(r.valid.data)).toEqual([0, 0, 0, 0, 1, 0, 1, 1]);
    for (let i = 0; i < 4; i++) expect(Number.isNaN(r.points.get(0, i, 0))).toBe(true);
    expect(r.points.get(1, 0, 2)).toBeCloseTo(1, 6);
  });

  it('a depth whose point overflows float32 is invalid (NaN, valid = 0) on every path', async () => {
    const depth = new Float32Array([3e38, 3e38, 3e38, 1]);
    for (const impl of ['fast', 'reference'] as const) {
      const r = await backproject({ data: depth, shape: [1, 4] }, { fx: 1, fy: 1, cx: 0, cy: 0 }, { impl });
      // u = 0, 1: x = 0 and 3e38 are finite; u = 2: x = 6e38 overflows.
      expect(Array.from(r.valid.data)).toEqual([1, 1, 0, 1]);
      expect(Number.isNaN(r.points.get(0, 2, 0))).toBe(true);
    }
    const m = await scenePoints({ data: depth, shape: [1, 1, 4] }, { fx: 1, fy: 1, cx: 0, cy: 0 }, { mode: 'minmax' });
    expect(m.validCount).toBe(3);
    expect(Number.isFinite(m.scale[0])).toBe(true);
  });

  it('all-invalid depth gives all-NaN points and valid = 0', async () => {
    const r = await backproject({ data: new Uint16Array(5 * 7), shape: [5, 7] }, { fx: 500, fy: 500, cx: 3, cy: 2 }, { depthScale: 0.001 });
    expect(r.valid.data.every((v) => v === 0)).toBe(true);
    expect(r.points.data.every((v) => Number.isNaN(v))).toBe(true);
  });

  it('an empty scene (F=0) returns empty tensors', async () => {
    const r = await backproject({ data: new Float32Array(0), shape: [0, 4, 5] }, []);
    expect(r.points.shape).toEqual([0, 4, 5, 3]);
    expect(r.points.data.length).toBe(0);
  });

  it('accepts non-contiguous and negative-stride views (ndarray) and Float64Array data', async () => {
    const H = 9, W = 11;
    const base = randomDepth(H * W, 3, 'float32', 0.1) as Float32Array;
    const contiguous = await backproject({ data: base, shape: [H, W] }, { fx: 300, fy: 310, cx: 5, cy: 4 });
    // A transposed, flipped copy whose view reads back the original layout.
    const t = new Float32Array(H * W);
    for (let v = 0; v < H; v++) for (let u = 0; u < W; u++) t[(W - 1 - u) * H + v] = base[v * W + u];
    const view = ndarray(t, [W, H]).transpose(1, 0).step(1, -1);
    const r = await backproject(view, { fx: 300, fy: 310, cx: 5, cy: 4 });
    expectBitEqual(r.points.data, contiguous.points.data, 'strided view');
    const r64 = await backproject({ data: Float64Array.from(base), shape: [H, W] }, { fx: 300, fy: 310, cx: 5, cy: 4 });
    expectBitEqual(r64.points.data, contiguous.points.data, 'Float64Array');
    const withOffset = new Float32Array(H * W + 5);
    withOffset.set(base, 5);
    const r2 = await backproject({ data: withOffset, shape: [H, W], offset: 5 }, { fx: 300, fy: 310, cx: 5, cy: 4 });
    expectBitEqual(r2.points.data, contiguous.points.data, 'offset');
  });

  it('runs off the JS thread and returns a Promise', async () => {
    const p = backproject({ data: new Float32Array(640 * 480).fill(1), shape: [480, 640] }, { fx: 500, fy: 500, cx: 320, cy: 240 });
    expect(p).toBeInstanceOf(Promise);
    let ticked = false;
    setImmediate(() => { ticked = true; });
    await p;
    await new Promise((r) => setImmediate(r));
    expect(ticked).toBe(true);
  });

  describe('bad input is a typed error naming the argument', () => {
    const K1 = { fx: 500, fy: 500, cx: 2, cy: 2 };
    const d = { data: new Float32Array(16).fill(1), shape: [4, 4] };
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ['wrong dtype', () => backproject({ data: new Int32Array(16), shape: [4, 4] }, K1), /^Expected data of type .* for depth\.data but received Int32Array\(16\)/],
      ['wrong rank', () => backproject({ data: new Float32Array(16), shape: [16] }, K1), /for depth\.shape but received \[16\]/],
      ['shape larger than data', () => backproject({ data: new Float32Array(15), shape: [4, 4] }, K1), /for depth\.data but received Float32Array\(15\)/],
      ['typed array without shape', () => backproject(new Float32Array(16) as never, K1), /for depth but received Float32Array\(16\)/],
      ['zero focal length', () => backproject(d, { fx: 0, fy: 500, cx: 2, cy: 2 }), /^Expected a positive focal length in pixels for intrinsics\.fx but received 0$/],
      ['NaN principal point', () => backproject(d, { fx: 5, fy: 5, cx: NaN, cy: 2 }), /for intrinsics\.cx but received NaN/],
      ['pose with 15 numbers', () => backproject(d, K1, { pose: new Array(15).fill(0) }), /^Expected 16 finite numbers .* for pose but received an array of length 15/],
      ['pose with NaN', () => backproject(d, K1, { pose: [1, 0, 0, NaN, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] }), /for pose but received .*non-finite/],
      ['pose not affine', () => backproject(d, K1, { pose: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1] }), /last row is 0 0 0 1 for pose/],
      ['frame count vs intrinsics', () => backproject({ data: new Float32Array(32), shape: [2, 4, 4] }, [K1, K1, K1]), /one intrinsics object per frame \(2\) for intrinsics but received an array of length 3/],
      ['frame count vs poses', () => backproject({ data: new Float32Array(32), shape: [2, 4, 4] }, K1, { pose: [new Array(16).fill(0)] }), /^Expected one camera-to-world pose per frame \(2\) for pose but received an array of 1 poses$/],
      ['uint16 without depthScale', () => backproject({ data: new Uint16Array(16), shape: [4, 4] }, K1), /for depthScale but received undefined/],
      ['negative depthScale', () => backproject(d, K1, { depthScale: -1 }), /for depthScale but received -1/],
      // lib/validate.ts owns the rule, float32 range included (the kernels take a float32).
      ['depthScale past float32', () => backproject(d, K1, { depthScale: 1e300 }), /^Expected a finite positive number \(metres per depth unit\) that float32 holds .* for depthScale but received 1e\+300$/],
      ['depthScale rounding to 0 in float32', () => scenePoints(d, K1, { depthScale: 1e-50 }), /that float32 holds .* for depthScale but received 1e-50$/],
      ['cuda without a GPU', () => (hasGpu ? Promise.reject(new InvalidArgumentError('Expected skip')) : backproject(d, K1, { device: 'cuda' })), /^Expected .* for (device|skip)/],
      ['unknown device', () => backproject(d, K1, { device: 'tpu' as never }), /for device but received 'tpu'/],
    ];
    for (const [name, fn, re] of cases) {
      it(name, async () => {
        const e = await fn().then(() => null, (x: unknown) => x);
        expect(e).toBeInstanceOf(InvalidArgumentError);
        expect((e as Error).message).toMatch(re);
        expect((e as InvalidArgumentError).code).toBe('SR3D_INVALID_ARGUMENT');
      });
    }
  });
});
