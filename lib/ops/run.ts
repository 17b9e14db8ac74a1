/**
 * Running the case table (cases.ts) on a backend: a parity case against the plain reference,
 * and a bench case timed against the roofline measured on the same backend. Used by the parity
 * tests, `fuselm doctor` and the kernel benchmarks alike.
 */
import type { NativeImpl, NativeTensor } from '../../bindings.js';
import { type Backend, CpuBackend } from '../backend.js';
import { timeIt } from '../tools/bench.js';
import { bf16BitsToF32, f16BitsToF32 } from '../formats/ggml-types.js';
import { type BenchCase, type GraphNode, nodeTensors, ops, type ParityCase, type Tolerance, writtenRoles } from './table.js';

/** The node with every tensor but a block table in the backend's memory (the same copy for a tensor used twice). */
function placed(node: GraphNode, be: Backend, copies: Map<NativeTensor, NativeTensor>): GraphNode {
  if (be.device === 'cpu') return node;
  const out: Record<string, unknown> = { ...node };
  for (const [role, t] of nodeTensors(node)) {
    if (role === 'blockTable') continue; // read on the host (a device backend copies it in each run)
    let d = copies.get(t);
    if (!d) copies.set(t, (d = be.upload(t)));
    out[role] = d;
  }
  return out as GraphNode;
}

/** A tensor's values as f32 (f16/bf16 widened, i32 as numbers). */
export function readValues(t: NativeTensor): Float32Array {
  const bytes = t.read();
  switch (t.dtype) {
    case 'f32': return new Float32Array(bytes);
    case 'i32': return Float32Array.from(new Int32Array(bytes));
    case 'f16': return Float32Array.from(new Uint16Array(bytes), (h) => f16BitsToF32(h));
    case 'bf16': return Float32Array.from(new Uint16Array(bytes), (h) => bf16BitsToF32(h));
    default: throw new Error(`readValues: ${t.dtype} is not an output dtype`);
  }
}

/** Runs a parity case on a backend; the values of every tensor the op writes, by role. */
export async function runParity(c: ParityCase, be: Backend): Promise<Map<string, Float32Array>> {
  const node = c.build();
  const copies = new Map<NativeTensor, NativeTensor>();
  try {
    const g = be.graph([placed(node, be, copies)], c.maxRows ?? c.rows);
    try {
      await g.run(c.rows, c.pos ?? 0);
    } finally {
      g.dispose();
    }
    const out = new Map<string, Float32Array>();
    for (const role of writtenRoles(node.op)) {
      const t = (node as unknown as Record<string, NativeTensor>)[role];
      out.set(role, readValues(copies.get(t) ?? t));
    }
    return out;
  } finally {
    for (const [, t] of nodeTensors(node)) t.free();
    for (const t of copies.values()) t.free();
  }
}

export interface Difference {
  /** ‖out − ref‖ / ‖ref‖ (‖out − ref‖ when ref is all zeros) */
  rel: number;
  /** max |out − ref|; NaN anywhere makes it NaN */
  abs: number;
  /** the first elements beyond the abs tolerance, for the failure message */
  first: string[];
}

export function difference(out: Float32Array, ref: Float32Array, tol: Tolerance): Difference {
  if (out.length !== ref.length) return { rel: Infinity, abs: Infinity, first: [`length ${out.length}, want ${ref.length}`] };
  let num = 0, den = 0, abs = 0;
  const first: string[] = [];
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(out[i] - ref[i]);
    num += d * d;
    den += ref[i] * ref[i];
    if (!(d <= abs)) abs = d; // NaN sticks
    if (!(d <= tol.abs) && first.length < 5) first.push(`[${i}] ${out[i]} want ${ref[i]}`);
  }
  return { rel: den > 0 ? Math.sqrt(num / den) : Math.sqrt(num), abs, first };
}

export interface CaseResult extends Difference {
  case: string;
  ok: boolean;
  tol: Tolerance;
}

/** A backend's result for a case against a reference result (from refBackend()). */
export function compareResult(c: ParityCase, got: Map<string, Float32Array>, ref: Map<string, Float32Array>, device: string): CaseResult {
  const tol = device === 'cpu' ? c.tol : (c.cuda ?? c.tol);
  let worst: Difference = { rel: 0, abs: 0, first: [] };
  for (const [role, want] of ref) {
    const d = difference(got.get(role)!, want, tol);
    if (!(d.rel <= worst.rel) || !(d.abs <= worst.abs))
      worst = { rel: Math.max(worst.rel, d.rel), abs: Number.isNaN(d.abs) ? NaN : Math.max(worst.abs, d.abs), first: d.first.map((f) => `${role}${f}`) };
  }
  return { case: c.name, ...worst, tol, ok: worst.rel <= tol.rel && worst.abs <= tol.abs };
}

/** The plain scalar reference, single-threaded: what every other implementation is held to. */
export function referenceBackend(): CpuBackend {
  return new CpuBackend({ impl: 'reference' as NativeImpl, threads: 1 });
}

/**
 * Bytes per second (read + write) of a copy on the backend, made by the kv_store op (CPU: a
 * memcpy in 1 MiB chunks per thread). By default of 256 MiB to 256 MiB: main memory's bandwidth. Given
 * `bytes` (source and destination together), of that working set copied again and again in one
 * graph (at least 16 MiB per timed run, so the call's cost is spread as a bench case's is):
 * where it fits in a cache, that cache's copy bandwidth. The SIMT emulator copies 1 MiB once
 * at most (its timings only prove the path).
 */
export async function copyBandwidth(be: Backend, bytes = 512 * 2 ** 20): Promise<number> {
  const W = 256;
  const emulated = be.device === 'cuda-emulated';
  const rows = Math.max(1, Math.min(emulated ? 1024 : Infinity, Math.round(bytes / (2 * W * 4))));
  const perNode = 2 * rows * W * 4;
  const repeats = emulated ? 1 : Math.max(1, Math.ceil((16 * 2 ** 20) / perNode));
  const src = be.empty('f32', [rows, W]), dst = be.empty('f32', [rows, W]);
  const g = be.graph(Array.from({ length: repeats }, () => ops.kvStore(dst, src)), rows);
  try {
    return (repeats * perNode) / (await timeIt(() => g.run(rows, 0), { reps: 5, minSeconds: 0.2 }));
  } finally {
    g.dispose();
    src.free();
    dst.free();
  }
}

/**
 * Median seconds per node of a bench case on a backend, the nodes of one timed run, and the
 * bytes of the distinct tensors they touch (nodes may share tensors, or each have their own).
 */
export async function timeCase(c: BenchCase, be: Backend): Promise<{ seconds: number; nodes: number; tensorBytes: number }> {
  const nodes = c.nodes();
  const copies = new Map<NativeTensor, NativeTensor>();
  const host = new Set<NativeTensor>(nodes.flatMap((n) => nodeTensors(n).map(([, t]) => t)));
  const tensorBytes = [...host].reduce((n, t) => n + t.nbytes, 0);
  try {
    const g = be.graph(nodes.map((n) => placed(n, be, copies)), c.rows);
    if (be.device !== 'cpu') for (const t of host) t.free(); // only the device copies are needed now
    try {
      const seconds = (await timeIt(() => g.run(c.rows, c.pos ?? 0), { minSeconds: 0.05 })) / nodes.length;
      return { seconds, nodes: nodes.length, tensorBytes };
    } finally {
      g.dispose();
    }
  } finally {
    for (const t of host) t.free();
    for (const t of copies.values()) t.free();
  }
}
