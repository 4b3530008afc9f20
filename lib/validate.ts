/**
 * One owner per user-input rule that more than one entry point checks (the API, the engine,
 * the CLI): each rule is written once here, with one message. Who owns what:
 *
 * | rule                                   | owner (the typed error)                    | the C++ copy                                  |
 * |----------------------------------------|--------------------------------------------|-----------------------------------------------|
 * | depthScale                             | here (isDepthScale), via geometry.ts;      | kernels backproject_check: typed (a public    |
 * |                                        | a scene's frames: scene.ts (SCENE_LIMITS)  | C++ kernel entry); native/geometry.cc: none   |
 * | temperature, maxNewTokens (>= 0)       | here; Engine, SR3D and every CLI flag      | native Step: internal; sample_token: typed    |
 * | topP, topK, seed, stop and token ids,  | engine.ts (Engine)                         | native/engine.cc: internal (SR3D_INTERNAL)    |
 * | KV room, the model's parts, projector  |                                            | (the C++ Engine's own checks stay typed: its  |
 * | width, one call at a time, disposed    |                                            | C++ API, used by tests_cpp)                   |
 *
 * A failed internal check is an InternalError (a bug in sr3d), never an argument error.
 */
import { finite } from './camera';
import { invalidArgument } from './errors';

/**
 * `maxNewTokens`: an integer >= 0. `0` is allowed: nothing is generated (stopReason
 * `'length'`). The one rule of the API (Engine.generate, SR3D.ask / chat) and of every CLI
 * `--max-new-tokens` (sr3d ask, chat, eval).
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

/**
 * What a depth scale must be, for every message about it. The kernels take it as a float32:
 * a double that rounds to 0 or Infinity there is refused here, not by the native check.
 */
export const DEPTH_SCALE_RULE = 'a finite positive number (metres per depth unit) that float32 holds (about 1.2e-38 to 3.4e38)';
/** What a uint16 depth map needs. */
export const DEPTH_SCALE_NEEDED = 'metres per depth unit for uint16 depth (TUM: 1/5000 = 0.0002, ScanNet: 1/1000)';

/** Whether `v` is a usable depth scale (metres per depth unit), as a float32 too. */
export function isDepthScale(v: unknown): v is number {
  return finite(v) && v > 0 && Math.fround(v) >= 1.1754943508222875e-38 && Number.isFinite(Math.fround(v));
}
