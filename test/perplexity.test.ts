/**
 * lib/tools/perplexity.ts's scoring on logits given by hand: llama.cpp's chunks (BOS first, the
 * second half scored, the remainder dropped), the NLL of each scored token, and the per-chunk
 * comparison of two runs. (Against llama.cpp on real files: test/peers/perplexity.test.ts.)
 */
import assert from 'node:assert/strict';
import { type PerplexityResult, chunkDifference, chunkedPerplexity, tokenNll } from '../lib/tools/perplexity.js';

describe('perplexity scoring', () => {
  it("cuts llama.cpp's chunks, puts BOS first and scores the second half of each", async () => {
    const tokens = Array.from({ length: 2 * 16 + 5 }, (_, i) => 2 + (i % 6));
    const seen: Array<{ ids: number[]; first: number }> = [];
    const V = 8;
    const r = await chunkedPerplexity(tokens, 16, 1, async (ids, first) => {
      seen.push({ ids, first });
      return () => new Float32Array(V); // uniform: every token costs log 8
    });
    assert.equal(r.chunks, 2);
    assert.equal(r.scoredTokens, 2 * 7);
    assert.deepEqual(seen.map((s) => s.first), [8, 8]);
    assert.deepEqual(seen[1].ids, [1, ...tokens.slice(17, 32)]);
    assert.ok(Math.abs(r.perplexity - V) < 1e-12, `${r.perplexity}`);
    assert.equal(r.running.length, 2);
    assert.deepEqual(r.chunkNll.map((x) => +x.toFixed(12)), [+Math.log(V).toFixed(12), +Math.log(V).toFixed(12)]);
  });

  it('scores each token by -log softmax of its row', async () => {
    const row = Float32Array.of(0, 2, -1, 0.5);
    const want = Math.log(1 + Math.exp(2) + Math.exp(-1) + Math.exp(0.5)) - 2;
    assert.ok(Math.abs(tokenNll(row, 1) - want) < 1e-12);
    // every scored position predicts the next token with the row it is given
    const tokens = [0, 1, 2, 3, 1, 1, 1, 1];
    const r = await chunkedPerplexity(tokens, 8, undefined, async () => () => row);
    assert.equal(r.scoredTokens, 3);
    assert.ok(Math.abs(r.nll - want) < 1e-12, `${r.nll} vs ${want}`);
  });

  it("compares two runs chunk by chunk: the mean difference and its t", () => {
    const run = (chunkNll: number[]) => ({ chunkNll }) as PerplexityResult;
    const d = chunkDifference(run([1, 2, 3]), run([1, 1, 1]));
    assert.equal(d.mean, 1);
    assert.ok(Math.abs(d.t - Math.sqrt(3)) < 1e-12, `${d.t}`);
    assert.deepEqual(chunkDifference(run([1, 2]), run([1, 2])), { mean: 0, t: 0 });
    assert.equal(chunkDifference(run([2, 2]), run([1, 1])).t, Infinity);
    assert.throws(() => chunkDifference(run([1, 2]), run([1])), { code: 'E_INVALID_ARG' });
  });

  it('rejects a ctx below 4 and a text shorter than one chunk', async () => {
    const logits = async () => () => new Float32Array(4);
    await assert.rejects(chunkedPerplexity([1, 2, 3, 4], 3, undefined, logits), { code: 'E_INVALID_ARG', message: /ctx/ });
    await assert.rejects(chunkedPerplexity([1, 2, 3], 4, undefined, logits), { code: 'E_INVALID_ARG', message: /3 tokens/ });
  });
});
