/**
 * rms_norm: GB/s (x read, out written, w read) at D = 2048 and 4096, T = 1 (decode) and 64
 * (prefill), 1 and 2 threads. A graph holds `reps` copies of the op so the per-run call
 * overhead (microseconds) does not hide a kernel that takes about one; seconds are per op.
 *
 * Measured (before = scalar float loop): [1x4096] 4.8 -> 1.0 us; [64x4096] 1t 287 -> 40 us
 * (53 GB/s, L2-resident), 2t 162 -> 29 us.
 */
import { ops } from '../lib/backend.js';
import { benchRowOp, type BenchResult } from './util.js';

export function run(): Promise<BenchResult[]> {
  return benchRowOp('rms_norm', (t) => ops.rmsNorm(t.out, t.x, t.w, 1e-5), (T, D) => (2 * T * D + D) * 4);
}
