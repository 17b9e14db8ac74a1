/**
 * attention: decode (T = 1) over a long KV cache, reported as GB/s of K and V read (every
 * cached row once) and the share of the copy bandwidth measured in the same run. "hot" reuses
 * one cache (it stays in L3 when it fits, as in a small model); "cold" runs one op per layer
 * over `layers` distinct caches of together >= 64 MiB, so each op reads its cache from DRAM,
 * as in a real model's decode step (seconds are per op). Prefill
 * (T = 128 from position 0) as GFLOP/s (QK and PV, 4 * hd flops per query head and key).
 * Shapes: Llama-3-8B-like (32 heads, 8 KV heads, hd 64) and TinyLlama (32 heads, 4 KV heads,
 * hd 64). 1 and 2 threads, best kernel level of this CPU.
 *
 * Measured (2-vCPU Zen 4 VM, copy bandwidth ~24 GB/s, median-ish of 3 runs on a shared machine;
 * before = the scalar per-(token, head) online softmax):
 *   decode hot  32/8 ctx4096   1t  8.6 ms -> 1.0 ms     2t  5.1 ms -> 0.48-0.57 ms
 *   decode cold 32/8 ctx4096   1t 10.2 ms -> 1.73 ms    2t  4.9 ms -> 0.90 ms (18.6 GB/s)
 *   decode hot  32/4 ctx4096   1t  8.6 ms -> 0.75 ms    2t  9.7 ms -> 0.38-0.42 ms
 *   decode cold 32/4 ctx4096   1t  9.4 ms -> 1.18-1.3 ms 2t 9.7 ms -> 0.63 ms
 *   prefill T128 32/8          1t  4.0 -> 42 GFLOP/s    2t  8.4 -> 56 GFLOP/s
 *   prefill T128 32/4          1t  4.2 -> 44 GFLOP/s    2t  4.2 -> 77 GFLOP/s
 */
import { CpuBackend, ops } from '../lib/backend.js';
import { tensorFromF32 } from '../lib/tensor.js';
import { finish, measuredCopyBandwidth, timeIt, type BenchResult } from './util.js';

function randomF32(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

export async function run(): Promise<BenchResult[]> {
  await measuredCopyBandwidth(); // first, so its 512 MiB of buffers are not collected mid-timing
  const out: BenchResult[] = [];
  const hd = 64;
  const shapes = [
    { label: '32/8', nHeads: 32, nKvHeads: 8 },
    { label: '32/4', nHeads: 32, nKvHeads: 4 },
  ];
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    for (const s of shapes) {
      const ctx = 4096;
      const kvW = s.nKvHeads * hd, qW = s.nHeads * hd;
      const k = tensorFromF32('f32', [ctx, kvW], randomF32(ctx * kvW, 1));
      const v = tensorFromF32('f32', [ctx, kvW], randomF32(ctx * kvW, 2));
      const opts = { nHeads: s.nHeads, nKvHeads: s.nKvHeads, headDim: hd, scale: 1 / Math.sqrt(hd) };
      // decode: one query token at position n_ctx - 1 attends to n_ctx cached rows
      const q1 = tensorFromF32('f32', [1, qW], randomF32(qW, 3));
      const o1 = tensorFromF32('f32', [1, qW], new Float32Array(qW));
      for (const nCtx of [512, 4096]) {
        const bytes = 2 * nCtx * kvW * 4;
        const hot = be.graph([ops.attention(o1, q1, k, v, opts)], 1);
        const seconds = await timeIt(() => hot.run(1, nCtx - 1));
        out.push(await finish({ name: `decode hot ${s.label} hd${hd} ctx${nCtx} ${threads}t`, seconds, bytes }));
        hot.dispose();
        const layers = Math.ceil((64 << 20) / bytes);
        const kd = randomF32(nCtx * kvW, 5), vd = randomF32(nCtx * kvW, 6);
        const nodes = Array.from({ length: layers }, () =>
          ops.attention(o1, q1, tensorFromF32('f32', [nCtx, kvW], kd), tensorFromF32('f32', [nCtx, kvW], vd), opts));
        const cold = be.graph(nodes, 1);
        const perOp = (await timeIt(() => cold.run(1, nCtx - 1), { reps: 5 })) / layers;
        out.push(await finish({ name: `decode cold ${s.label} hd${hd} ctx${nCtx} ${threads}t`, seconds: perOp, bytes, layers }));
        cold.dispose();
      }
      // prefill: T = 128 tokens from position 0 (causal: token t sees t + 1 keys)
      const T = 128;
      const q = tensorFromF32('f32', [T, qW], randomF32(T * qW, 4));
      const o = tensorFromF32('f32', [T, qW], new Float32Array(T * qW));
      const g = be.graph([ops.attention(o, q, k, v, opts)], T);
      const seconds = await timeIt(() => g.run(T, 0));
      const keyHeads = s.nHeads * ((T * (T + 1)) / 2);
      out.push(await finish({ name: `prefill ${s.label} hd${hd} T${T} ${threads}t`, seconds, flops: 4 * hd * keyHeads }));
      g.dispose();
    }
    be.dispose();
  }
  return out;
}
