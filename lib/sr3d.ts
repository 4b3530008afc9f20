/**
 * The SR-3D forward pass (spec Part A; Part B §9): a scene (one image, or 2-32 RGB-D views) and
 * region prompts in, the model's streamed answer out.
 *
 *   prompt    : VILA's qwen2 template, `"<image>\n"` per tile (one image) or `"<image>"` per frame,
 *               `<regionK>` → one region token each (§5, §A7); built and length-checked first, so
 *               a bad question or too long a prompt fails before any heavy work
 *   geometry  : world points of every frame (depth + intrinsics + pose), one canonical
 *               transform over all valid points of the whole scene (§A3)
 *   tiling    : one image → NVILA dynamic tiles + thumbnail; several frames → one 448² tile
 *               each (§A8); point maps and masks tiled like the image (nearest)
 *   vision    : SigLIP up to the selected layer (§3)
 *   projector : per-patch mean of the canonical points → sinusoidal features → the 3D-PE MLP,
 *               added to the vision tokens of patches with a valid point (§A4-A5) [INFERRED],
 *               then the 3x3 downsample projector (§4)
 *   regions   : mask pooling over the stitched grid tiles (thumbnail excluded) or jointly over
 *               frames, then the region projector (§A6) [INFERRED]
 *   prefill / decode : image blocks (121 projector rows + the "\n" row) and region rows spliced
 *               into the token embeddings (§5.3), the native engine generates.
 */
import * as fs from 'fs';
import * as path from 'path';

import { loadCheckpoint } from './checkpoint';
import type { Checkpoint } from './checkpoint_types';
import { createEngine, nativeEngineOf } from './engine';
import type { Engine, EngineOptions } from './engine';
import { Sr3dError, invalidArgument } from './errors';
import { canonicalize, poolPointsToPatches, sinusoidalEncode } from './geometry';
import { readImage } from './image';
import { buildPrompt, pythonStrip, rewriteRegionPlaceholders, spliceEmbeddings } from './prompt';
import type { BuiltPrompt, SplicedEmbeddings } from './prompt';
import { maskPool } from './region';
import { RegionError, resolveRegions } from './regions';
import type { RegionSpec, ResolvedRegion } from './regions';
import { loadScene, sceneFromFrames, sceneWorldPoints } from './scene';
import type { Scene, SceneFrameInput } from './scene';
import { framePlan, planTiles, sampleFrames, tileImage, tileMask, tilePointMap } from './tiling';
import type { TilePlan } from './tiling';
import { loadTokenizer } from './tokenizer';
import type { Sr3dTokenizer } from './tokenizer';
import { toContiguous, toNdArray } from './tensor';
import type { NdArray, TensorLike } from './tensor';
import { ModelError } from './errors';
export { ModelError };


/** Options of {@link SR3D.load}. */
export interface LoadOptions extends EngineOptions {
  /**
   * Called with each one-time notice about the checkpoint (e.g. "no spatial_pe/: running as
   * NVILA-Lite"), once per load. Defaults to `process.emitWarning` with code `SR3D_NOTICE`, once
   * per distinct notice per process.
   */
  onNotice?: (message: string) => void;
}

/** Stages of {@link SR3D.ask}, in order, as reported to {@link AskInput.onProgress}. */
export type AskStage = 'geometry' | 'tiling' | 'vision' | 'projector' | 'regions' | 'prefill' | 'decode';

/** What {@link SR3D.ask} and {@link SR3D.prepare} take. Give exactly one of `scene`, `frames` or `image`. */
export interface AskInput {
  /** A loaded scene, or the path of a `scene.json` manifest (or its folder). */
  scene?: Scene | string;
  /** In-memory RGB-D frames (validated by `sceneFromFrames`: at most 32). */
  frames?: readonly SceneFrameInput[];
  /** One RGB image without depth (a path, encoded bytes, or an (H,W,3) uint8 tensor): runs without the 3D PE. */
  image?: string | Uint8Array | TensorLike;
  /** Region prompts, named `<region0>`, `<region1>`, … in the question, in this order. Defaults to none. */
  regions?: readonly RegionSpec[];
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
   * as a path, `frames` or `image` are not cached. Defaults to `true`.
   */
  cache?: boolean;
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
  /** Aborting stops generation; `ask` then resolves with the text so far. Defaults to none. */
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
  /** Stage times, ms; `prompt` is the tokenization and splice (part of `prefill` in {@link AskTimings}). */
  timings: Pick<AskTimings, 'geometry' | 'tiling' | 'vision' | 'projector' | 'regions'> & { prompt: number };
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

// The image side of a request, kept per Scene object (SR3D.prepare's `cache`).
interface SceneWork {
  world?: NdArray<Float32Array>[];
  feats: NdArray<Float32Array>;
  projected: NdArray<Float32Array>;
  peOn: boolean;
  notes: string[];
}
const noticed = new Set<string>();
const SINGLE_IMAGE_NOTE = 'a single image without depth: running without the 3D positional encoding';

/** The SR-3D model: a checkpoint on a native engine, with its tokenizer. */
export class SR3D {
  // Per Scene object: the image side of earlier requests, by frames fed and tiling.
  private readonly sceneCache = new WeakMap<Scene, Map<string, SceneWork>>();

  private constructor(
    /** The loaded checkpoint (configs and lazily read weights). */
    readonly checkpoint: Checkpoint,
    /** The native engine running it. */
    readonly engine: Engine,
    /** The Qwen2 tokenizer with VILA's media tokens and the region token. */
    readonly tokenizer: Sr3dTokenizer,
    /** One-time notices about the checkpoint (e.g. running as NVILA-Lite). */
    readonly notices: readonly string[],
  ) {}

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
    const { onNotice, ...engineOpts } = opts;
    if (onNotice !== undefined && typeof onNotice !== 'function') throw invalidArgument('a function (message) => void', 'options.onNotice', onNotice);
    const ckpt = await loadCheckpoint(dir);
    const tokenizer = await loadTokenizer(ckpt.llm.config.tokenizerDir, {
      regionToken: ckpt.regionExtractor?.config.regionToken,
      generationEosTokenIds: ckpt.llm.config.eosTokenIds,
      embeddingRows: ckpt.llm.config.vocabSize,
    });
    const engine = await createEngine(ckpt, engineOpts);
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
    return new SR3D(ckpt, engine, tokenizer, notices);
  }

  /** Frees the engine (device memory included). A second call is a no-op. */
  async dispose(): Promise<void> {
    await this.engine.dispose();
  }

  /**
   * Everything before the language model: the prompt (checked against the context first),
   * geometry, tiling, vision tower, 3D PE, projector, region features and the spliced
   * embedding sequence.
   *
   * Errors: {@link ModelError} for region prompts on a checkpoint without
   * `region_extractor/`, `maxFrames` above the checkpoint's `num_video_frames`, or a prompt
   * longer than the context; `InvalidArgumentError` (from `buildPrompt`) for a `<regionK>`
   * with no region K or a region never named; `SceneError` / `RegionError` for bad scenes and
   * regions.
   */
  async prepare(input: AskInput): Promise<Prepared> {
    if (input === null || typeof input !== 'object') throw invalidArgument('an object { scene | frames | image, question, regions? }', 'input', input);
    if (typeof input.question !== 'string' || input.question.trim() === '') {
      throw invalidArgument('a non-empty question string', 'question', input.question);
    }
    const ckpt = this.checkpoint;
    const progress = input.onProgress;
    if (progress !== undefined && typeof progress !== 'function') throw invalidArgument('a function (stage, message) => void', 'onProgress', progress);
    const say = (stage: AskStage, message: string) => progress?.(stage, message);
    const regionSpecs = input.regions ?? [];
    if (!Array.isArray(regionSpecs)) throw invalidArgument('an array of region specs', 'regions', regionSpecs);
    if (regionSpecs.length > 0 && !ckpt.regionExtractor) {
      throw new ModelError(
        `This checkpoint (${ckpt.dir}) has no region_extractor/, so it cannot take region prompts (${regionSpecs.length} given). ` +
          'Fix: use an SR-3D checkpoint with region_extractor/ (spec Part A §A6; `sr3d tiny-model` writes one for tests), or ask without regions.');
    }
    if (input.regionMargin !== undefined && (typeof input.regionMargin !== 'number' || !Number.isFinite(input.regionMargin) || input.regionMargin < 0)) {
      throw invalidArgument('a non-negative number of metres', 'regionMargin', input.regionMargin);
    }
    const notes: string[] = [];
    const t: Prepared['timings'] = { geometry: 0, tiling: 0, vision: 0, projector: 0, regions: 0, prompt: 0 };
    const vc = ckpt.vision.config;
    const tileSize = vc.imageSize;
    const g = vc.imageSize / vc.patchSize;
    const hv = vc.hiddenSize;
    const D = ckpt.llm.config.hiddenSize;
    const T = ckpt.projector.config.tokensPerTile;

    // ---- the input -------------------------------------------------------------------------
    let t0 = now();
    const given = (['scene', 'frames', 'image'] as const).filter((k) => input[k] !== undefined);
    if (given.length !== 1) {
      throw invalidArgument('exactly one of scene, frames or image', 'input', given.length ? given.join(' and ') : 'none of them', true);
    }
    let scene: Scene | null = null;
    let images: NdArray<Uint8Array>[];
    if (input.scene !== undefined) {
      if (typeof input.scene !== 'string' && (input.scene === null || typeof input.scene !== 'object' || !Array.isArray(input.scene.frames))) {
        throw invalidArgument('a Scene (loadScene, sceneFromFrames) or a scene.json path', 'scene', input.scene);
      }
      scene = typeof input.scene === 'string' ? await loadScene(input.scene) : input.scene;
      images = scene.frames.map((f) => f.image);
    } else if (input.frames !== undefined) {
      scene = sceneFromFrames(input.frames);
      images = scene.frames.map((f) => f.image);
    } else {
      const img = input.image!;
      const im = typeof img === 'string' || img instanceof Uint8Array
        ? await readImage(img)
        : toContiguous(img, 'image', { dtypes: ['uint8'], ranks: [3], lastDim: 3, what: 'an RGB image (H,W,3) uint8' });
      images = [toNdArray(im.data as Uint8Array, im.shape)];
      notes.push(SINGLE_IMAGE_NOTE);
    }
    const limit = ckpt.config.numVideoFrames;
    const maxFrames = input.maxFrames ?? limit;
    if (!Number.isInteger(maxFrames) || maxFrames < 1) throw invalidArgument('a positive integer', 'maxFrames', maxFrames);
    if (maxFrames > limit) {
      throw new ModelError(`Expected at most ${limit} frames (the checkpoint's num_video_frames) for maxFrames but received ${maxFrames}. ` +
        `Fix: pass maxFrames <= ${limit}; longer scenes are sampled down to it (round(linspace), spec §A8).`);
    }
    const frameIdx = images.length === 1 ? [0] : sampleFrames(images.length, Math.min(images.length, maxFrames));
    const mode: 'tiles' | 'frames' = frameIdx.length === 1 ? 'tiles' : 'frames';
    const plan = mode === 'tiles'
      ? planTiles(images[frameIdx[0]].shape[1], images[frameIdx[0]].shape[0], { minTiles: ckpt.config.minTiles, maxTiles: ckpt.config.maxTiles, tileSize })
      : framePlan({ tileSize });
    const nTiles = plan.tiles * frameIdx.length;

    // ---- the prompt first: placeholders and the length are checked before any heavy work ----
    const prompt = buildPrompt(this.tokenizer, { images: nTiles, mode, question: input.question, regions: regionSpecs.length, system: input.system });
    const endText = ckpt.config.imageEndTokens;
    const endTokenIds = endText ? this.tokenizer.encode(endText) : [];
    const maxLength = Math.min(ckpt.config.modelMaxLength, this.engine.info().maxContext);
    const promptLength = prompt.ids.length - nTiles + nTiles * (T + endTokenIds.length);
    if (promptLength > maxLength) {
      const what = mode === 'tiles' ? `${nTiles} tiles` : `${nTiles} frames`;
      throw new ModelError(`Expected a prompt of at most ${maxLength} positions (the model's context) but received ${promptLength} ` +
        `(${what} × ${T + endTokenIds.length} + ${prompt.ids.length - nTiles} text tokens). ` +
        `Fix: ${mode === 'frames' ? 'feed fewer frames (maxFrames)' : 'use a smaller image (fewer tiles)'} or a shorter question` +
        `${this.engine.info().maxContext < ckpt.config.modelMaxLength ? `, or load with a larger maxContext (up to ${ckpt.config.modelMaxLength})` : ''}.`);
    }
    t.prompt = now() - t0;

    // ---- geometry: world points → one canonical transform over the whole scene (§A3) ---------
    t0 = now();
    say('geometry', mode === 'tiles' ? 'geometry: 1 view' : `geometry: ${frameIdx.length} of ${images.length} frames`);
    const usePe = !!ckpt.spatialPe && scene !== null;
    if (!ckpt.spatialPe) notes.push(`the checkpoint has no spatial_pe/: running as NVILA-Lite, without the 3D positional encoding`);
    const needBox3d = regionSpecs.some((r) => r !== null && typeof r === 'object' && 'box3d' in r);
    // The image side of an earlier request on this Scene object, when it fed the same frames.
    const cacheable = input.cache !== false && input.scene !== undefined && typeof input.scene !== 'string';
    const cacheKey = `${frameIdx.join(',')}|${plan.cols}x${plan.rows}x${plan.tiles}`;
    const hit = cacheable ? this.sceneCache.get(scene!)?.get(cacheKey) : undefined;
    let world: NdArray<Float32Array>[] | undefined = hit?.world;
    if (scene && !world && ((usePe && !hit) || needBox3d)) world = await sceneWorldPoints(scene);
    let canonicalFrames: (NdArray<Float32Array> | null)[] | null = null;
    const geometryNotes: string[] = [];
    if (hit) {
      geometryNotes.push(...hit.notes);
      if (world && !hit.world) hit.world = world;
    } else if (usePe) {
      canonicalFrames = await canonicalFramesOf(scene!, world!, frameIdx, geometryNotes);
      if (canonicalFrames === null) geometryNotes.push('no valid depth in the frames fed: running without the 3D positional encoding');
    }
    notes.push(...geometryNotes);
    const peOn = hit ? hit.peOn : canonicalFrames !== null;

    // Regions: resolved on all scene frames (the user's frame numbering), used on the fed ones.
    let regions: ResolvedRegion[] = [];
    if (regionSpecs.length > 0) {
      if (scene) {
        regions = await resolveRegions(scene, regionSpecs, { margin: input.regionMargin, worldPoints: world });
      } else {
        if (needBox3d) {
          throw new RegionError('Expected 2D regions (frame=0 with a box or mask) for an image without depth but received a 3D box. ' +
            'Fix: give the image\'s depth and intrinsics (a scene or frames) to use 3D boxes, or draw the region as a 2D box or mask.', regionSpecs.findIndex((r) => 'box3d' in r));
        }
        const [H, W] = images[0].shape;
        const flat = sceneFromFrames([{ image: images[0], depth: toNdArray(new Float32Array(H * W), [H, W]), intrinsics: { fx: 1, fy: 1, cx: 0, cy: 0 } }]);
        regions = await resolveRegions(flat, regionSpecs);
      }
      regions.forEach((r, k) => {
        if (frameIdx.every((f) => r.pixels[f] === 0)) {
          throw new RegionError(`Expected region ${k} on at least one of the frames fed to the model (${frameIdx.join(', ')}) but it is only on frame(s) ` +
            `${r.pixels.flatMap((p, f) => (p > 0 ? [f] : [])).join(', ')}. Fix: put the region on a fed frame, or raise maxFrames so its frame is sampled.`, k);
        }
      });
    }
    t.geometry = now() - t0;

    let feats: NdArray<Float32Array>;
    let projected: NdArray<Float32Array>;
    if (hit) {
      ({ feats, projected } = hit);
      say('vision', `vision: ${nTiles} ${mode === 'tiles' ? 'tiles' : 'frames'} (cached from an earlier request on this scene)`);
    } else {
      // ---- tiling --------------------------------------------------------------------------
      t0 = now();
      say('tiling', mode === 'tiles'
        ? `tiling: ${plan.cols}x${plan.rows} tiles${plan.thumbnail ? ' + thumbnail' : ''}`
        : `tiling: ${frameIdx.length} frames, one ${tileSize}² tile each`);
      const tiles = new Float32Array(nTiles * 3 * tileSize * tileSize);
      const per = plan.tiles * 3 * tileSize * tileSize;
      for (let fi = 0; fi < frameIdx.length; fi++) {
        await tileImage(images[frameIdx[fi]], plan, { out: tiles.subarray(fi * per, (fi + 1) * per) });
      }
      t.tiling = now() - t0;

      // ---- vision tower --------------------------------------------------------------------
      t0 = now();
      say('vision', `vision: ${nTiles} ${mode === 'tiles' ? 'tiles' : 'frames'}`);
      feats = await this.engine.encodeTiles({ data: tiles, shape: [nTiles, 3, tileSize, tileSize] });
      t.vision = now() - t0;

      // ---- 3D PE added to the vision tokens, then the projector (§A4-A5, §4) -------------------
      t0 = now();
      say('projector', `projector${peOn ? ' + 3D PE' : ''}`);
      if (peOn) {
        const pe = ckpt.spatialPe!.config;
        const perImage = plan.tiles * g * g;
        for (let fi = 0; fi < frameIdx.length; fi++) {
          const cf = canonicalFrames![fi];
          if (!cf) continue; // a frame without valid depth: no PE on its tokens
          const ptTiles = await tilePointMap(cf, plan);
          const pooled = await poolPointsToPatches(ptTiles, { patch: vc.patchSize });
          // Only patches with a valid point get a PE (§A4): encode and run the MLP on those rows.
          const valid = pooled.valid.data;
          const rowsValid: number[] = [];
          for (let r = 0; r < perImage; r++) if (valid[r]) rowsValid.push(r);
          if (rowsValid.length === 0) continue;
          const pts = new Float32Array(rowsValid.length * 3);
          rowsValid.forEach((r, i) => pts.set(pooled.points.data.subarray(3 * r, 3 * r + 3), 3 * i));
          const enc = await sinusoidalEncode(toNdArray(pts, [rowsValid.length, 3]), { numFreqs: pe.numFreqs, includeInput: pe.includeInput });
          const mlp = await this.engine.runMlp('spatial_pe', enc);
          const base = fi * perImage;
          rowsValid.forEach((r, i) => {
            const dst = (base + r) * hv, src = i * hv;
            for (let c = 0; c < hv; c++) feats.data[dst + c] += mlp.data[src + c];
          });
        }
      }
      projected = await this.engine.project(feats);
      t.projector = now() - t0;

      if (cacheable) {
        let m = this.sceneCache.get(scene!);
        if (!m) this.sceneCache.set(scene!, (m = new Map()));
        m.set(cacheKey, { world, feats, projected, peOn, notes: geometryNotes });
      }
    }

    // ---- region features (§A6) -----------------------------------------------------------------
    t0 = now();
    let regionEmbeddings: Float32Array | null = null;
    if (regions.length > 0) {
      say('regions', `regions: ${regions.length}`);
      const rc = ckpt.regionExtractor!.config;
      const M = regions.length;
      let pooled: NdArray<Float32Array>;
      if (mode === 'tiles') {
        // Tile then stitch (§A6): the grid tiles' masks back in place form the mask resized
        // (nearest) to cols·T x rows·T, the pixel size of the stitched feature grid; the
        // thumbnail's mask is not used.
        const H = plan.rows * tileSize, W = plan.cols * tileSize;
        const masks = new Uint8Array(M * H * W);
        for (let m = 0; m < M; m++) {
          const mt = await tileMask(regions[m].masks[frameIdx[0]], plan);
          for (let k = 0; k < plan.cols * plan.rows; k++) {
            const r = Math.floor(k / plan.cols), c = k % plan.cols;
            for (let y = 0; y < tileSize; y++) {
              const src = (k * tileSize + y) * tileSize;
              masks.set(mt.data.subarray(src, src + tileSize), m * H * W + (r * tileSize + y) * W + c * tileSize);
            }
          }
          checkNonEmpty(masks.subarray(m * H * W, (m + 1) * H * W), m, `${W}x${H} tile grid`);
        }
        pooled = await maskPool({ data: feats.data, shape: [nTiles, g, g, hv] }, { data: masks, shape: [M, H, W] },
          { plan, mode: rc.pooling, patch: vc.patchSize });
      } else {
        // Multi-view: each frame is one tile; a region pools jointly over every fed frame it is on.
        const F = frameIdx.length, S = tileSize * tileSize;
        const masks = new Uint8Array(M * F * S);
        for (let m = 0; m < M; m++) {
          for (let f = 0; f < F; f++) {
            if (regions[m].pixels[frameIdx[f]] === 0) continue;
            await tileMask(regions[m].masks[frameIdx[f]], plan, { out: masks.subarray((m * F + f) * S, (m * F + f + 1) * S) });
          }
          checkNonEmpty(masks.subarray(m * F * S, (m + 1) * F * S), m, `${tileSize}x${tileSize} frames`);
        }
        pooled = await maskPool({ data: feats.data, shape: [F, g, g, hv] }, { data: masks, shape: [M, F, tileSize, tileSize] },
          { mode: rc.pooling, patch: vc.patchSize });
      }
      regionEmbeddings = (await this.engine.runMlp('region', pooled)).data;
    }
    t.regions = now() - t0;

    // ---- splice (§5.3) -------------------------------------------------------------------------
    t0 = now();
    const blocks: Float32Array[] = [];
    for (let k = 0; k < nTiles; k++) blocks.push(projected.data.subarray(k * T * D, (k + 1) * T * D));
    const spliced = await spliceEmbeddings({
      ids: prompt.ids, imagePositions: prompt.imagePositions, imageBlocks: blocks, endTokenIds, tokensPerBlock: T,
      regionPositions: prompt.regionPositions, regionEmbeddings: regionEmbeddings ?? undefined, regionIndices: prompt.regionIndices,
      embed: async (ids) => (await this.engine.embedTokens(ids)).data, hidden: D, maxLength,
    });
    t.prompt += now() - t0;
    const details: PreparedDetails = {
      mode, frames: frameIdx, images: nTiles, plan, spatialPe: peOn, promptLength: spliced.length, notes, cached: hit !== undefined,
    };
    return { prompt, spliced, regionEmbeddings, regions, scene, details, timings: t };
  }

  /**
   * Asks the model about a scene: {@link prepare}, then generation on the engine (greedy by
   * default, stopping at `<|im_end|>` / eos). Streams text through `onToken`; resolves with the
   * whole answer, its token ids, per-stage timings and what ran.
   */
  async ask(input: AskInput & GenerationOptions): Promise<AskResult> {
    const tStart = now();
    if (input === null || typeof input !== 'object') throw invalidArgument('an object { scene | frames | image, question, regions? }', 'input', input);
    const { onToken, maxNewTokens, temperature, topP, topK, seed, signal } = input;
    // Checked before the heavy work (the engine checks the rest when generation starts).
    if (onToken !== undefined && typeof onToken !== 'function') throw invalidArgument('a function (text, tokenId) => void', 'onToken', onToken);
    if (maxNewTokens !== undefined && (!Number.isInteger(maxNewTokens) || maxNewTokens < 0)) throw invalidArgument('a non-negative integer', 'maxNewTokens', maxNewTokens);
    if (temperature !== undefined && (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0)) {
      throw invalidArgument('a finite number >= 0 (0 = greedy)', 'temperature', temperature);
    }
    const prep = await this.prepare(input);
    input.onProgress?.('prefill', `prefill: ${prep.details.promptLength} positions`);
    const g = await this.generateText(prep.spliced.embeddings, prep.spliced.length, input, false);
    const timings: AskTimings = {
      geometry: prep.timings.geometry, tiling: prep.timings.tiling, vision: prep.timings.vision,
      projector: prep.timings.projector, regions: prep.timings.regions,
      prefill: prep.timings.prompt + g.prefill, decode: g.decode, total: now() - tStart,
    };
    return { text: g.text, tokens: g.tokens, timings, details: prep.details, regions: prep.regions, scene: prep.scene };
  }

  /**
   * A conversation about one scene: the first {@link ChatSession.ask} runs the whole pipeline,
   * later questions continue the same KV cache (the scene, the regions and the earlier turns
   * are not computed again). `input` is an {@link AskInput} without the question.
   */
  chat(input: Omit<AskInput, 'question'>): ChatSession {
    if (input === null || typeof input !== 'object') throw invalidArgument('an object { scene | frames | image, regions? }', 'input', input);
    return new ChatSession(this, input);
  }

  /** @internal Streams a generation; `append` continues the KV cache (a chat's next turn). */
  async generateText(embeddings: Float32Array, n: number, gen: GenerationOptions & { onProgress?: AskInput['onProgress'] }, append: boolean):
    Promise<{ text: string; tokens: number[]; prefill: number; decode: number }> {
    const { onToken, maxNewTokens, temperature, topP, topK, seed, signal } = gen;
    const dec = this.tokenizer.createStreamDecoder({ skipSpecialTokens: true });
    const tokens: number[] = [];
    let text = '';
    const t0 = now();
    let tFirst = 0;
    const stream = this.engine.generate({ data: embeddings, shape: [n, this.checkpoint.llm.config.hiddenSize] },
      { maxNewTokens, temperature, topP, topK, seed, signal, stopTokenIds: this.tokenizer.stopTokenIds, append });
    for await (const id of stream) {
      if (tokens.length === 0) {
        tFirst = now();
        gen.onProgress?.('decode', 'decode');
      }
      tokens.push(id);
      const piece = dec.push(id);
      text += piece;
      if (piece && onToken) onToken(piece, id);
    }
    const tail = dec.flush();
    if (tail) {
      text += tail;
      if (onToken) onToken(tail, -1);
    }
    const tEnd = now();
    if (tokens.length === 0) tFirst = tEnd;
    return { text, tokens, prefill: tFirst - t0, decode: tEnd - tFirst };
  }
}

/** One turn of a {@link ChatSession}. */
export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

/**
 * A conversation about one scene (from {@link SR3D.chat}). The first question runs the whole
 * pipeline (`ask`); each later one is appended to the same KV cache as the next user turn of
 * VILA's qwen2 template (`<|im_end|>\n<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n`),
 * so only its own tokens are prefilled. Later questions may name any of the session's regions
 * (`<regionK>`); the earlier answers stay in the context as the tokens that were generated.
 * One conversation per model at a time: any other request on the model starts its KV cache
 * over, after which this session's next question is a {@link ModelError}.
 */
export class ChatSession {
  /** The turns so far. */
  readonly history: ChatTurn[] = [];
  private regionEmbeddings: Float32Array | null = null;
  private regionCount = 0;
  private epoch = -1;

  constructor(private readonly model: SR3D, private readonly input: Omit<AskInput, 'question'>) {}

  /** Asks the next question; resolves like {@link SR3D.ask} (the image stages are 0 after the first turn). */
  async ask(question: string, gen: GenerationOptions = {}): Promise<AskResult> {
    if (typeof question !== 'string' || question.trim() === '') throw invalidArgument('a non-empty question string', 'question', question);
    if (gen === null || typeof gen !== 'object') throw invalidArgument('generation options', 'options', gen);
    const model = this.model;
    if (this.history.length === 0) {
      const tStart = now();
      const prep = await model.prepare({ ...this.input, question });
      const g = await model.generateText(prep.spliced.embeddings, prep.spliced.length, { ...gen, onProgress: this.input.onProgress }, false);
      this.epoch = model.engine.cacheEpoch;
      this.regionEmbeddings = prep.regionEmbeddings;
      this.regionCount = prep.regions.length;
      this.details = prep.details;
      this.resolved = prep.regions;
      this.scene = prep.scene;
      this.history.push({ role: 'user', content: question }, { role: 'assistant', content: g.text });
      const p = prep.timings;
      return {
        text: g.text, tokens: g.tokens, details: prep.details, regions: prep.regions, scene: prep.scene,
        timings: { geometry: p.geometry, tiling: p.tiling, vision: p.vision, projector: p.projector, regions: p.regions, prefill: p.prompt + g.prefill, decode: g.decode, total: now() - tStart },
      };
    }
    const tStart = now();
    if (model.engine.cacheEpoch !== this.epoch) {
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
    const { text, regionIndices } = rewriteRegionPlaceholders(question, this.regionCount, regionToken, { requireAll: false });
    // The next user turn of the template; the previous answer's last token comes first when it
    // is text (its generation stopped at maxNewTokens) or <|im_end|> (it stopped there).
    const imEnd = tok.tokenToId('<|im_end|>');
    const pending = model.engine.pendingToken;
    const turn = `\n<|im_start|>user\n${pythonStrip(text)}<|im_end|>\n<|im_start|>assistant\n`;
    let ids: number[];
    if (pending !== null && pending === imEnd) ids = [pending, ...tok.encode(turn)];
    else if (pending !== null && !tok.stopTokenIds.includes(pending)) ids = [pending, ...tok.encode('<|im_end|>' + turn)];
    else ids = tok.encode('<|im_end|>' + turn);
    const info = model.engine.info();
    const cached = nativeCached(model.engine);
    if (cached + ids.length > info.maxContext) {
      throw new ModelError(`Expected the conversation to fit the model's context (${info.maxContext} positions) but this turn needs ${ids.length} more after ` +
        `${cached}. Fix: start a new chat (or load the model with a larger maxContext).`);
    }
    const D = model.checkpoint.llm.config.hiddenSize;
    const emb = (await model.engine.embedTokens(ids)).data;
    const positions = ids.flatMap((id, i) => (id === tok.regionTokenId ? [i] : []));
    positions.forEach((pos, i) => emb.set(this.regionEmbeddings!.subarray(regionIndices[i] * D, (regionIndices[i] + 1) * D), pos * D));
    const g = await model.generateText(emb, ids.length, { ...gen, onProgress: this.input.onProgress }, true);
    this.epoch = model.engine.cacheEpoch;
    this.history.push({ role: 'user', content: question }, { role: 'assistant', content: g.text });
    return {
      text: g.text, tokens: g.tokens, details: { ...this.details!, promptLength: ids.length, cached: true }, regions: this.resolved, scene: this.scene,
      timings: { geometry: 0, tiling: 0, vision: 0, projector: 0, regions: 0, prefill: g.prefill, decode: g.decode, total: now() - tStart },
    };
  }

  private details: PreparedDetails | null = null;
  private resolved: ResolvedRegion[] = [];
  private scene: Scene | null = null;
}

/** Positions in the engine's KV cache. */
function nativeCached(engine: Engine): number {
  return nativeEngineOf(engine).info().cached;
}

/** A region whose mask vanished when resized to the model's tile grid (a few pixels on a large image). */
function checkNonEmpty(mask: Uint8Array, m: number, where: string): void {
  for (let i = 0; i < mask.length; i++) if (mask[i]) return;
  throw new RegionError(`Expected region ${m} to cover at least one pixel of the model's ${where} but its mask vanished when resized (nearest) to it. ` +
    'Fix: give a larger region (a few pixels are lost when a large image is scaled down to the tiles).', m);
}

/**
 * The rotation taking the unit vector `u` to +z (Rodrigues about u × z), row-major 3x3. A
 * single view without a pose but with an `up` vector is canonicalized in this gravity-aligned
 * frame (§A3).
 */
function rotationToZ(u: readonly [number, number, number]): number[] {
  const [x, y, z] = u;
  if (z < -1 + 1e-12) return [1, 0, 0, 0, -1, 0, 0, 0, -1]; // up = -z: half turn about x
  // v = u × z = (y, -x, 0); R = I + [v]× + [v]×² / (1 + c), c = u·z = z.
  const k = 1 / (1 + z);
  return [
    1 - x * x * k, -x * y * k, -x,
    -x * y * k, 1 - y * y * k, -y,
    x, y, 1 - (x * x + y * y) * k,
  ];
}

/**
 * The canonical point map of each fed frame (§A3): one transform over all valid world points
 * of every scene frame (camera frame rotated to gravity when there is no pose but an `up`
 * vector). Null when the scene has no valid point at all.
 */
async function canonicalFramesOf(scene: Scene, world: NdArray<Float32Array>[], fed: number[], notes: string[]): Promise<NdArray<Float32Array>[] | null> {
  let total = 0;
  for (const w of world) total += w.data.length;
  const all = new Float32Array(total);
  const offsets: number[] = [];
  let o = 0;
  for (const w of world) { offsets.push(o); all.set(w.data, o); o += w.data.length; }
  const posed = scene.frames.some((f) => f.pose !== undefined);
  if (!posed && scene.up) {
    const R = rotationToZ(scene.up);
    for (let i = 0; i < total; i += 3) {
      const a = all[i], b = all[i + 1], c = all[i + 2];
      all[i] = R[0] * a + R[1] * b + R[2] * c;
      all[i + 1] = R[3] * a + R[4] * b + R[5] * c;
      all[i + 2] = R[6] * a + R[7] * b + R[8] * c;
    }
  }
  if (!posed && scene.frames.length > 1) notes.push('frames without camera poses: each frame\'s points are in its own camera frame, so the 3D PE does not relate the views');
  let anyValid = false;
  for (let i = 0; i < total && !anyValid; i += 3) anyValid = Number.isFinite(all[i]) && Number.isFinite(all[i + 1]) && Number.isFinite(all[i + 2]);
  if (!anyValid) return null;
  await canonicalize(toNdArray(all, [total / 3, 3]), { outPoints: all });
  return fed.map((f) => toNdArray(all.subarray(offsets[f], offsets[f] + world[f].data.length), world[f].shape));
}

/** Where NVILA-Lite-8B weights come from and how to make a tiny test model (for CLI messages). */
export const MODEL_HELP = [
  'No model given: pass --model <dir> or set SR3D_MODEL.',
  'A model folder is in the NVILA/VILA layout (config.json, llm/, vision_tower/, mm_projector/), plus SR-3D\'s spatial_pe/ and region_extractor/.',
  '  - NVILA-Lite-8B (the public base, no 3D PE or region extractor): download Efficient-Large-Model/NVILA-Lite-8B from Hugging Face',
  '    on a machine with internet access, e.g. `huggingface-cli download Efficient-Large-Model/NVILA-Lite-8B --local-dir nvila-lite-8b`.',
  '  - A tiny random test model in the same layout (answers are noise, the whole pipeline runs): `sr3d tiny-model ./tiny-sr3d`,',
  '    then `sr3d ask examples/data/tum_fr3_cabinet --model ./tiny-sr3d "What is in the scene?"`.',
].join('\n');

/** Whether `dir` looks like a checkpoint folder (has config.json). */
export function isCheckpointDir(dir: string): boolean {
  try {
    return fs.statSync(path.join(dir, 'config.json')).isFile();
  } catch {
    return false;
  }
}
