#!/usr/bin/env node
// The robot loop: replays the bundled cabinet (16 RGB-D frames with poses, in order, with their
// TUM timestamps) as a stream into a StreamingScene and asks about it every N frames, printing
// each ask's timings: the first ask encodes every kept frame; an ask after one new frame runs
// the vision tower on that frame only (the number a robot cares about).
//   node examples/stream.js [model dir] [--every N] [--window K]
//   (model: default $SR3D_MODEL, else a tiny random model in a temp folder; N = 1, K = 8)
// With the tiny model the answers are noise, but every stage of the real pipeline runs.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const sr3d = require('..');

const DATA = path.join(__dirname, 'data', 'tum_fr3_cabinet');

/** @param {string[]} argv */
function parseArgs(argv) {
  const out = { dir: /** @type {string | undefined} */ (undefined), every: 1, window: 8 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--every' || a === '--window') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1 || (a === '--window' && n > 32)) throw new Error(`${a} takes a positive integer${a === '--window' ? ' up to 32' : ''}`);
      if (a === '--every') out.every = n;
      else out.window = n;
    } else {
      out.dir = a;
    }
  }
  return out;
}

/** TUM timestamps of the keyframes: line k of truth_cam_poses.txt is keyframe k (the frame names). */
function timestamps() {
  return fs.readFileSync(path.join(DATA, 'truth_cam_poses.txt'), 'utf8').trim().split('\n').map((l) => Number(l.split('\t')[0]));
}

/** @param {import('..').AskTimings} t */
const ms = (t) => `vision ${t.vision.toFixed(0)} ms, geometry ${t.geometry.toFixed(0)} ms, projector+PE ${t.projector.toFixed(0)} ms, ` +
  `regions ${t.regions.toFixed(0)} ms, prefill ${t.prefill.toFixed(0)} ms, decode ${t.decode.toFixed(0)} ms, total ${t.total.toFixed(0)} ms`;

(async () => {
  const args = parseArgs(process.argv.slice(2));
  let dir = args.dir || process.env.SR3D_MODEL;
  if (!dir) {
    dir = path.join(os.tmpdir(), 'sr3d-example-tiny-model');
    if (!fs.existsSync(path.join(dir, 'config.json'))) await sr3d.writeTinyModel(dir);
    console.log(`no model given: using a tiny random checkpoint in ${dir}`);
  }
  const model = await sr3d.SR3D.load(dir);
  const recorded = await sr3d.loadScene(path.join(DATA, 'scene.json'));
  const times = timestamps();
  const stream = sr3d.createStreamingScene({ maxFrames: args.window, keyframe: { minTranslation: 0.05, minRotationDeg: 5 }, up: recorded.up });
  const cabinet = { box3d: { center: [-1.52988, 0.456476, 0.281575], size: [0.792636, 0.445484, 0.545418], yaw: 3.10232 } };
  const question = 'How tall is <region0>, in metres?';
  console.log(`Q: ${question} (every ${args.every} frame(s), a window of ${args.window} keyframes)`);

  let asks = 0;
  for (let k = 0; k < recorded.frames.length; k++) {
    const f = recorded.frames[k];
    const added = stream.addFrame({
      image: f.image, depth: f.depth, depthScale: f.depthScale, intrinsics: f.intrinsics, pose: f.pose, name: f.name,
      timestamp: times[Number(f.name)],
    });
    const dropped = added.dropped.length ? `, dropped ${added.dropped.join(', ')}` : '';
    console.log(`frame ${added.index} (t=${times[Number(f.name)].toFixed(2)}): ${added.kept ? 'kept' : 'not a keyframe'}${dropped}; window ${stream.frames.length}`);
    if ((k + 1) % args.every !== 0) continue;
    const r = await model.ask({ scene: stream, regions: [cabinet], question, maxNewTokens: 12 });
    const s = r.details.stream;
    const which = asks++ === 0 ? 'first ask' : s && s.encodedFrames === 1 ? 'ask after one new frame' : 'ask';
    console.log(`  ${which}: ${s ? `${s.encodedFrames} of ${s.frames.length} frames encoded` : ''}; ${ms(r.timings)}`);
    console.log(`  A: ${JSON.stringify(r.text)}`);
    if (r.details.check) {
      const w = sr3d.checkWarning(r.details.check);
      console.log(`  check: ${w ? `warning: ${w}` : `agrees with the depth (${r.details.check.measured.toFixed(2)} m)`}`);
    }
  }
  await model.dispose();
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
