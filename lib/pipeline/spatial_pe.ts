/**
 * Stage 4, the 3D positional encoding (§A4-A5) [INFERRED]: per-patch mean of the canonical
 * points → sinusoidal features → the 3D-PE MLP, added to the vision tokens of the patches
 * with a valid point.
 *
 * Contract (a native one-call version may replace the body):
 *   feats (nTiles, g², hv) f32, modified in place; canonical: one (H,W,3) f32 map per fed
 *   frame, NaN where invalid; each fed frame owns `plan.tiles` consecutive tiles.
 */
import type { Engine } from '../engine';
import { poolPointsToPatches, sinusoidalEncode } from '../geometry';
import { toNdArray } from '../tensor';
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
  const hv = s.feats.shape[2];
  const feats = s.feats.data;
  const perImage = s.plan.tiles * s.grid * s.grid;
  for (let fi = 0; fi < s.canonical.length; fi++) {
    const ptTiles = await tilePointMap(s.canonical[fi], s.plan);
    const pooled = await poolPointsToPatches(ptTiles, { patch: s.patch });
    // Only patches with a valid point get a PE (§A4): encode and run the MLP on those rows.
    const valid = pooled.valid.data;
    const rowsValid: number[] = [];
    for (let r = 0; r < perImage; r++) if (valid[r]) rowsValid.push(r);
    if (rowsValid.length === 0) continue;
    const pts = new Float32Array(rowsValid.length * 3);
    rowsValid.forEach((r, i) => pts.set(pooled.points.data.subarray(3 * r, 3 * r + 3), 3 * i));
    const enc = await sinusoidalEncode(toNdArray(pts, [rowsValid.length, 3]), { numFreqs: s.numFreqs, includeInput: s.includeInput });
    const mlp = await engine.runMlp('spatial_pe', enc);
    const base = fi * perImage;
    rowsValid.forEach((r, i) => {
      const dst = (base + r) * hv, src = i * hv;
      for (let c = 0; c < hv; c++) feats[dst + c] += mlp.data[src + c];
    });
  }
}
