/**
 * kv_store: cache[pos0 + t] = src[t], rounded to the cache's type. Proves that
 *  - f32: the T new rows land at pos0 .. pos0 + T - 1 bit for bit and every other cache row
 *    stays untouched, at every level and thread count, for a single decode row, a prefill
 *    block, a copy large enough to be split across threads (several MiB), and the last rows;
 *  - f16 and bf16: every level (the reference, portable, AVX2, AVX-512) writes exactly the bits
 *    of a rounding written here in TypeScript (lib/formats/ggml-types.ts: nearest even, ties,
 *    f16 subnormals and overflow to infinity, infinities, -0, f32 subnormals), and nothing
 *    outside the new rows, at widths that leave vector tails (1, 7, 15, 17, 31, 33) and rows off
 *    16-byte alignment, and in a copy split across threads; a NaN stays a NaN of its sign, with
 *    the reference's bits at every level;
 *  - a cache of another type is refused.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../../lib/formats/ggml-types.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { fastImpls, randn, rng, runOp } from '../helpers/parity.js';

const levels = (): NativeImpl[] => ['reference', ...fastImpls()];

describe('op kv_store', () => {
  for (const [ctx, W, T, pos0] of [[8, 4, 1, 0], [16, 33, 1, 7], [64, 256, 17, 5], [40, 31, 3, 37], [600, 1024, 520, 50]]) {
    it(`writes ${T} rows at ${pos0} of a [${ctx}x${W}] cache and nothing else`, async () => {
      const r = rng(ctx * 31 + W + T + pos0);
      const init = randn(ctx * W, r), src = randn(T * W, r);
      const want = Float32Array.from(init);
      want.set(src, pos0 * W);
      for (const impl of levels())
        for (const threads of [1, 2]) {
          const cache = tensorFromF32('f32', [ctx, W], init), s = tensorFromF32('f32', [T, W], src);
          await runOp(ops.kvStore(cache, s), { impl, threads, n: T, pos: pos0 });
          const got = readF32Rows(cache, 0, ctx);
          const bad = got.findIndex((v, i) => !Object.is(v, want[i]));
          assert.equal(bad, -1, `${impl}/${threads}t: first difference at row ${Math.floor(bad / W)}, col ${bad % W}`);
        }
    });
  }
});

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];

/** Random values with the rounding's hard cases mixed in at fixed strides. */
function halfSource(n: number, seed: number): Float32Array {
  const v = randn(n, rng(seed), 2);
  const special = [
    f32(0x3f801000), // 1 + 2^-11: an f16 tie, rounds to even (1)
    f32(0x3f803000), // 1 + 3 * 2^-11: an f16 tie, rounds to even (up)
    f32(0x3f808000), // 1 + 2^-8: a bf16 tie, rounds to even (1)
    f32(0x3f818000), // 1 + 3 * 2^-8: a bf16 tie, rounds up
    3e-6, -5e-8, 3e-8, 2.9e-8, // f16 subnormals; just above and below half the smallest (up to it, down to 0)
    65519, 65520, -1e5, // f16: below the rounding point to infinity, at it, past it
    f32(0x7f7fffff), // f32's largest: bf16 rounds it to infinity
    Infinity, -Infinity, -0, f32(0x00000001), f32(0x80400000), // f32 subnormals
  ];
  for (let i = 0; i < n; i += 3) v[i] = special[(i / 3) % special.length];
  return v;
}

describe('op kv_store into f16 and bf16 caches', () => {
  for (const dtype of ['f16', 'bf16'] as const) {
    const round = dtype === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
    // [ctx, W, T, pos0]: decode rows, odd widths (vector tails; rows off 16-byte alignment),
    // a prefill block, and 3 chunks of 256 Ki values split across threads
    for (const [ctx, W, T, pos0] of [[4, 1, 1, 2], [16, 7, 1, 9], [20, 15, 3, 5], [40, 17, 4, 33], [64, 31, 5, 3], [70, 33, 9, 61], [600, 1024, 520, 50]]) {
      it(`${dtype}: ${T} rows of ${W} at ${pos0} have the bits of the TypeScript rounding at every level, the rest untouched`, async () => {
        const src = halfSource(T * W, ctx * 7 + W + T);
        const init = Uint16Array.from({ length: ctx * W }, (_, i) => (i * 2654435761) >>> 17 & 0x7bff); // no NaN patterns
        const want = Uint16Array.from(init);
        for (let i = 0; i < T * W; i++) want[pos0 * W + i] = round(src[i]);
        for (const impl of levels())
          for (const threads of [1, 2]) {
            const cache = emptyTensor(dtype, [ctx, W]);
            cache.write(init);
            await runOp(ops.kvStore(cache, tensorFromF32('f32', [T, W], src)), { impl, threads, n: T, pos: pos0 });
            const got = new Uint16Array(cache.read());
            const bad = got.findIndex((b, i) => b !== want[i]);
            assert.equal(bad, -1, `${impl}/${threads}t: first difference at row ${Math.floor(bad / W)}, col ${bad % W}: ` +
              `0x${got[bad]?.toString(16)}, want 0x${want[bad]?.toString(16)} (from ${src[bad - pos0 * W]})`);
          }
      });
    }

    it(`${dtype}: a NaN stays a NaN of its sign, with the reference's bits at every level`, async () => {
      const W = 37;
      const src = new Float32Array(W).map((_, i) => (i % 2 ? -1 : 1) * (i % 3 ? NaN : 0.5));
      new Uint32Array(src.buffer)[5] = 0x7fa00001; // a signalling NaN with a payload
      new Uint32Array(src.buffer)[6] = 0xff800001;
      new Uint32Array(src.buffer)[7] = 0xffc00000;
      const bits: Uint16Array[] = [];
      for (const impl of levels()) {
        const cache = emptyTensor(dtype, [1, W]);
        await runOp(ops.kvStore(cache, tensorFromF32('f32', [1, W], src)), { impl, n: 1 });
        bits.push(new Uint16Array(cache.read()));
      }
      const [exp, mant] = dtype === 'f16' ? [0x7c00, 0x3ff] : [0x7f80, 0x7f];
      for (let i = 0; i < W; i++) {
        const isNaN = Number.isNaN(src[i]), b = bits[0][i];
        if (isNaN) assert.ok((b & exp) === exp && (b & mant) !== 0 && b >> 15 === new Uint32Array(src.buffer)[i] >>> 31, `value ${i}: 0x${b.toString(16)}`);
        else assert.equal(b, round(src[i]));
        for (let l = 1; l < bits.length; l++) assert.equal(bits[l][i], b, `${levels()[l]}, value ${i}`);
      }
    });
  }

  it('refuses a cache that is not f32, f16 or bf16', async () => {
    const src = emptyTensor('f32', [1, 32]);
    await assert.rejects(runOp(ops.kvStore(emptyTensor('q8_0', [4, 32]), src), { impl: 'reference', n: 1 }), /cache must be f32, f16 or bf16/);
  });
});
