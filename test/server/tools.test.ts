/**
 * Tool calls through `fuselm serve` with the official `openai` client, on stories260K with
 * Qwen2.5's chat template: `tools` and `tool_choice` give `tool_calls` (finish_reason
 * 'tool_calls') whose arguments ajv validates against the function's schema; a streamed request
 * gives the same calls as tool_call deltas, and no call text as content; the reply equals
 * chat.send's for the same seed (one call each: stories260K's parallel calls run on to max_tokens);
 * under 'auto' a stream gives its text as content deltas, then any calls, as the same seed
 * unstreamed does; the call and a `tool` result go back in the history; bad tools are a 400
 * naming `tools`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { type Model, loadModel } from '../../lib/model/model.js';
import { createServer, type FuselmServer } from '../../lib/server/server.js';
import { makeAjv } from '../helpers/json-schemas.js';
import { requireShared, sharedPath } from '../helpers/shared.js';
import { TOOLS } from '../helpers/tools.js';

const QWEN = readFileSync(new URL('../fixtures/chat-templates/qwen2.5-instruct.jinja', import.meta.url), 'utf8');
const MESSAGES = [{ role: 'user' as const, content: 'What is the weather in Paris?' }];

describe('fuselm serve: tool calls with the openai client', function () {
  this.timeout(120_000);
  let model: Model;
  let server: FuselmServer | undefined;
  let client: OpenAI;
  let expected: { text: string; calls: { name: string; arguments: string }[] }[];
  const ajv = makeAjv();
  const validators = new Map(TOOLS.map((t) => [t.function.name, ajv.compile((t.function.parameters ?? { type: 'object', additionalProperties: false }) as object)]));
  const valid = (c: { function: { name: string; arguments: string } }) => {
    const v = validators.get(c.function.name);
    assert.ok(v, `unknown function ${c.function.name}`);
    assert.ok(v(JSON.parse(c.function.arguments)), `${c.function.arguments}: ${ajv.errorsText(v.errors)}`);
  };

  before(async function () {
    requireShared(this, 'models/stories260K.gguf');
    model = await loadModel(sharedPath('models/stories260K.gguf'), { threads: 1 });
    // what chat.send gives, before the server takes the model
    expected = [];
    for (let seed = 0; seed < 4; seed++) {
      const r = await model.chat({ template: QWEN }).send(MESSAGES[0].content, { tools: TOOLS, toolChoice: 'required', parallelToolCalls: false, temperature: 1, seed, maxTokens: 200 });
      expected.push({ text: r.text, calls: (r.toolCalls ?? []).map((c) => c.function) });
    }
    server = createServer(model, { parallel: 4, chatTemplate: QWEN });
    await server.ready;
    client = new OpenAI({ baseURL: `${await server.listen({ port: 0 })}/v1`, apiKey: 'unused', maxRetries: 0 });
  });

  after(async () => {
    await server?.close();
    await model?.dispose();
  });

  it("tool_choice 'required': tool_calls equal to chat.send's, arguments valid, finish_reason tool_calls", async () => {
    for (let seed = 0; seed < 4; seed++) {
      const r = await client.chat.completions.create({ model: 'x', messages: MESSAGES, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, temperature: 1, seed, max_tokens: 200 });
      const ch = r.choices[0];
      assert.equal(expected[seed].calls.length, 1, expected[seed].text);
      assert.equal(ch.finish_reason, 'tool_calls');
      assert.equal(ch.message.content, null);
      assert.deepEqual(ch.message.tool_calls?.map((c) => (c.type === 'function' ? c.function : undefined)), expected[seed].calls);
      for (const c of ch.message.tool_calls!) {
        assert.equal(c.type, 'function');
        assert.match(c.id, /^call_/);
        if (c.type === 'function') valid(c);
      }
    }
  });

  it('a named function, one call only', async () => {
    const r = await client.chat.completions.create({
      model: 'x', messages: MESSAGES, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'add' } }, temperature: 1, seed: 3, max_tokens: 200,
    });
    const calls = r.choices[0].message.tool_calls!;
    assert.equal(calls.length, 1);
    assert.ok(calls[0].type === 'function' && calls[0].function.name === 'add');
    valid(calls[0] as { function: { name: string; arguments: string } });
  });

  it('streamed: the calls as tool_call deltas, no call text as content', async () => {
    const stream = await client.chat.completions.create({ model: 'x', messages: MESSAGES, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, temperature: 1, seed: 1, max_tokens: 200, stream: true });
    const calls: { id?: string; name: string; arguments: string }[] = [];
    let content = '';
    const finishes: string[] = [];
    for await (const c of stream)
      for (const ch of c.choices) {
        content += ch.delta.content ?? '';
        if (ch.finish_reason) finishes.push(ch.finish_reason);
        for (const d of ch.delta.tool_calls ?? []) {
          calls[d.index] ??= { name: '', arguments: '' };
          if (d.id) calls[d.index].id = d.id;
          calls[d.index].name += d.function?.name ?? '';
          calls[d.index].arguments += d.function?.arguments ?? '';
        }
      }
    assert.equal(content, '');
    assert.deepEqual(finishes, ['tool_calls']);
    assert.equal(calls.length, 1);
    assert.match(calls[0].id ?? '', /^call_/);
    valid({ function: calls[0] });
    // the openai client's own accumulation reads the same
    const again = client.chat.completions.stream({ model: 'x', messages: MESSAGES, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, temperature: 1, seed: 1, max_tokens: 200 });
    const final = await again.finalChatCompletion();
    assert.deepEqual(final.choices[0].message.tool_calls?.map((c) => (c.type === 'function' ? c.function : undefined)), [{ name: calls[0].name, arguments: calls[0].arguments }]);
  });

  it("'auto' streams text as content, then any calls; the call and a tool result go back in the history", async () => {
    for (let seed = 0; seed < 6; seed++) {
      const body = { model: 'x', messages: [{ role: 'user' as const, content: 'Hello!' }], tools: TOOLS, temperature: 1, seed, max_tokens: 60 };
      const stream = await client.chat.completions.create({ ...body, stream: true });
      let content = '';
      const calls: string[] = [];
      for await (const c of stream)
        for (const ch of c.choices) {
          assert.ok(!(ch.delta.content && calls.length), 'no content after the calls');
          content += ch.delta.content ?? '';
          for (const d of ch.delta.tool_calls ?? []) calls.push(d.function!.name!);
        }
      assert.ok(!content.includes('<tool_call>'), JSON.stringify(content));
      // the same seed unstreamed: the same content and calls
      const whole = (await client.chat.completions.create(body)).choices[0].message;
      assert.equal(whole.content ?? '', content);
      assert.deepEqual(whole.tool_calls?.map((c) => (c.type === 'function' ? c.function.name : '')) ?? [], calls);
    }
    const first = await client.chat.completions.create({ model: 'x', messages: MESSAGES, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, temperature: 1, seed: 2, max_tokens: 200 });
    const call = first.choices[0].message.tool_calls![0];
    const r = await client.chat.completions.create({
      model: 'x',
      messages: [...MESSAGES, first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '{"temp": 21}' }],
      tools: TOOLS,
      tool_choice: 'none',
      temperature: 0,
      max_tokens: 8,
    });
    assert.equal(r.choices[0].message.tool_calls, undefined);
    assert.equal(typeof r.choices[0].message.content, 'string');
    // the history's call and result are in the prompt: it is longer than the question's alone
    assert.ok(r.usage!.prompt_tokens > first.usage!.prompt_tokens + 10);
  });

  it('bad tools are a 400 naming tools', async () => {
    const bad = async (body: object, re: RegExp) => {
      await assert.rejects(client.chat.completions.create({ model: 'x', messages: MESSAGES, max_tokens: 4, ...body } as never), (e: InstanceType<typeof OpenAI.APIError>) => {
        assert.equal(e.status, 400);
        assert.equal((e.error as { param?: string }).param, 'tools');
        assert.match(e.message, re);
        return true;
      });
    };
    await bad({ tools: [{ type: 'function', function: { name: 'a b' } }] }, /tools\[0\]\.function\.name/);
    await bad({ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } }, /not in tools/);
    await bad({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', not: {} } } }] }, /the keyword not/);
    await bad({ tools: TOOLS, response_format: { type: 'json_object' } }, /not both/);
  });
});
