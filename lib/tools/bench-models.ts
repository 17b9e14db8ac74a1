/**
 * The synthetic models benchmarks write (GBs at TinyLlama shape) live in one folder, reused
 * across runs: $FUSELM_BENCH_DIR, default os.tmpdir()/fuselm-bench. Each is written beside its
 * name and renamed when whole, so a killed run never leaves a half model that looks finished.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SHAPES, type SyntheticLlamaType, writeSyntheticLlama } from './synthetic.js';

export function benchModelDir(): string {
  return process.env.FUSELM_BENCH_DIR || path.join(os.tmpdir(), 'fuselm-bench');
}

/** benchModelDir()/name, made by `write` unless it is already there (saying so on stderr). */
export async function benchModel(name: string, write: (file: string) => Promise<void>): Promise<string> {
  const dir = benchModelDir();
  const file = path.join(dir, name);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  process.stderr.write(`writing ${file} (kept for later runs) ...\n`);
  const part = `${file}.${process.pid}.part`;
  try {
    await write(part);
    await rename(part, file);
  } finally {
    await rm(part, { force: true });
  }
  return file;
}

/** The random-weight llama of a published shape (SHAPES) in a weight type. */
export function syntheticBenchModel(shape: string, dtype: SyntheticLlamaType): Promise<string> {
  return benchModel(`synthetic-${shape}-${dtype}.gguf`, (file) => writeSyntheticLlama(file, SHAPES[shape], dtype));
}
