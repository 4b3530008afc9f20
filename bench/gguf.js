#!/usr/bin/env node
// A bench-only GGUF v3 writer: the LLM of an sr3d checkpoint (its llm/ folder, read with sr3d's own
// loader) as a llama.cpp qwen2 model, so bench/peer.js can time llama.cpp on the same weights.
//   node bench/gguf.js <checkpoint dir> <out.gguf> [bf16|f16|q8_0|q4_0|f32]
// Not part of the package: nothing in lib/ depends on it.
//
// Layout (llama.cpp's gguf-py / ggml/include/gguf.h): "GGUF", u32 version 3, u64 tensor count,
// u64 kv count, the kvs (string key, u32 type, value), the tensor infos (name, u32 n_dims, u64 dims
// innermost first, u32 ggml type, u64 offset into the data section), padding to the alignment,
// then the data section with every tensor starting on a multiple of the alignment (32).
//
// Types per tensor, as llama.cpp's own tools would write them: 1-D tensors (norms, biases) are F32
// in every mode (convert_hf_to_gguf.py); bf16/f16/q8_0 put every matrix, token_embd and output
// included, in that type (convert_hf_to_gguf.py --outtype); q4_0 is llama-quantize's Q4_0 mix:
// every matrix Q4_0 except output, which llama-quantize makes Q6_K and, when its row length is not
// a multiple of 256 (896 and 64 here), falls back to Q8_0 — this writer has no Q6_K, so it writes
// Q8_0 and refuses a model whose hidden size is a multiple of 256.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..');

const GGUF_TYPE = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 };
// ggml_type ids (ggml.h) and the block geometry of each: [elements per block, bytes per block].
const GGML = { f32: [0, 1, 4], f16: [1, 1, 2], q4_0: [2, 32, 18], q8_0: [8, 32, 34], bf16: [30, 1, 2] };
// llama_ftype (general.file_type): what the bulk of the matrices are.
const FILE_TYPE = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, bf16: 32 };
const TOKEN_TYPE = { normal: 1, control: 3, userDefined: 4, unused: 5 };
const TYPES = Object.keys(FILE_TYPE);

/** HF Qwen2 name → GGUF name (gguf-py tensor_mapping.py, MODEL_ARCH.QWEN2). */
function ggufName(hf) {
  const fixed = { 'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight' };
  if (fixed[hf]) return fixed[hf];
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  const part = m && {
    input_layernorm: 'attn_norm', post_attention_layernorm: 'ffn_norm',
    'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
    'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down',
  }[m[2]];
  if (!part) throw new Error(`Expected a Qwen2 LLM tensor name but received ${hf}: only model.embed_tokens, model.norm, lm_head and model.layers.N.{self_attn,mlp,*_layernorm} are mapped.`);
  return `blk.${m[1]}.${part}.${m[3]}`;
}

// ---- float conversions, float32 arithmetic as ggml does it ----
const f32 = Math.fround;
/** roundf: half away from zero. */
const roundf = (x) => (x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5));

/** Q8_0 (ggml-quants.c quantize_row_q8_0_ref): per 32: d = amax/127 (stored fp16), q = roundf(x/d). */
function quantQ8_0(x, out, floatToF16) {
  const nb = x.length / 32;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < nb; i++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[i * 32 + j]));
    const d = f32(amax / 127);
    const id = d ? f32(1 / d) : 0;
    dv.setUint16(i * 34, floatToF16(d), true);
    for (let j = 0; j < 32; j++) dv.setInt8(i * 34 + 2 + j, roundf(f32(x[i * 32 + j] * id)));
  }
}

/**
 * Q4_0 (quantize_row_q4_0_ref): per 32: d = max/-8 where max is the signed value of largest
 * magnitude (stored fp16), q = min(15, trunc(x/d + 8.5)), byte j = q[j] | q[j+16] << 4.
 */
function quantQ4_0(x, out, floatToF16) {
  const nb = x.length / 32;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < nb; i++) {
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[i * 32 + j];
      if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
    }
    const d = f32(max / -8);
    const id = d ? f32(1 / d) : 0;
    dv.setUint16(i * 18, floatToF16(d), true);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(f32(f32(x[i * 32 + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(f32(f32(x[i * 32 + 16 + j] * id) + 8.5)));
      dv.setUint8(i * 18 + 2 + j, q0 | (q1 << 4));
    }
  }
}

// ---- the GGUF byte stream ----
class Bytes {
  constructor() { this.parts = []; this.length = 0; }
  push(b) { this.parts.push(b); this.length += b.length; }
  u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.push(b); }
  i32(v) { const b = Buffer.alloc(4); b.writeInt32LE(v); this.push(b); }
  u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  f32(v) { const b = Buffer.alloc(4); b.writeFloatLE(v); this.push(b); }
  str(s) { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  value(type, v) {
    switch (type) {
      case 'u32': return this.u32(v);
      case 'i32': return this.i32(v);
      case 'f32': return this.f32(v);
      case 'bool': return this.push(Buffer.from([v ? 1 : 0]));
      case 'string': return this.str(v);
      default: throw new Error(`gguf.js: no writer for value type ${type}`);
    }
  }
  kv(key, type, v) {
    this.str(key);
    if (Array.isArray(v)) {
      this.u32(GGUF_TYPE.array); this.u32(GGUF_TYPE[type]); this.u64(v.length);
      for (const x of v) this.value(type, x);
    } else {
      this.u32(GGUF_TYPE[type]); this.value(type, v);
    }
  }
  buffer() { return Buffer.concat(this.parts); }
}

/**
 * tokenizer.ggml.* from llm/tokenizer.json + tokenizer_config.json, as convert_hf_to_gguf.py's
 * _set_vocab_gpt2 does: one token per id up to the config's vocab_size ([PADn], UNUSED, where the
 * tokenizer has none), added tokens CONTROL when special else USER_DEFINED, merges as "a b".
 */
function tokenizerKvs(llmDir, vocabSize, eosIds) {
  const tj = JSON.parse(fs.readFileSync(path.join(llmDir, 'tokenizer.json'), 'utf8'));
  let tc = {};
  try { tc = JSON.parse(fs.readFileSync(path.join(llmDir, 'tokenizer_config.json'), 'utf8')); } catch { /* optional here */ }
  const tokens = new Array(vocabSize).fill(null);
  const types = new Array(vocabSize).fill(TOKEN_TYPE.normal);
  const byText = new Map();
  for (const [t, id] of Object.entries(tj.model.vocab)) if (id < vocabSize) { tokens[id] = t; byText.set(t, id); }
  for (const a of tj.added_tokens ?? []) {
    if (a.id >= vocabSize) continue;
    tokens[a.id] = a.content;
    types[a.id] = a.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
    byText.set(a.content, a.id);
  }
  for (let i = 0; i < vocabSize; i++) if (tokens[i] === null) { tokens[i] = `[PAD${i}]`; types[i] = TOKEN_TYPE.unused; }
  const merges = (tj.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const idOf = (t) => {
    const s = typeof t === 'string' ? t : t && t.content;
    return s !== undefined && byText.has(s) ? byText.get(s) : null;
  };
  const kvs = [
    ['tokenizer.ggml.model', 'string', 'gpt2'],
    ['tokenizer.ggml.pre', 'string', 'qwen2'],
    ['tokenizer.ggml.tokens', 'string', tokens],
    ['tokenizer.ggml.token_type', 'i32', types],
    ['tokenizer.ggml.merges', 'string', merges],
  ];
  // Qwen2's tokenizer_config names no usable bos; convert then takes config.json's ids
  // (<|endoftext|>, 151643), which is also its padding token.
  const eos = idOf(tc.eos_token) ?? eosIds[0];
  const endoftext = byText.get('<|endoftext|>') ?? eos;
  kvs.push(['tokenizer.ggml.eos_token_id', 'u32', eos]);
  kvs.push(['tokenizer.ggml.bos_token_id', 'u32', idOf(tc.bos_token) ?? endoftext]);
  kvs.push(['tokenizer.ggml.padding_token_id', 'u32', idOf(tc.pad_token) ?? endoftext]);
  kvs.push(['tokenizer.ggml.add_bos_token', 'bool', !!tc.add_bos_token]);
  return kvs;
}

/** The GGML type of one tensor in a given mode (see the header comment). */
function tensorType(hf, shape, mode) {
  if (shape.length === 1 || mode === 'f32') return 'f32';
  if (mode === 'q4_0' && hf === 'lm_head.weight') {
    if (shape[1] % 256 === 0) throw new Error(`gguf.js writes no Q6_K: llama-quantize's Q4_0 puts output.weight (row length ${shape[1]}, a multiple of 256) in Q6_K. Use q8_0, f16 or bf16 for this model.`);
    return 'q8_0';
  }
  if ((mode === 'q4_0' || mode === 'q8_0') && shape[shape.length - 1] % 32 !== 0) return 'f16'; // convert's fallback
  return mode;
}

/**
 * Writes the LLM of the sr3d checkpoint at `dir` as a GGUF file. Returns { file, bytes,
 * tensors: [{ name, type, bytes }] } so callers can sum what a decode step reads.
 */
async function writeGguf(dir, file, mode = 'bf16', { log = () => {} } = {}) {
  if (!TYPES.includes(mode)) throw new Error(`Expected one of ${TYPES.join(', ')} for the GGUF type but received ${mode}.`);
  const sr3d = require(root);
  const ckpt = await sr3d.loadCheckpoint(dir);
  const lc = ckpt.llm.config, w = ckpt.llm.weights;
  const keys = w.keys().filter((k) => !(lc.tieWordEmbeddings && k === 'lm_head.weight'));
  const infos = keys.map((k) => {
    const shape = w.info(k).shape;
    const type = tensorType(k, shape, mode);
    const n = shape.reduce((a, b) => a * b, 1);
    const [, per, bytes] = GGML[type];
    return { hf: k, name: ggufName(k), shape, type, bytes: (n / per) * bytes };
  });
  // llama.cpp's own order: token_embd, the blocks, then output_norm and output.
  const rank = (n) => (n.startsWith('token_embd') ? -1 : n.startsWith('blk.') ? Number(n.split('.')[1]) : 1e9);
  infos.sort((a, b) => rank(a.name) - rank(b.name) || (a.name < b.name ? -1 : 1));

  const ALIGN = 32;
  const h = new Bytes();
  const kvs = [
    ['general.architecture', 'string', 'qwen2'],
    ['general.name', 'string', `sr3d bench ${path.basename(path.resolve(dir))}`],
    ['general.file_type', 'u32', FILE_TYPE[mode]],
    ['general.alignment', 'u32', ALIGN],
    ['qwen2.block_count', 'u32', lc.numLayers],
    ['qwen2.context_length', 'u32', lc.maxPositionEmbeddings],
    ['qwen2.embedding_length', 'u32', lc.hiddenSize],
    ['qwen2.feed_forward_length', 'u32', lc.intermediateSize],
    ['qwen2.attention.head_count', 'u32', lc.numHeads],
    ['qwen2.attention.head_count_kv', 'u32', lc.numKvHeads],
    ['qwen2.rope.freq_base', 'f32', lc.ropeTheta],
    ['qwen2.attention.layer_norm_rms_epsilon', 'f32', lc.rmsNormEps],
    ...(mode === 'q4_0' || mode === 'q8_0' ? [['general.quantization_version', 'u32', 2]] : []),
    ...tokenizerKvs(lc.tokenizerDir, lc.vocabSize, lc.eosTokenIds),
  ];
  h.push(Buffer.from('GGUF', 'latin1'));
  h.u32(3);
  h.u64(infos.length);
  h.u64(kvs.length);
  for (const [k, t, v] of kvs) h.kv(k, t, v);
  let offset = 0;
  for (const t of infos) {
    h.str(t.name);
    h.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) h.u64(t.shape[i]); // ggml ne[0] is the innermost (row) length
    h.u32(GGML[t.type][0]);
    h.u64(offset);
    t.offset = offset;
    offset += Math.ceil(t.bytes / ALIGN) * ALIGN;
  }
  const head = h.buffer();
  const dataStart = Math.ceil(head.length / ALIGN) * ALIGN;

  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, head, 0, head.length, 0);
    if (dataStart > head.length) fs.writeSync(fd, Buffer.alloc(dataStart - head.length), 0, dataStart - head.length, head.length);
    for (const t of infos) {
      const src = w.read(t.hf);
      let out;
      if (t.type === src.dtype) {
        out = new Uint8Array(src.data.buffer, src.data.byteOffset, src.data.byteLength);
      } else {
        const x = sr3d.toFloat32(src);
        if (t.type === 'f32') out = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
        else if (t.type === 'bf16' || t.type === 'f16') {
          const e = sr3d.fromFloat32(x, t.type);
          out = new Uint8Array(e.buffer, e.byteOffset, e.byteLength);
        } else {
          out = new Uint8Array(t.bytes);
          (t.type === 'q8_0' ? quantQ8_0 : quantQ4_0)(x, out, sr3d.floatToF16);
        }
      }
      if (out.byteLength !== t.bytes) throw new Error(`gguf.js: ${t.name} came out ${out.byteLength} bytes where ${t.bytes} were expected`);
      fs.writeSync(fd, out, 0, out.byteLength, dataStart + t.offset);
      log(`  ${t.name} ${t.type} [${t.shape.join(', ')}]`);
    }
    const end = dataStart + offset;
    fs.ftruncateSync(fd, end); // the last tensor's padding
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  return { file, bytes: fs.statSync(file).size, tensors: infos.map(({ name, type, bytes, shape }) => ({ name, type, bytes, shape })) };
}

/**
 * Bytes one decode step reads from a GGUF's weights: every tensor once, but only one row of
 * token_embd (the same rule as bench/engine.js's decodeBytesPerToken, in the file's own types).
 */
function ggufDecodeBytes(tensors) {
  let bytes = 0;
  for (const t of tensors) bytes += t.name === 'token_embd.weight' ? t.bytes / t.shape[0] : t.bytes;
  return bytes;
}

module.exports = { writeGguf, ggufDecodeBytes, quantQ8_0, quantQ4_0, TYPES };

if (require.main === module) {
  const [dir, out, mode = 'bf16'] = process.argv.slice(2);
  if (!dir || !out) {
    console.error('usage: node bench/gguf.js <checkpoint dir> <out.gguf> [bf16|f16|q8_0|q4_0|f32]');
    process.exit(2);
  }
  writeGguf(dir, out, mode, { log: (m) => process.stderr.write(m + '\n') })
    .then((r) => console.log(`${r.file}: ${(r.bytes / 1e6).toFixed(1)} MB, ${r.tensors.length} tensors`))
    .catch((e) => { console.error(e); process.exit(1); });
}
