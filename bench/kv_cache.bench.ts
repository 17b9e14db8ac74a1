/**
 * The KV cache's type on the CPU, f32 vs f16 vs bf16: memory and decode speed at long contexts.
 *  - attention decode (T = 1) over ctx = 1024, 4096, 16384 cached positions, TinyLlama's heads
 *    (32 query heads on 4 KV heads, hd 64), 1 and 2 threads: one op per layer over distinct
 *    caches of together >= 64 MiB, so each op reads its cache from DRAM as in a model's decode
 *    step; seconds per op, bytes = the K and V rows read (2 x ctx x 256 x element size).
 *  - end to end: decode tok/s of a synthetic TinyLlama-1.1B q8_0 GGUF (bench/util.ts
 *    syntheticBenchModel) with 2048 prompt tokens in the cache (evaluated once, then reused by each
 *    timed run of 16 greedy tokens), 2 threads, and the model's KV cache bytes; prefill tok/s
 *    is of that one evaluation. FUSELM_BENCH_KV_PROMPT sets the prompt length (default 2048).
 * The three types take turns (5 rounds for attention, 3 end to end; medians), so a slow spell
 * of this shared machine hits them alike.
 *
 * Measured (2-vCPU Zen 4 VM, AVX-512, shared with other jobs; two runs, us per op):
 *   decode 1t  ctx1024   f32  198-204   f16  183-190   bf16  186-200
 *              ctx4096   f32  759-804   f16  729-730   bf16  745-763
 *              ctx16384  f32 3060-3220  f16 2787-2942  bf16 2950-2992
 *   decode 2t  ctx1024   f32  270-295   f16  287-313   bf16  295-322
 *              ctx4096   f32  873-907   f16  805-832   bf16  808-873
 *              ctx16384  f32 1598-3181  f16 1563-2933  bf16 1508-3142
 *   With 8 query heads per KV head, decode attention is bound by compute here (~45 GFLOP/s at
 *   1 thread), not by reading the cache: half the bytes gains 5-10 % at 1 thread, less than
 *   the noise at 2. End to end (ctx 2048, 2t): KV cache 89.0 MiB f32, 44.5 MiB f16/bf16; decode
 *   f32 28.8, f16 35.3, bf16 35.2 tok/s in one run and 14.2, 13.8, 14.0 in another (other jobs
 *   running): the cache is ~7 % of the bytes a step reads, so a few percent at most is real.
 */
import { benchPrompt, median } from '../lib/tools/bench.js';
import type { NativeTensor } from '../bindings.js';
import { CpuBackend, type Graph, ops } from '../lib/backend.js';
import { loadModel, type Model } from '../lib/model/model.js';
import { tensorFromF32 } from '../lib/tensor.js';
import { finish, measuredCopyBandwidth, timeIt, type BenchResult } from './util.js';
import { syntheticBenchModel } from '../lib/tools/bench-models.js';

const KV_TYPES = ['f32', 'f16', 'bf16'] as const;
type KvType = (typeof KV_TYPES)[number];

function randomF32(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

/** fn(kv) for each KV type in turn, `rounds` times (so the machine's slow spells hit all alike); medians. */
async function interleaved(rounds: number, fn: (kv: KvType) => Promise<number>): Promise<Record<KvType, number>> {
  const samples: Record<KvType, number[]> = { f32: [], f16: [], bf16: [] };
  for (let r = 0; r < rounds; r++) for (const kv of KV_TYPES) samples[kv].push(await fn(kv));
  return { f32: median(samples.f32), f16: median(samples.f16), bf16: median(samples.bf16) };
}

async function attentionDecode(out: BenchResult[]): Promise<void> {
  const nHeads = 32, nKvHeads = 4, hd = 64, kvW = nKvHeads * hd, qW = nHeads * hd;
  const opts = { nHeads, nKvHeads, headDim: hd, scale: 1 / Math.sqrt(hd) };
  const bytes = (ctx: number, kv: KvType) => 2 * ctx * kvW * (kv === 'f32' ? 4 : 2);
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    const q = tensorFromF32('f32', [1, qW], randomF32(qW, 3));
    const o = tensorFromF32('f32', [1, qW], new Float32Array(qW));
    for (const ctx of [1024, 4096, 16384]) {
      const kd = randomF32(ctx * kvW, 5), vd = randomF32(ctx * kvW, 6);
      const runs = Object.fromEntries(KV_TYPES.map((kv) => {
        const layers = Math.ceil((64 << 20) / bytes(ctx, kv));
        const caches = Array.from({ length: layers }, () => [tensorFromF32(kv, [ctx, kvW], kd), tensorFromF32(kv, [ctx, kvW], vd)]);
        return [kv, { layers, caches, g: be.graph(caches.map(([k, v]) => ops.attention(o, q, k, v, opts)), 1) }];
      })) as Record<KvType, { layers: number; caches: NativeTensor[][]; g: Graph }>;
      const sec = await interleaved(5, async (kv) => (await timeIt(() => runs[kv].g.run(1, ctx - 1), { reps: 3 })) / runs[kv].layers);
      for (const kv of KV_TYPES) {
        out.push(await finish({ name: `attention decode ${kv} 32/4 hd64 ctx${ctx} ${threads}t`, seconds: sec[kv], bytes: bytes(ctx, kv), layers: runs[kv].layers }));
        runs[kv].g.dispose();
        for (const t of runs[kv].caches.flat()) t.free();
      }
    }
    be.dispose();
  }
}

async function endToEnd(out: BenchResult[]): Promise<void> {
  const file = await syntheticBenchModel('tinyllama-1.1b', 'q8_0');
  const promptLen = Number(process.env.FUSELM_BENCH_KV_PROMPT ?? 2048), gen = 16, threads = 2;
  const o = { maxTokens: gen, ignoreEog: true };
  const models = {} as Record<KvType, Model>;
  const prefill = {} as Record<KvType, number>;
  try {
    for (const kvType of KV_TYPES) {
      const m = (models[kvType] = await loadModel(file, { device: 'cpu', threads, kvType, contextSize: promptLen + gen + 8 }));
      const prompt = benchPrompt(promptLen, m.config.vocabSize, m.tokenizer.bos);
      prefill[kvType] = (await m.generate(prompt, o)).timings.promptTokensPerSecond; // later runs reuse the prompt
    }
    const tps = await interleaved(3, async (kv) => {
      const m = models[kv];
      const res = await m.generate(benchPrompt(promptLen, m.config.vocabSize, m.tokenizer.bos), o);
      if (res.timings.cachedTokens < promptLen - 1) throw new Error(`kv_cache bench: the prompt was not reused (${res.timings.cachedTokens} cached)`);
      return res.timings.tokensPerSecond;
    });
    for (const kv of KV_TYPES)
      out.push({
        name: `tinyllama-1.1b q8_0 kv ${kv} ctx${promptLen} tg${gen} ${threads}t`,
        seconds: 1 / tps[kv],
        decodeTokensPerSecond: tps[kv],
        prefillTokensPerSecond: prefill[kv],
        kvCacheMB: models[kv].kvCacheBytes / 2 ** 20,
      });
  } finally {
    for (const m of Object.values(models)) await m.dispose();
  }
}

export async function run(): Promise<BenchResult[]> {
  await measuredCopyBandwidth(); // first, so its buffers are not collected mid-timing
  const out: BenchResult[] = [];
  await attentionDecode(out);
  await endToEnd(out);
  return out;
}
