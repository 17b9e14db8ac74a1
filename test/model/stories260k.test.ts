/**
 * stories260K (a real trained tiny Llama) against llama.cpp's own outputs
 * (../shared/models/stories260K.oracle.json): the prompts tokenize to its ids; logits at every
 * prompt position agree within 1e-4 max-abs; greedy continuations equal its ids exactly — with
 * the fast kernels and the plain references, 1 and 2 threads, and prompts split into batches.
 */
import assert from 'node:assert/strict';
import { loadModel, type Model } from '../../lib/index.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

const MODEL = 'models/stories260K.gguf';
const ORACLE = 'models/stories260K.oracle.json';

describe('stories260K vs llama.cpp', function () {
  let oracle: any;
  let model: Model;

  before(async function () {
    requireShared(this, MODEL, ORACLE);
    oracle = readSharedJson(ORACLE);
    model = await loadModel(sharedPath(MODEL), { threads: 2 });
  });
  after(async () => model?.dispose());

  it('tokenizes the prompts to llama.cpp ids', () => {
    for (const t of oracle.tokenization) {
      assert.deepEqual(model.tokenizer.encode(t.text), t.ids_no_bos, t.text);
      assert.deepEqual(model.tokenizer.encode(t.text, { addSpecial: true }), t.ids_with_bos, t.text);
    }
  });

  it('gives llama.cpp logits at every prompt position (max abs <= 1e-4)', async () => {
    const ids: number[] = oracle.prompt_logits.ids;
    const want: number[][] = oracle.prompt_logits.logits;
    for (const impl of ['auto', 'reference'] as const) {
      const m = impl === 'auto' ? model : await loadModel(sharedPath(MODEL), { threads: 1, impl });
      try {
        const got = await m.evaluate(ids, { allLogits: true });
        const V = m.config.vocabSize;
        let maxAbs = 0;
        for (let i = 0; i < ids.length; i++)
          for (let j = 0; j < V; j++) maxAbs = Math.max(maxAbs, Math.abs(got[i * V + j] - want[i][j]));
        assert.ok(maxAbs <= 1e-4, `${impl}: max abs diff ${maxAbs}`);
      } finally {
        if (m !== model) await m.dispose();
      }
    }
  });

  it('greedy 64 tokens from "Once upon a time" equal llama.cpp, text included', async () => {
    const r = await model.generate(oracle.greedy.prompt, { maxTokens: oracle.greedy.n, temperature: 0 });
    assert.deepEqual(r.promptIds, oracle.greedy.prompt_ids);
    assert.deepEqual(r.ids, oracle.greedy.ids);
    assert.equal(r.text, oracle.greedy.text);
    assert.equal(r.finishReason, 'maxTokens');
  });

  it('greedy runs of the other prompts equal llama.cpp', async () => {
    for (const p of oracle.greedy_other_prompts) {
      const r = await model.generate(p.prompt, { maxTokens: p.n });
      assert.deepEqual(r.ids, p.ids, p.prompt);
      assert.equal(r.text, p.text, p.prompt);
    }
  });

  it('gives the same greedy tokens with 1 thread, reference kernels and 2-token prompt batches', async () => {
    for (const o of [{ threads: 1 }, { threads: 2, impl: 'reference' as const }, { threads: 2, batchSize: 2 }]) {
      await using m = await loadModel(sharedPath(MODEL), o);
      const r = await m.generate(oracle.greedy.prompt, { maxTokens: 32 });
      assert.deepEqual(r.ids, oracle.greedy.ids.slice(0, 32), JSON.stringify(o));
    }
  });

  it('streams the same text as generate, in chunks', async () => {
    let text = '';
    const ids: number[] = [];
    for await (const c of model.stream(oracle.greedy.prompt, { maxTokens: oracle.greedy.n })) {
      text += c.text;
      if (c.id >= 0) ids.push(c.id);
    }
    assert.deepEqual(ids, oracle.greedy.ids);
    assert.equal(text, oracle.greedy.text);
  });

  it('serializes concurrent calls: results equal sequential ones', async () => {
    const [a, b] = await Promise.all([
      model.generate(oracle.greedy.prompt, { maxTokens: 20 }),
      model.generate(oracle.greedy_other_prompts[0].prompt, { maxTokens: 20 }),
    ]);
    assert.deepEqual(a.ids, oracle.greedy.ids.slice(0, 20));
    assert.deepEqual(b.ids, oracle.greedy_other_prompts[0].ids.slice(0, 20));
  });

  it('stops at a full context with finishReason contextFull', async () => {
    await using m = await loadModel(sharedPath(MODEL), { contextSize: 12 });
    const r = await m.generate(oracle.greedy.prompt, { maxTokens: 100 });
    assert.equal(r.finishReason, 'contextFull');
    assert.equal(r.promptIds.length + r.ids.length, 13); // the last token is sampled from the full cache
    assert.deepEqual(r.ids, oracle.greedy.ids.slice(0, r.ids.length));
    await assert.rejects(m.generate('a '.repeat(40)), { code: 'E_CONTEXT_FULL' });
  });

  it('ends within one step on abort, and the model stays usable', async () => {
    const ac = new AbortController();
    let n = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of model.stream(oracle.greedy.prompt, { maxTokens: 64, signal: ac.signal }))
          if (++n === 5) ac.abort();
      })(),
      { code: 'E_ABORTED' },
    );
    assert.equal(n, 5);
    const r = await model.generate(oracle.greedy.prompt, { maxTokens: 8 });
    assert.deepEqual(r.ids, oracle.greedy.ids.slice(0, 8));
  });

  it('samples reproducibly with a seed', async () => {
    const a = await model.generate('Once upon a time', { maxTokens: 24, temperature: 0.8, seed: 42 });
    const b = await model.generate('Once upon a time', { maxTokens: 24, temperature: 0.8, seed: 42 });
    const c = await model.generate('Once upon a time', { maxTokens: 24, temperature: 0.8, seed: 7 });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids, c.ids);
  });

  it('stops before a stop string that spans tokens, never emitting it', async () => {
    // the greedy text is ", there was a little girl named Lily. She loved ..."
    const full = oracle.greedy.text as string;
    const r = await model.generate(oracle.greedy.prompt, { maxTokens: 64, stop: ['girl na'] });
    assert.equal(r.finishReason, 'stop');
    assert.equal(r.text, full.slice(0, full.indexOf('girl na')));
    let streamed = '';
    for await (const c of model.stream(oracle.greedy.prompt, { maxTokens: 64, stop: 'girl na' })) streamed += c.text;
    assert.equal(streamed, r.text);
  });

  it('reports log-probabilities that match llama.cpp\'s top-5 at each greedy step', async () => {
    const r = await model.generate(oracle.greedy.prompt, { maxTokens: 8, logprobs: 5 });
    assert.equal(r.logprobs!.length, 8);
    for (let s = 0; s < 8; s++) {
      const want = oracle.greedy_steps_top5[s].top5;
      const got = r.logprobs![s];
      assert.equal(got.id, oracle.greedy.ids[s]);
      assert.deepEqual(got.top.map((t) => t.id), want.map((t: any) => t.id));
      for (let k = 0; k < 5; k++) assert.ok(Math.abs(Math.exp(got.top[k].logprob) - want[k].prob) < 1e-4, `step ${s} rank ${k}`);
    }
  });

  it('top-k 1 sampling equals greedy at any temperature', async () => {
    const r = await model.generate(oracle.greedy.prompt, { maxTokens: 32, temperature: 1.5, topK: 1, seed: 9 });
    assert.deepEqual(r.ids, oracle.greedy.ids.slice(0, 32));
  });

  it('generates four prompts together exactly as four single runs (greedy, own KV caches)', async () => {
    const prompts: string[] = [oracle.greedy.prompt, ...oracle.greedy_other_prompts.map((p: any) => p.prompt), 'Tom had a red ball.'];
    const single = [];
    for (const p of prompts) single.push(await model.generate(p, { maxTokens: 24 + single.length * 5 }));
    // prompts of different lengths, each sequence at its own positions
    const batched = await Promise.all([model.generate(prompts, { maxTokens: 24 })]);
    const each = await model.generate(prompts, { maxTokens: 24 });
    assert.equal(each.length, 4);
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(each[i].ids, single[i].ids.slice(0, 24), prompts[i]);
      assert.equal(each[i].text, model.tokenizer.decode(each[i].ids), prompts[i]);
      assert.deepEqual(batched[0][i].ids, each[i].ids);
    }
    const mixed = await model.generate([prompts[0], prompts[1]], { maxTokens: 40, stop: ['.'] });
    assert.ok(mixed.every((r) => r.finishReason === 'stop' && !r.text.includes('.')));
  });
});
