/**
 * Choosing the next token from logits. Greedy (temperature 0) takes the argmax; otherwise a
 * softmax at the given temperature is sampled with a seeded Rng. (The full chain — penalties,
 * top-k/p, min-p — is its own issue and slots in before the draw.)
 */
import { FuselmError } from '../errors.js';
import type { Rng } from './rng.js';

/** Index of the largest logit (the first one on ties). NaN logits are an error. */
export function argmax(logits: Float32Array): number {
  let best = 0, bestV = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestV) {
      bestV = v;
      best = i;
    } else if (Number.isNaN(v)) {
      throw new FuselmError('E_NATIVE', `logit ${i} is NaN: the forward pass produced an invalid value`);
    }
  }
  return best;
}

/** Draws a token from softmax(logits / temperature). */
export function sampleTemperature(logits: Float32Array, temperature: number, rng: Rng): number {
  if (!(temperature > 0)) return argmax(logits);
  const max = logits[argmax(logits)];
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp((logits[i] - max) / temperature);
  let u = rng.next() * sum;
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u < 0) return i;
  }
  return argmax(logits); // only reachable through rounding at u ≈ sum
}
