/**
 * encodeAsync(): large texts encoded off the JS thread. A tokenizer loaded from a file (a
 * tokenizer.json, a GGUF) gets encodeAsync, which encodes texts of ASYNC_ENCODE_MIN_CHARS or
 * more in a shared worker thread holding a copy of the tokenizer built from the same file (built
 * once per file, on first use), and smaller ones in place. Where the worker cannot run, it
 * encodes in place. Same ids as encode(): the copy is the same tokenizer.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../worker.js';
import { FuselmError, type FuselmErrorCode } from '../errors.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

/** Where a tokenizer can be built again (in the worker). */
export type TokenizerSource = ({ kind: 'json'; file: string; configFile?: string } | { kind: 'gguf'; path: string } | { kind: 'vocab-merges'; dir: string }) & {
  /**
   * Size and mtime of each file the tokenizer was read from, when it was loaded: the worker builds
   * its copy only from the same files (a file changed since would give other ids: then the text
   * is encoded in place).
   */
  stamps?: Array<[file: string, stamp: string]>;
};

/** A file's size and mtime, or 'absent'. */
export function fileStamp(file: string): string {
  try {
    const st = statSync(file);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return 'absent';
  }
}

/** Texts shorter than this are encoded in place (under a few ms). */
export const ASYNC_ENCODE_MIN_CHARS = 64 * 1024;

interface Pending {
  resolve: (ids: number[] | undefined) => void;
  reject: (e: Error) => void;
}

let worker: Worker | undefined;
let broken = false;
let nextId = 0;
const pending = new Map<number, Pending>();

function start(): Worker | undefined {
  if (worker) return worker;
  if (broken) return undefined;
  let w: Worker;
  try {
    w = startWorker('tokenizer/encode-worker');
  } catch {
    broken = true;
    return undefined;
  }
  let started = false;
  w.on('message', (m: { id: number; ids?: Int32Array; error?: { code?: string; message: string } }) => {
    started = true;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0) w.unref();
    if (m.ids) p.resolve(toArray(m.ids));
    else if (m.error?.code?.startsWith('E_')) p.reject(new FuselmError(m.error.code as FuselmErrorCode, m.error.message));
    // the copy could not be built (a file changed or gone): encode in place
    else p.resolve(undefined);
  });
  const fail = () => {
    if (worker === w) worker = undefined;
    if (!started) broken = true;
    const all = [...pending.values()];
    pending.clear();
    for (const p of all) p.resolve(undefined);
  };
  w.on('error', fail);
  w.on('exit', fail);
  worker = w;
  return w;
}

/** An Int32Array as a number[] (a plain loop: Array.from takes several times as long on millions of ids). */
function toArray(ids: Int32Array): number[] {
  const out = new Array<number>(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = ids[i];
  return out;
}

/** The files a tokenizer is built from. */
function sourceFiles(source: TokenizerSource): string[] {
  if (source.kind === 'gguf') return [source.path];
  if (source.kind === 'vocab-merges') return ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'generation_config.json'].map((f) => path.join(source.dir, f));
  const dir = path.dirname(source.file);
  return [source.file, source.configFile ?? path.join(dir, 'tokenizer_config.json'), path.join(dir, 'generation_config.json')];
}

/** Gives `tok` an encodeAsync() that uses the worker for large texts. Returns tok. */
export function withAsyncEncode<T extends Tokenizer>(tok: T, source: TokenizerSource): T {
  const files = sourceFiles(source);
  source = { ...source, stamps: files.map((f) => [f, fileStamp(f)]) };
  const encodeAsync = async (text: string, opts: EncodeOptions = {}): Promise<number[]> => {
    if (typeof text !== 'string' || text.length < ASYNC_ENCODE_MIN_CHARS || typeof opts !== 'object' || opts === null) return tok.encode(text, opts);
    const w = start();
    if (!w) return tok.encode(text, opts);
    const id = nextId++;
    const ids = await new Promise<number[] | undefined>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ id, source, text, opts: { addSpecial: opts.addSpecial, parseSpecial: opts.parseSpecial } });
    });
    return ids ?? tok.encode(text, opts);
  };
  Object.defineProperty(tok, 'encodeAsync', { value: encodeAsync, enumerable: false, configurable: true });
  return tok;
}
