/**
 * generate() and stream(): their options and results, the defaults a model's
 * generation_config.json gives them, and one generated sequence's bookkeeping (SequenceRun),
 * shared by single and batched generation: its sampler, stop strings, UTF-8 stream decoder,
 * the tokens and text so far, and why it ended.
 */
import { FuselmError } from './errors.js';
import type { Timings } from './model/decode-call.js';
import { createSampler, type LogprobsResult, type Sampler, type SamplerOptions } from './sampling/sampler.js';
import { StopMatcher } from './sampling/stop.js';
import type { GenerationConfig } from './formats/hf.js';
import type { StreamDecoder, Tokenizer } from './tokenizer/tokenizer.js';

/**
 * Generation options. The sampler options (topK, topP, minP, typicalP, penalties, logitBias,
 * seed, samplers order, mirostat) default to llama.cpp's values; temperature defaults to 0
 * (greedy), as in node-llama-cpp, so that plain calls are deterministic. A model's
 * generation_config.json supplies defaults of its own (generationDefaults()).
 */
export interface GenerateOptions extends Omit<SamplerOptions, 'rng' | 'temperature'> {
  /**
   * Softmax temperature; 0 = greedy (argmax). Default: the model's generation_config.json
   * (its temperature, or 1, when it samples), else 0.
   */
  temperature?: number;
  /** Most tokens to generate; default: until end of generation or a full context. */
  maxTokens?: number;
  /** Ends generation before the first occurrence of any of these texts (never emitted). */
  stop?: string | string[];
  /** Report log-probabilities of each generated token and of this many alternatives. */
  logprobs?: number;
  /** Add the tokenizer's BOS (and EOS) tokens around a text prompt; default: as the model says. */
  addSpecial?: boolean;
  /** Keep going past end-of-generation tokens (llama.cpp's --ignore-eos); for benchmarks. */
  ignoreEog?: boolean;
  /** Ends generation within one step; the promise rejects with E_ABORTED. */
  signal?: AbortSignal;
  /**
   * More tokens that end generation, besides the tokenizer's own `tokenizer.eogIds` (which
   * already hold EOS, EOT and the model's end-of-turn markers, and a Hugging Face folder's
   * generation_config.json eos_token_id ones).
   */
  eogIds?: number[];
}

export type FinishReason = 'eog' | 'stop' | 'maxTokens' | 'contextFull';

export interface GenerateResult {
  text: string;
  ids: number[];
  promptIds: number[];
  finishReason: FinishReason;
  timings: Timings;
  /** Per generated token, with the `logprobs` option. */
  logprobs?: LogprobsResult[];
}

export interface StreamChunk {
  /**
   * Text completed by this token: '' while a UTF-8 character is incomplete or the text could
   * still be the start of a stop string. A last chunk with id -1 carries held-back text.
   */
  text: string;
  id: number;
  /** With the `logprobs` option. */
  logprobs?: LogprobsResult;
}

export class SequenceRun {
  readonly promptIds: number[];
  readonly ids: number[] = [];
  readonly logprobs: LogprobsResult[] = [];
  text = '';
  /** Set once the sequence has ended. */
  finishReason: FinishReason | undefined;
  readonly #tok: Tokenizer;
  readonly #o: GenerateOptions;
  readonly #maxTokens: number;
  readonly #sampler: Sampler;
  readonly #stop: StopMatcher;
  readonly #decoder: StreamDecoder;
  readonly #history: number[];

  constructor(tokenizer: Tokenizer, promptIds: number[], o: GenerateOptions) {
    this.#maxTokens = o.maxTokens ?? Infinity;
    if (!(this.#maxTokens >= 0)) throw new FuselmError('E_INVALID_ARG', `maxTokens must be >= 0, got ${o.maxTokens}`);
    if (o.logprobs !== undefined && !(Number.isInteger(o.logprobs) && o.logprobs >= 0))
      throw new FuselmError('E_INVALID_ARG', `logprobs must be an integer >= 0, got ${o.logprobs}`);
    this.#tok = tokenizer;
    this.#o = o;
    this.#sampler = createSampler({ ...o, temperature: o.temperature ?? 0 });
    this.#stop = new StopMatcher(o.stop === undefined ? [] : typeof o.stop === 'string' ? [o.stop] : o.stop);
    this.#decoder = tokenizer.createStreamDecoder();
    this.promptIds = promptIds;
    this.#history = [...promptIds];
    if (this.#maxTokens === 0) this.finishReason = 'maxTokens';
  }

  get done(): boolean {
    return this.finishReason !== undefined;
  }

  /** The last generated token (the one to evaluate next). */
  get lastId(): number {
    return this.ids[this.ids.length - 1];
  }

  /**
   * The next token is the plain argmax of the logits (greedy, nothing applied to the logits, no
   * logprobs asked): a backend may take it where the logits are and pass it to stepChosen().
   */
  get argmaxOnly(): boolean {
    return this.#sampler.plainArgmax && this.#o.logprobs === undefined;
  }

  /** Picks the next token from `logits`; returns what to emit (none when it ends the sequence). */
  step(logits: Float32Array): StreamChunk | undefined {
    return this.#accept(this.#sampler.sample(logits, this.#history), logits);
  }

  /** step() for an argmaxOnly run whose backend already took the argmax. */
  stepChosen(id: number): StreamChunk | undefined {
    return this.#accept(id);
  }

  #accept(id: number, logits?: Float32Array): StreamChunk | undefined {
    if (!this.#o.ignoreEog && (this.#tok.isEog(id) || this.#o.eogIds?.includes(id))) {
      this.finishReason = 'eog';
      return undefined;
    }
    this.ids.push(id);
    this.#history.push(id);
    const lp = this.#o.logprobs === undefined || !logits ? undefined : this.#sampler.logprobs(logits, id, this.#o.logprobs);
    if (lp) this.logprobs.push(lp);
    const out = this.#stop.push(this.#decoder.push(id));
    this.text += out.text;
    if (out.stopped) this.finishReason = 'stop';
    else if (this.ids.length >= this.#maxTokens) this.finishReason = 'maxTokens';
    return { text: out.text, id, ...(lp ? { logprobs: lp } : {}) };
  }

  /** Ends the sequence for a reason found outside it (a full context). */
  end(reason: FinishReason): void {
    this.finishReason ??= reason;
  }

  /** Text held back at the end (an unfinished character, a stop string's possible start), as a last chunk. */
  finish(): StreamChunk | undefined {
    if (this.finishReason === 'stop') return undefined;
    const rest = this.#stop.push(this.#decoder.flush());
    const tail = rest.stopped ? rest.text : rest.text + this.#stop.flush();
    if (rest.stopped) this.finishReason = 'stop';
    this.text += tail;
    return tail ? { text: tail, id: -1 } : undefined;
  }
}

/**
 * Generation defaults from a Hugging Face generation_config.json, as transformers reads it:
 * greedy unless do_sample (then temperature 1, top-k 50, top-p 1 unless given), the repetition
 * penalty and max_new_tokens. Call options override every one of them. (Its eos_token_id ones
 * are in the folder's tokenizer.eogIds, so that they end beam search and calls with eogIds too.)
 */
export function generationDefaults(gc: GenerationConfig): GenerateOptions {
  const o: GenerateOptions = {};
  if (gc.do_sample) {
    o.temperature = gc.temperature ?? 1;
    o.topK = gc.top_k ?? 50;
    o.topP = gc.top_p ?? 1;
    if (gc.min_p !== undefined) o.minP = gc.min_p;
    if (gc.typical_p !== undefined) o.typicalP = gc.typical_p;
  }
  if (gc.repetition_penalty !== undefined) o.repeatPenalty = gc.repetition_penalty;
  if (gc.max_new_tokens !== undefined) o.maxTokens = gc.max_new_tokens;
  return o;
}
