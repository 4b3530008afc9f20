// The fused image-side stages (issue 9) against the chains they replace, bit for bit:
// Engine.addSpatialPe (tilePointMap -> poolPointsToPatches -> gather -> sinusoidalEncode ->
// runMlp('spatial_pe') -> scatter-add).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { loadCheckpoint } from '../lib/checkpoint';
import type { Checkpoint } from '../lib/checkpoint_types';
import { createEngine, Engine } from '../lib/engine';
import { InvalidArgumentError } from '../lib/errors';
import { poolPointsToPatches, sinusoidalEncode } from '../lib/geometry';
import { toNdArray } from '../lib/tensor';
import type { NdArray } from '../lib/tensor';
import { planTiles, tilePointMap } from '../lib/tiling';
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
