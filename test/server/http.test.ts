/**
 * `fuselm serve` over raw HTTP (stories260K): the SSE framing byte for byte, OpenAI's error
 * bodies and statuses (400 bad fields, 400 a prompt past the context also when streaming, 401,
 * 404, 413, 429 with Retry-After, 503 while loading), /health public behind an API key, CORS
 * off by default, an aborted stream freeing its slot (the running metric back to its baseline)
 * with the next request unaffected, the request timeout, echo, and close() letting a running
 * request finish.
 */
import assert from 'node:assert/strict';
import { type Model, loadModel } from '../../lib/model/model.js';
import { createServer, type FuselmServer, type ServerOptions } from '../../lib/server/server.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

const STORIES = 'models/stories260K.gguf';

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

/** An OpenAI error body: { error: { message, type, param, code } } with a non-empty message. */
function assertError(r: Reply, status: number, type: string) {
  assert.equal(r.status, status, r.text);
  assert.deepEqual(Object.keys(r.json), ['error']);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(r.json.error.type, type);
  assert.ok(r.json.error.message.length > 0);
}

/** The value of a metric line `name value` in Prometheus' text format. */
async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `metric ${name}`);
  return Number(line.split(' ')[1]);
}

describe('fuselm serve over raw HTTP', function () {
  this.timeout(120_000);
  let model: Model;
  /** Its whole 2048-position context: streams that run long enough to be caught running. */
  let wide: Model;
  const open: FuselmServer[] = [];

  /** A server on the shared model (one at a time: each holds the model until closed). */
  async function serve(o: ServerOptions = {}, m = model): Promise<string> {
    while (open.length) await open.pop()!.close();
    const s = createServer(m, o);
    open.push(s);
    await s.ready;
    return s.listen({ port: 0 });
  }

  before(async function () {
    requireShared(this, STORIES);
    model = await loadModel(sharedPath(STORIES), { threads: 1, contextSize: 64 });
    wide = await loadModel(sharedPath(STORIES), { threads: 1 });
  });

  after(async () => {
    for (const s of open) await s.close();
    await model?.dispose();
    await wide?.dispose();
  });

  it('SSE framing: data lines, one JSON object each, a blank line between, [DONE] last', async () => {
    const base = await serve();
    const r = await post(`${base}/v1/chat/completions`, { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, temperature: 0, stream: true });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type')!, /^text\/event-stream/);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
    const events = r.text.split('\n\n');
    assert.equal(events.pop(), '');
    assert.equal(events.pop(), 'data: [DONE]');
    const chunks = events.map((e) => {
      assert.match(e, /^data: \{/);
      return JSON.parse(e.slice(6));
    });
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    assert.equal(chunks[0].choices[0].finish_reason, null);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
    assert.deepEqual(chunks.at(-1).choices[0].delta, {});
    for (const c of chunks) {
      assert.equal(c.id, chunks[0].id);
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(typeof c.created, 'number');
      assert.ok(!('usage' in c), 'no usage field without stream_options.include_usage');
    }
  });

  it('bad fields are 400s naming the field; unknown routes 404; unknown fields are ignored', async () => {
    const base = await serve();
    for (const [body, param] of [
      [{ prompt: 'x', temperature: 3 }, 'temperature'],
      [{ prompt: 'x', max_tokens: -1 }, 'max_tokens'],
      [{ prompt: 'x', top_p: 0 }, 'top_p'],
      [{ prompt: 'x', n: 0 }, 'n'],
      [{ prompt: 'x', stop: [''] }, 'stop.0'],
      [{ prompt: 'x', logit_bias: { abc: 1 } }, 'logit_bias'],
      [{ prompt: 'x', temperature: '0.5' }, 'temperature'],
      [{ max_tokens: 3 }, 'prompt'],
    ] as const) {
      const r = await post(`${base}/v1/completions`, body);
      assertError(r, 400, 'invalid_request_error');
      assert.equal(r.json.error.param?.split('.')[0], param.split('.')[0], JSON.stringify(body));
    }
    assertError(await post(`${base}/v1/chat/completions`, { messages: [] }), 400, 'invalid_request_error');
    assertError(await post(`${base}/v1/chat/completions`, { messages: [{ role: 'wizard', content: 'x' }] }), 400, 'invalid_request_error');
    assertError(await post(`${base}/v1/completions`, '{"prompt": '), 400, 'invalid_request_error');
    assertError(await post(`${base}/v1/completions`, { prompt: 'x', logit_bias: { 99999: 1 } }), 400, 'invalid_request_error');
    assertError(await post(`${base}/v1/completions`, { prompt: [[1, 99999]] }), 400, 'invalid_request_error');
    assertError(await post(`${base}/v1/nothing`, {}), 404, 'not_found_error');
    const ok = await post(`${base}/v1/completions`, { prompt: 'x', max_tokens: 2, user: 'someone', service_tier: 'auto' });
    assert.equal(ok.status, 200, ok.text);
  });

  it('a prompt longer than the context is a 400 context_length_exceeded, streaming or not', async () => {
    const base = await serve();
    const long = Array.from({ length: 65 }, () => 300);
    for (const stream of [false, true]) {
      const r = await post(`${base}/v1/completions`, { prompt: long, stream });
      assertError(r, 400, 'invalid_request_error');
      assert.equal(r.json.error.code, 'context_length_exceeded');
    }
    // a prompt that fills the context gets one token, then the context is full
    const full = await post(`${base}/v1/completions`, { prompt: long.slice(0, 64), max_tokens: 10, temperature: 0 });
    assert.equal(full.json.choices[0].finish_reason, 'length');
    assert.equal(full.json.usage.completion_tokens, 1);
  });

  it('a body over the limit is a 413', async () => {
    const base = await serve({ bodyLimit: 1024 });
    assertError(await post(`${base}/v1/completions`, { prompt: 'x'.repeat(2000) }), 413, 'invalid_request_error');
  });

  it('API keys: 401 without the Bearer key, 200 with either key; /health stays public; CORS off by default', async () => {
    const base = await serve({ apiKeys: ['k1', 'k2'] });
    assertError(await post(`${base}/v1/completions`, { prompt: 'x', max_tokens: 1 }), 401, 'authentication_error');
    assertError(await post(`${base}/v1/completions`, { prompt: 'x', max_tokens: 1 }, { authorization: 'Bearer k3' }), 401, 'authentication_error');
    assertError(await post(`${base}/v1/completions`, { prompt: 'x', max_tokens: 1 }, { authorization: 'Bearer k' }), 401, 'authentication_error');
    for (const k of ['k1', 'k2']) assert.equal((await post(`${base}/v1/completions`, { prompt: 'x', max_tokens: 1 }, { authorization: `Bearer ${k}` })).status, 200);
    assert.equal((await fetch(`${base}/v1/models`)).status, 401);
    const h = await fetch(`${base}/health`, { headers: { origin: 'http://evil.example' } });
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok' });
    assert.equal(h.headers.get('access-control-allow-origin'), null);
  });

  it('CORS when configured: the allowed origin is echoed and preflights answered', async () => {
    const base = await serve({ cors: ['http://app.example'] });
    const pre = await fetch(`${base}/v1/completions`, { method: 'OPTIONS', headers: { origin: 'http://app.example', 'access-control-request-method': 'POST' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'http://app.example');
    const other = await fetch(`${base}/v1/models`, { headers: { origin: 'http://other.example' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });

  it('a full queue is a 429 with Retry-After', async () => {
    const base = await serve({ parallel: 1, maxQueue: 0 });
    const busy = post(`${base}/v1/completions`, { prompt: 'Once', max_tokens: 40, temperature: 0 });
    // wait until the first request holds the only slot
    while ((await metric(base, 'fuselm_requests_running')) === 0) await new Promise((r) => setTimeout(r, 2));
    const r = await post(`${base}/v1/completions`, { prompt: 'x', max_tokens: 1 });
    assertError(r, 429, 'rate_limit_error');
    assert.equal(r.headers.get('retry-after'), '1');
    assert.equal((await busy).status, 200);
  });

  it('an aborted stream frees its slot (the metric returns to its baseline) and the next request is unaffected', async () => {
    const base = await serve({ parallel: 2 }, wide);
    const want = await post(`${base}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
    assert.equal(await metric(base, 'fuselm_requests_running'), 0);
    assert.equal(await metric(base, 'fuselm_kv_blocks_used'), 0);
    const ac = new AbortController();
    // EOS banned: the stream runs to its 2048-position context unless aborted
    const r = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'Lily', max_tokens: 10_000, temperature: 0.8, stream: true, logit_bias: { [wide.tokenizer.eos!]: -100 } }),
      signal: ac.signal,
    });
    const reader = r.body!.getReader();
    for (let reads = 0; reads < 40; reads++) assert.equal((await reader.read()).done, false);
    assert.equal(await metric(base, 'fuselm_requests_running'), 1);
    assert.ok((await metric(base, 'fuselm_kv_blocks_used')) >= 2, 'the stream holds KV blocks');
    ac.abort();
    const t0 = Date.now();
    while ((await metric(base, 'fuselm_requests_running')) !== 0) {
      assert.ok(Date.now() - t0 < 5000, 'the slot was not freed');
      await new Promise((res) => setTimeout(res, 5));
    }
    assert.equal(await metric(base, 'fuselm_kv_blocks_used'), 0, 'its blocks were freed');
    const pool = 2 * Math.ceil(wide.contextSize / 16);
    assert.equal((await metric(base, 'fuselm_kv_blocks_kept')) + (await metric(base, 'fuselm_kv_blocks_free')), pool);
    const after = await post(`${base}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
    assert.equal(after.json.choices[0].text, want.json.choices[0].text);
  });

  it('a pool of one context (kvBlocks) preempts and recomputes, and 8 concurrent greedy requests each get their solo text', async () => {
    const prompts = ['Once upon a time', 'Lily and Tom', 'The dog ran', 'One day, a bird', 'Sam had a ball', 'The sun was hot', 'Mom said', 'A little girl'];
    const body = (prompt: string) => ({ prompt, max_tokens: 40, temperature: 0 });
    const solo = [];
    for (const p of prompts) solo.push((await model.generate(p, { maxTokens: 40 })).text);
    // 64-position contexts: 4 blocks of 16 for 8 slots whose sequences need 3 or 4 each
    const base = await serve({ parallel: 8, kvBlocks: 4 });
    const got = await Promise.all(prompts.map((p) => post(`${base}/v1/completions`, body(p))));
    assert.deepEqual(got.map((r) => r.json.choices[0].text), solo);
    assert.ok((await metric(base, 'fuselm_preemptions_total')) > 0, 'some sequence was preempted');
    assert.equal(await metric(base, 'fuselm_kv_blocks_used'), 0);
    await assert.rejects(serve({ kvBlocks: 3 }), { code: 'E_INVALID_ARG', message: /kvBlocks must be an integer >= 4/ });
  });

  it('/metrics counts prompt, reused and generated tokens, and times every token', async () => {
    const base = await serve();
    const body = { prompt: 'Once upon a time, there was a little girl', max_tokens: 7, temperature: 0 };
    const a = await post(`${base}/v1/completions`, body);
    const b = await post(`${base}/v1/completions`, body);
    const prompt = a.json.usage.prompt_tokens;
    assert.equal(await metric(base, 'fuselm_prompt_tokens_total'), 2 * prompt);
    assert.equal(await metric(base, 'fuselm_prefix_cache_hit_tokens_total'), b.json.usage.prompt_tokens_details.cached_tokens);
    assert.equal(b.json.usage.prompt_tokens_details.cached_tokens, prompt - 1);
    assert.equal(await metric(base, 'fuselm_generated_tokens_total'), 14);
    assert.equal(await metric(base, 'fuselm_time_to_first_token_seconds_count'), 2);
    assert.equal(await metric(base, 'fuselm_inter_token_latency_seconds_count'), 12);
    assert.equal((await metric(base, 'fuselm_kv_cache_used_tokens')) + (await metric(base, 'fuselm_kv_cache_free_tokens')), 4 * 64);
  });

  it('a request past requestTimeout is a 408 (a stream: a timeout_error event) and frees its slot', async () => {
    const base = await serve({ requestTimeout: 100 }, wide);
    const long = { prompt: 'Lily', max_tokens: 100_000, temperature: 0.8, logit_bias: { [wide.tokenizer.eos!]: -100 } };
    assertError(await post(`${base}/v1/completions`, long), 408, 'timeout_error');
    const r = await post(`${base}/v1/completions`, { ...long, stream: true });
    assert.equal(r.status, 200);
    const last = r.text.split('\n\n').filter(Boolean).at(-1)!;
    assert.equal(JSON.parse(last.slice(6)).error.type, 'timeout_error');
    assert.equal(await metric(base, 'fuselm_requests_running'), 0);
  });

  it('echo puts the prompt before the completion, streamed or not', async () => {
    const base = await serve();
    const plain = await post(`${base}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 5, temperature: 0 });
    const echoed = await post(`${base}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 5, temperature: 0, echo: true });
    assert.equal(echoed.json.choices[0].text, 'Once upon a time' + plain.json.choices[0].text);
    const stream = await post(`${base}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 5, temperature: 0, echo: true, stream: true });
    const text = stream.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0]?.text ?? '').join('');
    assert.equal(text, echoed.json.choices[0].text);
  });

  it('/health is 503 while the model loads, and the API routes too', async () => {
    let done!: (m: Model) => void;
    const s = createServer(new Promise<Model>((r) => (done = r)));
    const base = await s.listen({ port: 0 });
    try {
      const h = await fetch(`${base}/health`);
      assert.equal(h.status, 503);
      assertError(await post(`${base}/v1/completions`, { prompt: 'x' }), 503, 'unavailable_error');
      while (open.length) await open.pop()!.close();
      done(model);
      await s.ready;
      assert.equal((await fetch(`${base}/health`)).status, 200);
    } finally {
      await s.close();
    }
  });

  it('close() lets a running request finish, then refuses', async () => {
    while (open.length) await open.pop()!.close();
    const s = createServer(model);
    await s.ready;
    const base = await s.listen({ port: 0 });
    const running = post(`${base}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 30, temperature: 0 });
    while ((await metric(base, 'fuselm_requests_running')) === 0) await new Promise((r) => setTimeout(r, 2));
    await s.close();
    const r = await running;
    assert.equal(r.status, 200);
    assert.equal(r.json.usage.completion_tokens, 30);
    await assert.rejects(fetch(`${base}/health`));
  });

  it('close() past its drain timeout aborts what still runs: the stream ends with a 503 shutting_down event', async () => {
    while (open.length) await open.pop()!.close();
    const s = createServer(wide, { drainTimeout: 0 });
    await s.ready;
    const base = await s.listen({ port: 0 });
    // EOS banned, a 2048-position context: the stream runs far past a drain timeout of 0
    const body = JSON.stringify({ prompt: 'x', max_tokens: 100_000, temperature: 1, stream: true, logit_bias: { [wide.tokenizer.eos!]: -100 } });
    const r = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const text = r.text();
    while ((await metric(base, 'fuselm_requests_running')) === 0) await new Promise((res) => setTimeout(res, 2));
    await s.close();
    const events = (await text).split('\n\n').filter(Boolean);
    assert.notEqual(events.at(-1), 'data: [DONE]');
    const last = JSON.parse(events.at(-1)!.slice(6));
    assert.equal(last.error.code, 'shutting_down');
    assert.equal(last.error.type, 'unavailable_error');
  });
});
