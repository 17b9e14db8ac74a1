/**
 * The chat templates of the model families people run, rendered by @huggingface/jinja through
 * ChatTemplate with the variables transformers passes (messages, add_generation_prompt, the
 * model's own bos_token / eos_token texts, tools = none, raise_exception, strftime_now) and
 * date_string, then tokenized with their special tokens recognized. The templates are the
 * models' published ones (test/fixtures/chat-templates/SOURCES.md); the expected texts are
 * written out by hand from each family's documented prompt format. Also: a BOS is never
 * doubled (added when the template has none and the tokenizer adds one, as llama.cpp does); a
 * system message that the template refuses (Gemma, Mistral-Instruct) or drops (the Phi-3 vocab
 * file's old template) is merged into the first user turn; every failure is a FuselmError with
 * a code. (These renders were also checked, once, equal to Python's Jinja2 set up as
 * transformers' apply_chat_template sets it up.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ChatTemplate, applyChatTemplate, loadTokenizer, type ChatMessage, type Tokenizer } from '../lib/index.js';
import { strftime } from '../lib/jinja-env.js';
import { requireFiles, TOKENIZER_FILES, VOCAB_DIR } from './tokenizer/helpers.js';
import { gemmaTokenizer } from './helpers/vocab.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/chat-templates/${name}.jinja`, import.meta.url), 'utf8');
const SYSTEM = 'You are a helpful assistant.';
const withSystem: ChatMessage[] = [
  { role: 'system', content: SYSTEM },
  { role: 'user', content: 'Hello!' },
];
const twoTurns: ChatMessage[] = [
  { role: 'user', content: 'Hello!' },
  { role: 'assistant', content: ' Hi, how can I help? ' },
  { role: 'user', content: 'Tell me a joke.' },
];
const count = (ids: number[], id: number) => ids.filter((x) => x === id).length;
/** The special tokens came out as single ids: dropping them while decoding leaves no marker text. */
const noMarkerText = (tok: Tokenizer, ids: number[], marker: RegExp) => assert.doesNotMatch(tok.decode(ids), marker);

describe('chat templates: Llama-3.1-Instruct', function () {
  let tok: Tokenizer;
  before(async function () {
    requireFiles(this, TOKENIZER_FILES.llama3);
    tok = await loadTokenizer(TOKENIZER_FILES.llama3);
  });

  it('renders the documented format with <|begin_of_text|>, headers and <|eot_id|> as single tokens', () => {
    const t = new ChatTemplate(tok, { template: fixture('llama-3.1-instruct'), templateVariables: { date_string: '26 Jul 2024' } });
    assert.equal(
      t.render(withSystem),
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n' +
        'You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    const ids = t.encode(withSystem);
    assert.deepEqual([ids[0], count(ids, 128000)], [128000, 1]);
    assert.deepEqual([count(ids, 128006), count(ids, 128007), count(ids, 128009)], [3, 3, 2]);
    noMarkerText(tok, ids, /<\||\|>/);
    assert.equal(ids.at(-1), tok.encode('\n\n')[0]);
    // assistant turns are trimmed; no system message still writes the system header
    assert.equal(
      t.render(twoTurns),
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi, how can I help?<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it("dates the system header today unless date_string is given (llama.cpp's behaviour)", () => {
    const t = new ChatTemplate(tok, { template: fixture('llama-3.1-instruct') });
    const before = strftime(new Date(), '%d %b %Y');
    const text = t.render(withSystem);
    const after = strftime(new Date(), '%d %b %Y');
    assert.ok(text.includes(`Today Date: ${before}\n`) || text.includes(`Today Date: ${after}\n`), text);
  });

  it("the package's Meta-Llama-3-Instruct template (its tokenizer_config.json) is the tokenizer's own", () => {
    assert.match(tok.chatTemplate!, /<\|start_header_id\|>/);
    assert.equal(
      applyChatTemplate(tok, withSystem).text,
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });
});

describe('chat templates: Qwen2.5-Instruct (ChatML)', function () {
  let tok: Tokenizer;
  before(async function () {
    requireFiles(this, TOKENIZER_FILES.qwen3);
    tok = await loadTokenizer(TOKENIZER_FILES.qwen3); // Qwen3's vocab: the same ChatML tokens as Qwen2.5's
  });

  it('renders <|im_start|> / <|im_end|> turns, with its default system message when there is none', () => {
    const t = new ChatTemplate(tok, { template: fixture('qwen2.5-instruct') });
    assert.equal(t.render(withSystem), '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n');
    assert.equal(
      t.render(twoTurns),
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n Hi, how can I help? <|im_end|>\n' +
        '<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n',
    );
    const ids = t.encode(withSystem);
    assert.equal(ids[0], 151644); // no BOS: Qwen adds none
    assert.deepEqual([count(ids, 151644), count(ids, 151645)], [3, 2]);
    noMarkerText(tok, ids, /<\||\|>/);
  });

  it("the package's Qwen3 template is the tokenizer's own, and takes enable_thinking", () => {
    const user = [{ role: 'user', content: 'Hello!' }];
    assert.equal(applyChatTemplate(tok, user).text, '<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n');
    assert.equal(
      applyChatTemplate(tok, user, { templateVariables: { enable_thinking: false } }).text,
      '<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
    );
  });
});

describe('chat templates: Gemma-2-it', () => {
  // the template as the model's own (a GGUF's tokenizer.chat_template), with Gemma's special-token ids
  const tok = gemmaTokenizer(fixture('gemma-2-it'));
  const t = new ChatTemplate(tok);

  it('renders <start_of_turn>user / model turns after <bos>, trimmed, the BOS not doubled', () => {
    assert.equal(t.source, fixture('gemma-2-it'));
    assert.equal(
      t.render(twoTurns),
      '<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi, how can I help?<end_of_turn>\n' +
        '<start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n',
    );
    const ids = t.encode(twoTurns);
    assert.deepEqual(ids.slice(0, 2), [2, 106]);
    assert.deepEqual([count(ids, 2), count(ids, 106), count(ids, 107)], [1, 4, 3]);
    assert.ok(tok.addBos, 'the tokenizer adds a BOS, the template wrote it: one');
  });

  it('refuses a system role, so the system message is merged into the first user turn (as llama.cpp and Gemma-3 do)', () => {
    assert.equal(t.supportsSystemRole, false);
    assert.equal(t.render(withSystem), '<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n<start_of_turn>model\n');
    // an empty system message merges as nothing
    assert.equal(t.render([{ role: 'system', content: '' }, ...withSystem.slice(1)]), t.render(withSystem.slice(1)));
  });

  it("the template's own refusals are E_INVALID_ARG with its message", () => {
    const bad = (messages: ChatMessage[], re: RegExp) =>
      assert.throws(() => t.render(messages), (e: Error & { code?: string }) => e.code === 'E_INVALID_ARG' && re.test(e.message));
    bad([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }], /Conversation roles must alternate/);
    bad([{ role: 'system', content: 'alone' }], /System role not supported/);
  });
});

describe('chat templates: Phi-3-mini-instruct', function () {
  let tok: Tokenizer;
  before(async function () {
    const file = path.join(VOCAB_DIR, 'ggml-vocab-phi-3.gguf');
    requireFiles(this, file);
    tok = await loadTokenizer(file);
  });

  it('renders <|system|> / <|user|> / <|assistant|> turns closed by <|end|>, and adds the BOS the template lacks', () => {
    const t = new ChatTemplate(tok, { template: fixture('phi-3-mini-instruct') });
    const text = t.render(withSystem);
    assert.equal(text, '<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n<|assistant|>\n');
    const ids = t.encode(withSystem);
    // llama.cpp adds the BOS (add_bos_token); transformers' apply_chat_template would not
    assert.deepEqual([ids[0], count(ids, 1)], [1, 1]);
    assert.deepEqual(
      ids.filter((id) => id >= 32000).map((id) => tok.tokenToPiece(id)),
      ['<|system|>', '<|end|>', '<|user|>', '<|end|>', '<|assistant|>'],
    );
    assert.deepEqual(ids.slice(1), tok.encode(text, { parseSpecial: true }));
    // without the generation prompt the template closes with eos_token, the model's own
    assert.equal(t.render(withSystem, { addGenerationPrompt: false }), '<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n<|endoftext|>');
    assert.equal(t.supportsSystemRole, true);
  });
});

describe('chat templates: Mistral-Instruct', function () {
  let tok: Tokenizer;
  before(async function () {
    const file = path.join(VOCAB_DIR, 'ggml-vocab-llama-spm.gguf');
    requireFiles(this, file);
    tok = await loadTokenizer(file); // the Llama-2 SentencePiece vocab: <s> 1, </s> 2
  });

  it('renders [INST] turns after one <s>, replies closed by </s>; a system message is merged', () => {
    const t = new ChatTemplate(tok, { template: fixture('mistral-instruct') });
    assert.equal(t.render(twoTurns), '<s>[INST] Hello! [/INST] Hi, how can I help? </s>[INST] Tell me a joke. [/INST]');
    const ids = t.encode(twoTurns);
    assert.deepEqual([ids[0], count(ids, 1), count(ids, 2)], [1, 1, 1]);
    assert.equal(t.supportsSystemRole, false); // it raises 'Only user and assistant roles are supported!'
    assert.equal(t.render(withSystem), '<s>[INST] You are a helpful assistant.\n\nHello! [/INST]');
  });
});

describe('chat templates: variables and errors', function () {
  let tok: Tokenizer;
  before(async function () {
    const file = path.join(VOCAB_DIR, 'ggml-vocab-phi-3.gguf');
    requireFiles(this, file);
    tok = await loadTokenizer(file);
  });

  it("passes the model's special-token texts, tools and documents as none, and the caller's variables over fuselm's", () => {
    const template =
      "{{ bos_token }}|{{ eos_token }}|{{ unk_token }}|{{ pad_token }}|{% if tools is none and documents is none %}none{% endif %}|" +
      '{{ add_generation_prompt }}|{{ date_string }}|{{ extra }}|{{ messages | length }}';
    const r = applyChatTemplate(tok, twoTurns, { template, templateVariables: { date_string: '1 Jan 2000', extra: 'x' } });
    assert.equal(r.text, '<s>|<|endoftext|>|<unk>|<|endoftext|>|none|true|1 Jan 2000|x|3');
    // a tokenizer without a BOS leaves bos_token undefined (Qwen's), as transformers does
    const noBos = Object.create(tok, { bos: { value: undefined } }) as Tokenizer;
    assert.equal(applyChatTemplate(noBos, withSystem, { template: '{{ bos_token is defined }}' }).text, 'false');
  });

  it("strftime_now and strftime as Python's C locale", () => {
    const d = new Date(2024, 6, 26, 9, 5, 3);
    assert.equal(strftime(d, '%d %b %Y'), '26 Jul 2024');
    assert.equal(strftime(d, '%A %a %B %e %H:%M:%S %I%p %j %y %m %Y %% %Q'), 'Friday Fri July 26 09:05:03 09AM 208 24 07 2024 % %Q');
    assert.equal(strftime(new Date(2024, 0, 5, 13), '%d|%e|%I %p|%j'), '05| 5|01 PM|005');
    const now = applyChatTemplate(tok, withSystem, { template: "{{ strftime_now('%Y-%m-%d') }}" }).text;
    const today = new Date();
    assert.match(now, /^\d{4}-\d{2}-\d{2}$/);
    assert.ok(Math.abs(new Date(`${now}T12:00:00`).getTime() - today.getTime()) < 2 * 86400e3, now);
  });

  it('errors: E_UNSUPPORTED for a model template fuselm cannot run, E_INVALID_ARG for a bad one given or bad messages', () => {
    const own = (chatTemplate: string) => Object.create(tok, { chatTemplate: { value: chatTemplate } }) as Tokenizer;
    const code = (c: string, re: RegExp) => (e: Error & { code?: string }) => e.code === c && re.test(e.message);
    assert.throws(() => new ChatTemplate(own('{% for %}')), code('E_UNSUPPORTED', /model's chat template does not parse/));
    assert.throws(() => new ChatTemplate(tok, { template: '{% for %}' }), code('E_INVALID_ARG', /given in the options does not parse/));
    assert.throws(() => new ChatTemplate(tok, { template: 42 as unknown as string }), code('E_INVALID_ARG', /template must be a string/));
    assert.throws(() => new ChatTemplate(own('{{ messages[0].content.no_such_method() }}')).render(withSystem), code('E_UNSUPPORTED', /failed to render/));
    assert.throws(() => applyChatTemplate(tok, withSystem, { template: "{{ raise_exception('no thanks') }}" }), code('E_INVALID_ARG', /rejected the conversation: no thanks/));
    assert.throws(() => applyChatTemplate(tok, [{ role: 'user' } as ChatMessage]), code('E_INVALID_ARG', /messages\[0\]/));
    assert.throws(() => applyChatTemplate(tok, 'hi' as unknown as ChatMessage[]), code('E_INVALID_ARG', /array/));
  });

  it("merges a system message into the first user turn where the template drops it (this Phi-3 vocab file's own template)", () => {
    const t = new ChatTemplate(tok);
    assert.doesNotMatch(t.source, /system/);
    assert.equal(t.supportsSystemRole, false);
    assert.equal(t.render(withSystem), '<s><|user|>\nYou are a helpful assistant.\n\nHello!<|end|>\n<|assistant|>\n');
    // the BOS the template writes is the one the tokenizer would add: not doubled
    assert.deepEqual(t.encode(withSystem), tok.encode(t.render(withSystem), { parseSpecial: true }));
    assert.equal(count(t.encode(withSystem), 1), 1);
  });

  it('falls back to ChatML for a tokenizer without a template', () => {
    const bare = Object.create(tok, { chatTemplate: { value: undefined } }) as Tokenizer;
    assert.equal(applyChatTemplate(bare, withSystem).text, '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n');
  });
});
