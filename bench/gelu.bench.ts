/**
 * gelu (tanh approximation, GPT-2): GB/s (x read, out written) over [T, D] at D = 2048 and
 * 4096 (an MLP's hidden width is ~4x that; the rate per element is what matters), T = 1 and 64,
 * 1 and 2 threads; seconds are per op.
 */
import { ops } from '../lib/backend.js';
import { benchRowOp, type BenchResult } from './util.js';

export function run(): Promise<BenchResult[]> {
  return benchRowOp('gelu', (t) => ops.gelu(t.out, t.x, { tanh: true }), (T, D) => 2 * T * D * 4);
}
