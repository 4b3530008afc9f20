/**
 * The LLM weights of a quantized checkpoint (llm/config.json `quantization_config`) as a
 * {@link WeightSet}: each quantized Linear's `<prefix>.qweight / .qzeros / .scales (/ .g_idx)`
 * appears as the one key `<prefix>.weight` — info() its logical [out, in] (dtype f32: read()
 * returns the dequantized float32 weight, for float references), quantized() the weight repacked
 * into sr3d's layout (lib/quant.ts, fromAwq / fromGptq) for the engine's int4/int8 kernels.
 * Modules without a qweight (mixed checkpoints, `modules_to_not_convert`, embeddings and lm_head
 * unless quantized) are passed through as stored; lm_head is a quantized Linear like the others
 * when it has a qweight, and must have one when the config says `"lm_head": true`. So is the
 * embedding table `model.embed_tokens` ([vocab][hidden], the engine dequantizes the rows it
 * looks up), which must have one when the config says `"embed_tokens": true` (sr3d quantize
 * --embeddings). Repacking happens on each quantized() call (like read(), lazy, nothing held);
 * the tensors' presence, dtypes and shapes are checked when the set is made.
 */
import type { WeightInfo, WeightSet, WeightTensor } from './checkpoint_types';
import { CheckpointError } from './errors';
import { dequantize, fromAwq, fromGptq } from './quant';
import type { QuantConfig, QuantWeight } from './quant';
import type { RawInfo, RawTensorSource } from './safetensors';
import { LLM_WEIGHTS, weightOf } from './weights';

interface QuantEntry { prefix: string; rows: number; cols: number; file: string; bytes: number; gIdx: boolean }

const PARTS = ['qweight', 'qzeros', 'scales', 'g_idx'] as const;

function fail(file: string, what: string, key: string, received: string): CheckpointError {
  return new CheckpointError(
    `Expected ${what} for tensor '${key}' but received ${received} (in ${file}). The quantized tensors do not match the layout quantization_config declares: export the checkpoint again (AutoAWQ gemm / AutoGPTQ), or write one with \`sr3d quantize\`.`,
    file, key,
  );
}

/** The quantized LLM weight set over `base` (see the module comment). */
export function quantizedWeightSet(base: WeightSet & RawTensorSource, qc: QuantConfig, configFile: string): WeightSet {
  const entries = new Map<string, QuantEntry>();
  const hidden = new Set<string>();
  const per = 32 / qc.bits;
  for (const k of base.keys()) {
    if (!k.endsWith('.qweight')) continue;
    const prefix = k.slice(0, -'.qweight'.length);
    const info = (part: string, dtype: 'I32' | 'F16', rank: number): RawInfo => {
      const key = `${prefix}.${part}`;
      if (!base.has(key)) throw fail(base.rawInfo(k).file, `a tensor beside ${k}`, key, 'none');
      const i = base.rawInfo(key);
      if (i.dtype !== dtype) throw fail(i.file, `dtype ${dtype}`, key, i.dtype);
      if (i.shape.length !== rank || i.shape.some((d) => !(d >= 1))) throw fail(i.file, `a rank-${rank} shape of positive sizes`, key, `[${i.shape.join(', ')}]`);
      return i;
    };
    const qw = info('qweight', 'I32', 2), qz = info('qzeros', 'I32', 2), sc = info('scales', 'F16', 2);
    // AWQ gemm: qweight [in][out / 8]; GPTQ: qweight [in · bits / 32][out]. scales [groups][out] in both.
    const rows = sc.shape[1];
    const cols = qc.method === 'awq' ? qw.shape[0] : qw.shape[0] * per;
    const wantQw = qc.method === 'awq' ? [cols, rows / 8] : [cols / per, rows];
    if (qw.shape[0] !== wantQw[0] || qw.shape[1] !== wantQw[1]) {
      throw fail(qw.file, `shape [${wantQw.join(', ')}] (scales say ${rows} outputs)`, qw.key, `[${qw.shape.join(', ')}]`);
    }
    if (base.has(`${prefix}.weight`)) throw fail(qw.file, `either ${prefix}.weight or its quantized tensors, not both`, `${prefix}.weight`, 'both');
    let bytes = qw.bytes + qz.bytes + sc.bytes;
    const gIdx = base.has(`${prefix}.g_idx`);
    if (gIdx) {
      const g = info('g_idx', 'I32', 1);
      if (g.shape[0] !== cols) throw fail(g.file, `shape [${cols}]`, g.key, `[${g.shape.join(', ')}]`);
      bytes += g.bytes;
    }
    entries.set(`${prefix}.weight`, { prefix, rows, cols, file: qw.file, bytes, gIdx: gIdx && qc.method === 'gptq' });
    for (const p of PARTS) hidden.add(`${prefix}.${p}`);
  }
  if (entries.size === 0) {
    throw new CheckpointError(
      `Expected quantized Linears (<prefix>.qweight, as quantization_config declares) in the LLM weights but received none (in ${configFile}). Remove quantization_config from the config, or use the quantized weights it belongs to.`,
      configFile, 'quantization_config',
    );
  }
  if (qc.lmHead && !entries.has('lm_head.weight')) {
    throw new CheckpointError(
      `Expected lm_head.qweight (quantization_config says "lm_head": true) in the LLM weights but received ${base.has('lm_head.weight') ? 'an unquantized lm_head.weight' : 'no lm_head tensors'} (in ${configFile}). Set "lm_head" to false, or use the quantized weights the config belongs to.`,
      configFile, 'quantization_config.lm_head',
    );
  }
  const embed = weightOf(LLM_WEIGHTS.embedTokens);
  if (qc.embedTokens && !entries.has(embed)) {
    throw new CheckpointError(
      `Expected ${LLM_WEIGHTS.embedTokens}.qweight (quantization_config says "embed_tokens": true) in the LLM weights but received ${base.has(embed) ? `an unquantized ${embed}` : 'no embedding tensors'} (in ${configFile}). Set "embed_tokens" to false, or use the quantized weights the config belongs to.`,
      configFile, 'quantization_config.embed_tokens',
    );
  }
  const keys = [...base.keys().filter((k) => !hidden.has(k)), ...entries.keys()];
  const keySet = new Set(keys);

  const quantized = (key: string): QuantWeight | undefined => {
    const e = entries.get(key);
    if (!e) return undefined;
    const p = e.prefix;
    const qweight = base.readRaw(`${p}.qweight`, 'I32') as { key: string; shape: number[]; data: Int32Array };
    const qzeros = base.readRaw(`${p}.qzeros`, 'I32') as { key: string; shape: number[]; data: Int32Array };
    const scales = base.readRaw(`${p}.scales`, 'F16') as { key: string; shape: number[]; data: Uint16Array };
    const G = qc.groupSize === -1 ? e.cols : qc.groupSize;
    if (qc.method === 'awq') return fromAwq({ qweight, qzeros, scales }, e.rows, e.cols, G, e.file);
    const gIdx = e.gIdx ? (base.readRaw(`${p}.g_idx`, 'I32') as { key: string; shape: number[]; data: Int32Array }) : undefined;
    return fromGptq({ qweight, qzeros, scales, gIdx }, e.rows, e.cols, { ...qc, groupSize: G }, e.file);
  };
  return {
    keys: () => [...keys],
    has: (key) => keySet.has(key),
    info: (key): WeightInfo => {
      const e = entries.get(key);
      return e ? { name: key, dtype: 'f32', shape: [e.rows, e.cols], file: e.file, bytes: e.bytes } : base.info(key);
    },
    read: (key): WeightTensor => {
      const w = quantized(key);
      return w ? { name: key, dtype: 'f32', shape: [w.rows, w.cols], data: dequantize(w) } : base.read(key);
    },
    quantized,
    bytes: base.bytes,
  };
}
