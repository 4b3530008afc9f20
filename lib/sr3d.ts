/**
 * The SR-3D model (spec Part A; Part B §9): a checkpoint on a native engine with its
 * tokenizer. A request — a scene (one image, or 2-32 RGB-D views) and region prompts in, the
 * streamed answer out — runs the stages of `./pipeline` (input → prompt → geometry → tiling →
 * vision → 3D PE → projector → regions → splice → generate), one request at a time per model
 * in call order (a bounded FIFO, `maxQueuedRequests`).
 */
import { loadCheckpoint } from './checkpoint';
import type { Checkpoint } from './checkpoint_types';
import { ChatSession } from './chat';
import type { ChatBackend } from './chat';
import { createEngine } from './engine';
import type { Engine } from './engine';
import { ModelError, invalidArgument } from './errors';
import type { AskInput, AskResult, AskTimings, GenerationOptions, LoadOptions, Prepared } from './model_types';
import { answerCheck, generateText, preparePipeline } from './pipeline';
import type { PipelineModel, SceneWork } from './pipeline';
import { DEFAULT_MAX_QUEUED_REQUESTS, RequestQueue } from './request_queue';
import type { Scene } from './scene';
import { checkLlmOptions, openTrtllm } from './llm/trtllm';
import type { TrtllmLlm } from './llm/trtllm';
import { loadTokenizer } from './tokenizer';
import type { Sr3dTokenizer } from './tokenizer';
import { checkMaxNewTokens, checkTemperature } from './validate';
export { ModelError };

const now = () => Number(process.hrtime.bigint()) / 1e6;
const noticed = new Set<string>();

/** The SR-3D model: a checkpoint on a native engine, with its tokenizer. */
export class SR3D {
  private readonly pipeline: PipelineModel;
  private readonly backend: ChatBackend;

  private constructor(
    /** The loaded checkpoint (configs and lazily read weights). */
    readonly checkpoint: Checkpoint,
    /** The native engine running it. */
    readonly engine: Engine,
    /** The Qwen2 tokenizer with VILA's media tokens and the region token. */
    readonly tokenizer: Sr3dTokenizer,
    /** One-time notices about the checkpoint (e.g. running as NVILA-Lite). */
    readonly notices: readonly string[],
    queue: RequestQueue,
    /** The TensorRT-LLM backend running the language model (`options.llm`), or null for the engine's own. */
    private readonly llm: TrtllmLlm | null = null,
  ) {
    this.pipeline = { checkpoint, engine, tokenizer, sceneCache: new WeakMap<Scene, Map<string, SceneWork>>(), frameCache: new WeakMap() };
    this.backend = {
      checkpoint, engine, tokenizer,
      prepare: (input) => preparePipeline(this.pipeline, input),
      request: (work, signal) => queue.run(work, signal),
      llm,
    };
  }

  /**
   * Loads a checkpoint folder (NVILA/VILA layout, plus SR-3D's `spatial_pe/` and
   * `region_extractor/` when present) onto a native engine. A checkpoint without
   * `spatial_pe/` runs as NVILA-Lite (no 3D PE); one without `region_extractor/` cannot take
   * region prompts. Each is said once through `onNotice`.
   *
   * @param dir the checkpoint root (holds config.json, llm/, vision_tower/, mm_projector/).
   */
  static async load(dir: string, opts: LoadOptions = {}): Promise<SR3D> {
    if (typeof dir !== 'string' || dir === '') throw invalidArgument('a checkpoint folder path', 'dir', dir);
    if (opts === null || typeof opts !== 'object') throw invalidArgument('an options object', 'options', opts);
    const { onNotice, maxQueuedRequests = DEFAULT_MAX_QUEUED_REQUESTS, llm: llmOpts, ...engineOpts } = opts;
    const llmBackend = checkLlmOptions(llmOpts);
    if (onNotice !== undefined && typeof onNotice !== 'function') throw invalidArgument('a function (message) => void', 'options.onNotice', onNotice);
    const queue = new RequestQueue(maxQueuedRequests);
    const ckpt = await loadCheckpoint(dir);
    const tokenizer = await loadTokenizer(ckpt.llm.config.tokenizerDir, {
      regionToken: ckpt.regionExtractor?.config.regionToken,
      generationEosTokenIds: ckpt.llm.config.eosTokenIds,
      embeddingRows: ckpt.llm.config.vocabSize,
    });
    const llm = llmBackend ? await openTrtllm(ckpt, tokenizer, llmBackend) : null;
    let engine: Engine;
    try {
      engine = await createEngine(ckpt, engineOpts);
    } catch (e) {
      await llm?.dispose();
      throw e;
    }
    const notices: string[] = [];
    if (!ckpt.spatialPe) {
      notices.push(`${ckpt.dir} has no spatial_pe/: running as NVILA-Lite, without the 3D positional encoding`);
    }
    if (!ckpt.regionExtractor) {
      notices.push(`${ckpt.dir} has no region_extractor/: region prompts (<region0>, …) are not available with this checkpoint`);
    }
    const emit = onNotice ?? ((m: string) => {
      if (!noticed.has(m)) {
        noticed.add(m);
        process.emitWarning(m, { code: 'SR3D_NOTICE' });
      }
    });
    notices.forEach((m) => emit(m));
    return new SR3D(ckpt, engine, tokenizer, notices, queue, llm);
  }

  /** Frees the engine (device memory included). A second call is a no-op. */
  async dispose(): Promise<void> {
    await this.llm?.dispose();
    await this.engine.dispose();
  }

  /** `await using model = await SR3D.load(dir)` disposes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  /**
   * Everything before the language model: the prompt (checked against the context first),
   * geometry, tiling, vision tower, 3D PE, projector, region features and the spliced
   * embedding sequence. One request in the model's queue.
   *
   * Errors: {@link ModelError} for region prompts on a checkpoint without
   * `region_extractor/`, `maxFrames` above the checkpoint's `num_video_frames`, or a prompt
   * longer than the context; `InvalidArgumentError` (from `buildPrompt`) for a `<regionK>`
   * with no region K or a region never named; `SceneError` / `RegionError` for bad scenes and
   * regions; {@link RequestQueueFullError} when `maxQueuedRequests` are already waiting.
   */
  prepare(input: AskInput): Promise<Prepared> {
    return this.backend.request(() => this.backend.prepare(input));
  }

  /**
   * Asks the model about a scene: {@link prepare}, then generation on the engine (greedy by
   * default, stopping at `<|im_end|>` / eos). Streams text through `onToken`; resolves with the
   * whole answer, its token ids, why it stopped, per-stage timings and what ran.
   *
   * Requests on one model run one at a time in call order: concurrent asks wait in a FIFO of
   * at most `maxQueuedRequests` ({@link LoadOptions}; one more rejects with
   * {@link RequestQueueFullError}). Aborting `signal` drops a waiting request
   * ({@link RequestAbortedError}) or stops a running one's decoding (`stopReason: 'aborted'`).
   */
  async ask(input: AskInput & GenerationOptions): Promise<AskResult> {
    if (input === null || typeof input !== 'object') throw invalidArgument('an object { scene | frames | image, question, regions? }', 'input', input);
    const { onToken, maxNewTokens, temperature, signal } = input;
    // Checked before the request queues (the engine checks the rest when generation starts).
    if (onToken !== undefined && typeof onToken !== 'function') throw invalidArgument('a function (text, tokenId) => void', 'onToken', onToken);
    if (maxNewTokens !== undefined) checkMaxNewTokens(maxNewTokens);
    if (temperature !== undefined) checkTemperature(temperature);
    return this.backend.request(async () => {
      const tStart = now();
      const prep = await this.backend.prepare(input);
      input.onProgress?.('prefill', `prefill: ${prep.details.promptLength} positions`);
      const g = await generateText(this.llm ? this.llm.bind(prep) : this.engine, this.tokenizer,
        { embeddings: prep.spliced.embeddings, n: prep.spliced.length, hidden: this.checkpoint.llm.config.hiddenSize, append: false }, input);
      const timings: AskTimings = {
        geometry: prep.timings.geometry, tiling: prep.timings.tiling, vision: prep.timings.vision,
        projector: prep.timings.projector, regions: prep.timings.regions,
        prefill: prep.timings.prompt + g.prefill, decode: g.decode, total: now() - tStart,
      };
      const check = answerCheck(input.question, g.text, prep.measured);
      const details = check ? { ...prep.details, check } : prep.details;
      return { text: g.text, tokens: g.tokens, stopReason: g.stopReason, timings, details, regions: prep.regions, scene: prep.scene };
    }, signal);
  }

  /**
   * A conversation about one scene: the first {@link ChatSession.ask} runs the whole pipeline,
   * later questions continue the same KV cache (the scene, the regions and the earlier turns
   * are not computed again). `input` is an {@link AskInput} without the question.
   */
  chat(input: Omit<AskInput, 'question'>): ChatSession {
    if (input === null || typeof input !== 'object') throw invalidArgument('an object { scene | frames | image, regions? }', 'input', input);
    return new ChatSession(this.backend, input);
  }
}
