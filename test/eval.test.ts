// The evaluation harness: answers parsed from free text, metrics on hand-made predictions with
// scores worked out by hand, the benchmark file checks, `sr3d eval` with and without a model.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import {
  evaluate, formatReport, meanRelativeAccuracy, parseChoice, parseLength, parseNumber, parseYesNo, readBenchmark, reportJson, scoreAll,
} from '../lib/eval';
import type { EvalItem } from '../lib/eval';
import { InvalidArgumentError } from '../lib/errors';
import { writeTinyModel } from '../lib/tinymodel';
import { ensureDistBuilt } from './helpers';

const ROOT = path.resolve(__dirname, '..');
const BENCH = path.join(ROOT, 'examples', 'data', 'cabinet_bench.jsonl');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-eval-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('reading answers', () => {
  it.each([
    ['about 1.5 meters', 1.5],
    ['The height of [A] is 62 cm.', 0.62],
    ['It is 3 feet 2 inches tall', 3 * 0.3048 + 2 * 0.0254],
    ['5\'2"', 5 * 0.3048 + 2 * 0.0254],
    ['1,200 mm', 1.2],
    ['roughly 0.8m wide', 0.8],
    ['two meters', 2],
    ['half a meter', 0.5],
    ['a meter and a half', 1], // only the first quantity counts
    ['It is 12 inches.', 0.3048],
    ['3 ft', 0.9144],
    ['The distance is 1.25', 1.25], // no unit: metres
    ['region 2 is 40 centimetres away', 0.4], // the number with a unit wins over a bare one
  ])('parseLength(%j) = %f m', (text, m) => {
    expect(parseLength(text)).toBeCloseTo(m, 10);
  });
  it('no number: null', () => {
    expect(parseLength('I cannot tell')).toBeNull();
    expect(parseNumber('none')).toBeNull();
  });
  it('plain numbers, yes/no and choices', () => {
    expect(parseNumber('There are 4 chairs.')).toBe(4);
    expect(parseNumber('three')).toBe(3);
    expect(parseYesNo('Yes, it is.')).toBe('yes');
    expect(parseYesNo('No.')).toBe('no');
    expect(parseYesNo('Maybe')).toBeNull();
    const choices = ['the red chair', 'the chair', 'the table'];
    expect(parseChoice('B', choices)).toBe(1);
    expect(parseChoice('(C) the table', choices)).toBe(2);
    expect(parseChoice('Option A', choices)).toBe(0);
    expect(parseChoice('I think it is the red chair.', choices)).toBe(0); // longest option that appears
    expect(parseChoice('the table, obviously', choices)).toBe(2);
    expect(parseChoice('a lamp', choices)).toBeNull();
  });
  it('VSI-Bench mean relative accuracy', () => {
    expect(meanRelativeAccuracy(1, 1)).toBe(1);
    // Values from VSI-Bench's own function (numpy): (abs(p - t) / t <= 1 - np.linspace(.5, .95, 10)).mean()
    expect(meanRelativeAccuracy(0.9, 1)).toBeCloseTo(0.9, 12);
    expect(meanRelativeAccuracy(1.3, 1)).toBeCloseTo(0.5, 12);
    expect(meanRelativeAccuracy(1.2, 1)).toBeCloseTo(0.7, 12);
    expect(meanRelativeAccuracy(0.65, 0.5)).toBeCloseTo(0.5, 12);
    expect(meanRelativeAccuracy(9, 10)).toBeCloseTo(0.9, 12);
    expect(meanRelativeAccuracy(3, 1)).toBe(0);
    expect(meanRelativeAccuracy(null, 1)).toBe(0);
  });
});

describe('scores of hand-made predictions', () => {
  const items: EvalItem[] = [
    { id: 'q1', scene: 's', question: 'h?', answer: 1.0, type: 'quantitative' },
    { id: 'q2', scene: 's', question: 'h?', answer: '50 cm', type: 'quantitative' },
    { id: 'q3', scene: 's', question: 'h?', answer: 2, type: 'quantitative' },
    { id: 'q4', scene: 's', question: 'h?', answer: 4, type: 'quantitative' },
    { id: 'n1', scene: 's', question: 'how many?', answer: 10, type: 'numeric' },
    { id: 'y1', scene: 's', question: 'taller?', answer: 'yes', type: 'yes_no' },
    { id: 'y2', scene: 's', question: 'taller?', answer: 'No', type: 'yes_no' },
    { id: 'c1', scene: 's', question: 'which?', answer: 'B', type: 'choice', choices: ['left', 'right'] },
    { id: 'c2', scene: 's', question: 'which?', answer: 'left', type: 'choice', choices: ['left', 'right'] },
  ];
  const preds = [
    { id: 'q1', prediction: 'It is about 1.2 meters tall.' }, // ratio 1.2: success, rel err 0.2
    { id: 'q2', prediction: '0.65 m' }, // ratio 1.3: fail, rel err 0.3
    { id: 'q3', prediction: 'I do not know' }, // no number: fail, unanswered
    // q4: no prediction at all: fail, unanswered
    { id: 'n1', prediction: 'nine' }, // rel 0.1: MRA 0.9
    { id: 'y1', prediction: 'Yes.' },
    { id: 'y2', prediction: 'Yes, it is.' },
    { id: 'c1', prediction: '(B)' },
    { id: 'c2', prediction: 'right' },
  ];
  const r = scoreAll(items, preds);

  it('quantitative: success within 1.25x, absolute relative error over read values', () => {
    const q = r.types.quantitative!;
    expect(q.n).toBe(4);
    expect(q.success).toBeCloseTo(1 / 4, 12);
    expect(q.absRelError).toBeCloseTo((0.2 + 0.3) / 2, 12);
    expect(q.unanswered).toBe(2);
    // MRA (VSI-Bench's function): q1 1.2 vs 1 → 0.7; q2 0.65 vs 0.5 → 0.5; q3, q4 → 0
    expect(q.mra).toBeCloseTo((0.7 + 0.5) / 4, 12);
  });
  it('numeric, yes/no and choice', () => {
    expect(r.types.numeric).toEqual({ n: 1, unanswered: 0, absRelError: expect.closeTo(0.1, 12), mra: expect.closeTo(0.9, 12) });
    expect(r.types.yes_no).toEqual({ n: 2, unanswered: 0, accuracy: 0.5 });
    expect(r.types.choice).toEqual({ n: 2, unanswered: 0, accuracy: 0.5 });
    expect(r.mra).toBeCloseTo((0.7 + 0.5 + 0 + 0 + 0.9) / 5, 12);
  });
  it('JSON and text forms', () => {
    const j = reportJson(r) as Record<string, { n: number }>;
    expect(Object.keys(j).sort()).toEqual(['choice', 'mra', 'numeric', 'quantitative', 'yes_no']);
    expect(j.quantitative.n).toBe(4);
    const text = formatReport(r);
    expect(text).toMatch(/^type +n +success\/acc/);
    expect(text).toMatch(/quantitative +4 +25\.0%/);
    expect(text).toMatch(/MRA over all numeric answers: 42\.0%/);
  });
});

describe('benchmark files', () => {
  it('the bundled cabinet benchmark reads, with scene paths resolved against the file', () => {
    const items = readBenchmark(BENCH);
    expect(items.map((i) => i.id)).toContain('cabinet-height');
    for (const it of items) expect(fs.existsSync(it.scene)).toBe(true);
    const h = items.find((i) => i.id === 'cabinet-height')!;
    expect(h.answer).toBeCloseTo(0.545418, 6);
    expect(h.regions![0]).toEqual({ box3d: { center: [-1.52988, 0.456476, 0.281575], size: [0.792636, 0.445484, 0.545418], yaw: 3.10232 } });
  });
  const write = (name: string, lines: unknown[]) => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n'));
    return f;
  };
  it.each([
    ['not JSON', ['{"id": 1'], /benchmark line 1/],
    ['a duplicate id', [{ id: 'a', scene: 's', question: 'q', answer: 1, type: 'numeric' }, { id: 'a', scene: 's', question: 'q', answer: 1, type: 'numeric' }], /unique.*line 2\.id/],
    ['an unknown type', [{ id: 'a', scene: 's', question: 'q', answer: 1, type: 'essay' }], /one of quantitative, numeric, choice, yes_no for benchmark line 1\.type/],
    ['a choice without choices', [{ id: 'a', scene: 's', question: 'q', answer: 'A', type: 'choice' }], /choices/],
    ['a quantitative answer with no number', [{ id: 'a', scene: 's', question: 'q', answer: 'tall', type: 'quantitative' }], /ground-truth number.*answer of 'a'/],
    ['a yes/no answer that is neither', [{ id: 'a', scene: 's', question: 'q', answer: 'maybe', type: 'yes_no' }], /'yes' or 'no'/],
    ['a bad region', [{ id: 'a', scene: 's', question: 'q', answer: 1, type: 'numeric', regions: ['box3d=1,2'] }], /box3d/],
  ])('%s is a typed error naming the line', (_name, lines, re) => {
    const f = write('bad.jsonl', lines);
    expect(() => readBenchmark(f)).toThrow(re);
  });
  it('a missing file says so', () => {
    expect(() => readBenchmark(path.join(tmp, 'nope.jsonl'))).toThrow(InvalidArgumentError);
    expect(() => readBenchmark(path.join(tmp, 'nope.jsonl'))).toThrow(/ENOENT/);
  });
  it('evaluate needs exactly one of model or predictions', async () => {
    await expect(evaluate(BENCH, {})).rejects.toThrow(/exactly one of model or predictions/);
  });
});

describe('sr3d eval', () => {
  beforeAll(() => ensureDistBuilt('cli.js'));
  const env = { ...process.env };
  delete env.SR3D_MODEL;
  const cli = (args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin', 'sr3d.js'), ...args], { encoding: 'utf8', cwd: ROOT, env });
  it('--score-only scores a predictions file without a model', () => {
    const preds = path.join(tmp, 'preds.jsonl');
    fs.writeFileSync(preds, [
      { id: 'cabinet-height', prediction: 'About 55 cm.' },
      { id: 'cabinet-width', prediction: '0.2 m' },
      { id: 'cabinet-taller-than-floor', prediction: 'Yes' },
      { id: 'taller-choice', prediction: 'A' },
    ].map((p) => JSON.stringify(p)).join('\n'));
    const r = cli(['eval', BENCH, '--score-only', '--predictions', preds, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.quantitative).toMatchObject({ n: 4, success: 0.25, unanswered: 2 });
    expect(j.yes_no).toMatchObject({ n: 2, accuracy: 0.5 });
    expect(j.choice).toMatchObject({ n: 1, accuracy: 1 });
    const text = cli(['eval', BENCH, '--score-only', '--predictions', preds]);
    expect(text.stdout).toMatch(/quantitative +4 +25\.0%/);
  });
  it('with a model: asks every question, writes the predictions, scores them', async () => {
    const model = path.join(tmp, 'tiny');
    await writeTinyModel(model, { seed: 3 });
    const bench = path.join(tmp, 'two.jsonl');
    // Two lines of the bundled benchmark, with the scene path rewritten for the new folder.
    const lines = fs.readFileSync(BENCH, 'utf8').trim().split('\n').slice(0, 2).map((l) => {
      const o = JSON.parse(l);
      return JSON.stringify({ ...o, scene: path.join(ROOT, 'examples', 'data', o.scene) });
    });
    fs.writeFileSync(bench, lines.join('\n') + '\n');
    const out = path.join(tmp, 'model-preds.jsonl');
    const r = cli(['eval', bench, '--model', model, '--predictions', out, '--max-new-tokens', '3', '--device', 'cpu', '--json']);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.quantitative.n).toBe(2);
    const preds = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(preds.map((p: { id: string }) => p.id)).toEqual(['cabinet-height', 'cabinet-width']);
    expect(r.stderr).toMatch(/\[2\/2\] cabinet-width: /);
    // The same predictions scored again give the same report.
    const again = cli(['eval', bench, '--score-only', '--predictions', out, '--json']);
    expect(JSON.parse(again.stdout)).toEqual(j);
  });
  it('usage errors exit 2', () => {
    const r = cli(['eval', BENCH, '--score-only']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--predictions/);
    const m = cli(['eval', BENCH]);
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/Expected a model/);
    // --max-new-tokens follows the API's rule (lib/validate.ts), as in sr3d ask: an integer >= 0.
    const neg = cli(['eval', BENCH, '--max-new-tokens', '-1']);
    expect(neg.status).toBe(2);
    expect(neg.stderr).toBe('sr3d eval: Expected a non-negative integer for --max-new-tokens but received -1. Fix: e.g. --max-new-tokens 64\n');
    const acts = cli(['eval', BENCH, '--activations', 'fp8']);
    expect(acts.status).toBe(2);
    expect(acts.stderr).toBe("sr3d eval: Expected one of 'f32', 'int8', 'bf16' for --activations but received 'fp8' of type string. Fix: e.g. --activations int8\n");
    const zero = cli(['eval', BENCH, '--max-new-tokens', '0']);
    expect(zero.status).toBe(2);
    expect(zero.stderr).toMatch(/^sr3d eval: Expected a model/); // 0 passed; the missing model is the next error
  });
});
