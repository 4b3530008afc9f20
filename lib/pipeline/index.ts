/**
 * The SR-3D forward pass up to the language model (spec Part A; Part B §9), as named stages:
 *
 *   input → prompt → geometry → tiling → vision → spatialPe → projector → regions → splice
 *
 * then {@link generateText}. Each stage is its own module with typed inputs and outputs; the
 * prompt is built and length-checked first so that a bad question fails before any heavy work.
 */
import type { Checkpoint } from '../checkpoint_types';
import type { Engine } from '../engine';
import type { AskInput, Prepared, PreparedDetails } from '../model_types';
import type { Scene } from '../scene';
import type { NdArray } from '../tensor';
import type { Sr3dTokenizer } from '../tokenizer';
import { sceneGeometry } from './geometry';
import { checkAskInput, readRequestInput } from './input';
import { projectVision } from './projector';
import { promptStage } from './prompt';
import { regionFeatures, resolveRequestRegions } from './regions';
import { addSpatialPe } from './spatial_pe';
import { spliceStage } from './splice';
import { tileFrames } from './tiling';
import { encodeVision } from './vision';

export { generateText } from './generate';
export type { Generated } from './generate';

/** The image side of a request, kept per Scene object (`AskInput.cache`). */
export interface SceneWork {
  world?: NdArray<Float32Array>[];
  feats: NdArray<Float32Array>;
  projected: NdArray<Float32Array>;
  peOn: boolean;
  notes: string[];
}

/** What the pipeline runs on. */
export interface PipelineModel {
  readonly checkpoint: Checkpoint;
  readonly engine: Engine;
  readonly tokenizer: Sr3dTokenizer;
  /** Per Scene object: the image side of earlier requests, by frames fed and tiling. */
  readonly sceneCache: WeakMap<Scene, Map<string, SceneWork>>;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

/** {@link SR3D.prepare}: everything before the language model. */
export async function preparePipeline(model: PipelineModel, input: AskInput): Promise<Prepared> {
  const { regionSpecs, say } = checkAskInput(model.checkpoint, input);
  const { checkpoint: ckpt, engine, tokenizer } = model;
  const t: Prepared['timings'] = { geometry: 0, tiling: 0, vision: 0, projector: 0, regions: 0, prompt: 0 };
  const vc = ckpt.vision.config;
  const tileSize = vc.imageSize;

  // ---- input and prompt: placeholders and the length are checked before any heavy work ----
  let t0 = now();
  const req = await readRequestInput(ckpt, input);
  const { scene, images, fed, mode, plan, nTiles } = req;
  const notes = [...req.notes];
  const { prompt, endTokenIds, maxLength } = promptStage(ckpt, tokenizer, {
    question: input.question, system: input.system, regions: regionSpecs.length, nTiles, mode, maxContext: engine.info().maxContext,
  });
  t.prompt = now() - t0;

  // ---- geometry (§A3), and the regions resolved on the scene frames -----------------------
  t0 = now();
  say('geometry', mode === 'tiles' ? 'geometry: 1 view' : `geometry: ${fed.length} of ${images.length} frames`);
  const usePe = !!ckpt.spatialPe && scene !== null;
  if (!ckpt.spatialPe) notes.push(`the checkpoint has no spatial_pe/: running as NVILA-Lite, without the 3D positional encoding`);
  const needBox3d = regionSpecs.some((r) => r !== null && typeof r === 'object' && 'box3d' in r);
  const cacheable = input.cache !== false && input.scene !== undefined && typeof input.scene !== 'string';
  const cacheKey = `${fed.join(',')}|${plan.cols}x${plan.rows}x${plan.tiles}`;
  const hit = cacheable ? model.sceneCache.get(scene!)?.get(cacheKey) : undefined;
  const geo = scene
    ? await sceneGeometry({ scene, fed, canonical: usePe && !hit, worldNeeded: needBox3d, world: hit?.world })
    : { world: undefined, canonical: null, notes: [] };
  if (hit && geo.world && !hit.world) hit.world = geo.world;
  const geometryNotes = hit ? hit.notes : geo.notes;
  notes.push(...geometryNotes);
  const peOn = hit ? hit.peOn : geo.canonical !== null;
  const regions = await resolveRequestRegions({ scene, images, specs: regionSpecs, fed, margin: input.regionMargin, world: geo.world });
  t.geometry = now() - t0;

  let feats: NdArray<Float32Array>;
  let projected: NdArray<Float32Array>;
  if (hit) {
    ({ feats, projected } = hit);
    say('vision', `vision: ${nTiles} ${mode === 'tiles' ? 'tiles' : 'frames'} (cached from an earlier request on this scene)`);
  } else {
    // ---- tiling → vision → 3D PE → projector (§A8, §3, §A4-A5, §4) ------------------------
    t0 = now();
    say('tiling', mode === 'tiles'
      ? `tiling: ${plan.cols}x${plan.rows} tiles${plan.thumbnail ? ' + thumbnail' : ''}`
      : `tiling: ${fed.length} frames, one ${tileSize}² tile each`);
    const tiles = await tileFrames(images, fed, plan, tileSize);
    t.tiling = now() - t0;

    t0 = now();
    say('vision', `vision: ${nTiles} ${mode === 'tiles' ? 'tiles' : 'frames'}`);
    feats = await encodeVision(engine, tiles);
    t.vision = now() - t0;

    t0 = now();
    say('projector', `projector${peOn ? ' + 3D PE' : ''}`);
    if (peOn) {
      const pe = ckpt.spatialPe!.config;
      await addSpatialPe(engine, {
        feats, canonical: geo.canonical!, plan, patch: vc.patchSize, grid: tileSize / vc.patchSize, numFreqs: pe.numFreqs, includeInput: pe.includeInput,
      });
    }
    projected = await projectVision(engine, feats);
    t.projector = now() - t0;

    if (cacheable) {
      let m = model.sceneCache.get(scene!);
      if (!m) model.sceneCache.set(scene!, (m = new Map()));
      m.set(cacheKey, { world: geo.world, feats, projected, peOn, notes: geometryNotes });
    }
  }

  // ---- region features (§A6) --------------------------------------------------------------
  t0 = now();
  let regionEmbeddings: Float32Array | null = null;
  if (regions.length > 0) {
    say('regions', `regions: ${regions.length}`);
    regionEmbeddings = await regionFeatures(engine, {
      feats, regions, fed, mode, plan, tileSize, patch: vc.patchSize, pooling: ckpt.regionExtractor!.config.pooling,
    });
  }
  t.regions = now() - t0;

  // ---- splice (§5.3) ----------------------------------------------------------------------
  t0 = now();
  const spliced = await spliceStage(engine, { prompt, projected, regionEmbeddings, endTokenIds, maxLength });
  t.prompt += now() - t0;
  const details: PreparedDetails = {
    mode, frames: fed, images: nTiles, plan, spatialPe: peOn, promptLength: spliced.length, notes, cached: hit !== undefined,
  };
  return { prompt, spliced, regionEmbeddings, regions, scene, details, timings: t };
}
