/**
 * The llama.cpp peer, through node-llama-cpp's prebuilt CPU binary. It is installed on demand
 * into bench/peers/.deps (never committed), with nothing downloaded or built:
 *   NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --prefix bench/peers/.deps --no-save \
 *     node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 --omit=optional --ignore-scripts
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { median } from '../util.js';

const deps = path.join(path.dirname(fileURLToPath(import.meta.url)), '.deps');
const entry = path.join(deps, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');

export interface PeerSpeed {
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

/** node-llama-cpp, installed into bench/peers/.deps when missing; undefined (saying why) when that fails. */
export async function loadLlamaCpp(): Promise<any | undefined> {
  if (!existsSync(entry)) {
    process.stderr.write(`llama.cpp peer: installing node-llama-cpp into ${deps} ...\n`);
    try {
      execFileSync(
        'npm',
        ['install', '--prefix', deps, '--no-save', 'node-llama-cpp@3.22.1', '@node-llama-cpp/linux-x64@3.22.1', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund'],
        { env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' }, stdio: ['ignore', 'ignore', 'inherit'] },
      );
    } catch (e) {
      process.stderr.write(`llama.cpp peer: install failed (${(e as Error).message}); skipping the peer\n`);
      return undefined;
    }
  }
  const { getLlama } = await import(pathToFileURL(entry).href);
  return getLlama({ gpu: false, build: 'never', skipDownload: true, logLevel: 'error' });
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
