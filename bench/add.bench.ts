/** add: GB/s of out = a + b at a bandwidth-bound size, against the machine's copy bandwidth. */
import { CpuBackend, ops } from '../lib/backend.js';
import { emptyTensor } from '../lib/tensor.js';
import { finish, timeIt, type BenchResult } from './util.js';

export async function run(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const T = 64, D = 65536;
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    const a = emptyTensor('f32', [T, D]), b = emptyTensor('f32', [T, D]), o = emptyTensor('f32', [T, D]);
    const g = be.graph([ops.add(o, a, b)], T);
    const seconds = await timeIt(() => g.run(T, 0));
    out.push(await finish({ name: `add f32 [${T}x${D}] ${threads}t`, seconds, bytes: 3 * T * D * 4 }));
    g.dispose();
    be.dispose();
  }
  return out;
}
