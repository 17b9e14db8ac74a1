/** Hostile-input tests: model folders made from the tiny shared ones, and error checks. */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sharedPath } from '../helpers/shared.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

/** The tiny shared llama (vocab 11, 2 layers) as a Hugging Face folder. */
export const TINY_LLAMA = 'models/hf/neural-api-tiny-llama';

/** A temporary copy of ../shared/<from> with config.json patched and more files written. */
export function tinyFolder(patch: (cfg: any) => void = () => {}, files: Record<string, string | Uint8Array> = {}, from = TINY_LLAMA): string {
  const src = sharedPath(from);
  const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-hostile-'));
  for (const f of readdirSync(src)) if (f !== 'reference_logits.json') copyFileSync(path.join(src, f), path.join(dir, f));
  const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  patch(cfg);
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  for (const [name, data] of Object.entries(files)) writeFileSync(path.join(dir, name), data);
  return dir;
}

export function removeFolder(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Asserts that `p` rejects (or `f` throws) a FuselmError with `code`, its message matching `re`. */
export async function rejectsCode(p: Promise<unknown> | (() => unknown), code: string, re?: RegExp): Promise<any> {
  let err: any;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${code}, nothing was thrown`);
  assert.ok(err.name === 'FuselmError' || err.name === 'FormatError', `expected a FuselmError ${code}, got ${err.name}: ${err.message}`);
  assert.equal(err.code, code, err.message);
  if (re) assert.match(err.message, re);
  return err;
}

/** A small valid byte-level-less BPE tokenizer.json, with `patch` applied to a copy. */
export function tokJson(patch: (j: any) => void = () => {}): any {
  const j: any = {
    model: { type: 'BPE', vocab: { '▁': 0, a: 1, b: 2, '▁a': 3, '</s>': 4 }, merges: ['▁ a'] },
    added_tokens: [{ id: 4, content: '</s>', special: true }],
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' },
  };
  patch(j);
  return j;
}


/** Runs fn while a 2 ms interval timer measures the longest gap between its ticks (the event loop's worst stall). */
export async function loopGap<T>(fn: () => Promise<T>): Promise<{ result: T; gap: number }> {
  let last = performance.now();
  let gap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last - 2);
    last = now;
  }, 2);
  try {
    const result = await fn();
    gap = Math.max(gap, performance.now() - last - 2);
    return { result, gap };
  } finally {
    clearInterval(timer);
  }
}
