/**
 * Generation defaults from a model's generation_config.json follow transformers: greedy unless
 * do_sample, then temperature 1 / top-k 50 / top-p 1 unless given; repetition penalty and
 * max_new_tokens carried over; eos_token_id (one or several) ends generation, through the
 * folder's tokenizer.eogIds, also when a call passes eogIds of its own. The model applies them
 * under the call's own options, and a real HF folder's file is read.
 */
import assert from 'node:assert/strict';
import { generationDefaults } from '../../lib/generate.js';
import { loadModel } from '../../lib/index.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

describe('generation_config defaults', () => {
  it('maps the transformers fields', () => {
    assert.deepEqual(generationDefaults({}), {});
    assert.deepEqual(generationDefaults({ do_sample: false, temperature: 0.6, eos_token_id: 2 }), {});
    assert.deepEqual(generationDefaults({ do_sample: true, top_p: 0.9, repetition_penalty: 1.1, max_new_tokens: 20, eos_token_id: [2, 32007] }), {
      temperature: 1,
      topK: 50,
      topP: 0.9,
      repeatPenalty: 1.1,
      maxTokens: 20,
    });
  });

  it("a model folder's generation_config applies under the call's options", async function () {
    requireShared(this, 'models/hf/lm-buddy-fake-gpt2/generation_config.json');
    await using m = await loadModel(sharedPath('models/hf/lm-buddy-fake-gpt2'));
    assert.equal(m.generationConfig.eos_token_id, 50256);
    assert.deepEqual(m.tokenizer.eogIds, [50256]);
    // logit bias makes 50256 (generation_config's eos) the greedy choice: generation ends at once,
    // and still does when the call adds end tokens of its own
    for (const eogIds of [undefined, [13]]) {
      const r = await m.generate('Hello', { maxTokens: 5, logitBias: { 50256: 1000 }, eogIds });
      assert.equal(r.finishReason, 'eog');
      assert.equal(r.ids.length, 0);
    }
    const forced = await m.generate('Hello', { maxTokens: 3, logitBias: { 50256: 1000 }, ignoreEog: true });
    assert.deepEqual(forced.ids, [50256, 50256, 50256]);
  });
});
