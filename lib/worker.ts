/**
 * Starting fuselm's worker threads (template-worker, tokenizer/encode-worker) from a module URL
 * relative to this package's files: dist/*.js once built (or the dist/index.cjs bundle), or
 * lib/*.ts when run from the sources under tsx, whose loader a worker does not inherit: there
 * the worker first registers tsx (a development dependency) itself.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** `rel`: the worker's path from lib/ without extension ('template-worker', 'tokenizer/encode-worker'). */
export function startWorker(rel: string, opts: WorkerOptions = {}): Worker {
  const here = import.meta.url;
  // lib/worker.ts, dist/worker.js, or the CommonJS bundle dist/index.cjs: all one level below the root
  const url = new URL(`./${rel}${here.endsWith('.ts') ? '.ts' : '.js'}`, here);
  if (!here.endsWith('.ts')) return new Worker(url, opts);
  // (the ESM entry of tsx's API, found from the working directory: the repository's, in development)
  const boot = `import('tsx/esm/api').then((api) => api.register()).then(() => import(${JSON.stringify(url.href)}))`;
  return new Worker(boot, { ...opts, eval: true });
}
