/**
 * transpose: out[c, r] = x[r, col0 + c] (GPT-2's Conv1D weights at load, with the fused q/k/v
 * split by col0). Proves that every level, with 1 and 2 threads, gives exactly the transposed
 * values at awkward shapes (1x1, 31x33, 32x32, 33x97, 4097x3) and column slices, in f32 and
 * bit for bit in f16 and bf16, and that a slice past x's columns or a dtype change is refused.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { fastImpls, randn, rng, runOp } from '../helpers/parity.js';

async function transpose(R: number, C: number, x: Float32Array, col0: number, cout: number, impl: NativeImpl, threads = 1) {
  const tx = tensorFromF32('f32', [R, C], x), out = emptyTensor('f32', [cout, R]);
  await runOp(ops.transpose(out, tx, col0), { impl, threads, n: 1 });
  return readF32Rows(out, 0, cout);
}

describe('op transpose', () => {
  for (const [R, C, col0, cout] of [[1, 1, 0, 1], [31, 33, 0, 33], [32, 32, 0, 32], [33, 97, 32, 33], [4097, 3, 1, 2], [8, 24, 16, 8]])
    it(`every level: x [${R}x${C}] columns ${col0}..${col0 + cout - 1}`, async () => {
      const x = randn(R * C, rng(R * 100 + C));
      const want = new Float32Array(cout * R);
      for (let c = 0; c < cout; c++) for (let r = 0; r < R; r++) want[c * R + r] = x[r * C + col0 + c];
      for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
        for (const threads of [1, 2]) assert.deepEqual(await transpose(R, C, x, col0, cout, impl, threads), want, `${impl}/${threads}t`);
    });
  for (const dtype of ['f16', 'bf16'] as const)
    it(`${dtype}: moves the 16-bit values bit for bit (33x97, columns 5..40)`, async () => {
      const R = 33, C = 97, col0 = 5, cout = 36;
      const tx = tensorFromF32(dtype, [R, C], randn(R * C, rng(9)));
      const bits = new Uint16Array(tx.read());
      const want = new Uint16Array(cout * R);
      for (let c = 0; c < cout; c++) for (let r = 0; r < R; r++) want[c * R + r] = bits[r * C + col0 + c];
      for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) {
        const out = emptyTensor(dtype, [cout, R]);
        await runOp(ops.transpose(out, tx, col0), { impl, threads: 2, n: 1 });
        assert.deepEqual(new Uint16Array(out.read()), want, impl);
      }
      await assert.rejects(runOp(ops.transpose(emptyTensor('f32', [cout, R]), tx, col0), { impl: 'reference', n: 1 }), /dtype/);
    });

  it('refuses a slice past the columns', async () => {
    const x = tensorFromF32('f32', [2, 3], new Float32Array(6)), out = emptyTensor('f32', [2, 2]);
    await assert.rejects(runOp(ops.transpose(out, x, 2), { impl: 'reference', n: 1 }), /transpose/);
  });
});
