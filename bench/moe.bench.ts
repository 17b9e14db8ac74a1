/**
 * Mixture-of-experts decode and prefill beside llama.cpp (node-llama-cpp's prebuilt CPU binary)
 * on the same file in the same run: a Mixtral-shaped random GGUF (lib/tools/bench-models.ts:
 * TinyLlama-1.1B's attention and vocabulary, 4 layers of 8 TinyLlama-sized experts, top 2), in
 * Q4_K and q8_0 (FUSELM_BENCH_DTYPES), at 1 and 2 threads (FUSELM_BENCH_THREADS), F16 KV caches
 * on both sides (llama.cpp's default), greedy, prompt 64 and 32 generated tokens (lib/tools/bench.ts,
 * bench/peers/llama-cpp.ts: the same harness as llama-cpp.bench.ts). On a shared host the load
 * moves between the two engines' turns, so they alternate: FUSELM_BENCH_ROUNDS (default 5)
 * rounds of fuselm then llama.cpp, each the median of 2 runs after a warm-up; tok/s are the
 * medians over the rounds, the ratios (fuselm / llama.cpp, > 1: fuselm faster) the median of the
 * rounds' ratios, with their range. Decode reads the
 * active parameters once per step: every matrix but token_embd, of each expert stack the 2 of 8
 * chosen; activeWeightsGBps is those bytes per second, beside the copy bandwidth of the same run.
 */
import { readGguf } from '../lib/formats/gguf.js';
import { syntheticMoeBenchModel } from '../lib/tools/bench-models.js';
import { benchPrompt, measureSpeed, type SpeedResult } from '../lib/tools/bench.js';
import type { SyntheticLlamaType } from '../lib/tools/synthetic.js';
import { llamaCppSpeed, loadLlamaCpp, type PeerSpeed } from './peers/llama-cpp.js';
import { type BenchResult, measuredCopyBandwidth } from './util.js';

export async function run(): Promise<BenchResult[]> {
  const llama = await loadLlamaCpp();
  if (!llama) return [];
  const dtypes = (process.env.FUSELM_BENCH_DTYPES ?? 'q4_k,q8_0').split(',') as SyntheticLlamaType[];
  const threadCounts = (process.env.FUSELM_BENCH_THREADS ?? '1,2').split(',').map(Number);
  const P = 64, G = 32, reps = 2, rounds = Number(process.env.FUSELM_BENCH_ROUNDS ?? 5);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
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
      const mine: SpeedResult[] = [], theirs: PeerSpeed[] = [];
      for (let r = 0; r < rounds; r++) {
        mine.push(await measureSpeed(file, { threads, prompt: P, gen: G, reps, kvType: 'f16' }));
        theirs.push(await llamaCppSpeed(llama, file, threads, { prompt, gen: G, reps, kv: 'F16' }));
      }
      const fp = median(mine.map((m) => m.prefillTokensPerSecond)), lp = median(theirs.map((t) => t.prefillTokensPerSecond));
      const fd = median(mine.map((m) => m.decodeTokensPerSecond)), ld = median(theirs.map((t) => t.decodeTokensPerSecond));
      const prefillRatios = mine.map((m, r) => m.prefillTokensPerSecond / theirs[r].prefillTokensPerSecond);
      const decodeRatios = mine.map((m, r) => m.decodeTokensPerSecond / theirs[r].decodeTokensPerSecond);
      const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
      out.push({
        name: `moe 8x2 ${dtype} ${threads}t pp${P} tg${G} kv f16`,
        seconds: P / fp + G / fd,
        fuselmPrefill: fp,
        llamaCppPrefill: lp,
        prefillRatio: median(prefillRatios),
        prefillRatioRange: range(prefillRatios),
        fuselmDecode: fd,
        llamaCppDecode: ld,
        decodeRatio: median(decodeRatios),
        decodeRatioRange: range(decodeRatios),
        activeGB: activeBytes / 1e9,
        fuselmActiveWeightsGBps: (activeBytes * fd) / 1e9,
        llamaCppActiveWeightsGBps: (activeBytes * ld) / 1e9,
        copyGBps: (await measuredCopyBandwidth()) / 1e9,
      });
      const r = out[out.length - 1];
      process.stderr.write(`  ${r.name}: prefill ${(r.prefillRatio as number).toFixed(2)}x (${r.prefillRatioRange}), decode ${(r.decodeRatio as number).toFixed(2)}x (${r.decodeRatioRange})\n`);
    }
  }
  return out;
}
