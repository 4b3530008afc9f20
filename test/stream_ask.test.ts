// The robot loop on a tiny random checkpoint: `ask` on a StreamingScene equals a plain ask on a
// static scene of the same kept frames (tokens, and the spliced embeddings bit for bit) across
// window changes, while the vision tower runs only on frames it has not seen; region frames
// named by stream index / timestamp; the geometry cross-check of metric answers (details.check).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { crossCheck } from '../lib/check';
import { RegionError } from '../lib/errors';
import { measure } from '../lib/measure';
import { answerCheck } from '../lib/pipeline';
import { loadScene, sceneFromFrames } from '../lib/scene';
import type { Scene, SceneFrame } from '../lib/scene';
import { SR3D } from '../lib/sr3d';
import { createStreamingScene } from '../lib/streaming';
import type { StreamingScene } from '../lib/streaming';
import { writeTinyModel } from '../lib/tinymodel';

const CABINET = path.resolve(__dirname, '..', 'examples', 'data', 'tum_fr3_cabinet', 'scene.json');
const CUBOID = { center: [-1.52988, 0.456476, 0.281575], size: [0.792636, 0.445484, 0.545418], yaw: 3.10232 };
const BOX = [200, 150, 420, 330];
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-stream-'));

let model: SR3D;
let cabinet: Scene;
/** Tiles passed to engine.encodeTiles since the last reset. */
let encodedTiles = 0;

beforeAll(async () => {
  await writeTinyModel(TMP, { seed: 7 });
  model = await SR3D.load(TMP, { device: 'cpu', onNotice: () => undefined });
  cabinet = await loadScene(CABINET);
  const enc = model.engine.encodeTiles.bind(model.engine);
  model.engine.encodeTiles = ((tiles: Parameters<typeof enc>[0]) => {
    encodedTiles += tiles.shape[0];
    return enc(tiles);
  }) as typeof enc;
});

afterAll(async () => {
  await model?.dispose();
  fs.rmSync(TMP, { recursive: true, force: true });
});

/** Cabinet frame k as a stream frame (timestamp 100 + k). */
function streamFrame(k: number) {
  const f = cabinet.frames[k];
  return { image: f.image, depth: f.depth, depthScale: f.depthScale, intrinsics: f.intrinsics, pose: f.pose, timestamp: 100 + k } as Parameters<StreamingScene['addFrame']>[0];
}

/** A static scene made of the window's frames (new objects: nothing cached from the stream). */
function staticOf(s: StreamingScene): Scene {
  return sceneFromFrames(s.frames.map(({ frame }: { frame: SceneFrame }) => ({ image: frame.image, depth: frame.depth, depthScale: frame.depthScale, intrinsics: frame.intrinsics, pose: frame.pose })), { up: [0, 0, 1] });
}

async function expectSame(s: StreamingScene, regionsStream: unknown[], regionsStatic: unknown[], question: string) {
  const a = await model.prepare({ scene: s, question, regions: regionsStream as never });
  const b = await model.prepare({ scene: staticOf(s), question, regions: regionsStatic as never });
  expect(a.spliced.length).toBe(b.spliced.length);
  expect(Buffer.from(a.spliced.embeddings.buffer, a.spliced.embeddings.byteOffset, a.spliced.embeddings.byteLength)
    .equals(Buffer.from(b.spliced.embeddings.buffer, b.spliced.embeddings.byteOffset, b.spliced.embeddings.byteLength))).toBe(true);
  expect(a.details.spatialPe).toBe(true);
  return a;
}

describe('ask on a StreamingScene', () => {
  it('equals a plain ask on the same kept frames across window changes; only new frames are encoded', async () => {
    const s = createStreamingScene({ maxFrames: 3, keyframe: 'all', up: [0, 0, 1] });
    for (const k of [0, 1, 2]) s.addFrame(streamFrame(k));
    const q = 'What is <region0>?';
    encodedTiles = 0;
    const first = await model.prepare({ scene: s, question: q, regions: [{ box3d: CUBOID }] });
    expect(encodedTiles).toBe(3);
    expect(first.details.stream).toEqual({ version: 3, frames: [0, 1, 2], encodedFrames: 3 });

    // The same window again: the per-Scene cache answers, nothing is encoded.
    encodedTiles = 0;
    const again = await model.prepare({ scene: s, question: q, regions: [{ box3d: CUBOID }] });
    expect(encodedTiles).toBe(0);
    expect(again.details.cached).toBe(true);
    expect(again.details.stream!.encodedFrames).toBe(0);

    // One new frame (the oldest dropped): one frame through the vision tower, same bits as static.
    s.addFrame(streamFrame(3));
    encodedTiles = 0;
    const next = await model.prepare({ scene: s, question: q, regions: [{ box3d: CUBOID }] });
    expect(encodedTiles).toBe(1);
    expect(next.details.stream).toEqual({ version: 4, frames: [1, 2, 3], encodedFrames: 1 });
    encodedTiles = 0;
    await expectSame(s, [{ box3d: CUBOID }], [{ box3d: CUBOID }], q);
    expect(encodedTiles).toBe(3); // the static scene only (the stream reused everything)

    // Frame 5 joins, frame 1 leaves: a 2D box named by timestamp is the window position on the static scene.
    s.addFrame(streamFrame(5));
    await expectSame(s, [{ frame: { timestamp: 105 }, box: BOX }], [{ frame: 2, box: BOX }], 'Describe <region0>.');

    // Tokens: ask equals a plain ask.
    const r1 = await model.ask({ scene: s, question: 'Describe the scene.', maxNewTokens: 4 });
    const r2 = await model.ask({ scene: staticOf(s), question: 'Describe the scene.', maxNewTokens: 4 });
    expect(r1.tokens).toEqual(r2.tokens);
    expect(r1.tokens.length).toBeGreaterThan(0);
  });

  it('cache: false encodes every frame', async () => {
    const s = createStreamingScene({ maxFrames: 2, keyframe: 'all' });
    s.addFrame(streamFrame(0));
    s.addFrame(streamFrame(4));
    await model.prepare({ scene: s, question: 'Hi.' });
    encodedTiles = 0;
    const p = await model.prepare({ scene: s, question: 'Hi.', cache: false });
    expect(encodedTiles).toBe(2);
    expect(p.details.stream!.encodedFrames).toBe(2);
  });

  it('one kept frame runs the tiled single view, equal to a plain ask', async () => {
    const s = createStreamingScene({ maxFrames: 1, keyframe: 'all', up: [0, 0, 1] });
    s.addFrame(streamFrame(2));
    const a = await expectSame(s, [{ frame: { index: 0 }, box: BOX }], [{ frame: 0, box: BOX }], 'What is <region0>?');
    expect(a.details.mode).toBe('tiles');
  });

  it('region frames by stream index or timestamp; a dropped frame is a RegionError naming the region', async () => {
    const s = createStreamingScene({ maxFrames: 2, keyframe: 'all' });
    for (const k of [0, 1, 2]) s.addFrame(streamFrame(k));
    expect(s.regionSpecs([{ frame: { index: 2 }, box: BOX }, { frame: { timestamp: 101 }, box: BOX }, { frame: 1, box: BOX }]))
      .toEqual([{ frame: 1, box: BOX }, { frame: 0, box: BOX }, { frame: 1, box: BOX }]);
    const err = await model.prepare({ scene: s, question: 'What is <region0> and <region1>?', regions: [{ box3d: CUBOID }, { frame: { index: 0 }, box: BOX }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegionError);
    expect((err as RegionError).region).toBe(1);
    expect((err as Error).message).toMatch(/\(stream frames 1, 2\) for regions\[1\]\.frame but received stream frame 0, which is not in it/);
    expect(() => s.regionSpecs([{ masks: [{ frame: { timestamp: 100 }, mask: 'x.png' }] }])).toThrow(/regions\[0\]\.masks\[0\]\.frame/);
  });

  it('chat accepts a streaming scene', async () => {
    const s = createStreamingScene({ maxFrames: 2, keyframe: 'all' });
    s.addFrame(streamFrame(0));
    s.addFrame(streamFrame(6));
    const chat = model.chat({ scene: s });
    const r = await chat.ask('Describe the scene.', { maxNewTokens: 2 });
    const p = await model.ask({ scene: staticOf(s), question: 'Describe the scene.', maxNewTokens: 2 });
    expect(r.tokens).toEqual(p.tokens);
  });
});

describe('details.check', () => {
  const q = 'How tall is <region0>?';
  it('measures the regions from the request\'s world points, like measure()', async () => {
    const p = await model.prepare({ scene: cabinet, question: q, regions: [{ box3d: CUBOID }] });
    const m = await measure(cabinet, [{ box3d: CUBOID }]);
    expect(p.measured).toEqual(m);
    // The model's text is noise on a tiny model: the helper with stubbed answers.
    const h = m.regions[0].height;
    expect(answerCheck(q, `It is ${(h * 1.1).toFixed(3)} meters tall.`, p.measured)).toEqual(crossCheck(q, `It is ${(h * 1.1).toFixed(3)} meters tall.`, m));
    const off = answerCheck(q, 'About 1.5 meters.', p.measured)!;
    expect(off).toMatchObject({ quantity: 'height', regions: [0], answered: 1.5, measured: h, agrees: false });
    expect(answerCheck(q, `${(h * 100).toFixed(1)} cm`, p.measured)!.agrees).toBe(true);
    expect(answerCheck(q, 'x', undefined)).toBeUndefined();
  });

  it('ask returns details.check for a metric question, never for others or with check: false', async () => {
    const r = await model.ask({ scene: cabinet, question: q, regions: [{ box3d: CUBOID }], maxNewTokens: 3 });
    expect(r.details.check).toEqual(crossCheck(q, r.text, (await measure(cabinet, [{ box3d: CUBOID }])))!);
    expect(r.details.check!.quantity).toBe('height');
    const off = await model.ask({ scene: cabinet, question: q, regions: [{ box3d: CUBOID }], maxNewTokens: 3, check: false });
    expect(off.details.check).toBeUndefined();
    expect(off.text).toBe(r.text);
    const other = await model.ask({ scene: cabinet, question: 'What is <region0>?', regions: [{ box3d: CUBOID }], maxNewTokens: 3 });
    expect(other.details.check).toBeUndefined();
    const p = await model.prepare({ scene: cabinet, question: 'What is <region0>?', regions: [{ box3d: CUBOID }] });
    expect(p.measured).toBeUndefined();
  });
});
