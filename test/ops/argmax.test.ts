/**
 * argmax: ids[t] = the index of row t's largest value, the greedy choice made where the logits
 * are. Hand-checked rows (ties take the lowest index, NaN never wins, -Infinity loses to any
 * number, an all-NaN row gives 0), then random rows against a plain scan at every level, with
 * 1 and 2 threads, and a run of fewer rows than the tensor holds.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { emptyTensor, tensorFromF32 } from '../../lib/tensor.js';
import { fastImpls, randn, rng, runOp } from '../helpers/parity.js';

async function argmax(T: number, V: number, x: Float32Array, impl: NativeImpl, threads = 1, n = T): Promise<number[]> {
  const tx = tensorFromF32('f32', [T, V], x);
  const ids = emptyTensor('i32', [T]);
  ids.write(new Int32Array(T).fill(-7));
  await runOp(ops.argmax(ids, tx), { impl, threads, n });
  return [...new Int32Array(ids.read())];
}

function plain(x: Float32Array, T: number, V: number): number[] {
  return Array.from({ length: T }, (_, t) => {
    let best = 0;
    for (let i = 1; i < V; i++) if (x[t * V + i] > x[t * V + best]) best = i;
    return best;
  });
}

describe('op argmax', () => {
  it('hand-checked rows: ties, NaN, -Infinity', async () => {
    const rows = [
      [1, 3, 3, 2], // tie: the first 3
      [NaN, -1, 5, NaN], // NaN never wins
      [-Infinity, -Infinity, -5, -Infinity],
      [NaN, NaN, NaN, NaN], // nothing to choose: 0
    ];
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
      assert.deepEqual(await argmax(4, 4, Float32Array.from(rows.flat()), impl), [1, 2, 2, 0], impl);
  });

  it('the same rules on rows long enough for the vector lanes', async () => {
    const V = 21;
    const row = (f: (i: number) => number) => Array.from({ length: V }, (_, i) => f(i));
    const rows = [
      row((i) => (i === 3 || i === 12 ? 9 : i % 5)), // tie across lanes: 3
      row((i) => (i % 2 ? NaN : i === 14 ? 2 : -1)), // NaNs in every other lane: 14
      row((i) => (i === 19 ? -3 : -Infinity)), // only the tail holds a number: 19
      row(() => -Infinity), // all -Infinity: 0
      row((i) => (i === 8 ? -Infinity : NaN)), // NaN and one -Infinity: 8
    ];
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
      assert.deepEqual(await argmax(rows.length, V, Float32Array.from(rows.flat()), impl), [3, 14, 19, 0, 8], impl);
  });

  for (const [T, V] of [[1, 1], [3, 17], [5, 32000]])
    it(`every level equals a plain scan at T=${T} V=${V}`, async () => {
      const x = randn(T * V, rng(T + V));
      const want = plain(x, T, V);
      for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
        for (const threads of [1, 2]) assert.deepEqual(await argmax(T, V, x, impl, threads), want, `${impl}/${threads}t`);
    });

  it('covers only the rows a run has', async () => {
    const x = randn(4 * 9, rng(3));
    const got = await argmax(4, 9, x, 'reference', 1, 2);
    assert.deepEqual(got, [...plain(x, 4, 9).slice(0, 2), -7, -7]);
  });

  it('rejects ids that are not i32', async () => {
    const tx = tensorFromF32('f32', [2, 3], new Float32Array(6));
    await assert.rejects(runOp(ops.argmax(emptyTensor('f32', [2]), tx), { impl: 'reference', threads: 1, n: 2 }), /ids must be i32/);
  });
});
