/**
 * Quantized language-model weights: the published AWQ ("gemm") and GPTQ layouts, read as they
 * are and repacked once at load into the one layout sr3d's int4/int8 kernels use, plus
 * round-to-nearest quantization (`sr3d quantize`) that writes those published layouts back.
 *
 * sr3d's layout (`QuantWeight`), per Linear with `rows` outputs and `cols` inputs:
 *   q      : Uint8Array, row-major [rows][cols · bits / 8]; int4: input 2j in the low nibble of
 *            byte j, input 2j+1 in the high nibble; int8: one byte per input (unsigned 0..255)
 *   scales : Float32Array [rows][cols / groupSize]  (fp16 scales of the checkpoint, exact in f32)
 *   zeros  : Uint8Array   [rows][cols / groupSize]  (the integer zero point of each group)
 *   perm   : Int32Array [cols] or null. GPTQ with act-order (`desc_act`) groups inputs by g_idx,
 *            not by position: stored column j holds input perm[j], so groups are contiguous.
 * Dequantized: W[r][perm[j]] = scales[r][j / G] · (q[r][j] − zeros[r][j / G]), exactly in float32.
 * (AutoAWQ's and AutoGPTQ's fp16 kernels round each (q − z) · s to fp16; the float32 value here
 * is the exact product.)
 *
 * AWQ gemm (AutoAWQ, `version: "gemm"`): qweight int32 [cols][rows / 8], qzeros int32
 * [cols / G][rows / 8], scales fp16 [cols / G][rows]; output column 8c + k of a packed column c
 * is nibble AWQ_NIBBLE[k] (bits 4n..4n+3) — AutoAWQ packs with order [0, 2, 4, 6, 1, 3, 5, 7].
 * GPTQ (AutoGPTQ / GPTQModel `checkpoint_format: "gptq"`): qweight int32 [cols · bits / 32][rows]
 * packed along the input (input (32/bits)·r + j at bits·j of row r), qzeros int32
 * [groups][rows · bits / 32] packed along the output the same way and stored minus one (the
 * zero point is stored + 1; `gptq_v2` stores it as is), scales fp16 [groups][rows], g_idx int32
 * [cols] (the group of each input).
 */
import { CheckpointError } from './errors';

/** Which published format a quantized checkpoint uses (llm/config.json `quantization_config`). */
export interface QuantConfig {
  method: 'awq' | 'gptq';
  bits: 4 | 8;
  /** Inputs per scale/zero group; `cols` (one group per row) when the config says -1. */
  groupSize: number;
  /** GPTQ: act-order (g_idx not sorted). */
  descAct: boolean;
  /** GPTQ: symmetric (zero point fixed at 2^(bits-1)). */
  sym: boolean;
  /** GPTQ: "gptq" stores zero points minus one; "gptq_v2" as they are. */
  checkpointFormat: 'gptq' | 'gptq_v2' | 'awq';
  /** Module names left unquantized (AWQ `modules_to_not_convert`). */
  modulesNotConverted: string[];
  /** `"lm_head": true` (GPTQModel; `sr3d quantize --lm-head`): lm_head is quantized too. */
  lmHead: boolean;
  /**
   * `"embed_tokens": true` (`sr3d quantize --embeddings`; no AutoAWQ / AutoGPTQ field): the
   * embedding table [vocab][hidden] is quantized like a Linear, and a tied lm_head is that table.
   */
  embedTokens: boolean;
}

/** One quantized Linear in sr3d's layout (see the module comment). */
export interface QuantWeight {
  bits: 4 | 8;
  rows: number;
  cols: number;
  groupSize: number;
  q: Uint8Array;
  scales: Float32Array;
  zeros: Uint8Array;
  perm: Int32Array | null;
}

/** Output column 8c + k of an AWQ-packed int32 column c is nibble AWQ_NIBBLE[k]. */
export const AWQ_NIBBLE = [0, 4, 1, 5, 2, 6, 3, 7] as const;
/** AutoAWQ's pack order: nibble n of a packed column holds output column 8c + AWQ_ORDER[n]. */
export const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] as const;

function bad(what: string, name: string, received: string, file: string, key: string, fix: string): CheckpointError {
  return new CheckpointError(`Expected ${what} for ${name} but received ${received} (in ${file}). ${fix}`, file, key);
}

/**
 * Reads `quantization_config` from an LLM config.json; null when the model is not quantized.
 * Refuses what sr3d cannot run exactly (other methods, bit widths, AWQ without zero points or
 * another AWQ version) with a typed error naming the field.
 */
export function parseQuantConfig(config: Record<string, unknown>, file: string): QuantConfig | null {
  const qc = config.quantization_config as Record<string, unknown> | undefined;
  if (qc === undefined || qc === null) return null;
  const fix = 'sr3d runs AWQ gemm (4-bit, zero points) and GPTQ (4- or 8-bit) checkpoints, or bf16/f16/f32 ones; `sr3d quantize` writes such a checkpoint.';
  if (typeof qc !== 'object' || Array.isArray(qc)) throw bad('an object', 'quantization_config', JSON.stringify(qc), file, '', fix);
  const method = String(qc.quant_method ?? '').toLowerCase();
  if (method !== 'awq' && method !== 'gptq') throw bad("quant_method 'awq' or 'gptq'", 'quantization_config.quant_method', JSON.stringify(qc.quant_method), file, '', fix);
  const bits = qc.bits ?? qc.w_bit;
  if (!(bits === 4 || (bits === 8 && method === 'gptq'))) {
    throw bad(method === 'awq' ? 'bits 4' : 'bits 4 or 8', 'quantization_config.bits', JSON.stringify(bits), file, '', fix);
  }
  const g = qc.group_size ?? qc.q_group_size ?? 128;
  if (!(Number.isInteger(g) && ((g as number) > 0 || g === -1))) throw bad('a positive integer or -1', 'quantization_config.group_size', JSON.stringify(g), file, '', fix);
  if (method === 'awq') {
    const version = String(qc.version ?? 'gemm').toLowerCase();
    if (version !== 'gemm') throw bad("version 'gemm'", 'quantization_config.version', JSON.stringify(qc.version), file, '', fix);
    if (qc.zero_point === false) throw bad('zero_point true', 'quantization_config.zero_point', 'false', file, '', fix);
  }
  const fmt = method === 'awq' ? 'awq' : String(qc.checkpoint_format ?? 'gptq');
  if (fmt !== 'gptq' && fmt !== 'gptq_v2' && fmt !== 'awq') throw bad("checkpoint_format 'gptq' or 'gptq_v2'", 'quantization_config.checkpoint_format', JSON.stringify(qc.checkpoint_format), file, '', fix);
  const skip = qc.modules_to_not_convert ?? [];
  return {
    method, bits: bits as 4 | 8, groupSize: g as number, descAct: qc.desc_act === true, sym: qc.sym !== false,
    checkpointFormat: fmt, modulesNotConverted: Array.isArray(skip) ? skip.map(String) : [], lmHead: qc.lm_head === true,
    embedTokens: qc.embed_tokens === true,
  };
}

/** IEEE half bits → float (exact). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float → IEEE half bits, round to nearest even (as torch's .half()). */
export function floatToHalf(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const e = (u >>> 23) & 0xff, m = u & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  const v = Math.abs(f[0]);
  if (v >= 65520) return sign | 0x7c00; // rounds to infinity
  if (v < 2 ** -14) {
    // subnormal half: round v / 2^-24 to nearest even integer
    const q = v / 2 ** -24, r = Math.floor(q), d = q - r;
    const n = d > 0.5 || (d === 0.5 && r % 2 === 1) ? r + 1 : r;
    return sign | n;
  }
  let he = e - 127 + 15, hm = m >>> 13;
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (hm & 1))) { hm++; if (hm === 0x400) { hm = 0; he++; } }
  return sign | (he << 10) | hm;
}

interface Named<T> { key: string; data: T; shape: readonly number[] }

function needShape(t: Named<unknown>, shape: number[], file: string, fix: string): void {
  if (t.shape.length !== shape.length || t.shape.some((v, i) => v !== shape[i])) {
    throw bad(`shape [${shape.join(', ')}]`, t.key, `[${t.shape.join(', ')}]`, file, t.key, fix);
  }
}

function checkGroups(rows: number, cols: number, groupSize: number, key: string, file: string): number {
  const G = groupSize === -1 ? cols : groupSize;
  if (cols % G !== 0) throw bad(`in_features divisible by the group size ${G}`, key, `in_features ${cols}`, file, key, 'The checkpoint does not match its quantization_config.');
  if (rows % 8 !== 0) throw bad('out_features divisible by 8', key, `out_features ${rows}`, file, key, 'The checkpoint does not match its quantization_config.');
  return G;
}

/**
 * AWQ gemm tensors of one Linear (`<prefix>.qweight`, `.qzeros`, `.scales`) → sr3d's layout.
 * `cols`/`rows` come from the config (in/out features); every shape is checked against them.
 */
export function fromAwq(t: { qweight: Named<Int32Array>; qzeros: Named<Int32Array>; scales: Named<Uint16Array> }, rows: number, cols: number,
  groupSize: number, file: string): QuantWeight {
  const G = checkGroups(rows, cols, groupSize, t.qweight.key, file);
  const ng = cols / G, pc = rows / 8;
  const fix = 'The tensor does not have the AWQ gemm layout its config declares: re-export it with AutoAWQ (version "gemm").';
  needShape(t.qweight, [cols, pc], file, fix);
  needShape(t.qzeros, [ng, pc], file, fix);
  needShape(t.scales, [ng, rows], file, fix);
  const q = new Uint8Array(rows * (cols / 2));
  const scales = new Float32Array(rows * ng), zeros = new Uint8Array(rows * ng);
  const qw = t.qweight.data, qz = t.qzeros.data, sc = t.scales.data;
  for (let i = 0; i < cols; i++) {
    for (let c = 0; c < pc; c++) {
      const word = qw[i * pc + c];
      for (let k = 0; k < 8; k++) {
        const v = (word >>> (4 * AWQ_NIBBLE[k])) & 15;
        const r = 8 * c + k;
        q[r * (cols / 2) + (i >> 1)] |= (i & 1) ? v << 4 : v;
      }
    }
  }
  for (let g = 0; g < ng; g++) {
    for (let c = 0; c < pc; c++) {
      const word = qz[g * pc + c];
      for (let k = 0; k < 8; k++) zeros[(8 * c + k) * ng + g] = (word >>> (4 * AWQ_NIBBLE[k])) & 15;
    }
    for (let r = 0; r < rows; r++) scales[r * ng + g] = halfToFloat(sc[g * rows + r]);
  }
  return { bits: 4, rows, cols, groupSize: G, q, scales, zeros, perm: null };
}

/**
 * GPTQ tensors of one Linear (`qweight`, `qzeros`, `scales`, `g_idx`) → sr3d's layout. With
 * act-order the inputs are permuted so that each group is contiguous (perm).
 */
export function fromGptq(t: { qweight: Named<Int32Array>; qzeros: Named<Int32Array>; scales: Named<Uint16Array>; gIdx?: Named<Int32Array> },
  rows: number, cols: number, cfg: Pick<QuantConfig, 'bits' | 'groupSize' | 'checkpointFormat'>, file: string): QuantWeight {
  const bits = cfg.bits, per = 32 / bits, mask = (1 << bits) - 1;
  const G = checkGroups(rows, cols, cfg.groupSize, t.qweight.key, file);
  const ng = cols / G;
  const fix = 'The tensor does not have the GPTQ layout its config declares: re-export it with AutoGPTQ / GPTQModel.';
  if (cols % per !== 0) throw bad(`in_features divisible by ${per}`, t.qweight.key, `in_features ${cols}`, file, t.qweight.key, fix);
  needShape(t.qweight, [cols / per, rows], file, fix);
  needShape(t.qzeros, [ng, rows / per], file, fix);
  needShape(t.scales, [ng, rows], file, fix);
  // The group of each input: g_idx (act-order) or i / G.
  const gOf = new Int32Array(cols);
  if (t.gIdx) {
    needShape(t.gIdx, [cols], file, fix);
    for (let i = 0; i < cols; i++) {
      const g = t.gIdx.data[i];
      if (!(g >= 0 && g < ng)) throw bad(`group indices in [0, ${ng})`, t.gIdx.key, `${g} at input ${i}`, file, t.gIdx.key, fix);
      gOf[i] = g;
    }
  } else {
    for (let i = 0; i < cols; i++) gOf[i] = Math.floor(i / G);
  }
  // Inputs ordered by group (stable): stored column j holds input perm[j]. Each group must have
  // exactly G inputs for the groups to be contiguous runs of G.
  const counts = new Int32Array(ng);
  for (let i = 0; i < cols; i++) counts[gOf[i]]++;
  const uneven = counts.findIndex((c) => c !== G);
  if (uneven >= 0) throw bad(`${G} inputs in every group`, t.gIdx?.key ?? t.qweight.key, `${counts[uneven]} in group ${uneven}`, file, t.gIdx?.key ?? '', fix);
  let sorted = true;
  for (let i = 1; i < cols && sorted; i++) sorted = gOf[i] >= gOf[i - 1];
  const perm = sorted ? null : Int32Array.from({ length: cols }, (_, i) => i).sort((a, b) => gOf[a] - gOf[b] || a - b);
  const bytesPerRow = (cols * bits) / 8;
  const q = new Uint8Array(rows * bytesPerRow);
  const scales = new Float32Array(rows * ng), zeros = new Uint8Array(rows * ng);
  const qw = t.qweight.data, qz = t.qzeros.data, sc = t.scales.data;
  const offset = cfg.checkpointFormat === 'gptq_v2' ? 0 : 1;
  for (let j = 0; j < cols; j++) {
    const i = perm ? perm[j] : j;
    const row = Math.floor(i / per), shift = bits * (i % per);
    for (let r = 0; r < rows; r++) {
      const v = (qw[row * rows + r] >>> shift) & mask;
      if (bits === 8) q[r * bytesPerRow + j] = v;
      else q[r * bytesPerRow + (j >> 1)] |= (j & 1) ? v << 4 : v;
    }
  }
  for (let g = 0; g < ng; g++) {
    for (let r = 0; r < rows; r++) {
      const z = ((qz[g * (rows / per) + Math.floor(r / per)] >>> (bits * (r % per))) & mask) + offset;
      if (z > 255) throw bad('zero points that fit 8 bits', t.qzeros.key, `${z}`, file, t.qzeros.key, fix);
      zeros[r * ng + g] = z;
      scales[r * ng + g] = halfToFloat(sc[g * rows + r]);
    }
  }
  return { bits, rows, cols, groupSize: G, q, scales, zeros, perm };
}

/** The quantized value of stored column j of row r. */
function qAt(w: QuantWeight, r: number, j: number): number {
  if (w.bits === 8) return w.q[(r * w.cols) + j];
  const b = w.q[r * (w.cols / 2) + (j >> 1)];
  return (j & 1) ? b >> 4 : b & 15;
}

/** The float32 weight [rows][cols] (nn.Linear layout, inputs in their original order): the reference every int kernel is tested against. */
export function dequantize(w: QuantWeight): Float32Array {
  const out = new Float32Array(w.rows * w.cols);
  const ng = w.cols / w.groupSize;
  for (let r = 0; r < w.rows; r++) {
    for (let j = 0; j < w.cols; j++) {
      const g = Math.floor(j / w.groupSize);
      const i = w.perm ? w.perm[j] : j;
      out[r * w.cols + i] = Math.fround(w.scales[r * ng + g] * (qAt(w, r, j) - w.zeros[r * ng + g]));
    }
  }
  return out;
}

/**
 * Round-to-nearest quantization of a float weight [rows][cols] (what `sr3d quantize` does; no
 * calibration data, so it is less accurate than AWQ's or GPTQ's search, and says so):
 *   int4: groups of `groupSize` inputs, asymmetric: s = (max − min) / 15, z = round(−min / s)
 *         clamped to [0, 15], q = clamp(round(w / s) + z, 0, 15) (AutoAWQ's pseudo-quantizer);
 *   int8: one group per row unless `groupSize` says otherwise, symmetric: s = max|w| / 127,
 *         z = 128, q = clamp(round(w / s) + 128, 0, 255) (GPTQ's symmetric 8-bit).
 * Scales are rounded to fp16 first (the published formats store fp16) and q is computed with
 * the rounded scale, so the dequantized weight is exactly what a reader of the files gets.
 */
export function quantizeRtn(w: Float32Array, rows: number, cols: number, bits: 4 | 8, groupSize = bits === 4 ? 128 : -1): QuantWeight {
  const G = groupSize === -1 ? cols : groupSize;
  if (!Number.isInteger(G) || G <= 0 || cols % G !== 0 || (bits === 4 && G % 2 !== 0)) {
    throw new RangeError(`quantizeRtn: in_features ${cols} must be a multiple of the group size ${G}`);
  }
  const ng = cols / G;
  const q = new Uint8Array((rows * cols * bits) / 8);
  const scales = new Float32Array(rows * ng), zeros = new Uint8Array(rows * ng);
  const qmax = bits === 4 ? 15 : 255;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < ng; g++) {
      let lo = Infinity, hi = -Infinity;
      for (let i = g * G; i < (g + 1) * G; i++) { const v = w[r * cols + i]; lo = Math.min(lo, v); hi = Math.max(hi, v); }
      let s: number, z: number;
      if (bits === 4) {
        s = halfToFloat(floatToHalf(Math.max(hi - lo, 1e-5) / 15));
        z = Math.min(15, Math.max(0, Math.round(-lo / s)));
      } else {
        s = halfToFloat(floatToHalf(Math.max(Math.abs(lo), Math.abs(hi), 1e-8) / 127));
        z = 128;
      }
      if (!(s > 0) || !Number.isFinite(s)) s = halfToFloat(floatToHalf(1e-5));
      scales[r * ng + g] = s;
      zeros[r * ng + g] = z;
      for (let i = g * G; i < (g + 1) * G; i++) {
        const v = Math.min(qmax, Math.max(0, Math.round(w[r * cols + i] / s) + z));
        if (bits === 8) q[r * cols + i] = v;
        else q[r * (cols / 2) + (i >> 1)] |= (i & 1) ? v << 4 : v;
      }
    }
  }
  return { bits, rows, cols, groupSize: G, q, scales, zeros, perm: null };
}

/** sr3d's int4 layout → AWQ gemm tensors (as AutoAWQ writes them). */
export function toAwq(w: QuantWeight): { qweight: Int32Array; qzeros: Int32Array; scales: Uint16Array; shapes: { qweight: number[]; qzeros: number[]; scales: number[] } } {
  if (w.bits !== 4 || w.perm) throw new RangeError('toAwq: needs an int4 weight without act-order');
  const { rows, cols, groupSize: G } = w;
  const ng = cols / G, pc = rows / 8;
  if (rows % 8 !== 0) throw new RangeError(`toAwq: out_features ${rows} must be a multiple of 8`);
  const qweight = new Int32Array(cols * pc), qzeros = new Int32Array(ng * pc), scales = new Uint16Array(ng * rows);
  for (let i = 0; i < cols; i++) {
    for (let c = 0; c < pc; c++) {
      let word = 0;
      for (let n = 0; n < 8; n++) word |= qAt(w, 8 * c + AWQ_ORDER[n], i) << (4 * n);
      qweight[i * pc + c] = word;
    }
  }
  for (let g = 0; g < ng; g++) {
    for (let c = 0; c < pc; c++) {
      let word = 0;
      for (let n = 0; n < 8; n++) word |= w.zeros[(8 * c + AWQ_ORDER[n]) * ng + g] << (4 * n);
      qzeros[g * pc + c] = word;
    }
    for (let r = 0; r < rows; r++) scales[g * rows + r] = floatToHalf(w.scales[r * ng + g]);
  }
  return { qweight, qzeros, scales, shapes: { qweight: [cols, pc], qzeros: [ng, pc], scales: [ng, rows] } };
}

/** sr3d's layout (int4 or int8, no act-order) → GPTQ tensors in the "gptq" checkpoint format (zero points stored minus one). */
export function toGptq(w: QuantWeight): { qweight: Int32Array; qzeros: Int32Array; scales: Uint16Array; gIdx: Int32Array; shapes: { qweight: number[]; qzeros: number[]; scales: number[]; g_idx: number[] } } {
  if (w.perm) throw new RangeError('toGptq: act-order weights are not written');
  const { rows, cols, groupSize: G, bits } = w;
  const per = 32 / bits, ng = cols / G;
  if (cols % per !== 0 || rows % per !== 0) throw new RangeError(`toGptq: in/out features must be multiples of ${per}`);
  const qweight = new Int32Array((cols / per) * rows), qzeros = new Int32Array(ng * (rows / per)), scales = new Uint16Array(ng * rows);
  for (let row = 0; row < cols / per; row++) {
    for (let r = 0; r < rows; r++) {
      let word = 0;
      for (let j = 0; j < per; j++) word |= qAt(w, r, row * per + j) << (bits * j);
      qweight[row * rows + r] = word;
    }
  }
  const mask = (1 << bits) - 1;
  // Stored minus one, so a zero point of 0 would read back as 2^bits (AutoGPTQ's known wrap).
  if (w.zeros.some((z) => z === 0)) throw new RangeError('toGptq: a zero point of 0 cannot be stored in the "gptq" format (it is stored minus one)');
  for (let g = 0; g < ng; g++) {
    for (let c = 0; c < rows / per; c++) {
      let word = 0;
      for (let j = 0; j < per; j++) word |= ((w.zeros[(c * per + j) * ng + g] - 1) & mask) << (bits * j);
      qzeros[g * (rows / per) + c] = word;
    }
    for (let r = 0; r < rows; r++) scales[g * rows + r] = floatToHalf(w.scales[r * ng + g]);
  }
  const gIdx = Int32Array.from({ length: cols }, (_, i) => Math.floor(i / G));
  return { qweight, qzeros, scales, gIdx, shapes: { qweight: [cols / per, rows], qzeros: [ng, rows / per], scales: [ng, rows], g_idx: [cols] } };
}

/** Bytes a quantized Linear keeps resident (q + scales + zeros + perm). */
export function quantBytes(w: QuantWeight): number {
  return w.q.byteLength + w.scales.byteLength + w.zeros.byteLength + (w.perm ? w.perm.byteLength : 0);
}
