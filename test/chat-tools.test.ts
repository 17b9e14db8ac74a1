/**
 * Tool calls without a model: the template families told from the published templates; the
 * conversation (tools, an assistant's calls, a tool's result) rendered through Llama-3.1's,
 * Qwen2.5's and a tool-less template (Gemma-2's) as each family's format writes it; the tool-call
 * grammar accepts exactly the family's calls with schema-valid arguments (and free text under
 * 'auto' that does not open like a call), and random walks through it always parse back into
 * calls whose arguments ajv validates; bad tool options are E_INVALID_ARG naming the field.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CHATML_TEMPLATE, ChatTemplate, loadTokenizer, type ChatMessage, type Tokenizer } from '../lib/index.js';
import { checkToolOptions, parseToolCalls, surelyContent, type ToolDefinition, type ToolFamily, type ToolOptions, toolFamily, toolGrammar, toolReply } from '../lib/chat-tools.js';
import { compileGbnf } from '../lib/grammar/compile.js';
import { StackSets } from '../lib/grammar/stacks.js';
import { TokenMasks } from '../lib/grammar/token-masks.js';
import { accepts } from './grammar/gbnf.test.js';
import { longestBytes, makeAjv } from './helpers/json-schemas.js';
import { rng } from './helpers/random.js';
import { TOOLS } from './helpers/tools.js';
import { requireFiles, TOKENIZER_FILES } from './tokenizer/helpers.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/chat-templates/${name}.jinja`, import.meta.url), 'utf8');


const CONVERSATION: ChatMessage[] = [
  { role: 'user', content: 'Weather in Paris?' },
  { role: 'assistant', content: '', toolCalls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
  { role: 'tool', toolCallId: 'call_1', content: '{"temp": 20}' },
];

describe('tool calls: template families and rendering', function () {
  let tok: Tokenizer;
  before(async function () {
    requireFiles(this, TOKENIZER_FILES.llama3);
    tok = await loadTokenizer(TOKENIZER_FILES.llama3);
  });

  it('tells the family from the template', () => {
    assert.equal(toolFamily(fixture('llama-3.1-instruct')), 'llama3');
    assert.equal(toolFamily(fixture('qwen2.5-instruct')), 'hermes');
    for (const f of ['gemma-2-it', 'mistral-instruct', 'phi-3-mini-instruct']) assert.equal(toolFamily(fixture(f)), 'generic', f);
    assert.equal(toolFamily(CHATML_TEMPLATE), 'generic');
  });

  it("Qwen2.5: tools in the template's system section, calls in <tool_call>, results in <tool_response>", () => {
    const t = new ChatTemplate(tok, { template: fixture('qwen2.5-instruct') });
    const text = t.render(CONVERSATION, { tools: [TOOLS[0]] });
    assert.equal(
      text,
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
        'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
        '{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}\n' +
        '</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 20}\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
    );
    // without tools, the template's plain system prompt
    assert.ok(t.render([{ role: 'user', content: 'Hi' }]).startsWith('<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>'));
  });

  it('Llama-3.1: tools in the first user message, the call as JSON with "parameters", the result under ipython', () => {
    const t = new ChatTemplate(tok, { template: fixture('llama-3.1-instruct'), templateVariables: { date_string: '26 Jul 2024' } });
    const text = t.render(CONVERSATION, { tools: [TOOLS[2]] });
    assert.equal(
      text,
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n' +
        'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.\n\n' +
        '{\n    "type": "function",\n    "function": {\n        "name": "now",\n        "description": "The time now"\n    }\n}\n\n' +
        'Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' +
        // the template writes a string result with tojson, as Jinja2 does (a string is iterable)
        '<|start_header_id|>ipython<|end_header_id|>\n\n"{\\"temp\\": 20}"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it('a template without a tool section: tools in the system message, calls and results as text', () => {
    const t = new ChatTemplate(tok, { template: fixture('gemma-2-it') });
    const text = t.render(CONVERSATION, { tools: [TOOLS[2]] });
    assert.ok(text.includes('<start_of_turn>user\n# Tools\n\n'), text);
    assert.ok(text.includes('<tools>\n{"type":"function","function":{"name":"now","description":"The time now"}}\n</tools>'), text);
    assert.ok(text.includes('\n\nWeather in Paris?<end_of_turn>\n<start_of_turn>model\n<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call><end_of_turn>\n'), text);
    assert.ok(text.endsWith('<start_of_turn>user\n<tool_response>\n{"temp": 20}\n</tool_response><end_of_turn>\n<start_of_turn>model\n'), text);
  });

  it('refuses malformed messages and tools with E_INVALID_ARG', () => {
    const t = new ChatTemplate(tok, { template: fixture('qwen2.5-instruct') });
    const bad = (f: () => unknown, re: RegExp) => assert.throws(f, (e: { code?: string; message: string }) => e.code === 'E_INVALID_ARG' && re.test(e.message));
    bad(() => t.render([{ role: 'assistant', content: '', toolCalls: [{ id: 'x', type: 'function', function: { name: 'f', arguments: '{nope' } }] }]), /messages\[0\]\.toolCalls\[0\]\.function\.arguments must be JSON/);
    bad(() => t.render([{ role: 'tool', content: '', toolCallId: 3 as unknown as string }]), /messages\[0\]\.toolCallId must be a string/);
    bad(() => t.render([{ role: 'user', content: 'x' }], { tools: [{ type: 'function', function: { name: 'bad name' } }] }), /tools\[0\]\.function\.name must be/);
  });
});

describe('tool calls: options, grammar and parsing', () => {
  const bad = (o: ToolOptions, re: RegExp) =>
    assert.throws(() => checkToolOptions(o), (e: { code?: string; message: string }) => e.code === 'E_INVALID_ARG' && re.test(e.message));

  it('checks the options', () => {
    bad({ tools: {} as unknown as ToolDefinition[] }, /tools must be an array/);
    bad({ tools: [{ type: 'retrieval' } as unknown as ToolDefinition] }, /tools\[0\] must be/);
    bad({ tools: [TOOLS[0], TOOLS[0]] }, /tools\[1\]\.function\.name "get_weather" is given twice/);
    bad({ tools: [{ type: 'function', function: { name: 'f', parameters: [] as never } }] }, /tools\[0\]\.function\.parameters must be a JSON Schema object/);
    bad({ tools: TOOLS, toolChoice: 'any' as 'auto' }, /toolChoice must be/);
    bad({ tools: TOOLS, toolChoice: { type: 'function', function: { name: 'nope' } } }, /names the function "nope", which is not in tools/);
    bad({ toolChoice: 'required' }, /needs tools/);
    bad({ tools: TOOLS, parallelToolCalls: 1 as unknown as boolean }, /parallelToolCalls must be a boolean/);
    assert.equal(checkToolOptions({ tools: [] }), undefined);
    assert.equal(checkToolOptions({}), undefined);
  });

  it('a parameters schema the grammar cannot express is E_UNSUPPORTED naming the tool', () => {
    const tools: ToolDefinition[] = [TOOLS[0], { type: 'function', function: { name: 'f', parameters: { type: 'object', not: {} } } }];
    assert.throws(() => toolGrammar(tools, {}, 'hermes'), (e: { code?: string; message: string }) => e.code === 'E_UNSUPPORTED' && /tools\[1\]\.function\.parameters at #: the keyword not/.test(e.message));
  });

  const stacks = (family: ToolFamily, o: ToolOptions) => new StackSets(compileGbnf(toolGrammar(TOOLS, o, family)!));
  const HERMES_CALL = '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": -2}}\n</tool_call>';
  const LLAMA_CALL = '{"name": "get_weather", "parameters": {"city": "Oslo", "unit": "celsius"}}';

  it('accepts exactly the family calls with valid arguments (and free text only under auto)', () => {
    const h = stacks('hermes', { toolChoice: 'required' });
    assert.ok(accepts(h, HERMES_CALL));
    assert.ok(accepts(h, `${HERMES_CALL}\n<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>`));
    assert.ok(!accepts(h, '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 200}}\n</tool_call>'), 'b out of range');
    assert.ok(!accepts(h, '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>'), 'b required');
    assert.ok(!accepts(h, '<tool_call>\n{"name": "sub", "arguments": {}}\n</tool_call>'), 'no such function');
    assert.ok(!accepts(h, '<tool_call>\n{"name": "now", "arguments": {"x": 1}}\n</tool_call>'), 'now takes no arguments');
    assert.ok(!accepts(h, 'Hello'), 'required: no free text');
    assert.ok(!accepts(stacks('hermes', { toolChoice: 'required', parallelToolCalls: false }), `${HERMES_CALL}\n${HERMES_CALL}`), 'one call');
    const named = stacks('hermes', { toolChoice: { type: 'function', function: { name: 'now' } } });
    assert.ok(accepts(named, '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>') && !accepts(named, HERMES_CALL));
    const auto = stacks('hermes', {});
    assert.ok(accepts(auto, HERMES_CALL) && accepts(auto, 'Hello <b>there</b>') && accepts(auto, '') && accepts(auto, '<b>'));
    // text, then calls (as Qwen2.5 writes them); never an opening that is not a whole call
    assert.ok(accepts(auto, `I will add them.\n${HERMES_CALL}`) && accepts(auto, `<<tool_cal<tool_call ${HERMES_CALL}\n${HERMES_CALL}`));
    for (const t of ['<tool_call>', 'Hi <tool_call>\n{"name": "sub", "arguments": {}}\n</tool_call>', `${HERMES_CALL} and after`, `a<tool_call>b`, '<<tool_call>'])
      assert.ok(!accepts(auto, t), t);
    const l = stacks('llama3', { toolChoice: 'auto' });
    assert.ok(accepts(l, LLAMA_CALL) && accepts(l, 'It is sunny.') && !accepts(l, '{"a": 1}') && !accepts(l, `${LLAMA_CALL}\n${LLAMA_CALL}`));
    assert.ok(!accepts(l, '{"name": "get_weather", "arguments": {"city": "Oslo"}}'), 'llama3 says parameters');
    assert.equal(toolGrammar(TOOLS, { toolChoice: 'none' }, 'hermes'), undefined);
    assert.equal(toolGrammar(undefined, {}, 'hermes'), undefined);
  });

  it('parses calls back, and nothing from free text or an unfinished call', () => {
    const two = parseToolCalls(`${HERMES_CALL}\n<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>`, 'hermes')!;
    assert.deepEqual(two.map((c) => [c.type, c.function.name, c.function.arguments]), [['function', 'add', '{"a":1,"b":-2}'], ['function', 'now', '{}']]);
    assert.match(two[0].id, /^call_[0-9a-f]{24}$/);
    assert.notEqual(two[0].id, two[1].id);
    assert.deepEqual(parseToolCalls(LLAMA_CALL, 'llama3')!.map((c) => c.function.arguments), ['{"city":"Oslo","unit":"celsius"}']);
    assert.equal(parseToolCalls('Hello', 'hermes'), undefined);
    assert.equal(parseToolCalls(HERMES_CALL.slice(0, -3), 'hermes'), undefined);
    assert.equal(parseToolCalls(LLAMA_CALL.slice(0, -1), 'llama3'), undefined);
  });

  it('splits text before the calls off as content; streams all but what may still become a call', () => {
    const r = toolReply(`Let me add.\n\n${HERMES_CALL}`, 'hermes');
    assert.equal(r.content, 'Let me add.');
    assert.deepEqual(r.toolCalls?.map((c) => c.function.arguments), ['{"a":1,"b":-2}']);
    assert.equal(toolReply(HERMES_CALL, 'hermes').content, '');
    assert.deepEqual(toolReply(`Hi ${HERMES_CALL.slice(0, -3)}`, 'hermes'), { content: `Hi ${HERMES_CALL.slice(0, -3)}` }, 'unfinished: all content');
    assert.deepEqual(toolReply('Hello', 'llama3'), { content: 'Hello' });
    assert.equal(toolReply(LLAMA_CALL, 'llama3').toolCalls?.length, 1);
    const cases: [string, string][] = [
      ['Hello', 'Hello'], ['Hello <', 'Hello'], ['Hello <tool_c', 'Hello'], ['Hello <b>', 'Hello <b>'], ['Hi\n\n', 'Hi'],
      [`Hi\n${HERMES_CALL.slice(0, 20)}`, 'Hi'], ['a<<tool_ca', 'a<'], ['', ''],
    ];
    for (const [text, shown] of cases) assert.equal(text.slice(0, surelyContent(text, 'hermes')), shown, text);
    assert.equal(surelyContent('{"name"', 'llama3'), 0);
    assert.equal(surelyContent('Sunny {', 'llama3'), 7);
    // streamed piece by piece, what is sent is always a start of the final content
    const full = `Sure <b>.\n${HERMES_CALL}`;
    let sent = 0;
    for (let i = 1; i <= full.length; i++) sent = Math.max(sent, surelyContent(full.slice(0, i), 'hermes'));
    assert.equal(full.slice(0, sent), toolReply(full, 'hermes').content);
  });

  it("random walks through 'auto' (hermes) split into text without an opening and calls that validate; streamed the same", () => {
    const utf8 = new TextEncoder();
    // token 0 ends the reply (an EOS), 1..256 single bytes, then pieces of calls
    const bytes: Uint8Array[] = [new Uint8Array(0)];
    for (let b = 0; b < 128; b++) bytes.push(Uint8Array.of(b));
    const pieces = ['<tool_call>', '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>', '<tool', '_call>', '\n', '{"name": "', 'now', 'add', '", "arguments": ', '{}', '{"a": 1, "b": 2}', '}\n</tool_call>', ' ', 'Hi'];
    const firstPiece = bytes.length;
    for (const p of pieces) bytes.push(utf8.encode(p));
    const g = compileGbnf(toolGrammar(TOOLS, {}, 'hermes')!);
    const m = new TokenMasks(g, { bytes, eog: [0] });
    const ajv = makeAjv();
    const validate = new Map(TOOLS.map((t) => [t.function.name, ajv.compile((t.function.parameters ?? { type: 'object', additionalProperties: false }) as object)]));
    const r = rng(19);
    let withText = 0, withCalls = 0;
    for (let w = 0; w < 300; w++) {
      let s = m.initial;
      const out: number[] = [];
      let ended = false;
      for (let i = 0; i < 200 && !ended; i++) {
        const mask = m.mask(s);
        const ok: number[] = [];
        for (let t = 0; t < bytes.length; t++) if (mask[t >> 5] & (1 << (t & 31))) ok.push(t);
        // pieces half of the time, where any is allowed
        const favoured = ok.filter((t) => t >= firstPiece || t === 0);
        const from = favoured.length && r() < 0.5 ? favoured : ok;
        const t = from[Math.floor(r() * from.length)];
        if (t === 0) ended = true;
        else out.push(...bytes[t]);
        s = m.next(s, t);
      }
      if (!ended) continue;
      const text = new TextDecoder().decode(Uint8Array.from(out));
      const reply = toolReply(text, 'hermes');
      assert.ok(!reply.content.includes('<tool_call>'), JSON.stringify(text));
      if (text.includes('<tool_call>')) assert.ok(reply.toolCalls?.length, `an opening is always a whole call: ${JSON.stringify(text)}`);
      if (reply.toolCalls) {
        withCalls++;
        if (reply.content) withText++;
        assert.equal(text.slice(0, reply.content.length), reply.content);
        for (const c of reply.toolCalls) assert.ok(validate.get(c.function.name)!(JSON.parse(c.function.arguments)), JSON.stringify(text));
      } else assert.equal(reply.content, text);
      // what a stream releases, prefix by prefix, then the rest of the content at the end
      let sent = 0;
      for (let i = 1; i <= text.length; i++) sent = Math.max(sent, surelyContent(text.slice(0, i), 'hermes'));
      assert.ok(sent <= reply.content.length && reply.content.startsWith(text.slice(0, sent)), JSON.stringify(text));
    }
    console.log(`      ${withText} replies with text and calls, ${withCalls} with calls`);
    assert.ok(withText >= 10 && withCalls >= 20, `${withText} replies with text and calls, ${withCalls} with calls`);
  });

  it('random walks through the grammar always parse into calls whose arguments validate', () => {
    const utf8 = new TextEncoder();
    const bytes: Uint8Array[] = [new Uint8Array(0)];
    for (let b = 0; b < 256; b++) bytes.push(Uint8Array.of(b));
    for (const p of ['<tool_call>', '\n{"name": "', 'get_weather', '", "arguments": ', '{"', '": ', ', "', '}\n</tool_call>', 'celsius', '"}', '12']) bytes.push(utf8.encode(p));
    const ajv = makeAjv();
    const validate = new Map(TOOLS.map((t) => [t.function.name, ajv.compile((t.function.parameters ?? { type: 'object', additionalProperties: false }) as object)]));
    const r = rng(18);
    for (const family of ['hermes', 'llama3'] as const)
      for (const o of [{ toolChoice: 'required', parallelToolCalls: false }, { toolChoice: { type: 'function', function: { name: 'add' } } }] as ToolOptions[]) {
        const g = compileGbnf(toolGrammar(TOOLS, o, family)!);
        const m = new TokenMasks(g, { bytes, eog: [0] });
        const longest = longestBytes(g);
        for (let w = 0; w < 30; w++) {
          let s = m.initial;
          const out: number[] = [];
          for (let i = 0; i <= longest && !m.mustEnd(s); i++) {
            const mask = m.mask(s);
            const ok: number[] = [];
            for (let t = 0; t < bytes.length; t++) if (mask[t >> 5] & (1 << (t & 31))) ok.push(t);
            const t = ok[Math.floor(r() * ok.length)];
            out.push(...bytes[t]);
            s = m.next(s, t);
          }
          assert.ok(m.mustEnd(s), 'the walk completed');
          const text = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(out));
          const calls = parseToolCalls(text, family);
          assert.ok(calls?.length === 1, `${family}: ${JSON.stringify(text)}`);
          const v = validate.get(calls[0].function.name)!;
          assert.ok(v(JSON.parse(calls[0].function.arguments)), `${text}: ${ajv.errorsText(v.errors)}`);
          if (typeof o.toolChoice === 'object') assert.equal(calls[0].function.name, 'add');
        }
      }
  });
});
