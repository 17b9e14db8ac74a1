/**
 * generate() and stream(): their options and results, the defaults a model's
 * generation_config.json gives them, and one generated sequence's bookkeeping (SequenceRun),
 * shared by single and batched generation: its sampler, stop strings, UTF-8 stream decoder,
 * the tokens and text so far, and why it ended.
 */
import { FuselmError, shown } from './errors.js';
import { checkGrammarOptions, type GrammarOptions, GrammarState, grammarMasks } from './grammar/constraint.js';
import type { Timings } from './model/decode-call.js';
import { type AdapterUse, checkAdapterUses } from './model/lora.js';
import { createSampler, type LogprobsResult, resolveSamplerOptions, type Sampler, type SamplerOptions } from './sampling/sampler.js';
import { StopMatcher } from './sampling/stop.js';
import type { GenerationConfig } from './formats/hf.js';
import type { StreamDecoder, Tokenizer } from './tokenizer/tokenizer.js';

/**
 * Generation options. The sampler options (topK, topP, minP, typicalP, penalties, logitBias,
 * seed, samplers order, mirostat) default to llama.cpp's values; temperature defaults to 0
 * (greedy), as in node-llama-cpp, so that plain calls are deterministic. A model's
 * generation_config.json supplies defaults of its own (generationDefaults()).
 */
export interface GenerateOptions extends Omit<SamplerOptions, 'rng' | 'temperature'>, GrammarOptions {
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
   * LoRA adapters applied to this call (Model.loadAdapter), each times its scale (default 1);
   * several add up. A parallel batch's prompts may bring their own (`{ prompt, adapters }`).
   */
  adapters?: AdapterUse[];
  /**
   * More tokens that end generation, besides the tokenizer's own `tokenizer.eogIds` (which
   * already hold EOS, EOT and the model's end-of-turn markers, and a Hugging Face folder's
   * generation_config.json eos_token_id ones).
   */
  eogIds?: number[];
  /**
   * stream() only: after this many ms without a next() from the consumer, the stream releases
   * the model for other calls and ends (its next next() rejects with E_ABORTED). Default 60000;
   * Infinity: never.
   */
  idleTimeout?: number;
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
  /** With a grammar or JSON Schema: where the output is in it. */
  readonly #grammar: GrammarState | undefined;

  /** Logit rows past the tokenizer's vocabulary (a model's padding rows), masked out of sampling; 0: none. */
  readonly #padFrom: number;

  /**
   * `modelVocab`: the model's logit rows, when more than the tokenizer's tokens (a vocabulary
   * padded to a multiple of 64 or 128): those ids are never sampled.
   */
  constructor(tokenizer: Tokenizer, promptIds: number[], o: GenerateOptions, modelVocab = tokenizer.vocabSize) {
    checkGenerateOptions(o);
    this.#maxTokens = o.maxTokens ?? Infinity;
    this.#padFrom = modelVocab > tokenizer.vocabSize ? tokenizer.vocabSize : 0;
    this.#tok = tokenizer;
    this.#o = o;
    this.#sampler = createSampler({ ...o, temperature: o.temperature ?? 0 });
    this.#stop = new StopMatcher(o.stop === undefined ? [] : typeof o.stop === 'string' ? [o.stop] : o.stop);
    // the sampler refuses a bias on an id past the logits; one past the tokenizer is refused here
    if (this.#padFrom) for (const id of biasIds(o.logitBias)) if (id >= this.#padFrom) throw new FuselmError('E_INVALID_ARG', `logitBias: token ${id} is past the tokenizer's ${this.#padFrom} tokens`);
    const masks = grammarMasks(tokenizer, o);
    this.#grammar = masks && new GrammarState(masks, o.eogIds);
    // the grammar matched the tokens' bytes as they are: the text keeps a leading space too
    this.#decoder = tokenizer.createStreamDecoder(masks ? { stripLeadingSpace: false } : {});
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
    return this.#sampler.plainArgmax && this.#o.logprobs === undefined && this.#padFrom === 0 && !this.#grammar;
  }

  /** With a grammar whose mask for the next token is not made yet: makes it, the event loop free meanwhile (call before step()). */
  prepare(): Promise<void> | undefined {
    return this.#grammar?.prepare();
  }

  /** Picks the next token from `logits`; returns what to emit (none when it ends the sequence). */
  step(logits: Float32Array): StreamChunk | undefined {
    // padding rows (ids the tokenizer does not have) can never be drawn
    if (this.#padFrom) logits.fill(-Infinity, this.#padFrom);
    // the grammar's mask comes before the sampler chain: every stage sees only legal tokens
    this.#grammar?.apply(logits);
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
    this.#grammar?.accept(id);
    this.ids.push(id);
    this.#history.push(id);
    const lp = this.#o.logprobs === undefined || !logits ? undefined : this.#sampler.logprobs(logits, id, this.#o.logprobs);
    if (lp) this.logprobs.push(lp);
    const out = this.#stop.push(this.#decoder.push(id));
    this.text += out.text;
    if (out.stopped) this.finishReason = 'stop';
    else if (this.#grammar?.complete) this.finishReason = 'eog';
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

/** The sampler's own options (SamplerOptions less rng), which resolveSamplerOptions checks. */
const SAMPLER_KEYS = new Set([
  'temperature', 'topK', 'topP', 'minP', 'typicalP', 'repeatPenalty', 'penaltyLastN', 'frequencyPenalty', 'presencePenalty', 'logitBias',
  'seed', 'minKeep', 'samplers', 'mirostat', 'mirostatTau', 'mirostatEta',
]);

function biasIds(bias: unknown): number[] {
  if (bias instanceof Map) return [...bias.keys()].map(Number);
  if (bias && typeof bias === 'object') return Object.keys(bias).map(Number);
  return [];
}

/**
 * Every generate()/stream() option checked at run time (E_INVALID_ARG naming it): the sampler's
 * (resolveSamplerOptions) and the loop's. `extra` names more keys the caller accepts (chat and
 * beam options ride in the same object).
 */
export function checkGenerateOptions(o: unknown, what = 'generate() options'): asserts o is GenerateOptions {
  const bad = (name: string, want: string, got: unknown) =>
    new FuselmError('E_INVALID_ARG', `${name} must be ${want}, got ${got === null ? 'null' : typeof got === 'object' ? (Array.isArray(got) ? 'an array' : 'an object') : String(got).slice(0, 40)}`);
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad(what, 'an object', o);
  const g = o as GenerateOptions;
  const { temperature = 0 } = g;
  resolveSamplerOptions({ ...pick(g), temperature });
  if (g.maxTokens !== undefined && !(g.maxTokens === Infinity || (Number.isInteger(g.maxTokens) && g.maxTokens >= 0))) throw bad('maxTokens', 'an integer >= 0', g.maxTokens);
  if (g.logprobs !== undefined && !(Number.isInteger(g.logprobs) && g.logprobs >= 0)) throw bad('logprobs', 'an integer >= 0', g.logprobs);
  if (g.stop !== undefined && typeof g.stop !== 'string' && !(Array.isArray(g.stop) && g.stop.every((x) => typeof x === 'string' && x.length > 0)))
    throw bad('stop', 'a string or an array of non-empty strings', g.stop);
  for (const k of ['addSpecial', 'ignoreEog'] as const) if (g[k] !== undefined && typeof g[k] !== 'boolean') throw bad(k, 'a boolean', g[k]);
  if (g.signal !== undefined && !(g.signal instanceof AbortSignal)) throw bad('signal', 'an AbortSignal', g.signal);
  if (g.idleTimeout !== undefined && !(typeof g.idleTimeout === 'number' && g.idleTimeout > 0)) throw bad('idleTimeout', 'a number of ms > 0 (Infinity: never)', g.idleTimeout);
  if (g.eogIds !== undefined && !(Array.isArray(g.eogIds) && g.eogIds.every((x) => Number.isInteger(x) && x >= 0))) throw bad('eogIds', 'an array of token ids', g.eogIds);
  if (g.adapters !== undefined) checkAdapterUses(g.adapters, 'adapters');
  checkGrammarOptions(g);
}

/** The sampler's options out of a GenerateOptions (the ones set). */
function pick(g: GenerateOptions): Omit<SamplerOptions, 'rng'> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(g)) if (SAMPLER_KEYS.has(k) && v !== undefined) out[k] = v;
  return out as Omit<SamplerOptions, 'rng'>;
}

/**
 * generation_config.json's values checked at load: a field of the wrong type or out of range is
 * an E_FORMAT naming the file and the field (rather than every later call failing and blaming
 * its caller). Nulls are dropped (transformers writes them for unset fields).
 */
export function checkGenerationConfig(gc: GenerationConfig, file: string): GenerationConfig {
  const out: GenerationConfig = {};
  for (const [k, v] of Object.entries(gc)) if (v !== null) out[k] = v;
  const fail = (field: string, want: string) => {
    const v = out[field];
    return new FuselmError('E_FORMAT', `${file}: ${field} must be ${want}, got ${typeof v === 'number' ? v : Array.isArray(v) ? 'an array' : typeof v}`);
  };
  const num = (f: string, ok: (x: number) => boolean, want: string) => {
    if (out[f] !== undefined && !(typeof out[f] === 'number' && Number.isFinite(out[f]) && ok(out[f] as number))) throw fail(f, want);
  };
  const ids = (f: string) => {
    const v = out[f];
    if (v === undefined) return;
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => Number.isInteger(x) && x >= 0 && x <= 0x7fffffff)) throw fail(f, 'a token id or a list of them');
  };
  if (out.do_sample !== undefined && typeof out.do_sample !== 'boolean') throw fail('do_sample', 'a boolean');
  num('temperature', (x) => x >= 0, 'a finite number >= 0');
  num('top_k', (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0');
  num('top_p', (x) => x > 0 && x <= 1, 'in (0, 1]');
  num('min_p', (x) => x >= 0 && x <= 1, 'in [0, 1]');
  num('typical_p', (x) => x > 0 && x <= 1, 'in (0, 1]');
  num('repetition_penalty', (x) => x > 0, 'a finite number > 0');
  num('max_new_tokens', (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0');
  num('max_length', (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0');
  ids('bos_token_id');
  ids('eos_token_id');
  ids('pad_token_id');
  return out;
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
