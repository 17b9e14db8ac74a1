/**
 * Beam search, with Hugging Face's semantics for its knobs (numBeams, lengthPenalty,
 * earlyStopping, numReturnSequences), over a step function that scores every live beam at once.
 *
 * Each step: every live beam's log-softmax over the vocabulary is added to its sum of logprobs;
 * of all (beam, token) candidates the best 2·numBeams are taken in order; one that ends the
 * sequence (an end-of-generation token, or a token that completes a stop string) becomes a
 * finished hypothesis if it ranks among the first numBeams, scored sumLogprob /
 * generatedLength^lengthPenalty (its last token counted in the length; an end-of-generation
 * token is not kept in its ids); the others, in order, become the next beams until there are
 * numBeams. The best numBeams finished hypotheses are kept. Search stops when every beam is
 * finished or maxTokens is reached (then the live beams are scored as they are), or earlier by
 * earlyStopping: true — as soon as numBeams hypotheses are finished; false — when no live beam
 * can beat the worst kept one any more, judged at the current length (HF's heuristic);
 * 'never' — only when that holds at the longest possible length.
 *
 * With a grammar (BeamConstraint) each beam has its own grammar state: a beam's disallowed tokens
 * get -Infinity after its log-softmax (Hugging Face's order: logits processors act on the
 * scores), and a hypothesis whose grammar is complete ends there ('eog', its last token kept).
 */
import { FuselmError } from './errors.js';
import { logSumExp } from './sampling/sampler.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';

export interface BeamSearchOptions {
  /** Beams kept each step (>= 1; 1 is greedy search). */
  numBeams: number;
  /** Most tokens generated (required: beams have no other bound than end-of-generation). */
  maxTokens: number;
  /** Exponent of the length in the score sumLogprob / length^lengthPenalty; default 1. */
  lengthPenalty?: number;
  /** When to stop (see the module comment); default false, as Hugging Face's. */
  earlyStopping?: boolean | 'never';
  /** Hypotheses returned, best first (<= numBeams); default 1. */
  numReturnSequences?: number;
}

/** Why a hypothesis ended: an end-of-generation token, a stop string, or the token limit. */
export type BeamEnd = 'eog' | 'stop' | 'maxTokens';

export interface BeamHypothesis {
  /** Generated ids (an end-of-generation token that ended it is not included). */
  ids: number[];
  finishReason: BeamEnd;
  /** Sum of the tokens' log-probabilities (the end token's included when it ended). */
  logprob: number;
  /** logprob / generatedLength^lengthPenalty */
  score: number;
}

/**
 * The step function: the logits of each live beam, row i for beams[i], after `parents[i]`'s
 * tokens and then `tokens[i]` (the caller keeps each beam's cache: row i now continues from
 * the cache of the previous step's beam parents[i]; `generated` tokens so far).
 */
export type BeamStep = (parents: number[], tokens: number[], generated: number) => Promise<Float32Array[]>;

/** The most beams a search may run: each is a sequence of the batched forward step, with a KV cache of its own. */
export const MAX_BEAMS = 256;

export function checkBeamOptions(o: BeamSearchOptions): Required<BeamSearchOptions> {
  if (typeof o !== 'object' || o === null) throw new FuselmError('E_INVALID_ARG', 'beam search options must be an object with numBeams and maxTokens');
  const r = {
    numBeams: o.numBeams,
    maxTokens: o.maxTokens,
    lengthPenalty: o.lengthPenalty ?? 1,
    earlyStopping: o.earlyStopping ?? false,
    numReturnSequences: o.numReturnSequences ?? 1,
  };
  if (!Number.isInteger(r.numBeams) || r.numBeams < 1 || r.numBeams > MAX_BEAMS)
    throw new FuselmError('E_INVALID_ARG', `numBeams must be an integer in 1..${MAX_BEAMS}, got ${o.numBeams}`);
  if (!Number.isInteger(r.maxTokens) || r.maxTokens < 1) throw new FuselmError('E_INVALID_ARG', `maxTokens must be an integer >= 1 for beam search, got ${o.maxTokens}`);
  if (!Number.isFinite(r.lengthPenalty)) throw new FuselmError('E_INVALID_ARG', `lengthPenalty must be a finite number, got ${o.lengthPenalty}`);
  if (r.earlyStopping !== true && r.earlyStopping !== false && r.earlyStopping !== 'never')
    throw new FuselmError('E_INVALID_ARG', `earlyStopping must be true, false or 'never', got ${String(o.earlyStopping)}`);
  if (!Number.isInteger(r.numReturnSequences) || r.numReturnSequences < 1 || r.numReturnSequences > r.numBeams)
    throw new FuselmError('E_INVALID_ARG', `numReturnSequences must be an integer in 1..numBeams (${r.numBeams}), got ${o.numReturnSequences}`);
  return r;
}

/** What ends a hypothesis, as in generate(): end-of-generation tokens and stop strings. */
export interface BeamEndOptions {
  /** End-of-generation tokens do not end hypotheses (for tests and benchmarks). */
  ignoreEog?: boolean;
  /** More tokens that end a hypothesis, besides the tokenizer's own. */
  eogIds?: number[];
  /** A hypothesis whose text comes to contain one of these ends there; its text stops before it. */
  stop?: string | string[];
}

/**
 * The end test for beamSearch() and each finished hypothesis's text. A live beam never holds a
 * stop string (it would have ended), so a candidate's whole text is searched for one.
 */
export function hypothesisEnds(tok: Tokenizer, o: BeamEndOptions): {
  ends: (ids: number[]) => 'eog' | 'stop' | undefined;
  text: (h: BeamHypothesis) => string;
} {
  const stops = o.stop === undefined ? [] : typeof o.stop === 'string' ? [o.stop] : o.stop;
  if (!Array.isArray(stops)) throw new FuselmError('E_INVALID_ARG', `stop must be a string or an array of strings, got ${typeof o.stop}`);
  if (o.eogIds !== undefined && !(Array.isArray(o.eogIds) && o.eogIds.every((x) => Number.isInteger(x) && x >= 0)))
    throw new FuselmError('E_INVALID_ARG', 'eogIds must be an array of token ids');
  if (o.ignoreEog !== undefined && typeof o.ignoreEog !== 'boolean') throw new FuselmError('E_INVALID_ARG', 'ignoreEog must be a boolean');
  for (const s of stops)
    if (typeof s !== 'string' || s.length === 0) throw new FuselmError('E_INVALID_ARG', `stop strings must be non-empty strings, got ${JSON.stringify(s)}`);
  const stopAt = (text: string) => Math.min(...stops.map((s) => text.indexOf(s)).filter((i) => i >= 0));
  return {
    ends: (ids) => {
      const id = ids[ids.length - 1];
      if (!o.ignoreEog && (tok.isEog(id) || (o.eogIds?.includes(id) ?? false))) return 'eog';
      return stops.length && stopAt(tok.decode(ids)) < Infinity ? 'stop' : undefined;
    },
    text: (h) => {
      const t = tok.decode(h.ids);
      return h.finishReason === 'stop' ? t.slice(0, stopAt(t)) : t;
    },
  };
}

/** A grammar the beams follow (grammar/constraint.ts makes one): its states are numbers. */
export interface BeamConstraint {
  initial: number;
  /** Sets the logits of the tokens not allowed in `state` to -Infinity. */
  apply(state: number, logits: Float32Array): void;
  /** The state after token `id`. */
  next(state: number, id: number): number;
  /** Nothing may follow: the hypothesis is finished. */
  complete(state: number): boolean;
}

interface Beam {
  ids: number[];
  logprob: number;
  /** The grammar state (0 without a constraint). */
  state: number;
}

/**
 * Runs the search from the prompt's last logits. `ends(ids)` says whether a candidate (its
 * generated ids, the newest last) ends there and why: 'eog' for an end-of-generation token,
 * 'stop' for a completed stop string; `check()` is called before every step (abort signals).
 */
export async function beamSearch(
  promptLogits: Float32Array,
  step: BeamStep,
  opts: BeamSearchOptions,
  ends: (ids: number[]) => 'eog' | 'stop' | undefined,
  check: () => void = () => {},
  constraint?: BeamConstraint,
): Promise<BeamHypothesis[]> {
  const o = checkBeamOptions(opts);
  const K = o.numBeams;
  const finished: BeamHypothesis[] = []; // best first, at most K
  const score = (logprob: number, len: number) => logprob / Math.pow(len, o.lengthPenalty);
  const addFinished = (h: BeamHypothesis) => {
    if (finished.length === K && h.score <= finished[K - 1].score) return;
    let i = finished.length;
    while (i > 0 && finished[i - 1].score < h.score) i--;
    finished.splice(i, 0, h);
    if (finished.length > K) finished.pop();
  };
  let beams: Beam[] = [{ ids: [], logprob: 0, state: constraint?.initial ?? 0 }];
  let logits: Float32Array[] = [promptLogits];
  for (let gen = 0; ; ) {
    check();
    // the best 2K (beam, token) candidates, best first
    const cands = topCandidates(beams, logits, 2 * K, constraint);
    const next: Beam[] = [], parents: number[] = [];
    for (let rank = 0; rank < cands.length && next.length < K; rank++) {
      const c = cands[rank];
      const ids = [...beams[c.beam].ids, c.token];
      const end = ends(ids);
      const state = constraint ? constraint.next(beams[c.beam].state, c.token) : 0;
      if (end || constraint?.complete(state)) {
        if (rank < K)
          addFinished({ ids: end === 'eog' ? ids.slice(0, -1) : ids, finishReason: end ?? 'eog', logprob: c.logprob, score: score(c.logprob, ids.length) });
      } else {
        next.push({ ids, logprob: c.logprob, state });
        parents.push(c.beam);
      }
    }
    gen++;
    if (next.length === 0) break;
    // done: enough finished hypotheses that no live beam can beat the worst (HF's is_done)
    if (finished.length === K) {
      if (o.earlyStopping === true) break;
      const best = next[0].logprob;
      const bound = o.earlyStopping === 'never' && o.lengthPenalty > 0 ? score(best, o.maxTokens) : score(best, gen);
      if (finished[K - 1].score >= bound) break;
    }
    if (gen >= o.maxTokens) {
      for (const b of next) addFinished({ ids: b.ids, finishReason: 'maxTokens', logprob: b.logprob, score: score(b.logprob, b.ids.length) });
      break;
    }
    beams = next;
    logits = await step(parents, next.map((b) => b.ids[b.ids.length - 1]), gen);
  }
  return finished.slice(0, o.numReturnSequences);
}

/** The n best (beam, token) pairs by the beam's logprob plus the token's log-softmax. */
function topCandidates(beams: Beam[], logits: Float32Array[], n: number, constraint?: BeamConstraint): { beam: number; token: number; logprob: number }[] {
  const out: { beam: number; token: number; logprob: number }[] = [];
  beams.forEach((b, i) => {
    const row = logits[i];
    const lse = logSumExp(row);
    if (!Number.isFinite(lse)) throw new FuselmError('E_INVALID_ARG', `beam search: the logits of beam ${i} are not finite`);
    constraint?.apply(b.state, row);
    for (let t = 0; t < row.length; t++) {
      const lp = b.logprob + (row[t] - lse);
      if (lp === -Infinity || (out.length === n && lp <= out[n - 1].logprob)) continue;
      let j = out.length;
      while (j > 0 && out[j - 1].logprob < lp) j--; // ties keep the earlier (beam, token)
      out.splice(j, 0, { beam: i, token: t, logprob: lp });
      if (out.length > n) out.pop();
    }
  });
  return out;
}
