/**
 * Stage 1, scene geometry (§A3): world points of every frame (depth + intrinsics + pose), one
 * canonical transform over all valid points of the whole scene, and the canonical point map
 * of each fed frame.
 *
 * One native call (the fused scenePoints kernel: back-projection, poses and the canonical
 * transform in one pass) where the scene allows it; otherwise the per-frame chain
 * (lib/scene_points.ts), with the same bits.
 *   scene: F frames → world (only when asked for): F × (H,W,3) f32 world frame, NaN where invalid;
 *   canonical: one (H,W,3) f32 map per fed frame in the scene's canonical frame, or null
 *   when the scene has no valid point at all.
 */
import { sceneWorldPoints } from '../scene';
import type { Scene } from '../scene';
import { canonicalScenePoints } from '../scene_points';
import type { NdArray } from '../tensor';

export interface GeometryInput {
  scene: Scene;
  /** Scene frame indices fed to the model. */
  fed: readonly number[];
  /** Compute the canonical maps (the 3D PE runs). */
  canonical: boolean;
  /** Compute the world points even without `canonical` (3D boxes need them). */
  worldNeeded: boolean;
  /** World points of an earlier request on the same scene. */
  world?: NdArray<Float32Array>[];
}

export interface GeometryOutput {
  world?: NdArray<Float32Array>[];
  /** Per fed frame; null when not asked for or when no point is valid. */
  canonical: NdArray<Float32Array>[] | null;
  notes: string[];
}

export async function sceneGeometry(g: GeometryInput): Promise<GeometryOutput> {
  const world = g.world ?? (g.worldNeeded ? await sceneWorldPoints(g.scene) : undefined);
  if (!g.canonical) return { world, canonical: null, notes: [] };
  // One fused scenePoints call where the scene allows it (same bits as the per-frame chain).
  const r = await canonicalScenePoints(g.scene, g.fed, { world });
  const notes = [...r.notes];
  if (r.frames === null) notes.push('no valid depth in the frames fed: running without the 3D positional encoding');
  return { world, canonical: r.frames, notes };
}
