/**
 * The truncation stages, temperature and the draw, each a small function over a Candidates set.
 * Notation: l_i the current logits of the candidates, p_i = softmax(l)_i over the *current*
 * candidates (so a stage sees what the stages before it left), "better" = larger logit, lower id
 * on ties. Every truncation keeps at least `minKeep` candidates (when that many exist).
 */
import type { Candidates } from './candidates.js';
import type { Rng } from './rng.js';

/** Top-k: keep the k best candidates (k ≤ 0: off). Leaves the set sorted. */
export function topK(c: Candidates, k: number, minKeep = 1): void {
  if (k <= 0) return;
  k = Math.max(k, minKeep);
  if (k >= c.size) return;
  c.sortTop(k, false);
}

/**
 * Top-p (nucleus): keep the smallest set of best candidates whose probabilities sum to ≥ p
 * (and at least minKeep). p ≥ 1: off. A sorted or small set is cut after a (partial) sort; a
 * large unsorted one (no top-k before it) is never fully sorted: the candidates are binned by
 * l_max − l_i into narrow buckets, the bucket where the cumulative mass crosses p is found, and
 * only that bucket's members are sorted. The kept set is the same either way.
 */
export function topP(c: Candidates, p: number, minKeep = 1): void {
  if (p >= 1 || c.size <= 1) return;
  if (c.sorted || c.size <= 2048) return topPSorted(c, p, minKeep);
  const n = c.size, l = c.logits, e = c.probs;
  const max = c.maxLogit();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += e[i] = Math.exp(l[i] - max);
  const target = p * sum;
  const mass = bucketMass.fill(0), count = bucketCount.fill(0);
  for (let i = 0; i < n; i++) {
    const b = (max - l[i]) * BUCKET_SCALE;
    const bi = b < NB - 1 ? b | 0 : NB - 1; // -Infinity logits land in the last bucket
    mass[bi] += e[i];
    count[bi]++;
  }
  let j = 0, cum = 0, above = 0;
  for (; j < NB; j++) {
    if (cum + mass[j] >= target) break;
    cum += mass[j];
    above += count[j];
  }
  if (j === NB) return; // rounding left the total just below the target: keep everything
  if (above + count[j] < minKeep) return c.sortTop(minKeep, false);
  // compact buckets < j to the front (unsorted); copy bucket j aside
  c.materialize();
  const ids = c.ids;
  const bIds = bandIds(count[j]), bL = bandLogits(count[j]);
  let out = 0, nb = 0;
  for (let i = 0; i < n; i++) {
    const b = (max - l[i]) * BUCKET_SCALE;
    const bi = b < NB - 1 ? b | 0 : NB - 1;
    if (bi < j) {
      ids[out] = ids[i];
      l[out++] = l[i];
    } else if (bi === j) {
      bIds[nb] = ids[i];
      bL[nb++] = l[i];
    }
  }
  // bucket j, best first, appended until the mass reaches p (and minKeep is met)
  const order = bandOrder(nb);
  for (let i = 0; i < nb; i++) order[i] = i;
  order.subarray(0, nb).sort((a, b) => bL[b] - bL[a] || bIds[a] - bIds[b]);
  for (let k = 0; k < nb; k++) {
    const t = order[k];
    ids[out] = bIds[t];
    l[out++] = bL[t];
    cum += Math.exp(bL[t] - max);
    if (cum >= target && out >= minKeep) break;
  }
  c.size = out;
  c.sorted = false;
}

/** Top-p over a set that is sorted or small: sort the best m = 64, 512 ... until p is reached. */
function topPSorted(c: Candidates, p: number, minKeep: number): void {
  const max = c.maxLogit();
  let sum = 0;
  {
    const l = c.logits;
    for (let i = 0; i < c.size; i++) sum += Math.exp(l[i] - max);
  }
  const target = p * sum;
  let m = Math.min(c.size, 64);
  for (;;) {
    c.sortTop(m, true);
    const l = c.logits;
    let cum = 0;
    for (let i = 0; i < m; i++) {
      cum += Math.exp(l[i] - max);
      if (cum >= target && i + 1 >= minKeep) {
        c.truncate(i + 1);
        c.sorted = true;
        return;
      }
    }
    if (m >= c.size) return; // rounding kept cum just below target: keep everything
    m = Math.min(c.size, m * 8);
  }
}

/** Buckets for top-p: NB buckets of width 1/8 logit below the max (the last one takes the rest). */
const NB = 512, BUCKET_SCALE = 8;
const bucketMass = new Float64Array(NB);
const bucketCount = new Int32Array(NB);
let bandIdScratch = new Int32Array(0), bandLogitScratch = new Float32Array(0), bandOrderScratch = new Int32Array(0);
function bandIds(n: number): Int32Array {
  if (bandIdScratch.length < n) bandIdScratch = new Int32Array(n);
  return bandIdScratch;
}
function bandLogits(n: number): Float32Array {
  if (bandLogitScratch.length < n) bandLogitScratch = new Float32Array(n);
  return bandLogitScratch;
}
function bandOrder(n: number): Int32Array {
  if (bandOrderScratch.length < n) bandOrderScratch = new Int32Array(n);
  return bandOrderScratch;
}

/**
 * Min-p: keep candidates with p_i ≥ minP · p_max, i.e. l_i ≥ l_max + ln(minP); at least minKeep
 * (the best ones). minP ≤ 0: off. Order (and the sorted flag) is preserved.
 */
export function minP(c: Candidates, minPValue: number, minKeep = 1): void {
  if (minPValue <= 0 || c.size <= 1) return;
  const threshold = c.maxLogit() + Math.log(minPValue);
  const l = c.logits;
  let kept = 0;
  for (let i = 0; i < c.size; i++) if (l[i] >= threshold) kept++;
  if (kept >= minKeep) {
    if (kept < c.size) keepAtLeast(c, threshold);
  } else {
    c.sortTop(minKeep, false);
  }
}

/**
 * Locally typical sampling (Meister et al. 2022): with the entropy H = −Σ p_i ln p_i, rank the
 * candidates by |−ln p_i − H| (how far their surprise is from the expected surprise), ascending,
 * and keep the smallest prefix of that ranking whose probabilities sum to ≥ p (at least minKeep).
 * p ≥ 1: off. The kept set is in typicality order, not sorted by logit.
 */
export function typicalP(c: Candidates, p: number, minKeep = 1): void {
  if (p >= 1 || c.size <= 1) return;
  c.softmax();
  const n = c.size, probs = c.probs;
  let h = 0;
  for (let i = 0; i < n; i++) if (probs[i] > 0) h -= probs[i] * Math.log(probs[i]);
  const key = scoreBuffer(n);
  for (let i = 0; i < n; i++) key[i] = probs[i] > 0 ? Math.abs(-Math.log(probs[i]) - h) : Infinity;
  c.sortByKey(key, n); // typicality order, ties: the better candidate first
  c.softmax(); // same set, new positions
  const q = c.probs;
  let cum = 0;
  for (let i = 0; i < n; i++) {
    cum += q[i];
    if (cum >= p && i + 1 >= minKeep) {
      c.truncate(i + 1);
      return;
    }
  }
}

/** Keep candidates with logit ≥ threshold, in order. */
function keepAtLeast(c: Candidates, threshold: number): void {
  c.materialize();
  const ids = c.ids, l = c.logits;
  let out = 0;
  for (let i = 0; i < c.size; i++) {
    const v = l[i];
    if (v >= threshold) {
      ids[out] = ids[i];
      l[out++] = v;
    }
  }
  c.size = out;
}

let scoreScratch = new Float64Array(0);
function scoreBuffer(n: number): Float64Array {
  if (scoreScratch.length < n) scoreScratch = new Float64Array(n);
  return scoreScratch;
}

/**
 * Temperature: l_i ← l_i / T (T > 0). T = 1 is a no-op; T = 0 is handled as greedy by the
 * sampler. When a tiny T would overflow float32, l_i ← (l_i − l_max) / T instead (the same
 * softmax: it is shift-invariant), so the best token stays finite.
 */
export function temperature(c: Candidates, t: number): void {
  if (t === 1 || !(t > 0)) return;
  const l = c.logits, inv = 1 / t;
  const max = c.maxLogit();
  const shift = Number.isFinite(max) && Math.abs(max * inv) > 1e30 ? max : 0;
  for (let i = 0; i < c.size; i++) l[i] = (l[i] - shift) * inv;
}

/**
 * The draw: token i with probability p_i = softmax(l)_i over the candidates, by inversion with
 * one uniform u from the Rng: the first position where the running sum exceeds u. Candidates of
 * probability 0 (-Infinity logits) are never returned.
 */
export function draw(c: Candidates, rng: Rng): number {
  c.softmax();
  const p = c.probs, n = c.size;
  let u = rng.next();
  let last = 0;
  for (let i = 0; i < n; i++) {
    if (p[i] === 0) continue;
    last = i;
    u -= p[i];
    if (u < 0) return c.idAt(i);
  }
  return c.idAt(last); // rounding: u landed in the last ulp of the total
}

/**
 * Mirostat v2 (Basu et al. 2021), one step. With the target surprise τ and the current bound μ:
 * keep candidates whose surprise −log2 p_i ≤ μ (at least the best one), renormalize, draw; then
 * with the chosen token's renormalized probability q, μ ← μ − η · (−log2 q − τ).
 * Returns the token; the new μ is written to state.mu.
 */
export function mirostatV2(c: Candidates, state: { mu: number }, tau: number, eta: number, rng: Rng): number {
  c.softmax();
  const p = c.probs;
  const bound = Math.pow(2, -state.mu); // −log2 p ≤ μ  ⇔  p ≥ 2^−μ
  let kept = 0;
  for (let i = 0; i < c.size; i++) if (p[i] >= bound) kept++;
  if (kept === 0) c.sortTop(1, false);
  else if (kept < c.size) c.filter((i) => p[i] >= bound);
  const id = draw(c, rng); // renormalizes over the kept set
  let q = 0;
  for (let i = 0; i < c.size; i++) if (c.idAt(i) === id) q = c.probs[i];
  state.mu -= eta * (-Math.log2(q) - tau);
  return id;
}
