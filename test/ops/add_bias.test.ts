/**
 * add_bias: out[t] = x[t] + bias. Proves that the reference gives the hand-computed answer and
 * that every fast level, with 1 and 2 threads, in place or not, equals it exactly (one float
 * add per element) at D = 1, 31, 32, 33, 4095, 4097 and T = 1..5.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { fastImpls, randn, rng, runOp } from '../helpers/parity.js';

async function addBias(T: number, D: number, x: Float32Array, b: Float32Array, impl: NativeImpl, threads = 1, inPlace = false) {
  const tx = tensorFromF32('f32', [T, D], x), tb = tensorFromF32('f32', [D], b);
  const out = inPlace ? tx : emptyTensor('f32', [T, D]);
  await runOp(ops.addBias(out, tx, tb), { impl, threads, n: T });
  return readF32Rows(out, 0, T);
}

describe('op add_bias', () => {
  it('hand-computed', async () => {
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
      assert.deepEqual([...(await addBias(2, 2, new Float32Array([1, 2, 3, 4]), new Float32Array([10, 20]), impl))], [11, 22, 13, 24]);
  });
  for (const [T, D] of [[1, 1], [3, 31], [2, 32], [5, 33], [1, 4095], [3, 4097]])
    it(`every level equals the reference at T=${T} D=${D}`, async () => {
      const r = rng(T * 31 + D);
      const x = randn(T * D, r), b = randn(D, r);
      const ref = await addBias(T, D, x, b, 'reference');
      for (let i = 0; i < T * D; i++) assert.equal(ref[i], Math.fround(x[i] + b[i % D]));
      for (const impl of fastImpls())
        for (const threads of [1, 2])
          for (const inPlace of [false, true]) assert.deepEqual(await addBias(T, D, x, b, impl, threads, inPlace), ref, `${impl}/${threads}t`);
    });
});
