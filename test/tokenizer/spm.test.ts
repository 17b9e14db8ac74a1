/**
 * What this proves about the SentencePiece-BPE tokenizer (lib/tokenizer/spm.ts):
 * - on hand-built vocabs: pairs merge by highest score with ties going to the leftmost pair, and
 *   the fast (priority queue + linked list) encoder equals a naive O(n^2) greedy reference on
 *   hundreds of random vocabs and texts; byte fallback, UNK fallback, the '▁' space prefix,
 *   BOS/EOS, control tokens (only with parseSpecial, never produced by merging) and user-defined
 *   tokens (always matched) work as llama.cpp does; decode maps '▁' to spaces, joins byte tokens
 *   into UTF-8, skips control tokens and drops the prefix space;
 * - on the real stories260K model: the prompts encode to llama.cpp's ids (with and without BOS)
 *   and llama.cpp's generated ids decode to its text;
 * - encoding is not quadratic: 1 MB inputs on the 32000-token Llama vocab take well under 10 s.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { FuselmError } from '../../lib/errors.js';
import { loadTokenizer } from '../../lib/tokenizer/load.js';
import { SpmTokenizer, type SpmVocab } from '../../lib/tokenizer/spm.js';
import { TokenType, type Tokenizer } from '../../lib/tokenizer/tokenizer.js';
import { requireFiles, rng, sharedPath, VOCAB_DIR } from './helpers.js';

const BYTE_BASE = 3; // <unk> <s> </s>, then <0x00>..<0xFF>

interface Built {
  tok: SpmTokenizer;
  /** Id of a piece. */
  id: (piece: string) => number;
  /** Ids of byte tokens for the UTF-8 of s. */
  bytes: (s: string) => number[];
}

/**
 * A vocab laid out like Llama's: <unk>=0 <s>=1 </s>=2, the 256 byte tokens (unless bytes: false),
 * then `special` tokens with their types, then the normal pieces with their scores.
 */
function build(
  pieces: Array<[string, number]>,
  opts: { bytes?: boolean; special?: Array<[string, TokenType]> } & Partial<SpmVocab> = {},
): Built {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL];
  const scores = [0, 0, 0];
  if (opts.bytes !== false) {
    for (let b = 0; b < 256; b++) {
      tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      types.push(TokenType.BYTE);
      scores.push(0);
    }
  }
  for (const [text, type] of opts.special ?? []) {
    tokens.push(text);
    types.push(type);
    scores.push(0);
  }
  for (const [text, score] of pieces) {
    tokens.push(text);
    types.push(TokenType.NORMAL);
    scores.push(score);
  }
  const tok = new SpmTokenizer({ bos: 1, eos: 2, unk: 0, ...opts, tokens, types, scores });
  const id = (p: string) => {
    const i = tokens.lastIndexOf(p);
    assert.ok(i >= 0, `piece ${p} not in the test vocab`);
    return i;
  };
  const bytes = (s: string) => [...new TextEncoder().encode(s)].map((b) => BYTE_BASE + b);
  return { tok, id, bytes };
}

/** Naive reference: rescan all adjacent pairs after every merge and merge the best (first max). */
function naiveEncode(text: string, pieces: Map<string, { id: number; score: number }>, unk: number, hasBytes: boolean): number[] {
  if (text === '') return [];
  const syms = [...('\u2581' + text.replaceAll(' ', '\u2581'))];
  for (;;) {
    let best = -1;
    let bestScore = -Infinity;
    for (let i = 0; i + 1 < syms.length; i++) {
      const e = pieces.get(syms[i] + syms[i + 1]);
      if (e && e.score > bestScore) {
        best = i;
        bestScore = e.score;
      }
    }
    if (best < 0) break;
    syms.splice(best, 2, syms[best] + syms[best + 1]);
  }
  const out: number[] = [];
  for (const s of syms) {
    const e = pieces.get(s);
    if (e) out.push(e.id);
    else if (hasBytes) for (const b of new TextEncoder().encode(s)) out.push(BYTE_BASE + b);
    else out.push(unk);
  }
  return out;
}

describe('SPM tokenizer: merging on hand-built vocabs', () => {
  const chars: Array<[string, number]> = [['\u2581', -10], ['a', -10], ['b', -10], ['c', -10]];

  it('merges the highest-scoring pair first', () => {
    const { tok, id } = build([...chars, ['ab', -3], ['bc', -1]], { addSpacePrefix: false });
    assert.deepEqual(tok.encode('abc'), [id('a'), id('bc')]);
    const t2 = build([...chars, ['ab', -1], ['bc', -3]], { addSpacePrefix: false });
    assert.deepEqual(t2.tok.encode('abc'), [t2.id('ab'), t2.id('c')]);
  });

  it('breaks score ties by taking the leftmost pair', () => {
    const { tok, id } = build([...chars, ['ab', -2], ['bc', -2], ['aa', -2]], { addSpacePrefix: false });
    assert.deepEqual(tok.encode('abc'), [id('ab'), id('c')]);
    assert.deepEqual(tok.encode('aaa'), [id('aa'), id('a')]);
    assert.deepEqual(tok.encode('aaaaa'), [id('aa'), id('aa'), id('a')]);
  });

  it('keeps merging merged symbols while the result is a piece', () => {
    const { tok, id } = build([...chars, ['bc', -1], ['abc', -5], ['▁abc', -6]]);
    assert.deepEqual(tok.encode('abc'), [id('▁abc')]);
    assert.deepEqual(tok.encode('abc abc'), [id('▁abc'), id('▁abc')]);
  });

  it('equals a naive greedy reference on random vocabs and texts (ties frequent)', () => {
    const rand = rng(1234);
    const alphabet = ['▁', 'a', 'b', 'c', 'é', '😀'];
    const textChars = ['a', 'b', 'c', ' ', 'é', '😀', 'x'];
    let checked = 0;
    for (let v = 0; v < 60; v++) {
      const hasBytes = v % 3 !== 0;
      const pieces = new Map<string, number>();
      // Single characters (some left out so fallback happens), then random longer pieces.
      for (const c of alphabet) if (rand() < 0.8) pieces.set(c, -Math.floor(rand() * 4));
      for (let k = 0; k < 40; k++) {
        let p = '';
        const len = 2 + Math.floor(rand() * 4);
        for (let j = 0; j < len; j++) p += alphabet[Math.floor(rand() * alphabet.length)];
        pieces.set(p, -Math.floor(rand() * 4)); // few distinct scores: many ties
      }
      const { tok } = build([...pieces], { bytes: hasBytes });
      const ref = new Map<string, { id: number; score: number }>();
      for (const p of pieces.keys()) ref.set(p, { id: tokensIndex(tok, p), score: pieces.get(p)! });
      for (let t = 0; t < 20; t++) {
        let text = '';
        const len = Math.floor(rand() * 30);
        for (let j = 0; j < len; j++) text += textChars[Math.floor(rand() * textChars.length)];
        assert.deepEqual(tok.encode(text), naiveEncode(text, ref, 0, hasBytes), `vocab ${v}, text ${JSON.stringify(text)}`);
        checked++;
      }
    }
    assert.equal(checked, 1200);
  });
});

/** Id of a piece in a built tokenizer (the last one with that text, as the piece map keeps). */
function tokensIndex(tok: SpmTokenizer, piece: string): number {
  for (let i = tok.vocabSize - 1; i >= 0; i--) if (tok.tokenToPiece(i) === piece) return i;
  return -1;
}

describe('SPM tokenizer: normalization, fallback and special tokens', () => {
  const pieces: Array<[string, number]> = [
    ['▁', -1], ['a', -2], ['b', -2], ['<', -2], ['s', -2], ['>', -2], ['/', -2],
    ['▁a', -1], ['▁b', -1], ['s>', -1], ['<s', -1], ['y', -2], ['▁y', -1],
  ];

  it('prepends ▁ and turns spaces into ▁, except for empty text', () => {
    const { tok, id } = build(pieces);
    assert.deepEqual(tok.encode(''), []);
    assert.deepEqual(tok.encode('a'), [id('▁a')]);
    assert.deepEqual(tok.encode('a b'), [id('▁a'), id('▁b')]);
    assert.deepEqual(tok.encode(' a'), [id('▁'), id('▁a')]);
    assert.deepEqual(tok.encode(' '), [id('▁'), id('▁')]);
    const noPrefix = build(pieces, { addSpacePrefix: false });
    assert.deepEqual(noPrefix.tok.encode('a b'), [noPrefix.id('a'), noPrefix.id('▁b')]);
  });

  it('falls back to UTF-8 byte tokens for characters outside the vocab', () => {
    const { tok, id, bytes } = build(pieces);
    assert.deepEqual(tok.encode('a€'), [id('▁a'), ...bytes('€')]);
    assert.deepEqual(tok.encode('🦙'), [id('▁'), ...bytes('🦙')]);
    assert.deepEqual(tok.encode('\n'), [id('▁'), ...bytes('\n')]);
    // A lone surrogate is encoded as U+FFFD, as TextEncoder would.
    assert.deepEqual(tok.encode('\ud800'), [id('▁'), ...bytes('\ufffd')]);
  });

  it('uses one UNK per unknown character without byte tokens, and throws without UNK', () => {
    const { tok, id } = build(pieces, { bytes: false });
    assert.deepEqual(tok.encode('a€🦙b'), [id('▁a'), 0, 0, id('b')]);
    const noUnk = build(pieces, { bytes: false, unk: undefined });
    assert.throws(() => noUnk.tok.encode('€'), (e: unknown) => e instanceof FuselmError && e.code === 'E_UNSUPPORTED' && /U\+20AC/.test(e.message));
  });

  it('adds BOS/EOS only with addSpecial, as addBos/addEos say', () => {
    const { tok, id } = build(pieces);
    assert.equal(tok.addBos, true);
    assert.equal(tok.addEos, false);
    assert.deepEqual(tok.encode('a', { addSpecial: true }), [1, id('▁a')]);
    assert.deepEqual(tok.encode('', { addSpecial: true }), [1]);
    const both = build(pieces, { addEos: true });
    assert.deepEqual(both.tok.encode('a', { addSpecial: true }), [1, both.id('▁a'), 2]);
    const none = build(pieces, { addBos: false });
    assert.deepEqual(none.tok.encode('a', { addSpecial: true }), [none.id('▁a')]);
  });

  it('never produces a control token by merging; matches it in text only with parseSpecial', () => {
    const { tok, id } = build(pieces);
    // "<s>" is a control token; "<s" and "s>" are normal pieces, so merging stops short of it.
    assert.deepEqual(tok.encode('<s>a'), [id('▁'), id('<s'), id('>'), id('a')]);
    // With parseSpecial it is cut out; the span after it gets the space prefix again.
    assert.deepEqual(tok.encode('<s>a', { parseSpecial: true }), [1, id('▁a')]);
    assert.deepEqual(tok.encode('a</s><s>b', { parseSpecial: true }), [id('▁a'), 2, 1, id('▁b')]);
    assert.deepEqual(tok.encode('<s>', { parseSpecial: true }), [1]);
    // The unknown token's text is matched too (llama.cpp does), also only with parseSpecial.
    assert.deepEqual(tok.encode('<unk>', { parseSpecial: true }), [0]);
  });

  it('always matches user-defined tokens, longest first', () => {
    const { tok, id } = build(pieces, {
      special: [['<|u|>', TokenType.USER_DEFINED], ['<|u|>x', TokenType.USER_DEFINED]],
    });
    const u = id('<|u|>');
    const ux = id('<|u|>x');
    assert.deepEqual(tok.encode('a<|u|>y'), [id('▁a'), u, id('▁y')]);
    assert.deepEqual(tok.encode('<|u|>x<|u|>'), [ux, u]);
    // Decoding prints a user-defined token verbatim.
    assert.equal(tok.decode(tok.encode('a<|u|>y')), 'a<|u|> y');
  });
});

describe('SPM tokenizer: decode and token queries', () => {
  const pieces: Array<[string, number]> = [['▁', -1], ['a', -2], ['b', -2], ['▁a', -1], ['▁b', -1]];

  it('turns ▁ into spaces and drops the one leading prefix space', () => {
    const { tok, id } = build(pieces);
    assert.equal(tok.decode([id('▁a'), id('▁b')]), 'a b');
    assert.equal(tok.decode([id('▁'), id('▁a')]), ' a');
    assert.equal(tok.decode([id('▁a'), id('▁b')], { stripLeadingSpace: false }), ' a b');
    assert.equal(tok.decode([]), '');
    const noPrefix = build(pieces, { addSpacePrefix: false });
    assert.equal(noPrefix.tok.decode([noPrefix.id('▁a')]), ' a');
  });

  it('joins byte tokens into UTF-8 and marks broken bytes with U+FFFD', () => {
    const { tok, id, bytes } = build(pieces);
    assert.equal(tok.decode([id('▁a'), ...bytes('€🦙'), id('b')]), 'a€🦙b');
    assert.equal(tok.decode([id('a'), ...bytes('€').slice(0, 2), id('b')]), 'a\ufffdb');
    assert.equal(tok.decode(bytes('€').slice(0, 2)), '\ufffd');
  });

  it('skips control tokens unless skipSpecial is false', () => {
    const { tok, id } = build(pieces);
    assert.equal(tok.decode([1, id('▁a'), 2]), 'a');
    assert.equal(tok.decode([1, id('▁a'), 2], { skipSpecial: false }), '<s> a</s>');
    // A skipped token between byte tokens doesn't break the character.
    const euro = [...new TextEncoder().encode('€')].map((b) => BYTE_BASE + b);
    assert.equal(tok.decode([euro[0], 1, euro[1], euro[2]]), '€');
  });

  it('answers tokenToPiece, isEog, and rejects ids outside the vocab', () => {
    const { tok, id } = build(pieces, { eot: undefined });
    assert.equal(tok.tokenToPiece(id('▁a')), '▁a');
    assert.equal(tok.tokenToPiece(BYTE_BASE + 10), '<0x0A>');
    assert.equal(tok.isEog(2), true);
    assert.equal(tok.isEog(1), false);
    const withEot = build(pieces, { special: [['<|eot|>', TokenType.CONTROL]], eot: BYTE_BASE + 256 });
    assert.equal(withEot.tok.isEog(BYTE_BASE + 256), true);
    for (const bad of [-1, tok.vocabSize, 1.5, NaN]) {
      assert.throws(() => tok.decode([bad]), (e: unknown) => e instanceof FuselmError && e.code === 'E_INVALID_ARG');
      assert.throws(() => tok.tokenToPiece(bad), (e: unknown) => e instanceof FuselmError && e.code === 'E_INVALID_ARG');
    }
    assert.throws(() => build(pieces, { bos: 100000 }), (e: unknown) => e instanceof FuselmError && e.code === 'E_INVALID_ARG');
  });
});

describe('SPM tokenizer: stories260K against llama.cpp', function () {
  const model = sharedPath('models', 'stories260K.gguf');
  const oracleFile = sharedPath('models', 'stories260K.oracle.json');
  let tok: Tokenizer;
  let oracle: {
    tokenization: Array<{ text: string; ids_no_bos: number[]; ids_with_bos: number[]; pieces: string[]; detokenized: string }>;
    greedy: { ids: number[]; text: string };
    greedy_other_prompts: Array<{ prompt: string; ids: number[]; text: string }>;
  };

  before(async function () {
    requireFiles(this, model, oracleFile);
    tok = await loadTokenizer(model);
    oracle = JSON.parse(readFileSync(oracleFile, 'utf8'));
  });

  it('encodes the prompts to llama.cpp ids, with and without BOS', () => {
    assert.equal(oracle.tokenization.length, 3);
    for (const t of oracle.tokenization) {
      const ids = tok.encode(t.text);
      assert.deepEqual(ids, t.ids_no_bos, t.text);
      assert.deepEqual(tok.encode(t.text, { addSpecial: true }), t.ids_with_bos, t.text);
      assert.deepEqual(ids.map((i) => tok.tokenToPiece(i)), t.pieces, t.text);
      assert.equal(tok.decode(t.ids_no_bos), t.detokenized, t.text);
      assert.equal(tok.decode(t.ids_with_bos), t.detokenized, t.text);
    }
  });

  it("decodes llama.cpp's greedy generations to its text", () => {
    assert.equal(tok.decode(oracle.greedy.ids), oracle.greedy.text);
    assert.equal(oracle.greedy_other_prompts.length, 2);
    for (const g of oracle.greedy_other_prompts) assert.equal(tok.decode(g.ids), g.text, g.prompt);
  });

  it('knows its special tokens', () => {
    assert.equal(tok.vocabSize, 512);
    assert.equal(tok.bos, 1);
    assert.equal(tok.eos, 2);
    assert.equal(tok.unk, 0);
    assert.equal(tok.pad, undefined); // stored as 0xFFFFFFFF
    assert.equal(tok.isEog(2), true);
  });
});

describe('SPM tokenizer: encoding time grows about linearly', function () {
  const vocab = path.join(VOCAB_DIR, 'ggml-vocab-llama-spm.gguf');
  let tok: Tokenizer;
  before(async function () {
    requireFiles(this, vocab);
    tok = await loadTokenizer(vocab);
  });

  function timeEncode(label: string, text: string): void {
    const t0 = performance.now();
    const ids = tok.encode(text);
    const ms = performance.now() - t0;
    console.log(`      ${label}: ${(text.length / 1e6).toFixed(2)} M chars -> ${ids.length} tokens in ${ms.toFixed(0)} ms`);
    assert.ok(ms < 10_000, `${label} took ${ms.toFixed(0)} ms`);
    assert.equal(tok.decode(ids), text);
  }

  it('1 MB of one repeated character', () => {
    timeEncode('"a" x 1M', 'a'.repeat(1 << 20));
  });

  it('1 MB with no spaces (letters, digits, CJK, emoji)', () => {
    const rand = rng(7);
    const alphabet = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;-我想在工作天кирилица🦙😁'];
    const parts: string[] = [];
    let n = 0;
    while (n < 1 << 20) {
      const c = alphabet[Math.floor(rand() * alphabet.length)];
      parts.push(c);
      n += c.length;
    }
    timeEncode('no spaces', parts.join(''));
  });
});
