/**
 * LoRA at run time (issue 19) on a synthetic TinyLlama-1.1B q8_0 GGUF (lib/tools/bench-models.ts),
 * with synthetic GGUF adapters of r = 16 on all seven projections of every layer (f32, ~50 MB
 * each, written once beside the model):
 *  - decode: greedy tok/s (Timings.tokensPerSecond: forward steps after the prompt) of 32 tokens
 *    after a 16-token prompt, base alone vs base + one adapter; `ratio` = adapter's seconds per
 *    token / base's (goal <= 1.15); at 1 thread also `cpuRatio`, the same of the process's CPU
 *    seconds per call (prompt and decode; process.cpuUsage), which a busy host disturbs far less
 *    than the wall clock;
 *  - batch: 8 sequences generating together (16-token prompts, 16 tokens each), each with an
 *    adapter of its own vs all with the same one; tok/s of all the sequences' tokens over the
 *    call (prompts included, as both runs read the same prompts); `ratio` = 8 adapters' tok/s /
 *    one shared adapter's (goal >= 0.8), `cpuRatio` the same in CPU seconds.
 * At 1 and 2 threads. The two sides of each figure take turns (5 rounds), so a slow spell of
 * this shared machine hits both alike; ratios are of the medians.
 */
import { gv, writeGguf } from '../lib/formats/gguf.js';
import { GgmlType } from '../lib/formats/ggml-types.js';
import { SHAPES } from '../lib/tools/synthetic.js';
import { benchPrompt, median } from '../lib/tools/bench.js';
import { benchModel, syntheticBenchModel } from '../lib/tools/bench-models.js';
import { loadModel, type Model } from '../lib/model/model.js';
import type { AdapterUse } from '../lib/model/lora.js';
import type { BenchResult } from './util.js';

const RANK = 16;

/** A random r = RANK adapter on every projection of the TinyLlama shape (values ~0.01, so the model's numbers stay in range). */
function adapterFile(seed: number): Promise<string> {
  const s = SHAPES['tinyllama-1.1b'];
  const q = s.dim, kv = (s.dim / s.nHeads) * s.nKvHeads;
  const dims: Record<string, [number, number]> = {
    attn_q: [s.dim, q], attn_k: [s.dim, kv], attn_v: [s.dim, kv], attn_output: [q, s.dim], ffn_gate: [s.dim, s.ffnDim], ffn_up: [s.dim, s.ffnDim], ffn_down: [s.ffnDim, s.dim],
  };
  let state = seed >>> 0;
  const values = (n: number) => {
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      f[i] = (state / 2147483648 - 1) * 0.01;
    }
    return new Uint8Array(f.buffer);
  };
  return benchModel(`synthetic-tinyllama-1.1b-lora-r${RANK}-${seed}.gguf`, (file) =>
    writeGguf(file, {
      metadata: [
        { key: 'general.architecture', ...gv.str('llama') },
        { key: 'general.type', ...gv.str('adapter') },
        { key: 'adapter.type', ...gv.str('lora') },
        { key: 'adapter.lora.alpha', ...gv.f32(2 * RANK) },
      ],
      tensors: Array.from({ length: s.nLayers }, (_, l) =>
        Object.entries(dims).flatMap(([name, [K, N]]) => [
          { name: `blk.${l}.${name}.weight.lora_a`, type: GgmlType.F32, dims: [K, RANK], data: async () => values(K * RANK) },
          { name: `blk.${l}.${name}.weight.lora_b`, type: GgmlType.F32, dims: [RANK, N], data: async () => values(RANK * N) },
        ])).flat(),
    }));
}

/** Seconds of CPU (user + system) fn takes in this process, and its result. */
async function cpuSeconds<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const c0 = process.cpuUsage();
  const r = await fn();
  const c = process.cpuUsage(c0);
  return [(c.user + c.system) / 1e6, r];
}

/** Wall seconds per decode step and CPU seconds of the call. */
async function decode(m: Model, prompt: number[], adapters?: AdapterUse[]): Promise<[number, number]> {
  await m.clearCache();
  const [cpu] = await cpuSeconds(() => m.generate(prompt, { maxTokens: 32, ignoreEog: true, adapters }));
  return [1 / m.lastTimings!.tokensPerSecond, cpu];
}

/** tok/s of the call, and its CPU seconds. */
async function batch(m: Model, prompts: number[][], uses: AdapterUse[][]): Promise<[number, number]> {
  const t0 = performance.now();
  const [cpu, rs] = await cpuSeconds(() => m.generate(prompts.map((prompt, i) => ({ prompt, adapters: uses[i] })), { maxTokens: 16, ignoreEog: true }));
  const sec = (performance.now() - t0) / 1e3;
  return [rs.reduce((n, r) => n + r.ids.length, 0) / sec, cpu];
}

/** fn(a) and fn(b) in turns, `rounds` times: the medians of each's two figures. */
async function turns<T>(rounds: number, a: T, b: T, fn: (x: T) => Promise<[number, number]>): Promise<[[number, number], [number, number]]> {
  const xs: [number, number][] = [], ys: [number, number][] = [];
  for (let r = 0; r < rounds; r++) {
    xs.push(await fn(a));
    ys.push(await fn(b));
  }
  const med = (v: [number, number][]): [number, number] => [median(v.map((p) => p[0])), median(v.map((p) => p[1]))];
  return [med(xs), med(ys)];
}

export async function run(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const file = await syntheticBenchModel('tinyllama-1.1b', 'q8_0');
  const files = [];
  for (let i = 0; i < 8; i++) files.push(await adapterFile(101 + i));
  for (const threads of [1, 2]) {
    await using m = await loadModel(file, { device: 'cpu', threads, contextSize: 128 });
    const adapters = [];
    for (const f of files) adapters.push(await m.loadAdapter(f));
    const prompt = benchPrompt(16, m.config.vocabSize, m.tokenizer.bos);
    const one = [{ adapter: adapters[0] }];
    await decode(m, prompt, one); // warm-up: pages of the weights, the graphs
    await decode(m, prompt);
    const [[b, bc], [l, lc]] = await turns<AdapterUse[] | undefined>(5, undefined, one, (u) => decode(m, prompt, u));
    out.push({ name: `decode tinyllama q8_0 base ${threads}t`, seconds: b, tokPerS: 1 / b, cpuSeconds: bc });
    out.push({ name: `decode tinyllama q8_0 + lora r${RANK} all projections ${threads}t`, seconds: l, tokPerS: 1 / l, cpuSeconds: lc, ratio: l / b, cpuRatio: lc / bc });

    const prompts = Array.from({ length: 8 }, (_, i) => benchPrompt(16, m.config.vocabSize, m.tokenizer.bos).map((t, k) => (k ? (t + 97 * i) % m.config.vocabSize : t)));
    const shared = prompts.map(() => one), own = adapters.map((adapter) => [{ adapter }]);
    await batch(m, prompts, shared);
    await batch(m, prompts, own);
    const [[s, sc], [o, oc]] = await turns(5, shared, own, (u) => batch(m, prompts, u));
    out.push({ name: `batch 8 x 16 tokens, one shared adapter ${threads}t`, seconds: 1 / s, tokPerS: s, cpuSeconds: sc });
    out.push({ name: `batch 8 x 16 tokens, 8 different adapters ${threads}t`, seconds: 1 / o, tokPerS: o, cpuSeconds: oc, ratio: o / s, cpuRatio: sc / oc });
  }
  return out;
}
