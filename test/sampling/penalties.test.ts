// Proves the logit-changing stages on hand-computed examples: the repetition penalty divides a
// positive logit and multiplies a non-positive one (llama.cpp semantics), the frequency penalty
// is subtracted once per occurrence and the presence penalty once per token, only over the last
// penaltyLastN tokens (0 = off, -1 = the whole history); logit bias adds, -Infinity bans. The
// same numbers come out whether the set is the whole vocabulary or already cut by top-k.
import assert from 'node:assert/strict';
import { Candidates } from '../../lib/sampling/candidates.js';
import { applyLogitBias, applyPenalties, PenaltyCounts, toLogitBias, type PenaltyParams } from '../../lib/sampling/penalties.js';
import { createSampler } from '../../lib/sampling/sampler.js';
import { topK } from '../../lib/sampling/stages.js';
import { f32 } from './helpers.js';

const LOGITS = f32([2, -1, 0.5, 3, 1, 0]);
const HISTORY = [2, 3, 1, 3, 0, 3, 1];
const P: PenaltyParams = { repeat: 2, frequency: 0.5, presence: 0.25, lastN: 5 };

/** Logits by id after the penalties, on the full set or after a top-k cut. */
function penalized(p: PenaltyParams, history: number[], cutFirst = 0): Map<number, number> {
  const c = new Candidates();
  c.reset(LOGITS);
  if (cutFirst) topK(c, cutFirst);
  applyPenalties(c, history, p, LOGITS.length, new PenaltyCounts());
  return new Map(Array.from({ length: c.size }, (_, i) => [c.idAt(i), c.logits[i]]));
}

function assertLogits(got: Map<number, number>, want: Record<number, number>) {
  for (const [id, v] of Object.entries(want)) {
    assert.ok(Math.abs(got.get(Number(id))! - v) < 1e-6, `token ${id}: got ${got.get(Number(id))}, want ${v}`);
  }
}

describe('sampling: penalties and logit bias', () => {
  it('window of 5 = [1, 3, 0, 3, 1]: counts 0→1, 1→2, 3→2; token 2 (only earlier) untouched', () => {
    // id 0: 2 > 0 → 2/2 = 1;   1 − 1·0.5 − 0.25 = 0.25
    // id 1: −1 ≤ 0 → −1·2 = −2; −2 − 2·0.5 − 0.25 = −3.25
    // id 3: 3 → 1.5;            1.5 − 2·0.5 − 0.25 = 0.25
    const want = { 0: 0.25, 1: -3.25, 2: 0.5, 3: 0.25, 4: 1, 5: 0 };
    assertLogits(penalized(P, HISTORY), want);
    // the same after a top-k cut (the set is no longer the vocabulary in id order)
    const cut = penalized(P, HISTORY, 4); // keeps ids 3, 0, 4, 2
    assert.deepEqual([...cut.keys()].sort(), [0, 2, 3, 4]);
    assertLogits(cut, { 0: 0.25, 2: 0.5, 3: 0.25, 4: 1 });
  });

  it('penaltyLastN −1 is the whole history; 0 turns the penalties off', () => {
    // counts 0→1, 1→2, 2→1, 3→3
    // id 2: 0.5/2 = 0.25 − 0.5 − 0.25 = −0.5;  id 3: 1.5 − 1.5 − 0.25 = −0.25
    assertLogits(penalized({ ...P, lastN: -1 }, HISTORY), { 0: 0.25, 1: -3.25, 2: -0.5, 3: -0.25, 4: 1, 5: 0 });
    assertLogits(penalized({ ...P, lastN: 0 }, HISTORY), { 0: 2, 1: -1, 2: 0.5, 3: 3, 4: 1, 5: 0 });
    // a window longer than the history is the whole history
    assertLogits(penalized({ ...P, lastN: 100 }, HISTORY), { 2: -0.5, 3: -0.25 });
  });

  it('each penalty alone; a zero logit is multiplied (stays 0) by the repetition penalty', () => {
    assertLogits(penalized({ repeat: 1.25, frequency: 0, presence: 0, lastN: 3 }, [5, 1, 3]), { 5: 0, 1: -1.25, 3: 2.4, 0: 2 });
    assertLogits(penalized({ repeat: 1, frequency: 0.3, presence: 0, lastN: -1 }, [4, 4, 4]), { 4: 1 - 0.9 });
    assertLogits(penalized({ repeat: 1, frequency: 0, presence: 0.7, lastN: -1 }, [4, 4, 4]), { 4: 1 - 0.7 });
    // negative frequency/presence penalties (OpenAI allows them) raise the logit
    assertLogits(penalized({ repeat: 1, frequency: -0.5, presence: -1, lastN: -1 }, [5, 5]), { 5: 2 });
  });

  it('the greedy choice moves away from a repeated token', () => {
    const s = createSampler({ temperature: 0, repeatPenalty: 1.5, penaltyLastN: 2 });
    assert.equal(s.sample(LOGITS, []), 3);
    assert.equal(s.sample(LOGITS, [3]), 0); // 3 / 1.5 = 2 ties with token 0 → the lower id
    assert.equal(s.sample(LOGITS, [3, 2, 5]), 3); // 3 left the 2-token window
  });

  it('history ids outside the vocabulary are rejected, and the counts stay clean after an error', () => {
    const s = createSampler({ temperature: 0, presencePenalty: 5 });
    assert.throws(() => s.sample(LOGITS, [1, 6]), { code: 'E_INVALID_ARG', message: /history\[1\] = 6/ });
    assert.throws(() => s.sample(LOGITS, [-1]), { code: 'E_INVALID_ARG' });
    assert.equal(s.sample(LOGITS, []), 3); // no penalty left behind by the failed call
  });

  it('logit bias adds to the logit; -Infinity bans; bad keys and values are rejected', () => {
    const c = new Candidates();
    c.reset(LOGITS);
    applyLogitBias(c, toLogitBias({ 1: 2.5, 3: -Infinity }), LOGITS.length);
    assert.equal(c.logits[1], 1.5);
    assert.equal(c.logits[3], -Infinity);
    assert.equal(c.logits[0], 2);
    assert.equal(createSampler({ temperature: 0, logitBias: new Map([[3, -Infinity]]) }).sample(LOGITS), 0);
    assert.throws(() => createSampler({ logitBias: { 1: NaN } }), { code: 'E_INVALID_ARG', message: /logitBias\[1\]/ });
    assert.throws(() => createSampler({ logitBias: { 1: Infinity } }), { code: 'E_INVALID_ARG' });
    assert.throws(() => createSampler({ logitBias: { [-2]: 1 } as Record<number, number> }), { code: 'E_INVALID_ARG', message: /logitBias/ });
    assert.throws(() => createSampler({ logitBias: { 99: 1 } }).sample(LOGITS), { code: 'E_INVALID_ARG', message: /token 99/ });
  });
});
