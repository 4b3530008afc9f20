/**
 * Stage 0, the request's input: exactly one of a scene, in-memory frames or one image; the
 * frames fed (§A8 sampling) and the tiling plan of each fed image.
 */
import type { Checkpoint } from '../checkpoint_types';
import { ModelError, invalidArgument } from '../errors';
import { readImage } from '../image';
import type { AskInput, AskStage } from '../model_types';
import type { RegionSpec } from '../regions';
import { loadScene, sceneFromFrames } from '../scene';
import type { Scene } from '../scene';
import { toContiguous, toNdArray } from '../tensor';
import type { NdArray } from '../tensor';
import { framePlan, planTiles, sampleFrames } from '../tiling';
import type { TilePlan } from '../tiling';

export const SINGLE_IMAGE_NOTE = 'a single image without depth: running without the 3D positional encoding';

/** What the model is fed. */
export interface RequestInput {
  /** The scene (null for a single image without depth). */
  scene: Scene | null;
  /** Every image of the scene (one for an image). */
  images: NdArray<Uint8Array>[];
  /** Scene frame indices fed to the model. */
  fed: number[];
  /** `'tiles'`: one image, dynamically tiled; `'frames'`: one tile per frame. */
  mode: 'tiles' | 'frames';
  /** The tiling grid of each fed image. */
  plan: TilePlan;
  /** Image blocks in the prompt: `plan.tiles × fed.length`. */
  nTiles: number;
  notes: string[];
}

/** The request's own arguments, checked before anything is read or computed. */
export function checkAskInput(ckpt: Checkpoint, input: AskInput): { regionSpecs: readonly RegionSpec[]; say: (stage: AskStage, message: string) => void } {
  if (input === null || typeof input !== 'object') throw invalidArgument('an object { scene | frames | image, question, regions? }', 'input', input);
  if (typeof input.question !== 'string' || input.question.trim() === '') {
    throw invalidArgument('a non-empty question string', 'question', input.question);
  }
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
  return { regionSpecs, say };
}

export async function readRequestInput(ckpt: Checkpoint, input: AskInput): Promise<RequestInput> {
  const notes: string[] = [];
  const tileSize = ckpt.vision.config.imageSize;
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
  const fed = images.length === 1 ? [0] : sampleFrames(images.length, Math.min(images.length, maxFrames));
  const mode: 'tiles' | 'frames' = fed.length === 1 ? 'tiles' : 'frames';
  const plan = mode === 'tiles'
    ? planTiles(images[fed[0]].shape[1], images[fed[0]].shape[0], { minTiles: ckpt.config.minTiles, maxTiles: ckpt.config.maxTiles, tileSize })
    : framePlan({ tileSize });
  return { scene, images, fed, mode, plan, nTiles: plan.tiles * fed.length, notes };
}
