// poolPointsToPatches: per-patch mean of a point map, against a float64 reference.
import { devices, poolPointsToPatches } from '../lib';
import { expectBitEqual, expectClose, refPool, randomPointMap } from './helpers';

const hasGpu = devices().length > 0;

describe('poolPointsToPatches', () => {
  const cases: [number[], number, number][] = [
    [[1, 1], 14, 0], [[13, 13], 14, 0.1], [[14, 14], 14, 0.2], [[29, 43], 14, 0.3], [[2, 448, 448], 14, 0.15],
    [[3, 2, 17, 19], 5, 0.5], [[7, 11], 1, 0.1], [[6, 6], 3, 1], [[0, 14, 14], 14, 0],
  ];
  for (const [lead, patch, invalid] of cases) {
    const shape = [...lead, 3];
    it(`shape [${shape}] patch=${patch} invalid=${invalid}: fast == reference == float64 JS`, async () => {
      const n = lead.reduce((a, b) => a * b, 1);
      const pts = randomPointMap(n, n + patch, invalid);
      const fast = await poolPointsToPatches({ data: pts, shape }, { patch, device: 'cpu' });
      const ref = await poolPointsToPatches({ data: pts, shape }, { patch, impl: 'reference' });
      expectBitEqual(fast.points.data, ref.points.data, 'pooled fast vs reference');
      expectBitEqual(fast.valid.data, ref.valid.data, 'valid fast vs reference');
      const [H, W] = lead.slice(-2);
      const B = n / (H * W || 1);
      const js = refPool(pts, lead.length === 2 ? 1 : (B | 0), H, W, patch);
      expect(fast.points.shape).toEqual([...lead.slice(0, -2), js.Hp, js.Wp, 3]);
      expect(Array.from(fast.valid.data)).toEqual(Array.from(js.valid));
      // One float64 sum, rounded once: equal to the float64 JS mean rounded to float32.
      expectClose(fast.points.data, Float32Array.from(js.out), 0, 0, 'pooled vs float64 JS');
      if (hasGpu) {
        const gpu = await poolPointsToPatches({ data: pts, shape }, { patch, device: 'cuda' });
        expectBitEqual(gpu.points.data, ref.points.data, 'pooled cuda vs reference');
      }
    });
  }

  it('a patch with no valid pixel is NaN and flagged 0', async () => {
    const pts = new Float32Array(4 * 4 * 3).fill(NaN);
    pts.set([1, 2, 3], 0);
    const r = await poolPointsToPatches({ data: pts, shape: [4, 4, 3] }, { patch: 2 });
    expect(Array.from(r.valid.data)).toEqual([1, 0, 0, 0]);
    expect(Array.from(r.points.data.slice(0, 3))).toEqual([1, 2, 3]);
    expect(Number.isNaN(r.points.get(0, 1, 0))).toBe(true);
  });

  it('bad input is a typed error', async () => {
    await expect(poolPointsToPatches({ data: new Float32Array(12), shape: [4, 3] })).rejects.toThrow(/for points\.shape but received \[4, 3\]/);
    await expect(poolPointsToPatches({ data: new Float32Array(12), shape: [2, 2, 3] }, { patch: 0 })).rejects.toThrow(/^Expected a positive integer \(pixels\) for patch but received 0$/);
    await expect(poolPointsToPatches({ data: new Uint8Array(12), shape: [2, 2, 3] })).rejects.toThrow(/for points\.data but received Uint8Array\(12\)/);
  });
});
