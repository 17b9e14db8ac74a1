/**
 * BERT, encoder-only. Proves that
 *  - neural-api-tiny-bert (post-LN, exact-erf GELU, bidirectional attention, token types,
 *    pooler) gives the reference last_hidden_state and pooler output (HF BertModel in float64)
 *    within 1e-4, with the reference kernels and the fast ones;
 *  - lm-buddy-bert-tiniest (`bert.`-prefixed names, the real bert-base-uncased WordPiece
 *    tokenizer) embeds texts: mean and CLS pooling, unit norm when normalized, mean pooling
 *    equal to the average of encode()'s hidden states;
 *  - a decoder folder is refused by loadEmbeddingModel and a bert folder by loadModel.
 * Skipped, saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { FuselmError } from '../../lib/errors.js';
import { loadEmbeddingModel } from '../../lib/model/bert.js';
import { loadModel } from '../../lib/model/model.js';
import { fastImpls } from '../helpers/parity.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

describe('BERT (encoder)', () => {
  it('neural-api-tiny-bert: hidden states and pooler within 1e-4 of the reference', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-bert/reference_hidden.json');
    const ref = readSharedJson<{ sequences: number[][]; token_types: number[][]; hidden: number[][][]; pooler: number[][] }>(
      'models/hf/neural-api-tiny-bert/reference_hidden.json',
    );
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) {
      await using m = await loadEmbeddingModel(sharedPath('models/hf/neural-api-tiny-bert'), { impl, threads: 2 });
      const D = m.config.dim;
      let hErr = 0, pErr = 0;
      for (let s = 0; s < ref.sequences.length; s++) {
        const r = await m.encode(ref.sequences[s], ref.token_types[s]);
        ref.hidden[s].forEach((row, t) => row.forEach((v, i) => (hErr = Math.max(hErr, Math.abs(r.hidden[t * D + i] - v)))));
        ref.pooler[s].forEach((v, i) => (pErr = Math.max(pErr, Math.abs(r.pooler![i] - v))));
      }
      console.log(`      ${impl}: max |hidden - ref| = ${hErr.toExponential(2)}, max |pooler - ref| = ${pErr.toExponential(2)}`);
      assert.ok(hErr < 1e-4 && pErr < 1e-4, `${impl}: hidden ${hErr}, pooler ${pErr}`);
    }
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

  it('encoders and decoders are loaded by their own functions', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-bert/config.json', 'models/hf/neural-api-tiny-llama/config.json');
    await assert.rejects(loadModel(sharedPath('models/hf/neural-api-tiny-bert')), (e: unknown) => e instanceof FuselmError && e.code === 'E_UNSUPPORTED');
    await assert.rejects(loadEmbeddingModel(sharedPath('models/hf/neural-api-tiny-llama')), (e: unknown) => e instanceof FuselmError && e.code === 'E_UNSUPPORTED');
  });
});
