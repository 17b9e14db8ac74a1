/**
 * Hostile chat templates (issue 15, finding 3): a render has a time, step and output budget
 * (E_TEMPLATE past it), and Chat renders in a worker thread, so the event loop stays free while
 * a template runs.
 */
import assert from 'node:assert/strict';
import { ChatTemplate, loadModel } from '../../lib/index.js';
import { tokenizerFromJson } from '../../lib/tokenizer/from-tokenizer-json.js';
import { requireShared } from '../helpers/shared.js';
import { TINY_LLAMA, loopGap, rejectsCode, removeFolder, tinyFolder, tokJson } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const tok = tokenizerFromJson(tokJson());
const user = [{ role: 'user', content: 'a' }];

describe('hostile chat templates', function () {
  this.timeout(30_000);

  it('range(100000000) is E_TEMPLATE at once (it used to build a 1e8 list and loop for minutes)', async () => {
    const t = new ChatTemplate(tok, { template: '{% for i in range(100000000) %}x{% endfor %}' });
    const t0 = performance.now();
    await rejectsCode(() => t.render(user), 'E_TEMPLATE', /range\(\)/);
    await rejectsCode(t.renderAsync(user), 'E_TEMPLATE', /range\(\)/);
    assert.ok(performance.now() - t0 < 5000);
  });

  it('nested loops past the step budget, a render past its time, output past its size: E_TEMPLATE', async () => {
    const nested = '{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}';
    await rejectsCode(() => new ChatTemplate(tok, { template: nested, templateBudget: { timeMs: 60_000, steps: 10_000 } }).render(user), 'E_TEMPLATE', /steps/);
    const slow = '{% for i in range(1000000) %}{% set x = i * 2 %}{% endfor %}';
    await rejectsCode(() => new ChatTemplate(tok, { template: slow, templateBudget: { steps: 1e12, timeMs: 200 } }).render(user), 'E_TEMPLATE', /200 ms/);
    const long = "{% for i in range(100) %}{{ 'abcdefghij' }}{% endfor %}";
    assert.equal(new ChatTemplate(tok, { template: long }).render(user).length, 1000);
    await rejectsCode(() => new ChatTemplate(tok, { template: long, templateBudget: { outputChars: 100 } }).render(user), 'E_TEMPLATE', /100 characters/);
    await rejectsCode(() => new ChatTemplate(tok, { template: long, templateBudget: { steps: -1 } }), 'E_INVALID_ARG', /templateBudget\.steps/);
    await rejectsCode(() => new ChatTemplate(tok, { template: long, templateBudget: null as any }), 'E_INVALID_ARG', /templateBudget/);
  });

  it('renderAsync() runs in a worker: the event loop stays free (delay < 50 ms) while a template spins', async () => {
    const spin = '{% for i in range(3000) %}{% for j in range(3000) %}{% set x = i * j %}{% endfor %}{% endfor %}';
    const t = new ChatTemplate(tok, { template: spin, templateBudget: { timeMs: 800, steps: 1e12 } });
    await new ChatTemplate(tok).renderAsync(user); // a warm worker
    const t0 = performance.now();
    const { gap } = await loopGap(() => rejectsCode(t.renderAsync(user), 'E_TEMPLATE', /800 ms/));
    assert.ok(performance.now() - t0 >= 700, 'the render ran in the worker until its budget');
    assert.ok(gap < 50, `event loop delay ${gap.toFixed(1)} ms`);
    // the worker still serves the next render, results equal to the in-thread ones
    const ok = new ChatTemplate(tok);
    assert.equal(await ok.renderAsync(user), ok.render(user));
    const raising = new ChatTemplate(tok, { template: "{{ raise_exception('no') }}" });
    // a template that builds more than the worker's heap: E_TEMPLATE, and the next render gets a fresh worker
    const hog = new ChatTemplate(tok, { template: '{% for i in range(30000000) %}{% endfor %}', templateBudget: { steps: 1e12, timeMs: 60_000 } });
    await rejectsCode(hog.renderAsync(user), 'E_TEMPLATE', /MB/);
    assert.equal(await ok.renderAsync(user), ok.render(user));
    await rejectsCode(raising.renderAsync(user), 'E_INVALID_ARG', /no/);
  });

  it('Chat.send() with a hostile template is E_TEMPLATE and leaves the model usable', async function () {
    requireShared(this, TINY_LLAMA);
    const dir = tinyFolder(() => {}, { 'tokenizer.json': JSON.stringify(tokJson()) });
    try {
      await using m = await loadModel(dir, { threads: 1 });
      await rejectsCode(m.chat({ template: '{% for i in range(100000000) %}{% endfor %}' }).send('a'), 'E_TEMPLATE');
      const r = await m.chat({ template: "{{ messages[0]['content'] }}", templateBudget: { timeMs: 1000 } }).send('a', { maxTokens: 2, ignoreEog: true });
      assert.equal(r.ids.length, 2);
    } finally {
      removeFolder(dir);
    }
  });
});
