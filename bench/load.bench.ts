/**
 * Load time and resident memory, fuselm beside llama.cpp (node-llama-cpp's CPU build) on the same
 * GGUF files in the same run: TinyLlama-1.1B-shaped synthetic files with every matrix Q4_K, and
 * with every matrix q8_0 (FUSELM_BENCH_DTYPES picks others), each engine with the file mapped
 * (mmap, both engines' default) and read into memory of its own. Every measurement is a fresh
 * child process (bench/load-child.ts): load = the model and its context / state (contextSize 512,
 * F16 KV cache), ready to run; RSS (total, anonymous, file-backed) before the load, after it and
 * after a 16-token prompt and 16 greedy tokens at 1 thread, that generation's time and a
 * second one's (first-touch costs are the difference); the cold run's major page faults
 * (pages read from disk on access) during the load and during that generation. "cold" runs first drop the file's
 * pages from the page cache (dd iflag=nocache: POSIX_FADV_DONTNEED; pages another process maps
 * stay, so it is cold-ish: fincore's count of cached bytes just before is reported); "warm" runs
 * follow a run that read the whole file. Warm figures are medians of FUSELM_BENCH_REPS (3) runs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WeightType } from '../lib/tools/synthetic.js';
import { installLlamaCppPeer } from '../scripts/llama-cpp-peer.js';
import { type BenchResult, median } from './util.js';
import { syntheticBenchModel } from '../lib/tools/bench-models.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'load-child.ts');
const CONTEXT = 512, THREADS = 1;

interface Rss { total: number; anon: number; file: number }
interface ChildResult { loadSeconds: number; genSeconds: number; gen2Seconds: number; before: Rss; afterLoad: Rss; afterGen: Rss; faults: { load: number; gen: number } }

function child(engine: string, file: string, mmap: boolean): ChildResult {
  const r = spawnSync(process.execPath, [...process.execArgv, CHILD, engine, file, mmap ? '1' : '0', String(THREADS), String(CONTEXT)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`load bench child (${engine} ${file}) failed: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

/** Drops the file's pages from the page cache (as far as an unprivileged process can); the bytes still cached after. */
function dropCache(file: string): number {
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
  return cachedBytes(file);
}

function cachedBytes(file: string): number {
  try {
    return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
  } catch {
    return NaN; // fincore missing: not reported
  }
}

const mid = (rs: ChildResult[], f: (r: ChildResult) => number) => median(rs.map(f));

export async function run(): Promise<BenchResult[]> {
  const why = installLlamaCppPeer(); // the children load it; undefined when it is there
  if (why) process.stderr.write(`load bench: llama.cpp peer: ${why}; fuselm only\n`);
  const engines = why ? ['fuselm'] : ['fuselm', 'llama.cpp'];
  const reps = Number(process.env.FUSELM_BENCH_REPS ?? 3);
  const dtypes = (process.env.FUSELM_BENCH_DTYPES ?? 'q4_k,q8_0').split(',') as WeightType[];
  const out: BenchResult[] = [];
  for (const dtype of dtypes) {
    const file = await syntheticBenchModel('tinyllama-1.1b', dtype);
    const fileMB = Math.round(statSync(file).size / 2 ** 20);
    for (const mmap of [true, false])
      for (const engine of engines) {
        const cachedBefore = dropCache(file);
        const cold = child(engine, file, mmap);
        const warm = Array.from({ length: reps }, () => child(engine, file, mmap));
        const delta = (r: ChildResult, at: 'afterLoad' | 'afterGen', k: keyof Rss) => r[at][k] - r.before[k];
        out.push({
          name: `tinyllama-1.1b ${dtype} ${engine} ${mmap ? 'mmap' : 'read'}`,
          seconds: mid(warm, (r) => r.loadSeconds),
          fileMB,
          coldCachedMBBefore: Math.round(cachedBefore / 2 ** 20),
          coldLoadSeconds: cold.loadSeconds,
          coldGenSeconds: cold.genSeconds,
          coldGen2Seconds: cold.gen2Seconds,
          coldMajorFaultsLoad: cold.faults.load,
          coldMajorFaultsGen: cold.faults.gen,
          warmLoadSeconds: mid(warm, (r) => r.loadSeconds),
          warmGenSeconds: mid(warm, (r) => r.genSeconds),
          warmGen2Seconds: mid(warm, (r) => r.gen2Seconds),
          baseRssMB: mid(warm, (r) => r.before.total),
          // growth over the process's own baseline (runtime, addon, peer library)
          loadRssMB: mid(warm, (r) => delta(r, 'afterLoad', 'total')),
          loadRssAnonMB: mid(warm, (r) => delta(r, 'afterLoad', 'anon')),
          loadRssFileMB: mid(warm, (r) => delta(r, 'afterLoad', 'file')),
          genRssMB: mid(warm, (r) => delta(r, 'afterGen', 'total')),
          genRssAnonMB: mid(warm, (r) => delta(r, 'afterGen', 'anon')),
          genRssFileMB: mid(warm, (r) => delta(r, 'afterGen', 'file')),
        });
      }
  }
  return out;
}
