/**
 * `fuselm serve` with an encoder-decoder (`npm run bench -- t5-serve`): the t5-small-shaped
 * synthetic GGUF of t5.bench.ts (f32, 1 thread unless FUSELM_BENCH_THREADS), 8 clients at once,
 * each a /v1/completions request with its own 32-token input, 32 greedy tokens (EOS off), over
 * HTTP on 127.0.0.1. The same server code twice: --parallel 8 (the 8 inputs encoded in one
 * packed pass and decoded as one batch) and --parallel 1 (FIFO, one request at a time), run in
 * alternating rounds (3 each; a shared host's load moves between turns); aggregate generated
 * tokens per second of the wall time from the first request sent to the last answer, median
 * of the rounds, and their ratio. Also one client alone. No peer: node-llama-cpp has no
 * encoder-decoder path, and llama.cpp's server none either.
 */
import { loadModel } from '../lib/index.js';
import type { EncoderDecoderModel } from '../lib/model/encoder-decoder.js';
import type { Model } from '../lib/model/model.js';
import { createServer } from '../lib/server/server.js';
import { benchModel } from '../lib/tools/bench-models.js';
import { SHAPE, writeSyntheticT5 } from './t5.bench.js';
import { median, type BenchResult } from './util.js';

const CLIENTS = 8, INPUT = 32, TOKENS = 32, ROUNDS = 3;

/** Seconds for `clients` concurrent requests through a server of `parallel` sequences. */
async function round(model: EncoderDecoderModel, parallel: number, clients: number): Promise<number> {
  const server = createServer(model as unknown as Model, { parallel });
  try {
    await server.ready;
    const base = await server.listen({ port: 0 });
    const input = (c: number) => Array.from({ length: INPUT }, (_, i) => 3 + ((c * 131 + i * 7919) % (SHAPE.vocab - 3)));
    const t0 = performance.now();
    const answers = await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const r = await fetch(`${base}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt: input(c), max_tokens: TOKENS, temperature: 0, ignore_eos: true }),
        });
        return (await r.json()) as { usage?: { completion_tokens: number } };
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    for (const a of answers) if (a.usage?.completion_tokens !== TOKENS) throw new Error(`t5-serve bench: a request gave ${JSON.stringify(a).slice(0, 200)}`);
    return seconds;
  } finally {
    await server.close();
  }
}

export async function run(): Promise<BenchResult[]> {
  const file = await benchModel('t5-small-shape-gated.f32.gguf', writeSyntheticT5);
  const threads = Number((process.env.FUSELM_BENCH_THREADS ?? '1').split(',')[0]);
  const model = (await loadModel(file, { device: 'cpu', threads })) as unknown as EncoderDecoderModel;
  try {
    await round(model, 1, 1); // warm-up: pages the weights in
    const batched: number[] = [], fifo: number[] = [], solo: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      batched.push(await round(model, CLIENTS, CLIENTS));
      fifo.push(await round(model, 1, CLIENTS));
      solo.push(await round(model, 1, 1));
    }
    const tps = (s: number[], clients: number) => (clients * TOKENS) / median(s);
    const out: BenchResult[] = [
      { name: `t5-small shape f32 ${threads}t serve, ${CLIENTS} clients, --parallel ${CLIENTS}`, seconds: median(batched), tokensPerSecond: tps(batched, CLIENTS), rounds: batched.map((s) => +(CLIENTS * TOKENS / s).toFixed(1)) },
      { name: `t5-small shape f32 ${threads}t serve, ${CLIENTS} clients, --parallel 1 (FIFO)`, seconds: median(fifo), tokensPerSecond: tps(fifo, CLIENTS), rounds: fifo.map((s) => +(CLIENTS * TOKENS / s).toFixed(1)) },
      { name: `t5-small shape f32 ${threads}t serve, 1 client`, seconds: median(solo), tokensPerSecond: tps(solo, 1) },
    ];
    out[0].batchedOverFifo = tps(batched, CLIENTS) / tps(fifo, CLIENTS);
    return out;
  } finally {
    await model.dispose();
  }
}
