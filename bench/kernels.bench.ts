/**
 * Every op's microbenchmarks: the bench cases of the case table (lib/ops/cases.ts, where each
 * case says how it is cut and keeps its bench notes), at 1 and 2 threads on the CPU
 * (FUSELM_BENCH_THREADS=1 for one thread count), as GB/s
 * or GFLOP/s and the share of the roofline measured in the same run (lib/tools/kernel-bench.ts:
 * memory-bound cases against the cache level or main memory their working set fits in).
 * Filters other than "kernels" select cases by name (`npm run bench -- "matmul decode"`).
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { benchKernels } from '../lib/tools/kernel-bench.js';
import type { BenchResult } from './util.js';

// A full GC before each thread count: V8's background GC threads, woken by the large arrays
// the cases allocate, would otherwise take a core from a 2-thread run on a 2-core machine.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

export async function run(filters: string[] = []): Promise<BenchResult[]> {
  const names = filters.filter((f) => f !== 'kernels');
  const out: BenchResult[] = [];
  const threadCounts = (process.env.FUSELM_BENCH_THREADS ?? '1,2').split(',').map(Number);
  for (const threads of threadCounts) {
    for (const filter of names.length ? names : [undefined]) {
      gc();
      const onCase = (done: number, total: number, name: string) => {
        if (done < total) process.stderr.write(`kernels ${threads}t: ${done + 1}/${total} ${name}\n`);
      };
      const r = await benchKernels({ threads, filter, onCase });
      for (const k of r.kernels)
        out.push({
          name: `${k.op} ${threads}t`, seconds: k.seconds, ...(k.gbps !== undefined ? { gbps: k.gbps } : { gflops: k.gflops }),
          rooflineShare: k.rooflineShare, ...(k.level !== undefined ? { level: k.level, ceilingGBps: k.ceilingGBps } : {}), copyGBps: r.copyGBps,
        });
    }
  }
  return out;
}
