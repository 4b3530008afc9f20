/**
 * One owner per user-input rule that more than one entry point checks (the API, the engine,
 * the CLI): each rule is written once here, with one message.
 */
import { finite } from './camera';
import { invalidArgument } from './errors';

/**
 * `maxNewTokens`: an integer >= 0. `0` is allowed (the prompt is prefilled and nothing is
 * generated); the CLI's `--max-new-tokens` follows the same rule.
 */
export function checkMaxNewTokens(v: unknown, name = 'maxNewTokens'): number {
  if (!Number.isInteger(v) || (v as number) < 0) throw invalidArgument('a non-negative integer', name, v);
  return v as number;
}

/** `temperature`: a finite number >= 0; `0` is greedy. */
export function checkTemperature(v: unknown, name = 'temperature'): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v >= 0)) throw invalidArgument('a finite number >= 0 (0 = greedy)', name, v);
  return v;
}

/** What a depth scale must be, for every message about it. */
export const DEPTH_SCALE_RULE = 'a finite positive number (metres per depth unit)';
/** What a uint16 depth map needs. */
export const DEPTH_SCALE_NEEDED = 'metres per depth unit for uint16 depth (TUM: 1/5000 = 0.0002, ScanNet: 1/1000)';

/** Whether `v` is a usable depth scale (metres per depth unit). */
export function isDepthScale(v: unknown): v is number {
  return finite(v) && v > 0;
}
