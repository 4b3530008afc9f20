/**
 * `quantizeCheckpoint` (`sr3d quantize`): writes a copy of a bf16/f16/f32 checkpoint whose LLM
 * attention and MLP projections (q/k/v/o, gate/up/down) are quantized by ROUND-TO-NEAREST
 * (lib/quant.ts quantizeRtn: no calibration data, so less accurate than AWQ's or GPTQ's search;
 * use a published AWQ/GPTQ checkpoint when quality matters). Everything else — vision tower,
 * projector, spatial PE, region extractor, norms, biases — is copied as is, and so are lm_head
 * and the embedding table unless `lmHead` (`--lm-head`) / `embeddings` (`--embeddings`) ask for
 * them too.
 *   int4: AWQ gemm (quant_method awq, version gemm, zero_point true), asymmetric, `group` inputs
 *         per scale (default 128);
 *   int8: GPTQ 8-bit symmetric per-channel (group_size -1, desc_act false, sym true,
 *         checkpoint_format gptq).
 * With `lmHead`, lm_head is quantized the same way and `"lm_head": true` is recorded in
 * quantization_config, as GPTQModel does; AutoAWQ itself never quantizes lm_head, so an int4
 * checkpoint written so is read by sr3d (and GPTQModel-style loaders), not by AutoAWQ.
 * With `embeddings`, model.embed_tokens.weight ([vocab][hidden]: the same matrix shape as
 * lm_head) is quantized with the same bits and group, stored in the same tensors as a quantized
 * lm_head, and `"embed_tokens": true` is recorded; no AutoAWQ / AutoGPTQ / GPTQModel loader reads
 * a quantized embedding, so such a checkpoint is for sr3d only. An lm_head tied to the embeddings
 * (no lm_head tensor) is the quantized table then (one copy), so `lmHead` on a tied model is
 * accepted with `embeddings` (implied) and refused without it (the table would stay float).
 * The LLM weights go to one llm/model.safetensors, written one tensor at a time (one Linear is
 * quantized and held at a time).
 */
import * as fs from 'fs';
import * as path from 'path';

import { InvalidArgumentError } from './errors';
import { parseQuantConfig, quantizeRtn, toAwq, toGptq } from './quant';
import type { QuantWeight } from './quant';
import { openWeights, readJson, toFloat32, writeSafetensorsStreaming } from './safetensors';
import type { TensorSpec } from './safetensors';
import { LLM_WEIGHTS, weightOf } from './weights';

export interface QuantizeOptions {
  bits: 4 | 8;
  /** int4: inputs per group (default 128; must divide every projection's in features). int8: -1 only (per channel). */
  group?: number;
  /** Quantize lm_head too (default false: it stays in the checkpoint's float dtype). */
  lmHead?: boolean;
  /** Quantize the embedding table (and so a tied lm_head) too (default false: it stays in the checkpoint's float dtype). */
  embeddings?: boolean;
}

export interface QuantizeResult {
  outDir: string;
  /** Matrices quantized (the projections, then lm_head and the embedding table when asked for). */
  quantized: number;
  /** The embedding table was quantized. */
  embeddings: boolean;
  /** lm_head: its own quantized tensors, the quantized embedding table (tied), or float. */
  lmHead: 'quantized' | 'tied' | 'float';
  /** LLM weight bytes before and after. */
  bytesIn: number;
  bytesOut: number;
}

/** The LLM projections sr3d runs quantized. */
export const QUANTIZABLE = /^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$/;

export async function quantizeCheckpoint(inDir: string, outDir: string, opts: QuantizeOptions): Promise<QuantizeResult> {
  const bits = opts.bits;
  if (bits !== 4 && bits !== 8) throw new InvalidArgumentError(`Expected 4 or 8 for bits but received ${String(bits)}`);
  const group = opts.group ?? (bits === 4 ? 128 : -1);
  if (bits === 8 && group !== -1) throw new InvalidArgumentError(`Expected group -1 (per channel) for int8 but received ${group}. int8 is written as GPTQ symmetric per-channel.`);
  if (bits === 4 && !(Number.isInteger(group) && group >= 2 && group % 2 === 0)) throw new InvalidArgumentError(`Expected an even group size >= 2 for int4 but received ${group}`);
  const src = path.resolve(inDir), dst = path.resolve(outDir);
  const sllm = path.join(src, 'llm');
  if (!fs.existsSync(path.join(sllm, 'config.json'))) throw new InvalidArgumentError(`Expected a checkpoint folder with llm/config.json for <in> but received ${src}`);
  const cfg = readJson(path.join(sllm, 'config.json'), 'the LLM config');
  if (parseQuantConfig(cfg, path.join(sllm, 'config.json'))) throw new InvalidArgumentError(`Expected an unquantized checkpoint for <in> but ${sllm}/config.json has a quantization_config`);
  if (src === dst) throw new InvalidArgumentError('Expected <out> to differ from <in>');
  if (fs.existsSync(dst) && fs.readdirSync(dst).length) throw new InvalidArgumentError(`Expected an empty or new folder for <out> but ${dst} is not empty`);

  const weights = openWeights(sllm);
  const embedKey = weightOf(LLM_WEIGHTS.embedTokens), headKey = weightOf(LLM_WEIGHTS.lmHead);
  const embeddings = opts.embeddings === true, tied = !weights.has(headKey);
  const lmHead = opts.lmHead === true && !tied;
  if (opts.lmHead === true && tied && !embeddings) throw new InvalidArgumentError(`Expected an ${headKey} tensor for lmHead (--lm-head) but ${sllm} has none (its lm_head is tied to the embeddings); add embeddings (--embeddings) to quantize the tied table, or quantize without --lm-head`);
  if (embeddings && !weights.has(embedKey)) throw new InvalidArgumentError(`Expected a ${embedKey} tensor for embeddings (--embeddings) but ${sllm} has none; quantize without --embeddings`);
  const quantizable = (key: string): boolean => QUANTIZABLE.test(key) || (lmHead && key === headKey) || (embeddings && key === embedKey);
  const specs: TensorSpec[] = [];
  const qparts = new Set<string>();
  let bytesIn = 0, quantized = 0;
  for (const key of weights.keys()) {
    const info = weights.info(key);
    bytesIn += info.bytes;
    if (!quantizable(key)) {
      specs.push({ name: key, dtype: info.dtype, shape: info.shape });
      continue;
    }
    const [rows, cols] = info.shape;
    const G = group === -1 ? cols : group;
    if (cols % G !== 0) throw new InvalidArgumentError(`Expected --group ${group} to divide the in features of ${key} but received ${cols}; choose a group size that divides it`);
    const per = 32 / bits, p = key.slice(0, -'.weight'.length), ng = cols / G;
    if (bits === 4 && rows % 8 !== 0) throw new InvalidArgumentError(`Expected out features divisible by 8 (AWQ packing) for ${key} but received ${rows}`);
    if (bits === 8 && (rows % per !== 0 || cols % per !== 0)) throw new InvalidArgumentError(`Expected in/out features divisible by 4 (GPTQ packing) for ${key} but received [${rows}, ${cols}]`);
    if (bits === 4) {
      specs.push({ name: `${p}.qweight`, dtype: 'i32', shape: [cols, rows / 8] }, { name: `${p}.qzeros`, dtype: 'i32', shape: [ng, rows / 8] },
        { name: `${p}.scales`, dtype: 'f16', shape: [ng, rows] });
    } else {
      specs.push({ name: `${p}.qweight`, dtype: 'i32', shape: [cols / per, rows] }, { name: `${p}.qzeros`, dtype: 'i32', shape: [ng, rows / per] },
        { name: `${p}.scales`, dtype: 'f16', shape: [ng, rows] }, { name: `${p}.g_idx`, dtype: 'i32', shape: [cols] });
    }
    for (const sp of specs.slice(bits === 4 ? -3 : -4)) qparts.add(sp.name);
    quantized++;
  }

  // Everything but the LLM weights, then the LLM weights and config.
  fs.mkdirSync(dst, { recursive: true });
  fs.cpSync(src, dst, {
    recursive: true,
    filter: (f) => !(path.dirname(f) === sllm && (f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json'))),
  });
  let cur: { prefix: string; t: Record<string, Int32Array | Uint16Array> } | null = null;
  const part = (name: string): Int32Array | Uint16Array => {
    const dot = name.lastIndexOf('.');
    const prefix = name.slice(0, dot), which = name.slice(dot + 1);
    if (!cur || cur.prefix !== prefix) {
      const t = weights.read(`${prefix}.weight`);
      const [rows, cols] = t.shape;
      const w: QuantWeight = quantizeRtn(toFloat32(t), rows, cols, bits, group === -1 ? -1 : group);
      const t4 = bits === 4 ? toAwq(w) : null, t8 = bits === 8 ? toGptq(w) : null;
      const packed = (t4 ?? t8)!;
      const parts: Record<string, Int32Array | Uint16Array> = { qweight: packed.qweight, qzeros: packed.qzeros, scales: packed.scales };
      if (t8) parts.g_idx = t8.gIdx;
      cur = { prefix, t: parts };
    }
    return cur!.t[which];
  };
  const outFile = path.join(dst, 'llm', 'model.safetensors');
  writeSafetensorsStreaming(outFile, specs, (s) => (qparts.has(s.name) ? part(s.name) : weights.read(s.name).data), { format: 'pt' });
  const qc = {
    ...(bits === 4
      ? { quant_method: 'awq', bits: 4, group_size: group, version: 'gemm', zero_point: true }
      : { quant_method: 'gptq', bits: 8, group_size: -1, desc_act: false, sym: true, checkpoint_format: 'gptq' }),
    ...(lmHead ? { lm_head: true } : {}),
    ...(embeddings ? { embed_tokens: true } : {}),
    quantizer: 'sr3d round-to-nearest',
  };
  fs.writeFileSync(path.join(dst, 'llm', 'config.json'), `${JSON.stringify({ ...cfg, quantization_config: qc }, null, 2)}\n`);
  return {
    outDir: dst, quantized, embeddings, lmHead: lmHead ? 'quantized' : tied && embeddings ? 'tied' : 'float', bytesIn, bytesOut: fs.statSync(outFile).size,
  };
}
