/**
 * `fuselm serve` for encoder-decoder models (the tiny T5 and BART oracles of
 * ../shared/models/oracles): /v1/completions takes the prompt as the encoder's input and answers
 * with the decoder's output. Through the official `openai` client and raw HTTP: greedy, streamed
 * and not, equals model.generate for the same input, with usage (prompt_tokens = encoder tokens);
 * 8 concurrent requests (batched 4 at a time) each equal their solo run; seeded choices (n) are
 * each model.generate with seed + i; stop strings cut the text; logprobs are the model's; chat is
 * a 400 saying the model has no chat template (with one given, its rendering is the encoder's
 * input); tokenize, detokenize, models, health and metrics
 * work. The queue itself: FIFO in batches of `parallel`, its bound refuses at once, a waiting
 * request that is aborted leaves, abortAll ends a running batch. Skipped, saying so, without
 * ../shared.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { loadModel } from '../../lib/index.js';
import { ChatTemplate } from '../../lib/chat.js';
import { FuselmError } from '../../lib/errors.js';
import { EncoderDecoderModel } from '../../lib/model/encoder-decoder.js';
import { createServer, type FuselmServer } from '../../lib/server/server.js';
import { Seq2SeqQueue } from '../../lib/server/seq2seq-queue.js';
import { QueueFullError } from '../../lib/server/scheduler.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

const INPUTS = [
  'translate English to German: The house is wonderful.',
  'summarize: The city council met on Tuesday to discuss the new park.',
  'The cat sat on the mat.',
  'question: where is the house? context: The house is by the park.',
  'translate English to German: I like the city.',
  'summarize: The new park is wonderful.',
  'Tuesday',
  'The council met.',
];

for (const [name, dir] of [
  ['t5', 'models/oracles/t5/hf'],
  ['bart', 'models/oracles/bart/hf'],
] as const) {
  describe(`fuselm serve with an encoder-decoder model (${name})`, function () {
    this.timeout(120_000);
    let model: EncoderDecoderModel;
    let server: FuselmServer | undefined;
    let base: string;
    let client: OpenAI;
    let expected: { text: string; ids: number[]; promptIds: number[] }[];
    let batches: number[];

    before(async function () {
      requireShared(this, dir);
      const m = await loadModel(sharedPath(dir), { device: 'cpu', threads: 1 });
      assert.ok(m instanceof EncoderDecoderModel);
      model = m;
      expected = [];
      for (const x of INPUTS) expected.push(await model.generate(x, { maxTokens: 12, temperature: 0 }));
      // the batch sizes the server runs
      batches = [];
      const each = model.generateEach.bind(model);
      model.generateEach = (items) => (batches.push(items.length), each(items));
      server = createServer(model as never, { parallel: 4 });
      await server.ready;
      base = await server.listen({ port: 0 });
      client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
    });

    after(async () => {
      await server?.close();
      await model?.dispose();
    });

    it('a greedy completion equals model.generate on the same input, with usage counting encoder tokens', async () => {
      const r = await client.completions.create({ model: 'x', prompt: INPUTS[0], max_tokens: 12, temperature: 0 });
      assert.equal(r.object, 'text_completion');
      assert.equal(r.choices[0].text, expected[0].text);
      assert.ok(expected[0].ids.length > 0);
      assert.equal(r.choices[0].finish_reason, expected[0].ids.length === 12 ? 'length' : 'stop');
      const p = expected[0].promptIds.length, c = expected[0].ids.length;
      assert.deepEqual({ p: r.usage?.prompt_tokens, c: r.usage?.completion_tokens, t: r.usage?.total_tokens }, { p, c, t: p + c });
    });

    it('token-id prompts and a list of prompts', async () => {
      const r = await client.completions.create({ model: 'x', prompt: [expected[1].promptIds, expected[2].promptIds], max_tokens: 12, temperature: 0 });
      assert.deepEqual(r.choices.map((c) => c.text), [expected[1].text, expected[2].text]);
      const s = await client.completions.create({ model: 'x', prompt: [INPUTS[3], INPUTS[4]], max_tokens: 12, temperature: 0 });
      assert.deepEqual(s.choices.map((c) => [c.index, c.text]), [[0, expected[3].text], [1, expected[4].text]]);
    });

    it('a streamed greedy completion gives the same text, with usage at the end', async () => {
      const stream = await client.completions.create({ model: 'x', prompt: INPUTS[5], max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
      let text = '', finish: string | null = null, usage;
      for await (const ch of stream) {
        if (ch.usage) usage = ch.usage;
        for (const c of ch.choices) {
          text += c.text;
          finish = c.finish_reason ?? finish;
        }
      }
      assert.equal(text, expected[5].text);
      assert.equal(finish, expected[5].ids.length === 12 ? 'length' : 'stop');
      assert.equal(usage?.prompt_tokens, expected[5].promptIds.length);
      assert.equal(usage?.completion_tokens, expected[5].ids.length);
    });

    it('8 concurrent greedy requests each give their solo output, decoded in batches of at most 4', async () => {
      batches.length = 0;
      const rs = await Promise.all(INPUTS.map((prompt) => client.completions.create({ model: 'x', prompt, max_tokens: 12, temperature: 0 })));
      assert.deepEqual(rs.map((r) => r.choices[0].text), expected.map((e) => e.text));
      assert.equal(batches.reduce((a, b) => a + b, 0), 8);
      assert.ok(batches.every((n) => n <= 4), `batches ${batches}`);
      assert.ok(batches.some((n) => n > 1), `some requests were decoded together: batches ${batches}`);
    });

    it('seeded choices (n) are each model.generate with seed + i', async () => {
      const r = await client.completions.create({ model: 'x', prompt: INPUTS[1], max_tokens: 10, temperature: 1, seed: 7, n: 3 });
      // the server holds the model between requests, not within one: solo runs go after it
      for (const [i, c] of r.choices.entries()) {
        const solo = await model.generate(INPUTS[1], { maxTokens: 10, temperature: 1, seed: 7 + i });
        assert.equal(c.text, solo.text, `choice ${i}`);
      }
      assert.equal(r.usage?.prompt_tokens, expected[1].promptIds.length);
    });

    it('a stop string ends the text before it', async () => {
      const e = expected.find((x) => x.text.trim().length >= 4)!;
      const at = Math.floor(e.text.length / 2);
      const stop = e.text.slice(at, at + 2);
      const i = expected.indexOf(e);
      const r = await client.completions.create({ model: 'x', prompt: INPUTS[i], max_tokens: 12, temperature: 0, stop });
      assert.equal(r.choices[0].text, e.text.slice(0, e.text.indexOf(stop)));
      assert.equal(r.choices[0].finish_reason, 'stop');
    });

    it('logprobs are the model\'s', async () => {
      const solo = await model.generate(INPUTS[2], { maxTokens: 6, temperature: 0, logprobs: 2 });
      const r = await client.completions.create({ model: 'x', prompt: INPUTS[2], max_tokens: 6, temperature: 0, logprobs: 2 });
      const lp = r.choices[0].logprobs!;
      assert.equal(lp.token_logprobs!.length, solo.ids.length);
      lp.token_logprobs!.forEach((v, k) => assert.ok(Math.abs(v - solo.logprobs![k].logprob) < 1e-6, `token ${k}`));
      assert.ok(lp.top_logprobs!.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 2));
    });

    it('chat completions are a 400 saying the model has no chat template', async () => {
      const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: { message: string; type: string; code: string } };
      assert.equal(body.error.type, 'invalid_request_error');
      assert.equal(body.error.code, 'no_chat_template');
      assert.match(body.error.message, /encoder-decoder .*without a chat template/);
      await assert.rejects(client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }), (e: Error & { status?: number }) => e.status === 400);
    });

    it('a prompt past the encoder\'s limit is a 400; tokenize, detokenize, models, health and metrics work', async () => {
      const long = new Array(model.config.maxEncoderTokens + 1).fill(expected[0].promptIds[0]);
      await assert.rejects(client.completions.create({ model: 'x', prompt: long, max_tokens: 2 }), (e: Error & { status?: number; code?: string }) => e.status === 400 && e.code === 'context_length_exceeded');
      const tok = await (await fetch(`${base}/tokenize`, { method: 'POST', body: JSON.stringify({ content: INPUTS[0], add_special: true }), headers: { 'content-type': 'application/json' } })).json();
      assert.deepEqual(tok, { tokens: expected[0].promptIds });
      const detok = await (await fetch(`${base}/detokenize`, { method: 'POST', body: JSON.stringify({ tokens: expected[0].ids }), headers: { 'content-type': 'application/json' } })).json();
      assert.deepEqual(detok, { content: model.tokenizer.decode(expected[0].ids) });
      const models = await client.models.list();
      assert.deepEqual(models.data.map((m) => m.id), ['hf']);
      assert.equal((await fetch(`${base}/health`)).status, 200);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const generated = Number(/^fuselm_generated_tokens_total (\d+)/m.exec(metrics)?.[1]);
      assert.ok(generated > 0, 'generated tokens counted');
      assert.match(metrics, /^fuselm_requests_running 0$/m);
    });
  });
}

describe('Seq2SeqQueue', function () {
  this.timeout(120_000);
  let model: EncoderDecoderModel;

  before(async function () {
    requireShared(this, 'models/oracles/t5/hf');
    model = (await loadModel(sharedPath('models/oracles/t5/hf'), { device: 'cpu', threads: 1 })) as unknown as EncoderDecoderModel;
  });
  after(() => model?.dispose());

  const ids = (i: number) => model.tokenizer.encode(INPUTS[i], { addSpecial: true });
  const greedy = { maxTokens: 6, temperature: 0 };

  it('runs FIFO in batches of `parallel`, refuses past its bound at once', async () => {
    const q = new Seq2SeqQueue(model, { parallel: 2, maxQueue: 3 }, {});
    const order: number[] = [];
    const batches: number[] = [];
    const each = model.generateEach.bind(model);
    model.generateEach = (items) => (batches.push(items.length), each(items));
    // 2 run at once, 3 wait: the sixth is refused
    const runs = [0, 1, 2, 3, 4].map((i) => q.submit(ids(i), greedy).then((r) => (order.push(i), r)));
    assert.equal(q.waiting, 5);
    assert.throws(() => q.submit(ids(5), greedy), QueueFullError);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([q.running, q.waiting], [2, 3]);
    assert.throws(() => q.submit(ids(5), greedy), QueueFullError);
    const out = await Promise.all(runs);
    model.generateEach = each;
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    assert.deepEqual(batches, [2, 2, 1]);
    for (const [i, r] of out.entries()) assert.deepEqual(r.ids, (await model.generate(INPUTS[i], greedy)).ids);
    await q.close();
  });

  it('the server refuses a request whose choices are past the queue bound with a 429 and Retry-After', async () => {
    const server = createServer(model as never, { parallel: 1, maxQueue: 0 });
    try {
      await server.ready;
      const res = await server.app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt: INPUTS[0], n: 2, max_tokens: 2 } });
      assert.equal(res.statusCode, 429);
      assert.equal(res.headers['retry-after'], '1');
      assert.equal(res.json().error.code, 'queue_full');
      const ok = await server.app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt: INPUTS[0], max_tokens: 6, temperature: 0 } });
      assert.equal(ok.json().choices[0].text, (await model.generate(INPUTS[0], greedy)).text);
    } finally {
      await server.close();
    }
  });

  it('with a chat template given, chat completions render it into the encoder input', async () => {
    const template = '{% for m in messages %}{{ m.role }}: {{ m.content }} {% endfor %}';
    const messages = [{ role: 'user', content: 'translate English to German: The house is wonderful.' }];
    const ids = new ChatTemplate(model.tokenizer, { template }).encode(messages, { addGenerationPrompt: true });
    const want = await model.generate(ids, greedy);
    const server = createServer(model as never, { parallel: 2, chatTemplate: template });
    try {
      await server.ready;
      const res = await server.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { messages, max_tokens: 6, temperature: 0 } });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().choices[0].message.content, want.text);
      assert.equal(res.json().usage.prompt_tokens, ids.length);
    } finally {
      await server.close();
    }
  });

  it('a waiting request aborted leaves the queue; abortAll ends a running batch', async () => {
    const q = new Seq2SeqQueue(model, { parallel: 1, maxQueue: 4 }, {});
    const ac = new AbortController();
    const running = q.submit(ids(0), { maxTokens: 400, temperature: 0, ignoreEog: true });
    await new Promise((r) => setImmediate(r));
    assert.equal(q.running, 1);
    const waiting = q.submit(ids(1), greedy, { signal: ac.signal });
    assert.equal(q.waiting, 1);
    ac.abort();
    assert.equal(q.waiting, 0);
    await assert.rejects(waiting, (e: FuselmError) => e.code === 'E_ABORTED');
    q.abortAll('stop');
    await assert.rejects(running, (e: FuselmError) => e.code === 'E_ABORTED');
    await q.close();
  });
});
