/**
 * Prompts of NVILA-Lite / SR-3D (spec Part B §5, Part A §A7-A8): VILA's `qwen2` chat template,
 * the user turn with one `<image>` per tile or frame and region placeholders, and the splice of
 * image and region embeddings into the token embedding sequence that prefills the LLM.
 *
 * Exact (VILA): the template, `"<image>\n"` per tile of a dynamically tiled image, `"<image>"`
 * per frame with no newline, each image token replaced by the tile's projector tokens followed by
 * the embedding of the image encoder's end tokens ("\n"). Ours ([INFERRED], §A7): each
 * `<regionK>` occurrence becomes one region token (`<mask>`), whose row is replaced by region
 * K's projected feature, in occurrence order (SpatialRGPT's convention).
 */
import { invalidArgument } from './errors';
import { IMAGE_TOKEN, SENTINEL_TOKEN, VIDEO_TOKEN } from './tokenizer';
import type { PromptPiece, Sr3dTokenizer } from './tokenizer';
export type { PromptPiece };

/** One chat turn. */
export interface ChatMessage {
  /** `'system'`, `'user'` or `'assistant'`. */
  role: 'system' | 'user' | 'assistant';
  /** The text; surrounding whitespace is stripped as VILA does (Python `str.strip()`). */
  content: string;
}

/** Options of {@link renderChat}. */
export interface RenderChatOptions {
  /** Append `<|im_start|>assistant\n` so the model answers. Defaults to `true`. */
  addGenerationPrompt?: boolean;
}

/** VILA's default system prompt (no final period), used when the first message is not `system`. */
export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant';

// Python's str.isspace() set (str.strip() with no argument strips exactly these).
const PY_WHITESPACE = '\t\n\u000b\u000c\r\u001c\u001d\u001e\u001f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';

/** Python's `str.strip()`: JavaScript's `trim()` strips a different set (e.g. U+FEFF but not U+001C). */
export function pythonStrip(s: string): string {
  let a = 0, b = s.length;
  while (a < b && PY_WHITESPACE.includes(s[a])) a++;
  while (b > a && PY_WHITESPACE.includes(s[b - 1])) b--;
  return s.slice(a, b);
}

const ROLES = ['system', 'user', 'assistant'];

/**
 * Renders a conversation exactly as VILA's `chat_templates/qwen2.jinja`:
 * `<|im_start|>system\nYou are a helpful assistant<|im_end|>\n` when the first message is not a
 * system message, then `<|im_start|>{role}\n{content}<|im_end|>\n` per message (content
 * stripped), then `<|im_start|>assistant\n` when `addGenerationPrompt`.
 *
 * @param messages at least one message.
 */
export function renderChat(messages: readonly ChatMessage[], opts: RenderChatOptions = {}): string {
  if (!Array.isArray(messages) || messages.length === 0) throw invalidArgument('a non-empty array of { role, content } messages', 'messages', messages);
  if (opts === null || typeof opts !== 'object') throw invalidArgument('an options object', 'options', opts);
  const addGenerationPrompt = opts.addGenerationPrompt ?? true;
  if (typeof addGenerationPrompt !== 'boolean') throw invalidArgument('a boolean', 'options.addGenerationPrompt', addGenerationPrompt);
  messages.forEach((m, i) => {
    if (m === null || typeof m !== 'object') throw invalidArgument('a { role, content } message', `messages[${i}]`, m);
    if (!ROLES.includes(m.role)) throw invalidArgument(`one of ${ROLES.map((r) => `'${r}'`).join(', ')}`, `messages[${i}].role`, m.role);
    if (typeof m.content !== 'string') throw invalidArgument('a string', `messages[${i}].content`, m.content);
  });
  return piecesText(chatPieces(messages.map((m) => ({ role: m.role, content: [m.content] })), addGenerationPrompt));
}

/** The text of prompt pieces (control tokens written out). */
export function piecesText(pieces: readonly PromptPiece[]): string {
  return pieces.map((p) => (typeof p === 'string' ? p : p.token)).join('');
}

// Python str.strip() over pieces: adjacent strings joined, then the outer ends stripped (a
// token piece is never whitespace, so this equals stripping the joined text).
function stripPieces(content: readonly PromptPiece[]): PromptPiece[] {
  const out: PromptPiece[] = [];
  for (const p of content) {
    if (typeof p === 'string' && typeof out[out.length - 1] === 'string') out[out.length - 1] += p;
    else out.push(p);
  }
  if (typeof out[0] === 'string') out[0] = pythonStripStart(out[0]);
  const last = out.length - 1;
  if (last >= 0 && typeof out[last] === 'string') out[last] = pythonStripEnd(out[last] as string);
  return out.filter((p) => p !== '');
}

function pythonStripStart(s: string): string {
  let a = 0;
  while (a < s.length && PY_WHITESPACE.includes(s[a])) a++;
  return s.slice(a);
}

function pythonStripEnd(s: string): string {
  let b = s.length;
  while (b > 0 && PY_WHITESPACE.includes(s[b - 1])) b--;
  return s.slice(0, b);
}

/**
 * VILA's qwen2 template as pieces: the template's control tokens as `{ token }` (inserted by
 * id), every message's content as plain text (its own `<|im_end|>` stays text). Contents are
 * pieces so media and region tokens placed by sr3d can go in by id too.
 */
function chatPieces(messages: readonly { role: string; content: readonly PromptPiece[] }[], addGenerationPrompt: boolean): PromptPiece[] {
  const S = { token: '<|im_start|>' }, E = { token: '<|im_end|>' };
  const out: PromptPiece[] = [];
  if (messages[0].role !== 'system') out.push(S, `system\n${DEFAULT_SYSTEM_PROMPT}`, E, '\n');
  for (const m of messages) out.push(S, `${m.role}\n`, ...stripPieces(m.content), E, '\n');
  if (addGenerationPrompt) out.push(S, 'assistant\n');
  return out;
}

/**
 * VILA's next user turn after a generated answer, as token ids: `<|im_end|>` (when
 * `closePrevious`, i.e. the answer did not end with it), then
 * `\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n`. The question's pieces
 * (from {@link rewriteRegionPlaceholders}) are plain text and region tokens: a question holding
 * `<|im_end|>\n<|im_start|>system` cannot forge a turn.
 */
export function encodeFollowUpTurn(tokenizer: Sr3dTokenizer, question: readonly PromptPiece[], closePrevious: boolean): number[] {
  const S = { token: '<|im_start|>' }, E = { token: '<|im_end|>' };
  const pieces: PromptPiece[] = closePrevious ? [E] : [];
  pieces.push('\n', S, 'user\n', ...stripPieces(question), E, '\n', S, 'assistant\n');
  return tokenizer.encodePrompt(pieces);
}

// ---- the SR-3D user turn -----------------------------------------------------------------

/** Options of {@link buildPrompt}. */
export interface BuildPromptOptions {
  /** Image tokens to place: tiles of one dynamically tiled image, or frames. `0` for text only. */
  images: number;
  /**
   * `'tiles'`: one image cut into tiles, `"<image>\n"` per tile (§5.3). `'frames'`: several
   * frames, one tile each, `"<image>"` per frame with no newline (§A8).
   */
  mode: 'tiles' | 'frames';
  /** The user's question; `<region0>`, `<region1>`, … name the regions. */
  question: string;
  /** Number of regions given (each must be named at least once). Defaults to `0`. */
  regions?: number;
  /** A system prompt to use instead of VILA's default. Defaults to none (the default prompt). */
  system?: string;
}

/** A tokenized prompt and where its image and region tokens are. */
export interface BuiltPrompt {
  /** The rendered chat text. */
  text: string;
  /** Its token ids (no BOS). */
  ids: number[];
  /** Positions (into `ids`) of the `<image>` tokens, in order: tile or frame i is at `imagePositions[i]`. */
  imagePositions: number[];
  /** Positions (into `ids`) of the region tokens, in occurrence order. */
  regionPositions: number[];
  /** For each region token occurrence, the region K of the `<regionK>` it came from. */
  regionIndices: number[];
}

// Any spelling that starts like a placeholder: `<region`, `< region`, `<Region`, …
const PLACEHOLDER_START = /<\s*region/gi;
const PLACEHOLDER = /^<region(\d+)>/;

/**
 * Rewrites `<regionK>` placeholders to `regionToken` in occurrence order (spec §5.4).
 * @param opts.requireAll every region must be named (a question's first turn). Defaults to `true`.
 * @returns the rewritten text, the K of each occurrence, and the question as pieces (its text,
 *   and each region token as `{ token }`) for {@link Sr3dTokenizer.encodePrompt}.
 */
export function rewriteRegionPlaceholders(question: string, regions: number, regionToken: string,
  opts: { requireAll?: boolean } = {}): { text: string; regionIndices: number[]; pieces: PromptPiece[] } {
  if (typeof question !== 'string') throw invalidArgument('a string', 'question', question);
  if (!Number.isInteger(regions) || regions < 0) throw invalidArgument('a non-negative integer (number of regions given)', 'regions', regions);
  const indices: number[] = [];
  const pieces: PromptPiece[] = [];
  let out = '', last = 0;
  PLACEHOLDER_START.lastIndex = 0;
  for (let m = PLACEHOLDER_START.exec(question); m !== null; m = PLACEHOLDER_START.exec(question)) {
    const rest = question.slice(m.index);
    const ok = PLACEHOLDER.exec(rest);
    if (!ok) {
      const shown = /^<\s*[^>\s]{0,24}>?/.exec(rest)?.[0] ?? rest.slice(0, 12);
      throw invalidArgument(`region placeholders written <region0>, <region1>, … (a decimal index, lowercase, no spaces); fix the placeholder '${shown}'`,
        'question', `'${shown}' at character ${m.index}`, true);
    }
    const k = Number(ok[1]);
    if (k >= regions) {
      const err = invalidArgument(regions === 0
        ? 'no region placeholder (no regions were given)'
        : `placeholders <region0>..<region${regions - 1}> (${regions} region${regions === 1 ? '' : 's'} given)`,
      'question', `${ok[0]} at character ${m.index}`, true);
      err.message += regions === 0
        ? `. Fix: give a region for ${ok[0]} (--region …, or regions: [...]) or remove it from the question`
        : `. Fix: give ${k + 1} or more regions, or fix ${ok[0]}`;
      throw err;
    }
    out += question.slice(last, m.index) + regionToken;
    pieces.push(question.slice(last, m.index), { token: regionToken });
    last = m.index + ok[0].length;
    PLACEHOLDER_START.lastIndex = last;
    indices.push(k);
  }
  out += question.slice(last);
  pieces.push(question.slice(last));
  for (let k = 0; k < regions && opts.requireAll !== false; k++) {
    if (!indices.includes(k)) {
      throw invalidArgument(`every given region to be named in the question; add <region${k}> where the question refers to it, or drop region ${k}`,
        'question', `a question that never names <region${k}> (${regions} region${regions === 1 ? '' : 's'} given)`, true);
    }
  }
  return { text: out, regionIndices: indices, pieces: pieces.filter((p) => p !== '') };
}

/**
 * Builds and tokenizes the SR-3D prompt: the user turn is `"<image>\n"` × tiles (mode `'tiles'`)
 * or `"<image>"` × frames (mode `'frames'`) followed by the question, with each `<regionK>`
 * rewritten to the tokenizer's region token (occurrence order), rendered with {@link renderChat}.
 *
 * Errors ({@link InvalidArgumentError} naming `question`): a malformed placeholder
 * (`<region>`, `<regionX>`, `<Region0>`), `<regionK>` with K ≥ `regions`, a given region never
 * named, or a question holding a media or region token itself.
 */
export function buildPrompt(tokenizer: Sr3dTokenizer, opts: BuildPromptOptions): BuiltPrompt {
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function') {
    throw invalidArgument('an Sr3dTokenizer (from loadTokenizer)', 'tokenizer', tokenizer);
  }
  if (opts === null || typeof opts !== 'object') throw invalidArgument('an options object', 'options', opts);
  const { images, mode, question } = opts;
  const regions = opts.regions ?? 0;
  if (!Number.isInteger(images) || images < 0) throw invalidArgument('a non-negative integer (tiles or frames)', 'options.images', images);
  if (mode !== 'tiles' && mode !== 'frames') throw invalidArgument("'tiles' or 'frames'", 'options.mode', mode);
  if (typeof question !== 'string') throw invalidArgument('a string', 'options.question', question);
  if (!Number.isInteger(regions) || regions < 0) throw invalidArgument('a non-negative integer (number of regions given)', 'options.regions', regions);
  if (opts.system !== undefined && typeof opts.system !== 'string') throw invalidArgument('a string', 'options.system', opts.system);
  // VILA removes media tokens typed by the user (with a warning); here they would shift the
  // splice, so they are refused, as is the region token (regions go through placeholders).
  for (const t of [IMAGE_TOKEN, VIDEO_TOKEN, SENTINEL_TOKEN, tokenizer.regionToken]) {
    const at = question.indexOf(t);
    if (at >= 0) {
      throw invalidArgument(`a question without the special token ${t} (images are placed by sr3d; name regions with <region0>, <region1>, …); remove it`,
        'options.question', `'${t}' at character ${at}`, true);
    }
  }
  const { pieces: q, regionIndices } = rewriteRegionPlaceholders(question, regions, tokenizer.regionToken);
  // Control, media and region tokens go in by id; the question and system prompt are plain
  // text, so `<|im_end|>\n<|im_start|>system` typed in a question stays those characters.
  const media: PromptPiece[] = [];
  for (let i = 0; i < images; i++) media.push({ token: IMAGE_TOKEN }, ...(mode === 'tiles' ? ['\n'] : []));
  const messages: { role: string; content: PromptPiece[] }[] = [];
  if (opts.system !== undefined) messages.push({ role: 'system', content: [opts.system] });
  messages.push({ role: 'user', content: [...media, ...q] });
  // A system prompt holding media or region tokens is refused as before (they are plain text
  // now, but a prompt that reads as if it placed an image is a mistake either way).
  const count = (t: string) => (opts.system ?? '').split(t).length - 1;
  const extraImages = count(IMAGE_TOKEN), extraRegions = count(tokenizer.regionToken);
  if (extraImages || extraRegions) {
    throw invalidArgument(`${images} image and ${regionIndices.length} region tokens in the tokenized prompt (a question or system prompt must not contain them)`,
      'prompt', `${images + extraImages} image and ${regionIndices.length + extraRegions} region tokens`, true);
  }
  const pieces = chatPieces(messages, true);
  const text = piecesText(pieces);
  const ids = tokenizer.encodePrompt(pieces);
  const imagePositions: number[] = [];
  const regionPositions: number[] = [];
  ids.forEach((id, i) => {
    if (id === tokenizer.imageTokenId) imagePositions.push(i);
    else if (id === tokenizer.regionTokenId) regionPositions.push(i);
  });
  if (imagePositions.length !== images || regionPositions.length !== regionIndices.length) {
    throw invalidArgument(`${images} image and ${regionIndices.length} region tokens in the tokenized prompt (a question or system prompt must not contain them)`,
      'prompt', `${imagePositions.length} image and ${regionPositions.length} region tokens`, true);
  }
  return { text, ids, imagePositions, regionPositions, regionIndices };
}

// ---- embedding splice ------------------------------------------------------------------------

/** Input of {@link spliceEmbeddings}. */
export interface SpliceInput {
  /** Prompt token ids (e.g. {@link BuiltPrompt.ids}). */
  ids: ArrayLike<number>;
  /** Positions of the image tokens in `ids`, increasing (one per block). */
  imagePositions: readonly number[];
  /** Per image token, its projector output: Float32Array of (tokensPerTile, hidden), row-major. */
  imageBlocks: readonly Float32Array[];
  /** Ids whose embeddings follow every block (the image encoder's `end_tokens`). Defaults to `[198]` ("\n" in Qwen2). */
  endTokenIds?: readonly number[];
  /** Rows every block must have (e.g. 121 at 448/14 with the 3x3 projector). Defaults to no check beyond all blocks being equal. */
  tokensPerBlock?: number;
  /** Positions of the region tokens in `ids`, increasing. Defaults to none. */
  regionPositions?: readonly number[];
  /**
   * Region features, Float32Array of (rows, hidden): one row per occurrence, or, with
   * `regionIndices`, one row per region. Required when there are region positions.
   */
  regionEmbeddings?: Float32Array;
  /** For each region occurrence, its row of `regionEmbeddings` ({@link BuiltPrompt.regionIndices}). Defaults to `0, 1, 2, …`. */
  regionIndices?: readonly number[];
  /** The LLM's token embedding lookup: ids → (ids.length, hidden) float32. */
  embed: (ids: Int32Array) => Float32Array | Promise<Float32Array>;
  /** LLM hidden size. */
  hidden: number;
  /** Longest allowed sequence (e.g. model_max_length 4096). Defaults to no limit. */
  maxLength?: number;
}

/** The spliced embedding sequence. */
export interface SplicedEmbeddings {
  /** (length, hidden) float32, row-major: the LLM prefill input. */
  embeddings: Float32Array;
  /** Rows of `embeddings`. */
  length: number;
  layout: {
    /** Per image, its rows `[start, end)`: the block then the end-token rows. */
    imageRanges: [number, number][];
    /** Rows holding region features, in occurrence order. */
    regionPositions: number[];
  };
}

function checkPositions(pos: unknown, n: number, name: string): number[] {
  if (!Array.isArray(pos)) throw invalidArgument('an array of token positions', name, pos);
  pos.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 0 || p >= n) throw invalidArgument(`an integer position in [0, ${n})`, `${name}[${i}]`, p);
    if (i > 0 && p <= pos[i - 1]) throw invalidArgument(`positions in increasing order (after ${pos[i - 1]})`, `${name}[${i}]`, p);
  });
  return pos as number[];
}

/**
 * Builds the prefill embeddings (spec §5.3, VILA `_embed`): each image token is replaced by its
 * block followed by the embeddings of `endTokenIds` (a 121-row block + "\n" gives 122 rows per
 * tile), each region token keeps its place with its row replaced by its region feature, and all
 * other tokens are embedded with `embed` (called once, with the kept text ids and then the end
 * token ids).
 *
 * Errors ({@link InvalidArgumentError}): counts that disagree (image tokens vs blocks, region
 * tokens vs features), block sizes, a wrong `embed` result, a sequence over `maxLength`.
 */
export async function spliceEmbeddings(input: SpliceInput): Promise<SplicedEmbeddings> {
  if (input === null || typeof input !== 'object') throw invalidArgument('a splice input object', 'input', input);
  const { hidden, embed } = input;
  if (!Number.isInteger(hidden) || hidden < 1) throw invalidArgument('a positive integer (LLM hidden size)', 'hidden', hidden);
  if (typeof embed !== 'function') throw invalidArgument('a function ids => Float32Array (token embedding lookup)', 'embed', embed);
  const ids = input.ids;
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') throw invalidArgument('an array of token ids', 'ids', ids);
  const n = ids.length;
  for (let i = 0; i < n; i++) {
    if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] > 0x7fffffff) throw invalidArgument('a non-negative integer token id', `ids[${i}]`, ids[i]);
  }
  const imagePositions = checkPositions(input.imagePositions, n, 'imagePositions');
  const regionPositions = checkPositions(input.regionPositions ?? [], n, 'regionPositions');
  const imageSet = new Set(imagePositions);
  const clash = regionPositions.find((p) => imageSet.has(p));
  if (clash !== undefined) throw invalidArgument('a region position that is not also an image position', 'regionPositions', clash);

  const blocks = input.imageBlocks;
  if (!Array.isArray(blocks)) throw invalidArgument('an array of Float32Array blocks', 'imageBlocks', blocks);
  if (blocks.length !== imagePositions.length) {
    throw invalidArgument(`one block per image token (${imagePositions.length}); fix: pass as many projector blocks as tiles/frames in the prompt`, 'imageBlocks', `${blocks.length} blocks`, true);
  }
  let rows = -1;
  blocks.forEach((b, i) => {
    if (!(b instanceof Float32Array)) throw invalidArgument('a Float32Array of (tokensPerTile, hidden)', `imageBlocks[${i}]`, b);
    const r = b.length / hidden;
    if (b.length === 0 || !Number.isInteger(r)) throw invalidArgument(`a non-empty multiple of hidden (${hidden}) elements`, `imageBlocks[${i}]`, `${b.length} elements`, true);
    if (input.tokensPerBlock !== undefined && r !== input.tokensPerBlock) {
      throw invalidArgument(`${input.tokensPerBlock} rows of ${hidden} (tokensPerBlock)`, `imageBlocks[${i}]`, `${r} rows`, true);
    }
    if (rows >= 0 && r !== rows) throw invalidArgument(`${rows} rows like imageBlocks[0]`, `imageBlocks[${i}]`, `${r} rows`, true);
    rows = r;
  });
  if (input.tokensPerBlock !== undefined && (!Number.isInteger(input.tokensPerBlock) || input.tokensPerBlock < 1)) {
    throw invalidArgument('a positive integer', 'tokensPerBlock', input.tokensPerBlock);
  }
  const endIds = input.endTokenIds ?? [198];
  if (!Array.isArray(endIds) || endIds.some((t) => !Number.isInteger(t) || t < 0)) throw invalidArgument('an array of token ids', 'endTokenIds', endIds);

  // Region features: one row per occurrence, or per region with regionIndices.
  const nOcc = regionPositions.length;
  let regionRow: number[] = [];
  if (nOcc > 0 || input.regionEmbeddings !== undefined) {
    const re = input.regionEmbeddings;
    if (!(re instanceof Float32Array) || re.length % hidden !== 0) {
      throw invalidArgument(`a Float32Array of (rows, ${hidden}) region features`, 'regionEmbeddings', re);
    }
    const nRows = re.length / hidden;
    if (input.regionIndices !== undefined) {
      if (!Array.isArray(input.regionIndices) || input.regionIndices.length !== nOcc) {
        throw invalidArgument(`an array of ${nOcc} region indices (one per region token)`, 'regionIndices', input.regionIndices);
      }
      input.regionIndices.forEach((k, i) => {
        if (!Number.isInteger(k) || k < 0 || k >= nRows) throw invalidArgument(`a row of regionEmbeddings in [0, ${nRows})`, `regionIndices[${i}]`, k);
      });
      regionRow = input.regionIndices.slice();
    } else {
      if (nRows !== nOcc) {
        throw invalidArgument(`${nOcc} rows (one per region token; pass regionIndices to use one row per region)`, 'regionEmbeddings', `${nRows} rows`, true);
      }
      regionRow = regionPositions.map((_, i) => i);
    }
  }

  const nImg = imagePositions.length;
  const perImage = nImg > 0 ? rows + endIds.length : 0;
  const length = n - nImg + nImg * perImage;
  if (input.maxLength !== undefined) {
    if (!Number.isInteger(input.maxLength) || input.maxLength < 1) throw invalidArgument('a positive integer', 'maxLength', input.maxLength);
    if (length > input.maxLength) {
      throw invalidArgument(`a sequence of at most ${input.maxLength} embeddings (model_max_length); fix: use fewer tiles or frames or a shorter question`,
        'prompt', `${length} embeddings (${nImg} images × ${perImage} + ${n - nImg} text tokens)`, true);
    }
  }

  // One lookup: the text tokens that keep their own embedding, then the end tokens.
  const regionSet = new Set(regionPositions);
  const textIds: number[] = [];
  for (let i = 0; i < n; i++) if (!imageSet.has(i) && !regionSet.has(i)) textIds.push(ids[i]);
  const lookup = Int32Array.from(nImg > 0 ? textIds.concat(endIds) : textIds);
  const table = lookup.length > 0 ? await embed(lookup) : new Float32Array(0);
  if (!(table instanceof Float32Array) || table.length !== lookup.length * hidden) {
    throw invalidArgument(`a Float32Array of ${lookup.length} × ${hidden} from embed(ids)`, 'embed(ids) result', table);
  }

  const out = new Float32Array(length * hidden);
  const imageRanges: [number, number][] = [];
  const outRegion: number[] = [];
  const endBase = textIds.length * hidden;
  let row = 0, t = 0, img = 0, reg = 0;
  for (let i = 0; i < n; i++) {
    if (imageSet.has(i)) {
      const start = row;
      out.set(blocks[img++], row * hidden);
      row += rows;
      out.set(table.subarray(endBase, endBase + endIds.length * hidden), row * hidden);
      row += endIds.length;
      imageRanges.push([start, row]);
    } else if (regionSet.has(i)) {
      const r = regionRow[reg++];
      out.set((input.regionEmbeddings as Float32Array).subarray(r * hidden, (r + 1) * hidden), row * hidden);
      outRegion.push(row++);
    } else {
      out.set(table.subarray(t * hidden, (t + 1) * hidden), row * hidden);
      t++;
      row++;
    }
  }
  return { embeddings: out, length, layout: { imageRanges, regionPositions: outRegion } };
}
