/**
 * rms_norm: GB/s (x read, out written, w read) at D = 2048 and 4096, T = 1 (decode) and 64
 * (prefill), 1 and 2 threads. A graph holds `reps` copies of the op so the per-run call
 * overhead (microseconds) does not hide a kernel that takes about one; seconds are per op.
 *
 * Measured (before = scalar float loop): [1x4096] 4.8 -> 1.0 us; [64x4096] 1t 287 -> 40 us
 * (53 GB/s, L2-resident), 2t 162 -> 29 us.
 */
import { CpuBackend, ops } from '../lib/backend.js';
import { tensorFromF32 } from '../lib/tensor.js';
import { finish, measuredCopyBandwidth, timeIt, type BenchResult } from './util.js';

export async function run(): Promise<BenchResult[]> {
  await measuredCopyBandwidth(); // first, so its 512 MiB of buffers are not collected mid-timing
  const out: BenchResult[] = [];
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    for (const D of [2048, 4096]) {
      for (const T of [1, 64]) {
        const reps = T === 1 ? 64 : 8;
        const x = tensorFromF32('f32', [T, D], new Float32Array(T * D).map((_, i) => Math.sin(i)));
        const w = tensorFromF32('f32', [D], new Float32Array(D).map((_, i) => 1 + 0.001 * i));
        const o = tensorFromF32('f32', [T, D], new Float32Array(T * D));
        const g = be.graph(Array.from({ length: reps }, () => ops.rmsNorm(o, x, w, 1e-5)), T);
        const seconds = (await timeIt(() => g.run(T, 0))) / reps;
        out.push(await finish({ name: `rms_norm [${T}x${D}] ${threads}t`, seconds, bytes: (2 * T * D + D) * 4 }));
        g.dispose();
      }
    }
    be.dispose();
  }
  return out;
}
