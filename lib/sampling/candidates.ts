/**
 * The candidate set the sampler stages work on: parallel typed arrays of token ids, logits and
 * probabilities, a live `size`, and flags for what is known about their order. One set is reused
 * from token to token, so a step allocates nothing per token even at a 150k vocabulary.
 *
 * Ordering rule used everywhere: "better" means larger logit, and on equal logits the lower id.
 * A sorted set is in that order, best first; argmax therefore returns the lowest id on ties.
 */
import { FuselmError } from '../errors.js';

export class Candidates {
  /** Token ids; valid for [0, size) unless `implicitIds` (then id = position). */
  ids = new Int32Array(0);
  /** Current (possibly penalized / scaled) logits, [0, size). */
  logits = new Float32Array(0);
  /** Probabilities, filled by `softmax()`; only meaningful right after it. */
  probs = new Float64Array(0);
  size = 0;
  /** True when [0, size) is in "better first" order. */
  sorted = false;
  /** True while the set is the untouched full vocabulary in id order: ids[i] is implicitly i. */
  implicitIds = false;

  // scratch buffers for reordering (double buffering) and for heap selection
  #ids2 = new Int32Array(0);
  #logits2 = new Float32Array(0);
  #heap = new Int32Array(0);
  #mark = new Uint8Array(0);

  /** Make room for `n` candidates (grows only). */
  reserve(n: number): void {
    if (this.ids.length >= n) return;
    this.ids = new Int32Array(n);
    this.logits = new Float32Array(n);
    this.probs = new Float64Array(n);
    this.#ids2 = new Int32Array(n);
    this.#logits2 = new Float32Array(n);
    this.#heap = new Int32Array(n);
    this.#mark = new Uint8Array(n);
  }

  /**
   * Load the full vocabulary from `logits`, checking every value: NaN and +Infinity are
   * rejected naming the index (-Infinity is allowed: that token can never be drawn).
   */
  reset(logits: Float32Array): void {
    const n = logits.length;
    if (n === 0) throw new FuselmError('E_INVALID_ARG', 'sampler: logits are empty');
    this.reserve(n);
    this.logits.set(logits);
    checkLogits(logits);
    this.size = n;
    this.sorted = false;
    this.implicitIds = true;
  }

  /** Write out the ids of an implicit-id set, so stages may reorder it. */
  materialize(): void {
    if (!this.implicitIds) return;
    const ids = this.ids;
    for (let i = 0; i < this.size; i++) ids[i] = i;
    this.implicitIds = false;
  }

  /** The id at position i. */
  idAt(i: number): number {
    return this.implicitIds ? i : this.ids[i];
  }

  /** Position of the best candidate (largest logit, lowest id on ties). */
  argmaxPos(): number {
    if (this.sorted) return 0;
    const l = this.logits, ids = this.ids, implicit = this.implicitIds;
    let best = 0, bestV = l[0];
    for (let i = 1; i < this.size; i++) {
      const v = l[i];
      if (v > bestV || (v === bestV && !implicit && ids[i] < ids[best])) {
        bestV = v;
        best = i;
      }
    }
    return best;
  }

  /** Largest logit among the candidates. */
  maxLogit(): number {
    if (this.sorted) return this.logits[0];
    const l = this.logits;
    let m = -Infinity;
    for (let i = 0; i < this.size; i++) if (l[i] > m) m = l[i];
    return m;
  }

  /**
   * probs[i] = exp(l_i - max) / Σ_j exp(l_j - max) over [0, size). Returns Σ_j exp(l_j - max)
   * (the normalizer relative to the max). Throws when every logit is -Infinity.
   */
  softmax(): number {
    const l = this.logits, p = this.probs, n = this.size;
    const max = this.maxLogit();
    if (max === -Infinity) throw new FuselmError('E_INVALID_ARG', 'sampler: every candidate logit is -Infinity, nothing can be drawn');
    let sum = 0;
    for (let i = 0; i < n; i++) sum += p[i] = Math.exp(l[i] - max);
    const inv = 1 / sum;
    for (let i = 0; i < n; i++) p[i] *= inv;
    return sum;
  }

  /** Keep only positions [0, n). Order flags are unchanged (a prefix of a sorted set is sorted). */
  truncate(n: number): void {
    if (n < this.size) this.size = n;
  }

  /**
   * Partial sort: afterwards positions [0, m) hold the m best candidates in "better first" order.
   * With `keepRest` the other candidates follow in unspecified order (size unchanged); without
   * it the set is cut to those m (top-k). Cost O(size · log m) by a bounded min-heap, plus
   * O(size) moves with keepRest: a full sort is never done unless m ≥ size.
   */
  sortTop(m: number, keepRest: boolean): void {
    const n = this.size;
    if (m > n) m = n;
    if (this.sorted) {
      if (!keepRest) this.size = m;
      return;
    }
    if (m <= 0) {
      if (!keepRest) this.size = 0;
      return;
    }
    const l = this.logits, ids = this.ids, implicit = this.implicitIds;
    const heap = this.#heap; // positions; heap[0] is the worst of the kept
    // "a is worse than b" for positions a, b
    const idOf = (pos: number) => (implicit ? pos : ids[pos]);
    const worse = (a: number, b: number) => {
      const la = l[a], lb = l[b];
      return la < lb || (la === lb && idOf(a) > idOf(b));
    };
    const siftDown = (start: number, len: number) => {
      let i = start;
      const x = heap[i];
      for (;;) {
        let c = 2 * i + 1;
        if (c >= len) break;
        if (c + 1 < len && worse(heap[c + 1], heap[c])) c++;
        if (!worse(heap[c], x)) break;
        heap[i] = heap[c];
        i = c;
      }
      heap[i] = x;
    };
    for (let i = 0; i < m; i++) heap[i] = i;
    for (let i = (m >> 1) - 1; i >= 0; i--) siftDown(i, m);
    const scan = this.logits; // not captured by the closures above, so it stays in a register
    let minL = scan[heap[0]];
    for (let i = m; i < n; i++) {
      const v = scan[i];
      if (v < minL) continue; // fast reject: the common case for a large vocabulary
      if (v === minL && !worse(heap[0], i)) continue;
      heap[0] = i;
      siftDown(0, m);
      minL = scan[heap[0]];
    }
    // heap-sort the kept positions: repeatedly move the worst to the end → best first
    for (let len = m - 1; len > 0; len--) {
      const t = heap[0];
      heap[0] = heap[len];
      heap[len] = t;
      siftDown(0, len);
    }
    const ids2 = this.#ids2, l2 = this.#logits2;
    for (let i = 0; i < m; i++) {
      const pos = heap[i];
      ids2[i] = idOf(pos);
      l2[i] = l[pos];
    }
    let out = m;
    if (keepRest && m < n) {
      const mark = this.#mark;
      for (let i = 0; i < m; i++) mark[heap[i]] = 1;
      for (let i = 0; i < n; i++) {
        if (mark[i]) {
          mark[i] = 0;
          continue;
        }
        ids2[out] = idOf(i);
        l2[out++] = l[i];
      }
    }
    this.#swap();
    this.size = out;
    this.implicitIds = false;
    this.sorted = out === m;
  }

  /** Full sort into "better first" order. */
  sort(): void {
    this.sortTop(this.size, false);
  }

  /**
   * Reorder by an ascending numeric key (ties: better candidate first) and keep the first `keep`.
   * `key` is indexed by position and must hold at least `size` values. Used by typical-p.
   */
  sortByKey(key: Float64Array, keep: number): void {
    this.materialize();
    const n = this.size, ids = this.ids, l = this.logits;
    const perm = this.#heap;
    for (let i = 0; i < n; i++) perm[i] = i;
    const order = perm.subarray(0, n).sort((a, b) => key[a] - key[b] || l[b] - l[a] || ids[a] - ids[b]);
    if (keep > n) keep = n;
    const ids2 = this.#ids2, l2 = this.#logits2;
    for (let i = 0; i < keep; i++) {
      ids2[i] = ids[order[i]];
      l2[i] = l[order[i]];
    }
    this.#swap();
    this.size = keep;
    this.sorted = false;
  }

  /** Keep the candidates with keep(position) true, preserving their order (and the sorted flag). */
  filter(keep: (pos: number) => boolean): void {
    this.materialize();
    const ids = this.ids, l = this.logits;
    let out = 0;
    for (let i = 0; i < this.size; i++) {
      if (!keep(i)) continue;
      ids[out] = ids[i];
      l[out++] = l[i];
    }
    this.size = out;
  }

  #swap(): void {
    const i = this.ids, l = this.logits;
    this.ids = this.#ids2;
    this.logits = this.#logits2;
    this.#ids2 = i;
    this.#logits2 = l;
  }
}

/** Throws E_INVALID_ARG naming the first NaN or +Infinity logit. */
export function checkLogits(logits: Float32Array): void {
  // Fast screen: the plain sum is NaN or +Infinity whenever a NaN or +Infinity is present
  // (-Infinity alone gives -Infinity), and a sum is cheaper than two compares per element.
  let acc = 0;
  for (let i = 0; i < logits.length; i++) acc += logits[i];
  if (acc === acc && acc !== Infinity) return;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v !== v || v === Infinity) {
      throw new FuselmError('E_INVALID_ARG', `sampler: logit ${i} is ${v}; logits must be finite or -Infinity`);
    }
  }
  // the sum overflowed on finite values: nothing wrong
}

/**
 * Argmax over raw logits with the same checks as Candidates.reset, in one pass: the lowest id
 * among equal maxima; NaN / +Infinity rejected naming the index; all -Infinity is an error.
 */
export function argmaxChecked(logits: Float32Array): number {
  let best = 0, bestV = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestV) {
      bestV = v;
      best = i;
    } else if (v !== v) {
      throw new FuselmError('E_INVALID_ARG', `sampler: logit ${i} is NaN; logits must be finite or -Infinity`);
    }
  }
  if (bestV === Infinity) checkLogits(logits); // names the first bad index
  if (bestV === -Infinity) throw new FuselmError('E_INVALID_ARG', 'sampler: every logit is -Infinity, nothing can be chosen');
  return best;
}
