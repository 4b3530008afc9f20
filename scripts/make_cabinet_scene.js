#!/usr/bin/env node
// Writes examples/data/tum_fr3_cabinet/scene.json: the 16 bundled keyframes, each with its
// colour JPEG, 16-bit depth PNG (metres = value / 5000), TUM fr3 colour intrinsics and its
// camera-to-world pose (line NNNN of truth_cam_poses.txt: t qx qy qz qw, OpenCV camera axes,
// quaternion normalized before conversion), in the z-up mocap world frame.
//   node scripts/make_cabinet_scene.js [folder]
'use strict';
const fs = require('fs');
const path = require('path');

const dir = path.resolve(process.argv[2] || path.join(__dirname, '..', 'examples', 'data', 'tum_fr3_cabinet'));
const K = { fx: 535.4, fy: 539.2, cx: 320.1, cy: 247.6 }; // TUM freiburg3 colour camera (README "Intrinsics")
const DEPTH_SCALE = 1 / 5000;

function quatToPose([tx, ty, tz, qx, qy, qz, qw]) {
  const n = Math.hypot(qx, qy, qz, qw);
  const [x, y, z, w] = [qx / n, qy / n, qz / n, qw / n];
  return [
    1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w), tx,
    2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w), ty,
    2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y), tz,
    0, 0, 0, 1,
  ];
}

const ids = fs.readdirSync(path.join(dir, 'depth_imgs')).filter((f) => /^\d{4}_depth_raw\.png$/.test(f)).map((f) => f.slice(0, 4)).sort();
const lines = fs.readFileSync(path.join(dir, 'truth_cam_poses.txt'), 'utf8').split('\n').filter((l) => l.trim() !== '');
const num = (x) => (Object.is(x, -0) ? '0' : String(x));
const frames = ids.map((id) => {
  const cols = lines[Number(id)].trim().split(/\s+/).map(Number); // timestamp tx ty tz qx qy qz qw
  if (cols.length !== 8 || !cols.every(Number.isFinite)) throw new Error(`truth_cam_poses.txt line ${Number(id)}: expected 8 numbers`);
  if (!fs.existsSync(path.join(dir, 'raw_imgs', `${id}_rgb_raw.jpg`))) throw new Error(`raw_imgs/${id}_rgb_raw.jpg is missing`);
  const pose = quatToPose(cols.slice(1));
  return `    { "name": "${id}",\n      "image": "raw_imgs/${id}_rgb_raw.jpg",\n      "depth": "depth_imgs/${id}_depth_raw.png",\n` +
    `      "depthScale": ${num(DEPTH_SCALE)},\n` +
    `      "intrinsics": { "fx": ${K.fx}, "fy": ${K.fy}, "cx": ${K.cx}, "cy": ${K.cy} },\n` +
    `      "pose": [${pose.map(num).join(', ')}] }`;
});
const text = `{\n  "frames": [\n${frames.join(',\n')}\n  ],\n  "up": [0, 0, 1]\n}\n`;
fs.writeFileSync(path.join(dir, 'scene.json'), text);
console.log(`wrote ${path.join(dir, 'scene.json')}: ${frames.length} frames`);
