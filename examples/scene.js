#!/usr/bin/env node
// The bundled example: 16 RGB-D frames of the TUM fr3 cabinet scene with mocap poses ->
// one canonical 3D scene (the geometry stage of SR-3D), plus a check against the annotated box.
//   node examples/scene.js [folder]
'use strict';
const fs = require('fs');
const path = require('path');
const sr3d = require('..');

const dir = process.argv[2] || path.join(__dirname, 'data', 'tum_fr3_cabinet');

function quatToPose([tx, ty, tz, x, y, z, w]) {
  return [
    1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w), tx,
    2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w), ty,
    2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y), tz,
    0, 0, 0, 1,
  ];
}

(async () => {
  const files = fs.readdirSync(path.join(dir, 'depth_imgs')).filter((f) => f.endsWith('.png')).sort();
  const poseLines = fs.readFileSync(path.join(dir, 'truth_cam_poses.txt'), 'utf8').trim().split('\n');
  let W = 0, H = 0;
  const frames = await Promise.all(files.map(async (f) => {
    const d = await sr3d.readDepth(path.join(dir, 'depth_imgs', f));
    [H, W] = d.shape;
    const line = poseLines[Number(f.slice(0, 4))].trim().split(/\s+/).map(Number);
    return { depth: d.data, pose: quatToPose(line.slice(1)) };
  }));
  const depth = new Uint16Array(frames.length * H * W);
  frames.forEach((f, i) => depth.set(f.depth, i * H * W));
  const K = { fx: 535.4, fy: 539.2, cx: 320.1, cy: 247.6 };

  const t0 = process.hrtime.bigint();
  const scene = await sr3d.scenePoints({ data: depth, shape: [frames.length, H, W] }, K,
    { depthScale: 1 / 5000, pose: frames.map((f) => f.pose) });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;

  // How many canonical points fall in the annotated cabinet box (converted to canonical units)?
  const [cx, cy, cz, yaw, a, b, c] = fs.readFileSync(path.join(dir, 'truth_objects.txt'), 'utf8').trim().split(/\s+/).map(Number);
  const world = sr3d.toMetric(scene.points, scene).data;
  let inBox = 0;
  for (let i = 0; i < world.length; i += 3) {
    const dx = world[i] - cx, dy = world[i + 1] - cy, dz = world[i + 2] - cz;
    const lx = Math.cos(yaw) * dx + Math.sin(yaw) * dy, ly = -Math.sin(yaw) * dx + Math.cos(yaw) * dy;
    if (Math.abs(lx) <= a + 0.02 && Math.abs(ly) <= b + 0.02 && Math.abs(dz) <= c + 0.02) inBox++;
  }
  const info = sr3d.buildInfo();
  console.log(`sr3d ${info.version} on ${info.binary.variant} (${info.cpu.threads} threads, ${info.cpu.simd})`);
  console.log(`scene: ${frames.length} frames ${W}x${H}, ${scene.validCount} valid points (${(100 * scene.validCount / depth.length).toFixed(1)}%)`);
  console.log(`canonical (${scene.mode}, q=0.01): center [${scene.center.map((v) => v.toFixed(3)).join(', ')}] m, scale ${scene.scale[0].toFixed(3)} m/unit`);
  console.log(`points on the annotated cabinet (box + 2 cm): ${inBox}`);
  console.log(`scenePoints: ${ms.toFixed(1)} ms (includes allocating the ${(scene.points.data.byteLength / 2 ** 20).toFixed(0)} MiB output)`);
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
