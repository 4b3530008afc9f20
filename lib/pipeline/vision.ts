/**
 * Stage 3, the vision tower (§3): SigLIP up to the selected layer.
 *   tiles (nTiles, 3, S, S) f32 → feats (nTiles, g², hv) f32.
 */
import type { Engine } from '../engine';
import type { NdArray } from '../tensor';
import type { Tiles } from './tiling';

export function encodeVision(engine: Engine, tiles: Tiles): Promise<NdArray<Float32Array>> {
  return engine.encodeTiles(tiles);
}
