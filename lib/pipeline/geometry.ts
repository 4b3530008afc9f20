/**
 * Stage 1, scene geometry (§A3): world points of every frame (depth + intrinsics + pose), one
 * canonical transform over all valid points of the whole scene, and the canonical point map
 * of each fed frame.
 *
 * Contract (a native one-call version may replace the body):
 *   scene: F frames → world: F × (H,W,3) f32 world frame, NaN where invalid;
 *   canonical: one (H,W,3) f32 map per fed frame in the scene's canonical frame, or null
 *   when the scene has no valid point at all.
 */
import { canonicalize } from '../geometry';
import { sceneWorldPoints } from '../scene';
import type { Scene } from '../scene';
import { toNdArray } from '../tensor';
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
  const notes: string[] = [];
  const world = g.world ?? (g.canonical || g.worldNeeded ? await sceneWorldPoints(g.scene) : undefined);
  if (!g.canonical) return { world, canonical: null, notes };
  const canonical = await canonicalFramesOf(g.scene, world!, g.fed, notes);
  if (canonical === null) notes.push('no valid depth in the frames fed: running without the 3D positional encoding');
  return { world, canonical, notes };
}

/**
 * The rotation taking the unit vector `u` to +z (Rodrigues about u × z), row-major 3x3. A
 * single view without a pose but with an `up` vector is canonicalized in this gravity-aligned
 * frame (§A3).
 */
function rotationToZ(u: readonly [number, number, number]): number[] {
  const [x, y, z] = u;
  if (z < -1 + 1e-12) return [1, 0, 0, 0, -1, 0, 0, 0, -1]; // up = -z: half turn about x
  // v = u × z = (y, -x, 0); R = I + [v]× + [v]×² / (1 + c), c = u·z = z.
  const k = 1 / (1 + z);
  return [
    1 - x * x * k, -x * y * k, -x,
    -x * y * k, 1 - y * y * k, -y,
    x, y, 1 - (x * x + y * y) * k,
  ];
}

/**
 * The canonical point map of each fed frame (§A3): one transform over all valid world points
 * of every scene frame (camera frame rotated to gravity when there is no pose but an `up`
 * vector). Null when the scene has no valid point at all.
 */
async function canonicalFramesOf(scene: Scene, world: NdArray<Float32Array>[], fed: readonly number[], notes: string[]): Promise<NdArray<Float32Array>[] | null> {
  let total = 0;
  for (const w of world) total += w.data.length;
  const all = new Float32Array(total);
  const offsets: number[] = [];
  let o = 0;
  for (const w of world) { offsets.push(o); all.set(w.data, o); o += w.data.length; }
  const posed = scene.frames.some((f) => f.pose !== undefined);
  if (!posed && scene.up) {
    const R = rotationToZ(scene.up);
    for (let i = 0; i < total; i += 3) {
      const a = all[i], b = all[i + 1], c = all[i + 2];
      all[i] = R[0] * a + R[1] * b + R[2] * c;
      all[i + 1] = R[3] * a + R[4] * b + R[5] * c;
      all[i + 2] = R[6] * a + R[7] * b + R[8] * c;
    }
  }
  if (!posed && scene.frames.length > 1) notes.push('frames without camera poses: each frame\'s points are in its own camera frame, so the 3D PE does not relate the views');
  let anyValid = false;
  for (let i = 0; i < total && !anyValid; i += 3) anyValid = Number.isFinite(all[i]) && Number.isFinite(all[i + 1]) && Number.isFinite(all[i + 2]);
  if (!anyValid) return null;
  await canonicalize(toNdArray(all, [total / 3, 3]), { outPoints: all });
  return fed.map((f) => toNdArray(all.subarray(offsets[f], offsets[f] + world[f].data.length), world[f].shape));
}
