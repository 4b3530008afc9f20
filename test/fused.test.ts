// The fused image-side stages (issue 9) against the chains they replace, bit for bit:
// Engine.addSpatialPe (tilePointMap -> poolPointsToPatches -> gather -> sinusoidalEncode ->
// runMlp('spatial_pe') -> scatter-add); maskPool's masksLayout 'tiles' (the JS stitch of
// tileMask's tiles + maskPool over the stitched mask); canonicalScenePoints (canonicalFramesOf).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { loadCheckpoint } from '../lib/checkpoint';
import type { Checkpoint } from '../lib/checkpoint_types';
import { createEngine, Engine } from '../lib/engine';
import { InvalidArgumentError } from '../lib/errors';
import { native } from '../lib/native';
import { canonicalize, poolPointsToPatches, sinusoidalEncode } from '../lib/geometry';
import { maskPool } from '../lib/region';
import { loadScene, sceneFromFrames, sceneWorldPoints } from '../lib/scene';
import type { Scene, SceneFrameInput } from '../lib/scene';
import { canonicalScenePoints } from '../lib/scene_points';
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
async function oldChain(feats: NdArray<Float32Array>, tiles: NdArray<Float32Array>[], e: Engine = engine): Promise<Float32Array> {
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
      const mlp = await e.runMlp('spatial_pe', enc);
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
    const got = await engine.addSpatialPe(feats, all, { tilesPerImage: 1 });
    expectBitEqual(got.data, want, 'features + PE over 3 frames');
    // One MLP call for all frames: the same bits on the CPU (its MLP rows are independent).
    expectBitEqual((await engine.addSpatialPe(feats, all)).data, want, 'features + PE over 3 frames, one MLP call');
    // The all-invalid frame keeps its features.
    const per = g * g * ckpt.vision.config.hiddenSize;
    expectBitEqual(got.data.subarray(per, 2 * per), feats.data.subarray(per, 2 * per), 'the all-invalid frame');
  });

  test('two images of a 2x1 plan + thumbnail (3 tiles each) with tilesPerImage', async () => {
    const plan = planTiles(900, 400, { maxTiles: 2 });
    expect(plan.tiles).toBe(3);
    const tiles = [await tilePointMap(pointMap(400, 900, 31, 0.3), plan), await tilePointMap(pointMap(400, 900, 32, 0.97), plan)];
    const feats = randFeats(6, 9);
    const want = await oldChain(feats, tiles);
    const got = await engine.addSpatialPe(feats, concatTiles(tiles), { tilesPerImage: plan.tiles });
    expectBitEqual(got.data, want, 'two images');
    await expect(engine.addSpatialPe(feats, concatTiles(tiles), { tilesPerImage: 4 })).rejects.toThrow(/tilesPerImage/);
    await expect(engine.addSpatialPe(feats, concatTiles(tiles), { tilesPerImage: 0 })).rejects.toThrow(/tilesPerImage/);
  });

  const addon = native();
  const gpus = addon.variant === 'cuda' ? addon.devices().devices.length : 0;
  const maybe = gpus > 0 ? test : test.skip;
  // Also with SR3D_ZERO_COPY=1 (Jetson's default forced on this GPU): the points mapped, the
  // validity bytes and row list in the engine's mapped host buffers.
  maybe.each([['', undefined], [' with SR3D_ZERO_COPY=1', '1']])(`on a CUDA engine%s: equals the unfused chain there (CUDA pool / sinusoid / MLP) bit for bit${gpus > 0 ? '' : ' (skipped: no usable GPU)'}`, async (_name, zeroCopy) => {
    const old = process.env.SR3D_ZERO_COPY;
    if (zeroCopy !== undefined) process.env.SR3D_ZERO_COPY = zeroCopy;
    const gpu = await createEngine(ckpt, { device: 'cuda', maxContext: 64 }).finally(() => {
      if (old === undefined) delete process.env.SR3D_ZERO_COPY;
      else process.env.SR3D_ZERO_COPY = old;
    });
    try {
      const plan = planTiles(900, 400, { maxTiles: 2 });
      // The second image has a handful of valid patches: the MLP's GEMV path (<= 4 rows).
      const sparse = pointMap(400, 900, 42, 1);
      for (const i of [5, 7000, 90000]) sparse.data.fill(0.25, 3 * i, 3 * i + 3);
      const tiles = [await tilePointMap(pointMap(400, 900, 41, 0.3), plan), await tilePointMap(sparse, plan)];
      const feats = randFeats(6, 10);
      const want = await oldChain(feats, tiles, gpu);
      const got = await gpu.addSpatialPe(feats, concatTiles(tiles), { tilesPerImage: plan.tiles });
      expectBitEqual(got.data, want, 'CUDA engine, two images');
    } finally {
      await gpu.dispose();
    }
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

// ---- canonicalScenePoints -------------------------------------------------------------------

// lib/sr3d.ts canonicalFramesOf and rotationToZ, copied as the reference.
function refRotationToZ(u: readonly [number, number, number]): number[] {
  const [x, y, z] = u;
  if (z < -1 + 1e-12) return [1, 0, 0, 0, -1, 0, 0, 0, -1];
  const k = 1 / (1 + z);
  return [1 - x * x * k, -x * y * k, -x, -x * y * k, 1 - y * y * k, -y, x, y, 1 - (x * x + y * y) * k];
}
async function canonicalFramesOf(scene: Scene, world: NdArray<Float32Array>[], fed: number[], notes: string[]): Promise<NdArray<Float32Array>[] | null> {
  let total = 0;
  for (const w of world) total += w.data.length;
  const all = new Float32Array(total);
  const offsets: number[] = [];
  let o = 0;
  for (const w of world) { offsets.push(o); all.set(w.data, o); o += w.data.length; }
  const posed = scene.frames.some((f) => f.pose !== undefined);
  if (!posed && scene.up) {
    const R = refRotationToZ(scene.up);
    for (let i = 0; i < total; i += 3) {
      const a = all[i], b = all[i + 1], c = all[i + 2];
      all[i] = R[0] * a + R[1] * b + R[2] * c;
      all[i + 1] = R[3] * a + R[4] * b + R[5] * c;
      all[i + 2] = R[6] * a + R[7] * b + R[8] * c;
    }
  }
  if (!posed && scene.frames.length > 1) notes.push('frames without camera poses: each frame\'s points are in its own camera frame, so the 3D PE does not relate the views');
  let anyValid = false;
  for (let i = 0; i < total && !anyValid; i += 3) anyValid = Number.isFinite(all[i]) && Number.isFinite(all[i + 1]) && Number.isFinite(all[i + 2]);
  if (!anyValid) return null;
  await canonicalize(toNdArray(all, [total / 3, 3]), { outPoints: all });
  return fed.map((f) => toNdArray(all.subarray(offsets[f], offsets[f] + world[f].data.length), world[f].shape));
}

function pose(seed: number): number[] {
  const r = rng(seed), a = r() * 6, b = r() - 0.5;
  const [c, s, cb, sb] = [Math.cos(a), Math.sin(a), Math.cos(b), Math.sin(b)];
  // Rz(a) Rx(b), plus a translation.
  return [c, -s * cb, s * sb, 2 * r() - 1, s, c * cb, -c * sb, 2 * r() - 1, 0, sb, cb, r(), 0, 0, 0, 1];
}

function frame(seed: number, H: number, W: number, kind: 'u16' | 'f32' | 'points' | 'empty', withPose: boolean): SceneFrameInput {
  const r = rng(seed);
  const image = new Uint8Array(H * W * 3);
  const intrinsics = { fx: 50 + 10 * r(), fy: 52 + 10 * r(), cx: W / 2 - 0.3, cy: H / 2 + 0.2 };
  const hole = () => r() < 0.15;
  const base = {
    image: toNdArray(image, [H, W, 3]), intrinsics, ...(withPose ? { pose: pose(seed + 1) } : {}),
  };
  if (kind === 'u16') return { ...base, depth: toNdArray(Uint16Array.from({ length: H * W }, () => (hole() ? 0 : 2000 + Math.floor(r() * 9000))), [H, W]), depthScale: 1 / 5000 };
  if (kind === 'f32') return { ...base, depth: toNdArray(Float32Array.from({ length: H * W }, () => (hole() ? NaN : 0.4 + 3 * r())), [H, W]) };
  if (kind === 'empty') return { ...base, depth: toNdArray(new Float32Array(H * W), [H, W]) };
  return { ...base, points: toNdArray(Float32Array.from({ length: H * W * 3 }, () => (hole() ? NaN : 4 * r() - 2)), [H, W, 3]) };
}

describe('canonicalScenePoints', () => {
  const cases: [string, () => Scene, number[], boolean][] = [
    ['3 posed uint16 frames', () => sceneFromFrames([frame(1, 24, 32, 'u16', true), frame(2, 24, 32, 'u16', true), frame(3, 24, 32, 'u16', true)]), [0, 2], true],
    ['2 posed float32 frames (one empty)', () => sceneFromFrames([frame(4, 20, 30, 'f32', true), frame(5, 20, 30, 'empty', true)]), [1, 0], true],
    ['1 frame, no pose, no up', () => sceneFromFrames([frame(6, 30, 40, 'f32', false)]), [0], true],
    ['2 frames without poses', () => sceneFromFrames([frame(7, 16, 16, 'u16', false), frame(8, 16, 16, 'u16', false)]), [1], true],
    ['1 frame, no pose, up (the chain)', () => sceneFromFrames([frame(9, 30, 40, 'f32', false)], { up: [0.1, -0.9, 0.2] }), [0], false],
    ['posed frames, up ignored', () => sceneFromFrames([frame(10, 12, 14, 'f32', true)], { up: [0, 0, 1] }), [0], true],
    ['mixed sizes (the chain)', () => sceneFromFrames([frame(11, 12, 14, 'f32', true), frame(12, 14, 12, 'f32', true)]), [0, 1], false],
    ['a given point map (the chain)', () => sceneFromFrames([frame(13, 12, 14, 'f32', true), frame(14, 12, 14, 'points', true)]), [1], false],
    ['some frames posed (the chain)', () => sceneFromFrames([frame(15, 12, 14, 'f32', true), frame(16, 12, 14, 'f32', false)]), [0, 1], false],
    ['no valid depth at all', () => sceneFromFrames([frame(17, 12, 14, 'empty', true), frame(18, 12, 14, 'empty', true)]), [0], true],
  ];
  test.each(cases)('equals canonicalFramesOf bit for bit: %s', async (_name, make, fed, fused) => {
    const scene = make();
    const notes: string[] = [];
    const want = await canonicalFramesOf(scene, await sceneWorldPoints(scene), fed, notes);
    const got = await canonicalScenePoints(scene, fed, { device: 'cpu' });
    expect(got.fused).toBe(fused);
    expect(got.notes).toEqual(notes);
    if (want === null) {
      expect(got.frames).toBeNull();
      return;
    }
    expect(got.frames).not.toBeNull();
    expect(got.frames!.length).toBe(fed.length);
    got.frames!.forEach((f, i) => {
      expect(f.shape).toEqual(want[i].shape);
      expectBitEqual(f.data, want[i].data, `frame ${fed[i]}`);
    });
  });

  test('the example TUM scene (posed uint16 frames) takes the fused call and equals canonicalFramesOf', async () => {
    const scene = await loadScene(path.resolve(__dirname, '..', 'examples', 'data', 'tum_fr3_cabinet', 'scene.json'));
    const fed = scene.frames.map((_, i) => i).filter((i) => i % 2 === 0);
    const want = await canonicalFramesOf(scene, await sceneWorldPoints(scene, { device: 'cpu' }), fed, []);
    const t0 = performance.now();
    const got = await canonicalScenePoints(scene, fed, { device: 'cpu' });
    const fusedMs = performance.now() - t0;
    expect(got.fused).toBe(true);
    got.frames!.forEach((f, i) => expectBitEqual(f.data, want![i].data, `frame ${fed[i]}`));
    const t1 = performance.now();
    await canonicalFramesOf(scene, await sceneWorldPoints(scene, { device: 'cpu' }), fed, []);
    if (process.env.SR3D_TIMINGS) console.log(`tum: fused ${fusedMs.toFixed(1)} ms, chain ${(performance.now() - t1).toFixed(1)} ms (${scene.frames.length} frames)`);
  });

  test('a frame index out of range is a typed error', async () => {
    const scene = sceneFromFrames([frame(1, 8, 8, 'f32', true)]);
    await expect(canonicalScenePoints(scene, [1])).rejects.toThrow(/fed\[0\]/);
  });
});
