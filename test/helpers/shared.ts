/** Locating ../shared (reference models and tokenizer data) and skipping visibly without it. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The shared data folder, a sibling of the repository root. */
export const SHARED = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared');

/** Absolute path of a file under ../shared. */
export function sharedPath(...parts: string[]): string {
  return path.join(SHARED, ...parts);
}

/** In a mocha hook or test: skip, saying which files are missing, unless all of them exist. */
export function requireFiles(ctx: Mocha.Context, ...files: string[]): void {
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length) {
    console.log(`      skipped: not found: ${missing.join(', ')}`);
    ctx.skip();
  }
}

/** requireFiles for paths relative to ../shared. */
export function requireShared(ctx: Mocha.Context, ...rel: string[]): void {
  requireFiles(ctx, ...rel.map((r) => sharedPath(r)));
}

export function readSharedJson<T = any>(rel: string): T {
  return JSON.parse(readFileSync(sharedPath(rel), 'utf8')) as T;
}
