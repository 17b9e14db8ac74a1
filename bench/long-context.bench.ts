/**
 * Decode speed deep into a long context, fuselm vs llama.cpp (node-llama-cpp's prebuilt CPU
 * binary) on the same synthetic GGUF in the same run: a 4-layer, 512-wide f16 model with a 32k
 * context (SHAPES['long-ctx']: GQA 8/2 heads of 64), so each decoded token's time is mostly
 * attention over the cache. For each depth (FUSELM_BENCH_DEPTHS, default 1024,8192,32768): a
 * prompt of that many tokens, then 32 greedy tokens; decode tok/s is over those 32, median of
 * FUSELM_BENCH_REPS runs (default 1) after one warm-up. Both use an F16 KV cache and one thread:
 * llama.cpp's 2-thread decode is erratic on 2-vCPU hosts (BENCHMARKS.md), which would flatter fuselm.
 * decodeRatio = fuselm / llama.cpp (> 1: fuselm is faster).
 */
import { benchPrompt, measureSpeed } from '../lib/tools/bench.js';
import { llamaCppSpeed, loadLlamaCpp } from './peers/llama-cpp.js';
import { type BenchResult } from './util.js';
import { syntheticBenchModel } from '../lib/tools/bench-models.js';

export async function run(): Promise<BenchResult[]> {
  const llama = await loadLlamaCpp();
  if (!llama) return [];
  const file = await syntheticBenchModel('long-ctx', 'f16');
  const depths = (process.env.FUSELM_BENCH_DEPTHS ?? '1024,8192,32768').split(',').map(Number);
  const reps = Number(process.env.FUSELM_BENCH_REPS ?? 1), gen = 32, threads = 1;
  const out: BenchResult[] = [];
  for (const depth of depths) {
    const f = await measureSpeed(file, { threads, prompt: depth, gen, reps, kvType: 'f16' });
    const l = await llamaCppSpeed(llama, file, threads, { prompt: benchPrompt(depth, 259), gen, reps, kv: 'F16' });
    out.push({
      name: `long-ctx f16 depth ${depth} tg${gen} ${threads}t`,
      seconds: gen / f.decodeTokensPerSecond,
      fuselmDecode: f.decodeTokensPerSecond,
      llamaCppDecode: l.decodeTokensPerSecond,
      decodeRatio: f.decodeTokensPerSecond / l.decodeTokensPerSecond,
      fuselmPrefill: f.prefillTokensPerSecond,
      llamaCppPrefill: l.prefillTokensPerSecond,
      fuselmRssMB: f.rssMB,
    });
  }
  return out;
}
