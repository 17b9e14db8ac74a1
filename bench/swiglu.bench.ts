/**
 * swiglu: GB/s (gate, up read, out written) at D = 5632 (TinyLlama's FFN width), T = 1
 * (`reps` ops per graph so the call overhead does not hide the kernel) and T = 64;
 * 1 and 2 threads.
 *
 * Measured (before = scalar expf and division): [1x5632] 15-30 -> 2.3 us; [64x5632] 1t
 * 957 -> 123 us, 2t 511 -> 79 us.
 */
import { CpuBackend, ops } from '../lib/backend.js';
import { tensorFromF32 } from '../lib/tensor.js';
import { finish, measuredCopyBandwidth, timeIt, type BenchResult } from './util.js';

export async function run(): Promise<BenchResult[]> {
  await measuredCopyBandwidth(); // first, so its 512 MiB of buffers are not collected mid-timing
  const out: BenchResult[] = [];
  const D = 5632;
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    for (const T of [1, 64]) {
      const reps = T === 1 ? 64 : 4;
      const gate = tensorFromF32('f32', [T, D], new Float32Array(T * D).map((_, i) => 4 * Math.sin(i)));
      const up = tensorFromF32('f32', [T, D], new Float32Array(T * D).map((_, i) => Math.cos(i)));
      const o = tensorFromF32('f32', [T, D], new Float32Array(T * D));
      const g = be.graph(Array.from({ length: reps }, () => ops.swiglu(o, gate, up)), T);
      const seconds = (await timeIt(() => g.run(T, 0))) / reps;
      out.push(await finish({ name: `swiglu [${T}x${D}] ${threads}t`, seconds, bytes: 3 * T * D * 4 }));
      g.dispose();
    }
    be.dispose();
  }
  return out;
}
