// Quantized weights: the AWQ gemm and GPTQ layouts read exactly as AutoAWQ / AutoGPTQ write them
// (literal words from their pack rules), act-order, round-to-nearest quantization and the
// writers, and the typed errors for inconsistent tensors.
import { CheckpointError } from '../lib/errors';
import {
  AWQ_ORDER, dequantize, floatToHalf, fromAwq, fromGptq, halfToFloat, parseQuantConfig, quantBytes, quantizeRtn, toAwq, toGptq,
} from '../lib/quant';
import { rng } from './helpers';

const t = <T>(key: string, data: T, shape: number[]) => ({ key, data, shape });
const F = 'model.safetensors';

describe('fp16', () => {
  it('round-trips every finite half and rounds to nearest even', () => {
    for (let h = 0; h < 0x10000; h++) {
      if (((h >> 10) & 0x1f) === 31) continue;
      expect(floatToHalf(halfToFloat(h))).toBe(h === 0x8000 ? 0x8000 : h);
    }
    expect(halfToFloat(floatToHalf(1 + 2 ** -11))).toBe(1); // tie → even
    expect(halfToFloat(floatToHalf(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
    expect(floatToHalf(1e6)).toBe(0x7c00);
  });
});

describe('AWQ gemm', () => {
  it("reads AutoAWQ's interleaved nibbles: outputs 0..7 valued 0..7 pack to 0x75316420", () => {
    // AutoAWQ: packed |= intweight[:, 8c + order_map[i]] << 4i with order_map [0, 2, 4, 6, 1, 3, 5, 7]
    let word = 0;
    for (let i = 0; i < 8; i++) word |= AWQ_ORDER[i] << (4 * i);
    expect(word >>> 0).toBe(0x75316420);
    // 8 outputs, 2 inputs (group 2): input 0 has value k at output k, input 1 has 7 - k.
    const w1 = (() => { let x = 0; for (let i = 0; i < 8; i++) x |= (7 - AWQ_ORDER[i]) << (4 * i); return x; })();
    const qw = fromAwq({
      qweight: t('l.qweight', new Int32Array([0x75316420, w1]), [2, 1]),
      qzeros: t('l.qzeros', new Int32Array([0x33333333]), [1, 1]),
      scales: t('l.scales', Uint16Array.from({ length: 8 }, (_, r) => floatToHalf(0.5 * (r + 1))), [1, 8]),
    }, 8, 2, 2, F);
    const W = dequantize(qw);
    for (let r = 0; r < 8; r++) {
      expect(W[r * 2]).toBe(0.5 * (r + 1) * (r - 3));
      expect(W[r * 2 + 1]).toBe(0.5 * (r + 1) * (7 - r - 3));
    }
  });
  it('round-trips through toAwq, bit for bit, on awkward sizes', () => {
    for (const [rows, cols, G] of [[8, 128, 128], [24, 256, 64], [16, 96, 32]]) {
      const r = rng(rows * cols);
      const w = Float32Array.from({ length: rows * cols }, () => r() * 2 - 1);
      const q = quantizeRtn(w, rows, cols, 4, G);
      const a = toAwq(q);
      const back = fromAwq({ qweight: t('q', a.qweight, a.shapes.qweight), qzeros: t('z', a.qzeros, a.shapes.qzeros), scales: t('s', a.scales, a.shapes.scales) }, rows, cols, G, F);
      expect(back.q).toEqual(q.q);
      expect(back.zeros).toEqual(q.zeros);
      expect(back.scales).toEqual(q.scales);
      // Round to nearest: within half a step of the float weight, except where the rounded zero
      // point pushes a group's extreme past 0 or 15 and it is clamped (then within one step).
      const W = dequantize(q);
      let half = 0;
      for (let o = 0; o < rows; o++) {
        for (let i = 0; i < cols; i++) {
          const s = q.scales[o * (cols / G) + Math.floor(i / G)];
          const e = Math.abs(W[o * cols + i] - w[o * cols + i]);
          expect(e).toBeLessThanOrEqual(s * (1 + 1e-3));
          if (e <= s * 0.5 * (1 + 1e-3)) half++;
        }
      }
      expect(half / (rows * cols)).toBeGreaterThan(0.97);
      // Resident bytes at group 128: 0.5 (nibbles) + 5/128 (f32 scale + u8 zero) per weight ≤ 0.3 x bf16.
      if (G === 128) expect(quantBytes(q)).toBeLessThanOrEqual(0.3 * rows * cols * 2);
    }
  });
  it('inconsistent tensors are CheckpointErrors naming the tensor', () => {
    const ok = { qweight: t('m.qweight', new Int32Array(2), [2, 1]), qzeros: t('m.qzeros', new Int32Array(1), [1, 1]), scales: t('m.scales', new Uint16Array(8), [1, 8]) };
    expect(() => fromAwq({ ...ok, qweight: t('m.qweight', new Int32Array(2), [1, 2]) }, 8, 2, 2, F)).toThrow(CheckpointError);
    expect(() => fromAwq({ ...ok, qweight: t('m.qweight', new Int32Array(2), [1, 2]) }, 8, 2, 2, F)).toThrow(/shape \[2, 1\] for m\.qweight but received \[1, 2\]/);
    expect(() => fromAwq({ ...ok, scales: t('m.scales', new Uint16Array(8), [8, 1]) }, 8, 2, 2, F)).toThrow(/for m\.scales/);
    expect(() => fromAwq(ok, 8, 3, 2, F)).toThrow(/divisible by the group size 2/);
    expect(() => fromAwq(ok, 6, 2, 2, F)).toThrow(/out_features divisible by 8/);
  });
});

describe('GPTQ', () => {
  it('reads AutoGPTQ words: inputs packed along the row, zero points stored minus one', () => {
    // 4-bit, 8 inputs, 8 outputs, one group: qweight[0][r] holds inputs 0..7 of output r.
    const qweight = new Int32Array(8);
    for (let r = 0; r < 8; r++) { let w = 0; for (let j = 0; j < 8; j++) w |= ((j + r) & 15) << (4 * j); qweight[r] = w; }
    expect(qweight[0] >>> 0).toBe(0x76543210);
    const qzeros = new Int32Array([0x77777777]); // stored 7 → zero point 8
    const scales = Uint16Array.from({ length: 8 }, () => floatToHalf(0.25));
    const q = fromGptq({ qweight: t('q', qweight, [1, 8]), qzeros: t('z', qzeros, [1, 1]), scales: t('s', scales, [1, 8]) }, 8, 8, { bits: 4, groupSize: 8, checkpointFormat: 'gptq' }, F);
    const W = dequantize(q);
    for (let r = 0; r < 8; r++) for (let i = 0; i < 8; i++) expect(W[r * 8 + i]).toBe(0.25 * (((i + r) & 15) - 8));
    // gptq_v2 stores the zero point as is.
    const v2 = fromGptq({ qweight: t('q', qweight, [1, 8]), qzeros: t('z', qzeros, [1, 1]), scales: t('s', scales, [1, 8]) }, 8, 8, { bits: 4, groupSize: 8, checkpointFormat: 'gptq_v2' }, F);
    expect(dequantize(v2)[0]).toBe(0.25 * (0 - 7));
  });
  it('act-order (g_idx): equals the formula w[i][o] = s[g_idx[i]][o] · (q[i][o] − z[g_idx[i]][o])', () => {
    const rows = 8, cols = 32, G = 8, ng = 4, r = rng(5);
    const gIdx = Int32Array.from({ length: cols }, (_, i) => i % ng); // every group spread over the input
    const qv = Array.from({ length: cols }, () => Array.from({ length: rows }, () => Math.floor(r() * 16)));
    const zv = Array.from({ length: ng }, () => Array.from({ length: rows }, () => 1 + Math.floor(r() * 15)));
    const sv = Array.from({ length: ng }, () => Array.from({ length: rows }, () => floatToHalf(0.01 + r())));
    const qweight = new Int32Array((cols / 8) * rows);
    for (let i = 0; i < cols; i++) for (let o = 0; o < rows; o++) qweight[Math.floor(i / 8) * rows + o] |= qv[i][o] << (4 * (i % 8));
    const qzeros = new Int32Array(ng * (rows / 8));
    for (let g = 0; g < ng; g++) for (let o = 0; o < rows; o++) qzeros[g * (rows / 8) + Math.floor(o / 8)] |= ((zv[g][o] - 1) & 15) << (4 * (o % 8));
    const scales = Uint16Array.from(sv.flat());
    const q = fromGptq({ qweight: t('q', qweight, [cols / 8, rows]), qzeros: t('z', qzeros, [ng, 1]), scales: t('s', scales, [ng, rows]), gIdx: t('g', gIdx, [cols]) },
      rows, cols, { bits: 4, groupSize: G, checkpointFormat: 'gptq' }, F);
    expect(q.perm).not.toBeNull();
    const W = dequantize(q);
    for (let i = 0; i < cols; i++) for (let o = 0; o < rows; o++) {
      expect(W[o * cols + i]).toBe(Math.fround(halfToFloat(sv[gIdx[i]][o]) * (qv[i][o] - zv[gIdx[i]][o])));
    }
  });
  it('int8, per output channel, symmetric: round-trips through toGptq', () => {
    const rows = 16, cols = 64, r = rng(9);
    const w = Float32Array.from({ length: rows * cols }, () => r() - 0.5);
    const q = quantizeRtn(w, rows, cols, 8);
    expect(q.groupSize).toBe(cols);
    expect([...q.zeros].every((z) => z === 128)).toBe(true);
    const g = toGptq(q);
    const back = fromGptq({ qweight: t('q', g.qweight, g.shapes.qweight), qzeros: t('z', g.qzeros, g.shapes.qzeros), scales: t('s', g.scales, g.shapes.scales), gIdx: t('g', g.gIdx, g.shapes.g_idx) },
      rows, cols, { bits: 8, groupSize: -1, checkpointFormat: 'gptq' }, F);
    expect(back.q).toEqual(q.q);
    expect(back.zeros).toEqual(q.zeros);
    expect(back.perm).toBeNull();
    const W = dequantize(q);
    for (let o = 0; o < rows; o++) {
      const s = q.scales[o];
      for (let i = 0; i < cols; i++) expect(Math.abs(W[o * cols + i] - w[o * cols + i])).toBeLessThanOrEqual(s * 0.5 * (1 + 1e-3));
    }
  });
  it('a g_idx out of range or groups of unequal size are typed errors', () => {
    const base = { qweight: t('q', new Int32Array(8), [1, 8]), qzeros: t('z', new Int32Array(2), [2, 1]), scales: t('s', new Uint16Array(16), [2, 8]) };
    const cfg = { bits: 4 as const, groupSize: 4, checkpointFormat: 'gptq' as const };
    expect(() => fromGptq({ ...base, gIdx: t('l.g_idx', Int32Array.from([0, 0, 0, 0, 1, 1, 1, 5]), [8]) }, 8, 8, cfg, F)).toThrow(/group indices in \[0, 2\) for l\.g_idx but received 5 at input 7/);
    expect(() => fromGptq({ ...base, gIdx: t('l.g_idx', Int32Array.from([0, 0, 0, 0, 0, 1, 1, 1]), [8]) }, 8, 8, cfg, F)).toThrow(/4 inputs in every group for l\.g_idx but received 5 in group 0/);
  });
});

describe('parseQuantConfig', () => {
  it('AWQ and GPTQ configs as published', () => {
    expect(parseQuantConfig({ quantization_config: { quant_method: 'awq', bits: 4, group_size: 128, zero_point: true, version: 'gemm' } }, F))
      .toMatchObject({ method: 'awq', bits: 4, groupSize: 128, checkpointFormat: 'awq' });
    expect(parseQuantConfig({ quantization_config: { quant_method: 'gptq', bits: 8, group_size: -1, desc_act: true, sym: true } }, F))
      .toMatchObject({ method: 'gptq', bits: 8, groupSize: -1, descAct: true, checkpointFormat: 'gptq' });
    expect(parseQuantConfig({}, F)).toBeNull();
  });
  it.each([
    [{ quant_method: 'bitsandbytes' }, /quant_method 'awq' or 'gptq'/],
    [{ quant_method: 'awq', bits: 8 }, /bits 4 for quantization_config\.bits/],
    [{ quant_method: 'awq', bits: 4, version: 'gemv' }, /version 'gemm'/],
    [{ quant_method: 'awq', bits: 4, zero_point: false }, /zero_point true/],
    [{ quant_method: 'gptq', bits: 3 }, /bits 4 or 8/],
    [{ quant_method: 'gptq', bits: 4, group_size: 0 }, /positive integer or -1/],
  ])('refuses %j', (qc, re) => {
    expect(() => parseQuantConfig({ quantization_config: qc }, F)).toThrow(re);
  });
});
