/** Locating ../shared (reference models and tokenizer data) and skipping visibly without it. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SHARED = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared');

/** Absolute path of a file under ../shared. */
export function sharedPath(rel: string): string {
  return path.join(SHARED, rel);
}

/** In a mocha hook or test: skip (saying why) unless every file exists under ../shared. */
export function requireShared(ctx: Mocha.Context, ...rel: string[]): void {
  const missing = rel.filter((r) => !existsSync(sharedPath(r)));
  if (missing.length) {
    console.log(`      skipped: ${missing.map(sharedPath).join(', ')} not found`);
    ctx.skip();
  }
}

export function readSharedJson<T = any>(rel: string): T {
  return JSON.parse(readFileSync(sharedPath(rel), 'utf8')) as T;
}
