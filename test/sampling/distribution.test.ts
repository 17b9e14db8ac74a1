// Proves that each stage of the sampler chain draws from the distribution it defines: for every
// stage (and for the default chain and a reordered one), 40 000 seeded draws over a small
// vocabulary are compared with the exact probabilities of a naive reference implementation
// (helpers.ts) by Pearson's chi-square test at p = 0.001; tokens a stage removes are never drawn.
// The kept sets are also pinned by hand where they are easy to compute.
import assert from 'node:assert/strict';
import { Candidates } from '../../lib/sampling/candidates.js';
import { Rng } from '../../lib/sampling/rng.js';
import { createSampler, type SamplerOptions } from '../../lib/sampling/sampler.js';
import { mirostatV2 } from '../../lib/sampling/stages.js';
import { assertMatches, drawCounts, f32, referenceDistribution, type RefOptions } from './helpers.js';

const N = 40_000;
// 10 tokens with distinct, well separated logits (no probability sits at a cut boundary)
const LOGITS = f32([2.0, 1.5, 1.2, 1.0, 0.5, 0.2, 0.0, -0.5, -1.0, -3.0]);
// everything off: only the stage under test acts
const OFF: SamplerOptions = { temperature: 1, topK: 0, topP: 1, minP: 0, typicalP: 1 };

const keptIds = (probs: number[]) => probs.flatMap((p, i) => (p > 0 ? [i] : []));

function check(label: string, opts: SamplerOptions, history: number[] = [], seed = 1, logits = LOGITS) {
  const probs = referenceDistribution(logits, opts as RefOptions, history);
  const counts = drawCounts(createSampler({ ...opts, seed }), logits, N, history);
  assertMatches(counts, probs, label);
  return probs;
}

describe('sampling: each stage draws from the distribution it defines (chi-square, p = 0.001)', () => {
  it('temperature alone: softmax(l / T) for T = 1, 0.7, 2', () => {
    for (const temperature of [1, 0.7, 2]) {
      const probs = check(`T=${temperature}`, { ...OFF, temperature });
      assert.equal(keptIds(probs).length, 10);
    }
  });

  it('top-k: softmax over the k best', () => {
    for (const topK of [2, 4, 7]) {
      const probs = check(`topK=${topK}`, { ...OFF, topK });
      assert.deepEqual(keptIds(probs), [...Array(topK).keys()]);
    }
  });

  it('top-p: the smallest prefix with mass >= p', () => {
    // probabilities (T = 1): .324 .197 .146 .119 .072 .054 .044 .027 .016 .002
    const probs = check('topP=0.6', { ...OFF, topP: 0.6 });
    assert.deepEqual(keptIds(probs), [0, 1, 2]); // .324+.197 = .521 < .6 ≤ .667
    check('topP=0.9', { ...OFF, topP: 0.9 });
  });

  it('min-p: keep p >= minP · p_max', () => {
    const probs = check('minP=0.3', { ...OFF, minP: 0.3 });
    // p_i / p_max = e^(l_i − 2) ≥ 0.3  ⇔  l_i ≥ 2 + ln 0.3 = 0.796
    assert.deepEqual(keptIds(probs), [0, 1, 2, 3]);
    check('minP=0.1', { ...OFF, minP: 0.1 });
  });

  it('typical-p: the most typical tokens up to mass p', () => {
    // H = 1.879 nats; |−ln p_i − H| ranks tokens 2 (.048), 3 (.248), 1 (.252), 4 (.748), 0 (.752) ...;
    // the mass reaches 0.5 after four of them (.146+.119+.197+.072 = .534): the most likely
    // token 0 is left out, which is what typical sampling is for
    const probs = check('typicalP=0.5', { ...OFF, typicalP: 0.5 });
    assert.deepEqual(keptIds(probs), [1, 2, 3, 4]);
    check('typicalP=0.8', { ...OFF, typicalP: 0.8 });
  });

  it('logit bias: added to the logits, -Infinity bans', () => {
    const probs = check('bias', { ...OFF, logitBias: { 0: -Infinity, 5: 1.5, 9: 2 } });
    assert.equal(probs[0], 0);
  });

  it('penalties: repetition, frequency and presence over the window', () => {
    const history = [7, 0, 1, 0, 3, 0, 2];
    check('penalties', { ...OFF, repeatPenalty: 1.5, frequencyPenalty: 0.2, presencePenalty: 0.3, penaltyLastN: 5 }, history);
  });

  it("the default chain (llama.cpp's defaults) and a few combinations", () => {
    check('defaults', {});
    check('defaults topK 5', { topK: 5 });
    check('typical + top-p + min-p, T 1.3', { topK: 0, typicalP: 0.9, topP: 0.8, minP: 0.1, temperature: 1.3 }, [], 3);
    check('everything', { topK: 6, typicalP: 0.95, topP: 0.9, minP: 0.05, temperature: 0.9, repeatPenalty: 1.2, frequencyPenalty: 0.1, presencePenalty: 0.1, logitBias: { 2: 0.5 } }, [0, 0, 1, 4], 4);
  });

  it('the order is configurable: temperature before top-p truncates the tempered distribution', () => {
    const a = referenceDistribution(LOGITS, { ...OFF, temperature: 3, topP: 0.5 } as RefOptions);
    const b = referenceDistribution(LOGITS, { ...OFF, temperature: 3, topP: 0.5, samplers: ['temperature', 'topP'] } as RefOptions);
    assert.notDeepEqual(keptIds(a), keptIds(b)); // the reorder matters for this case
    check('temperature first', { ...OFF, temperature: 3, topP: 0.5, samplers: ['temperature', 'topP'] });
    check('topP first', { ...OFF, temperature: 3, topP: 0.5, samplers: ['topP', 'temperature'] });
  });

  it('a stage left out of `samplers` does not run', () => {
    const probs = check('no topK', { ...OFF, topK: 2, samplers: ['temperature'] });
    assert.equal(keptIds(probs).length, 10);
  });

  it('all logits equal: uniform', () => {
    const flat = new Float32Array(8).fill(0.25);
    const counts = drawCounts(createSampler({ ...OFF, seed: 9 }), flat, N);
    assertMatches(counts, new Array(8).fill(1 / 8), 'uniform');
    // under the default chain too (top-p 0.95 keeps all 8: 7/8 < 0.95)
    assertMatches(drawCounts(createSampler({ seed: 10 }), flat, N), new Array(8).fill(1 / 8), 'uniform, defaults');
  });

  it('Mirostat v2, one step: the tokens with surprise <= mu, renormalized; mu moves by eta·(s − tau)', () => {
    const logits = f32([3, 2.5, 2, 1, 0, -1, -2, -4]);
    const p = Array.from(logits, (l) => Math.exp(l));
    const z = p.reduce((a, b) => a + b);
    const probs = p.map((x) => x / z);
    const mu = 3; // keep p ≥ 2^-3 = 0.125
    const kept = probs.map((q) => (q >= 0.125 ? q : 0));
    const zk = kept.reduce((a, b) => a + b);
    const expected = kept.map((q) => q / zk);
    assert.deepEqual(keptIds(expected), [0, 1, 2]);
    const rng = new Rng(5), c = new Candidates(), counts = new Int32Array(8);
    for (let i = 0; i < N; i++) {
      c.reset(logits);
      const state = { mu };
      const id = mirostatV2(c, state, 2, 0.1, rng);
      counts[id]++;
      const s = -Math.log2(expected[id]);
      assert.ok(Math.abs(state.mu - (mu - 0.1 * (s - 2))) < 1e-9);
    }
    assertMatches(counts, expected, 'mirostat v2');
  });

  it('Mirostat v2 through createSampler: mu starts at 2·tau, adapts, and reset() restores it', () => {
    const s = createSampler({ mirostat: 2, mirostatTau: 3, mirostatEta: 0.2, seed: 2 });
    assert.equal(s.mirostatMu, 6);
    const logits = f32(Array.from({ length: 50 }, (_, i) => -i * 0.1));
    for (let i = 0; i < 200; i++) s.sample(logits);
    assert.notEqual(s.mirostatMu, 6);
    s.reset();
    assert.equal(s.mirostatMu, 6);
    assert.equal(createSampler({}).mirostatMu, undefined);
  });
});
