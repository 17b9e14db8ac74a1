/**
 * createServer(): an OpenAI-compatible HTTP server on fastify. Routes:
 *   POST /v1/chat/completions, /v1/completions   (SSE streaming or one JSON body)
 *   POST /v1/embeddings                          (an embedding model)
 *   GET  /v1/models[/:id], POST /tokenize, /detokenize (llama.cpp's server's shapes)
 *   GET  /health (503 while loading or draining, 200 ready; public with API keys), GET /metrics
 * Decoder requests go through the Scheduler (continuous batching over the model's slots); bodies
 * are validated against lib/server/schemas.ts; every error is OpenAI's error body.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { basename } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ChatTemplate, type ChatMessage } from '../chat.js';
import { checkToolOptions, surelyContent, type ToolCall, type ToolChoice, type ToolDefinition, type ToolFamily, toolGrammar, toolReply } from '../chat-tools.js';
import { FuselmError } from '../errors.js';
import { generationDefaults, type GenerateOptions, type StreamChunk } from '../generate.js';
import type { EmbeddingModel } from '../model/bert.js';
import { prepareGrammar } from '../grammar/constraint.js';
import type { Model } from '../model/model.js';
import { EncoderDecoderModel } from '../model/encoder-decoder.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { ServerMetrics } from './metrics.js';
import { ApiError, chatLogprobs, completionLogprobs, errorResponse, finishReason, generateOptions, type SamplingFields } from './openai.js';
import { Scheduler, type SequenceResult } from './scheduler.js';
import { Seq2SeqQueue } from './seq2seq-queue.js';
import { chatCompletionBody, completionBody, detokenizeBody, embeddingBody, loraAdaptersBody, tokenizeBody } from './schemas.js';
import type { LoraAdapter } from '../model/lora.js';

export interface ServerOptions {
  /** Sequences decoded together (KV cache slots of the model's contextSize each). Default 4. */
  parallel?: number;
  /**
   * Most prompt tokens evaluated per scheduler step, over all sequences (each step's forward
   * also takes one token of every running sequence: a larger budget fills the batch sooner, a
   * smaller one keeps the running sequences' inter-token latency lower). Default 256 (at most
   * the model's batchSize).
   */
  stepTokens?: number;
  /**
   * Blocks of KV_BLOCK_SIZE positions in the paged KV cache's pool, shared by the slots (at
   * least one context's worth). Default: every slot's whole context. Fewer: a slot takes blocks
   * as its sequence grows, and when none is left the newest sequence waits and is recomputed.
   */
  kvBlocks?: number;
  /** Most sequences waiting for a slot; past it a request is a 429 with Retry-After. Default 64. */
  maxQueue?: number;
  /** Largest request body in bytes (413 past it). Default 4 MiB. */
  bodyLimit?: number;
  /** A request running longer (ms) ends with a 408 (streams: an error event). Default 600000. */
  requestTimeout?: number;
  /** Bearer keys the API routes take (401 without one); /health stays public. Default: none, open. */
  apiKeys?: string[];
  /** Origins allowed cross-origin requests ('*' for any). Default: none (CORS off). */
  cors?: string[];
  /** The model's id in /v1/models and responses. Default: the model file's name. */
  modelName?: string;
  /** A Jinja chat template over the model's own. */
  chatTemplate?: string;
  /** How long close() lets running requests finish (ms) before it aborts them. Default 30000. */
  drainTimeout?: number;
  /** Fastify's logger (pino options or true). Default off. */
  logger?: boolean | object;
  /**
   * LoRA adapters (PEFT folders or GGUF adapters) loaded with the model, ids 0.. in this order,
   * applied at scale 1 to requests without a `lora` field (POST /lora-adapters changes that).
   */
  lora?: string[];
}

export interface FuselmServer {
  /** The fastify instance (for inject() in tests, or more routes). */
  readonly app: FastifyInstance;
  readonly metrics: ServerMetrics;
  /** Resolves once the model is loaded and the slots are open (rejects if loading failed). */
  readonly ready: Promise<void>;
  /** Listens on host:port (default 127.0.0.1:8080; port 0 picks one); resolves with the address as a URL. */
  listen(o?: { host?: string; port?: number }): Promise<string>;
  /**
   * Stops accepting requests (health turns 503), lets running ones finish within drainTimeout,
   * aborts the rest, and frees the slots. The model stays the caller's to dispose.
   */
  close(): Promise<void>;
}

interface ChatBody extends SamplingFields {
  messages: {
    role: string;
    content?: string | { type: string; text?: string }[] | null;
    name?: string;
    tool_calls?: { id?: string; function: { name: string; arguments: string } }[] | null;
    tool_call_id?: string;
  }[];
  tools?: ToolDefinition[] | null;
  tool_choice?: ToolChoice | null;
  parallel_tool_calls?: boolean | null;
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
}

interface CompletionBody extends SamplingFields {
  prompt: string | string[] | number[] | number[][];
  logprobs?: number | null;
  echo?: boolean | null;
}

/** An adapter `lora` loaded, and its scale for requests that do not say. */
type ServedAdapter = { adapter: LoraAdapter; path: string; scale: number };
/** A decoder-only model on the continuous-batching Scheduler, or an encoder-decoder (prompt = encoder input) on a Seq2SeqQueue. */
type Decoder = {
  kind: 'decoder';
  model: Model | EncoderDecoderModel;
  scheduler: Scheduler | Seq2SeqQueue;
  /** None: an encoder-decoder without a chat template (chat requests are a 400). */
  template: ChatTemplate | undefined;
  defaults: GenerateOptions;
  loras: ServedAdapter[];
};
type Embedder = { kind: 'embedder'; model: EmbeddingModel };

const DEFAULT_STEP_TOKENS = 256;
/** Positions per block of the paged KV cache. */
export const KV_BLOCK_SIZE = 16;

/** OpenAI's default max_tokens of /v1/completions (chat has none: until the end or a full context). */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

function isEmbeddingModel(m: Model | EmbeddingModel): m is EmbeddingModel {
  return typeof (m as EmbeddingModel).embed === 'function';
}

export function createServer(model: Model | EmbeddingModel | Promise<Model | EmbeddingModel>, opts: ServerOptions = {}): FuselmServer {
  const parallel = opts.parallel ?? 4;
  const requestTimeout = opts.requestTimeout ?? 600_000;
  const drainTimeout = opts.drainTimeout ?? 30_000;
  if (!(Number.isInteger(parallel) && parallel >= 1 && parallel <= 256)) throw new FuselmError('E_INVALID_ARG', `parallel must be an integer in 1..256, got ${parallel}`);
  const keys = (opts.apiKeys ?? []).map((k) => Buffer.from(k));
  if (keys.some((k) => k.length === 0)) throw new FuselmError('E_INVALID_ARG', 'apiKeys must be non-empty strings');

  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.bodyLimit ?? 4 << 20,
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });
  let core: Decoder | Embedder | undefined;
  let metrics: ServerMetrics = new ServerMetrics(0);
  let closing = false;
  let modelName = opts.modelName ?? 'fuselm';

  const ready = (async () => {
    const m = await model;
    modelName = opts.modelName ?? basename(m.path);
    if (isEmbeddingModel(m)) {
      core = { kind: 'embedder', model: m };
      return;
    }
    // loadModel types an encoder-decoder as a Model
    if ((m as unknown) instanceof EncoderDecoderModel) {
      const e = m as unknown as EncoderDecoderModel;
      if (opts.lora?.length) throw new FuselmError('E_UNSUPPORTED', `LoRA adapters are not supported on an encoder-decoder model (${e.config.architecture})`);
      metrics = new ServerMetrics(0);
      const scheduler = new Seq2SeqQueue(e, { parallel, maxQueue: opts.maxQueue ?? 64 }, metrics.events());
      const template = opts.chatTemplate !== undefined || e.tokenizer.chatTemplate !== undefined ? new ChatTemplate(e.tokenizer, { template: opts.chatTemplate }) : undefined;
      core = { kind: 'decoder', model: e, scheduler, template, defaults: generationDefaults(e.generationConfig), loras: [] };
      return;
    }
    const loras: ServedAdapter[] = [];
    for (const p of opts.lora ?? []) loras.push({ adapter: await m.loadAdapter(p), path: p, scale: 1 });
    const perContext = Math.ceil(m.contextSize / KV_BLOCK_SIZE);
    const blocks = opts.kvBlocks ?? parallel * perContext;
    if (!(Number.isInteger(blocks) && blocks >= perContext))
      throw new FuselmError('E_INVALID_ARG', `kvBlocks must be an integer >= ${perContext} (one context of ${m.contextSize} positions), got ${blocks}`);
    const slots = await m.openSlots(parallel, { paged: { blockSize: KV_BLOCK_SIZE, blocks } });
    const cap = slots.size * slots.contextSize;
    metrics = new ServerMetrics(cap, blocks);
    const scheduler = new Scheduler(slots, m.tokenizer, { maxQueue: opts.maxQueue ?? 64, stepTokens: opts.stepTokens ?? Math.min(DEFAULT_STEP_TOKENS, m.batchSize) }, metrics.events());
    const template = new ChatTemplate(m.tokenizer, { template: opts.chatTemplate });
    core = { kind: 'decoder', model: m, scheduler, template, defaults: generationDefaults(m.generationConfig), loras };
  })();
  ready.catch(() => {});

  const sendError = (reply: FastifyReply, e: unknown) => {
    const r = errorResponse(e);
    if (r.retryAfter) reply.header('retry-after', String(r.retryAfter));
    return reply.code(r.status).send(r.body);
  };

  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number; validationContext?: string }, _req, reply) => {
    if (err.validation) return sendError(reply, new ApiError(400, err.message, { param: paramOf(err.validation) }));
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
      return sendError(reply, new ApiError(err.statusCode, err.message, { code: (err as { code?: string }).code ?? null }));
    return sendError(reply, err);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, new ApiError(404, `no route ${req.method} ${req.url.split('?')[0]}`, { code: 'not_found' })));

  // CORS (off unless origins are given) and API keys
  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (opts.cors?.length && origin && (opts.cors.includes('*') || opts.cors.includes(origin))) {
      reply.raw.setHeader('access-control-allow-origin', opts.cors.includes('*') ? '*' : origin);
      reply.raw.setHeader('vary', 'Origin');
      if (req.method === 'OPTIONS') {
        reply.raw.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
        reply.raw.setHeader('access-control-allow-headers', 'authorization, content-type');
        return reply.code(204).send();
      }
    }
    if (!keys.length || req.url === '/health' || req.url.startsWith('/health?')) return;
    const auth = req.headers.authorization;
    const given = auth?.startsWith('Bearer ') ? Buffer.from(auth.slice(7).trim()) : undefined;
    if (!given || !keys.some((k) => k.length === given.length && timingSafeEqual(k, given)))
      return sendError(reply, new ApiError(401, 'invalid or missing API key (Authorization: Bearer KEY)', { code: 'invalid_api_key' }));
  });

  const decoder = (): Decoder => {
    if (closing) throw new ApiError(503, 'the server is shutting down', { code: 'shutting_down' });
    if (!core) throw new ApiError(503, 'the model is loading', { code: 'loading' });
    if (core.kind !== 'decoder') throw new ApiError(501, 'this server runs an embedding model: it has no completions', { code: 'not_supported' });
    return core;
  };

  app.get('/health', async (_req, reply) => {
    if (closing) return reply.code(503).send({ status: 'shutting down' });
    if (!core) return reply.code(503).send({ status: 'loading' });
    return { status: 'ok' };
  });

  app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));

  const modelEntry = () => ({ id: modelName, object: 'model', created: 0, owned_by: 'fuselm' });
  app.get('/v1/models', async () => ({ object: 'list', data: [modelEntry()] }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (req) => {
    if (req.params.id !== modelName) throw new ApiError(404, `no model ${JSON.stringify(req.params.id).slice(0, 80)}; this server has ${JSON.stringify(modelName)}`, { code: 'model_not_found', param: 'model' });
    return modelEntry();
  });

  app.post<{ Body: { content: string; add_special?: boolean; with_pieces?: boolean } }>('/tokenize', { schema: { body: tokenizeBody } }, async (req) => {
    const tok = tokenizerOf();
    const b = req.body;
    const ids = tok.encodeAsync ? await tok.encodeAsync(b.content, { addSpecial: b.add_special ?? false }) : tok.encode(b.content, { addSpecial: b.add_special ?? false });
    return { tokens: b.with_pieces ? ids.map((id) => ({ id, piece: tok.decode([id]) })) : ids };
  });

  app.post<{ Body: { tokens: number[] } }>('/detokenize', { schema: { body: detokenizeBody } }, async (req) => {
    const tok = tokenizerOf();
    for (const id of req.body.tokens) if (id >= tok.vocabSize) throw new ApiError(400, `token ${id} is outside the vocabulary (0..${tok.vocabSize - 1})`, { param: 'tokens' });
    return { content: tok.decode(req.body.tokens) };
  });

  function tokenizerOf(): Tokenizer {
    if (!core) throw new ApiError(503, 'the model is loading', { code: 'loading' });
    const tok = core.model.tokenizer;
    if (!tok) throw new ApiError(501, 'the model has no tokenizer', { code: 'not_supported' });
    return tok;
  }

  app.post<{ Body: { input: string | string[]; encoding_format?: 'float' | 'base64' } }>('/v1/embeddings', { schema: { body: embeddingBody } }, async (req) => {
    if (!core) throw new ApiError(503, 'the model is loading', { code: 'loading' });
    if (core.kind !== 'embedder') throw new ApiError(501, 'this server runs a decoder: embeddings need an embedding model (fuselm serve -m a BERT model)', { code: 'not_supported' });
    const m = core.model;
    const texts = typeof req.body.input === 'string' ? [req.body.input] : req.body.input;
    const tok = m.tokenizer!;
    let tokens = 0;
    for (const [i, t] of texts.entries()) {
      const n = tok.encode(t, { addSpecial: true }).length;
      if (n > m.maxTokens) throw new ApiError(400, `input[${i}] has ${n} tokens; the model takes at most ${m.maxTokens}`, { code: 'context_length_exceeded', param: 'input' });
      tokens += n;
    }
    const vecs = await m.embed(texts);
    const base64 = req.body.encoding_format === 'base64';
    return {
      object: 'list',
      data: vecs.map((v, index) => ({ object: 'embedding', index, embedding: base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v) })),
      model: modelName,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  });

  // llama.cpp's server: the adapters `serve --lora` loaded, and their scales for requests without `lora`
  app.get('/lora-adapters', async () => decoder().loras.map((l, id) => ({ id, path: l.path, scale: l.scale })));
  app.post<{ Body: { id: number; scale: number }[] }>('/lora-adapters', { schema: { body: loraAdaptersBody } }, async (req) => {
    const d = decoder();
    const scales = loraScales(d, req.body);
    d.loras.forEach((l, i) => (l.scale = scales[i]));
    return d.loras.map((l, id) => ({ id, path: l.path, scale: l.scale }));
  });

  app.post<{ Body: ChatBody }>('/v1/chat/completions', { schema: { body: chatCompletionBody } }, async (req, reply) => {
    const d = decoder();
    const template = d.template;
    if (!template) throw new ApiError(400, `this server runs an encoder-decoder model (${(d.model as EncoderDecoderModel).config.architecture}) without a chat template: use /v1/completions (the prompt is the encoder's input), or start it with a chat template`, { code: 'no_chat_template', param: 'messages' });
    const b = req.body;
    const messages: ChatMessage[] = b.messages.map((m) => ({
      role: m.role === 'developer' ? 'system' : m.role,
      content: contentText(m.content),
      ...(m.tool_calls?.length ? { toolCalls: m.tool_calls.map((c, i) => ({ id: c.id ?? `call_${i}`, type: 'function' as const, function: c.function })) } : {}),
      ...(m.tool_call_id !== undefined ? { toolCallId: m.tool_call_id } : {}),
      ...(m.name !== undefined && m.role === 'tool' ? { name: m.name } : {}),
    }));
    const tools = toolRequest(b, template.toolFamily);
    const prompt = await template.encodeAsync(messages, { addGenerationPrompt: true, tools: tools.tools });
    const max = b.max_completion_tokens ?? b.max_tokens ?? undefined;
    return runCompletion(d, req, reply, {
      chat: true,
      tools: tools.grammar === undefined ? undefined : { grammar: tools.grammar, family: template.toolFamily },
      prompts: [prompt],
      b,
      maxTokens: max,
      logprobs: b.logprobs ? (b.top_logprobs ?? 0) : undefined,
    });
  });

  app.post<{ Body: CompletionBody }>('/v1/completions', { schema: { body: completionBody } }, async (req, reply) => {
    const d = decoder();
    const b = req.body;
    const tok = d.model.tokenizer;
    const list: (string | number[])[] = typeof b.prompt === 'string' ? [b.prompt] : typeof b.prompt[0] === 'number' ? [b.prompt as number[]] : (b.prompt as (string | number[])[]);
    const prompts: number[][] = [];
    for (const p of list) {
      if (typeof p !== 'string') {
        for (const id of p) if (id >= d.model.config.vocabSize) throw new ApiError(400, `prompt token ${id} is outside the vocabulary (0..${d.model.config.vocabSize - 1})`, { param: 'prompt' });
        prompts.push(p);
      } else prompts.push(tok.encodeAsync ? await tok.encodeAsync(p, { addSpecial: true }) : tok.encode(p, { addSpecial: true }));
    }
    return runCompletion(d, req, reply, {
      chat: false,
      prompts,
      echo: b.echo ? list.map((p) => (typeof p === 'string' ? p : tok.decode(p))) : undefined,
      b,
      maxTokens: b.max_tokens ?? COMPLETION_DEFAULT_MAX_TOKENS,
      logprobs: b.logprobs ?? undefined,
    });
  });

  /**
   * Runs every choice of a completion request through the scheduler: n choices per prompt
   * (choice index = prompt * n + j), streamed as SSE chunks or answered as one body.
   */
  async function runCompletion(
    d: Decoder,
    req: FastifyRequest,
    reply: FastifyReply,
    k: { chat: boolean; tools?: { grammar: string; family: ToolFamily }; prompts: number[][]; echo?: string[]; b: SamplingFields; maxTokens?: number; logprobs?: number },
  ) {
    const ctx = d.scheduler.contextSize;
    k.prompts.forEach((p, i) => {
      if (p.length === 0) throw new ApiError(400, `prompt ${i} is empty`, { param: 'prompt' });
      if (p.length > ctx)
        throw new ApiError(400, `the prompt has ${p.length} tokens but the context holds ${ctx}`, { code: 'context_length_exceeded', param: k.chat ? 'messages' : 'prompt' });
    });
    const n = k.b.n ?? 1;
    const options = k.prompts.flatMap((_, i) =>
      Array.from({ length: n }, (_, j) => generateOptions(k.b, { maxTokens: k.maxTokens, logprobs: k.logprobs, choice: i * n + j, vocabSize: d.model.config.vocabSize, defaults: d.defaults })),
    );
    if (k.tools) {
      if (options[0].grammar !== undefined || options[0].jsonSchema !== undefined)
        throw new ApiError(400, "give tools or one of response_format, json_schema and grammar, not both (or tool_choice 'none')", { param: 'tools' });
      for (const o of options) o.grammar = k.tools.grammar;
    }
    // the request's adapters, else the server's scales
    const scales = k.b.lora ? loraScales(d, k.b.lora) : d.loras.map((l) => l.scale);
    const adapters = d.loras.flatMap((l, i) => (scales[i] ? [{ adapter: l.adapter, scale: scales[i] }] : []));
    if (adapters.length) for (const o of options) o.adapters = adapters;
    await checkOutputConstraint(d.model.tokenizer, options[0], k.tools ? 'tools' : undefined);
    if (!d.scheduler.canAccept(options.length)) throw new ApiError(429, `the server is busy: ${d.scheduler.waiting} requests are waiting`, { code: 'queue_full', retryAfter: 1 });

    const id = `${k.chat ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const object = k.chat ? 'chat.completion' : 'text_completion';
    const tok = d.model.tokenizer;
    // the client going away (its connection closed before the answer) or the timeout ends every choice
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort(new Error('request timeout'));
    }, requestTimeout);
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) ac.abort(new Error('client disconnected'));
    });
    const stream = k.b.stream === true;
    const includeUsage = stream && k.b.stream_options?.include_usage === true;
    const send = (chunk: object) => {
      if (!reply.raw.writableEnded) reply.raw.write(`data: ${JSON.stringify(includeUsage ? { ...chunk, usage: null } : chunk)}\n\n`);
    };
    const frame = (choices: object[]) => ({ id, object: k.chat ? 'chat.completion.chunk' : 'text_completion', created, model: modelName, system_fingerprint: 'fuselm', choices });
    const offsets = options.map((_, c) => k.echo?.[Math.floor(c / n)].length ?? 0);
    if (stream) {
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      // each choice opens with the assistant's role (chat) or the echoed prompt (completions)
      options.forEach((_, c) => {
        if (k.chat) send(frame([{ index: c, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
        else if (k.echo) send(frame([{ index: c, text: k.echo[Math.floor(c / n)], logprobs: null, finish_reason: null }]));
      });
    }
    // with tools, the reply so far; what may still turn out to be tool calls is held back until it is known
    const held = options.map(() => (k.tools ? { text: '', sent: 0, logprobs: [] as NonNullable<StreamChunk['logprobs']>[] } : undefined));
    const sendContent = (c: number, text: string, logprobs: NonNullable<StreamChunk['logprobs']>[]) => {
      const lp = logprobs.length ? (k.chat ? { content: chatLogprobs(tok, logprobs) } : completionLogprobs(tok, logprobs, offsets[c])) : null;
      offsets[c] += text.length;
      send(frame([k.chat ? { index: c, delta: { content: text }, logprobs: lp, finish_reason: null } : { index: c, text, logprobs: lp, finish_reason: null }]));
    };
    // the held reply's content from what was sent up to `end` (the logprobs so far go with it)
    const release = (c: number, end: number) => {
      const h = held[c]!;
      if (end <= h.sent) return;
      sendContent(c, h.text.slice(h.sent, end), h.logprobs.splice(0));
      h.sent = end;
    };
    const onChunk = (c: number) => (ch: StreamChunk) => {
      if (!stream || (!ch.text && !ch.logprobs)) return;
      const h = held[c];
      if (!h) return sendContent(c, ch.text, ch.logprobs ? [ch.logprobs] : []);
      h.text += ch.text;
      if (ch.logprobs) h.logprobs.push(ch.logprobs);
      release(c, surelyContent(h.text, k.tools!.family));
    };
    const calls: (ToolCall[] | undefined)[] = [];
    const contents: string[] = [];
    const finish = (c: number, r: SequenceResult) => (calls[c] ? 'tool_calls' : finishReason(r.finishReason));
    try {
      const results: SequenceResult[] = await Promise.all(
        options.map((o, c) =>
          d.scheduler.submit(k.prompts[Math.floor(c / n)], o, { signal: ac.signal, onChunk: onChunk(c) }).then((r) => {
            const split = k.tools ? toolReply(r.text, k.tools.family) : { content: r.text };
            calls[c] = split.toolCalls;
            contents[c] = split.content;
            if (stream) {
              if (held[c]) release(c, split.content.length);
              if (calls[c]) send(frame([{ index: c, delta: { tool_calls: calls[c]!.map((t, i) => ({ index: i, ...t })) }, logprobs: null, finish_reason: null }]));
              send(frame([k.chat ? { index: c, delta: {}, logprobs: null, finish_reason: finish(c, r) } : { index: c, text: '', logprobs: null, finish_reason: finish(c, r) }]));
            }
            return r;
          }),
        ),
      );
      const usage = usageOf(k.prompts, results);
      if (stream) {
        if (includeUsage) reply.raw.write(`data: ${JSON.stringify({ ...frame([]), usage })}\n\n`);
        reply.raw.end('data: [DONE]\n\n');
        return reply;
      }
      const choices = results.map((r, c) => {
        const lp = r.logprobs && k.logprobs !== undefined ? r.logprobs : undefined;
        if (k.chat) {
          const message = calls[c] ? { role: 'assistant', content: contents[c] || null, refusal: null, tool_calls: calls[c] } : { role: 'assistant', content: r.text, refusal: null };
          return { index: c, message, logprobs: lp ? { content: chatLogprobs(tok, lp) } : null, finish_reason: finish(c, r) };
        }
        const echo = k.echo?.[Math.floor(c / n)] ?? '';
        return { index: c, text: echo + r.text, logprobs: lp ? completionLogprobs(tok, lp, echo.length) : null, finish_reason: finishReason(r.finishReason) };
      });
      return { id, object, created, model: modelName, system_fingerprint: 'fuselm', choices, usage };
    } catch (e) {
      ac.abort(e);
      const err = timedOut
        ? new ApiError(408, `the request ran past its ${requestTimeout} ms`, { code: 'timeout' })
        : closing && e instanceof FuselmError && e.code === 'E_ABORTED'
          ? new ApiError(503, 'the server is shutting down', { code: 'shutting_down' })
          : e;
      if (!stream) throw err;
      // headers are sent: the error goes as an event, as OpenAI's streams carry them
      if (!reply.raw.writableEnded) reply.raw.end(`data: ${JSON.stringify(errorResponse(err).body)}\n\n`);
      return reply;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    app,
    get metrics() {
      return metrics;
    },
    ready,
    async listen(o = {}) {
      return app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 8080 });
    },
    async close() {
      closing = true;
      const sched = core?.kind === 'decoder' ? core.scheduler : undefined;
      const timer = setTimeout(() => sched?.abortAll('the server is shutting down'), drainTimeout);
      // keep-alive connections go idle as their requests finish: close them then, not after
      // the keep-alive timeout (fastify's close() only closes those idle when it starts)
      const idle = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        await app.close();
        await ready.catch(() => {});
        if (core?.kind === 'decoder') await core.scheduler.close();
      } finally {
        clearTimeout(timer);
        clearInterval(idle);
      }
    },
  };
}

/** Usage as OpenAI counts it: each prompt once (whatever n), every choice's tokens. */
function usageOf(prompts: number[][], results: SequenceResult[]) {
  const prompt = prompts.reduce((s, p) => s + p.length, 0);
  const completion = results.reduce((s, r) => s + r.ids.length, 0);
  const n = results.length / prompts.length;
  const cached = results.filter((_, c) => c % n === 0).reduce((s, r) => s + r.cachedTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
}

/** A message's text: a string, or its text parts joined (other parts are refused). */
function contentText(c: string | { type: string; text?: string }[] | null | undefined): string {
  if (typeof c === 'string') return c;
  if (!c) return '';
  return c
    .map((p, i) => {
      if (p.type !== 'text' || typeof p.text !== 'string') throw new ApiError(400, `content part ${i}: only { type: 'text', text } parts are supported, got type ${JSON.stringify(p.type).slice(0, 40)}`, { param: 'messages' });
      return p.text;
    })
    .join('');
}

/** The body field a validation error names (Ajv's instancePath, as a dotted path). */
function paramOf(validation: unknown): string | null {
  const first = Array.isArray(validation) ? (validation[0] as { instancePath?: string; params?: { missingProperty?: string } }) : undefined;
  if (!first) return null;
  const path = (first.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  return first.params?.missingProperty ? [path, first.params.missingProperty].filter(Boolean).join('.') : path || null;
}

/**
 * A request's grammar or JSON Schema compiled (and cached for its sequences), its first mask
 * made off the JS thread (prepareGrammar), before anything is sent: a bad one is a 400 naming
 * the problem, also for a stream.
 */
async function checkOutputConstraint(tok: Tokenizer, o: GenerateOptions, param?: string): Promise<void> {
  try {
    await prepareGrammar(tok, o);
  } catch (e) {
    throw badField(e, param ?? (o.grammar !== undefined ? 'grammar' : 'response_format'));
  }
}

/** A FuselmError of bad input as a 400 naming the field (others as they are). */
function badField(e: unknown, param: string): unknown {
  if (e instanceof FuselmError && (e.code === 'E_INVALID_ARG' || e.code === 'E_UNSUPPORTED'))
    return new ApiError(400, e.message, { code: e.code === 'E_UNSUPPORTED' ? 'unsupported_value' : 'invalid_value', param });
  return e;
}

/** A chat request's tools (checked) and the grammar its reply follows (none: free text). */
function toolRequest(b: ChatBody, family: ToolFamily): { tools?: ToolDefinition[]; grammar?: string } {
  const o = { tools: b.tools ?? undefined, toolChoice: b.tool_choice ?? undefined, parallelToolCalls: b.parallel_tool_calls ?? undefined };
  try {
    const tools = checkToolOptions(o);
    return { tools, grammar: toolGrammar(tools, o, family) };
  } catch (e) {
    throw badField(e, 'tools');
  }
}

/** Each served adapter's scale under a [{ id, scale }] list (unlisted: 0); an unknown id is a 400 naming it. */
function loraScales(d: Decoder, list: { id: number; scale: number }[]): number[] {
  const scales = d.loras.map(() => 0);
  for (const { id, scale } of list) {
    if (id >= d.loras.length) throw new ApiError(400, `lora: no adapter ${id} (the server has ${d.loras.length}: GET /lora-adapters)`, { param: 'lora' });
    scales[id] = scale;
  }
  return scales;
}
