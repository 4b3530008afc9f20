// nn.linear with int4 / int8 weights (lib/nn.ts -> native/nn.cc -> kernels/linear.h) against
// lib/quant.ts's dequantize() + the float32 linear: the reference bit-identical to the float32
// reference; the fast path (its own arithmetic over the exactly dequantized weights, linear.h)
// the same for each input row alone as in the batch, and within 1e-5 relative of Σ|x·w| of the
// reference; act-order perms; typed errors for inconsistent weights. (The fast path used to be
// bit-identical to the float32 fast path over the dequantized weight; kernels/linear.h's
// quantized contract replaced that, and sr3d_quant_tests checks the new arithmetic exactly.)
// On device 'cuda' (CUDA-only, skipped without a GPU): within 1e-5 of Σ|x·w| of the reference
// (kernels/cuda/linear_q.cu). The CPU checks pin device 'cpu' (auto would pick a GPU).
import * as nn from '../lib/nn';
import { InvalidArgumentError } from '../lib/errors';
import { native } from '../lib/native';
import { dequantize, quantizeRtn } from '../lib/quant';
import type { QuantWeight } from '../lib/quant';
import { rng, shuffled } from './helpers';

function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (2 * r() - 1) * scale);
}

function quantized(rows: number, cols: number, bits: 4 | 8, group: number, actOrder: boolean, seed: number): QuantWeight {
  const w = quantizeRtn(rand(rows * cols, seed, 0.1), rows, cols, bits, group);
  return actOrder ? { ...w, perm: shuffled(cols, seed + 1) } : w;
}

const CASES: Array<[number, number, number, 4 | 8, number, boolean]> = [
  // n, rows (out), cols (in), bits, group, act-order
  [1, 7, 32, 4, 32, false],
  [3, 13, 128, 4, 64, true],
  [17, 37, 384, 4, 128, false],
  [1, 19, 256, 8, -1, false],
  [5, 9, 192, 8, 64, true],
];

describe('nn.linear with quantized weights', () => {
  it.each(CASES)('n=%i %ix%i int%i group %i act-order %s', async (n, rows, cols, bits, group, act) => {
    const w = quantized(rows, cols, bits, group, act, rows * 31 + cols);
    const dense = { dtype: 'f32' as const, shape: [rows, cols], data: dequantize(w) };
    const x = { data: rand(n * cols, n + cols), shape: [n, cols] };
    const bias = rand(rows, rows);
    const qw = nn.nnQuantWeight(w);
    const got = await nn.linear(x, qw, bias, { impl: 'reference', device: 'cpu' });
    const want = await nn.linear(x, dense, bias, { impl: 'reference', device: 'cpu' });
    expect(got.shape).toEqual([n, rows]);
    expect(Buffer.from(got.data.buffer).equals(Buffer.from(want.data.buffer))).toBe(true);
    const fastOut = await nn.linear(x, qw, bias, { impl: 'fast', device: 'cpu' });
    expect(fastOut.shape).toEqual([n, rows]);
    const fast = fastOut.data;
    for (let i = 0; i < n; i++) {
      const xi = { data: x.data.slice(i * cols, (i + 1) * cols), shape: [1, cols] };
      const yi = (await nn.linear(xi, qw, bias, { impl: 'fast', device: 'cpu' })).data;
      expect(Buffer.from(yi.buffer).equals(Buffer.from(fast.slice(i * rows, (i + 1) * rows).buffer))).toBe(true);
    }
    const ref = (await nn.linear(x, qw, bias, { impl: 'reference', device: 'cpu' })).data;
    for (let i = 0; i < n; i++) {
      for (let r = 0; r < rows; r++) {
        let mag = Math.abs(bias[r]);
        for (let c = 0; c < cols; c++) mag += Math.abs(x.data[i * cols + c] * dense.data[r * cols + c]);
        expect(Math.abs(fast[i * rows + r] - ref[i * rows + r])).toBeLessThanOrEqual(1e-5 * mag);
      }
    }
  });

  const addon = native();
  const gpus = addon.variant === 'cuda' ? addon.devices().devices.length : 0;
  const maybe = gpus > 0 ? it : it.skip;
  maybe.each(CASES)(`on device 'cuda': n=%i %ix%i int%i group %i act-order %s${gpus > 0 ? '' : ' (skipped: no usable GPU)'}`, async (n, rows, cols, bits, group, act) => {
    const w = quantized(rows, cols, bits, group, act, rows * 31 + cols);
    const dense = dequantize(w);
    const x = { data: rand(n * cols, n + cols), shape: [n, cols] };
    const bias = rand(rows, rows);
    const qw = nn.nnQuantWeight(w);
    const got = (await nn.linear(x, qw, bias, { device: 'cuda' })).data;
    const ref = (await nn.linear(x, qw, bias, { impl: 'reference', device: 'cpu' })).data;
    for (let i = 0; i < n; i++) {
      for (let r = 0; r < rows; r++) {
        let mag = Math.abs(bias[r]);
        for (let c = 0; c < cols; c++) mag += Math.abs(x.data[i * cols + c] * dense[r * cols + c]);
        expect(Math.abs(got[i * rows + r] - ref[i * rows + r])).toBeLessThanOrEqual(1e-5 * mag);
      }
    }
  });

  it('refuses inconsistent quantized weights with typed errors naming the field', async () => {
    const w = nn.nnQuantWeight(quantized(4, 64, 4, 32, false, 5));
    const x = { data: rand(64, 6), shape: [1, 64] };
    await expect(nn.linear(x, { ...w, group: 48 })).rejects.toThrow(/Expected a group size dividing cols 64 and even .* for weight\.group but received 48/);
    await expect(nn.linear(x, { ...w, cols: 62, group: 31 })).rejects.toThrow(InvalidArgumentError);
    await expect(nn.linear(x, { ...w, q: new Uint8Array(10) })).rejects.toThrow(/Expected a Uint8Array of 128 elements for weight\.q/);
    await expect(nn.linear(x, { ...w, scales: new Float32Array(7) })).rejects.toThrow(/Expected a Float32Array of 8 elements for weight\.scales/);
    await expect(nn.linear(x, { ...w, zeros: new Float32Array(8) as never })).rejects.toThrow(/Expected a Uint8Array of 8 elements for weight\.zeros/);
    await expect(nn.linear(x, { ...w, perm: new Int32Array(63) })).rejects.toThrow(/Expected a Int32Array of 64 elements for weight\.perm/);
    await expect(nn.linear(x, { ...w, rows: 0 })).rejects.toThrow(/Expected a positive integer for weight\.rows/);
    const dup = shuffled(64, 7);
    dup[3] = dup[4];
    await expect(nn.linear(x, { ...w, perm: dup })).rejects.toThrow(InvalidArgumentError);
    await expect(nn.linear(x, { ...w, perm: dup })).rejects.toThrow(/permutation/);
    await expect(nn.linear(x, { ...w, dtype: 'q3' as never })).rejects.toThrow(/'f32', 'f16', 'bf16', 'q4' or 'q8'/);
  });
});
