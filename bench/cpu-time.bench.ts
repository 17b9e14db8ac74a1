/**
 * fuselm vs llama.cpp at 1 thread in tokens per CPU-second (user + system time of this process)
 * instead of per wall-clock second: on a host shared with other jobs, the time slices they take
 * drop out, which wall-clock ratios (llama-cpp.bench.ts) cannot separate from the engines' own
 * speed. What stays in: memory stalls, so a busy memory bus still slows both. Same files and
 * settings as llama-cpp.bench.ts (TinyLlama-1.1B shape, F16 KV cache, prompt 64, greedy).
 * Per engine, the best of `reps` runs after a warm-up:
 * - prefill: CPU time of the 64-token prompt (fuselm: generate(prompt, 1 token); llama.cpp: its
 *   prompt evaluation);
 * - decode: CPU time per step (fuselm: (generate 40 tokens - generate 8) / 32, so the prompt
 *   drops out; llama.cpp: 32 steps of its evaluate loop).
 * FUSELM_BENCH_DTYPES=q4_0,q8_0 picks the weight types (default q4_0,q8_0,f16).
 */
import { benchPrompt } from '../lib/tools/bench.js';
import { loadModel } from '../lib/index.js';
import { syntheticBenchModel } from '../lib/tools/bench-models.js';
import type { SyntheticLlamaType } from '../lib/tools/synthetic.js';
import { loadLlamaCpp } from './peers/llama-cpp.js';
import type { BenchResult } from './util.js';

const PROMPT = 64, REPS = 3;
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Best CPU seconds of the prompt and per decode step, fuselm. */
async function fuselmCpu(file: string): Promise<{ prefill: number; step: number }> {
  const model = await loadModel(file, { threads: 1, contextSize: PROMPT + 48, kvType: 'f16' });
  try {
    const prompt = benchPrompt(PROMPT, model.config.vocabSize, model.tokenizer.bos);
    const timed = async (maxTokens: number) => {
      await model.clearCache();
      const c0 = cpuSeconds();
      await model.generate(prompt, { maxTokens, ignoreEog: true });
      return cpuSeconds() - c0;
    };
    let prefill = Infinity, step = Infinity;
    for (let r = 0; r <= REPS; r++) {
      const one = await timed(1), short = await timed(8), long = await timed(40);
      if (r === 0) continue;  // warm-up
      prefill = Math.min(prefill, one);
      step = Math.min(step, (long - short) / 32);
    }
    return { prefill, step };
  } finally {
    await model.dispose();
  }
}

/** The same for llama.cpp (its prompt evaluation, then 32 steps of its evaluate loop). */
async function llamaCppCpu(llama: any, file: string): Promise<{ prefill: number; step: number }> {
  const model = await llama.loadModel({ modelPath: file });
  try {
    const ctx = await model.createContext({ contextSize: PROMPT + 48, batchSize: 512, threads: 1, experimentalKvCacheKeyType: 'F16', experimentalKvCacheValueType: 'F16' });
    const seq = ctx.getSequence();
    const prompt = benchPrompt(PROMPT, 259);
    let prefill = Infinity, step = Infinity;
    for (let r = 0; r <= REPS; r++) {
      await seq.clearHistory();
      const c0 = cpuSeconds();
      await seq.evaluateWithoutGeneratingNewTokens(prompt);
      const c1 = cpuSeconds();
      let n = 0;
      for await (const _ of seq.evaluate([prompt[PROMPT - 1]], { temperature: 0 })) if (++n >= 32) break;
      const c2 = cpuSeconds();
      if (r === 0) continue;
      prefill = Math.min(prefill, c1 - c0);
      step = Math.min(step, (c2 - c1) / n);
    }
    await ctx.dispose();
    return { prefill, step };
  } finally {
    await model.dispose();
  }
}

export async function run(): Promise<BenchResult[]> {
  const llama = await loadLlamaCpp();
  if (!llama) return [];
  const dtypes = (process.env.FUSELM_BENCH_DTYPES ?? 'q4_0,q8_0,f16').split(',') as SyntheticLlamaType[];
  const out: BenchResult[] = [];
  for (const dtype of dtypes) {
    const file = await syntheticBenchModel('tinyllama-1.1b', dtype);
    const f = await fuselmCpu(file);
    const l = await llamaCppCpu(llama, file);
    out.push({
      name: `tinyllama-1.1b ${dtype} 1t pp${PROMPT} cpu time`,
      seconds: f.prefill + 32 * f.step,
      fuselmPrefillPerCpuSecond: PROMPT / f.prefill,
      llamaCppPrefillPerCpuSecond: PROMPT / l.prefill,
      prefillRatio: l.prefill / f.prefill,
      fuselmDecodePerCpuSecond: 1 / f.step,
      llamaCppDecodePerCpuSecond: 1 / l.step,
      decodeRatio: l.step / f.step,
    });
    const r = out[out.length - 1];
    process.stderr.write(`  ${r.name}: prefill ${(r.prefillRatio as number).toFixed(2)}x, decode ${(r.decodeRatio as number).toFixed(2)}x\n`);
  }
  return out;
}
