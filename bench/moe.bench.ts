/**
 * Mixture-of-experts decode and prefill beside llama.cpp (node-llama-cpp's prebuilt CPU binary)
 * on the same file in the same run: a Mixtral-shaped random GGUF (lib/tools/bench-models.ts:
 * TinyLlama-1.1B's attention and vocabulary, 4 layers of 8 TinyLlama-sized experts, top 2), in
 * Q4_K and q8_0 (FUSELM_BENCH_DTYPES), at 1 and 2 threads (FUSELM_BENCH_THREADS), F16 KV caches
 * on both sides (llama.cpp's default), greedy, prompt 64 and 32 generated tokens, medians of 3
 * runs after a warm-up (lib/tools/bench.ts, bench/peers/llama-cpp.ts: the same harness as
 * llama-cpp.bench.ts). Ratios are fuselm / llama.cpp (> 1: fuselm faster). Decode reads the
 * active parameters once per step: every matrix but token_embd, of each expert stack the 2 of 8
 * chosen; activeWeightsGBps is those bytes per second, beside the copy bandwidth of the same run.
 */
import { readGguf } from '../lib/formats/gguf.js';
import { syntheticMoeBenchModel } from '../lib/tools/bench-models.js';
import { benchPrompt, measureSpeed } from '../lib/tools/bench.js';
import type { SyntheticLlamaType } from '../lib/tools/synthetic.js';
import { llamaCppSpeed, loadLlamaCpp } from './peers/llama-cpp.js';
import { type BenchResult, measuredCopyBandwidth } from './util.js';

export async function run(): Promise<BenchResult[]> {
  const llama = await loadLlamaCpp();
  if (!llama) return [];
  const dtypes = (process.env.FUSELM_BENCH_DTYPES ?? 'q4_k,q8_0').split(',') as SyntheticLlamaType[];
  const threadCounts = (process.env.FUSELM_BENCH_THREADS ?? '1,2').split(',').map(Number);
  const P = 64, G = 32, reps = 3;
  const out: BenchResult[] = [];
  for (const dtype of dtypes) {
    const file = await syntheticMoeBenchModel(dtype);
    const f = await readGguf(file);
    const used = 2, count = 8;
    const activeBytes = f.tensors
      .filter((t) => t.dims.length >= 2 && t.name !== 'token_embd.weight')
      .reduce((n, t) => n + (t.name.includes('_exps.') ? (t.nbytes * used) / count : t.nbytes), 0);
    const prompt = benchPrompt(P, 259);
    for (const threads of threadCounts) {
      const mine = await measureSpeed(file, { threads, prompt: P, gen: G, reps, kvType: 'f16' });
      const theirs = await llamaCppSpeed(llama, file, threads, { prompt, gen: G, reps, kv: 'F16' });
      out.push({
        name: `moe 8x2 ${dtype} ${threads}t pp${P} tg${G} kv f16`,
        seconds: P / mine.prefillTokensPerSecond + G / mine.decodeTokensPerSecond,
        fuselmPrefill: mine.prefillTokensPerSecond,
        llamaCppPrefill: theirs.prefillTokensPerSecond,
        prefillRatio: mine.prefillTokensPerSecond / theirs.prefillTokensPerSecond,
        fuselmDecode: mine.decodeTokensPerSecond,
        llamaCppDecode: theirs.decodeTokensPerSecond,
        decodeRatio: mine.decodeTokensPerSecond / theirs.decodeTokensPerSecond,
        activeGB: activeBytes / 1e9,
        fuselmActiveWeightsGBps: (activeBytes * mine.decodeTokensPerSecond) / 1e9,
        llamaCppActiveWeightsGBps: (activeBytes * theirs.decodeTokensPerSecond) / 1e9,
        copyGBps: (await measuredCopyBandwidth()) / 1e9,
      });
      const r = out[out.length - 1];
      process.stderr.write(`  ${r.name}: prefill ${(r.prefillRatio as number).toFixed(2)}x, decode ${(r.decodeRatio as number).toFixed(2)}x\n`);
    }
  }
  return out;
}
