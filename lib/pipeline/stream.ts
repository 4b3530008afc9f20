/**
 * Streaming scenes in the pipeline ({@link StreamingScene}): the request is rewritten to the
 * window's {@link Scene} (region frames named by stream index or timestamp mapped to window
 * positions), and in multi-view mode each kept frame's SigLIP features are computed once.
 *
 * In multi-view mode a frame is one tile and SigLIP sees one tile at a time, so a frame's
 * features do not depend on the other frames: they are kept per {@link SceneFrame} object (the
 * StreamingScene keeps that object for the frame's whole life in the window) WITHOUT the 3D
 * PE, since the PE depends on the whole window's canonical transform. The features of the fed
 * frames are copied into a fresh (F, g², hv) array, which the PE and the projector then use.
 */
import type { Engine } from '../engine';
import type { AskInput } from '../model_types';
import { sceneWorldPoints } from '../scene';
import type { Scene, SceneFrame } from '../scene';
import { StreamingScene } from '../streaming';
import { toNdArray } from '../tensor';
import type { NdArray } from '../tensor';
import type { TilePlan } from '../tiling';
import { tileFrames } from './tiling';
import { encodeVision } from './vision';

/** One frame's tile: (g², hv) vision features without the 3D PE. */
interface FrameFeatures {
  data: Float32Array;
  tokens: number;
  hidden: number;
}

/** What is kept of one frame of a streaming scene. */
export interface FrameWork {
  /** Its tile's vision features, by tile size. */
  vision: Map<number, FrameFeatures>;
  /** Its world points (they depend on the frame's depth, intrinsics and pose only). */
  world?: NdArray<Float32Array>;
}

/** Per SceneFrame of a streaming scene (held weakly: dropped with the frame). */
export type FrameFeatureCache = WeakMap<SceneFrame, FrameWork>;

function workOf(cache: FrameFeatureCache, frame: SceneFrame): FrameWork {
  let w = cache.get(frame);
  if (!w) cache.set(frame, (w = { vision: new Map() }));
  return w;
}

/** Each frame's world points, computed once per frame (the same bits as `sceneWorldPoints` of the whole scene). */
export async function cachedWorldPoints(cache: FrameFeatureCache, scene: Scene): Promise<NdArray<Float32Array>[]> {
  const out: NdArray<Float32Array>[] = [];
  for (const f of scene.frames) {
    const w = workOf(cache, f);
    if (!w.world) [w.world] = await sceneWorldPoints({ frames: [f] });
    out.push(w.world);
  }
  return out;
}

/** The request on the window's Scene, and the streaming scene it came from (null for any other input). */
export function streamingRequest(input: AskInput): { input: AskInput; streaming: StreamWindow | null } {
  if (input === null || typeof input !== 'object' || !(input.scene instanceof StreamingScene)) {
    return { input, streaming: null };
  }
  const s = input.scene;
  const scene = s.scene;
  const regions = input.regions === undefined || !Array.isArray(input.regions) ? input.regions : s.regionSpecs(input.regions);
  // A snapshot: frames added while the request runs do not change what it reports.
  const streaming = { version: s.version, indices: s.frames.map((f) => f.index) };
  return { input: { ...input, scene, ...(regions !== undefined ? { regions } : {}) }, streaming };
}

/** The window a request runs on. */
export interface StreamWindow {
  version: number;
  /** Stream index of each window position. */
  indices: number[];
}

export interface CachedVision {
  /** (F, g², hv) features of the fed frames, a fresh array (the PE may be added in place). */
  feats: NdArray<Float32Array>;
  /** Frames that went through the vision tower in this request. */
  encoded: number;
  /** Milliseconds tiling and encoding them. */
  tiling: number;
  vision: number;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

/** Multi-view vision features of the fed frames, encoding only the frames not seen before. */
export async function cachedFrameVision(engine: Engine, cache: FrameFeatureCache, c: {
  scene: Scene; images: readonly NdArray<Uint8Array>[]; fed: readonly number[]; plan: TilePlan; tileSize: number;
}): Promise<CachedVision> {
  const frames = c.fed.map((f) => c.scene.frames[f]);
  const hit = frames.map((fr) => cache.get(fr)?.vision.get(c.tileSize));
  const missing = c.fed.filter((_, i) => hit[i] === undefined);
  let tiling = 0, vision = 0;
  if (missing.length > 0) {
    let t0 = now();
    const tiles = await tileFrames(c.images, missing, c.plan, c.tileSize);
    tiling = now() - t0;
    t0 = now();
    const enc = await encodeVision(engine, tiles);
    vision = now() - t0;
    const [, tokens, hidden] = enc.shape;
    const per = tokens * hidden;
    let j = 0;
    hit.forEach((h, i) => {
      if (h !== undefined) return;
      const own: FrameFeatures = { data: enc.data.slice(j * per, (j + 1) * per), tokens, hidden };
      j++;
      hit[i] = own;
      workOf(cache, frames[i]).vision.set(c.tileSize, own);
    });
  }
  const { tokens, hidden } = hit[0]!;
  const per = tokens * hidden;
  const data = new Float32Array(per * frames.length);
  hit.forEach((h, i) => data.set(h!.data, i * per));
  return { feats: toNdArray(data, [frames.length, tokens, hidden]), encoded: missing.length, tiling, vision };
}
