/**
 * Stage 2, tiling (§5.3, §A8): one image → NVILA's dynamic tiles + thumbnail; several frames
 * → one 448² tile each.
 *   images (H,W,3) u8, fed frames, plan → tiles (nTiles, 3, S, S) f32 normalized pixels.
 */
import type { NdArray } from '../tensor';
import { tileImage } from '../tiling';
import type { TilePlan } from '../tiling';

export interface Tiles {
  data: Float32Array;
  /** (nTiles, 3, S, S). */
  shape: [number, number, number, number];
}

export async function tileFrames(images: readonly NdArray<Uint8Array>[], fed: readonly number[], plan: TilePlan, tileSize: number): Promise<Tiles> {
  const nTiles = plan.tiles * fed.length;
  const tiles = new Float32Array(nTiles * 3 * tileSize * tileSize);
  const per = plan.tiles * 3 * tileSize * tileSize;
  for (let fi = 0; fi < fed.length; fi++) {
    await tileImage(images[fed[fi]], plan, { out: tiles.subarray(fi * per, (fi + 1) * per) });
  }
  return { data: tiles, shape: [nTiles, 3, tileSize, tileSize] };
}
