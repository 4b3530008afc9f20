/**
 * A TensorRT-LLM request from sr3d's spliced prompt (issue 14): the image and region rows go to
 * a prompt table, and the input ids reference them as "fake" ids past the vocabulary.
 *
 * The convention is TensorRT-LLM's own (tensorrt_llm/runtime/multimodal_model_runner.py,
 * `setup_fake_prompts`: `fake_prompt_id = torch.arange(vocab_size, vocab_size + rows)`; in the C++
 * runtime with in-flight batching each request's table starts again at `vocab_size`): the
 * embedding layer looks an id `>= vocab_size` up as row `id - vocab_size` of the request's
 * `PromptTuningConfig` embedding table, of shape [rows, hidden] in the engine's dtype.
 *
 *   prompt ids (n) + spliced (L, D) f32  →  inputIds (L) int32, table (R, D) fp16/bf16/f32
 *
 * Text tokens, and the end tokens after each image block (VILA's "\n"), stay as their own ids:
 * TensorRT-LLM embeds them itself from the same `embed_tokens` weights. Only projector rows and
 * region rows go to the table, so R = images · tokensPerTile + region occurrences.
 */
import { invalidArgument } from '../errors';
import type { BuiltPrompt, SplicedEmbeddings } from '../prompt';
import { floatToBf16, floatToF16 } from '../safetensors';

/** The engine dtypes a prompt table can take (config.json `pretrained_config.dtype`). */
export type TrtllmDtype = 'float16' | 'bfloat16' | 'float32';

/** What {@link promptTableRequest} builds. */
export interface PromptTableRequest {
  /** (L) input ids: a text id as it is, table row i as `vocabSize + i`. */
  inputIds: Int32Array;
  /** (rows, hidden) row-major: raw fp16 / bf16 bits (Uint16Array) or float32 values. */
  table: Uint16Array | Float32Array;
  rows: number;
  hidden: number;
  dtype: TrtllmDtype;
  vocabSize: number;
  /** For region K, the table row of its first occurrence (-1 when the prompt never names it): a follow-up's `<regionK>` reuses it. */
  regionRows: number[];
}

/** What {@link promptTableRequest} takes: a prepared request's prompt and its splice. */
export interface PromptTableInput {
  prompt: BuiltPrompt;
  spliced: SplicedEmbeddings;
  /** The tokens after each image block (the same as given to the splice; `[]` for NVILA-Lite without end tokens). */
  endTokenIds: readonly number[];
  /** The LLM's vocabulary size (`vocab_size`, equal in the checkpoint and the engine). */
  vocabSize: number;
  hidden: number;
  dtype: TrtllmDtype;
  /** Projector rows per image (121 for NVILA): when given, each image's range must hold exactly these before its end tokens. */
  tokensPerTile?: number;
}

/**
 * float32 values → the engine dtype, rounded to nearest even like torch's `.to(torch.float16)` /
 * `.to(torch.bfloat16)` (fp16 overflow → ±Inf, subnormals kept). Values must be finite (the
 * caller checks): torch writes NaN as 0x7FC0 in bf16, this function keeps the payload's top bits.
 */
export function toEngineDtype(x: Float32Array, dtype: TrtllmDtype): Uint16Array | Float32Array {
  if (dtype === 'float32') return Float32Array.from(x);
  const out = new Uint16Array(x.length);
  const enc = dtype === 'bfloat16' ? floatToBf16 : floatToF16;
  for (let i = 0; i < x.length; i++) out[i] = enc(x[i]);
  return out;
}

const DTYPES: readonly TrtllmDtype[] = ['float16', 'bfloat16', 'float32'];

/**
 * Builds the TensorRT-LLM input ids and prompt table of a prepared request (`SR3D.prepare`'s
 * `prompt` and `spliced`). Walks the prompt: an image token becomes its block's rows (table ids)
 * then the end token ids, a region token its region row (a table id), any other token itself.
 *
 * Errors ({@link InvalidArgumentError}): a splice that does not match the prompt (image or region
 * counts, row positions, length), a text id outside the vocabulary, a non-finite row, a bad
 * dtype / vocabulary / hidden size.
 */
export function promptTableRequest(input: PromptTableInput): PromptTableRequest {
  if (input === null || typeof input !== 'object') throw invalidArgument('an object { prompt, spliced, endTokenIds, vocabSize, hidden, dtype }', 'input', input);
  const { prompt, spliced, vocabSize, hidden, dtype } = input;
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > 0x7fffffff) throw invalidArgument('a positive integer (the vocabulary size)', 'vocabSize', vocabSize);
  if (!Number.isInteger(hidden) || hidden < 1) throw invalidArgument('a positive integer (the LLM hidden size)', 'hidden', hidden);
  if (!DTYPES.includes(dtype)) throw invalidArgument(`one of ${DTYPES.map((d) => `'${d}'`).join(', ')}`, 'dtype', dtype);
  const endIds = input.endTokenIds;
  if (!Array.isArray(endIds) || endIds.some((t) => !Number.isInteger(t) || t < 0 || t >= vocabSize)) {
    throw invalidArgument(`an array of token ids in [0, ${vocabSize})`, 'endTokenIds', endIds);
  }
  if (prompt === null || typeof prompt !== 'object' || !Array.isArray(prompt.ids)) throw invalidArgument('a BuiltPrompt (buildPrompt output)', 'prompt', prompt);
  if (spliced === null || typeof spliced !== 'object' || !(spliced.embeddings instanceof Float32Array) || !spliced.layout) {
    throw invalidArgument('SplicedEmbeddings (spliceEmbeddings output)', 'spliced', spliced);
  }
  const L = spliced.length;
  if (!Number.isInteger(L) || L < 1 || spliced.embeddings.length !== L * hidden) {
    throw invalidArgument(`${L} rows of ${hidden} (length × hidden)`, 'spliced.embeddings', `${spliced.embeddings.length} elements`, true);
  }
  const images = new Set(prompt.imagePositions);
  const regions = new Set(prompt.regionPositions);
  const ranges = spliced.layout.imageRanges;
  const regionRowsOut = spliced.layout.regionPositions;
  if (ranges.length !== prompt.imagePositions.length) {
    throw invalidArgument(`${prompt.imagePositions.length} image ranges (one per image token of the prompt)`, 'spliced.layout.imageRanges', `${ranges.length} ranges`, true);
  }
  if (regionRowsOut.length !== prompt.regionPositions.length) {
    throw invalidArgument(`${prompt.regionPositions.length} region rows (one per region token of the prompt)`, 'spliced.layout.regionPositions', `${regionRowsOut.length} rows`, true);
  }

  // Pass 1: every row's source (a text id, or a table row taken from a spliced row).
  const inputIds = new Int32Array(L);
  const tableSrc: number[] = [];
  const regionRows: number[] = [];
  let row = 0, img = 0, reg = 0;
  const ensure = (cond: boolean, what: string, name: string, got: string) => {
    if (!cond) throw invalidArgument(what, name, got, true);
  };
  for (let i = 0; i < prompt.ids.length; i++) {
    if (images.has(i)) {
      const [a, b] = ranges[img];
      const blockRows = b - a - endIds.length;
      ensure(a === row && blockRows >= 1 && b <= L && (input.tokensPerTile === undefined || blockRows === input.tokensPerTile), `image ${img} at row ${row} with ${input.tokensPerTile ?? 'at least one'} block row(s) before ${endIds.length} end token(s)`,
        `spliced.layout.imageRanges[${img}]`, `[${a}, ${b})`);
      for (let r = 0; r < blockRows; r++) {
        inputIds[row] = vocabSize + tableSrc.length;
        tableSrc.push(row++);
      }
      for (const t of endIds) inputIds[row++] = t;
      img++;
    } else if (regions.has(i)) {
      ensure(regionRowsOut[reg] === row, `region occurrence ${reg} at row ${row}`, `spliced.layout.regionPositions[${reg}]`, String(regionRowsOut[reg]));
      const k = prompt.regionIndices[reg] ?? reg;
      while (regionRows.length <= k) regionRows.push(-1);
      if (regionRows[k] < 0) regionRows[k] = tableSrc.length;
      inputIds[row] = vocabSize + tableSrc.length;
      tableSrc.push(row++);
      reg++;
    } else {
      const id = prompt.ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw invalidArgument(`a text token id in [0, ${vocabSize}) (the engine's vocabulary)`, `prompt.ids[${i}]`, id);
      ensure(row < L, `a splice with a row for prompt token ${i}`, 'spliced.length', String(L));
      inputIds[row++] = id;
    }
  }
  ensure(row === L, `${row} rows (the prompt's text, image blocks with their end tokens, and regions)`, 'spliced.length', String(L));

  // Pass 2: the table rows, converted once.
  const rows = tableSrc.length;
  const f32 = new Float32Array(rows * hidden);
  const emb = spliced.embeddings;
  tableSrc.forEach((src, t) => {
    const from = emb.subarray(src * hidden, (src + 1) * hidden);
    for (let j = 0; j < hidden; j++) {
      if (!Number.isFinite(from[j])) throw invalidArgument('finite values', `spliced.embeddings[${src}, ${j}]`, from[j]);
    }
    f32.set(from, t * hidden);
  });
  return { inputIds, table: toEngineDtype(f32, dtype), rows, hidden, dtype, vocabSize, regionRows };
}

/**
 * The ids of a conversation's next turn, to send as a new request with the first turn's table:
 * everything sent and generated so far, then `turnIds` (the template's next user turn) with each
 * region token replaced by its region's table id. TensorRT-LLM's Executor keeps no
 * conversation state between requests: a follow-up is the whole conversation again. With KV-cache
 * block reuse (on by default in current releases; with prompt tables only when the request carries
 * `inputTokenExtraIds`, see {@link promptTableExtraIds}) the blocks of the shared prefix are reused
 * instead of recomputed; without it (v0.12) the whole prefix is prefilled again.
 *
 * @param previous the ids of the conversation so far (the first request's inputIds, then each
 *   turn's generated tokens and its follow-up ids).
 * @param turnIds the follow-up's own ids (e.g. `encodeFollowUpTurn`), region tokens included.
 * @param regionIndices for each region token in `turnIds`, its region K.
 */
export function followUpIds(request: PromptTableRequest, previous: ArrayLike<number>, turnIds: readonly number[],
  regionTokenId: number, regionIndices: readonly number[]): Int32Array {
  const out = new Int32Array(previous.length + turnIds.length);
  for (let i = 0; i < previous.length; i++) out[i] = previous[i];
  let r = 0;
  turnIds.forEach((id, i) => {
    if (id === regionTokenId) {
      const k = regionIndices[r];
      const row = request.regionRows[k] ?? -1;
      if (row < 0) throw invalidArgument(`a region named in the first question (regions 0..${request.regionRows.length - 1} have table rows)`, `regionIndices[${r}]`, k);
      out[previous.length + i] = request.vocabSize + row;
      r++;
    } else {
      if (!Number.isInteger(id) || id < 0 || id >= request.vocabSize) throw invalidArgument(`a token id in [0, ${request.vocabSize})`, `turnIds[${i}]`, id);
      out[previous.length + i] = id;
    }
  });
  if (r !== regionIndices.length) throw invalidArgument(`${r} region indices (one per region token in turnIds)`, 'regionIndices', `${regionIndices.length} indices`, true);
  return out;
}

/**
 * `PromptTuningConfig`'s `inputTokenExtraIds` (TensorRT-LLM after v0.12): one id per input
 * position that KV-cache block reuse hashes along with the token id. Table ids are the same
 * numbers (`vocabSize + i`) for every image, so without them two different scenes would share
 * cached blocks. Text positions get 0; table positions get `tableKey`, an id unique to this table
 * (the same for every turn of one conversation, so its follow-ups reuse the prefix).
 */
export function promptTableExtraIds(inputIds: Int32Array, vocabSize: number, tableKey: number): Float64Array {
  if (!Number.isSafeInteger(tableKey) || tableKey < 1) throw invalidArgument('a positive safe integer', 'tableKey', tableKey);
  const out = new Float64Array(inputIds.length);
  for (let i = 0; i < inputIds.length; i++) out[i] = inputIds[i] >= vocabSize ? tableKey : 0;
  return out;
}
