/**
 * `fuselm bench kernels` (and `npm run bench -- kernels`): the case table's bench cases
 * (lib/ops/cases.ts) on a backend, each reported as GB/s against the copy bandwidth measured
 * on the same backend in the same run, or as GFLOP/s against the best GEMM of the run (the
 * compute roofline this machine shows); seconds are medians per op.
 */
import { type Backend, CpuBackend, CudaBackend } from '../backend.js';
import { CASES, OP_TABLE, type OpName } from '../ops/table.js';
import { copyBandwidth, timeCase } from '../ops/run.js';

export interface KernelResult {
  op: string;
  seconds: number;
  gbps?: number;
  gflops?: number;
  /** Of the measured copy bandwidth (memory-bound ops) or the best GEMM (compute-bound ones). */
  rooflineShare: number;
}

export interface KernelBenchReport {
  device: string;
  threads?: number;
  copyGBps: number;
  peakGflops: number;
  kernels: KernelResult[];
}

export interface KernelBenchOptions {
  /** CPU threads (default: the physical cores). */
  threads?: number;
  /** Only cases whose name contains this. */
  filter?: string;
  /** 'cpu' (default), 'cuda', or 'cuda-emulated' (proves the path, times nothing useful). */
  device?: 'cpu' | 'cuda' | 'cuda-emulated';
}

export async function benchKernels(opts: KernelBenchOptions = {}): Promise<KernelBenchReport> {
  const device = opts.device ?? 'cpu';
  const be: Backend = device === 'cpu' ? new CpuBackend({ threads: opts.threads }) : new CudaBackend({ emulated: device === 'cuda-emulated' });
  const raw: Array<{ op: string; seconds: number; bytes?: number; flops?: number }> = [];
  try {
    const copy = await copyBandwidth(be);
    for (const op of Object.keys(CASES) as OpName[]) {
      if (device !== 'cpu' && 'noCuda' in OP_TABLE[op]) continue;
      for (const c of CASES[op].bench) {
        if (opts.filter && !c.name.includes(opts.filter)) continue;
        raw.push({ op: c.name, seconds: await timeCase(c, be), bytes: c.bytes, flops: c.flops });
      }
    }
    const peak = Math.max(1e-9, ...raw.filter((r) => r.op.startsWith('matmul') && r.flops).map((r) => r.flops! / r.seconds / 1e9));
    const kernels = raw.map((r): KernelResult => {
      const gbps = r.bytes ? r.bytes / r.seconds / 1e9 : undefined;
      const gflops = r.flops ? r.flops / r.seconds / 1e9 : undefined;
      return { op: r.op, seconds: r.seconds, gbps, gflops, rooflineShare: gbps !== undefined ? (gbps * 1e9) / copy : gflops! / peak };
    });
    return { device, threads: be instanceof CpuBackend ? be.threads : undefined, copyGBps: copy / 1e9, peakGflops: peak, kernels };
  } finally {
    be.dispose();
  }
}
