/**
 * gelu (tanh approximation, GPT-2): GB/s (x read, out written) over [T, D] at D = 2048 and
 * 4096 (an MLP's hidden width is ~4x that; the rate per element is what matters), T = 1 and 64,
 * 1 and 2 threads; seconds are per op.
 */
import { CpuBackend, ops } from '../lib/backend.js';
import { emptyTensor, tensorFromF32 } from '../lib/tensor.js';
import { finish, measuredCopyBandwidth, timeIt, type BenchResult } from './util.js';

export async function run(): Promise<BenchResult[]> {
  await measuredCopyBandwidth(); // first, so its buffers are not collected mid-timing
  const out: BenchResult[] = [];
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    for (const D of [2048, 4096]) {
      for (const T of [1, 64]) {
        const reps = T === 1 ? 64 : 8;
        const x = tensorFromF32('f32', [T, D], new Float32Array(T * D).map((_, i) => Math.sin(i)));
        const w = tensorFromF32('f32', [D], new Float32Array(D).map((_, i) => 1 + 0.001 * i));
        const b = tensorFromF32('f32', [D], new Float32Array(D).map((_, i) => 0.01 * Math.cos(i)));
        const o = emptyTensor('f32', [T, D]);
        const node = ops.gelu(o, x, { tanh: true });
        const g = be.graph(Array.from({ length: reps }, () => node), T);
        const seconds = (await timeIt(() => g.run(T, 0))) / reps;
        out.push(await finish({ name: `gelu [${T}x${D}] ${threads}t`, seconds, bytes: 2 * T * D * 4 }));
        g.dispose();
        for (const t of [x, w, b, o]) t.free();
      }
    }
    be.dispose();
  }
  return out;
}
