/**
 * Statistics and a naive reference chain for the sampler tests.
 *
 * - chiSquareCritical(df, alpha): the upper-alpha quantile of the chi-square distribution,
 *   computed by bisection on the regularized lower incomplete gamma P(df/2, x/2) (series
 *   expansion; Γ(df/2) exactly from Γ(1) = 1, Γ(1/2) = √π and Γ(a+1) = aΓ(a)).
 *   chi-square.test.ts checks it against the printed table (NIST/SEMATECH e-Handbook of
 *   Statistical Methods, 1.3.6.7.4, upper critical values at 0.001).
 * - referenceDistribution: every stage written the obvious way (objects, a full Array.sort),
 *   independent of lib/sampling, giving the exact probability of each token.
 */
import assert from 'node:assert/strict';
import type { Sampler } from '../../lib/sampling/sampler.js';

function gamma(a: number): number {
  // a is a positive multiple of 1/2
  let g = Number.isInteger(a) ? 1 : Math.sqrt(Math.PI);
  for (let x = Number.isInteger(a) ? 1 : 0.5; x < a - 1e-9; x += 1) g *= x;
  return g;
}

/** Regularized lower incomplete gamma P(a, x) by its power series. */
function lowerGammaP(a: number, x: number): number {
  if (x <= 0) return 0;
  let term = 1 / a, sum = term;
  for (let n = 1; n < 10000; n++) {
    term *= x / (a + n);
    sum += term;
    if (term < sum * 1e-16) break;
  }
  return (sum * Math.exp(-x) * Math.pow(x, a)) / gamma(a);
}

/** The chi-square CDF with df degrees of freedom. */
export function chiSquareCdf(x: number, df: number): number {
  return lowerGammaP(df / 2, x / 2);
}

/** x with P(X > x) = alpha for X ~ chi-square(df). */
export function chiSquareCritical(df: number, alpha = 0.001): number {
  let lo = 0, hi = df + 100;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (1 - chiSquareCdf(mid, df) > alpha) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Pearson's statistic Σ (O − E)² / E over the categories with expected probability > 0. */
export function chiSquare(counts: ArrayLike<number>, probs: ArrayLike<number>, n: number): { stat: number; df: number } {
  let stat = 0, k = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    const e = probs[i] * n;
    stat += (counts[i] - e) ** 2 / e;
    k++;
  }
  return { stat, df: k - 1 };
}

/** Draw n tokens and count them per id. */
export function drawCounts(s: Sampler, logits: Float32Array, n: number, history: ArrayLike<number> = []): Int32Array {
  const counts = new Int32Array(logits.length);
  for (let i = 0; i < n; i++) counts[s.sample(logits, history)]++;
  return counts;
}

/**
 * The empirical distribution of `counts` matches `probs`: tokens of probability 0 are never
 * drawn, every expected count is ≥ 5 (the usual validity rule), and Pearson's statistic is
 * below the p = 0.001 critical value. With fixed seeds the outcome is deterministic.
 */
export function assertMatches(counts: ArrayLike<number>, probs: ArrayLike<number>, label: string): { stat: number; df: number; crit: number } {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i];
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) assert.equal(counts[i], 0, `${label}: token ${i} has probability 0 but was drawn ${counts[i]} times`);
    else assert.ok(probs[i] * n >= 5, `${label}: token ${i} expected count ${probs[i] * n} < 5, the test is too small`);
  }
  const { stat, df } = chiSquare(counts, probs, n);
  if (df === 0) return { stat, df, crit: 0 };
  const crit = chiSquareCritical(df, 0.001);
  assert.ok(stat < crit, `${label}: chi-square ${stat.toFixed(2)} >= ${crit.toFixed(3)} (df ${df}, p = 0.001); counts ${Array.from(counts)} vs probs ${Array.from(probs, (p) => p.toFixed(4))}`);
  return { stat, df, crit };
}

// ---------------------------------------------------------------------------------------------
// The reference chain: plain objects, full sorts, written straight from the definitions.

export interface Ref {
  id: number;
  logit: number;
}

const better = (a: Ref, b: Ref) => b.logit - a.logit || a.id - b.id;

function softmaxOf(c: Ref[]): number[] {
  const max = c.reduce((m, t) => Math.max(m, t.logit), -Infinity);
  const e = c.map((t) => Math.exp(t.logit - max));
  const s = e.reduce((x, y) => x + y, 0);
  return e.map((x) => x / s);
}

export interface RefOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  typicalP?: number;
  repeatPenalty?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  penaltyLastN?: number;
  logitBias?: Record<number, number>;
  minKeep?: number;
  samplers?: string[];
}

export const refStages = {
  penalties(c: Ref[], history: number[], o: RefOptions): Ref[] {
    const lastN = o.penaltyLastN ?? 64;
    if (lastN === 0) return c;
    const window = lastN < 0 ? history : history.slice(Math.max(0, history.length - lastN));
    const count = new Map<number, number>();
    for (const t of window) count.set(t, (count.get(t) ?? 0) + 1);
    const r = o.repeatPenalty ?? 1, f = o.frequencyPenalty ?? 0, p = o.presencePenalty ?? 0;
    return c.map((t) => {
      const n = count.get(t.id) ?? 0;
      if (n === 0) return t;
      const l = t.logit > 0 ? t.logit / r : t.logit * r;
      return { id: t.id, logit: l - n * f - p };
    });
  },
  topK(c: Ref[], k: number, minKeep: number): Ref[] {
    if (k <= 0) return c;
    return [...c].sort(better).slice(0, Math.max(k, minKeep));
  },
  topP(c: Ref[], p: number, minKeep: number): Ref[] {
    if (p >= 1) return c;
    const s = [...c].sort(better), pr = softmaxOf(s);
    let cum = 0;
    for (let i = 0; i < s.length; i++) {
      cum += pr[i];
      if (cum >= p && i + 1 >= minKeep) return s.slice(0, i + 1);
    }
    return s;
  },
  minP(c: Ref[], p: number, minKeep: number): Ref[] {
    if (p <= 0) return c;
    const pr = softmaxOf(c), pmax = pr.reduce((m, q) => Math.max(m, q), 0);
    const kept = c.filter((_, i) => pr[i] >= p * pmax);
    return kept.length >= minKeep ? kept : [...c].sort(better).slice(0, minKeep);
  },
  typicalP(c: Ref[], p: number, minKeep: number): Ref[] {
    if (p >= 1) return c;
    const pr = softmaxOf(c);
    const h = -pr.reduce((s, q) => s + (q > 0 ? q * Math.log(q) : 0), 0);
    const scored = c.map((t, i) => ({ t, q: pr[i], score: pr[i] > 0 ? Math.abs(-Math.log(pr[i]) - h) : Infinity }));
    scored.sort((a, b) => a.score - b.score || better(a.t, b.t));
    let cum = 0;
    for (let i = 0; i < scored.length; i++) {
      cum += scored[i].q;
      if (cum >= p && i + 1 >= minKeep) return scored.slice(0, i + 1).map((x) => x.t);
    }
    return scored.map((x) => x.t);
  },
  temperature(c: Ref[], t: number): Ref[] {
    return c.map((x) => ({ id: x.id, logit: x.logit / t }));
  },
};

/** The exact probability of each token under the chain (llama.cpp defaults where unset). */
export function referenceDistribution(logits: ArrayLike<number>, o: RefOptions, history: number[] = []): number[] {
  let c: Ref[] = Array.from(logits, (logit, id) => ({ id, logit }));
  for (const [id, b] of Object.entries(o.logitBias ?? {})) c[Number(id)] = { id: Number(id), logit: c[Number(id)].logit + b };
  const minKeep = Math.max(1, o.minKeep ?? 1);
  for (const stage of o.samplers ?? ['penalties', 'topK', 'typicalP', 'topP', 'minP', 'temperature']) {
    if (stage === 'penalties') c = refStages.penalties(c, history, o);
    else if (stage === 'topK') c = refStages.topK(c, o.topK ?? 40, minKeep);
    else if (stage === 'typicalP') c = refStages.typicalP(c, o.typicalP ?? 1, minKeep);
    else if (stage === 'topP') c = refStages.topP(c, o.topP ?? 0.95, minKeep);
    else if (stage === 'minP') c = refStages.minP(c, o.minP ?? 0.05, minKeep);
    else if (stage === 'temperature') c = refStages.temperature(c, o.temperature ?? 0.8);
  }
  const pr = softmaxOf(c);
  const out = new Array<number>(logits.length).fill(0);
  c.forEach((t, i) => (out[t.id] = pr[i]));
  return out;
}

/** Logits as a Float32Array. */
export const f32 = (xs: number[]) => Float32Array.from(xs);
