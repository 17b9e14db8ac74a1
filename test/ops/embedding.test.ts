/**
 * embedding: out[t, :] = table[ids[t], :] widened to f32, for f32/f16/bf16/q8_0 and GGUF block-format tables.
 *
 * Proves: (1) the reference widens every dtype exactly as the independent JS decoders do (bit
 * for bit), including f16 subnormals, infinities and NaN; (2) every fast kernel level this CPU
 * has equals the reference bit for bit (widening has one right answer; q8_0's d * q is one f32
 * product either way) at awkward widths (D = 1, 31, 32, 33, 64, 4095, 4097, 4128; q8_0 only
 * multiples of 32), with repeated and extreme ids, few and many tokens (the latter split over
 * threads), with 1 and 2 threads; (3) rows past n are left alone.
 */
import assert from 'node:assert/strict';
import type { NativeDType, NativeImpl, NativeTensor } from '../../bindings.js';
import { ops } from '../../lib/backend.js';
import { GgmlType, bf16BitsToF32, dequantizeQ8_0, f16BitsToF32 } from '../../lib/formats/ggml-types.js';
import { dequantize } from '../../lib/formats/quants.js';
import { emptyTensor, encodeF32, readF32Rows, tensorFromF32, tensorFromI32 } from '../../lib/tensor.js';
import { fastImpls, randn, rng, runOp } from '../helpers/parity.js';

const DTYPES = ['f32', 'f16', 'bf16', 'q8_0'] as const;

async function embed(impl: NativeImpl, threads: number, table: NativeTensor, ids: Int32Array, D: number): Promise<Float32Array> {
  const T = ids.length;
  const out = tensorFromF32('f32', [T, D], new Float32Array(T * D).fill(NaN));
  await runOp(ops.embedding(out, table, tensorFromI32([T], ids)), { impl, threads, n: T });
  return readF32Rows(out, 0, T);
}

/** The table as stored, decoded by the JS decoders. */
function decoded(dtype: NativeDType, data: Float32Array): Float32Array {
  const bytes = encodeF32(dtype, data);
  if (dtype === 'f32') return data;
  if (dtype === 'q8_0') return dequantizeQ8_0(bytes, data.length);
  const h = new Uint16Array(bytes.buffer, bytes.byteOffset, data.length);
  const dec = dtype === 'f16' ? f16BitsToF32 : bf16BitsToF32;
  return Float32Array.from(h, (v) => dec(v));
}

/** Random rows with, for the float dtypes, f16 subnormals, overflow to inf, zeros and NaN mixed in. */
function tableData(dtype: string, V: number, D: number, r: () => number): Float32Array {
  const data = randn(V * D, r);
  if (dtype !== 'q8_0') {
    const specials = [3e-8, -6e-6, 1e-5, 0, -0, 7e4, -1e6, Infinity, -Infinity, NaN, 65504, 1e-40];
    for (let i = 0; i < data.length; i += 7) data[i] = specials[(i / 7) % specials.length];
  }
  return data;
}

describe('op embedding', () => {
  for (const dtype of DTYPES) {
    it(`reference equals the JS decoders, ${dtype}, bit for bit`, async () => {
      const V = 9, D = 96;
      const data = tableData(dtype, V, D, rng(3));
      const ids = Int32Array.from([0, 8, 3, 3, 5]);
      const want = decoded(dtype, data);
      const got = await embed('reference', 1, tensorFromF32(dtype, [V, D], data), ids, D);
      for (let t = 0; t < ids.length; t++)
        assert.deepEqual(got.subarray(t * D, (t + 1) * D), want.subarray(ids[t] * D, (ids[t] + 1) * D), `token ${t}`);
    });
  }

  for (const dtype of DTYPES) {
    it(`every fast level equals the reference bit for bit, ${dtype}, awkward widths, 1 and 2 threads`, async () => {
      const Ds = dtype === 'q8_0' ? [32, 64, 4128] : [1, 31, 32, 33, 64, 4095, 4097, 4128];
      for (const D of Ds) {
        const V = 37;
        const r = rng(D * 13 + V);
        const table = tensorFromF32(dtype, [V, D], tableData(dtype, V, D, r));
        // 1 and 5 tokens run on one thread; 70 tokens of 4095+ values split over the threads.
        for (const T of [1, 5, 70]) {
          const ids = Int32Array.from({ length: T }, (_, i) => (i % 4 === 0 ? V - 1 : i % 3 === 0 ? 0 : Math.floor(r() * V)));
          const ref = await embed('reference', 1, table, ids, D);
          for (const impl of fastImpls())
            for (const threads of [1, 2]) assert.deepEqual(await embed(impl, threads, table, ids, D), ref, `D=${D} T=${T} ${impl}/${threads}t`);
        }
        table.free();
      }
    });
  }

  it('leaves rows past n untouched', async () => {
    const V = 4, D = 40, rows = 6, n = 2;
    const table = tensorFromF32('f16', [V, D], randn(V * D, rng(1)));
    for (const impl of ['reference' as const, ...fastImpls()]) {
      const out = emptyTensor('f32', [rows, D]);
      await runOp(ops.embedding(out, table, tensorFromI32([rows], Int32Array.from([1, 2, 3, 0, 1, 2]))), { impl, threads: 2, n, maxRows: rows });
      assert.ok(readF32Rows(out, n, rows - n).every((v) => v === 0), impl);
    }
  });

  // The GGUF block formats: rows dequantized natively (llama.cpp's order of f32 operations)
  // against the independent JS decoders (lib/formats/quants.ts, in double), up to f32 rounding;
  // a wrong nibble, bit, scale or min is off by a whole quantization step or more.
  for (const [dtype, type] of [['q4_0', GgmlType.Q4_0], ['q4_1', GgmlType.Q4_1], ['q5_0', GgmlType.Q5_0], ['q5_1', GgmlType.Q5_1],
    ['q4_k', GgmlType.Q4_K], ['q5_k', GgmlType.Q5_K], ['q6_k', GgmlType.Q6_K]] as const) {
    it(`${dtype} rows equal the JS decoder's at every level`, async () => {
      const V = 9, D = 512;
      const data = randn(V * D, rng(type + 100));
      const bytes = encodeF32(dtype, data);
      const want = dequantize(type, bytes, V * D);
      const table = emptyTensor(dtype, [V, D]);
      table.write(bytes);
      const ids = Int32Array.from([8, 0, 3, 3, 5]);
      for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) {
        const got = await embed(impl, 2, table, ids, D);
        ids.forEach((id, t) => {
          for (let k = 0; k < D; k++) {
            const g = got[t * D + k], w = want[id * D + k];
            assert.ok(Math.abs(g - w) <= 1e-6 * Math.max(1, Math.abs(w)), `${dtype} ${impl} row ${id} value ${k}: ${g} vs ${w}`);
          }
        });
      }
    });
  }

  // The formats without a JS decoder: the test quantizer's (lib/formats/quant-fit.ts) blocks read
  // back natively must give the values back within the format's step (normalized RMS error; a
  // misread layout gives ~1). Measured 0.33 (q2_k), 0.15 (q3_k), 0.081 (iq4_nl, iq4_xs); bounds x 1.5.
  for (const [dtype, bound] of [['q2_k', 0.5], ['q3_k', 0.23], ['iq4_nl', 0.12], ['iq4_xs', 0.12]] as const) {
    it(`${dtype}: the test quantizer's blocks read back within the format's step`, async () => {
      const V = 6, D = 512;
      const data = randn(V * D, rng(7));
      const table = tensorFromF32(dtype, [V, D], data);
      const ids = Int32Array.from([0, 1, 2, 3, 4, 5]);
      const got = await embed('reference', 1, table, ids, D);
      let e = 0, n = 0;
      for (let i = 0; i < V * D; i++) {
        e += (got[i] - data[i]) ** 2;
        n += data[i] ** 2;
      }
      const err = Math.sqrt(e / n);
      assert.ok(err < bound, `${dtype}: normalized RMS error ${err}`);
    });
  }
});
