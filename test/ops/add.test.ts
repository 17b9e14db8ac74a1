/**
 * add: every fast kernel level equals the scalar reference exactly (an f32 add has one
 * correct answer) at awkward sizes, with 1 and 2 threads, and in place (out aliases a).
 */
import assert from 'node:assert/strict';
import { ops } from '../../lib/backend.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { fastImpls, randn, rng, runOp } from '../helpers/parity.js';

describe('op add', () => {
  for (const [T, D] of [[1, 1], [1, 31], [3, 32], [2, 33], [1, 4095], [5, 4097]]) {
    it(`matches the reference at T=${T} D=${D}`, async () => {
      const r = rng(T * 10007 + D);
      const a = randn(T * D, r), b = randn(T * D, r);
      const ref = new Float32Array(T * D).map((_, i) => a[i] + b[i]);
      for (const impl of ['reference' as const, ...fastImpls()]) {
        for (const threads of [1, 2]) {
          const ta = tensorFromF32('f32', [T, D], a), tb = tensorFromF32('f32', [T, D], b), out = emptyTensor('f32', [T, D]);
          await runOp(ops.add(out, ta, tb), { impl, threads, n: T });
          assert.deepEqual(readF32Rows(out, 0, T), ref, `${impl}/${threads}t`);
        }
      }
    });
  }

  it('works in place (out aliases a)', async () => {
    const a = tensorFromF32('f32', [2, 5], new Float32Array(10).fill(1));
    const b = tensorFromF32('f32', [2, 5], new Float32Array(10).fill(2));
    await runOp(ops.add(a, a, b), { impl: 'auto', n: 2 });
    assert.deepEqual(readF32Rows(a, 0, 2), new Float32Array(10).fill(3));
  });
});
