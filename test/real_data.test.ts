// Real RGB-D data (test/data and examples/data): TUM fr3 cabinet (16 frames, mocap poses, one cuboid)
// and TUM fr1 rpy (12 frames, poses). Checks the geometry against the physical scene.
import * as fs from 'fs';
import * as path from 'path';

import { backproject, canonicalize, scenePoints, toMetric } from '../lib';
import { CABINET_K, RPY_DIR, expectBitEqual, loadCabinet, poseFromTQ, readDepthPng } from './helpers';

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

describe('TUM fr3 cabinet (16 frames, uint16 depth / 5000, camera-to-world poses)', () => {
  const scene = loadCabinet();
  const shape = [scene.F, scene.H, scene.W];
  let points: Float32Array;
  let valid: Uint8Array;

  beforeAll(async () => {
    const r = await backproject({ data: scene.depth, shape }, CABINET_K, { depthScale: 1 / 5000, pose: scene.poses });
    points = r.points.data;
    valid = r.valid.data;
  });

  function toBox(p: ArrayLike<number>, i: number): [number, number, number] {
    const { center, yaw } = scene.box;
    const dx = p[i] - center[0], dy = p[i + 1] - center[1], dz = p[i + 2] - center[2];
    const c = Math.cos(yaw), s = Math.sin(yaw);
    return [c * dx + s * dy, -s * dx + c * dy, dz]; // Rz(yaw)^T (p - c)
  }

  it('cabinet points (inside the cuboid + 10 cm) lie within 3 cm (median) of its surface, in every frame', () => {
    const half = scene.box.half;
    const perFrame: number[] = [];
    const all: number[] = [];
    for (let f = 0; f < scene.F; f++) {
      const d: number[] = [];
      for (let i = f * scene.H * scene.W; i < (f + 1) * scene.H * scene.W; i++) {
        if (!valid[i]) continue;
        const q = toBox(points, 3 * i);
        if (!q.every((v, a) => Math.abs(v) <= half[a] + 0.1)) continue;
        const out = q.map((v, a) => Math.max(Math.abs(v) - half[a], 0));
        const inside = out.every((v) => v === 0);
        d.push(inside ? Math.min(...q.map((v, a) => half[a] - Math.abs(v))) : Math.hypot(...out));
      }
      expect(d.length).toBeGreaterThan(2000); // the cabinet is in view in every kept frame
      perFrame.push(median(d));
      for (const x of d) all.push(x);
    }
    expect(median(all)).toBeLessThan(0.03);
    expect(Math.max(...perFrame)).toBeLessThan(0.03);
  });

  it('the floor sits at z = 0 and nothing is far below it', () => {
    const low: number[] = [];
    let below = 0, n = 0;
    for (let i = 0; i < valid.length; i++) {
      if (!valid[i]) continue;
      n++;
      const z = points[3 * i + 2];
      if (z < -0.1) below++;
      if (z < 0.15) low.push(z);
    }
    expect(low.length / n).toBeGreaterThan(0.2); // a large share of the view is floor
    expect(Math.abs(median(low))).toBeLessThan(0.02);
    expect(below / n).toBeLessThan(0.005);
  });

  it('the fused scene path equals backproject -> canonicalize, and maps back to metres', async () => {
    const fused = await scenePoints({ data: scene.depth, shape }, CABINET_K, { depthScale: 1 / 5000, pose: scene.poses });
    const two = await canonicalize({ data: points, shape: [...shape, 3] });
    expectBitEqual(fused.points.data, two.points.data, 'fused vs two-step');
    expect(fused.center).toEqual(two.center);
    expect(fused.scale[0]).toBeGreaterThan(0.5); // a room-sized scene, metres
    expect(fused.scale[0]).toBeLessThan(5);
    const back = toMetric(fused.points, fused).data;
    let worst = 0;
    for (let i = 0; i < back.length; i++) if (!Number.isNaN(back[i])) worst = Math.max(worst, Math.abs(back[i] - points[i]));
    expect(worst).toBeLessThan(2e-6); // float32 rounding of a few-metre scene
  });
});

describe('TUM fr1 rpy (two views of the same desk)', () => {
  const dir = RPY_DIR;
  const assoc = fs.readFileSync(path.join(dir, 'associations.txt'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/\s+/));
  const gt = new Map(fs.readFileSync(path.join(dir, 'groundtruth_at_rgb_frames.txt'), 'utf8').split('\n')
    .filter((l) => l && !l.startsWith('#')).map((l) => l.split(/\s+/)).map((v) => [v[0], v.slice(1).map(Number)] as const));
  const K = { fx: 525, fy: 525, cx: 319.5, cy: 239.5 };
  // Pairs that look the same way (the rpy camera sweeps widely; some pairs do not overlap).
  const PAIRS = (process.env.SR3D_RPY_PAIRS ?? '2,4;4,5;6,8;9,11').split(';').map((p) => p.split(',').map(Number));

  for (const [a, b] of PAIRS) {
    it(`frames ${a} and ${b}: surfaces agree to a few cm after reprojection`, async () => {
      const frames = [a, b].map((i) => {
        const [rgbTs, , , depthFile] = assoc[i];
        const g = gt.get(rgbTs)!;
        return { depth: readDepthPng(path.join(dir, depthFile)), pose: poseFromTQ(g.slice(0, 3), g.slice(3, 7)) };
      });
      const { width: W, height: H } = frames[0].depth;
      const depth = new Uint16Array(2 * H * W);
      depth.set(frames[0].depth.data, 0);
      depth.set(frames[1].depth.data, H * W);
      const r = await backproject({ data: depth, shape: [2, H, W] }, K, { depthScale: 1 / 5000, pose: frames.map((f) => f.pose) });
      const P = r.points.data;
      // World -> camera b: R^T (p - t).
      const T = frames[1].pose;
      const diffs: number[] = [];
      for (let i = 0; i < H * W; i += 3) {
        if (!r.valid.data[i]) continue;
        const d = [P[3 * i] - T[3], P[3 * i + 1] - T[7], P[3 * i + 2] - T[11]];
        const x = T[0] * d[0] + T[4] * d[1] + T[8] * d[2];
        const y = T[1] * d[0] + T[5] * d[1] + T[9] * d[2];
        const z = T[2] * d[0] + T[6] * d[1] + T[10] * d[2];
        if (z <= 0.1) continue;
        const u = Math.round((x * K.fx) / z + K.cx), v = Math.round((y * K.fy) / z + K.cy);
        if (u < 0 || v < 0 || u >= W || v >= H) continue;
        const zb = frames[1].depth.data[v * W + u] / 5000;
        if (zb > 0) diffs.push(Math.abs(zb - z));
      }
      expect(diffs.length).toBeGreaterThan(10000);
      expect(median(diffs)).toBeLessThan(0.04);
      expect(diffs.filter((d) => d < 0.05).length / diffs.length).toBeGreaterThan(0.6);
    });
  }
});
