/**
 * OpenAI's API semantics over fuselm's generation: request fields to GenerateOptions, finish
 * reasons, log-probabilities and usage in OpenAI's shapes, and the error body
 * `{ error: { message, type, param, code } }`.
 */
import { FuselmError } from '../errors.js';
import type { FinishReason, GenerateOptions } from '../generate.js';
import type { LogprobsResult } from '../sampling/sampler.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { QueueFullError } from './scheduler.js';

/** The sampling fields both completion routes take (validated by lib/server/schemas.ts). */
export interface SamplingFields {
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  repeat_penalty?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  seed?: number | null;
  /** llama.cpp's: keep going past end-of-generation tokens (benchmarks). */
  ignore_eos?: boolean | null;
  stop?: string | string[] | null;
  n?: number | null;
  logit_bias?: Record<string, number> | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  /** OpenAI's structured output: `json_object` (any JSON object, or llama.cpp's `schema`) or `json_schema`. */
  response_format?: { type: 'text' | 'json_object' | 'json_schema'; json_schema?: { name?: string; schema?: object; strict?: boolean | null }; schema?: object } | null;
  /** llama.cpp's server extras: a GBNF grammar, or a JSON Schema the output must match. */
  grammar?: string | null;
  json_schema?: object | null;
  /** llama.cpp's server: the LoRA adapters of this request, [{ id, scale }] (unlisted: scale 0). */
  lora?: { id: number; scale: number }[] | null;
}

/** Where a request leaves a field out: the llama.cpp server's sampling defaults. */
export const DEFAULT_TEMPERATURE = 0.8;

/**
 * GenerateOptions for one choice. `maxTokens`: the route's resolved limit (undefined: until the
 * end of generation or a full context); `logprobs`: how many alternatives to report, if any.
 * Choice i > 0 of a seeded request draws with seed + i, so each choice is reproducible alone.
 */
export function generateOptions(
  b: SamplingFields,
  o: { maxTokens?: number; logprobs?: number; choice: number; vocabSize: number; defaults: GenerateOptions },
): GenerateOptions {
  const g: GenerateOptions = { ...o.defaults };
  const set = <K extends keyof GenerateOptions>(k: K, v: GenerateOptions[K] | null | undefined) => {
    if (v !== null && v !== undefined) g[k] = v;
  };
  g.temperature ??= DEFAULT_TEMPERATURE;
  set('temperature', b.temperature);
  set('topP', b.top_p);
  set('topK', b.top_k);
  set('minP', b.min_p);
  set('repeatPenalty', b.repeat_penalty);
  set('presencePenalty', b.presence_penalty);
  set('frequencyPenalty', b.frequency_penalty);
  set('stop', b.stop);
  set('ignoreEog', b.ignore_eos);
  set('maxTokens', o.maxTokens);
  set('logprobs', o.logprobs);
  if (b.seed !== null && b.seed !== undefined) g.seed = b.seed + o.choice;
  else if (g.temperature !== 0) g.seed = randomSeed();
  if (b.logit_bias) {
    const bias: Record<number, number> = {};
    for (const [k, v] of Object.entries(b.logit_bias)) {
      const id = Number(k);
      if (id >= o.vocabSize) throw new ApiError(400, `logit_bias: token ${id} is outside the vocabulary (0..${o.vocabSize - 1})`, { param: 'logit_bias' });
      // OpenAI: -100 bans the token, +100 all but forces it
      bias[id] = v <= -100 ? -Infinity : v;
    }
    g.logitBias = bias;
  }
  Object.assign(g, outputConstraint(b));
  return g;
}

/**
 * The grammar a request's output must follow: response_format (json_object: any JSON object
 * unless llama.cpp's `schema` narrows it; json_schema: its schema), llama.cpp's `json_schema`,
 * or its GBNF `grammar` — one of them.
 */
function outputConstraint(b: SamplingFields): { grammar?: string; jsonSchema?: object } {
  const rf = b.response_format?.type === 'text' ? undefined : b.response_format;
  const given = [rf, b.json_schema, b.grammar].filter((x) => x !== null && x !== undefined);
  if (given.length > 1) throw new ApiError(400, 'give one of response_format, json_schema and grammar', { param: 'response_format' });
  if (rf?.type === 'json_schema') {
    if (!rf.json_schema?.schema) throw new ApiError(400, "response_format json_schema needs json_schema.schema", { param: 'response_format' });
    return { jsonSchema: rf.json_schema.schema };
  }
  if (rf?.type === 'json_object') return { jsonSchema: rf.schema ?? { type: 'object' } };
  if (b.json_schema) return { jsonSchema: b.json_schema };
  if (b.grammar) return { grammar: b.grammar };
  return {};
}

/** A seed for a request that gives none (OpenAI samples differently each time). */
function randomSeed(): number {
  return Math.floor(Math.random() * 0x100000000);
}

export function finishReason(r: FinishReason): 'stop' | 'length' {
  return r === 'eog' || r === 'stop' ? 'stop' : 'length';
}

/** A token's text within a continuation (its leading space kept). */
function pieceText(tok: Tokenizer, id: number): string {
  return tok.decode([id], { stripLeadingSpace: false });
}

/** A token's text for logprobs, and its bytes as OpenAI gives them. */
function tokenText(tok: Tokenizer, id: number): { token: string; bytes: number[] } {
  const token = pieceText(tok, id);
  return { token, bytes: [...Buffer.from(token, 'utf8')] };
}

/** /v1/chat/completions' logprobs.content entries. */
export function chatLogprobs(tok: Tokenizer, lps: LogprobsResult[]) {
  return lps.map((lp) => ({
    ...tokenText(tok, lp.id),
    logprob: lp.logprob,
    top_logprobs: lp.top.map((t) => ({ ...tokenText(tok, t.id), logprob: t.logprob })),
  }));
}

/** /v1/completions' logprobs object, text offsets counted from `offset0`. */
export function completionLogprobs(tok: Tokenizer, lps: LogprobsResult[], offset0: number) {
  const tokens: string[] = [], tokenLogprobs: number[] = [], top: Record<string, number>[] = [], offsets: number[] = [];
  let offset = offset0;
  for (const lp of lps) {
    const t = pieceText(tok, lp.id);
    tokens.push(t);
    tokenLogprobs.push(lp.logprob);
    top.push(Object.fromEntries(lp.top.map((x) => [pieceText(tok, x.id), x.logprob])));
    offsets.push(offset);
    offset += t.length;
  }
  return { tokens, token_logprobs: tokenLogprobs, top_logprobs: top, text_offset: offsets };
}

/** An error with its HTTP status and OpenAI error fields. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fields: { type?: string; code?: string | null; param?: string | null; retryAfter?: number } = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  404: 'not_found_error',
  408: 'timeout_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
  501: 'not_supported_error',
  503: 'unavailable_error',
};

/** Any error as a status and OpenAI's error body (internal errors keep their message out). */
export function errorResponse(e: unknown): { status: number; body: { error: { message: string; type: string; param: string | null; code: string | null } }; retryAfter?: number } {
  let status = 500, message = 'internal server error', code: string | null = null, param: string | null = null, type: string | undefined, retryAfter: number | undefined;
  if (e instanceof ApiError) {
    status = e.status;
    message = e.message;
    code = e.fields.code ?? null;
    param = e.fields.param ?? null;
    type = e.fields.type;
    retryAfter = e.fields.retryAfter;
  } else if (e instanceof QueueFullError) {
    status = 429;
    message = e.message;
    code = 'queue_full';
    retryAfter = 1;
  } else if (e instanceof FuselmError) {
    if (e.code === 'E_CONTEXT_FULL') [status, code] = [400, 'context_length_exceeded'];
    else if (e.code === 'E_INVALID_ARG' || e.code === 'E_TEMPLATE') [status, code] = [400, 'invalid_value'];
    else if (e.code === 'E_ABORTED') [status, code] = [408, 'aborted'];
    else if (e.code === 'E_DISPOSED') [status, code] = [503, 'shutting_down'];
    message = status === 500 ? `${e.code}: ${e.message}` : e.message;
  }
  return { status, body: { error: { message, type: type ?? TYPES[status] ?? 'server_error', param, code } }, ...(retryAfter ? { retryAfter } : {}) };
}
