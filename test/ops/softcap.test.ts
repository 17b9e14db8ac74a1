/**
 * softcap: out = cap * tanh(x / cap). Proves that the scalar reference equals a float64
 * computation in TypeScript rounded once to f32 (so the case table's parity runs compare the
 * fast levels and CUDA with the right thing), over values near zero (where 1 - exp cancels and
 * the fast path uses a series), around the series/exp switch at |x / cap| = 0.3, and saturating
 * ones (+-cap, never NaN, also for +-inf); every fast level stays within a few ulp of cap; a run
 * covers only the rows of a one-row x (the logits of a prompt's last token); cap <= 0 is refused.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { fastImpls, runOp } from '../helpers/parity.js';

const CAP = 30;
const values = Float32Array.from([
  0, -0, 1e-30, -1e-7, 3e-4, -0.5, 8.999, 9, 9.001, -9.0001, 15, -29, 60, 300, -1e4, 3e38, Infinity, -Infinity,
  ...Array.from({ length: 79 }, (_, i) => (i - 39) * 0.77),
]);

async function softcap(x: Float32Array, impl: NativeImpl, threads = 1): Promise<Float32Array> {
  const tx = tensorFromF32('f32', [1, x.length], x), out = emptyTensor('f32', [1, x.length]);
  await runOp(ops.softcap(out, tx, CAP), { impl, threads, n: 1 });
  return readF32Rows(out, 0, 1);
}

describe('op softcap', () => {
  it('reference: cap * tanh(x / cap) in float64, rounded once', async () => {
    const ref = await softcap(values, 'reference');
    for (let i = 0; i < values.length; i++) assert.equal(ref[i], Math.fround(CAP * Math.tanh(values[i] / CAP)), `x = ${values[i]}`);
  });

  it('every fast level stays within a few ulp of cap, saturates without NaN', async () => {
    const ref = await softcap(values, 'reference');
    for (const impl of fastImpls())
      for (const threads of [1, 2]) {
        const got = await softcap(values, impl, threads);
        for (let i = 0; i < values.length; i++) {
          assert.ok(!Number.isNaN(got[i]), `${impl}: NaN at x = ${values[i]}`);
          assert.ok(Math.abs(got[i] - ref[i]) <= 4e-6, `${impl}/${threads}t: x = ${values[i]}: ${got[i]} want ${ref[i]}`);
        }
        assert.equal(got[values.indexOf(Infinity)], CAP);
        assert.equal(got[values.indexOf(-Infinity)], -CAP);
      }
  });

  it('covers only the rows x has, and refuses cap <= 0', async () => {
    const x = tensorFromF32('f32', [1, 4], Float32Array.from([1, 2, 3, 4]));
    const out = tensorFromF32('f32', [3, 4], new Float32Array(12).fill(7));
    await runOp(ops.softcap(out, x, 2), { impl: 'auto', n: 3 });
    const got = readF32Rows(out, 0, 3);
    assert.deepEqual([...got.subarray(4)], new Array(8).fill(7), 'rows beyond x untouched');
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(got[i] - 2 * Math.tanh((i + 1) / 2)) < 1e-6);
    await assert.rejects(runOp(ops.softcap(out, x, 0), { impl: 'auto', n: 1 }), /op #0 \(softcap\): cap must be > 0/);
  });
});
