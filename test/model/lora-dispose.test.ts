/**
 * Disposing a LoRA adapter while sequences use it (llama3-ropefreqs fixture and the adapters
 * of ../shared/models/oracles/lora): what already uses it keeps it to its end and gives
 * llama.cpp's tokens, nothing after dispose() may start with it (E_INVALID_ARG), and its memory
 * is freed when the last user ends (`freed`), never before:
 * - generate, a batch, beamSearch and evaluate disposed mid-call, a stream between two chunks;
 * - open slots: a slot's running sequence keeps it while another slot is admitted (the set made
 *   again), it is freed at releaseAdapters, and a released slot stepped again is an E_DISPOSED;
 * - the server's scheduler: a request keeps it while others come and go, one queued with it
 *   keeps it too; and through `fuselm serve`, a stream keeps it and the next request naming it
 *   is a 400.
 * Skipped, saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import { loadModel, type Model } from '../../lib/model/model.js';
import type { LoraAdapter } from '../../lib/model/lora.js';
import { Scheduler } from '../../lib/server/scheduler.js';
import { createServer } from '../../lib/server/server.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

const LORA = 'models/oracles/lora';
const BASE = 'models/oracles/llama3-ropefreqs/llama3-ropefreqs.f32.gguf';

interface Prompt {
  ids_with_special: number[];
  llamacpp_greedy: number[];
}

/** Disposes `a` as soon as a call acquires it (while that call runs). */
function disposeOnFirstUse(a: LoraAdapter): void {
  const acquire = a.acquire.bind(a);
  a.acquire = (holder?: boolean) => {
    acquire(holder);
    if (!a.disposed) queueMicrotask(() => a.dispose());
  };
}

describe('LoRA: disposing an adapter in use', function () {
  this.timeout(120_000);
  let m: Model;
  let file1: string, file2: string;
  let p: Prompt[];
  const greedy = { maxTokens: 24, ignoreEog: true, temperature: 0 };

  before(async function () {
    requireShared(this, `${LORA}/oracle.json`, BASE);
    const o = readSharedJson(`${LORA}/oracle.json`);
    file1 = sharedPath(LORA, o.adapters.adapter1.gguf);
    file2 = sharedPath(LORA, o.adapters.adapter2.gguf);
    p = o.adapters.adapter1['scale_1.0'];
    m = await loadModel(sharedPath(BASE), { device: 'cpu', kvType: 'f32', contextSize: 256 });
  });
  after(() => m?.dispose());

  it('generate, a batch, beamSearch and evaluate keep it to their end; it is freed then; a later use is E_INVALID_ARG', async () => {
    const a = await m.loadAdapter(file1);
    const solo = await m.evaluate(p[0].ids_with_special, { adapters: [{ adapter: a }] });
    const beams = await m.beamSearch(p[1].ids_with_special, { numBeams: 2, maxTokens: 6, adapters: [{ adapter: a }] });
    disposeOnFirstUse(a);
    const r = await m.generate(p[0].ids_with_special, { ...greedy, adapters: [{ adapter: a }] });
    assert.ok(a.disposed && a.isFreed, 'freed once the call ended');
    assert.deepEqual(r.ids, p[0].llamacpp_greedy);
    await assert.rejects(m.generate(p[0].ids_with_special, { ...greedy, adapters: [{ adapter: a }] }), { code: 'E_INVALID_ARG', message: /was disposed/ });

    const b = await m.loadAdapter(file1);
    disposeOnFirstUse(b);
    const batch = await m.generate([{ prompt: p[0].ids_with_special, adapters: [{ adapter: b }] }, { prompt: p[1].ids_with_special, adapters: [{ adapter: b }] }], greedy);
    assert.deepEqual(batch.map((x) => x.ids), [p[0].llamacpp_greedy, p[1].llamacpp_greedy]);
    assert.ok(b.isFreed);

    const c = await m.loadAdapter(file1);
    disposeOnFirstUse(c);
    const again = await m.beamSearch(p[1].ids_with_special, { numBeams: 2, maxTokens: 6, adapters: [{ adapter: c }] });
    assert.deepEqual(again.sequences.map((s) => s.ids), beams.sequences.map((s) => s.ids));
    const d = await m.loadAdapter(file1);
    disposeOnFirstUse(d);
    assert.deepEqual(Array.from(await m.evaluate(p[0].ids_with_special, { adapters: [{ adapter: d }] })), Array.from(solo));
    await d.freed;
  });

  it('a stream disposed between chunks gives every token under the adapter; freed when it ends', async () => {
    const a = await m.loadAdapter(file1);
    const ids: number[] = [];
    for await (const ch of m.stream(p[2].ids_with_special, { ...greedy, adapters: [{ adapter: a }] })) {
      if (ch.id >= 0) ids.push(ch.id);
      if (ids.length === 3 && !a.disposed) {
        a.dispose();
        assert.ok(!a.isFreed, 'held by the stream');
      }
    }
    assert.deepEqual(ids, p[2].llamacpp_greedy);
    assert.ok(a.isFreed);
  });

  it('open slots: a running sequence keeps it while another slot is admitted; freed at releaseAdapters; a released slot stepped again is E_DISPOSED', async () => {
    const a1 = await m.loadAdapter(file1);
    const a2 = await m.loadAdapter(file2);
    const ids = p[0].ids_with_special, next = p[0].llamacpp_greedy[0];
    const want0 = await m.evaluate([...ids, next], { adapters: [{ adapter: a1 }] });
    const want1 = await m.evaluate(ids, { adapters: [{ adapter: a2 }] });
    const slots = await m.openSlots(2);
    try {
      slots.useAdapters(0, [{ adapter: a1 }]);
      await slots.step([{ slot: 0, ids, pos: 0 }]);
      a1.dispose();
      assert.ok(!a1.isFreed);
      // another slot admitted: before, the set was made without a1 and slot 0 went on without it
      slots.useAdapters(1, [{ adapter: a2 }]);
      const [l0, l1] = await slots.step([{ slot: 0, ids: [next], pos: ids.length }, { slot: 1, ids, pos: 0 }]);
      assert.deepEqual(Array.from(l0), Array.from(want0));
      assert.deepEqual(Array.from(l1), Array.from(want1));
      assert.throws(() => slots.useAdapters(1, [{ adapter: a1 }]), { code: 'E_INVALID_ARG', message: /was disposed/ });
      slots.releaseAdapters(0);
      assert.ok(a1.isFreed, 'freed when its sequence released it');
      await assert.rejects(slots.step([{ slot: 0, ids: [next], pos: ids.length }]), { code: 'E_DISPOSED', message: /slot 0's adapter .* was disposed after releaseAdapters\(0\)/ });
      // slot 1 still runs under a2; slot 0 admitted again without adapters runs the base
      const base = await (async () => {
        slots.useAdapters(0, undefined);
        return (await slots.step([{ slot: 0, ids, pos: 0 }, { slot: 1, ids, pos: 0 }]))[1];
      })();
      assert.deepEqual(Array.from(base), Array.from(want1));
    } finally {
      slots.close();
    }
    a2.dispose();
    assert.ok(a2.isFreed, 'closed slots hold nothing');
  });

  it("the server's scheduler: a running and a queued request keep it while others come and go; a request after dispose is E_INVALID_ARG", async () => {
    const a = await m.loadAdapter(file1);
    const base1 = (await m.generate(p[1].ids_with_special, greedy)).ids;
    const slots = await m.openSlots(2);
    const s = new Scheduler(slots, m.tokenizer, { maxQueue: 8, stepTokens: 64 });
    try {
      let started!: () => void;
      const first = new Promise<void>((r) => (started = r));
      const withA = s.submit(p[0].ids_with_special, { ...greedy, adapters: [{ adapter: a }] }, { onChunk: () => started() });
      const other = s.submit(p[1].ids_with_special, greedy);
      // queued behind the two slots, holding a already
      const queued = s.submit(p[2].ids_with_special, { ...greedy, adapters: [{ adapter: a }] });
      await first;
      a.dispose();
      await assert.rejects(s.submit(p[0].ids_with_special, { ...greedy, adapters: [{ adapter: a }] }), { code: 'E_INVALID_ARG', message: /was disposed/ });
      const [ra, rb, rc] = await Promise.all([withA, other, queued]);
      assert.deepEqual(ra.ids, p[0].llamacpp_greedy);
      assert.deepEqual(rb.ids, base1);
      assert.deepEqual(rc.ids, p[2].llamacpp_greedy);
      await a.freed;
    } finally {
      await s.close();
    }
  });

  it('fuselm serve: a stream keeps it to its end; the next request naming it is a 400', async () => {
    let served: LoraAdapter | undefined;
    const load = m.loadAdapter.bind(m);
    m.loadAdapter = async (path: string) => (served = await load(path));
    const server = createServer(m, { parallel: 2, lora: [file1] });
    try {
      await server.ready;
      const base = await server.listen({ port: 0 });
      const res = await fetch(`${base}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: p[0].ids_with_special, max_tokens: 24, temperature: 0, ignore_eos: true, stream: true, lora: [{ id: 0, scale: 1 }] }),
      });
      let text = '', disposed = false;
      const dec = new TextDecoder();
      for await (const bytes of res.body!) {
        for (const line of dec.decode(bytes, { stream: true }).split('\n')) {
          if (!line.startsWith('data: {')) continue;
          text += JSON.parse(line.slice(6)).choices[0]?.text ?? '';
          if (!disposed) (served!.dispose(), (disposed = true));
        }
      }
      assert.ok(disposed);
      assert.equal(text, m.tokenizer.decode(p[0].llamacpp_greedy));
      await served!.freed;
      const again = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: p[0].ids_with_special, max_tokens: 2, lora: [{ id: 0, scale: 1 }] }) });
      assert.equal(again.status, 400);
      assert.match(((await again.json()) as { error: { message: string } }).error.message, /was disposed/);
    } finally {
      await server.close();
      m.loadAdapter = load;
    }
  });
});
