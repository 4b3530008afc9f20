/**
 * Our own safetensors reader and writer (format: 8-byte little-endian header length N, N bytes
 * of JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}`,
 * then the data section; offsets are relative to the data section).
 *
 * Opening a file reads only its header. A tensor is read on demand with one positioned
 * `fs.readSync` straight into a fresh typed array, so a 16 GB checkpoint never sits in memory
 * twice and is never read whole. Every header is validated before any offset is trusted:
 * a hostile or truncated file is a {@link CheckpointError}, never an out-of-bounds read.
 */
import * as fs from 'fs';
import * as path from 'path';

import { InvalidArgumentError } from './errors';
import type { WeightDType, WeightInfo, WeightSet, WeightTensor } from './checkpoint_types';
import { CheckpointError } from './errors';
export { CheckpointError };


/** Largest header we accept: real headers are a few hundred kB; anything bigger is hostile. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** A tensor's header entry whatever its dtype (the raw safetensors name). */
export interface RawInfo { key: string; dtype: string; shape: number[]; file: string; bytes: number }
/** A tensor read as stored: I32 → Int32Array, F16 → Uint16Array (raw bits). */
export interface RawTensor { key: string; shape: number[]; data: Int32Array | Uint16Array }
/** Tensors of any dtype (quantized checkpoints' I32 qweight/qzeros/g_idx and F16 scales). */
export interface RawTensorSource {
  rawInfo(key: string): RawInfo;
  /** Typed error naming the tensor when its dtype is not `want`. */
  readRaw(key: string, want: 'I32' | 'F16'): RawTensor;
}

/** Element sizes of every dtype the safetensors format defines (for validating byte sizes). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
  U16: 2, I16: 2, F16: 2, BF16: 2,
  U32: 4, I32: 4, F32: 4,
  U64: 8, I64: 8, F64: 8,
};

/** The dtypes sr3d reads, safetensors name → ours. */
const SUPPORTED: Record<string, WeightDType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
const ST_NAME: Record<WeightDType, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** Bytes per element of a weight dtype. */
export function dtypeBytes(dtype: WeightDType | 'i32'): number {
  return dtype === 'f32' || dtype === 'i32' ? 4 : 2;
}

/** One tensor's header entry, validated. `dtype` is the raw safetensors name. */
interface Entry {
  name: string;
  rawDtype: string;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;

function fail(file: string, what: string, name: string, received: string, fix: string, key = ''): CheckpointError {
  return new CheckpointError(`Expected ${what} for ${name} but received ${received} (in ${file}). ${fix}`, file, key);
}

const REDOWNLOAD = 'The file is truncated or corrupt: download or convert it again.';

/** Reads exactly `length` bytes at `position` into `target`, looping over short reads. */
function readExact(fd: number, target: Uint8Array, position: number, file: string): void {
  // One readSync moves at most ~2 GiB; the largest real tensor (embed_tokens of 8B) is 1.1 GB.
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < target.length) {
    const want = Math.min(CHUNK, target.length - done);
    const n = fs.readSync(fd, target, done, want, position + done);
    if (n <= 0) {
      throw fail(file, `${target.length} bytes at offset ${position}`, 'a tensor read', `end of file after ${done} bytes`, REDOWNLOAD);
    }
    done += n;
  }
}

/**
 * One `.safetensors` file: its validated header, with tensors read lazily. Implements
 * {@link WeightSet}. No file descriptor is held between calls.
 */
export class SafetensorsFile implements WeightSet {
  /** Absolute path of the file. */
  readonly path: string;
  /** The header's `__metadata__` (string → string), or null when it has none. */
  readonly metadata: Record<string, string> | null;
  /** Sum of the data bytes of all tensors. */
  readonly bytes: number;
  /** File size when the header was read (a read re-checks it). */
  readonly fileSize: number;
  private readonly entries: Map<string, Entry>;

  private constructor(file: string, fileSize: number, entries: Map<string, Entry>, metadata: Record<string, string> | null) {
    this.path = file;
    this.fileSize = fileSize;
    this.entries = entries;
    this.metadata = metadata;
    let b = 0;
    for (const e of entries.values()) b += e.end - e.begin;
    this.bytes = b;
  }

  /** Opens a file and validates its header (reads nothing else). */
  static open(file: string): SafetensorsFile {
    const abs = path.resolve(file);
    let fd: number;
    try {
      fd = fs.openSync(abs, 'r');
    } catch (e) {
      throw fail(abs, 'a readable safetensors file', 'the weights file', `${(e as NodeJS.ErrnoException).code ?? String(e)}`,
        'Check the path and that the checkpoint was downloaded completely.');
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw fail(abs, 'at least 8 bytes (the header length)', 'the file size', `${size} bytes`, REDOWNLOAD);
      const lenBuf = Buffer.alloc(8);
      readExact(fd, lenBuf, 0, abs);
      const n64 = lenBuf.readBigUInt64LE(0);
      if (n64 === 0n) throw fail(abs, 'a header length > 0', 'the header length', '0', REDOWNLOAD);
      if (n64 > BigInt(MAX_HEADER_BYTES)) {
        throw fail(abs, `a header length <= ${MAX_HEADER_BYTES} bytes`, 'the header length', `${n64}`, 'This is not a safetensors file, or it is corrupt.');
      }
      const n = Number(n64);
      if (8 + n > size) throw fail(abs, `a header length <= ${size - 8} (the bytes after the length field)`, 'the header length', `${n}`, REDOWNLOAD);
      const hdr = Buffer.alloc(n);
      readExact(fd, hdr, 8, abs);
      const { entries, metadata } = parseHeader(hdr, abs, 8 + n, size);
      return new SafetensorsFile(abs, size, entries, metadata);
    } finally {
      fs.closeSync(fd);
    }
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  private entry(key: string): Entry {
    const e = this.entries.get(key);
    if (!e) {
      throw fail(this.path, 'a tensor key present in the file', 'the key', `'${key}'`, 'Check the key name; list keys with keys().', key);
    }
    const dtype = SUPPORTED[e.rawDtype];
    if (!dtype) {
      throw fail(this.path, 'dtype F32, F16 or BF16', `tensor '${key}'`, e.rawDtype,
        'Convert the checkpoint to bf16, f16 or f32 (e.g. save it again with torch_dtype=torch.bfloat16).', key);
    }
    return e;
  }

  info(key: string): WeightInfo {
    const e = this.entry(key);
    return { name: key, dtype: SUPPORTED[e.rawDtype], shape: [...e.shape], file: this.path, bytes: e.end - e.begin };
  }

  /** Reads one tensor into a fresh Float32Array (f32) or Uint16Array (raw f16/bf16 bits). */
  read(key: string): WeightTensor {
    const e = this.entry(key);
    const dtype = SUPPORTED[e.rawDtype];
    const data = dtype === 'f32' ? new Float32Array((e.end - e.begin) / 4) : new Uint16Array((e.end - e.begin) / 2);
    this.readInto(e, key, data);
    return { name: key, dtype, shape: [...e.shape], data };
  }

  rawInfo(key: string): RawInfo {
    const e = this.entries.get(key);
    if (!e) throw fail(this.path, 'a tensor key present in the file', 'the key', `'${key}'`, 'Check the key name; list keys with keys().', key);
    return { key, dtype: e.rawDtype, shape: [...e.shape], file: this.path, bytes: e.end - e.begin };
  }

  readRaw(key: string, want: 'I32' | 'F16'): RawTensor {
    const info = this.rawInfo(key);
    if (info.dtype !== want) {
      throw fail(this.path, `dtype ${want}`, `tensor '${key}'`, info.dtype,
        'The quantized tensors do not have the dtypes of their published layout (qweight/qzeros/g_idx I32, scales F16): export the checkpoint again.', key);
    }
    const e = this.entries.get(key)!;
    const data = want === 'I32' ? new Int32Array((e.end - e.begin) / 4) : new Uint16Array((e.end - e.begin) / 2);
    this.readInto(e, key, data);
    return { key, shape: info.shape, data };
  }

  private readInto(e: Entry, key: string, data: Float32Array | Uint16Array | Int32Array): void {
    const bytes = e.end - e.begin;
    const fd = fs.openSync(this.path, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      if (size !== this.fileSize) {
        throw fail(this.path, `the file size ${this.fileSize} seen when the header was read`, 'the file size', `${size}`,
          'The file changed on disk after it was opened: load the checkpoint again.', key);
      }
      readExact(fd, new Uint8Array(data.buffer, 0, bytes), e.begin, this.path);
    } finally {
      fs.closeSync(fd);
    }
  }
}

function parseHeader(hdr: Buffer, file: string, dataStart: number, fileSize: number): { entries: Map<string, Entry>; metadata: Record<string, string> | null } {
  let json: unknown;
  try {
    json = JSON.parse(hdr.toString('utf8'));
  } catch (e) {
    throw fail(file, 'a JSON header', 'the header', `text that does not parse (${(e as Error).message})`, REDOWNLOAD);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw fail(file, 'a JSON object header', 'the header', Array.isArray(json) ? 'an array' : String(json), REDOWNLOAD);
  }
  const dataSize = fileSize - dataStart;
  const entries = new Map<string, Entry>();
  let metadata: Record<string, string> | null = null;
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        throw fail(file, 'an object', '__metadata__', JSON.stringify(v), REDOWNLOAD);
      }
      metadata = {};
      for (const [mk, mv] of Object.entries(v as Record<string, unknown>)) metadata[mk] = typeof mv === 'string' ? mv : JSON.stringify(mv);
      continue;
    }
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (t === null || typeof t !== 'object' || Array.isArray(t)) throw fail(file, 'an object {dtype, shape, data_offsets}', `tensor '${name}'`, JSON.stringify(v), REDOWNLOAD, name);
    if (typeof t.dtype !== 'string' || !(t.dtype in DTYPE_BYTES)) {
      throw fail(file, `a safetensors dtype (${Object.keys(DTYPE_BYTES).join(', ')})`, `the dtype of '${name}'`, JSON.stringify(t.dtype), REDOWNLOAD, name);
    }
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw fail(file, 'an array of non-negative integers', `the shape of '${name}'`, JSON.stringify(t.shape), REDOWNLOAD, name);
    }
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw fail(file, 'data_offsets [begin, end] of two non-negative integers', `'${name}'`, JSON.stringify(off), REDOWNLOAD, name);
    }
    const [b, e] = off as number[];
    if (b > e) throw fail(file, 'begin <= end in data_offsets', `'${name}'`, `[${b}, ${e}]`, REDOWNLOAD, name);
    if (e > dataSize) {
      throw fail(file, `data_offsets within the ${dataSize}-byte data section`, `'${name}'`, `[${b}, ${e}]`, REDOWNLOAD, name);
    }
    const shape = t.shape as number[];
    let count = 1;
    for (const d of shape) count *= d;
    const want = count * DTYPE_BYTES[t.dtype];
    if (!Number.isSafeInteger(want) || want !== e - b) {
      throw fail(file, `${want} bytes (${fmtShape(shape)} × ${DTYPE_BYTES[t.dtype]} bytes of ${t.dtype})`, `the data of '${name}'`, `${e - b} bytes`, REDOWNLOAD, name);
    }
    entries.set(name, { name, rawDtype: t.dtype, shape, begin: dataStart + b, end: dataStart + e });
  }
  // Overlapping tensors would alias one another's bytes; holes between tensors are allowed.
  const sorted = [...entries.values()].filter((x) => x.end > x.begin).sort((x, y) => x.begin - y.begin || x.end - y.end);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1], c = sorted[i];
    if (c.begin < p.end) {
      throw fail(file, 'non-overlapping tensor data', `'${c.name}'`,
        `[${c.begin - dataStart}, ${c.end - dataStart}] overlapping '${p.name}' [${p.begin - dataStart}, ${p.end - dataStart}]`, REDOWNLOAD, c.name);
    }
  }
  return { entries, metadata };
}

/** Name of the index of a sharded weight set (Hugging Face convention). */
export const INDEX_FILE = 'model.safetensors.index.json';
/** Name of a single-file weight set. */
export const SINGLE_FILE = 'model.safetensors';

/**
 * A weight set over several shards listed by a `model.safetensors.index.json`
 * (`{"weight_map": {key: shardFile}}`). All shard headers are read and cross-checked when it
 * opens: a missing shard, a key the index names but its shard lacks, or a key stored in two
 * shards is a {@link CheckpointError}. A tensor stored in a shard but absent from the index is
 * ignored, as Hugging Face loaders do.
 */
export class ShardedWeights implements WeightSet {
  /** Absolute path of the index file. */
  readonly indexPath: string;
  readonly bytes: number;
  /** The opened shards, in first-mention order. */
  readonly shards: SafetensorsFile[];
  private readonly map: Map<string, SafetensorsFile>;

  private constructor(indexPath: string, shards: SafetensorsFile[], map: Map<string, SafetensorsFile>) {
    this.indexPath = indexPath;
    this.shards = shards;
    this.map = map;
    let b = 0;
    for (const [k, s] of map) b += s.info(k).bytes;
    this.bytes = b;
  }

  static open(indexFile: string): ShardedWeights {
    const abs = path.resolve(indexFile);
    const dir = path.dirname(abs);
    const idx = readJson(abs, 'the shard index') as { weight_map?: unknown };
    const wm = idx.weight_map;
    if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) {
      throw fail(abs, 'an object "weight_map": {key: file}', 'the shard index', JSON.stringify(wm), 'Write the index again (save_pretrained writes it).');
    }
    const shardByName = new Map<string, SafetensorsFile>();
    const map = new Map<string, SafetensorsFile>();
    for (const [key, f] of Object.entries(wm as Record<string, unknown>)) {
      // Shards must be plain file names beside the index: no paths out of the folder.
      if (typeof f !== 'string' || f === '' || f !== path.basename(f) || f === '.' || f === '..') {
        throw fail(abs, 'a shard file name in the same folder', `weight_map['${key}']`, JSON.stringify(f), 'Fix the index: shards are plain file names.', key);
      }
      let shard = shardByName.get(f);
      if (!shard) {
        const sp = path.join(dir, f);
        if (!fs.existsSync(sp)) {
          throw fail(abs, `the shard file ${sp} (named for '${key}')`, 'a shard', 'no such file', 'Download the missing shard, or fix the index.', key);
        }
        shard = SafetensorsFile.open(sp);
        shardByName.set(f, shard);
      }
      if (!shard.has(key)) {
        throw fail(abs, `tensor '${key}' in shard ${f} (as the index says)`, 'the shard', 'a shard without it', 'The index and the shards disagree: download the checkpoint again.', key);
      }
      map.set(key, shard);
    }
    const shards = [...shardByName.values()];
    const seen = new Map<string, SafetensorsFile>();
    for (const s of shards) {
      for (const k of s.keys()) {
        const prev = seen.get(k);
        if (prev) {
          throw fail(abs, 'each tensor in one shard only', `'${k}'`, `it in both ${path.basename(prev.path)} and ${path.basename(s.path)}`,
            'The shards overlap: download the checkpoint again.', k);
        }
        seen.set(k, s);
      }
    }
    return new ShardedWeights(abs, shards, map);
  }

  keys(): string[] {
    return [...this.map.keys()];
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  private shard(key: string): SafetensorsFile {
    const s = this.map.get(key);
    if (!s) throw fail(this.indexPath, 'a tensor key listed in the index', 'the key', `'${key}'`, 'Check the key name; list keys with keys().', key);
    return s;
  }

  info(key: string): WeightInfo {
    return this.shard(key).info(key);
  }

  read(key: string): WeightTensor {
    return this.shard(key).read(key);
  }

  rawInfo(key: string): RawInfo {
    return this.shard(key).rawInfo(key);
  }

  readRaw(key: string, want: 'I32' | 'F16'): RawTensor {
    return this.shard(key).readRaw(key, want);
  }
}

/**
 * Opens the weights of one module folder: `model.safetensors.index.json` (sharded) when present,
 * else `model.safetensors`.
 */
export function openWeights(dir: string): WeightSet & RawTensorSource {
  const abs = path.resolve(dir);
  const idx = path.join(abs, INDEX_FILE);
  if (fs.existsSync(idx)) return ShardedWeights.open(idx);
  const single = path.join(abs, SINGLE_FILE);
  if (fs.existsSync(single)) return SafetensorsFile.open(single);
  throw fail(abs, `${SINGLE_FILE} or ${INDEX_FILE}`, 'the weights of the folder', 'neither file', 'Download the weights of this folder, or point at the checkpoint root.');
}

/** Reads a JSON file, as a typed error naming the path when it is missing or unreadable. */
export function readJson(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw fail(file, `a readable ${path.basename(file)}`, what, `${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      'Check the path; the checkpoint may be incomplete.');
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw fail(file, 'valid JSON', what, `text that does not parse (${(e as Error).message})`, 'Fix or download the file again.');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw fail(file, 'a JSON object', what, Array.isArray(v) ? 'an array' : String(v), 'Fix or download the file again.');
  return v as Record<string, unknown>;
}

/** A tensor to write: its data length must equal prod(shape) in elements of its dtype. */
export interface TensorSpec {
  name: string;
  /** 'i32': an Int32Array (quantized checkpoints' qweight / qzeros / g_idx). */
  dtype: WeightDType | 'i32';
  shape: readonly number[];
}

function tensorBytes(t: TensorSpec): number {
  return t.shape.reduce((a, b) => a * b, 1) * dtypeBytes(t.dtype);
}
const ST_NAME_W: Record<TensorSpec['dtype'], string> = { ...ST_NAME, i32: 'I32' };

/**
 * Writes a safetensors file one tensor at a time: `produce(spec, i)` is called once per tensor,
 * in order, and its data written before the next is made, so only one tensor is held at a time.
 * Deterministic: the header lists `__metadata__` first, then the tensors in the given order,
 * padded with spaces to a multiple of 8 bytes (as Hugging Face's writer does); data follows
 * in the same order with no holes.
 */
export function writeSafetensorsStreaming(
  file: string,
  specs: readonly TensorSpec[],
  produce: (spec: TensorSpec, index: number) => Float32Array | Uint16Array | Int32Array,
  metadata?: Record<string, string>,
): void {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  const names = new Set<string>();
  for (const s of specs) {
    if (s.name === '__metadata__' || names.has(s.name)) throw new InvalidArgumentError(`Expected unique tensor names other than __metadata__ for writeSafetensors but received '${s.name}' twice or reserved`);
    if (!(s.dtype in ST_NAME_W)) throw new InvalidArgumentError(`Expected dtype 'f32', 'f16', 'bf16' or 'i32' for tensor '${s.name}' but received ${String(s.dtype)}`);
    names.add(s.name);
    const n = tensorBytes(s);
    header[s.name] = { dtype: ST_NAME_W[s.dtype], shape: [...s.shape], data_offsets: [off, off + n] };
    off += n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    specs.forEach((s, i) => {
      const data = produce(s, i);
      const want = tensorBytes(s);
      const Ctor = s.dtype === 'f32' ? Float32Array : s.dtype === 'i32' ? Int32Array : Uint16Array;
      const okType = data instanceof Ctor;
      if (!okType || data.byteLength !== want) {
        throw new InvalidArgumentError(
          `Expected ${Ctor.name} of ${want} bytes (shape ${fmtShape(s.shape)}) for tensor '${s.name}' but received ${data.constructor.name} of ${data.byteLength} bytes`,
        );
      }
      const u8 = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      let done = 0;
      while (done < u8.length) done += fs.writeSync(fd, u8, done, Math.min(1 << 30, u8.length - done));
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes tensors (in the given order) to one safetensors file. See {@link writeSafetensorsStreaming}. */
export function writeSafetensors(file: string, tensors: readonly WeightTensor[], metadata?: Record<string, string>): void {
  writeSafetensorsStreaming(file, tensors, (_s, i) => tensors[i].data, metadata);
}

// ---- dtype conversion (raw 16-bit patterns ↔ float32) ----

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** bf16 bits → float32 (exact). */
export function bf16ToFloat(bits: number): number {
  u32buf[0] = (bits & 0xffff) << 16;
  return f32buf[0];
}

/** float32 → bf16 bits, round to nearest even (NaN stays NaN). */
export function floatToBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE half bits → float32 (exact, subnormals included). */
export function f16ToFloat(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >>> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float32 → IEEE half bits, round to nearest even, overflow → ±Inf. */
export function floatToF16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  const sign = (u >>> 16) & 0x8000;
  const e = (u >>> 23) & 0xff;
  let m = u & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  let he = e - 127 + 15;
  if (he >= 31) return sign | 0x7c00;
  if (he <= 0) {
    if (he < -10) return sign;
    m |= 0x800000;
    const shift = 14 - he;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = m >>> 13;
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) { r = 0; he++; if (he >= 31) return sign | 0x7c00; }
  }
  return sign | (he << 10) | r;
}

/** Decodes any weight tensor to float32 (a copy for f16/bf16; f32 data is returned as is). */
export function toFloat32(t: WeightTensor): Float32Array {
  if (t.dtype === 'f32') return t.data as Float32Array;
  const src = t.data as Uint16Array;
  const out = new Float32Array(src.length);
  if (t.dtype === 'bf16') {
    const o32 = new Uint32Array(out.buffer);
    for (let i = 0; i < src.length; i++) o32[i] = src[i] << 16;
  } else {
    for (let i = 0; i < src.length; i++) out[i] = f16ToFloat(src[i]);
  }
  return out;
}

/** Encodes float32 values to a weight dtype (f32: returned as is). */
export function fromFloat32(x: Float32Array, dtype: WeightDType): Float32Array | Uint16Array {
  if (dtype === 'f32') return x;
  const out = new Uint16Array(x.length);
  const enc = dtype === 'bf16' ? floatToBf16 : floatToF16;
  for (let i = 0; i < x.length; i++) out[i] = enc(x[i]);
  return out;
}
