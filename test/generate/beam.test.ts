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
import { writeSyntheticLlama } from '../../lib/tools/synthetic.js';
import { LlamaState } from '../../lib/model/llama.js';
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

interface Hyp { ids: number[]; logprob: number; score: number; finishReason: string }

/**
 * Beam search the plain way: each hypothesis re-evaluated from scratch at every step. A
 * candidate ends at the end token (not kept in its ids) or when its text contains `stop`.
 */
async function plainBeamSearch(
  m: Model,
  o: { numBeams: number; maxTokens: number; lengthPenalty: number; earlyStopping: boolean | 'never'; stop?: string },
): Promise<Hyp[]> {
  const { numBeams, maxTokens, lengthPenalty, earlyStopping } = o;
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
      const eos = c.ids[c.ids.length - 1] === EOS;
      const stopped = !eos && o.stop !== undefined && m.tokenizer.decode(c.ids).includes(o.stop);
      if (eos || stopped) {
        if (rank < numBeams) keep({ ids: eos ? c.ids.slice(0, -1) : c.ids, logprob: c.logprob, score: score(c.logprob, len), finishReason: eos ? 'eog' : 'stop' });
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
      for (const b of next) keep({ ...b, score: score(b.logprob, len), finishReason: 'maxTokens' });
      break;
    }
    live = next;
  }
  return done;
}

/** Asserts that beam search's sequences are `want`, in order: ids, end, score and logprob. */
function assertSameHypotheses(got: Hyp[], want: Hyp[]): void {
  assert.equal(got.length, want.length, 'number of hypotheses');
  got.forEach((s, i) => {
    assert.deepEqual([s.ids, s.finishReason], [want[i].ids, want[i].finishReason], `hypothesis ${i}`);
    assert.ok(Math.abs(s.score - want[i].score) < 1e-4, `hypothesis ${i}: score ${s.score} vs ${want[i].score}`);
    assert.ok(Math.abs(s.logprob - want[i].logprob) < 1e-4, `hypothesis ${i}: logprob ${s.logprob} vs ${want[i].logprob}`);
  });
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

  it('with a beam for every hypothesis and the end token live, ranks all hypotheses by the length-penalized score', async () => {
    // 216 beams keep every live hypothesis of up to 3 tokens (at most 150 candidates a step,
    // all ranked within the first 216), and the 31 that end by the end token never fill the
    // 216 finished slots, so nothing stops early: the search is exhaustive.
    const all: Hyp[] = [];
    const extend = async (ids: number[], logprob: number) => {
      const lp = await logprobsAfter(model, [...prompt, ...ids]);
      for (let t = 0; t < V; t++) {
        const h = { ids: [...ids, t], logprob: logprob + lp[t] };
        if (t === EOS) all.push({ ids, logprob: h.logprob, score: 0, finishReason: 'eog' });
        else if (h.ids.length === 3) all.push({ ...h, score: 0, finishReason: 'maxTokens' });
        else await extend(h.ids, h.logprob);
      }
    };
    await extend([], 0);
    assert.equal(all.length, 1 + 5 + 25 + 125);
    for (const lengthPenalty of [0, 1, 2]) {
      const want = all
        .map((h) => ({ ...h, score: h.logprob / (h.ids.length + (h.finishReason === 'eog' ? 1 : 0)) ** lengthPenalty }))
        .sort((a, b) => b.score - a.score)
        .slice(0, 10);
      const got = await model.beamSearch(prompt, { numBeams: V ** 3, maxTokens: 3, lengthPenalty, numReturnSequences: 10 });
      assertSameHypotheses(got.sequences, want);
    }
  });

  for (const lengthPenalty of [0, 1, 2])
    for (const earlyStopping of [false, true, 'never'] as const)
      it(`equals a plain beam search over full evaluations: 3 beams, lengthPenalty ${lengthPenalty}, earlyStopping ${earlyStopping}`, async () => {
        const want = await plainBeamSearch(model, { numBeams: 3, maxTokens: 6, lengthPenalty, earlyStopping });
        const got = await model.beamSearch(prompt, { numBeams: 3, maxTokens: 6, lengthPenalty, earlyStopping, numReturnSequences: 3 });
        assertSameHypotheses(got.sequences, want);
      });

  for (const [stop, lengthPenalty] of [['\u0000', 1], ['\u0000\u0000', 0]] as const)
    it(`ends hypotheses at stop strings as the plain search does: stop ${JSON.stringify(stop)}, lengthPenalty ${lengthPenalty}`, async () => {
      // token 3 is the byte 0x00 and <s> decodes to nothing, so "\0\0" can span three tokens
      const o = { numBeams: 4, maxTokens: 6, lengthPenalty, earlyStopping: false, stop };
      const want = await plainBeamSearch(model, o);
      const got = await model.beamSearch(prompt, { ...o, numReturnSequences: 4 });
      assertSameHypotheses(got.sequences, want);
      for (const s of got.sequences) {
        const text = model.tokenizer.decode(s.ids);
        assert.equal(s.text, s.finishReason === 'stop' ? text.slice(0, text.indexOf(stop)) : text);
        assert.ok(!s.text.includes(stop), `${JSON.stringify(s.text)} holds the stop string`);
      }
      assert.ok(got.sequences.some((s) => s.finishReason === 'stop') || want.length === 0, 'no hypothesis ended at the stop string');
    });

  it('evaluates the prompt once for all beams; beams copy only their generated rows', async () => {
    const calls = { forward: 0, forwardRows: 0, batches: [] as number[], copied: [] as number[] };
    const proto = LlamaState.prototype;
    const saved = { forward: proto.forward, forwardBatch: proto.forwardBatch, copyCacheRows: proto.copyCacheRows };
    proto.forward = function (ids, pos, opts) {
      calls.forward++;
      calls.forwardRows += ids.length;
      return saved.forward.call(this, ids, pos, opts);
    };
    proto.forwardBatch = function (ids, positions) {
      calls.batches.push(ids.length);
      return saved.forwardBatch.call(this, ids, positions);
    };
    proto.copyCacheRows = function (from, rows) {
      calls.copied.push(rows);
      return saved.copyCacheRows.call(this, from, rows);
    };
    try {
      const long = Array.from({ length: 40 }, (_, i) => [1, 3, 4, 5][i % 4]);
      await model.clearCache();
      const r = await model.beamSearch(long, { numBeams: 5, maxTokens: 6, ignoreEog: true });
      assert.equal(r.sequences[0].ids.length, 6);
      assert.equal(calls.forwardRows, long.length, 'prompt tokens evaluated');
      assert.deepEqual(calls.batches, [5, 5, 5, 5, 5], 'one batched step of all 5 beams per token after the first');
      assert.deepEqual(calls.copied, [0, 1, 2, 3, 4], 'cache rows copied when beams are reordered');
      assert.deepEqual([r.timings.promptTokens, r.timings.cachedTokens], [long.length, 0]);
    } finally {
      Object.assign(proto, saved);
    }
  });

  it('with one beam equals greedy generate: the same tokens and the sum of their logprobs', async () => {
    const g = await model.generate(prompt, { maxTokens: 8, ignoreEog: true, logprobs: 0 });
    const b = await model.beamSearch(prompt, { numBeams: 1, maxTokens: 8, ignoreEog: true });
    assert.deepEqual(b.sequences[0].ids, g.ids);
    const sum = g.logprobs!.reduce((a, l) => a + l.logprob, 0);
    assert.ok(Math.abs(b.sequences[0].logprob - sum) < 1e-4, `${b.sequences[0].logprob} vs ${sum}`);
    assert.equal(b.sequences[0].text, g.text);
  });

  it('hypotheses cut short by a full KV cache end with contextFull, as generate does', async () => {
    await using small = await loadModel(path.join(dir, 'v6.gguf'), { device: 'cpu', threads: 1, contextSize: 6 });
    const g = await small.generate(prompt, { maxTokens: 8, ignoreEog: true });
    const b = await small.beamSearch(prompt, { numBeams: 2, maxTokens: 8, ignoreEog: true, numReturnSequences: 2 });
    assert.equal(g.finishReason, 'contextFull');
    for (const s of b.sequences) assert.deepEqual([s.ids.length, s.finishReason], [g.ids.length, 'contextFull']);
    const fits = await small.beamSearch(prompt, { numBeams: 2, maxTokens: 4, ignoreEog: true });
    assert.equal(fits.sequences[0].finishReason, 'maxTokens');
  });

  it('reuses the cached prompt when called again, and refuses bad options', async () => {
    await model.beamSearch(prompt, { numBeams: 2, maxTokens: 2 });
    await model.beamSearch(prompt, { numBeams: 2, maxTokens: 2 });
    assert.equal(model.lastTimings?.cachedTokens, prompt.length - 1);
    await assert.rejects(model.beamSearch(prompt, { numBeams: 0, maxTokens: 2 }), { code: 'E_INVALID_ARG' });
    await assert.rejects(model.beamSearch(prompt, { numBeams: 2, maxTokens: 2, numReturnSequences: 3 }), { code: 'E_INVALID_ARG' });
    await assert.rejects(model.beamSearch(prompt, { numBeams: 2, maxTokens: 0 }), { code: 'E_INVALID_ARG' });
    await assert.rejects(model.beamSearch(prompt, { numBeams: 2, maxTokens: 2, stop: [''] }), { code: 'E_INVALID_ARG' });
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
