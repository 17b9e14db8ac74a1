/**
 * `fuselm bench kernels`: every CPU op at a TinyLlama/Llama-3-sized shape, timed in graphs of
 * repeated ops (so the per-call overhead does not hide a microsecond kernel), medians over
 * samples; each reported as GB/s against the copy bandwidth measured in the same run, or as
 * GFLOP/s against the best GEMM of the run (the compute roofline this machine shows).
 */
import type { NativeDType, NativeNode } from '../../bindings.js';
import { CpuBackend, ops } from '../backend.js';
import { timeIt } from './bench.js';
import { emptyTensor, tensorFromF32, tensorFromI32 } from '../tensor.js';

export interface KernelResult {
  op: string;
  seconds: number;
  gbps?: number;
  gflops?: number;
  /** Of the measured copy bandwidth (memory-bound ops) or the best GEMM (compute-bound ones). */
  rooflineShare: number;
}

export interface KernelBenchReport {
  threads: number;
  copyGBps: number;
  peakGflops: number;
  kernels: KernelResult[];
}

const fill = (n: number) => new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * 0.1);

interface Case {
  op: string;
  rows: number;
  pos?: number;
  /** The node (repeated `reps` times in one graph) and what one op moves or computes. */
  make: () => { node: NativeNode; bytes?: number; flops?: number };
  reps: number;
  /** Each repetition on its own data, at least 128 MiB in all, so it streams from memory, not cache. */
  fromMemory?: boolean;
}

const matvec = (dt: NativeDType, K: number, N: number): Case => ({
  op: `matvec ${dt} ${N}x${K}`,
  rows: 1,
  reps: 1,
  fromMemory: true,
  make: () => {
    const w = tensorFromF32(dt, [N, K], fill(N * K));
    return { node: ops.matmul(emptyTensor('f32', [1, N]), tensorFromF32('f32', [1, K], fill(K)), w), bytes: w.nbytes };
  },
});

const gemm = (dt: NativeDType, T: number, K: number, N: number): Case => ({
  op: `matmul ${dt} T=${T} ${N}x${K}`,
  rows: T,
  reps: 1,
  make: () => ({ node: ops.matmul(emptyTensor('f32', [T, N]), tensorFromF32('f32', [T, K], fill(T * K)), tensorFromF32(dt, [N, K], fill(N * K))), flops: 2 * T * K * N }),
});

const CASES: Case[] = [
  matvec('f32', 2048, 5632),
  matvec('f16', 2048, 5632),
  matvec('bf16', 2048, 5632),
  matvec('q8_0', 2048, 5632),
  gemm('f32', 64, 2048, 2048),
  gemm('f16', 64, 2048, 2048),
  gemm('q8_0', 64, 2048, 2048),
  { op: 'rms_norm 64x4096', rows: 64, reps: 16, make: () => ({ node: ops.rmsNorm(emptyTensor('f32', [64, 4096]), tensorFromF32('f32', [64, 4096], fill(64 * 4096)), tensorFromF32('f32', [4096], fill(4096)), 1e-5), bytes: 2 * 64 * 4096 * 4 }) },
  { op: 'add 64x4096', rows: 64, reps: 16, make: () => ({ node: ops.add(emptyTensor('f32', [64, 4096]), tensorFromF32('f32', [64, 4096], fill(64 * 4096)), tensorFromF32('f32', [64, 4096], fill(64 * 4096))), bytes: 3 * 64 * 4096 * 4 }) },
  { op: 'swiglu 64x5632', rows: 64, reps: 8, make: () => ({ node: ops.swiglu(emptyTensor('f32', [64, 5632]), tensorFromF32('f32', [64, 5632], fill(64 * 5632)), tensorFromF32('f32', [64, 5632], fill(64 * 5632))), bytes: 3 * 64 * 5632 * 4 }) },
  { op: 'rope 64x32x128', rows: 64, reps: 16, pos: 100, make: () => ({ node: ops.rope(tensorFromF32('f32', [64, 4096], fill(64 * 4096)), { nHeads: 32, headDim: 128, thetaBase: 10000 }), bytes: 2 * 64 * 4096 * 4 }) },
  {
    op: 'attention decode 32/8x128 ctx 4096',
    rows: 1,
    reps: 1,
    fromMemory: true,
    pos: 4095,
    make: () => ({
      node: ops.attention(emptyTensor('f32', [1, 4096]), tensorFromF32('f32', [1, 4096], fill(4096)), tensorFromF32('f32', [4096, 1024], fill(4096 * 1024)), tensorFromF32('f32', [4096, 1024], fill(4096 * 1024)), { nHeads: 32, nKvHeads: 8, headDim: 128, scale: 1 / Math.sqrt(128) }),
      bytes: 2 * 4096 * 1024 * 4,
    }),
  },
  {
    op: 'attention prefill 32/8x128 T=128',
    rows: 128,
    reps: 1,
    make: () => ({
      node: ops.attention(emptyTensor('f32', [128, 4096]), tensorFromF32('f32', [128, 4096], fill(128 * 4096)), tensorFromF32('f32', [128, 1024], fill(128 * 1024)), tensorFromF32('f32', [128, 1024], fill(128 * 1024)), { nHeads: 32, nKvHeads: 8, headDim: 128, scale: 1 / Math.sqrt(128) }),
      flops: 4 * 32 * 128 * ((128 + 1) / 2) * 128,
    }),
  },
  { op: 'embedding q8_0 64x2048', rows: 64, reps: 8, make: () => ({ node: ops.embedding(emptyTensor('f32', [64, 2048]), tensorFromF32('q8_0', [32000, 2048], fill(32000 * 2048)), tensorFromI32([64], Int32Array.from({ length: 64 }, (_, i) => i * 401))), bytes: 64 * 2048 * (4 + 34 / 32) }) },
  { op: 'kv_store 64x1024', rows: 64, reps: 16, pos: 1000, make: () => ({ node: ops.kvStore(emptyTensor('f32', [4096, 1024]), tensorFromF32('f32', [64, 1024], fill(64 * 1024))), bytes: 2 * 64 * 1024 * 4 }) },
];

/**
 * Bytes per second (read + write) of a 256 MiB copy spread over the same threads, made by the
 * kv_store op (a memcpy in 1 MiB chunks per thread): the memory roofline of this run.
 */
async function copyBandwidth(be: CpuBackend): Promise<number> {
  const rows = 65536, W = 1024;
  const src = emptyTensor('f32', [rows, W]), dst = emptyTensor('f32', [rows, W]);
  const g = be.graph([ops.kvStore(dst, src)], rows);
  try {
    return (2 * rows * W * 4) / (await timeIt(() => g.run(rows, 0), { reps: 5, minSeconds: 0.2 }));
  } finally {
    g.dispose();
    src.free();
    dst.free();
  }
}

export async function benchKernels(opts: { threads?: number; filter?: string } = {}): Promise<KernelBenchReport> {
  const be = new CpuBackend({ threads: opts.threads });
  const copy = await copyBandwidth(be);
  const raw: Array<{ op: string; seconds: number; bytes?: number; flops?: number }> = [];
  try {
    for (const c of CASES) {
      if (opts.filter && !c.op.includes(opts.filter)) continue;
      const first = c.make();
      const { bytes, flops } = first;
      const reps = c.fromMemory ? Math.max(2, Math.ceil((128 << 20) / bytes!)) : c.reps;
      const nodes = [first.node, ...Array.from({ length: reps - 1 }, () => (c.fromMemory ? c.make().node : first.node))];
      const g = be.graph(nodes, c.rows);
      try {
        raw.push({ op: c.op, seconds: (await timeIt(() => g.run(c.rows, c.pos ?? 0), { minSeconds: 0.03 })) / reps, bytes, flops });
      } finally {
        g.dispose();
      }
    }
  } finally {
    be.dispose();
  }
  const peak = Math.max(1e-9, ...raw.filter((r) => r.op.startsWith('matmul') && r.flops).map((r) => r.flops! / r.seconds / 1e9));
  const kernels = raw.map((r): KernelResult => {
    const gbps = r.bytes ? r.bytes / r.seconds / 1e9 : undefined;
    const gflops = r.flops ? r.flops / r.seconds / 1e9 : undefined;
    return { op: r.op, seconds: r.seconds, gbps, gflops, rooflineShare: gbps !== undefined ? (gbps * 1e9) / copy : gflops! / peak };
  });
  return { threads: be.threads, copyGBps: copy / 1e9, peakGflops: peak, kernels };
}
