#!/usr/bin/env node
// End-to-end timing of `measure` on the bundled TUM cabinet scene (16 frames, 640x480), per
// stage: load (manifest, JPEG + 16-bit PNG decode), points (back-projection to world points),
// masks (the annotated cuboid's point-in-box masks), measure (gather, voxel merge, extents).
// Prints a table of median milliseconds over the runs; no assertions.
//   npm run build:ts && node bench/e2e_measure.js [--runs n] [--json]
'use strict';
const path = require('path');
const { performance } = require('perf_hooks');
const root = path.resolve(__dirname, '..');
const sr3d = require(root);

const argv = process.argv.slice(2);
const runs = Number(argv[argv.indexOf('--runs') + 1]) || (argv.includes('--runs') ? 1 : 5);
const json = argv.includes('--json');
const manifest = path.join(root, 'examples', 'data', 'tum_fr3_cabinet', 'scene.json');
// The annotated cuboid (truth_objects.txt: half extents doubled to full sizes).
const box3d = { center: [-1.52988, 0.456476, 0.281575], size: [0.792636, 0.445484, 0.545418], yaw: 3.10232 };

const { median } = require('./common');

async function once() {
  const t = [performance.now()];
  const scene = await sr3d.loadScene(manifest);
  t.push(performance.now());
  const world = await sr3d.sceneWorldPoints(scene);
  t.push(performance.now());
  const regions = await sr3d.resolveRegions(scene, [{ box3d }], { worldPoints: world });
  t.push(performance.now());
  const result = sr3d.measurePoints(sr3d.gatherRegionPoints(world, regions), { up: scene.up });
  t.push(performance.now());
  return { ms: t.slice(1).map((x, i) => x - t[i]), result, frames: scene.frames.length };
}

(async () => {
  await once(); // warm-up: module loading, JIT, sharp's first JPEG
  const samples = [];
  let last;
  for (let i = 0; i < runs; i++) { last = await once(); samples.push(last.ms); }
  const stages = ['load', 'points', 'masks', 'measure'];
  const rows = stages.map((s, k) => ({ stage: s, medianMs: median(samples.map((m) => m[k])) }));
  rows.push({ stage: 'total', medianMs: median(samples.map((m) => m.reduce((a, b) => a + b, 0))) });
  const g = last.result.regions[0];
  if (json) {
    process.stdout.write(JSON.stringify({ scene: 'tum_fr3_cabinet', frames: last.frames, runs, device: sr3d.buildInfo().binary.variant, rows, region: g }) + '\n');
    return;
  }
  console.log(`measure on tum_fr3_cabinet (${last.frames} frames 640x480, box3d region), ${sr3d.buildInfo().binary.variant} binary, median of ${runs} runs`);
  console.log('stage      median ms');
  for (const r of rows) console.log(`${r.stage.padEnd(10)} ${r.medianMs.toFixed(1).padStart(9)}`);
  console.log(`result: ${g.points} merged points, height ${g.height.toFixed(3)} m, length ${g.length.toFixed(3)} m, width ${g.width.toFixed(3)} m`);
})().catch((e) => { console.error(e); process.exitCode = 1; });
