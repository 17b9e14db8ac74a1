/**
 * Benchmark helpers: medians over repetitions, and the machine's roofline measured in the same
 * run (memory bandwidth by a large copy), so results are reported as ratios, not raw numbers.
 */
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SHAPES, type SyntheticLlamaType, writeSyntheticLlama } from '../lib/tools/synthetic.js';

export interface BenchResult {
  name: string;
  /** median seconds per call */
  seconds: number;
  /** bytes moved per call, for GB/s */
  bytes?: number;
  /** floating point ops per call, for GFLOP/s */
  flops?: number;
  gbps?: number;
  gflops?: number;
  /** share of the measured copy bandwidth */
  bandwidthShare?: number;
  [k: string]: unknown;
}

import { median, timeIt } from '../lib/tools/bench.js';

export { median, timeIt };

let copyBandwidth: number | undefined;
/** Bytes per second of a 256 MiB buffer copy (read + write counted), measured once per run. */
export async function measuredCopyBandwidth(): Promise<number> {
  if (copyBandwidth) return copyBandwidth;
  const n = 256 << 20;
  const src = Buffer.alloc(n, 1), dst = Buffer.alloc(n);
  const s = await timeIt(() => src.copy(dst), { reps: 5, minSeconds: 0.2 });
  copyBandwidth = (2 * n) / s;
  return copyBandwidth;
}

/** Fills in GB/s, GFLOP/s and the bandwidth share of a result. */
export async function finish(r: BenchResult): Promise<BenchResult> {
  if (r.bytes) {
    r.gbps = r.bytes / r.seconds / 1e9;
    r.bandwidthShare = r.bytes / r.seconds / (await measuredCopyBandwidth());
  }
  if (r.flops) r.gflops = r.flops / r.seconds / 1e9;
  return r;
}

/** The synthetic GGUF of a shape and dtype, written once into the OS temp dir. */
export async function syntheticFile(shape: string, dtype: SyntheticLlamaType): Promise<string> {
  const file = path.join(os.tmpdir(), `fuselm-synthetic-${shape}-${dtype}.gguf`);
  if (!existsSync(file)) {
    process.stderr.write(`writing ${file} ...\n`);
    await writeSyntheticLlama(file + '.tmp', SHAPES[shape], dtype);
    await rename(file + '.tmp', file);
  }
  return file;
}
