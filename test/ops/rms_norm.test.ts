/**
 * rms_norm: out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w. Proves that
 *  - the reference gives the hand-computed answer (x = [3, 4] → rms = sqrt(12.5));
 *  - the reference computes llama.cpp's arithmetic bit for bit (squares rounded to f32 and summed
 *    in double, mean and scale in f32, (x * scale) * w), against a TypeScript recomputation, so the
 *    8-bit activations quantized from it round as llama.cpp's do;
 *  - every fast level, with 1 and 2 threads, gives the reference's bits at D = 1, 31, 32, 33, 64,
 *    4095, 4097 (remainders of every SIMD width; its squares summed in double lanes, whose order
 *    could move the f32 mean only within ~1e-16 of a rounding boundary: not on these seeded rows);
 *  - it works in place (out aliases x);
 *  - rows are independent: a row of huge values next to a row of tiny ones is normalized right.
 * FUSELM_PARITY_LOG=1 prints the measured errors.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { assertClose, fastImpls, randn, rng, runOp } from '../helpers/parity.js';

const log = process.env.FUSELM_PARITY_LOG ? (s: string) => console.log(`      ${s}`) : () => {};
const levels = (): NativeImpl[] => ['reference', ...fastImpls()];

async function rmsNorm(T: number, D: number, x: Float32Array, w: Float32Array, eps: number, impl: NativeImpl, threads = 1, inPlace = false) {
  const tx = tensorFromF32('f32', [T, D], x), tw = tensorFromF32('f32', [D], w);
  const out = inPlace ? tx : emptyTensor('f32', [T, D]);
  await runOp(ops.rmsNorm(out, tx, tw, eps), { impl, threads, n: T });
  return readF32Rows(out, 0, T);
}

/** llama.cpp's rms_norm and mul, rounding as its f32 and double steps do. */
function rmsNormLlamaCpp(T: number, D: number, x: Float32Array, w: Float32Array, eps: number): Float32Array {
  const f = Math.fround, out = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += f(x[t * D + i] * x[t * D + i]);
    const scale = f(1 / f(Math.sqrt(f(f(ss / D) + eps))));
    for (let i = 0; i < D; i++) out[t * D + i] = f(x[t * D + i] * scale) * w[i];
  }
  return out;
}

function rmsNormJs(T: number, D: number, x: Float32Array, w: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[t * D + i] ** 2;
    const s = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) out[t * D + i] = x[t * D + i] * s * w[i];
  }
  return out;
}

describe('op rms_norm', () => {
  it('hand-computed: x = [3, 4], w = [1, 2], eps = 0', async () => {
    const s = 1 / Math.sqrt(12.5);
    for (const impl of levels())
      assertClose(await rmsNorm(1, 2, new Float32Array([3, 4]), new Float32Array([1, 2]), 0, impl), [3 * s, 8 * s], { rel: 1e-7, abs: 1e-6 }, impl);
  });

  for (const [T, D] of [[1, 1], [3, 31], [2, 32], [5, 33], [4, 64], [1, 4095], [3, 4097]]) {
    it(`every level matches the reference at T=${T} D=${D}, also in place`, async () => {
      const r = rng(T * 7919 + D);
      const x = randn(T * D, r, 3), w = randn(D, r);
      const ref = await rmsNorm(T, D, x, w, 1e-5, 'reference');
      assertClose(ref, rmsNormJs(T, D, x, w, 1e-5), { rel: 1e-7, abs: 1e-6 }, 'reference vs TypeScript');
      assert.deepEqual(ref, rmsNormLlamaCpp(T, D, x, w, 1e-5), "reference vs llama.cpp's rounding");
      for (const impl of fastImpls())
        for (const threads of [1, 2])
          for (const inPlace of [false, true]) {
            const out = await rmsNorm(T, D, x, w, 1e-5, impl, threads, inPlace);
            const diff = out.findIndex((v, i) => !Object.is(v, ref[i]));
            log(`${impl}/${threads}t${inPlace ? ' in place' : ''} first difference ${diff}`);
            assert.equal(diff, -1, `${impl}/${threads}t${inPlace ? ' in place' : ''}: value ${diff} is ${out[diff]}, the reference's ${ref[diff]}`);
          }
    });
  }

  it('normalizes each row on its own (huge and tiny rows side by side)', async () => {
    const D = 100;
    const x = new Float32Array(2 * D).map((_, i) => (i < D ? 1e18 : 1e-12) * Math.sin(i + 1));
    const w = new Float32Array(D).fill(1);
    for (const impl of levels()) {
      const out = await rmsNorm(2, D, x, w, 0, impl, 2);
      assertClose(out, rmsNormJs(2, D, x, w, 0), { rel: 1e-6, abs: 1e-5 }, impl);
    }
  });
});
