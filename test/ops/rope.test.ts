/**
 * rope: rotary position embedding in place, llama layout (pairs 2i, 2i+1) and NeoX layout
 * (pairs i, i + n_rot/2). Proves that
 *  - position 0 is the identity and position 1 with n_rot = 2 rotates the pair by 1 radian
 *    (hand-computed), at every level;
 *  - the reference equals a float64 TypeScript rotation (angles pos * freqScale *
 *    base^(-2i/n_rot));
 *  - every fast level, with 1 and 2 threads, matches the reference within rel 2e-7 (measured: 5e-8) for
 *    positions up to 4112, full and partial rotary (the dims past n_rot stay bit-identical),
 *    freqScale != 1, odd head counts and head sizes whose rotated part is no multiple of 8/16;
 *  - the two layouts give different results on the same input;
 *  - the per-thread table cache (reused by the next call at the same positions) never serves
 *    a stale table: one graph rotating several tensors with different settings, run at
 *    several positions and token counts, equals the reference node by node.
 * FUSELM_PARITY_LOG=1 prints the measured errors.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { CpuBackend, ops } from '../../lib/backend.js';
import { readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { assertClose, fastImpls, randn, relErr, rng, runOp } from '../helpers/parity.js';

interface Case { T: number; pos0: number; nHeads: number; headDim: number; nRot: number; neox: boolean; base?: number; freqScale?: number }

const log = process.env.FUSELM_PARITY_LOG ? (s: string) => console.log(`      ${s}`) : () => {};
const label = (c: Case) =>
  `${c.neox ? 'neox' : 'llama'} T=${c.T} pos0=${c.pos0} heads=${c.nHeads} hd=${c.headDim} nRot=${c.nRot}${c.freqScale ? ` fs=${c.freqScale}` : ''}`;

async function rope(c: Case, x: Float32Array, impl: NativeImpl, threads = 1): Promise<Float32Array> {
  const W = c.nHeads * c.headDim;
  const t = tensorFromF32('f32', [c.T, W], x);
  const node = ops.rope(t, { nHeads: c.nHeads, headDim: c.headDim, nRot: c.nRot, thetaBase: c.base ?? 10000, freqScale: c.freqScale, neox: c.neox });
  await runOp(node, { impl, threads, n: c.T, pos: c.pos0 });
  return readF32Rows(t, 0, c.T);
}

function ropeJs(c: Case, x: Float32Array): Float32Array {
  const out = Float32Array.from(x), half = c.nRot / 2;
  for (let t = 0; t < c.T; t++)
    for (let h = 0; h < c.nHeads; h++) {
      const o = (t * c.nHeads + h) * c.headDim;
      for (let i = 0; i < half; i++) {
        const th = (c.pos0 + t) * (c.freqScale ?? 1) * Math.pow(c.base ?? 10000, (-2 * i) / c.nRot);
        const i0 = o + (c.neox ? i : 2 * i), i1 = o + (c.neox ? i + half : 2 * i + 1);
        const x0 = x[i0], x1 = x[i1];
        out[i0] = x0 * Math.cos(th) - x1 * Math.sin(th);
        out[i1] = x0 * Math.sin(th) + x1 * Math.cos(th);
      }
    }
  return out;
}

const levels = (): NativeImpl[] => ['reference', ...fastImpls()];

describe('op rope', () => {
  it('hand-computed: position 0 is the identity; position 1, n_rot 2 rotates by 1 radian', async () => {
    const x = new Float32Array([0.5, -1.25, 2, 3, -4, 0.125, 7, -8]);
    for (const impl of levels())
      for (const neox of [false, true]) {
        const c0: Case = { T: 1, pos0: 0, nHeads: 2, headDim: 4, nRot: 4, neox };
        assert.deepEqual(await rope(c0, x, impl), x, `${impl} ${label(c0)}`);
        const c1: Case = { T: 1, pos0: 1, nHeads: 1, headDim: 2, nRot: 2, neox };
        const got = await rope(c1, new Float32Array([0.5, -1.25]), impl);
        const want = [0.5 * Math.cos(1) + 1.25 * Math.sin(1), 0.5 * Math.sin(1) - 1.25 * Math.cos(1)];
        assertClose(got, want, { rel: 1e-6, abs: 1e-6 }, `${impl} ${label(c1)}`);
      }
  });

  it('the reference equals a float64 rotation in TypeScript', async () => {
    for (const c of [
      { T: 3, pos0: 4000, nHeads: 3, headDim: 16, nRot: 16, neox: false },
      { T: 2, pos0: 77, nHeads: 2, headDim: 12, nRot: 8, neox: true, base: 500000, freqScale: 0.25 },
    ]) {
      const x = randn(c.T * c.nHeads * c.headDim, rng(c.pos0));
      assertClose(await rope(c, x, 'reference'), ropeJs(c, x), { rel: 1e-7, abs: 1e-6 }, label(c));
    }
  });

  const grid: Case[] = [];
  for (const neox of [false, true]) {
    grid.push(
      { T: 1, pos0: 0, nHeads: 1, headDim: 2, nRot: 2, neox },
      { T: 1, pos0: 4095, nHeads: 32, headDim: 128, nRot: 128, neox },
      { T: 17, pos0: 4095, nHeads: 5, headDim: 64, nRot: 64, neox },
      { T: 64, pos0: 0, nHeads: 8, headDim: 64, nRot: 64, neox },
      { T: 33, pos0: 1000, nHeads: 3, headDim: 80, nRot: 32, neox }, // partial rotary
      { T: 5, pos0: 123, nHeads: 7, headDim: 31 + 1, nRot: 26, neox, freqScale: 0.5 }, // rotated part not a multiple of 8/16
      { T: 9, pos0: 2048, nHeads: 4, headDim: 96, nRot: 96, neox, base: 500000 },
      { T: 3, pos0: 7, nHeads: 2, headDim: 256, nRot: 200, neox },
    );
  }
  for (const c of grid) {
    it(`every level matches the reference: ${label(c)}`, async () => {
      const x = randn(c.T * c.nHeads * c.headDim, rng(c.T * 7 + c.pos0 + c.nRot));
      const ref = await rope(c, x, 'reference');
      for (const impl of fastImpls())
        for (const threads of [1, 2]) {
          const out = await rope(c, x, impl, threads);
          log(`${impl}/${threads}t rel ${relErr(out, ref).toExponential(2)}`);
          assertClose(out, ref, { rel: 2e-7, abs: 1e-6 }, `${label(c)} ${impl}/${threads}t`);
          for (let t = 0; t < c.T * c.nHeads; t++)
            for (let i = c.nRot; i < c.headDim; i++)
              assert.equal(out[t * c.headDim + i], x[t * c.headDim + i], `${label(c)} ${impl}: dim ${i} past nRot changed`);
        }
    });
  }

  it('the llama and NeoX layouts give different results', async () => {
    const base: Case = { T: 2, pos0: 3, nHeads: 2, headDim: 8, nRot: 8, neox: false };
    const x = randn(base.T * base.nHeads * base.headDim, rng(5));
    for (const impl of levels()) {
      const a = await rope(base, x, impl), b = await rope({ ...base, neox: true }, x, impl);
      assert.ok(relErr(a, b) > 0.1, `${impl}: layouts agree`);
      assertClose(b, ropeJs({ ...base, neox: true }, x), { rel: 1e-6, abs: 1e-6 }, `${impl} neox`);
    }
  });

  it('never serves a stale table: mixed settings in one graph, changing positions and T', async () => {
    // neighbours differ in one setting each; the last equals the first, so the next run's
    // first node differs from the cached table only in positions or T
    const variants = [
      { nHeads: 4, headDim: 32, nRot: 32, neox: false },
      { nHeads: 2, headDim: 32, nRot: 32, neox: false }, // the same table
      { nHeads: 4, headDim: 32, nRot: 32, neox: false, freqScale: 0.5 },
      { nHeads: 4, headDim: 32, nRot: 32, neox: false },
      { nHeads: 4, headDim: 32, nRot: 32, neox: true },
      { nHeads: 4, headDim: 32, nRot: 16, neox: true },
      { nHeads: 4, headDim: 32, nRot: 16, neox: true, thetaBase: 500000 },
      { nHeads: 4, headDim: 32, nRot: 16, neox: true },
      { nHeads: 4, headDim: 32, nRot: 32, neox: false },
    ];
    const maxT = 20;
    for (const impl of fastImpls()) {
      const be = new CpuBackend({ threads: 2, impl });
      const xs = variants.map((v) => tensorFromF32('f32', [maxT, v.nHeads * v.headDim], new Float32Array(maxT * v.nHeads * v.headDim)));
      const g = be.graph(variants.map((v, i) => ops.rope(xs[i], { thetaBase: 10000, ...v })), maxT);
      const steps = [[3, 5], [20, 5], [3, 5], [1, 7], [1, 8], [5, 8], [20, 4000], [19, 4000]];
      // graph runs land on any libuv worker and the cache is per thread: repeat, so that
      // consecutive runs share a thread many times
      for (const [T, pos] of [...steps, ...steps, ...steps, ...steps]) {
        const data = variants.map((v, i) => randn(maxT * v.nHeads * v.headDim, rng(T * 100 + pos + i)));
        xs.forEach((x, i) => x.write(data[i]));
        await g.run(T, pos);
        for (const [i, v] of variants.entries()) {
          const c: Case = { T, pos0: pos, nHeads: v.nHeads, headDim: v.headDim, nRot: v.nRot, neox: v.neox, base: v.thetaBase, freqScale: v.freqScale };
          const n = T * v.nHeads * v.headDim;
          assertClose(readF32Rows(xs[i], 0, T), ropeJs(c, data[i].subarray(0, n)), { rel: 2e-7, abs: 1e-6 }, `${impl} variant ${i} T=${T} pos=${pos}`);
        }
      }
      g.dispose();
      be.dispose();
    }
  });
});
