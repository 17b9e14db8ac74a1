/**
 * End to end: prefill and decode tok/s through the public API, for stories260K (from
 * ../shared, when present) and synthetic GGUFs at TinyLlama-1.1B shape in f32 and q8_0
 * (written once into the OS temp dir). 1 and 2 threads, medians over repetitions.
 * FUSELM_BENCH_SHAPES=tiny limits the synthetic shapes (e.g. for a quick run).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchPrompt, measureSpeed } from '../lib/tools/bench.js';
import { loadModel } from '../lib/model/model.js';
import { type BenchResult } from './util.js';
import { syntheticBenchModel } from '../lib/tools/bench-models.js';

const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared');

async function measure(file: string, label: string, threads: number, o: { prompt: number; gen: number; reps: number }): Promise<BenchResult> {
  const r = await measureSpeed(file, { threads, ...o });
  return { name: `${label} ${threads}t pp${o.prompt} tg${o.gen}`, seconds: o.prompt / r.prefillTokensPerSecond + o.gen / r.decodeTokensPerSecond, ...r };
}

/** Decode tok/s of 4 sequences generated together against the same 4 one after another. */
async function parallel(file: string, label: string, gen: number): Promise<BenchResult> {
  const model = await loadModel(file, { contextSize: 256 });
  try {
    const prompts = [0, 1, 2, 3].map((s) => benchPrompt(16 + 4 * s, model.config.vocabSize, model.tokenizer.bos));
    const o = { maxTokens: gen, ignoreEog: true };
    await model.generate(prompts, { maxTokens: 2 }); // warm-up
    // decode time only: the prompts are evaluated one by one either way
    let seqSeconds = 0;
    for (const p of prompts) seqSeconds += (await model.generate(p, o)).timings.generateSeconds;
    const batch = await model.generate(prompts, o);
    const batSeconds = batch[0].timings.generateSeconds;
    const seq = (4 * gen) / seqSeconds, bat = (4 * gen) / batSeconds;
    return { name: `${label} 4 sequences tg${gen}`, seconds: batSeconds, sequentialTokensPerSecond: seq, batchedTokensPerSecond: bat, speedup: bat / seq };
  } finally {
    await model.dispose();
  }
}

export async function run(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const stories = path.join(shared, 'models/stories260K.gguf');
  if (existsSync(stories)) {
    for (const t of [1, 2]) out.push(await measure(stories, 'stories260K f32', t, { prompt: 128, gen: 128, reps: 5 }));
  } else {
    process.stderr.write(`e2e: skipping stories260K (${stories} not found)\n`);
  }
  const shapes = (process.env.FUSELM_BENCH_SHAPES ?? 'tinyllama-1.1b').split(',');
  out.push(await parallel(await syntheticBenchModel(shapes[0], 'q8_0'), `${shapes[0]} q8_0`, 16));
  for (const shapeName of shapes) {
    for (const dtype of ['f32', 'q8_0'] as const) {
      const file = await syntheticBenchModel(shapeName, dtype);
      for (const t of [1, 2]) out.push(await measure(file, `${shapeName} ${dtype}`, t, { prompt: 64, gen: 16, reps: 3 }));
    }
  }
  return out;
}
