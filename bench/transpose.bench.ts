/**
 * transpose (a load-time op: GPT-2's Conv1D weights [in, out] → [out, in]): GB/s (x read, out
 * written) for 768x2304 (GPT-2 small's c_attn) and 3072x768, 1 and 2 threads.
 */
import { CpuBackend, ops } from '../lib/backend.js';
import { emptyTensor, tensorFromF32 } from '../lib/tensor.js';
import { finish, measuredCopyBandwidth, timeIt, type BenchResult } from './util.js';

export async function run(): Promise<BenchResult[]> {
  await measuredCopyBandwidth();
  const out: BenchResult[] = [];
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    for (const [R, C] of [[768, 2304], [3072, 768]]) {
      const x = tensorFromF32('f32', [R, C], new Float32Array(R * C).map((_, i) => i));
      const o = emptyTensor('f32', [C, R]);
      const g = be.graph([ops.transpose(o, x)], 1);
      const seconds = await timeIt(() => g.run(1, 0));
      out.push(await finish({ name: `transpose [${R}x${C}] ${threads}t`, seconds, bytes: 2 * R * C * 4 }));
      g.dispose();
      x.free();
      o.free();
    }
    be.dispose();
  }
  return out;
}
