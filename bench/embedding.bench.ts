/**
 * embedding: gathering T rows of a TinyLlama-sized table (V = 32000, D = 2048) for each table
 * dtype, 1 and 2 threads. bytes = rows read + f32 rows written. T = 1 is one decode step and
 * is dominated by the call into the graph, not by the 2-8 KB it moves; T = 512 is a prefill.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import type { NativeDType } from '../bindings.js';
import { CpuBackend, ops } from '../lib/backend.js';
import { emptyTensor, tensorFromI32 } from '../lib/tensor.js';
import { finish, timeIt, type BenchResult } from './util.js';

const BYTES_PER_VALUE: Record<string, number> = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32 };

// A full GC before each timing, so V8's background GC threads do not take a core from the pool.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

export async function run(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const V = 32000, D = 2048;
  for (const dtype of ['f32', 'f16', 'bf16', 'q8_0'] as NativeDType[]) {
    const table = emptyTensor(dtype, [V, D]); // contents do not change the speed
    for (const T of [1, 64, 512]) {
      let s = 12345;
      const ids = Int32Array.from({ length: T }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % V);
      const idt = tensorFromI32([T], ids);
      const o = emptyTensor('f32', [T, D]);
      for (const threads of [1, 2]) {
        const be = new CpuBackend({ threads });
        const g = be.graph([ops.embedding(o, table, idt)], T);
        gc();
        const seconds = await timeIt(() => g.run(T, 0), { reps: 5, minSeconds: 0.05 });
        const bytes = Math.round(T * D * (BYTES_PER_VALUE[dtype] + 4));
        out.push(await finish({ name: `embedding ${dtype} T=${T} D=${D} ${threads}t`, seconds, bytes }));
        g.dispose();
        be.dispose();
      }
      o.free();
      idt.free();
    }
    table.free();
  }
  return out;
}
