// measure: voxel merging, convex hull + minimum-area rectangle, kd-tree gap, extents, the
// scene-level measure (synthetic planes with independently computed answers, and the TUM
// cabinet against its annotated cuboid), and the `sr3d measure` command.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { InvalidArgumentError, loadScene, measure, RegionError, sceneFromFrames } from '../lib';
import { main } from '../lib/cli';
import {
  closestDistance, convexHull2d, extentsOf, KdTree3, measurePoints, minAreaRect, voxelGridOf, voxelMerge,
} from '../lib/measure';
import { rng } from './helpers';

const CABINET = path.resolve(__dirname, '..', 'examples', 'data', 'tum_fr3_cabinet', 'scene.json');
// The annotated cuboid (truth_objects.txt: centre, yaw, HALF extents a, b, c).
const BOX = { center: [-1.52988, 0.456476, 0.281575], size: [2 * 0.396318, 2 * 0.222742, 2 * 0.272709], yaw: 3.10232 };

/** Points on the 6 faces of a cuboid (full sizes) rotated by yaw about +z, ~`step` apart. */
function cuboidSurface(size: number[], yaw: number, center: number[], step: number): Float64Array {
  const out: number[] = [];
  const c = Math.cos(yaw), s = Math.sin(yaw);
  const push = (x: number, y: number, z: number) => out.push(c * x - s * y + center[0], s * x + c * y + center[1], z + center[2]);
  const h = size.map((v) => v / 2);
  for (let a = 0; a < 3; a++) {
    const [b, d] = [0, 1, 2].filter((k) => k !== a);
    const nb = Math.round(size[b] / step), nd = Math.round(size[d] / step);
    for (const side of [-1, 1]) {
      for (let i = 0; i <= nb; i++) for (let j = 0; j <= nd; j++) {
        const p = [0, 0, 0];
        p[a] = side * h[a]; p[b] = -h[b] + (i * size[b]) / nb; p[d] = -h[d] + (j * size[d]) / nd;
        push(p[0], p[1], p[2]);
      }
    }
  }
  return Float64Array.from(out);
}

function bruteClosest(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let best = Infinity;
  for (let i = 0; i < a.length; i += 3) for (let j = 0; j < b.length; j += 3) {
    best = Math.min(best, (a[i] - b[j]) ** 2 + (a[i + 1] - b[j + 1]) ** 2 + (a[i + 2] - b[j + 2]) ** 2);
  }
  return Math.sqrt(best);
}

/** Smallest-area bounding rectangle by brute force: every hull edge against every point. */
function bruteMinRect(xy: Float64Array): { area: number; length: number; width: number } {
  const hull = convexHull2d(xy);
  let best = { area: Infinity, length: 0, width: 0 };
  for (let e = 0; e < hull.length; e++) {
    const i = hull[e], j = hull[(e + 1) % hull.length];
    const dx = xy[2 * j] - xy[2 * i], dy = xy[2 * j + 1] - xy[2 * i + 1], n = Math.hypot(dx, dy);
    let lo = Infinity, hi = -Infinity, lo2 = Infinity, hi2 = -Infinity;
    for (let k = 0; k < xy.length / 2; k++) {
      const u = (xy[2 * k] * dx + xy[2 * k + 1] * dy) / n, v = (-xy[2 * k] * dy + xy[2 * k + 1] * dx) / n;
      lo = Math.min(lo, u); hi = Math.max(hi, u); lo2 = Math.min(lo2, v); hi2 = Math.max(hi2, v);
    }
    const a = hi - lo, b = hi2 - lo2;
    if (a * b < best.area) best = { area: a * b, length: Math.max(a, b), width: Math.min(a, b) };
  }
  return best;
}

describe('2D: convex hull and minimum-area rectangle', () => {
  it('hull of a square with interior and edge points is its 4 corners, counter-clockwise', () => {
    const xy = Float64Array.from([0, 0, 2, 0, 2, 2, 0, 2, 1, 1, 1, 0, 0.5, 1.5, 2, 1]);
    const hull = convexHull2d(xy);
    expect(hull.map((i) => [xy[2 * i], xy[2 * i + 1]])).toEqual([[0, 0], [2, 0], [2, 2], [0, 2]]);
  });

  it.each([0, 0.3, 1.2, Math.PI / 2, 2.9])('a 2 x 0.5 rectangle rotated by %f rad, with interior points, gives 2 x 0.5', (theta) => {
    const r = rng(7), pts: number[] = [];
    const c = Math.cos(theta), s = Math.sin(theta);
    const add = (x: number, y: number) => pts.push(c * x - s * y + 3, s * x + c * y - 1);
    for (const [x, y] of [[-1, -0.25], [1, -0.25], [1, 0.25], [-1, 0.25]]) add(x, y);
    for (let i = 0; i < 200; i++) add(2 * r() - 1, 0.5 * r() - 0.25);
    const rect = minAreaRect(Float64Array.from(pts));
    expect(rect.length).toBeCloseTo(2, 9);
    expect(rect.width).toBeCloseTo(0.5, 9);
    expect(Math.abs(rect.u[0] * c + rect.u[1] * s)).toBeCloseTo(1, 9); // long side along the rectangle's x
  });

  it.each([3, 4, 5, 17, 100, 1000])('rotating calipers equal the brute force on %i random points', (n) => {
    const r = rng(n);
    for (let trial = 0; trial < 20; trial++) {
      const xy = new Float64Array(2 * n);
      const sx = 0.1 + 3 * r(), sy = 0.1 + 3 * r();
      for (let i = 0; i < n; i++) { xy[2 * i] = sx * (r() - 0.5); xy[2 * i + 1] = sy * (r() - 0.5) + 0.3 * xy[2 * i]; }
      const got = minAreaRect(xy), want = bruteMinRect(xy);
      // Areas only: several edges may tie (every edge of a right triangle gives the same area).
      expect(got.length * got.width).toBeCloseTo(want.area, 10);
      expect(got.length).toBeGreaterThanOrEqual(got.width);
    }
  });

  it('degenerate inputs: no point, one point, collinear points', () => {
    expect(minAreaRect(new Float64Array(0))).toMatchObject({ length: 0, width: 0 });
    expect(minAreaRect(Float64Array.from([1, 2]))).toMatchObject({ length: 0, width: 0 });
    const line = minAreaRect(Float64Array.from([0, 0, 1, 1, 2, 2, 3, 3]));
    expect(line.length).toBeCloseTo(3 * Math.SQRT2, 12);
    expect(line.width).toBeCloseTo(0, 12);
  });
});

describe('3D: kd-tree, closest distance, voxel merging', () => {
  it.each([[1, 1], [1, 50], [9, 8], [300, 257], [1000, 3]])('closest distance of %i and %i random points equals the brute force', (na, nb) => {
    const r = rng(na * 1000 + nb);
    const a = Float64Array.from({ length: 3 * na }, () => r() * 2);
    const b = Float64Array.from({ length: 3 * nb }, () => r() * 2 + 0.5);
    expect(closestDistance(a, b)).toBeCloseTo(bruteClosest(a, b), 12);
    expect(closestDistance(b, a)).toBeCloseTo(bruteClosest(a, b), 12);
  });

  it('kd-tree nearest equals the brute force for clustered points with duplicates', () => {
    const r = rng(3);
    const pts = Float64Array.from({ length: 3 * 2000 }, (_, i) => (i % 7 === 0 ? 0.5 : Math.round(r() * 20) / 10));
    const tree = new KdTree3(pts);
    for (let q = 0; q < 200; q++) {
      const x = r() * 2, y = r() * 2, z = r() * 2;
      expect(Math.sqrt(tree.nearestSq(x, y, z))).toBeCloseTo(bruteClosest([x, y, z], pts), 12);
    }
  });

  it('voxel merging keeps one mean point per occupied voxel', () => {
    const pts = Float32Array.from([0.001, 0.002, 0.003, 0.009, 0.008, 0.007, 0.011, 0, 0, -0.001, 0, 0]);
    const grid = voxelGridOf([pts], 0.01);
    const m = voxelMerge(pts, grid);
    expect(m.points.length / 3).toBe(3);
    expect(Array.from(m.points.slice(0, 3))).toEqual([0.005, 0.005, 0.005].map((v, a) => (pts[a] + pts[3 + a]) / 2));
    expect(m.points[3]).toBeCloseTo(0.011, 7);
    expect(m.points[6]).toBeCloseTo(-0.001, 7);
    expect(new Set(m.keys).size).toBe(3);
  });
});

describe('extents of one point set', () => {
  const size = [0.8, 0.45, 0.55], center = [1, -2, 0.3];

  it.each([0, 0.4, 2.5])('a cuboid surface (yaw %f) measures its full size along up [0,0,1] with q = 0', (yaw) => {
    const e = extentsOf(cuboidSurface(size, yaw, center, 0.01), [0, 0, 1], 0);
    expect(e.height).toBeCloseTo(0.55, 9);
    expect(e.length).toBeCloseTo(0.8, 9);
    expect(e.width).toBeCloseTo(0.45, 9);
    e.centroid.forEach((v, a) => expect(v).toBeCloseTo(center[a], 9));
  });

  it('up need not be a world axis: a cuboid tilted with its up vector measures the same', () => {
    // Rotate the whole cuboid by 30 degrees about x; up goes with it.
    const p = cuboidSurface(size, 0.4, [0, 0, 0], 0.01);
    const c = Math.cos(Math.PI / 6), s = Math.sin(Math.PI / 6);
    for (let i = 0; i < p.length; i += 3) { const y = p[i + 1], z = p[i + 2]; p[i + 1] = c * y - s * z; p[i + 2] = s * y + c * z; }
    const e = extentsOf(p, [0, -s, c], 0);
    expect(e.height).toBeCloseTo(0.55, 9);
    expect(e.length).toBeCloseTo(0.8, 9);
    expect(e.width).toBeCloseTo(0.45, 9);
  });

  it('without up: principal-axis extents sorted length >= width >= height', () => {
    const e = extentsOf(cuboidSurface([0.3, 1.2, 0.7], 0.9, center, 0.01), null, 0);
    expect(e.length).toBeCloseTo(1.2, 6);
    expect(e.width).toBeCloseTo(0.7, 6);
    expect(e.height).toBeCloseTo(0.3, 6);
  });

  it('the quantile extents ignore 0.3% of far outliers that min/max would take', () => {
    const p = Array.from(cuboidSurface(size, 0.4, center, 0.01));
    const n = p.length / 3, r = rng(11);
    for (let i = 0; i < Math.floor(n * 0.003); i++) p.push(center[0] + 3 * (r() - 0.5), center[1] + 3 * (r() - 0.5), center[2] + 3 * (r() - 0.5));
    const robust = extentsOf(Float64Array.from(p), [0, 0, 1], 0.01);
    const plain = extentsOf(Float64Array.from(p), [0, 0, 1], 0);
    expect(plain.length).toBeGreaterThan(1.2);
    expect(Math.abs(robust.height - 0.55)).toBeLessThan(0.02);
    expect(Math.abs(robust.length - 0.8)).toBeLessThan(0.02);
    expect(Math.abs(robust.width - 0.45)).toBeLessThan(0.02);
  });
});

describe('measurePoints', () => {
  it('two overlapping sets have gap 0; separated ones the exact closest distance', () => {
    const a = cuboidSurface([0.2, 0.2, 0.2], 0, [0, 0, 0], 0.02);
    const b = Float64Array.from([...cuboidSurface([0.2, 0.2, 0.2], 0, [0.1, 0, 0], 0.02), a[30], a[31], a[32]]); // one point of a
    const c = cuboidSurface([0.2, 0.2, 0.2], 0, [0.537, 0.01, 0], 0.02);
    const r = measurePoints([{ points: a }, { points: b }, { points: c }], { up: [0, 0, 1], voxel: 1e-4 });
    expect(r.pairs.map((p) => [p.a, p.b])).toEqual([['region0', 'region1'], ['region0', 'region2'], ['region1', 'region2']]);
    expect(r.pairs[0].gap).toBe(0);
    expect(r.pairs[1].gap).toBeCloseTo(bruteClosest(a, c), 9);
    expect(r.pairs[1].gap).toBeCloseTo(Math.hypot(0.337, 0.01), 9); // x faces at 0.1 and 0.437; samples 1 cm apart in y
    expect(r.pairs[1].centroidDistance).toBeCloseTo(Math.hypot(0.537, 0.01), 9);
    expect(r.axes).toBeUndefined();
  });

  it('rejects bad options and empty regions with typed errors naming them', () => {
    const p = { points: new Float32Array(3) };
    expect(() => measurePoints([p], { voxel: 0 })).toThrow(/Expected a finite positive voxel size \(metres\) for voxel but received 0/);
    expect(() => measurePoints([p], { quantile: 0.3 })).toThrow(/for quantile but received 0.3/);
    expect(() => measurePoints([p], { up: [0, 0, 0] })).toThrow(/for up/);
    expect(() => measurePoints([p, { points: new Float32Array(0) }])).toThrow(/at least one valid 3D point for region1 .*Fix:/);
  });
});

// ---- scenes -----------------------------------------------------------------------------

/** One 64x48 frame, identity pose: a plane at z = 2 (cols 4..23, rows 10..29), one at z = 2.5 (cols 40..59, rows 8..39), background 4 m, a hole of no depth. */
function planesScene() {
  const W = 64, H = 48, K = { fx: 60, fy: 55, cx: 31.5, cy: 23.5 };
  const depth = new Float32Array(W * H).fill(4);
  for (let v = 10; v < 30; v++) for (let u = 4; u < 24; u++) depth[v * W + u] = 2;
  for (let v = 8; v < 40; v++) for (let u = 40; u < 60; u++) depth[v * W + u] = 2.5;
  for (let v = 0; v < 6; v++) for (let u = 0; u < 8; u++) depth[v * W + u] = 0; // no measurement
  const image = new Uint8Array(W * H * 3).fill(128);
  const scene = sceneFromFrames([{ image: { data: image, shape: [H, W, 3] }, depth: { data: depth, shape: [H, W] }, intrinsics: K }], { up: [0, -1, 0] });
  // Independent float64 back-projection of a pixel block.
  const block = (u0: number, u1: number, v0: number, v1: number) => {
    const p: number[] = [];
    for (let v = v0; v < v1; v++) for (let u = u0; u < u1; u++) {
      const z = depth[v * W + u];
      p.push(((u - K.cx) * z) / K.fx, ((v - K.cy) * z) / K.fy, z);
    }
    return p;
  };
  return { scene, W, H, K, block };
}

describe('measure on a scene', () => {
  it('2D boxes on one frame: plane sizes, centroids, centroid distance and gap match an independent back-projection', async () => {
    const { scene, K, block } = planesScene();
    // Boxes strictly inside each plane (x1, y1 exclusive).
    const regions = [{ frame: 0, box: [6, 12, 22, 28] }, { frame: 0, box: [42, 10, 58, 38] }];
    const r = await measure(scene, regions, { voxel: 1e-4, quantile: 0 }); // a voxel per pixel: merged = raw points
    const a = block(6, 22, 12, 28), b = block(42, 58, 10, 38);
    expect(r.units).toBe('m');
    expect(r.regions.map((g) => g.points)).toEqual([16 * 16, 16 * 28]);
    // up = -y (camera y points down): height spans rows, length spans columns, width = depth spread (0).
    expect(r.regions[0].height).toBeCloseTo((15 * 2) / K.fy, 6);
    expect(r.regions[0].length).toBeCloseTo((15 * 2) / K.fx, 6);
    expect(r.regions[0].width).toBeCloseTo(0, 6);
    expect(r.regions[1].height).toBeCloseTo((27 * 2.5) / K.fy, 6);
    expect(r.regions[1].length).toBeCloseTo((15 * 2.5) / K.fx, 6);
    const mean = (p: number[]) => [0, 1, 2].map((k) => p.filter((_, i) => i % 3 === k).reduce((s, x) => s + x, 0) / (p.length / 3));
    const ca = mean(a), cb = mean(b);
    r.regions[0].centroid.forEach((v, k) => expect(v).toBeCloseTo(ca[k], 6));
    expect(r.pairs).toHaveLength(1);
    expect(r.pairs[0].centroidDistance).toBeCloseTo(Math.hypot(ca[0] - cb[0], ca[1] - cb[1], ca[2] - cb[2]), 6);
    expect(r.pairs[0].gap).toBeCloseTo(bruteClosest(a, b), 6);
    expect(r.regions[0].coverage).toEqual([(16 * 16) / (64 * 48)]);
    // With the default 1 cm voxels the answers move by at most about a voxel.
    const d = await measure(scene, regions);
    expect(Math.abs(d.pairs[0].gap - r.pairs[0].gap)).toBeLessThan(0.015);
    expect(Math.abs(d.regions[1].height - r.regions[1].height)).toBeLessThan(0.03);
  });

  it('without up: principal axes, said in the result', async () => {
    const { scene } = planesScene();
    const r = await measure(scene, [{ frame: 0, box: [6, 12, 22, 28] }], { up: null, quantile: 0, voxel: 1e-4 });
    expect(r.axes).toBe('principal-axes');
    expect(r.regions[0].length).toBeCloseTo((15 * 2) / 55, 6); // rows: 15 px * 2 m / fy
    expect(r.regions[0].width).toBeCloseTo((15 * 2) / 60, 6); // columns: / fx
    expect(r.regions[0].height).toBeCloseTo(0, 6);
  });

  it('a region whose pixels all lack depth is a RegionError naming it and the fix', async () => {
    const { scene } = planesScene();
    const p = measure(scene, [{ frame: 0, box: [6, 12, 22, 28] }, { frame: 0, box: [0, 0, 8, 6] }]);
    await expect(p).rejects.toThrow(RegionError);
    await expect(p).rejects.toThrow(/Expected at least one valid 3D point for region1 but received none: its mask pixels \(frame 0: 48\) all lack valid depth\. Fix: /);
    await expect(measure(scene, [])).rejects.toThrow(/at least one region/);
    await expect(measure(scene, [{ frame: 0, box: [6, 12, 22, 28] }], { voxel: -1 })).rejects.toThrow(InvalidArgumentError);
  });
});

describe('TUM fr3 cabinet (bundled example) against its annotated cuboid', () => {
  it('box3d region: height, length, width within 3, 5, 5 cm of 0.545, 0.793, 0.445 m', async () => {
    const scene = await loadScene(CABINET);
    const r = await measure(scene, [{ box3d: BOX }]);
    const g = r.regions[0];
    expect(r.axes).toBeUndefined(); // the manifest gives up = [0, 0, 1]
    expect(Math.abs(g.height - 0.545418)).toBeLessThan(0.03);
    expect(Math.abs(g.length - 0.792636)).toBeLessThan(0.05);
    expect(Math.abs(g.width - 0.445484)).toBeLessThan(0.05);
    // The visible surfaces (top and sides, no bottom) pull the centroid up from the box centre.
    expect(Math.hypot(g.centroid[0] - BOX.center[0], g.centroid[1] - BOX.center[1])).toBeLessThan(0.1);
    expect(g.centroid[2]).toBeGreaterThan(BOX.center[2]);
    expect(g.coverage).toHaveLength(scene.frames.length);
    expect(g.coverage.every((c) => c > 0 && c < 0.2)).toBe(true); // seen in every frame (frame 4 barely: ~130 px)
    expect(g.points).toBeGreaterThan(10000); // ~1.7 m² of surface at 1 cm voxels
  });
});

describe('sr3d measure', () => {
  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '', err = '';
    const o = jest.spyOn(process.stdout, 'write').mockImplementation((s) => { out += String(s); return true; });
    const e = jest.spyOn(process.stderr, 'write').mockImplementation((s) => { err += String(s); return true; });
    try {
      const code = await main(['measure', ...args]);
      return { code, out, err };
    } finally {
      o.mockRestore();
      e.mockRestore();
    }
  }
  const box3d = `box3d=${[...BOX.center, ...BOX.size, BOX.yaw].join(',')}`;

  it('--json prints exactly { units, regions: [{ id, points, height, length, width, centroid, coverage }], pairs }', async () => {
    const { code, out, err } = await cli([CABINET, '--region', box3d, '--region', 'frame=3,box=200,150,400,300', '--json']);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out.endsWith('\n')).toBe(true);
    const j = JSON.parse(out);
    expect(Object.keys(j)).toEqual(['units', 'regions', 'pairs']);
    expect(j.units).toBe('m');
    expect(j.regions.map((g: { id: string }) => g.id)).toEqual(['region0', 'region1']);
    for (const g of j.regions) {
      expect(Object.keys(g)).toEqual(['id', 'points', 'height', 'length', 'width', 'centroid', 'coverage']);
      expect(g.coverage).toHaveLength(16);
    }
    expect(Math.abs(j.regions[0].height - 0.545)).toBeLessThan(0.03);
    expect(j.regions[1].coverage.filter((c: number) => c > 0)).toHaveLength(1);
    expect(j.pairs).toHaveLength(1);
    expect(Object.keys(j.pairs[0])).toEqual(['a', 'b', 'centroidDistance', 'gap']);
  });

  it('measures scenes of more than 32 frames (the model\'s frame limit does not apply)', async () => {
    // 40 frames: the 16 cabinet frames repeated, in a manifest next to the data.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-measure-40-'));
    const src = path.dirname(CABINET);
    for (const sub of ['raw_imgs', 'depth_imgs']) fs.cpSync(path.join(src, sub), path.join(dir, sub), { recursive: true });
    const m = JSON.parse(fs.readFileSync(CABINET, 'utf8'));
    m.frames = Array.from({ length: 40 }, (_, i) => m.frames[i % 16]);
    const manifest = path.join(dir, 'scene.json');
    fs.writeFileSync(manifest, JSON.stringify(m));
    await expect(loadScene(manifest)).rejects.toThrow(/at most 32 frames/);
    const { code, out, err } = await cli([manifest, '--region', box3d, '--json']);
    expect(err).toBe('');
    expect(code).toBe(0);
    const j = JSON.parse(out);
    expect(j.regions[0].coverage).toHaveLength(40);
    expect(Math.abs(j.regions[0].height - 0.545)).toBeLessThan(0.03);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prints a table by default and writes --overlay', async () => {
    const png = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-measure-')), 'o.png');
    const { code, out } = await cli([CABINET, '--region', box3d]);
    expect(code).toBe(0);
    expect(out).toMatch(/^region\s+points\s+height\s+length\s+width\s+centroid \(x, y, z\)\s+frames\nregion0\s+\d+\s+0\.5\d\d\s+0\.[78]\d\d\s+0\.4\d\d\s+-1\.\d{3}, 0\.\d{3}, 0\.\d{3}\s+16\/16\n/);
    expect(out).toMatch(/height along up \[0, 0, 1\]/);
    // One frame carries the mask: a one-tile overlay (all 16 would be slow under jest's VM).
    const o = await cli([CABINET, '--region', 'frame=3,box=200,150,400,300', '--overlay', png]);
    expect(o.code).toBe(0);
    const bytes = fs.readFileSync(png);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    expect([bytes.readUInt32BE(16), bytes.readUInt32BE(20)]).toEqual([640, 480]); // IHDR width, height
  });

  it.each([
    [[CABINET], /Expected at least one --region but received none/],
    [['--region', 'frame=0,box=1,2,3,4'], /Expected a scene/],
    [[CABINET, '--region', 'box3d=1,2,3'], /Expected 6 or 7 numbers/],
    [[CABINET, '--region', 'frame=0,box=1,2,3,4', '--voxel', '0'], /for --voxel but received '0'/],
    [[CABINET, '--region', 'frame=0,box=1,2,3,4', '--bogus'], /received '--bogus'/],
  ])('usage error %j: one line on stderr, exit code 2', async (args, msg) => {
    const { code, out, err } = await cli(args as string[]);
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err).toMatch(msg);
    expect(err.trimEnd().split('\n')).toHaveLength(1);
  });

  it('a scene or region problem: one line, exit code 1', async () => {
    const r = await cli([CABINET, '--region', 'frame=99,box=1,2,3,4']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^sr3d measure: Expected a frame index in 0\.\.15 .*Fix: /);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    const s = await cli(['/nonexistent/scene.json', '--region', 'frame=0,box=1,2,3,4']);
    expect(s.code).toBe(1);
    expect(s.err).toMatch(/readable scene manifest/);
  });
});
