/**
 * End-to-end speed of a model through the public API: prefill and decode tokens per second,
 * medians over repetitions after a warm-up, the prompt cache cleared before each run. Used by
 * `fuselm bench` and the benchmarks in bench/.
 */
import { loadModel } from '../model/model.js';

export interface SpeedOptions {
  threads?: number;
  /** Where the model runs (loadModel's device); default 'auto'. */
  device?: 'auto' | 'cpu' | 'cuda';
  /** Prompt tokens per run. */
  prompt: number;
  /** Generated tokens per run (end of text is ignored). */
  gen: number;
  reps: number;
  /** The KV cache's type (loadModel's kvType); default 'auto'. */
  kvType?: 'auto' | 'f32' | 'f16';
  /** Map the file (loadModel's useMmap); default true. */
  useMmap?: boolean;
}

export interface SpeedResult {
  device: 'cpu' | 'cuda';
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** Resident memory of the process after the runs. */
  rssMB: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A deterministic prompt of n ids: BOS, then a spread of ordinary tokens. */
export function benchPrompt(n: number, vocabSize: number, bos = 1): number[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? bos : 3 + ((i * 7) % (Math.min(vocabSize, 259) - 3))));
}

export async function measureSpeed(file: string, o: SpeedOptions): Promise<SpeedResult> {
  const model = await loadModel(file, { threads: o.threads, device: o.device, contextSize: o.prompt + o.gen + 8, kvType: o.kvType, useMmap: o.useMmap });
  try {
    const prompt = benchPrompt(o.prompt, model.config.vocabSize, model.tokenizer.bos);
    const pp: number[] = [], tg: number[] = [];
    for (let r = 0; r <= o.reps; r++) {
      await model.clearCache(); // the whole prompt each time, not a cached prefix
      const res = await model.generate(prompt, { maxTokens: o.gen, ignoreEog: true });
      if (r === 0) continue; // warm-up
      pp.push(res.timings.promptTokensPerSecond);
      tg.push(res.timings.tokensPerSecond);
    }
    return { device: model.device, prefillTokensPerSecond: median(pp), decodeTokensPerSecond: median(tg), rssMB: Math.round(process.memoryUsage().rss / 1e6) };
  } finally {
    await model.dispose();
  }
}

/** Times fn: a warm-up, then `reps` samples of enough calls to last >= minSeconds; the median seconds per call. */
export async function timeIt(fn: () => Promise<unknown> | unknown, o: { reps?: number; minSeconds?: number } = {}): Promise<number> {
  const reps = o.reps ?? 7, minSeconds = o.minSeconds ?? 0.05;
  await fn();
  let calls = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) await fn();
    const dt = (performance.now() - t0) / 1000;
    if (dt >= minSeconds || calls >= 1 << 20) break;
    calls *= 2;
  }
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) await fn();
    samples.push((performance.now() - t0) / 1000 / calls);
  }
  return median(samples);
}
