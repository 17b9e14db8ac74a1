/**
 * fuselm vs llama.cpp (node-llama-cpp's prebuilt CPU binary) on the same GGUF files in the same
 * run: prefill and decode tok/s at 1 and 2 threads, medians of several runs, and the ratios
 * (fuselm / llama.cpp; > 1 means fuselm is faster). Both use the same KV cache type (F16,
 * llama.cpp's default; FUSELM_BENCH_KV=f32 for F32) and greedy decoding. Decode tok/s is forward
 * steps per second on both sides (fuselm's timings count n - 1 steps for n tokens, the first
 * coming from the prompt's logits; the peer's loop evaluates one token per yielded token).
 * Files: stories260K (../shared) and synthetic TinyLlama-1.1B-shaped GGUFs in f32, f16, q8_0 and
 * q4_k (every matrix Q4_K, run as stored by both). FUSELM_BENCH_SHAPES=tiny (or another SHAPES
 * key) picks the synthetic shape, FUSELM_BENCH_DTYPES=q4_k,q8_0 the weight types: any matrix
 * type (f16, bf16, q8_0, q6_k, q4_0, ...) or llama.cpp's mixtures q4_k_m and q5_k_m;
 * FUSELM_BENCH_THREADS=1 the thread counts (default 1,2).
 * Decode reads every matrix but token_embd once per step: each decode figure comes with those
 * bytes per second (weightsGBps) beside the copy bandwidth measured in the same run.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchPrompt, measureSpeed } from '../lib/tools/bench.js';
import { llamaCppSpeed, loadLlamaCpp } from './peers/llama-cpp.js';
import { readGguf } from '../lib/formats/gguf.js';
import type { SyntheticLlamaType } from '../lib/tools/synthetic.js';
import { measuredCopyBandwidth, type BenchResult } from './util.js';
import { syntheticBenchModel } from '../lib/tools/bench-models.js';

const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared');

export async function run(): Promise<BenchResult[]> {
  const llama = await loadLlamaCpp();
  if (!llama) return [];
  const cases: Array<{ label: string; file: string; prompt: number; gen: number; reps: number }> = [];
  const stories = path.join(shared, 'models/stories260K.gguf');
  if (existsSync(stories)) cases.push({ label: 'stories260K f32', file: stories, prompt: 128, gen: 128, reps: 5 });
  else process.stderr.write(`llama-cpp bench: skipping stories260K (${stories} not found)\n`);
  const shape = process.env.FUSELM_BENCH_SHAPES ?? 'tinyllama-1.1b';
  const dtypes = (process.env.FUSELM_BENCH_DTYPES ?? 'f32,f16,q8_0,q4_k').split(',') as SyntheticLlamaType[];
  for (const dtype of dtypes)
    cases.push({ label: `${shape} ${dtype}`, file: await syntheticBenchModel(shape, dtype), prompt: 64, gen: 32, reps: 3 });

  const threadCounts = (process.env.FUSELM_BENCH_THREADS ?? '1,2').split(',').map(Number);
  const kv = process.env.FUSELM_BENCH_KV === 'f32' ? 'f32' : 'f16';
  const out: BenchResult[] = [];
  for (const c of cases) {
    const weightBytes = (await readGguf(c.file)).tensors.filter((t) => t.dims.length >= 2 && t.name !== 'token_embd.weight').reduce((n, t) => n + t.nbytes, 0);
    const prompt = benchPrompt(c.prompt, 259);
    for (const threads of threadCounts) {
      const o = { prompt, gen: c.gen, reps: c.reps, kv: kv === 'f32' ? 'F32' : 'F16' } as const;
      const f = await measureSpeed(c.file, { threads, prompt: c.prompt, gen: c.gen, reps: c.reps, kvType: kv });
      const l = await llamaCppSpeed(llama, c.file, threads, o);
      out.push({
        name: `${c.label} ${threads}t pp${c.prompt} tg${c.gen} kv ${kv}`,
        seconds: c.prompt / f.prefillTokensPerSecond + c.gen / f.decodeTokensPerSecond,
        fuselmPrefill: f.prefillTokensPerSecond,
        llamaCppPrefill: l.prefillTokensPerSecond,
        prefillRatio: f.prefillTokensPerSecond / l.prefillTokensPerSecond,
        fuselmDecode: f.decodeTokensPerSecond,
        llamaCppDecode: l.decodeTokensPerSecond,
        decodeRatio: f.decodeTokensPerSecond / l.decodeTokensPerSecond,
        fuselmWeightsGBps: (weightBytes * f.decodeTokensPerSecond) / 1e9,
        llamaCppWeightsGBps: (weightBytes * l.decodeTokensPerSecond) / 1e9,
        copyGBps: (await measuredCopyBandwidth()) / 1e9,
      });
      const r = out[out.length - 1];
      process.stderr.write(`  ${r.name}: prefill ${(r.prefillRatio as number).toFixed(2)}x, decode ${(r.decodeRatio as number).toFixed(2)}x\n`);
    }
  }
  return out;
}
