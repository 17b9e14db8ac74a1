/**
 * matmul: the decode matvec (T = 1) at TinyLlama's projection shapes for every weight dtype,
 * reported as GB/s of weight bytes against the copy bandwidth measured in the same run; and a
 * T = 64 prefill at K = N = 2048 in GFLOP/s.
 *
 * The matvec streams weights from memory, as a real decode step does (a model's weights never
 * fit in cache): each case holds enough copies of the weight to be well over the L3 (32 MiB on
 * the dev machine), one graph node per copy, and a timed call runs them all, so the next
 * copy's bytes are not cached and the JS-to-native crossing is spread over all copies.
 * seconds and bytes are per matvec.
 *
 * Note: bandwidthShare divides by the single-thread copy bandwidth (read + write bytes of a
 * memcpy); a pure read stream runs faster than that, and two threads faster still, so shares
 * above 1 are expected.
 *
 * Bench notes (AMD EPYC Zen4, 2 cores, copy ~25 GB/s; 1 thread, us per matvec, K x N):
 *                                   2048x2048 | 2048x5632      | 5632x2048
 *                                   f16       | f16    q8_0    | f16    q8_0
 *   v0 scalar                       -         | 38700  11450   | -      -
 *   v1 4 neighbour rows, q8 in f32  674       | 1577   1610    | 1544   1108
 *   v2 4 long streams, q8 int dot   301       | 846    498     | 1019   444
 * v1 lost to the prefetcher (4 streams of one 4 KB row each); v2's q8_0 integer dot also
 * quantizes x with SIMD (the scalar quantizer cost ~6 us per call).
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import type { NativeDType, NativeTensor } from '../bindings.js';
import { CpuBackend, ops } from '../lib/backend.js';
import { emptyTensor, encodeF32 } from '../lib/tensor.js';
import { finish, timeIt, type BenchResult } from './util.js';

const DTYPES: NativeDType[] = ['f32', 'f16', 'bf16', 'q8_0'];
const BYTES_PER_VALUE: Record<string, number> = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32 };
const COLD_BYTES = 160 << 20; // total weight bytes per matvec case: several times the L3

// A full GC before each timing: V8's background GC threads, woken by the large arrays this file
// allocates, would otherwise take a core from a 2-thread run (2-core machine), and a pool
// thread that loses its core stalls the whole op for a scheduler time slice.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function randomValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 0.2;
  }
  return out;
}

function weightCopies(dtype: NativeDType, N: number, K: number, copies: number): NativeTensor[] {
  const bytes = encodeF32(dtype, randomValues(N * K, N * 31 + K));
  const ws: NativeTensor[] = [];
  for (let i = 0; i < copies; i++) {
    const w = emptyTensor(dtype, [N, K]);
    w.write(bytes);
    ws.push(w);
  }
  return ws;
}

export async function run(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const filter = process.env.FUSELM_BENCH_MATMUL; // e.g. "q8_0" or "2048x5632" to run a subset
  for (const [K, N] of [[2048, 2048], [2048, 5632], [5632, 2048]]) {
    for (const dtype of DTYPES) {
      const name = (threads: number) => `matvec ${dtype} K=${K} N=${N} ${threads}t`;
      if (filter && !name(1).includes(filter)) continue;
      const wBytes = Math.round(N * K * BYTES_PER_VALUE[dtype]);
      const copies = Math.max(2, Math.ceil(COLD_BYTES / wBytes));
      const ws = weightCopies(dtype, N, K, copies);
      const x = emptyTensor('f32', [1, K]);
      x.write(randomValues(K, 7));
      const y = emptyTensor('f32', [1, N]);
      for (const threads of [1, 2]) {
        const be = new CpuBackend({ threads });
        const g = be.graph(ws.map((w) => ops.matmul(y, x, w)), 1);
        gc();
        const seconds = (await timeIt(() => g.run(1, 0), { reps: 5, minSeconds: 0.1 })) / copies;
        out.push(await finish({ name: name(threads), seconds, bytes: wBytes }));
        g.dispose();
        be.dispose();
      }
      for (const w of [...ws, x, y]) w.free();
    }
  }

  const T = 64, K = 2048, N = 2048;
  for (const dtype of DTYPES) {
    const name = (threads: number) => `prefill ${dtype} T=${T} K=${K} N=${N} ${threads}t`;
    if (filter && !name(1).includes(filter)) continue;
    const [w] = weightCopies(dtype, N, K, 1);
    const x = emptyTensor('f32', [T, K]);
    x.write(randomValues(T * K, 11));
    const y = emptyTensor('f32', [T, N]);
    for (const threads of [1, 2]) {
      const be = new CpuBackend({ threads });
      const g = be.graph([ops.matmul(y, x, w)], T);
      gc();
      const seconds = await timeIt(() => g.run(T, 0), { reps: 5, minSeconds: 0.1 });
      out.push(await finish({ name: name(threads), seconds, flops: 2 * T * K * N }));
      g.dispose();
      be.dispose();
    }
    for (const t of [w, x, y]) t.free();
  }
  return out;
}
