// Proves logprobs(): the log-softmax of the ORIGINAL logits (as OpenAI-style APIs report it),
// checked against values computed by hand, probabilities summing to 1, the top-n most likely
// first with the lowest id first on ties, and -Infinity logits reported as -Infinity.
import assert from 'node:assert/strict';
import { logprobs, logSumExp } from '../../lib/sampling/logprobs.js';
import { createSampler } from '../../lib/sampling/sampler.js';
import { randn, rng } from '../helpers/random.js';

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) < tol, `${a} vs ${b}`);

describe('sampling: logprobs', () => {
  it('matches a hand-computed log-softmax', () => {
    // e^1 + e^2 + e^3 + e^0 = 2.718281828 + 7.389056099 + 20.085536923 + 1 = 31.192874850
    // ln 31.192874850 = 3.440189699
    const l = Float32Array.from([1, 2, 3, 0]);
    close(logSumExp(l), 3.440189699);
    const r = logprobs(l, 1, 2);
    assert.equal(r.id, 1);
    close(r.logprob, 2 - 3.440189699);
    assert.deepEqual(r.top.map((t) => t.id), [2, 1]);
    close(r.top[0].logprob, 3 - 3.440189699);
    close(r.top[1].logprob, 2 - 3.440189699);
  });

  it('exp(logprob) sums to 1 over the vocabulary; the top-n are the largest, in order', () => {
    const l = randn(5000, rng(3), 4);
    const r = logprobs(l, 17, 5000);
    let s = 0;
    for (const t of r.top) s += Math.exp(t.logprob);
    close(s, 1, 1e-9);
    for (let i = 1; i < r.top.length; i++) assert.ok(r.top[i - 1].logprob >= r.top[i].logprob);
    const top5 = logprobs(l, 17, 5).top;
    assert.deepEqual(top5, r.top.slice(0, 5));
    assert.equal(r.logprob, r.top.find((t) => t.id === 17)!.logprob);
  });

  it('ties: lowest id first; -Infinity is -Infinity; topN beyond the vocabulary is clipped; topN 0 is empty', () => {
    const l = Float32Array.from([0, 1, 1, -Infinity, 1]);
    const r = logprobs(l, 3, 10);
    assert.deepEqual(r.top.map((t) => t.id), [1, 2, 4, 0, 3]);
    assert.equal(r.logprob, -Infinity);
    close(r.top[0].logprob, 1 - Math.log(3 * Math.E + 1));
    assert.deepEqual(logprobs(l, 0, 0).top, []);
    assert.throws(() => logprobs(l, 5, 1), { code: 'E_INVALID_ARG' });
    assert.throws(() => logprobs(l, 0, -1), { code: 'E_INVALID_ARG' });
  });

  it('does not depend on the sampler options (bias, temperature, truncation)', () => {
    const l = Float32Array.from([0.5, 2, -1, 3]);
    const s = createSampler({ temperature: 0.3, topK: 1, logitBias: { 3: -Infinity } });
    assert.deepEqual(s.logprobs(l, 3, 4), logprobs(l, 3, 4));
    close(s.logprobs(l, 3, 0).logprob, 3 - logSumExp(l));
  });
});
