/**
 * The TensorRT-LLM backend of the language model (issue 14): everything before the LLM stays
 * sr3d's (geometry, tiling, SigLIP, 3D PE, projector, regions, splice); the Qwen2 decoder runs
 * in a TensorRT-LLM engine through its C++ Executor (native/trtllm.cc), with the image and
 * region rows sent as the request's prompt table ({@link promptTableRequest}).
 *
 * ```ts
 * const model = await SR3D.load(dir, { llm: { backend: 'tensorrt-llm', engineDir: '/engines/sr3d-qwen2' } });
 * ```
 *
 * What maps and what does not ({@link trtllmSampling}):
 *  - maxNewTokens → Request maxNewTokens (v0.12) / maxTokens (main); stopTokenIds → one-token
 *    stop words, the first also the end id; the stop token is not yielded (as on sr3d's engine).
 *    A final response without it ends as its finish reason says (after v0.12); v0.12 has none.
 *  - temperature 0 (greedy) → topK 1. sr3d's engine breaks an argmax tie by the lowest id;
 *    TensorRT-LLM's top-1 sampling does not promise an order.
 *  - temperature > 0 → temperature, topK (0 = off: unset), topP (1 = off: unset), seed →
 *    randomSeed (v0.12) / seed (main). The random streams differ: one seed gives different
 *    tokens on the two backends.
 *  - Not mapped: none of sr3d's options is left out; TensorRT-LLM's own extras (penalties, beam
 *    search, min tokens) are not exposed.
 *  - signal → Executor::cancelRequest; breaking out of the iteration cancels too.
 *  - A chat follow-up ({@link TrtllmConversation}) is a new request holding the whole
 *    conversation with the same table ({@link followUpIds}): the Executor keeps no conversation.
 *    With KV-cache block reuse (after v0.12, with `inputTokenExtraIds`) the shared prefix is
 *    reused; on v0.12 it is prefilled again.
 */
import * as fs from 'fs';
import * as path from 'path';

import type { Checkpoint, LlmConfig } from '../checkpoint_types';
import type { GenerateOptions, GenerationStream, StopReason } from '../engine';
import { Sr3dError, fromNative, invalidArgument } from '../errors';
import type { Prepared } from '../model_types';
import { trtllmAddon } from '../native';
import type { NativeTrtllmAddon, NativeTrtllmExecutor, NativeTrtllmRequest, NativeTrtllmResponse } from '../native';
import type { Sr3dTokenizer } from '../tokenizer';
import { checkSampling } from '../validate';
import { followUpIds, promptTableExtraIds, promptTableRequest } from './trtllm_request';
import type { PromptTableRequest, TrtllmDtype } from './trtllm_request';

/**
 * A TensorRT-LLM backend problem, with the fix in the message. `code`:
 * `SR3D_TRTLLM_NOT_BUILT` (this install has no sr3d_trtllm.node, or it does not load),
 * `SR3D_TRTLLM_ENGINE_DIR` (engineDir missing, unreadable, or without config.json / rank0.engine),
 * `SR3D_TRTLLM_MISMATCH` (the engine was not built for this checkpoint, or too small for a request),
 * `SR3D_TRTLLM_REQUEST` (the executor reported an error for a request).
 */
export class TrtllmError extends Sr3dError {}

/** `SR3D.load(dir, { llm })`: which engine runs the language model. */
export type LlmBackendOptions =
  | { backend: 'sr3d' }
  | {
    backend: 'tensorrt-llm';
    /** The `trtllm-build --output_dir` folder (config.json and rank0.engine). */
    engineDir: string;
    /**
     * KV-cache block reuse across requests (needs TensorRT-LLM's `inputTokenExtraIds`, i.e. a
     * release after v0.12: on v0.12 it is always off, since reuse would mix up different images'
     * prompt tables). Makes a chat follow-up reuse its prefix. Defaults to `true`.
     */
    blockReuse?: boolean;
    /** Fraction of free GPU memory the executor's KV cache takes, in (0, 1]. Defaults to TensorRT-LLM's (0.9). */
    freeGpuMemoryFraction?: number;
  };

/** What sr3d reads of a TensorRT-LLM engine folder's config.json. */
export interface TrtllmEngineConfig {
  dir: string;
  /** `pretrained_config.architecture`, e.g. `Qwen2ForCausalLM`. */
  architecture: string;
  dtype: TrtllmDtype;
  vocabSize: number;
  hiddenSize: number;
  /** `build_config.max_input_len`: the longest prompt (spliced rows). */
  maxInputLen: number;
  /** `build_config.max_seq_len`: prompt + generated tokens. */
  maxSeqLen: number;
  /** `build_config.max_prompt_embedding_table_size` (`--max_multimodal_len`): table rows; 0 = no prompt tables. */
  maxPromptTableRows: number;
  maxBatchSize: number;
  /** `pretrained_config.mapping.world_size` (tp · pp); sr3d runs one rank. */
  worldSize: number;
  /** Top-level `version` (the TensorRT-LLM that built it), or ''. */
  version: string;
}

const ENGINE_FIX = 'Fix: pass the folder `trtllm-build --output_dir` wrote (it holds config.json and rank0.engine); `sr3d export trtllm <checkpoint> <out>` prints the commands that build it.';

function num(o: Record<string, unknown> | undefined, key: string, where: string, dir: string, required = true): number {
  const v = o?.[key];
  if (v === undefined && !required) return 0;
  if (!Number.isInteger(v) || (v as number) < 0) {
    throw new TrtllmError(`Expected an integer ${where}.${key} in ${path.join(dir, 'config.json')} but received ${JSON.stringify(v)}. ${ENGINE_FIX}`, 'SR3D_TRTLLM_ENGINE_DIR');
  }
  return v as number;
}

/** Reads and checks `<engineDir>/config.json` (TensorRT-LLM writes it beside `rank0.engine`). */
export function readTrtllmEngineConfig(engineDir: string): TrtllmEngineConfig {
  if (typeof engineDir !== 'string' || engineDir === '') throw invalidArgument('a TensorRT-LLM engine folder path', 'llm.engineDir', engineDir);
  const dir = path.resolve(engineDir);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    throw new TrtllmError(`Expected a TensorRT-LLM engine folder for llm.engineDir but ${dir} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}). ${ENGINE_FIX}`, 'SR3D_TRTLLM_ENGINE_DIR');
  }
  if (!st.isDirectory()) throw new TrtllmError(`Expected a folder for llm.engineDir but ${dir} is a file. ${ENGINE_FIX}`, 'SR3D_TRTLLM_ENGINE_DIR');
  const cfgFile = path.join(dir, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new TrtllmError(`Expected TensorRT-LLM's config.json in llm.engineDir but ${cfgFile} ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read (${(e as Error).message})`}. ${ENGINE_FIX}`, 'SR3D_TRTLLM_ENGINE_DIR');
  }
  const cfg = raw as { version?: unknown; pretrained_config?: Record<string, unknown>; build_config?: Record<string, unknown> };
  const pc = cfg?.pretrained_config, bc = cfg?.build_config;
  if (!pc || typeof pc !== 'object' || !bc || typeof bc !== 'object') {
    throw new TrtllmError(`Expected pretrained_config and build_config in ${cfgFile} (a trtllm-build engine config) but they are missing. ${ENGINE_FIX}`, 'SR3D_TRTLLM_ENGINE_DIR');
  }
  if (!fs.existsSync(path.join(dir, 'rank0.engine'))) {
    throw new TrtllmError(`Expected rank0.engine beside ${cfgFile} but it is missing (a converted checkpoint, not a built engine?). ${ENGINE_FIX}`, 'SR3D_TRTLLM_ENGINE_DIR');
  }
  const dtype = pc.dtype;
  if (dtype !== 'float16' && dtype !== 'bfloat16' && dtype !== 'float32') {
    throw new TrtllmError(`Expected pretrained_config.dtype 'float16', 'bfloat16' or 'float32' in ${cfgFile} but received ${JSON.stringify(dtype)}. Fix: build the engine with --dtype bfloat16 (or float16).`, 'SR3D_TRTLLM_ENGINE_DIR');
  }
  const mapping = pc.mapping as Record<string, unknown> | undefined;
  const worldSize = mapping && Number.isInteger(mapping.world_size) ? (mapping.world_size as number) : 1;
  const vocabSize = num(pc, 'vocab_size', 'pretrained_config', dir);
  const hiddenSize = num(pc, 'hidden_size', 'pretrained_config', dir);
  const maxInputLen = num(bc, 'max_input_len', 'build_config', dir);
  return {
    dir,
    architecture: typeof pc.architecture === 'string' ? pc.architecture : '',
    dtype,
    vocabSize,
    hiddenSize,
    maxInputLen,
    maxSeqLen: num(bc, 'max_seq_len', 'build_config', dir, false) || maxInputLen,
    maxPromptTableRows: num(bc, 'max_prompt_embedding_table_size', 'build_config', dir, false),
    maxBatchSize: num(bc, 'max_batch_size', 'build_config', dir, false) || 1,
    worldSize,
    version: typeof cfg.version === 'string' ? cfg.version : '',
  };
}

const REBUILD = 'Fix: rebuild the engine from this checkpoint with the commands `sr3d export trtllm <checkpoint> <out>` prints.';

/** The engine was built from this checkpoint's LLM: vocabulary, hidden size, architecture, one rank, prompt tables on. */
export function checkEngineMatches(cfg: TrtllmEngineConfig, llm: LlmConfig): void {
  const where = path.join(cfg.dir, 'config.json');
  const mismatch = (what: string) => new TrtllmError(`${what} (${where}). ${REBUILD}`, 'SR3D_TRTLLM_MISMATCH');
  if (cfg.vocabSize !== llm.vocabSize) {
    throw mismatch(`Expected an engine with the checkpoint's vocabulary (vocab_size ${llm.vocabSize}) but the engine has ${cfg.vocabSize}: table ids start at vocab_size, so they would point at the wrong rows`);
  }
  if (cfg.hiddenSize !== llm.hiddenSize) {
    throw mismatch(`Expected an engine with the checkpoint's hidden size ${llm.hiddenSize} but the engine has ${cfg.hiddenSize}`);
  }
  if (cfg.architecture !== '' && !/qwen/i.test(cfg.architecture)) {
    throw mismatch(`Expected a Qwen2 engine (the checkpoint's LLM) but the engine's architecture is ${cfg.architecture}`);
  }
  if (cfg.worldSize !== 1) {
    throw mismatch(`Expected a single-GPU engine (tp_size = pp_size = 1) but the engine has world_size ${cfg.worldSize}; sr3d runs one rank`);
  }
  if (cfg.maxPromptTableRows < 1) {
    throw mismatch('Expected an engine built with prompt tables (max_prompt_embedding_table_size > 0, alias --max_multimodal_len) but it has none: image and region rows could not be sent');
  }
}

/** A request fits the engine: its table rows, its prompt length and the tokens to generate. */
export function checkRequestFits(cfg: TrtllmEngineConfig, req: Pick<PromptTableRequest, 'rows' | 'inputIds'>, maxNewTokens: number): void {
  const where = path.join(cfg.dir, 'config.json');
  if (req.rows > cfg.maxPromptTableRows) {
    throw new TrtllmError(`Expected at most ${cfg.maxPromptTableRows} prompt-table rows (the engine's max_prompt_embedding_table_size, ${where}) but this request has ${req.rows} ` +
      `(image and region rows). Fix: rebuild the engine with a larger --max_prompt_embedding_table_size (sr3d export trtllm sizes it for the checkpoint's largest request), or use fewer tiles, frames or regions.`, 'SR3D_TRTLLM_MISMATCH');
  }
  if (req.inputIds.length > cfg.maxInputLen) {
    throw new TrtllmError(`Expected a prompt of at most ${cfg.maxInputLen} positions (the engine's max_input_len, ${where}) but this request has ${req.inputIds.length}. ` +
      'Fix: rebuild the engine with a larger --max_input_len, or use fewer tiles or frames or a shorter question.', 'SR3D_TRTLLM_MISMATCH');
  }
  if (req.inputIds.length + maxNewTokens > cfg.maxSeqLen) {
    throw new TrtllmError(`Expected prompt + maxNewTokens within the engine's max_seq_len ${cfg.maxSeqLen} (${where}) but this request needs ${req.inputIds.length} + ${maxNewTokens}. ` +
      'Fix: pass a smaller maxNewTokens, or rebuild the engine with a larger --max_seq_len.', 'SR3D_TRTLLM_MISMATCH');
  }
}

/** The sampling part of a native request, from sr3d's {@link GenerateOptions}. */
export type TrtllmSampling = Pick<NativeTrtllmRequest, 'maxNewTokens' | 'temperature' | 'topK' | 'topP' | 'seed' | 'endId' | 'stopIds'>;

/**
 * Maps sr3d's generation options to TensorRT-LLM's SamplingConfig / Request fields (see the
 * module comment for what differs). Validates like sr3d's engine: the same option errors.
 */
export function trtllmSampling(o: GenerateOptions, d: { vocabSize: number; eos: readonly number[]; defaultMaxNewTokens: number }): TrtllmSampling {
  const { maxNewTokens, temperature, topP, topK, seed, stopIds: ids } = checkSampling(o, { vocab: d.vocabSize, eos: d.eos, defaultMaxNewTokens: d.defaultMaxNewTokens });
  const greedy = temperature === 0;
  return {
    maxNewTokens,
    temperature: greedy ? null : temperature,
    topK: greedy ? 1 : topK > 0 ? Math.min(topK, d.vocabSize) : null,
    topP: greedy || topP === 1 ? null : topP,
    seed: greedy ? null : seed ?? Math.floor(Math.random() * Number.MAX_SAFE_INTEGER),
    // Without a stop id the end id is one no token can take: generation then ends at the length.
    endId: ids.length > 0 ? ids[0] : -1,
    stopIds: Int32Array.from(ids),
  };
}

/** Pieces of a stream: tokens as they come, then the end (or an error). */
interface Sink {
  push(tokens: Int32Array): void;
  end(error: Error | null, finishReason: number): void;
}

let nextTableKey = 1;

/**
 * A TensorRT-LLM engine running sr3d's language model: one Executor over `engineDir`, its
 * responses streamed back through the native response thread.
 */
export class TrtllmLlm {
  private readonly sinks = new Map<number, Sink>();
  private disposed: Promise<void> | undefined;
  private readonly endTokenIds: number[];

  /** @internal Use {@link openTrtllm}. */
  constructor(
    /** The engine's config.json, as read. */
    readonly config: TrtllmEngineConfig,
    /** The API the addon was compiled against ('v0.12' or 'main'). */
    readonly api: string,
    private readonly executor: NativeTrtllmExecutor,
    private readonly ckpt: Checkpoint,
    tokenizer: Sr3dTokenizer,
    private readonly blockReuse: boolean,
  ) {
    const endText = ckpt.config.imageEndTokens;
    this.endTokenIds = endText ? tokenizer.encode(endText) : [];
  }

  /** @internal The native response callback: routes a response to its request's stream. */
  onResponse(r: NativeTrtllmResponse): void {
    const sink = this.sinks.get(r.requestId);
    if (!sink) return; // cancelled or ended already: late responses are dropped
    if (r.error !== null) {
      this.sinks.delete(r.requestId);
      sink.end(new TrtllmError(`TensorRT-LLM request ${r.requestId} failed: ${r.error}`, 'SR3D_TRTLLM_REQUEST'), r.finishReason);
      return;
    }
    if (r.tokens.length > 0) sink.push(r.tokens);
    if (r.isFinal) {
      this.sinks.delete(r.requestId);
      sink.end(null, r.finishReason);
    }
  }

  /** The prompt-table request of a prepared request (checked against the engine). */
  request(prep: Pick<Prepared, 'prompt' | 'spliced'>): PromptTableRequest {
    return promptTableRequest({
      prompt: prep.prompt, spliced: prep.spliced, endTokenIds: this.endTokenIds,
      vocabSize: this.config.vocabSize, hidden: this.config.hiddenSize, dtype: this.config.dtype, tokensPerTile: this.ckpt.projector.config.tokensPerTile,
    });
  }

  /**
   * A generator for `generateText` bound to one prepared request: its `generate()` sends the
   * request's ids and table (the embeddings `generateText` passes are the same rows, spliced).
   */
  bind(prep: Pick<Prepared, 'prompt' | 'spliced'>): { generate(embeddings: unknown, o: GenerateOptions): GenerationStream } {
    const req = this.request(prep);
    return { generate: (_embeddings, o) => this.generate(req, req.inputIds, o) };
  }

  /**
   * Streams the tokens of one request: `inputIds` (the request's own, or a follow-up's from
   * {@link followUpIds}) with `req`'s table. Ends like sr3d's engine: at a stop token (not
   * yielded), at maxNewTokens, or when `signal` aborts or the consumer breaks out (the request
   * is cancelled).
   */
  generate(req: PromptTableRequest, inputIds: Int32Array, o: GenerateOptions = {}): TrtllmStream {
    if (o === null || typeof o !== 'object') throw invalidArgument('an options object', 'options', o);
    const s = trtllmSampling(o, { vocabSize: this.config.vocabSize, eos: this.eos(), defaultMaxNewTokens: this.ckpt.llm.config.generation.maxNewTokens ?? 512 });
    checkRequestFits(this.config, { rows: req.rows, inputIds }, s.maxNewTokens);
    const signal = o.signal;
    if (signal !== undefined && (signal === null || typeof signal !== 'object' || typeof signal.aborted !== 'boolean')) {
      throw invalidArgument('an AbortSignal', 'signal', signal);
    }
    // Table rows are keyed per table, so a follow-up with the same table reuses its blocks.
    const key = (req as PromptTableRequest & { key?: number }).key ?? ((req as PromptTableRequest & { key?: number }).key = nextTableKey++);
    const native: NativeTrtllmRequest = {
      inputIds, table: req.table, tableDtype: req.dtype, tableRows: req.rows, hidden: req.hidden,
      extraIds: this.blockReuse && this.api !== 'v0.12' ? promptTableExtraIds(inputIds, req.vocabSize, key) : null,
      ...s,
    };
    const stream = {
      stopReason: null as StopReason | null,
      stopToken: null as number | null,
      [Symbol.asyncIterator]: () => this.iterate(native, signal, (r, t) => {
        stream.stopReason = r;
        stream.stopToken = t ?? null;
      }),
    };
    return stream;
  }

  /** A conversation over one prepared request (a chat): its first turn, then follow-ups with {@link TrtllmConversation.followUp}. */
  conversation(prep: Pick<Prepared, 'prompt' | 'spliced'>): TrtllmConversation {
    return new TrtllmConversation(this, this.request(prep));
  }

  private eos(): number[] {
    const lc = this.ckpt.llm.config;
    return [...new Set(lc.eosTokenIds)].filter((id) => Number.isInteger(id) && id >= 0 && id < lc.vocabSize);
  }

  private async *iterate(req: NativeTrtllmRequest, signal: AbortSignal | undefined, end: (r: StopReason, stopToken?: number) => void): AsyncGenerator<number, void, undefined> {
    if (this.disposed) throw new TrtllmError('This TensorRT-LLM backend was disposed. Fix: load the model again.', 'SR3D_TRTLLM_REQUEST');
    if (signal?.aborted) return end('aborted');
    if (req.maxNewTokens === 0) return end('length');
    const queue: number[] = [];
    let done: { error: Error | null; finishReason: number } | null = null;
    let wake: (() => void) | null = null;
    const notify = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    let id: number;
    try {
      id = this.executor.enqueue(req);
    } catch (e) {
      const code = (e as { code?: string })?.code;
      if (code === 'SR3D_TRTLLM_REQUEST') throw new TrtllmError(String((e as Error).message), code);
      throw fromNative(e);
    }
    this.sinks.set(id, {
      push: (t) => { for (const x of t) queue.push(x); notify(); },
      end: (error, finishReason) => { done = { error, finishReason }; notify(); },
    });
    const onAbort = () => notify();
    signal?.addEventListener('abort', onAbort);
    const stop = new Set(req.stopIds);
    let yielded = 0, finished = false;
    try {
      for (;;) {
        while (queue.length > 0) {
          if (signal?.aborted) return end('aborted');
          const t = queue.shift()!;
          if (stop.has(t)) {
            finished = done !== null;
            return end('stop', t);
          }
          yield t;
          if (++yielded >= req.maxNewTokens) {
            finished = done !== null;
            return end('length');
          }
        }
        if (signal?.aborted) return end('aborted');
        if (done !== null) {
          finished = true;
          const { error: err, finishReason } = done as { error: Error | null; finishReason: number };
          if (err) throw err;
          // The stop token itself was not among the tokens: trust TensorRT-LLM's finish reason where
          // the API has one (after v0.12: 1 end id, 2 stop word, 5 cancelled).
          if (finishReason === 1) return end('stop', req.endId >= 0 ? req.endId : undefined);
          if (finishReason === 2) return end('stop');
          if (finishReason === 5) return end('aborted');
          return end('length');
        }
        await new Promise<void>((r) => { wake = r; });
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!finished && this.sinks.has(id)) {
        this.sinks.delete(id);
        if (!this.disposed) this.executor.cancel(id);
      }
    }
  }

  /** Shuts the executor down (GPU memory freed). A second call returns the same promise. */
  dispose(): Promise<void> {
    if (!this.disposed) {
      for (const s of this.sinks.values()) s.end(new TrtllmError('The TensorRT-LLM backend was disposed while this request ran.', 'SR3D_TRTLLM_REQUEST'), -1);
      this.sinks.clear();
      this.disposed = this.executor.shutdown();
    }
    return this.disposed;
  }
}

/** A {@link GenerationStream} that also says which stop token ended it (null when none did). */
export interface TrtllmStream extends GenerationStream {
  readonly stopToken: number | null;
}

/**
 * A chat on the TensorRT-LLM backend. The Executor keeps no conversation, so each turn is a new
 * request with everything so far and the first turn's table ({@link followUpIds}); `history`
 * is what was sent plus what was generated (the stop token left out, as sr3d's engine leaves
 * its pending token out of the KV cache).
 */
export class TrtllmConversation {
  private next: Int32Array;
  /** The ids of the conversation so far (sent and generated). */
  history: Int32Array = new Int32Array(0);
  /** The stop token that ended the last turn, or null (maxNewTokens, abort). */
  stopToken: number | null = null;

  /** @internal Use {@link TrtllmLlm.conversation}. */
  constructor(private readonly llm: TrtllmLlm, readonly request: PromptTableRequest) {
    this.next = request.inputIds;
  }

  /** Sets the next turn's ids: the history, then `turnIds` with its region tokens as their table ids. */
  followUp(turnIds: readonly number[], regionTokenId: number, regionIndices: readonly number[]): number {
    this.next = followUpIds(this.request, this.history, turnIds, regionTokenId, regionIndices);
    return this.next.length;
  }

  /** For `generateText`: runs the pending turn (the embeddings it passes are not used) and records it. */
  generate(_embeddings: unknown, o: GenerateOptions): GenerationStream {
    const sent = this.next;
    const inner = this.llm.generate(this.request, sent, o);
    const got: number[] = [];
    const record = () => {
      const h = new Int32Array(sent.length + got.length);
      h.set(sent);
      h.set(got, sent.length);
      this.history = h;
      this.stopToken = inner.stopToken;
    };
    return {
      get stopReason() { return inner.stopReason; },
      [Symbol.asyncIterator]: async function* () {
        try {
          for await (const t of inner) {
            got.push(t);
            yield t;
          }
        } finally {
          record();
        }
      },
    };
  }
}

function notBuilt(reason: string): TrtllmError {
  return new TrtllmError(`The TensorRT-LLM backend is not available in this install: ${reason}.\nPossible solutions:\n` +
    '  1. Build it: SR3D_TRTLLM_ROOT=<TensorRT-LLM install with include/ and lib/libtensorrt_llm.so> npx sr3d build\n' +
    '  2. If it is built but fails to load, put TensorRT-LLM\'s and TensorRT\'s libraries on the loader path: export LD_LIBRARY_PATH=$SR3D_TRTLLM_ROOT/lib:$LD_LIBRARY_PATH\n' +
    "  3. Or run the language model on sr3d's own engine: leave out the llm option.", 'SR3D_TRTLLM_NOT_BUILT');
}

/** Checks the `llm` option of {@link SR3D.load}; null for sr3d's own engine. */
export function checkLlmOptions(llm: unknown): Extract<LlmBackendOptions, { backend: 'tensorrt-llm' }> | null {
  if (llm === undefined) return null;
  if (llm === null || typeof llm !== 'object') throw invalidArgument("an object { backend: 'tensorrt-llm', engineDir } or { backend: 'sr3d' }", 'options.llm', llm);
  const o = llm as Record<string, unknown>;
  if (o.backend === 'sr3d') return null;
  if (o.backend !== 'tensorrt-llm') throw invalidArgument("'tensorrt-llm' or 'sr3d'", 'options.llm.backend', o.backend);
  if (typeof o.engineDir !== 'string' || o.engineDir === '') throw invalidArgument('a TensorRT-LLM engine folder path', 'options.llm.engineDir', o.engineDir);
  if (o.blockReuse !== undefined && typeof o.blockReuse !== 'boolean') throw invalidArgument('a boolean', 'options.llm.blockReuse', o.blockReuse);
  const f = o.freeGpuMemoryFraction;
  if (f !== undefined && (typeof f !== 'number' || !(f > 0 && f <= 1))) throw invalidArgument('a number in (0, 1]', 'options.llm.freeGpuMemoryFraction', f);
  return o as Extract<LlmBackendOptions, { backend: 'tensorrt-llm' }>;
}

/**
 * Opens the TensorRT-LLM backend for a checkpoint: reads and checks the engine's config.json
 * against the checkpoint first (cheap, and no GPU memory taken on a mismatch), then loads the
 * addon and creates the Executor.
 * @param addon the native addon (tests pass a stand-in); defaults to build/Release/sr3d_trtllm.node.
 */
export async function openTrtllm(ckpt: Checkpoint, tokenizer: Sr3dTokenizer, llm: Extract<LlmBackendOptions, { backend: 'tensorrt-llm' }>,
  addon?: NativeTrtllmAddon): Promise<TrtllmLlm> {
  const opts = checkLlmOptions(llm)!;
  const config = readTrtllmEngineConfig(opts.engineDir);
  checkEngineMatches(config, ckpt.llm.config);
  let a = addon;
  if (!a) {
    const found = trtllmAddon();
    if (!found.addon) throw notBuilt(found.reason);
    a = found.addon;
  }
  const blockReuse = (opts.blockReuse ?? true) && a.api !== 'v0.12';
  let backend: TrtllmLlm | undefined;
  const executor = await a.createExecutor({
    engineDir: config.dir, enableBlockReuse: blockReuse, freeGpuMemoryFraction: opts.freeGpuMemoryFraction ?? null,
    onResponse: (r) => backend?.onResponse(r),
  });
  backend = new TrtllmLlm(config, a.api, executor, ckpt, tokenizer, blockReuse);
  return backend;
}
