/**
 * Unbounded work on the JS thread from tokenizers (issue 15, finding 3): regexes that backtrack
 * catastrophically are refused at load, naming the pattern; encodeAsync() encodes large texts in
 * a worker thread (the same ids as encode()), and generate() uses it, so the event loop stays free.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadTokenizer } from '../../lib/index.js';
import { tokenizerFromJson } from '../../lib/tokenizer/from-tokenizer-json.js';
import { GGUF_PRE_NAMES, ggufPreTokenizer, vetRegex } from '../../lib/tokenizer/pretokenize.js';
import { requireShared, sharedPath } from '../helpers/shared.js';
import { loopGap, rejectsCode, tokJson } from './helpers.js';

const GPT2 = 'tokenizers/hf/gpt2/tokenizer.json';
const GPT2_GGUF = 'tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf';

/** Text of `n` characters: words, digits, punctuation, newlines and some non-ASCII. */
function text(n: number): string {
  const words = ['the', 'quick', 'brown', 'fox', 'jumps', 'über', 'naïve', '12345', 'ねこ', "it's", '\n', '  ', '!?', 'x'];
  let s = '';
  let i = 7;
  while (s.length < n) {
    i = (i * 1103515245 + 12345) >>> 0;
    s += words[i % words.length] + ' ';
  }
  return s.slice(0, n);
}

describe('hostile tokenizer regexes and encodeAsync', function () {
  this.timeout(120_000);

  it('Split regexes that backtrack catastrophically are E_UNSUPPORTED at load, naming the field and pattern', async () => {
    for (const re of ['(a|aa)+$', '(a+)+b', '(?:\\s*\\w)+x', '((a|b)c){2,}'])
      await rejectsCode(
        () => tokenizerFromJson(tokJson((j) => (j.pre_tokenizer = { type: 'Split', pattern: { Regex: re }, behavior: 'Isolated' }))),
        'E_UNSUPPORTED',
        /pre_tokenizer\.pattern\.Regex.*catastrophic/,
      );
    await rejectsCode(
      () => tokenizerFromJson(tokJson((j) => (j.normalizer = { type: 'Replace', pattern: { Regex: '(x|xx)*y' }, content: 'z' }))),
      'E_UNSUPPORTED',
      /normalizer\.pattern\.Regex/,
    );
    // repeated classes and bounded groups are fine, and every built-in GGUF set passes
    for (const re of ['(?:ab)+', "(?i:'s|'t)", "(?:'s|'t)?", '[(a|b)+]+', '\\s+(?!\\S)', '(?<!\\s)\\s+$']) vetRegex(re);
    for (const name of GGUF_PRE_NAMES) ggufPreTokenizer(name);
  });

  it('encodeAsync() gives encode()\'s ids, for tokenizer.json and GGUF tokenizers, large and small texts', async function () {
    requireShared(this, GPT2, GPT2_GGUF);
    for (const file of [GPT2, GPT2_GGUF]) {
      const tok = await loadTokenizer(sharedPath(file));
      assert.ok(tok.encodeAsync, `${file}: no encodeAsync`);
      for (const n of [10, 100_000]) {
        const t = text(n);
        assert.deepEqual(await tok.encodeAsync!(t), tok.encode(t), `${file}, ${n} chars`);
        assert.deepEqual(await tok.encodeAsync!(t, { addSpecial: true }), tok.encode(t, { addSpecial: true }));
      }
      await rejectsCode(tok.encodeAsync!(5 as never), 'E_INVALID_ARG');
    }
  });

  it("encodeAsync() never uses a tokenizer.json changed since load (the worker's copy would give other ids)", async function () {
    requireShared(this, GPT2);
    const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-tok-'));
    try {
      const file = path.join(dir, 'tokenizer.json');
      copyFileSync(sharedPath(GPT2), file);
      const tok = await loadTokenizer(file);
      // another tokenizer under the same name: every merge gone
      const json = JSON.parse(readFileSync(file, 'utf8'));
      json.model.merges = [];
      writeFileSync(file, JSON.stringify(json));
      const t = text(100_000);
      assert.deepEqual(await tok.encodeAsync!(t), tok.encode(t));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('encodeAsync() of 10 MB keeps the event loop free (delay < 50 ms)', async function () {
    requireShared(this, GPT2);
    const tok = await loadTokenizer(sharedPath(GPT2));
    await tok.encodeAsync!(text(100_000)); // the worker's copy built
    const big = text(10 * 1024 * 1024);
    const t0 = performance.now();
    tok.encode(big.slice(0, 1 << 20));
    const inThread = performance.now() - t0;
    const { result: ids, gap } = await loopGap(() => tok.encodeAsync!(big));
    assert.ok(ids.length > 1_000_000);
    assert.ok(gap < 50, `event loop delay ${gap.toFixed(1)} ms while encoding 10 MB (1 MB in this thread: ${inThread.toFixed(0)} ms)`);
  });
});
