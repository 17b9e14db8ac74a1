// Proves the edge cases of the sampler chain: k = 1 is argmax, p = 1 and min-p = 0 are no-ops,
// temperature 0 is a deterministic argmax that never touches the Rng, equal logits tie-break to
// the lowest id, -Infinity logits are never drawn (and all-but-one -Infinity always gives that
// one), NaN / +Infinity logits are rejected naming the index, and minKeep is respected by every
// truncation stage.
import assert from 'node:assert/strict';
import { Candidates } from '../../lib/sampling/candidates.js';
import { Rng } from '../../lib/sampling/rng.js';
import { argmaxChecked as argmax } from '../../lib/sampling/candidates.js';
import { createSampler, type SamplerOptions } from '../../lib/sampling/sampler.js';
import { minP, topK, topP, typicalP } from '../../lib/sampling/stages.js';
import { randn, rng } from '../helpers/random.js';
import { f32 } from './helpers.js';

/** An Rng that fails the test if anything draws from it. */
class ForbiddenRng extends Rng {
  constructor() {
    super(0);
  }
  override next(): number {
    throw new Error('the Rng was used');
  }
  override nextU32(): number {
    throw new Error('the Rng was used');
  }
}

const OFF: SamplerOptions = { temperature: 1, topK: 0, topP: 1, minP: 0, typicalP: 1 };

function sequence(opts: SamplerOptions, logits: Float32Array, n: number): number[] {
  const s = createSampler(opts);
  return Array.from({ length: n }, () => s.sample(logits));
}

describe('sampling: edge cases', () => {
  const r = rng(11);
  const rows = Array.from({ length: 20 }, () => randn(50, r, 2));

  it('top-k = 1 always gives the argmax, at any temperature', () => {
    for (const temperature of [0.5, 1, 5]) {
      const s = createSampler({ ...OFF, topK: 1, temperature, seed: 3 });
      for (const row of rows) for (let i = 0; i < 20; i++) assert.equal(s.sample(row), argmax(row));
    }
  });

  it('top-p = 1 and min-p = 0 (and typical-p = 1) are no-ops: the same draws as with them absent', () => {
    const logits = rows[0];
    const base = sequence({ ...OFF, seed: 5, samplers: ['temperature'] }, logits, 500);
    assert.deepEqual(sequence({ ...OFF, seed: 5, topP: 1, minP: 0, typicalP: 1 }, logits, 500), base);
    const c = new Candidates();
    c.reset(logits);
    topP(c, 1);
    minP(c, 0);
    typicalP(c, 1);
    assert.equal(c.size, 50);
    assert.ok(c.implicitIds, 'the set was not even reordered');
  });

  it('temperature 0: argmax, deterministic, and the Rng is never used', () => {
    const s = createSampler({ temperature: 0, rng: new ForbiddenRng() });
    for (const row of rows) assert.equal(s.sample(row), argmax(row));
    // also through the candidate path (a bias and penalties active)
    const s2 = createSampler({ temperature: 0, rng: new ForbiddenRng(), logitBias: { 1: 0.001 }, repeatPenalty: 1.1 });
    for (const row of rows) s2.sample(row, [0, 1, 2]);
    // and the greedy choice respects bias and penalties
    const l = f32([1, 3, 2.9]);
    assert.equal(createSampler({ temperature: 0, logitBias: { 1: -Infinity } }).sample(l), 2);
    assert.equal(createSampler({ temperature: 0, repeatPenalty: 1.5 }).sample(l, [1]), 2); // 3 / 1.5 = 2 < 2.9
  });

  it('a tie in the argmax goes to the lowest id (greedy, top-k = 1, and the candidate path)', () => {
    const l = f32([1, 3, 0, 3, 3]);
    assert.equal(argmax(l), 1);
    assert.equal(createSampler({ temperature: 0 }).sample(l), 1);
    assert.equal(createSampler({ temperature: 0, logitBias: { 0: 0.5 } }).sample(l), 1);
    assert.equal(createSampler({ ...OFF, topK: 1 }).sample(l), 1);
    // top-k among equal logits keeps the lowest ids
    const c = new Candidates();
    c.reset(new Float32Array(10));
    topK(c, 3);
    assert.deepEqual(Array.from(c.ids.subarray(0, c.size)), [0, 1, 2]);
  });

  it('-Infinity logits are never drawn, under every configuration', () => {
    const l = f32([0, -Infinity, 0.5, -Infinity, 1, -Infinity]);
    for (const o of [OFF, {}, { ...OFF, topP: 0.99 }, { ...OFF, typicalP: 0.99 }, { mirostat: 2 as const }]) {
      const s = createSampler({ ...o, temperature: 2, seed: 1 });
      for (let i = 0; i < 3000; i++) assert.ok(![1, 3, 5].includes(s.sample(l)), JSON.stringify(o));
    }
  });

  it('all but one logit -Infinity: always that one; all -Infinity: an error', () => {
    const l = new Float32Array(1000).fill(-Infinity);
    l[777] = -5;
    for (const o of [{}, { ...OFF, temperature: 3 }, { temperature: 0 }, { mirostat: 2 as const }, { topK: 0, topP: 0.5 }]) {
      const s = createSampler(o);
      for (let i = 0; i < 50; i++) assert.equal(s.sample(l), 777);
    }
    const none = new Float32Array(5).fill(-Infinity);
    for (const o of [{}, { temperature: 0 }, { temperature: 0, logitBias: { 1: 1 } }]) {
      assert.throws(() => createSampler(o).sample(none), { code: 'E_INVALID_ARG', message: /every .*-Infinity/ });
    }
    // a ban that removes the last finite logit
    assert.throws(() => createSampler({ logitBias: { 777: -Infinity } }).sample(l), { code: 'E_INVALID_ARG' });
  });

  it('NaN and +Infinity logits are rejected, naming the index', () => {
    for (const bad of [NaN, Infinity]) {
      const l = f32([0, 1, 2, 3]);
      l[2] = bad;
      for (const o of [{}, { temperature: 0 }, { temperature: 0, repeatPenalty: 1.2 }]) {
        assert.throws(() => createSampler(o).sample(l, [0]), (e: any) => e.code === 'E_INVALID_ARG' && /logit 2 is/.test(e.message));
      }
      assert.throws(() => createSampler().logprobs(l, 0, 1), { code: 'E_INVALID_ARG', message: /logit 2/ });
    }
    assert.throws(() => createSampler().sample(new Float32Array(0)), { code: 'E_INVALID_ARG' });
  });

  it('minKeep is respected by top-k, top-p, min-p and typical-p', () => {
    const l = f32([10, 0, -1, -2, -3, -4]); // token 0 holds almost all the mass
    const keep = (f: (c: Candidates) => void) => {
      const c = new Candidates();
      c.reset(l);
      f(c);
      return Array.from({ length: c.size }, (_, i) => c.idAt(i)).sort((a, b) => a - b);
    };
    assert.deepEqual(keep((c) => topP(c, 0.5, 1)), [0]);
    assert.deepEqual(keep((c) => topP(c, 0.5, 3)), [0, 1, 2]);
    assert.deepEqual(keep((c) => minP(c, 0.5, 1)), [0]);
    assert.deepEqual(keep((c) => minP(c, 0.5, 4)), [0, 1, 2, 3]);
    assert.deepEqual(keep((c) => topK(c, 1, 2)), [0, 1]);
    assert.equal(keep((c) => typicalP(c, 0.01, 1)).length, 1);
    assert.equal(keep((c) => typicalP(c, 0.01, 3)).length, 3);
    // through the sampler: with minKeep 3 the two runners-up are drawable
    const s = createSampler({ ...OFF, topP: 0.5, minKeep: 3, temperature: 10, seed: 2 });
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(s.sample(l));
    assert.deepEqual([...seen].sort(), [0, 1, 2]);
  });
});

describe('sampling: extreme temperatures', () => {
  it('a tiny temperature is (almost) greedy and never overflows; a huge one is (almost) uniform', () => {
    const l = Float32Array.from([1, 3, 2.5, -Infinity]);
    const s = createSampler({ temperature: 1e-38, topK: 0, topP: 1, minP: 0, seed: 1 });
    for (let i = 0; i < 100; i++) assert.equal(s.sample(l), 1);
    const h = createSampler({ temperature: 1e6, topK: 0, topP: 1, minP: 0, seed: 1 });
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(h.sample(l));
    assert.deepEqual([...seen].sort(), [0, 1, 2]);
  });
});
