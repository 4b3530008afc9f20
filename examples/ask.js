#!/usr/bin/env node
// Ask SR-3D about the bundled cabinet scene (16 RGB-D frames, its annotated 3D box as the region).
//   node examples/ask.js [model dir]      (default: $SR3D_MODEL, else a tiny random model in a temp folder)
// With the tiny model the answer is noise, but every stage of the real pipeline runs.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const sr3d = require('..');

(async () => {
  let dir = process.argv[2] || process.env.SR3D_MODEL;
  if (!dir) {
    dir = path.join(os.tmpdir(), 'sr3d-example-tiny-model');
    if (!fs.existsSync(path.join(dir, 'config.json'))) await sr3d.writeTinyModel(dir);
    console.log(`no model given: using a tiny random checkpoint in ${dir}`);
  }
  const model = await sr3d.SR3D.load(dir);
  const scene = await sr3d.loadScene(path.join(__dirname, 'data', 'tum_fr3_cabinet', 'scene.json'));
  const cabinet = { box3d: { center: [-1.52988, 0.456476, 0.281575], size: [0.792636, 0.445484, 0.545418], yaw: 3.10232 } };
  const question = 'How tall is <region0>, in metres?';
  console.log(`Q: ${question}`);
  process.stdout.write('A: ');
  const r = await model.ask({ scene, regions: [cabinet], question, maxNewTokens: 24, onToken: (t) => process.stdout.write(t) });
  console.log(`\n${r.details.images} frames, ${r.details.promptLength} prompt positions, 3D PE ${r.details.spatialPe ? 'on' : 'off'}`);
  console.log(Object.entries(r.timings).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', '));
  const m = await sr3d.measure(scene, [cabinet]);
  console.log(`measured from the depth: height ${m.regions[0].height.toFixed(3)} m, ` +
    `footprint ${m.regions[0].length.toFixed(3)} x ${m.regions[0].width.toFixed(3)} m`);
  await model.dispose();
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
