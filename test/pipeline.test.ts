// End-to-end SR-3D `ask` on a tiny random checkpoint (issue 5, "Tests"): the spliced sequence of
// a tiled single view and of a multi-view scene is checked row by row against references built
// here from the engine's own ops (vision tower, projector, MLPs) and an independent float64
// mask pooling; the 3D PE on/off, notices and notes; deterministic greedy generation; errors.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { EngineDisposedError, InvalidArgumentError, RequestAbortedError, RequestQueueFullError } from '../lib/errors';
import { RequestQueue } from '../lib/request_queue';
import { canonicalize, poolPointsToPatches, sinusoidalEncode } from '../lib/geometry';
import { ModelError, SR3D } from '../lib/sr3d';
import type { Prepared } from '../lib/model_types';
import { loadScene, SceneError, sceneFromFrames, sceneWorldPoints } from '../lib/scene';
import type { Scene } from '../lib/scene';
import { framePlan, planTiles, tileImage, tilePointMap } from '../lib/tiling';
import type { TilePlan } from '../lib/tiling';
import { writeTinyModel } from '../lib/tinymodel';
import { toNdArray } from '../lib/tensor';
import type { NdArray } from '../lib/tensor';

const CABINET = path.resolve(__dirname, '..', 'examples', 'data', 'tum_fr3_cabinet', 'scene.json');
// The annotated cuboid of the cabinet (examples/data/tum_fr3_cabinet, world z-up, metres).
const CUBOID = { center: [-1.52988, 0.456476, 0.281575], size: [0.792636, 0.445484, 0.545418], yaw: 3.10232 };
const BOX = [200, 150, 420, 330]; // a 2D box on a 640x480 frame (x0, y0, x1, y1)

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-ask-'));
const FULL = path.join(TMP, 'full'); // spatial_pe/ + region_extractor/
const LITE = path.join(TMP, 'lite'); // neither: runs as NVILA-Lite

let model: SR3D;
let lite: SR3D;
let liteNotices: string[] = [];
let cabinet: Scene;

beforeAll(async () => {
  await writeTinyModel(FULL, { seed: 7 });
  await writeTinyModel(LITE, { seed: 7, withSpatialPe: false, withRegionExtractor: false });
  model = await SR3D.load(FULL, { device: 'cpu', onNotice: () => undefined });
  lite = await SR3D.load(LITE, { device: 'cpu', onNotice: (m) => liteNotices.push(m) });
  cabinet = await loadScene(CABINET);
});

afterAll(async () => {
  await model?.dispose();
  await lite?.dispose();
  fs.rmSync(TMP, { recursive: true, force: true });
});

// ---- references ------------------------------------------------------------------------

/** Pillow NEAREST source index of each output pixel (in → out pixels): floor of s, s_0 = r/2, s += r. */
function nearestIndex(inp: number, out: number): Int32Array {
  const r = inp / out, idx = new Int32Array(out);
  let s = r / 2;
  for (let x = 0; x < out; x++, s += r) idx[x] = Math.min(Math.floor(s), inp - 1);
  return idx;
}

/** An (H,W) mask resized (nearest) to (outH, outW). */
function resizeMask(mask: Uint8Array, H: number, W: number, outH: number, outW: number): Uint8Array {
  const iy = nearestIndex(H, outH), ix = nearestIndex(W, outW);
  const out = new Uint8Array(outH * outW);
  for (let y = 0; y < outH; y++) for (let x = 0; x < outW; x++) out[y * outW + x] = mask[iy[y] * W + ix[x]] ? 1 : 0;
  return out;
}

/**
 * Area pooling (§A6) in float64: the weight of token (r, c) of a grid is the fraction of its
 * patch×patch pixels inside the mask; out = Σ w f / Σ w. `feature(view, r, c)` gives a token's vector.
 */
function areaPool(views: { mask: Uint8Array; h: number; w: number }[], patch: number, C: number, feature: (v: number, r: number, c: number) => Float32Array): Float64Array {
  const acc = new Float64Array(C);
  let wsum = 0;
  views.forEach((v, vi) => {
    const W = v.w * patch;
    for (let r = 0; r < v.h; r++) for (let c = 0; c < v.w; c++) {
      let n = 0;
      for (let y = 0; y < patch; y++) for (let x = 0; x < patch; x++) n += v.mask[(r * patch + y) * W + c * patch + x];
      if (n === 0) continue;
      const w = n / (patch * patch);
      const f = feature(vi, r, c);
      for (let k = 0; k < C; k++) acc[k] += w * f[k];
      wsum += w;
    }
  });
  for (let k = 0; k < C; k++) acc[k] /= wsum;
  return acc;
}

/** max |a - b| / (max |b| + tiny): one number per comparison, printed on failure. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / (m + 1e-30);
}

function rows(p: Prepared, start: number, n: number): Float32Array {
  const D = p.spliced.embeddings.length / p.spliced.length;
  return p.spliced.embeddings.subarray(start * D, (start + n) * D);
}

/**
 * The vision tokens with the 3D PE of §A4-A5, computed step by step: SigLIP of the tiles, then
 * for every patch with a valid canonical point MLP(sin(point)) added (nothing where none).
 */
async function peFeatures(m: SR3D, images: NdArray<Uint8Array>[], canon: (NdArray<Float32Array> | null)[], plan: TilePlan) {
  const T = plan.tileSize, per = plan.tiles * 3 * T * T;
  const tiles = new Float32Array(images.length * per);
  for (let i = 0; i < images.length; i++) tiles.set((await tileImage(images[i], plan)).data, i * per);
  const feats = await m.engine.encodeTiles({ data: tiles, shape: [images.length * plan.tiles, 3, T, T] });
  const hv = feats.shape[2], perImage = plan.tiles * feats.shape[1];
  let invalidPatches = 0;
  for (let i = 0; i < images.length; i++) {
    if (!canon[i]) continue;
    const pooled = await poolPointsToPatches(await tilePointMap(canon[i]!, plan), { patch: 14 });
    const enc = await sinusoidalEncode(pooled.points, { numFreqs: 16, includeInput: true });
    const width = enc.shape[enc.shape.length - 1];
    for (let r = 0; r < perImage; r++) if (!pooled.valid.data[r]) enc.data.fill(0, r * width, (r + 1) * width);
    const pe = await m.engine.runMlp('spatial_pe', { data: enc.data, shape: [perImage, width] });
    for (let r = 0; r < perImage; r++) {
      if (!pooled.valid.data[r]) { invalidPatches++; continue; }
      for (let c = 0; c < hv; c++) feats.data[(i * perImage + r) * hv + c] += pe.data[r * hv + c];
    }
  }
  return { feats, invalidPatches };
}

/** Canonical point maps (§A3: one transform over all valid points of all the scene's frames) of the frames `fed`. */
async function canonicalOf(scene: Scene, fed: number[]): Promise<NdArray<Float32Array>[]> {
  const world = await sceneWorldPoints(scene);
  const total = world.reduce((a, w) => a + w.data.length, 0);
  const all = new Float32Array(total);
  const offs: number[] = [];
  let o = 0;
  for (const w of world) { offs.push(o); all.set(w.data, o); o += w.data.length; }
  const c = await canonicalize(toNdArray(all, [total / 3, 3]));
  return fed.map((f) => toNdArray(c.points.data.subarray(offs[f], offs[f] + world[f].data.length), world[f].shape));
}

// ---- single view: NVILA dynamic tiling ----------------------------------------------------------

describe('single view, tiled (640x480 → 4x3 + thumbnail)', () => {
  let frame0: Scene;
  let prep: Prepared;
  beforeAll(async () => {
    // Frame 0 of the cabinet with a 100x100 hole in its depth, so some patches have no valid point.
    const f = cabinet.frames[0];
    const depth = Uint16Array.from(f.depth!.data as Uint16Array);
    for (let y = 0; y < 100; y++) depth.fill(0, y * 640, y * 640 + 100);
    frame0 = sceneFromFrames([{ image: f.image, depth: toNdArray(depth, [480, 640]), depthScale: f.depthScale, intrinsics: f.intrinsics, pose: f.pose }]);
    prep = await model.prepare({ scene: frame0, regions: [{ frame: 0, box: BOX }], question: 'What is <region0> made of?' });
  });

  it('tiles as NVILA (13 tiles) and splices 121+1 rows per tile (§5.3)', () => {
    expect(prep.details.mode).toBe('tiles');
    expect(prep.details.plan).toMatchObject({ cols: 4, rows: 3, tiles: 13, thumbnail: true });
    expect(prep.details.images).toBe(13);
    expect(prep.details.spatialPe).toBe(true);
    expect(prep.prompt.imagePositions).toHaveLength(13);
    // "<image>\n" per tile: each image token is followed by the literal "\n" text token (198).
    for (const p of prep.prompt.imagePositions) expect(prep.prompt.ids[p + 1]).toBe(198);
    expect(prep.spliced.length).toBe(prep.prompt.ids.length - 13 + 13 * (121 + 1));
    expect(prep.details.promptLength).toBe(prep.spliced.length);
    expect(prep.prompt.regionPositions).toHaveLength(1);
    expect(prep.prompt.ids[prep.prompt.regionPositions[0]]).toBe(model.tokenizer.regionTokenId);
  });

  it('image rows are the projector output of SigLIP + 3D PE (zero PE where a patch has no valid point), then the "\\n" row', async () => {
    const plan = planTiles(640, 480);
    const [canon] = await canonicalOf(frame0, [0]);
    const { feats, invalidPatches } = await peFeatures(model, [frame0.frames[0].image], [canon], plan);
    expect(invalidPatches).toBeGreaterThan(30); // the hole: ≥ 7x7 patches of a tile, plus the thumbnail's
    const projected = await model.engine.project(feats);
    const nl = (await model.engine.embedTokens([198])).data;
    const D = projected.shape[2];
    prep.spliced.layout.imageRanges.forEach(([a, b], k) => {
      expect(b - a).toBe(122);
      const err = relErr(rows(prep, a, 121), projected.data.subarray(k * 121 * D, (k + 1) * 121 * D));
      if (err > 1e-5) throw new Error(`tile ${k}: image rows differ from the reference by ${err} (relative)`);
      expect(Array.from(rows(prep, a + 121, 1))).toEqual(Array.from(nl));
    });
  });

  it('the <mask> row is the region projector of an area pooling over the stitched grid tiles (thumbnail excluded)', async () => {
    const plan = planTiles(640, 480);
    const [canon] = await canonicalOf(frame0, [0]);
    const { feats } = await peFeatures(model, [frame0.frames[0].image], [canon], plan);
    const hv = feats.shape[2];
    const box = new Uint8Array(480 * 640);
    for (let y = BOX[1]; y < BOX[3]; y++) box.fill(1, y * 640 + BOX[0], y * 640 + BOX[2]);
    const mask = resizeMask(box, 480, 640, 3 * 448, 4 * 448);
    const pooled = areaPool([{ mask, h: 3 * 32, w: 4 * 32 }], 14, hv, (_v, r, c) => {
      const k = Math.floor(r / 32) * 4 + Math.floor(c / 32), t = (r % 32) * 32 + (c % 32);
      return feats.data.subarray((k * 1024 + t) * hv, (k * 1024 + t + 1) * hv);
    });
    const want = await model.engine.runMlp('region', { data: Float32Array.from(pooled), shape: [1, hv] });
    const at = prep.spliced.layout.regionPositions[0];
    expect(at).toBe(prep.prompt.regionPositions[0] - 13 + 13 * 122); // after all image blocks
    const err = relErr(rows(prep, at, 1), want.data);
    if (err > 1e-5) throw new Error(`region row differs from the reference by ${err} (relative)`);
    expect(prep.regionEmbeddings).not.toBeNull();
  });

  it('text rows are the token embeddings of the prompt', async () => {
    const emb = await model.engine.embedTokens(prep.prompt.ids);
    const D = emb.shape[1];
    let row = 0;
    const img = new Set(prep.prompt.imagePositions), reg = new Set(prep.prompt.regionPositions);
    prep.prompt.ids.forEach((_id, i) => {
      if (img.has(i)) { row += 122; return; }
      if (!reg.has(i)) expect(Array.from(rows(prep, row, 1))).toEqual(Array.from(emb.data.subarray(i * D, (i + 1) * D)));
      row++;
    });
    expect(row).toBe(prep.spliced.length);
  });
});

// ---- multi-view ----------------------------------------------------------------------------

describe('multi-view (4 of the 16 cabinet frames) with a 3D cuboid and a 2D box', () => {
  let prep: Prepared;
  beforeAll(async () => {
    prep = await model.prepare({
      scene: cabinet, maxFrames: 4,
      regions: [{ box3d: CUBOID }, { frame: 5, box: BOX }],
      question: 'Is <region0> taller than <region1>? How far is <region0> from the wall?',
    });
  });

  it('samples round(linspace) frames, one 448² tile each, 121+1 rows per frame', () => {
    expect(prep.details.mode).toBe('frames');
    expect(prep.details.frames).toEqual([0, 5, 10, 15]);
    expect(prep.details.images).toBe(4);
    expect(prep.details.plan).toMatchObject({ cols: 1, rows: 1, tiles: 1, thumbnail: false });
    // "<image>" per frame with no newline text token (§5.3, multi-image).
    for (const p of prep.prompt.imagePositions) expect(prep.prompt.ids[p + 1]).not.toBe(198);
    expect(prep.spliced.length).toBe(prep.prompt.ids.length - 4 + 4 * 122);
    expect(prep.prompt.regionIndices).toEqual([0, 1, 0]);
  });

  it('image rows and region rows match references; the cuboid pools jointly over every fed frame it is on', async () => {
    const fed = [0, 5, 10, 15];
    const plan = framePlan();
    const canon = await canonicalOf(cabinet, fed);
    const { feats } = await peFeatures(model, fed.map((f) => cabinet.frames[f].image), canon, plan);
    const hv = feats.shape[2];
    const projected = await model.engine.project(feats);
    const D = projected.shape[2];
    prep.spliced.layout.imageRanges.forEach(([a], k) => {
      const err = relErr(rows(prep, a, 121), projected.data.subarray(k * 121 * D, (k + 1) * 121 * D));
      if (err > 1e-5) throw new Error(`frame ${fed[k]}: image rows differ from the reference by ${err} (relative)`);
    });

    // The cuboid's masks: the point-in-box test on the world points (rotated into the box frame).
    const world = await sceneWorldPoints(cabinet);
    const [cx, cy, cz] = CUBOID.center, [sx, sy, sz] = CUBOID.size, co = Math.cos(CUBOID.yaw), si = Math.sin(CUBOID.yaw);
    const cuboid = prep.regions[0];
    let onFrames = 0;
    for (const f of fed) {
      const p = world[f].data, m = cuboid.masks[f].data;
      let differ = 0, inside = 0;
      for (let i = 0; i < m.length; i++) {
        const dx = p[3 * i] - cx, dy = p[3 * i + 1] - cy, dz = p[3 * i + 2] - cz;
        const lx = co * dx + si * dy, ly = -si * dx + co * dy;
        const ins = Math.abs(lx) <= sx / 2 && Math.abs(ly) <= sy / 2 && Math.abs(dz) <= sz / 2 ? 1 : 0;
        inside += ins;
        if (ins !== m[i]) differ++;
      }
      expect(differ).toBeLessThanOrEqual(2); // float ties on the faces at most
      if (inside > 0) onFrames++;
    }
    expect(onFrames).toBeGreaterThanOrEqual(2);

    const feature = (v: number, r: number, c: number) => feats.data.subarray((v * 1024 + r * 32 + c) * hv, (v * 1024 + r * 32 + c + 1) * hv);
    const want: Float32Array[] = [];
    for (const reg of prep.regions) {
      const views = fed.map((f) => ({ mask: resizeMask(reg.masks[f].data, 480, 640, 448, 448), h: 32, w: 32 }));
      const pooled = areaPool(views, 14, hv, feature);
      want.push((await model.engine.runMlp('region', { data: Float32Array.from(pooled), shape: [1, hv] })).data);
    }
    // Pooled over one frame only, the cuboid would give another vector (so the pooling is joint).
    const first = fed.findIndex((f) => cuboid.pixels[f] > 0);
    const single = areaPool([{ mask: resizeMask(cuboid.masks[fed[first]].data, 480, 640, 448, 448), h: 32, w: 32 }], 14, hv, (_v, r, c) => feature(first, r, c));
    const singleEmb = (await model.engine.runMlp('region', { data: Float32Array.from(single), shape: [1, hv] })).data;
    expect(relErr(singleEmb, want[0])).toBeGreaterThan(1e-3);

    const pos = prep.spliced.layout.regionPositions;
    expect(pos).toHaveLength(3);
    [0, 1, 0].forEach((k, i) => {
      const err = relErr(rows(prep, pos[i], 1), want[k]);
      if (err > 1e-5) throw new Error(`region occurrence ${i} (region ${k}) differs from the reference by ${err} (relative)`);
    });
  });
});

// ---- 3D PE, notices, notes ---------------------------------------------------------------------

describe('3D PE on and off', () => {
  it('the PE changes the vision tokens; without spatial_pe/ the image rows are the plain NVILA projector output', async () => {
    const scene = { frames: cabinet.frames.slice(0, 2) };
    const q = 'Describe the scene.';
    const on = await model.prepare({ scene, question: q });
    const off = await lite.prepare({ scene, question: q });
    expect(on.details.spatialPe).toBe(true);
    expect(off.details.spatialPe).toBe(false);
    expect(off.details.notes.some((n) => /spatial_pe/.test(n))).toBe(true);
    expect(on.spliced.length).toBe(off.spliced.length);
    const [a] = on.spliced.layout.imageRanges[0];
    // Same seed: same vision tower and projector, so only the PE differs.
    expect(relErr(rows(on, a, 121), rows(off, a, 121))).toBeGreaterThan(1e-3);
    const plan = framePlan();
    const tiles = new Float32Array(2 * 3 * 448 * 448);
    for (let i = 0; i < 2; i++) tiles.set((await tileImage(scene.frames[i].image, plan)).data, i * 3 * 448 * 448);
    const projected = await lite.engine.project(await lite.engine.encodeTiles({ data: tiles, shape: [2, 3, 448, 448] }));
    const D = projected.shape[2];
    off.spliced.layout.imageRanges.forEach(([s], k) => {
      expect(relErr(rows(off, s, 121), projected.data.subarray(k * 121 * D, (k + 1) * 121 * D))).toBeLessThan(1e-6);
    });
  });

  it('a checkpoint without spatial_pe/ says so once (per load, and once per process by default)', async () => {
    expect(liteNotices.filter((m) => /spatial_pe/.test(m))).toHaveLength(1);
    expect(liteNotices.filter((m) => /region_extractor/.test(m))).toHaveLength(1);
    await lite.prepare({ scene: { frames: cabinet.frames.slice(0, 2) }, question: 'Hi' });
    expect(liteNotices).toHaveLength(2); // nothing more per request
    const spy = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const a = await SR3D.load(LITE, { device: 'cpu' });
      const b = await SR3D.load(LITE, { device: 'cpu' });
      await a.dispose();
      await b.dispose();
      const said = spy.mock.calls.filter((c) => /spatial_pe/.test(String(c[0])));
      expect(said).toHaveLength(1);
    } finally {
      spy.mockRestore();
    }
  });

  it('an image without depth runs without the 3D PE and says so in details.notes', async () => {
    const p = await model.prepare({ image: cabinet.frames[3].image, question: 'What is this?' });
    expect(p.details.spatialPe).toBe(false);
    expect(p.details.mode).toBe('tiles');
    expect(p.details.images).toBe(13);
    expect(p.details.notes.filter((n) => /without depth/.test(n))).toHaveLength(1);
    expect(p.scene).toBeNull();
  });
});

// ---- generation ------------------------------------------------------------------------------

describe('scene cache', () => {
  const rowsOf = (p: Prepared, start: number, end: number) => {
    const D = p.spliced.embeddings.length / p.spliced.length;
    return p.spliced.embeddings.subarray(start * D, end * D);
  };
  it('a second request on the same Scene reuses the image side (identical rows, no vision work); cache: false recomputes', async () => {
    const scene = await loadScene(CABINET);
    const first = { scene, maxFrames: 3, regions: [{ box3d: CUBOID }], question: 'How tall is <region0>?' };
    const a = await model.prepare(first);
    const b = await model.prepare({ ...first, regions: [{ frame: 8, box: BOX }, { box3d: CUBOID }], question: 'Is <region0> left of <region1>?' });
    const c = await model.prepare({ ...first, cache: false });
    const d = await model.prepare({ ...first, maxFrames: 2 });
    expect([a.details.cached, b.details.cached, c.details.cached, d.details.cached]).toEqual([false, true, false, false]);
    expect([b.timings.tiling, b.timings.vision, b.timings.projector]).toEqual([0, 0, 0]);
    expect(b.details.frames).toEqual(a.details.frames);
    expect(b.details.spatialPe).toBe(true);
    for (const [x, y] of [[a, b], [a, c]] as const) {
      x.spliced.layout.imageRanges.forEach(([s0, e0], i) => {
        const [s1, e1] = y.spliced.layout.imageRanges[i];
        expect(Array.from(rowsOf(y, s1, e1))).toEqual(Array.from(rowsOf(x, s0, e0)));
      });
    }
    // The cuboid's region row is the same whether it is region0 (a) or region1 (b): pooled from the cached tokens.
    const ra = a.spliced.layout.regionPositions[0], rb = b.spliced.layout.regionPositions[1];
    expect(Array.from(rowsOf(b, rb, rb + 1))).toEqual(Array.from(rowsOf(a, ra, ra + 1)));
    // A scene given as a path is loaded anew each time: never cached.
    expect((await model.prepare({ ...first, scene: CABINET })).details.cached).toBe(false);
  });
});

describe('chat: follow-up questions continue the KV cache', () => {
  it('turn 2 equals generating from scratch over prompt + answer + the next user turn', async () => {
    const input = { scene: cabinet, maxFrames: 2, regions: [{ box3d: CUBOID }] };
    const chat = model.chat(input);
    const a = await chat.ask('How tall is <region0>?', { maxNewTokens: 6 });
    const pending = model.engine.pendingToken;
    const b = await chat.ask('  And how wide is <region0>?  ', { maxNewTokens: 6 });
    expect(b.timings.vision).toBe(0);
    expect(b.details.cached).toBe(true);
    expect(chat.history.map((t) => t.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(chat.history[3].content).toBe(b.text);

    // The same context built from scratch, then decoded with a fresh cache.
    const tok = model.tokenizer;
    const prep = await model.prepare({ ...input, question: 'How tall is <region0>?' });
    const imEnd = tok.tokenToId('<|im_end|>')!;
    const turn = `\n<|im_start|>user\nAnd how wide is ${'<mask>'}?<|im_end|>\n<|im_start|>assistant\n`;
    const next = pending === imEnd ? [imEnd, ...tok.encode(turn)] : [...(pending !== null && !tok.stopTokenIds.includes(pending) ? [pending] : []), ...tok.encode('<|im_end|>' + turn)];
    const answerIds = pending !== null && a.tokens.length === 6 ? a.tokens.slice(0, 5) : a.tokens; // the pending token is in `next`
    const D = model.checkpoint.llm.config.hiddenSize;
    const tail = (await model.engine.embedTokens([...answerIds, ...next])).data;
    const maskAt = answerIds.length + next.indexOf(tok.regionTokenId);
    tail.set(prep.regionEmbeddings!.subarray(0, D), maskAt * D);
    const all = new Float32Array(prep.spliced.embeddings.length + tail.length);
    all.set(prep.spliced.embeddings);
    all.set(tail, prep.spliced.embeddings.length);
    const ref: number[] = [];
    for await (const id of model.engine.generate({ data: all, shape: [all.length / D, D] }, { maxNewTokens: 6, stopTokenIds: tok.stopTokenIds })) ref.push(id);
    expect(b.tokens).toEqual(ref);
  });

  it('another request on the model ends the conversation; bad follow-ups are typed errors', async () => {
    const chat = model.chat({ scene: cabinet, maxFrames: 2, regions: [{ box3d: CUBOID }] });
    await expect(chat.ask('')).rejects.toThrow(/non-empty question/);
    await chat.ask('How tall is <region0>?', { maxNewTokens: 2 });
    await expect(chat.ask('Is <region1> bigger?')).rejects.toThrow(/placeholders <region0>\.\.<region0> \(1 region given\)/);
    await expect(chat.ask('What is <image> here?')).rejects.toThrow(/without the model's own token <image>/);
    const ok = await chat.ask('Anything else?', { maxNewTokens: 2 });
    expect(ok.details.cached).toBe(true);
    await model.ask({ scene: cabinet, maxFrames: 2, question: 'Describe the scene.', maxNewTokens: 1 });
    await expect(chat.ask('And now?')).rejects.toThrow(ModelError);
    await expect(chat.ask('And now?')).rejects.toThrow(/another request on the same model has replaced it/);
  });
});

describe('generation', () => {
  it('greedy decoding is deterministic and the streamed pieces make the text', async () => {
    const input = { scene: cabinet, maxFrames: 2, regions: [{ box3d: CUBOID }], question: 'How tall is <region0>?', maxNewTokens: 12 };
    const pieces: string[] = [];
    const a = await model.ask({ ...input, onToken: (t) => pieces.push(t) });
    const b = await model.ask(input);
    expect(a.tokens.length).toBeGreaterThan(0);
    expect(a.tokens.length).toBeLessThanOrEqual(12);
    expect(b.tokens).toEqual(a.tokens);
    expect(b.text).toBe(a.text);
    expect(pieces.join('')).toBe(a.text);
    expect(a.text).toBe(model.tokenizer.decode(a.tokens, { skipSpecialTokens: true }));
    for (const k of ['geometry', 'tiling', 'vision', 'projector', 'regions', 'prefill', 'decode', 'total'] as const) {
      expect(a.timings[k]).toBeGreaterThanOrEqual(0);
    }
    expect(a.details.frames).toEqual([0, 15]);
    expect(a.regions[0].id).toBe('region0');
  });

  it('sampling with a seed repeats; an aborted signal ends with no tokens; in-memory frames run as a scene', async () => {
    const frames = cabinet.frames.slice(0, 2).map((f) => ({ image: f.image, depth: f.depth!, depthScale: f.depthScale, intrinsics: f.intrinsics, pose: f.pose }));
    const input = { frames, question: 'What do you see?', maxNewTokens: 6, temperature: 1, seed: 5 };
    const a = await model.ask(input);
    const b = await model.ask(input);
    expect(a.details).toMatchObject({ mode: 'frames', images: 2, frames: [0, 1], spatialPe: true });
    expect(b.tokens).toEqual(a.tokens);
    const stopped = await model.ask({ ...input, signal: AbortSignal.abort() });
    expect(stopped.tokens).toEqual([]);
    expect(stopped.text).toBe('');
    expect(stopped.stopReason).toBe('aborted');
    await expect(model.ask({ ...input, temperature: -1 })).rejects.toThrow(/Expected a finite number >= 0 \(0 = greedy\) for temperature but received -1/);
  });
});

// ---- the request queue (issue 10 item 4) ------------------------------------------------------

describe('request queue: one request at a time per model, in call order', () => {
  const ask = (i: number, extra: Record<string, unknown> = {}) =>
    model.ask({ scene: cabinet, maxFrames: 2, regions: [{ box3d: CUBOID }], question: `How tall is <region0>? (${i})`, maxNewTokens: 3, ...extra });

  it('10 concurrent asks all succeed, finish in call order, with the tokens of sequential asks', async () => {
    const sequential: number[][] = [];
    for (let i = 0; i < 10; i++) sequential.push((await ask(i)).tokens);
    const finished: number[] = [];
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(i).then((r) => { finished.push(i); return r; })));
    expect(finished).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(results.map((r) => r.tokens)).toEqual(sequential);
    for (const r of results) expect(r.stopReason).toBe(r.tokens.length === 3 ? 'length' : 'stop');
  });

  it('aborting a queued request drops it (RequestAbortedError, never runs); the others run in order', async () => {
    const ctl = new AbortController();
    const started: number[] = [];
    const onProgress = (i: number) => (stage: string) => { if (stage === 'geometry') started.push(i); };
    const first = ask(0, { onProgress: onProgress(0) });
    const dropped = ask(1, { onProgress: onProgress(1), signal: ctl.signal }).catch((e) => e);
    const last = ask(2, { onProgress: onProgress(2) });
    ctl.abort();
    const e = await dropped;
    expect(e).toBeInstanceOf(RequestAbortedError);
    expect(e.name).toBe('AbortError');
    expect(e.code).toBe('SR3D_ABORTED');
    await Promise.all([first, last]);
    expect(started).toEqual([0, 2]);
    // A signal that is already aborted drops a request that would wait, too.
    const running = ask(3);
    const pre = await ask(4, { signal: AbortSignal.abort() }).catch((x) => x);
    expect(pre).toBeInstanceOf(RequestAbortedError);
    await running;
  });

  it('aborting mid-decode resolves with the tokens so far and stopReason \'aborted\'', async () => {
    const full = await ask(0, { maxNewTokens: 6 });
    expect(full.tokens.length).toBeGreaterThanOrEqual(2); // the tiny model does not stop at once on this prompt
    const ctl = new AbortController();
    // onProgress('decode') comes with the first token: the abort lands before the second step.
    const r = await ask(0, { maxNewTokens: 6, signal: ctl.signal, onProgress: (stage: string) => { if (stage === 'decode') ctl.abort(); } });
    expect(r.stopReason).toBe('aborted');
    expect(r.tokens).toEqual(full.tokens.slice(0, 1));
    expect(full.stopReason).toBe(full.tokens.length === 6 ? 'length' : 'stop');
  });

  it('a full queue rejects with RequestQueueFullError; a chat question queues like an ask', async () => {
    const small = await SR3D.load(FULL, { device: 'cpu', maxQueuedRequests: 1, onNotice: () => undefined });
    try {
      const q = (i: number) => small.ask({ scene: cabinet, maxFrames: 2, question: `Hi ${i}`, maxNewTokens: 2 });
      const running = q(0), waiting = q(1);
      const full = await q(2).catch((x) => x);
      expect(full).toBeInstanceOf(RequestQueueFullError);
      expect(full.message).toMatch(/at most 1 requests waiting on this model \(maxQueuedRequests\).*Fix:/);
      await Promise.all([running, waiting]);
      // The chat's first turn and an ask made right after it both run, in that order; the ask
      // then owns the KV cache, so the chat's next question is a ModelError every time.
      const chat = small.chat({ scene: cabinet, maxFrames: 2 });
      const order: string[] = [];
      await Promise.all([chat.ask('Hi').then(() => order.push('chat')), q(3).then(() => order.push('ask'))]);
      expect(order).toEqual(['chat', 'ask']);
      await expect(chat.ask('And then?')).rejects.toBeInstanceOf(ModelError);
    } finally {
      await small.dispose();
    }
    await expect(SR3D.load(FULL, { device: 'cpu', maxQueuedRequests: -1 })).rejects.toThrow(/Expected a non-negative integer for maxQueuedRequests but received -1/);
  });

  it('RequestQueue: FIFO handover, an abort drops only the waiting request', async () => {
    const queue = new RequestQueue(2);
    const log: string[] = [];
    let release!: () => void;
    const a = queue.run(() => new Promise<void>((r) => { log.push('a'); release = r; }));
    const ctl = new AbortController();
    const b = queue.run(async () => { log.push('b'); }, ctl.signal).catch((e) => (e as Error).name);
    const c = queue.run(async () => { log.push('c'); });
    await expect(queue.run(async () => undefined)).rejects.toBeInstanceOf(RequestQueueFullError);
    ctl.abort();
    expect(await b).toBe('AbortError');
    release();
    await Promise.all([a, c]);
    expect(log).toEqual(['a', 'c']);
    // An idle queue runs at once, and a failing request hands the slot on.
    await expect(queue.run(async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    await expect(queue.run(async () => 7)).resolves.toBe(7);
  });

  it('await using disposes the model (and its engine) at the end of the scope', async () => {
    let kept: SR3D;
    {
      await using m = await SR3D.load(FULL, { device: 'cpu', onNotice: () => undefined });
      kept = m;
      expect(m.engine.info().device).toBe('cpu');
    }
    expect(() => kept.engine.info()).toThrow(EngineDisposedError);
  });
});

// ---- errors ----------------------------------------------------------------------------------

describe('errors', () => {
  it('region prompts on a checkpoint without region_extractor/ are a ModelError saying so', async () => {
    const e = await lite.prepare({ scene: cabinet, regions: [{ box3d: CUBOID }], question: 'How tall is <region0>?' }).catch((x) => x);
    expect(e).toBeInstanceOf(ModelError);
    expect(e.message).toMatch(/no region_extractor\//);
    expect(e.message).toMatch(/Fix:/);
  });

  it('<region1> named with one region given, and a region given but never named', async () => {
    const named = await model.prepare({ scene: cabinet, regions: [{ box3d: CUBOID }], question: 'Is <region0> left of <region1>?' }).catch((x) => x);
    expect(named).toBeInstanceOf(InvalidArgumentError);
    expect(named.message).toMatch(/<region1>/);
    const unnamed = await model.prepare({ scene: cabinet, regions: [{ box3d: CUBOID }], question: 'How tall is it?' }).catch((x) => x);
    expect(unnamed).toBeInstanceOf(InvalidArgumentError);
    expect(unnamed.message).toMatch(/never names <region0>/);
  });

  it('too many frames: maxFrames above num_video_frames, and 33 in-memory frames', async () => {
    const e = await model.prepare({ scene: cabinet, maxFrames: 33, question: 'Hi' }).catch((x) => x);
    expect(e).toBeInstanceOf(ModelError);
    expect(e.message).toMatch(/at most 32 frames/);
    const f = cabinet.frames[0];
    const frames = Array.from({ length: 33 }, () => ({ image: f.image, depth: f.depth!, depthScale: f.depthScale, intrinsics: f.intrinsics }));
    const s = await model.prepare({ frames, question: 'Hi' }).catch((x) => x);
    expect(s).toBeInstanceOf(SceneError);
    expect(s.message).toMatch(/at most 32 frames/);
  });

  it('a prompt longer than the context is a ModelError with the numbers and a fix', async () => {
    const small = await SR3D.load(FULL, { device: 'cpu', maxContext: 1024, onNotice: () => undefined });
    try {
      const e = await small.prepare({ image: cabinet.frames[0].image, question: 'What is this?' }).catch((x) => x);
      expect(e).toBeInstanceOf(ModelError);
      expect(e.message).toMatch(/at most 1024 positions/);
      expect(e.message).toMatch(/13 tiles × 122/);
      expect(e.message).toMatch(/Fix:/);
    } finally {
      await small.dispose();
    }
  });

  it('a region only on frames that are not fed, and exactly one input', async () => {
    const e = await model.prepare({ scene: cabinet, maxFrames: 2, regions: [{ frame: 3, box: BOX }], question: 'What is <region0>?' }).catch((x) => x);
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toMatch(/frames fed to the model \(0, 15\)/);
    const both = await model.prepare({ scene: cabinet, image: cabinet.frames[0].image, question: 'Hi' }).catch((x) => x);
    expect(both).toBeInstanceOf(InvalidArgumentError);
    expect(both.message).toMatch(/exactly one of scene, frames or image/);
  });
});
