/**
 * The tokenizer `fuselm convert` writes into a GGUF from a Hugging Face folder
 * (lib/tools/convert.ts folderVocab): a byte-level BPE tokenizer.json becomes llama.cpp's "gpt2"
 * vocabulary. GPT-2's equals llama.cpp's own ggml-vocab-gpt-2.gguf (tokens, types, merges,
 * pre-tokenizer, special ids); and GGUFs holding only the written vocabulary tokenize llama.cpp's
 * conformance texts into llama.cpp's ids for GPT-2, Llama-3 (pre "llama-bpe") and Qwen3 (pre
 * "qwen2"). SentencePiece folders are checked against llama.cpp's converter in
 * test/model/hf-twins.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gv, readGguf, writeGguf } from '../lib/formats/gguf.js';
import { loadTokenizer } from '../lib/tokenizer/load.js';
import { folderVocab } from '../lib/tools/convert.js';
import { TOKENIZER_FILES, VOCAB_DIR, readVocabVectors, requireFiles } from './tokenizer/helpers.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-vocab-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A vocab-only GGUF of the entries folderVocab writes for the folder of `tokenizerJson`. */
async function vocabGguf(tokenizerJson: string, arch: string, vocabSize: number): Promise<string> {
  const out = path.join(dir, `${path.basename(path.dirname(path.dirname(tokenizerJson)))}-${path.basename(path.dirname(tokenizerJson))}.gguf`);
  const entries = await folderVocab(path.dirname(tokenizerJson), arch, vocabSize);
  await writeGguf(out, { metadata: [{ key: 'general.architecture', ...gv.str(arch) }, ...entries], tensors: [] });
  return out;
}

describe('convert: tokenizers from tokenizer.json', function () {
  this.timeout(120_000);

  it("GPT-2: llama.cpp's own vocabulary GGUF, entry for entry", async function () {
    requireFiles(this, TOKENIZER_FILES.gpt2, TOKENIZER_FILES.gpt2Gguf);
    const ours = await readGguf(await vocabGguf(TOKENIZER_FILES.gpt2, 'gpt2', 50257));
    const theirs = await readGguf(TOKENIZER_FILES.gpt2Gguf);
    for (const k of ['tokenizer.ggml.model', 'tokenizer.ggml.pre', 'tokenizer.ggml.tokens', 'tokenizer.ggml.token_type', 'tokenizer.ggml.merges', 'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id'])
      assert.deepEqual(ours.metadata.get(k), theirs.metadata.get(k), k);
  });

  for (const [name, file, vectors, pre] of [
    ['GPT-2', TOKENIZER_FILES.gpt2, 'gpt-2', 'gpt-2'],
    ['Llama-3', TOKENIZER_FILES.llama3, 'llama-bpe', 'llama-bpe'],
    ['Qwen3', TOKENIZER_FILES.qwen3, 'qwen2', 'qwen2'],
  ] as const)
    it(`${name}: the written vocabulary tokenizes llama.cpp's conformance texts into its ids`, async function () {
      requireFiles(this, file, path.join(VOCAB_DIR, `ggml-vocab-${vectors}.gguf.inp`));
      const g = await vocabGguf(file, 'llama', 0);
      assert.equal((await readGguf(g)).metadata.get('tokenizer.ggml.pre'), pre);
      const tok = await loadTokenizer(g);
      let n = 0;
      for (const [text, ids] of readVocabVectors(vectors)) {
        assert.deepEqual(tok.encode(text, { addSpecial: false }), ids, JSON.stringify(text));
        n++;
      }
      assert.ok(n > 10, `${n} vectors`);
    });

  it('a tokenizer it cannot write faithfully is E_UNSUPPORTED, naming it', async function () {
    requireFiles(this, TOKENIZER_FILES.llama2);
    // a byte-fallback (SentencePiece-made) tokenizer.json without tokenizer.model: the piece
    // scores llama.cpp's "llama" vocabulary needs are not in tokenizer.json
    await assert.rejects(folderVocab(path.dirname(TOKENIZER_FILES.llama2), 'llama', 32000), { code: 'E_UNSUPPORTED', message: /byte-fallback/ });
    await assert.rejects(folderVocab(dir, 'llama', 10), { code: 'E_UNSUPPORTED', message: /no tokenizer\.model or tokenizer\.json/ });
  });
});
