/**
 * Tensor inputs and outputs. Ops accept:
 *  - ndarray objects (`require('ndarray')`), and any duck-typed `{ data, shape, stride?, offset? }`
 *    (stride and offset count elements; views may be non-contiguous or have negative strides);
 *  - a plain typed array together with an explicit `shape` (e.g. `{ data: depth, shape: [480, 640] }`).
 * Inputs are copied once into a contiguous buffer only when they are not already one.
 * Outputs are ndarray objects over typed arrays.
 */
import ndarray from 'ndarray';
import type { NdArray } from 'ndarray';

import { describeValue, invalidArgument } from './errors';

export type { NdArray };
export type TypedArray =
  | Float32Array | Float64Array | Uint8Array | Uint8ClampedArray | Uint16Array
  | Int8Array | Int16Array | Int32Array | Uint32Array;

/** What every op accepts as a tensor. */
export interface TensorLike {
  data: TypedArray | ArrayLike<number>;
  shape: readonly number[];
  stride?: readonly number[];
  offset?: number;
}

export type DType = 'float32' | 'uint16' | 'uint8';

export interface Contiguous<T extends TypedArray = TypedArray> {
  data: T;
  shape: number[];
  dtype: DType;
}

const CTORS = { float32: Float32Array, uint16: Uint16Array, uint8: Uint8Array } as const;

function dtypeOf(data: unknown): string {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Float64Array || Array.isArray(data)) return 'float64';
  if (ArrayBuffer.isView(data)) return (data as object).constructor.name;
  return typeof data;
}

const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);

export interface TensorSpec {
  /** Accepted dtypes, in preference order. float64 data (Float64Array, number[]) is converted to float32 when float32 is accepted. */
  dtypes: DType[];
  /** Accepted ranks. */
  ranks?: number[];
  /** Required size of the last dimension. */
  lastDim?: number;
  /** Human wording for messages, e.g. "a depth map (H,W) or scene (F,H,W)". */
  what: string;
}

/**
 * Validates `x` as a tensor and returns it as one contiguous typed array (zero-copy when
 * it already is one). Errors name `name` and the expected form.
 */
export function toContiguous(x: unknown, name: string, spec: TensorSpec): Contiguous {
  if (x === null || typeof x !== 'object' || ArrayBuffer.isView(x) || Array.isArray(x)) {
    const hint = ArrayBuffer.isView(x) ? ' (a typed array needs a shape: pass { data, shape })' : '';
    throw invalidArgument(`${spec.what} as an ndarray or { data, shape }${hint}`, name, x);
  }
  const t = x as Partial<TensorLike>;
  const shape = t.shape;
  if (!Array.isArray(shape) || !shape.every((d) => isInt(d) && d >= 0)) {
    throw invalidArgument('a shape of non-negative integers', `${name}.shape`, shape);
  }
  if (spec.ranks && !spec.ranks.includes(shape.length)) {
    throw invalidArgument(`${spec.what} (rank ${spec.ranks.join(' or ')})`, `${name}.shape`, `[${shape.join(', ')}]`, true);
  }
  if (spec.lastDim !== undefined && shape[shape.length - 1] !== spec.lastDim) {
    throw invalidArgument(`${spec.what} (last dimension ${spec.lastDim})`, `${name}.shape`, `[${shape.join(', ')}]`, true);
  }
  const data = t.data as TypedArray | number[] | undefined;
  const dt = dtypeOf(data);
  let dtype: DType | undefined;
  if (dt === 'float64' && spec.dtypes.includes('float32')) dtype = 'float32';
  else if ((spec.dtypes as string[]).includes(dt)) dtype = dt as DType;
  if (!dtype || data === undefined) {
    const names = spec.dtypes.map((d) => (d === 'float32' ? 'Float32Array (or Float64Array/number[])' : d === 'uint16' ? 'Uint16Array' : 'Uint8Array'));
    throw invalidArgument(`data of type ${names.join(' or ')}`, `${name}.data`, data);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  const rank = shape.length;
  let stride = t.stride as number[] | undefined;
  if (stride === undefined) {
    stride = new Array(rank);
    let s = 1;
    for (let i = rank - 1; i >= 0; i--) { stride[i] = s; s *= shape[i]; }
  } else if (!Array.isArray(stride) || stride.length !== rank || !stride.every(isInt)) {
    throw invalidArgument(`${rank} integer strides`, `${name}.stride`, stride);
  }
  const offset = t.offset ?? 0;
  if (!isInt(offset) || offset < 0) throw invalidArgument('a non-negative integer', `${name}.offset`, offset);
  const len = (data as ArrayLike<number>).length;
  if (n > 0) {
    let lo = offset, hi = offset;
    for (let i = 0; i < rank; i++) {
      const span = stride[i] * (shape[i] - 1);
      if (span < 0) lo += span; else hi += span;
    }
    if (lo < 0 || hi >= len) {
      const detached = ArrayBuffer.isView(data) && (data as TypedArray).buffer.byteLength === 0 ? ' (its buffer is detached)' : '';
      throw invalidArgument(
        `data covering every element of shape [${shape.join(', ')}] (indices ${lo}..${hi})`,
        `${name}.data`, `${describeValue(data)}${detached}`, true);
    }
  }
  const Ctor = CTORS[dtype];
  let contiguous = data instanceof Ctor;
  if (contiguous) {
    let s = 1;
    for (let i = rank - 1; i >= 0; i--) {
      if (shape[i] !== 1 && stride[i] !== s) { contiguous = false; break; }
      s *= shape[i];
    }
  }
  if (contiguous) {
    const view = (data as TypedArray).subarray(offset, offset + n) as TypedArray;
    return { data: view, shape: [...shape], dtype };
  }
  // One strided copy (also converts float64 -> float32).
  const out = new Ctor(n);
  const src = data as ArrayLike<number>;
  if (n > 0) {
    const idx = new Array(rank).fill(0);
    let pos = offset;
    const inner = rank - 1;
    for (let o = 0; o < n; ) {
      if (rank === 0) { out[0] = src[pos]; break; }
      const si = stride[inner], ni = shape[inner];
      for (let k = 0, p = pos; k < ni; k++, p += si) out[o++] = src[p];
      let d = inner - 1;
      while (d >= 0) {
        idx[d]++;
        pos += stride[d];
        if (idx[d] < shape[d]) break;
        pos -= stride[d] * shape[d];
        idx[d] = 0;
        d--;
      }
      if (d < 0) break;
    }
  }
  return { data: out, shape: [...shape], dtype };
}

/** Wraps a contiguous typed array as an ndarray. */
export function toNdArray<T extends TypedArray>(data: T, shape: number[]): NdArray<T> {
  return ndarray(data, shape) as NdArray<T>;
}

/** Convenience: an ndarray view of a typed array with the given shape (no copy). */
export function tensor<T extends TypedArray>(data: T, shape: number[]): NdArray<T> {
  const n = shape.reduce((a, b) => a * b, 1);
  if (!ArrayBuffer.isView(data)) throw invalidArgument('a typed array', 'data', data);
  if (data.length !== n) throw invalidArgument(`${n} elements for shape [${shape.join(', ')}]`, 'data', data);
  return toNdArray(data, shape);
}
