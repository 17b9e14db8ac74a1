/**
 * argmax (the greedy choice over a vocabulary row): GB/s of logits read, at Llama-2 (32000) and
 * Llama-3 (128256) vocabularies, T = 1 (a decode step) and 8 (parallel sequences), 1 and 2
 * threads; seconds are per op, shares against the copy bandwidth measured in the same run.
 */
import { CpuBackend, ops } from '../lib/backend.js';
import { emptyTensor, tensorFromF32 } from '../lib/tensor.js';
import { finish, measuredCopyBandwidth, timeIt, type BenchResult } from './util.js';

export async function run(): Promise<BenchResult[]> {
  await measuredCopyBandwidth();
  const out: BenchResult[] = [];
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    for (const V of [32000, 128256])
      for (const T of [1, 8]) {
        const reps = 16;
        const x = tensorFromF32('f32', [T, V], new Float32Array(T * V).map((_, i) => Math.sin(i * 0.37)));
        const ids = emptyTensor('i32', [T]);
        const g = be.graph(Array.from({ length: reps }, () => ops.argmax(ids, x)), T);
        const seconds = (await timeIt(() => g.run(T, 0))) / reps;
        out.push(await finish({ name: `argmax [${T}x${V}] ${threads}t`, seconds, bytes: T * V * 4 }));
        g.dispose();
        x.free();
        ids.free();
      }
    be.dispose();
  }
  return out;
}
