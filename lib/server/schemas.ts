/**
 * JSON schemas of the request bodies, as OpenAI's API reference gives their fields and ranges
 * (plus llama.cpp's server extras: top_k, min_p, repeat_penalty, ignore_eos, grammar, json_schema). Fastify validates
 * every body against them (Ajv, no type coercion) before a handler runs; a body that fails is a
 * 400 naming the field. Fields not listed are ignored, as OpenAI-compatible servers do (clients send more).
 */

const tokenIds = { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1 } as const;
const stop = {
  anyOf: [
    { type: 'string', minLength: 1 },
    { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 16 },
    { type: 'null' },
  ],
} as const;
const nullableNumber = (minimum: number, maximum: number) => ({ type: ['number', 'null'], minimum, maximum }) as const;
const nullableInteger = (minimum: number, maximum: number) => ({ type: ['integer', 'null'], minimum, maximum }) as const;

/** One LoRA adapter of a request (llama.cpp's server): its id in GET /lora-adapters and its scale. */
const loraEntry = {
  type: 'object',
  required: ['id', 'scale'],
  additionalProperties: false,
  properties: { id: { type: 'integer', minimum: 0 }, scale: { type: 'number', minimum: -1e6, maximum: 1e6 } },
} as const;

/** The sampling fields /v1/chat/completions and /v1/completions share. */
const sampling = {
  max_tokens: nullableInteger(0, 1 << 24),
  temperature: nullableNumber(0, 2),
  top_p: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 },
  top_k: nullableInteger(0, 1 << 24),
  min_p: nullableNumber(0, 1),
  repeat_penalty: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 10 },
  presence_penalty: nullableNumber(-2, 2),
  frequency_penalty: nullableNumber(-2, 2),
  seed: { type: ['integer', 'null'] },
  stop,
  n: nullableInteger(1, 16),
  logit_bias: {
    type: ['object', 'null'],
    propertyNames: { pattern: '^[0-9]{1,9}$' },
    additionalProperties: { type: 'number', minimum: -100, maximum: 100 },
  },
  ignore_eos: { type: ['boolean', 'null'] },
  stream: { type: ['boolean', 'null'] },
  stream_options: { type: ['object', 'null'], properties: { include_usage: { type: 'boolean' } } },
  model: { type: 'string' },
  response_format: {
    type: ['object', 'null'],
    required: ['type'],
    properties: {
      type: { type: 'string', enum: ['text', 'json_object', 'json_schema'] },
      json_schema: { type: 'object', properties: { name: { type: 'string' }, schema: { type: 'object' }, strict: { type: ['boolean', 'null'] } } },
      schema: { type: 'object' },
    },
  },
  grammar: { type: ['string', 'null'], minLength: 1 },
  json_schema: { type: ['object', 'null'] },
  lora: { type: ['array', 'null'], maxItems: 256, items: loraEntry },
} as const;

/** POST /lora-adapters: the scales of the adapters `serve --lora` loaded (unlisted: 0), as llama.cpp's server. */
export const loraAdaptersBody = { type: 'array', maxItems: 256, items: loraEntry } as const;

const contentPart = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string' }, text: { type: 'string' } },
} as const;

/** OpenAI's function tool: its name, description and parameters schema (checked further by chat-tools.ts). */
const tool = {
  type: 'object',
  required: ['type', 'function'],
  properties: {
    type: { const: 'function' },
    function: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string' }, description: { type: 'string' }, parameters: { type: 'object' }, strict: { type: ['boolean', 'null'] } },
    },
  },
} as const;

/** An assistant message's tool call, as the client sends it back. */
const toolCall = {
  type: 'object',
  required: ['function'],
  properties: {
    id: { type: 'string' },
    type: { const: 'function' },
    function: { type: 'object', required: ['name', 'arguments'], properties: { name: { type: 'string' }, arguments: { type: 'string' } } },
  },
} as const;

export const chatCompletionBody = {
  type: 'object',
  required: ['messages'],
  properties: {
    ...sampling,
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant', 'tool'] },
          content: { anyOf: [{ type: 'string' }, { type: 'array', items: contentPart }, { type: 'null' }] },
          name: { type: 'string' },
          tool_calls: { type: ['array', 'null'], items: toolCall },
          tool_call_id: { type: 'string' },
        },
      },
    },
    tools: { type: ['array', 'null'], maxItems: 128, items: tool },
    tool_choice: {
      anyOf: [
        { type: 'string', enum: ['auto', 'none', 'required'] },
        { type: 'object', required: ['type', 'function'], properties: { type: { const: 'function' }, function: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } },
        { type: 'null' },
      ],
    },
    parallel_tool_calls: { type: ['boolean', 'null'] },
    max_completion_tokens: nullableInteger(0, 1 << 24),
    logprobs: { type: ['boolean', 'null'] },
    top_logprobs: nullableInteger(0, 20),
  },
} as const;

export const completionBody = {
  type: 'object',
  required: ['prompt'],
  properties: {
    ...sampling,
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', items: { type: 'string' }, minItems: 1 },
        tokenIds,
        { type: 'array', items: tokenIds, minItems: 1 },
      ],
    },
    logprobs: nullableInteger(0, 20),
    echo: { type: ['boolean', 'null'] },
  },
} as const;

export const embeddingBody = {
  type: 'object',
  required: ['input'],
  properties: {
    input: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 2048 }] },
    model: { type: 'string' },
    encoding_format: { type: 'string', enum: ['float', 'base64'] },
  },
} as const;

export const tokenizeBody = {
  type: 'object',
  required: ['content'],
  properties: { content: { type: 'string' }, add_special: { type: 'boolean' }, with_pieces: { type: 'boolean' } },
} as const;

export const detokenizeBody = {
  type: 'object',
  required: ['tokens'],
  properties: { tokens: { type: 'array', items: { type: 'integer', minimum: 0 } } },
} as const;
