/**
 * One owner per user-input rule that more than one entry point checks (the API, the engine,
 * the CLI): each rule is written once here, with one message. Who owns what:
 *
 * | rule                                   | owner (the typed error)                    | the C++ copy                                  |
 * |----------------------------------------|--------------------------------------------|-----------------------------------------------|
 * | depthScale                             | here (isDepthScale), via geometry.ts;      | kernels backproject_check: typed (a public    |
 * |                                        | a scene's frames: scene.ts (SCENE_LIMITS)  | C++ kernel entry); native/geometry.cc: none   |
 * | temperature, maxNewTokens (>= 0)       | here; Engine, SR3D and every CLI flag      | native Step: internal; sample_token: typed    |
 * | topP, topK, seed, stop ids             | here (checkSampling): Engine, TensorRT-LLM | native/engine.cc: internal (SR3D_INTERNAL)    |
 * | activations ('f32' | 'int8' | 'bf16')    | here (checkActivations): createEngine, the | native/engine.cc: typed (str), CUDA refused   |
 * |                                        | CLI's --activations                        |                                               |
 * | token ids,                             | engine.ts (Engine)                         |                                               |
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

/**
 * The activations the language model's linears multiply with: `'f32'` (exact), `'int8'`
 * (int4 / int8 weights: per-32-input int8 blocks, llama.cpp's Q8_0 precision) or `'bf16'`
 * (bf16 weights: activations rounded to bf16, llama.cpp's precision for bf16 weights); CPU only.
 * A union to extend with its code in native/engine.cc's ActPrecision.
 */
export type Activations = 'f32' | 'int8' | 'bf16';
export const ACTIVATIONS: readonly Activations[] = ['f32', 'int8', 'bf16'];

/** `activations`: one of {@link ACTIVATIONS}. */
export function checkActivations(v: unknown, name = 'activations'): Activations {
  if (!ACTIVATIONS.includes(v as Activations)) throw invalidArgument(`one of ${ACTIVATIONS.map((a) => `'${a}'`).join(', ')}`, name, v);
  return v as Activations;
}

/** `temperature`: a finite number >= 0; `0` is greedy. */
export function checkTemperature(v: unknown, name = 'temperature'): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v >= 0)) throw invalidArgument('a finite number >= 0 (0 = greedy)', name, v);
  return v;
}

/** Sampling options as a generation receives them (Engine.generate, the TensorRT-LLM backend). */
export interface SamplingInput {
  maxNewTokens?: unknown;
  temperature?: unknown;
  topP?: unknown;
  topK?: unknown;
  seed?: unknown;
  stopTokenIds?: unknown;
}

/** Checked sampling options; `stopIds` unique, in the caller's order; `seed` undefined when not given. */
export interface Sampling {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number | undefined;
  stopIds: number[];
}

/**
 * The rules of a generation's sampling options, for every backend: maxNewTokens and temperature
 * as above, topP in (0, 1], topK a non-negative integer (0 = off), seed an integer in [0, 2^53),
 * stopTokenIds token ids of the model (default `d.eos`).
 */
export function checkSampling(o: SamplingInput, d: { vocab: number; eos: readonly number[]; defaultMaxNewTokens: number }): Sampling {
  const maxNewTokens = checkMaxNewTokens(o.maxNewTokens ?? d.defaultMaxNewTokens);
  const temperature = checkTemperature(o.temperature ?? 0);
  const topP = o.topP ?? 1;
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw invalidArgument('a number in (0, 1]', 'topP', topP);
  const topK = o.topK ?? 0;
  if (!Number.isInteger(topK) || (topK as number) < 0) throw invalidArgument('a non-negative integer (0 = off)', 'topK', topK);
  const seed = o.seed;
  if (seed !== undefined && (!Number.isInteger(seed) || (seed as number) < 0 || (seed as number) > Number.MAX_SAFE_INTEGER)) {
    throw invalidArgument('an integer in [0, 2^53)', 'seed', seed);
  }
  const stop = o.stopTokenIds ?? d.eos;
  if (!Array.isArray(stop) && !ArrayBuffer.isView(stop)) throw invalidArgument('an array of token ids', 'stopTokenIds', stop);
  const list = stop as ArrayLike<unknown>;
  const stopIds: number[] = [];
  for (let i = 0; i < list.length; i++) {
    const s = list[i];
    if (!Number.isInteger(s) || (s as number) < 0 || (s as number) >= d.vocab) throw invalidArgument(`a token id in [0, ${d.vocab})`, `stopTokenIds[${i}]`, s);
    if (!stopIds.includes(s as number)) stopIds.push(s as number);
  }
  return { maxNewTokens, temperature, topP, topK: topK as number, seed: seed as number | undefined, stopIds };
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
