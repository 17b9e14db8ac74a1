/**
 * moe_matmul: each token's expert projections. Proves against a plain JavaScript product with
 * f32 weights, at every level with 1 and 2 threads, that
 *  - slot j of token t uses expert ids[t, j]'s matrix of the stack and x[t] (or its j-th part);
 *  - unweighted, each slot lands in its own columns; weighted, the slots are summed times the
 *    router weights and ADDED to what out held (the residual);
 *  - tokens routed to the same expert in a prefill all get their own rows back (the grouping),
 *    and a 2-D weight is one expert;
 *  - an expert id outside the stack is an E_INVALID_ARG naming the row, slot and id, not a read
 *    out of bounds.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { tensorFromF32, tensorFromI32 } from '../../lib/tensor.js';
import { fastImpls, randn, rng, runOp } from '../helpers/parity.js';

const levels = (): NativeImpl[] => ['reference', ...fastImpls()];

interface Case { T: number; E: number; k: number; N: number; K: number; perSlot: boolean; weighted: boolean }

function plain(c: Case, x: Float32Array, w: Float32Array, ids: Int32Array, wts: Float32Array, out0: Float32Array): Float32Array {
  const out = Float32Array.from(out0);
  for (let t = 0; t < c.T; t++)
    for (let j = 0; j < c.k; j++) {
      const e = ids[t * c.k + j];
      const xo = c.perSlot ? (t * c.k + j) * c.K : t * c.K;
      for (let n = 0; n < c.N; n++) {
        let s = 0;
        for (let i = 0; i < c.K; i++) s += x[xo + i] * w[(e * c.N + n) * c.K + i];
        if (c.weighted) out[t * c.N + n] += wts[t * c.k + j] * s;
        else out[(t * c.k + j) * c.N + n] = s;
      }
    }
  return out;
}

async function run(c: Case, seed: number, impl: NativeImpl, threads: number, ids: Int32Array) {
  const r = rng(seed);
  const x = randn(c.T * (c.perSlot ? c.k : 1) * c.K, r), w = randn(c.E * c.N * c.K, r), wts = randn(c.T * c.k, r);
  const outCols = c.weighted ? c.N : c.k * c.N, out0 = c.weighted ? randn(c.T * outCols, r) : new Float32Array(c.T * outCols);
  const out = tensorFromF32('f32', [c.T, outCols], out0);
  const wt = tensorFromF32('f32', c.E === 1 ? [c.N, c.K] : [c.E, c.N, c.K], w);
  const node = ops.moeMatmul(out, tensorFromF32('f32', [c.T, (c.perSlot ? c.k : 1) * c.K], x), wt, tensorFromI32([c.T, c.k], ids), c.weighted ? tensorFromF32('f32', [c.T, c.k], wts) : undefined);
  await runOp(node, { impl, threads, n: c.T });
  return { got: new Float32Array(out.read()), want: plain(c, x, w, ids, wts, out0) };
}

function close(got: Float32Array, want: Float32Array, what: string) {
  for (let i = 0; i < want.length; i++)
    assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])), `${what}: [${i}] ${got[i]} vs ${want[i]}`);
}

describe('op moe_matmul', () => {
  const cases: Array<Case & { name: string }> = [
    { name: 'decode gate/up: 1 token, top 2 of 4, shared x', T: 1, E: 4, k: 2, N: 7, K: 32, perSlot: false, weighted: false },
    { name: 'decode down: 1 token, per-slot x, weighted into out', T: 1, E: 4, k: 2, N: 5, K: 24, perSlot: true, weighted: true },
    { name: 'prefill: 9 tokens, top 3 of 5, several per expert', T: 9, E: 5, k: 3, N: 6, K: 40, perSlot: false, weighted: false },
    { name: 'prefill down: 9 tokens, top 3 of 5, weighted', T: 9, E: 5, k: 3, N: 6, K: 40, perSlot: true, weighted: true },
    { name: 'one expert as a 2-D weight (a shared expert)', T: 3, E: 1, k: 1, N: 8, K: 16, perSlot: false, weighted: true },
  ];
  for (const c of cases)
    it(c.name, async () => {
      const ids = Int32Array.from({ length: c.T * c.k }, (_, i) => (Math.floor(i / c.k) * 2 + (i % c.k)) % c.E);
      for (const impl of levels())
        for (const threads of [1, 2]) {
          const { got, want } = await run(c, 30 + c.T, impl, threads, ids);
          close(got, want, `${impl}/${threads}t`);
        }
    });

  it('an expert id outside the stack is an E_INVALID_ARG', async () => {
    const c: Case = { T: 2, E: 4, k: 2, N: 3, K: 8, perSlot: false, weighted: false };
    for (const impl of levels())
      await assert.rejects(run(c, 1, impl, 1, Int32Array.of(0, 1, 2, 4)), (e: Error & { code?: string }) =>
        e.code === 'E_INVALID_ARG' && /row 1 slot 1 names expert 4, expected 0\.\.3/.test(e.message));
  });
});
