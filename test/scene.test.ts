// Scenes: manifest round trip, every manifest error path (broken manifests written to a temp
// folder), the .npy reader/writer, TUM import of the real fr1_rpy folder against its
// independently interpolated poses, the bundled cabinet scene.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { encodeNpy, parseNpy } from '../lib/npy';
import { importCommand } from '../lib/commands/import';
import { associate, importTum, interpolatePose, tumPoseToMatrix } from '../lib/tum';
import { checkManifest, loadScene, saveScene, SCENE_LIMITS, sceneFromFrames, SceneError, sceneWorldPoints } from '../lib/scene';
import type { SceneFrameInput } from '../lib/scene';
import { RPY_DIR } from './helpers';
import { craftedPng } from './crafted';

const CABINET = path.resolve(__dirname, '..', 'examples', 'data', 'tum_fr3_cabinet');
const RPY = RPY_DIR;
const K = { fx: 50, fy: 60, cx: 3.5, cy: 2.5 };

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-scene-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

/** A small frame: 7x5 image with a ramp, uint16 depth, a rotation about z by `a` radians. */
function frame(i: number, a = 0.3 * i, W = 7, H = 5): SceneFrameInput {
  const image = new Uint8Array(W * H * 3).map((_, k) => (k * 7 + i * 13) % 256);
  const depth = new Uint16Array(W * H).map((_, k) => (k % 3 === 0 ? 0 : 1000 + 37 * k + i));
  const c = Math.cos(a), s = Math.sin(a);
  return {
    name: `f${i}`, image: { data: image, shape: [H, W, 3] }, depth: { data: depth, shape: [H, W] }, depthScale: 0.001,
    intrinsics: K, pose: [c, -s, 0, 0.1 * i, s, c, 0, -0.2, 0, 0, 1, 1.5, 0, 0, 0, 1],
  };
}

/** Writes a folder with `files` (name -> bytes) and a manifest; returns the manifest path. */
function writeCase(name: string, manifest: unknown, files: Record<string, Buffer> = {}): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const [f, b] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), b);
  }
  const p = path.join(dir, 'scene.json');
  fs.writeFileSync(p, typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
  return p;
}

async function expectSceneError(p: Promise<unknown> | (() => unknown), frame: number | null, ...parts: (string | RegExp)[]) {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SceneError);
  const e = err as SceneError;
  expect(e.frame).toBe(frame);
  expect(e.message).toMatch(/Fix: /);
  for (const s of parts) expect(e.message).toMatch(s);
}

describe('npy', () => {
  test('round trip float32 (H,W,3), uint16 (H,W), uint8 1-D', () => {
    const f = new Float32Array(2 * 3 * 3).map((_, i) => i * 0.25 - 1);
    f[4] = NaN;
    const a = parseNpy(encodeNpy({ data: f, shape: [2, 3, 3] }));
    expect(a.dtype).toBe('float32');
    expect(a.shape).toEqual([2, 3, 3]);
    expect(Array.from(a.data)).toEqual(Array.from(f));
    const u = parseNpy(encodeNpy({ data: Uint16Array.from([0, 1, 65535, 5000]), shape: [2, 2] }));
    expect([u.dtype, u.shape, Array.from(u.data)]).toEqual(['uint16', [2, 2], [0, 1, 65535, 5000]]);
    const b = parseNpy(encodeNpy({ data: Uint8Array.from([9, 8, 7]), shape: [3] }));
    expect([b.dtype, b.shape, Array.from(b.data)]).toEqual(['uint8', [3], [9, 8, 7]]);
  });

  test('header is what numpy writes (64-byte aligned, v1.0)', () => {
    const bytes = encodeNpy({ data: new Float32Array(6), shape: [1, 2, 3] });
    const hlen = bytes.readUInt16LE(8);
    expect((10 + hlen) % 64).toBe(0);
    expect(bytes.subarray(10, 10 + hlen).toString('latin1')).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(1, 2, 3\), \} *\n$/);
    expect(bytes.length).toBe(10 + hlen + 24);
  });

  test('rejects bad magic, big-endian, Fortran order, other dtypes, truncation', () => {
    const good = encodeNpy({ data: new Float32Array(6), shape: [2, 3] });
    expect(() => parseNpy(Buffer.from('not a numpy file'), 'x.npy')).toThrow(/magic/);
    const swap = (from: string, to: string) => Buffer.from(good.toString('latin1').replace(from, to), 'latin1');
    expect(() => parseNpy(swap("'<f4'", "'>f4'"))).toThrow(/dtype '>f4'/);
    expect(() => parseNpy(swap("'<f4'", "'<f8'"))).toThrow(/dtype '<f8'/);
    expect(() => parseNpy(swap('False', 'True '))).toThrow(/C order/);
    expect(() => parseNpy(good.subarray(0, good.length - 1))).toThrow(/24 bytes of data .* but received 23 bytes/);
  });
});

describe('in-memory scenes', () => {
  test('valid frames: shapes, names, normalized up', () => {
    const s = sceneFromFrames([frame(0), frame(1)], { up: [0, 0, 2] });
    expect(s.frames.map((f) => [f.name, f.width, f.height])).toEqual([['f0', 7, 5], ['f1', 7, 5]]);
    expect(s.up).toEqual([0, 0, 1]);
    expect(s.frames[1].depthScale).toBe(0.001);
    expect(s.frames[1].pose![3]).toBeCloseTo(0.1, 12);
  });

  test('errors name the frame and the fix', async () => {
    const sized = frame(1);
    sized.depth = { data: new Uint16Array(6 * 5), shape: [5, 6] };
    await expectSceneError(() => sceneFromFrames([frame(0), sized]), 1, /frames\[1\]\.depth/, /image's size \(7x5\)/, /6x5/);
    const badK = { ...frame(0), intrinsics: { fx: -1, fy: 1, cx: 0, cy: 0 } };
    await expectSceneError(() => sceneFromFrames([badK]), 0, /frames\[0\]\.intrinsics\.fx/, /positive focal length/);
    const scaled = frame(0);
    scaled.pose = [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1];
    await expectSceneError(() => sceneFromFrames([frame(1), scaled]), 1, /rotation/, /frames\[1\]\.pose/, /\|R\^T R - I\| = 3\.00/);
    const mirrored = frame(0);
    mirrored.pose = [-1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    await expectSceneError(() => sceneFromFrames([mirrored]), 0, /det -1\.00/);
    await expectSceneError(() => sceneFromFrames([{ ...frame(0), pose: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1] }]), 0, /last row is 0 0 0 1/);
    await expectSceneError(() => sceneFromFrames([{ ...frame(0), pose: [1, 0, 0] }]), 0, /16 finite numbers/);
    const noScale = frame(0);
    delete noScale.depthScale;
    await expectSceneError(() => sceneFromFrames([noScale]), 0, /depthScale/, /TUM: 1\/5000/);
    await expectSceneError(() => sceneFromFrames([]), null, /at least one frame/);
    await expectSceneError(() => sceneFromFrames([0, 1, 2].map((i) => frame(i)), { maxFrames: 2 }), 2, /at most 2 frames/, /3 frames \(frames\[2\] onward/);
    await expectSceneError(() => sceneFromFrames([frame(0)], { up: [0, 0, 0] }), null, /up/);
    const both = { ...frame(0), points: { data: new Float32Array(7 * 5 * 3), shape: [5, 7, 3] } };
    await expectSceneError(() => sceneFromFrames([both]), 0, /exactly one of depth and points/, /both/);
  });

  test('a near-orthonormal pose (quaternion with 4 decimals) passes, 1e-3 off fails', () => {
    const p = tumPoseToMatrix([0, 0, 0, 0.4871, 0.7673, -0.3519, 0.2239]);
    expect(() => sceneFromFrames([{ ...frame(0), pose: p }])).not.toThrow();
    const skew = [...p];
    skew[0] += 2e-3;
    expect(() => sceneFromFrames([{ ...frame(0), pose: skew }])).toThrow(/R\^T R = I to 0\.001/);
  });
});

describe('manifests on disk', () => {
  test('save -> load round trip (uint16 PNG depth, float32 .npy depth, .npy point map)', async () => {
    const f2 = frame(2);
    const fd = new Float32Array(35).map((_, k) => 0.5 + k / 100);
    f2.depth = { data: fd, shape: [5, 7] };
    delete f2.depthScale;
    const pts = new Float32Array(35 * 3).map((_, k) => (k % 11 === 0 ? NaN : k / 7));
    const f3: SceneFrameInput = { name: 'p3', image: frame(3).image, points: { data: pts, shape: [5, 7, 3] }, intrinsics: K };
    const scene = sceneFromFrames([frame(0), frame(1), f2, f3], { up: [0, 1, 0] });
    const file = path.join(tmp, 'roundtrip', 'scene.json');
    const m = await saveScene(scene, file);
    expect(m.frames.map((f) => f.depth ?? f.points)).toEqual(['depth/0000.png', 'depth/0001.png', 'depth/0002.npy', 'points/0003.npy']);
    const back = await loadScene(path.dirname(file)); // a folder works too
    expect(back.dir).toBe(path.dirname(file));
    expect(back.up).toEqual([0, 1, 0]);
    expect(back.frames.length).toBe(4);
    back.frames.forEach((f, i) => {
      const a = scene.frames[i];
      expect(f.name).toBe(a.name);
      expect(Array.from(f.image.data)).toEqual(Array.from(a.image.data));
      expect(f.intrinsics).toEqual(a.intrinsics);
      expect(f.pose).toEqual(a.pose);
      if (a.depth) {
        expect(f.depth!.data.constructor).toBe(a.depth.data.constructor);
        expect(Array.from(f.depth!.data)).toEqual(Array.from(a.depth.data));
        expect(f.depthScale).toBe(a.depthScale);
      } else {
        expect(Array.from(f.points!.data)).toEqual(Array.from(a.points!.data));
      }
    });
    // World points: depth frames back-projected with their pose; the point-map frame as given.
    const world = await sceneWorldPoints(back);
    const f1 = back.frames[1], k = 8, u = k % 7, v = Math.floor(k / 7);
    const z = (f1.depth!.data[k] as number) * 0.001;
    const x = ((u - K.cx) * z) / K.fx, y = ((v - K.cy) * z) / K.fy;
    const P = f1.pose!;
    expect(world[1].data[3 * k]).toBeCloseTo(P[0] * x + P[1] * y + P[2] * z + P[3], 5);
    expect(world[1].data[3 * k + 2]).toBeCloseTo(z + 1.5, 5);
    expect(Number.isNaN(world[1].data[0])).toBe(true); // depth 0 at k = 0
    expect(world[3].data).toBe(back.frames[3].points!.data);
  });

  const goodFiles = async () => {
    const dir = path.join(tmp, 'roundtrip');
    return {
      'rgb/a.png': fs.readFileSync(path.join(dir, 'rgb', '0000.png')),
      'depth/a.png': fs.readFileSync(path.join(dir, 'depth', '0000.png')),
      'depth/wide.png': fs.readFileSync(path.join(CABINET, 'depth_imgs', '0003_depth_raw.png')),
      'points/p.npy': encodeNpy({ data: new Float32Array(7 * 5 * 3), shape: [5, 7, 3] }),
      'points/bad.npy': encodeNpy({ data: new Float32Array(7 * 5), shape: [5, 7] }),
    };
  };
  const okFrame = { image: 'rgb/a.png', depth: 'depth/a.png', depthScale: 0.001, intrinsics: K };

  test('each manifest error names the frame and the fix', async () => {
    const files = await goodFiles();
    const c = (name: string, m: unknown) => writeCase(name, m, files);
    await expectSceneError(loadScene(c('json', '{ "frames": [ ')), null, /valid JSON/, /invalid JSON/);
    await expectSceneError(loadScene(c('noframes', { frames: [] })), null, /non-empty "frames"/, /no frames/);
    await expectSceneError(loadScene(c('notobject', [1, 2])), null, /a JSON object/);
    await expectSceneError(loadScene(c('many', { frames: Array(33).fill(okFrame) })), 32, /at most 32 frames/, /33 frames/);
    await expectSceneError(loadScene(c('few', { frames: Array(3).fill(okFrame) }), { maxFrames: 2 }), 2, /at most 2 frames/);
    await expectSceneError(loadScene(c('dotdot', { frames: [okFrame, { ...okFrame, depth: '../roundtrip/depth/0000.png' }] })), 1,
      /frames\[1\]\.depth/, /inside the manifest's folder/, /'\.\.\/roundtrip/);
    await expectSceneError(loadScene(c('abs', { frames: [{ ...okFrame, image: path.join(tmp, 'roundtrip', 'rgb', '0000.png') }] })), 0,
      /frames\[0\]\.image/, /inside the manifest's folder/);
    const linkDir = path.join(tmp, 'link');
    const lp = c('link', { frames: [{ ...okFrame, image: 'rgb/link.png' }] });
    fs.symlinkSync(path.join(tmp, 'roundtrip', 'rgb', '0000.png'), path.join(linkDir, 'rgb', 'link.png'));
    await expectSceneError(loadScene(lp), 0, /a symlink to/);
    // An absolute path inside the folder, and a symlink inside it, are fine.
    fs.symlinkSync(path.join(linkDir, 'rgb', 'a.png'), path.join(linkDir, 'rgb', 'inner.png'));
    const inner = c('inner', { frames: [{ ...okFrame, image: path.join(tmp, 'inner', 'rgb', 'a.png') }] });
    expect((await loadScene(inner)).frames[0].width).toBe(7);
    const innerLink = c('link', { frames: [{ ...okFrame, image: 'rgb/inner.png' }] });
    expect((await loadScene(innerLink)).frames[0].name).toBe('inner');
    await expectSceneError(loadScene(c('missing', { frames: [okFrame, okFrame, { ...okFrame, depth: 'depth/nope.png' }] })), 2,
      /an existing file/, /'depth\/nope\.png' \(frame 2/);
    await expectSceneError(loadScene(c('size', { frames: [okFrame, { ...okFrame, depth: 'depth/wide.png' }] })), 1,
      /image's size \(7x5\)/, /640x480/);
    await expectSceneError(loadScene(c('k', { frames: [{ ...okFrame, intrinsics: { fx: 1, fy: 1, cx: 'a', cy: 0 } }] })), 0, /intrinsics\.cx/);
    await expectSceneError(loadScene(c('pose', { frames: [{ ...okFrame, pose: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2] }] })), 0, /last row/);
    await expectSceneError(loadScene(c('posenan', { frames: [{ ...okFrame, pose: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, null, 0, 0, 0, 1] }] })), 0, /16 finite numbers/);
    await expectSceneError(loadScene(c('rot', { frames: [{ ...okFrame, pose: [1, 0.1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] }] })), 0, /rotation/);
    await expectSceneError(loadScene(c('pts', { frames: [{ image: 'rgb/a.png', points: 'points/bad.npy', intrinsics: K }] })), 0, /\(H,W,3\) float32/, /shape \(5, 7\)/);
    await expectSceneError(loadScene(c('neither', { frames: [{ image: 'rgb/a.png', intrinsics: K }] })), 0, /exactly one of "depth" and "points"/);
    await expectSceneError(loadScene(c('up', { frames: [okFrame], up: [0, 0] })), null, /"up" as \[x, y, z\]/);
    await expectSceneError(loadScene(path.join(tmp, 'nothing-here', 'scene.json')), null, /ENOENT/, /sr3d import tum/);
    // a point-map manifest loads
    const pm = await loadScene(c('pointsok', { frames: [{ image: 'rgb/a.png', points: 'points/p.npy', intrinsics: K }] }));
    expect(pm.frames[0].points!.shape).toEqual([5, 7, 3]);
  });

  test('hostile manifests (issue 10): camera numbers that overflow float32, a depth PNG bomb, a pixel limit', async () => {
    const files = await goodFiles();
    const c = (name: string, m: unknown, extra: Record<string, Buffer> = {}) => writeCase(name, m, { ...files, ...extra });
    await expectSceneError(loadScene(c('fx', { frames: [{ ...okFrame, intrinsics: { ...K, fx: 1e300 } }] })), 0,
      /frames\[0\]\.intrinsics\.fx/, /focal length in \[0\.001, 100000000\] pixels/, /1e\+300/);
    await expectSceneError(loadScene(c('fy', { frames: [{ ...okFrame, intrinsics: { ...K, fy: 1e-50 } }] })), 0, /intrinsics\.fy/);
    await expectSceneError(loadScene(c('cx', { frames: [{ ...okFrame, intrinsics: { ...K, cx: -1e30 } }] })), 0, /principal point within ±100000000 pixels/);
    await expectSceneError(loadScene(c('ds', { frames: [{ ...okFrame, depthScale: 1e300 }] })), 0,
      /frames\[0\]\.depthScale/, /finite number in \[1e-12, 1000000\] \(metres per depth unit\)/);
    await expectSceneError(() => sceneFromFrames([{ ...frame(0), depthScale: 1e300 }]), 0, /depthScale/);
    await expectSceneError(() => sceneFromFrames([{ ...frame(0), intrinsics: { ...K, fx: 1e300 } }]), 0, /intrinsics\.fx/);
    // The limits themselves load: bounds are inclusive.
    const edge = await loadScene(c('edge', { frames: [{ ...okFrame, depthScale: SCENE_LIMITS.maxDepthScale, intrinsics: { fx: SCENE_LIMITS.minFocal, fy: SCENE_LIMITS.maxIntrinsic, cx: -SCENE_LIMITS.maxIntrinsic, cy: 0 } }] }));
    expect(edge.frames[0].depthScale).toBe(SCENE_LIMITS.maxDepthScale);
    // A 68-byte depth PNG claiming 30000x30000 (7.2 GB decoded) is refused from its header.
    const t0 = Date.now();
    await expectSceneError(loadScene(c('bomb', { frames: [{ ...okFrame, depth: 'depth/bomb.png' }] }, { 'depth/bomb.png': craftedPng(30000, 30000, 16, 0) })), 0,
      /frames\[0\]\.depth/, /a depth map of the image's size \(7x5\)/, /30000x30000 PNG \(checked before decoding\)/);
    await expectSceneError(loadScene(c('bombrgb', { frames: [{ ...okFrame, image: 'rgb/bomb.png' }] }, { 'rgb/bomb.png': craftedPng(30000, 30000, 8, 2) })), 0,
      /frames\[0\]\.image/, /at most 67108864 pixels/);
    expect(Date.now() - t0).toBeLessThan(3000);
    await expectSceneError(loadScene(c('maxpx', { frames: [okFrame] }), { maxPixels: 34 }), 0, /at most 34 pixels/, /7x5 PNG header/);
    expect((await loadScene(c('maxpx35', { frames: [okFrame] }), { maxPixels: 35 })).frames[0].width).toBe(7);
  });

  test('checkManifest resolves paths without reading images', () => {
    const dir = path.join(tmp, 'roundtrip');
    const { files } = checkManifest({ frames: [{ image: 'rgb/0000.png', depth: 'depth/0000.png', depthScale: 0.001, intrinsics: K }] }, dir);
    expect(files[0].image).toBe(fs.realpathSync(path.join(dir, 'rgb', '0000.png')));
  });
});

// ---- TUM import ----------------------------------------------------------------------

function readGroundtruthAtRgb(): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const line of fs.readFileSync(path.join(RPY, 'groundtruth_at_rgb_frames.txt'), 'utf8').split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const c = line.trim().split(/\s+/);
    m.set(c[0], c.slice(1).map(Number));
  }
  return m;
}

describe('TUM import', () => {
  test('associate matches TUM associate.py (greedy, unique, |dt| < 0.02)', () => {
    expect(associate([0, 1, 1.015, 2, 3], [0.01, 1.01, 2.03, 2.995])).toEqual([[0, 0], [2, 1], [4, 3]]);
  });

  test('interpolation: linear position, slerp, null outside the range', () => {
    const gt = [{ t: 0, p: [0, 0, 0, 0, 0, 0, 1] }, { t: 1, p: [2, 4, 6, 0, 0, Math.sin(0.5), Math.cos(0.5)] }];
    const p = interpolatePose(gt, 0.25)!;
    expect(p.slice(0, 3)).toEqual([0.5, 1, 1.5]);
    expect(p[5]).toBeCloseTo(Math.sin(0.125), 12);
    expect(p[6]).toBeCloseTo(Math.cos(0.125), 12);
    expect(interpolatePose(gt, -0.01)).toBeNull();
    expect(interpolatePose(gt, 1.01)).toBeNull();
  });

  test('tum_fr1_rpy: 12 frames, poses match groundtruth_at_rgb_frames.txt within 1e-3', async () => {
    const r = await importTum(RPY, null);
    expect(r.manifest.frames.length).toBe(12);
    expect(r.intrinsicsSource).toMatch(/fr1/);
    expect(r.dropped).toEqual({ noDepth: 0, outsideGroundtruth: 0, sampled: 0 });
    expect(r.manifest.up).toBeUndefined();
    const want = readGroundtruthAtRgb();
    expect(want.size).toBe(12);
    const assoc = fs.readFileSync(path.join(RPY, 'associations.txt'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/\s+/));
    let worst = 0;
    r.manifest.frames.forEach((f, i) => {
      const ts = f.name!;
      expect(f.image).toBe(`rgb/${ts}.png`);
      expect(f.depth).toBe(assoc[i][3]);
      expect(f.intrinsics).toEqual({ fx: 517.3, fy: 516.5, cx: 318.6, cy: 255.3 });
      expect(f.depthScale).toBe(1 / 5000);
      const M = tumPoseToMatrix(want.get(ts)!);
      f.pose!.forEach((x, k) => { worst = Math.max(worst, Math.abs(x - M[k])); });
    });
    expect(worst).toBeLessThan(1e-3);
  });

  test('stride, maxFrames (even sampling), --intrinsics and --up; writing and loading a copy', async () => {
    const copy = path.join(tmp, 'rgbd_dataset_freiburg1_rpy');
    fs.cpSync(RPY, copy, { recursive: true });
    const r = await importTum(copy, undefined, { stride: 2, maxFrames: 4, up: [0, 0, 1] });
    expect(r.path).toBe(path.join(copy, 'scene.json'));
    expect(r.dropped).toEqual({ noDepth: 0, outsideGroundtruth: 0, sampled: 8 });
    const all = (await importTum(copy, null)).timestamps;
    // stride 2 -> frames 0,2,4,6,8,10; round(linspace(0,5,4)) = 0,2,3,5 -> 0,4,6,10
    expect(r.timestamps).toEqual([all[0], all[4], all[6], all[10]]);
    const scene = await loadScene(r.path!);
    expect(scene.frames.length).toBe(4);
    expect(scene.up).toEqual([0, 0, 1]);
    expect(scene.frames[0].depth!.shape).toEqual([480, 640]);
    await expect(importTum(path.join(tmp, 'no-such-sequence'), null)).rejects.toThrow(/Expected a TUM folder .* but received '.*no-such-sequence' \(no such folder\)\. Fix: pass the folder of a TUM RGB-D sequence/);
    const k = await importTum(copy, null, { intrinsics: { fx: 1, fy: 2, cx: 3, cy: 4 } });
    expect(k.manifest.frames[0].intrinsics).toEqual({ fx: 1, fy: 2, cx: 3, cy: 4 });
    // A manifest in a folder above the TUM folder works (paths go down into it); a sibling folder does not.
    const above = await importTum(copy, path.join(tmp, 'above.json'), { maxFrames: 2 });
    expect(above.manifest.frames[0].image).toBe(`rgbd_dataset_freiburg1_rpy/rgb/${above.manifest.frames[0].name}.png`);
    expect((await loadScene(path.join(tmp, 'above.json'))).frames.length).toBe(2);
    await expectSceneError(importTum(copy, path.join(tmp, 'other', 'scene.json')), null, /--out/, /may not leave its folder/);
  });

  test('sr3d import tum: writes the manifest, reports drops, rejects bad options', async () => {
    const copy = path.join(tmp, 'cli_fr1');
    fs.cpSync(RPY, copy, { recursive: true });
    const out: string[] = [], err: string[] = [];
    const so = jest.spyOn(process.stdout, 'write').mockImplementation((s) => { out.push(String(s)); return true; });
    const se = jest.spyOn(process.stderr, 'write').mockImplementation((s) => { err.push(String(s)); return true; });
    try {
      expect(await importCommand.run(['tum', copy, '--max-frames', '3', '--up=0,0,1', '--intrinsics', '517,516,318,255'])).toBe(0);
      expect(out.join('')).toMatch(/wrote .*cli_fr1\/scene\.json: 3 frames, intrinsics given, up \[0, 0, 1\]\ndropped rgb frames: 9 left out/);
      expect(await importCommand.run(['tum', copy, '--max-frames', 'x'])).toBe(1);
      expect(await importCommand.run(['tum', copy, '--up', '0,1'])).toBe(1);
      expect(await importCommand.run(['tum'])).toBe(1);
      expect(await importCommand.run(['colmap', copy])).toBe(2);
    } finally {
      so.mockRestore();
      se.mockRestore();
    }
    expect(err.join('')).toMatch(/positive integer for --max-frames but received 'x'[^]*3 comma-separated numbers for --up[^]*TUM folder for <dir>[^]*unknown format 'colmap'/);
    const s = await loadScene(path.join(copy, 'scene.json'));
    expect(s.frames.map((f) => f.intrinsics.fx)).toEqual([517, 517, 517]);
  });

  test('frames outside the groundtruth range are dropped and counted; unknown camera needs --intrinsics', async () => {
    const d = path.join(tmp, 'tum_fr2_cut');
    fs.mkdirSync(d);
    for (const f of ['rgb.txt', 'depth.txt']) fs.copyFileSync(path.join(RPY, f), path.join(d, f));
    const gt = fs.readFileSync(path.join(RPY, 'groundtruth.txt'), 'utf8').split('\n');
    // keep samples up to t = 1305031240 (frames 0..4 of the 12 are inside)
    fs.writeFileSync(path.join(d, 'groundtruth.txt'), gt.filter((l) => l.startsWith('#') || (l && Number(l.split(' ')[0]) < 1305031240)).join('\n'));
    const r = await importTum(d, null);
    expect(r.manifest.frames.length).toBe(5);
    expect(r.dropped.outsideGroundtruth).toBe(7);
    expect(r.manifest.frames[0].intrinsics.fx).toBe(520.9);
    const u = path.join(tmp, 'mystery');
    fs.cpSync(d, u, { recursive: true });
    await expectSceneError(importTum(u, null), null, /freiburg1\/2\/3/, /--intrinsics/);
    fs.writeFileSync(path.join(u, 'rgb.txt'), '# x\n1305031231.025653\n');
    await expectSceneError(importTum(u, null, { intrinsics: K }), null, /rgb\.txt line 2/);
  });
});

// ---- the bundled cabinet scene -------------------------------------------------------

describe('bundled cabinet scene', () => {
  test('scene.json loads: 16 frames 640x480, fr3 intrinsics, poses of truth_cam_poses.txt, z up', async () => {
    const s = await loadScene(path.join(CABINET, 'scene.json'));
    expect(s.frames.length).toBe(16);
    expect(s.up).toEqual([0, 0, 1]);
    const lines = fs.readFileSync(path.join(CABINET, 'truth_cam_poses.txt'), 'utf8').trim().split('\n');
    for (const f of s.frames) {
      expect([f.width, f.height, f.depthScale]).toEqual([640, 480, 0.0002]);
      expect(f.intrinsics).toEqual({ fx: 535.4, fy: 539.2, cx: 320.1, cy: 247.6 });
      const c = lines[Number(f.name)].trim().split(/\s+/).map(Number);
      expect(f.pose!.slice(3, 12).filter((_, k) => k % 4 === 0)).toEqual(c.slice(1, 4));
      expect(f.pose).toEqual(tumPoseToMatrix(c.slice(1)));
    }
    expect(s.frames.map((f) => f.name).join(' ')).toBe('0003 0007 0010 0014 0017 0021 0025 0028 0032 0035 0039 0043 0046 0050 0053 0057');
  });
});
