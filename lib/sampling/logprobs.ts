/**
 * Log-probabilities as OpenAI-style APIs report them: log-softmax over the ORIGINAL logits
 * (before bias, penalties, truncation and temperature), for the chosen token and the top-n.
 *   log p_i = l_i − (l_max + ln Σ_j exp(l_j − l_max))
 */
import { FuselmError } from '../errors.js';
import { Candidates, checkLogits } from './candidates.js';

export interface TokenLogprob {
  id: number;
  logprob: number;
}

export interface LogprobsResult {
  /** The chosen token and its log-probability. */
  id: number;
  logprob: number;
  /** The topN most likely tokens, most likely first (lowest id first on ties). */
  top: TokenLogprob[];
}

/** ln Σ_j exp(l_j): the log-normalizer of softmax(logits), computed stably. */
export function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

const scratch = new Candidates();

/** The chosen token's log-probability and the topN alternatives, from the raw logits. */
export function logprobs(logits: Float32Array, chosen: number, topN: number): LogprobsResult {
  if (!Number.isInteger(chosen) || chosen < 0 || chosen >= logits.length) {
    throw new FuselmError('E_INVALID_ARG', `logprobs: chosen token ${chosen} is outside the vocabulary (${logits.length} tokens)`);
  }
  if (!Number.isInteger(topN) || topN < 0) throw new FuselmError('E_INVALID_ARG', `logprobs: topN must be an integer >= 0, got ${topN}`);
  checkLogits(logits);
  const lse = logSumExp(logits);
  if (lse === -Infinity) throw new FuselmError('E_INVALID_ARG', 'logprobs: every logit is -Infinity');
  const top: TokenLogprob[] = [];
  if (topN > 0) {
    scratch.reset(logits);
    scratch.sortTop(Math.min(topN, logits.length), false);
    for (let i = 0; i < scratch.size; i++) top.push({ id: scratch.ids[i], logprob: scratch.logits[i] - lse });
  }
  return { id: chosen, logprob: logits[chosen] - lse, top };
}
