/**
 * The server under load: 1, 4, 16 and 64 concurrent streaming clients (FUSELM_BENCH_CLIENTS to
 * change) against `createServer` on 127.0.0.1, on the synthetic TinyLlama-1.1B-shaped q8_0 GGUF
 * (FUSELM_BENCH_SHAPES for another shape). Each client sends one /v1/completions request: a
 * token-id prompt of mixed length (16, 48, 96 or 160 tokens, by client), GEN tokens with
 * end-of-generation ignored, greedy. Measured at the client, per level:
 *  - aggregate tok/s: all generated tokens / wall time of the level (prefill included);
 *  - aggregate decode tok/s (the issue's goal: 16 clients >= 4x 1 client): the sum over clients
 *    of (tokens - 1) / (last token - first token), so each client's window counts the steps
 *    that also carried other clients' prompt chunks;
 *  - decode-phase tok/s: the tokens that came after every client had its first one, / the time
 *    from then to the last token (all prompts read: decode steps only);
 *  - TTFT (request sent -> first token) and ITL (gaps between a stream's tokens), p50 and p99.
 * One warm-up request precedes the levels; the server runs with --parallel = the most clients.
 * Rounds (FUSELM_BENCH_ROUNDS, default 3) run every level again with prompts of their own (not in
 * the prefix cache), fuselm and the peer alternating (which goes first alternates too), so a
 * shared host's load falls on both; each figure is the
 * median of the rounds, with its range, and each ratio the median of the rounds' ratios.
 * Beside it, steady decode: the same model's slots (Model.openSlots, what the scheduler steps)
 * with every sequence's first 16 prompt tokens read, then STEADY_STEPS steps of one token per
 * sequence, timed (steady tok/s = sequences x steps / time, the median of STEADY_REPS runs), on
 * contiguous slots and on paged ones (the server's: blocks of 16 from one pool, scattered),
 * alternated, for the paged path's ratio.
 * The peer: llama.cpp (node-llama-cpp's prebuilt CPU binary) with the same clients as parallel
 * sequences of one context (its batching of concurrent sequences), the same prompts, threads and
 * F16 KV cache, timed the same way; the ratios are fuselm / llama.cpp (FUSELM_BENCH_NO_PEER=1
 * leaves it out). On a busy host its threads can slow to a crawl: a peer level still running
 * after FUSELM_BENCH_PEER_LIMIT seconds (default 300) is cut, counted (llamaCppCut) and left out
 * of the figures, and so are the rounds' ratios it would have given.
 */
import { type Model, loadModel } from '../lib/model/model.js';
import { createServer } from '../lib/server/server.js';
import { benchPrompt } from '../lib/tools/bench.js';
import { loadLlamaCpp } from './peers/llama-cpp.js';
import { type BenchResult, median } from './util.js';
import { syntheticBenchModel } from '../lib/tools/bench-models.js';

const GEN = 32;
const PROMPT_LENGTHS = [16, 48, 96, 160];
const STEADY_STEPS = 8;
const STEADY_REPS = 3;

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
}

interface ClientRun {
  ttft: number;
  /** performance.now() of each token */
  times: number[];
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
  return { ttft: (times[0] - t0) / 1000, times };
}

/** One level's figures from its clients' runs and wall time (the header says how each is cut). */
function level(runs: ClientRun[], wall: number) {
  const ttft = runs.map((r) => r.ttft), itl = runs.flatMap((r) => r.times.slice(1).map((t, k) => (t - r.times[k]) / 1000));
  const allStarted = Math.max(...runs.map((r) => r.times[0])), end = Math.max(...runs.map((r) => r.times[r.times.length - 1]));
  const afterStart = runs.reduce((s, r) => s + r.times.filter((t) => t > allStarted).length, 0);
  return {
    wallSeconds: wall,
    tokensPerSecond: runs.reduce((s, r) => s + r.times.length, 0) / wall,
    decodeTokensPerSecond: runs.reduce((s, r) => s + (r.times.length - 1) / ((r.times[r.times.length - 1] - r.times[0]) / 1000), 0),
    decodePhaseTokensPerSecond: afterStart / ((end - allStarted) / 1000),
    ttftP50: percentile(ttft, 50),
    ttftP99: percentile(ttft, 99),
    itlP50: percentile(itl, 50),
    itlP99: percentile(itl, 99),
  };
}

type Level = ReturnType<typeof level>;

/** The median of each figure over rounds, and the range of the decode figures. */
function summary(rounds: Level[]) {
  const med = (k: keyof Level) => median(rounds.map((r) => r[k]));
  const range = (k: keyof Level) => [Math.min(...rounds.map((r) => r[k])), Math.max(...rounds.map((r) => r[k]))];
  return {
    wallSeconds: med('wallSeconds'), tokensPerSecond: med('tokensPerSecond'),
    decodeTokensPerSecond: med('decodeTokensPerSecond'), decodeTokensPerSecondRange: range('decodeTokensPerSecond'),
    decodePhaseTokensPerSecond: med('decodePhaseTokensPerSecond'), decodePhaseTokensPerSecondRange: range('decodePhaseTokensPerSecond'),
    ttftP50: med('ttftP50'), ttftP99: med('ttftP99'), itlP50: med('itlP50'), itlP99: med('itlP99'),
  };
}

/** Steady decode tok/s of `n` sequences on `model`'s slots: prompts read, then STEADY_STEPS one-token steps of all of them. */
async function steadyDecode(model: Model, prompts: number[][], n: number, paged: boolean): Promise<number> {
  const perSeq = Math.ceil(model.contextSize / 16);
  const slots = await model.openSlots(n, paged ? { paged: { blockSize: 16, blocks: n * perSeq } } : {});
  try {
    // paged: sequence s's i-th block is i * n + s, the sequences' blocks interleaved
    if (paged) for (let s = 0; s < n; s++) slots.setBlocks(s, Array.from({ length: perSeq }, (_, i) => i * n + s));
    for (let s = 0; s < n; s++) await slots.step([{ slot: s, ids: prompts[s], pos: 0 }]);
    const rates: number[] = [];
    let pos = prompts.slice(0, n).map((p) => p.length);
    await slots.step(pos.map((p, s) => ({ slot: s, ids: [1], pos: p }))); // the layout's graph, built once
    pos = pos.map((p) => p + 1);
    for (let r = 0; r < STEADY_REPS; r++) {
      const t0 = performance.now();
      for (let k = 0; k < STEADY_STEPS; k++) {
        await slots.step(pos.map((p, s) => ({ slot: s, ids: [1], pos: p + k })));
      }
      rates.push((n * STEADY_STEPS) / ((performance.now() - t0) / 1000));
      pos = pos.map((p) => p + STEADY_STEPS);
    }
    return median(rates);
  } finally {
    slots.close();
  }
}

/** The peer: `n` sequences of one llama.cpp context, each generating GEN greedy tokens at once. */
async function peerLevel(model: any, prompts: number[][], threads: number, limitSeconds = Infinity): Promise<{ runs: ClientRun[]; wall: number; cut: boolean }> {
  const n = prompts.length;
  let cut = false;
  const ctx = await model.createContext({ contextSize: 256, sequences: n, batchSize: 512, threads, experimentalKvCacheKeyType: 'F16', experimentalKvCacheValueType: 'F16' });
  try {
    const t0 = performance.now();
    const runs = await Promise.all(prompts.map(async (p) => {
      const seq = ctx.getSequence();
      const start = performance.now();
      const times: number[] = [];
      for await (const _ of seq.evaluate(p, { temperature: 0 })) {
        times.push(performance.now());
        if (times.length >= GEN) break;
        if ((cut ||= performance.now() - t0 > limitSeconds * 1000)) break;
      }
      return { ttft: (times[0] - start) / 1000, times };
    }));
    return { runs, wall: (performance.now() - t0) / 1000, cut };
  } finally {
    await ctx.dispose();
  }
}

export async function run(): Promise<BenchResult[]> {
  const shape = (process.env.FUSELM_BENCH_SHAPES ?? 'tinyllama-1.1b').split(',')[0];
  const levels = (process.env.FUSELM_BENCH_CLIENTS ?? '1,4,16,64').split(',').map(Number);
  const rounds = Number(process.env.FUSELM_BENCH_ROUNDS ?? 3);
  const peerLimit = Number(process.env.FUSELM_BENCH_PEER_LIMIT ?? 300);
  const file = await syntheticBenchModel(shape, 'q8_0');
  const model = await loadModel(file, { contextSize: 256 });
  const threads = model.threads;
  const server = createServer(model, { parallel: Math.max(...levels) });
  const V = model.config.vocabSize, bos = model.tokenizer.bos;
  // client i's prompt in round r (every round's its own, so no round finds another's in the prefix cache)
  const promptsOf = (r: number) => Array.from({ length: Math.max(...levels) }, (_, i) => benchPrompt(PROMPT_LENGTHS[i % PROMPT_LENGTHS.length], V, bos).map((t, k) => (k === 0 ? t : (t + i + 101 * r) % V)));
  const prompts = promptsOf(0);
  // by round; a peer level cut at its limit is undefined
  const ours = new Map<number, Level[]>(), theirs = new Map<number, (Level | undefined)[]>();
  const steady = new Map<number, number>(), steadyPaged = new Map<number, number>();
  const llama = process.env.FUSELM_BENCH_NO_PEER ? undefined : await loadLlamaCpp();
  const peer = llama && (await llama.loadModel({ modelPath: file }));
  let closed = false;
  try {
    await server.ready;
    const base = await server.listen({ port: 0 });
    await client(base, promptsOf(rounds)[0].slice(0, 8)); // warm-up (a prompt no round has)
    if (peer) await peerLevel(peer, [promptsOf(rounds)[0].slice(0, 8)], threads);
    const side = {
      fuselm: async (n: number, r: number) => {
        const t0 = performance.now();
        const runs = await Promise.all(promptsOf(r).slice(0, n).map((p) => client(base, p)));
        return level(runs, (performance.now() - t0) / 1000);
      },
      'llama.cpp': async (n: number, round: number) => {
        const r = await peerLevel(peer, promptsOf(round).slice(0, n), threads, peerLimit);
        return r.cut ? undefined : level(r.runs, r.wall);
      },
    };
    for (let r = 0; r < rounds; r++)
      for (const n of levels) {
        const order = (['fuselm', 'llama.cpp'] as const).filter((k) => k === 'fuselm' || peer);
        if (r % 2) order.reverse();
        for (const k of order) {
          const l = await side[k](n, r);
          if (k === 'fuselm') ours.set(n, [...(ours.get(n) ?? []), l!]);
          else theirs.set(n, [...(theirs.get(n) ?? []), l]);
          process.stderr.write(`serve: round ${r + 1} ${k} ${n} clients ${l ? JSON.stringify(l) : `cut after ${peerLimit} s`}\n`);
        }
      }
    await server.close();
    closed = true;
    for (const n of levels) {
      const contiguous: number[] = [], paged: number[] = [];
      for (let r = 0; r < 2; r++) {
        contiguous.push(await steadyDecode(model, prompts.map((p) => p.slice(0, 16)), n, false));
        paged.push(await steadyDecode(model, prompts.map((p) => p.slice(0, 16)), n, true));
      }
      steady.set(n, Math.max(...contiguous));
      steadyPaged.set(n, Math.max(...paged));
      process.stderr.write(`serve: steady decode ${n} sequences ${contiguous.map((x) => x.toFixed(2))} tok/s contiguous, ${paged.map((x) => x.toFixed(2))} paged\n`);
    }
  } finally {
    if (!closed) await server.close();
    await model.dispose();
    await peer?.dispose();
  }
  // a figure of each round over the same round's other figure, over the rounds that have both
  const ratios = (a: (Level | undefined)[], b: (Level | undefined)[], k: keyof Level) => {
    const xs = a.flatMap((l, r) => (l && b[r] ? [l[k] / b[r]![k]] : []));
    return xs.length ? { median: median(xs), range: [Math.min(...xs), Math.max(...xs)] } : undefined;
  };
  const steadySingle = steady.get(levels[0])!;
  return levels.map((n) => {
    const f = summary(ours.get(n)!), l = theirs.get(n) ?? [], done = l.filter((x): x is Level => !!x);
    const speedup = ratios(ours.get(n)!, ours.get(levels[0])!, 'decodeTokensPerSecond')!;
    const phaseSpeedup = ratios(ours.get(n)!, ours.get(levels[0])!, 'decodePhaseTokensPerSecond')!;
    const peer = done.length ? summary(done) : undefined;
    const decodeRatio = ratios(ours.get(n)!, l, 'decodeTokensPerSecond'), tokRatio = ratios(ours.get(n)!, l, 'tokensPerSecond');
    const peerSpeedup = ratios(l, theirs.get(levels[0]) ?? [], 'decodeTokensPerSecond');
    return {
      name: `${shape} q8_0 ${n} clients tg${GEN} ${threads}t`,
      seconds: f.wallSeconds,
      rounds,
      ...f,
      decodeSpeedupOverFirstLevel: speedup.median,
      decodeSpeedupOverFirstLevelRange: speedup.range,
      decodePhaseSpeedupOverFirstLevel: phaseSpeedup.median,
      decodePhaseSpeedupOverFirstLevelRange: phaseSpeedup.range,
      steadyDecodeTokensPerSecond: steady.get(n)!,
      steadyDecodeSpeedupOverFirstLevel: steady.get(n)! / steadySingle,
      steadyPagedDecodeTokensPerSecond: steadyPaged.get(n)!,
      steadyPagedOverContiguous: steadyPaged.get(n)! / steady.get(n)!,
      ...(l.length ? { llamaCppCut: l.length - done.length } : {}),
      ...(peer
        ? {
            llamaCppTokensPerSecond: peer.tokensPerSecond,
            llamaCppDecodeTokensPerSecond: peer.decodeTokensPerSecond,
            llamaCppDecodeTokensPerSecondRange: peer.decodeTokensPerSecondRange,
            llamaCppDecodePhaseTokensPerSecond: peer.decodePhaseTokensPerSecond,
            llamaCppTtftP50: peer.ttftP50,
            llamaCppItlP50: peer.itlP50,
          }
        : {}),
      ...(peerSpeedup ? { llamaCppDecodeSpeedupOverFirstLevel: peerSpeedup.median, llamaCppDecodeSpeedupOverFirstLevelRange: peerSpeedup.range } : {}),
      ...(decodeRatio ? { decodeRatio: decodeRatio.median, decodeRatioRange: decodeRatio.range } : {}),
      ...(tokRatio ? { tokensPerSecondRatio: tokRatio.median, tokensPerSecondRatioRange: tokRatio.range } : {}),
    };
  });
}
