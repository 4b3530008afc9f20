// sinusoidalEncode: the 3D PE's sinusoid features, against a float64 reference.
import { devices, sinusoidalEncode } from '../lib';
import { expectBitEqual, expectClose, refEncode, randomPointMap } from './helpers';

const hasGpu = devices().length > 0;

describe('sinusoidalEncode', () => {
  for (const [n, L, inc] of [[1, 16, true], [7, 16, true], [1000, 16, true], [33, 4, false], [5, 0, true], [0, 16, true], [257, 30, true]] as [number, number, boolean][]) {
    it(`n=${n} numFreqs=${L} includeInput=${inc}: fast ~ reference ~ float64 JS`, async () => {
      const pts = randomPointMap(n, n * 3 + L, 0.05);
      for (let i = 0; i < pts.length; i++) if (Number.isFinite(pts[i])) pts[i] /= 4; // canonical range [-1, 1]
      const width = 3 * ((inc ? 1 : 0) + 2 * L);
      const fast = await sinusoidalEncode({ data: pts, shape: [n, 3] }, { numFreqs: L, includeInput: inc, device: 'cpu' });
      expect(fast.shape).toEqual([n, width]);
      const ref = await sinusoidalEncode({ data: pts, shape: [n, 3] }, { numFreqs: L, includeInput: inc, impl: 'reference' });
      const js = refEncode(pts, L, inc);
      // Both round a float64 sin/cos to float32: within one float32 ulp of 1 (6e-8) of each other.
      expectClose(fast.data, js, 1.2e-7, 0, 'fast vs float64 JS');
      // The C++ reference evaluates sin(2^k*pi*p) directly: its float64 argument carries
      // ~2^(L-1)*pi*2^-53 of error on top.
      expectClose(ref.data, js, 1.2e-7 + 2 ** Math.max(0, L - 1) * Math.PI * 2 ** -52, 0, 'reference vs float64 JS');
      if (hasGpu) {
        const gpu = await sinusoidalEncode({ data: pts, shape: [n, 3] }, { numFreqs: L, includeInput: inc, device: 'cuda' });
        expectClose(gpu.data, fast.data, 1.2e-7, 0, 'cuda vs cpu');
      }
    });
  }

  it('default layout: 99 features, axis-major [p, sin(pi p), cos(pi p), sin(2 pi p), …]', async () => {
    const r = await sinusoidalEncode({ data: new Float32Array([0.25, -0.5, 1]), shape: [1, 3] });
    expect(r.shape).toEqual([1, 99]);
    const f = r.data;
    expect(f[0]).toBeCloseTo(0.25, 7);
    expect(f[1]).toBeCloseTo(Math.sin(Math.PI / 4), 6);
    expect(f[2]).toBeCloseTo(Math.cos(Math.PI / 4), 6);
    expect(f[3]).toBeCloseTo(1, 6); // sin(2 pi 0.25)
    expect(f[33]).toBeCloseTo(-0.5, 7);
    expect(f[66]).toBeCloseTo(1, 7);
  });

  it('a non-finite point gives a NaN row; leading dims are kept', async () => {
    const r = await sinusoidalEncode({ data: new Float32Array([NaN, 0, 0, 0.1, 0.2, 0.3]), shape: [2, 1, 3] }, { numFreqs: 2 });
    expect(r.shape).toEqual([2, 1, 15]);
    expect(Array.from(r.data.slice(0, 15)).every(Number.isNaN)).toBe(true);
    expect(Array.from(r.data.slice(15)).every(Number.isFinite)).toBe(true);
  });

  it('bad options are typed errors', async () => {
    const p = { data: new Float32Array(3), shape: [1, 3] };
    await expect(sinusoidalEncode(p, { numFreqs: 31 })).rejects.toThrow(/^Expected an integer in \[0, 30\] for numFreqs but received 31$/);
    await expect(sinusoidalEncode(p, { numFreqs: 0, includeInput: false })).rejects.toThrow(/for numFreqs/);
    await expect(sinusoidalEncode(p, { includeInput: 1 as never })).rejects.toThrow(/for includeInput but received 1/);
  });
});
