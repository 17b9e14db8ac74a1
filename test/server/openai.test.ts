/**
 * `fuselm serve` through the official `openai` client on 127.0.0.1, with stories260K: chat and
 * completions, streamed and not, give model.generate's greedy tokens; 16 concurrent greedy
 * requests each give their solo run (continuous batching never changes a result); seeded
 * choices (n) are each their own seeded run; logprobs, usage, tokenize/detokenize and the
 * model list; embeddings from a BERT model equal embed()'s.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { type Model, loadModel } from '../../lib/model/model.js';
import { loadEmbeddingModel } from '../../lib/model/bert.js';
import { ChatTemplate } from '../../lib/chat.js';
import { createServer, type FuselmServer } from '../../lib/server/server.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

const STORIES = 'models/stories260K.gguf';

/** The model's greedy continuations, run before the server takes the model (it holds it while open). */
async function solo(model: Model, prompts: (string | number[])[], maxTokens: number, extra = {}) {
  const out = [];
  for (const p of prompts) out.push(await model.generate(p, { maxTokens, temperature: 0, ...extra }));
  return out;
}

describe('fuselm serve with the openai client', function () {
  this.timeout(120_000);
  let model: Model;
  let server: FuselmServer | undefined;
  let client: OpenAI;

  const PROMPTS = [
    'Once upon a time',
    'Lily and Tom went',
    'The dog',
    'One day, a big red ball',
    'Sam had a toy car. He',
    'The sun was hot and',
    'Mom said',
    'There was a little bird',
    'Ben liked to',
    'A cat sat on',
    'The boy ran to the park and',
    'She looked at the sky',
    'They played all day',
    'Tim was sad because',
    'In the garden',
    'The old man',
  ];
  let expected: { text: string; ids: number[] }[];
  let chatExpected: string;
  let chatPrompt: number[];

  before(async function () {
    requireShared(this, STORIES);
    model = await loadModel(sharedPath(STORIES), { threads: 1 });
    expected = await solo(model, PROMPTS, 24);
    chatPrompt = new ChatTemplate(model.tokenizer).encode([{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me about a cat.' }], { addGenerationPrompt: true });
    chatExpected = (await model.generate(chatPrompt, { maxTokens: 20, temperature: 0 })).text;
    server = createServer(model, { parallel: 16, stepTokens: 32 });
    await server.ready;
    client = new OpenAI({ baseURL: `${await server.listen({ port: 0 })}/v1`, apiKey: 'unused', maxRetries: 0 });
  });

  after(async () => {
    await server?.close();
    await model?.dispose();
  });

  it('a greedy completion equals model.generate, with usage', async () => {
    const r = await client.completions.create({ model: 'x', prompt: PROMPTS[0], max_tokens: 24, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices[0].text, expected[0].text);
    assert.equal(r.choices[0].finish_reason, 'length');
    const promptTokens = model.tokenizer.encode(PROMPTS[0], { addSpecial: true }).length;
    assert.deepEqual({ p: r.usage?.prompt_tokens, c: r.usage?.completion_tokens, t: r.usage?.total_tokens }, { p: promptTokens, c: 24, t: promptTokens + 24 });
  });

  it('a greedy chat completion equals model.generate on the rendered template', async () => {
    const r = await client.chat.completions.create({
      model: 'x',
      messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me about a cat.' }],
      max_completion_tokens: 20,
      temperature: 0,
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, chatExpected);
    assert.equal(r.usage?.prompt_tokens, chatPrompt.length);
  });

  it('a streamed chat completion: role first, one id, the same text, a finish reason, usage last', async () => {
    const stream = await client.chat.completions.create({
      model: 'x',
      messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me about a cat.' }],
      max_tokens: 20,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
    assert.equal(text, chatExpected);
    const finishes = chunks.flatMap((c) => c.choices.filter((ch) => ch.finish_reason));
    assert.deepEqual(finishes.map((f) => f.finish_reason), ['length']);
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage?.completion_tokens, 20);
  });

  it('a streamed completion gives the same text as the solo run', async () => {
    const stream = await client.completions.create({ model: 'x', prompt: PROMPTS[1], max_tokens: 24, temperature: 0, stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.text ?? '';
    assert.equal(text, expected[1].text);
  });

  it('16 concurrent greedy requests each equal their solo run', async () => {
    const rs = await Promise.all(PROMPTS.map((p, i) =>
      i % 2
        ? client.completions.create({ model: 'x', prompt: p, max_tokens: 24, temperature: 0 }).then((r) => r.choices[0].text)
        : (async () => {
            let t = '';
            for await (const c of await client.completions.create({ model: 'x', prompt: p, max_tokens: 24, temperature: 0, stream: true })) t += c.choices[0]?.text ?? '';
            return t;
          })(),
    ));
    rs.forEach((t, i) => assert.equal(t, expected[i].text, `request ${i} (${PROMPTS[i]})`));
  });

  it('token-id prompts, several prompts in one request, and a cached prefix give the same tokens', async () => {
    const ids = [2, 3].map((i) => model.tokenizer.encode(PROMPTS[i], { addSpecial: true }));
    const r = await client.completions.create({ model: 'x', prompt: ids, max_tokens: 24, temperature: 0 });
    assert.deepEqual(r.choices.map((c) => [c.index, c.text]), [[0, expected[2].text], [1, expected[3].text]]);
    const texts = await client.completions.create({ model: 'x', prompt: [PROMPTS[5], PROMPTS[6]], max_tokens: 24, temperature: 0 });
    assert.deepEqual(texts.choices.map((c) => c.text), [expected[5].text, expected[6].text]);
    // the same prompt again: its prefix is in a slot's cache now
    const again = await client.completions.create({ model: 'x', prompt: PROMPTS[3], max_tokens: 24, temperature: 0 });
    assert.equal(again.choices[0].text, expected[3].text);
    assert.ok((again.usage as { prompt_tokens_details?: { cached_tokens: number } }).prompt_tokens_details!.cached_tokens > 0, 'the prefix was reused');
  });

  it('seeded sampling: choice i of n is the run seeded with seed + i; the same request again gives the same choices', async () => {
    const body = { model: 'x', prompt: PROMPTS[4], max_tokens: 16, temperature: 1, top_k: 0, top_p: 1, min_p: 0, seed: 7, n: 3 };
    const a = await client.completions.create(body);
    const b = await client.completions.create(body);
    assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
    assert.equal(new Set(a.choices.map((c) => c.text)).size > 1, true, 'different seeds give different draws');
    const one = await client.completions.create({ ...body, n: 1, seed: 9 });
    assert.equal(one.choices[0].text, a.choices[2].text);
    assert.equal(a.usage?.completion_tokens, 48);
  });

  it('logprobs: chat content entries with top_logprobs, completions tokens and offsets', async () => {
    const r = await client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3 });
    const lp = r.choices[0].logprobs!.content!;
    assert.equal(lp.length, 4);
    for (const e of lp) {
      assert.equal(e.top_logprobs.length, 3);
      assert.ok(e.logprob <= 0);
      // greedy: the chosen token is the most likely one
      assert.equal(e.logprob, e.top_logprobs[0].logprob);
      assert.deepEqual(e.bytes, [...Buffer.from(e.token)]);
    }
    const c = await client.completions.create({ model: 'x', prompt: PROMPTS[0], max_tokens: 5, temperature: 0, logprobs: 2 });
    const l = c.choices[0].logprobs!;
    assert.equal(l.tokens!.join(''), c.choices[0].text);
    assert.deepEqual(l.text_offset, l.tokens!.map((_, i) => l.tokens!.slice(0, i).join('').length));
    assert.equal(Object.keys(l.top_logprobs![0]).length, 2);
  });

  it('stop strings, logit_bias and max_tokens 0', async () => {
    const full = expected[0].text;
    const cut = full.indexOf(' girl');
    assert.ok(cut > 0);
    const r = await client.completions.create({ model: 'x', prompt: PROMPTS[0], max_tokens: 24, temperature: 0, stop: [' girl'] });
    assert.equal(r.choices[0].text, full.slice(0, cut));
    assert.equal(r.choices[0].finish_reason, 'stop');
    const first = expected[0].ids[0];
    const banned = await client.completions.create({ model: 'x', prompt: PROMPTS[0], max_tokens: 1, temperature: 0, logprobs: 0, logit_bias: { [first]: -100 } });
    assert.notEqual(banned.choices[0].logprobs!.tokens![0], model.tokenizer.decode([first]));
    const none = await client.completions.create({ model: 'x', prompt: PROMPTS[0], max_tokens: 0 });
    assert.equal(none.choices[0].text, '');
    assert.equal(none.usage?.completion_tokens, 0);
  });

  it('structured output: response_format json_schema and json_object, llama.cpp\'s grammar, streamed too; bad ones are 400 before a stream', async () => {
    const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 } }, required: ['name', 'age'], additionalProperties: false };
    for (let seed = 1; seed <= 4; seed++) {
      const r = await client.chat.completions.create({
        model: 'x', messages: [{ role: 'user', content: 'Who is Tom?' }], temperature: 1, seed, max_completion_tokens: 200,
        response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } },
      });
      assert.equal(r.choices[0].finish_reason, 'stop');
      const v = JSON.parse(r.choices[0].message.content!);
      assert.deepEqual(Object.keys(v), ['name', 'age']);
      assert.ok(typeof v.name === 'string' && v.name.length <= 12 && Number.isInteger(v.age) && v.age >= 0 && v.age <= 120, JSON.stringify(v));
    }
    // json_object: any object (unbounded, so a cut one is a prefix of an object), or llama.cpp's schema narrowing it
    const any = await client.completions.create({ model: 'x', prompt: 'Data:', temperature: 1, seed: 7, max_tokens: 48, response_format: { type: 'json_object' } } as never);
    assert.match(any.choices[0].text, /^\s*\{/);
    if (any.choices[0].finish_reason === 'stop') assert.equal(typeof JSON.parse(any.choices[0].text), 'object');
    const obj = await client.completions.create({ model: 'x', prompt: 'Data:', temperature: 1, seed: 7, max_tokens: 200, response_format: { type: 'json_object', schema } } as never);
    assert.deepEqual(Object.keys(JSON.parse(obj.choices[0].text)), ['name', 'age']);
    const stream = await client.completions.create({ model: 'x', prompt: 'The answer is', temperature: 1, seed: 3, max_tokens: 8, stream: true, grammar: 'root ::= ("yes" | "no") "."' } as never);
    let text = '';
    for await (const c of stream as unknown as AsyncIterable<{ choices: { text: string }[] }>) text += c.choices[0]?.text ?? '';
    assert.match(text.trim(), /^(yes|no)\.$/);
    const base = client.baseURL.replace(/\/v1$/, '');
    for (const [body, code, pattern] of [
      [{ grammar: 'root ::= "a" (' }, 'invalid_value', /line 1/],
      [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', not: {} } } } }, 'unsupported_value', /the keyword not/],
      [{ grammar: 'root ::= "a"', json_schema: { type: 'object' } }, null, /one of response_format, json_schema and grammar/],
    ] as const) {
      const res = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', stream: true, ...body }) });
      assert.equal(res.status, 400, JSON.stringify(body));
      const e = (await res.json()) as { error: { message: string; code: string | null } };
      assert.match(e.error.message, pattern);
      assert.equal(e.error.code, code);
    }
  });

  it('models, tokenize and detokenize', async () => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['stories260K.gguf']);
    assert.equal((await client.models.retrieve('stories260K.gguf')).id, 'stories260K.gguf');
    await assert.rejects(client.models.retrieve('gpt-4'), { status: 404 });
    const base = client.baseURL.replace(/\/v1$/, '');
    const t = await (await fetch(`${base}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ content: 'Once upon a time' }) })).json() as { tokens: number[] };
    assert.deepEqual(t.tokens, model.tokenizer.encode('Once upon a time'));
    const d = await (await fetch(`${base}/detokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tokens: t.tokens }) })).json() as { content: string };
    assert.equal(d.content, model.tokenizer.decode(t.tokens));
  });

  it('embeddings on a decoder server are a 501 in OpenAI\'s error shape', async () => {
    await assert.rejects(client.embeddings.create({ model: 'x', input: 'hi' }), (e: InstanceType<typeof OpenAI.APIError>) => {
      assert.equal(e.status, 501);
      assert.equal((e.error as { type: string }).type, 'not_supported_error');
      return true;
    });
  });
});

describe('fuselm serve embeddings with the openai client', function () {
  this.timeout(60_000);
  it('a BERT model: /v1/embeddings (float and base64) equals embed()', async function () {
    requireShared(this, 'models/hf/lm-buddy-bert-tiniest/tokenizer.json');
    await using m = await loadEmbeddingModel(sharedPath('models/hf/lm-buddy-bert-tiniest'), { threads: 1 });
    const want = await m.embed(['a sentence', 'another one']);
    const server = createServer(m);
    try {
      await server.ready;
      const client = new OpenAI({ baseURL: `${await server.listen({ port: 0 })}/v1`, apiKey: 'unused', maxRetries: 0 });
      // the client asks for base64 unless told otherwise, and decodes it
      for (const encoding_format of [undefined, 'float'] as const) {
        const r = await client.embeddings.create({ model: 'x', input: ['a sentence', 'another one'], ...(encoding_format ? { encoding_format } : {}) });
        assert.equal(r.data.length, 2);
        r.data.forEach((d, i) => assert.deepEqual(Float32Array.from(d.embedding), want[i]));
        assert.ok(r.usage.prompt_tokens > 0);
      }
      await assert.rejects(client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }), { status: 501 });
    } finally {
      await server.close();
    }
  });
});
