// maskPool: region masks pooled over vision features (area and SpatialRGPT's MaskPooling), against
// a float64 reference and torch 1.13 output.
import { boxToMask, maskPool, stitchTiles } from '../lib/region';
import { planTiles } from '../lib/tiling';
import { expectBitEqual, expectClose } from './helpers';
import { hasGpu, randomFeatures, randomMasks, refDownsample, refMaskPool, refStitch } from './region_refs';

describe('maskPool', () => {
  // [F, h, w, C, M, patch]
  const cases: [number, number, number, number, number, number][] = [
    [1, 1, 1, 1, 1, 14], [1, 3, 5, 3, 4, 14], [1, 7, 2, 1152, 2, 14], [3, 4, 3, 3, 5, 14], [1, 32, 32, 1152, 8, 14],
    [4, 2, 3, 64, 12, 14], [2, 5, 4, 3, 3, 1], [1, 3, 4, 2, 2, 3], [1, 6, 5, 5, 2, 16],
  ];
  for (const [F, h, w, C, M, P] of cases) {
    for (const mode of ['area', 'spatialrgpt'] as const) {
      it(`F=${F} h=${h} w=${w} C=${C} M=${M} patch=${P} ${mode}: fast == reference == float64 JS`, async () => {
        const feats = randomFeatures(F * h * w * C, F * 1000 + h * 100 + w * 10 + C + M);
        const masks = randomMasks(M, F, P * h, P * w, M * 7 + F + P);
        const fshape = F === 1 ? [h, w, C] : [F, h, w, C];
        const mshape = F === 1 ? [M, P * h, P * w] : [M, F, P * h, P * w];
        const fast = await maskPool({ data: feats, shape: fshape }, { data: masks, shape: mshape }, { mode, patch: P, device: 'cpu' });
        const ref = await maskPool({ data: feats, shape: fshape }, { data: masks, shape: mshape }, { mode, patch: P, impl: 'reference' });
        expect(fast.shape).toEqual([M, C]);
        const js = refMaskPool((f, y, x, c) => feats[((f * h + y) * w + x) * C + c], F, h, w, C, masks, M, P, mode);
        // Same float64 sums in the same order, rounded once: identical bits.
        expectBitEqual(fast.data, js, 'fast vs float64 JS');
        expectBitEqual(ref.data, fast.data, 'reference vs fast');
        if (hasGpu) {
          const gpu = await maskPool({ data: feats, shape: fshape }, { data: masks, shape: mshape }, { mode, patch: P, device: 'cuda' });
          expectClose(gpu.data, fast.data, 1.2e-7, 0, 'cuda vs cpu'); // 1 ulp at |x| <= 1 (features in [-1, 1])
        }
      });
    }
  }

  it('tiles + plan pool like the stitched grid, never reading the thumbnail', async () => {
    const [cols, rows, g, C, M] = [4, 3, 32, 16, 8];
    const N = cols * rows + 1;
    const tiles = randomFeatures(N * g * g * C, 99);
    tiles.fill(NaN, cols * rows * g * g * C); // the thumbnail: NaN would poison any sum it entered
    const masks = randomMasks(M, 1, rows * g * 14, cols * g * 14, 5);
    const mm = { data: masks, shape: [M, rows * g * 14, cols * g * 14] };
    const grid = await stitchTiles({ data: tiles, shape: [N, g, g, C] }, { cols, rows });
    for (const mode of ['area', 'spatialrgpt'] as const) {
      const viaTiles = await maskPool({ data: tiles, shape: [N, g, g, C] }, mm, { mode, plan: { cols, rows } });
      const viaGrid = await maskPool(grid, mm, { mode });
      expectBitEqual(viaTiles.data, viaGrid.data, `${mode}: tiles+plan vs stitched grid`);
      const ref = await maskPool({ data: tiles, shape: [N, g, g, C] }, mm, { mode, plan: { cols, rows }, impl: 'reference' });
      expectBitEqual(ref.data, viaTiles.data, `${mode}: reference vs fast`);
      const js = refMaskPool((_f, y, x, c) => grid.data[(y * cols * g + x) * C + c], 1, rows * g, cols * g, C, masks, M, 14, mode);
      expectBitEqual(viaTiles.data, js, `${mode}: vs float64 JS`);
      expect(Array.from(viaTiles.data).every(Number.isFinite)).toBe(true);
      if (hasGpu) {
        const gpu = await maskPool({ data: tiles, shape: [N, g, g, C] }, mm, { mode, plan: { cols, rows }, device: 'cuda' });
        expectClose(gpu.data, viaTiles.data, 1.2e-7, 0, `${mode}: cuda vs cpu`);
      }
    }
  });

  it('takes a tiling plan from planTiles as it is (640x480: 4x3 grid + thumbnail = 13 tiles)', async () => {
    const plan = planTiles(640, 480);
    const [g, C] = [32, 4];
    const tiles = randomFeatures(plan.tiles * g * g * C, 21);
    const masks = randomMasks(2, 1, plan.rows * 448, plan.cols * 448, 22);
    const r = await maskPool({ data: tiles, shape: [plan.tiles, g, g, C] }, { data: masks, shape: [2, plan.rows * 448, plan.cols * 448] }, { plan });
    const grid = refStitch(tiles, g, C, plan.cols, plan.rows);
    const js = refMaskPool((_f, y, x, c) => grid[(y * plan.cols * g + x) * C + c], 1, plan.rows * g, plan.cols * g, C, masks, 2, 14, 'area');
    expectBitEqual(r.data, js, 'planTiles plan vs JS');
  });

  it('reproduces torch 1.13 MaskPooling (SpatialRGPT base_extractor.py), including the zero vector', async () => {
    // scripts/make_maskpool_fixtures.py: torch 1.13 (Debian python3-torch 1.13.1, CPU) running
    // SpatialRGPT's MaskPooling.forward on these formula-defined inputs: the downsampled masks
    // (x4, exact) and the pooled features.
    const torchD4 = [[4, 4, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [2, 1, 0, 1, 2, 1], [0, 1, 0, 0, 0, 0]];
    const torchOut = [[-0.375, 0.375, -0.25, 0.5], [0, 0, 0, 0],
      [-0.142857164144516, 0.2142857164144516, -0.2142857313156128, 0.142857164144516], [0.5, 1.25, -0.75, 0.0]];
    const [h, w, P, C] = [2, 3, 14, 4];
    const [H, W] = [h * P, w * P];
    const masks = new Uint8Array(4 * H * W);
    for (let y = 3; y < 20; y++) masks.fill(1, y * W + 5, y * W + 30);
    for (let y = 0; y < 3; y++) masks.fill(1, H * W + y * W, H * W + y * W + 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if ((y * 7 + x * 3) % 5 === 0) masks[2 * H * W + y * W + x] = 1;
    masks[3 * H * W + 6 * W + 21] = 1;
    const feats = Float32Array.from({ length: h * w * C }, (_, i) => (((Math.floor(i / C) * 7 + (i % C) * 3) % 11) - 5) / 4);
    for (let m = 0; m < 4; m++) expect(Array.from(refDownsample(masks, m * H * W, H, W, P).d, (d) => d * 4)).toEqual(torchD4[m]);
    const out = await maskPool({ data: feats, shape: [h, w, C] }, { data: masks, shape: [4, H, W] }, { mode: 'spatialrgpt' });
    // torch sums in float32 (einsum): within 1 float32 ulp of our once-rounded float64 sum.
    expectClose(out.data, torchOut.flat(), 6e-8, 0, 'vs torch');
    expect(Array.from(out.data.subarray(4, 8))).toEqual([0, 0, 0, 0]);
  });

  it('a region covering no block centre: spatialrgpt gives the zero vector (the reference answer), area does not', async () => {
    const [h, w, C] = [2, 2, 3];
    const feats = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const masks = new Uint8Array(28 * 28);
    for (let y = 15; y < 19; y++) masks.fill(1, y * 28 + 16, y * 28 + 19); // 4x3 px in token (1,1), away from rows/cols 20-21
    const sp = await maskPool({ data: feats, shape: [h, w, C] }, { data: masks, shape: [1, 28, 28] }, { mode: 'spatialrgpt' });
    const ar = await maskPool({ data: feats, shape: [h, w, C] }, { data: masks, shape: [1, 28, 28] }, { mode: 'area' });
    expect(Array.from(sp.data)).toEqual([0, 0, 0]);
    expect(Array.from(ar.data)).toEqual([10, 11, 12]); // the one token it touches
    const spRef = await maskPool({ data: feats, shape: [h, w, C] }, { data: masks, shape: [1, 28, 28] }, { mode: 'spatialrgpt', impl: 'reference' });
    expect(Array.from(spRef.data)).toEqual([0, 0, 0]);
  });

  it('multi-view: a region pools jointly over its frames; frames without mask add nothing', async () => {
    const [F, h, w, C] = [3, 2, 2, 2];
    const feats = Float32Array.from({ length: F * h * w * C }, (_, i) => i);
    const masks = new Uint8Array(1 * F * 28 * 28);
    masks.fill(1, 0, 14 * 28); // frame 0: the top token row (2 tokens x 196 px)
    masks.fill(1, 2 * 784 + 14 * 28, 3 * 784); // frame 2: the bottom token row
    const r = await maskPool({ data: feats, shape: [F, h, w, C] }, { data: masks, shape: [1, F, 28, 28] });
    // tokens (0,0,0) (0,0,1) (2,1,0) (2,1,1): features [0,1] [2,3] [20,21] [22,23], equal weight
    expect(Array.from(r.data)).toEqual([11, 12]);
  });

  it('nonzero mask bytes count as 1; a NaN feature outside every region does not propagate', async () => {
    const feats = randomFeatures(3 * 4 * 5, 3);
    const m1 = randomMasks(2, 1, 42, 56, 8);
    const m255 = m1.map((v) => v * 255);
    feats.fill(NaN, 0, 5); // token (0,0)
    m1[0] = m1[1] = 0;
    for (const mm of [m1, m255]) for (let i = 0; i < 2; i++) for (let y = 0; y < 14; y++) mm.fill(0, i * 42 * 56 + y * 56, i * 42 * 56 + y * 56 + 14);
    for (const mode of ['area', 'spatialrgpt'] as const) {
      const a = await maskPool({ data: feats, shape: [3, 4, 5] }, { data: m1, shape: [2, 42, 56] }, { mode });
      const b = await maskPool({ data: feats, shape: [3, 4, 5] }, { data: m255, shape: [2, 42, 56] }, { mode });
      expectBitEqual(a.data, b.data, `${mode}: 0/1 vs 0/255 masks`);
      expect(Array.from(a.data).every(Number.isFinite)).toBe(true);
    }
  });

  it('strided inputs and a reused output buffer', async () => {
    const feats = randomFeatures(2 * 3 * 4, 11);
    const masks = randomMasks(4, 1, 28, 42, 12);
    const out = new Float32Array(2 * 4);
    // Every other region via a stride (a non-contiguous view is copied once).
    const view = { data: masks, shape: [2, 28, 42], stride: [2 * 28 * 42, 42, 1] };
    const r = await maskPool({ data: feats, shape: [2, 3, 4] }, view, { out });
    expect(r.data).toBe(out);
    const dense = new Uint8Array(2 * 28 * 42);
    dense.set(masks.subarray(0, 28 * 42), 0);
    dense.set(masks.subarray(2 * 28 * 42, 3 * 28 * 42), 28 * 42);
    const js = refMaskPool((_f, y, x, c) => feats[(y * 3 + x) * 4 + c], 1, 2, 3, 4, dense, 2, 14, 'area');
    expectBitEqual(out, js, 'strided masks vs JS');
  });

  it('bad input is a typed error', async () => {
    const feats = { data: new Float32Array(2 * 3 * 4), shape: [2, 3, 4] };
    const ok = new Uint8Array(2 * 28 * 42).fill(1);
    await expect(maskPool(feats, { data: new Uint8Array(2 * 28 * 40), shape: [2, 28, 40] })).rejects.toThrow(
      /^Expected masks \(M,28,42\): 14 px per token of the 2x3 token grid for masks\.shape but received \[2, 28, 40\]$/);
    await expect(maskPool(feats, { data: new Uint8Array(0), shape: [0, 28, 42] })).rejects.toThrow(
      /^Expected at least one region for masks\.shape but received \[0, 28, 42\]$/);
    const empty = ok.slice();
    empty.fill(0, 28 * 42);
    for (const mode of ['area', 'spatialrgpt'] as const) {
      for (const impl of ['fast', 'reference'] as const) {
        await expect(maskPool(feats, { data: empty, shape: [2, 28, 42] }, { mode, impl })).rejects.toThrow(
          /^Expected a mask with at least one nonzero pixel on some frame for masks\[1\] but received an all-zero mask$/);
      }
    }
    await expect(maskPool({ data: new Float32Array(5 * 2 * 2), shape: [5, 2, 2, 1] }, { data: ok.subarray(0, 28 * 84), shape: [1, 28, 84] },
      { plan: { cols: 2, rows: 1 } })).rejects.toThrow(/^Expected 2 tiles \(cols x rows = 2 x 1\) or 3 \(with the thumbnail last\) for features\.shape/);
    await expect(maskPool({ data: new Float32Array(2 * 4), shape: [2, 1, 1, 4] }, { data: new Uint8Array(2 * 196), shape: [2, 14, 14] })).rejects.toThrow(
      /^Expected masks \(M,F,H,W\) with F = 2 for 2 frames of features for masks\.shape but received \[2, 14, 14\]$/);
    await expect(maskPool(feats, { data: new Float32Array(2 * 28 * 42), shape: [2, 28, 42] })).rejects.toThrow(/for masks\.data but received Float32Array/);
    await expect(maskPool(feats, { data: ok, shape: [2, 28, 42] }, { mode: 'mean' as never })).rejects.toThrow(/^Expected 'area' or 'spatialrgpt' for mode but received 'mean'/);
    await expect(maskPool(feats, { data: ok, shape: [2, 28, 42] }, { patch: 0 })).rejects.toThrow(/for patch but received 0/);
    await expect(maskPool(feats, { data: ok, shape: [2, 28, 42] }, { out: new Float32Array(3) })).rejects.toThrow(/^Expected a Float32Array of 8 elements for out/);
  });
});

// ---- boxToMask -------------------------------------------------------------------------
