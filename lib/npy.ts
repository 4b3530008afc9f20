/**
 * A small reader/writer of numpy `.npy` files (format versions 1.0, 2.0 and 3.0), for scene
 * point maps and float depth: little-endian float32 (`<f4`), uint16 (`<u2`) and uint8
 * (`|u1`), C order only. Anything else (big-endian, Fortran order, pickled objects, other
 * dtypes, a truncated payload) is an {@link InvalidArgumentError} naming the file and the fix.
 * Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */
import { promises as fsp } from 'fs';

import { invalidArgument } from './errors';
import { toContiguous } from './tensor';
import type { DType, TensorLike } from './tensor';

/** The contents of a `.npy` file: contiguous C-order data and its shape. */
export interface NpyArray {
  dtype: DType;
  shape: number[];
  data: Float32Array | Uint16Array | Uint8Array;
}

const DESCR: Record<string, DType> = { '<f4': 'float32', '<u2': 'uint16', '|u1': 'uint8', '<u1': 'uint8' };
const DESCR_OF: Record<DType, string> = { float32: '<f4', uint16: '<u2', uint8: '|u1' };
const BYTES: Record<DType, number> = { float32: 4, uint16: 2, uint8: 1 };
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const FIX = "save it with numpy as np.save(path, np.ascontiguousarray(a, dtype='<f4'))";

/**
 * Parses the bytes of a `.npy` file.
 *
 * @param bytes the file's bytes.
 * @param label how to name the file in errors. Defaults to `'npy'`.
 */
export function parseNpy(bytes: Uint8Array, label = 'npy'): NpyArray {
  const bad = (what: string, received: string) => invalidArgument(`${what} (${FIX})`, label, received, true);
  if (bytes.length < 10 || !MAGIC.every((b, i) => bytes[i] === b)) {
    throw bad('a .npy file (magic \\x93NUMPY)', bytes.length < 10 ? `${bytes.length} bytes` : 'a file without the .npy magic');
  }
  const major = bytes[6];
  let headerLen: number, headerStart: number;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw bad('a complete .npy header', `${bytes.length} bytes`);
    headerLen = dv.getUint32(8, true);
    headerStart = 12;
  } else {
    throw bad('.npy format version 1, 2 or 3', `version ${major}.${bytes[7]}`);
  }
  if (headerStart + headerLen > bytes.length) throw bad('a complete .npy header', `a file of ${bytes.length} bytes cut inside its header`);
  const header = Buffer.from(bytes.buffer, bytes.byteOffset + headerStart, headerLen).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw bad("a .npy header dict with 'descr', 'fortran_order' and 'shape'", `header ${header.trim()}`);
  }
  const dtype = DESCR[descr];
  if (!dtype) throw bad("dtype '<f4' (float32), '<u2' (uint16) or '|u1' (uint8), little-endian", `dtype '${descr}'`);
  if (fortran !== 'False') throw bad('C order (fortran_order False)', 'a Fortran-order array');
  const parts = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (!parts.every((s) => /^\d+$/.test(s))) throw bad('a shape of non-negative integers', `shape (${shapeText})`);
  const shape = parts.map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const start = headerStart + headerLen;
  const need = n * BYTES[dtype];
  if (bytes.length - start < need) {
    throw bad(`${need} bytes of data for shape (${shape.join(', ')}) ${dtype}`, `${bytes.length - start} bytes (a truncated file)`);
  }
  // Copy: the payload is only 16-byte aligned within the file, not necessarily in memory.
  const raw = new Uint8Array(need);
  raw.set(bytes.subarray(start, start + need));
  const data = dtype === 'float32' ? new Float32Array(raw.buffer, 0, n) : dtype === 'uint16' ? new Uint16Array(raw.buffer, 0, n) : raw;
  return { dtype, shape, data };
}

/**
 * Reads a `.npy` file.
 *
 * @param file path of the file.
 */
export async function readNpy(file: string): Promise<NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw invalidArgument('a readable .npy file', `'${file}'`, `${err.code ?? 'an error'} (${err.message})`, true);
  }
  return parseNpy(bytes, `'${file}'`);
}

/**
 * Encodes an array as a version 1.0 `.npy` file (little-endian, C order), as `np.save` would.
 *
 * @param array a float32, uint16 or uint8 tensor (ndarray or `{ data, shape }`; Float64Array
 *   and number[] data are stored as float32).
 * @returns the file's bytes.
 */
export function encodeNpy(array: TensorLike): Buffer {
  const c = toContiguous(array, 'array', { dtypes: ['float32', 'uint16', 'uint8'], what: 'an array' });
  const shape = c.shape.length === 1 ? `(${c.shape[0]},)` : `(${c.shape.join(', ')})`;
  let header = `{'descr': '${DESCR_OF[c.dtype]}', 'fortran_order': False, 'shape': ${shape}, }`;
  // The header (magic + 4 + dict + '\n') is padded with spaces to a multiple of 64 bytes.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header + ' '.repeat(total - 10 - header.length - 1) + '\n';
  const out = Buffer.alloc(total + c.data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  // Typed arrays are little-endian on every platform Node supports in practice (x86, arm64).
  out.set(new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength), total);
  return out;
}

/** Writes `array` to `file` as a `.npy` file (see {@link encodeNpy}). */
export async function writeNpy(file: string, array: TensorLike): Promise<void> {
  await fsp.writeFile(file, encodeNpy(array));
}
