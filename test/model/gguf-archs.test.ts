/**
 * GPT-2 and BERT from GGUF files laid out as llama.cpp's converter writes them (written here from
 * the HF folders in ../shared by gguf-from-hf.ts). Proves that
 *  - a gpt2 GGUF (fused attn_qkv split into q, k, v rows; output.weight written out, or left out
 *    for a tied head) gives exactly the logits of the HF folder with the same weights, at every
 *    position, and the float64 reference logits within 1e-4, with the reference kernels and the
 *    fast ones; converted to f16 at load, exactly the logits of the HF folder converted to f16;
 *  - with llama.cpp's own gpt-2 vocab metadata, the GGUF tokenizes as the folder's
 *    tokenizer.json and generates the same greedy tokens (lm-buddy-fake-gpt2);
 *  - a bert GGUF gives exactly the HF folder's hidden states (and the reference within 1e-4);
 *    with llama.cpp's bert-bge vocab metadata (the bert-base-uncased vocabulary in phantom-space
 *    spelling) it embeds texts exactly as the folder does with its tokenizer.json (also both
 *    converted to f16 at load); `bert.pooling_type` sets embed()'s default pooling;
 *  - a fused attn_qkv of the wrong size, a missing tensor and an unknown pooling type are
 *    FuselmErrors naming the file and the tensor or key; each loader refuses the other kind.
 * Skipped, saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NativeImpl } from '../../bindings.js';
import { FuselmError } from '../../lib/errors.js';
import { loadEmbeddingModel } from '../../lib/model/bert.js';
import { loadModel } from '../../lib/model/model.js';
import { fastImpls } from '../helpers/parity.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';
import { writeBertGguf, writeGpt2Gguf } from './gguf-from-hf.js';

const log = (s: string) => console.log(`      ${s}`);
const GPT2_VOCAB = 'tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf';
const BERT_VOCAB = 'tokenizers/llama.cpp-vocab/ggml-vocab-bert-bge.gguf';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

const isCode = (code: string, re: RegExp) => (e: unknown) => e instanceof FuselmError && e.code === code && re.test(e.message);

let dir: string;
before(() => (dir = mkdtempSync(path.join(tmpdir(), 'fuselm-gguf-archs-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('GGUF gpt2', () => {
  const folder = 'models/hf/neural-api-tiny-gpt2';
  type Ref = { sequences: number[][]; logits: number[][][] };

  for (const tied of [false, true])
    it(`neural-api-tiny-gpt2 (${tied ? 'tied head' : 'output.weight'}): exactly the HF folder's logits, every kernel level`, async function () {
      requireShared(this, `${folder}/reference_logits.json`);
      const file = path.join(dir, `gpt2-${tied}.gguf`);
      await writeGpt2Gguf(sharedPath(folder), file, { tied });
      const ref = readSharedJson<Ref>(`${folder}/reference_logits.json`);
      for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) {
        await using g = await loadModel(file, { impl, threads: 2 });
        await using h = await loadModel(sharedPath(folder), { impl, threads: 2 });
        assert.equal(g.config.architecture, 'gpt2');
        assert.equal(g.config.tiedEmbeddings, tied);
        let vsHf = 0, vsRef = 0;
        for (let s = 0; s < ref.sequences.length; s++) {
          const got = await g.evaluate(ref.sequences[s], { allLogits: true });
          vsHf = Math.max(vsHf, maxAbsDiff(got, await h.evaluate(ref.sequences[s], { allLogits: true })));
          vsRef = Math.max(vsRef, maxAbsDiff(got, ref.logits[s].flat()));
        }
        log(`${impl}: max |gguf - hf| = ${vsHf.toExponential(2)}, max |gguf - ref| = ${vsRef.toExponential(2)}`);
        assert.ok(vsHf === 0 && vsRef < 1e-4, `${impl}: ${vsHf}, ${vsRef}`);
      }
    });

  it('neural-api-tiny-gpt2: dtype f16 from the GGUF gives exactly the HF folder converted to f16', async function () {
    requireShared(this, `${folder}/reference_logits.json`);
    const file = path.join(dir, 'gpt2-f16.gguf');
    await writeGpt2Gguf(sharedPath(folder), file);
    const ids = readSharedJson<Ref>(`${folder}/reference_logits.json`).sequences[0];
    await using g = await loadModel(file, { dtype: 'f16' });
    await using h = await loadModel(sharedPath(folder), { dtype: 'f16' });
    await using f32 = await loadModel(file);
    const a = await g.evaluate(ids, { allLogits: true });
    assert.equal(maxAbsDiff(a, await h.evaluate(ids, { allLogits: true })), 0);
    assert.ok(maxAbsDiff(a, await f32.evaluate(ids, { allLogits: true })) > 0, 'f16 weights change the logits');
  });

  it("lm-buddy-fake-gpt2 with llama.cpp's gpt-2 vocab: same tokens and greedy continuation as the HF folder", async function () {
    requireShared(this, 'models/hf/lm-buddy-fake-gpt2/tokenizer.json', GPT2_VOCAB);
    const file = path.join(dir, 'fake-gpt2.gguf');
    await writeGpt2Gguf(sharedPath('models/hf/lm-buddy-fake-gpt2'), file, { vocabGguf: sharedPath(GPT2_VOCAB) });
    await using g = await loadModel(file);
    await using h = await loadModel(sharedPath('models/hf/lm-buddy-fake-gpt2'));
    const prompt = "Hello world, it's 2024: naïve café!";
    assert.deepEqual(g.tokenizer.encode(prompt), h.tokenizer.encode(prompt));
    const [a, b] = [await g.generate(prompt, { maxTokens: 8, ignoreEog: true }), await h.generate(prompt, { maxTokens: 8, ignoreEog: true })];
    assert.deepEqual(a.ids, b.ids);
    assert.equal(a.text, b.text);
    assert.equal(maxAbsDiff(await g.evaluate(a.promptIds), await h.evaluate(b.promptIds)), 0);
  });

  it('a fused attn_qkv of the wrong size or a missing tensor is an E_FORMAT naming the tensor', async function () {
    requireShared(this, `${folder}/config.json`);
    const bad = path.join(dir, 'gpt2-bad-qkv.gguf');
    await writeGpt2Gguf(sharedPath(folder), bad, { replace: { 'blk.1.attn_qkv.weight': { dims: [8, 16], data: new Float32Array(128) } } });
    await assert.rejects(loadModel(bad), isCode('E_FORMAT', /gpt2-bad-qkv\.gguf: tensor 'blk\.1\.attn_qkv\.weight' has dims \[8,16\].*expected \[8,24\]/));
    const noBias = path.join(dir, 'gpt2-no-bias.gguf');
    await writeGpt2Gguf(sharedPath(folder), noBias, { drop: ['blk.0.ffn_up.bias'] });
    await assert.rejects(loadModel(noBias), isCode('E_FORMAT', /gpt2-no-bias\.gguf: tensor 'blk\.0\.ffn_up\.bias' is missing/));
  });
});

describe('GGUF bert', () => {
  const folder = 'models/hf/neural-api-tiny-bert';

  it("neural-api-tiny-bert: exactly the HF folder's hidden states, every kernel level", async function () {
    requireShared(this, `${folder}/reference_hidden.json`);
    const file = path.join(dir, 'bert.gguf');
    await writeBertGguf(sharedPath(folder), file);
    const ref = readSharedJson<{ sequences: number[][]; token_types: number[][]; hidden: number[][][] }>(`${folder}/reference_hidden.json`);
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) {
      await using g = await loadEmbeddingModel(file, { impl, threads: 2 });
      await using h = await loadEmbeddingModel(sharedPath(folder), { impl, threads: 2 });
      assert.equal(g.config.typeVocabSize, 2);
      assert.equal(g.pooling, 'mean');
      let vsHf = 0, vsRef = 0;
      for (let s = 0; s < ref.sequences.length; s++) {
        const got = await g.encode(ref.sequences[s], ref.token_types[s]);
        assert.equal(got.pooler, undefined, 'the converter drops the pooler');
        vsHf = Math.max(vsHf, maxAbsDiff(got.hidden, (await h.encode(ref.sequences[s], ref.token_types[s])).hidden));
        vsRef = Math.max(vsRef, maxAbsDiff(got.hidden, ref.hidden[s].flat()));
      }
      log(`${impl}: max |gguf - hf| = ${vsHf.toExponential(2)}, max |gguf - ref| = ${vsRef.toExponential(2)}`);
      assert.ok(vsHf === 0 && vsRef < 1e-4, `${impl}: ${vsHf}, ${vsRef}`);
    }
  });

  it("lm-buddy-bert-tiniest with llama.cpp's bert-bge vocab: same tokens and embeddings as the HF folder; pooling_type sets the default", async function () {
    requireShared(this, 'models/hf/lm-buddy-bert-tiniest/tokenizer.json', BERT_VOCAB);
    const texts = ['Hello, world!', 'The quick brown fox jumps over the lazy dog.', 'naïve café, unbelievable tokenization'];
    await using h = await loadEmbeddingModel(sharedPath('models/hf/lm-buddy-bert-tiniest'));
    const want = await h.embed(texts);
    const mean = path.join(dir, 'bert-tiniest.gguf');
    await writeBertGguf(sharedPath('models/hf/lm-buddy-bert-tiniest'), mean, { vocabGguf: sharedPath(BERT_VOCAB), poolingType: 1 });
    await using g = await loadEmbeddingModel(mean);
    for (const t of texts) assert.deepEqual(g.tokenizer!.encode(t, { addSpecial: true }), h.tokenizer!.encode(t, { addSpecial: true }));
    const got = await g.embed(texts);
    got.forEach((e, i) => assert.equal(maxAbsDiff(e, want[i]), 0, texts[i]));
    // converted to f16 at load: from the GGUF exactly as from the folder
    await using g16 = await loadEmbeddingModel(mean, { dtype: 'f16' });
    await using h16 = await loadEmbeddingModel(sharedPath('models/hf/lm-buddy-bert-tiniest'), { dtype: 'f16' });
    const [a16, b16] = [await g16.embed(texts), await h16.embed(texts)];
    a16.forEach((e, i) => assert.equal(maxAbsDiff(e, b16[i]), 0, `f16: ${texts[i]}`));
    assert.ok(maxAbsDiff(a16[0], got[0]) > 0, 'f16 weights change the embedding');
    const cls = path.join(dir, 'bert-tiniest-cls.gguf');
    await writeBertGguf(sharedPath('models/hf/lm-buddy-bert-tiniest'), cls, { vocabGguf: sharedPath(BERT_VOCAB), poolingType: 2 });
    await using c = await loadEmbeddingModel(cls);
    assert.equal(c.pooling, 'cls');
    const [byDefault] = await c.embed(texts[1]);
    const [clsWanted] = await h.embed(texts[1], { pooling: 'cls' });
    assert.equal(maxAbsDiff(byDefault, clsWanted), 0);
    const rank = path.join(dir, 'bert-tiniest-rank.gguf');
    await writeBertGguf(sharedPath('models/hf/lm-buddy-bert-tiniest'), rank, { vocabGguf: sharedPath(BERT_VOCAB), poolingType: 4 });
    await assert.rejects(loadEmbeddingModel(rank), isCode('E_UNSUPPORTED', /bert-tiniest-rank\.gguf: metadata "bert\.pooling_type" is 4/));
  });

  it('encoders and decoders from GGUF are loaded by their own functions', async function () {
    requireShared(this, `${folder}/config.json`, 'models/hf/neural-api-tiny-gpt2/config.json');
    const bert = path.join(dir, 'bert-refused.gguf');
    const gpt2 = path.join(dir, 'gpt2-refused.gguf');
    await writeBertGguf(sharedPath(folder), bert);
    await writeGpt2Gguf(sharedPath('models/hf/neural-api-tiny-gpt2'), gpt2);
    await assert.rejects(loadModel(bert), isCode('E_UNSUPPORTED', /bert is an encoder; load it with loadEmbeddingModel/));
    await assert.rejects(loadEmbeddingModel(gpt2), isCode('E_UNSUPPORTED', /'gpt2' is not an encoder/));
  });
});
