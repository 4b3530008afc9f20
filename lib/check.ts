/**
 * Answers cross-checked by geometry: when a question asks for a metric quantity about regions
 * (height, width, length, size, distance, gap) and the scene has depth, the same quantity is
 * measured from the depth ({@link measure}) and compared with the number in the model's answer.
 * An aid for the user, never a change to the model's text.
 */
import { parseLength } from './eval';
import type { MeasureResult } from './measure';

/** The metric quantities a question can ask for. */
export type CheckedQuantity = 'height' | 'width' | 'length' | 'distance' | 'gap';

/** What {@link crossCheck} found. */
export interface AnswerCheck {
  /** The quantity asked for, and of which regions (indices into the request's regions). */
  quantity: CheckedQuantity;
  regions: number[];
  /** The number in the answer, in metres (null when the answer has none). */
  answered: number | null;
  /** The same quantity measured from the depth, in metres. */
  measured: number;
  /** max(answered / measured, measured / answered); Infinity when nothing was answered. */
  ratio: number;
  /** ratio < 1.25 (the success rule of SpatialRGPT-Bench and SR-3D-Bench). */
  agrees: boolean;
}

// Word → quantity, most specific first: "how far apart" is a distance even though "far" is
// not a size word, and "gap"/"space between"/"closest" ask for the gap between surfaces.
const RULES: [RegExp, CheckedQuantity][] = [
  [/\b(?:gap|clearance|space between|closest distance|how close)\b/i, 'gap'],
  [/\b(?:distance|how far|far apart|far from|away from|apart)\b/i, 'distance'],
  [/\b(?:height|tall|high|taller|shorter)\b/i, 'height'],
  [/\b(?:width|wide|wider|narrow|thick|thickness)\b/i, 'width'],
  [/\b(?:length|long|longer|size|big|large|dimension)\b/i, 'length'],
];

/**
 * The metric quantity a question asks for, and which regions (by the order of `<regionK>`
 * in the question): one region for a size, two for a distance or gap; null for anything
 * else (a yes/no comparison, a direction, a count).
 */
export function metricQuestion(question: string): { quantity: CheckedQuantity; regions: number[] } | null {
  const regions = [...new Set([...question.matchAll(/<region(\d+)>/g)].map((m) => Number(m[1])))];
  // Comparisons ("is A taller than B?") and choices are not numbers.
  if (/^\s*(?:is|are|does|do|which|can|could|would|will)\b/i.test(question)) return null;
  for (const [re, quantity] of RULES) {
    if (!re.test(question)) continue;
    const pair = quantity === 'distance' || quantity === 'gap';
    if (pair ? regions.length !== 2 : regions.length !== 1) return null;
    return { quantity, regions };
  }
  return null;
}

/**
 * Compares the number in `answer` with the measured quantity the question asks for. Returns
 * null when the question asks for no metric quantity of its regions.
 */
export function crossCheck(question: string, answer: string, measured: MeasureResult): AnswerCheck | null {
  const q = metricQuestion(question);
  if (!q) return null;
  let value: number;
  if (q.quantity === 'distance' || q.quantity === 'gap') {
    const [a, b] = q.regions.map((k) => `region${k}`);
    const pair = measured.pairs.find((p) => (p.a === a && p.b === b) || (p.a === b && p.b === a));
    if (!pair) return null;
    value = q.quantity === 'gap' ? pair.gap : pair.centroidDistance;
  } else {
    const r = measured.regions.find((x) => x.id === `region${q.regions[0]}`);
    if (!r || r.points === 0) return null;
    value = r[q.quantity];
  }
  if (!Number.isFinite(value)) return null;
  const answered = parseLength(answer);
  const ratio = answered !== null && answered > 0 && value > 0 ? Math.max(answered / value, value / answered) : Infinity;
  return { ...q, answered, measured: value, ratio, agrees: ratio < 1.25 };
}
