/**
 * attention: causal multi-head attention over an f32 KV cache, with GQA and an online softmax.
 * Proves that
 *  - the reference gives the hand-computed answers (one key: out = v; two equal keys: the
 *    mean of their v rows) and agrees with a float64 softmax written here in TypeScript;
 *  - every fast kernel level (portable, avx2, avx512 where the CPU has them), with 1 and 2
 *    threads, matches the double-precision reference within rel 1e-5 over decode (T = 1) and
 *    prefill shapes: pos0 0..1000, head_dim 8/31/64/128 (plus 16, 32, 96), GQA ratios 1..4,
 *    odd head counts; this covers key tiles, partial tiles, token blocks and the split of a
 *    long key range across threads with its log-sum-exp merge;
 *  - causality: cache rows after pos0 + T - 1 hold NaN and never reach the output;
 *  - stability: q scaled by 100 (scores in the thousands) gives finite, correct output;
 *  - f16 and bf16 caches (and shared prefixes): the reference equals float64 TypeScript over the
 *    rounded values; every fast level gives, bit for bit, its own output over an f32 cache
 *    holding those values (the widening is exact and the f32 kernels run on it), and matches
 *    the reference within rel 1e-5, in decode and prefill, at awkward head dims, GQA ratios,
 *    windows, not causal, and with a prefix; caches and prefixes of mixed types are refused.
 * FUSELM_PARITY_LOG=1 prints the measured errors.
 */
import assert from 'node:assert/strict';
import type { NativeImpl, NativeTensor } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../lib/formats/ggml-types.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { assertClose, fastImpls, randn, relErr, rng, runOp } from '../helpers/parity.js';

interface Case { T: number; pos0: number; hd: number; nH: number; nKv: number; qScale?: number; window?: number; causal?: boolean }

const log = process.env.FUSELM_PARITY_LOG ? (s: string) => console.log(`      ${s}`) : () => {};

type KvType = 'f32' | 'f16' | 'bf16';

/** Runs attention at `impl` on fresh tensors, caches of kv; cache rows past pos0 + T - 1 are NaN. */
async function attend(c: Case, data: { q: Float32Array; k: Float32Array; v: Float32Array }, impl: NativeImpl, threads: number, kv: KvType = 'f32') {
  const W = c.nH * c.hd, kvW = c.nKv * c.hd, ctx = c.pos0 + c.T + 3;
  const q = tensorFromF32('f32', [c.T, W], data.q);
  const k = tensorFromF32(kv, [ctx, kvW], data.k), v = tensorFromF32(kv, [ctx, kvW], data.v);
  const out = emptyTensor('f32', [c.T, W]);
  const node = ops.attention(out, q, k, v, { nHeads: c.nH, nKvHeads: c.nKv, headDim: c.hd, scale: 1 / Math.sqrt(c.hd), window: c.window, causal: c.causal });
  await runOp(node, { impl, threads, n: c.T, pos: c.pos0 });
  return readF32Rows(out, 0, c.T);
}

function randomCase(c: Case) {
  const r = rng(c.T * 1000003 + c.pos0 * 7919 + c.hd * 131 + c.nH * 17 + c.nKv);
  const ctx = c.pos0 + c.T + 3, kvW = c.nKv * c.hd, valid = (c.pos0 + c.T) * kvW;
  const k = randn(ctx * kvW, r), v = randn(ctx * kvW, r);
  k.fill(NaN, valid);
  v.fill(NaN, valid);
  return { q: randn(c.T * c.nH * c.hd, r, c.qScale ?? 1), k, v };
}

/** The same attention in float64 TypeScript: plain softmax over all keys of each query. */
function attentionJs(c: Case, d: { q: Float32Array; k: Float32Array; v: Float32Array }): Float32Array {
  const W = c.nH * c.hd, kvW = c.nKv * c.hd, group = c.nH / c.nKv, scale = 1 / Math.sqrt(c.hd);
  const out = new Float32Array(c.T * W);
  for (let t = 0; t < c.T; t++)
    for (let h = 0; h < c.nH; h++) {
      const causal = c.causal ?? true;
      const n = causal ? c.pos0 + t + 1 : c.pos0 + c.T, kv = Math.floor(h / group) * c.hd;
      const lo = causal && c.window ? Math.max(0, c.pos0 + t - c.window + 1) : 0;
      const s = new Float64Array(n).fill(-Infinity);
      for (let j = lo; j < n; j++) {
        let dot = 0;
        for (let i = 0; i < c.hd; i++) dot += d.q[t * W + h * c.hd + i] * d.k[j * kvW + kv + i];
        s[j] = dot * scale;
      }
      const mx = Math.max(...s);
      let sum = 0;
      for (let j = 0; j < n; j++) sum += s[j] = Math.exp(s[j] - mx);
      for (let i = 0; i < c.hd; i++) {
        let acc = 0;
        for (let j = lo; j < n; j++) acc += s[j] * d.v[j * kvW + kv + i];
        out[t * W + h * c.hd + i] = acc / sum;
      }
    }
  return out;
}

const label = (c: Case) =>
  `T=${c.T} pos0=${c.pos0} hd=${c.hd} heads=${c.nH}/${c.nKv}${c.qScale ? ` q*${c.qScale}` : ''}${c.window ? ` window=${c.window}` : ''}${c.causal === false ? ' bidirectional' : ''}`;

describe('op attention', () => {
  it('hand-computed: one key gives v; two equal keys give the mean of their v rows', async () => {
    const hd = 4;
    const v1 = new Float32Array([1, -2, 3.5, 0.25]), v2 = new Float32Array([3, 2, -1.5, 0.75]);
    const k = new Float32Array([0.5, 1, -1, 2, 0.5, 1, -1, 2]);
    const q = new Float32Array([0.3, -0.7, 1.1, 0.2]);
    for (const impl of ['reference' as const, ...fastImpls()]) {
      // T = 1 at pos0 = 0: only key 0 is visible (the rows after it are NaN)
      const c1: Case = { T: 1, pos0: 0, hd, nH: 1, nKv: 1 };
      const d1 = { q: q, k: new Float32Array([...k.slice(0, 4), ...new Float32Array(12).fill(NaN)]), v: new Float32Array([...v1, ...new Float32Array(12).fill(NaN)]) };
      assert.deepEqual(await attend(c1, d1, impl, 1), v1, `${impl}: one key`);
      // T = 1 at pos0 = 1: keys 0 and 1 are equal, so the weights are 1/2 each
      const c2: Case = { T: 1, pos0: 1, hd, nH: 1, nKv: 1 };
      const d2 = { q: q, k: new Float32Array([...k, ...new Float32Array(12).fill(NaN)]), v: new Float32Array([...v1, ...v2, ...new Float32Array(12).fill(NaN)]) };
      const got = await attend(c2, d2, impl, 1);
      assertClose(got, v1.map((x, i) => (x + v2[i]) / 2), { rel: 1e-7, abs: 1e-6 }, `${impl}: two equal keys`);
    }
  });

  it('the reference agrees with a float64 softmax in TypeScript', async () => {
    for (const c of [{ T: 3, pos0: 5, hd: 8, nH: 6, nKv: 2 }, { T: 2, pos0: 40, hd: 31, nH: 4, nKv: 1 }]) {
      const d = randomCase(c);
      assertClose(await attend(c, d, 'reference', 1), attentionJs(c, d), { rel: 1e-7, abs: 1e-6 }, label(c));
    }
  });

  // A representative grid: every T, pos0, head_dim and head layout appears several times.
  const grid: Case[] = [
    { T: 1, pos0: 0, hd: 8, nH: 1, nKv: 1 },
    { T: 1, pos0: 5, hd: 8, nH: 5, nKv: 5 },
    { T: 1, pos0: 100, hd: 31, nH: 6, nKv: 2 },
    { T: 1, pos0: 1000, hd: 64, nH: 32, nKv: 8 },
    { T: 1, pos0: 1000, hd: 128, nH: 8, nKv: 4 },
    { T: 1, pos0: 1000, hd: 8, nH: 6, nKv: 2 },
    { T: 1, pos0: 1000, hd: 31, nH: 1, nKv: 1 },
    { T: 1, pos0: 100, hd: 16, nH: 8, nKv: 4 },
    { T: 1, pos0: 100, hd: 32, nH: 5, nKv: 5 },
    { T: 1, pos0: 100, hd: 96, nH: 6, nKv: 2 },
    { T: 3, pos0: 0, hd: 128, nH: 32, nKv: 8 },
    { T: 3, pos0: 5, hd: 31, nH: 5, nKv: 5 },
    { T: 3, pos0: 1000, hd: 64, nH: 1, nKv: 1 },
    { T: 17, pos0: 0, hd: 8, nH: 8, nKv: 4 },
    { T: 17, pos0: 5, hd: 64, nH: 32, nKv: 8 },
    { T: 17, pos0: 100, hd: 128, nH: 6, nKv: 2 },
    { T: 17, pos0: 1000, hd: 31, nH: 8, nKv: 4 },
    { T: 64, pos0: 0, hd: 64, nH: 32, nKv: 8 },
    { T: 64, pos0: 5, hd: 8, nH: 1, nKv: 1 },
    { T: 64, pos0: 100, hd: 31, nH: 8, nKv: 4 },
    { T: 64, pos0: 1000, hd: 128, nH: 5, nKv: 5 },
  ];
  for (const c of grid) {
    it(`every level matches the reference at ${label(c)}`, async () => {
      const d = randomCase(c);
      const ref = await attend(c, d, 'reference', 1);
      for (const impl of fastImpls())
        for (const threads of [1, 2]) {
          const out = await attend(c, d, impl, threads);
          log(`${impl}/${threads}t rel ${relErr(out, ref).toExponential(2)}`);
          assertClose(out, ref, { rel: 1e-5, abs: 1e-5 }, `${label(c)} ${impl}/${threads}t`);
        }
    });
  }

  it('stays finite and correct with huge scores (q scaled by 100)', async () => {
    for (const c of [
      { T: 1, pos0: 1000, hd: 64, nH: 8, nKv: 2, qScale: 100 },
      { T: 17, pos0: 40, hd: 31, nH: 6, nKv: 2, qScale: 100 },
    ]) {
      const d = randomCase(c);
      const ref = await attend(c, d, 'reference', 1);
      for (const impl of fastImpls())
        for (const threads of [1, 2]) {
          const out = await attend(c, d, impl, threads);
          assert.ok(out.every(Number.isFinite), `${label(c)} ${impl}/${threads}t: non-finite output`);
          log(`${impl}/${threads}t rel ${relErr(out, ref).toExponential(2)}`);
          assertClose(out, ref, { rel: 1e-5, abs: 1e-4 }, `${label(c)} ${impl}/${threads}t`);
        }
    }
  });

  // Sliding window (Mistral): key j visible from query i iff 0 <= i - j < window; and the
  // bidirectional attention of encoders (BERT): every key of the run visible. Windows smaller,
  // equal and larger than a key tile, crossing tile and chunk boundaries, decode and prefill.
  const masked: Case[] = [
    { T: 1, pos0: 0, hd: 8, nH: 2, nKv: 1, window: 1 },
    { T: 1, pos0: 1000, hd: 64, nH: 8, nKv: 2, window: 4 },
    { T: 1, pos0: 1000, hd: 31, nH: 6, nKv: 3, window: 333 },
    { T: 17, pos0: 5, hd: 8, nH: 5, nKv: 5, window: 4 },
    { T: 17, pos0: 100, hd: 128, nH: 6, nKv: 2, window: 32 },
    { T: 64, pos0: 0, hd: 31, nH: 8, nKv: 4, window: 33 },
    { T: 64, pos0: 1000, hd: 64, nH: 4, nKv: 1, window: 4097 },
    { T: 1, pos0: 0, hd: 8, nH: 1, nKv: 1, causal: false },
    { T: 16, pos0: 0, hd: 4, nH: 2, nKv: 2, causal: false },
    { T: 33, pos0: 0, hd: 31, nH: 6, nKv: 2, causal: false },
    { T: 64, pos0: 0, hd: 64, nH: 8, nKv: 8, causal: false },
    { T: 5, pos0: 300, hd: 128, nH: 4, nKv: 2, causal: false },
  ];
  for (const c of masked)
    it(`masks: every level matches the reference and float64 TypeScript at ${label(c)}`, async () => {
      const d = randomCase(c);
      const ref = await attend(c, d, 'reference', 1);
      assertClose(ref, attentionJs(c, d), { rel: 1e-6, abs: 1e-5 }, `${label(c)} reference vs TypeScript`);
      for (const impl of fastImpls())
        for (const threads of [1, 2]) assertClose(await attend(c, d, impl, threads), ref, { rel: 1e-5, abs: 1e-5 }, `${label(c)} ${impl}/${threads}t`);
    });

  it('a window of w equals plain causal attention over only the last w keys', async () => {
    // keys before the window hold NaN: they must never be read into the output
    const c: Case = { T: 4, pos0: 60, hd: 16, nH: 2, nKv: 1, window: 8 };
    const d = randomCase(c);
    d.k.fill(NaN, 0, (c.pos0 - c.window! + 1) * c.hd);
    d.v.fill(NaN, 0, (c.pos0 - c.window! + 1) * c.hd);
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) {
      const out = await attend(c, d, impl, 2);
      assert.ok(out.every(Number.isFinite), impl);
    }
  });
});

/** The case's data with k and v rounded to kv (and back to f32): what a cache of kv holds. */
function rounded(d: { q: Float32Array; k: Float32Array; v: Float32Array }, kv: 'f16' | 'bf16') {
  const [to, from] = kv === 'f16' ? [f32ToF16Bits, f16BitsToF32] : [f32ToBf16Bits, bf16BitsToF32];
  const r = (x: Float32Array) => x.map((f) => from(to(f)));
  return { q: d.q, k: r(d.k), v: r(d.v) };
}

describe('op attention over f16 and bf16 caches', () => {
  it('the reference equals float64 TypeScript over the rounded values', async () => {
    for (const kv of ['f16', 'bf16'] as const)
      for (const c of [
        { T: 3, pos0: 5, hd: 8, nH: 6, nKv: 2 },
        { T: 2, pos0: 40, hd: 31, nH: 4, nKv: 1 },
        { T: 5, pos0: 30, hd: 16, nH: 2, nKv: 2, window: 7 },
        { T: 9, pos0: 0, hd: 33, nH: 3, nKv: 1, causal: false },
      ]) {
        const d = rounded(randomCase(c), kv);
        assertClose(await attend(c, d, 'reference', 1, kv), attentionJs(c, d), { rel: 1e-7, abs: 1e-6 }, `${kv} ${label(c)}`);
      }
  });

  // Decode (T = 1, keys split across threads in long caches) and prefill (token blocks), head
  // dims with and without a kernel of their own, GQA 1..4, odd head counts, windows, not causal.
  const grid: Case[] = [
    { T: 1, pos0: 0, hd: 8, nH: 1, nKv: 1 },
    { T: 1, pos0: 5, hd: 31, nH: 5, nKv: 5 },
    { T: 1, pos0: 100, hd: 16, nH: 8, nKv: 4 },
    { T: 1, pos0: 1000, hd: 64, nH: 32, nKv: 8 },
    { T: 1, pos0: 1000, hd: 128, nH: 8, nKv: 4 },
    { T: 1, pos0: 700, hd: 33, nH: 6, nKv: 2 },
    { T: 1, pos0: 333, hd: 96, nH: 6, nKv: 2, window: 100 },
    { T: 3, pos0: 0, hd: 128, nH: 4, nKv: 1 },
    { T: 3, pos0: 5, hd: 31, nH: 5, nKv: 5 },
    { T: 17, pos0: 40, hd: 64, nH: 8, nKv: 2 },
    { T: 17, pos0: 100, hd: 32, nH: 6, nKv: 2, window: 33 },
    { T: 33, pos0: 0, hd: 31, nH: 6, nKv: 2, causal: false },
    { T: 64, pos0: 200, hd: 64, nH: 4, nKv: 1 },
  ];
  for (const kv of ['f16', 'bf16'] as const)
    for (const c of grid)
      it(`${kv}: every level gives its f32 output over the rounded values and matches the reference at ${label(c)}`, async () => {
        const d = rounded(randomCase(c), kv);
        const ref = await attend(c, d, 'reference', 1, kv);
        for (const impl of fastImpls())
          for (const threads of [1, 2]) {
            const out = await attend(c, d, impl, threads, kv);
            const asF32 = await attend(c, d, impl, threads, 'f32');
            const bad = out.findIndex((x, i) => !Object.is(x, asF32[i]));
            assert.equal(bad, -1, `${kv} ${label(c)} ${impl}/${threads}t: output ${bad} is ${out[bad]} over the ${kv} cache, ${asF32[bad]} over f32`);
            log(`${kv} ${impl}/${threads}t rel ${relErr(out, ref).toExponential(2)}`);
            assertClose(out, ref, { rel: 1e-5, abs: 1e-5 }, `${kv} ${label(c)} ${impl}/${threads}t`);
          }
      });

  it('refuses a key and a value cache of different types', async () => {
    const o = { nHeads: 2, nKvHeads: 1, headDim: 8, scale: 1 };
    const node = ops.attention(emptyTensor('f32', [1, 16]), emptyTensor('f32', [1, 16]), emptyTensor('f16', [4, 8]), emptyTensor('f32', [4, 8]), o);
    await assert.rejects(runOp(node, { impl: 'reference', n: 1 }), /vCache must have kCache's dtype \(f16\), got f32\[4, 8\]/);
  });
});

describe('op attention with a shared prefix (beam search)', () => {
  /**
   * The cache of case c split at P: rows 0..P-1 in a prefix tensor, the rest (from row 0) in the
   * own cache, the tokens at pos0 - P of it; must equal attention over the whole cache.
   */
  async function attendSplit(c: Case, P: number, data: { q: Float32Array; k: Float32Array; v: Float32Array }, impl: NativeImpl, threads: number, kv: KvType = 'f32') {
    const W = c.nH * c.hd, kvW = c.nKv * c.hd, ctx = c.pos0 + c.T + 3;
    const q = tensorFromF32('f32', [c.T, W], data.q);
    const kp = tensorFromF32(kv, [P, kvW], data.k.subarray(0, P * kvW)), vp = tensorFromF32(kv, [P, kvW], data.v.subarray(0, P * kvW));
    const k = tensorFromF32(kv, [ctx - P, kvW], data.k.subarray(P * kvW)), v = tensorFromF32(kv, [ctx - P, kvW], data.v.subarray(P * kvW));
    const out = emptyTensor('f32', [c.T, W]);
    const node = ops.attention(out, q, k, v, {
      nHeads: c.nH, nKvHeads: c.nKv, headDim: c.hd, scale: 1 / Math.sqrt(c.hd), window: c.window, causal: c.causal,
      prefix: { k: kp, v: vp, len: P },
    });
    await runOp(node, { impl, threads, n: c.T, pos: c.pos0 - P });
    return readF32Rows(out, 0, c.T);
  }

  const cases: [Case, number][] = [
    [{ T: 1, pos0: 40, hd: 64, nH: 4, nKv: 2 }, 17], // decode: a prefix that ends inside a key tile
    [{ T: 1, pos0: 1000, hd: 32, nH: 4, nKv: 1 }, 600], // long: the key split across threads spans the boundary
    [{ T: 5, pos0: 33, hd: 16, nH: 2, nKv: 2 }, 33], // prefill right after the prefix
    [{ T: 3, pos0: 70, hd: 8, nH: 6, nKv: 3, window: 20 }, 60], // a window reaching into the prefix
    [{ T: 2, pos0: 64, hd: 31, nH: 2, nKv: 1 }, 64], // a prefix of whole tiles
  ];
  for (const [c, P] of cases)
    it(`equals attention over the joined cache: T=${c.T} pos=${c.pos0} prefix=${P} hd=${c.hd} ${c.nH}/${c.nKv}${c.window ? ` window ${c.window}` : ''}`, async () => {
      const d = randomCase(c);
      const want = attentionJs(c, d);
      for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
        for (const threads of [1, 2]) assertClose(await attendSplit(c, P, d, impl, threads), want, { rel: 1e-5, abs: 1e-5 }, `${impl}/${threads}t`);
    });

  for (const kv of ['f16', 'bf16'] as const)
    for (const [c, P] of cases)
      it(`${kv} caches and prefix equal float64 attention over the joined, rounded cache: T=${c.T} pos=${c.pos0} prefix=${P} hd=${c.hd} ${c.nH}/${c.nKv}${c.window ? ` window ${c.window}` : ''}`, async () => {
        const d = rounded(randomCase(c), kv);
        const want = attentionJs(c, d);
        for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
          for (const threads of [1, 2]) assertClose(await attendSplit(c, P, d, impl, threads, kv), want, { rel: 1e-5, abs: 1e-5 }, `${kv} ${impl}/${threads}t`);
      });

  it('refuses a prefix of another type than the caches', async () => {
    const o = { nHeads: 2, nKvHeads: 1, headDim: 8, scale: 1 };
    const h = (r: number) => emptyTensor('f16', [r, 8]);
    const prefix = { k: emptyTensor('f32', [3, 8]), v: emptyTensor('f32', [3, 8]), len: 3 };
    await assert.rejects(runOp(ops.attention(emptyTensor('f32', [1, 16]), emptyTensor('f32', [1, 16]), h(4), h(4), { ...o, prefix }), { impl: 'reference', n: 1 }),
      /kPrefix must have kCache's dtype \(f16\), got f32\[3, 8\]/);
  });

  it('refuses a prefix with the wrong width or too few rows', async () => {
    const t = (r: number, c: number) => emptyTensor('f32', [r, c]);
    const o = { nHeads: 2, nKvHeads: 1, headDim: 8, scale: 1 };
    const run = (k: NativeTensor, v: NativeTensor, len: number) =>
      runOp(ops.attention(t(1, 16), t(1, 16), t(4, 8), t(4, 8), { ...o, prefix: { k, v, len } }), { impl: 'reference', n: 1 });
    await assert.rejects(run(t(3, 16), t(3, 16), 3), /kPrefix must have 8 columns/);
    await assert.rejects(run(t(3, 8), t(3, 8), 4), /kPrefix must hold at least 4 rows, got f32\[3, 8\]/);
  });
});
