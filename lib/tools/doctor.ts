/**
 * A few-second self-check for `fuselm doctor`: every CPU op at the fastest kernel level this
 * machine has, against its plain reference, on seeded random data.
 */
import type { NativeDType, NativeImpl, NativeNode, NativeTensor } from '../../bindings.js';
import { CpuBackend, ops } from '../backend.js';
import { native } from '../native.js';
import { emptyTensor, readF32Rows, tensorFromF32, tensorFromI32 } from '../tensor.js';

export interface KernelCheck {
  op: string;
  impl: NativeImpl;
  /** ‖fast − reference‖ / ‖reference‖ */
  relError: number;
  tolerance: number;
  ok: boolean;
}

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

function relError(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / (den || 1));
}

interface Case {
  op: string;
  tolerance: number;
  rows: number;
  /** Builds the node on fresh tensors (the same data every call) and returns it with its output. */
  build: () => { node: NativeNode; out: NativeTensor; pos?: number };
}

const T = 7, D = 96, H = 4, KV = 2, HD = 24;
const matmulCase = (dtype: NativeDType, tolerance: number): Case => ({
  op: `matmul ${dtype}`,
  tolerance,
  rows: T,
  build: () => {
    const out = emptyTensor('f32', [T, 67]);
    return { node: ops.matmul(out, tensorFromF32('f32', [T, D], random(T * D, 1)), tensorFromF32(dtype, [67, D], random(67 * D, 2))), out };
  },
});

const CASES: Case[] = [
  { op: 'add', tolerance: 0, rows: T, build: () => { const out = emptyTensor('f32', [T, D]); return { node: ops.add(out, tensorFromF32('f32', [T, D], random(T * D, 1)), tensorFromF32('f32', [T, D], random(T * D, 2))), out }; } },
  { op: 'rms_norm', tolerance: 1e-6, rows: T, build: () => { const out = emptyTensor('f32', [T, D]); return { node: ops.rmsNorm(out, tensorFromF32('f32', [T, D], random(T * D, 3)), tensorFromF32('f32', [D], random(D, 4)), 1e-5), out }; } },
  { op: 'swiglu', tolerance: 1e-6, rows: T, build: () => { const out = emptyTensor('f32', [T, D]); return { node: ops.swiglu(out, tensorFromF32('f32', [T, D], random(T * D, 5)), tensorFromF32('f32', [T, D], random(T * D, 6))), out }; } },
  { op: 'rope', tolerance: 1e-6, rows: T, build: () => { const x = tensorFromF32('f32', [T, H * HD], random(T * H * HD, 7)); return { node: ops.rope(x, { nHeads: H, headDim: HD, thetaBase: 10000 }), out: x, pos: 11 }; } },
  matmulCase('f32', 1e-5),
  matmulCase('f16', 1e-5),
  matmulCase('bf16', 1e-5),
  matmulCase('q8_0', 3e-2), // the fast path quantizes activations to 8 bits, as llama.cpp does
  {
    op: 'attention',
    tolerance: 1e-5,
    rows: T,
    build: () => {
      const out = emptyTensor('f32', [T, H * HD]);
      const k = tensorFromF32('f32', [40, KV * HD], random(40 * KV * HD, 8)), v = tensorFromF32('f32', [40, KV * HD], random(40 * KV * HD, 9));
      return { node: ops.attention(out, tensorFromF32('f32', [T, H * HD], random(T * H * HD, 10)), k, v, { nHeads: H, nKvHeads: KV, headDim: HD, scale: 0.2 }), out, pos: 20 };
    },
  },
  {
    op: 'embedding q8_0',
    tolerance: 0,
    rows: T,
    build: () => {
      const out = emptyTensor('f32', [T, D]);
      return { node: ops.embedding(out, tensorFromF32('q8_0', [50, D], random(50 * D, 11)), tensorFromI32([T], Int32Array.from({ length: T }, (_, i) => (i * 7) % 50))), out };
    },
  },
];

async function runCase(c: Case, impl: NativeImpl): Promise<Float32Array> {
  const be = new CpuBackend({ impl, threads: 2 });
  const { node, out, pos } = c.build();
  const g = be.graph([node], c.rows);
  try {
    await g.run(c.rows, pos ?? 0);
    return readF32Rows(out, 0, c.rows);
  } finally {
    g.dispose();
    be.dispose();
  }
}

/** Checks every op at `impl` (default: the best this CPU supports) against its reference. */
export async function checkKernels(impl: NativeImpl = 'auto'): Promise<KernelCheck[]> {
  if (impl === 'auto') impl = native().cpuInfo().bestImpl;
  const out: KernelCheck[] = [];
  for (const c of CASES) {
    const ref = await runCase(c, 'reference');
    const got = await runCase(c, impl);
    const e = relError(got, ref);
    out.push({ op: c.op, impl, relError: e, tolerance: c.tolerance, ok: e <= c.tolerance });
  }
  return out;
}
