/**
 * Evaluation of spatial question answering: a benchmark file of questions about scenes and
 * regions, predictions from a model (or from any other runtime), and the metrics the SR-3D,
 * SpatialRGPT and VSI-Bench papers report.
 *
 *   quantitative : a length, distance or size in metres. Success when max(pred/gt, gt/pred) < 1.25
 *                  (SpatialRGPT-Bench, SR-3D-Bench); also the mean absolute relative error.
 *   numeric      : a unitless number (a count): VSI-Bench's mean relative accuracy only.
 *   choice       : one of `choices` (a letter A, B, … or the option's text): exact after normalization.
 *   yes_no       : yes / no: exact after normalization.
 * Every numeric line (quantitative and numeric) also gets VSI-Bench's mean relative accuracy,
 * MRA = mean over θ ∈ {0.50, 0.55, …, 0.95} of [|pred − gt| / gt ≤ 1 − θ] (as VSI-Bench's code).
 *
 * Answers are parsed from free text: "about 1.5 meters", "62 cm", "3 feet 2 inches", 5'2".
 * A number without a unit is taken as metres (quantitative). An answer with no number fails.
 */
import * as fs from 'fs';
import * as path from 'path';

import { invalidArgument } from './errors';
import { parseRegionArg } from './regions';
import type { RegionSpec } from './regions';

/** The question kinds {@link scoreLine} knows. */
export type EvalType = 'quantitative' | 'numeric' | 'choice' | 'yes_no';
const TYPES: readonly EvalType[] = ['quantitative', 'numeric', 'choice', 'yes_no'];

/** One line of a benchmark `.jsonl` file. */
export interface EvalItem {
  id: string;
  /** A scene.json path (or its folder), relative to the benchmark file. */
  scene: string;
  /** Region prompts in `<region0>`, `<region1>`, … order: CLI syntax strings or API objects. Defaults to none. */
  regions?: (string | RegionSpec)[];
  question: string;
  /** The ground truth: a number of metres (or a string with units) for quantitative, a number for numeric, text for the others. */
  answer: string | number;
  type: EvalType;
  /** The options of a `choice` question, in letter order (A, B, …). */
  choices?: string[];
}

/** One line of a predictions `.jsonl` file. */
export interface EvalPrediction {
  id: string;
  prediction: string;
}

/** The score of one line. */
export interface LineScore {
  id: string;
  type: EvalType;
  /** Quantitative / numeric: the value read from the prediction (metres for quantitative), or null when none. */
  value?: number | null;
  /** Quantitative / numeric: the ground truth value. */
  truth?: number;
  /** Quantitative: max(pred/gt, gt/pred) < 1.25. Choice / yes_no: the answer matched. */
  correct: boolean;
  /** Quantitative / numeric: |pred − gt| / gt (Infinity when no value was read). */
  absRelError?: number;
  /** Quantitative / numeric: VSI-Bench's mean relative accuracy of this line. */
  mra?: number;
}

/** Per-type summary of an evaluation. */
export interface TypeSummary {
  n: number;
  /** Quantitative: the fraction within a factor 1.25. */
  success?: number;
  /** Choice / yes_no: the fraction answered exactly. */
  accuracy?: number;
  /** Quantitative / numeric: the mean absolute relative error over lines with a readable value. */
  absRelError?: number;
  /** Quantitative / numeric: the mean MRA. */
  mra?: number;
  /** Lines whose prediction gave no usable answer (no number, no option) or that had no prediction. */
  unanswered: number;
}

/** The report of {@link scoreAll} / {@link evaluate}: one summary per type present, and the MRA over all numeric lines. */
export interface EvalReport {
  types: Partial<Record<EvalType, TypeSummary>>;
  /** The mean MRA over every quantitative and numeric line, when there are any. */
  mra?: number;
  lines: LineScore[];
}

// ---- reading quantities from text ------------------------------------------------------------

const UNIT_METRES: [RegExp, number][] = [
  [/^(?:mm|millimet(?:er|re)s?)$/, 1e-3],
  [/^(?:cm|centimet(?:er|re)s?)$/, 1e-2],
  [/^(?:dm|decimet(?:er|re)s?)$/, 1e-1],
  [/^(?:m|met(?:er|re)s?)$/, 1],
  [/^(?:km|kilomet(?:er|re)s?)$/, 1e3],
  [/^(?:in|inch|inches|"|”|'')$/, 0.0254],
  [/^(?:ft|foot|feet|'|’)$/, 0.3048],
  [/^(?:yd|yards?)$/, 0.9144],
];
const WORDS: Record<string, number> = {
  zero: 0, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10,
  eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17,
  eighteen: 18, nineteen: 19, twenty: 20, thirty: 30, forty: 40, fifty: 50, half: 0.5, a: 1, an: 1,
};
// A number (digits with optional thousands commas and decimals, or a number word) and an
// optional unit right after it.
const QUANTITY = new RegExp(
  String.raw`(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+|\bhalf\s+an?\b|\b(?:${Object.keys(WORDS).join('|')})\b)` +
  String.raw`\s*(?:-\s*)?(millimet(?:er|re)s?|centimet(?:er|re)s?|decimet(?:er|re)s?|kilomet(?:er|re)s?|met(?:er|re)s?|inches|inch|feet|foot|yards?|mm|cm|dm|km|ft|yd|in\b|m\b|''|"|”|'|’)?`,
  'gi');

interface Quantity { value: number; unit: number | null; end: number; start: number }

function quantities(text: string): Quantity[] {
  const out: Quantity[] = [];
  for (const m of text.matchAll(QUANTITY)) {
    // "half a metre": one quantity of 0.5 metres.
    const raw = m[1].toLowerCase().replace(/^half\s+an?$/, 'half');
    const value = raw in WORDS ? WORDS[raw] : Number(raw.replace(/,/g, ''));
    // "a"/"an" count only as "a metre", "an inch": never as a bare number.
    if ((raw === 'a' || raw === 'an') && !m[2]) continue;
    let unit: number | null = null;
    if (m[2]) {
      const u = m[2].toLowerCase();
      unit = UNIT_METRES.find(([re]) => re.test(u))?.[1] ?? null;
    }
    out.push({ value, unit, start: m.index!, end: m.index! + m[0].length });
  }
  return out;
}

/**
 * The first length in `text`, in metres: "about 1.5 meters" → 1.5, "62 cm" → 0.62, "3 feet 2
 * inches" → 0.9652, `5'2"` → 1.5748, "1,200 mm" → 1.2. A number with no unit counts as metres.
 * Returns null when the text has no number.
 */
export function parseLength(text: string): number | null {
  if (typeof text !== 'string') return null;
  const qs = quantities(text);
  const withUnit = qs.findIndex((q) => q.unit !== null);
  const i = withUnit >= 0 ? withUnit : 0;
  if (qs.length === 0) return null;
  const q = qs[i];
  let metres = q.value * (q.unit ?? 1);
  // Feet followed by inches ("3 feet 2 inches", 5'2") is one length.
  const next = qs[i + 1];
  if (q.unit === 0.3048 && next && next.unit === 0.0254 && /^[\s,and]*$/i.test(text.slice(q.end, next.start))) {
    metres += next.value * 0.0254;
  }
  return Number.isFinite(metres) ? metres : null;
}

/** The first plain number in `text` (digits or a number word), or null. */
export function parseNumber(text: string): number | null {
  if (typeof text !== 'string') return null;
  const q = quantities(text)[0];
  return q && Number.isFinite(q.value) ? q.value : null;
}

/** Lower case, no punctuation, no articles, single spaces (the usual VQA answer normalization). */
export function normalizeAnswer(text: string): string {
  return String(text).toLowerCase().replace(/[^\p{L}\p{N}\s]/gu, ' ').replace(/\b(?:a|an|the)\b/g, ' ').replace(/\s+/g, ' ').trim();
}

/** yes / no from the start of an answer ("Yes, it is." → 'yes'), or null. */
export function parseYesNo(text: string): 'yes' | 'no' | null {
  const first = normalizeAnswer(text).split(' ')[0];
  if (first === 'yes' || first === 'true' || first === 'correct') return 'yes';
  if (first === 'no' || first === 'false' || first === 'incorrect' || first === 'not') return 'no';
  return null;
}

/** The option index a choice answer names: a leading letter ("B", "(B)", "B.", "Option B") or an option's text; null when none or ambiguous. */
export function parseChoice(text: string, choices: readonly string[]): number | null {
  const t = String(text).trim();
  const letter = /^(?:option\s+|answer\s*:?\s*)?\(?([A-Za-z])\)?(?:[.):,\s]|$)/i.exec(t);
  if (letter) {
    const k = letter[1].toUpperCase().charCodeAt(0) - 65;
    // A single lower-case "a" / "i" is more likely a word than an option letter.
    if (k >= 0 && k < choices.length && !(/^[ai]\s/.test(t) && choices.length > 0 && !/^[ai][.):]/.test(t))) return k;
  }
  const norm = normalizeAnswer(t);
  const hits = choices.map((c, k) => ({ k, c: normalizeAnswer(c) })).filter(({ c }) => c !== '' && (` ${norm} `).includes(` ${c} `));
  if (hits.length === 0) return null;
  // The longest option that appears ("red chair" over "chair"); a tie is ambiguous.
  hits.sort((a, b) => b.c.length - a.c.length);
  return hits.length > 1 && hits[0].c.length === hits[1].c.length ? null : hits[0].k;
}

// VSI-Bench's thresholds exactly as its code makes them: np.linspace(.5, .95, 10) (numpy's
// arange(n) * step + start, the last one set to the end point).
const MRA_THRESHOLDS = Array.from({ length: 10 }, (_, i) => (i === 9 ? 0.95 : i * ((0.95 - 0.5) / 9) + 0.5));

/**
 * VSI-Bench's mean relative accuracy of one prediction: the fraction of θ ∈ {0.50, 0.55, …, 0.95}
 * with |pred − gt| / |gt| ≤ 1 − θ (`<=` as in VSI-Bench's `mean_relative_accuracy`; the paper
 * writes `<`). 0 when nothing was read.
 */
export function meanRelativeAccuracy(pred: number | null, truth: number): number {
  if (pred === null || !Number.isFinite(pred)) return 0;
  const rel = Math.abs(pred - truth) / Math.abs(truth);
  return MRA_THRESHOLDS.filter((th) => rel <= 1 - th).length / MRA_THRESHOLDS.length;
}

// ---- scoring ---------------------------------------------------------------------------------

function truthNumber(item: EvalItem): number {
  const v = typeof item.answer === 'number' ? item.answer
    : item.type === 'quantitative' ? parseLength(item.answer) : parseNumber(item.answer);
  if (v === null || !Number.isFinite(v) || v === 0) {
    throw invalidArgument(`a non-zero ground-truth number${item.type === 'quantitative' ? ' (metres, or text with a unit)' : ''}`, `answer of '${item.id}'`, item.answer);
  }
  return v;
}

/** Scores one prediction (null: none was given) against its benchmark line. */
export function scoreLine(item: EvalItem, prediction: string | null): LineScore {
  const base = { id: item.id, type: item.type };
  if (item.type === 'quantitative' || item.type === 'numeric') {
    const truth = truthNumber(item);
    const value = prediction === null ? null : item.type === 'quantitative' ? parseLength(prediction) : parseNumber(prediction);
    const ratio = value !== null && value > 0 ? Math.max(value / truth, truth / value) : Infinity;
    return {
      ...base, value, truth,
      correct: item.type === 'quantitative' ? ratio < 1.25 : value === truth,
      absRelError: value === null ? Infinity : Math.abs(value - truth) / Math.abs(truth),
      mra: meanRelativeAccuracy(value, truth),
    };
  }
  if (item.type === 'yes_no') {
    const truth = parseYesNo(String(item.answer));
    if (truth === null) throw invalidArgument("'yes' or 'no'", `answer of '${item.id}'`, item.answer);
    return { ...base, correct: prediction !== null && parseYesNo(prediction) === truth };
  }
  const choices = item.choices ?? [];
  const truth = parseChoice(String(item.answer), choices);
  if (truth === null) throw invalidArgument('an option letter or the text of one of its choices', `answer of '${item.id}'`, item.answer);
  return { ...base, correct: prediction !== null && parseChoice(prediction, choices) === truth };
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** Scores predictions (by id) against benchmark lines; a line without a prediction counts as wrong. */
export function scoreAll(items: readonly EvalItem[], predictions: ReadonlyMap<string, string> | readonly EvalPrediction[]): EvalReport {
  const byId = predictions instanceof Map ? predictions as ReadonlyMap<string, string>
    : new Map((predictions as readonly EvalPrediction[]).map((p) => [p.id, p.prediction]));
  const lines = items.map((it) => scoreLine(it, byId.get(it.id) ?? null));
  const types: EvalReport['types'] = {};
  for (const type of TYPES) {
    const ls = lines.filter((l) => l.type === type);
    if (ls.length === 0) continue;
    const numeric = type === 'quantitative' || type === 'numeric';
    const s: TypeSummary = { n: ls.length, unanswered: ls.filter((l) => (numeric ? l.value === null : false) || !byId.has(l.id)).length };
    if (type === 'quantitative') s.success = mean(ls.map((l) => (l.correct ? 1 : 0)));
    if (type === 'choice' || type === 'yes_no') s.accuracy = mean(ls.map((l) => (l.correct ? 1 : 0)));
    if (numeric) {
      const read = ls.filter((l) => l.value !== null && l.value !== undefined);
      if (read.length) s.absRelError = mean(read.map((l) => l.absRelError!));
      s.mra = mean(ls.map((l) => l.mra!));
    }
    types[type] = s;
  }
  const numeric = lines.filter((l) => l.mra !== undefined);
  return { types, ...(numeric.length ? { mra: mean(numeric.map((l) => l.mra!)) } : {}), lines };
}

// ---- files -----------------------------------------------------------------------------------

function readJsonl(file: string, what: string): unknown[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw invalidArgument(`a readable ${what} .jsonl file`, what, `'${file}' (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`, true);
  }
  const out: unknown[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line));
    } catch {
      throw invalidArgument('one JSON object per line', `${what} line ${i + 1}`, `${path.basename(file)}:${i + 1} (not JSON)`);
    }
  });
  return out;
}

/** Reads and checks a benchmark `.jsonl` file; scene paths are resolved against its folder. */
export function readBenchmark(file: string): EvalItem[] {
  const dir = path.dirname(path.resolve(file));
  const seen = new Set<string>();
  return readJsonl(file, 'benchmark').map((raw, i) => {
    const at = `benchmark line ${i + 1}`;
    const o = raw as Partial<EvalItem>;
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw invalidArgument('an object { id, scene, question, answer, type }', at, raw);
    if (typeof o.id !== 'string' || o.id === '') throw invalidArgument('a non-empty string id', `${at}.id`, o.id);
    if (seen.has(o.id)) throw invalidArgument('ids that are unique in the file', `${at}.id`, o.id);
    seen.add(o.id);
    if (typeof o.scene !== 'string' || o.scene === '') throw invalidArgument('a scene.json path relative to the benchmark file', `${at}.scene`, o.scene);
    if (typeof o.question !== 'string' || o.question.trim() === '') throw invalidArgument('a non-empty question', `${at}.question`, o.question);
    if (typeof o.answer !== 'string' && typeof o.answer !== 'number') throw invalidArgument('a string or number answer', `${at}.answer`, o.answer);
    if (!TYPES.includes(o.type as EvalType)) throw invalidArgument(`one of ${TYPES.join(', ')}`, `${at}.type`, o.type);
    if (o.type === 'choice' && !(Array.isArray(o.choices) && o.choices.length >= 2 && o.choices.every((c) => typeof c === 'string'))) {
      throw invalidArgument('at least two string choices for a choice question', `${at}.choices`, o.choices);
    }
    if (o.regions !== undefined && !Array.isArray(o.regions)) throw invalidArgument('an array of region specs', `${at}.regions`, o.regions);
    const item: EvalItem = { ...(o as EvalItem), scene: path.resolve(dir, o.scene) };
    // Mask files named in CLI syntax are relative to the benchmark file too.
    item.regions = (o.regions ?? []).map((r) => {
      const spec = typeof r === 'string' ? parseRegionArg(r) : r;
      if ('mask' in spec && typeof spec.mask === 'string') return { ...spec, mask: path.resolve(dir, spec.mask) };
      return spec;
    });
    scoreLine(item, null); // checks the ground truth's form now, not after an hour of inference
    return item;
  });
}

/** Reads a predictions `.jsonl` file (`{ "id", "prediction" }` per line). */
export function readPredictions(file: string): EvalPrediction[] {
  return readJsonl(file, 'predictions').map((raw, i) => {
    const o = raw as Partial<EvalPrediction>;
    if (o === null || typeof o !== 'object' || typeof o.id !== 'string' || typeof o.prediction !== 'string') {
      throw invalidArgument('an object { "id": string, "prediction": string }', `predictions line ${i + 1}`, raw);
    }
    return o as EvalPrediction;
  });
}

/** What {@link evaluate} needs of a model: `SR3D` fits. */
export interface EvalModel {
  ask(input: { scene: string; regions: RegionSpec[]; question: string; maxNewTokens?: number }): Promise<{ text: string }>;
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** The model answering the questions. Give it or `predictions`. */
  model?: EvalModel;
  /** Predictions to score instead of running a model (e.g. from another runtime). */
  predictions?: readonly EvalPrediction[];
  /** Most new tokens per answer. Defaults to the model's default. */
  maxNewTokens?: number;
  /** Called after each answered line (for progress). Defaults to none. */
  onPrediction?: (prediction: EvalPrediction, index: number, total: number) => void;
}

/**
 * Runs a benchmark: asks the model every question (or takes the given predictions) and scores
 * the answers. Resolves with the report and the predictions (to save as `.jsonl`).
 */
export async function evaluate(benchmark: string | readonly EvalItem[], opts: EvaluateOptions): Promise<EvalReport & { predictions: EvalPrediction[] }> {
  const items = typeof benchmark === 'string' ? readBenchmark(benchmark) : benchmark;
  if ((opts.model === undefined) === (opts.predictions === undefined)) {
    throw invalidArgument('exactly one of model or predictions', 'options', opts.model ? 'both' : 'neither', true);
  }
  let predictions: EvalPrediction[];
  if (opts.predictions) {
    predictions = [...opts.predictions];
  } else {
    predictions = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      const r = await opts.model!.ask({ scene: it.scene, regions: (it.regions ?? []) as RegionSpec[], question: it.question, maxNewTokens: opts.maxNewTokens });
      const p = { id: it.id, prediction: r.text };
      predictions.push(p);
      opts.onPrediction?.(p, i, items.length);
    }
  }
  return { ...scoreAll(items, predictions), predictions };
}

/** The report as a text table (one row per type). */
export function formatReport(r: EvalReport): string {
  const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : `${(100 * x).toFixed(1)}%`);
  const rows = [['type', 'n', 'success/acc', 'abs rel err', 'MRA', 'unanswered']];
  for (const [type, s] of Object.entries(r.types) as [EvalType, TypeSummary][]) {
    rows.push([type, String(s.n), pct(s.success ?? s.accuracy), s.absRelError === undefined ? '-' : s.absRelError.toFixed(3), pct(s.mra), String(s.unanswered)]);
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const lines = rows.map((row) => row.map((x, c) => (c === 0 ? x.padEnd(w[c]) : x.padStart(w[c]))).join('  '));
  if (r.mra !== undefined) lines.push(`MRA over all numeric answers: ${pct(r.mra)}`);
  return lines.join('\n') + '\n';
}

/** The JSON form: `{ "<type>": { n, success | accuracy, … }, "mra"?: … }`. */
export function reportJson(r: EvalReport): Record<string, unknown> {
  return { ...r.types, ...(r.mra !== undefined ? { mra: r.mra } : {}) };
}
