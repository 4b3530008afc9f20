/**
 * Advanced: the neural-network ops of the native engine one at a time (kernels/linear.h, attention.h, …) —
 * Linear with f32/f16/bf16 or int4/int8 weights, LayerNorm, RMSNorm, GELU/SiLU, SwiGLU, RoPE, grouped-query
 * attention, the 3x3 space-to-channel of NVILA's projector and SigLIP's patch embedding.
 * {@link createEngine} runs whole models; these entry points exist for tests against float64
 * references and for microbenchmarks. Each validates its inputs here, runs in a native worker
 * thread and returns a Promise of an ndarray `{ data, shape }` (float32).
 *
 * Numerics: activations are float32, weights keep their dtype and are used in place, every
 * accumulation is float32.
 * @packageDocumentation
 */
import type { WeightDType } from './checkpoint_types';
import { callNative, pickImpl } from './dispatch';
import type { DeviceOptions } from './dispatch';
import { invalidArgument } from './errors';
import { native } from './native';
import type { QuantWeight } from './quant';
import { toContiguous, toNdArray } from './tensor';
import type { NdArray, TensorLike } from './tensor';

export type { DeviceOptions };

/**
 * A Linear (or patch-embedding) weight as stored in a checkpoint: torch's `[out][in]` layout
 * (`[hidden][3][patch][patch]` for a patch embedding); f32 data is a Float32Array, f16 and bf16
 * data a Uint16Array of raw bits. Used in place (never converted).
 */
export interface NnWeight {
  dtype: WeightDType;
  shape: readonly number[];
  data: Float32Array | Uint16Array;
}

/**
 * A quantized Linear weight in sr3d's layout (lib/quant.ts's module comment; what
 * `fromAwq` / `fromGptq` / `quantizeRtn` return as a `QuantWeight`): `q` Uint8Array
 * [rows][cols · bits / 8], `scales` Float32Array and `zeros` Uint8Array [rows][cols / group],
 * `perm` Int32Array [cols] or null (act-order). rows = out features, cols = in features.
 */
export interface NnQuantWeight {
  dtype: 'q4' | 'q8';
  rows: number;
  cols: number;
  group: number;
  q: Uint8Array;
  scales: Float32Array;
  zeros: Uint8Array;
  perm?: Int32Array | null;
}

/** A `QuantWeight` (lib/quant.ts) as the {@link NnQuantWeight} {@link linear} takes; no copy. */
export function nnQuantWeight(w: QuantWeight): NnQuantWeight {
  return { dtype: w.bits === 4 ? 'q4' : 'q8', rows: w.rows, cols: w.cols, group: w.groupSize, q: w.q, scales: w.scales, zeros: w.zeros, perm: w.perm };
}

/** The activations {@link activation} applies. */
export type ActivationName = 'gelu_tanh' | 'gelu_erf' | 'silu';

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;
const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function checkOptions(opts: unknown): void {
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgument('an options object', 'options', opts);
}

function f32(x: unknown, name: string, what: string, ranks?: number[], lastDim?: number) {
  return toContiguous(x, name, { dtypes: ['float32'], ranks, lastDim, what }) as { data: Float32Array; shape: number[] };
}

/** A float32 vector of exactly n elements (Float32Array, number[] or a rank-1 tensor). */
function vector(x: unknown, n: number, name: string): Float32Array {
  if (x instanceof Float32Array) {
    if (x.length !== n) throw invalidArgument(`a Float32Array of ${n} elements`, name, x);
    return x;
  }
  if (Array.isArray(x) || x instanceof Float64Array) {
    if (x.length !== n) throw invalidArgument(`${n} numbers`, name, x);
    return Float32Array.from(x as ArrayLike<number>);
  }
  return f32(x, name, `a vector of ${n} elements`, [1], n).data;
}

function weight(w: unknown, name: string, rank: number): NnWeight {
  if (w === null || typeof w !== 'object') throw invalidArgument('a weight { dtype, shape, data }', name, w);
  const t = w as Partial<NnWeight>;
  if (t.dtype !== 'f32' && t.dtype !== 'f16' && t.dtype !== 'bf16') throw invalidArgument(rank === 2 && name === 'weight' ? "'f32', 'f16', 'bf16', 'q4' or 'q8'" : "'f32', 'f16' or 'bf16'", `${name}.dtype`, t.dtype);
  if (!Array.isArray(t.shape) || t.shape.length !== rank || !t.shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw invalidArgument(`a shape of ${rank} positive integers`, `${name}.shape`, Array.isArray(t.shape) ? shapeText(t.shape) : t.shape, Array.isArray(t.shape));
  }
  const n = prod(t.shape);
  const Ctor = t.dtype === 'f32' ? Float32Array : Uint16Array;
  if (!(t.data instanceof Ctor) || t.data.length !== n) {
    const what = t.dtype === 'f32' ? `a Float32Array of ${n} elements` : `a Uint16Array of ${n} elements (raw ${t.dtype} bits)`;
    throw invalidArgument(what, `${name}.data`, t.data);
  }
  return t as NnWeight;
}

function quantWeight(w: Partial<NnQuantWeight>, name: string): NnQuantWeight {
  const bits = w.dtype === 'q4' ? 4 : 8;
  for (const k of ['rows', 'cols', 'group'] as const) {
    const v = w[k];
    if (!Number.isInteger(v) || (v as number) < 1) throw invalidArgument('a positive integer', `${name}.${k}`, v);
  }
  const rows = w.rows as number, cols = w.cols as number, group = w.group as number;
  if (cols % group !== 0 || (bits === 4 && group % 2 !== 0)) {
    throw invalidArgument(`a group size dividing cols ${cols}${bits === 4 ? ' and even (two int4 inputs per byte)' : ''}`, `${name}.group`, group);
  }
  const groups = rows * (cols / group);
  const need = (v: unknown, Ctor: typeof Uint8Array | typeof Float32Array | typeof Int32Array, n: number, key: string) => {
    if (!(v instanceof Ctor) || v.length !== n) throw invalidArgument(`a ${Ctor.name} of ${n} elements`, `${name}.${key}`, v);
  };
  need(w.q, Uint8Array, (rows * cols * bits) / 8, 'q');
  need(w.scales, Float32Array, groups, 'scales');
  need(w.zeros, Uint8Array, groups, 'zeros');
  if (w.perm !== undefined && w.perm !== null) need(w.perm, Int32Array, cols, 'perm');
  return w as NnQuantWeight;
}

function out(n: number): Float32Array {
  return new Float32Array(n);
}

/**
 * Advanced. `y = x · Wᵀ + bias` over the last dimension.
 * @param x (…, in) float32.
 * @param w the weight, shape `[out, in]`, f32/f16/bf16; or an int4/int8 {@link NnQuantWeight}
 *   (the fast path dequantizes it exactly to float32 per block of rows and runs the float32
 *   kernels; the CUDA path dequantizes in registers, equal within float32 rounding).
 * @param bias `out` float32 values, or null/undefined for none.
 * @returns (…, out) float32.
 */
export async function linear(x: TensorLike, w: NnWeight | NnQuantWeight, bias?: TensorLike | Float32Array | number[] | null, opts?: DeviceOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const quant = w !== null && typeof w === 'object' && (w.dtype === 'q4' || w.dtype === 'q8');
  const Q = quant ? quantWeight(w as NnQuantWeight, 'weight') : null;
  const W = Q ? null : weight(w, 'weight', 2);
  const [outDim, inDim] = Q ? [Q.rows, Q.cols] : W!.shape;
  const X = f32(x, 'x', `activations (…, ${inDim})`, undefined, inDim);
  if (X.shape.length < 1) throw invalidArgument(`activations (…, ${inDim})`, 'x.shape', shapeText(X.shape), true);
  const b = bias === undefined || bias === null ? null : vector(bias, outDim, 'bias');
  const n = prod(X.shape.slice(0, -1));
  const y = out(n * outDim);
  const shape = [...X.shape.slice(0, -1), outDim];
  if (n === 0) return toNdArray(y, shape);
  const addon = native();
  const impl = pickImpl(opts, addon);
  const wargs = Q
    ? { weight: Q.q, weightDtype: Q.dtype, weightScales: Q.scales, weightZeros: Q.zeros, weightGroup: Q.group, weightPerm: Q.perm ?? null }
    : { weight: W!.data, weightDtype: W!.dtype };
  await callNative(() => addon.nnLinear({ ...impl, x: X.data, n, inDim, outDim, ...wargs, bias: b, out: y }));
  return toNdArray(y, shape);
}

/**
 * Advanced. LayerNorm over the last dimension d: `(x - mean) / sqrt(var + eps) · gamma + beta`
 * (biased variance, like torch).
 * @param eps Defaults to `1e-5` (torch's default).
 */
export async function layerNorm(x: TensorLike, gamma: TensorLike | Float32Array | number[], beta: TensorLike | Float32Array | number[], eps = 1e-5, opts?: DeviceOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const X = f32(x, 'x', 'activations (…, d)');
  if (X.shape.length < 1 || X.shape[X.shape.length - 1] < 1) throw invalidArgument('activations (…, d) with d >= 1', 'x.shape', shapeText(X.shape), true);
  const d = X.shape[X.shape.length - 1];
  const g = vector(gamma, d, 'gamma'), b = vector(beta, d, 'beta');
  if (!(eps > 0 && eps < 1)) throw invalidArgument('a number in (0, 1)', 'eps', eps);
  const n = prod(X.shape) / d;
  const y = out(n * d);
  if (n === 0) return toNdArray(y, X.shape);
  const addon = native();
  const impl = pickImpl(opts, addon);
  await callNative(() => addon.nnLayerNorm({ ...impl, x: X.data, n, d, gamma: g, beta: b, eps, out: y }));
  return toNdArray(y, X.shape);
}

/**
 * Advanced. Qwen2 RMSNorm over the last dimension: `x · rsqrt(mean(x²) + eps) · gamma`.
 * @param eps Defaults to `1e-6` (Qwen2's).
 */
export async function rmsNorm(x: TensorLike, gamma: TensorLike | Float32Array | number[], eps = 1e-6, opts?: DeviceOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const X = f32(x, 'x', 'activations (…, d)');
  if (X.shape.length < 1 || X.shape[X.shape.length - 1] < 1) throw invalidArgument('activations (…, d) with d >= 1', 'x.shape', shapeText(X.shape), true);
  const d = X.shape[X.shape.length - 1];
  const g = vector(gamma, d, 'gamma');
  if (!(eps > 0 && eps < 1)) throw invalidArgument('a number in (0, 1)', 'eps', eps);
  const n = prod(X.shape) / d;
  const y = out(n * d);
  if (n === 0) return toNdArray(y, X.shape);
  const addon = native();
  const impl = pickImpl(opts, addon);
  await callNative(() => addon.nnRmsNorm({ ...impl, x: X.data, n, d, gamma: g, eps, out: y }));
  return toNdArray(y, X.shape);
}

/**
 * Advanced. Elementwise `'gelu_tanh'` (the tanh approximation, SigLIP's
 * `gelu_pytorch_tanh`), `'gelu_erf'` (exact, torch's `nn.GELU()`) or `'silu'`.
 * @returns a new array of x's shape (x is not modified).
 */
export async function activation(x: TensorLike, act: ActivationName, opts?: DeviceOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  if (act !== 'gelu_tanh' && act !== 'gelu_erf' && act !== 'silu') throw invalidArgument("'gelu_tanh', 'gelu_erf' or 'silu'", 'act', act);
  const X = f32(x, 'x', 'activations');
  const y = Float32Array.from(X.data);
  if (y.length === 0) return toNdArray(y, X.shape);
  const addon = native();
  const impl = pickImpl(opts, addon);
  await callNative(() => addon.nnActivation({ ...impl, x: y, count: y.length, act }));
  return toNdArray(y, X.shape);
}

/** Advanced. SwiGLU: `silu(gate) · up`, elementwise; gate and up have the same shape. */
export async function siluMul(gate: TensorLike, up: TensorLike, opts?: DeviceOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const G = f32(gate, 'gate', 'activations');
  const U = f32(up, 'up', `activations of gate's shape ${shapeText(G.shape)}`);
  if (shapeText(G.shape) !== shapeText(U.shape)) throw invalidArgument(`gate's shape ${shapeText(G.shape)}`, 'up.shape', shapeText(U.shape), true);
  const y = out(G.data.length);
  if (y.length === 0) return toNdArray(y, G.shape);
  const addon = native();
  const impl = pickImpl(opts, addon);
  await callNative(() => addon.nnSiluMul({ ...impl, gate: G.data, up: U.data, count: y.length, out: y }));
  return toNdArray(y, G.shape);
}

/**
 * Advanced. Rotary position embedding in HF Qwen2's `rotate_half` layout (pairs `(i, i + d/2)`),
 * `inv_freq[i] = theta^(-2i/d)`, angle `position · inv_freq[i]`.
 * @param x (tokens, heads, headDim) float32, headDim even.
 * @param positions one non-negative integer position per token.
 * @param theta the RoPE base (Qwen2: `rope_theta`, 1e6).
 * @returns a new (tokens, heads, headDim) array (x is not modified).
 */
export async function rope(x: TensorLike, positions: ArrayLike<number>, theta: number, opts?: DeviceOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const X = f32(x, 'x', 'queries or keys (tokens, heads, headDim)', [3]);
  const [tokens, heads, headDim] = X.shape;
  if (headDim < 2 || headDim % 2) throw invalidArgument('an even head dimension >= 2', 'x.shape', shapeText(X.shape), true);
  if (heads < 1) throw invalidArgument('at least one head', 'x.shape', shapeText(X.shape), true);
  if (positions === null || typeof positions !== 'object' || positions.length !== tokens) {
    throw invalidArgument(`${tokens} positions (one per token)`, 'positions', positions);
  }
  const pos = new Int32Array(tokens);
  for (let i = 0; i < tokens; i++) {
    const p = positions[i];
    if (!Number.isInteger(p) || p < 0 || p > 0x7fffffff) throw invalidArgument('non-negative integer positions', `positions[${i}]`, p);
    pos[i] = p;
  }
  if (!(theta > 1) || !Number.isFinite(theta)) throw invalidArgument('a finite RoPE base > 1', 'theta', theta);
  const y = Float32Array.from(X.data);
  if (tokens === 0) return toNdArray(y, X.shape);
  const addon = native();
  const impl = pickImpl(opts, addon);
  await callNative(() => addon.nnRope({ ...impl, x: y, tokens, heads, headDim, positions: pos, theta }));
  return toNdArray(y, X.shape);
}

/** Options of {@link attention}. */
export interface AttentionOptions extends DeviceOptions {
  /** Score scale. Defaults to `1/sqrt(d)`. */
  scale?: number;
  /** Causal masking: query i (at position qOffset + i) sees keys 0..qOffset + i. Defaults to `false`. */
  causal?: boolean;
  /** Absolute position of the first query (causal only: queries appended after a KV cache). Defaults to `0`. */
  qOffset?: number;
}

/**
 * Advanced. Scaled dot-product attention with grouped-query heads: query head h reads KV
 * head `h / (hq / hkv)`; softmax in float32.
 * @param q (nq, hq, d) float32.
 * @param k (nk, hkv, d) float32, hq a multiple of hkv.
 * @param v (nk, hkv, d) float32.
 * @returns (nq, hq, d) float32.
 */
export async function attention(q: TensorLike, k: TensorLike, v: TensorLike, opts?: AttentionOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const Q = f32(q, 'q', 'queries (nq, hq, d)', [3]);
  const [nq, hq, d] = Q.shape;
  const K = f32(k, 'k', `keys (nk, hkv, ${d})`, [3], d);
  const [nk, hkv] = K.shape;
  const V = f32(v, 'v', `values of k's shape ${shapeText(K.shape)}`, [3]);
  if (shapeText(V.shape) !== shapeText(K.shape)) throw invalidArgument(`values of k's shape ${shapeText(K.shape)}`, 'v.shape', shapeText(V.shape), true);
  if (d < 1 || hq < 1 || hkv < 1 || hq % hkv) {
    throw invalidArgument(`q heads (${hq}) a positive multiple of k heads and d >= 1`, 'k.shape', shapeText(K.shape), true);
  }
  if (nk < 1 && nq > 0) throw invalidArgument('at least one key', 'k.shape', shapeText(K.shape), true);
  const scale = opts?.scale ?? 1 / Math.sqrt(d);
  if (!(scale > 0) || !Number.isFinite(scale)) throw invalidArgument('a finite positive number', 'scale', scale);
  const causal = opts?.causal ?? false;
  if (typeof causal !== 'boolean') throw invalidArgument('a boolean', 'causal', causal);
  const qOffset = opts?.qOffset ?? 0;
  if (!Number.isInteger(qOffset) || qOffset < 0) throw invalidArgument('a non-negative integer', 'qOffset', qOffset);
  const y = out(nq * hq * d);
  if (nq === 0) return toNdArray(y, Q.shape);
  const addon = native();
  const impl = pickImpl(opts, addon);
  await callNative(() => addon.nnAttention({ ...impl, q: Q.data, k: K.data, v: V.data, nq, nk, hq, hkv, d, scale, causal, qOffset, out: y }));
  return toNdArray(y, Q.shape);
}

/**
 * Advanced. Steps 1-2 of NVILA's `mlp_downsample_3x3_fix` projector (spec Part B §4): the
 * (g x g) token grid zero-padded to a multiple of 3 (bottom rows, right columns), then each
 * 3x3 block stacked into channels: `y[R·G + C][(m·3 + k)·c + ch] = xpad[3R + m][3C + k][ch]`.
 * @param x (n, g·g, c) float32 (a row-major g x g grid per item; g is inferred).
 * @returns (n, G·G, 9c) float32 with G = ceil(g/3).
 */
export async function spaceToChannel3(x: TensorLike, opts?: DeviceOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const X = f32(x, 'x', 'token grids (n, g·g, c)', [3]);
  const [n, T, c] = X.shape;
  const g = Math.round(Math.sqrt(T));
  if (g < 1 || g * g !== T || c < 1) throw invalidArgument('token grids (n, g·g, c) with a square token count and c >= 1', 'x.shape', shapeText(X.shape), true);
  const G = Math.ceil(g / 3);
  const y = out(n * G * G * 9 * c);
  const shape = [n, G * G, 9 * c];
  if (n === 0) return toNdArray(y, shape);
  const addon = native();
  const impl = pickImpl(opts, addon);
  await callNative(() => addon.nnSpaceToChannel3({ ...impl, x: X.data, n, g, c, out: y }));
  return toNdArray(y, shape);
}

/**
 * Advanced. SigLIP's patch embedding: a stride-`patch` convolution (torch Conv2d weight
 * `[hidden][3][patch][patch]`, plus bias), patches in row-major order.
 * @param img (n, 3, size, size) float32, size a multiple of the patch size.
 * @returns (n, (size/patch)², hidden) float32.
 */
export async function patchEmbed(img: TensorLike, w: NnWeight, bias?: TensorLike | Float32Array | number[] | null, opts?: DeviceOptions): Promise<NdArray<Float32Array>> {
  checkOptions(opts);
  const W = weight(w, 'weight', 4);
  const [hidden, ch, p, p2] = W.shape;
  if (ch !== 3 || p !== p2) throw invalidArgument('a Conv2d weight [hidden, 3, patch, patch]', 'weight.shape', shapeText(W.shape), true);
  const X = f32(img, 'img', 'images (n, 3, size, size)', [4]);
  const [n, c, size, size2] = X.shape;
  if (c !== 3 || size !== size2 || size < 1 || size % p) {
    throw invalidArgument(`images (n, 3, size, size) with size a multiple of ${p}`, 'img.shape', shapeText(X.shape), true);
  }
  const b = bias === undefined || bias === null ? null : vector(bias, hidden, 'bias');
  const tokens = (size / p) ** 2;
  const y = out(n * tokens * hidden);
  const shape = [n, tokens, hidden];
  if (n === 0) return toNdArray(y, shape);
  const addon = native();
  const impl = pickImpl(opts, addon);
  await callNative(() => addon.nnPatchEmbed({ ...impl, img: X.data, n, size, patch: p, hidden, weight: W.data, weightDtype: W.dtype, bias: b, out: y }));
  return toNdArray(y, shape);
}
