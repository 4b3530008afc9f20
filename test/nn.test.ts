// The engine's neural-network ops (lib/nn.ts -> native/nn.cc -> kernels/linear.h, attention.h,
// norms.h, activation.h, rope.h, projector.h) against float64 references (test/reference64.ts),
// for f32 / f16 / bf16 weights, both CPU paths (reference and fast), awkward sizes, and bad
// inputs.
//
// Two bounds per Linear-type op:
//  - vs float64 of the STORED weights (bf16/f16 decoded exactly): only the kernels' float32
//    arithmetic differs, so |err| <= 2^-20 · Σ|x_i·w_i| (+ |bias|) per output, whatever the dtype;
//  - vs float64 of the UNQUANTIZED weights: the dtype's own error, in the norm
//    ||y - y64|| / ||y64||: f32 <= 1e-6, f16 <= 2e-3, bf16 <= 1.6e-2.
// Bounds are set from the measured worst case (in units of 2^-24 of the stated scale) with
// 3-6x headroom: linear 2.7 -> 16, layerNorm 9.1 -> 32, rmsNorm 3.3 -> 16, rope 1.3 -> 8,
// attention 3.8 (of max|v|) -> 16.
import * as nn from '../lib/nn';
import { InvalidArgumentError } from '../lib/errors';
import { native } from '../lib/native';
import { fromFloat32 } from '../lib/safetensors';
import type { WeightDType } from '../lib/checkpoint_types';
import { expectClose, rng } from './helpers';
import {
  activation64, attention64, decode64, layerNorm64, linear64, linearMagnitude, patchEmbed64, rmsNorm64, rope64,
  siluMul64, spaceToChannel3_64,
} from './reference64';

const IMPLS = ['reference', 'fast'] as const;
const DTYPES: WeightDType[] = ['f32', 'f16', 'bf16'];
/** Per-output bound of a float32 dot product relative to Σ|terms|. */
const DOT_REL = 2 ** -20;
/** Norm-wise error of a whole output from the weight dtype itself. */
const DTYPE_NORM_ERR: Record<WeightDType, number> = { f32: 1e-6, f16: 2e-3, bf16: 1.6e-2 };

function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (2 * r() - 1) * scale);
}

/** |got - want| <= rel · mag + abs elementwise; the failure names index, values and the ratio. */
function expectBound(got: ArrayLike<number>, want: ArrayLike<number>, mag: ArrayLike<number>, rel: number, abs: number, label: string) {
  expect(got.length).toBe(want.length);
  let worst = -1, ratio = 0;
  for (let i = 0; i < want.length; i++) {
    const r = Math.abs(got[i] - want[i]) / (rel * mag[i] + abs);
    if (!(r <= ratio)) { ratio = r; worst = i; }
  }
  if (!(ratio <= 1)) {
    throw new Error(`${label}: index ${worst}: got ${got[worst]}, want ${want[worst]}, magnitude ${mag[worst]}, ${ratio.toFixed(2)}x the bound (rel ${rel}, abs ${abs})`);
  }
}

function normErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let d = 0, m = 0;
  for (let i = 0; i < want.length; i++) { d += (got[i] - want[i]) ** 2; m += want[i] ** 2; }
  return Math.sqrt(d / m);
}

const LINEAR_CASES: Array<[number, number, number, boolean]> = [
  // [n, in, out, bias]
  [1, 1, 1, false], [1, 7, 3, true], [5, 33, 19, true], [7, 64, 64, false], [3, 301, 17, true], [13, 16, 1, true], [2, 1152, 5, false],
];

describe('linear', () => {
  for (const dtype of DTYPES) {
    for (const [n, inp, out, bias] of LINEAR_CASES) {
      it(`${dtype} weights, n=${n} in=${inp} out=${out}${bias ? ' +bias' : ''}: |err| <= 2^-20·Σ|x·w| vs float64 of the stored weights, ||err|| <= ${DTYPE_NORM_ERR[dtype]} vs unquantized`, async () => {
        const x = rand(n * inp, 11 + inp), w32 = rand(out * inp, 7 + out, 1 / Math.sqrt(inp)), b = bias ? rand(out, 3, 0.1) : null;
        const data = fromFloat32(w32, dtype);
        const w64 = decode64({ dtype, data });
        const want = linear64(x, n, w64, out, inp, b);
        const mag = linearMagnitude(x, n, w64, out, inp, b);
        const exact = linear64(x, n, w32, out, inp, b);
        const results: Float32Array[] = [];
        for (const impl of IMPLS) {
          const y = await nn.linear({ data: x, shape: [n, inp] }, { dtype, shape: [out, inp], data }, b, { impl });
          expect(y.shape).toEqual([n, out]);
          expectBound(y.data, want, mag, DOT_REL, 1e-30, `${impl} ${dtype}`);
          expect(normErr(y.data, exact)).toBeLessThanOrEqual(DTYPE_NORM_ERR[dtype]);
          results.push(y.data);
        }
        // The two CPU paths agree to the same bound (they may sum in different orders).
        expectBound(results[1], results[0], mag, 2 * DOT_REL, 1e-30, 'fast vs reference');
      });
    }
  }

  it('keeps leading dimensions: (2, 3, in) -> (2, 3, out); n = 0 gives an empty result', async () => {
    const w = { dtype: 'f32' as const, shape: [4, 5], data: rand(20, 1) };
    const y = await nn.linear({ data: rand(30, 2), shape: [2, 3, 5] }, w);
    expect(y.shape).toEqual([2, 3, 4]);
    const e = await nn.linear({ data: new Float32Array(0), shape: [0, 5] }, w);
    expect(e.shape).toEqual([0, 4]);
    expect(e.data.length).toBe(0);
  });
});

describe('layerNorm / rmsNorm', () => {
  for (const [n, d] of [[1, 1], [3, 7], [5, 288], [2, 1155], [1, 10368]] as const) {
    it(`layerNorm n=${n} d=${d}: |err| <= 2^-19·(|y| + |beta| + 1) vs float64`, async () => {
      const x = rand(n * d, d, 3), g = rand(d, 5), b = rand(d, 6, 0.1);
      for (let i = 0; i < n * d; i += 2) x[i] += 4; // a mean offset, as real activations have
      const want = layerNorm64(x, n, d, g, b, 1e-5);
      const mag = Float64Array.from(want, (v, i) => Math.abs(v) + Math.abs(b[i % d]) + Math.abs(g[i % d]));
      for (const impl of IMPLS) {
        const y = await nn.layerNorm({ data: x, shape: [n, d] }, g, b, 1e-5, { impl });
        expectBound(y.data, want, mag, 2 ** -19, 1e-30, `layerNorm ${impl}`);
      }
    });
    it(`rmsNorm n=${n} d=${d}: |err| <= 2^-20·(|y| + |gamma|) vs float64`, async () => {
      const x = rand(n * d, d + 1, 3), g = rand(d, 8);
      const want = rmsNorm64(x, n, d, g, 1e-6);
      const mag = Float64Array.from(want, (v, i) => Math.abs(v) + Math.abs(g[i % d]));
      for (const impl of IMPLS) {
        const y = await nn.rmsNorm({ data: x, shape: [n, d] }, g, 1e-6, { impl });
        expectBound(y.data, want, mag, 2 ** -20, 1e-30, `rmsNorm ${impl}`);
      }
    });
  }

  it('a constant row normalizes to beta (variance 0 + eps), not NaN', async () => {
    const y = await nn.layerNorm({ data: new Float32Array([2, 2, 2, 2]), shape: [1, 4] }, [1, 1, 1, 1], [0.5, -1, 0, 3]);
    expectClose(y.data, [0.5, -1, 0, 3], 1e-6, 0, 'constant row');
  });
});

describe('activations', () => {
  // Values across the interesting range: 0, tiny, the GELU knee, large of both signs.
  const xs = Float32Array.from([0, 1e-8, -1e-8, 0.1, -0.1, 0.5, -0.5, 1, -1, 1.7, -1.7, 3, -3, 5.5, -5.5, 10, -10, 30, -30, 88, -88, ...rand(997, 4, 6)]);
  for (const act of ['gelu_tanh', 'gelu_erf', 'silu'] as const) {
    // x·(1 + tanh/erf(…)) cancels for large negative x in float32 (as in torch): the error
    // scale is |x|, not |y|.
    it(`${act} (${xs.length} values in [-88, 88]): |err| <= 4·2^-24·(|x| + |y|) vs float64`, async () => {
      const want = activation64(xs, act);
      const mag = Float64Array.from(want, (y, i) => Math.abs(y) + Math.abs(xs[i]));
      for (const impl of IMPLS) {
        const y = await nn.activation({ data: xs, shape: [xs.length] }, act, { impl });
        expect(y.data).not.toBe(xs); // a new array
        expectBound(y.data, want, mag, 4 * 2 ** -24, 1e-45, `${act} ${impl}`);
      }
    });
  }
  it('siluMul over 1031 values: |err| <= 2^-21·|y| vs float64', async () => {
    const g = rand(1031, 1, 8), u = rand(1031, 2, 2);
    const want = siluMul64(g, u);
    for (const impl of IMPLS) {
      const y = await nn.siluMul({ data: g, shape: [1031] }, { data: u, shape: [1031] }, { impl });
      expectClose(y.data, want, 2 ** -40, 2 ** -21, `siluMul ${impl}`);
    }
  });
});

describe('rope', () => {
  const cases: Array<[number, number, number, number[] | null, number]> = [
    // [tokens, heads, headDim, positions (null = 0..tokens-1), theta]
    [1, 1, 2, [0], 1e6], [3, 2, 8, null, 1e4], [5, 3, 64, [0, 1, 17, 1000, 4095], 1e6], [2, 4, 128, [7, 3903], 1e6], [9, 1, 6, null, 10000],
  ];
  for (const [T, H, D, pos, theta] of cases) {
    const positions = pos ?? Array.from({ length: T }, (_, i) => i);
    it(`tokens=${T} heads=${H} headDim=${D} positions=[${positions.join(',')}] theta=${theta}: |err| <= 2^-21·(|x1| + |x2|) vs float64 (HF float32 angles)`, async () => {
      const x = rand(T * H * D, D + T, 2);
      const want = rope64(x, T, H, D, positions, theta);
      const half = D / 2;
      const mag = Float64Array.from(want, (_, i) => {
        const j = i % D, base = i - j, k = j % half;
        return Math.abs(x[base + k]) + Math.abs(x[base + k + half]);
      });
      for (const impl of IMPLS) {
        const y = await nn.rope({ data: x, shape: [T, H, D] }, positions, theta, { impl });
        expectBound(y.data, want, mag, 2 ** -21, 1e-30, `rope ${impl}`);
      }
    });
  }
});

describe('attention', () => {
  const cases: Array<[number, number, number, number, number, boolean, number]> = [
    // [nq, nk, hq, hkv, d, causal, qOffset]
    [1, 1, 1, 1, 1, false, 0], [5, 5, 2, 2, 8, true, 0], [7, 7, 4, 2, 16, true, 0], [1, 17, 4, 1, 32, true, 16],
    [3, 11, 6, 3, 12, true, 8], [9, 13, 3, 1, 72, false, 0], [4, 4, 14, 2, 64, true, 0], [2, 300, 2, 1, 128, true, 298],
  ];
  for (const [nq, nk, hq, hkv, d, causal, off] of cases) {
    it(`nq=${nq} nk=${nk} hq=${hq} hkv=${hkv} d=${d} ${causal ? `causal qOffset=${off}` : 'full'}: |err| <= 2^-20·max|v| vs float64`, async () => {
      const q = rand(nq * hq * d, 1 + d, 1.5), k = rand(nk * hkv * d, 2 + nk, 1.5), v = rand(nk * hkv * d, 3 + hq, 2);
      const scale = 1 / Math.sqrt(d);
      const want = attention64(q, k, v, nq, nk, hq, hkv, d, scale, causal, off);
      const vmax = v.reduce((m, a) => Math.max(m, Math.abs(a)), 0);
      for (const impl of IMPLS) {
        const y = await nn.attention({ data: q, shape: [nq, hq, d] }, { data: k, shape: [nk, hkv, d] }, { data: v, shape: [nk, hkv, d] }, { causal, qOffset: off, impl });
        expect(y.shape).toEqual([nq, hq, d]);
        expectClose(y.data, want, 2 ** -20 * vmax, 0, `attention ${impl}`);
      }
    });
  }

  it('causal masking: a query sees no later key (changing a later key or value changes nothing)', async () => {
    const q = rand(3 * 2 * 4, 1), k = rand(5 * 2 * 4, 2), v = rand(5 * 2 * 4, 3);
    const a = await nn.attention({ data: q, shape: [3, 2, 4] }, { data: k, shape: [5, 2, 4] }, { data: v, shape: [5, 2, 4] }, { causal: true, qOffset: 2 });
    const k2 = k.slice(), v2 = v.slice();
    for (let i = 4 * 2 * 4; i < k2.length; i++) { k2[i] += 5; v2[i] -= 5; } // key 4: seen by query 2 only
    const b = await nn.attention({ data: q, shape: [3, 2, 4] }, { data: k2, shape: [5, 2, 4] }, { data: v2, shape: [5, 2, 4] }, { causal: true, qOffset: 2 });
    expect(Array.from(b.data.subarray(0, 2 * 2 * 4))).toEqual(Array.from(a.data.subarray(0, 2 * 2 * 4)));
    expect(Array.from(b.data.subarray(2 * 2 * 4))).not.toEqual(Array.from(a.data.subarray(2 * 2 * 4)));
  });
});

describe('spaceToChannel3', () => {
  for (const [n, g, c] of [[1, 1, 1], [2, 2, 3], [1, 3, 2], [3, 4, 5], [1, 7, 1], [2, 32, 4]] as const) {
    it(`n=${n} g=${g} c=${c}: exactly the float64 reference (pure data movement, zero padding)`, async () => {
      const x = rand(n * g * g * c, g * 10 + c);
      const want = spaceToChannel3_64(x, n, g, c);
      const G = Math.ceil(g / 3);
      for (const impl of IMPLS) {
        const y = await nn.spaceToChannel3({ data: x, shape: [n, g * g, c] }, { impl });
        expect(y.shape).toEqual([n, G * G, 9 * c]);
        expect(Array.from(y.data)).toEqual(Array.from(want));
      }
    });
  }
  it('the spec §4 channel order: y[R·G+C][(m·3+k)·c + ch] = xpad[3R+m][3C+k][ch]', async () => {
    // g = 4, c = 1, x[r][col] = 10r + col + 1: token (R=1, C=0) holds rows 3..5 (4, 5 padded), cols 0..2.
    const x = Float32Array.from({ length: 16 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4) + 1);
    const y = await nn.spaceToChannel3({ data: x, shape: [1, 16, 1] });
    expect(Array.from(y.data.subarray(2 * 9, 3 * 9))).toEqual([31, 32, 33, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(y.data.subarray(1 * 9, 2 * 9))).toEqual([4, 0, 0, 14, 0, 0, 24, 0, 0]);
  });
});

describe('patchEmbed', () => {
  for (const dtype of DTYPES) {
    for (const [n, size, p, hidden] of [[1, 3, 3, 1], [2, 6, 3, 5], [1, 28, 14, 8], [1, 42, 14, 17]] as const) {
      it(`${dtype} weights, n=${n} size=${size} patch=${p} hidden=${hidden}: |err| <= 2^-20·Σ|x·w| vs float64 of the stored weights`, async () => {
        const img = rand(n * 3 * size * size, size + p, 2);
        const K = 3 * p * p;
        const w32 = rand(hidden * K, hidden, 1 / Math.sqrt(K)), b = rand(hidden, 9, 0.1);
        const data = fromFloat32(w32, dtype);
        const w64 = decode64({ dtype, data });
        const want = patchEmbed64(img, n, size, p, w64, hidden, b);
        // Magnitude: the same sum with |img| and |w|.
        const mag = patchEmbed64(img.map(Math.abs), n, size, p, w64.map(Math.abs), hidden, b.map(Math.abs));
        for (const impl of IMPLS) {
          const y = await nn.patchEmbed({ data: img, shape: [n, 3, size, size] }, { dtype, shape: [hidden, 3, p, p], data }, b, { impl });
          expect(y.shape).toEqual([n, (size / p) ** 2, hidden]);
          expectBound(y.data, want, mag, DOT_REL, 1e-30, `patchEmbed ${impl} ${dtype}`);
        }
      });
    }
  }
});

describe('bad inputs are typed errors', () => {
  const w = { dtype: 'bf16' as const, shape: [2, 3], data: new Uint16Array(6) };
  const x = { data: new Float32Array(6), shape: [2, 3] };

  it('weight data of the wrong type or length', async () => {
    await expect(nn.linear(x, { dtype: 'bf16', shape: [2, 3], data: new Float32Array(6) })).rejects.toThrow(
      'Expected a Uint16Array of 6 elements (raw bf16 bits) for weight.data but received Float32Array(6)');
    await expect(nn.linear(x, { dtype: 'f32', shape: [2, 3], data: new Float32Array(5) })).rejects.toThrow(
      'Expected a Float32Array of 6 elements for weight.data but received Float32Array(5)');
    await expect(nn.linear(x, { dtype: 'f8' as never, shape: [2, 3], data: new Uint16Array(6) })).rejects.toThrow(InvalidArgumentError);
  });

  it('activations whose last dimension is not the weight\'s in-dimension', async () => {
    await expect(nn.linear({ data: new Float32Array(8), shape: [2, 4] }, w)).rejects.toThrow(/Expected activations \(…, 3\) \(last dimension 3\) for x\.shape but received \[2, 4\]/);
  });

  it('bias, gamma and beta of the wrong length', async () => {
    await expect(nn.linear(x, w, [1, 2, 3])).rejects.toThrow('Expected 2 numbers for bias but received an array of length 3');
    await expect(nn.layerNorm(x, [1, 1], [0, 0, 0])).rejects.toThrow('Expected 3 numbers for gamma but received an array of length 2');
    await expect(nn.rmsNorm(x, new Float32Array(4))).rejects.toThrow('Expected a Float32Array of 3 elements for gamma but received Float32Array(4)');
    await expect(nn.layerNorm(x, [1, 1, 1], [0, 0, 0], 0)).rejects.toThrow('Expected a number in (0, 1) for eps but received 0');
  });

  it('rope: odd head dim, wrong position count, negative position, bad theta', async () => {
    await expect(nn.rope({ data: new Float32Array(3), shape: [1, 1, 3] }, [0], 1e6)).rejects.toThrow('Expected an even head dimension >= 2 for x.shape but received [1, 1, 3]');
    await expect(nn.rope({ data: new Float32Array(8), shape: [2, 1, 4] }, [0], 1e6)).rejects.toThrow('Expected 2 positions (one per token) for positions but received an array of length 1');
    await expect(nn.rope({ data: new Float32Array(4), shape: [1, 1, 4] }, [-1], 1e6)).rejects.toThrow('Expected non-negative integer positions for positions[0] but received -1');
    await expect(nn.rope({ data: new Float32Array(4), shape: [1, 1, 4] }, [0], 1)).rejects.toThrow('Expected a finite RoPE base > 1 for theta but received 1');
  });

  it('attention: heads not a multiple, mismatched k/v, head dims that differ', async () => {
    const t = (a: number, b: number, c: number) => ({ data: new Float32Array(a * b * c), shape: [a, b, c] });
    await expect(nn.attention(t(1, 3, 4), t(2, 2, 4), t(2, 2, 4))).rejects.toThrow(/Expected q heads \(3\) a positive multiple of k heads/);
    await expect(nn.attention(t(1, 2, 4), t(2, 2, 4), t(3, 2, 4))).rejects.toThrow("Expected values of k's shape [2, 2, 4] for v.shape but received [3, 2, 4]");
    await expect(nn.attention(t(1, 2, 4), t(2, 2, 8), t(2, 2, 8))).rejects.toThrow(/for k\.shape but received \[2, 2, 8\]/);
  });

  it('spaceToChannel3 needs a square token count; patchEmbed a size divisible by the patch', async () => {
    await expect(nn.spaceToChannel3({ data: new Float32Array(5), shape: [1, 5, 1] })).rejects.toThrow('with a square token count');
    await expect(nn.patchEmbed({ data: new Float32Array(3 * 25), shape: [1, 3, 5, 5] }, { dtype: 'f32', shape: [2, 3, 2, 2], data: new Float32Array(24) })).rejects.toThrow(
      'Expected images (n, 3, size, size) with size a multiple of 2 for img.shape but received [1, 3, 5, 5]');
  });

  it("impl 'reference' on device 'cuda' is refused", async () => {
    await expect(nn.siluMul(x, x, { impl: 'reference', device: 'cuda' })).rejects.toThrow(/impl 'fast' with device 'cuda'/);
  });

  it('the addon itself refuses detached buffers, wrong lengths and unknown dtypes (typed, no crash)', async () => {
    const addon = native();
    const xs = new Float32Array(6);
    structuredClone(xs.buffer, { transfer: [xs.buffer] });
    const base = { impl: 'fast' as const, n: 2, inDim: 3, outDim: 2, weight: new Float32Array(6), weightDtype: 'f32' as const, bias: null, out: new Float32Array(4) };
    await expect(addon.nnLinear({ ...base, x: xs })).rejects.toMatchObject({ code: 'SR3D_INVALID_ARGUMENT' });
    await expect(addon.nnLinear({ ...base, x: new Float32Array(6), out: new Float32Array(3) })).rejects.toThrow(
      'Expected a Float32Array of 4 elements for out but received Float32Array(3)');
    await expect(addon.nnLinear({ ...base, x: new Float32Array(6), weightDtype: 'f8' as never })).rejects.toThrow(
      "Expected one of 'f32', 'f16', 'bf16', 'q4', 'q8' for weightDtype but received 'f8'");
    await expect(addon.nnAttention({ impl: 'fast', q: new Float32Array(4), k: new Float32Array(4), v: new Float32Array(4), nq: 1, nk: 1, hq: 3, hkv: 2, d: 4, scale: 1, causal: false, qOffset: 0, out: new Float32Array(4) }))
      .rejects.toThrow(/divisible by the KV head count/);
  });
});
