/**
 * Stage 4, the 3D positional encoding (§A4-A5) [INFERRED]: per-patch mean of the canonical
 * points → sinusoidal features → the 3D-PE MLP, added to the vision tokens of the patches
 * with a valid point.
 *
 * One engine call (Engine.addSpatialPe, kernels/spatial_pe.h) after the point maps are tiled:
 *   feats (nTiles, g², hv) f32, modified in place; canonical: one (H,W,3) f32 map per fed
 *   frame, NaN where invalid; each fed frame owns `plan.tiles` consecutive tiles.
 */
import type { Engine } from '../engine';
import type { NdArray } from '../tensor';
import { tilePointMap } from '../tiling';
import type { TilePlan } from '../tiling';

export interface SpatialPeInput {
  /** Vision tokens (nTiles, g², hv), the PE is added in place. */
  feats: NdArray<Float32Array>;
  /** The canonical point map of each fed frame. */
  canonical: readonly NdArray<Float32Array>[];
  plan: TilePlan;
  /** Vision patch size in pixels; g = tileSize / patch. */
  patch: number;
  /** Patches per tile side. */
  grid: number;
  /** The spatial_pe config's sinusoid settings. */
  numFreqs: number;
  includeInput: boolean;
}

export async function addSpatialPe(engine: Engine, s: SpatialPeInput): Promise<void> {
  const S = s.grid * s.patch, per = s.plan.tiles * S * S * 3;
  const F = s.canonical.length;
  // Each fed frame's point map tiled like its image (NaN = no point); then pool → sinusoid →
  // spatial_pe MLP on the valid patches → add, in one engine call on the engine's device.
  const pts = new Float32Array(F * per).fill(NaN);
  for (let fi = 0; fi < F; fi++) await tilePointMap(s.canonical[fi], s.plan, { out: pts.subarray(fi * per, (fi + 1) * per) });
  const out = await engine.addSpatialPe(s.feats, { data: pts, shape: [F * s.plan.tiles, S, S, 3] }, { tilesPerImage: s.plan.tiles });
  s.feats.data.set(out.data);
}
