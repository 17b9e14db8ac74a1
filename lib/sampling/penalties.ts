/**
 * The stages that change logits without removing candidates: logit bias and the repetition,
 * frequency and presence penalties. Both find a token's position directly while the set is the
 * untouched vocabulary (the usual case: they run first), and by a scan otherwise.
 */
import { FuselmError } from '../errors.js';
import type { Candidates } from './candidates.js';

/** Logit bias as parallel arrays (built once from the user's map). */
export interface LogitBias {
  ids: Int32Array;
  bias: Float32Array;
}

/** Converts `{ id: bias }` or a Map into arrays, validating ids and values. */
export function toLogitBias(b: Record<number | string, number> | Map<number, number> | undefined): LogitBias {
  const entries: [number, number][] = b instanceof Map ? [...b] : Object.entries(b ?? {}).map(([k, v]) => [Number(k), v]);
  const ids = new Int32Array(entries.length), bias = new Float32Array(entries.length);
  entries.forEach(([id, v], i) => {
    if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
      throw new FuselmError('E_INVALID_ARG', `logitBias: key ${id} is not a token id (a non-negative integer)`);
    }
    if (typeof v !== 'number' || Number.isNaN(v) || v === Infinity) {
      throw new FuselmError('E_INVALID_ARG', `logitBias[${id}] must be a finite number or -Infinity (a ban), got ${v}`);
    }
    ids[i] = id;
    bias[i] = v;
  });
  return { ids, bias };
}

/** Position of token `id` in the set, or -1. */
function positionOf(c: Candidates, id: number): number {
  if (c.implicitIds) return id < c.size ? id : -1;
  const ids = c.ids;
  for (let i = 0; i < c.size; i++) if (ids[i] === id) return i;
  return -1;
}

/**
 * Logit bias: l_id ← l_id + bias_id; a bias of -Infinity bans the token (probability 0).
 * Ids outside the vocabulary are an error.
 */
export function applyLogitBias(c: Candidates, b: LogitBias, vocab: number): void {
  for (let k = 0; k < b.ids.length; k++) {
    const id = b.ids[k];
    if (id >= vocab) throw new FuselmError('E_INVALID_ARG', `logitBias: token ${id} is outside the vocabulary (${vocab} tokens)`);
    const pos = positionOf(c, id);
    if (pos >= 0) c.logits[pos] += b.bias[k];
  }
  c.sorted = false;
}

export interface PenaltyParams {
  /** Repetition penalty r (1 = off). */
  repeat: number;
  /** Frequency penalty α_f (0 = off). */
  frequency: number;
  /** Presence penalty α_p (0 = off). */
  presence: number;
  /** Window: the last `lastN` tokens of the history; 0 = off, -1 = the whole history. */
  lastN: number;
}

/** Reusable token counts over the penalty window (no per-step allocation). */
export class PenaltyCounts {
  counts = new Int32Array(0);
  /** Distinct ids in the window, [0, n). */
  seen = new Int32Array(0);
  n = 0;

  /** Count the tokens of history's window. Ids outside [0, vocab) are an error. */
  load(history: ArrayLike<number>, lastN: number, vocab: number): void {
    if (this.counts.length < vocab) this.counts = new Int32Array(vocab);
    const start = lastN < 0 ? 0 : Math.max(0, history.length - lastN);
    const w = history.length - start;
    if (this.seen.length < w) this.seen = new Int32Array(Math.max(w, 64));
    const counts = this.counts, seen = this.seen;
    let n = 0;
    for (let i = start; i < history.length; i++) {
      const id = history[i];
      if (!(id >= 0 && id < vocab) || id !== Math.floor(id)) {
        for (let j = 0; j < n; j++) counts[seen[j]] = 0;
        throw new FuselmError('E_INVALID_ARG', `sampler: history[${i}] = ${id} is not a token id of this vocabulary (${vocab} tokens)`);
      }
      if (counts[id]++ === 0) seen[n++] = id;
    }
    this.n = n;
  }

  /** Zero the counts again (only the touched entries). */
  clear(): void {
    for (let j = 0; j < this.n; j++) this.counts[this.seen[j]] = 0;
    this.n = 0;
  }
}

/**
 * Penalties over the last `lastN` tokens of `history` (llama.cpp semantics). For each token t
 * seen c_t > 0 times in the window:
 *   repetition:  l_t ← l_t / r  if l_t > 0,  else  l_t ← l_t · r
 *   then:        l_t ← l_t − c_t · α_f − α_p
 * Tokens outside the window are untouched.
 */
export function applyPenalties(c: Candidates, history: ArrayLike<number>, p: PenaltyParams, vocab: number, counts: PenaltyCounts): void {
  if (p.lastN === 0 || history.length === 0) return;
  if (p.repeat === 1 && p.frequency === 0 && p.presence === 0) return;
  counts.load(history, p.lastN, vocab);
  const cnt = counts.counts, l = c.logits;
  const penalize = (pos: number, n: number) => {
    let v = l[pos];
    v = v > 0 ? v / p.repeat : v * p.repeat;
    l[pos] = v - n * p.frequency - p.presence;
  };
  if (c.implicitIds || counts.n * 8 < c.size) {
    for (let j = 0; j < counts.n; j++) {
      const id = counts.seen[j];
      const pos = positionOf(c, id);
      if (pos >= 0) penalize(pos, cnt[id]);
    }
  } else {
    const ids = c.ids;
    for (let i = 0; i < c.size; i++) {
      const n = cnt[ids[i]];
      if (n > 0) penalize(i, n);
    }
  }
  counts.clear();
  c.sorted = false;
}
