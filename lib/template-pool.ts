/**
 * Runs chat template renders in one shared worker thread (template-worker.ts), started on first
 * use and unref'd while idle. A render past its time budget terminates the worker (the next
 * render starts a fresh one) and rejects with TemplateBudgetExceeded; so does one that runs the
 * worker out of its memory limit. Where a worker cannot be used (variables that do not clone,
 * a worker that fails to start), renderInWorker resolves undefined and the caller renders on
 * its own thread, under the same budget.
 */
import type { Worker } from 'node:worker_threads';
import { startWorker } from './worker.js';
import { type RenderRequest, TemplateBudgetExceeded, TemplateRaised } from './jinja-env.js';

/** The worker's heap limit: a template that builds more than this is stopped. */
const WORKER_HEAP_MB = 512;
/** Time for a fresh worker to start and parse the template, on top of the render budget. */
const STARTUP_GRACE_MS = 5000;

interface Pending {
  resolve: (text: string | undefined) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  request: RenderRequest;
}

let worker: Worker | undefined;
let broken = false;
let nextId = 0;
const pending = new Map<number, Pending>();

function settleAll(f: (p: Pending) => void): void {
  const all = [...pending.values()];
  pending.clear();
  for (const p of all) {
    clearTimeout(p.timer);
    f(p);
  }
}

function start(): Worker | undefined {
  if (worker) return worker;
  if (broken) return undefined;
  let w: Worker;
  try {
    w = startWorker('template-worker', { resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
  } catch {
    broken = true;
    return undefined;
  }
  let started = false;
  w.on('message', (m: { id: number; text?: string; error?: { kind: string; message: string } }) => {
    started = true;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    clearTimeout(p.timer);
    if (pending.size === 0) w.unref();
    if (m.error === undefined) p.resolve(m.text!);
    else if (m.error.kind === 'raised') p.reject(new TemplateRaised(m.error.message));
    else if (m.error.kind === 'budget') p.reject(new TemplateBudgetExceeded(m.error.message));
    else p.reject(new Error(m.error.message));
  });
  w.on('error', (e: Error & { code?: string }) => {
    if (worker === w) worker = undefined;
    if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      settleAll((p) => p.reject(new TemplateBudgetExceeded(`the template ran out of the render worker's ${WORKER_HEAP_MB} MB`)));
      return;
    }
    // a worker that cannot run at all (its module not found): render on the caller's thread
    if (!started) broken = true;
    settleAll((p) => p.resolve(undefined));
  });
  w.on('exit', () => {
    if (worker === w) worker = undefined;
    settleAll((p) => p.resolve(undefined));
  });
  worker = w;
  return w;
}

/** Renders in the worker; undefined where the worker cannot take this request (render it in-thread). */
export function renderInWorker(request: RenderRequest): Promise<string | undefined> {
  const w = start();
  if (!w) return Promise.resolve(undefined);
  const id = nextId++;
  return new Promise<string | undefined>((resolve, reject) => {
    const timer = setTimeout(() => {
      // past the budget (the worker checks it too; this catches a render stuck inside one step)
      pending.delete(id);
      if (worker === w) worker = undefined;
      const others = [...pending.values()];
      pending.clear();
      void w.terminate();
      for (const p of others) (clearTimeout(p.timer), p.resolve(undefined));
      reject(new TemplateBudgetExceeded(`the template ran for more than ${request.budget.timeMs} ms`));
    }, request.budget.timeMs + STARTUP_GRACE_MS);
    pending.set(id, { resolve, reject, timer, request });
    try {
      w.postMessage({ id, request });
      w.ref();
    } catch {
      // variables that do not clone (functions): in-thread
      pending.delete(id);
      clearTimeout(timer);
      resolve(undefined);
    }
  });
}
