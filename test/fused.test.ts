// The fused image-side stages (issue 9) against the chains they replace, bit for bit:
// Engine.addSpatialPe (tilePointMap -> poolPointsToPatches -> gather -> sinusoidalEncode ->
// runMlp('spatial_pe') -> scatter-add); maskPool's masksLayout 'tiles' (the JS stitch of
// tileMask's tiles + maskPool over the stitched mask).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { loadCheckpoint } from '../lib/checkpoint';
import type { Checkpoint } from '../lib/checkpoint_types';
import { createEngine, Engine } from '../lib/engine';
import { InvalidArgumentError } from '../lib/errors';
import { poolPointsToPatches, sinusoidalEncode } from '../lib/geometry';
import { maskPool } from '../lib/region';
import { toNdArray } from '../lib/tensor';
import type { NdArray } from '../lib/tensor';
import { planTiles, tileMask, tilePointMap } from '../lib/tiling';
import type { TilePlan } from '../lib/tiling';
import { writeTinyModel } from '../lib/tinymodel';
import { expectBitEqual, rng } from './helpers';

let dir: string;
let ckpt: Checkpoint;
let engine: Engine;
const S = 448, P = 14, g = 32;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-fused-'));
  await writeTinyModel(dir, { seed: 5 });
  ckpt = await loadCheckpoint(dir);
  engine = await createEngine(ckpt, { device: 'cpu', maxContext: 64 });
}, 120000);

afterAll(async () => {
  await engine?.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function randFeats(n: number, seed: number): NdArray<Float32Array> {
  const r = rng(seed), hv = ckpt.vision.config.hiddenSize;
  return toNdArray(Float32Array.from({ length: n * g * g * hv }, () => 2 * r() - 1), [n, g * g, hv]);
}

// A (H,W,3) canonical point map in [-1, 1] with NaN holes: `holes` of the pixels, plus a
// block of rows (a wall of missing depth) so some whole patches have no valid point.
function pointMap(H: number, W: number, seed: number, holes: number): NdArray<Float32Array> {
  const r = rng(seed), d = new Float32Array(H * W * 3);
  for (let i = 0; i < H * W; i++) {
    const y = Math.floor(i / W);
    const hole = r() < holes || (y > H / 3 && y < H / 2);
    for (let a = 0; a < 3; a++) d[3 * i + a] = hole ? NaN : 2 * r() - 1;
  }
  return toNdArray(d, [H, W, 3]);
}

// The pipeline's chain before the fusion (lib/sr3d.ts prepare(), per image).
async function oldChain(feats: NdArray<Float32Array>, tiles: NdArray<Float32Array>[]): Promise<Float32Array> {
  const pe = ckpt.spatialPe!.config, hv = ckpt.vision.config.hiddenSize;
  const out = Float32Array.from(feats.data);
  let base = 0;
  for (const ptTiles of tiles) {
    const perImage = ptTiles.shape[0] * g * g;
    const pooled = await poolPointsToPatches(ptTiles, { patch: P });
    const valid = pooled.valid.data;
    const rowsValid: number[] = [];
    for (let r = 0; r < perImage; r++) if (valid[r]) rowsValid.push(r);
    if (rowsValid.length > 0) {
      const pts = new Float32Array(rowsValid.length * 3);
      rowsValid.forEach((r, i) => pts.set(pooled.points.data.subarray(3 * r, 3 * r + 3), 3 * i));
      const enc = await sinusoidalEncode(toNdArray(pts, [rowsValid.length, 3]), { numFreqs: pe.numFreqs, includeInput: pe.includeInput });
      const mlp = await engine.runMlp('spatial_pe', enc);
      rowsValid.forEach((r, i) => {
        const dst = (base + r) * hv, src = i * hv;
        for (let c = 0; c < hv; c++) out[dst + c] += mlp.data[src + c];
      });
    }
    base += perImage;
  }
  return out;
}

function concatTiles(tiles: NdArray<Float32Array>[]): NdArray<Float32Array> {
  const n = tiles.reduce((a, t) => a + t.shape[0], 0);
  const d = new Float32Array(n * S * S * 3);
  let o = 0;
  for (const t of tiles) { d.set(t.data, o); o += t.data.length; }
  return toNdArray(d, [n, S, S, 3]);
}

describe('Engine.addSpatialPe', () => {
  test.each([
    ['1 tile (a 1x1 plan)', 300, 300, 0.2],
    ['a 2x1 plan + thumbnail', 900, 400, 0.5],
  ])('equals the unfused chain bit for bit: %s', async (_name, W, H, holes) => {
    const plan = planTiles(W, H, { maxTiles: 2 });
    const tiles = await tilePointMap(pointMap(H, W, 11, holes), plan);
    const feats = randFeats(tiles.shape[0], 3);
    const want = await oldChain(feats, [tiles]);
    const before = Float32Array.from(feats.data);
    const got = await engine.addSpatialPe(feats, tiles);
    expect(got.shape).toEqual(feats.shape);
    expectBitEqual(got.data, want, 'features + PE');
    expectBitEqual(feats.data, before, 'the input features (not modified)');
    // The PE changed the valid patches' tokens and nothing else.
    expect(got.data.some((v, i) => v !== before[i])).toBe(true);
  });

  test('several frames in one call (one all-invalid) equal the per-frame chain', async () => {
    const plan: TilePlan = planTiles(S, S, { maxTiles: 1 });
    const frames = [pointMap(240, 320, 21, 0.1), pointMap(240, 320, 22, 1), pointMap(240, 320, 23, 0.9)];
    const tiles = await Promise.all(frames.map((f) => tilePointMap(f, plan)));
    const all = concatTiles(tiles);
    const feats = randFeats(all.shape[0], 4);
    const want = await oldChain(feats, tiles);
    const got = await engine.addSpatialPe(feats, all);
    expectBitEqual(got.data, want, 'features + PE over 3 frames');
    // The all-invalid frame keeps its features.
    const per = g * g * ckpt.vision.config.hiddenSize;
    expectBitEqual(got.data.subarray(per, 2 * per), feats.data.subarray(per, 2 * per), 'the all-invalid frame');
  });

  test('tiles with no valid point at all leave the features unchanged; N = 0 is empty', async () => {
    const feats = randFeats(2, 6);
    const got = await engine.addSpatialPe(feats, toNdArray(new Float32Array(2 * S * S * 3).fill(NaN), [2, S, S, 3]));
    expectBitEqual(got.data, feats.data, 'no valid point');
    const none = await engine.addSpatialPe(randFeats(0, 1), toNdArray(new Float32Array(0), [0, S, S, 3]));
    expect(none.shape).toEqual([0, g * g, ckpt.vision.config.hiddenSize]);
  });

  test('wrong shapes and a checkpoint without spatial_pe/ are typed errors', async () => {
    const feats = randFeats(1, 7);
    const pts = toNdArray(new Float32Array(S * S * 3), [1, S, S, 3]);
    await expect(engine.addSpatialPe(toNdArray(feats.data, [1, g * g * 2, 16]), pts)).rejects.toThrow(InvalidArgumentError);
    await expect(engine.addSpatialPe(feats, toNdArray(new Float32Array(2 * S * S * 3), [2, S, S, 3]))).rejects.toThrow(/points\.shape/);
    await expect(engine.addSpatialPe(feats, toNdArray(new Float32Array(224 * 224 * 3), [1, 224, 224, 3]))).rejects.toThrow(/points\.shape/);
    await expect(engine.addSpatialPe(feats, toNdArray(new Float32Array(S * S * 4), [1, S, S, 4]))).rejects.toThrow(InvalidArgumentError);
    const d2 = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-fused-nope-'));
    try {
      await writeTinyModel(d2, { seed: 5, withSpatialPe: false });
      const e2 = await createEngine(await loadCheckpoint(d2), { device: 'cpu', maxContext: 32 });
      try {
        await expect(e2.addSpatialPe(feats, pts)).rejects.toThrow(/spatial_pe/);
      } finally {
        await e2.dispose();
      }
    } finally {
      fs.rmSync(d2, { recursive: true, force: true });
    }
  });
});

// The pipeline's stitch before the fusion (lib/sr3d.ts prepare(), tiles mode).
function stitchMasks(tiles: Uint8Array, M: number, K: number, cols: number, rows: number, T: number): Uint8Array {
  const H = rows * T, W = cols * T, out = new Uint8Array(M * H * W);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < cols * rows; k++) {
      const r = Math.floor(k / cols), c = k % cols;
      for (let y = 0; y < T; y++) {
        const src = ((m * K + k) * T + y) * T;
        out.set(tiles.subarray(src, src + T), m * H * W + (r * T + y) * W + c * T);
      }
    }
  }
  return out;
}

describe("maskPool with masksLayout 'tiles'", () => {
  const cases: [number, number, boolean][] = [[1, 1, false], [1, 3, true], [1, 3, false], [3, 4, true], [3, 4, false], [2, 1, true]];
  test.each(cases)('equals stitch + maskPool bit for bit: %ix%i, thumbnail %s', async (cols, rows, thumb) => {
    const gt = 4, patch = 3, C = 5, T = gt * patch, M = 4;
    const grid = cols * rows, N = grid + (thumb ? 1 : 0);
    const r = rng(100 + cols * 10 + rows);
    const feats = toNdArray(Float32Array.from({ length: N * gt * gt * C }, () => 2 * r() - 1), [N, gt, gt, C]);
    // Region 0: sparse; 1: one tile only; 2: one pixel; 3: everything. The thumbnail's masks are
    // noise the pooling must ignore.
    const tiles = new Uint8Array(M * N * T * T);
    for (let k = 0; k < N; k++) {
      for (let i = 0; i < T * T; i++) {
        const thumbTile = k === grid;
        tiles[(0 * N + k) * T * T + i] = thumbTile ? 1 : Number(r() < 0.2);
        tiles[(1 * N + k) * T * T + i] = thumbTile ? 1 : Number(k === grid - 1 && r() < 0.5);
        tiles[(3 * N + k) * T * T + i] = 1;
      }
    }
    tiles[(2 * N + Math.floor(grid / 2)) * T * T + 7] = 1;
    const stitched = stitchMasks(tiles, M, N, cols, rows, T);
    for (const mode of ['area', 'spatialrgpt'] as const) {
      const want = await maskPool(feats, toNdArray(stitched, [M, rows * T, cols * T]), { plan: { cols, rows }, mode, patch, device: 'cpu' });
      const got = await maskPool(feats, toNdArray(tiles, [M, N, T, T]), { plan: { cols, rows }, mode, patch, masksLayout: 'tiles', device: 'cpu' });
      expectBitEqual(got.data, want.data, `${mode} ${cols}x${rows}`);
      const ref = await maskPool(feats, toNdArray(tiles, [M, N, T, T]), { plan: { cols, rows }, mode, patch, masksLayout: 'tiles', impl: 'reference' });
      expectBitEqual(ref.data, want.data, `${mode} ${cols}x${rows} (reference)`);
    }
  });

  test('tileMask output as is (a 2x1 plan + thumbnail, 448 px tiles, the tiny model\'s features)', async () => {
    const plan = planTiles(900, 400, { maxTiles: 2 });
    const r = rng(9), H = 400, W = 900;
    const masks = [0.3, 0.01].map((p) => toNdArray(Uint8Array.from({ length: H * W }, () => Number(r() < p)), [H, W]));
    const hv = ckpt.vision.config.hiddenSize;
    const feats = toNdArray(randFeats(plan.tiles, 8).data, [plan.tiles, g, g, hv]);
    const T = S, K = plan.tiles, M = masks.length;
    const tiles = new Uint8Array(M * K * T * T);
    for (let m = 0; m < M; m++) await tileMask(masks[m], plan, { out: tiles.subarray(m * K * T * T, (m + 1) * K * T * T) });
    const stitched = stitchMasks(tiles, M, K, plan.cols, plan.rows, T);
    for (const mode of ['area', 'spatialrgpt'] as const) {
      const want = await maskPool(feats, toNdArray(stitched, [M, plan.rows * T, plan.cols * T]), { plan, mode, patch: P });
      const got = await maskPool(feats, toNdArray(tiles, [M, K, T, T]), { plan, mode, patch: P, masksLayout: 'tiles' });
      expectBitEqual(got.data, want.data, mode);
    }
  });

  test('a region empty on every grid tile (only on the thumbnail) and bad shapes are typed errors', async () => {
    const gt = 2, patch = 2, C = 3, T = 4, cols = 2, rows = 1, N = 3;
    const feats = toNdArray(new Float32Array(N * gt * gt * C).fill(1), [N, gt, gt, C]);
    const tiles = new Uint8Array(2 * N * T * T);
    tiles[0] = 1;                       // region 0: on grid tile 0
    tiles[(1 * N + 2) * T * T + 3] = 1; // region 1: on the thumbnail only
    await expect(maskPool(feats, toNdArray(tiles, [2, N, T, T]), { plan: { cols, rows }, patch, masksLayout: 'tiles' }))
      .rejects.toThrow(/masks\[1\]/);
    await expect(maskPool(feats, toNdArray(new Uint8Array(2 * 4 * T * T).fill(1), [2, 4, T, T]), { plan: { cols, rows }, patch, masksLayout: 'tiles' }))
      .rejects.toThrow(/masks\.shape/);
    await expect(maskPool(feats, toNdArray(new Uint8Array(2 * N * 5 * 5), [2, N, 5, 5]), { plan: { cols, rows }, patch, masksLayout: 'tiles' }))
      .rejects.toThrow(/masks\.shape/);
    await expect(maskPool(toNdArray(new Float32Array(gt * gt * C), [gt, gt, C]), toNdArray(tiles, [2, N, T, T]), { patch, masksLayout: 'tiles' }))
      .rejects.toThrow(/plan/);
    await expect(maskPool(feats, toNdArray(tiles, [2, N, T, T]), { plan: { cols, rows }, patch, masksLayout: 'tile' as never }))
      .rejects.toThrow(/masksLayout/);
  });
});
