/**
 * Paged KV caches (kv_store and attention through a block table, native/ops/paged.h) against
 * the contiguous path. Proves that
 *  - kv_store through a scattered block table writes exactly the rows a contiguous cache gets,
 *    each at its block's row, and nothing else of the pool (f32, f16), at every level and
 *    thread count, from one row to runs that cross several block boundaries;
 *  - attention over a pool read through the table gives the contiguous cache's output bit for
 *    bit, at every level and thread count (each key tile is gathered into one run first), in
 *    decode and prefill, over block sizes 1, 4, 16 and 32, f32 and f16 caches, with a window,
 *    and at positions that end exactly on a block boundary;
 *  - a table entry outside the pool, a run past the table's blocks, a block size that does not
 *    divide the pool, a table of the wrong type and a table with a prefix are typed errors.
 */
import assert from 'node:assert/strict';
import type { NativeImpl, NativeTensor } from '../../bindings.js';
import { CpuBackend, ops } from '../../lib/backend.js';
import { readValues } from '../../lib/ops/run.js';
import { emptyTensor, readF32Rows, tensorFromF32, tensorFromI32 } from '../../lib/tensor.js';
import { assertClose, fastImpls, randn, rng, runOp } from '../helpers/parity.js';

const levels = (): NativeImpl[] => ['reference', ...fastImpls()];

/** A scattered table row of `n` blocks out of a pool of `blocks`: a permutation's first n. */
function scattered(n: number, blocks: number, seed: number): Int32Array {
  const r = rng(seed), ids = Array.from({ length: blocks }, (_, i) => i);
  for (let i = blocks - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return Int32Array.from(ids.slice(0, n));
}

/** The pool's rows as a contiguous cache of `ctx` positions (through table row `row`). */
function scatter(contig: Float32Array, W: number, ctx: number, table: Int32Array, bs: number, blocks: number, fill: number): Float32Array {
  const pool = new Float32Array(blocks * bs * W).fill(fill);
  for (let p = 0; p < ctx; p++) pool.set(contig.subarray(p * W, (p + 1) * W), (table[Math.floor(p / bs)] * bs + (p % bs)) * W);
  return pool;
}

describe('paged kv_store', () => {
  // [block size, blocks in the pool, T, pos0]
  for (const [bs, blocks, T, pos0] of [[16, 6, 1, 0], [16, 6, 1, 47], [4, 12, 19, 3], [8, 9, 40, 8], [1, 40, 7, 30], [32, 3, 64, 0]]) {
    for (const dtype of ['f32', 'f16'] as const)
      it(`${dtype}: block ${bs}, ${T} rows at ${pos0} land in their blocks' rows, the rest of the pool untouched`, async () => {
        const W = 24, r = rng(bs * 100 + T + pos0);
        const src = randn(T * W, r), init = randn(blocks * bs * W, r);
        const table = scattered(Math.ceil((pos0 + T) / bs), blocks, bs + T);
        // the expected pool: the initial one (rounded to the dtype) with the new rows at their rows
        const expected = new Float32Array(readValues(tensorFromF32(dtype, [blocks * bs, W], init)));
        const rounded = readValues(tensorFromF32(dtype, [T, W], src));
        for (let t = 0; t < T; t++) {
          const p = pos0 + t;
          expected.set(rounded.subarray(t * W, (t + 1) * W), (table[Math.floor(p / bs)] * bs + (p % bs)) * W);
        }
        for (const impl of levels())
          for (const threads of [1, 2]) {
            const pool = tensorFromF32(dtype, [blocks * bs, W], init);
            const tab = tensorFromI32([2, table.length], Int32Array.from([...table.map(() => -1), ...table]));
            await runOp(ops.kvStore(pool, tensorFromF32('f32', [T, W], src), undefined, { table: tab, blockSize: bs, row: 1 }), { impl, threads, n: T, pos: pos0 });
            const got = readValues(pool);
            const bad = got.findIndex((v, i) => !Object.is(v, expected[i]));
            assert.equal(bad, -1, `${impl}/${threads}t: first difference at pool row ${Math.floor(bad / W)}, col ${bad % W}`);
          }
      });
  }
});

interface AttnCase { bs: number; T: number; pos0: number; nH: number; nKv: number; hd: number; window?: number; dtype?: 'f32' | 'f16' }

describe('paged attention', () => {
  const cases: AttnCase[] = [
    { bs: 16, T: 1, pos0: 0, nH: 4, nKv: 2, hd: 32 },
    { bs: 16, T: 1, pos0: 15, nH: 4, nKv: 2, hd: 32 }, // the last key ends block 0
    { bs: 16, T: 1, pos0: 16, nH: 4, nKv: 2, hd: 32 }, // the first key of block 1
    { bs: 16, T: 1, pos0: 300, nH: 8, nKv: 2, hd: 64 }, // long enough to split keys across threads
    { bs: 4, T: 13, pos0: 6, nH: 3, nKv: 1, hd: 16 },
    { bs: 32, T: 40, pos0: 25, nH: 4, nKv: 4, hd: 128 },
    { bs: 1, T: 5, pos0: 20, nH: 2, nKv: 1, hd: 8 },
    { bs: 8, T: 9, pos0: 30, nH: 6, nKv: 2, hd: 16, window: 5 },
    { bs: 16, T: 1, pos0: 200, nH: 4, nKv: 2, hd: 64, dtype: 'f16' },
    { bs: 16, T: 21, pos0: 11, nH: 4, nKv: 2, hd: 32, dtype: 'f16' },
  ];
  for (const c of cases) {
    const dt = c.dtype ?? 'f32';
    it(`${dt} block ${c.bs}: ${c.T} tokens at ${c.pos0}, ${c.nH}/${c.nKv}x${c.hd}${c.window ? ` window ${c.window}` : ''} equal the contiguous cache's output`, async () => {
      const ctx = c.pos0 + c.T, W = c.nH * c.hd, kvW = c.nKv * c.hd, r = rng(c.bs * 1000 + c.pos0 + c.T);
      const used = Math.ceil(ctx / c.bs), blocks = used + 3;
      const table = scattered(used, blocks, c.pos0 + 7);
      const q = randn(c.T * W, r), k = randn(ctx * kvW, r), v = randn(ctx * kvW, r);
      // rows of the pool no position maps to hold NaN: reading one would show
      const kPool = scatter(k, kvW, ctx, table, c.bs, blocks, NaN), vPool = scatter(v, kvW, ctx, table, c.bs, blocks, NaN);
      const attn = { nHeads: c.nH, nKvHeads: c.nKv, headDim: c.hd, scale: 1 / Math.sqrt(c.hd), window: c.window };
      const run = async (impl: NativeImpl, threads: number, paged: boolean) => {
        const out = emptyTensor('f32', [c.T, W]);
        const kc = tensorFromF32(dt, paged ? [blocks * c.bs, kvW] : [ctx, kvW], paged ? kPool : k);
        const vc = tensorFromF32(dt, paged ? [blocks * c.bs, kvW] : [ctx, kvW], paged ? vPool : v);
        const tab = tensorFromI32([1, used], table);
        await runOp(ops.attention(out, tensorFromF32('f32', [c.T, W], q), kc, vc, { ...attn, ...(paged ? { paged: { table: tab, blockSize: c.bs, row: 0 } } : {}) }), { impl, threads, n: c.T, pos: c.pos0 });
        return readF32Rows(out, 0, c.T);
      };
      const want = await run('reference', 1, false);
      const ref = await run('reference', 1, true);
      assert.equal(ref.findIndex((x, i) => !Object.is(x, want[i])), -1, 'the reference, paged, gives the contiguous bits');
      for (const impl of fastImpls())
        for (const threads of [1, 2]) {
          const contiguous = await run(impl, threads, false), paged = await run(impl, threads, true);
          const bad = paged.findIndex((x, i) => !Object.is(x, contiguous[i]));
          assert.equal(bad, -1, `${impl}/${threads}t: paged ${paged[bad]} vs contiguous ${contiguous[bad]} at ${bad}`);
          assertClose(paged, want, { rel: 1e-5, abs: 1e-5 }, `${impl}/${threads}t paged vs the reference`);
        }
    });
  }
});

describe('paged cache errors', () => {
  const be = new CpuBackend({ threads: 1 });
  after(() => be.dispose());
  const kv = () => emptyTensor('f32', [64, 16]);
  const table = (ids: number[]) => tensorFromI32([1, ids.length], Int32Array.from(ids));
  const attention = (t: NativeTensor, bs = 16, extra = {}) =>
    ops.attention(emptyTensor('f32', [2, 32]), emptyTensor('f32', [2, 32]), kv(), kv(), { nHeads: 2, nKvHeads: 1, headDim: 16, scale: 0.25, paged: { table: t, blockSize: bs, row: 0 }, ...extra });

  it('refuses a block outside the pool before anything runs', async () => {
    const g = be.graph([ops.kvStore(kv(), emptyTensor('f32', [2, 16]), undefined, { table: table([1, 4]), blockSize: 16, row: 0 })], 2);
    await assert.rejects(g.run(2, 15), { code: 'E_INVALID_ARG', message: /block table row 0, entry 1: block 4 is not one of the cache's 0\.\.3/ });
    const a = be.graph([attention(table([-1]))], 2);
    await assert.rejects(a.run(1, 0), { code: 'E_INVALID_ARG', message: /entry 0: block -1/ });
    g.dispose();
    a.dispose();
  });

  it('refuses positions past the table’s blocks as a full context', async () => {
    const g = be.graph([attention(table([0, 1]))], 2);
    await assert.rejects(g.run(2, 31), { code: 'E_CONTEXT_FULL', message: /need 3 blocks, the block table holds 2/ });
    g.dispose();
  });

  it('refuses a block size that does not divide the pool, a table not i32, and a table with a prefix', () => {
    assert.throws(() => be.graph([attention(table([0]), 24)], 2), { code: 'E_INVALID_ARG', message: /kCache's rows must be a multiple of blockSize 24/ });
    assert.throws(() => be.graph([attention(emptyTensor('f32', [1, 2]))], 2), { code: 'E_INVALID_ARG', message: /blockTable must be i32/ });
    assert.throws(() => be.graph([attention(table([0]), 16, { prefix: { k: kv(), v: kv(), len: 4 } })], 2), { code: 'E_INVALID_ARG', message: /a blockTable and a prefix do not go together/ });
  });
});
