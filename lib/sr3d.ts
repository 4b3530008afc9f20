/**
 * The SR-3D forward pass (spec Part A; Part B §9): a scene (one image, or 2-32 RGB-D views) and
 * region prompts in, the model's streamed answer out.
 *
 *   geometry  : world points of every frame (depth + intrinsics + pose), one canonical
 *               transform for the whole scene (§A3)
 *   tiling    : one image → NVILA dynamic tiles + thumbnail; several frames → one 448² tile
 *               each (§A8); point maps and masks tiled like the image (nearest)
 *   vision    : SigLIP, the selected layer (§3)
 *   pe        : per-patch mean of the canonical points → sinusoidal features → the 3D-PE MLP,
 *               added to the vision tokens (§A4-A5) [INFERRED reconstruction]
 *   projector : the 3x3 downsample projector (§4)
 *   regions   : mask pooling over the stitched tiles / jointly over frames, region projector
 *               (§A6) [INFERRED reconstruction]
 *   prefill / decode : the Qwen2 template, `<image>` blocks and region rows spliced (§5), the
 *               native engine generates.
 */
import * as fs from 'fs';
import * as path from 'path';

import { loadCheckpoint } from './checkpoint';
import type { Checkpoint } from './checkpoint_types';
import { createEngine } from './engine';
import type { Engine, EngineOptions } from './engine';
import { InvalidArgumentError, Sr3dError, invalidArgument } from './errors';
import { canonicalize, poolPointsToPatches, sinusoidalEncode, toCanonical } from './geometry';
import { readImage } from './image';
import { buildPrompt, spliceEmbeddings } from './prompt';
import type { BuiltPrompt, SplicedEmbeddings } from './prompt';
import { maskPool } from './region';
import { resolveRegions } from './regions';
import type { RegionSpec, ResolvedRegion } from './regions';
import { loadScene, sceneFromFrames, sceneWorldPoints } from './scene';
import type { Scene, SceneFrameInput } from './scene';
import { framePlan, planTiles, sampleFrames, tileImage, tileMask, tilePointMap } from './tiling';
import type { TilePlan } from './tiling';
import { loadTokenizer } from './tokenizer';
import type { Sr3dTokenizer } from './tokenizer';
import { toContiguous, toNdArray } from './tensor';
import type { NdArray, TensorLike } from './tensor';

/** A checkpoint or a request that cannot run as asked (no region extractor, too long a prompt, …). */
export class ModelError extends Sr3dError {
  constructor(message: string) {
    super(message, 'SR3D_MODEL');
    this.name = 'ModelError';
  }
}

/** Options of {@link SR3D.load}. */
export interface LoadOptions extends EngineOptions {
  /**
   * Called with each one-time notice (e.g. "no spatial_pe/: running as NVILA-Lite"). Defaults to
   * `process.emitWarning` (once per distinct notice per process).
   */
  onNotice?: (message: string) => void;
}

/** What {@link SR3D.ask} and {@link SR3D.prepare} take. Give `scene`, `frames` or `image`. */
export interface AskInput {
  /** A loaded scene, or the path of a `scene.json` manifest (or its folder). */
  scene?: Scene | string;
  /** In-memory RGB-D frames (see `sceneFromFrames`). */
  frames?: readonly SceneFrameInput[];
  /** One RGB image without depth (a path, encoded bytes, or an (H,W,3) uint8 tensor): no 3D PE. */
  image?: string | Uint8Array | TensorLike;
  /** Region prompts, named `<region0>`, `<region1>`, … in the question, in this order. */
  regions?: readonly RegionSpec[];
  /** The question; `<regionK>` names region K. */
  question: string;
  /** Most frames to feed (sampled as round(linspace), §A8). Defaults to the checkpoint's `num_video_frames` (32). */
  maxFrames?: number;
  /** 3D boxes: grow the box by this many metres on every side before the point-in-box test. Defaults to `0`. */
  regionMargin?: number;
  /** A system prompt instead of VILA's default. Defaults to none. */
  system?: string;
}

/** Generation options of {@link SR3D.ask}. */
export interface GenerationOptions {
  /** Most new tokens. Defaults to the generation config's `max_new_tokens`, else 512. */
  maxNewTokens?: number;
  /** `0` = greedy (the default). */
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Sampler seed (sampling only). */
  seed?: number;
  /** Called with each piece of text as it is decoded (never half a character) and its token id. */
  onToken?: (text: string, tokenId: number) => void;
  /** Aborting stops generation; `ask` then resolves with the text so far. */
  signal?: AbortSignal;
}

/** Milliseconds per stage of one {@link SR3D.ask}. */
export interface AskTimings {
  geometry: number;
  tiling: number;
  vision: number;
  /** The 3D-PE MLP and the 3x3 projector. */
  projector: number;
  regions: number;
  /** Prompt splice + prefill until the first token. */
  prefill: number;
  decode: number;
  total: number;
}

/** The result of {@link SR3D.ask}. */
export interface AskResult {
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
  mode: 'tiles' | 'frames';
  /** Scene frame indices fed to the model. */
  frames: number[];
  /** Image blocks (tiles or frames). */
  images: number;
  /** The tiling grid of a single image ({cols, rows, thumbnail}). */
  plan: TilePlan;
  /** Whether the 3D PE was added. */
  spatialPe: boolean;
  /** Prefill length in positions. */
  promptLength: number;
  /** Notices for this request (e.g. "no depth: no 3D PE"). */
  notes: string[];
}

/** A request ready for the language model. */
export interface Prepared {
  prompt: BuiltPrompt;
  spliced: SplicedEmbeddings;
  /** (M, llmHidden) projected region features (M = regions given), or null. */
  regionEmbeddings: Float32Array | null;
  /** The resolved region masks (per scene frame). */
  regions: ResolvedRegion[];
  /** The scene the request ran on (null for a single image without depth). */
  scene: Scene | null;
  details: PreparedDetails;
  timings: Pick<AskTimings, 'geometry' | 'tiling' | 'vision' | 'projector' | 'regions'>;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;
const noticed = new Set<string>();

/** The SR-3D model: a checkpoint on a native engine, with its tokenizer. */
export class SR3D {
  private constructor(
    readonly checkpoint: Checkpoint,
    readonly engine: Engine,
    readonly tokenizer: Sr3dTokenizer,
    /** One-time notices about the checkpoint (e.g. running as NVILA-Lite). */
    readonly notices: readonly string[],
  ) {}

  /**
   * Loads a checkpoint folder (NVILA/VILA layout, plus SR-3D's `spatial_pe/` and
   * `region_extractor/` when present) onto a native engine.
   */
  static async load(dir: string, opts: LoadOptions = {}): Promise<SR3D> {
    if (typeof dir !== 'string' || dir === '') throw invalidArgument('a checkpoint folder path', 'dir', dir);
    const { onNotice, ...engineOpts } = opts;
    const ckpt = await loadCheckpoint(dir);
    const tokenizer = await loadTokenizer(ckpt.llm.config.tokenizerDir, {
      regionToken: ckpt.regionExtractor?.config.regionToken,
      generationEosTokenIds: ckpt.llm.config.eosTokenIds,
      embeddingRows: ckpt.llm.config.vocabSize,
    });
    const engine = await createEngine(ckpt, engineOpts);
    const notices: string[] = [];
    if (!ckpt.spatialPe) {
      notices.push(`${dir} has no spatial_pe/: running as NVILA-Lite, without the 3D positional encoding`);
    }
    if (!ckpt.regionExtractor) {
      notices.push(`${dir} has no region_extractor/: region prompts (<region0>, …) are not available with this checkpoint`);
    }
    const emit = onNotice ?? ((m: string) => {
      if (!noticed.has(m)) {
        noticed.add(m);
        process.emitWarning(m, { code: 'SR3D_NOTICE' });
      }
    });
    notices.forEach(emit);
    return new SR3D(ckpt, engine, tokenizer, notices);
  }

  /** Frees the engine (device memory included). */
  async dispose(): Promise<void> {
    await this.engine.dispose();
  }

  /**
   * Everything before the language model: geometry, tiling, vision tower, 3D PE, projector,
   * region features, the prompt and the spliced embedding sequence.
   */
  async prepare(input: AskInput): Promise<Prepared> {
    if (input === null || typeof input !== 'object') throw invalidArgument('an object { scene | frames | image, question, regions? }', 'input', input);
    if (typeof input.question !== 'string' || input.question.trim() === '') {
      throw invalidArgument('a non-empty question string', 'question', input.question);
    }
    const ckpt = this.checkpoint;
    const regionSpecs = input.regions ?? [];
    if (!Array.isArray(regionSpecs)) throw invalidArgument('an array of region specs', 'regions', regionSpecs);
    if (regionSpecs.length > 0 && !ckpt.regionExtractor) {
      throw new ModelError(
        `This checkpoint (${ckpt.dir}) has no region_extractor/, so it cannot take region prompts (${regionSpecs.length} given). ` +
          'Fix: use an SR-3D checkpoint with region_extractor/ (spec Part A §A6), or ask without regions.');
    }
    const notes: string[] = [];
    const t: Prepared['timings'] = { geometry: 0, tiling: 0, vision: 0, projector: 0, regions: 0 };

    // ---- the scene ----------------------------------------------------------------------
    let t0 = now();
    const given = ['scene', 'frames', 'image'].filter((k) => (input as unknown as Record<string, unknown>)[k] !== undefined);
    if (given.length !== 1) {
      throw invalidArgument('exactly one of scene, frames or image', 'input', given.length ? given.join(' and ') : 'none of them');
    }
    let scene: Scene | null = null;
    let images: NdArray<Uint8Array>[];
    if (input.scene !== undefined) {
      scene = typeof input.scene === 'string' ? await loadScene(input.scene) : input.scene;
      images = scene.frames.map((f) => f.image);
    } else if (input.frames !== undefined) {
      scene = sceneFromFrames(input.frames);
      images = scene.frames.map((f) => f.image);
    } else {
      const img = input.image!;
      const im = typeof img === 'string' || img instanceof Uint8Array ? await readImage(img) : toContiguous(img, 'image', { dtypes: ['uint8'], ranks: [3], lastDim: 3, what: 'an RGB image (H,W,3) uint8' });
      images = [toNdArray(im.data as Uint8Array, im.shape)];
      notes.push('a single image without depth: no 3D positional encoding');
    }
    const maxFrames = input.maxFrames ?? ckpt.config.numVideoFrames;
    if (!Number.isInteger(maxFrames) || maxFrames < 1) throw invalidArgument('a positive integer', 'maxFrames', maxFrames);
    const frameIdx = images.length === 1 ? [0] : sampleFrames(images.length, Math.min(images.length, maxFrames));
    const mode: 'tiles' | 'frames' = frameIdx.length === 1 ? 'tiles' : 'frames';

    // Regions (resolved on the scene's frames, then restricted to the fed frames).
    let regions: ResolvedRegion[] = [];
    if (regionSpecs.length > 0) {
      if (scene) {
        regions = await resolveRegions(scene, regionSpecs, { margin: input.regionMargin });
      } else {
        const [H, W] = images[0].shape;
        const s = sceneFromFrames([{ image: images[0], depth: { data: new Float32Array(H * W), shape: [H, W] }, intrinsics: { fx: 1, fy: 1, cx: 0, cy: 0 } }]);
        if (regionSpecs.some((r) => 'box3d' in r)) {
          throw invalidArgument('2D regions (box or mask) for an image without depth', 'regions', 'a 3D box');
        }
        regions = await resolveRegions(s, regionSpecs);
      }
      regions.forEach((r, k) => {
        if (frameIdx.every((f) => r.pixels[f] === 0)) {
          throw invalidArgument(`a region on at least one of the frames fed to the model (${frameIdx.join(', ')})`,
            `regions[${k}]`, `a region only on frames ${r.pixels.flatMap((p, f) => (p > 0 ? [f] : [])).join(', ')}`);
        }
      });
    }

    // ---- geometry: world points → one canonical transform over the fed frames --------------
    const withDepth = scene !== null;
    const usePe = !!ckpt.spatialPe && withDepth;
    if (ckpt.spatialPe && !withDepth) notes.push('no depth given: running without the 3D positional encoding');
    let canonicalFrames: NdArray<Float32Array>[] | null = null;
    if (usePe) {
      const fed: Scene = { ...scene!, frames: frameIdx.map((i) => scene!.frames[i]) };
      const world = await sceneWorldPoints(fed);
      let total = 0;
      for (const w of world) total += w.data.length;
      const all = new Float32Array(total);
      let o = 0;
      for (const w of world) { all.set(w.data, o); o += w.data.length; }
      const tr = await canonicalize({ data: all, shape: [total / 3, 3] });
      canonicalFrames = [];
      o = 0;
      for (const w of world) {
        canonicalFrames.push(toNdArray(tr.points.data.subarray(o, o + w.data.length), w.shape));
        o += w.data.length;
      }
    }
    t.geometry = now() - t0;

    // ---- tiling --------------------------------------------------------------------------
    t0 = now();
    const vc = ckpt.vision.config;
    const tileSize = vc.imageSize;
    const plan = mode === 'tiles'
      ? planTiles(images[0].shape[1], images[0].shape[0], { minTiles: ckpt.config.minTiles, maxTiles: ckpt.config.maxTiles, tileSize })
      : framePlan({ tileSize });
    const perFrame = await Promise.all(frameIdx.map((i) => tileImage(images[i], plan)));
    const nTiles = perFrame.reduce((a, x) => a + x.shape[0], 0);
    const tiles = concat(perFrame.map((x) => x.data), nTiles * 3 * tileSize * tileSize);
    t.tiling = now() - t0;

    // ---- vision tower --------------------------------------------------------------------
    t0 = now();
    const feats = await this.engine.encodeTiles({ data: tiles, shape: [nTiles, 3, tileSize, tileSize] });
    t.vision = now() - t0;

    // ---- 3D PE added to the vision tokens, then the projector ------------------------------
    t0 = now();
    const g = vc.imageSize / vc.patchSize;
    const hv = vc.hiddenSize;
    if (usePe && canonicalFrames) {
      const pe = ckpt.spatialPe!.config;
      for (let fi = 0; fi < frameIdx.length; fi++) {
        const ptTiles = await tilePointMap(canonicalFrames[fi], plan);
        const pooled = await poolPointsToPatches(ptTiles, { patch: vc.patchSize });
        const enc = await sinusoidalEncode(pooled.points, { numFreqs: pe.numFreqs, includeInput: pe.includeInput });
        const rows = plan.tiles * g * g;
        const width = enc.shape[enc.shape.length - 1];
        const x = enc.data;
        const valid = pooled.valid.data;
        for (let r = 0; r < rows; r++) if (!valid[r]) x.fill(0, r * width, (r + 1) * width);
        const mlp = await this.engine.runMlp('spatial_pe', { data: x, shape: [rows, width] });
        const base = fi * plan.tiles * g * g * hv;
        for (let r = 0; r < rows; r++) {
          if (!valid[r]) continue;
          const dst = base + r * hv, src = r * hv;
          for (let c = 0; c < hv; c++) feats.data[dst + c] += mlp.data[src + c];
        }
      }
    }
    const projected = await this.engine.project(feats);
    t.projector = now() - t0;

    // ---- region features -------------------------------------------------------------------
    t0 = now();
    let regionEmbeddings: Float32Array | null = null;
    if (regions.length > 0) {
      const rc = ckpt.regionExtractor!.config;
      const M = regions.length;
      let pooled: NdArray<Float32Array>;
      const grid = { data: feats.data, shape: [nTiles, g, g, hv] };
      if (mode === 'tiles') {
        const H = plan.rows * tileSize, W = plan.cols * tileSize;
        const masks = new Uint8Array(M * H * W);
        for (let m = 0; m < M; m++) {
          const mt = await tileMask(regions[m].masks[frameIdx[0]], plan);
          for (let r = 0; r < plan.rows; r++) {
            for (let c = 0; c < plan.cols; c++) {
              const k = r * plan.cols + c;
              for (let y = 0; y < tileSize; y++) {
                const src = (k * tileSize + y) * tileSize;
                masks.set(mt.data.subarray(src, src + tileSize), m * H * W + (r * tileSize + y) * W + c * tileSize);
              }
            }
          }
        }
        pooled = await maskPool(grid, { data: masks, shape: [M, H, W] }, { plan, mode: rc.pooling, patch: vc.patchSize });
      } else {
        const F = frameIdx.length;
        const masks = new Uint8Array(M * F * tileSize * tileSize);
        for (let m = 0; m < M; m++) {
          for (let f = 0; f < F; f++) {
            if (regions[m].pixels[frameIdx[f]] === 0) continue;
            const mt = await tileMask(regions[m].masks[frameIdx[f]], plan);
            masks.set(mt.data, (m * F + f) * tileSize * tileSize);
          }
        }
        pooled = await maskPool({ data: feats.data, shape: [F, g, g, hv] }, { data: masks, shape: [M, F, tileSize, tileSize] },
          { mode: rc.pooling, patch: vc.patchSize });
      }
      regionEmbeddings = (await this.engine.runMlp('region', pooled)).data;
    }
    t.regions = now() - t0;

    // ---- prompt and splice ---------------------------------------------------------------------
    const prompt = buildPrompt(this.tokenizer, { images: nTiles, mode, question: input.question, regions: regions.length, system: input.system });
    const D = ckpt.llm.config.hiddenSize;
    const T = ckpt.projector.config.tokensPerTile;
    const blocks: Float32Array[] = [];
    for (let k = 0; k < nTiles; k++) blocks.push(projected.data.subarray(k * T * D, (k + 1) * T * D));
    const endText = ckpt.config.imageEndTokens;
    const endTokenIds = endText ? this.tokenizer.encode(endText) : [];
    const maxLength = Math.min(ckpt.config.modelMaxLength, this.engine.info().maxContext);
    let spliced: SplicedEmbeddings;
    try {
      spliced = await spliceEmbeddings({
        ids: prompt.ids, imagePositions: prompt.imagePositions, imageBlocks: blocks, endTokenIds, tokensPerBlock: T,
        regionPositions: prompt.regionPositions, regionEmbeddings: regionEmbeddings ?? undefined, regionIndices: prompt.regionIndices,
        embed: async (ids) => (await this.engine.embedTokens(ids)).data, hidden: D, maxLength,
      });
    } catch (e) {
      if (e instanceof InvalidArgumentError && /maxLength|longer|length/.test(e.message)) {
        throw new ModelError(`${e.message} Fix: feed fewer frames (maxFrames) or a smaller image; the model's context is ${maxLength} positions.`);
      }
      throw e;
    }
    const details: PreparedDetails = {
      mode, frames: frameIdx, images: nTiles, plan, spatialPe: usePe, promptLength: spliced.length, notes,
    };
    return { prompt, spliced, regionEmbeddings, regions, scene, details, timings: t };
  }

  /**
   * Asks the model about a scene. Streams text through `onToken`; resolves with the whole
   * answer, its token ids and per-stage timings.
   */
  async ask(input: AskInput & GenerationOptions): Promise<AskResult> {
    const tStart = now();
    const prep = await this.prepare(input);
    const { onToken, maxNewTokens, temperature, topP, topK, seed, signal } = input;
    if (onToken !== undefined && typeof onToken !== 'function') throw invalidArgument('a function (text, tokenId) => void', 'onToken', onToken);
    const dec = this.tokenizer.createStreamDecoder({ skipSpecialTokens: true });
    const tokens: number[] = [];
    let text = '';
    const t0 = now();
    let tFirst = 0;
    const stream = this.engine.generate({ data: prep.spliced.embeddings, shape: [prep.spliced.length, this.checkpoint.llm.config.hiddenSize] },
      { maxNewTokens, temperature, topP, topK, seed, signal, stopTokenIds: this.tokenizer.stopTokenIds });
    for await (const id of stream) {
      if (tokens.length === 0) tFirst = now();
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
    const timings: AskTimings = {
      ...prep.timings, prefill: tFirst - t0, decode: tEnd - tFirst, total: tEnd - tStart,
    };
    return { text, tokens, timings, details: prep.details, regions: prep.regions, scene: prep.scene };
  }
}

function concat(parts: Float32Array[], total: number): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(total);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Where NVILA-Lite-8B weights come from and how to make a tiny test model (for CLI messages). */
export const MODEL_HELP = [
  'No model given: pass --model <dir> or set SR3D_MODEL.',
  'A model folder is in the NVILA/VILA layout (config.json, llm/, vision_tower/, mm_projector/, plus SR-3D\'s spatial_pe/ and region_extractor/).',
  '  - NVILA-Lite-8B (the public base, no 3D PE or region extractor): download Efficient-Large-Model/NVILA-Lite-8B from Hugging Face',
  '    on a machine with internet access, e.g. `huggingface-cli download Efficient-Large-Model/NVILA-Lite-8B --local-dir nvila-lite-8b`.',
  '  - A tiny random test model in the same layout (answers are noise, the whole pipeline runs): `sr3d tiny-model ./tiny-sr3d`.',
].join('\n');

/** Whether `dir` looks like a checkpoint folder (has config.json). */
export function isCheckpointDir(dir: string): boolean {
  try {
    return fs.statSync(path.join(dir, 'config.json')).isFile();
  } catch {
    return false;
  }
}
