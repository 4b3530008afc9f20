#!/usr/bin/env node
// The bundled example: the SR-3D preprocessing of a real multi-view RGB-D scene (TUM fr3
// cabinet: 16 frames, mocap poses, one annotated 3D box), end to end on the native kernels:
//   depth + intrinsics + poses -> world points + the scene's canonical transform (one pass)
//   -> per-patch points -> sinusoidal 3D-PE features;
//   RGB frames -> NVILA multi-view tiles (448x448, SigLIP-normalized);
//   the annotated 3D box -> per-frame region masks (occlusion-aware).
//   node examples/scene.js [folder]
'use strict';
const fs = require('fs');
const path = require('path');
const sr3d = require('..');

const dir = process.argv[2] || path.join(__dirname, 'data', 'tum_fr3_cabinet');

/** @param {number[]} tq TUM's tx ty tz qx qy qz qw @returns {number[]} row-major 4x4 camera-to-world */
function quatToPose(tq) {
  const [tx, ty, tz, x, y, z, w] = tq;
  return [
    1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w), tx,
    2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w), ty,
    2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y), tz,
    0, 0, 0, 1,
  ];
}

/** @param {bigint} t0 */
const ms = (t0) => `${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`;

(async () => {
  const ids = fs.readdirSync(path.join(dir, 'depth_imgs')).filter((f) => f.endsWith('.png')).map((f) => f.slice(0, 4)).sort();
  const poseLines = fs.readFileSync(path.join(dir, 'truth_cam_poses.txt'), 'utf8').trim().split('\n');
  const K = { fx: 535.4, fy: 539.2, cx: 320.1, cy: 247.6 };

  let t0 = process.hrtime.bigint();
  const depths = await Promise.all(ids.map((id) => sr3d.readDepth(path.join(dir, 'depth_imgs', `${id}_depth_raw.png`))));
  const images = await Promise.all(ids.map((id) => sr3d.readImage(path.join(dir, 'raw_imgs', `${id}_rgb_raw.jpg`))));
  const [H, W] = depths[0].shape;
  const depth = new Uint16Array(ids.length * H * W);
  depths.forEach((d, i) => depth.set(d.data, i * H * W));
  const poses = ids.map((id) => quatToPose(poseLines[Number(id)].trim().split(/\s+/).slice(1).map(Number)));
  console.log(`read ${ids.length} RGB-D frames ${W}x${H}: ${ms(t0)}`);

  // 1. Geometry: world points + the canonical transform in one pass over the depth.
  t0 = process.hrtime.bigint();
  const scene = await sr3d.scenePoints({ data: depth, shape: [ids.length, H, W] }, K,
    { depthScale: 1 / 5000, pose: poses, output: 'world' });
  console.log(`scenePoints: ${ms(t0)}; ${scene.validCount} valid points; canonical = (world - [${scene.center.map((v) => v.toFixed(3)).join(', ')}]) / ${scene.scale[0].toFixed(3)} m`);

  // 2. Per-patch points (14 px) -> canonical -> sinusoidal features of the 3D PE.
  t0 = process.hrtime.bigint();
  const pooled = await sr3d.poolPointsToPatches(scene.points, { patch: 14 });
  const pe = await sr3d.sinusoidalEncode(sr3d.toCanonical(pooled.points, scene));
  console.log(`patch points ${pooled.points.shape.join('x')} -> PE features ${pe.shape.join('x')}: ${ms(t0)}`);

  // 3. RGB: multi-view frames are stretched to one 448x448 tile each (no tiling).
  t0 = process.hrtime.bigint();
  const tiles = await Promise.all(images.map((im) => sr3d.tileImage(im, sr3d.framePlan())));
  const single = sr3d.planTiles(W, H);
  const tiled = await sr3d.tileImage(images[0], single);
  console.log(`multi-view tiles ${tiles.length}x${tiles[0].shape.slice(1).join('x')}; one frame alone would tile as ` +
    `${single.cols}x${single.rows} + thumbnail = ${tiled.shape[0]} tiles: ${ms(t0)}`);

  // 4. The annotated cabinet (x y z yaw + half extents) -> per-frame masks by point-in-box.
  const [cx, cy, cz, yaw, a, b, h] = fs.readFileSync(path.join(dir, 'truth_objects.txt'), 'utf8').trim().split(/\s+/).map(Number);
  t0 = process.hrtime.bigint();
  const box = { center: [cx, cy, cz], size: [2 * a, 2 * b, 2 * h], yaw };
  const masks = await sr3d.box3dToMasks(scene.points, box, { margin: 0.05 });
  console.log(`cabinet masks (box + 5 cm): ${ms(t0)}; coverage per frame ` +
    masks.coverage.map((v) => `${(100 * v).toFixed(0)}%`).join(' '));

  const info = sr3d.buildInfo();
  console.log(`sr3d ${info.version} on ${info.binary.variant} (${info.cpu.threads} threads, ${info.cpu.simd})`);
})().catch((e) => {
  console.error(`${e.name}: ${e.message}`);
  process.exit(1);
});
