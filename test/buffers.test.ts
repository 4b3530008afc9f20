// Output reuse, in-place canonicalize, detached buffers, and buffers kept alive in flight.
import { backproject, canonicalize, InvalidArgumentError, poolPointsToPatches, scenePoints, sinusoidalEncode } from '../lib';
import { native } from '../lib/native';
import { expectBitEqual, rng } from './helpers';

const K = { fx: 300, fy: 310, cx: 8, cy: 6 };

function depthMap(H: number, W: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: H * W }, () => (r() < 0.1 ? 0 : 0.5 + 4 * r()));
}

describe('preallocated outputs', () => {
  it('backproject/scenePoints write into out.points / out.valid and return views of them', async () => {
    const d = { data: depthMap(13, 17, 1), shape: [13, 17] };
    const fresh = await backproject(d, K);
    const out = { points: new Float32Array(13 * 17 * 3).fill(7), valid: new Uint8Array(13 * 17).fill(9) };
    const r = await backproject(d, K, { out });
    expect(r.points.data).toBe(out.points);
    expect(r.valid.data).toBe(out.valid);
    expectBitEqual(out.points, fresh.points.data, 'reused output');
    const s = await scenePoints({ data: d.data, shape: [1, 13, 17] }, K, { out });
    expect(s.points.data).toBe(out.points);
  });

  it('canonicalize in place (outPoints = the input data)', async () => {
    const pts = (await backproject({ data: depthMap(9, 11, 2), shape: [9, 11] }, K)).points.data;
    const copy = Float32Array.from(pts);
    const want = await canonicalize({ data: copy, shape: [99, 3] });
    const r = await canonicalize({ data: pts, shape: [99, 3] }, { outPoints: pts });
    expect(r.points.data).toBe(pts);
    expectBitEqual(pts, want.points.data, 'in place');
    expect(r.center).toEqual(want.center);
  });

  it('pool and encode accept outputs too', async () => {
    const pts = (await backproject({ data: depthMap(28, 28, 3), shape: [28, 28] }, K)).points;
    const out = { points: new Float32Array(4 * 3), valid: new Uint8Array(4) };
    const p = await poolPointsToPatches(pts, { out });
    expect(p.points.data).toBe(out.points);
    const feats = new Float32Array(4 * 99);
    const e = await sinusoidalEncode(p.points, { out: feats });
    expect(e.data).toBe(feats);
  });

  it('a wrong-sized or wrong-typed output is a typed error naming it', async () => {
    const d = { data: depthMap(4, 4, 4), shape: [4, 4] };
    await expect(backproject(d, K, { out: { points: new Float32Array(47) } })).rejects.toThrow(/^Expected a Float32Array of 48 elements for out\.points but received Float32Array\(47\)$/);
    await expect(backproject(d, K, { out: { valid: new Int8Array(16) as never } })).rejects.toThrow(/for out\.valid but received Int8Array\(16\)/);
    await expect(canonicalize({ data: new Float32Array(6), shape: [2, 3] }, { outPoints: new Float32Array(3) })).rejects.toThrow(InvalidArgumentError);
  });
});

describe('buffer lifetime', () => {
  it('a detached (transferred) buffer is refused with a typed error, not a crash', async () => {
    const depth = new Float32Array(16).fill(1);
    structuredClone(depth.buffer, { transfer: [depth.buffer] });
    expect(depth.byteLength).toBe(0);
    await expect(backproject({ data: depth, shape: [4, 4] }, K)).rejects.toThrow(/^Expected data covering every element .* for depth\.data but received Float32Array\(0\) \(its buffer is detached\)$/);
    // Straight at the addon: it checks for detachment itself.
    const out = new Float32Array(48);
    structuredClone(out.buffer, { transfer: [out.buffer] });
    const err = await native().backproject({ depth: new Float32Array(16), depthDtype: 'float32', frames: 1, height: 4, width: 4, depthScale: 1,
      intrinsics: new Float32Array([1, 1, 0, 0]), poses: null, points: out, valid: new Uint8Array(16), impl: 'fast' }).then(() => null, (e: unknown) => e);
    expect((err as { code?: string }).code).toBe('SR3D_INVALID_ARGUMENT');
    expect((err as Error).message).toMatch(/for points but received Float32Array\(0\)/);
  });

  it('inputs and outputs stay alive while a call is in flight (GC pressure)', async () => {
    const calls = [];
    for (let i = 0; i < 40; i++) {
      // No JS reference is kept to these arrays: only the native worker holds them.
      calls.push(backproject({ data: depthMap(120, 160, i), shape: [120, 160] }, K).then((r) => r.valid.data.reduce((a, b) => a + b, 0)));
      if (typeof global.gc === 'function') global.gc();
    }
    const counts = await Promise.all(calls);
    for (const c of counts) expect(c).toBeGreaterThan(120 * 160 * 0.8);
  });
});
