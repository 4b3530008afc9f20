/**
 * The native inference engine (spec Part B §3-§5, Part A §A5, §A6, §A9): the SigLIP vision
 * tower, NVILA's 3x3 projector, the SR-3D MLP modules and the Qwen2 decoder with a KV cache,
 * on the CPU (C++) or a CUDA GPU. The interface is narrow on purpose — tiles in, features
 * out; embeddings in, a token stream out — so other engines (TensorRT-LLM) can sit behind it.
 *
 * ```ts
 * const ckpt = await loadCheckpoint(dir);
 * const engine = await createEngine(ckpt, { device: 'auto' });
 * const feats = await engine.encodeTiles(tiles);      // (N, 1024, 1152)
 * const toks = await engine.project(feats);           // (N, 121, 3584)
 * for await (const id of engine.generate(embeddings, { maxNewTokens: 64 })) process.stdout.write(decode([id]));
 * await engine.dispose();
 * ```
 */
import type { Checkpoint, WeightSet } from './checkpoint_types';
import { pickImpl } from './dispatch';
import { InvalidArgumentError, Sr3dError, fromNative, invalidArgument } from './errors';
import { native } from './native';
import type { NativeEngine, NativeEngineSpec, NativeMlpStep, NativeWeight } from './native';
import { toContiguous, toNdArray } from './tensor';
import { checkActivations, checkSampling } from './validate';
import type { Activations } from './validate';
import { LLM_WEIGHTS, MLP_MODULES, NATIVE_PREFIX, PROJECTOR_WEIGHTS, REGION_WEIGHTS, SPATIAL_PE_WEIGHTS, biasOf, weightOf } from './weights';
import type { NdArray, TensorLike } from './tensor';
import { EngineBusyError, EngineDisposedError } from './errors';
export { EngineBusyError, EngineDisposedError };



/** Options of {@link createEngine}. */
export interface EngineOptions {
  /**
   * `'cpu'`, `'cuda'` (needs the CUDA build and a usable GPU) or `'auto'` (CUDA when the
   * loaded binary has a usable GPU, else CPU). Defaults to `'auto'`.
   */
  device?: 'auto' | 'cpu' | 'cuda';
  /** CUDA device index for `'cuda'` / `'auto'`. Defaults to `0`. */
  deviceIndex?: number;
  /**
   * KV-cache capacity in positions (prompt + generated tokens); the cache is allocated whole at
   * load (2 · layers · kvHeads · headDim · 4 bytes per position). A request that needs more is a
   * typed error naming this option. Defaults to the smallest of {@link DEFAULT_MAX_CONTEXT}
   * (4096), the checkpoint's `model_max_length` (NVILA-Lite: 4096) and the LLM's
   * `max_position_embeddings`: a config's maximum alone never sizes the cache.
   */
  maxContext?: number;
  /**
   * What the language model's linears multiply their weights with: `'f32'`, the exact path
   * (for int4 / int8 weights: the result of the float32 weights dequantized); `'int8'`, for
   * int4 / int8 weights, each input row cut into 32-input blocks quantized to int8 with one
   * float scale each (llama.cpp's Q8_0 activations) and integer dot products (AVX-512 VNNI,
   * arm64 SDOT where the CPU has them); `'bf16'`, for bf16 weights, the activations rounded to
   * bf16 and bf16 x bf16 products summed in float32 (llama.cpp's precision for bf16 weights;
   * AVX-512 BF16 `vdpbf16ps` where the CPU has it, the same bits elsewhere). Both are faster
   * and within the activation rounding of the exact result. CPU only (a CUDA engine refuses
   * them); weights a mode does not cover (int groups not a multiple of 32; under `'bf16'`
   * anything but bf16) stay exact. Defaults to `'f32'`.
   */
  activations?: Activations;
}

/**
 * The KV-cache capacity when {@link EngineOptions.maxContext} is not given, in positions: NVILA-Lite's
 * `model_max_length`. A config claiming 2^24 positions would otherwise zero-fill an 8.6 GB cache
 * for a 37 MB model; pass `maxContext` to raise it.
 */
export const DEFAULT_MAX_CONTEXT = 4096;

/** Modules {@link Engine.runMlp} runs: the 3D-PE MLP (§A5) and the region projector (§A6). */
export type MlpModule = (typeof MLP_MODULES)[keyof typeof MLP_MODULES];

/** Options of {@link Engine.generate}. */
export interface GenerateOptions {
  /**
   * Most tokens to generate (stop tokens not counted). Defaults to the generation config's
   * `max_new_tokens`, else `512`. Generation also ends when the KV cache is full.
   */
  maxNewTokens?: number;
  /**
   * Sampling temperature; `0` (the default) is greedy (argmax, the lowest id wins a tie).
   * The checkpoint's generation_config sampling values (temperature 0.7, top_p 0.8, top_k 20
   * for Qwen2) are deliberately NOT applied by default: NVILA's benchmarks decode greedily.
   * Pass them explicitly to sample like `model.generate(do_sample=True)`. Defaults to `0`.
   */
  temperature?: number;
  /** Nucleus sampling mass in (0, 1] (temperature > 0 only). Defaults to `1` (off). */
  topP?: number;
  /** Keep the k most likely tokens (temperature > 0 only); `0` is off. Defaults to `0`. */
  topK?: number;
  /**
   * Seed of the sampler (an integer in [0, 2^53)): the same seed, prompt and options give
   * the same tokens. Defaults to a random seed (greedy decoding does not use it).
   */
  seed?: number;
  /**
   * Token ids that end generation; the stop token itself is not yielded. Defaults to the
   * checkpoint's eos ids (generation_config `eos_token_id`, e.g. `<|im_end|>` 151645).
   */
  stopTokenIds?: readonly number[];
  /** Aborting ends the iteration after the token being computed (no error). Defaults to none. */
  signal?: AbortSignal;
  /**
   * Append `embeddings` after what the KV cache already holds (a conversation's next turn)
   * instead of starting over. The cache then holds the previous prompt and every generated
   * token except {@link Engine.pendingToken}, which the caller puts first in the new rows if
   * it belongs to the text. Defaults to `false`.
   */
  append?: boolean;
}

/**
 * Why a generation ended: `'stop'` at a stop token, `'length'` at `maxNewTokens` or a full KV
 * cache, `'aborted'` when its signal aborted.
 */
export type StopReason = 'stop' | 'length' | 'aborted';

/** What {@link Engine.generate} returns: the token stream, and afterwards why it ended. */
export interface GenerationStream extends AsyncIterable<number> {
  /** Set when the iteration ends on its own; null before, and when the consumer broke out. */
  readonly stopReason: StopReason | null;
}

/** What {@link Engine.info} reports. */
export interface EngineInfo {
  /** `'cpu'` or `'cuda:<index>'`. */
  device: string;
  /** Resident weight bytes (device bytes for CUDA). */
  weightBytes: number;
  /** Bytes of the allocated KV cache. */
  kvCacheBytes: number;
  /** KV-cache capacity in positions. */
  maxContext: number;
  /** {@link EngineOptions.activations}; `'int8'` / `'bf16'` with the kernels' ISA, e.g. `'int8 (avx512vnni)'`, `'bf16 (avx512bf16)'`. */
  activations: string;
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Model inputs must be finite: a NaN or Inf would spread through every later position and
 * come out as NaN features or logits, never as an error. The scan costs nothing next to the
 * model.
 */
function requireFinite(data: Float32Array, name: string, shape: readonly number[], fix: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      let rest = i;
      const idx = shape.map((_, d) => {
        const stride = shape.slice(d + 1).reduce((a, b) => a * b, 1);
        const q = Math.floor(rest / stride);
        rest -= q * stride;
        return q;
      });
      const err = invalidArgument('finite values', `${name}[${idx.join(', ')}]`, data[i]);
      err.message += `. Fix: ${fix}`;
      throw err;
    }
  }
}

function checkOptions(opts: unknown, name = 'options'): void {
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgument('an options object', name, opts);
}

/**
 * The native error of an engine call as the matching typed error, with the caller's stack.
 * The Engine owns the busy / disposed / argument rules (the native engine reports a broken one
 * as SR3D_INTERNAL, an `InternalError`); what remains are the engine's own failures
 * (CUDA, memory) and the C++ engine's checks.
 */
function engineError(e: unknown, stack?: string): Error {
  return fromNative(e, stack);
}

interface Dims {
  vision?: { tokens: number; hidden: number; imageSize: number };
  projector?: { tokens: number; outDim: number };
  llm?: { hidden: number; vocab: number };
  mlps: Map<string, { inDim: number; outDim: number }>;
  /** The checkpoint's spatial_pe config (sinusoid features), when it has spatial_pe/. */
  spatialPe?: { numFreqs: number; includeInput: boolean };
}

/**
 * A loaded model on one device. Calls run one at a time in call order (each waits for the
 * previous one). A {@link Engine.generate} iteration holds the engine from its first token to
 * its end: any other call made meanwhile rejects with {@link EngineBusyError} (waiting instead
 * could deadlock a loop that calls the engine while iterating). Free it with
 * {@link Engine.dispose}; GPU memory is never left to the garbage collector.
 */
export class Engine {
  private pending: number | null = null;
  private epoch = 0;
  private readonly handle: NativeEngine;
  private readonly dims: Dims;
  private readonly eos: number[];
  private readonly defaultMaxNew: number;
  private readonly maxContext: number;
  private tail: Promise<unknown> = Promise.resolve();
  private generating = false;
  private disposePromise: Promise<void> | undefined;

  /** @internal Use {@link createEngine}. */
  constructor(handle: NativeEngine, dims: Dims, eos: number[], defaultMaxNew: number, maxContext: number) {
    this.handle = handle;
    this.dims = dims;
    this.eos = eos;
    this.defaultMaxNew = defaultMaxNew;
    this.maxContext = maxContext;
  }

  /**
   * The last token the previous {@link generate} sampled but did not add to the KV cache (its
   * stop token, or the last token yielded when `maxNewTokens` or an abort ended it); null when
   * none. A conversation's next turn (`append: true`) starts with it when it belongs to the text.
   */
  get pendingToken(): number | null {
    return this.pending;
  }

  /**
   * Counts the times the KV cache was started over ({@link logits}, {@link generate} without
   * `append`): a caller continuing a conversation checks that it has not changed since its turn.
   */
  get cacheEpoch(): number {
    return this.epoch;
  }

  /** Positions the KV cache holds now (a conversation checks its next turn fits). */
  get cachedPositions(): number {
    if (this.disposePromise) throw new EngineDisposedError();
    return this.handle.info().cached;
  }

  private check(): void {
    if (this.disposePromise) throw new EngineDisposedError();
    if (this.generating) {
      throw new EngineBusyError('This engine is generating: finish or break out of the generate() iteration (or abort its signal) before calling it again');
    }
  }

  /** Runs `f` after every call queued before it (the engine's FIFO), mapping native errors. */
  private enqueue<T>(f: () => Promise<T>): Promise<T> {
    const site = new Error().stack;
    try {
      this.check();
    } catch (e) {
      return Promise.reject(e);
    }
    const run = async () => {
      if (this.disposePromise) throw new EngineDisposedError();
      try {
        return await f();
      } catch (e) {
        throw engineError(e, site);
      }
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  /**
   * SigLIP over tiles: patch embedding, position embedding and the encoder layers up to the
   * configured one (`mm_vision_select_layer`, -2 for NVILA: 26 of 27 layers), all tokens kept.
   * @param tiles (N, 3, S, S) float32 normalized pixels (S = 448 for NVILA; `tileImage` output).
   * @returns (N, (S/14)², visionHidden) float32: (N, 1024, 1152) for NVILA.
   */
  async encodeTiles(tiles: TensorLike): Promise<NdArray<Float32Array>> {
    const v = this.dims.vision;
    if (!v) throw invalidArgument('an engine with a vision tower', 'encodeTiles', 'an engine without one', true);
    const S = v.imageSize;
    const t = toContiguous(tiles, 'tiles', { dtypes: ['float32'], ranks: [4], what: `tiles (N, 3, ${S}, ${S}) float32` });
    if (t.shape[1] !== 3 || t.shape[2] !== S || t.shape[3] !== S) {
      throw invalidArgument(`tiles (N, 3, ${S}, ${S}) float32`, 'tiles.shape', shapeText(t.shape), true);
    }
    const n = t.shape[0];
    requireFinite(t.data as Float32Array, 'tiles', t.shape, 'pass normalized pixels, e.g. the output of tileImage()');
    const out = new Float32Array(n * v.tokens * v.hidden);
    if (n > 0) await this.enqueue(() => this.handle.encodeTiles({ tiles: t.data as Float32Array, n, out }));
    else this.check();
    return toNdArray(out, [n, v.tokens, v.hidden]);
  }

  /**
   * NVILA's `mlp_downsample_3x3_fix` projector: zero pad, 3x3 space-to-channel, LN, Linear,
   * GELU(erf), LN, Linear, GELU(erf), Linear (spec Part B §4).
   * @param features (N, T, visionHidden) float32 ({@link encodeTiles} output, plus the 3D PE).
   * @returns (N, ceil(√T/3)², llmHidden) float32: (N, 121, 3584) for NVILA.
   */
  async project(features: TensorLike): Promise<NdArray<Float32Array>> {
    const v = this.dims.vision, p = this.dims.projector;
    if (!v || !p) throw invalidArgument('an engine with a vision tower and a projector', 'project', 'an engine without them', true);
    const f = toContiguous(features, 'features', { dtypes: ['float32'], ranks: [3], what: `features (N, ${v.tokens}, ${v.hidden}) float32` });
    if (f.shape[1] !== v.tokens || f.shape[2] !== v.hidden) {
      throw invalidArgument(`features (N, ${v.tokens}, ${v.hidden}) float32`, 'features.shape', shapeText(f.shape), true);
    }
    const n = f.shape[0];
    requireFinite(f.data as Float32Array, 'features', f.shape, 'pass encodeTiles() output (plus a finite 3D PE)');
    const out = new Float32Array(n * p.tokens * p.outDim);
    if (n > 0) await this.enqueue(() => this.handle.project({ features: f.data as Float32Array, n, out }));
    else this.check();
    return toNdArray(out, [n, p.tokens, p.outDim]);
  }

  /**
   * Runs an SR-3D MLP module over rows: `'spatial_pe'` (Linear → GELU(erf) → Linear, §A5:
   * sinusoidal point features → vision hidden) or `'region'` (the region projector, §A6:
   * vision hidden → LLM hidden). Both exist only when the checkpoint has the folder.
   * @param x (rows, in) or (in) float32.
   * @returns (rows, out) or (out) float32.
   */
  async runMlp(module: MlpModule, x: TensorLike): Promise<NdArray<Float32Array>> {
    const m = this.dims.mlps.get(module as string);
    if (!m) {
      const have = [...this.dims.mlps.keys()].map((k) => `'${k}'`).join(' or ');
      throw invalidArgument(have ? `${have} (the modules this checkpoint has)` : 'a module (this checkpoint has no spatial_pe/ or region_extractor/)', 'module', module);
    }
    const t = toContiguous(x, 'x', { dtypes: ['float32'], ranks: [1, 2], lastDim: m.inDim, what: `rows (rows, ${m.inDim}) float32` });
    const rows = t.shape.length === 1 ? 1 : t.shape[0];
    requireFinite(t.data as Float32Array, 'x', t.shape, module === 'spatial_pe'
      ? 'encode only points with valid depth (sinusoidalEncode gives NaN rows for invalid points; zero them or leave them out)'
      : 'pass finite pooled features');
    const out = new Float32Array(rows * m.outDim);
    if (rows > 0) await this.enqueue(() => this.handle.runMlp({ module, x: t.data as Float32Array, rows, out }));
    else this.check();
    return toNdArray(out, t.shape.length === 1 ? [m.outDim] : [rows, m.outDim]);
  }

  /**
   * Adds the 3D positional encoding (§A4-§A5) to vision features in one native call: pools
   * each tile's canonical points to its patches, sinusoid-encodes the patches with a valid
   * point (the checkpoint's spatial_pe numFreqs / includeInput), runs the `spatial_pe` MLP on
   * those rows and adds the result; a patch without a valid point keeps its features. Equals
   * add per image, bit for bit. Several images' tiles go in one call.
   * @param features (N, tokens, visionHidden) float32, {@link encodeTiles} output (not modified).
   * @param points (N, S, S, 3) float32 canonical point maps of the same N tiles (S = the
   *   tile size, what tilePointMap gives); NaN (any non-finite coordinate) = no valid depth.
   * @param opts.tilesPerImage tiles of one image (a plan's `tiles`): the MLP runs per image on
   *   its valid rows, as the per-image chain does (on CUDA the MLP's bits depend on the row
   *   count). Defaults to N (one image).
   * @returns (N, tokens, visionHidden) float32: features + PE.
   */
  async addSpatialPe(features: TensorLike, points: TensorLike, opts?: { tilesPerImage?: number }): Promise<NdArray<Float32Array>> {
    const v = this.dims.vision;
    if (!v) throw invalidArgument('an engine with a vision tower', 'addSpatialPe', 'an engine without one', true);
    const pe = this.dims.spatialPe;
    if (!pe || !this.dims.mlps.has(MLP_MODULES.spatialPe)) {
      throw invalidArgument('an engine whose checkpoint has spatial_pe/ (the 3D-PE MLP)', 'addSpatialPe', 'an engine without it');
    }
    const f = toContiguous(features, 'features', { dtypes: ['float32'], ranks: [3], what: `features (N, ${v.tokens}, ${v.hidden}) float32` });
    if (f.shape[1] !== v.tokens || f.shape[2] !== v.hidden) {
      throw invalidArgument(`features (N, ${v.tokens}, ${v.hidden}) float32`, 'features.shape', shapeText(f.shape), true);
    }
    const S = v.imageSize, n = f.shape[0];
    const p = toContiguous(points, 'points', { dtypes: ['float32'], ranks: [4], lastDim: 3, what: `point tiles (${n}, ${S}, ${S}, 3) float32` });
    if (p.shape[0] !== n || p.shape[1] !== S || p.shape[2] !== S) {
      throw invalidArgument(`point tiles (${n}, ${S}, ${S}, 3) float32 (one ${S}x${S} point map per feature tile)`, 'points.shape', shapeText(p.shape), true);
    }
    const per = opts?.tilesPerImage ?? Math.max(n, 1);
    if (!Number.isInteger(per) || per < 1 || (n > 0 && n % per !== 0)) {
      throw invalidArgument(`a positive divisor of the ${n} tiles`, 'tilesPerImage', opts?.tilesPerImage);
    }
    const out = Float32Array.from(f.data as Float32Array);
    if (n > 0) {
      await this.enqueue(() => this.handle.addSpatialPe({
        features: out, points: p.data as Float32Array, n, tile: S, numFreqs: pe.numFreqs, includeInput: pe.includeInput, tilesPerImage: per,
      }));
    } else this.check();
    return toNdArray(out, [n, v.tokens, v.hidden]);
  }

  /**
   * Token embeddings (rows of `embed_tokens`), to splice with image and region embeddings.
   * @param ids token ids in [0, vocab).
   * @returns (n, llmHidden) float32.
   */
  async embedTokens(ids: ArrayLike<number>): Promise<NdArray<Float32Array>> {
    const l = this.llm('embedTokens');
    const a = this.ids(ids, 'ids', l.vocab);
    const out = new Float32Array(a.length * l.hidden);
    if (a.length > 0) await this.enqueue(() => this.handle.embedTokens({ ids: a, n: a.length, out }));
    else this.check();
    return toNdArray(out, [a.length, l.hidden]);
  }

  /**
   * The LLM's last-position logits for an embedding sequence (for checking against a
   * reference): empties the KV cache and prefills `embeddings`.
   * @param embeddings (L, llmHidden) float32, 1 <= L <= maxContext.
   * @returns `vocab` float32 logits.
   */
  async logits(embeddings: TensorLike): Promise<Float32Array> {
    const e = this.embeddings(embeddings);
    const out = new Float32Array(this.dims.llm!.vocab);
    await this.enqueue(() => {
      this.epoch++;
      this.pending = null;
      return this.handle.prefill({ embeddings: e.data, n: e.n, reset: true, out });
    });
    return out;
  }

  /**
   * Generates tokens after a prompt given as embeddings (text embeddings from
   * {@link embedTokens} with image / region embeddings spliced in), streaming each id as soon
   * as it is decoded. Greedy unless `temperature > 0`. Ends at a stop token (not yielded), at
   * `maxNewTokens`, when the KV cache is full, when `signal` aborts, or when the consumer
   * breaks out of `for await` (the engine is then free again). Nothing runs until the first
   * `next()`; while the iteration is active every other call on this engine rejects with
   * {@link EngineBusyError}.
   * @param embeddings (L, llmHidden) float32, 1 <= L <= maxContext.
   */
  generate(embeddings: TensorLike, opts: GenerateOptions = {}): GenerationStream {
    checkOptions(opts);
    const e = this.embeddings(embeddings);
    const o = this.generateOptions(opts);
    const stream = {
      stopReason: null as StopReason | null,
      [Symbol.asyncIterator]: () => this.generation(e.data, e.n, o, (r) => { stream.stopReason = r; }),
    };
    return stream;
  }

  /** Device, memory and capacity. Throws {@link EngineDisposedError} after {@link dispose}. */
  info(): EngineInfo {
    if (this.disposePromise) throw new EngineDisposedError();
    const i = this.handle.info();
    return { device: i.device, weightBytes: i.weightBytes, kvCacheBytes: i.kvCacheBytes, maxContext: this.maxContext, activations: i.activations };
  }

  /**
   * Frees the engine: weights, KV cache and scratch (device memory on CUDA). Waits for a call
   * in flight; calls queued behind it, later calls and a running generation then fail with
   * {@link EngineDisposedError}. A second call is a no-op (returns the same promise).
   */
  dispose(): Promise<void> {
    if (!this.disposePromise) this.disposePromise = this.handle.dispose().catch((e) => { throw engineError(e); });
    return this.disposePromise;
  }

  /** `await using engine = await createEngine(…)` disposes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  // ---- internals ----

  private llm(name: string): { hidden: number; vocab: number } {
    const l = this.dims.llm;
    if (!l) throw invalidArgument('an engine with a language model', name, 'an engine without one', true);
    return l;
  }

  private ids(ids: ArrayLike<number>, name: string, vocab: number): Int32Array {
    if (ids === null || typeof ids !== 'object' || typeof (ids as ArrayLike<number>).length !== 'number') {
      throw invalidArgument('an array of token ids', name, ids);
    }
    const a = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i];
      if (!Number.isInteger(v) || v < 0 || v >= vocab) throw invalidArgument(`a token id in [0, ${vocab})`, `${name}[${i}]`, v);
      a[i] = v;
    }
    return a;
  }

  private embeddings(x: TensorLike): { data: Float32Array; n: number } {
    const l = this.llm('embeddings');
    const t = toContiguous(x, 'embeddings', { dtypes: ['float32'], ranks: [2], lastDim: l.hidden, what: `embeddings (L, ${l.hidden}) float32` });
    const n = t.shape[0];
    if (n < 1 || n > this.maxContext) {
      throw invalidArgument(`between 1 and ${this.maxContext} positions (maxContext)`, 'embeddings.shape', shapeText(t.shape), true);
    }
    requireFinite(t.data as Float32Array, 'embeddings', t.shape, 'splice finite rows (embedTokens(), project() and runMlp() outputs)');
    return { data: t.data as Float32Array, n };
  }

  private generateOptions(o: GenerateOptions) {
    const vocab = this.dims.llm!.vocab;
    const { maxNewTokens, temperature, topP, topK, seed: given, stopIds } = checkSampling(o, { vocab, eos: this.eos, defaultMaxNewTokens: this.defaultMaxNew });
    const stopSet = new Set<number>(stopIds);
    const signal = o.signal;
    if (signal !== undefined && (signal === null || typeof signal !== 'object' || typeof signal.aborted !== 'boolean')) {
      throw invalidArgument('an AbortSignal', 'signal', signal);
    }
    const seed = given ?? Math.floor(Math.random() * Number.MAX_SAFE_INTEGER);
    const append = o.append ?? false;
    if (typeof append !== 'boolean') throw invalidArgument('a boolean', 'append', append);
    return { maxNewTokens, temperature, topP, topK: Math.min(topK, vocab), seed, stop: stopSet, signal, append };
  }

  private async *generation(emb: Float32Array, n: number, o: ReturnType<Engine['generateOptions']>, end: (r: StopReason) => void):
    AsyncGenerator<number, void, undefined> {
    const site = new Error().stack;
    // Take the engine: wait for the calls queued before us, then hold it until the end.
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    const turn = this.enqueue(async () => {
      this.generating = true;
    });
    this.tail = this.tail.then(() => held);
    try {
      await turn;
    } catch (e) {
      release();
      throw e;
    }
    try {
      if (o.signal?.aborted) return end('aborted');
      if (o.maxNewTokens === 0) return end('length');
      const call = async <T>(f: () => Promise<T>): Promise<T> => {
        if (this.disposePromise) throw new EngineDisposedError();
        try {
          return await f();
        } catch (e) {
          throw engineError(e, site);
        }
      };
      this.handle.seed(o.seed);
      if (!o.append) this.epoch++;
      this.pending = null;
      const before = o.append ? this.handle.info().cached : 0;
      if (before + n > this.maxContext) {
        throw invalidArgument(`at most ${this.maxContext - before} positions (maxContext ${this.maxContext}, ${before} cached)`,
          'embeddings.shape', `[${n}, ${this.dims.llm!.hidden}]`, true);
      }
      await call(() => this.handle.prefill({ embeddings: emb, n, reset: !o.append }));
      let cached = before + n, prev = -1;
      for (let i = 0; i < o.maxNewTokens; i++) {
        if (o.signal?.aborted) return end('aborted');
        if (prev >= 0 && cached >= this.maxContext) return end('length'); // no room to append the last token
        const token = await call(() => this.handle.step({ prevToken: prev, temperature: o.temperature, topP: o.topP, topK: o.topK }));
        if (prev >= 0) cached++;
        this.pending = token;
        if (o.signal?.aborted) return end('aborted');
        if (o.stop.has(token)) return end('stop');
        yield token;
        prev = token;
      }
      end('length');
    } finally {
      this.generating = false;
      release();
    }
  }
}

/** @internal The native engine behind an {@link Engine}: tests only (token-by-token prefill); the library uses the Engine's own API. */
export function nativeEngineOf(engine: Engine): NativeEngine {
  return (engine as unknown as { handle: NativeEngine }).handle;
}

// ---- building the native spec from a checkpoint --------------------------------------------

function addWeights(out: NativeWeight[], set: WeightSet, prefix: string, keep: (key: string) => boolean = () => true): void {
  for (const key of set.keys()) {
    if (!keep(key)) continue;
    const q = set.quantized?.(key);
    if (q) {  // int4 / int8 (the LLM's projections, lm_head, embed_tokens; the native engine refuses them elsewhere)
      out.push({
        name: prefix + key, dtype: q.bits === 4 ? 'q4' : 'q8', shape: [q.rows, q.cols], data: q.q,
        scales: q.scales, zeros: q.zeros, group: q.groupSize, perm: q.perm,
      });
      continue;
    }
    const t = set.read(key);
    out.push({ name: prefix + key, dtype: t.dtype, shape: t.shape, data: t.data });
  }
}

function linearStep(set: WeightSet, name: string): NativeMlpStep {
  return set.has(biasOf(name)) ? { kind: 'linear', weight: weightOf(name), bias: biasOf(name) } : { kind: 'linear', weight: weightOf(name) };
}

function checkpointShape(ckpt: unknown): Checkpoint {
  const c = ckpt as Partial<Checkpoint>;
  if (c === null || typeof c !== 'object' || !c.vision || !c.projector || !c.llm || !c.config) {
    throw invalidArgument('a checkpoint from loadCheckpoint(dir)', 'ckpt', ckpt);
  }
  return c as Checkpoint;
}

/**
 * Loads a checkpoint into a native engine: builds the model spec from the checkpoint's
 * configs (vision layers to run, activation, eps; Qwen2 sizes, RoPE theta, eps; the
 * `spatial_pe` and `region` MLPs when their folders exist), reads every weight once and hands
 * it over (the CPU engine uses the bf16/f16/f32 data in place; the CUDA engine uploads it and
 * keeps no host copy).
 *
 * Vision encoder layers past the selected one are not read. The projector's LayerNorm eps
 * is PyTorch's default 1e-5 (NVILA's `nn.LayerNorm` without an eps argument).
 */
export async function createEngine(ckpt: Checkpoint, opts: EngineOptions = {}): Promise<Engine> {
  checkOptions(opts);
  const c = checkpointShape(ckpt);
  const addon = native();
  const impl = pickImpl({ device: opts.device, deviceIndex: opts.deviceIndex }, addon);
  const lc = c.llm.config, vc = c.vision.config;
  const defaultMax = Math.min(DEFAULT_MAX_CONTEXT, c.config.modelMaxLength || Infinity, lc.maxPositionEmbeddings || Infinity);
  const maxContext = opts.maxContext ?? defaultMax;
  if (!Number.isInteger(maxContext) || maxContext < 1 || maxContext > (1 << 24)) {
    throw invalidArgument('a positive integer number of positions (at most 2^24)', 'maxContext', maxContext);
  }
  const activations = checkActivations(opts.activations ?? 'f32');
  if (activations !== 'f32' && impl.impl === 'cuda') {
    throw new InvalidArgumentError(`Expected activations 'f32' on CUDA but received '${activations}': int8 / bf16 activations run on the CPU ` +
      `engine only. Fix: pass device: 'cpu' (or activations: 'f32').`);
  }
  if (vc.layersToRun > vc.numLayers || vc.layersToRun < 0) {
    throw invalidArgument(`a vision layer count in [0, ${vc.numLayers}]`, 'vision.config.layersToRun', vc.layersToRun);
  }

  const spec: NativeEngineSpec = {
    vision: {
      hidden: vc.hiddenSize, heads: vc.numHeads, intermediate: vc.intermediateSize, layersRun: vc.layersToRun,
      imageSize: vc.imageSize, patchSize: vc.patchSize, eps: vc.layerNormEps,
      act: vc.hiddenAct === 'gelu_pytorch_tanh' ? 'gelu_tanh' : 'gelu_erf',
    },
    projector: { eps: 1e-5 },
    llm: {
      hidden: lc.hiddenSize, layers: lc.numLayers, heads: lc.numHeads, kvHeads: lc.numKvHeads, headDim: lc.headDim,
      intermediate: lc.intermediateSize, vocab: lc.vocabSize, eps: lc.rmsNormEps, ropeTheta: lc.ropeTheta,
      tieWordEmbeddings: lc.tieWordEmbeddings,
    },
    mlps: {},
    maxContext,
    activations,
  };
  const mlpDims = new Map<string, { inDim: number; outDim: number }>();
  const weights: NativeWeight[] = [];
  // Encoder layers past the selected hidden state never run: do not read them.
  const layerRe = /(?:^|\.)encoder\.layers\.(\d+)\./;
  addWeights(weights, c.vision.weights, NATIVE_PREFIX.vision, (k) => {
    const m = layerRe.exec(k);
    return !m || Number(m[1]) < vc.layersToRun;
  });
  addWeights(weights, c.projector.weights, NATIVE_PREFIX.projector);
  addWeights(weights, c.llm.weights, NATIVE_PREFIX.llm, (k) => !(lc.tieWordEmbeddings && k === weightOf(LLM_WEIGHTS.lmHead)));
  if (c.spatialPe) {
    const w = c.spatialPe.weights, SW = SPATIAL_PE_WEIGHTS;
    spec.mlps![MLP_MODULES.spatialPe] = [linearStep(w, SW.fc1), { kind: 'gelu_erf' }, linearStep(w, SW.fc2)];
    mlpDims.set(MLP_MODULES.spatialPe, { inDim: w.info(weightOf(SW.fc1)).shape[1], outDim: w.info(weightOf(SW.fc2)).shape[0] });
    addWeights(weights, w, NATIVE_PREFIX.spatialPe);
  }
  if (c.regionExtractor) {
    const w = c.regionExtractor.weights, RW = REGION_WEIGHTS;
    if (c.regionExtractor.config.projector === 'linear') {
      spec.mlps![MLP_MODULES.region] = [linearStep(w, RW.linear)];
      mlpDims.set(MLP_MODULES.region, { inDim: w.info(weightOf(RW.linear)).shape[1], outDim: w.info(weightOf(RW.linear)).shape[0] });
    } else {
      spec.mlps![MLP_MODULES.region] = [linearStep(w, RW.fc1), { kind: 'gelu_erf' }, linearStep(w, RW.fc2)];
      mlpDims.set(MLP_MODULES.region, { inDim: w.info(weightOf(RW.fc1)).shape[1], outDim: w.info(weightOf(RW.fc2)).shape[0] });
    }
    addWeights(weights, w, NATIVE_PREFIX.region);
  }

  const g = vc.imageSize / vc.patchSize, G = Math.ceil(g / 3);
  const dims: Dims = {
    vision: { tokens: g * g, hidden: vc.hiddenSize, imageSize: vc.imageSize },
    projector: { tokens: G * G, outDim: c.projector.weights.info(weightOf(PROJECTOR_WEIGHTS.fc3)).shape[0] },
    llm: { hidden: lc.hiddenSize, vocab: lc.vocabSize },
    mlps: mlpDims,
    spatialPe: c.spatialPe ? { numFreqs: c.spatialPe.config.numFreqs, includeInput: c.spatialPe.config.includeInput } : undefined,
  };
  const site = new Error().stack;
  let handle: NativeEngine;
  try {
    handle = await addon.createEngine({
      ...spec, weights,
      device: impl.impl === 'cuda' ? 'cuda' : 'cpu',
      deviceIndex: impl.device ?? 0,
    });
  } catch (e) {
    throw engineError(e, site);
  }
  const eos = [...new Set(lc.eosTokenIds)].filter((id) => Number.isInteger(id) && id >= 0 && id < lc.vocabSize);
  return new Engine(handle, dims, eos, lc.generation.maxNewTokens ?? 512, maxContext);
}

