/**
 * A conversation about one scene ({@link SR3D.chat}): the first question runs the whole
 * pipeline, later ones continue the same KV cache.
 */
import type { Checkpoint } from './checkpoint_types';
import type { Engine } from './engine';
import type { TrtllmConversation, TrtllmLlm } from './llm/trtllm';
import { ModelError, invalidArgument } from './errors';
import type { AskInput, AskResult, GenerationOptions, Prepared, PreparedDetails } from './model_types';
import { generateText } from './pipeline';
import { encodeFollowUpTurn, rewriteRegionPlaceholders } from './prompt';
import type { ResolvedRegion } from './regions';
import type { Scene } from './scene';
import type { Sr3dTokenizer } from './tokenizer';

/** One turn of a {@link ChatSession}. */
export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

/** @internal What a chat session runs on (an {@link SR3D} gives it one). */
export interface ChatBackend {
  readonly checkpoint: Checkpoint;
  readonly engine: Engine;
  readonly tokenizer: Sr3dTokenizer;
  /** The pipeline up to the language model, run inside a queued request. */
  prepare(input: AskInput): Promise<Prepared>;
  /** Runs `work` as one request in the model's queue. */
  request<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  /** The TensorRT-LLM backend running the language model, when the model was loaded with one. */
  readonly llm?: TrtllmLlm | null;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * A conversation about one scene (from {@link SR3D.chat}). The first question runs the whole
 * pipeline (`ask`); each later one is appended to the same KV cache as the next user turn of
 * VILA's qwen2 template (`<|im_end|>\n<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n`),
 * so only its own tokens are prefilled. Later questions may name any of the session's regions
 * (`<regionK>`); the earlier answers stay in the context as the tokens that were generated.
 * Each question is one request in the model's queue, like {@link SR3D.ask}. One conversation
 * per model at a time: any other request on the model starts its KV cache over, after which
 * this session's next question is a {@link ModelError}.
 */
export class ChatSession {
  /** The turns so far. */
  readonly history: ChatTurn[] = [];
  private regionEmbeddings: Float32Array | null = null;
  private regionCount = 0;
  private epoch = -1;
  private details: PreparedDetails | null = null;
  private resolved: ResolvedRegion[] = [];
  private scene: Scene | null = null;
  private trt: TrtllmConversation | null = null;

  /** @internal Use {@link SR3D.chat}. */
  constructor(private readonly model: ChatBackend, private readonly input: Omit<AskInput, 'question'>) {}

  /** Asks the next question; resolves like {@link SR3D.ask} (the image stages are 0 after the first turn). */
  async ask(question: string, gen: GenerationOptions = {}): Promise<AskResult> {
    if (typeof question !== 'string' || question.trim() === '') throw invalidArgument('a non-empty question string', 'question', question);
    if (gen === null || typeof gen !== 'object') throw invalidArgument('generation options', 'options', gen);
    return this.model.request(() => (this.history.length === 0 ? this.first(question, gen) : this.next(question, gen)), gen.signal);
  }

  private async first(question: string, gen: GenerationOptions): Promise<AskResult> {
    const model = this.model;
    const tStart = now();
    const prep = await model.prepare({ ...this.input, question });
    this.trt = model.llm ? model.llm.conversation(prep) : null;
    const g = await generateText(this.trt ?? model.engine, model.tokenizer,
      { embeddings: prep.spliced.embeddings, n: prep.spliced.length, hidden: model.checkpoint.llm.config.hiddenSize, append: false },
      { ...gen, onProgress: this.input.onProgress });
    this.epoch = model.engine.cacheEpoch;
    this.regionEmbeddings = prep.regionEmbeddings;
    this.regionCount = prep.regions.length;
    this.details = prep.details;
    this.resolved = prep.regions;
    this.scene = prep.scene;
    this.history.push({ role: 'user', content: question }, { role: 'assistant', content: g.text });
    const p = prep.timings;
    return {
      text: g.text, tokens: g.tokens, stopReason: g.stopReason, details: prep.details, regions: prep.regions, scene: prep.scene,
      timings: { geometry: p.geometry, tiling: p.tiling, vision: p.vision, projector: p.projector, regions: p.regions, prefill: p.prompt + g.prefill, decode: g.decode, total: now() - tStart },
    };
  }

  private async next(question: string, gen: GenerationOptions): Promise<AskResult> {
    const model = this.model;
    const tStart = now();
    if (!this.trt && model.engine.cacheEpoch !== this.epoch) {
      throw new ModelError('Expected this conversation\'s context in the model\'s KV cache but another request on the same model has replaced it. ' +
        'Fix: keep one conversation per model at a time (load a second SR3D for parallel work), or start a new chat.');
    }
    const tok = model.tokenizer;
    const regionToken = model.checkpoint.regionExtractor?.config.regionToken ?? '<mask>';
    for (const media of ['<image>', '<vila/video>', '<vila/sentinel>', regionToken]) {
      if (question.includes(media)) {
        throw invalidArgument(`a question without the model's own token ${media} (write <regionK> for regions)`, 'question', `'${media}' in the question`, true);
      }
    }
    const { pieces, regionIndices } = rewriteRegionPlaceholders(question, this.regionCount, regionToken, { requireAll: false });
    // The next user turn of the template; the previous answer's last token comes first when it
    // is text (its generation stopped at maxNewTokens) or <|im_end|> (it stopped there). The
    // template's control tokens go in by id; the user's text is encoded as plain text, so it
    // can never forge a turn.
    const imEnd = tok.tokenToId('<|im_end|>');
    if (this.trt) return this.nextTrt(this.trt, question, pieces, regionIndices, imEnd, gen, tStart);
    const pending = model.engine.pendingToken;
    let ids: number[];
    if (pending !== null && pending === imEnd) ids = [pending, ...encodeFollowUpTurn(tok, pieces, false)];
    else if (pending !== null && !tok.stopTokenIds.includes(pending)) ids = [pending, ...encodeFollowUpTurn(tok, pieces, true)];
    else ids = encodeFollowUpTurn(tok, pieces, true);
    const info = model.engine.info();
    const cached = model.engine.cachedPositions;
    if (cached + ids.length > info.maxContext) {
      throw new ModelError(`Expected the conversation to fit the model's context (${info.maxContext} positions) but this turn needs ${ids.length} more after ` +
        `${cached}. Fix: start a new chat (or load the model with a larger maxContext).`);
    }
    const D = model.checkpoint.llm.config.hiddenSize;
    const emb = (await model.engine.embedTokens(ids)).data;
    const positions = ids.flatMap((id, i) => (id === tok.regionTokenId ? [i] : []));
    positions.forEach((pos, i) => emb.set(this.regionEmbeddings!.subarray(regionIndices[i] * D, (regionIndices[i] + 1) * D), pos * D));
    const g = await generateText(model.engine, tok, { embeddings: emb, n: ids.length, hidden: D, append: true }, { ...gen, onProgress: this.input.onProgress });
    this.epoch = model.engine.cacheEpoch;
    this.history.push({ role: 'user', content: question }, { role: 'assistant', content: g.text });
    return {
      text: g.text, tokens: g.tokens, stopReason: g.stopReason, details: { ...this.details!, promptLength: ids.length, cached: true }, regions: this.resolved, scene: this.scene,
      timings: { geometry: 0, tiling: 0, vision: 0, projector: 0, regions: 0, prefill: g.prefill, decode: g.decode, total: now() - tStart },
    };
  }

  /**
   * A follow-up on TensorRT-LLM: the whole conversation again with the first turn's table
   * (region tokens as their table rows). Its history holds every generated token but the stop
   * token, so `<|im_end|>` is put back when the answer stopped there, as on sr3d's engine.
   */
  private async nextTrt(trt: TrtllmConversation, question: string, pieces: Parameters<typeof encodeFollowUpTurn>[1],
    regionIndices: number[], imEnd: number | undefined, gen: GenerationOptions, tStart: number): Promise<AskResult> {
    const tok = this.model.tokenizer;
    const turn = imEnd !== undefined && trt.stopToken === imEnd ? [imEnd, ...encodeFollowUpTurn(tok, pieces, false)] : encodeFollowUpTurn(tok, pieces, true);
    const n = trt.followUp(turn, tok.regionTokenId, regionIndices);
    const g = await generateText(trt, tok, { embeddings: new Float32Array(0), n: 0, hidden: this.model.checkpoint.llm.config.hiddenSize, append: true },
      { ...gen, onProgress: this.input.onProgress });
    this.history.push({ role: 'user', content: question }, { role: 'assistant', content: g.text });
    return {
      text: g.text, tokens: g.tokens, stopReason: g.stopReason, details: { ...this.details!, promptLength: n, cached: true }, regions: this.resolved, scene: this.scene,
      timings: { geometry: 0, tiling: 0, vision: 0, projector: 0, regions: 0, prefill: g.prefill, decode: g.decode, total: now() - tStart },
    };
  }
}
