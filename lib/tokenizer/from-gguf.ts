/**
 * Builds a Tokenizer from the tokenizer.ggml.* metadata of a GGUF file (a full model or a
 * vocab-only file). Defaults follow llama.cpp's reading of the same keys, so a file behaves here
 * as it does there.
 */
import { FuselmError } from '../errors.js';
import { readGguf, type GgufFile, type GgufValue } from '../formats/gguf.js';
import { SpmTokenizer } from './spm.js';
import { TokenType, type Tokenizer } from './tokenizer.js';

/** Tokenizer families by tokenizer.ggml.model, with what is implemented so far. */
const SUPPORTED_MODELS = ['llama'];

/**
 * Texts of end-of-turn / end-of-text markers that llama.cpp also treats as end of generation when
 * they are control or user-defined tokens. The first ones double as the EOT token when the file
 * names none, in this order of preference.
 */
const EOT_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<EOT>', '<|end_of_text|>', '<｜end▁of▁sentence｜>'];
const EOG_TEXTS = [...EOT_TEXTS, '<|eom_id|>'];

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

function spmFromGguf(f: GgufFile): SpmTokenizer {
  const tokensKey = 'tokenizer.ggml.tokens';
  const tokens = f.metadata.get(tokensKey);
  if (tokens === undefined) throw formatError(f, tokensKey, 'missing');
  if (!Array.isArray(tokens) || tokens.some((t) => typeof t !== 'string')) {
    throw formatError(f, tokensKey, `expected an array of strings, got ${describe(tokens)}`);
  }
  if (tokens.length === 0) throw formatError(f, tokensKey, 'the vocabulary is empty');
  const pieces = tokens as string[];
  const n = pieces.length;
  const scores = getPerToken(f, 'tokenizer.ggml.scores', n);
  const types = getPerToken(f, 'tokenizer.ggml.token_type', n);

  const id = (name: string, fallback?: number) => getTokenId(f, `tokenizer.ggml.${name}_token_id`, n, fallback);
  // llama.cpp's defaults for the llama vocab: <unk>=0, <s>=1, </s>=2.
  const bos = id('bos', 1);
  const eos = id('eos', 2);
  const unk = id('unknown', 0);
  const pad = id('padding');
  const eom = id('eom');

  // EOT, and the wider end-of-generation set, from the well-known marker texts.
  const isMarker = (i: number) => !types || types[i] === TokenType.CONTROL || types[i] === TokenType.USER_DEFINED;
  let eot = id('eot');
  if (eot === undefined) {
    for (const text of EOT_TEXTS) {
      const i = pieces.indexOf(text);
      if (i >= 0 && isMarker(i) && i !== eos) {
        eot = i;
        break;
      }
    }
  }
  const eog = new Set<number>();
  for (const x of [eos, eot, eom]) if (x !== undefined) eog.add(x);
  for (const text of EOG_TEXTS) {
    const i = pieces.indexOf(text);
    if (i >= 0 && isMarker(i)) eog.add(i);
  }

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
    addBos: getBool(f, 'tokenizer.ggml.add_bos_token', true),
    addEos: getBool(f, 'tokenizer.ggml.add_eos_token', false),
    addSpacePrefix: getBool(f, 'tokenizer.ggml.add_space_prefix', true),
  });
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
    default:
      throw new FuselmError(
        'E_UNSUPPORTED',
        `${f.path}: tokenizer model "${model}" (tokenizer.ggml.model) is not supported yet; supported: ${SUPPORTED_MODELS.join(', ')}`,
      );
  }
}

/** Reads a GGUF file's header and builds its tokenizer. */
export async function loadTokenizer(path: string): Promise<Tokenizer> {
  return tokenizerFromGguf(await readGguf(path));
}
