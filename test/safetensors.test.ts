// The safetensors reader/writer: round trips, dtype decoding against known bit patterns, every
// broken-file case as a typed error (never an out-of-bounds read), and sharded index sets.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { InvalidArgumentError } from '../lib/errors';
import { expectCheckpointError } from './helpers';
import {
  CheckpointError, MAX_HEADER_BYTES, SafetensorsFile, ShardedWeights, bf16ToFloat, f16ToFloat, floatToBf16, floatToF16,
  fromFloat32, openWeights, toFloat32, writeSafetensors,
} from '../lib/safetensors';
import type { WeightTensor } from '../lib/checkpoint_types';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const realFs = require('fs') as typeof fs;

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-st-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let counter = 0;
const fresh = (name = 'f.safetensors'): string => {
  const d = path.join(tmp, `c${counter++}`);
  fs.mkdirSync(d);
  return path.join(d, name);
};

/** A file from a raw header (object or text), data bytes and an optional forced length field. */
function rawFile(header: unknown, data: number[] | Buffer = [], opts: { len?: bigint; file?: string } = {}): string {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.len ?? BigInt(text.length));
  const file = opts.file ?? fresh();
  fs.writeFileSync(file, Buffer.concat([len, text, Buffer.isBuffer(data) ? data : Buffer.from(data)]));
  return file;
}

/** Asserts a typed checkpoint error whose message matches `re`. */
function expectBroken(fn: () => unknown, re: RegExp): CheckpointError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  return expectCheckpointError(caught, re);
}

describe('dtype decoding', () => {
  test('bf16 bits -> float32 known values', () => {
    const cases: Array<[number, number]> = [
      [0x3f80, 1], [0xbf80, -1], [0xc000, -2], [0x3fc0, 1.5], [0x0000, 0], [0x7f80, Infinity], [0xff80, -Infinity],
      [0x4049, 3.140625], [0x0001, 2 ** -133], [0x7f7f, 3.3895313892515355e38],
    ];
    for (const [bits, v] of cases) expect(bf16ToFloat(bits)).toBe(v);
    expect(Number.isNaN(bf16ToFloat(0x7fc0))).toBe(true);
    expect(Object.is(bf16ToFloat(0x8000), -0)).toBe(true);
  });

  test('float32 -> bf16 rounds to nearest even', () => {
    expect(floatToBf16(1)).toBe(0x3f80);
    expect(floatToBf16(1 + 2 ** -8)).toBe(0x3f80); // halfway, even stays
    expect(floatToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // halfway, odd rounds up
    expect(floatToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // above halfway
    expect(floatToBf16(Math.PI)).toBe(0x4049);
    expect(floatToBf16(-Infinity)).toBe(0xff80);
    expect(Number.isNaN(bf16ToFloat(floatToBf16(NaN)))).toBe(true);
  });

  test('f16 bits -> float32 known values, subnormals and specials', () => {
    const cases: Array<[number, number]> = [
      [0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14],
      [0x3555, 0.333251953125], [0x7c00, Infinity], [0xfc00, -Infinity], [0x3800, 0.5],
    ];
    for (const [bits, v] of cases) expect(f16ToFloat(bits)).toBe(v);
    expect(Number.isNaN(f16ToFloat(0x7e00))).toBe(true);
  });

  test('float32 -> f16 rounds to nearest even, overflows to Inf, keeps subnormals', () => {
    expect(floatToF16(1)).toBe(0x3c00);
    expect(floatToF16(1 / 3)).toBe(0x3555);
    expect(floatToF16(65504)).toBe(0x7bff);
    expect(floatToF16(65520)).toBe(0x7c00); // halfway to 65536 rounds to even = overflow
    expect(floatToF16(65519)).toBe(0x7bff);
    expect(floatToF16(2 ** -24)).toBe(0x0001);
    expect(floatToF16(2 ** -25)).toBe(0x0000); // halfway to 0: even
    expect(floatToF16(3 * 2 ** -25)).toBe(0x0002); // 1.5 units: rounds to even 2
    expect(floatToF16(-2)).toBe(0xc000);
    expect(floatToF16(1 + 2 ** -11)).toBe(0x3c00); // halfway, even
    expect(floatToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(floatToF16(2047 * 2 ** -11 + 2 ** -12)).toBe(0x3c00); // rounds up across the exponent: 1.0
    // Every f16 value survives decode -> encode.
    const bad: number[] = [];
    for (let b = 0; b < 0x10000; b++) {
      if ((b & 0x7c00) === 0x7c00 && b & 0x3ff) continue; // NaN payloads
      if (floatToF16(f16ToFloat(b)) !== b) bad.push(b);
    }
    expect(bad).toEqual([]);
  });
});

describe('reader on hand-made files', () => {
  test('decodes F32/F16/BF16 at their offsets, with a hole and metadata', () => {
    const data = Buffer.alloc(4 * 2 + 4 + 2 * 2 + 2 * 3);
    data.writeFloatLE(1.5, 0);
    data.writeFloatLE(-3.25, 4);
    // 4 bytes of hole at 8..12
    data.writeUInt16LE(0x3c00, 12); // f16 1
    data.writeUInt16LE(0xc000, 14); // f16 -2
    data.writeUInt16LE(0x3f80, 16); // bf16 1
    data.writeUInt16LE(0x4049, 18); // bf16 3.140625
    data.writeUInt16LE(0xbfc0, 20); // bf16 -1.5
    const file = rawFile({
      __metadata__: { format: 'pt' },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      h: { dtype: 'F16', shape: [1, 2], data_offsets: [12, 16] },
      b: { dtype: 'BF16', shape: [3], data_offsets: [16, 22] },
      empty: { dtype: 'F32', shape: [0, 4], data_offsets: [22, 22] },
    }, data);
    const st = SafetensorsFile.open(file);
    expect(st.metadata).toEqual({ format: 'pt' });
    expect(st.keys().sort()).toEqual(['a', 'b', 'empty', 'h']);
    expect(st.bytes).toBe(8 + 4 + 6);
    expect(st.info('h')).toEqual({ name: 'h', dtype: 'f16', shape: [1, 2], file: path.resolve(file), bytes: 4 });
    const a = st.read('a');
    expect(a.data).toBeInstanceOf(Float32Array);
    expect(Array.from(a.data)).toEqual([1.5, -3.25]);
    const h = st.read('h');
    expect(h.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(toFloat32(h))).toEqual([1, -2]);
    const b = st.read('b');
    expect(Array.from(b.data)).toEqual([0x3f80, 0x4049, 0xbfc0]);
    expect(Array.from(toFloat32(b))).toEqual([1, 3.140625, -1.5]);
    expect(st.read('empty').data.length).toBe(0);
  });

  test('reads exactly the tensor bytes at its offset (never the whole file)', () => {
    const big = Buffer.alloc(1 << 20, 7);
    const file = rawFile({ small: { dtype: 'F32', shape: [4], data_offsets: [(1 << 20) - 16, 1 << 20] }, pad: { dtype: 'F32', shape: [16], data_offsets: [0, 64] } }, big);
    const st = SafetensorsFile.open(file);
    const spy = jest.spyOn(realFs, 'readSync');
    try {
      st.read('small');
      const lengths = spy.mock.calls.map((c) => (c as unknown[])[3] as number);
      expect(lengths).toEqual([16]);
    } finally {
      spy.mockRestore();
    }
  });

  test('open reads only the 8-byte length and the header', () => {
    const file = rawFile({ x: { dtype: 'F32', shape: [1 << 18], data_offsets: [0, 1 << 20] } }, Buffer.alloc(1 << 20));
    const spy = jest.spyOn(realFs, 'readSync');
    try {
      SafetensorsFile.open(file);
      const total = spy.mock.calls.reduce((s, c) => s + ((c as unknown[])[3] as number), 0);
      expect(total).toBeLessThan(200);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('broken and hostile files are typed errors', () => {
  const ok = { t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  test('missing file', () => {
    expectBroken(() => SafetensorsFile.open(path.join(tmp, 'nope.safetensors')), /ENOENT/);
  });
  test('shorter than the length field', () => {
    const f = fresh();
    fs.writeFileSync(f, Buffer.from([1, 2, 3]));
    expectBroken(() => SafetensorsFile.open(f), /at least 8 bytes.*received 3 bytes/);
  });
  test('header length 0', () => {
    expectBroken(() => SafetensorsFile.open(rawFile('', [], { len: 0n })), /header length > 0.*received 0/);
  });
  test('absurd header length (> 100 MB)', () => {
    expectBroken(() => SafetensorsFile.open(rawFile(ok, [], { len: 1n << 40n })), new RegExp(`<= ${MAX_HEADER_BYTES}.*received ${1n << 40n}`));
    expectBroken(() => SafetensorsFile.open(rawFile(ok, [], { len: 0xffffffffffffffffn })), /header length/);
  });
  test('header length past the end of the file', () => {
    const text = JSON.stringify(ok);
    expectBroken(() => SafetensorsFile.open(rawFile(ok, Buffer.alloc(8), { len: BigInt(text.length + 100) })), /header length <= \d+.*received \d+/);
  });
  test('header is not JSON / not an object', () => {
    expectBroken(() => SafetensorsFile.open(rawFile('{"t": {', Buffer.alloc(8))), /JSON header.*does not parse/);
    expectBroken(() => SafetensorsFile.open(rawFile('[1,2]')), /JSON object header.*an array/);
    expectBroken(() => SafetensorsFile.open(rawFile('42')), /JSON object header.*42/);
    expectBroken(() => SafetensorsFile.open(rawFile('null')), /JSON object header.*null/);
  });
  test('entry not an object, bad dtype or bad shape', () => {
    expectBroken(() => SafetensorsFile.open(rawFile({ t: 5 })), /object \{dtype, shape, data_offsets\}.*'t'/);
    expectBroken(() => SafetensorsFile.open(rawFile({ t: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, [0])), /dtype of 't'.*"Q4"/);
    expectBroken(() => SafetensorsFile.open(rawFile({ t: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, [0, 0, 0, 0])), /shape of 't'/);
    expectBroken(() => SafetensorsFile.open(rawFile({ t: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, [0, 0, 0, 0])), /shape of 't'/);
    expectBroken(() => SafetensorsFile.open(rawFile({ t: { dtype: 'F32', shape: 'x', data_offsets: [0, 4] } }, [0, 0, 0, 0])), /shape of 't'/);
  });
  test('offsets that are not integers', () => {
    for (const off of [[0.5, 8], ['0', '8'], [0], [0, 8, 9], [-8, 0], null]) {
      const e = expectBroken(() => SafetensorsFile.open(rawFile({ t: { dtype: 'F32', shape: [2], data_offsets: off } }, Buffer.alloc(8))), /data_offsets \[begin, end\]/);
      expect(e.key).toBe('t');
    }
  });
  test('begin > end', () => {
    expectBroken(() => SafetensorsFile.open(rawFile({ t: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, Buffer.alloc(8))), /begin <= end.*\[8, 0\]/);
  });
  test('end past the data section', () => {
    expectBroken(() => SafetensorsFile.open(rawFile({ t: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8))), /within the 8-byte data section.*\[0, 16\]/);
    // Huge offsets cannot wrap around.
    expectBroken(() => SafetensorsFile.open(rawFile({ t: { dtype: 'F32', shape: [2], data_offsets: [2 ** 53 - 9, 2 ** 53 - 1] } }, Buffer.alloc(8))), /data section/);
  });
  test('byte size != prod(shape) x dtype size', () => {
    expectBroken(() => SafetensorsFile.open(rawFile({ t: { dtype: 'BF16', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8))), /6 bytes \(\[3\] × 2 bytes of BF16\).*received 8 bytes/);
    expectBroken(() => SafetensorsFile.open(rawFile({ t: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, Buffer.alloc(8))), /data of 't'/);
  });
  test('overlapping tensors', () => {
    const e = expectBroken(() => SafetensorsFile.open(rawFile({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }, Buffer.alloc(12))), /non-overlapping.*'b'.*\[4, 12\] overlapping 'a' \[0, 8\]/);
    expect(e.key).toBe('b');
  });
  test('a supported-format but unsupported dtype opens, and naming it fails on use', () => {
    const st = SafetensorsFile.open(rawFile({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] }, ...{ t: { dtype: 'F32', shape: [2], data_offsets: [16, 24] } } }, Buffer.alloc(24)));
    expect(st.read('t').data.length).toBe(2);
    expectBroken(() => st.read('ids'), /F32, F16 or BF16 for tensor 'ids' but received I64/);
    expectBroken(() => st.info('ids'), /tensor 'ids' but received I64/);
  });
  test('missing key', () => {
    const st = SafetensorsFile.open(rawFile(ok, Buffer.alloc(8)));
    expect(st.has('zz')).toBe(false);
    expectBroken(() => st.read('zz'), /key present.*'zz'/);
  });
  test('a file truncated after it was opened', () => {
    const f = rawFile(ok, Buffer.alloc(8));
    const st = SafetensorsFile.open(f);
    fs.truncateSync(f, fs.statSync(f).size - 4);
    expectBroken(() => st.read('t'), /file size/);
  });
});

function randomTensor(name: string, dtype: 'f32' | 'f16' | 'bf16', shape: number[], seed: number): WeightTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = (s / 2 ** 32) * 4 - 2;
  }
  return { name, dtype, shape, data: fromFloat32(x, dtype) };
}

describe('writer', () => {
  const tensors = [
    randomTensor('w.f32', 'f32', [3, 5], 1),
    randomTensor('w.bf16', 'bf16', [7], 2),
    randomTensor('w.f16', 'f16', [2, 3, 1], 3),
    randomTensor('z', 'f32', [0], 4),
  ];

  test('round trip of every dtype, with metadata', () => {
    const f = fresh();
    writeSafetensors(f, tensors, { format: 'pt', note: 'x' });
    const st = SafetensorsFile.open(f);
    expect(st.metadata).toEqual({ format: 'pt', note: 'x' });
    expect(st.keys()).toEqual(tensors.map((t) => t.name));
    for (const t of tensors) {
      const r = st.read(t.name);
      expect(r.dtype).toBe(t.dtype);
      expect(r.shape).toEqual(t.shape);
      expect(r.data.constructor).toBe(t.data.constructor);
      expect(Array.from(r.data)).toEqual(Array.from(t.data));
    }
  });

  test('header is padded with spaces to a multiple of 8 and data is contiguous in order', () => {
    const f = fresh();
    writeSafetensors(f, tensors);
    const buf = fs.readFileSync(f);
    const n = Number(buf.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const text = buf.subarray(8, 8 + n).toString('utf8');
    expect(text).toMatch(/^\{.*\} *$/);
    const hdr = JSON.parse(text);
    expect(hdr.__metadata__).toBeUndefined();
    expect(hdr['w.f32']).toEqual({ dtype: 'F32', shape: [3, 5], data_offsets: [0, 60] });
    expect(hdr['w.bf16']).toEqual({ dtype: 'BF16', shape: [7], data_offsets: [60, 74] });
    expect(hdr['w.f16']).toEqual({ dtype: 'F16', shape: [2, 3, 1], data_offsets: [74, 86] });
    expect(buf.length).toBe(8 + n + 86);
  });

  test('deterministic bytes', () => {
    const a = fresh(), b = fresh();
    writeSafetensors(a, tensors, { format: 'pt' });
    writeSafetensors(b, tensors, { format: 'pt' });
    expect(fs.readFileSync(a).equals(fs.readFileSync(b))).toBe(true);
  });

  test('rejects data of the wrong length or type and duplicate names', () => {
    expect(() => writeSafetensors(fresh(), [{ name: 'a', dtype: 'f32', shape: [3], data: new Float32Array(2) }])).toThrow(/Expected Float32Array of 12 bytes \(shape \[3\]\) for tensor 'a' but received Float32Array of 8 bytes/);
    expect(() => writeSafetensors(fresh(), [{ name: 'a', dtype: 'bf16', shape: [2], data: new Float32Array(1) }])).toThrow(InvalidArgumentError);
    expect(() => writeSafetensors(fresh(), [tensors[0], tensors[0]])).toThrow(/unique tensor names/);
  });
});

describe('sharded sets', () => {
  function sharded(): string {
    const dir = path.dirname(fresh('x'));
    writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), [randomTensor('a', 'bf16', [4, 2], 1), randomTensor('b', 'f32', [3], 2)]);
    writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), [randomTensor('c', 'f16', [5], 3)]);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({
      metadata: { total_size: 16 + 12 + 10 },
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' },
    }));
    return dir;
  }
  const setIndex = (dir: string, wm: Record<string, unknown>): void => {
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: wm }));
  };

  test('reads every key from its shard', () => {
    const ws = openWeights(sharded());
    expect(ws).toBeInstanceOf(ShardedWeights);
    expect(ws.keys().sort()).toEqual(['a', 'b', 'c']);
    expect(ws.bytes).toBe(38);
    expect(path.basename(ws.info('c').file)).toBe('model-00002-of-00002.safetensors');
    expect(Array.from(ws.read('c').data)).toEqual(Array.from(randomTensor('c', 'f16', [5], 3).data));
    expect(Array.from(ws.read('a').data)).toEqual(Array.from(randomTensor('a', 'bf16', [4, 2], 1).data));
    expect(() => ws.read('d')).toThrow(CheckpointError);
  });

  test('single-file folder and an empty folder', () => {
    const dir = path.dirname(fresh('x'));
    expectBroken(() => openWeights(dir), /model\.safetensors or model\.safetensors\.index\.json.*neither file/);
    writeSafetensors(path.join(dir, 'model.safetensors'), [randomTensor('a', 'f32', [2], 1)]);
    expect(openWeights(dir)).toBeInstanceOf(SafetensorsFile);
  });

  test('missing shard', () => {
    const dir = sharded();
    fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    const e = expectBroken(() => openWeights(dir), /model-00002-of-00002\.safetensors \(named for 'c'\).*no such file/);
    expect(e.key).toBe('c');
  });

  test('key in the index but not in its shard', () => {
    const dir = sharded();
    setIndex(dir, { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' });
    expectBroken(() => openWeights(dir), /tensor 'c' in shard model-00001-of-00002\.safetensors/);
  });

  test('key in two shards', () => {
    const dir = sharded();
    writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), [randomTensor('c', 'f16', [5], 3), randomTensor('a', 'bf16', [4, 2], 1)]);
    expectBroken(() => openWeights(dir), /each tensor in one shard only for 'a' but received it in both model-00001-of-00002\.safetensors and model-00002-of-00002\.safetensors/);
  });

  test('shard paths outside the folder and malformed indexes', () => {
    const dir = sharded();
    setIndex(dir, { a: '../model-00001-of-00002.safetensors' });
    expectBroken(() => openWeights(dir), /shard file name in the same folder/);
    setIndex(dir, { a: 7 });
    expectBroken(() => openWeights(dir), /shard file name/);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weights: {} }));
    expectBroken(() => openWeights(dir), /"weight_map"/);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{oops');
    expectBroken(() => openWeights(dir), /valid JSON.*does not parse/);
  });
});
