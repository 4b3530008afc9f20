import { backproject, canonicalize, devices, InvalidArgumentError, scenePoints, toCanonical, toMetric } from '../lib';
import { expectBitEqual, expectClose, refCanonical, rng } from './helpers';

const hasGpu = devices().length > 0;
type Mode = 'isotropic' | 'minmax' | 'metric';

function randomPoints(n: number, seed: number, invalidFrac = 0.1): Float32Array {
  const r = rng(seed);
  const p = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    const bad = r() < invalidFrac;
    for (let a = 0; a < 3; a++) p[3 * i + a] = bad ? [NaN, Infinity, -Infinity][a] : (r() - 0.3) * (a + 1) * 3 + (r() < 0.01 ? 50 : 0);
  }
  return p;
}

describe('canonicalize', () => {
  // 70001 and 200003 points exceed the 32K sample, so the bracketed selection path runs.
  for (const n of [1, 2, 7, 1000, 70001, 200003]) {
    for (const mode of ['isotropic', 'minmax', 'metric'] as Mode[]) {
      for (const q of mode === 'isotropic' ? [0, 0.01, 0.25] : [0.01]) {
        it(`n=${n} mode=${mode} q=${q}: fast == reference, transform == float64 JS (exact quantiles)`, async () => {
          const pts = randomPoints(n, n + q * 1000, n === 1 ? 0 : 0.1);
          const fast = await canonicalize({ data: pts, shape: [n, 3] }, { mode, quantile: q, device: 'cpu' });
          const ref = await canonicalize({ data: pts, shape: [n, 3] }, { mode, quantile: q, impl: 'reference' });
          expectBitEqual(fast.points.data, ref.points.data, 'points fast vs reference');
          expect(fast.center).toEqual(ref.center);
          expect(fast.scale).toEqual(ref.scale);
          const js = refCanonical(pts, mode, q);
          expect(fast.validCount).toBe(js.validCount);
          expect(fast.center).toEqual(js.center); // same float64 arithmetic on the same float32 values
          expect(fast.scale).toEqual(js.scale);
          // Canonical values: float32 (p - c) * (1/s); check against float64 and the exact inverse.
          const want = new Float64Array(pts.length);
          for (let i = 0; i < pts.length; i++) want[i] = Number.isNaN(ref.points.data[i]) ? NaN : (pts[i] - js.center[i % 3]) / js.scale[i % 3];
          expectClose(fast.points.data, want, 1e-6, 1e-6, 'canonical vs float64');
          const back = toMetric(fast.points, fast);
          const wantBack = Float64Array.from(pts, (v, i) => (Number.isNaN(want[i]) ? NaN : v));
          // Exact up to the float32 rounding of the canonical value: ~2^-23 |p - c| per coordinate.
          let span = 0;
          for (let i = 0; i < pts.length; i++) if (Number.isFinite(want[i])) span = Math.max(span, Math.abs(pts[i] - js.center[i % 3]));
          expectClose(back.data, wantBack, 2.5e-7 * span + 1e-9, 0, 'toMetric(canonical) vs original metres');
          if (hasGpu) {
            const gpu = await canonicalize({ data: pts, shape: [n, 3] }, { mode, quantile: q, device: 'cuda' });
            expectBitEqual(gpu.points.data, ref.points.data, 'points cuda vs reference');
            expect(gpu.center).toEqual(ref.center);
            expect(gpu.scale).toEqual(ref.scale);
          }
        });
      }
    }
  }

  it('isotropic: the quantile box fits [-1, 1] and aspect is kept', async () => {
    const pts = randomPoints(5000, 9, 0);
    const r = await canonicalize({ data: pts, shape: [5000, 3] }, { quantile: 0 });
    expect(r.scale[0]).toBe(r.scale[1]);
    let mx = 0;
    for (const v of r.points.data) mx = Math.max(mx, Math.abs(v));
    expect(mx).toBeLessThanOrEqual(1 + 1e-6);
    expect(mx).toBeGreaterThan(0.999);
  });

  it('a minimum of mixed -0 and +0 gives +0 on every path (order-independent)', async () => {
    for (const n of [10, 200003]) {
      const pts = new Float32Array(3 * n);
      for (let i = 0; i < n; i++) {
        pts[3 * i] = i % 3 === 0 ? -0 : i % 3 === 1 ? 0 : 1 + (i % 7);
        pts[3 * i + 1] = -(i % 5) - 0;
        pts[3 * i + 2] = i % 2 ? -0 : 2;
      }
      for (const mode of ['minmax', 'isotropic'] as const) {
        const fast = await canonicalize({ data: pts, shape: [n, 3] }, { mode, quantile: 0, device: 'cpu' });
        const ref = await canonicalize({ data: pts, shape: [n, 3] }, { mode, quantile: 0, impl: 'reference' });
        expect(Object.is(fast.center[0], ref.center[0])).toBe(true);
        expectBitEqual(fast.points.data, ref.points.data, `${mode} n=${n}`);
        if (mode === 'minmax') expect(Object.is(fast.center[0], 0)).toBe(true);
      }
    }
  });

  it('heavy duplicates and a single point', async () => {
    const pts = new Float32Array(3 * 100000).fill(2.5);
    for (let i = 0; i < 300; i++) pts[3 * i] = i;
    const r = await canonicalize({ data: pts, shape: [100000, 3] }, { quantile: 0.01 });
    const js = refCanonical(pts, 'isotropic', 0.01);
    expect(r.center).toEqual(js.center);
    expect(r.scale).toEqual(js.scale);
    const one = await canonicalize({ data: new Float32Array([1, 2, 3]), shape: [1, 3] });
    expect(one.scale).toEqual([1, 1, 1]);
    expect(Array.from(one.points.data)).toEqual([0, 0, 0]);
  });

  it('no valid point is a typed error naming points (metric mode still works)', async () => {
    const pts = new Float32Array(30).fill(NaN);
    await expect(canonicalize({ data: pts, shape: [10, 3] })).rejects.toThrow(InvalidArgumentError);
    await expect(canonicalize({ data: pts, shape: [10, 3] })).rejects.toThrow(/^Expected at least one valid point .* for points but received none/);
    await expect(canonicalize({ data: new Float32Array(0), shape: [0, 3] })).rejects.toThrow(/for points but received none/);
    const m = await canonicalize({ data: pts, shape: [10, 3] }, { mode: 'metric' });
    expect(m.validCount).toBe(0);
  });

  it('bad options are typed errors', async () => {
    const p = { data: new Float32Array(9), shape: [3, 3] };
    await expect(canonicalize(p, { quantile: 0.5 })).rejects.toThrow(/^Expected a number in \[0, 0\.5\) for quantile but received 0\.5$/);
    await expect(canonicalize(p, { mode: 'unit' as never })).rejects.toThrow(/for mode but received 'unit'/);
    await expect(canonicalize({ data: new Float32Array(8), shape: [4, 2] })).rejects.toThrow(/\(last dimension 3\) for points\.shape but received \[4, 2\]/);
  });
});

describe('scenePoints (fused)', () => {
  const cases: [number, number, number, 'float32' | 'uint16'][] = [[1, 1, 1, 'float32'], [2, 7, 13, 'uint16'], [3, 97, 211, 'uint16'], [2, 448, 448, 'float32'], [5, 31, 29, 'float32']];
  for (const [F, H, W, dtype] of cases) {
    for (const mode of ['isotropic', 'minmax', 'metric'] as Mode[]) {
      it(`F=${F} H=${H} W=${W} ${dtype} ${mode}: equals backproject -> canonicalize bit for bit`, async () => {
        const r = rng(F * H + W);
        const n = F * H * W;
        const depth = dtype === 'uint16' ? new Uint16Array(n) : new Float32Array(n);
        for (let i = 0; i < n; i++) depth[i] = r() < 0.1 ? 0 : dtype === 'uint16' ? 1 + Math.floor(r() * 30000) : 0.2 + r() * 5;
        if (n === 1) depth[0] = dtype === 'uint16' ? 1000 : 1.5;
        const k = { fx: 400, fy: 410, cx: W / 2, cy: H / 2 };
        const pose = Array.from({ length: F }, (_, f) => [Math.cos(f), -Math.sin(f), 0, f * 0.5, Math.sin(f), Math.cos(f), 0, -f, 0, 0, 1, 1.2, 0, 0, 0, 1]);
        const opts = { depthScale: dtype === 'uint16' ? 1 / 5000 : 1, pose, mode, quantile: 0.01 };
        const shape = [F, H, W];
        const fused = await scenePoints({ data: depth, shape }, k, { ...opts, device: 'cpu' });
        const bp = await backproject({ data: depth, shape }, k, opts);
        const two = await canonicalize(bp.points, { mode, quantile: 0.01 });
        expectBitEqual(fused.points.data, two.points.data, 'fused vs two-step');
        expectBitEqual(fused.valid.data, bp.valid.data, 'valid');
        expect(fused.center).toEqual(two.center);
        expect(fused.scale).toEqual(two.scale);
        expect(fused.validCount).toBe(two.validCount);
        const ref = await scenePoints({ data: depth, shape }, k, { ...opts, impl: 'reference' });
        expectBitEqual(ref.points.data, fused.points.data, 'reference vs fast');
        // toCanonical applies a transform exactly as the kernels do.
        expectBitEqual(toCanonical(bp.points, two).data, two.points.data, 'toCanonical vs canonicalize');
        // World output: backproject's points bit for bit, the same transform, one pass.
        for (const impl of ['fast', 'reference'] as const) {
          const world = await scenePoints({ data: depth, shape }, k, { ...opts, output: 'world', impl, device: 'cpu' });
          expectBitEqual(world.points.data, bp.points.data, `world output (${impl}) vs backproject`);
          expectBitEqual(world.valid.data, bp.valid.data, `world valid (${impl})`);
          expect(world.center).toEqual(two.center);
          expect(world.scale).toEqual(two.scale);
          expect(world.validCount).toBe(two.validCount);
        }
        if (hasGpu) {
          const gpu = await scenePoints({ data: depth, shape }, k, { ...opts, device: 'cuda' });
          expectBitEqual(gpu.points.data, fused.points.data, 'cuda vs cpu');
          expect(gpu.center).toEqual(fused.center);
          const gw = await scenePoints({ data: depth, shape }, k, { ...opts, output: 'world', device: 'cuda' });
          expectBitEqual(gw.points.data, bp.points.data, 'cuda world output vs backproject');
          expect(gw.scale).toEqual(fused.scale);
        }
      });
    }
  }

  it('all-invalid depth: typed error for normalizing modes, NaN points for metric', async () => {
    const d = { data: new Uint16Array(2 * 4 * 4), shape: [2, 4, 4] };
    const k = { fx: 1, fy: 1, cx: 0, cy: 0 };
    await expect(scenePoints(d, k, { depthScale: 0.001 })).rejects.toThrow(/for points but received none/);
    const m = await scenePoints(d, k, { depthScale: 0.001, mode: 'metric' });
    expect(m.points.data.every(Number.isNaN)).toBe(true);
  });
});
