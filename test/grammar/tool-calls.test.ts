/**
 * Tool calls through chat.send / chat.stream on stories260K (../shared), with Qwen2.5's template
 * (hermes calls), Llama-3.1's (JSON calls) and the model's own tool-less ChatML fallback:
 * sampled at temperature 1 with random seeds, every reply under toolChoice 'required' or a named
 * function is a finished call whose arguments ajv validates against the function's schema;
 * under 'auto' a reply is free text that never holds a call's opening (Llama-3.1: does not open
 * with '{'), then any calls (Llama-3.1: calls or text), the text kept as content; 'none' leaves
 * the reply free. Tool results go back as 'tool' messages; streams give the same calls as send.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ToolOptions } from '../../lib/chat-tools.js';
import { loadModel, type Model } from '../../lib/model/model.js';
import { makeAjv } from '../helpers/json-schemas.js';
import { rng } from '../helpers/random.js';
import { requireShared, sharedPath } from '../helpers/shared.js';
import { TOOLS } from '../helpers/tools.js';

const TEMPLATES: Record<string, string | undefined> = {
  'Qwen2.5 (hermes)': readFileSync(new URL('../fixtures/chat-templates/qwen2.5-instruct.jinja', import.meta.url), 'utf8'),
  'Llama-3.1 (JSON)': readFileSync(new URL('../fixtures/chat-templates/llama-3.1-instruct.jinja', import.meta.url), 'utf8'),
  'ChatML fallback (generic)': undefined,
};
const ajv = makeAjv();
const validators = new Map(TOOLS.map((t) => [t.function.name, ajv.compile((t.function.parameters ?? { type: 'object', additionalProperties: false }) as object)]));

describe('tool calls with chat.send on stories260K', function () {
  this.timeout(600_000);
  let model: Model;
  before(async function () {
    requireShared(this, 'models/stories260K.gguf');
    model = await loadModel(sharedPath('models/stories260K.gguf'));
  });
  after(async () => model?.dispose());

  for (const [name, template] of Object.entries(TEMPLATES))
    describe(name, () => {
      const opener = name.startsWith('Llama') ? '{' : '<tool_call>';

      it("'required' and a named function: 24 sampled replies, each one call with valid arguments", async () => {
        const r = rng(name.length);
        for (let n = 0; n < 24; n++) {
          const chat = model.chat({ template });
          const named = n % 3 === 2 ? TOOLS[n % TOOLS.length].function.name : undefined;
          const o: ToolOptions = { tools: TOOLS, toolChoice: named ? { type: 'function', function: { name: named } } : 'required', parallelToolCalls: false };
          const res = await chat.send('What is the weather in Paris?', { ...o, temperature: 1, seed: Math.floor(r() * 2 ** 31), maxTokens: 200 });
          assert.equal(res.finishReason, 'eog', JSON.stringify(res.text));
          assert.equal(res.toolCalls?.length, 1, JSON.stringify(res.text));
          const call = res.toolCalls[0];
          if (named) assert.equal(call.function.name, named);
          const validate = validators.get(call.function.name);
          assert.ok(validate, `unknown function ${call.function.name}`);
          assert.ok(validate(JSON.parse(call.function.arguments)), `${res.text}: ${ajv.errorsText(validate.errors)}`);
          assert.deepEqual(chat.messages.at(-1), { role: 'assistant', content: '', toolCalls: res.toolCalls });
        }
      });

      it("'auto': free text (never an opening of a call), then any calls; 'none': free text", async () => {
        for (let seed = 0; seed < 12; seed++) {
          const chat = model.chat({ template });
          const res = await chat.send('Hello!', { tools: TOOLS, temperature: 1, seed, maxTokens: 60 });
          const reply = chat.messages[1];
          if (res.toolCalls) {
            for (const c of res.toolCalls) assert.ok(validators.get(c.function.name)!(JSON.parse(c.function.arguments)), res.text);
            // the text before the calls is the content (Llama-3.1: none)
            assert.ok(res.text.startsWith(res.content!) && !res.content!.includes(opener), JSON.stringify(res.text));
            assert.deepEqual([reply.content, reply.toolCalls], [res.content, res.toolCalls]);
          } else {
            assert.ok(opener === '{' ? !res.text.startsWith(opener) : !res.text.includes(opener), JSON.stringify(res.text));
            assert.deepEqual([reply.content, reply.toolCalls], [res.text, undefined]);
          }
        }
        const none = await model.chat({ template }).send('Hello!', { tools: TOOLS, toolChoice: 'none', temperature: 0, maxTokens: 20 });
        const plain = await model.chat({ template }).send('Hello!', { temperature: 0, maxTokens: 20 });
        assert.equal(none.toolCalls, undefined);
        // 'none' still shows the tools to the model: the prompt is longer than a tool-less one
        assert.ok(none.promptIds.length > plain.promptIds.length);
      });

      it('feeds tool results back as tool messages; stream gives the calls send gives', async () => {
        const chat = model.chat({ template });
        const o: ToolOptions = { tools: TOOLS, toolChoice: 'required', parallelToolCalls: false };
        const first = await chat.send('Add 2 and 3.', { ...o, temperature: 1, seed: 7, maxTokens: 200 });
        const call = first.toolCalls![0];
        const result = { role: 'tool', toolCallId: call.id, name: call.function.name, content: '{"result": 5}' };
        const second = await chat.send([result], { tools: TOOLS, toolChoice: 'none', temperature: 0, maxTokens: 8 });
        assert.equal(second.toolCalls, undefined);
        assert.deepEqual(chat.messages.map((m) => m.role), ['user', 'assistant', 'tool', 'assistant']);
        assert.deepEqual(chat.messages[2], result);
        // the next turn's prompt holds the call and its result
        const text = chat.template.render(chat.messages.slice(0, 3), { tools: TOOLS });
        assert.ok(text.includes(`"name": "${call.function.name}"`), text);
        assert.ok(text.includes('{"result": 5}') || text.includes('{\\"result\\": 5}'), text);

        const streamed = model.chat({ template });
        let last;
        let joined = '';
        for await (const c of streamed.stream('Add 2 and 3.', { ...o, temperature: 1, seed: 7, maxTokens: 200 })) {
          joined += c.text;
          last = c;
        }
        assert.equal(joined, first.text);
        assert.deepEqual(last?.toolCalls?.map((c) => c.function), first.toolCalls!.map((c) => c.function));
        assert.deepEqual(streamed.messages[1].toolCalls?.map((c) => c.function), first.toolCalls!.map((c) => c.function));
      });
    });

  it('refuses tools beside a grammar or jsonSchema, and bad tool options', async () => {
    const chat = model.chat();
    await assert.rejects(chat.send('Hi', { tools: TOOLS, jsonSchema: { type: 'object' } }), (e: { code?: string; message: string }) => e.code === 'E_INVALID_ARG' && /not both/.test(e.message));
    await assert.rejects(chat.send('Hi', { tools: TOOLS, toolChoice: { type: 'function', function: { name: 'x' } } }), { code: 'E_INVALID_ARG' });
    await assert.rejects(chat.send([], {}), { code: 'E_INVALID_ARG' });
    assert.equal(chat.messages.length, 0);
    // with toolChoice 'none' a grammar may ride along
    const r = await chat.send('Hi', { tools: TOOLS, toolChoice: 'none', grammar: 'root ::= "ok"' });
    assert.equal(r.text, 'ok');
  });
});
