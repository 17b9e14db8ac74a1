/**
 * gelu: exact 0.5 x (1 + erf(x / sqrt 2)) (BERT) and GPT-2's tanh approximation. Proves that
 *  - the reference gives known values (gelu(0) = 0, gelu(1) = 0.8413447, gelu_tanh(1) = 0.8411920,
 *    gelu(-1) = -0.1586553) and is x for large x, -0 for very negative x, never NaN;
 *  - every fast level, 1 and 2 threads, in place or not, matches the reference within rel 1e-6
 *    at n = 1, 31, 32, 33, 4095, 4097, 40000 (several chunks).
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { assertClose, fastImpls, randn, rng, runOp } from '../helpers/parity.js';

async function gelu(x: Float32Array, tanh: boolean, impl: NativeImpl, threads = 1, inPlace = false) {
  const tx = tensorFromF32('f32', [1, x.length], x);
  const out = inPlace ? tx : emptyTensor('f32', [1, x.length]);
  await runOp(ops.gelu(out, tx, { tanh }), { impl, threads, n: 1 });
  return readF32Rows(out, 0, 1);
}

describe('op gelu', () => {
  it('known values, both forms, every level', async () => {
    const x = new Float32Array([0, 1, -1, 30, -30]);
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) {
      assertClose(await gelu(x, false, impl), [0, 0.8413447460685429, -0.15865525393145707, 30, 0], { rel: 1e-6, abs: 1e-6 }, `erf ${impl}`);
      const t = await gelu(x, true, impl);
      assertClose(t, [0, 0.8411919906082768, -0.15880800939172324, 30, 0], { rel: 1e-6, abs: 1e-6 }, `tanh ${impl}`);
      assert.ok(t.every(Number.isFinite));
    }
  });
  for (const n of [1, 31, 32, 33, 4095, 4097, 40000])
    for (const tanh of [false, true])
      it(`every level matches the reference at n=${n} (${tanh ? 'tanh' : 'erf'})`, async () => {
        const x = randn(n, rng(n + (tanh ? 1 : 0)), 3);
        const ref = await gelu(x, tanh, 'reference');
        for (const impl of fastImpls())
          for (const threads of [1, 2])
            for (const inPlace of [false, true]) assertClose(await gelu(x, tanh, impl, threads, inPlace), ref, { rel: 1e-6, abs: 1e-6 }, `${impl}/${threads}t`);
      });
});
