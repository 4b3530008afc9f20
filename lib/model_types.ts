/**
 * The public types of the model API ({@link SR3D.load}, {@link SR3D.ask}, {@link SR3D.chat}):
 * what a request takes, what it resolves with, and how it ended.
 */
import type { AnswerCheck } from './check';
import type { EngineOptions, StopReason } from './engine';
import type { LlmBackendOptions } from './llm/trtllm';
import type { MeasureResult } from './measure';
import type { BuiltPrompt, SplicedEmbeddings } from './prompt';
import type { RegionSpec, ResolvedRegion } from './regions';
import type { Scene, SceneFrameInput } from './scene';
import type { StreamingScene, StreamRegionSpec } from './streaming';
import type { TensorLike } from './tensor';
import type { TilePlan } from './tiling';

/** Options of {@link SR3D.load}. */
export interface LoadOptions extends EngineOptions {
  /**
   * Called with each one-time notice about the checkpoint (e.g. "no spatial_pe/: running as
   * NVILA-Lite"), once per load. Defaults to `process.emitWarning` with code `SR3D_NOTICE`, once
   * per distinct notice per process.
   */
  onNotice?: (message: string) => void;
  /**
   * Most requests ({@link SR3D.ask}, {@link SR3D.prepare}, {@link ChatSession.ask}) waiting
   * behind the running one. Requests on one model run one at a time in call order; one more
   * rejects at once with {@link RequestQueueFullError}. Defaults to `64`.
   */
  maxQueuedRequests?: number;
  /**
   * Which engine runs the language model: `{ backend: 'tensorrt-llm', engineDir }` runs it in a
   * TensorRT-LLM engine (needs the addon built with `SR3D_TRTLLM_ROOT`; everything before the
   * LLM stays on sr3d's engine), `{ backend: 'sr3d' }` on sr3d's own. Defaults to sr3d's own.
   */
  llm?: LlmBackendOptions;
}

/** Stages of {@link SR3D.ask}, in order, as reported to {@link AskInput.onProgress}. */
export type AskStage = 'geometry' | 'tiling' | 'vision' | 'projector' | 'regions' | 'prefill' | 'decode';

/** What {@link SR3D.ask} and {@link SR3D.prepare} take. Give exactly one of `scene`, `frames` or `image`. */
export interface AskInput {
  /**
   * A loaded scene, the path of a `scene.json` manifest (or its folder), or a
   * {@link StreamingScene}: asked as the Scene of its kept frames, with each frame's SigLIP
   * features computed once in multi-view mode (see `cache`).
   */
  scene?: Scene | string | StreamingScene;
  /** In-memory RGB-D frames (validated by `sceneFromFrames`: at most 32). */
  frames?: readonly SceneFrameInput[];
  /** One RGB image without depth (a path, encoded bytes, or an (H,W,3) uint8 tensor): runs without the 3D PE. */
  image?: string | Uint8Array | TensorLike;
  /**
   * Region prompts, named `<region0>`, `<region1>`, … in the question, in this order. On a
   * {@link StreamingScene} a 2D box or mask may name its frame `{ index }` (stream index) or
   * `{ timestamp }`; a number is the window position. Defaults to none.
   */
  regions?: readonly (RegionSpec | StreamRegionSpec)[];
  /** The question; `<regionK>` names region K (each given region must be named). */
  question: string;
  /**
   * Most frames to feed, in [1, the checkpoint's `num_video_frames` (32)]; a scene with more
   * frames is sampled as `round(linspace(0, N-1, maxFrames))` (§A8). One fed frame is tiled
   * like a single image. Defaults to the checkpoint's `num_video_frames`.
   */
  maxFrames?: number;
  /** 3D boxes: grow the box by this many metres on every side before the point-in-box test. Defaults to `0`. */
  regionMargin?: number;
  /** A system prompt instead of VILA's default. Defaults to none (VILA's "You are a helpful assistant"). */
  system?: string;
  /** Called when each stage starts, with a one-line description (for progress displays). Defaults to none. */
  onProgress?: (stage: AskStage, message: string) => void;
  /**
   * Reuse the image side of an earlier request on the same `Scene` object (same frames fed,
   * same tiling): its world points, vision tokens with the 3D PE, and projector output are kept
   * per Scene object (held weakly: dropped with the scene), so another question or other
   * regions about the same scene skip geometry, tiling, the vision tower and the projector.
   * A Scene is taken as unchanged: pass `false` after editing its arrays in place. Scenes given
   * as a path, `frames` or `image` are not cached. On a {@link StreamingScene} the vision
   * features of each kept frame (without the 3D PE) are also kept per frame, so an ask after one
   * new frame runs the vision tower on that frame only; `false` turns both off. Defaults to `true`.
   */
  cache?: boolean;
  /**
   * {@link SR3D.ask} only: when the question asks a metric quantity of its regions (height,
   * width, length, size, distance, gap; see `metricQuestion`) and the scene has depth, also
   * measure it from the depth and compare it with the number in the answer (`details.check`).
   * An aid: the model's text is never changed. Defaults to `true`.
   */
  check?: boolean;
}

/** Generation options of {@link SR3D.ask}. */
export interface GenerationOptions {
  /** Most new tokens. Defaults to the generation config's `max_new_tokens`, else 512. */
  maxNewTokens?: number;
  /** Sampling temperature; `0` is greedy (deterministic). Defaults to `0`. */
  temperature?: number;
  /** Nucleus sampling mass in (0, 1] (temperature > 0 only). Defaults to `1` (off). */
  topP?: number;
  /** Keep the k most likely tokens (temperature > 0 only); `0` is off. Defaults to `0`. */
  topK?: number;
  /** Sampler seed (sampling only): the same seed gives the same tokens. Defaults to a random seed. */
  seed?: number;
  /**
   * Called with each piece of text as soon as it is decoded (never half a UTF-8 character) and
   * the id of the token that completed it; the concatenated pieces equal `text`. A last piece
   * held back at the end of the stream comes with id `-1`. Defaults to none.
   */
  onToken?: (text: string, tokenId: number) => void;
  /**
   * Aborting while the request waits in the model's queue (behind another request) drops it:
   * it rejects with {@link RequestAbortedError} and never runs. Aborting once it runs stops
   * generation: `ask` resolves with the text so far and `stopReason: 'aborted'` (no tokens when
   * it was aborted before decoding began). Defaults to none.
   */
  signal?: AbortSignal;
}

/** Milliseconds per stage of one {@link SR3D.ask}. */
export interface AskTimings {
  /** World points, canonical transform, region masks. */
  geometry: number;
  /** Image tiles (and the tiling plan). */
  tiling: number;
  /** The SigLIP vision tower. */
  vision: number;
  /** The 3D PE (point tiling, pooling, sinusoids, MLP) and the 3x3 projector. */
  projector: number;
  /** Region mask tiling, pooling and the region projector. */
  regions: number;
  /** Prompt tokenization and splice, plus prefill until the first token. */
  prefill: number;
  /** The remaining tokens. */
  decode: number;
  total: number;
}

/** The result of {@link SR3D.ask}. */
export interface AskResult {
  /** The answer (special tokens dropped). */
  text: string;
  /** Generated token ids (without the stop token). */
  tokens: number[];
  /** Why generation ended: `'stop'` (a stop token), `'length'` (`maxNewTokens` or a full context) or `'aborted'` (`signal`). */
  stopReason: StopReason;
  timings: AskTimings;
  /** What ran: mode, tiles, prompt length, whether the 3D PE was used, notes. */
  details: PreparedDetails;
  /** The regions as per-frame masks (e.g. for `writeOverlay`). */
  regions: ResolvedRegion[];
  /** The scene the request ran on (null for a single image without depth). */
  scene: Scene | null;
}

/** How a request was prepared. */
export interface PreparedDetails {
  /** `'tiles'`: one image, dynamically tiled (§5.3); `'frames'`: one 448² tile per frame (§A8). */
  mode: 'tiles' | 'frames';
  /** Scene frame indices fed to the model (`[0]` for an image). */
  frames: number[];
  /** Image blocks in the prompt (tiles, thumbnail included, or frames). */
  images: number;
  /** The tiling grid of each fed image ({@link framePlan} for frames). */
  plan: TilePlan;
  /** Whether the 3D PE was added. */
  spatialPe: boolean;
  /** Prefill length in positions: text tokens − images + images × (tokens per tile + end tokens). */
  promptLength: number;
  /** Notices about this request (e.g. "no depth: no 3D PE"). */
  notes: string[];
  /** Whether the image side came from an earlier request on the same Scene (see `cache`). */
  cached: boolean;
  /** A {@link StreamingScene} only: the window asked about. */
  stream?: StreamDetails;
  /**
   * {@link SR3D.ask} only: the answer's number against the same quantity measured from the
   * depth, when the question asks a metric quantity of its regions (see `check`). Absent
   * otherwise (no such question, no depth, no number measurable).
   */
  check?: AnswerCheck;
}

/** What a request on a {@link StreamingScene} ran on. */
export interface StreamDetails {
  /** The window's `version`. */
  version: number;
  /** Stream indices of the frames fed. */
  frames: number[];
  /** Frames that went through the vision tower in this request (0: all reused). */
  encodedFrames: number;
}

/** A request ready for the language model (the output of {@link SR3D.prepare}). */
export interface Prepared {
  prompt: BuiltPrompt;
  spliced: SplicedEmbeddings;
  /** (M, llmHidden) projected region features, one row per region given (M), or null. */
  regionEmbeddings: Float32Array | null;
  /** The resolved region masks (per scene frame). */
  regions: ResolvedRegion[];
  /** The scene the request ran on (null for a single image without depth). */
  scene: Scene | null;
  details: PreparedDetails;
  /** The regions measured from the depth, when the question asks a metric quantity of them (for `details.check`). */
  measured?: MeasureResult;
  /** Stage times, ms; `prompt` is the tokenization and splice (part of `prefill` in {@link AskTimings}). */
  timings: Pick<AskTimings, 'geometry' | 'tiling' | 'vision' | 'projector' | 'regions'> & { prompt: number };
}

