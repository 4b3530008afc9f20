#!/usr/bin/env node
// End-to-end `ask` on the tiny random checkpoint (lib/tinymodel.ts): per-stage timings of
// SR3D.ask on the bundled TUM cabinet, single view (frame 0, 640x480 → 4x3 tiles + thumbnail,
// a 2D box region) and multi-view (all 16 frames, one 448² tile each, the annotated cuboid as a
// 3D region). The tiny model has real geometry (448 tiles, 1024 SigLIP tokens, 121 projector
// tokens, Qwen2 vocabulary) but tiny widths, so these rows time the pipeline around the
// networks (tiling, geometry, PE, pooling, splice, engine overhead), not NVILA-Lite-8B.
//   node bench/e2e_ask.js [--runs n] [--device cpu|cuda|auto] [--json]
// Needs `npm run build:ts` (it loads dist/). Medians over --runs (default 3) after one warm-up.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const root = path.resolve(__dirname, '..');
const { SR3D, writeTinyModel, loadScene, buildInfo } = require(root);

const argv = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const json = argv.includes('--json');
const runs = Number(flag('--runs', '3'));
const device = flag('--device', 'auto');
if (!Number.isInteger(runs) || runs < 1) throw new Error(`Expected a positive integer for --runs but received ${flag('--runs')}`);

const CABINET = path.join(root, 'examples', 'data', 'tum_fr3_cabinet', 'scene.json');
const CUBOID = { center: [-1.52988, 0.456476, 0.281575], size: [0.792636, 0.445484, 0.545418], yaw: 3.10232 };
const STAGES = ['geometry', 'tiling', 'vision', 'projector', 'regions', 'prefill', 'decode', 'total'];
const MAX_NEW = 16;

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-bench-ask-'));
  try {
    await writeTinyModel(dir, { seed: 0 });
    const model = await SR3D.load(dir, { device, onNotice: () => undefined });
    const scene = await loadScene(CABINET);
    const cases = [
      {
        name: 'single view (1 frame, 13 tiles, 2D box)',
        input: { scene: { frames: [scene.frames[0]] }, regions: [{ frame: 0, box: [200, 150, 420, 330] }], question: 'What is <region0>?' },
      },
      {
        name: `multi-view (${scene.frames.length} frames, 3D cuboid)`,
        input: { scene, regions: [{ box3d: CUBOID }], question: 'How tall is <region0> in metres?' },
      },
      {
        // Another question about the same Scene object: the image side comes from the cache.
        name: `multi-view again, same scene (cached image side)`,
        input: { scene, regions: [{ box3d: CUBOID }], question: 'How wide is <region0>?' },
        cache: true,
      },
    ];
    const rows = [];
    for (const c of cases) {
      const per = Object.fromEntries(STAGES.map((s) => [s, []]));
      let last;
      for (let i = 0; i <= runs; i++) {
        // Greedy: every run decodes the same tokens (at most MAX_NEW; fewer if a stop token comes first).
        // Every run does the whole pipeline unless the case measures the scene cache.
        last = await model.ask({ ...c.input, cache: c.cache === true, maxNewTokens: MAX_NEW });
        if (i === 0) continue; // warm-up
        for (const s of STAGES) per[s].push(last.timings[s]);
      }
      const ms = Object.fromEntries(STAGES.map((s) => [s, median(per[s])]));
      rows.push({
        case: c.name, device: model.engine.info().device, images: last.details.images, promptLength: last.details.promptLength,
        tokens: last.tokens.length, spatialPe: last.details.spatialPe, medianMs: ms,
        decodeTokensPerS: last.tokens.length > 1 && ms.decode > 0 ? (last.tokens.length - 1) / (ms.decode / 1000) : null,
      });
    }
    await model.dispose();
    if (json) {
      process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      return;
    }
    const b = buildInfo();
    console.log(`sr3d ${b.version} · ${b.binary.variant} binary · ${b.cpu.threads} CPU threads (${b.cpu.simd}) · tiny checkpoint · median of ${runs} after 1 warm-up · ${MAX_NEW} new tokens max`);
    const head = ['case', 'device', 'imgs', 'prompt', ...STAGES.map((s) => `${s} ms`), 'tok/s'];
    const body = rows.map((r) => [r.case, r.device, String(r.images), String(r.promptLength), ...STAGES.map((s) => r.medianMs[s].toFixed(1)),
      r.decodeTokensPerS === null ? '-' : r.decodeTokensPerS.toFixed(0)]);
    const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
    const line = (cells) => cells.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
    console.log(line(head));
    for (const r of body) console.log(line(r));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`e2e_ask: ${e && e.stack ? e.stack : e}\n`);
  process.exitCode = 1;
});
