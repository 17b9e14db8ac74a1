// Proves the sampler's contract: llama.cpp's defaults and stage order, every bad option rejected
// with E_INVALID_ARG naming the option, the same seed giving the same tokens (and reset()
// replaying them) while different seeds differ, and the fast paths for a large vocabulary
// (heap top-k, bucketed top-p, min-p, typical-p on 5 000–150 000 candidates, with ties and
// -Infinity) keeping exactly the set the naive reference keeps.
import assert from 'node:assert/strict';
import { Candidates } from '../../lib/sampling/candidates.js';
import { Rng } from '../../lib/sampling/rng.js';
import { createSampler, DEFAULT_SAMPLER_OPTIONS, DEFAULT_SAMPLER_ORDER, resolveSamplerOptions, type SamplerOptions } from '../../lib/sampling/sampler.js';
import { minP, topK, topP, typicalP } from '../../lib/sampling/stages.js';
import { randn, rng } from '../helpers/random.js';
import { refStages, type Ref } from './helpers.js';

describe('sampling: sampler options and reproducibility', () => {
  it("defaults are llama.cpp's common_params_sampling values, in its order", () => {
    const o = resolveSamplerOptions();
    assert.deepEqual(
      { temperature: o.temperature, topK: o.topK, topP: o.topP, minP: o.minP, typicalP: o.typicalP, repeatPenalty: o.repeatPenalty, penaltyLastN: o.penaltyLastN, frequencyPenalty: o.frequencyPenalty, presencePenalty: o.presencePenalty, minKeep: o.minKeep, seed: o.seed, mirostat: o.mirostat, mirostatTau: o.mirostatTau, mirostatEta: o.mirostatEta },
      { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, typicalP: 1, repeatPenalty: 1, penaltyLastN: 64, frequencyPenalty: 0, presencePenalty: 0, minKeep: 1, seed: 0, mirostat: 0, mirostatTau: 5, mirostatEta: 0.1 },
    );
    assert.deepEqual([...DEFAULT_SAMPLER_ORDER], ['penalties', 'topK', 'typicalP', 'topP', 'minP', 'temperature']);
    assert.equal(DEFAULT_SAMPLER_OPTIONS.samplers, DEFAULT_SAMPLER_ORDER);
  });

  it('bad option values are rejected with E_INVALID_ARG naming the option', () => {
    const bad: [keyof SamplerOptions, unknown][] = [
      ['temperature', -0.1], ['temperature', NaN], ['temperature', Infinity],
      ['topK', -1], ['topK', 2.5],
      ['topP', 0], ['topP', 1.01], ['topP', NaN],
      ['minP', -0.1], ['minP', 1.5],
      ['typicalP', 0], ['typicalP', 2],
      ['repeatPenalty', 0], ['repeatPenalty', -1],
      ['penaltyLastN', -2], ['penaltyLastN', 1.5],
      ['frequencyPenalty', NaN], ['presencePenalty', Infinity],
      ['seed', 1.5], ['minKeep', -1],
      ['samplers', ['topK', 'topZ']], ['samplers', 'topK'],
      ['mirostat', 1], ['mirostatTau', 0], ['mirostatEta', -1],
      ['logitBias', 5], ['rng', {}],
    ];
    for (const [k, v] of bad) {
      assert.throws(() => createSampler({ [k]: v } as SamplerOptions), (e: any) => e.code === 'E_INVALID_ARG' && e.message.includes(k), `${k} = ${String(v)}`);
    }
    // the edges that are allowed
    for (const o of [{ topP: 1 }, { minP: 0 }, { minP: 1 }, { topK: 0 }, { temperature: 0 }, { penaltyLastN: -1 }, { minKeep: 0 }, { seed: -5 }, { samplers: [] }]) {
      createSampler(o as SamplerOptions);
    }
  });

  it('the same seed gives the same tokens; different seeds differ; reset() replays', () => {
    const logits = randn(1000, rng(4), 1);
    const run = (seed: number, n = 200) => {
      const s = createSampler({ seed });
      return Array.from({ length: n }, () => s.sample(logits));
    };
    const a = run(42);
    assert.deepEqual(run(42), a);
    assert.notDeepEqual(run(43), a);
    assert.notDeepEqual(run(0), a);
    const s = createSampler({ seed: 42 });
    const first = Array.from({ length: 200 }, () => s.sample(logits));
    s.reset();
    assert.deepEqual(Array.from({ length: 200 }, () => s.sample(logits)), first);
    assert.deepEqual(first, a);
  });

  it('a sampler reuses its buffers across vocabulary sizes', () => {
    const s = createSampler({ seed: 1 });
    for (const n of [10, 150_000, 3, 70_000]) {
      const l = randn(n, rng(n), 2);
      const id = s.sample(l);
      assert.ok(id >= 0 && id < n);
    }
  });

});

describe('sampling: large-vocabulary fast paths keep exactly the reference set', () => {
  const ids = (c: Candidates) => Array.from({ length: c.size }, (_, i) => c.idAt(i)).sort((a, b) => a - b);
  const refIds = (r: Ref[]) => r.map((t) => t.id).sort((a, b) => a - b);
  const asRef = (l: Float32Array): Ref[] => Array.from(l, (logit, id) => ({ id, logit }));

  /** Random logits; `quant` rounds them to create many ties, `negInf` bans a fraction. */
  function logits(n: number, seed: number, quant = 0, negInf = 0): Float32Array {
    const r = rng(seed);
    const l = randn(n, r, 3);
    for (let i = 0; i < n; i++) {
      if (quant) l[i] = Math.round(l[i] * quant) / quant;
      if (r() < negInf) l[i] = -Infinity;
    }
    return l;
  }

  const cases: [number, number, number, number][] = [
    // n, seed, quant, fraction -Infinity
    [5000, 1, 0, 0], [5000, 2, 4, 0], [20_000, 3, 0, 0.3], [20_000, 4, 1, 0.1], [150_000, 5, 0, 0], [3000, 6, 0, 0.999],
  ];

  it('top-k (heap selection) returns the k best, best first, lowest id on ties', () => {
    for (const [n, seed, quant, ni] of cases) {
      const l = logits(n, seed, quant, ni);
      for (const k of [1, 40, 1000]) {
        const c = new Candidates();
        c.reset(l);
        topK(c, k);
        const want = refStages.topK(asRef(l), k, 1);
        assert.deepEqual(Array.from(c.ids.subarray(0, c.size)), want.map((t) => t.id), `n ${n} seed ${seed} k ${k}`);
        assert.ok(c.sorted);
      }
    }
  });

  it('top-p (bucketed when unsorted) and min-p keep the reference sets, with minKeep', () => {
    for (const [n, seed, quant, ni] of cases) {
      const l = logits(n, seed, quant, ni);
      for (const p of [0.05, 0.5, 0.9, 0.999]) {
        for (const minKeep of [1, 700]) {
          const c = new Candidates();
          c.reset(l);
          topP(c, p, minKeep);
          assert.deepEqual(ids(c), refIds(refStages.topP(asRef(l), p, minKeep)), `top-p n ${n} seed ${seed} p ${p} minKeep ${minKeep}`);
          const d = new Candidates();
          d.reset(l);
          minP(d, p, minKeep);
          assert.deepEqual(ids(d), refIds(refStages.minP(asRef(l), p, minKeep)), `min-p n ${n} seed ${seed} p ${p} minKeep ${minKeep}`);
        }
      }
    }
  });

  it('typical-p keeps the reference set', () => {
    for (const [n, seed, quant, ni] of cases.slice(0, 4)) {
      const l = logits(n, seed, quant, ni);
      for (const p of [0.2, 0.9]) {
        const c = new Candidates();
        c.reset(l);
        typicalP(c, p);
        assert.deepEqual(ids(c), refIds(refStages.typicalP(asRef(l), p, 1)), `n ${n} seed ${seed} p ${p}`);
      }
    }
  });

  it('a partial sort keeping the rest loses no candidate', () => {
    const l = logits(10_000, 8, 2);
    const c = new Candidates();
    c.reset(l);
    c.sortTop(100, true);
    assert.equal(c.size, 10_000);
    assert.deepEqual(ids(c), [...Array(10_000).keys()]);
    const want = refStages.topK(asRef(l), 100, 1).map((t) => t.id);
    assert.deepEqual(Array.from(c.ids.subarray(0, 100)), want);
  });
});
