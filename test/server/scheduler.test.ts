/**
 * The continuous-batching scheduler on stories260K's slots, its steps recorded: a long prompt
 * joins in chunks of at most the step budget, each chunk in the same forward as the running
 * sequences' next tokens (it never stalls them by more than one chunk); results equal solo runs; an aborted sequence leaves
 * before the next step; a kept prefix is reused and gives the same tokens. Paged slots (the
 * server's): a pool too small for every sequence preempts the newest and recomputes it later,
 * and every request still gets its solo tokens; an aborted sequence's blocks leave the used
 * count (back to its baseline of 0); a system prompt shared by many requests is evaluated once
 * (its full blocks found in the prefix cache by every other slot), hits giving the tokens of
 * misses, and cached blocks no slot holds are taken back (LRU, a prefix's tail before its
 * head) for new sequences, never giving a wrong token; a shared prefix ending inside a block is
 * copied from the block holding it (a cached one, or a running sequence's last) and not evaluated
 * again. The same paged batching on the CUDA backend (its emulator
 * without a GPU), preemptions included, gives the CPU's greedy tokens.
 */
import assert from 'node:assert/strict';
import { type Model, loadModel } from '../../lib/model/model.js';
import type { SequenceSlots } from '../../lib/model/slots.js';
import { COPY_MIN_ROWS, Scheduler, type SchedulerEvents } from '../../lib/server/scheduler.js';
import { sharedPrefix } from '../../lib/model/decode-call.js';
import { requireShared, sharedPath } from '../helpers/shared.js';
import { loadOnCuda } from '../helpers/cuda.js';

const STORIES = 'models/stories260K.gguf';

/** One step's spans: the slot and number of tokens of each. */
type Step = { slot: number; n: number }[];

/** Records the spans of every step the scheduler runs on `slots`. */
function record(slots: SequenceSlots): Step[] {
  const steps: Step[] = [];
  const step = slots.step.bind(slots);
  slots.step = (spans) => {
    steps.push(spans.map((sp) => ({ slot: sp.slot, n: sp.ids.length })));
    return step(spans);
  };
  return steps;
}

describe('server scheduler: continuous batching', function () {
  this.timeout(60_000);
  let model: Model;
  before(async function () {
    requireShared(this, STORIES);
    model = await loadModel(sharedPath(STORIES), { threads: 1, contextSize: 512 });
  });
  after(() => model?.dispose());

  it('a long prompt joins in chunks under the step budget, each in the same forward as the running sequence\'s next token', async () => {
    const long = model.tokenizer.encode('Once upon a time, there was a little girl named Lily. '.repeat(8), { addSpecial: true });
    assert.ok(long.length > 100);
    const short = model.tokenizer.encode('Tom had a red ball', { addSpecial: true });
    const soloShort = await model.generate(short, { maxTokens: 40 });
    const soloLong = await model.generate(long, { maxTokens: 8 });
    const slots = await model.openSlots(2);
    const steps = record(slots);
    const s = new Scheduler(slots, model.tokenizer, { maxQueue: 4, stepTokens: 16 });
    try {
      let started!: () => void;
      const running = new Promise<void>((r) => (started = r));
      const a = s.submit(short, { maxTokens: 40, temperature: 0 }, { onChunk: () => started() });
      await running;
      const b = s.submit(long, { maxTokens: 8, temperature: 0 });
      const [ra, rb] = await Promise.all([a, b]);
      assert.deepEqual(ra.ids, soloShort.ids);
      assert.deepEqual(rb.ids, soloLong.ids);
      const chunked = steps.filter((st) => st.some((sp) => sp.slot === 1 && sp.n > 1));
      assert.ok(chunked.length >= Math.ceil(long.length / 16), `${chunked.length} chunks`);
      for (const st of chunked) {
        // the step's budget holds the chunk and the running sequence's token, in one forward
        assert.ok(st.reduce((n, sp) => n + sp.n, 0) <= 16 + 1, JSON.stringify(st));
        assert.deepEqual(st.find((sp) => sp.slot === 0), { slot: 0, n: 1 }, JSON.stringify(st));
      }
      // once both decode, each step takes one token of each
      assert.ok(steps.some((st) => st.length === 2 && st.every((sp) => sp.n === 1)));
    } finally {
      await s.close();
    }
  });

  it('an aborted sequence leaves before the next step; the others go on to their solo result', async () => {
    const p = model.tokenizer.encode('Lily and Tom', { addSpecial: true });
    const solo = await model.generate(p, { maxTokens: 30 });
    const slots = await model.openSlots(3);
    const s = new Scheduler(slots, model.tokenizer, { maxQueue: 4, stepTokens: 64 });
    try {
      const ac = new AbortController();
      let got = 0;
      const doomed = s.submit(p, { maxTokens: 300, temperature: 0 }, {
        signal: ac.signal,
        onChunk: () => {
          if (++got === 3) ac.abort();
        },
      });
      const ok = s.submit(p, { maxTokens: 30, temperature: 0 });
      await assert.rejects(doomed, { code: 'E_ABORTED' });
      assert.equal(got, 3, 'no token after the abort');
      assert.deepEqual((await ok).ids, solo.ids);
      assert.equal(s.running, 0);
    } finally {
      await s.close();
    }
  });

  it('a kept prefix is reused (not evaluated again) and gives the same tokens; waiting requests run in order', async () => {
    const system = model.tokenizer.encode('Once upon a time, there was a little girl named Lily. She liked to play.', { addSpecial: true });
    const p1 = [...system, ...model.tokenizer.encode(' One day')];
    const p2 = [...system, ...model.tokenizer.encode(' Her mom')];
    const solo = [await model.generate(p1, { maxTokens: 12 }), await model.generate(p2, { maxTokens: 12 })];
    const slots = await model.openSlots(1);
    const steps = record(slots);
    const s = new Scheduler(slots, model.tokenizer, { maxQueue: 4, stepTokens: 512 });
    try {
      const [r1, r2] = await Promise.all([s.submit(p1, { maxTokens: 12, temperature: 0 }), s.submit(p2, { maxTokens: 12, temperature: 0 })]);
      assert.deepEqual([r1.ids, r2.ids], [solo[0].ids, solo[1].ids]);
      assert.equal(r1.cachedTokens, 0);
      let common = 0;
      while (p1[common] === p2[common]) common++;
      assert.ok(common >= system.length);
      assert.equal(r2.cachedTokens, common);
      const prompts = steps.flat().filter((sp) => sp.n > 1);
      assert.deepEqual(prompts.map((sp) => sp.n), [p1.length, p2.length - common]);
    } finally {
      await s.close();
    }
  });

  /** Events of a paged scheduler: the last block counts and the preemptions. */
  const blockEvents = () => {
    const seen = { used: 0, kept: 0, free: 0, preempted: 0, maxUsed: 0 };
    const events: SchedulerEvents = {
      blocks: (used, kept, free) => {
        Object.assign(seen, { used, kept, free });
        seen.maxUsed = Math.max(seen.maxUsed, used);
      },
      preempted: () => seen.preempted++,
    };
    return { seen, events };
  };

  it('paged: a pool of one context preempts the newest sequences, and every request still gets its solo tokens', async () => {
    const texts = ['Once upon a time', 'Lily and Tom went to the park. They', 'The dog', 'One day, a little bird', 'Sam had a big red ball. He'];
    const prompts = texts.map((t) => model.tokenizer.encode(t, { addSpecial: true }));
    const lengths = [150, 120, 140, 100, 130];
    const solo: number[][] = [];
    for (const [i, p] of prompts.entries()) solo.push((await model.generate(p, { maxTokens: lengths[i] })).ids);
    // 32 blocks of 16: one 512-position context, while the five sequences need ~45 blocks
    const slots = await model.openSlots(5, { paged: { blockSize: 16, blocks: 32 } });
    const { seen, events } = blockEvents();
    const s = new Scheduler(slots, model.tokenizer, { maxQueue: 8, stepTokens: 64 }, events);
    try {
      const rs = await Promise.all(prompts.map((p, i) => s.submit(p, { maxTokens: lengths[i], temperature: 0 })));
      rs.forEach((r, i) => assert.deepEqual(r.ids, solo[i], `request ${i}`));
      assert.ok(seen.preempted > 0, 'some sequence was preempted');
      assert.ok(seen.maxUsed <= 32);
      assert.deepEqual([seen.used, seen.kept + seen.free], [0, 32]);
    } finally {
      await s.close();
    }
  });

  it('paged: a system prompt shared by many requests is evaluated once, and hits give the tokens of misses', async () => {
    const system = model.tokenizer.encode('Once upon a time, there was a little girl named Lily. She liked to play with her toys in her room. One day her mom said', { addSpecial: true });
    assert.ok(system.length >= 32, `${system.length} tokens`);
    const suffixes = [' hello', ' that', ' to go', ' the sun', ' a cat', ' we can', ' look'];
    const prompts = suffixes.map((t) => [...system, ...model.tokenizer.encode(t)]);
    const solo: number[][] = [];
    for (const p of prompts) solo.push((await model.generate(p, { maxTokens: 12 })).ids);
    const slots = await model.openSlots(4, { paged: { blockSize: 16, blocks: 64 } });
    const steps = record(slots);
    const s = new Scheduler(slots, model.tokenizer, { maxQueue: 8, stepTokens: 512 });
    try {
      const first = await s.submit(prompts[0], { maxTokens: 12, temperature: 0 });
      assert.equal(first.cachedTokens, 0);
      const rest = await Promise.all(prompts.slice(1).map((p) => s.submit(p, { maxTokens: 12, temperature: 0 })));
      [first, ...rest].forEach((r, i) => assert.deepEqual(r.ids, solo[i], `request ${i}`));
      // every later request, in whichever slot, starts after the system prompt's full blocks
      const shared = Math.floor(system.length / 16) * 16;
      for (const r of rest) assert.ok(r.cachedTokens >= shared, `${r.cachedTokens} cached`);
      // every row evaluated: each prompt past what it reused, and each generated token but the last
      const rows = steps.flat().reduce((n, sp) => n + sp.n, 0);
      assert.equal(rows, [first, ...rest].reduce((n, r, i) => n + prompts[i].length - r.cachedTokens + r.ids.length - 1, 0));
    } finally {
      await s.close();
    }
  });

  it('paged: a shared prefix ending inside a block is copied from the block that holds it (copy on write), not evaluated again; tokens unchanged, rows counted once', async () => {
    // 37 tokens and the suffixes' leading space: 2 full blocks and 6 rows of a third in common
    const system = model.tokenizer.encode('Once upon a time, there was a little girl named Lily. She liked to play with her toys in her room. One day her mom said', { addSpecial: true });
    const prompts = [' hello there, my little friend', ' that the sun was out', ' a cat sat on the mat'].map((t) => [...system, ...model.tokenizer.encode(t)]);
    const solo: number[][] = [];
    for (const p of prompts) solo.push((await model.generate(p, { maxTokens: 12 })).ids);
    const slots = await model.openSlots(3, { paged: { blockSize: 16, blocks: 64 } });
    const steps = record(slots);
    const s = new Scheduler(slots, model.tokenizer, { maxQueue: 8, stepTokens: 512 });
    try {
      // the first finishes, and the third takes its slot (the tokens it kept); the second comes
      // while the third runs and copies the shared rows of the third's last block, not full yet
      // (copying a registered block's rows: the LRU test below)
      const first = await s.submit(prompts[0], { maxTokens: 12, temperature: 0 });
      let started!: () => void;
      const running = new Promise<void>((r) => (started = r));
      const third = s.submit(prompts[2], { maxTokens: 12, temperature: 0 }, { onChunk: () => started() });
      await running;
      const second = await s.submit(prompts[1], { maxTokens: 12, temperature: 0 });
      const rs = [first, second, await third];
      rs.forEach((r, i) => assert.deepEqual(r.ids, solo[i], `request ${i}`));
      const shared = (i: number, j: number) => sharedPrefix(prompts[i], prompts[j]);
      assert.equal(first.cachedTokens, 0);
      assert.equal(rs[2].cachedTokens, shared(0, 2), 'the first one\'s free slot, its tokens kept');
      assert.equal(second.cachedTokens, Math.max(shared(0, 1), shared(2, 1)), 'from the running sequence\'s partial block');
      assert.ok(second.cachedTokens > 32 && second.cachedTokens % 16 !== 0, `${second.cachedTokens} cached`);
      const rows = steps.flat().reduce((n, sp) => n + sp.n, 0);
      assert.equal(rows, rs.reduce((n, r, i) => n + prompts[i].length - r.cachedTokens + r.ids.length - 1, 0));
    } finally {
      await s.close();
    }
  });

  it('paged: cached blocks no slot holds are taken back for new sequences (LRU, tails first), and repeats still hit their prompts\' blocks', async () => {
    const texts = ['Once upon a time, there was a little girl named Lily. She liked to play', 'Tom and his dog went to the park to play with a big red ball. They ran', 'The sun was hot and the sky was blue. A bird sang in a tall tree near'];
    const prompts = texts.map((t) => model.tokenizer.encode(t, { addSpecial: true }));
    // EOS banned: each sequence runs to 200 tokens, 13 or 14 blocks of 16
    const o = { maxTokens: 200, temperature: 0, logitBias: { [model.tokenizer.eos!]: -100 } };
    const solo: number[][] = [];
    for (const p of prompts) solo.push((await model.generate(p, o)).ids);
    // two slots, one context's 32 blocks: the prompts' blocks cannot all stay cached
    const slots = await model.openSlots(2, { paged: { blockSize: 16, blocks: 32 } });
    const { seen, events } = blockEvents();
    const s = new Scheduler(slots, model.tokenizer, { maxQueue: 8, stepTokens: 512 }, events);
    try {
      const cached: number[] = [];
      for (const round of [0, 1])
        for (const [i, p] of prompts.entries()) {
          const r = await s.submit(p, o);
          assert.deepEqual(r.ids, solo[i], `round ${round}, prompt ${i}`);
          cached.push(r.cachedTokens);
        }
      // round 1 found nothing; in round 2, though the three sequences' 44 blocks never fit the
      // pool together, each prompt's full blocks were still cached, and the block after them (its
      // last prompt tokens, then generated ones), whose rows are copied: blocks go back tail first
      assert.deepEqual(cached.slice(0, 3), [0, 0, 0]);
      assert.deepEqual(cached.slice(3), prompts.map((p) => {
        const full = Math.floor((p.length - 1) / 16) * 16;
        return p.length - 1 - full >= COPY_MIN_ROWS ? p.length - 1 : full;
      }));
      assert.equal(seen.used, 0);
      assert.equal(seen.kept + seen.free, 32);
    } finally {
      await s.close();
    }
  });

  it('paged: an aborted sequence’s blocks leave the used count at once, and the next request is unaffected', async () => {
    const p = model.tokenizer.encode('Lily and Tom', { addSpecial: true });
    const solo = await model.generate(p, { maxTokens: 20 });
    const slots = await model.openSlots(2, { paged: { blockSize: 16, blocks: 40 } });
    const { seen, events } = blockEvents();
    const s = new Scheduler(slots, model.tokenizer, { maxQueue: 4, stepTokens: 64 }, events);
    try {
      const ac = new AbortController();
      let got = 0;
      const doomed = s.submit(p, { maxTokens: 300, temperature: 0 }, {
        signal: ac.signal,
        onChunk: () => {
          if (++got === 40) ac.abort();
        },
      });
      await assert.rejects(doomed, { code: 'E_ABORTED' });
      assert.ok(seen.maxUsed >= 3, `${seen.maxUsed} blocks used while it ran`);
      assert.equal(seen.used, 0, 'no block used once it left');
      assert.equal(seen.kept + seen.free, 40);
      assert.deepEqual((await s.submit(p, { maxTokens: 20, temperature: 0 })).ids, solo.ids);
      assert.equal(seen.used, 0);
    } finally {
      await s.close();
    }
  });

  it('on device cuda (emulated without a GPU): sequences joining and leaving give their solo greedy tokens', async function () {
    this.timeout(300_000);
    const prompts = ['Once upon a time', 'Lily and Tom went to the park. They', 'The dog'].map((t) => model.tokenizer.encode(t, { addSpecial: true }));
    const lengths = [16, 20, 18];
    const solo = [];
    for (const [i, p] of prompts.entries()) solo.push((await model.generate(p, { maxTokens: lengths[i] })).ids);
    await using gpu = await loadOnCuda(sharedPath(STORIES), { contextSize: 48 });
    // paged, as the server runs: 3 blocks of 16 (one context) for sequences that need 4
    const slots = await gpu.openSlots(3, { paged: { blockSize: 16, blocks: 3 } });
    const { seen, events } = blockEvents();
    const s = new Scheduler(slots, gpu.tokenizer, { maxQueue: 4, stepTokens: 4 }, events);
    try {
      const rs = await Promise.all(prompts.map((p, i) => s.submit(p, { maxTokens: lengths[i], temperature: 0 })));
      assert.deepEqual(rs.map((r) => r.ids), solo);
      assert.ok(seen.preempted > 0, 'some sequence was preempted');
    } finally {
      await s.close();
    }
  });
});
