#!/usr/bin/env node
// Fidelity check against Hugging Face transformers, part 1 (Node): writes a tiny checkpoint in
// the real layout, runs our engine on it and saves the outputs as .npy / JSON for
// hf_check.py (part 2, Python: SiglipVisionModel, VILA's projector code, Qwen2ForCausalLM).
//   node bench/fidelity/dump.js <out dir> [--device cpu|cuda]
'use strict';
const fs = require('fs');
const path = require('path');
const sr3d = require(path.resolve(__dirname, '..', '..'));
const { writeNpy } = require(path.resolve(__dirname, '..', '..', 'dist', 'npy.js'));

(async () => {
  const out = path.resolve(process.argv[2] || 'fidelity-out');
  const di = process.argv.indexOf('--device');
  const device = di > 0 ? process.argv[di + 1] : 'cpu';
  fs.mkdirSync(out, { recursive: true });
  const ck = path.join(out, 'ckpt');
  if (!fs.existsSync(path.join(ck, 'config.json'))) await sr3d.writeTinyModel(ck, { seed: 11 });
  const ckpt = await sr3d.loadCheckpoint(ck);
  const engine = await sr3d.createEngine(ckpt, { device });
  const tok = await sr3d.loadTokenizer(ckpt.llm.config.tokenizerDir, { generationEosTokenIds: ckpt.llm.config.eosTokenIds });

  // Two tiles of normalized noise in [-1, 1] (fresh values, never zeros).
  const S = ckpt.vision.config.imageSize;
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const tiles = new Float32Array(2 * 3 * S * S).map(() => rnd() * 2 - 1);
  const feats = await engine.encodeTiles({ data: tiles, shape: [2, 3, S, S] });
  const proj = await engine.project(feats);
  const text = sr3d.renderChat([{ role: 'user', content: 'How far is the cabinet from the door? Answer in metres.' }]);
  const ids = tok.encode(text);
  const emb = await engine.embedTokens(ids);
  const logits = await engine.logits(emb);
  const tokens = [];
  for await (const id of engine.generate(emb, { maxNewTokens: 12, stopTokenIds: [] })) tokens.push(id);
  await writeNpy(path.join(out, 'tiles.npy'), { data: tiles, shape: [2, 3, S, S] });
  await writeNpy(path.join(out, 'feats.npy'), feats);
  await writeNpy(path.join(out, 'proj.npy'), proj);
  await writeNpy(path.join(out, 'logits.npy'), { data: logits, shape: [logits.length] });
  fs.writeFileSync(path.join(out, 'ours.json'), JSON.stringify({ device: engine.info().device, text, ids, tokens,
    selectLayer: ckpt.vision.config.selectLayer, layersToRun: ckpt.vision.config.layersToRun }));
  await engine.dispose();
  console.log(`dump: ${ids.length} prompt ids, ${tokens.length} greedy tokens, device ${device} -> ${out}`);
})().catch((e) => { console.error(e); process.exit(1); });
