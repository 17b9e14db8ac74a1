/**
 * layer_norm: GB/s (x read, out written, w and b read) at D = 2048 and 4096, T = 1 (decode)
 * and 64 (prefill), 1 and 2 threads; a graph holds `reps` copies so call overhead does not
 * hide the kernel; seconds are per op.
 */
import { ops } from '../lib/backend.js';
import { benchRowOp, type BenchResult } from './util.js';

export function run(): Promise<BenchResult[]> {
  return benchRowOp('layer_norm', (t) => ops.layerNorm(t.out, t.x, t.w, t.b, 1e-5), (T, D) => (2 * T * D + 2 * D) * 4);
}
