// Streaming scenes: the keyframe rule, the bounded window (oldest dropped first), frames named
// by stream index or timestamp, and per-frame objects that outlive window changes.
import { InvalidArgumentError } from '../lib/errors';
import { createStreamingScene, poseDelta } from '../lib/streaming';

const H = 4, W = 5;
function frame(tx: number, yawDeg = 0, timestamp?: number) {
  const c = Math.cos((yawDeg * Math.PI) / 180), s = Math.sin((yawDeg * Math.PI) / 180);
  return {
    image: { data: new Uint8Array(H * W * 3), shape: [H, W, 3] },
    depth: { data: new Float32Array(H * W).fill(1), shape: [H, W] },
    intrinsics: { fx: 5, fy: 5, cx: 2, cy: 1.5 },
    pose: [c, -s, 0, tx, s, c, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
    ...(timestamp !== undefined ? { timestamp } : {}),
  };
}

describe('poseDelta', () => {
  it('translation in metres and rotation angle in degrees', () => {
    const d = poseDelta(frame(0).pose, frame(0.3, 30).pose);
    expect(d.translation).toBeCloseTo(0.3, 12);
    expect(d.rotationDeg).toBeCloseTo(30, 6);
  });
});

describe('createStreamingScene', () => {
  it('keeps keyframes by pose change and drops the oldest beyond maxFrames', () => {
    const s = createStreamingScene({ maxFrames: 3, keyframe: { minTranslation: 0.1, minRotationDeg: 10 } });
    expect(s.addFrame(frame(0))).toEqual({ index: 0, kept: true, dropped: [] });
    expect(s.addFrame(frame(0.05))).toEqual({ index: 1, kept: false, dropped: [] }); // 5 cm, 0°
    expect(s.addFrame(frame(0.05, 12))).toEqual({ index: 2, kept: true, dropped: [] }); // turned 12°
    expect(s.addFrame(frame(0.2, 12))).toEqual({ index: 3, kept: true, dropped: [] });
    expect(s.addFrame(frame(0.4, 12))).toEqual({ index: 4, kept: true, dropped: [0] });
    expect(s.frames.map((f) => f.index)).toEqual([2, 3, 4]);
    expect(s.scene.frames.length).toBe(3);
  });
  it("keyframe 'all': the last maxFrames frames; memory bounded over a long stream", () => {
    const s = createStreamingScene({ maxFrames: 4, keyframe: 'all' });
    for (let i = 0; i < 100; i++) s.addFrame(frame(0, 0, 1000 + i));
    expect(s.frames.map((f) => f.index)).toEqual([96, 97, 98, 99]);
    expect(s.frames.map((f) => f.timestamp)).toEqual([1096, 1097, 1098, 1099]);
    expect(s.version).toBe(100);
  });
  it('frames keep their objects while in the window; the scene object changes with the window', () => {
    const s = createStreamingScene({ maxFrames: 2, keyframe: 'all', up: [0, 0, 2] });
    s.addFrame(frame(0));
    s.addFrame(frame(1));
    const before = s.scene;
    expect(s.scene).toBe(before); // unchanged window: same Scene
    expect(before.up).toEqual([0, 0, 1]);
    const second = s.frames[1].frame;
    s.addFrame(frame(2));
    expect(s.scene).not.toBe(before);
    expect(s.scene.frames[0]).toBe(second); // the same SceneFrame object: per-frame caches stay valid
  });
  it('frames named by stream index or timestamp; a dropped frame is a clear error', () => {
    const s = createStreamingScene({ maxFrames: 2, keyframe: 'all' });
    s.addFrame(frame(0, 0, 10));
    s.addFrame(frame(1, 0, 20));
    s.addFrame(frame(2, 0, 30));
    expect(s.position({ index: 2 })).toBe(1);
    expect(s.position({ timestamp: 20 })).toBe(0);
    expect(() => s.position({ index: 0 })).toThrow(InvalidArgumentError);
    expect(() => s.position({ timestamp: 10 })).toThrow(/Expected a frame in the window \(frames 1, 2\) for frame but received the frame at timestamp 10, which is not in it/);
  });
  it('frames without a pose are always kept; bad frames and options are typed errors', () => {
    const s = createStreamingScene({ maxFrames: 3 });
    const { pose: _p, ...noPose } = frame(0);
    s.addFrame(noPose);
    s.addFrame(noPose);
    expect(s.frames.length).toBe(2);
    expect(() => s.addFrame({ ...frame(0), depth: { data: new Float32Array(3), shape: [1, 3] } })).toThrow(/depth/);
    expect(() => s.addFrame({ ...frame(0), timestamp: NaN })).toThrow(/finite number for timestamp/);
    expect(() => createStreamingScene({ maxFrames: 33 })).toThrow(/\[1, 32\] .* for maxFrames/);
    expect(() => createStreamingScene({ keyframe: { minTranslation: -1 } })).toThrow(/keyframe\.minTranslation/);
    expect(() => createStreamingScene().scene).toThrow(/at least one frame/);
  });
});
