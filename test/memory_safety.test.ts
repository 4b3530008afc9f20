// Memory safety of buffers in flight (issue 10): a buffer detached (transferred) while an op
// runs must never be touched by the native code, a SharedArrayBuffer is accepted, an output
// that aliases an input is refused naming both, and the engine does not read its weights from
// buffers the caller can detach. The detach cases run in a child process so that a
// use-after-free fails the test (signal, no JSON) instead of killing jest.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as sr3d from '../lib';
import { native } from '../lib/native';
import { writeTinyModel } from '../lib/tinymodel';
import { ensureDistBuilt } from './helpers';

const root = path.resolve(__dirname, '..');
const CHILD = path.join(__dirname, 'fixtures', 'detach_in_flight.js');
let tmp: string;


beforeAll(() => {
  // The child loads the compiled library (dist), as a user does.
  ensureDistBuilt('index.js');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-memsafety-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Tally { resolved: number; typed: number; other: string[]; fatal?: string }
function runChild(args: string[]): Tally {
  const r = spawnSync(process.execPath, ['--expose-gc', CHILD, ...args], { cwd: root, encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0 || r.signal) throw new Error(`child ${args.join(' ')} died (status ${r.status}, signal ${r.signal}):\n${r.stderr.slice(-4000)}`);
  const t = JSON.parse(r.stdout.trim().split('\n').pop() as string) as Tally;
  if (t.fatal) throw new Error(t.fatal);
  return t;
}

describe('a buffer detached while the op runs', () => {
  const ROUNDS = 4;
  it.each(['backproject', 'rawBackproject', 'scenePoints', 'tileImage', 'maskPool', 'maskPoolTiles', 'linear', 'rawLinear'])(
    '%s: the input is the op\'s own copy (no crash; every call resolves or rejects typed)', (op) => {
      const t = runChild([op, String(ROUNDS)]);
      expect(t.other).toEqual([]);
      expect(t.resolved + t.typed).toBe(ROUNDS);
    });

  it('backproject: an output detached meanwhile rejects with a typed error naming it', () => {
    const t = runChild(['backprojectOut', String(ROUNDS)]);
    expect(t.other).toEqual([]);
    expect(t.typed).toBe(ROUNDS);
  });

  it('nnActivation: an in-place buffer detached meanwhile rejects with a typed error (copy-back refused)', () => {
    const t = runChild(['rawActivationInPlace', String(ROUNDS)]);
    expect(t.other).toEqual([]);
    expect(t.typed).toBe(ROUNDS);
  });

  it('engine.generate after the caller detached every weight buffer it read', async () => {
    const dir = path.join(tmp, 'tiny');
    await writeTinyModel(dir, { seed: 3 });
    const t = runChild(['engine', '2', dir]);
    expect(t.other).toEqual([]);
    expect(t.resolved).toBe(2);
  });
});

describe('shared and aliased buffers', () => {
  const K = { fx: 300, fy: 310, cx: 8, cy: 6 };
  const depth = (n: number, Buf: typeof ArrayBuffer | typeof SharedArrayBuffer = ArrayBuffer) => {
    const d = new Float32Array(new Buf(4 * n));
    for (let i = 0; i < n; i++) d[i] = 0.5 + (i % 13) / 7;
    return d;
  };

  it('a SharedArrayBuffer input and output give the same bits as plain buffers', async () => {
    const want = await sr3d.backproject({ data: depth(12 * 10), shape: [12, 10] }, K);
    const out = { points: new Float32Array(new SharedArrayBuffer(4 * 3 * 120)), valid: new Uint8Array(new SharedArrayBuffer(120)) };
    const got = await sr3d.backproject({ data: depth(12 * 10, SharedArrayBuffer), shape: [12, 10] }, K, { out });
    expect(got.points.data).toBe(out.points);
    expect(Buffer.from(out.points.buffer).equals(Buffer.from(want.points.data.buffer))).toBe(true);
    expect(Array.from(out.valid)).toEqual(Array.from(want.valid.data));
  });

  it('raw addon: an output overlapping an input is refused naming both', async () => {
    const buf = new ArrayBuffer(4 * 4 * 16);
    const d = new Float32Array(buf, 0, 16).fill(1);
    const points = new Float32Array(buf, 0, 48);
    const err = await native().backproject({ depth: d, depthDtype: 'float32', frames: 1, height: 4, width: 4, depthScale: 1,
      intrinsics: new Float32Array([1, 1, 0, 0]), poses: null, points, valid: new Uint8Array(16), impl: 'fast' }).then(() => null, (e: unknown) => e);
    expect((err as { code?: string }).code).toBe('SR3D_INVALID_ARGUMENT');
    expect((err as Error).message).toMatch(/^Expected a buffer that does not overlap 'depth' .* for points but received a view sharing memory with 'depth'$/);
  });

  it('public API: an out buffer aliasing the input is a typed error naming both', async () => {
    const shared = new Float32Array(48);
    shared.set(depth(16));
    await expect(sr3d.backproject({ data: shared.subarray(0, 16), shape: [4, 4] }, K, { out: { points: shared } }))
      .rejects.toThrow(/does not overlap 'depth'.* for points but received a view sharing memory with 'depth'/);
  });

  it('canonicalize stays in-place safe (its in-place use is documented)', async () => {
    const pts = new Float32Array(30).map((_, i) => i / 7);
    const want = await sr3d.canonicalize({ data: Float32Array.from(pts), shape: [10, 3] });
    const r = await sr3d.canonicalize({ data: pts, shape: [10, 3] }, { outPoints: pts });
    expect(Array.from(r.points.data)).toEqual(Array.from(want.points.data));
  });
});

describe('sizes past what can be allocated', () => {
  const img = { data: new Uint8Array(2 * 2 * 3), shape: [2, 2, 3] };
  it('resizeBicubic to 2^24 x 2^24 is a typed error naming out, before allocating', async () => {
    await expect(sr3d.resizeBicubic(img, 2 ** 24, 2 ** 24)).rejects.toThrow(sr3d.InvalidArgumentError);
    await expect(sr3d.resizeBicubic(img, 2 ** 24, 2 ** 24)).rejects.toThrow(/^Expected sizes whose Uint8Array fits one ArrayBuffer \(at most \d+ bytes\) for out but received 844424930131968 elements/);
  });
  it('boxToMask of a 2^24 x 2^24 frame is a typed error, not a RangeError', () => {
    expect(() => sr3d.boxToMask({ x0: 0, y0: 0, x1: 1, y1: 1 }, 2 ** 24, 2 ** 24)).toThrow(sr3d.InvalidArgumentError);
    expect(() => sr3d.boxToMask({ x0: 0, y0: 0, x1: 1, y1: 1 }, 2 ** 24, 2 ** 24)).toThrow(/for width x height but received 281474976710656 elements/);
  });
});
