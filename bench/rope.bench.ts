/**
 * rope: GB/s (x read and written in place) for T = 1 (decode) and T = 64 tokens of 32 heads x
 * hd 128 at position 1000, llama and NeoX layouts, 1 and 2 threads. A graph holds `reps` ops so
 * the per-run call overhead does not hide the kernel; seconds are per op. "hit": all ops share
 * the positions and settings, so all but the first find the cos/sin table of the previous op
 * (as q and k of every layer in a forward step do); "miss": neighbouring ops alternate nRot
 * 128 / 126, so every op computes its table.
 *
 * Measured (before = double pow/cos/sin per pair and token): [1x32x128] 3.2 -> 0.9 us (hit),
 * 2.0 us (miss); [64x32x128] 1t 181 -> 36 us llama / 26 us NeoX (hit), 41 us (miss);
 * 2t 101 -> 22 / 15 us (hit), 25 us (miss).
 */
import { CpuBackend, ops } from '../lib/backend.js';
import { tensorFromF32 } from '../lib/tensor.js';
import { finish, measuredCopyBandwidth, timeIt, type BenchResult } from './util.js';

export async function run(): Promise<BenchResult[]> {
  await measuredCopyBandwidth(); // first, so its 512 MiB of buffers are not collected mid-timing
  const out: BenchResult[] = [];
  const nHeads = 32, headDim = 128;
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    for (const T of [1, 64]) {
      for (const neox of [false, true]) {
        for (const table of ['hit', 'miss']) {
          const reps = T === 1 ? 64 : 4;
          const W = nHeads * headDim;
          const x = tensorFromF32('f32', [T, W], new Float32Array(T * W).map((_, i) => Math.sin(i)));
          const nodes = Array.from({ length: reps }, (_, i) =>
            ops.rope(x, { nHeads, headDim, nRot: table === 'miss' && i % 2 ? 126 : 128, thetaBase: 10000, neox }));
          const g = be.graph(nodes, T);
          const seconds = (await timeIt(() => g.run(T, 1000))) / reps;
          const name = `rope ${neox ? 'neox' : 'llama'} ${table} [${T}x${nHeads}x${headDim}] ${threads}t`;
          out.push(await finish({ name, seconds, bytes: 2 * T * W * 4 }));
          g.dispose();
        }
      }
    }
    be.dispose();
  }
  return out;
}
