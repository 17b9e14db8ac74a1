/**
 * One load measurement in a fresh process (spawned by load.bench.ts): loads a GGUF with fuselm
 * or llama.cpp (node-llama-cpp), mapped or read, and prints one JSON line: the load time (the
 * model and its context / state, ready to run), resident memory before the load, after it and
 * after a short greedy generation (/proc/self/status: VmRSS and its anonymous and file-backed
 * parts), that generation's time and a second one's (the same prompt again, so first-touch
 * costs show as the difference), and the major page faults (pages read from disk on access)
 * during the load and during the first generation.
 * Arguments: engine ('fuselm' | 'llama.cpp'), file, mmap ('1' | '0'), threads, contextSize.
 */
import { readFileSync } from 'node:fs';
import { loadModel } from '../lib/index.js';
import { native } from '../lib/native.js';
import { benchPrompt } from '../lib/tools/bench.js';
import { loadLlamaCpp } from './peers/llama-cpp.js';

const [engine, file, mmapArg, threadsArg, ctxArg] = process.argv.slice(2);
const useMmap = mmapArg === '1', threads = Number(threadsArg), contextSize = Number(ctxArg);
const PROMPT = 16, GEN = 16;

/** Resident MB: total, anonymous, file-backed. */
function rss(): { total: number; anon: number; file: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  const mb = (k: number) => Math.round(k / 1024);
  return { total: mb(kb('VmRSS')), anon: mb(kb('RssAnon')), file: mb(kb('RssFile')) };
}

const majorFaults = () => process.resourceUsage().majorPageFault;

async function fuselm() {
  native(); // the addon loaded before the baseline
  const before = rss();
  const f0 = majorFaults();
  const t0 = performance.now();
  const model = await loadModel(file, { threads, contextSize, kvType: 'f16', useMmap });
  const loadSeconds = (performance.now() - t0) / 1000;
  const afterLoad = rss();
  const f1 = majorFaults();
  const gen = async () => {
    const t = performance.now();
    await model.clearCache();
    await model.generate(benchPrompt(PROMPT, model.config.vocabSize, model.tokenizer.bos), { maxTokens: GEN, ignoreEog: true });
    return (performance.now() - t) / 1000;
  };
  const genSeconds = await gen();
  const afterGen = rss();
  const faults = { load: f1 - f0, gen: majorFaults() - f1 };
  const gen2Seconds = await gen();
  await model.dispose();
  return { loadSeconds, genSeconds, gen2Seconds, before, afterLoad, afterGen, faults };
}

async function llamaCpp() {
  const llama = await loadLlamaCpp();
  if (!llama) throw new Error('the llama.cpp peer is not installed');
  const before = rss();
  const f0 = majorFaults();
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: file, useMmap });
  const ctx = await model.createContext({ contextSize, batchSize: 512, threads, experimentalKvCacheKeyType: 'F16', experimentalKvCacheValueType: 'F16' });
  const seq = ctx.getSequence();
  const loadSeconds = (performance.now() - t0) / 1000;
  const afterLoad = rss();
  const f1 = majorFaults();
  const gen = async () => {
    const t = performance.now();
    await seq.clearHistory();
    let n = 0;
    for await (const _ of seq.evaluate(benchPrompt(PROMPT, 259), { temperature: 0 })) if (++n >= GEN) break;
    return (performance.now() - t) / 1000;
  };
  const genSeconds = await gen();
  const afterGen = rss();
  const faults = { load: f1 - f0, gen: majorFaults() - f1 };
  const gen2Seconds = await gen();
  await ctx.dispose();
  await model.dispose();
  return { loadSeconds, genSeconds, gen2Seconds, before, afterLoad, afterGen, faults };
}

const r = engine === 'fuselm' ? await fuselm() : await llamaCpp();
process.stdout.write(JSON.stringify(r) + '\n');
process.exit(0);
