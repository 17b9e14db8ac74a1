/**
 * kv_store: GB/s of copying new K (or V) rows into the cache — one row per layer in decode
 * (T = 1, Llama-3-8B width 1024) and a 512-token prompt batch — into f32, f16 and bf16 caches
 * (bytes: the f32 rows read plus the cache rows written), 1 and 2 threads. A graph holds
 * `reps` copies so the per-run call overhead does not hide a sub-microsecond op.
 */
import { CpuBackend, ops } from '../lib/backend.js';
import { emptyTensor } from '../lib/tensor.js';
import { finish, measuredCopyBandwidth, timeIt, type BenchResult } from './util.js';

export async function run(): Promise<BenchResult[]> {
  await measuredCopyBandwidth();
  const out: BenchResult[] = [];
  const W = 1024, ctx = 4096;
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    for (const dtype of ['f32', 'f16', 'bf16'] as const)
      for (const T of [1, 512]) {
        const reps = T === 1 ? 64 : 4;
        const src = emptyTensor('f32', [T, W]), cache = emptyTensor(dtype, [ctx, W]);
        const g = be.graph(Array.from({ length: reps }, () => ops.kvStore(cache, src)), T);
        const seconds = (await timeIt(() => g.run(T, 1000))) / reps;
        const name = `kv_store ${dtype === 'f32' ? '' : `${dtype} `}[${T}x${W}] ${threads}t`;
        out.push(await finish({ name, seconds, bytes: T * W * (4 + (dtype === 'f32' ? 4 : 2)) }));
        g.dispose();
      }
    be.dispose();
  }
  return out;
}
