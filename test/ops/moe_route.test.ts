/**
 * moe_route: a mixture-of-experts router's picks. Proves against a plain JavaScript softmax and
 * top-k, at every level with 1 and 2 threads, that
 *  - the k experts are the k largest logits, the largest first, the lower expert first on ties;
 *  - the weights are the softmax probabilities of the picks, renormalized to sum 1 when asked
 *    (Mixtral, Qwen3-MoE) and not otherwise (Qwen2-MoE);
 *  - with sigmoid, a one-expert route gives expert 0 and sigmoid(logit) (Qwen2-MoE's shared-expert gate);
 *  - a graph whose ids hold more experts than the logits have is refused when it is built.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { emptyTensor, tensorFromF32 } from '../../lib/tensor.js';
import { fastImpls, randn, rng, runOp } from '../helpers/parity.js';

const levels = (): NativeImpl[] => ['reference', ...fastImpls()];

async function route(T: number, E: number, k: number, logits: Float32Array, o: { normalize: boolean; sigmoid?: boolean }, impl: NativeImpl, threads = 1) {
  const ids = emptyTensor('i32', [T, k]), w = emptyTensor('f32', [T, k]);
  await runOp(ops.moeRoute(ids, w, tensorFromF32('f32', [T, E], logits), o), { impl, threads, n: T });
  return { ids: [...new Int32Array(ids.read())], weights: [...new Float32Array(w.read())] };
}

function plain(T: number, E: number, k: number, l: Float32Array, normalize: boolean) {
  const ids: number[] = [], weights: number[] = [];
  for (let t = 0; t < T; t++) {
    const row = Array.from(l.subarray(t * E, (t + 1) * E));
    const mx = Math.max(...row), ex = row.map((v) => Math.exp(v - mx)), sum = ex.reduce((a, b) => a + b, 0);
    const order = row.map((v, e) => [v, e]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map(([, e]) => e);
    const p = order.map((e) => ex[e] / sum), s = p.reduce((a, b) => a + b, 0);
    ids.push(...order);
    weights.push(...p.map((v) => (normalize ? v / s : v)));
  }
  return { ids, weights };
}

describe('op moe_route', () => {
  it('hand-checked row: ties to the lower expert, weights renormalized or not', async () => {
    const l = Float32Array.of(0, 2, 1, 2);
    const e1 = Math.exp(2), sum = 1 + 2 * e1 + Math.exp(1);
    for (const impl of levels()) {
      const r = await route(1, 4, 2, l, { normalize: true }, impl);
      assert.deepEqual(r.ids, [1, 3], impl);
      r.weights.forEach((w) => assert.ok(Math.abs(w - 0.5) < 1e-7, impl));
      const u = await route(1, 4, 3, l, { normalize: false }, impl);
      assert.deepEqual(u.ids, [1, 3, 2], impl);
      [e1 / sum, e1 / sum, Math.exp(1) / sum].forEach((w, i) => assert.ok(Math.abs(u.weights[i] - w) < 1e-7, `${impl} ${u.weights}`));
    }
  });

  it('random rows match a plain softmax top-k at every level (1 and 2 threads)', async () => {
    const r = rng(20);
    for (const [T, E, k, normalize] of [[1, 8, 2, true], [9, 60, 4, false], [5, 128, 8, true]] as const) {
      const l = randn(T * E, r, 2);
      const want = plain(T, E, k, l, normalize);
      for (const impl of levels())
        for (const threads of [1, 2]) {
          const got = await route(T, E, k, l, { normalize }, impl, threads);
          assert.deepEqual(got.ids, want.ids, `${impl} ${T}x${E}`);
          got.weights.forEach((w, i) => assert.ok(Math.abs(w - want.weights[i]) < 1e-6, `${impl} ${T}x${E} weight ${i}: ${w} vs ${want.weights[i]}`));
        }
    }
  });

  it('sigmoid over one expert: the shared-expert gate', async () => {
    const l = Float32Array.of(-3, 0, 0.5, 40);
    for (const impl of levels()) {
      const r = await route(4, 1, 1, l, { normalize: false, sigmoid: true }, impl);
      assert.deepEqual(r.ids, [0, 0, 0, 0]);
      r.weights.forEach((w, i) => assert.ok(Math.abs(w - 1 / (1 + Math.exp(-l[i]))) < 1e-7, `${impl} ${w}`));
    }
  });

  it('more experts per token than the router has is refused at build', async () => {
    await assert.rejects(
      runOp(ops.moeRoute(emptyTensor('i32', [1, 5]), emptyTensor('f32', [1, 5]), emptyTensor('f32', [1, 4]), { normalize: true }), { impl: 'reference', n: 1 }),
      /moe_route.*ids must hold 1 \.\. 4 experts per row/,
    );
  });
});
