/**
 * The geometry cross-check of an answer (lib/check.ts): when the question asks a metric
 * quantity of its regions and the scene has depth, the regions are measured from the request's
 * own world points and resolved masks (nothing is resolved twice); after generation the number
 * in the answer is compared with the measurement. The model's text is never changed.
 */
import { crossCheck, metricQuestion } from '../check';
import type { AnswerCheck } from '../check';
import { gatherRegionPoints, measurePoints } from '../measure';
import type { MeasureResult } from '../measure';
import type { ResolvedRegion } from '../regions';
import type { Scene } from '../scene';
import type { NdArray } from '../tensor';

/** Whether a request should be measured: `check` not off, a scene, regions, and a metric question about them. */
export function wantsCheck(c: { check?: boolean; question: string; scene: Scene | null; regions: number }): boolean {
  if (c.check === false || c.scene === null || c.regions === 0) return false;
  const q = metricQuestion(c.question);
  return q !== null && q.regions.every((k) => k < c.regions);
}

/**
 * The regions measured from the request's world points, or null when they cannot be (a region
 * without a valid 3D point: the check is an aid, it never fails the request).
 */
export function measureRequestRegions(scene: Scene, world: readonly NdArray<Float32Array>[], regions: readonly ResolvedRegion[]): MeasureResult | null {
  try {
    return measurePoints(gatherRegionPoints(world, regions), { up: scene.up ?? null });
  } catch {
    return null;
  }
}

/**
 * `details.check` of an answer: {@link crossCheck} of the question, the model's text and the
 * measurement; undefined when nothing was measured or the question asks for no metric quantity.
 */
export function answerCheck(question: string, text: string, measured: MeasureResult | null | undefined): AnswerCheck | undefined {
  if (!measured) return undefined;
  return crossCheck(question, text, measured) ?? undefined;
}
