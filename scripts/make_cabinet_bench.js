#!/usr/bin/env node
// Writes examples/data/cabinet_bench.jsonl: a small ground-truth benchmark on the bundled TUM
// fr3 cabinet scene, for `sr3d eval examples/data/cabinet_bench.jsonl --model <dir>`.
// Ground truth comes from definitions, not from a model or from our own measurement:
//   - the cabinet is the annotated cuboid (truth_objects.txt; full sizes 0.793 x 0.445 x 0.545 m);
//   - "the floor patch" is a box we define: 0.5 x 0.5 m of floor, 0.1 m high, centred at
//     (-1.53, 1.2, 0.05), beside the cabinet and seen in 13 of the 16 frames;
//   - distances are between the two boxes' centres; "taller" compares the boxes' heights.
// Run `node scripts/make_cabinet_bench.js` to rewrite it (deterministic).
'use strict';
const fs = require('fs');
const path = require('path');

const cabinet = { center: [-1.52988, 0.456476, 0.281575], size: [0.792636, 0.445484, 0.545418], yaw: 3.10232 };
const floor = { center: [-1.53, 1.2, 0.05], size: [0.5, 0.5, 0.1], yaw: 0 };
const spec = (b) => `box3d=${[...b.center, ...b.size, b.yaw].join(',')}`;
const round = (x) => Math.round(x * 1e6) / 1e6;
const centreDistance = Math.hypot(...cabinet.center.map((c, i) => c - floor.center[i]));
const scene = 'tum_fr3_cabinet/scene.json';

const items = [
  { id: 'cabinet-height', regions: [spec(cabinet)], question: 'How tall is <region0>? Answer in meters.', answer: cabinet.size[2], type: 'quantitative' },
  { id: 'cabinet-width', regions: [spec(cabinet)], question: 'How wide is <region0>? Answer in meters.', answer: cabinet.size[1], type: 'quantitative' },
  { id: 'cabinet-length', regions: [spec(cabinet)], question: 'How long is <region0>? Answer in meters.', answer: cabinet.size[0], type: 'quantitative' },
  { id: 'cabinet-floor-distance', regions: [spec(cabinet), spec(floor)], question: 'What is the distance between the centers of <region0> and <region1>? Answer in meters.',
    answer: round(centreDistance), type: 'quantitative' },
  { id: 'cabinet-taller-than-floor', regions: [spec(cabinet), spec(floor)], question: 'Is <region0> taller than <region1>? Answer yes or no.', answer: 'yes', type: 'yes_no' },
  { id: 'floor-taller-than-cabinet', regions: [spec(floor), spec(cabinet)], question: 'Is <region0> taller than <region1>? Answer yes or no.', answer: 'no', type: 'yes_no' },
  { id: 'taller-choice', regions: [spec(cabinet), spec(floor)], question: 'Which is taller, (A) <region0> or (B) <region1>? Answer with the letter.',
    answer: 'A', type: 'choice', choices: ['<region0>', '<region1>'] },
];
const out = path.join(__dirname, '..', 'examples', 'data', 'cabinet_bench.jsonl');
fs.writeFileSync(out, items.map((it) => JSON.stringify({ id: it.id, scene, ...it })).join('\n') + '\n');
console.log(`wrote ${items.length} questions to ${path.relative(process.cwd(), out)}`);
