/**
 * kv_store: cache[pos0 + t] = src[t]. Proves that the T new rows land at pos0 .. pos0 + T - 1
 * bit for bit and every other cache row stays untouched, at every level and thread count,
 * for a single decode row, a prefill block, a copy large enough to be split across threads
 * (several MiB), and the last rows of the cache.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { fastImpls, randn, rng, runOp } from '../helpers/parity.js';

const levels = (): NativeImpl[] => ['reference', ...fastImpls()];

describe('op kv_store', () => {
  for (const [ctx, W, T, pos0] of [[8, 4, 1, 0], [16, 33, 1, 7], [64, 256, 17, 5], [40, 31, 3, 37], [600, 1024, 520, 50]]) {
    it(`writes ${T} rows at ${pos0} of a [${ctx}x${W}] cache and nothing else`, async () => {
      const r = rng(ctx * 31 + W + T + pos0);
      const init = randn(ctx * W, r), src = randn(T * W, r);
      const want = Float32Array.from(init);
      want.set(src, pos0 * W);
      for (const impl of levels())
        for (const threads of [1, 2]) {
          const cache = tensorFromF32('f32', [ctx, W], init), s = tensorFromF32('f32', [T, W], src);
          await runOp(ops.kvStore(cache, s), { impl, threads, n: T, pos: pos0 });
          const got = readF32Rows(cache, 0, ctx);
          const bad = got.findIndex((v, i) => !Object.is(v, want[i]));
          assert.equal(bad, -1, `${impl}/${threads}t: first difference at row ${Math.floor(bad / W)}, col ${bad % W}`);
        }
    });
  }
});
