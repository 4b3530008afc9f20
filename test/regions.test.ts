// Region specs: CLI parsing (each syntax and malformed text), question placeholders, and
// resolving specs to per-frame masks on an in-memory scene (checked pixel by pixel against
// hand-built masks and a point-in-box reference) and on the bundled TUM cabinet scene.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';

import { checkRegionPlaceholders, parseRegionArg, RegionError, resolveRegions } from '../lib/regions';
import type { RegionSpec } from '../lib/regions';
import { loadScene, sceneFromFrames, sceneWorldPoints } from '../lib/scene';
import type { Scene } from '../lib/scene';
import { craftedPng } from './crafted';

const CABINET = path.resolve(__dirname, '..', 'examples', 'data', 'tum_fr3_cabinet');
const CUBOID = { center: [-1.52988, 0.456476, 0.281575], size: [2 * 0.396318, 2 * 0.222742, 2 * 0.272709], yaw: 3.10232 };

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-regions-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function expectRegionError(fn: () => unknown, region: number | null, ...parts: (string | RegExp)[]) {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(RegionError);
  expect((err as RegionError).region).toBe(region);
  expect((err as Error).message).toMatch(/^Expected .* for .* but received .*\. Fix: /s);
  for (const p of parts) expect((err as Error).message).toMatch(p);
}

async function expectRegionErrorAsync(p: Promise<unknown>, region: number | null, ...parts: (string | RegExp)[]) {
  let err: unknown;
  try { await p; } catch (e) { err = e; }
  expect(err).toBeInstanceOf(RegionError);
  expect((err as RegionError).region).toBe(region);
  expect((err as Error).message).toMatch(/Fix: /);
  for (const q of parts) expect((err as Error).message).toMatch(q);
}

describe('parseRegionArg', () => {
  test('each syntax', () => {
    expect(parseRegionArg('box3d=-1.5,0.45,0.28,0.79,0.44,0.54,3.1')).toEqual({ box3d: { center: [-1.5, 0.45, 0.28], size: [0.79, 0.44, 0.54], yaw: 3.1 } });
    expect(parseRegionArg('box3d=1,2,3,4,5,6')).toEqual({ box3d: { center: [1, 2, 3], size: [4, 5, 6] } });
    expect(parseRegionArg('frame=3,box=10,20.5,30,40')).toEqual({ frame: 3, box: [10, 20.5, 30, 40] });
    expect(parseRegionArg(' frame=0,mask=masks/a,b.png ')).toEqual({ frame: 0, mask: 'masks/a,b.png' });
    expect(parseRegionArg('frame=12,box=-5,-5,1e2,100')).toEqual({ frame: 12, box: [-5, -5, 100, 100] });
  });

  test('malformed text', () => {
    expectRegionError(() => parseRegionArg(''), null, /--region/);
    expectRegionError(() => parseRegionArg('box=1,2,3,4'), null, /'box=1,2,3,4'/, /frame=N,box=/);
    expectRegionError(() => parseRegionArg('box3d=1,2,3,4,5'), null, /6 or 7 numbers/, /5 numbers/);
    expectRegionError(() => parseRegionArg('box3d=1,2,3,4,5,6,7,8'), null, /8 numbers/);
    expectRegionError(() => parseRegionArg('box3d=1,2,3,0,5,6'), null, /positive sizes/);
    expectRegionError(() => parseRegionArg('box3d=1,2,x,4,5,6'), null, /finite numbers/, /'1,2,x,4,5,6'/);
    expectRegionError(() => parseRegionArg('box3d=1,2,,4,5,6'), null, /finite numbers/);
    expectRegionError(() => parseRegionArg('frame=-1,box=1,2,3,4'), null, /non-negative integer frame index/);
    expectRegionError(() => parseRegionArg('frame=1.5,box=1,2,3,4'), null, /'1\.5'/);
    expectRegionError(() => parseRegionArg('frame=1,box=1,2,3'), null, /4 numbers/, /3 numbers/);
    expectRegionError(() => parseRegionArg('frame=1,box=1,2,3,Infinity'), null, /finite/);
    expectRegionError(() => parseRegionArg('frame=1,mask='), null, /PNG path/);
    expectRegionError(() => parseRegionArg('frame=1,circle=3'), null, /'frame=1,circle=3'/);
  });
});

describe('checkRegionPlaceholders', () => {
  test('order of first occurrence', () => {
    expect(checkRegionPlaceholders('Is <region1> left of <region0>? And <region1>?', 2)).toEqual([1, 0]);
    expect(checkRegionPlaceholders('What is in the room?', 0)).toEqual([]);
  });
  test('a placeholder without a region, a region never named', () => {
    expectRegionError(() => checkRegionPlaceholders('How far is <region0> from <region2>?', 2), 2, /<region2> with no region given/, /only <region0>\.\.<region1> \(2 regions given\)/);
    expectRegionError(() => checkRegionPlaceholders('What is <region0>?', 0), 0, /0 regions given/);
    expectRegionError(() => checkRegionPlaceholders('How tall is <region1>?', 3), 0, /no <region0>, <region2>/, /regions 0, 2/);
  });
});

// ---- resolving -----------------------------------------------------------------------

const W = 9, H = 6;

/** Two point-map frames of a plane z = 1 + 0.1·x (x = column/4, y = row/4), one NaN pixel. */
function pointScene(): Scene {
  const frames = [0, 1].map((f) => {
    const pts = new Float32Array(H * W * 3);
    for (let v = 0; v < H; v++) for (let u = 0; u < W; u++) {
      const i = v * W + u;
      pts.set([u / 4 + f, v / 4, 1 + 0.1 * u], 3 * i);
    }
    pts.fill(NaN, 0, 3); // pixel (0,0) invalid
    return { image: { data: new Uint8Array(H * W * 3), shape: [H, W, 3] }, points: { data: pts, shape: [H, W, 3] }, intrinsics: { fx: 10, fy: 10, cx: 4, cy: 3 } };
  });
  return sceneFromFrames(frames);
}

function writeMaskPng(file: string, w: number, h: number, on: (u: number, v: number) => boolean) {
  const png = new PNG({ width: w, height: h, colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
  const grey = Buffer.alloc(w * h);
  for (let v = 0; v < h; v++) for (let u = 0; u < w; u++) grey[v * w + u] = on(u, v) ? 255 : 0;
  png.data = grey;
  fs.writeFileSync(file, PNG.sync.write(png, { colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false }));
}

const ones = (m: { data: Uint8Array }) => Array.from(m.data).map((x, i) => (x ? i : -1)).filter((i) => i >= 0);

describe('resolveRegions', () => {
  test('2D box, in-memory mask, PNG mask, several frames, 3D box', async () => {
    const scene = pointScene();
    const maskData = new Uint8Array(H * W);
    maskData[5] = 7; maskData[W * 2 + 3] = 1;
    const png = path.join(tmp, 'm.png');
    writeMaskPng(png, W, H, (u, v) => u === 8 && v >= 4);
    const specs: RegionSpec[] = [
      { frame: 1, box: [2.7, 1, 5, 3] },
      { frame: 0, mask: { data: maskData, shape: [H, W] } },
      { masks: [{ frame: 1, mask: png }, { frame: 0, mask: { data: maskData, shape: [H, W] } }] },
      // x in [0.5, 1.0], y in [0, 0.5], z in [0.7, 1.7]
      { box3d: { center: [0.75, 0.25, 1.2], size: [0.5, 0.5, 1] } },
    ];
    const r = await resolveRegions(scene, specs);
    expect(r.map((x) => [x.id, x.kind])).toEqual([['region0', 'box'], ['region1', 'mask'], ['region2', 'mask'], ['region3', 'box3d']]);
    // box: columns trunc(2.7)=2..4, rows 1..2 on frame 1 only
    expect(ones(r[0].masks[0])).toEqual([]);
    expect(ones(r[0].masks[1])).toEqual([W + 2, W + 3, W + 4, 2 * W + 2, 2 * W + 3, 2 * W + 4]);
    expect(r[0].pixels).toEqual([0, 6]);
    expect(r[0].masks[1].shape).toEqual([H, W]);
    expect(ones(r[1].masks[0])).toEqual([5, 2 * W + 3]);
    expect(Math.max(...r[1].masks[0].data)).toBe(1);
    expect(ones(r[2].masks[1])).toEqual([4 * W + 8, 5 * W + 8]);
    expect(r[2].pixels).toEqual([2, 2]);
    // 3D box reference: |x - 0.75| <= 0.25, |y - 0.25| <= 0.25, |z - 1.2| <= 0.5, valid points only
    const want = (f: number) => {
      const out: number[] = [];
      for (let v = 0; v < H; v++) for (let u = 0; u < W; u++) {
        const x = u / 4 + f, y = v / 4;
        if ((u || v) && Math.abs(x - 0.75) <= 0.25 && Math.abs(y - 0.25) <= 0.25) out.push(v * W + u);
      }
      return out;
    };
    expect(ones(r[3].masks[0])).toEqual(want(0));
    expect(ones(r[3].masks[1])).toEqual(want(1));
    expect(r[3].pixels).toEqual([want(0).length, want(1).length]);
    // frame 0: columns 2..4 x rows 0..2; frame 1: column 0, rows 1..2 (row 0 is the NaN pixel)
    expect([want(0).length, want(1).length]).toEqual([9, 2]);
  });

  test('errors: frame out of range, box outside, mask size, empty region, malformed spec', async () => {
    const scene = pointScene();
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 0, box: [0, 0, 2, 2] }, { frame: 2, box: [0, 0, 2, 2] }]), 1,
      /regions\[1\]\.frame/, /0\.\.1/, /this scene has 2/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 0, box: [20, 0, 30, 2] }]), 0, /covering at least one pixel of the 9x6 frame/, /region 0, frame 0/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 0, box: [3, 3, 3, 5] }]), 0, /covering at least one pixel/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 1, mask: { data: new Uint8Array(8 * 6), shape: [6, 8] } }]), 0,
      /frame 1's size \(9x6\)/, /a 8x6 mask/);
    const small = path.join(tmp, 'small.png');
    writeMaskPng(small, 4, 4, () => true);
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 0, box: [0, 0, 1, 1] }, { masks: [{ frame: 0, mask: small }] }]), 1, /a 4x4 mask/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 0, mask: path.join(tmp, 'none.png') }]), 0, /ENOENT/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 0, box: [0, 0, 1, 1] }, { frame: 0, box: [0, 0, 1, 1] }, { frame: 1, mask: { data: new Uint8Array(H * W), shape: [H, W] } }]), 2,
      /region 2 covers no pixel in any frame/, /all zero/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ box3d: { center: [50, 50, 50], size: [1, 1, 1] } }]), 0,
      /region 0 covers no pixel in any frame \(box3d\)/, /world metres/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ box3d: { center: [0, 0, 0], size: [1, -1, 1] } }]), 0, /box3d\.size/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ masks: [{ frame: 0, mask: small }, { frame: 0, mask: small }] }]), 0, /a 4x4 mask/);
    const m = { data: new Uint8Array(H * W).fill(1), shape: [H, W] };
    await expectRegionErrorAsync(resolveRegions(scene, [{ masks: [{ frame: 0, mask: m }, { frame: 0, mask: m }] }]), 0, /each frame at most once/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 0, box: [0, 0, 1] }]), 0, /\[x0, y0, x1, y1\]/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 0 } as unknown as RegionSpec]), 0, /"box", "mask", "masks" or "box3d"/);
  });
});

describe('mask paths are read only as images of the frame\'s size (issue 10)', () => {
  test('a text file is refused without echoing its bytes; a PNG bomb from its header; a FIFO-like path is not read', async () => {
    const scene = pointScene();
    const secret = path.join(tmp, 'passwd');
    fs.writeFileSync(secret, 'root:x:0:0:root:/root:/bin/bash\n');
    const e = await resolveRegions(scene, [parseRegionArg(`frame=0,mask=${secret}`)]).then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(RegionError);
    expect((e as Error).message).toMatch(/regions\[0\]\.mask \(region 0\): Expected a PNG or JPEG image for '.*passwd' but received a 32-byte file that is neither PNG nor JPEG\. Fix: give a PNG mask/);
    expect((e as Error).message).not.toMatch(/root|72 6f 6f 74/);
    const bomb = path.join(tmp, 'bomb.png');
    fs.writeFileSync(bomb, craftedPng(30000, 30000, 8, 0));
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 1, mask: bomb }]), 0, new RegExp(`frame 1's size \\(${W}x${H}\\)`), /a 30000x30000 mask/);
    await expectRegionErrorAsync(resolveRegions(scene, [{ frame: 0, mask: tmp }]), 0, /a regular image file/, /a folder/);
  });
});

describe('the bundled cabinet', () => {
  test('the annotated cuboid resolves to non-empty masks in all 16 frames, equal to the point-in-box test', async () => {
    const scene = await loadScene(path.join(CABINET, 'scene.json'));
    const world = await sceneWorldPoints(scene);
    const [r] = await resolveRegions(scene, [parseRegionArg(`box3d=${[...CUBOID.center, ...CUBOID.size, CUBOID.yaw].join(',')}`)], { worldPoints: world });
    expect(r.masks.length).toBe(16);
    // Independent float64 point-in-box test; pixels within 1e-5 m of a face may differ (float32).
    const c = Math.cos(CUBOID.yaw), s = Math.sin(CUBOID.yaw);
    for (let f = 0; f < 16; f++) {
      const p = world[f].data, m = r.masks[f].data;
      let inside = 0, mismatch = 0;
      for (let i = 0; i < 640 * 480; i++) {
        const dx = p[3 * i] - CUBOID.center[0], dy = p[3 * i + 1] - CUBOID.center[1], dz = p[3 * i + 2] - CUBOID.center[2];
        const lx = c * dx + s * dy, ly = -s * dx + c * dy;
        const d = Math.max(Math.abs(lx) - CUBOID.size[0] / 2, Math.abs(ly) - CUBOID.size[1] / 2, Math.abs(dz) - CUBOID.size[2] / 2);
        const want = d <= 0;
        if (want) inside++;
        if (want !== (m[i] === 1) && Math.abs(d) > 1e-5) mismatch++;
      }
      expect(mismatch).toBe(0);
      // The cabinet is in view in every kept frame (fewest: keyframe 0017, 126 pixels of a side face seen edge-on).
      expect(r.pixels[f]).toBeGreaterThan(100);
      expect(Math.abs(r.pixels[f] - inside)).toBeLessThan(50);
    }
    expect(r.pixels.reduce((a, b) => a + b, 0)).toBeGreaterThan(250000);
    // Without precomputed points the result is the same.
    const again = await resolveRegions(scene, [{ box3d: CUBOID }]);
    expect(again[0].pixels).toEqual(r.pixels);
  });
});
