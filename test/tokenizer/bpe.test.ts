/**
 * What this proves about byte-level BPE (lib/tokenizer/bpe.ts) and its tokenizers:
 * - bytes_to_unicode is GPT-2's table (printable bytes map to themselves, the other 68 to U+0100…);
 * - the merge loop (direct scan for short words, heap + linked list for long ones) equals a naive
 *   "merge the lowest-rank pair, leftmost first" reference on hundreds of random vocabs and words,
 *   byte-level and character-level (with byte fallback and fused unknowns), and ignore_merges
 *   takes whole-vocab words as one token;
 * - encode is linear: 1 MB without spaces and 1 MB of one repeated character go through the GPT-2
 *   and Llama-3 tokenizers in well under 15 s each (times printed);
 * - byte-level tokens stream without splitting UTF-8 characters: the pushed text never contains
 *   U+FFFD for valid input and concatenates to decode().
 */
import assert from 'node:assert/strict';
import { BpeModel, BYTE_TO_CHAR, byteLevelTokenBytes, CHAR_TO_BYTE } from '../../lib/tokenizer/bpe.js';
import { loadTokenizer } from '../../lib/tokenizer/load.js';
import type { Tokenizer } from '../../lib/tokenizer/tokenizer.js';
import { requireFiles, rng, TOKENIZER_FILES } from './helpers.js';
import { randomTexts } from './random-text.js';

describe('byte-level BPE: the byte table', () => {
  it("is GPT-2's bytes_to_unicode", () => {
    assert.equal(BYTE_TO_CHAR[0x21], '!');
    assert.equal(BYTE_TO_CHAR[0x20], 'Ġ');
    assert.equal(BYTE_TO_CHAR[0x0a], 'Ċ');
    assert.equal(BYTE_TO_CHAR[0x00], '\u0100');
    assert.equal(BYTE_TO_CHAR[0xad], 'Ń'); // the 68th non-printable byte → U+0143
    assert.equal(new Set(BYTE_TO_CHAR).size, 256);
    for (let b = 0; b < 256; b++) assert.equal(CHAR_TO_BYTE[BYTE_TO_CHAR[b].charCodeAt(0)], b);
    assert.deepEqual([...byteLevelTokenBytes('ĠHello')], [0x20, 72, 101, 108, 108, 111]);
    assert.deepEqual([...byteLevelTokenBytes('<tool€>')], [...new TextEncoder().encode('<tool€>')]);
  });
});

/** Naive BPE: repeatedly merge the lowest-rank adjacent pair (leftmost on ties). */
function naive(symbols: string[], ranks: Map<string, number>): string[] {
  const s = [...symbols];
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < s.length; i++) {
      const r = ranks.get(`${s[i]} ${s[i + 1]}`);
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best < 0) return s;
    s.splice(best, 2, s[best] + s[best + 1]);
  }
}

describe('BPE merge loop against a naive reference', () => {
  it('character-level: random vocabs and words, short and long (scan and heap paths)', () => {
    const r = rng(42);
    const alphabet = ['a', 'b', 'c', 'd', '▁', 'é', '🦙'];
    for (let trial = 0; trial < 300; trial++) {
      const vocab = new Map<string, number>();
      const add = (t: string) => vocab.has(t) || vocab.set(t, vocab.size);
      add('<unk>');
      for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      for (const c of alphabet.slice(0, 5)) add(c);
      const merges: Array<[string, string]> = [];
      const ranks = new Map<string, number>();
      const pieces = [...alphabet.slice(0, 5)];
      for (let m = 0; m < 40; m++) {
        const a = pieces[Math.floor(r() * pieces.length)];
        const b = pieces[Math.floor(r() * pieces.length)];
        if (ranks.has(`${a} ${b}`) || (a + b).length > 8) continue;
        ranks.set(`${a} ${b}`, merges.length);
        merges.push([a, b]);
        add(a + b);
        pieces.push(a + b);
      }
      const model = new BpeModel({ vocab, merges, byteLevel: false, byteFallback: true, unk: 0 });
      const ids = [...vocab.entries()].reduce((acc, [k, v]) => ((acc[v] = k), acc), [] as string[]);
      const len = trial % 2 === 0 ? 1 + Math.floor(r() * 20) : 30 + Math.floor(r() * 200);
      let word = '';
      for (let i = 0; i < len; i++) word += alphabet[Math.floor(r() * (alphabet.length - 2))];
      const out: number[] = [];
      model.encodeWord(word, out);
      assert.deepEqual(out.map((i) => ids[i]), naive([...word], ranks), `word ${word}`);
      // Characters outside the vocab: byte fallback.
      const out2: number[] = [];
      model.encodeWord('a🦙', out2);
      assert.deepEqual(out2.slice(1).map((i) => ids[i]), ['<0xF0>', '<0x9F>', '<0xA6>', '<0x99>']);
    }
  });

  it('fuses consecutive unknowns with fuse_unk, and ignore_merges takes vocab words whole', () => {
    const vocab = new Map([['<unk>', 0], ['a', 1], ['b', 2], ['ab', 3], ['abab', 4], ['ba', 5]]);
    const merges: Array<[string, string]> = [['b', 'a'], ['a', 'b']];
    const plain = new BpeModel({ vocab, merges, byteLevel: false, unk: 0, fuseUnk: true });
    const out: number[] = [];
    plain.encodeWord('xyaz', out);
    assert.deepEqual(out, [0, 1, 0]);
    const o2: number[] = [];
    plain.encodeWord('abab', o2);
    assert.deepEqual(o2, [1, 5, 2]); // "ba" merges first; abab is never built by merges
    const ign = new BpeModel({ vocab, merges, byteLevel: false, unk: 0, ignoreMerges: true });
    const o3: number[] = [];
    ign.encodeWord('abab', o3);
    assert.deepEqual(o3, [4]);
  });

  it('byte-level: the cached and uncached paths agree on long and repeated words', () => {
    const vocab = new Map<string, number>();
    for (let b = 0; b < 256; b++) vocab.set(BYTE_TO_CHAR[b], b);
    const merges: Array<[string, string]> = [];
    const r = rng(7);
    const pieces = ['a', 'b', 'Ġ', 'Ã', '©'];
    for (let m = 0; m < 60; m++) {
      const a = pieces[Math.floor(r() * pieces.length)];
      const b = pieces[Math.floor(r() * pieces.length)];
      if (vocab.has(a + b)) continue;
      merges.push([a, b]);
      vocab.set(a + b, vocab.size);
      pieces.push(a + b);
    }
    const ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
    const model = new BpeModel({ vocab, merges, byteLevel: true });
    const ids = [...vocab.keys()];
    for (let t = 0; t < 200; t++) {
      let word = '';
      for (let i = 1 + Math.floor(r() * 120); i > 0; i--) word += ['a', 'b', ' ', 'é'][Math.floor(r() * 4)];
      const mapped = [...new TextEncoder().encode(word)].map((b) => BYTE_TO_CHAR[b]);
      for (let rep = 0; rep < 2; rep++) {
        const out: number[] = [];
        model.encodeWord(word, out);
        assert.deepEqual(out.map((i) => ids[i]), naive(mapped, ranks));
      }
    }
  });
});

describe('encode is linear in the input', function () {
  const MB = 1 << 20;
  const inputs: Array<[string, () => string]> = [
    ['1 MB of one repeated letter', () => 'a'.repeat(MB)],
    ['1 MB of one repeated space', () => ' '.repeat(MB)],
    ['1 MB of one repeated digit', () => '7'.repeat(MB)],
    ['1 MB of one repeated "!"', () => '!'.repeat(MB)],
    ['1 MB without spaces (letters, digits, CJK, emoji, punctuation)', () => {
      const r = rng(3);
      const parts = ['abc', 'XYZ', '123', '我想', '🦙', '!?', "'s", 'é', '—'];
      let s = '';
      while (s.length < MB) s += parts[Math.floor(r() * parts.length)];
      return s;
    }],
  ];
  for (const name of ['gpt2', 'gpt2Gguf', 'llama3'] as const) {
    describe(name, () => {
      let tok: Tokenizer;
      before(async function () {
        requireFiles(this, TOKENIZER_FILES[name]);
        tok = await loadTokenizer(TOKENIZER_FILES[name]);
      });
      for (const [label, make] of inputs) {
        it(label, () => {
          const s = make();
          const t0 = performance.now();
          const ids = tok.encode(s);
          const ms = performance.now() - t0;
          console.log(`      ${name}: ${label}: ${ids.length} tokens in ${ms.toFixed(0)} ms`);
          assert.ok(ms < 15000, `took ${ms} ms`);
          assert.ok(ids.length > 0);
        });
      }
    });
  }
});

describe('byte-level BPE streams whole characters', () => {
  it('pushes never split a UTF-8 character and concatenate to decode()', async function () {
    requireFiles(this, TOKENIZER_FILES.gpt2, TOKENIZER_FILES.llama3);
    for (const file of [TOKENIZER_FILES.gpt2, TOKENIZER_FILES.llama3]) {
      const tok = await loadTokenizer(file);
      let split = 0;
      for (const text of [...randomTexts(11, 200), '🦙👨‍👩‍👧‍👦 我想在apple工作 ន្ទាប់ពីការ']) {
        const ids = tok.encode(text);
        const d = tok.createStreamDecoder();
        let acc = '';
        for (const id of ids) {
          const piece = d.push(id);
          if (new TextEncoder().encode(tok.decode([id])).length === 0) continue;
          assert.ok(!piece.includes('\ufffd') || text.includes('\ufffd'), `U+FFFD in a push for ${JSON.stringify(text)}`);
          if (tok.decode([id]).includes('\ufffd')) split++;
          acc += piece;
        }
        acc += d.flush();
        assert.equal(acc, tok.decode(ids));
        assert.equal(acc, text);
      }
      assert.ok(split > 0, 'the texts should include tokens that are parts of characters');
    }
  });
});
