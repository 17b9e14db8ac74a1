/**
 * The llama.cpp peer, through node-llama-cpp's prebuilt CPU binary, installed on demand into
 * bench/peers/.deps (scripts/llama-cpp-peer.ts says how).
 */
import { installLlamaCppPeer, loadLlamaCpp as loadPeer } from '../../scripts/llama-cpp-peer.js';
import { median } from '../util.js';

export interface PeerSpeed {
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

/** node-llama-cpp, installed when missing; undefined (saying why) when that fails. */
export async function loadLlamaCpp(): Promise<any | undefined> {
  const why = installLlamaCppPeer();
  const peer = why ? { reason: why } : await loadPeer();
  if ('reason' in peer) {
    process.stderr.write(`llama.cpp peer: ${peer.reason}; skipping the peer\n`);
    return undefined;
  }
  return peer.llama;
}

/** Prefill and decode tok/s of llama.cpp on `file`, medians over `reps` runs (F32 KV cache unless `kv` says F16, greedy). */
export async function llamaCppSpeed(llama: any, file: string, threads: number, o: { prompt: number[]; gen: number; reps: number; kv?: 'F32' | 'F16' }): Promise<PeerSpeed> {
  const model = await llama.loadModel({ modelPath: file });
  try {
    const kv = o.kv ?? 'F32';
    const ctx = await model.createContext({ contextSize: o.prompt.length + o.gen + 8, batchSize: 512, threads, experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv });
    const seq = ctx.getSequence();
    const pp: number[] = [], tg: number[] = [];
    for (let r = 0; r <= o.reps; r++) {
      await seq.clearHistory();
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(o.prompt);
      const t1 = performance.now();
      let n = 0;
      const last = o.prompt[o.prompt.length - 1];
      // decode: feed the last prompt token again and take greedy tokens, ignoring end of text
      for await (const _ of seq.evaluate([last], { temperature: 0 })) if (++n >= o.gen) break;
      const t2 = performance.now();
      if (r === 0) continue; // warm-up
      pp.push(o.prompt.length / ((t1 - t0) / 1000));
      tg.push(n / ((t2 - t1) / 1000));
    }
    await ctx.dispose();
    return { prefillTokensPerSecond: median(pp), decodeTokensPerSecond: median(tg) };
  } finally {
    await model.dispose();
  }
}
