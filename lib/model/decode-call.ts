/**
 * The frame every decode loop runs in — generate()/stream(), parallel sequences and beam
 * search: the abort signal checked before the prompt and between steps, each prompt evaluated
 * from the longest prefix its KV cache already holds, and the prompt and generation timed.
 */
import { FuselmError } from '../errors.js';

export interface Timings {
  promptTokens: number;
  /** Prompt tokens whose KV cache entries were reused from the previous call (not evaluated). */
  cachedTokens: number;
  promptSeconds: number;
  generatedTokens: number;
  generateSeconds: number;
  promptTokensPerSecond: number;
  /**
   * Decode speed: forward steps of the generation per second. The first generated token comes
   * from the prompt's logits, so n tokens take n - 1 steps after the prompt; counting n over
   * their time would overstate the rate by n / (n - 1) (7% at 16 tokens). This is llama.cpp's
   * eval rate (its "runs" per second).
   */
  tokensPerSecond: number;
}

export class DecodeCall {
  readonly #signal: AbortSignal | undefined;
  readonly #start: number;
  #promptEnd: number;
  #end: number | undefined;
  #promptTokens = 0;
  #cachedTokens = 0;

  /** Starts the clock; throws E_ABORTED if the signal has already fired. */
  constructor(signal: AbortSignal | undefined) {
    this.#signal = signal;
    this.check();
    this.#start = this.#promptEnd = performance.now();
  }

  /** Throws E_ABORTED once the signal has fired; called between steps, so an abort ends the call within one. */
  check(): void {
    if (this.#signal?.aborted) throw new FuselmError('E_ABORTED', 'generation aborted', { cause: this.#signal.reason });
  }

  /**
   * Evaluates a prompt on a KV cache that holds `held` at positions 0..n-1: `evaluate(from)`
   * runs ids[from..], skipping the prefix the cache already holds but never the last token,
   * whose logits (returned) start the generation.
   */
  async prompt(ids: readonly number[], held: readonly number[], evaluate: (from: number) => Promise<Float32Array>): Promise<Float32Array> {
    const from = sharedPrefix(held, ids, ids.length - 1);
    const logits = await evaluate(from);
    this.#promptTokens += ids.length;
    this.#cachedTokens += from;
    this.#promptEnd = performance.now();
    return logits;
  }

  /** Stops the clock; the timings of every prompt of the call and `generatedTokens` tokens after them. */
  finish(generatedTokens: number): Timings {
    this.#end = performance.now();
    return this.sequenceTimings(this.#promptTokens, this.#cachedTokens, generatedTokens);
  }

  /** After finish(): one sequence's own counts over the call's times (parallel sequences share them). */
  sequenceTimings(promptTokens: number, cachedTokens: number, generatedTokens: number): Timings {
    const promptSeconds = (this.#promptEnd - this.#start) / 1000;
    const generateSeconds = ((this.#end ?? performance.now()) - this.#promptEnd) / 1000;
    return {
      promptTokens,
      cachedTokens,
      promptSeconds,
      generatedTokens,
      generateSeconds,
      promptTokensPerSecond: (promptTokens - cachedTokens) / promptSeconds,
      tokensPerSecond: generatedTokens > 1 && generateSeconds > 0 ? (generatedTokens - 1) / generateSeconds : 0,
    };
  }
}

/** How many leading tokens `a` and `b` have in common, at most `max` (a cache's reusable prefix). */
export function sharedPrefix(a: readonly number[], b: readonly number[], max = Infinity): number {
  let n = 0;
  while (n < max && n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}
