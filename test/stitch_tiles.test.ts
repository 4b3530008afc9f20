// stitchTiles: tiles of features back into the stitched grid, against a float64 reference.
import { maskPool, stitchTiles } from '../lib/region';
import { expectBitEqual } from './helpers';
import { hasGpu, randomFeatures, refStitch } from './region_refs';

describe('stitchTiles', () => {
  const cases: [number, number, number, number, boolean][] = [
    [1, 1, 1, 1, false], [4, 3, 32, 3, true], [3, 2, 5, 1, true], [1, 4, 3, 7, false], [2, 2, 6, 1152, true],
  ];
  for (const [cols, rows, g, C, thumb] of cases) {
    it(`plan ${cols}x${rows}, tiles ${g}x${g}, C=${C}, thumbnail=${thumb}: fast == reference == JS`, async () => {
      const N = cols * rows + (thumb ? 1 : 0);
      const tiles = randomFeatures(N * g * g * C, cols * 100 + rows * 10 + g + C);
      const shape = [N, g, g, C];
      const fast = await stitchTiles({ data: tiles, shape }, { cols, rows }, { device: 'cpu' });
      const ref = await stitchTiles({ data: tiles, shape }, { cols, rows }, { impl: 'reference' });
      expect(fast.shape).toEqual([rows * g, cols * g, C]);
      expectBitEqual(fast.data, refStitch(tiles, g, C, cols, rows), 'fast vs JS');
      expectBitEqual(ref.data, fast.data, 'reference vs fast');
      if (hasGpu) expectBitEqual((await stitchTiles({ data: tiles, shape }, { cols, rows }, { device: 'cuda' })).data, fast.data, 'cuda vs fast');
    });
  }

  it('tile counts that do not match the plan are typed errors', async () => {
    const t = { data: new Float32Array(5 * 2 * 2 * 1), shape: [5, 2, 2, 1] };
    await expect(stitchTiles(t, { cols: 3, rows: 2 })).rejects.toThrow(
      /^Expected 6 tiles \(cols x rows = 3 x 2\) or 7 \(with the thumbnail last\) for features\.shape but received \[5, 2, 2, 1\] \(5 tiles\)$/);
    await expect(stitchTiles(t, { cols: 0, rows: 2 })).rejects.toThrow(/^Expected a positive integer for plan\.cols but received 0$/);
    // A tiling plan's own count decides (a 1x1 plan has no thumbnail).
    await expect(stitchTiles({ data: new Float32Array(2 * 4), shape: [2, 2, 2, 1] }, { cols: 1, rows: 1, tiles: 1 })).rejects.toThrow(
      /^Expected 1 tiles \(plan\.tiles\) for features\.shape but received \[2, 2, 2, 1\] \(2 tiles\)$/);
    await expect(stitchTiles({ data: new Float32Array(12), shape: [1, 2, 3, 2] }, { cols: 1, rows: 1 })).rejects.toThrow(/square, non-empty tiles for features\.shape/);
    await expect(stitchTiles(t, undefined as never)).rejects.toThrow(/for plan but received undefined/);
  });
});

// ---- maskPool --------------------------------------------------------------------------
