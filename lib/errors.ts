/**
 * Typed errors of sr3d. Every argument problem is an {@link InvalidArgumentError} whose
 * message reads `Expected <what> for <name> but received <value>`; CUDA failures are
 * {@link CudaError} (with the failing call, file:line and device); a binary that cannot be
 * loaded is a {@link NativeLoadError} listing "Possible solutions".
 */

/** Base class of every error sr3d throws on purpose. */
export class Sr3dError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A bad argument: wrong type, dtype, shape, value, or an inconsistent combination. */
export class InvalidArgumentError extends Sr3dError {
  constructor(message: string) {
    super(message, 'SR3D_INVALID_ARGUMENT');
  }
}

/** A CUDA runtime failure, with where it happened. */
export class CudaError extends Sr3dError {
  /** The CUDA call that failed, e.g. `cudaMalloc(&p, bytes)`. */
  readonly call: string;
  readonly file: string;
  readonly line: number;
  /** The CUDA device index (-1 when unknown). */
  readonly device: number;
  constructor(message: string, info: { call?: string; file?: string; line?: number; device?: number }, code = 'SR3D_CUDA') {
    super(message, code);
    this.call = info.call ?? '';
    this.file = info.file ?? '';
    this.line = info.line ?? 0;
    this.device = info.device ?? -1;
  }
}

/**
 * A CUDA allocation failed for lack of device memory (on a Jetson: the memory the GPU shares
 * with the CPU). The message says how much was asked for, how much is free and what to do
 * (a smaller `maxContext`, fewer frames, int4 weights, closing other GPU processes).
 */
export class CudaOutOfMemoryError extends CudaError {
  /** Bytes the failed allocation asked for. */
  readonly requestedBytes: number;
  /** Bytes free on the device when it failed (`cudaMemGetInfo`; -1 when unknown). */
  readonly freeBytes: number;
  /** Total bytes of the device (-1 when unknown). */
  readonly totalBytes: number;
  constructor(message: string, info: { call?: string; file?: string; line?: number; device?: number;
    requestedBytes?: number; freeBytes?: number; totalBytes?: number }) {
    super(message, info, 'SR3D_CUDA_OUT_OF_MEMORY');
    this.requestedBytes = info.requestedBytes ?? -1;
    this.freeBytes = info.freeBytes ?? -1;
    this.totalBytes = info.totalBytes ?? -1;
  }
}

/** The native binary could not be found or loaded; the message lists the fixes. */
export class NativeLoadError extends Sr3dError {
  constructor(message: string) {
    super(message, 'SR3D_NATIVE_LOAD');
  }
}

/** A broken internal invariant (a bug in sr3d: please report it). */
export class InternalError extends Sr3dError {
  constructor(message: string) {
    super(message, 'SR3D_INTERNAL');
  }
}

/** Short description of any received value, for error messages. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return `'${v.length > 40 ? v.slice(0, 40) + '…' : v}' of type string`;
  if (typeof v === 'boolean' || typeof v === 'bigint') return `${String(v)} of type ${typeof v}`;
  if (ArrayBuffer.isView(v)) {
    const n = (v as unknown as { length?: number }).length;
    return `${v.constructor.name}(${n ?? v.byteLength})`;
  }
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'function') return 'a function';
  return `an object of type ${(v as object).constructor?.name ?? 'Object'}`;
}

/** The one message shape of argument errors. */
export function invalidArgument(what: string, name: string, received: unknown, raw = false): InvalidArgumentError {
  return new InvalidArgumentError(
    `Expected ${what} for ${name} but received ${raw ? String(received) : describeValue(received)}`,
  );
}

/**
 * Turns a rejection from the native addon into the matching typed error, keeping the
 * JavaScript call site's stack (native errors have none of their own).
 */
export function fromNative(e: unknown, callSiteStack?: string): Error {
  const err = e as { message?: string; code?: string; call?: string; file?: string; line?: number; device?: number;
    requestedBytes?: number; freeBytes?: number; totalBytes?: number };
  let out: Error;
  switch (err?.code) {
    case 'SR3D_INVALID_ARGUMENT':
      out = new InvalidArgumentError(String(err.message));
      break;
    case 'SR3D_CUDA':
      out = new CudaError(String(err.message), err);
      break;
    case 'SR3D_CUDA_OUT_OF_MEMORY':
      out = new CudaOutOfMemoryError(String(err.message), err);
      break;
    case 'SR3D_INTERNAL':
      out = new InternalError(String(err.message));
      break;
    default:
      return e instanceof Error ? e : new InternalError(String(e));
  }
  if (callSiteStack) {
    const frames = callSiteStack.split('\n').slice(1).join('\n');
    out.stack = `${out.name}: ${out.message}\n${frames}`;
  }
  return out;
}

// ---- errors of the model runtime and the pipeline (each also re-exported by its module) ----

/** A call on an engine while a {@link Engine.generate} iteration holds it (or a native call is in flight). */
export class EngineBusyError extends Sr3dError {
  constructor(message: string) {
    super(message, 'SR3D_ENGINE_BUSY');
  }
}

/** A call on an engine after {@link Engine.dispose}. */
export class EngineDisposedError extends Sr3dError {
  constructor(message = 'This engine was disposed: create a new one with createEngine()') {
    super(message, 'SR3D_ENGINE_DISPOSED');
  }
}

/** A request on a model whose queue already holds `maxQueuedRequests` waiting requests ({@link SR3D.load}). */
export class RequestQueueFullError extends Sr3dError {
  constructor(message: string) {
    super(message, 'SR3D_QUEUE_FULL');
  }
}

/**
 * A queued request whose `signal` aborted before it started: it never ran. `name` is
 * `'AbortError'`, like the DOM's, so `e.name === 'AbortError'` checks catch it too.
 */
export class RequestAbortedError extends Sr3dError {
  constructor(message = 'This request was aborted (its signal) while it waited in the model\'s queue; it did not run') {
    super(message, 'SR3D_ABORTED');
    this.name = 'AbortError';
  }
}

/** A tokenizer file is missing, unreadable or not a usable byte-level BPE tokenizer. */
export class TokenizerFileError extends Sr3dError {
  /** The file at fault. */
  readonly path: string;
  constructor(message: string, file: string) {
    super(message, 'SR3D_TOKENIZER_FILE');
    this.path = file;
  }
}

/**
 * A checkpoint file or folder that is missing, malformed or inconsistent with its config.
 * Its code is `SR3D_INVALID_ARGUMENT` (a broken checkpoint is a bad argument); `file` names
 * the file or folder at fault and `key` the tensor, when there is one.
 */
export class CheckpointError extends InvalidArgumentError {
  /** The file or folder at fault. */
  readonly file: string;
  /** The tensor key at fault ('' when the problem is not one tensor's). */
  readonly key: string;
  constructor(message: string, file: string, key = '') {
    super(message);
    this.file = file;
    this.key = key;
  }
}

/**
 * A scene that cannot be used: a bad manifest, a missing or escaping file, inconsistent
 * sizes, bad camera data, too many or no frames. `frame` is the 0-based frame index (null
 * when the problem is not one frame's); the message names it and ends with the fix.
 */
export class SceneError extends InvalidArgumentError {
  readonly frame: number | null;
  constructor(message: string, frame: number | null) {
    super(message);
    this.frame = frame;
  }
}

/**
 * A region spec that cannot be used: malformed text or object, a frame out of range, a box
 * outside its frame, a mask of the wrong size, a region that covers no pixel, a question
 * whose `<regionK>` placeholders do not match the regions given. `region` is the 0-based
 * region index (null when the problem is not one region's).
 */
export class RegionError extends InvalidArgumentError {
  readonly region: number | null;
  constructor(message: string, region: number | null) {
    super(message);
    this.region = region;
  }
}

/**
 * A checkpoint or a request that cannot run as asked: region prompts without a region
 * extractor, a prompt longer than the model's context, more frames than the model takes.
 */
export class ModelError extends Sr3dError {
  constructor(message: string) {
    super(message, 'SR3D_MODEL');
  }
}
