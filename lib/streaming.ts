/**
 * A streaming scene: a robot's RGB-D frames with poses (SLAM / odometry) arrive one at a time;
 * the scene keeps a bounded window of them. Keyframes are chosen by pose change (or every frame
 * is kept); the oldest kept frame is dropped first when the window is full, so memory stays
 * bounded whatever the stream's length.
 *
 * `scene` is a plain {@link Scene} of the kept frames, oldest first: asking about it is asking
 * about a static scene made of exactly those frames. Each kept frame keeps its own
 * {@link SceneFrame} object for its whole life in the window, so work that depends on one frame
 * only (its SigLIP features) can be cached per frame object, while what depends on the whole
 * window (the canonical transform) is recomputed when `version` changes.
 */
import { invalidArgument } from './errors';
import { sceneFromFrames } from './scene';
import type { Scene, SceneFrame, SceneFrameInput } from './scene';

/** How frames are chosen for the window. */
export interface KeyframeRule {
  /** Keep a frame whose camera moved at least this far (metres) from the last kept frame. Defaults to `0.1`. */
  minTranslation?: number;
  /** ... or turned at least this much (degrees). Defaults to `10`. */
  minRotationDeg?: number;
}

/** Options of {@link createStreamingScene}. */
export interface StreamingSceneOptions {
  /** Frames kept at most, in [1, 32] (the model's limit). Defaults to `32`. */
  maxFrames?: number;
  /**
   * Which frames are kept: a {@link KeyframeRule} (frames without a pose are always kept), or
   * `'all'`: the window is simply the last `maxFrames` frames. Defaults to `{}` (0.1 m / 10°).
   */
  keyframe?: KeyframeRule | 'all';
  /** The world's up direction. Defaults to none (unknown). */
  up?: ArrayLike<number>;
}

/** A frame as given to {@link StreamingScene.addFrame}. */
export interface StreamFrameInput extends SceneFrameInput {
  /** The sensor timestamp (any unit; region prompts can name a frame by it). Defaults to none. */
  timestamp?: number;
}

/** A kept frame. */
export interface StreamFrame {
  /** The frame's number in the stream: 0 for the first frame ever added, counting every frame given (kept or not). */
  index: number;
  timestamp?: number;
  frame: SceneFrame;
}

/** What {@link StreamingScene.addFrame} did. */
export interface AddFrameResult {
  /** The frame's stream index. */
  index: number;
  /** Whether it joined the window (false: too close to the last keyframe). */
  kept: boolean;
  /** Stream indices of frames that left the window to make room. */
  dropped: number[];
}

/** A reference to a kept frame: its stream index or its timestamp. */
export type StreamFrameRef = { index: number } | { timestamp: number };

function poseOf(f: SceneFrame): number[] | null {
  return f.pose ?? null;
}

/** Camera motion between two camera-to-world poses: translation (m) and rotation angle (degrees). */
export function poseDelta(a: readonly number[], b: readonly number[]): { translation: number; rotationDeg: number } {
  const translation = Math.hypot(a[3] - b[3], a[7] - b[7], a[11] - b[11]);
  // trace(Ra^T Rb) = 1 + 2 cos θ
  let tr = 0;
  for (let i = 0; i < 3; i++) for (let k = 0; k < 3; k++) tr += a[4 * k + i] * b[4 * k + i];
  const c = Math.min(1, Math.max(-1, (tr - 1) / 2));
  return { translation, rotationDeg: (Math.acos(c) * 180) / Math.PI };
}

export class StreamingScene {
  private readonly kept: StreamFrame[] = [];
  private next = 0;
  private version_ = 0;
  private scene_: Scene | null = null;
  readonly maxFrames: number;
  readonly keyframe: Required<KeyframeRule> | 'all';
  private readonly up?: [number, number, number];

  /** @internal use {@link createStreamingScene} */
  constructor(opts: StreamingSceneOptions = {}) {
    if (opts === null || typeof opts !== 'object') throw invalidArgument('an options object', 'options', opts);
    const maxFrames = opts.maxFrames ?? 32;
    if (!Number.isInteger(maxFrames) || maxFrames < 1 || maxFrames > 32) throw invalidArgument('an integer in [1, 32] (the model takes up to 32 frames)', 'maxFrames', maxFrames);
    this.maxFrames = maxFrames;
    const k = opts.keyframe ?? {};
    if (k === 'all') {
      this.keyframe = 'all';
    } else {
      if (k === null || typeof k !== 'object') throw invalidArgument("'all' or { minTranslation, minRotationDeg }", 'keyframe', k);
      const minTranslation = k.minTranslation ?? 0.1, minRotationDeg = k.minRotationDeg ?? 10;
      if (!(Number.isFinite(minTranslation) && minTranslation >= 0)) throw invalidArgument('a non-negative number of metres', 'keyframe.minTranslation', minTranslation);
      if (!(Number.isFinite(minRotationDeg) && minRotationDeg >= 0)) throw invalidArgument('a non-negative number of degrees', 'keyframe.minRotationDeg', minRotationDeg);
      this.keyframe = { minTranslation, minRotationDeg };
    }
    // Validated (and normalized) by the same rule as every scene.
    if (opts.up !== undefined) {
      const probe = sceneFromFrames([{ image: { data: new Uint8Array(3), shape: [1, 1, 3] }, depth: { data: new Float32Array(1), shape: [1, 1] }, intrinsics: { fx: 1, fy: 1, cx: 0, cy: 0 } }], { up: opts.up });
      this.up = probe.up;
    }
  }

  /** The kept frames, oldest first. */
  get frames(): readonly StreamFrame[] {
    return this.kept;
  }

  /** Increases whenever the window changes (a frame kept or dropped). */
  get version(): number {
    return this.version_;
  }

  /** A {@link Scene} of the kept frames, oldest first (the same object until the window changes). */
  get scene(): Scene {
    if (this.kept.length === 0) throw invalidArgument('a streaming scene with at least one frame (call addFrame first)', 'scene', 'an empty stream', true);
    if (!this.scene_) {
      this.scene_ = { frames: this.kept.map((k) => k.frame), ...(this.up ? { up: this.up } : {}) };
    }
    return this.scene_;
  }

  /**
   * Adds the next frame of the stream: validated like any scene frame, kept when it is a
   * keyframe (or always, with `keyframe: 'all'`), the oldest kept frames dropped beyond
   * `maxFrames`.
   */
  addFrame(input: StreamFrameInput): AddFrameResult {
    if (input === null || typeof input !== 'object') throw invalidArgument('a frame { image, depth | points, intrinsics, pose?, timestamp? }', 'frame', input);
    if (input.timestamp !== undefined && !Number.isFinite(input.timestamp)) throw invalidArgument('a finite number', 'timestamp', input.timestamp);
    const index = this.next++;
    const frame = sceneFromFrames([{ ...input, name: input.name ?? `frame${index}` }], { maxFrames: 1 }).frames[0];
    const last = this.kept[this.kept.length - 1];
    let keep = true;
    if (this.keyframe !== 'all' && last) {
      const a = poseOf(last.frame), b = poseOf(frame);
      if (a && b) {
        const d = poseDelta(a, b);
        keep = d.translation >= this.keyframe.minTranslation || d.rotationDeg >= this.keyframe.minRotationDeg;
      }
    }
    const dropped: number[] = [];
    if (keep) {
      this.kept.push({ index, ...(input.timestamp !== undefined ? { timestamp: input.timestamp } : {}), frame });
      while (this.kept.length > this.maxFrames) dropped.push(this.kept.shift()!.index);
      this.version_++;
      this.scene_ = null;
    }
    return { index, kept: keep, dropped };
  }

  /**
   * The window position (0 = oldest kept) of a frame named by its stream index or timestamp; a
   * typed error when it is not in the window (never kept, or dropped).
   */
  position(ref: StreamFrameRef): number {
    if (ref === null || typeof ref !== 'object') throw invalidArgument('{ index } or { timestamp }', 'frame', ref);
    const byIndex = 'index' in ref;
    const k = this.kept.findIndex((f) => (byIndex ? f.index === ref.index : f.timestamp === (ref as { timestamp: number }).timestamp));
    if (k < 0) {
      const what = byIndex ? `stream frame ${ref.index}` : `the frame at timestamp ${(ref as { timestamp: number }).timestamp}`;
      const window = this.kept.length ? `frames ${this.kept.map((f) => f.index).join(', ')}` : 'no frames';
      throw invalidArgument(`a frame in the window (${window})`, 'frame', `${what}, which is not in it (dropped, or not a keyframe)`, true);
    }
    return k;
  }
}

/** A bounded, keyframed window over a stream of RGB-D frames (see {@link StreamingScene}). */
export function createStreamingScene(opts: StreamingSceneOptions = {}): StreamingScene {
  return new StreamingScene(opts);
}
