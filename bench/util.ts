/**
 * Benchmark helpers: medians over repetitions, and the machine's roofline measured in the same
 * run (memory bandwidth by a large copy), so results are reported as ratios, not raw numbers.
 */
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { NativeNode, NativeTensor } from '../bindings.js';
import { CpuBackend } from '../lib/backend.js';
import { SHAPES, writeSyntheticLlama } from '../lib/tools/synthetic.js';
import { emptyTensor, tensorFromF32 } from '../lib/tensor.js';

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
export async function syntheticFile(shape: string, dtype: 'f32' | 'f16' | 'q8_0'): Promise<string> {
  const file = path.join(os.tmpdir(), `fuselm-synthetic-${shape}-${dtype}.gguf`);
  if (!existsSync(file)) {
    process.stderr.write(`writing ${file} ...\n`);
    await writeSyntheticLlama(file + '.tmp', SHAPES[shape], dtype);
    await rename(file + '.tmp', file);
  }
  return file;
}

/** The tensors a row-wise op is benchmarked on: x and out [T, D], a weight and a bias [D]. */
export interface RowOpTensors {
  x: NativeTensor;
  w: NativeTensor;
  b: NativeTensor;
  out: NativeTensor;
}

/**
 * A row-wise op (norms, biases, activations) at D = 2048 and 4096, T = 1 (decode) and 64
 * (prefill), 1 and 2 threads. A graph holds `reps` copies of the node so the per-run call
 * overhead does not hide a kernel of about a microsecond; seconds are per op.
 */
export async function benchRowOp(name: string, node: (t: RowOpTensors) => NativeNode, bytes: (T: number, D: number) => number): Promise<BenchResult[]> {
  await measuredCopyBandwidth(); // first, so its buffers are not collected mid-timing
  const out: BenchResult[] = [];
  for (const threads of [1, 2]) {
    const be = new CpuBackend({ threads });
    for (const D of [2048, 4096]) {
      for (const T of [1, 64]) {
        const reps = T === 1 ? 64 : 8;
        const t: RowOpTensors = {
          x: tensorFromF32('f32', [T, D], new Float32Array(T * D).map((_, i) => Math.sin(i))),
          w: tensorFromF32('f32', [D], new Float32Array(D).map((_, i) => 1 + 0.001 * i)),
          b: tensorFromF32('f32', [D], new Float32Array(D).map((_, i) => 0.01 * Math.cos(i))),
          out: emptyTensor('f32', [T, D]),
        };
        const n = node(t);
        const g = be.graph(Array.from({ length: reps }, () => n), T);
        const seconds = (await timeIt(() => g.run(T, 0))) / reps;
        out.push(await finish({ name: `${name} [${T}x${D}] ${threads}t`, seconds, bytes: bytes(T, D) }));
        g.dispose();
        for (const x of Object.values(t)) x.free();
      }
    }
    be.dispose();
  }
  return out;
}
