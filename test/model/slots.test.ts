/**
 * Model.openSlots(): a step's spans (prompt chunks of some slots, single tokens of others, in one
 * forward) give each span the logits its sequence gets evaluated alone (model.evaluate), on
 * stories260K, and on a model with a learned position table (tiny GPT-2: each row's position
 * comes from its span, whose last row a step moves to its end for the vocabulary projection);
 * bad spans are E_INVALID_ARG / E_CONTEXT_FULL; the slots hold the model until closed. Paged
 * slots (one pool of blocks, a block table per slot, scattered blocks) give the contiguous
 * slots' logits bit for bit, across block boundaries, and a position without a block is refused;
 * a block's first rows copied into another (copyBlockRows, copy on write) give a slot reading
 * through the copy the logits of the slot that wrote them, on the CPU and on the CUDA backend
 * (its emulator without a GPU).
 */
import assert from 'node:assert/strict';
import { type Model, loadModel } from '../../lib/model/model.js';
import { requireShared, sharedPath } from '../helpers/shared.js';
import { loadOnCuda } from '../helpers/cuda.js';

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

  it('paged slots (blocks of 16, scattered in a shared pool) give the contiguous slots\' logits bit for bit', async () => {
    const texts = ['Once upon a time, there was a little girl named Lily who loved to play outside in the sun', 'Tom and his dog went to the park to play with a big red ball', 'The sun'];
    const ids = texts.map((t) => model.tokenizer.encode(t, { addSpecial: true }));
    assert.ok(ids[0].length > 16 && ids[1].length > 16, 'the prompts cross a block boundary');
    // chunks of 7 tokens, then 12 greedy-decoded tokens each (the contiguous run's choices)
    const script = async (slots: Awaited<ReturnType<Model['openSlots']>>, blocks?: (slot: number, upTo: number) => void) => {
      const out: Float32Array[][] = [];
      const pos = ids.map(() => 0), next: number[] = ids.map(() => -1);
      for (let step = 0; step < 20; step++) {
        const spans = ids.map((p, slot) => {
          const ids = pos[slot] < p.length ? p.slice(pos[slot], pos[slot] + 7) : [next[slot]];
          return { slot, ids, pos: pos[slot] };
        });
        for (const sp of spans) blocks?.(sp.slot, sp.pos + sp.ids.length);
        const logits = await slots.step(spans);
        out.push(logits);
        spans.forEach((sp, i) => {
          pos[sp.slot] += sp.ids.length;
          next[sp.slot] = logits[i].indexOf(Math.max(...logits[i]));
        });
      }
      return out;
    };
    const plain = await model.openSlots(3);
    let want: Float32Array[][];
    try {
      want = await script(plain);
    } finally {
      plain.close();
    }
    const paged = await model.openSlots(3, { paged: { blockSize: 16, blocks: 12 } });
    try {
      assert.deepEqual(paged.paged, { blockSize: 16, blocks: 12 });
      // slot s gets blocks 11 - s, 8 - s, 5 - s, ...: interleaved and in descending order
      const held = [[], [], []] as number[][];
      const got = await script(paged, (slot, upTo) => {
        while (held[slot].length * 16 < upTo) held[slot].push(11 - slot - 3 * held[slot].length);
        paged.setBlocks(slot, held[slot]);
      });
      assert.ok(held[0].length >= 2, 'slot 0 used more than one block');
      assert.deepEqual(got, want);
      // a slot whose table lacks the block for its next position
      await assert.rejects(paged.step([{ slot: 2, ids: new Array(40).fill(1), pos: 0 }]), { code: 'E_INVALID_ARG' });
      assert.throws(() => paged.setBlocks(0, [12]), { code: 'E_INVALID_ARG' });
    } finally {
      paged.close();
    }
  });

  for (const device of ['cpu', 'cuda'] as const)
    it(`copyBlockRows: a slot reading through a copy of a block's first rows gets the writer's logits (${device})`, async () => {
      const m = device === 'cpu' ? model : await loadOnCuda(sharedPath('models/stories260K.gguf'), { contextSize: 128 });
      const slots = await m.openSlots(2, { paged: { blockSize: 16, blocks: 8 } });
      try {
        const ids = m.tokenizer.encode('Once upon a time, there was a little girl named Lily. She', { addSpecial: true }).slice(0, 21);
        slots.setBlocks(0, [5, 2]);
        await slots.step([{ slot: 0, ids, pos: 0 }]);
        // slot 1 shares block 5 and has its own copy of block 2's 5 written rows (positions 16..20)
        slots.copyBlockRows(2, 7, 5);
        slots.setBlocks(1, [5, 7]);
        const [a, b] = await slots.step([{ slot: 0, ids: [42], pos: 21 }, { slot: 1, ids: [42], pos: 21 }]);
        assert.deepEqual(b, a);
        // a copy of one row too few (block 6's row for position 20 holding position 4's) gives
        // other logits (a zero row would not do: this model's attention gives it no weight)
        slots.copyBlockRows(5, 6, 16);
        slots.copyBlockRows(2, 6, 4);
        slots.setBlocks(1, [5, 6]);
        const [c] = await slots.step([{ slot: 1, ids: [42], pos: 21 }]);
        assert.notDeepEqual(c, a);
        assert.throws(() => slots.copyBlockRows(2, 8, 1), { code: 'E_INVALID_ARG' });
        assert.throws(() => slots.copyBlockRows(2, 7, 17), { code: 'E_INVALID_ARG' });
      } finally {
        slots.close();
        if (m !== model) await m.dispose();
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
