// `sr3d ask` (issue 5): the help when no model is given, --json's exact keys, --overlay's PNG,
// run as a user runs it (`node bin/sr3d.js` over dist/, rebuilt first when lib/ is newer).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';

import { writeTinyModel } from '../lib/tinymodel';
import { ensureDistBuilt } from './helpers';

const root = path.resolve(__dirname, '..');
const CABINET = path.join(root, 'examples', 'data', 'tum_fr3_cabinet');
const CUBOID = 'box3d=-1.52988,0.456476,0.281575,0.792636,0.445484,0.545418,3.10232';
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-ask-cli-'));
const MODEL = path.join(TMP, 'tiny');

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, SR3D_DEVICE: 'cpu' };
  delete e.SR3D_MODEL;
  return { ...e, ...extra };
}
const sr3d = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ['bin/sr3d.js', ...args], { cwd: root, encoding: 'utf8', env: env(extra), timeout: 120000 });


beforeAll(async () => {
  ensureDistBuilt('cli.js');
  await writeTinyModel(MODEL, { seed: 3 });
});

afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

describe('sr3d ask', () => {
  it('without --model or SR3D_MODEL: where NVILA-Lite-8B comes from and how to make a tiny model (exit 2)', () => {
    const r = sr3d(['ask', CABINET, 'What is this?']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/--model <dir> or set SR3D_MODEL/);
    expect(r.stderr).toMatch(/Efficient-Large-Model\/NVILA-Lite-8B/);
    expect(r.stderr).toMatch(/sr3d tiny-model \.\/tiny-sr3d/);
  });

  it('a --model folder that is not a checkpoint says so, with the same help (exit 2)', () => {
    const r = sr3d(['ask', CABINET, '--model', TMP + '/nope', 'What is this?']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/is not a model folder \(it has no config\.json\)/);
    expect(r.stderr).toMatch(/sr3d tiny-model/);
  });

  it('--json prints exactly { text, tokens, timings } (model from SR3D_MODEL), nothing on stderr', () => {
    const r = sr3d(['ask', CABINET, '--region', CUBOID, '--max-frames', '2', '--max-new-tokens', '5', '--json', 'How tall is <region0>?'], { SR3D_MODEL: MODEL });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]);
    expect(Object.keys(out).sort()).toEqual(['text', 'timings', 'tokens']);
    expect(typeof out.text).toBe('string');
    expect(out.tokens.length).toBeGreaterThan(0);
    expect(out.tokens.length).toBeLessThanOrEqual(5);
    expect(out.tokens.every((t: unknown) => Number.isInteger(t))).toBe(true);
    expect(Object.keys(out.timings).sort()).toEqual(['decode', 'geometry', 'prefill', 'projector', 'regions', 'tiling', 'total', 'vision']);
  });

  it('a metric question about a region: a warning on stderr when the depth disagrees with the answer (the answer unchanged)', () => {
    const args = ['ask', CABINET, '--model', MODEL, '--region', CUBOID, '--max-frames', '2', '--max-new-tokens', '5', 'How tall is <region0>?'];
    const r = sr3d(args);
    expect(r.status).toBe(0);
    // The tiny model's answer is noise: the cabinet's 0.5 m height is not in it.
    expect(r.stderr).toMatch(/sr3d: warning: the model (said [\d.]+ m|gave no length); the depth measures 0\.\d+ m for the height of <region0>/);
    const json = sr3d([...args.slice(0, -1), '--json', args[args.length - 1]]);
    expect(r.stdout.trim()).toBe(JSON.parse(json.stdout).text.trim());
  });

  it('--overlay writes a PNG of the frames fed with the region outlined; the answer streams to stdout', () => {
    const png = path.join(TMP, 'overlay.png');
    const r = sr3d(['ask', CABINET, '--model', MODEL, '--region', 'frame=5,box=200,150,420,330', '--max-frames', '4', '--max-new-tokens', '4',
      '--overlay', png, 'What is <region0>?']);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    const img = PNG.sync.read(fs.readFileSync(png));
    // Only frame 5 (of the fed 0, 5, 10, 15) holds the region: one 640x480 frame.
    expect([img.width, img.height]).toEqual([640, 480]);
    // The outline is drawn in region0's colour (230, 25, 75) along the box's top edge.
    let red = 0;
    for (let x = 210; x < 410; x++) {
      const i = (151 * img.width + x) * 4;
      if (img.data[i] === 230 && img.data[i + 1] === 25 && img.data[i + 2] === 75) red++;
    }
    expect(red).toBeGreaterThan(150);
  });

  it('an image without depth: runs, says so on stderr, and --overlay still writes the image', () => {
    const png = path.join(TMP, 'image.png');
    const jpg = path.join(CABINET, 'raw_imgs', '0003_rgb_raw.jpg');
    const r = sr3d(['ask', jpg, '--model', MODEL, '--region', 'frame=0,box=100,100,300,300', '--max-new-tokens', '2', '--overlay', png, 'What is <region0>?']);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/without depth/);
    const img = PNG.sync.read(fs.readFileSync(png));
    expect([img.width, img.height]).toEqual([640, 480]);
  });

  it('usage errors exit 2 with one line; model errors exit 1', () => {
    const bad = sr3d(['ask', CABINET, '--model', MODEL, '--region', 'box3d=1,2', 'Q <region0>']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^sr3d ask: Expected 6 or 7 numbers/);
    const unnamed = sr3d(['ask', CABINET, '--model', MODEL, '--region', CUBOID, '--max-frames', '2', 'How tall is it?']);
    expect(unnamed.status).toBe(1);
    expect(unnamed.stderr).toMatch(/never names <region0>/);
    // --max-new-tokens and --temperature go through the API's validators: 0 tokens is allowed.
    const neg = sr3d(['ask', CABINET, '--model', MODEL, '--max-new-tokens', '-1', 'Hi']);
    expect(neg.status).toBe(2);
    expect(neg.stderr).toMatch(/^sr3d ask: Expected a non-negative integer for --max-new-tokens but received -1\. Fix: e\.g\. --max-new-tokens 64/);
    const acts = sr3d(['ask', CABINET, '--model', MODEL, '--activations', 'int4', 'Hi']);
    expect(acts.status).toBe(2);
    expect(acts.stderr).toMatch(/^sr3d ask: Expected one of 'f32', 'int8', 'bf16' for --activations but received 'int4' of type string\. Fix: e\.g\. --activations int8/);
    const temp = sr3d(['ask', CABINET, '--model', MODEL, '--temperature', '-0.5', 'Hi']);
    expect(temp.stderr).toMatch(/^sr3d ask: Expected a finite number >= 0 \(0 = greedy\) for --temperature but received -0\.5/);
    const zero = sr3d(['ask', CABINET, '--model', MODEL, '--max-frames', '2', '--max-new-tokens', '0', '--json', 'Hi']);
    expect([zero.status, zero.stderr]).toEqual([0, '']);
    expect(JSON.parse(zero.stdout).tokens).toEqual([]);
  });
});

describe('sr3d chat', () => {
  it('questions on stdin, one JSON line per answer; the follow-up reuses the context (no image work)', () => {
    const r = spawnSync(process.execPath, ['bin/sr3d.js', 'chat', CABINET, '--model', MODEL, '--region', CUBOID, '--max-frames', '2', '--max-new-tokens', '3', '--json'],
      { cwd: root, encoding: 'utf8', env: env(), timeout: 120000, input: 'How tall is <region0>?\n\nAnd how wide is <region0>?\n' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    for (const a of lines) expect(Object.keys(a)).toEqual(['text', 'tokens', 'timings']);
    expect(lines[0].timings.vision).toBeGreaterThan(0);
    expect([lines[1].timings.vision, lines[1].timings.geometry]).toEqual([0, 0]);
  });

  it('a question at the command line or a follow-up naming a region that is not given are errors', () => {
    const usage = sr3d(['chat', CABINET, '--model', MODEL, 'How tall?']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/the questions come on stdin, one per line/);
    const r = spawnSync(process.execPath, ['bin/sr3d.js', 'chat', CABINET, '--model', MODEL, '--region', CUBOID, '--max-frames', '2', '--max-new-tokens', '2', '--json'],
      { cwd: root, encoding: 'utf8', env: env(), timeout: 120000, input: 'How tall is <region0>?\nIs <region3> near it?\n' });
    expect(r.status).toBe(1);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^sr3d chat: Expected placeholders <region0>\.\.<region0> \(1 region given\)/);
  });
});
