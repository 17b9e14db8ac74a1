/**
 * Tokenizer encode speed, MB/s of UTF-8 input, on "cold" text: ~3 MB of varied English prose
 * and code (TypeScript's own lib .d.ts files, read once, never repeated), GPT-2's vocabulary,
 * side by side with tiktoken (Rust compiled to WASM) and gpt-tokenizer (pure JS) in the same run.
 * Every encoder must produce the same ids (checked), so the comparison is like for like.
 * Goal (ARCHITECTURE.md): >= 2x tiktoken, >= 1x gpt-tokenizer. Needs ../shared (the GPT-2 tokenizer.json).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../lib/tokenizer/load.js';
import { median, type BenchResult } from './util.js';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const gpt2 = path.resolve(root, '../shared/tokenizers/hf/gpt2/tokenizer.json');

/** ~3 MB of TypeScript's lib .d.ts files (also the charsmap bench's text). */
export function corpus(): string {
  const dir = path.join(root, 'node_modules/typescript/lib');
  return readdirSync(dir)
    .filter((f) => /^lib\..*\.d\.ts$/.test(f))
    .sort()
    .map((f) => readFileSync(path.join(dir, f), 'utf8'))
    .join('\n');
}

/** The median seconds of `reps` calls of fn, and its last result. */
export function time<T>(fn: () => T, reps = 3): { seconds: number; out: T } {
  let out!: T;
  const s: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    out = fn();
    s.push((performance.now() - t0) / 1000);
  }
  return { seconds: median(s), out };
}

export async function run(): Promise<BenchResult[]> {
  if (!existsSync(gpt2)) {
    process.stderr.write(`tokenizer bench: skipped (${gpt2} not found)\n`);
    return [];
  }
  const text = corpus();
  const mb = Buffer.byteLength(text) / 1e6;
  // fresh tokenizers each, so no encoder starts with a warm cache from another's run
  const ours = await loadTokenizer(gpt2);
  const tiktoken = require('tiktoken').get_encoding('gpt2');
  const { encode: gptTokenizer } = await import('gpt-tokenizer/encoding/r50k_base');
  const runs = {
    fuselm: time(() => ours.encode(text), 1), // cold: the first pass, no cached pre-tokens
    tiktoken: time(() => tiktoken.encode(text, 'all'), 1),
    'gpt-tokenizer': time(() => gptTokenizer(text, { allowedSpecial: 'all' }), 1),
  };
  tiktoken.free();
  const ref = Array.from(runs.fuselm.out);
  const out: BenchResult[] = [];
  for (const [name, r] of Object.entries(runs)) {
    const same = r.out.length === ref.length && Array.from(r.out).every((v, i) => v === ref[i]);
    out.push({ name: `gpt-2 encode ${name} ${mb.toFixed(1)} MB`, seconds: r.seconds, mbPerSecond: mb / r.seconds, sameIds: same });
  }
  const [f, t, g] = out.map((r) => r.mbPerSecond as number);
  out[0].vsTiktoken = f / t;
  out[0].vsGptTokenizer = f / g;
  return out;
}
