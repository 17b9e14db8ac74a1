/**
 * The synthetic models benchmarks write (GBs at TinyLlama shape) live in one folder, reused
 * across runs: $FUSELM_BENCH_DIR, default os.tmpdir()/fuselm-bench. Each is written beside its
 * name and renamed when whole, so a killed run never leaves a half model that looks finished.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type LlamaShape, SHAPES, type SyntheticExperts, type SyntheticLlamaType, writeSyntheticLlama } from './synthetic.js';

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

/**
 * A Mixtral-shaped random mixture of experts: TinyLlama-1.1B's attention and vocabulary, `layers`
 * layers of 8 experts of TinyLlama's MLP (5632 x 2048), 2 used per token. Few layers, so that
 * the file fits a shared machine (4 layers: 0.7 GB in Q4_K, 1.3 GB in q8_0).
 */
export const MOE_BENCH_SHAPE: LlamaShape & { experts: SyntheticExperts } = {
  ...SHAPES['tinyllama-1.1b'], nLayers: 4, experts: { count: 8, used: 2, ffn: 5632 },
};

export function syntheticMoeBenchModel(dtype: SyntheticLlamaType, layers = MOE_BENCH_SHAPE.nLayers): Promise<string> {
  const shape = { ...MOE_BENCH_SHAPE, nLayers: layers };
  return benchModel(`synthetic-moe-8x2-${layers}l-${dtype}.gguf`, (file) => writeSyntheticLlama(file, shape, dtype));
}
