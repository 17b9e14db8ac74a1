/**
 * A stream read once and dropped without return() (issue 15, finding 4) used to hold the model
 * forever: later generate() and dispose() never settled. A stream now releases the model when
 * its iterator is garbage collected, or when its consumer leaves it idle for idleTimeout ms.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadModel, type Model } from '../../lib/index.js';
import { requireShared } from '../helpers/shared.js';
import { TINY_LLAMA, rejectsCode, removeFolder, tinyFolder } from './helpers.js';

/** Settles with p's value, or rejects after ms (so a deadlock fails the test instead of hanging it). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: did not settle within ${ms} ms`)), ms))),
  ]);
}

describe('hostile: streams dropped without return()', function () {
  this.timeout(30_000);
  let dir: string;
  before(function () {
    requireShared(this, TINY_LLAMA);
    dir = tinyFolder();
  });
  after(() => dir && removeFolder(dir));

  it('idle: a stream not read for idleTimeout ms releases the model; its next next() is E_ABORTED', async () => {
    const m = await loadModel(dir, { threads: 1 });
    const s = m.stream([1, 2], { maxTokens: 8, ignoreEog: true, idleTimeout: 200 });
    assert.equal((await s.next()).done, false);
    // the stream holds the model until its idle timer fires
    const r = await within(m.generate([1], { maxTokens: 2, ignoreEog: true }), 5000, 'generate() after an idle stream');
    assert.equal(r.ids.length, 2);
    await rejectsCode(s.next(), 'E_ABORTED', /idleTimeout/);
    assert.equal((await s.next()).done, true);
    await within(m.dispose(), 5000, 'dispose()');
  });

  it('garbage: a stream iterator dropped after one next() releases the model when collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const m: Model = await loadModel(dir, { threads: 1 });
    await (async () => {
      // idleTimeout Infinity: only the collection of the iterator can release the model
      const s = m.stream([1, 2], { maxTokens: 8, ignoreEog: true, idleTimeout: Infinity });
      await s.next();
    })();
    const later = m.generate([1], { maxTokens: 2, ignoreEog: true });
    let settled = false;
    void later.then(() => (settled = true), () => (settled = true));
    for (let i = 0; i < 50 && !settled; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal((await within(later, 5000, 'generate() after a dropped stream')).ids.length, 2);
    await within(m.dispose(), 5000, 'dispose()');
  });

  it('a stream left with return() or ended normally releases as before, and idleTimeout is checked', async () => {
    await using m = await loadModel(dir, { threads: 1 });
    for await (const c of m.stream([1, 2], { maxTokens: 8, ignoreEog: true })) {
      assert.ok(c.id >= 0);
      break;
    }
    let n = 0;
    for await (const c of m.stream([1, 2], { maxTokens: 3, ignoreEog: true, idleTimeout: 50 })) {
      n += c.id >= 0 ? 1 : 0;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(n, 3);
    await rejectsCode(m.stream([1], { idleTimeout: -1 }).next(), 'E_INVALID_ARG', /idleTimeout/);
    await rejectsCode(m.stream([1], { idleTimeout: 'x' as any }).next(), 'E_INVALID_ARG', /idleTimeout/);
  });
});
