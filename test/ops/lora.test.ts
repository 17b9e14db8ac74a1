/**
 * lora: y[t] += Σ_j scales[t, j] · Σ_{k in seg j} (a[k] · x[t]) · bt[k]. Proves that the scalar
 * reference equals the same sum in float64 in TypeScript (so the case table's parity runs
 * compare the fast levels and CUDA with the right thing) for three adapters of ranks 2, 0 and 3
 * with per-row scales (one row none, one row two adapters); that a row whose scales are all 0 is
 * left bit for bit as it was on every level; and that bad segments or shapes are refused.
 */
import assert from 'node:assert/strict';
import { ops } from '../../lib/backend.js';
import { seeded } from '../../lib/ops/table.js';
import { readF32Rows, tensorFromF32, tensorFromI32 } from '../../lib/tensor.js';
import { fastImpls, runOp } from '../helpers/parity.js';

const T = 3, K = 37, N = 29, ranks = [2, 0, 3], R = 5;
const seg = Int32Array.of(0, 2, 2, 5);
const scales = Float32Array.of(1, 0, 0, /* row 1: none */ 0, 0, 0, /* row 2: adapters 0 and 2 */ 0.5, 7, -2);
const x = seeded(T * K, 1), a = seeded(R * K, 2), bt = seeded(R * N, 3), y0 = seeded(T * N, 4);

function build(segV = seg, aRows = R) {
  const y = tensorFromF32('f32', [T, N], y0);
  const node = ops.lora(y, tensorFromF32('f32', [T, K], x), {
    a: tensorFromF32('f32', [aRows, K], seeded(aRows * K, 2)), bt: tensorFromF32('f32', [aRows, N], seeded(aRows * N, 3)),
    seg: tensorFromI32([1, segV.length], segV), scales: tensorFromF32('f32', [T, ranks.length], scales),
  });
  return { y, node };
}

describe('op lora', () => {
  it('reference: the stacked adapters’ low-rank terms as float64 sums, per-row scales', async () => {
    const { y, node } = build();
    await runOp(node, { impl: 'reference', threads: 1, n: T });
    const got = readF32Rows(y, 0, T);
    for (let t = 0; t < T; t++)
      for (let o = 0; o < N; o++) {
        let want = y0[t * N + o];
        for (let j = 0; j < ranks.length; j++)
          for (let k = seg[j]; k < seg[j + 1]; k++) {
            let h = 0;
            for (let i = 0; i < K; i++) h += a[k * K + i] * x[t * K + i];
            want += scales[t * ranks.length + j] * h * bt[k * N + o];
          }
        assert.ok(Math.abs(got[t * N + o] - want) <= 1e-5 * (1 + Math.abs(want)), `row ${t} col ${o}: ${got[t * N + o]} want ${want}`);
      }
  });

  it('a row without adapters is untouched on every level', async () => {
    for (const impl of ['reference' as const, ...fastImpls()]) {
      const { y, node } = build();
      await runOp(node, { impl, threads: 2, n: T });
      assert.deepEqual(Array.from(readF32Rows(y, 1, 1)), Array.from(y0.subarray(N, 2 * N)), impl);
    }
  });

  it('refuses segments that do not cover the ranks, and mismatched shapes', async () => {
    await assert.rejects(runOp(build(Int32Array.of(0, 2, 2, 4)).node, { impl: 'reference', threads: 1, n: T }), { code: 'E_INVALID_ARG', message: /seg must rise from 0 to the 5 ranks/ });
    await assert.rejects(runOp(build(Int32Array.of(0, 5)).node, { impl: 'reference', threads: 1, n: T }), { code: 'E_INVALID_ARG', message: /scales must have a column per adapter \(1\)/ });
  });
});
