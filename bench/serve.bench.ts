/**
 * The server under load: 1, 4 and 16 concurrent streaming clients (FUSELM_BENCH_CLIENTS to
 * change) against `createServer` on 127.0.0.1, on the synthetic TinyLlama-1.1B-shaped q8_0 GGUF
 * (FUSELM_BENCH_SHAPES for another shape). Each client sends one /v1/completions request: a
 * token-id prompt of mixed length (16, 48, 96 or 160 tokens, by client), GEN tokens with
 * end-of-generation ignored, greedy. Measured at the client, per level:
 *  - aggregate tok/s: all generated tokens / wall time of the level (prefill included);
 *  - aggregate decode tok/s: the sum over clients of (tokens - 1) / (last token - first token);
 *  - TTFT (request sent -> first token) and ITL (gaps between a stream's tokens), p50 and p99.
 * One warm-up request precedes the levels; the server runs with --parallel = the most clients.
 */
import { loadModel } from '../lib/model/model.js';
import { createServer } from '../lib/server/server.js';
import { benchPrompt } from '../lib/tools/bench.js';
import { syntheticFile, type BenchResult } from './util.js';

const GEN = 32;
const PROMPT_LENGTHS = [16, 48, 96, 160];

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
}

interface ClientRun {
  ttft: number;
  gaps: number[];
  tokens: number;
  decodeSeconds: number;
}

/** One streaming request; times its tokens (logprobs: 0 makes every token a chunk of its own). */
async function client(base: string, prompt: number[]): Promise<ClientRun> {
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: GEN, temperature: 0, ignore_eos: true, stream: true, logprobs: 0 }),
  });
  if (r.status !== 200) throw new Error(`serve bench: HTTP ${r.status}: ${await r.text()}`);
  const times: number[] = [];
  const decoder = new TextDecoder();
  let buf = '';
  for await (const part of r.body as unknown as AsyncIterable<Uint8Array>) {
    const now = performance.now();
    buf += decoder.decode(part, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (ev === 'data: [DONE]') continue;
      const c = JSON.parse(ev.slice(6));
      if (c.error) throw new Error(`serve bench: ${c.error.message}`);
      for (const ch of c.choices) if (ch.logprobs) for (let k = 0; k < ch.logprobs.tokens.length; k++) times.push(now);
    }
  }
  const gaps = times.slice(1).map((t, k) => (t - times[k]) / 1000);
  return { ttft: (times[0] - t0) / 1000, gaps, tokens: times.length, decodeSeconds: (times[times.length - 1] - times[0]) / 1000 };
}

export async function run(): Promise<BenchResult[]> {
  const shape = (process.env.FUSELM_BENCH_SHAPES ?? 'tinyllama-1.1b').split(',')[0];
  const levels = (process.env.FUSELM_BENCH_CLIENTS ?? '1,4,16').split(',').map(Number);
  const file = await syntheticFile(shape, 'q8_0');
  const model = await loadModel(file, { contextSize: 256 });
  const server = createServer(model, { parallel: Math.max(...levels) });
  const out: BenchResult[] = [];
  try {
    await server.ready;
    const base = await server.listen({ port: 0 });
    const V = model.config.vocabSize, bos = model.tokenizer.bos;
    const prompts = Array.from({ length: Math.max(...levels) }, (_, i) => benchPrompt(PROMPT_LENGTHS[i % PROMPT_LENGTHS.length], V, bos).map((t, k) => (k === 0 ? t : (t + i) % V)));
    await client(base, prompts[0].slice(0, 8)); // warm-up
    let single = 0;
    for (const n of levels) {
      const t0 = performance.now();
      const runs = await Promise.all(prompts.slice(0, n).map((p) => client(base, p)));
      const wall = (performance.now() - t0) / 1000;
      const tokens = runs.reduce((s, r) => s + r.tokens, 0);
      const decode = runs.reduce((s, r) => s + (r.tokens - 1) / r.decodeSeconds, 0);
      if (n === levels[0]) single = decode;
      const ttft = runs.map((r) => r.ttft), itl = runs.flatMap((r) => r.gaps);
      out.push({
        name: `${shape} q8_0 ${n} clients tg${GEN}`,
        seconds: wall,
        tokensPerSecond: tokens / wall,
        decodeTokensPerSecond: decode,
        decodeSpeedupOverFirstLevel: decode / single,
        ttftP50: percentile(ttft, 50),
        ttftP99: percentile(ttft, 99),
        itlP50: percentile(itl, 50),
        itlP99: percentile(itl, 99),
      });
    }
  } finally {
    await server.close();
    await model.dispose();
  }
  return out;
}
