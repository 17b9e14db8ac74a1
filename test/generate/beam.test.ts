/**
 * Beam search (lib/beam.ts, Model.beamSearch), whose beams share the prompt's KV cache and keep
 * only their generated tokens in caches of their own:
 *  - on a tiny random model (vocab 6), with enough beams to keep every hypothesis it is
 *    exhaustive: the best sequence of 3 tokens equals the brute-force best over all 216;
 *  - with fewer beams and end-of-generation tokens live, it equals a plain beam search written
 *    here over full forward passes of each hypothesis (no shared cache, no reordering), for
 *    length penalties 0, 1 and 2 and each earlyStopping mode;
 *  - numBeams 1 is greedy search (stories260K: llama.cpp's greedy tokens);
 *  - bad options are typed errors; a repeated prompt reuses the cached prompt.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel, type Model } from '../../lib/index.js';
import { logSumExp } from '../../lib/sampling/sampler.js';
import { writeSyntheticLlama } from '../../lib/model/synthetic.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

const V = 6;
const EOS = 2;
const prompt = [1, 4, 3];

/** log-softmax of the logits after `ids` (prompt and hypothesis so far), by full evaluation */
async function logprobsAfter(m: Model, ids: number[]): Promise<number[]> {
  const logits = await m.evaluate(ids);
  const lse = logSumExp(logits);
  return Array.from(logits, (x) => x - lse);
}

interface Hyp { ids: number[]; logprob: number; score: number }

/** Beam search the plain way: each hypothesis re-evaluated from scratch at every step. */
async function plainBeamSearch(m: Model, numBeams: number, maxTokens: number, lengthPenalty: number, earlyStopping: boolean | 'never'): Promise<Hyp[]> {
  const done: Hyp[] = [];
  const keep = (h: Hyp) => {
    done.push(h);
    done.sort((a, b) => b.score - a.score);
    done.length = Math.min(done.length, numBeams);
  };
  const score = (lp: number, len: number) => lp / len ** lengthPenalty;
  let live = [{ ids: [] as number[], logprob: 0 }];
  for (let len = 1; ; len++) {
    const cands: { ids: number[]; logprob: number }[] = [];
    for (const b of live) {
      const lp = await logprobsAfter(m, [...prompt, ...b.ids]);
      lp.forEach((x, t) => cands.push({ ids: [...b.ids, t], logprob: b.logprob + x }));
    }
    cands.sort((a, b) => b.logprob - a.logprob); // stable: ties keep (beam, token) order
    const next: typeof live = [];
    cands.slice(0, 2 * numBeams).forEach((c, rank) => {
      if (next.length >= numBeams) return;
      if (c.ids[c.ids.length - 1] === EOS) {
        if (rank < numBeams) keep({ ids: c.ids.slice(0, -1), logprob: c.logprob, score: score(c.logprob, len) });
      } else next.push(c);
    });
    if (next.length === 0) break;
    if (done.length === numBeams) {
      if (earlyStopping === true) break;
      const best = next[0].logprob;
      const reachable = earlyStopping === 'never' && lengthPenalty > 0 ? score(best, maxTokens) : score(best, len);
      if (done[numBeams - 1].score >= reachable) break;
    }
    if (len >= maxTokens) {
      for (const b of next) keep({ ...b, score: score(b.logprob, len) });
      break;
    }
    live = next;
  }
  return done;
}

describe('beam search', function () {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-beam-'));
  let model: Model;
  before(async () => {
    const file = path.join(dir, 'v6.gguf');
    await writeSyntheticLlama(file, { vocabSize: V, dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 48, contextLength: 64 }, 'f32', 5);
    model = await loadModel(file, { device: 'cpu', threads: 2 });
  });
  after(async () => {
    await model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('with a beam for every hypothesis, finds the best of all 216 three-token sequences', async () => {
    let best = { ids: [] as number[], logprob: -Infinity };
    for (let a = 0; a < V; a++) {
      const la = (await logprobsAfter(model, prompt))[a];
      for (let b = 0; b < V; b++) {
        const lb = (await logprobsAfter(model, [...prompt, a]))[b];
        const lc = await logprobsAfter(model, [...prompt, a, b]);
        for (let c = 0; c < V; c++) if (la + lb + lc[c] > best.logprob) best = { ids: [a, b, c], logprob: la + lb + lc[c] };
      }
    }
    const r = await model.beamSearch(prompt, { numBeams: V * V, maxTokens: 3, ignoreEog: true });
    assert.deepEqual(r.sequences[0].ids, best.ids);
    assert.ok(Math.abs(r.sequences[0].logprob - best.logprob) < 1e-4, `${r.sequences[0].logprob} vs ${best.logprob}`);
  });

  for (const lengthPenalty of [0, 1, 2])
    for (const earlyStopping of [false, true, 'never'] as const)
      it(`equals a plain beam search over full evaluations: 3 beams, lengthPenalty ${lengthPenalty}, earlyStopping ${earlyStopping}`, async () => {
        const want = await plainBeamSearch(model, 3, 6, lengthPenalty, earlyStopping);
        const got = await model.beamSearch(prompt, { numBeams: 3, maxTokens: 6, lengthPenalty, earlyStopping, numReturnSequences: 3 });
        assert.equal(got.sequences.length, Math.min(3, want.length));
        got.sequences.forEach((s, i) => {
          assert.deepEqual(s.ids, want[i].ids, `hypothesis ${i}`);
          assert.ok(Math.abs(s.score - want[i].score) < 1e-4, `hypothesis ${i}: score ${s.score} vs ${want[i].score}`);
        });
      });

  it('reuses the cached prompt when called again, and refuses bad options', async () => {
    await model.beamSearch(prompt, { numBeams: 2, maxTokens: 2 });
    await model.beamSearch(prompt, { numBeams: 2, maxTokens: 2 });
    assert.equal(model.lastTimings?.cachedTokens, prompt.length - 1);
    await assert.rejects(model.beamSearch(prompt, { numBeams: 0, maxTokens: 2 }), { code: 'E_INVALID_ARG' });
    await assert.rejects(model.beamSearch(prompt, { numBeams: 2, maxTokens: 2, numReturnSequences: 3 }), { code: 'E_INVALID_ARG' });
    await assert.rejects(model.beamSearch(prompt, { numBeams: 2, maxTokens: 0 }), { code: 'E_INVALID_ARG' });
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(model.beamSearch(prompt, { numBeams: 2, maxTokens: 4, signal: ac.signal }), { code: 'E_ABORTED' });
  });

  it('with one beam is greedy search: stories260K gives llama.cpp\'s greedy tokens', async function () {
    requireShared(this, 'models/stories260K.gguf', 'models/stories260K.oracle.json');
    const oracle = readSharedJson('models/stories260K.oracle.json');
    await using m = await loadModel(sharedPath('models/stories260K.gguf'), { device: 'cpu', threads: 2 });
    const r = await m.beamSearch(oracle.greedy.prompt, { numBeams: 1, maxTokens: 32 });
    assert.deepEqual(r.sequences[0].ids, oracle.greedy.ids.slice(0, 32));
    const four = await m.beamSearch(oracle.greedy.prompt, { numBeams: 4, maxTokens: 16, numReturnSequences: 4 });
    assert.equal(four.sequences.length, 4);
    for (let i = 1; i < 4; i++) assert.ok(four.sequences[i - 1].score >= four.sequences[i].score);
  });
});
