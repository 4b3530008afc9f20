/**
 * Stage 6, regions (§A6) [INFERRED]: the region prompts resolved to per-frame masks, then mask
 * pooling of the vision tokens — over the stitched grid tiles (thumbnail excluded) for one
 * image, jointly over the fed frames for several — and the region projector.
 *
 * Contract of {@link regionFeatures} (a native version may replace the body): feats
 * (nTiles, g², hv) f32, M regions with masks on the scene frames → (M, D) f32 embeddings.
 */
import type { Engine } from '../engine';
import { maskPool } from '../region';
import { RegionError, resolveRegions } from '../regions';
import type { RegionSpec, ResolvedRegion } from '../regions';
import { sceneFromFrames } from '../scene';
import type { Scene } from '../scene';
import { toNdArray } from '../tensor';
import type { NdArray } from '../tensor';
import { tileMask } from '../tiling';
import type { TilePlan } from '../tiling';

export interface RegionsInput {
  /** The scene, or null for an image without depth (2D regions only). */
  scene: Scene | null;
  images: readonly NdArray<Uint8Array>[];
  specs: readonly RegionSpec[];
  fed: readonly number[];
  /** 3D boxes grow by this many metres. */
  margin?: number;
  /** World points of the scene when already computed. */
  world?: NdArray<Float32Array>[];
}

/** The regions on all scene frames (the user's frame numbering); each must be on a fed frame. */
export async function resolveRequestRegions(r: RegionsInput): Promise<ResolvedRegion[]> {
  if (r.specs.length === 0) return [];
  let regions: ResolvedRegion[];
  if (r.scene) {
    regions = await resolveRegions(r.scene, r.specs, { margin: r.margin, worldPoints: r.world });
  } else {
    if (r.specs.some((s) => s !== null && typeof s === 'object' && 'box3d' in s)) {
      throw new RegionError('Expected 2D regions (frame=0 with a box or mask) for an image without depth but received a 3D box. ' +
        'Fix: give the image\'s depth and intrinsics (a scene or frames) to use 3D boxes, or draw the region as a 2D box or mask.', r.specs.findIndex((s) => 'box3d' in s));
    }
    const [H, W] = r.images[0].shape;
    const flat = sceneFromFrames([{ image: r.images[0], depth: toNdArray(new Float32Array(H * W), [H, W]), intrinsics: { fx: 1, fy: 1, cx: 0, cy: 0 } }]);
    regions = await resolveRegions(flat, r.specs);
  }
  regions.forEach((reg, k) => {
    if (r.fed.every((f) => reg.pixels[f] === 0)) {
      throw new RegionError(`Expected region ${k} on at least one of the frames fed to the model (${r.fed.join(', ')}) but it is only on frame(s) ` +
        `${reg.pixels.flatMap((p, f) => (p > 0 ? [f] : [])).join(', ')}. Fix: put the region on a fed frame, or raise maxFrames so its frame is sampled.`, k);
    }
  });
  return regions;
}

export interface RegionFeaturesInput {
  /** Vision tokens (nTiles, g², hv) with the 3D PE. */
  feats: NdArray<Float32Array>;
  regions: readonly ResolvedRegion[];
  fed: readonly number[];
  mode: 'tiles' | 'frames';
  plan: TilePlan;
  tileSize: number;
  patch: number;
  /** The region extractor's pooling. */
  pooling: 'area' | 'spatialrgpt';
}

/** (M, D) projected region features. */
export async function regionFeatures(engine: Engine, r: RegionFeaturesInput): Promise<Float32Array> {
  const { feats, regions, fed, plan, tileSize, patch } = r;
  const g = tileSize / patch, hv = feats.shape[2];
  const nTiles = feats.shape[0];
  const M = regions.length;
  let pooled: NdArray<Float32Array>;
  if (r.mode === 'tiles') {
    // Tile then stitch (§A6): the grid tiles' masks back in place form the mask resized
    // (nearest) to cols·T x rows·T, the pixel size of the stitched feature grid; the stitch is
    // done natively (masksLayout 'tiles'), the thumbnail's mask is not used.
    const S = tileSize * tileSize, K = plan.tiles, grid = plan.cols * plan.rows;
    const masks = new Uint8Array(M * K * S);
    for (let m = 0; m < M; m++) {
      const own = masks.subarray(m * K * S, (m + 1) * K * S);
      await tileMask(regions[m].masks[fed[0]], plan, { out: own });
      checkNonEmpty(own.subarray(0, grid * S), m, `${plan.cols * tileSize}x${plan.rows * tileSize} tile grid`);
    }
    pooled = await maskPool({ data: feats.data, shape: [nTiles, g, g, hv] }, { data: masks, shape: [M, K, tileSize, tileSize] },
      { plan, mode: r.pooling, patch, masksLayout: 'tiles' });
  } else {
    // Multi-view: each frame is one tile; a region pools jointly over every fed frame it is on.
    const F = fed.length, S = tileSize * tileSize;
    const masks = new Uint8Array(M * F * S);
    for (let m = 0; m < M; m++) {
      for (let f = 0; f < F; f++) {
        if (regions[m].pixels[fed[f]] === 0) continue;
        await tileMask(regions[m].masks[fed[f]], plan, { out: masks.subarray((m * F + f) * S, (m * F + f + 1) * S) });
      }
      checkNonEmpty(masks.subarray(m * F * S, (m + 1) * F * S), m, `${tileSize}x${tileSize} frames`);
    }
    pooled = await maskPool({ data: feats.data, shape: [F, g, g, hv] }, { data: masks, shape: [M, F, tileSize, tileSize] },
      { mode: r.pooling, patch });
  }
  return (await engine.runMlp('region', pooled)).data;
}

/** A region whose mask vanished when resized to the model's tile grid (a few pixels on a large image). */
function checkNonEmpty(mask: Uint8Array, m: number, where: string): void {
  for (let i = 0; i < mask.length; i++) if (mask[i]) return;
  throw new RegionError(`Expected region ${m} to cover at least one pixel of the model's ${where} but its mask vanished when resized (nearest) to it. ` +
    'Fix: give a larger region (a few pixels are lost when a large image is scaled down to the tiles).', m);
}
