/**
 * A GPT-2-era folder with only vocab.json + merges.txt loads its byte-level BPE tokenizer: on
 * lm-buddy-fake-gpt2, which ships both forms, the folder without its tokenizer.json encodes and
 * decodes every test text (special tokens, bytes, spaces, non-Latin text) as the tokenizer.json
 * does; lm-buddy-tiny-gpt2, which ships no tokenizer.json, runs from loadModel with real text;
 * a malformed merges.txt is an E_FORMAT naming it.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel, loadTokenizer } from '../../lib/index.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

const TEXTS = [
  'Hello world',
  ' leading space and  two spaces',
  "It's 2024: don't stop, we'll see!",
  'naïve café, 東京, emoji 🤗 and \u0000 bytes',
  'line one\nline two\ttab',
  'special <|endoftext|> inside',
];

describe('tokenizer from vocab.json + merges.txt', function () {
  let dir: string;
  before(function () {
    requireShared(this, 'models/hf/lm-buddy-fake-gpt2/tokenizer.json', 'models/hf/lm-buddy-fake-gpt2/merges.txt');
    dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-vocab-merges-'));
    const src = sharedPath('models/hf/lm-buddy-fake-gpt2');
    for (const f of readdirSync(src)) if (f !== 'tokenizer.json') copyFileSync(path.join(src, f), path.join(dir, f));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  it("gives the same ids and text as the folder's tokenizer.json", async () => {
    const fast = await loadTokenizer(sharedPath('models/hf/lm-buddy-fake-gpt2'));
    const slow = await loadTokenizer(dir);
    assert.equal(slow.vocabSize, fast.vocabSize);
    assert.deepEqual([slow.bos, slow.eos, slow.eogIds], [fast.bos, fast.eos, fast.eogIds]);
    for (const text of TEXTS)
      for (const opts of [{}, { parseSpecial: true }, { addSpecial: true }]) {
        const ids = slow.encode(text, opts);
        assert.deepEqual(ids, fast.encode(text, opts), `${JSON.stringify(text)} ${JSON.stringify(opts)}`);
        assert.equal(slow.decode(ids), fast.decode(ids));
      }
    assert.deepEqual(slow.encode('Hello world'), [15496, 995]); // GPT-2's ids
  });

  it('a folder with no tokenizer.json runs text prompts through loadModel', async function () {
    requireShared(this, 'models/hf/lm-buddy-tiny-gpt2/merges.txt');
    const model = await loadModel(sharedPath('models/hf/lm-buddy-tiny-gpt2'), { threads: 1 });
    try {
      const r = await model.generate('low lower', { maxTokens: 4, ignoreEog: true });
      assert.ok(r.promptIds.length > 0);
      assert.equal(r.ids.length, 4);
    } finally {
      await model.dispose();
    }
  });

  it('a merges.txt line that is not a pair is an E_FORMAT naming the file and line', async () => {
    writeFileSync(path.join(dir, 'merges.txt'), '#version: 0.2\nĠ t\nnot a pair\n');
    await assert.rejects(loadTokenizer(dir), (e: Error & { code?: string }) => e.code === 'E_FORMAT' && /merges\.txt: line 3/.test(e.message));
  });
});
