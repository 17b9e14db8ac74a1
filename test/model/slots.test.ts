/**
 * Model.openSlots(): a step's spans (prompt chunks of some slots, single tokens of others, in one
 * forward) give each span the logits its sequence gets evaluated alone (model.evaluate), on
 * stories260K, and on a model with a learned position table (tiny GPT-2: each row's position
 * comes from its span, whose last row a step moves to its end for the vocabulary projection);
 * bad spans are E_INVALID_ARG / E_CONTEXT_FULL; the slots hold the model until closed.
 */
import assert from 'node:assert/strict';
import { type Model, loadModel } from '../../lib/model/model.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

describe('Model.openSlots', function () {
  this.timeout(60_000);
  let model: Model;
  before(async function () {
    requireShared(this, 'models/stories260K.gguf');
    model = await loadModel(sharedPath('models/stories260K.gguf'), { threads: 1, contextSize: 128 });
  });
  after(() => model?.dispose());

  it('spans of several slots in one forward give each sequence its solo logits', async () => {
    const texts = ['Once upon a time, there was a girl', 'Tom and his dog went to the park', 'The sun'];
    const ids = texts.map((t) => model.tokenizer.encode(t, { addSpecial: true }));
    const solo: Float32Array[][] = [];
    for (const p of ids) solo.push([await model.evaluate(p.slice(0, 5)), await model.evaluate(p)]);
    const slots = await model.openSlots(3);
    try {
      // step 1: slot 0 reads 5 tokens, slot 2 reads 3; step 2: slot 0 the rest, slot 1 all, slot 2 the rest
      const a = await slots.step([{ slot: 0, ids: ids[0].slice(0, 5), pos: 0 }, { slot: 2, ids: ids[2].slice(0, 3), pos: 0 }]);
      assert.deepEqual(a[0], solo[0][0]);
      const b = await slots.step([
        { slot: 1, ids: ids[1], pos: 0 },
        { slot: 0, ids: ids[0].slice(5), pos: 5 },
        { slot: 2, ids: ids[2].slice(3), pos: 3 },
      ]);
      assert.deepEqual(b, [solo[1][1], solo[0][1], solo[2][1]]);
      await assert.rejects(slots.step([{ slot: 3, ids: [1], pos: 0 }]), { code: 'E_INVALID_ARG' });
      await assert.rejects(slots.step([{ slot: 0, ids: [1], pos: 0 }, { slot: 0, ids: [1], pos: 1 }]), { code: 'E_INVALID_ARG' });
      await assert.rejects(slots.step([{ slot: 0, ids: [1, 2], pos: 127 }]), { code: 'E_CONTEXT_FULL' });
      // more tokens than a step's batch (128)
      await assert.rejects(slots.step([{ slot: 0, ids: new Array(100).fill(1), pos: 0 }, { slot: 1, ids: new Array(100).fill(1), pos: 0 }]), { code: 'E_INVALID_ARG' });
    } finally {
      slots.close();
    }
    // released: the model takes calls again
    assert.equal((await model.evaluate([1])).length, model.config.vocabSize);
  });

  it('a learned position table (tiny GPT-2): decode rows and prompt chunks in one step give the solo logits', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-gpt2/model.safetensors');
    await using gpt2 = await loadModel(sharedPath('models/hf/neural-api-tiny-gpt2'), { threads: 1, contextSize: 16 });
    const a = [1, 5, 2, 9, 3, 0, 7], b = [7, 7, 4, 10, 2, 6], c = [3, 8, 1];
    const solo = [await gpt2.evaluate(a), await gpt2.evaluate(b), await gpt2.evaluate(c.slice(0, 1)), await gpt2.evaluate(c)];
    const slots = await gpt2.openSlots(3);
    try {
      await slots.step([{ slot: 0, ids: a.slice(0, 6), pos: 0 }]);
      // slot 0 decodes one token between two prompt chunks: rows reordered, positions kept
      const one = await slots.step([{ slot: 1, ids: b, pos: 0 }, { slot: 0, ids: a.slice(6), pos: 6 }, { slot: 2, ids: c.slice(0, 1), pos: 0 }]);
      assert.deepEqual(one, [solo[1], solo[0], solo[2]]);
      assert.deepEqual(await slots.step([{ slot: 2, ids: c.slice(1), pos: 1 }]), [solo[3]]);
    } finally {
      slots.close();
    }
  });

  it('other calls wait while the slots are open', async () => {
    const slots = await model.openSlots(1);
    let done = false;
    const call = model.evaluate([1]).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(done, false);
    slots.close();
    await call;
    assert.equal(done, true);
    await assert.rejects(slots.step([{ slot: 0, ids: [1], pos: 0 }]), { code: 'E_DISPOSED' });
  });
});
