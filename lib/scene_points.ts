/**
 * The canonical point maps of a scene's frames (spec Part A §A3) in one native call where the
 * scene allows it: the fused `scenePoints` kernel (back-projection of every frame and one
 * canonical transform over all of them, the world points never stored on the CPU) instead of
 * back-projecting each frame, concatenating the world points in JS and canonicalizing them.
 *
 * ```ts
 * const { frames, notes } = await canonicalScenePoints(scene, frameIdx);
 * if (frames === null) notes.push('no valid depth: running without the 3D PE');
 * const tiles = await tilePointMap(frames![0], plan);
 * ```
 */
import type { DeviceOptions } from './dispatch';
import { InvalidArgumentError, invalidArgument } from './errors';
import { canonicalize, scenePoints } from './geometry';
import { sceneWorldPoints } from './scene';
import type { Scene } from './scene';
import { toNdArray } from './tensor';
import type { NdArray } from './tensor';

/** What {@link canonicalScenePoints} gives. */
export interface CanonicalScenePoints {
  /** The (H,W,3) canonical point map of each fed frame, in `fed` order; null when the scene has no valid point at all. */
  frames: NdArray<Float32Array>[] | null;
  /** Notes for the caller's report (frames without poses). */
  notes: string[];
  /** Whether the one-call fused kernel ran (else the per-frame chain, see {@link canonicalScenePoints}). */
  fused: boolean;
}

/**
 * The canonical point map of each fed frame (§A3): one transform over all valid world points
 * of every scene frame, the camera frame rotated to gravity when no frame has a pose but the
 * scene has an `up` vector. Bit for bit what back-projecting every frame, rotating (no pose,
 * `up`) and canonicalizing the concatenation gives.
 *
 * One native call (`scenePoints`, output 'canonical') when every frame has depth (no given
 * point maps) of one size, dtype and depth scale, and either every frame has a pose or none
 * has one and the scene has no `up`. Other scenes (given point maps, mixed sizes or scales,
 * some frames posed, the `up` rotation, which the kernel does not apply with the JS float64
 * rounding) take the per-frame chain.
 *
 * @param fed the frame indices whose point maps are returned (the transform uses all frames).
 * @param world the scene's world points when the caller has them already (the chain reuses them).
 */
export async function canonicalScenePoints(
  scene: Scene, fed: readonly number[], opts?: DeviceOptions & { world?: NdArray<Float32Array>[] },
): Promise<CanonicalScenePoints> {
  const notes: string[] = [];
  const frames = scene.frames;
  const posed = frames.some((f) => f.pose !== undefined);
  if (!posed && frames.length > 1) notes.push('frames without camera poses: each frame\'s points are in its own camera frame, so the 3D PE does not relate the views');
  fed.forEach((f, i) => {
    if (!Number.isInteger(f) || f < 0 || f >= frames.length) throw invalidArgument(`a frame index in [0, ${frames.length})`, `fed[${i}]`, f);
  });
  const f0 = frames[0];
  const fusable = frames.length > 0 && f0.depth !== undefined && (posed ? frames.every((f) => f.pose !== undefined) : !scene.up) &&
    frames.every((f) => f.depth !== undefined && f.points === undefined && f.depth.dtype === f0.depth!.dtype &&
      f.depth.shape[0] === f0.depth!.shape[0] && f.depth.shape[1] === f0.depth!.shape[1] && f.depthScale === f0.depthScale);
  if (!fusable) return { frames: await chain(scene, fed, opts), notes, fused: false };

  const [H, W] = f0.depth!.shape;
  const n = H * W;
  const depth = f0.depth!.dtype === 'uint16' ? new Uint16Array(frames.length * n) : new Float32Array(frames.length * n);
  frames.forEach((f, i) => depth.set(f.depth!.data, i * n));
  const scale = Math.fround(f0.depthScale ?? 1);
  if (!depth.some((d) => d > 0 && Number.isFinite(Math.fround(d * scale)))) return { frames: null, notes, fused: true };
  let points: Float32Array;
  try {
    ({ points: { data: points } } = await scenePoints(toNdArray(depth, [frames.length, H, W]), frames.map((f) => f.intrinsics), {
      device: opts?.device, deviceIndex: opts?.deviceIndex, impl: opts?.impl,
      depthScale: f0.depthScale, pose: posed ? frames.map((f) => f.pose!) : undefined, output: 'canonical',
    }));
  } catch (e) {
    // Valid depth whose every point overflows float32: no valid point, as the chain finds.
    if (e instanceof InvalidArgumentError && /at least one valid point/.test(e.message)) return { frames: null, notes, fused: true };
    throw e;
  }
  return { frames: fed.map((f) => toNdArray(points.subarray(3 * n * f, 3 * n * (f + 1)), [H, W, 3])), notes, fused: true };
}

// The per-frame chain (lib/sr3d.ts canonicalFramesOf): world points of every frame, concatenated,
// rotated to gravity (no pose, `up`), canonicalized together.
async function chain(scene: Scene, fed: readonly number[], opts?: DeviceOptions & { world?: NdArray<Float32Array>[] }): Promise<NdArray<Float32Array>[] | null> {
  const world = opts?.world ?? await sceneWorldPoints(scene, opts);
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
  let anyValid = false;
  for (let i = 0; i < total && !anyValid; i += 3) anyValid = Number.isFinite(all[i]) && Number.isFinite(all[i + 1]) && Number.isFinite(all[i + 2]);
  if (!anyValid) return null;
  await canonicalize(toNdArray(all, [total / 3, 3]), { outPoints: all, device: opts?.device, deviceIndex: opts?.deviceIndex, impl: opts?.impl });
  return fed.map((f) => toNdArray(all.subarray(offsets[f], offsets[f] + world[f].data.length), world[f].shape));
}

/**
 * The rotation taking the unit vector `u` to +z (Rodrigues about u × z), row-major 3x3: a
 * scene without poses but with an `up` vector is canonicalized in this gravity-aligned frame.
 */
export function rotationToZ(u: readonly [number, number, number]): number[] {
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
