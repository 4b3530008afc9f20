/**
 * Stage 5, NVILA's 3x3 downsample projector (§4).
 *   feats (nTiles, g², hv) f32 → projected (nTiles, T, D) f32, T = ceil(g/3)², D = LLM hidden.
 */
import type { Engine } from '../engine';
import type { NdArray } from '../tensor';

export function projectVision(engine: Engine, feats: NdArray<Float32Array>): Promise<NdArray<Float32Array>> {
  return engine.project(feats);
}
