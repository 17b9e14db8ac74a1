/**
 * What this proves: our tokenizers give exactly the ids of Hugging Face's own Rust `tokenizers`
 * (npm `tokenizers`, the library that produced the reference vectors) on thousands of seeded
 * random strings — many scripts, emoji with ZWJ / skin tones / flags, Unicode whitespace runs
 * (U+0085, U+3000, U+FEFF ...), digit runs, contractions in odd casing, combining marks, control
 * characters, lone surrogates (which become U+FFFD on the way into Rust, and in ours) and
 * special-token texts (parsed, with parseSpecial: true, since HF always parses them):
 * - for each tokenizer.json (GPT-2, Llama-2/TinyLlama, Mistral, Llama-3, Qwen3, BERT uncased) and
 *   for the GGUF vocabs against their tokenizer.json twins (gpt-2, bert-bge);
 * - decode() equals HF's decode (skip special tokens) of the same ids;
 * - decode(encode(s)) === s (lone surrogates as U+FFFD, Qwen after NFC) wherever the tokenizer is
 *   lossless: every byte-level BPE and the byte-fallback Llama-2 / Mistral.
 * Prints counts and time; shows the first mismatches on failure.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadTokenizer } from '../../lib/tokenizer/load.js';
import { toWellFormed } from '../../lib/tokenizer/pretokenize.js';
import type { Tokenizer } from '../../lib/tokenizer/tokenizer.js';
import { requireFiles, TOKENIZER_FILES as F } from './helpers.js';
import { randomTexts } from './random-text.js';

const require = createRequire(import.meta.url);

interface HfEncoding { getIds(): number[] }
interface HfTokenizer {
  encodeBatch(texts: string[], opts: { addSpecialTokens: boolean }): Promise<HfEncoding[]>;
  decode(ids: number[], skipSpecial: boolean): Promise<string>;
}

/** [name, our file, HF's tokenizer.json, round-trip transform (undefined: not lossless), seed] */
const RUNS: Array<[string, string, string, ((s: string) => string) | undefined, number]> = [
  ['gpt2 tokenizer.json', F.gpt2, F.gpt2, (s) => s, 1],
  ['gpt-2 GGUF', F.gpt2Gguf, F.gpt2, (s) => s, 2],
  ['llama-2 tokenizer.json', F.llama2, F.llama2, (s) => s, 3],
  ['mistral tokenizer.json', F.mistral, F.mistral, (s) => s, 4],
  ['llama-3 tokenizer.json', F.llama3, F.llama3, (s) => s, 5],
  ['qwen3 tokenizer.json', F.qwen3, F.qwen3, (s) => s.normalize('NFC'), 6],
  ['bert tokenizer.json', F.bert, F.bert, undefined, 7],
  ['bert-bge GGUF', F.bertGguf, F.bert, undefined, 8],
];
const WITH_SPECIALS = 2000;
const PLAIN = 1000;
const DECODE_CHECKS = 300;

describe('differential test against Hugging Face tokenizers (npm `tokenizers`)', function () {
  let Hf: { fromFile(p: string): HfTokenizer };
  const started = Date.now();
  let total = 0;

  before(function () {
    try {
      Hf = require('tokenizers').Tokenizer;
    } catch (e) {
      console.log(`      skipped: the tokenizers package does not load: ${(e as Error).message}`);
      this.skip();
    }
  });

  after(() => console.log(`      differential total: ${total} strings in ${((Date.now() - started) / 1000).toFixed(1)} s`));

  for (const [name, ours, theirs, lossless, seed] of RUNS) {
    it(`${name}: identical ids, decode and round trip`, async function () {
      requireFiles(this, ours, theirs);
      const tok: Tokenizer = await loadTokenizer(ours);
      const hf = Hf.fromFile(theirs);
      const specials = (JSON.parse(readFileSync(theirs, 'utf8')).added_tokens as Array<{ content: string }>).slice(0, 12).map((t) => t.content);
      const withSpecials = randomTexts(seed * 1000 + 1, WITH_SPECIALS, { surrogates: true, extra: specials });
      const plain = randomTexts(seed * 1000 + 2, PLAIN, { surrogates: true });
      const texts = [...withSpecials, ...plain];
      const expected = await hf.encodeBatch(texts, { addSpecialTokens: false });
      const bad: string[] = [];
      const badDecode: string[] = [];
      const badTrip: string[] = [];
      for (let i = 0; i < texts.length; i++) {
        // HF always parses special tokens; the plain texts contain none, so both settings agree there.
        const got = tok.encode(texts[i], { parseSpecial: i < WITH_SPECIALS });
        const want = expected[i].getIds();
        if (got.join(' ') !== want.join(' ')) {
          bad.push(`  ${JSON.stringify(texts[i])}\n    expected [${want.join(', ')}]\n    got      [${got.join(', ')}]`);
          continue;
        }
        if (i % Math.ceil(texts.length / DECODE_CHECKS) === 0) {
          const hd = await hf.decode(want, true);
          const od = tok.decode(got);
          if (hd !== od) badDecode.push(`  ids [${want.join(', ')}]\n    HF   ${JSON.stringify(hd)}\n    ours ${JSON.stringify(od)}`);
        }
        if (lossless && i >= WITH_SPECIALS) {
          const want = lossless(toWellFormed(texts[i]));
          const back = tok.decode(got);
          if (back !== want) badTrip.push(`  ${JSON.stringify(texts[i])} -> ${JSON.stringify(back)}`);
        }
      }
      total += texts.length;
      console.log(
        `      ${name}: ids ${texts.length - bad.length}/${texts.length}, decode ${badDecode.length} mismatches` +
          (lossless ? `, round trip ${PLAIN - badTrip.length}/${PLAIN}` : ''),
      );
      assert.equal(bad.length, 0, `${bad.length} id mismatches, first ones:\n${bad.slice(0, 4).join('\n')}`);
      assert.equal(badDecode.length, 0, `${badDecode.length} decode mismatches, first ones:\n${badDecode.slice(0, 4).join('\n')}`);
      assert.equal(badTrip.length, 0, `${badTrip.length} round-trip failures, first ones:\n${badTrip.slice(0, 4).join('\n')}`);
    });
  }
});
