// Float64 JavaScript references of every layer type of the native engine, and of the whole
// SR-3D model (SigLIP -> 3x3 projector -> Qwen2), written for obviousness, not speed.
// Weights enter as the exact values stored in the checkpoint (bf16 / f16 / f32 decoded
// exactly), so a comparison measures the kernels' float32 arithmetic alone.
//
// Where the reference implementation (HF transformers) itself computes in float32 by design,
// the reference does the same and says so: the RoPE angle (inv_freq and pos·inv_freq are
// float32 tensors in HF's Qwen2RotaryEmbedding) — that rounding is part of the model.
import type { Checkpoint, WeightSet, WeightTensor } from '../lib/checkpoint_types';
import { bf16ToFloat, f16ToFloat } from '../lib/safetensors';
import { LLM_WEIGHTS as LW, PROJECTOR_WEIGHTS as PW, REGION_WEIGHTS, SPATIAL_PE_WEIGHTS, VISION_WEIGHTS as VW, biasOf, weightOf } from '../lib/weights';

const f32 = Math.fround;

/** A stored weight decoded exactly to float64. */
export function decode64(t: Pick<WeightTensor, 'dtype' | 'data'>): Float64Array {
  const out = new Float64Array(t.data.length);
  if (t.dtype === 'f32') out.set(t.data as Float32Array);
  else if (t.dtype === 'bf16') for (let i = 0; i < out.length; i++) out[i] = bf16ToFloat(t.data[i]);
  else for (let i = 0; i < out.length; i++) out[i] = f16ToFloat(t.data[i]);
  return out;
}

// ---- elementwise ---------------------------------------------------------------------------

/** erf to ~1e-15: Maclaurin series below 2.5, the erfc continued fraction above. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x, sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (ax > 6) return Math.sign(x);
  // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated bottom-up.
  let f = ax;
  for (let k = 120; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
export const geluErf = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const silu = (x: number) => x / (1 + Math.exp(-x));

export type Act = 'gelu_tanh' | 'gelu_erf' | 'silu';
export const ACTS: Record<Act, (x: number) => number> = { gelu_tanh: geluTanh, gelu_erf: geluErf, silu };

export function activation64(x: ArrayLike<number>, act: Act): Float64Array {
  const f = ACTS[act];
  return Float64Array.from(x, f);
}

export function siluMul64(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  return Float64Array.from(gate, (g, i) => silu(g) * up[i]);
}

// ---- linear and norms ----------------------------------------------------------------------

/** y[n][out] = x[n][in] · W[out][in]ᵀ + b. */
export function linear64(x: ArrayLike<number>, n: number, w: ArrayLike<number>, out: number, inp: number, bias?: ArrayLike<number> | null): Float64Array {
  const y = new Float64Array(n * out);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < out; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < inp; i++) s += x[r * inp + i] * w[o * inp + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

/** Σ|x·w| + |b| per output: the scale of a dot product's float32 rounding error. */
export function linearMagnitude(x: ArrayLike<number>, n: number, w: ArrayLike<number>, out: number, inp: number, bias?: ArrayLike<number> | null): Float64Array {
  const y = new Float64Array(n * out);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < out; o++) {
      let s = bias ? Math.abs(bias[o]) : 0;
      for (let i = 0; i < inp; i++) s += Math.abs(x[r * inp + i] * w[o * inp + i]);
      y[r * out + o] = s;
    }
  }
  return y;
}

export function layerNorm64(x: ArrayLike<number>, n: number, d: number, gamma: ArrayLike<number>, beta: ArrayLike<number>, eps: number): Float64Array {
  const y = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i] - mean) ** 2;
    v /= d;
    const inv = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = (x[r * d + i] - mean) * inv * gamma[i] + beta[i];
  }
  return y;
}

export function rmsNorm64(x: ArrayLike<number>, n: number, d: number, gamma: ArrayLike<number>, eps: number): Float64Array {
  const y = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let ms = 0;
    for (let i = 0; i < d; i++) ms += x[r * d + i] ** 2;
    const inv = 1 / Math.sqrt(ms / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = x[r * d + i] * inv * gamma[i];
  }
  return y;
}

// ---- RoPE and attention --------------------------------------------------------------------

/**
 * HF Qwen2 RoPE (rotate_half) on x[tokens][heads][d]. inv_freq[i] = 1/theta^(2i/d) rounded to
 * float32 (the exponent 2i/d in float32 as torch's arange(0,d,2).float()/d), the angle
 * pos·inv_freq rounded to float32 (HF's float32 product); cos/sin and the rotation in float64.
 */
export function rope64(x: ArrayLike<number>, tokens: number, heads: number, d: number, positions: ArrayLike<number>, theta: number): Float64Array {
  const y = Float64Array.from(x);
  const half = d / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = f32(1 / Math.pow(theta, f32(f32(2 * i) / d)));
  for (let t = 0; t < tokens; t++) {
    for (let i = 0; i < half; i++) {
      const a = f32(positions[t] * inv[i]);
      const c = Math.cos(a), s = Math.sin(a);
      for (let h = 0; h < heads; h++) {
        const o = (t * heads + h) * d;
        const x1 = x[o + i], x2 = x[o + i + half];
        y[o + i] = x1 * c - x2 * s;
        y[o + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return y;
}

/**
 * softmax(q·kᵀ·scale)·v per query head; query head h reads KV head h / (hq/hkv); causal:
 * query i (position qOffset + i) sees keys j <= qOffset + i.
 */
export function attention64(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, nq: number, nk: number, hq: number, hkv: number, d: number, scale: number, causal: boolean, qOffset: number): Float64Array {
  const out = new Float64Array(nq * hq * d);
  const group = hq / hkv;
  const s = new Float64Array(nk);
  for (let i = 0; i < nq; i++) {
    const last = causal ? Math.min(nk - 1, qOffset + i) : nk - 1;
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / group);
      let mx = -Infinity;
      for (let j = 0; j <= last; j++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[(i * hq + h) * d + c] * k[(j * hkv + kh) * d + c];
        s[j] = dot * scale;
        mx = Math.max(mx, s[j]);
      }
      let z = 0;
      for (let j = 0; j <= last; j++) { s[j] = Math.exp(s[j] - mx); z += s[j]; }
      for (let c = 0; c < d; c++) {
        let acc = 0;
        for (let j = 0; j <= last; j++) acc += s[j] * v[(j * hkv + kh) * d + c];
        out[(i * hq + h) * d + c] = acc / z;
      }
    }
  }
  return out;
}

// ---- the vision-side data movement ---------------------------------------------------------

/** NVILA 3x3 space-to-channel of x[n][g*g][c] -> [n][G*G][9c], zero padding (spec §4). */
export function spaceToChannel3_64(x: ArrayLike<number>, n: number, g: number, c: number): Float64Array {
  const G = Math.ceil(g / 3);
  const y = new Float64Array(n * G * G * 9 * c);
  for (let b = 0; b < n; b++) {
    for (let R = 0; R < G; R++) for (let C = 0; C < G; C++) {
      for (let m = 0; m < 3; m++) for (let kk = 0; kk < 3; kk++) {
        const r = 3 * R + m, col = 3 * C + kk;
        for (let ch = 0; ch < c; ch++) {
          const val = r < g && col < g ? x[((b * g + r) * g + col) * c + ch] : 0;
          y[((b * G * G + R * G + C) * 9 + m * 3 + kk) * c + ch] = val;
        }
      }
    }
  }
  return y;
}

/** Conv2d(3 -> hidden, k = s = patch) of img[n][3][size][size] -> [n][(size/p)²][hidden]. */
export function patchEmbed64(img: ArrayLike<number>, n: number, size: number, p: number, w: ArrayLike<number>, hidden: number, bias?: ArrayLike<number> | null): Float64Array {
  const g = size / p;
  const out = new Float64Array(n * g * g * hidden);
  for (let b = 0; b < n; b++) for (let py = 0; py < g; py++) for (let px = 0; px < g; px++) {
    for (let o = 0; o < hidden; o++) {
      let s = bias ? bias[o] : 0;
      for (let ch = 0; ch < 3; ch++) for (let ky = 0; ky < p; ky++) for (let kx = 0; kx < p; kx++) {
        s += img[((b * 3 + ch) * size + py * p + ky) * size + px * p + kx] * w[((o * 3 + ch) * p + ky) * p + kx];
      }
      out[((b * g + py) * g + px) * hidden + o] = s;
    }
  }
  return out;
}

// ---- whole layers and the model ------------------------------------------------------------

/** Every tensor of a weight set decoded to float64, by key. */
export function weights64(set: WeightSet, keep: (key: string) => boolean = () => true): Map<string, Float64Array> {
  const m = new Map<string, Float64Array>();
  for (const k of set.keys()) if (keep(k)) m.set(k, decode64(set.read(k)));
  return m;
}

function get(w: Map<string, Float64Array>, key: string): Float64Array {
  const t = w.get(key);
  if (!t) throw new Error(`reference: missing weight ${key}`);
  return t;
}

const add = (a: Float64Array, b: Float64Array) => { for (let i = 0; i < a.length; i++) a[i] += b[i]; return a; };

/** One SigLIP encoder layer (pre-LN, biased attention, GELU-tanh MLP) on h[T][H], in place. */
export function siglipLayer64(h: Float64Array, T: number, H: number, heads: number, I: number, eps: number, w: Map<string, Float64Array>, p: string, act: Act = 'gelu_tanh'): Float64Array {
  const hd = H / heads;
  const a = layerNorm64(h, T, H, get(w, weightOf(`${p}.${VW.layerNorm1}`)), get(w, biasOf(`${p}.${VW.layerNorm1}`)), eps);
  const lin = (x: Float64Array, name: string, o: number, i: number) => linear64(x, T, get(w, weightOf(`${p}.${name}`)), o, i, get(w, biasOf(`${p}.${name}`)));
  const q = lin(a, VW.q, H, H), k = lin(a, VW.k, H, H), v = lin(a, VW.v, H, H);
  const att = attention64(q, k, v, T, T, heads, heads, hd, 1 / Math.sqrt(hd), false, 0);
  add(h, lin(att, VW.out, H, H));
  const b = layerNorm64(h, T, H, get(w, weightOf(`${p}.${VW.layerNorm2}`)), get(w, biasOf(`${p}.${VW.layerNorm2}`)), eps);
  const m = activation64(lin(b, VW.fc1, I, H), act);
  add(h, lin(m, VW.fc2, H, I));
  return h;
}

export interface VisionRef { hidden: number; heads: number; intermediate: number; layersRun: number; imageSize: number; patchSize: number; eps: number; act: Act }

/** SigLIP up to the selected layer for one tile [3][S][S] -> [(S/p)²][H]. */
export function siglip64(tile: ArrayLike<number>, cfg: VisionRef, w: Map<string, Float64Array>): Float64Array {
  const { hidden: H, patchSize: p, imageSize: S } = cfg;
  const T = (S / p) ** 2;
  const h = patchEmbed64(tile, 1, S, p, get(w, weightOf(VW.patchEmbedding)), H, get(w, biasOf(VW.patchEmbedding)));
  add(h, get(w, weightOf(VW.positionEmbedding)));
  for (let l = 0; l < cfg.layersRun; l++) siglipLayer64(h, T, H, cfg.heads, cfg.intermediate, cfg.eps, w, VW.layer(l), cfg.act);
  return h;
}

/** mlp_downsample_3x3_fix on one tile's features [g*g][c] -> [G*G][out] (spec §4). */
export function projector64(x: ArrayLike<number>, g: number, c: number, w: Map<string, Float64Array>, eps = 1e-5): Float64Array {
  const G = Math.ceil(g / 3), n = G * G;
  let a = spaceToChannel3_64(x, 1, g, c);
  a = layerNorm64(a, n, 9 * c, get(w, weightOf(PW.layerNorm1)), get(w, biasOf(PW.layerNorm1)), eps);
  const lin = (x: Float64Array, name: string) => {
    const W = get(w, weightOf(name)), b = get(w, biasOf(name));
    const out = b.length, inp = W.length / out;
    return linear64(x, n, W, out, inp, b);
  };
  a = activation64(lin(a, PW.fc1), 'gelu_erf');
  const mid = a.length / n;
  a = layerNorm64(a, n, mid, get(w, weightOf(PW.layerNorm2)), get(w, biasOf(PW.layerNorm2)), eps);
  a = activation64(lin(a, PW.fc2), 'gelu_erf');
  return lin(a, PW.fc3);
}

/** A sequential MLP of Linear / GELU(erf) steps over rows: `names` are the Linear prefixes. */
export function mlp64(x: ArrayLike<number>, rows: number, w: Map<string, Float64Array>, names: string[]): Float64Array {
  let a: Float64Array = Float64Array.from(x);
  names.forEach((name, i) => {
    const W = get(w, weightOf(name)), b = w.get(biasOf(name)) ?? null;
    const out = W.length / (a.length / rows), inp = a.length / rows;
    a = linear64(a, rows, W, out, inp, b);
    if (i < names.length - 1) a = activation64(a, 'gelu_erf');
  });
  return a;
}

export interface LlmRef { hidden: number; layers: number; heads: number; kvHeads: number; headDim: number; intermediate: number; vocab: number; eps: number; ropeTheta: number }

/** One Qwen2 decoder layer over the whole sequence h[L][H] (positions 0..L-1), in place. */
export function qwen2Layer64(h: Float64Array, L: number, cfg: LlmRef, w: Map<string, Float64Array>, p: string): Float64Array {
  const { hidden: H, heads, kvHeads, headDim: hd, intermediate: I, eps } = cfg;
  const a = rmsNorm64(h, L, H, get(w, weightOf(`${p}.${LW.inputNorm}`)), eps);
  const lin = (x: Float64Array, name: string, o: number, i: number) => linear64(x, L, get(w, weightOf(`${p}.${name}`)), o, i, w.get(biasOf(`${p}.${name}`)) ?? null);
  const pos = Array.from({ length: L }, (_, i) => i);
  const q = rope64(lin(a, LW.q, heads * hd, H), L, heads, hd, pos, cfg.ropeTheta);
  const k = rope64(lin(a, LW.k, kvHeads * hd, H), L, kvHeads, hd, pos, cfg.ropeTheta);
  const v = lin(a, LW.v, kvHeads * hd, H);
  const att = attention64(q, k, v, L, L, heads, kvHeads, hd, 1 / Math.sqrt(hd), true, 0);
  add(h, lin(att, LW.o, H, heads * hd));
  const b = rmsNorm64(h, L, H, get(w, weightOf(`${p}.${LW.postAttentionNorm}`)), eps);
  const m = siluMul64(lin(b, LW.gate, I, H), lin(b, LW.up, I, H));
  add(h, lin(m, LW.down, H, I));
  return h;
}

/** Qwen2ForCausalLM on input embeddings [L][H]: the last position's logits [vocab]. */
export function qwen2Logits64(emb: ArrayLike<number>, L: number, cfg: LlmRef, w: Map<string, Float64Array>, tied = false): Float64Array {
  const H = cfg.hidden;
  const h = Float64Array.from(emb);
  for (let l = 0; l < cfg.layers; l++) qwen2Layer64(h, L, cfg, w, LW.layer(l));
  const last = rmsNorm64(h.subarray((L - 1) * H, L * H), 1, H, get(w, weightOf(LW.norm)), cfg.eps);
  return linear64(last, 1, get(w, weightOf(tied ? LW.embedTokens : LW.lmHead)), cfg.vocab, H);
}

/** Rows of embed_tokens. */
export function embed64(ids: readonly number[], H: number, w: Map<string, Float64Array>): Float64Array {
  const E = get(w, weightOf(LW.embedTokens));
  const out = new Float64Array(ids.length * H);
  ids.forEach((id, i) => out.set(E.subarray(id * H, (id + 1) * H), i * H));
  return out;
}

/** The whole tiny model, float64: every module's config and weights from the checkpoint. */
export class ModelRef {
  readonly vision: VisionRef;
  readonly llm: LlmRef;
  readonly tied: boolean;
  readonly vw: Map<string, Float64Array>;
  readonly pw: Map<string, Float64Array>;
  readonly lw: Map<string, Float64Array>;
  readonly sw?: Map<string, Float64Array>;
  readonly rw?: Map<string, Float64Array>;
  readonly regionLinears: string[];

  constructor(ckpt: Checkpoint) {
    const vc = ckpt.vision.config, lc = ckpt.llm.config;
    this.vision = {
      hidden: vc.hiddenSize, heads: vc.numHeads, intermediate: vc.intermediateSize, layersRun: vc.layersToRun,
      imageSize: vc.imageSize, patchSize: vc.patchSize, eps: vc.layerNormEps, act: vc.hiddenAct === 'gelu_pytorch_tanh' ? 'gelu_tanh' : 'gelu_erf',
    };
    this.llm = {
      hidden: lc.hiddenSize, layers: lc.numLayers, heads: lc.numHeads, kvHeads: lc.numKvHeads, headDim: lc.headDim,
      intermediate: lc.intermediateSize, vocab: lc.vocabSize, eps: lc.rmsNormEps, ropeTheta: lc.ropeTheta,
    };
    this.tied = lc.tieWordEmbeddings;
    this.vw = weights64(ckpt.vision.weights);
    this.pw = weights64(ckpt.projector.weights);
    this.lw = weights64(ckpt.llm.weights);
    if (ckpt.spatialPe) this.sw = weights64(ckpt.spatialPe.weights);
    if (ckpt.regionExtractor) this.rw = weights64(ckpt.regionExtractor.weights);
    this.regionLinears = ckpt.regionExtractor?.config.projector === 'linear' ? [REGION_WEIGHTS.linear] : [REGION_WEIGHTS.fc1, REGION_WEIGHTS.fc2];
  }

  /** [n][3][S][S] -> [n][T][H]. */
  encodeTiles(tiles: ArrayLike<number>, n: number): Float64Array {
    const S = this.vision.imageSize, T = (S / this.vision.patchSize) ** 2, H = this.vision.hidden;
    const out = new Float64Array(n * T * H);
    for (let i = 0; i < n; i++) {
      const tile = Array.prototype.slice.call(tiles, i * 3 * S * S, (i + 1) * 3 * S * S) as number[];
      out.set(siglip64(tile, this.vision, this.vw), i * T * H);
    }
    return out;
  }

  /** [n][T][H] -> [n][G*G][llm hidden]. */
  project(features: ArrayLike<number>, n: number): Float64Array {
    const g = this.vision.imageSize / this.vision.patchSize, c = this.vision.hidden, T = g * g;
    const parts: Float64Array[] = [];
    for (let i = 0; i < n; i++) parts.push(projector64(Array.prototype.slice.call(features, i * T * c, (i + 1) * T * c) as number[], g, c, this.pw));
    const out = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }

  spatialPe(x: ArrayLike<number>, rows: number): Float64Array {
    if (!this.sw) throw new Error('reference: no spatial_pe');
    return mlp64(x, rows, this.sw, [SPATIAL_PE_WEIGHTS.fc1, SPATIAL_PE_WEIGHTS.fc2]);
  }

  region(x: ArrayLike<number>, rows: number): Float64Array {
    if (!this.rw) throw new Error('reference: no region extractor');
    return mlp64(x, rows, this.rw, this.regionLinears);
  }

  embed(ids: readonly number[]): Float64Array {
    return embed64(ids, this.llm.hidden, this.lw);
  }

  logits(emb: ArrayLike<number>, L: number): Float64Array {
    return qwen2Logits64(emb, L, this.llm, this.lw, this.tied);
  }
}

/** Index of the largest value (lowest index on ties) and the gap to the runner-up. */
export function argmaxWithMargin(x: ArrayLike<number>): { index: number; margin: number } {
  let best = 0, second = -Infinity;
  for (let i = 1; i < x.length; i++) {
    if (x[i] > x[best]) { second = x[best]; best = i; } else if (x[i] > second) second = x[i];
  }
  return { index: best, margin: x[best] - second };
}

/** max |a - b| / max |b|: the relative error of a whole output in the max norm. */
export function relMaxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return m === 0 ? d : d / m;
}
