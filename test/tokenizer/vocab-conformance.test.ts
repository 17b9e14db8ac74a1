/**
 * What this proves about building tokenizers from GGUF files (lib/tokenizer/from-gguf.ts):
 * - the SPM tokenizer loaded from llama.cpp's vocab-only GGUFs (llama-spm, phi-3) gives exactly
 *   the Hugging Face reference ids of llama.cpp's 46 conformance strings (encode with
 *   addSpecial: false, parseSpecial: false), printing a per-vocab pass count and the first
 *   mismatches otherwise;
 * - decode(encode(s)) === s for all of them: byte fallback makes SPM lossless, and decode drops
 *   exactly the one space the prefix added (Hugging Face's Strip decoder), so " " → [▁▁] → " ";
 * - the special tokens and flags are read from the metadata (Phi-3: EOS <|endoftext|>, EOT <|end|>);
 * - another SPM vocab (Baichuan, no vectors) loads and round-trips;
 * - a GGUF whose tokenizer.ggml.model or tokenizer.ggml.pre is unknown is refused with FuselmError
 *   E_UNSUPPORTED naming the value.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { FuselmError } from '../../lib/errors.js';
import { encodeGguf, gv, parseGguf, readGguf } from '../../lib/formats/gguf.js';
import { tokenizerFromGguf } from '../../lib/tokenizer/from-gguf.js';
import { loadTokenizer } from '../../lib/tokenizer/load.js';
import type { Tokenizer } from '../../lib/tokenizer/tokenizer.js';
import { readVocabVectors, requireFiles, VOCAB_DIR } from './helpers.js';

const gguf = (vocab: string) => path.join(VOCAB_DIR, `ggml-vocab-${vocab}.gguf`);

for (const vocab of ['llama-spm', 'phi-3']) {
  describe(`llama.cpp conformance vectors: ${vocab}`, function () {
    let tok: Tokenizer;
    let cases: Array<[string, number[]]>;

    before(async function () {
      requireFiles(this, gguf(vocab), `${gguf(vocab)}.inp`, `${gguf(vocab)}.out`);
      tok = await loadTokenizer(gguf(vocab));
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

    it('decode(encode(s)) gives back every string exactly', () => {
      const bad: string[] = [];
      for (const [text] of cases) {
        const ids = tok.encode(text);
        const back = tok.decode(ids);
        if (back !== text) bad.push(`  ${JSON.stringify(text)} -> ${JSON.stringify(back)}`);
        // With BOS in front (skipped) the result is the same.
        assert.equal(tok.decode([tok.bos!, ...ids]), back);
      }
      console.log(`      ${vocab}: ${cases.length - bad.length}/${cases.length} round-trip`);
      assert.equal(bad.length, 0, `round trip failed:\n${bad.slice(0, 5).join('\n')}`);
    });
  });
}

describe('tokenizer from GGUF metadata', () => {
  it('reads the special tokens and flags of a vocab-only file', async function () {
    requireFiles(this, gguf('llama-spm'), gguf('phi-3'));
    const f = await readGguf(gguf('llama-spm'));
    assert.equal(f.tensors.length, 0); // vocab only
    const llama = tokenizerFromGguf(f);
    assert.equal(llama.vocabSize, 32000);
    assert.deepEqual([llama.bos, llama.eos, llama.unk, llama.eot, llama.pad], [1, 2, 0, undefined, undefined]);
    assert.equal(llama.addBos, true);
    assert.equal(llama.addEos, false);
    assert.equal(llama.tokenToPiece(13), '<0x0A>');
    assert.deepEqual(llama.encode('Hello', { addSpecial: true }), [1, 15043]);
    assert.deepEqual(llama.encode('<s>Hello', { parseSpecial: true }), [1, 15043]);

    const phi = await loadTokenizer(gguf('phi-3'));
    assert.equal(phi.vocabSize, 32064);
    assert.equal(phi.eos, 32000);
    assert.equal(phi.tokenToPiece(phi.eot!), '<|end|>');
    assert.equal(phi.pad, 32000);
    assert.ok(phi.isEog(32000) && phi.isEog(32007) && !phi.isEog(1));
    // Phi-3's chat markers are control tokens: text only with parseSpecial, skipped by decode.
    const chat = phi.encode('<|user|>\nHi<|end|>', { parseSpecial: true });
    assert.equal(chat[0], 32010);
    assert.equal(chat[chat.length - 1], 32007);
    assert.equal(phi.decode(chat), '\nHi');
    assert.ok(!phi.encode('<|user|>').includes(32010));
  });

  it('loads another SPM vocab (Baichuan) that round-trips', async function () {
    requireFiles(this, gguf('baichuan'));
    const tok = await loadTokenizer(gguf('baichuan'));
    assert.equal(tok.vocabSize, 64000);
    for (const text of ['Hello world', '我想在apple工作1314151天～', ' 🦙 Привет\n\tok  ']) {
      assert.equal(tok.decode(tok.encode(text)), text);
    }
  });

  it('refuses an unsupported tokenizer model or pre-tokenizer with E_UNSUPPORTED naming it', () => {
    const fake = (model: string, pre?: string) => {
      const bytes = encodeGguf({
          metadata: [
            { key: 'tokenizer.ggml.model', ...gv.str(model) },
            ...(pre ? [{ key: 'tokenizer.ggml.pre', ...gv.str(pre) }] : []),
            { key: 'tokenizer.ggml.tokens', ...gv.arrStr(['a', 'b', 'ab']) },
            { key: 'tokenizer.ggml.merges', ...gv.arrStr(['a b']) },
          ],
          tensors: [],
        });
      return parseGguf(bytes, { path: `fake-${model}.gguf`, fileSize: bytes.length });
    };
    const isUnsupported = (re: RegExp) => (e: unknown) => {
      assert.ok(e instanceof FuselmError, String(e));
      assert.equal(e.code, 'E_UNSUPPORTED');
      assert.match(e.message, re);
      return true;
    };
    assert.throws(() => tokenizerFromGguf(fake('rwkv')), isUnsupported(/"rwkv"/));
    assert.throws(() => tokenizerFromGguf(fake('gpt2', 'no-such-pre')), isUnsupported(/"no-such-pre"/));
    // A known one loads.
    const ok = tokenizerFromGguf(fake('gpt2', 'gpt-2'));
    assert.deepEqual(ok.encode('aab'), [0, 2]);
  });
});
