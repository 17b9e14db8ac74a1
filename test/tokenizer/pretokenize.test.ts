/**
 * What this proves about pre-tokenizers, normalizers and WordPiece (lib/tokenizer/pretokenize.ts,
 * normalize.ts, wordpiece.ts):
 * - the GPT-2 / Llama-3 / Qwen2 patterns split as published: GPT-2 keeps digit runs whole and
 *   only lowercase contractions; Llama-3 takes contractions in any ASCII case and digits in threes;
 *   Qwen2 single digits; `\s` means Unicode White_Space (U+0085 yes, U+FEFF no), as in Oniguruma;
 * - the Oniguruma → JavaScript translation expands (?i:…) and maps \s \S \d \w;
 * - every tokenizer.ggml.pre value we know compiles, keeps all text (pieces concatenate back to the
 *   input), and runs in linear time on 256 KB adversarial inputs (one character repeated, a long
 *   space run before a digit, ...); an unknown value is E_UNSUPPORTED naming it;
 * - lowercase is per character (Σ → σ even at a word end), the BERT normalizer drops controls,
 *   keeps unassigned characters, spaces out CJK, strips accents; lone surrogates become U+FFFD;
 * - WordPiece: greedy longest match with ## continuations, [UNK] for words it can't cover or
 *   longer than max_input_chars_per_word; the GGUF phantom-space vocab converts back.
 */
import assert from 'node:assert/strict';
import { FuselmError } from '../../lib/errors.js';
import { bertNormalizer, lowercase } from '../../lib/tokenizer/normalize.js';
import {
  bertPreTokenizer,
  ggufPreTokenizer,
  GGUF_PRE_NAMES,
  GPT2_PATTERN,
  LLAMA3_PATTERN,
  onigToJs,
  QWEN2_PATTERN,
  regexSplit,
  toWellFormed,
} from '../../lib/tokenizer/pretokenize.js';
import { fromPhantomSpace, WordPieceModel } from '../../lib/tokenizer/wordpiece.js';

const split = (pattern: string, text: string) => {
  const out: string[] = [];
  regexSplit(new RegExp(pattern, 'gu'), 'isolated', false)(text, out, true);
  return out;
};

describe('pre-tokenizer patterns', () => {
  it('GPT-2: digit runs whole, lowercase contractions only, \\s+(?!\\S)', () => {
    assert.deepEqual(split(GPT2_PATTERN, "I'm 333333333 it'S"), ['I', "'m", ' 333333333', ' it', "'", 'S']);
    assert.deepEqual(split(GPT2_PATTERN, '   Hello'), ['  ', ' Hello']);
    assert.deepEqual(split(GPT2_PATTERN, 'a\u0085b'), ['a', '\u0085', 'b']);
    assert.deepEqual(split(GPT2_PATTERN, 'a \ufeffb'), ['a', ' \ufeff', 'b']);
  });

  it('Llama-3: contractions in any ASCII case, digits in threes, newlines with punctuation', () => {
    assert.deepEqual(split(LLAMA3_PATTERN, "We'VE a'lL 1234567"), ['We', "'VE", ' a', "'lL", ' ', '123', '456', '7']);
    assert.deepEqual(split(LLAMA3_PATTERN, "x'ſ"), ['x', "'ſ"]);
    assert.deepEqual(split(LLAMA3_PATTERN, 'ok!!\n\nnext'), ['ok', '!!\n\n', 'next']);
  });

  it('Qwen2: one digit at a time', () => {
    assert.deepEqual(split(QWEN2_PATTERN, '2024'), ['2', '0', '2', '4']);
  });

  it('translates Oniguruma syntax', () => {
    assert.equal(onigToJs("(?i:'s|'ll)"), "(?:'[sS]|'[lL][lL])");
    assert.equal(onigToJs('\\s+(?!\\S)'), '[\\p{White_Space}]+(?![\\P{White_Space}])');
    assert.equal(onigToJs('[^\\s\\p{L}]'), '[^\\p{White_Space}\\p{L}]');
    assert.throws(() => onigToJs('(?<name>x)'), (e: unknown) => e instanceof FuselmError && e.code === 'E_UNSUPPORTED');
  });
});

describe('GGUF tokenizer.ggml.pre sets', () => {
  const K = 256 * 1024;
  const sample = "\n \n\n \t\t 🚀 (normal) 😶‍🌫️ ✅ 3.3 3..3 3...3 ន្ទាប់ 我想在apple工作 ------======= Привет 'RE 'M 'D We'Ve a'lL";
  const adversarial: Array<[string, string]> = [
    ['letters', 'a'.repeat(K)],
    ['spaces', ' '.repeat(K)],
    ['spaces then a digit', ' '.repeat(K) + '1'],
    ['spaces then "!"', ' '.repeat(K) + '!'],
    ['newlines', '\n'.repeat(K)],
    ['" \\n" pairs', ' \n'.repeat(K / 2)],
    ['digits', '7'.repeat(K)],
    ['CJK', '我'.repeat(K)],
    ['"!"', '!'.repeat(K)],
  ];

  it(`all ${GGUF_PRE_NAMES.length} known values keep every character and run in linear time`, () => {
    let worst = 0;
    let worstName = '';
    for (const name of GGUF_PRE_NAMES) {
      const pre = ggufPreTokenizer(name);
      const out: string[] = [];
      pre(sample, out, true);
      assert.equal(out.join(''), sample, name);
      assert.ok(out.length > 10, name);
      for (const [label, s] of adversarial) {
        const t0 = performance.now();
        const pieces: string[] = [];
        pre(s, pieces, true);
        const ms = performance.now() - t0;
        if (ms > worst) [worst, worstName] = [ms, `${name} on ${label}`];
        assert.ok(ms < 5000, `${name} on 256 KB of ${label}: ${ms.toFixed(0)} ms`);
        assert.equal(pieces.join('').length, s.length);
      }
    }
    console.log(`      slowest: ${worstName}, ${worst.toFixed(0)} ms for 256 KB`);
  });

  it('includes the names the issue lists, and refuses unknown ones naming the value', () => {
    for (const n of ['gpt-2', 'llama-bpe', 'llama3', 'qwen2', 'deepseek-llm', 'deepseek-coder', 'falcon', 'starcoder', 'mpt', 'refact', 'command-r']) {
      assert.ok(GGUF_PRE_NAMES.includes(n), n);
    }
    assert.throws(() => ggufPreTokenizer('klingon'), (e: unknown) => e instanceof FuselmError && e.code === 'E_UNSUPPORTED' && /"klingon"/.test(e.message));
    const p = ggufPreTokenizer('starcoder');
    const out: string[] = [];
    p('abc 123', out, true);
    assert.deepEqual(out, ['abc', ' ', '1', '2', '3']);
  });
});

describe('normalizers', () => {
  it('lowercases per character like Rust, not by JS context rules', () => {
    assert.equal(lowercase('ΟΔΟΣ'), 'οδοσ');
    assert.equal(lowercase('HeLLo'), 'hello');
    assert.equal(lowercase('İ'), 'i\u0307');
  });

  it('BERT: controls dropped, unassigned kept, CJK spaced, accents stripped, lowercased', () => {
    const n = bertNormalizer({ lowercase: true });
    assert.equal(n('Führer\u0000\u200b\ue000x'), 'fuhrerx');
    assert.equal(n('a\u0378b'), 'a\u0378b');
    assert.equal(n('我想'), ' 我  想 ');
    assert.equal(n('a\tb\u3000c'), 'a b c');
    assert.equal(bertNormalizer({ lowercase: false })('Café'), 'Café');
  });

  it('replaces lone surrogates with U+FFFD and leaves pairs alone', () => {
    assert.equal(toWellFormed('a\ud800b\udc00🦙'), 'a\ufffdb\ufffd🦙');
    const s = 'plain 🦙';
    assert.equal(toWellFormed(s), s);
  });
});

describe('WordPiece', () => {
  const vocab = new Map(['[UNK]', 'un', '##aff', '##able', 'a', '##a', '##ff', 'aff'].map((t, i) => [t, i]));
  const wp = new WordPieceModel({ vocab, unk: 0, maxInputCharsPerWord: 10 });
  const enc = (w: string) => {
    const out: number[] = [];
    wp.encodeWord(w, out);
    return out.map((i) => [...vocab.keys()][i]);
  };

  it('greedy longest match first with ## continuations', () => {
    assert.deepEqual(enc('unaffable'), ['un', '##aff', '##able']);
    assert.deepEqual(enc('aaff'), ['a', '##aff']);
    assert.deepEqual(enc('unx'), ['[UNK]']);
    assert.deepEqual(enc('aaaaaaaaaaa'), ['[UNK]']); // 11 characters > 10
    assert.deepEqual(enc('aaaaaaaaaa'), Array(10).fill('a').map((x, i) => (i ? '##a' : 'a')));
  });

  it('BERT pre-tokenizer splits whitespace and isolates punctuation (ASCII symbols too)', () => {
    const out: string[] = [];
    bertPreTokenizer("Hi, it's $5~ ok", out, true);
    assert.deepEqual(out, ['Hi', ',', 'it', "'", 's', '$', '5', '~', 'ok']);
  });

  it("converts llama.cpp's phantom-space vocab back", () => {
    assert.deepEqual(fromPhantomSpace(['[PAD]', '▁hello', 'ing', '[unused1]', '▁#', '#'], [3, 1, 1, 1, 1, 1]), ['[PAD]', 'hello', '##ing', '[unused1]', '#', '##'.concat('#')]);
  });
});
