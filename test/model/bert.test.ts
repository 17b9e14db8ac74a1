/**
 * BERT, encoder-only. Proves that
 *  - neural-api-tiny-bert (post-LN, exact-erf GELU, bidirectional attention, token types,
 *    pooler) gives the reference last_hidden_state and pooler output (HF BertModel in float64)
 *    within 1e-4, with the reference kernels and the fast ones;
 *  - lm-buddy-bert-tiniest (`bert.`-prefixed names, the real bert-base-uncased WordPiece
 *    tokenizer) embeds texts: mean and CLS pooling, unit norm when normalized, mean pooling
 *    equal to the average of encode()'s hidden states;
 *  - embed() of several texts, packed into forward passes of at most maxTokens tokens with each
 *    text attending over its own rows only, gives exactly the embeddings of one text at a time
 *    (2 heads, 2 layers, 16 positions: texts of 1 to 16 tokens, several passes; the real
 *    WordPiece model on sentences of different lengths), with every kernel level; a text longer
 *    than maxTokens is an E_CONTEXT_FULL;
 *  - on the CUDA backend (its SIMT emulator without a GPU) the same hidden states and pooler,
 *    and packed embeddings equal to the CPU's;
 *  - a decoder folder is refused by loadEmbeddingModel and a bert folder by loadModel.
 * Skipped, saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NativeImpl } from '../../bindings.js';
import { FuselmError } from '../../lib/errors.js';
import { type EmbeddingModel, loadEmbeddingModel } from '../../lib/model/bert.js';
import { loadModel } from '../../lib/model/model.js';
import { withCudaEmulation } from '../helpers/cuda.js';
import { fastImpls } from '../helpers/parity.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';
import { writeBertGguf } from './gguf-from-hf.js';

interface ReferenceStates { sequences: number[][]; token_types: number[][]; hidden: number[][][]; pooler: number[][] }

/** encode() of each reference sequence gives HF's hidden states and pooler output within 1e-4. */
async function assertReferenceStates(m: EmbeddingModel, ref: ReferenceStates, label: string): Promise<void> {
  const D = m.config.dim;
  let hErr = 0, pErr = 0;
  for (let s = 0; s < ref.sequences.length; s++) {
    const r = await m.encode(ref.sequences[s], ref.token_types[s]);
    ref.hidden[s].forEach((row, t) => row.forEach((v, i) => (hErr = Math.max(hErr, Math.abs(r.hidden[t * D + i] - v)))));
    ref.pooler[s].forEach((v, i) => (pErr = Math.max(pErr, Math.abs(r.pooler![i] - v))));
  }
  console.log(`      ${label}: max |hidden - ref| = ${hErr.toExponential(2)}, max |pooler - ref| = ${pErr.toExponential(2)}`);
  assert.ok(hErr < 1e-4 && pErr < 1e-4, `${label}: hidden ${hErr}, pooler ${pErr}`);
}

describe('BERT (encoder)', () => {
  it('neural-api-tiny-bert: hidden states and pooler within 1e-4 of the reference', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-bert/reference_hidden.json');
    const ref = readSharedJson<ReferenceStates>(
      'models/hf/neural-api-tiny-bert/reference_hidden.json',
    );
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) {
      await using m = await loadEmbeddingModel(sharedPath('models/hf/neural-api-tiny-bert'), { device: 'cpu', impl, threads: 2 });
      await assertReferenceStates(m, ref, impl);
    }
  });

  it('runs on the CUDA backend: the reference hidden states and pooler, and the CPU’s packed embeddings', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-bert/reference_hidden.json', 'models/hf/lm-buddy-bert-tiniest/tokenizer.json');
    const ref = readSharedJson<ReferenceStates>(
      'models/hf/neural-api-tiny-bert/reference_hidden.json',
    );
    await withCudaEmulation(async () => {
      await using m = await loadEmbeddingModel(sharedPath('models/hf/neural-api-tiny-bert'), { device: 'cuda' });
      assert.equal(m.device, 'cuda');
      await assertReferenceStates(m, ref, 'cuda');
      const texts = ['Hello, world!', 'Something else entirely.', 'a', 'The quick brown fox jumps over the lazy dog.'];
      await using gpu = await loadEmbeddingModel(sharedPath('models/hf/lm-buddy-bert-tiniest'), { device: 'cuda' });
      await using cpu = await loadEmbeddingModel(sharedPath('models/hf/lm-buddy-bert-tiniest'), { device: 'cpu' });
      const [g, c] = [await gpu.embed(texts), await cpu.embed(texts)];
      for (let i = 0; i < texts.length; i++) for (let j = 0; j < c[i].length; j++) assert.ok(Math.abs(g[i][j] - c[i][j]) < 1e-5, `text ${i} [${j}]`);
    });
  });

  it('lm-buddy-bert-tiniest embeds texts with its WordPiece tokenizer', async function () {
    requireShared(this, 'models/hf/lm-buddy-bert-tiniest/tokenizer.json');
    await using m = await loadEmbeddingModel(sharedPath('models/hf/lm-buddy-bert-tiniest'));
    const ids = m.tokenizer!.encode('Hello, world!', { addSpecial: true });
    assert.equal(ids[0], 101); // [CLS]
    assert.equal(ids[ids.length - 1], 102); // [SEP]
    const [a, b] = await m.embed(['Hello, world!', 'Something else entirely.']);
    assert.equal(a.length, 4);
    for (const e of [a, b]) assert.ok(Math.abs(Math.hypot(...e) - 1) < 1e-5);
    const [raw] = await m.embed('Hello, world!', { normalize: false });
    const { hidden } = await m.encode(ids);
    for (let i = 0; i < 4; i++) {
      let mean = 0;
      for (let t = 0; t < ids.length; t++) mean += hidden[t * 4 + i] / ids.length;
      assert.ok(Math.abs(raw[i] - mean) < 1e-6);
    }
    const [cls] = await m.embed('Hello, world!', { pooling: 'cls', normalize: false });
    assert.deepEqual([...cls], [...hidden.subarray(0, 4)]);
  });

  it('embed() packs several texts per forward pass and gives exactly the one-at-a-time embeddings', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-bert/config.json', 'models/hf/lm-buddy-bert-tiniest/tokenizer.json');
    const tmp = mkdtempSync(path.join(tmpdir(), 'fuselm-bert-batch-'));
    try {
      // the tiny BERT with a made-up tokenizer (one token per letter a..j), as a GGUF
      const file = path.join(tmp, 'tiny-bert.gguf');
      await writeBertGguf(sharedPath('models/hf/neural-api-tiny-bert'), file);
      const letters = (n: number, from: number) => Array.from({ length: n }, (_, i) => 'abcdefghij'[(from + i) % 10]).join(' ');
      const tiny = [5, 1, 16, 7, 9, 3, 12, 2].map((n, i) => letters(n, i));
      const words = ['Hello, world!', 'A somewhat longer sentence about embeddings, batching and attention spans.', 'ok', 'naïve café'];
      for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
        for (const [p, texts] of [[file, tiny], [sharedPath('models/hf/lm-buddy-bert-tiniest'), words]] as const) {
          await using m = await loadEmbeddingModel(p, { impl, threads: 2 });
          for (const pooling of ['mean', 'cls', 'last'] as const) {
            const batched = await m.embed([...texts], { pooling });
            for (let i = 0; i < texts.length; i++) assert.deepEqual(batched[i], (await m.embed(texts[i], { pooling }))[0], `${impl} ${pooling}: text ${i}`);
          }
          if (p === file) await assert.rejects(m.embed(['a', letters(17, 0)]), (e: unknown) => e instanceof FuselmError && e.code === 'E_CONTEXT_FULL');
        }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('encoders and decoders are loaded by their own functions', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-bert/config.json', 'models/hf/neural-api-tiny-llama/config.json');
    await assert.rejects(loadModel(sharedPath('models/hf/neural-api-tiny-bert')), (e: unknown) => e instanceof FuselmError && e.code === 'E_UNSUPPORTED');
    await assert.rejects(loadEmbeddingModel(sharedPath('models/hf/neural-api-tiny-llama')), (e: unknown) => e instanceof FuselmError && e.code === 'E_UNSUPPORTED');
  });
});
