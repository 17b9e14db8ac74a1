/**
 * Builds a Tokenizer from the tokenizer.ggml.* metadata of a GGUF file (a full model or a
 * vocab-only file). Defaults follow llama.cpp's reading of the same keys, so a file behaves here
 * as it does there.
 */
import { FuselmError, shown } from '../errors.js';
import type { GgufFile, GgufValue } from '../formats/gguf.js';
import { BpeModel } from './bpe.js';
import { type EndTokens, findEndTokens } from './eog.js';
import { bertNormalizer } from './normalize.js';
import { PipelineTokenizer, type AddedToken } from './pipeline.js';
import { PrecompiledCharsmap } from './precompiled-charsmap.js';
import { bertPreTokenizer, ggufPreTokenizer } from './pretokenize.js';
import { SpmTokenizer } from './spm.js';
import { TokenType, type Tokenizer } from './tokenizer.js';

/** The tokenizer.ggml.pre values llama.cpp tokenizes with ignore_merges (its LLAMA3 pre-tokenizer type). */
const IGNORE_MERGES_PRE = new Set(['llama3', 'llama-v3', 'llama-bpe']);
import { fromPhantomSpace, WordPieceModel } from './wordpiece.js';

/** Tokenizer families by tokenizer.ggml.model, with what is implemented so far. */
const SUPPORTED_MODELS = ['llama', 'gpt2', 'bert', 't5'];

function formatError(f: GgufFile, key: string, problem: string): FuselmError {
  return new FuselmError('E_FORMAT', `${f.path}: metadata "${key}": ${problem}`);
}

function describe(v: GgufValue): string {
  if (Array.isArray(v)) return 'an array';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  return `a ${typeof v}`;
}

function getString(f: GgufFile, key: string): string | undefined {
  const v = f.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw formatError(f, key, `expected a string, got ${describe(v)}`);
  return v;
}

function getBool(f: GgufFile, key: string, fallback: boolean): boolean {
  const v = f.metadata.get(key);
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw formatError(f, key, `expected a bool, got ${describe(v)}`);
  return v;
}

/**
 * A token id key. Files mark "none" as -1 or as the u32 0xFFFFFFFF (stories260K does), and some
 * name ids past the vocab; all of those read as undefined. Absent keys get `fallback` when it
 * lies inside the vocab.
 */
function getTokenId(f: GgufFile, key: string, nVocab: number, fallback?: number): number | undefined {
  const v = f.metadata.get(key);
  let id: number | undefined;
  if (v === undefined) id = fallback;
  else if (typeof v === 'number') id = v;
  else if (typeof v === 'bigint') id = v >= 0n && v < BigInt(nVocab) ? Number(v) : -1;
  else throw formatError(f, key, `expected an integer token id, got ${describe(v)}`);
  if (id === undefined || !Number.isInteger(id) || id < 0 || id >= nVocab) return undefined;
  return id;
}

/** A numeric per-token array (scores, token types) of exactly nVocab entries. */
function getPerToken(f: GgufFile, key: string, nVocab: number): ArrayLike<number> | undefined {
  const v = f.metadata.get(key);
  if (v === undefined) return undefined;
  if (!ArrayBuffer.isView(v) || v instanceof BigInt64Array || v instanceof BigUint64Array) {
    throw formatError(f, key, `expected a numeric array, got ${describe(v)}`);
  }
  const arr = v as ArrayLike<number>;
  if (arr.length !== nVocab) throw formatError(f, key, `has ${arr.length} entries, expected ${nVocab} (one per token)`);
  return arr;
}

function getTokens(f: GgufFile): string[] {
  const tokensKey = 'tokenizer.ggml.tokens';
  const tokens = f.metadata.get(tokensKey);
  if (tokens === undefined) throw formatError(f, tokensKey, 'missing');
  if (!Array.isArray(tokens) || tokens.some((t) => typeof t !== 'string')) {
    throw formatError(f, tokensKey, `expected an array of strings, got ${describe(tokens)}`);
  }
  if (tokens.length === 0) throw formatError(f, tokensKey, 'the vocabulary is empty');
  return tokens as string[];
}

/** EOT, EOM and the end-of-generation set (tokenizer/eog.ts), from the keys and the token texts. */
function ggufEndTokens(f: GgufFile, pieces: readonly string[], eos: number | undefined): EndTokens {
  const id = (name: string) => getTokenId(f, `tokenizer.ggml.${name}_token_id`, pieces.length);
  return findEndTokens(pieces, { eos: [eos], eot: id('eot'), eom: id('eom'), fimPad: id('fim_pad'), fimRep: id('fim_rep'), fimSep: id('fim_sep') });
}

/** Control / unknown tokens as special added tokens, user-defined ones as always-matched ones. */
function addedFromTypes(pieces: readonly string[], types: ArrayLike<number> | undefined): AddedToken[] {
  const added: AddedToken[] = [];
  if (!types) return added;
  for (let i = 0; i < pieces.length; i++) {
    const t = types[i];
    if (t === TokenType.CONTROL || t === TokenType.UNKNOWN) added.push({ id: i, content: pieces[i], special: true });
    else if (t === TokenType.USER_DEFINED) added.push({ id: i, content: pieces[i], special: false });
  }
  return added;
}

function gpt2FromGguf(f: GgufFile): PipelineTokenizer {
  const pieces = getTokens(f);
  const n = pieces.length;
  const types = getPerToken(f, 'tokenizer.ggml.token_type', n);
  const mergesKey = 'tokenizer.ggml.merges';
  const raw = f.metadata.get(mergesKey);
  if (raw === undefined) throw formatError(f, mergesKey, 'missing (a gpt2 vocab needs its BPE merges)');
  if (!Array.isArray(raw) || raw.some((m) => typeof m !== 'string')) throw formatError(f, mergesKey, `expected an array of strings, got ${describe(raw)}`);
  const merges = (raw as string[]).map((m, i): [string, string] => {
    const sp = m.indexOf(' ', 1);
    if (sp < 0) throw formatError(f, mergesKey, `entry ${i} ${shown(m)} has no space`);
    return [m.slice(0, sp), m.slice(sp + 1)];
  });
  const vocab = new Map<string, number>();
  for (let i = 0; i < n; i++) if (!vocab.has(pieces[i])) vocab.set(pieces[i], i);
  const pre = getString(f, 'tokenizer.ggml.pre') ?? 'default';
  let preTokenizer;
  try {
    preTokenizer = ggufPreTokenizer(pre);
  } catch (e) {
    if (e instanceof FuselmError) throw new FuselmError(e.code, `${f.path}: ${e.message}`);
    throw e;
  }
  let model: BpeModel;
  try {
    // llama.cpp sets ignore_merges for the Llama-3 pre-tokenizer (as the tokenizer.json of
    // Llama-3 does): a word that is itself a token is that token, whatever the merges would make
    model = new BpeModel({ vocab, merges, byteLevel: true, ignoreMerges: IGNORE_MERGES_PRE.has(pre) });
  } catch (e) {
    if (e instanceof FuselmError) throw formatError(f, mergesKey, e.message);
    throw e;
  }
  const id = (name: string, fallback?: number) => getTokenId(f, `tokenizer.ggml.${name}_token_id`, n, fallback);
  const bos = id('bos');
  const eos = id('eos');
  const { eot, eog } = ggufEndTokens(f, pieces, eos);
  return new PipelineTokenizer({
    tokens: pieces,
    model,
    preTokenizer,
    added: addedFromTypes(pieces, types),
    decoder: [{ type: 'byteLevel' }],
    bos,
    eos,
    eot,
    unk: id('unknown'),
    pad: id('padding'),
    eog,
    addBos: getBool(f, 'tokenizer.ggml.add_bos_token', false),
    addEos: getBool(f, 'tokenizer.ggml.add_eos_token', false),
    chatTemplate: getString(f, 'tokenizer.chat_template'),
  });
}

function bertFromGguf(f: GgufFile): PipelineTokenizer {
  const stored = getTokens(f);
  const n = stored.length;
  const types = getPerToken(f, 'tokenizer.ggml.token_type', n);
  const pieces = fromPhantomSpace(stored, types);
  const vocab = new Map<string, number>();
  for (let i = 0; i < n; i++) if (!vocab.has(pieces[i])) vocab.set(pieces[i], i);
  const id = (name: string, fallback?: number) => getTokenId(f, `tokenizer.ggml.${name}_token_id`, n, fallback);
  const unk = id('unknown', vocab.get('[UNK]'));
  if (unk === undefined) throw formatError(f, 'tokenizer.ggml.unknown_token_id', 'missing (WordPiece needs an unknown token)');
  const cls = id('cls') ?? id('bos', vocab.get('[CLS]'));
  const sep = id('seperator') ?? id('separator') ?? id('eos', vocab.get('[SEP]'));
  const addCls = getBool(f, 'tokenizer.ggml.add_bos_token', true);
  const addSep = getBool(f, 'tokenizer.ggml.add_sep_token', getBool(f, 'tokenizer.ggml.add_eos_token', true));
  return new PipelineTokenizer({
    tokens: pieces,
    model: new WordPieceModel({ vocab, unk, continuingSubwordPrefix: '##', maxInputCharsPerWord: 100 }),
    normalizer: bertNormalizer({ lowercase: true }),
    preTokenizer: bertPreTokenizer,
    added: addedFromTypes(pieces, types),
    template: [addCls && cls !== undefined ? [cls] : [], null, addSep && sep !== undefined ? [sep] : []],
    decoder: [{ type: 'wordpiece', prefix: '##', cleanup: true }],
    bos: cls,
    eos: sep,
    unk,
    pad: id('padding'),
    eog: sep !== undefined ? [sep] : [],
  });
}

/** llama: SentencePiece BPE; t5: SentencePiece Unigram (no BOS; </s> = 1 and <unk> = 2 unless the file says). */
function spmFromGguf(f: GgufFile, unigram = false): SpmTokenizer {
  const pieces = getTokens(f);
  const n = pieces.length;
  const scores = getPerToken(f, 'tokenizer.ggml.scores', n);
  const types = getPerToken(f, 'tokenizer.ggml.token_type', n);

  const id = (name: string, fallback?: number) => getTokenId(f, `tokenizer.ggml.${name}_token_id`, n, fallback);
  // llama.cpp's defaults for the llama vocab: <unk>=0, <s>=1, </s>=2.
  const bos = unigram ? id('bos') : id('bos', 1);
  const eos = id('eos', unigram ? 1 : 2);
  const unk = id('unknown', unigram ? 2 : 0);
  const pad = id('padding');
  const { eot, eog } = ggufEndTokens(f, pieces, eos);
  const charsmap = getCharsmap(f);

  return new SpmTokenizer({
    tokens: pieces,
    scores,
    types,
    bos,
    eos,
    eot,
    unk,
    pad,
    eog,
    addBos: getBool(f, 'tokenizer.ggml.add_bos_token', !unigram),
    addEos: getBool(f, 'tokenizer.ggml.add_eos_token', false),
    addSpacePrefix: getBool(f, 'tokenizer.ggml.add_space_prefix', true),
    chatTemplate: getString(f, 'tokenizer.chat_template'),
    unigram,
    removeExtraWhitespaces: unigram && getBool(f, 'tokenizer.ggml.remove_extra_whitespaces', false),
    // llama.cpp's t5 vocabulary applies it as SentencePiece does: longest match
    normalizer: charsmap && ((s) => charsmap.normalizeLongest(s)),
  });
}

/** SentencePiece's normalization rules (T5's NFKC-like charsmap), as bytes (llama.cpp's converter writes INT8 or UINT8); an empty one is none. */
function getCharsmap(f: GgufFile): PrecompiledCharsmap | undefined {
  const key = 'tokenizer.ggml.precompiled_charsmap';
  const v = f.metadata.get(key);
  if (v === undefined) return undefined;
  if (!(v instanceof Uint8Array || v instanceof Int8Array)) throw formatError(f, key, `expected an array of bytes, got ${describe(v)}`);
  if (v.length === 0) return undefined;
  return PrecompiledCharsmap.parse(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), `${f.path}: ${key}`);
}

/** The tokenizer described by a parsed GGUF header. */
export function tokenizerFromGguf(f: GgufFile): Tokenizer {
  const model = getString(f, 'tokenizer.ggml.model');
  if (model === undefined || model === 'none' || model === 'no_vocab') {
    throw new FuselmError('E_UNSUPPORTED', `${f.path}: the file has no tokenizer (tokenizer.ggml.model is ${model === undefined ? 'absent' : `"${model}"`})`);
  }
  switch (model) {
    case 'llama':
      return spmFromGguf(f);
    case 't5':
      return spmFromGguf(f, true);
    case 'gpt2':
      return gpt2FromGguf(f);
    case 'bert':
      return bertFromGguf(f);
    default:
      throw new FuselmError(
        'E_UNSUPPORTED',
        `${f.path}: tokenizer model "${model}" (tokenizer.ggml.model) is not supported yet; supported: ${SUPPORTED_MODELS.join(', ')}`,
      );
  }
}
