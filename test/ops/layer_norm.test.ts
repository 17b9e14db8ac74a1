/**
 * layer_norm: out[t] = (x[t] - mean) / sqrt(var + eps) * w + b. Proves that
 *  - the reference gives the hand-computed answer (x = [1, 3]: mean 2, var 1);
 *  - the reference agrees with float64 TypeScript, and every fast level, with 1 and 2 threads,
 *    in place or not, matches it within rel 1e-6 at D = 1, 31, 32, 33, 64, 4095, 4097;
 *  - a row with a large common offset (1e4 + noise) is normalized right (two-pass variance).
 */
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { assertClose, fastImpls, randn, rng, runOp } from '../helpers/parity.js';

async function layerNorm(T: number, D: number, x: Float32Array, w: Float32Array, b: Float32Array, eps: number, impl: NativeImpl, threads = 1, inPlace = false) {
  const tx = tensorFromF32('f32', [T, D], x), tw = tensorFromF32('f32', [D], w), tb = tensorFromF32('f32', [D], b);
  const out = inPlace ? tx : emptyTensor('f32', [T, D]);
  await runOp(ops.layerNorm(out, tx, tw, tb, eps), { impl, threads, n: T });
  return readF32Rows(out, 0, T);
}

function layerNormJs(T: number, D: number, x: Float32Array, w: Float32Array, b: Float32Array, eps: number) {
  const out = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    let m = 0, v = 0;
    for (let i = 0; i < D; i++) m += x[t * D + i];
    m /= D;
    for (let i = 0; i < D; i++) v += (x[t * D + i] - m) ** 2;
    const s = 1 / Math.sqrt(v / D + eps);
    for (let i = 0; i < D; i++) out[t * D + i] = (x[t * D + i] - m) * s * w[i] + b[i];
  }
  return out;
}

describe('op layer_norm', () => {
  it('hand-computed: x = [1, 3], w = [1, 2], b = [0, 1], eps = 0', async () => {
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
      assertClose(await layerNorm(1, 2, new Float32Array([1, 3]), new Float32Array([1, 2]), new Float32Array([0, 1]), 0, impl), [-1, 3], { rel: 1e-7, abs: 1e-6 }, impl);
  });
  for (const [T, D] of [[1, 1], [3, 31], [2, 32], [5, 33], [4, 64], [1, 4095], [3, 4097]])
    it(`every level matches the reference at T=${T} D=${D}`, async () => {
      const r = rng(T * 7 + D);
      const x = randn(T * D, r, 3), w = randn(D, r), b = randn(D, r);
      const ref = await layerNorm(T, D, x, w, b, 1e-5, 'reference');
      assertClose(ref, layerNormJs(T, D, x, w, b, 1e-5), { rel: 1e-7, abs: 1e-5 }, 'reference vs TypeScript');
      for (const impl of fastImpls())
        for (const threads of [1, 2])
          for (const inPlace of [false, true])
            assertClose(await layerNorm(T, D, x, w, b, 1e-5, impl, threads, inPlace), ref, { rel: 1e-6, abs: 1e-5 }, `${impl}/${threads}t`);
    });
  it('a large common offset (1e4 + noise) keeps its precision', async () => {
    const D = 257, r = rng(3);
    const x = randn(D, r).map((v) => 1e4 + v), w = new Float32Array(D).fill(1), b = new Float32Array(D);
    const want = layerNormJs(1, D, x, w, b, 1e-5);
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) assertClose(await layerNorm(1, D, x, w, b, 1e-5, impl), want, { rel: 1e-3, abs: 1e-2 }, impl);
  });
});
