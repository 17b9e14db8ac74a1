/**
 * matmul: y[t, n] = Σ_k x[t, k] · w[n, k] with f32 x and f32/f16/bf16/q8_0 weights.
 *
 * Proves: (1) the scalar reference is right: on a hand-computed 2x3 · 3x2 case, and bit-exact
 * against a double-precision dot product in JS over weights decoded from the stored bytes by
 * the independent JS decoders (so its f16/bf16/q8_0 widening is right too); (2) every fast
 * kernel level this CPU has (portable, avx2, avx512) matches the reference at awkward sizes
 * (K = 1, 31, 32, 33, 64, 4095, 4097, 4128; N = 1, 31, 33, 257, 4097; T = 1, 2, 5, 17), with 1
 * and 2 threads, for every weight dtype, including the graph's lastRows option; (3) the fast
 * q8_0 path, which quantizes x to q8_0 blocks and takes integer dot products, equals an exact
 * integer reference bit for bit on data where every f32 step is exact, and every level
 * quantizes x identically; (4) Q4_0 and Q4_K sum in the order of llama.cpp's repacked kernels,
 * bit for bit against a JavaScript recomputation from the bytes.
 *
 * Tolerances: for f32/f16/bf16 the fast levels read the same stored weights as the reference,
 * so the only difference is f32 accumulation in a different order against the reference's
 * double: measured <= 4.4e-7 relative at K = 4128; we allow 1e-6 for f32 and 1e-5 for f16/bf16.
 * For q8_0 the fast levels also round x to 8 bits per value (as llama.cpp does): measured
 * ~5e-3 relative over many outputs, up to ~2e-2 for a single output (the error of one dot
 * product is one random draw); we allow 3e-2, which still catches any wrong block, scale or
 * row, and (3) pins the integer arithmetic down exactly. Max-abs is 20x the rel tolerance times the output's typical
 * size. ‖out − ref‖/‖ref‖ degenerates when a few outputs happen to cancel to near zero
 * (N = T = 1), so the scale is the size random dot products of these rows have, ‖X‖·‖W‖/√K,
 * when ‖ref‖ is smaller than that.
 */
import assert from 'node:assert/strict';
import type { NativeDType, NativeImpl, NativeTensor } from '../../bindings.js';
import { CpuBackend, ops } from '../../lib/backend.js';
import { GgmlType, bf16BitsToF32, dequantizeQ8_0, f16BitsToF32 } from '../../lib/formats/ggml-types.js';
import { dequantize } from '../../lib/formats/quants.js';
import { emptyTensor, encodeF32, readF32Rows, tensorFromF32 } from '../../lib/tensor.js';
import { assertClose, fastImpls, randn, rng, runOp } from '../helpers/parity.js';

const REL: Record<string, number> = { f32: 1e-6, f16: 1e-5, bf16: 1e-5, q8_0: 3e-2 };

/** y = x · wᵀ at kernel level `impl`; the output starts as NaN so unwritten entries show. */
async function matmul(
  impl: NativeImpl, threads: number, x: NativeTensor, w: NativeTensor, T: number, N: number, lastRows = 0,
): Promise<Float32Array> {
  const rows = lastRows || T;
  const out = tensorFromF32('f32', [rows, N], new Float32Array(rows * N).fill(NaN));
  await runOp(ops.matmul(out, x, w, { lastRows }), { impl, threads, n: T });
  return readF32Rows(out, 0, rows);
}

/** The weights as the kernels see them: the stored bytes decoded by the JS decoders. */
function decoded(dtype: NativeDType, data: Float32Array): Float32Array {
  const bytes = encodeF32(dtype, data);
  switch (dtype) {
    case 'f32': return data;
    case 'f16': case 'bf16': {
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset, data.length);
      const dec = dtype === 'f16' ? f16BitsToF32 : bf16BitsToF32;
      return Float32Array.from(h, (v) => dec(v));
    }
    case 'q8_0': return dequantizeQ8_0(bytes, data.length);
    default: throw new Error(dtype);
  }
}

function norm(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s);
}

/** Tolerances against ref = x · wᵀ, scaled up when ‖ref‖ is below the typical ‖X‖·‖W‖/√K. */
function tol(dtype: string, ref: Float32Array, x: Float32Array, w: Float32Array, K: number) {
  const typical = (norm(x) * norm(w)) / Math.sqrt(K);
  const scale = Math.max(1, typical / norm(ref));
  return { rel: REL[dtype] * scale, abs: (20 * REL[dtype] * Math.max(typical, norm(ref))) / Math.sqrt(ref.length) };
}

describe('op matmul', () => {
  it('reference: hand-computed 2x3 · (2x3)ᵀ', async () => {
    // x = [[1, 2, 3], [4, 5, 6]], w = [[1, 0, -1], [2, 1, 0]]
    // y[0] = [1 - 3, 2 + 2] = [-2, 4]; y[1] = [4 - 6, 8 + 5] = [-2, 13]
    const x = tensorFromF32('f32', [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6]));
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      const w = tensorFromF32(dtype, [2, 3], Float32Array.from([1, 0, -1, 2, 1, 0]));
      for (const impl of ['reference' as const, ...fastImpls()])
        assert.deepEqual(await matmul(impl, 1, x, w, 2, 2), Float32Array.from([-2, 4, -2, 13]), `${dtype} ${impl}`);
    }
  });

  for (const dtype of ['f32', 'f16', 'bf16', 'q8_0'] as const) {
    it(`reference equals a JS double-precision dot over the decoded ${dtype} weights, bit for bit`, async () => {
      const T = 3, K = 96, N = 7;
      const r = rng(42);
      const xd = randn(T * K, r), wd = randn(N * K, r, 0.3);
      const wf = decoded(dtype, wd);
      const want = new Float32Array(T * N);
      for (let t = 0; t < T; t++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += xd[t * K + k] * wf[n * K + k];
          want[t * N + n] = s;
        }
      const got = await matmul('reference', 1, tensorFromF32('f32', [T, K], xd), tensorFromF32(dtype, [N, K], wd), T, N);
      assert.deepEqual(got, want);
    });
  }

  // [K, N, T] cases per dtype; q8_0 needs K % 32 == 0.
  const cases = (dtype: string): [number, number, number][] => {
    const Ks = dtype === 'q8_0' ? [32, 64, 4128] : [1, 31, 32, 33, 64, 4095, 4097, 4128];
    const NT: [number, number][] = [[1, 1], [1, 17], [31, 2], [33, 5], [33, 17], [257, 1], [257, 17]];
    const out: [number, number, number][] = [];
    for (const K of Ks) for (const [N, T] of NT) out.push([K, N, T]);
    out.push([64, 4097, 5]);
    return out;
  };

  for (const dtype of ['f32', 'f16', 'bf16', 'q8_0'] as const) {
    it(`every fast level matches the reference, ${dtype} weights, all sizes, 1 and 2 threads`, async () => {
      for (const [K, N, T] of cases(dtype)) {
        const r = rng(K * 7919 + N * 31 + T);
        const xd = randn(T * K, r), wd = randn(N * K, r, 0.05);
        const x = tensorFromF32('f32', [T, K], xd), w = tensorFromF32(dtype, [N, K], wd);
        const ref = await matmul('reference', 1, x, w, T, N);
        const tl = tol(dtype, ref, xd, wd, K);
        for (const impl of fastImpls())
          for (const threads of [1, 2])
            assertClose(await matmul(impl, threads, x, w, T, N), ref, tl, `${dtype} K=${K} N=${N} T=${T} ${impl}/${threads}t`);
        x.free();
        w.free();
      }
    });
  }

  // Data on which the integer path is exact in f32: every q8_0 block (of w and of x) holds one
  // ±127 and otherwise values in [-15, 15], times a per-block power of two (2^0 or 2^1), so the
  // scales are exact, x quantizes back to exactly these integers, and every partial sum is an
  // integer multiple of the smallest scale product below 2^24.
  function exactQ8Data(n: number, r: () => number, maxAt: number): Float32Array {
    const out = new Float32Array(n);
    for (let b = 0; b < n / 32; b++) {
      const scale = r() < 0.5 ? 1 : 2;
      for (let j = 0; j < 32; j++) {
        const q = j === maxAt ? (r() < 0.5 ? -127 : 127) : Math.floor(r() * 31) - 15;
        out[b * 32 + j] = q * scale;
      }
    }
    return out;
  }

  for (const [K, N, T] of [[32, 33, 5], [4128, 37, 6]]) {
    it(`q8_0 fast path equals an exact integer reference bit for bit (K=${K} N=${N} T=${T})`, async () => {
      const r = rng(K + N);
      const xd = exactQ8Data(T * K, r, 0), wd = exactQ8Data(N * K, r, 31);
      const want = new Float32Array(T * N);
      for (let t = 0; t < T; t++)
        for (let n = 0; n < N; n++) {
          let s = 0; // exact: integers times powers of two, far below 2^53
          for (let k = 0; k < K; k++) s += xd[t * K + k] * wd[n * K + k];
          want[t * N + n] = s;
        }
      const x = tensorFromF32('f32', [T, K], xd), w = tensorFromF32('q8_0', [N, K], wd);
      for (const impl of fastImpls())
        for (const threads of [1, 2]) assert.deepEqual(await matmul(impl, threads, x, w, T, N), want, `${impl}/${threads}t`);
    });
  }

  it('q8_0: every fast level quantizes x the same way (avx2 = avx512 bit for bit, portable to 1e-6)', async () => {
    const T = 3, K = 4128, N = 40;
    const r = rng(77);
    const x = tensorFromF32('f32', [T, K], randn(T * K, r)), w = tensorFromF32('q8_0', [N, K], randn(N * K, r, 0.05));
    const outs = new Map<string, Float32Array>();
    for (const impl of fastImpls()) outs.set(impl, await matmul(impl, 2, x, w, T, N));
    const avx2 = outs.get('avx2'), avx512 = outs.get('avx512'), portable = outs.get('portable')!;
    if (avx2 && avx512) assert.deepEqual(avx512, avx2);
    for (const [impl, out] of outs) assertClose(out, portable, { rel: 1e-6, abs: 1e-5 }, `${impl} vs portable`);
  });

  it('lastRows: only x rows n-k .. n-1, into out rows 0 .. k-1, at every level and dtype', async () => {
    const T = 5, K = 96, N = 37;
    const r = rng(5);
    const xd = randn(T * K, r);
    const x = tensorFromF32('f32', [T, K], xd);
    for (const last of [1, 3]) {
      const xLast = tensorFromF32('f32', [last, K], xd.subarray((T - last) * K));
      for (const dtype of ['f32', 'f16', 'bf16', 'q8_0'] as const) {
        const wd = randn(N * K, r, 0.05);
        const w = tensorFromF32(dtype, [N, K], wd);
        const ref = await matmul('reference', 1, xLast, w, last, N);
        const tl = tol(dtype, ref, xd.subarray((T - last) * K), wd, K);
        for (const impl of ['reference' as const, ...fastImpls()])
          for (const threads of [1, 2])
            assertClose(await matmul(impl, threads, x, w, T, N, last), ref, tl, `${dtype} ${impl}/${threads}t last ${last} rows`);
      }
    }
  });

  it('lastRows beyond the run or the graph is an E_INVALID_ARG, not a read out of bounds', async () => {
    const x = tensorFromF32('f32', [4, 32], randn(128, rng(9))), w = tensorFromF32('f32', [8, 32], randn(256, rng(10)));
    const be = new CpuBackend({ threads: 1, impl: 'reference' });
    try {
      const g = be.graph([ops.matmul(emptyTensor('f32', [3, 8]), x, w, { lastRows: 3 })], 4);
      await assert.rejects(g.run(2, 0), (e: any) => e.code === 'E_INVALID_ARG' && /lastRows is 3 but the run has 2 rows/.test(e.message));
      g.dispose();
      assert.throws(() => be.graph([ops.matmul(emptyTensor('f32', [5, 8]), x, w, { lastRows: 5 })], 4), (e: any) => e.code === 'E_INVALID_ARG' && /lastRows must be 0\.\.4, got 5/.test(e.message));
    } finally {
      be.dispose();
    }
  });

  // The GGUF block formats run as stored: the weights decoded by the independent JS decoders
  // (lib/formats/quants.ts) and dotted in double must agree with every level (and the integer
  // reference) up to x's rounding to 8 bits (Q8_K: one f32 scale per 256 values, as llama.cpp):
  // measured 6.0e-3 (q4_k) to 6.7e-3 (q6_k) over these outputs; 1.5e-2 still catches a wrong
  // scale, min, nibble or bit (any of those moves it to ~1e-1 or more).
  // (The levels' equality with the integer reference, bit for bit, is the case table's.)
  for (const [dtype, type] of [['q4_k', GgmlType.Q4_K], ['q5_k', GgmlType.Q5_K], ['q6_k', GgmlType.Q6_K], ['q4_0', GgmlType.Q4_0], ['q5_0', GgmlType.Q5_0], ['q4_1', GgmlType.Q4_1], ['q5_1', GgmlType.Q5_1]] as const) {
    it(`${dtype}: every level and the reference against the JS decoder's double dot (x as Q8_K)`, async () => {
      const K = 768, N = 37, T = 5;
      const r = rng(type);
      const wf = randn(N * K, r), xf = randn(T * K, r);
      const bytes = encodeF32(dtype, wf);
      const wd = dequantize(type, bytes, N * K);
      const want = new Float32Array(T * N);
      for (let t = 0; t < T; t++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += xf[t * K + k] * wd[n * K + k];
          want[t * N + n] = s;
        }
      const w = emptyTensor(dtype, [N, K]);
      w.write(bytes);
      const x = tensorFromF32('f32', [T, K], xf);
      for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) {
        const got = await matmul(impl, 2, x, w, T, N);
        let e = 0;
        for (let i = 0; i < got.length; i++) e += (got[i] - want[i]) ** 2;
        const rel = Math.sqrt(e) / norm(want);
        assert.ok(rel < 1.5e-2, `${dtype} ${impl}: rel ${rel}`);
      }
    });
  }

  it('q4_k: x quantized to Q8_K the same at every level on the edge cases (an all-zero superblock, a NaN)', async () => {
    const K = 512, N = 9, T = 4;
    const r = rng(77);
    const xf = randn(T * K, r);
    xf.fill(0, 0, 256); // token 0: an all-zero superblock
    xf[2 * K + 300] = NaN; // token 2: a NaN in the second superblock
    const w = tensorFromF32('q4_k', [N, K], randn(N * K, r));
    const x = tensorFromF32('f32', [T, K], xf);
    const want = await matmul('reference', 1, x, w, T, N);
    for (const impl of fastImpls()) {
      const got = await matmul(impl, 2, x, w, T, N);
      for (let i = 0; i < got.length; i++) assert.ok(Object.is(got[i], want[i]), `${impl} output ${i}: ${got[i]} vs the reference's ${want[i]}`);
    }
  });

  // Q4_0 keeps llama.cpp's order for its repacked Q4_0 (native/cpu/matmul_q4_0_blocksum.cc): per
  // output one f32 accumulator, acc = fma(float(sumi), f32(dw * dx), acc) block after block. x is
  // q / 16 with a ±127 in every block, so its Q8_0 rounding is exact (dx = 1/16, q as written) and
  // the expected bits follow from the stored bytes alone; the fma is emulated in double (the
  // product is exact there). Sizes cross the 16-row and 16-token tiles and their leftovers, the
  // decode tiles (1-3 tokens, 4 rows, groups of 4 blocks) and a last block past the groups.
  it('q4_0: every level and the reference give llama.cpp\'s repacked order, bit for bit', async () => {
    const K = 544, N = 37, T = 21, nb = K / 32;
    const r = rng(1404);
    const bytes = encodeF32('q4_0', randn(N * K, r));
    const q = new Int8Array(T * K);
    for (let i = 0; i < q.length; i++) q[i] = Math.round((r() * 2 - 1) * 126);
    for (let b = 0; b < T * nb; b++) q[b * 32 + (b % 32)] = b % 2 ? 127 : -127;
    const want = new Float32Array(T * N);
    for (let t = 0; t < T; t++)
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let i = 0; i < nb; i++) {
          const o = (n * nb + i) * 18;
          const dw = f16BitsToF32(bytes[o] | (bytes[o + 1] << 8));
          let sumi = 0;
          for (let j = 0; j < 16; j++) {
            const v = bytes[o + 2 + j];
            sumi += ((v & 15) - 8) * q[t * K + i * 32 + j] + ((v >> 4) - 8) * q[t * K + i * 32 + j + 16];
          }
          acc = Math.fround(sumi * Math.fround(dw / 16) + acc);
        }
        want[t * N + n] = acc;
      }
    const w = emptyTensor('q4_0', [N, K]);
    w.write(bytes);
    const x = tensorFromF32('f32', [T, K], Float32Array.from(q, (v) => v / 16));
    for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
      for (const threads of [1, 2])
        for (const tokens of [1, 2, 3, T]) {
          const got = await matmul(impl, threads, x, w, tokens, N);
          for (let i = 0; i < got.length; i++) assert.ok(Object.is(got[i], want[i]), `${impl}/${threads}t ${tokens} tokens, output ${i}: ${got[i]} vs ${want[i]}`);
        }
  });

  // Q4_K keeps the order of llama.cpp's repacked Q4_K (native/cpu/matmul_q4_k.cc): per output an
  // f32 sum of the products and one of the mins, y = acc - accm. Its GEMM (all but a call's last
  // T % 4 tokens) adds per pair of sub-blocks acc += f32(S) (dw dx) and accm += f32(M) (dmin dx);
  // its GEMV (those last tokens) adds the same per superblock. Each superblock of x holds a -127
  // and q / 16 else, so Q8_K's rounding is exact (q as written, dx = 1/16) and the expected bits
  // follow from the stored bytes; the fmas are emulated in double. Sizes cross the 16-row prefill
  // and 4-row decode tiles with rows left over, the 8-token tiles and 3 tokens left to the GEMV.
  it('q4_k: every level and the reference give llama.cpp\'s repacked order, bit for bit', async () => {
    const K = 512, N = 37, T = 23, nb = K / 256;
    const r = rng(1404);
    const bytes = encodeF32('q4_k', randn(N * K, r));
    const q = new Int8Array(T * K);
    for (let i = 0; i < q.length; i++) q[i] = Math.round((r() * 2 - 1) * 126);
    for (let b = 0; b < T * nb; b++) q[b * 256 + ((b * 37) % 256)] = -127;
    const f = Math.fround, fma = (a: number, b: number, c: number) => f(a * b + c);
    const expected = (tokens: number) => {
      const want = new Float32Array(tokens * N);
      for (let t = 0; t < tokens; t++)
        for (let n = 0; n < N; n++) {
          let acc = 0, accm = 0;
          for (let i = 0; i < nb; i++) {
            const o = (n * nb + i) * 144, sc = bytes.subarray(o + 4, o + 16), qs = bytes.subarray(o + 16);
            const dw = f16BitsToF32(bytes[o] | (bytes[o + 1] << 8)), dmin = f16BitsToF32(bytes[o + 2] | (bytes[o + 3] << 8));
            const S: number[] = [], M: number[] = [];
            for (let j = 0; j < 8; j++) {
              const scale = j < 4 ? sc[j] & 63 : (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4);
              const min = j < 4 ? sc[j + 4] & 63 : (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
              let dot = 0, xsum = 0;
              for (let l = 0; l < 32; l++) {
                const xv = q[t * K + i * 256 + 32 * j + l];
                dot += ((qs[32 * (j >> 1) + l] >> (4 * (j & 1))) & 15) * xv;
                xsum += xv;
              }
              S.push(scale * dot);
              M.push(min * xsum);
            }
            const dd = f(dw / 16), dm = f(dmin / 16);
            if (t < tokens - (tokens % 4)) {
              for (let c = 0; c < 4; c++) {
                acc = fma(f(S[2 * c] + S[2 * c + 1]), dd, acc);
                accm = fma(f(M[2 * c] + M[2 * c + 1]), dm, accm);
              }
            } else {
              acc = fma(f(S.reduce((a, b) => a + b)), dd, acc);
              accm = fma(f(M.reduce((a, b) => a + b)), dm, accm);
            }
          }
          want[t * N + n] = f(acc - accm);
        }
      return want;
    };
    const w = emptyTensor('q4_k', [N, K]);
    w.write(bytes);
    const x = tensorFromF32('f32', [T, K], Float32Array.from(q, (v) => v / 16));
    for (const tokens of [1, 3, 8, T]) {
      const want = expected(tokens);
      for (const impl of ['reference', ...fastImpls()] as NativeImpl[])
        for (const threads of [1, 2]) {
          const got = await matmul(impl, threads, x, w, tokens, N);
          for (let i = 0; i < got.length; i++) assert.ok(Object.is(got[i], want[i]), `${impl}/${threads}t ${tokens} tokens, output ${i}: ${got[i]} vs ${want[i]}`);
        }
    }
  });

  it('keeps rows it was not asked for untouched (T smaller than the tensors)', async () => {
    const K = 33, N = 9, rows = 6, T = 2;
    const r = rng(9);
    const x = tensorFromF32('f32', [rows, K], randn(rows * K, r));
    const w = tensorFromF32('f16', [N, K], randn(N * K, r));
    for (const impl of fastImpls()) {
      const out = emptyTensor('f32', [rows, N]);
      await runOp(ops.matmul(out, x, w), { impl, threads: 2, n: T, maxRows: rows });
      assert.ok(readF32Rows(out, T, rows - T).every((v) => v === 0), `${impl}: rows past T must stay 0`);
    }
  });
});
