/**
 * swiglu: out = silu(gate) * up, silu(x) = x / (1 + e^-x). Proves that
 *  - hand-computed values hold at every level: silu(0) = 0, silu(100) = 100, silu(-100) ≈ 0,
 *    and gates of ±100 and ±1000 produce no NaN or inf;
 *  - every fast level (vectorized exp), with 1 and 2 threads, matches the double reference
 *    elementwise within rel 1e-6 at awkward sizes, and in place (out aliases gate or up);
 *  - the vectorized exp behind it is accurate over the whole range: gates on a dense grid over
 *    [-80, 80] (silu(g) ≈ g e^g for g ≪ 0, so the exp's own error shows through).
 * FUSELM_PARITY_LOG=1 prints the measured errors.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { fastImpls, randn, rng, runOp } from '../helpers/parity.js';

const log = process.env.FUSELM_PARITY_LOG ? (s: string) => console.log(`      ${s}`) : () => {};
const levels = (): NativeImpl[] => ['reference', ...fastImpls()];

async function swiglu(T: number, D: number, g: Float32Array, u: Float32Array, impl: NativeImpl, threads = 1, alias: 'none' | 'gate' | 'up' = 'none') {
  const tg = tensorFromF32('f32', [T, D], g), tu = tensorFromF32('f32', [T, D], u);
  const out = alias === 'gate' ? tg : alias === 'up' ? tu : emptyTensor('f32', [T, D]);
  await runOp(ops.swiglu(out, tg, tu), { impl, threads, n: T });
  return readF32Rows(out, 0, T);
}

const siluJs = (g: number) => g / (1 + Math.exp(-g));

/** Largest elementwise |out - want| / |want| (want = 0 must give exactly 0). */
function maxRel(out: Float32Array, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < out.length; i++) {
    const e = want[i] === 0 ? Math.abs(out[i]) * 1e30 : Math.abs(out[i] - want[i]) / Math.abs(want[i]);
    if (!(e <= m)) m = e; // NaN-propagating
  }
  return m;
}

describe('op swiglu', () => {
  it('hand-computed: silu(0) = 0, silu(±100), silu(±1000), no NaN or inf', async () => {
    const g = new Float32Array([0, 100, -100, 1000, -1000, 1, -1, 88, -88, 89, -89, 104, -104]);
    const u = new Float32Array(g.length).fill(2);
    for (const impl of levels()) {
      const out = await swiglu(1, g.length, g, u, impl);
      assert.ok(out.every(Number.isFinite), `${impl}: ${out}`);
      assert.equal(out[0], 0, `${impl}: silu(0)`);
      assert.equal(out[1], 200, `${impl}: silu(100) * 2`);
      assert.equal(out[3], 2000, `${impl}: silu(1000) * 2`);
      assert.ok(Math.abs(out[2]) < 1e-39 && Math.abs(out[4]) === 0, `${impl}: silu(-100), silu(-1000) = ${out[2]}, ${out[4]}`);
      assert.ok(Math.abs(out[5] - 2 * siluJs(1)) < 1e-6 && Math.abs(out[6] - 2 * siluJs(-1)) < 1e-6, `${impl}: silu(±1)`);
    }
  });

  for (const [T, D] of [[1, 1], [3, 31], [2, 32], [5, 33], [1, 4095], [3, 4097], [4, 5632]]) {
    it(`every level matches the reference at T=${T} D=${D}, also in place`, async () => {
      const r = rng(T * 104729 + D);
      const g = randn(T * D, r, 4), u = randn(T * D, r);
      const ref = await swiglu(T, D, g, u, 'reference');
      for (const impl of fastImpls())
        for (const threads of [1, 2])
          for (const alias of ['none', 'gate', 'up'] as const) {
            const e = maxRel(await swiglu(T, D, g, u, impl, threads, alias), ref);
            log(`${impl}/${threads}t alias=${alias} max elementwise rel ${e.toExponential(2)}`);
            assert.ok(e <= 1e-6, `${impl}/${threads}t alias=${alias}: max elementwise rel err ${e}`);
          }
    });
  }

  it('the vectorized exp holds over gates in [-80, 80] (dense grid)', async () => {
    const n = 160001;
    const g = new Float32Array(n).map((_, i) => -80 + (160 * i) / (n - 1));
    const u = new Float32Array(n).fill(1);
    const want = Array.from(g, (x) => siluJs(x));
    for (const impl of levels()) {
      const e = maxRel(await swiglu(1, n, g, u, impl, 2), want);
      log(`${impl}: max elementwise rel err vs float64 ${e.toExponential(2)}`);
      assert.ok(e <= 1e-6, `${impl}: ${e}`);
    }
  });
});
