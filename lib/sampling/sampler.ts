/**
 * Choosing the next token from logits: the sampler chain, as llama.cpp runs it.
 *
 *   logits ─▶ logit bias ─▶ [penalties ▸ top-k ▸ typical-p ▸ top-p ▸ min-p ▸ temperature] ─▶ draw
 *
 * The bracketed stages run in `samplers` order (default: llama.cpp's common sampler order,
 * penalties → top_k → typ_p → top_p → min_p → temperature, leaving out its DRY, top-n-sigma and
 * XTC stages, which are off by default there). Logit bias always comes first. Each stage is a
 * small function in penalties.ts / stages.ts over a reusable Candidates set (candidates.ts).
 *
 * temperature 0 is greedy: logit bias and penalties still apply (a banned token stays banned,
 * a repetition penalty still works), then the argmax is taken (lowest id on ties) and the
 * truncation stages and the Rng are skipped. Mirostat v2 (mirostat: 2) replaces the four
 * truncation stages by its own adaptive cut and draw; penalties and temperature still apply.
 */
import { FuselmError } from '../errors.js';
import { argmaxChecked, Candidates } from './candidates.js';
import { logprobs as logprobsOf, type LogprobsResult } from './logprobs.js';
import { applyLogitBias, applyPenalties, PenaltyCounts, toLogitBias } from './penalties.js';
import { Rng } from './rng.js';
import { draw, minP, mirostatV2, temperature as applyTemperature, topK, topP, typicalP } from './stages.js';

export { Candidates } from './candidates.js';
export { logprobs, logSumExp, type LogprobsResult, type TokenLogprob } from './logprobs.js';

export type SamplerStage = 'penalties' | 'topK' | 'typicalP' | 'topP' | 'minP' | 'temperature';

/** llama.cpp's default order (common_params_sampling.samplers, minus the stages fuselm lacks). */
export const DEFAULT_SAMPLER_ORDER: readonly SamplerStage[] = Object.freeze(['penalties', 'topK', 'typicalP', 'topP', 'minP', 'temperature'] as SamplerStage[]);

export interface SamplerOptions {
  /** Softmax temperature; 0 = greedy (argmax). Default 0.8 (llama.cpp's) here; generate() defaults to 0 (GenerateOptions). */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. Default 40. */
  topK?: number;
  /** Nucleus: keep the smallest set with total probability ≥ topP, in (0, 1]; 1 = off. Default 0.95. */
  topP?: number;
  /** Keep tokens with p ≥ minP · p_max, in [0, 1]; 0 = off. Default 0.05. */
  minP?: number;
  /** Locally typical sampling mass, in (0, 1]; 1 = off. Default 1. */
  typicalP?: number;
  /** Repetition penalty (> 0); 1 = off. Default 1. */
  repeatPenalty?: number;
  /** Penalty window: the last n tokens of the history; 0 = off, -1 = the whole history. Default 64. */
  penaltyLastN?: number;
  /** Subtracted once per occurrence in the window. Default 0. */
  frequencyPenalty?: number;
  /** Subtracted once if the token occurs in the window. Default 0. */
  presencePenalty?: number;
  /** Added to a token's logit; -Infinity bans it. Default {}. */
  logitBias?: Record<number, number> | Map<number, number>;
  /** Seed of the Rng (any integer; used modulo 2^32). Default 0. */
  seed?: number;
  /** Truncation stages keep at least this many tokens. Default 1. */
  minKeep?: number;
  /** Order of the chain's stages; a stage left out does not run. Default DEFAULT_SAMPLER_ORDER. */
  samplers?: readonly SamplerStage[];
  /** Draw from this Rng instead of one seeded with `seed` (shared state: the caller's choice). */
  rng?: Rng;
  /** 0 = off, 2 = Mirostat v2 (replaces top-k/typical-p/top-p/min-p). Default 0. */
  mirostat?: 0 | 2;
  /** Mirostat target surprise τ (bits). Default 5. */
  mirostatTau?: number;
  /** Mirostat learning rate η. Default 0.1. */
  mirostatEta?: number;
}

export type ResolvedSamplerOptions = Required<Omit<SamplerOptions, 'logitBias' | 'rng'>> & {
  logitBias: Record<number, number> | Map<number, number>;
  rng?: Rng;
};

/** The defaults, as llama.cpp's common_params_sampling has them (seed: 0 instead of random). */
export const DEFAULT_SAMPLER_OPTIONS: Readonly<ResolvedSamplerOptions> = Object.freeze({
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  typicalP: 1,
  repeatPenalty: 1,
  penaltyLastN: 64,
  frequencyPenalty: 0,
  presencePenalty: 0,
  logitBias: {},
  seed: 0,
  minKeep: 1,
  samplers: DEFAULT_SAMPLER_ORDER,
  mirostat: 0,
  mirostatTau: 5,
  mirostatEta: 0.1,
});

export interface Sampler {
  readonly options: Readonly<ResolvedSamplerOptions>;
  /**
   * The next token for `logits` (one row, [vocab]); `history` is the sequence so far (prompt and
   * generated tokens), read for the penalty window only. NaN / +Infinity logits are rejected.
   */
  sample(logits: Float32Array, history?: ArrayLike<number>): number;
  /** Log-softmax of the original logits: the chosen token's logprob and the topN alternatives. */
  logprobs(logits: Float32Array, chosen: number, topN: number): LogprobsResult;
  /** Back to the initial state: the Rng reseeded (unless it was given), Mirostat's μ back to 2τ. */
  reset(): void;
  /** Mirostat's current bound μ (undefined without mirostat). */
  readonly mirostatMu: number | undefined;
  /** sample() is the plain argmax of the logits (greedy, no bias, no penalties), so a backend may take it. */
  readonly plainArgmax: boolean;
}

function bad(option: string, want: string, got: unknown): FuselmError {
  return new FuselmError('E_INVALID_ARG', `sampler option ${option} must be ${want}, got ${typeof got === 'string' ? JSON.stringify(got) : String(got)}`);
}

const STAGES = new Set<string>(DEFAULT_SAMPLER_ORDER);

/** Fills in the defaults and validates every option, naming the bad one. */
export function resolveSamplerOptions(opts: SamplerOptions = {}): ResolvedSamplerOptions {
  const d = DEFAULT_SAMPLER_OPTIONS;
  const o: ResolvedSamplerOptions = {
    temperature: opts.temperature ?? d.temperature,
    topK: opts.topK ?? d.topK,
    topP: opts.topP ?? d.topP,
    minP: opts.minP ?? d.minP,
    typicalP: opts.typicalP ?? d.typicalP,
    repeatPenalty: opts.repeatPenalty ?? d.repeatPenalty,
    penaltyLastN: opts.penaltyLastN ?? d.penaltyLastN,
    frequencyPenalty: opts.frequencyPenalty ?? d.frequencyPenalty,
    presencePenalty: opts.presencePenalty ?? d.presencePenalty,
    logitBias: opts.logitBias ?? d.logitBias,
    seed: opts.seed ?? d.seed,
    minKeep: opts.minKeep ?? d.minKeep,
    samplers: opts.samplers ?? d.samplers,
    mirostat: opts.mirostat ?? d.mirostat,
    mirostatTau: opts.mirostatTau ?? d.mirostatTau,
    mirostatEta: opts.mirostatEta ?? d.mirostatEta,
    rng: opts.rng,
  };
  const num = (v: unknown): v is number => typeof v === 'number' && !Number.isNaN(v);
  if (!num(o.temperature) || !(o.temperature >= 0) || o.temperature === Infinity) throw bad('temperature', 'a finite number >= 0', o.temperature);
  if (!Number.isInteger(o.topK) || o.topK < 0) throw bad('topK', 'an integer >= 0 (0 = off)', o.topK);
  if (!num(o.topP) || !(o.topP > 0 && o.topP <= 1)) throw bad('topP', 'in (0, 1] (1 = off)', o.topP);
  if (!num(o.minP) || !(o.minP >= 0 && o.minP <= 1)) throw bad('minP', 'in [0, 1] (0 = off)', o.minP);
  if (!num(o.typicalP) || !(o.typicalP > 0 && o.typicalP <= 1)) throw bad('typicalP', 'in (0, 1] (1 = off)', o.typicalP);
  if (!num(o.repeatPenalty) || !(o.repeatPenalty > 0) || o.repeatPenalty === Infinity) throw bad('repeatPenalty', 'a finite number > 0 (1 = off)', o.repeatPenalty);
  if (!Number.isInteger(o.penaltyLastN) || o.penaltyLastN < -1) throw bad('penaltyLastN', 'an integer >= -1 (0 = off, -1 = whole history)', o.penaltyLastN);
  if (!num(o.frequencyPenalty) || !Number.isFinite(o.frequencyPenalty)) throw bad('frequencyPenalty', 'a finite number', o.frequencyPenalty);
  if (!num(o.presencePenalty) || !Number.isFinite(o.presencePenalty)) throw bad('presencePenalty', 'a finite number', o.presencePenalty);
  if (!Number.isInteger(o.seed)) throw bad('seed', 'an integer', o.seed);
  if (!Number.isInteger(o.minKeep) || o.minKeep < 0) throw bad('minKeep', 'an integer >= 0', o.minKeep);
  if (!Array.isArray(o.samplers)) throw bad('samplers', `an array of ${[...STAGES].join(', ')}`, o.samplers);
  for (const s of o.samplers) if (!STAGES.has(s)) throw bad('samplers', `an array of ${[...STAGES].join(', ')}`, s);
  if (o.mirostat !== 0 && o.mirostat !== 2) throw bad('mirostat', '0 (off) or 2 (Mirostat v2)', o.mirostat);
  if (!num(o.mirostatTau) || !(o.mirostatTau > 0) || o.mirostatTau === Infinity) throw bad('mirostatTau', 'a finite number > 0', o.mirostatTau);
  if (!num(o.mirostatEta) || !(o.mirostatEta > 0) || o.mirostatEta === Infinity) throw bad('mirostatEta', 'a finite number > 0', o.mirostatEta);
  if (o.rng !== undefined && !(o.rng instanceof Rng)) throw bad('rng', 'an Rng', o.rng);
  if (o.logitBias === null || typeof o.logitBias !== 'object') throw bad('logitBias', 'an object or Map of token id → bias', o.logitBias);
  return o;
}

/** A sampler with its own Rng, candidate set and scratch: one per sequence. */
export function createSampler(opts: SamplerOptions = {}): Sampler {
  const o = resolveSamplerOptions(opts);
  const bias = toLogitBias(o.logitBias);
  const hasBias = bias.ids.length > 0;
  const penalties = { repeat: o.repeatPenalty, frequency: o.frequencyPenalty, presence: o.presencePenalty, lastN: o.penaltyLastN };
  const hasPenalties =
    o.samplers.includes('penalties') && o.penaltyLastN !== 0 && (o.repeatPenalty !== 1 || o.frequencyPenalty !== 0 || o.presencePenalty !== 0);
  const minKeep = Math.max(1, o.minKeep);
  const cand = new Candidates();
  const counts = new PenaltyCounts();
  const mirostat = { mu: 2 * o.mirostatTau };
  let rng = o.rng ?? new Rng(o.seed);
  const noHistory: number[] = [];
  const plainArgmax = o.temperature === 0 && !hasBias && !hasPenalties;

  function sample(logits: Float32Array, history: ArrayLike<number> = noHistory): number {
    if (!(logits instanceof Float32Array)) throw new FuselmError('E_INVALID_ARG', 'sampler: logits must be a Float32Array');
    const vocab = logits.length;
    if (vocab === 0) throw new FuselmError('E_INVALID_ARG', 'sampler: logits are empty');
    if (plainArgmax) return argmaxChecked(logits);
    cand.reset(logits);
    if (hasBias) applyLogitBias(cand, bias, vocab);
    if (o.temperature === 0) {
      if (hasPenalties) applyPenalties(cand, history, penalties, vocab, counts);
      if (cand.maxLogit() === -Infinity) throw new FuselmError('E_INVALID_ARG', 'sampler: every logit is -Infinity, nothing can be chosen');
      return cand.idAt(cand.argmaxPos());
    }
    for (const stage of o.samplers) {
      switch (stage) {
        case 'penalties':
          if (hasPenalties) applyPenalties(cand, history, penalties, vocab, counts);
          break;
        case 'temperature':
          applyTemperature(cand, o.temperature);
          break;
        case 'topK':
          if (!o.mirostat) topK(cand, o.topK, minKeep);
          break;
        case 'typicalP':
          if (!o.mirostat) typicalP(cand, o.typicalP, minKeep);
          break;
        case 'topP':
          if (!o.mirostat) topP(cand, o.topP, minKeep);
          break;
        case 'minP':
          if (!o.mirostat) minP(cand, o.minP, minKeep);
          break;
      }
    }
    if (o.mirostat === 2) return mirostatV2(cand, mirostat, o.mirostatTau, o.mirostatEta, rng);
    return draw(cand, rng);
  }

  return {
    options: Object.freeze(o),
    sample,
    logprobs: logprobsOf,
    reset() {
      if (!o.rng) rng = new Rng(o.seed);
      mirostat.mu = 2 * o.mirostatTau;
    },
    get mirostatMu() {
      return o.mirostat === 2 ? mirostat.mu : undefined;
    },
    plainArgmax,
  };
}
