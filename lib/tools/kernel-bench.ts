/**
 * `fuselm bench kernels` (and `npm run bench -- kernels`): the case table's bench cases
 * (lib/ops/table.ts) on a backend; seconds are medians per op. Each case's share of its roofline:
 *  - memory-bound cases (GB/s): of the bandwidth of the memory level the case's working set fits
 *    in (the bytes one timed run moves, all its nodes, or the bytes of the distinct tensors they
 *    touch if fewer: nodes sharing one tensor re-read it from cache; on the CPU the smallest
 *    data cache that holds it, L1d/L2/L3 from sysfs, else main memory;
 *    on CUDA main memory), measured in the same run: a copy on the same backend of half that
 *    level's size, copied again and again (main memory: 256 MiB once), or the fastest case of
 *    that level when one moves data faster than the copy (kernels with more reads than writes
 *    can). So a case that stays in L1 is held to L1's rate, not to main memory's, and no share
 *    exceeds 100 %. A level is never held to less than a larger one.
 *  - compute-bound cases (GFLOP/s): of the best GEMM of the run (the compute roofline this
 *    machine shows). A filtered run with compute-bound cases but no GEMM times the table's
 *    GEMM cases as well, for the roofline only (not reported).
 */
import { type Backend, CpuBackend, CudaBackend } from '../backend.js';
import { CASES, OP_TABLE, type OpName } from '../ops/table.js';
import { copyBandwidth, timeCase } from '../ops/run.js';
import { cpuDataCaches } from './cpu-caches.js';

export interface KernelResult {
  op: string;
  seconds: number;
  gbps?: number;
  gflops?: number;
  /** Memory-bound cases: the working set (see the file's comment), the memory level it fits in ... */
  workingSetBytes?: number;
  level?: string;
  /** ... and its bandwidth, GB/s. */
  ceilingGBps?: number;
  /** Of ceilingGBps (memory-bound ops) or of the best GEMM (compute-bound ones). */
  rooflineShare: number;
}

export interface KernelBenchReport {
  device: string;
  threads?: number;
  /** Main-memory copy bandwidth (256 MiB). */
  copyGBps: number;
  /** Each memory level's ceiling: how it was measured and GB/s (see the file's comment). */
  levels: { level: string; bytes?: number; copyGBps: number; ceilingGBps: number }[];
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
  /** Called before each case is timed: the cases done, all of them, and the next one's name. */
  onCase?: (done: number, total: number, name: string) => void;
}

export async function benchKernels(opts: KernelBenchOptions = {}): Promise<KernelBenchReport> {
  const device = opts.device ?? 'cpu';
  const be: Backend = device === 'cpu' ? new CpuBackend({ threads: opts.threads }) : new CudaBackend({ emulated: device === 'cuda-emulated' });
  const allCases = (Object.keys(CASES) as OpName[])
    .filter((op) => device === 'cpu' || !('noCuda' in OP_TABLE[op]))
    .flatMap((op) => CASES[op].bench);
  const cases = allCases.filter((c) => !opts.filter || c.name.includes(opts.filter));
  const raw: Array<{ op: string; seconds: number; bytes?: number; flops?: number; workingSet: number }> = [];
  try {
    const copy = await copyBandwidth(be);
    for (const [i, c] of cases.entries()) {
      opts.onCase?.(i, cases.length, c.name);
      const { seconds, nodes, tensorBytes } = await timeCase(c, be);
      raw.push({ op: c.name, seconds, bytes: c.bytes, flops: c.flops, workingSet: Math.min(tensorBytes, (c.bytes ?? 0) * nodes) });
    }
    opts.onCase?.(cases.length, cases.length, '');
    const isGemm = (c: { name: string; flops?: number }) => c.name.startsWith('matmul') && c.flops !== undefined;
    const gemmRates = raw.filter((r) => isGemm({ name: r.op, flops: r.flops })).map((r) => r.flops! / r.seconds / 1e9);
    if (!gemmRates.length && raw.some((r) => r.flops))
      for (const c of allCases.filter(isGemm)) gemmRates.push(c.flops! / (await timeCase(c, be)).seconds / 1e9);
    const peak = Math.max(...gemmRates);
    // the memory levels, smallest first, and which one each memory-bound case fits in
    const caches = device === 'cpu' ? cpuDataCaches() : [];
    const levelOf = (bytes: number) => caches.find((c) => bytes <= c.bytes)?.name ?? 'memory';
    const levels: KernelBenchReport['levels'] = [];
    for (const c of caches) levels.push({ level: c.name, bytes: c.bytes, copyGBps: (await copyBandwidth(be, c.bytes / 2)) / 1e9, ceilingGBps: 0 });
    levels.push({ level: 'memory', copyGBps: copy / 1e9, ceilingGBps: 0 });
    let floor = 0;
    for (const l of [...levels].reverse()) {
      const fastestCase = Math.max(0, ...raw.filter((r) => r.bytes && levelOf(r.workingSet) === l.level).map((r) => r.bytes! / r.seconds / 1e9));
      l.ceilingGBps = floor = Math.max(l.copyGBps, fastestCase, floor);
    }
    const kernels: KernelResult[] = [];
    for (const r of raw) {
      if (r.bytes) {
        const level = levels.find((l) => l.level === levelOf(r.workingSet))!;
        const gbps = r.bytes / r.seconds / 1e9;
        kernels.push({ op: r.op, seconds: r.seconds, gbps, workingSetBytes: r.workingSet, level: level.level, ceilingGBps: level.ceilingGBps, rooflineShare: gbps / level.ceilingGBps });
      } else {
        const gflops = r.flops! / r.seconds / 1e9;
        kernels.push({ op: r.op, seconds: r.seconds, gflops, rooflineShare: gflops / peak });
      }
    }
    return { device, threads: be instanceof CpuBackend ? be.threads : undefined, copyGBps: copy / 1e9, levels, peakGflops: peak, kernels };
  } finally {
    be.dispose();
  }
}
