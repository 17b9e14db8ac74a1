/** Shared bits of the tokenizer tests: locating ../shared data and skipping visibly without it. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The shared data folder, a sibling of the repository root. */
export const SHARED = fileURLToPath(new URL('../../../shared', import.meta.url));
export const VOCAB_DIR = path.join(SHARED, 'tokenizers', 'llama.cpp-vocab');

export function sharedPath(...parts: string[]): string {
  return path.join(SHARED, ...parts);
}

/** In a mocha hook or test: skip, saying which file is missing, unless all of them exist. */
export function requireFiles(ctx: Mocha.Context, ...files: string[]): void {
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length > 0) {
    console.log(`      skipped: not found: ${missing.join(', ')}`);
    ctx.skip();
  }
}

/** The llama.cpp conformance vectors of one vocab: [text, expected ids] in file order. */
export function readVocabVectors(vocab: string): Array<[string, number[]]> {
  const base = path.join(VOCAB_DIR, `ggml-vocab-${vocab}.gguf`);
  const inputs = readFileSync(`${base}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  inputs.pop(); // the file ends with the separator
  const lines = readFileSync(`${base}.out`, 'utf8').split('\n');
  lines.pop();
  if (lines.length !== inputs.length) throw new Error(`${base}: ${inputs.length} inputs but ${lines.length} output lines`);
  return inputs.map((text, i) => [text, lines[i].trim() === '' ? [] : lines[i].trim().split(' ').map(Number)]);
}

/** Small seeded PRNG (mulberry32) so random tests are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
