/**
 * The one module that loads the native binary, and the typed declaration of its whole
 * surface. Nothing else in sr3d touches the untyped addon.
 *
 * Selection (at first use):
 *  - `SR3D_DEVICE=cpu` forces the CPU build; `SR3D_DEVICE=cuda` forces the CUDA build
 *    (an error if it cannot be used).
 *  - Otherwise the CUDA build is chosen only when it exists and a probe in a child
 *    process (a bad driver can abort the process that loads it) reports a usable GPU;
 *    else the CPU build. The reason is in `loadInfo()` and in debug output
 *    (`NODE_DEBUG=sr3d`).
 * Search order per variant: `build/Release/sr3d_<variant>.node` (a local build), then
 * `prebuilds/<platform>-<arch>/sr3d-<variant>[.<tags>].node` (the shipped prebuilds, libc-tagged).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { debuglog } from 'util';

import { NativeLoadError } from './errors';

interface PrebuildTags { file: string; specificity: number }
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild = require('node-gyp-build') as {
  parseTags(file: string): PrebuildTags | undefined;
  matchTags(runtime: string, abi: string): (t: PrebuildTags | undefined) => boolean;
  compareTags(runtime: string): (a: PrebuildTags | undefined, b: PrebuildTags | undefined) => number;
};

const debug = debuglog('sr3d');

export type ImplName = 'reference' | 'fast' | 'cuda';

export interface ImplBaton {
  impl: ImplName;
  device?: number;
}

export interface NativeBackprojectBaton extends ImplBaton {
  depth: Float32Array | Uint16Array;
  depthDtype: 'float32' | 'uint16';
  frames: number;
  height: number;
  width: number;
  depthScale: number;
  intrinsics: Float32Array;
  poses: Float32Array | null;
  points: Float32Array;
  valid: Uint8Array;
}

export type NativeMode = 'isotropic' | 'minmax' | 'metric';

export interface NativeTransform {
  center: [number, number, number];
  scale: [number, number, number];
  validCount: number;
}

export interface NativeBuildInfo {
  cudaCompiled: boolean;
  cudaRuntimeVersion: number;
  cudaArchs: string;
  cpuThreads: number;
  simd: string;
  /** Vector features detected at run time (absent from addons built before they were reported). */
  simdFeatures?: string[];
  /** ISA of the int8-activation kernels (absent from addons built before they existed). */
  int8Activations?: string;
  /** ISA of the bf16-activation kernels (absent from addons built before they existed). */
  bf16Activations?: string;
}

export interface NativeDevice {
  index: number;
  name: string;
  totalMemory: number;
  computeCapability: string;
  multiprocessors: number;
  integrated: boolean;
  canMapHostMemory: boolean;
  zeroCopy: boolean;
  freeMemory?: number;
}

// ---- neural-network ops and the engine (native/engine.cc) ----

/** Weight element type: f32 data is a Float32Array, f16/bf16 data a Uint16Array of raw bits. */
export type NativeWeightDtype = 'f32' | 'f16' | 'bf16';

/** One weight handed to {@link NativeAddon.createEngine} (the CPU engine borrows `data`). */
export interface NativeWeight {
  name: string;
  dtype: NativeWeightDtype | 'q4' | 'q8';
  shape: number[];
  /** q4 / q8: the q bytes (kernels/weights.h), with scales, zeros, group and perm. */
  data: Float32Array | Uint16Array | Uint8Array;
  scales?: Float32Array;
  zeros?: Uint8Array;
  group?: number;
  perm?: Int32Array | null;
}

/** A step of a small sequential module; weight names are looked up as `<module>.<name>`. */
export type NativeMlpStep =
  | { kind: 'linear'; weight: string; bias?: string }
  | { kind: 'layer_norm'; weight: string; bias: string; eps: number }
  | { kind: 'gelu_erf' }
  | { kind: 'gelu_tanh' };

export interface NativeEngineSpec {
  vision?: {
    hidden: number; heads: number; intermediate: number; layersRun: number;
    imageSize: number; patchSize: number; eps: number; act: 'gelu_tanh' | 'gelu_erf';
  };
  projector?: { eps: number };
  llm?: {
    hidden: number; layers: number; heads: number; kvHeads: number; headDim: number;
    intermediate: number; vocab: number; eps: number; ropeTheta: number; tieWordEmbeddings: boolean;
  };
  mlps?: Record<string, NativeMlpStep[]>;
  /** KV-cache capacity in positions. */
  maxContext: number;
  /** The LLM's linears: exact f32, int8 (int4 / int8 weights) or bf16 (bf16 weights) activations (CPU only). Defaults to 'f32'. */
  activations?: 'f32' | 'int8' | 'bf16';
}

export interface NativeEngineInfo {
  device: string;
  weightBytes: number;
  kvCacheBytes: number;
  scratchBytes: number;
  maxContext: number;
  /** 'f32', or 'int8 (<isa>)' with the int8-activation kernels' ISA. */
  activations: string;
  /** Positions in the KV cache. */
  cached: number;
}

/**
 * A native engine (kernels/engine.h), called only by the TypeScript `Engine`
 * (lib/engine.ts), which owns every rule of a call (one at a time, nothing after dispose, the
 * model's parts, the arguments) and gives the typed errors. The native checks are guards: a
 * second call while one is in flight, any call after `dispose()` (info and seed throw) or an
 * argument the Engine should have refused rejects with code `SR3D_INTERNAL` (a bug).
 * `dispose()` waits for a call in flight.
 */
export interface NativeEngine {
  encodeTiles(b: { tiles: Float32Array; n: number; out: Float32Array }): Promise<void>;
  project(b: { features: Float32Array; n: number; out: Float32Array }): Promise<void>;
  runMlp(b: { module: string; x: Float32Array; rows: number; out: Float32Array }): Promise<void>;
  /** The 3D PE added into `features` in place (kernels/spatial_pe.h); `tile` in pixels. */
  addSpatialPe(b: { features: Float32Array; points: Float32Array; n: number; tile: number; numFreqs: number; includeInput: boolean; tilesPerImage: number }): Promise<void>;
  embedTokens(b: { ids: Int32Array; n: number; out: Float32Array }): Promise<void>;
  /** Empties the KV cache. */
  reset(): Promise<void>;
  /** [reset,] appends n positions; copies the last position's logits to `out` when given. */
  prefill(b: { embeddings: Float32Array; n: number; reset: boolean; out?: Float32Array | null }): Promise<void>;
  /** Copies the last position's logits. */
  logits(b: { out: Float32Array }): Promise<void>;
  /** Decodes prevToken (when >= 0), then samples from the last logits with the engine's RNG. */
  step(b: { prevToken: number; temperature: number; topP: number; topK: number }): Promise<number>;
  seed(n: number): void;
  info(): NativeEngineInfo;
  dispose(): Promise<void>;
}

/** The native surface (native/addon.cc). */
export interface NativeAddon {
  variant: 'cpu' | 'cuda';
  buildInfo(): NativeBuildInfo;
  devices(withFreeMemory?: boolean): { devices: NativeDevice[]; reason: string; driverVersion: number };
  setThreads(n: number): number;
  /** Benchmark helper: a = b + 3c on the kernel thread pool (synchronous). */
  triad(a: Float32Array, b: Float32Array, c: Float32Array): void;
  backproject(b: NativeBackprojectBaton): Promise<void>;
  scenePoints(b: NativeBackprojectBaton & { mode: NativeMode; quantile: number; output: 'canonical' | 'world' }): Promise<NativeTransform>;
  canonicalize(b: ImplBaton & { points: Float32Array; out: Float32Array; count: number; mode: NativeMode; quantile: number }): Promise<NativeTransform>;
  poolPoints(b: ImplBaton & { points: Float32Array; batch: number; height: number; width: number; patch: number; pooled: Float32Array; valid: Uint8Array }): Promise<void>;
  sinusoidalEncode(b: ImplBaton & { points: Float32Array; count: number; numFreqs: number; includeInput: boolean; features: Float32Array }): Promise<void>;

  // ---- tiling ops (native/tiling.cc) ----
  resizeBicubic(b: ImplBaton & { src: Uint8Array; height: number; width: number; dst: Uint8Array; outHeight: number; outWidth: number }): Promise<void>;
  /** Grid ops: a height x width source cut into cols x rows tiles of tileSize (+ the thumbnail when cols·rows > 1). */
  tileImage(b: ImplBaton & { src: Uint8Array; height: number; width: number; cols: number; rows: number; tileSize: number; tiles: Float32Array }): Promise<void>;
  tileNearest(b: ImplBaton & { src: Float32Array | Uint8Array; dtype: 'float32' | 'uint8'; channels: number; height: number; width: number; cols: number; rows: number; tileSize: number; dst: Float32Array | Uint8Array }): Promise<void>;

  // ---- region ops (native/region.cc) ----
  // The token grid of `features`: frames (F,h,w,C), or the tiles (N,g,g,C) of a (cols, rows) plan.
  stitchTiles(b: ImplBaton & { features: Float32Array; out: Float32Array; channels: number } & (
    { layout: 'frames'; frames: number; height: number; width: number } |
    { layout: 'tiles'; tiles: number; tile: number; cols: number; rows: number })): Promise<void>;
  maskPool(b: ImplBaton & {
    features: Float32Array; channels: number; masks: Uint8Array; regions: number; patch: number;
    mode: 'area' | 'spatialrgpt'; out: Float32Array;
    /** Given: masks are per tile, (regions, maskTiles, patch·g, patch·g) (tiles layout only). */
    maskTiles?: number;
  } & (
    { layout: 'frames'; frames: number; height: number; width: number } |
    { layout: 'tiles'; tiles: number; tile: number; cols: number; rows: number })): Promise<void>;
  box3dMasks(b: ImplBaton & {
    mode: 'inside' | 'project'; frames: number; height: number; width: number;
    /** center (3), rotation (9, row-major box-to-world), half extents (3). */
    box: Float64Array;
    points?: Float32Array; intrinsics?: Float32Array; poses?: Float32Array | null; near?: number;
    masks: Uint8Array;
  }): Promise<{ inside: number[]; valid: number[] }>;

  // ---- neural-network ops (native/nn.cc; kernels/{linear,attention,norms,activation,rope,projector}.h) ----
  /** weightDtype 'q4' / 'q8': weight is q (Uint8Array) with weightScales, weightZeros, weightGroup and weightPerm (kernels/weights.h). */
  nnLinear(b: ImplBaton & { x: Float32Array; n: number; inDim: number; outDim: number; weight: Float32Array | Uint16Array | Uint8Array; weightDtype: NativeWeightDtype | 'q4' | 'q8'; weightScales?: Float32Array; weightZeros?: Uint8Array; weightGroup?: number; weightPerm?: Int32Array | null; bias: Float32Array | null; out: Float32Array }): Promise<void>;
  nnLayerNorm(b: ImplBaton & { x: Float32Array; n: number; d: number; gamma: Float32Array; beta: Float32Array; eps: number; out: Float32Array }): Promise<void>;
  nnRmsNorm(b: ImplBaton & { x: Float32Array; n: number; d: number; gamma: Float32Array; eps: number; out: Float32Array }): Promise<void>;
  /** In place on x. */
  nnActivation(b: ImplBaton & { x: Float32Array; count: number; act: 'gelu_tanh' | 'gelu_erf' | 'silu' }): Promise<void>;
  nnSiluMul(b: ImplBaton & { gate: Float32Array; up: Float32Array; count: number; out: Float32Array }): Promise<void>;
  /** In place on x [tokens][heads][headDim]. */
  nnRope(b: ImplBaton & { x: Float32Array; tokens: number; heads: number; headDim: number; positions: Int32Array; theta: number }): Promise<void>;
  nnAttention(b: ImplBaton & { q: Float32Array; k: Float32Array; v: Float32Array; nq: number; nk: number; hq: number; hkv: number; d: number; scale: number; causal: boolean; qOffset: number; out: Float32Array }): Promise<void>;
  nnSpaceToChannel3(b: ImplBaton & { x: Float32Array; n: number; g: number; c: number; out: Float32Array }): Promise<void>;
  nnPatchEmbed(b: ImplBaton & { img: Float32Array; n: number; size: number; patch: number; hidden: number; weight: Float32Array | Uint16Array; weightDtype: NativeWeightDtype; bias: Float32Array | null; out: Float32Array }): Promise<void>;
  createEngine(b: NativeEngineSpec & { weights: NativeWeight[]; device: 'cpu' | 'cuda'; deviceIndex?: number }): Promise<NativeEngine>;
}

export interface LoadInfo {
  variant: 'cpu' | 'cuda';
  path: string;
  /** Why this variant was chosen. */
  reason: string;
}

/** The package root (works from lib/ under ts-jest and from dist/ when installed). */
export const packageRoot = (() => {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'sources.json'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..');
})();

function candidates(variant: 'cpu' | 'cuda'): string[] {
  const out: string[] = [];
  const local = path.join(packageRoot, 'build', 'Release', `sr3d_${variant}.node`);
  if (fs.existsSync(local)) out.push(local);
  const pre = path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`);
  if (fs.existsSync(pre)) {
    // node-gyp-build's tag rules pick among prebuilds (e.g. sr3d-cpu.glibc.node is skipped
    // on musl); the variant (cpu/cuda) is ours to choose, which node-gyp-build cannot do.
    const match = nodeGypBuild.matchTags('node', process.versions.modules);
    const tagged = fs.readdirSync(pre)
      .filter((f) => f.startsWith(`sr3d-${variant}.`) && f.endsWith('.node'))
      .map((f) => nodeGypBuild.parseTags(f))
      .filter(match)
      .sort(nodeGypBuild.compareTags('node'));
    for (const t of tagged) out.push(path.join(pre, t!.file));
  }
  return out;
}

/** Loads `file` in a child process and asks for its devices: a crash there cannot hurt us. */
function probeCuda(file: string): { ok: boolean; reason: string } {
  const script =
    'const n=require(process.argv[1]);const d=n.devices();' +
    'process.stdout.write(JSON.stringify({count:d.devices.length,reason:d.reason,names:d.devices.map(x=>x.name)}))';
  const r = spawnSync(process.execPath, ['-e', script, file], { encoding: 'utf8', timeout: 30000 });
  if (r.error) return { ok: false, reason: `the CUDA probe could not run (${r.error.message})` };
  if (r.status !== 0) {
    const why = r.signal ? `was killed by ${r.signal}` : `exited with ${r.status}`;
    return { ok: false, reason: `the CUDA probe ${why}: ${(r.stderr || '').trim().split('\n').slice(-1)[0] ?? ''}` };
  }
  try {
    const j = JSON.parse(r.stdout) as { count: number; reason: string; names: string[] };
    if (j.count > 0) return { ok: true, reason: `CUDA build usable on ${j.count} GPU(s): ${j.names.join(', ')}` };
    return { ok: false, reason: `the CUDA build sees no usable GPU (${j.reason || 'no devices'})` };
  } catch {
    return { ok: false, reason: `the CUDA probe printed no result` };
  }
}

function loadError(detail: string): NativeLoadError {
  const tag = `${process.platform}-${process.arch}`;
  return new NativeLoadError(
    `Could not load the sr3d native binary for ${tag} (Node ${process.versions.node}, N-API ${process.versions.napi}).\n` +
      `${detail}\n` +
      'Possible solutions:\n' +
      '  1. If your npm blocked install scripts (npm >= 11 does by default), approve and rebuild:\n' +
      '       npm install-scripts approve sr3d && npm rebuild sr3d\n' +
      '  2. Build it from source (needs cmake >= 3.18 and a C++17 compiler; nvcc for CUDA):\n' +
      '       npx sr3d build\n' +
      `  3. Use a platform with a prebuilt binary (this package ships prebuilds for: ${shippedPlatforms()}).\n` +
      '  4. Set SR3D_DEVICE=cpu to skip the CUDA build if it is the one failing.',
  );
}

function shippedPlatforms(): string {
  const dir = path.join(packageRoot, 'prebuilds');
  return fs.existsSync(dir) ? fs.readdirSync(dir).join(', ') || 'none' : 'none';
}

function tryRequire(file: string): { addon?: NativeAddon; error?: string } {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { addon: require(file) as NativeAddon };
  } catch (e) {
    return { error: `${file}: ${(e as Error).message}` };
  }
}

let loaded: { addon: NativeAddon; info: LoadInfo } | undefined;

function load(): { addon: NativeAddon; info: LoadInfo } {
  if (loaded) return loaded;
  const forced = (process.env.SR3D_DEVICE ?? '').toLowerCase();
  if (forced && forced !== 'cpu' && forced !== 'cuda' && forced !== 'auto') {
    throw loadError(`SR3D_DEVICE must be 'cpu', 'cuda' or 'auto' but is '${process.env.SR3D_DEVICE}'.`);
  }
  const errors: string[] = [];
  let reason = '';
  if (forced !== 'cpu') {
    const cuda = candidates('cuda');
    if (cuda.length === 0) {
      reason = 'no CUDA build present';
    }
    for (const file of cuda) {
      const probe = probeCuda(file);
      debug('probe %s: %s', file, probe.reason);
      if (!probe.ok) {
        reason = probe.reason;
        errors.push(`${file}: ${probe.reason}`);
        continue;
      }
      const r = tryRequire(file);
      if (r.addon) {
        loaded = { addon: r.addon, info: { variant: 'cuda', path: file, reason: probe.reason } };
        debug('loaded %s (%s)', file, probe.reason);
        return loaded;
      }
      errors.push(r.error!);
      reason = r.error!;
    }
    if (forced === 'cuda') {
      throw loadError(`SR3D_DEVICE=cuda but no usable CUDA build: ${errors.join('; ') || reason}.`);
    }
  } else {
    reason = 'SR3D_DEVICE=cpu';
  }
  for (const file of candidates('cpu')) {
    const r = tryRequire(file);
    if (r.addon) {
      const why = `CPU build (${reason})`;
      loaded = { addon: r.addon, info: { variant: 'cpu', path: file, reason: why } };
      debug('loaded %s: %s', file, why);
      return loaded;
    }
    errors.push(r.error!);
  }
  throw loadError(errors.length ? `Tried: ${errors.join('; ')}` : 'No binary was found in build/Release or prebuilds/.');
}

/** The loaded addon (loads it on first use). */
export function native(): NativeAddon {
  return load().addon;
}

/** Which binary was loaded and why. */
export function loadInfo(): LoadInfo {
  return load().info;
}

// ---- the optional TensorRT-LLM backend (native/trtllm.cc; built only with SR3D_TRTLLM_ROOT) ----

/** One streamed response of a TensorRT-LLM request (delivered on the JS thread). */
export interface NativeTrtllmResponse {
  requestId: number;
  /** The new tokens of this step (beam 0). */
  tokens: Int32Array;
  isFinal: boolean;
  /** The executor's error text, or null. */
  error: string | null;
  /** TensorRT-LLM's FinishReason of beam 0 (0 not finished, 1 end id, 2 stop word, 3 length; 4 timed out / 5 cancelled on newer releases); -1 when the API has none (v0.12). */
  finishReason: number;
}

/** What native/trtllm.cc sends to TensorRT-LLM as one `Request` with a `PromptTuningConfig`. */
export interface NativeTrtllmRequest {
  inputIds: Int32Array;
  /** (tableRows, hidden): fp16 / bf16 bits or float32, as tableDtype says (the engine's dtype). */
  table: Uint16Array | Float32Array;
  tableDtype: 'float16' | 'bfloat16' | 'float32';
  tableRows: number;
  hidden: number;
  /** One per input id (KV-reuse keys of table positions); null for none. Ignored by the v0.12 API, which has no such field. */
  extraIds: Float64Array | null;
  maxNewTokens: number;
  /** Unset (greedy through topK 1) when null. */
  temperature: number | null;
  topK: number | null;
  topP: number | null;
  seed: number | null;
  endId: number;
  /** Each a one-token stop word. */
  stopIds: Int32Array;
}

/** A TensorRT-LLM Executor over one engine folder. */
export interface NativeTrtllmExecutor {
  /** Enqueues a streaming request; returns its id. Responses go to createExecutor's onResponse. */
  enqueue(r: NativeTrtllmRequest): number;
  cancel(requestId: number): void;
  /** Stops the response thread and the executor; idempotent. */
  shutdown(): Promise<void>;
}

/** The separate addon build/Release/sr3d_trtllm.node. */
export interface NativeTrtllmAddon {
  /** The API the addon was compiled against: 'v0.12' (v0.12.0-jetson) or 'main'. */
  api: string;
  /** tensorrt_llm::executor::version() of the linked library. */
  version(): string;
  createExecutor(b: {
    engineDir: string; enableBlockReuse: boolean; freeGpuMemoryFraction: number | null;
    onResponse: (r: NativeTrtllmResponse) => void;
  }): Promise<NativeTrtllmExecutor>;
}

let trtllmLoaded: { addon?: NativeTrtllmAddon; reason: string } | undefined;

/**
 * The TensorRT-LLM addon when it was built (`SR3D_TRTLLM_ROOT=… npx sr3d build`), else why not.
 * Loaded apart from the main addon, so that a machine without TensorRT-LLM's libraries still
 * loads sr3d.
 */
export function trtllmAddon(): { addon?: NativeTrtllmAddon; reason: string } {
  if (trtllmLoaded) return trtllmLoaded;
  const file = process.env.SR3D_TRTLLM_ADDON || path.join(packageRoot, 'build', 'Release', 'sr3d_trtllm.node');
  if (!fs.existsSync(file)) {
    trtllmLoaded = { reason: `${file} does not exist (the TensorRT-LLM backend is built only when SR3D_TRTLLM_ROOT names a TensorRT-LLM install)` };
  } else {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      trtllmLoaded = { addon: require(file) as NativeTrtllmAddon, reason: `loaded ${file}` };
    } catch (e) {
      trtllmLoaded = { reason: `${file} failed to load: ${(e as Error).message}` };
    }
  }
  debug('trtllm: %s', trtllmLoaded.reason);
  return trtllmLoaded;
}
