/**
 * Chat sessions on stories260K with the TinyLlama chat template taken from a real
 * tokenizer_config.json: the prompt is the template's rendering, a second turn reuses the KV
 * cache of the first (evaluating only new tokens) and still generates exactly what a fresh
 * evaluation of the same prompt does; a turn must leave maxTokens positions free for the reply,
 * and one that does not is an error or shifts, as asked.
 */
import assert from 'node:assert/strict';
import { loadModel, type Model } from '../lib/index.js';
import { readSharedJson, requireShared, sharedPath } from './helpers/shared.js';

describe('chat', function () {
  let model: Model;
  let template: string;

  before(async function () {
    requireShared(this, 'models/stories260K.gguf', 'tokenizers/hf/llama2-tinyllama/tokenizer_config.json');
    template = readSharedJson('tokenizers/hf/llama2-tinyllama/tokenizer_config.json').chat_template;
    model = await loadModel(sharedPath('models/stories260K.gguf'), { threads: 1, contextSize: 256 });
  });
  after(async () => model?.dispose());

  it('renders the conversation with the template and keeps the messages', async () => {
    const chat = model.chat({ system: 'You tell stories.', template, maxTokens: 12 });
    const r = await chat.send('Tell me about Lily.');
    const rendered = '<|system|>\nYou tell stories.</s>\n<|user|>\nTell me about Lily.</s>\n<|assistant|>\n';
    // BOS, then the template's text with </s> parsed as the EOS token
    assert.deepEqual(r.promptIds, [1, ...model.tokenizer.encode(rendered, { parseSpecial: true })]);
    assert.ok(r.promptIds.includes(2), 'eos_token text became the EOS token');
    assert.deepEqual(chat.messages.map((m) => m.role), ['system', 'user', 'assistant']);
    assert.equal(chat.messages[2].content, r.text);
  });

  it('a second turn evaluates only its new tokens and equals a fresh evaluation', async () => {
    const chat = model.chat({ template, maxTokens: 10 });
    const first = await chat.send('Once upon a time');
    const second = await chat.send('What happened next?');
    assert.ok(second.timings.cachedTokens >= first.promptIds.length, `reused ${second.timings.cachedTokens} of ${second.promptIds.length}`);
    assert.deepEqual(second.promptIds.slice(0, first.promptIds.length), first.promptIds);
    await model.clearCache();
    const fresh = await model.generate(second.promptIds, { maxTokens: 10 });
    assert.equal(fresh.timings.cachedTokens, 0);
    assert.deepEqual(second.ids, fresh.ids);
  });

  it('streams a reply and records it', async () => {
    const chat = model.chat({ template });
    let text = '';
    for await (const c of chat.stream('Hi', { maxTokens: 8 })) text += c.text;
    assert.equal(chat.messages.at(-1)!.content, text);
  });

  it('a full context is an E_CONTEXT_FULL error by default, or drops the oldest turns', async () => {
    await using small = await loadModel(sharedPath('models/stories260K.gguf'), { contextSize: 60 });
    const strict = small.chat({ template, maxTokens: 4 });
    const shifting = small.chat({ template, maxTokens: 4, contextShift: 'dropOldest' });
    const long = 'Lily and Tom went to the park and played with a big red ball all day.';
    await strict.send(long);
    await assert.rejects(strict.send(long), { code: 'E_CONTEXT_FULL' });
    await shifting.send(long);
    const r = await shifting.send(long);
    assert.ok(r.promptIds.length + 4 <= 60);
    assert.equal(shifting.messages.length, 4); // the history is kept; only the prompt dropped turns
  });

  it('keeps maxTokens positions free for the reply: one fewer is E_CONTEXT_FULL, or drops the oldest turn', async () => {
    const maxTokens = 6;
    const first = 'Once upon a time', second = 'What happened next?';
    const probe = model.chat({ template, maxTokens });
    await probe.send(first);
    const needed = (await probe.send(second)).promptIds.length; // the second turn's whole prompt
    const alone = (await model.chat({ template, maxTokens }).send(second)).promptIds;
    const atContext = (contextSize: number) => loadModel(sharedPath('models/stories260K.gguf'), { threads: 1, contextSize });
    {
      await using exact = await atContext(needed + maxTokens);
      const chat = exact.chat({ template, maxTokens });
      await chat.send(first);
      assert.equal((await chat.send(second)).promptIds.length, needed);
    }
    await using short = await atContext(needed + maxTokens - 1);
    const strict = short.chat({ template, maxTokens });
    await strict.send(first);
    await assert.rejects(strict.send(second), { code: 'E_CONTEXT_FULL' });
    const shifting = short.chat({ template, maxTokens, contextShift: 'dropOldest' });
    await shifting.send(first);
    assert.deepEqual((await shifting.send(second)).promptIds, alone);
  });

  it('falls back to ChatML for a model without a template, and rejects a broken one', () => {
    assert.equal(model.tokenizer.chatTemplate, undefined);
    assert.ok(model.chat());
    assert.throws(() => model.chat({ template: '{% for %}' }), { code: 'E_INVALID_ARG' });
  });
});
