/**
 * A few-second self-check for `fuselm doctor`: the case table's doctor cases (one or two per
 * op, lib/ops/cases.ts) at the fastest CPU kernel level this machine has and on each CUDA
 * device that works, against the plain reference, on seeded data.
 */
import type { NativeImpl } from '../../bindings.js';
import { type Backend, CpuBackend, CudaBackend } from '../backend.js';
import { CASES, OP_TABLE, type OpName } from '../ops/table.js';
import { compareResult, referenceBackend, runParity } from '../ops/run.js';
import { native } from '../native.js';

export interface KernelCheck {
  /** The case, e.g. "matmul q8_0 7x96 · 67x96ᵀ". */
  op: string;
  /** The CPU kernel level, or 'cuda'. */
  impl: NativeImpl | 'cuda';
  /** ‖fast − reference‖ / ‖reference‖ */
  relError: number;
  /** max |fast − reference| */
  absError: number;
  tolerance: number;
  ok: boolean;
}

/** Checks every op's doctor cases at `impl` (default: the best this CPU has), and on CUDA when a device works. */
export async function checkKernels(impl: NativeImpl = 'auto'): Promise<KernelCheck[]> {
  if (impl === 'auto') impl = native().cpuInfo().bestImpl;
  const targets: Array<{ label: NativeImpl | 'cuda'; be: Backend }> = [{ label: impl, be: new CpuBackend({ impl, threads: 2 }) }];
  if (native().cudaInfo().devices.length > 0) targets.push({ label: 'cuda', be: new CudaBackend() });
  const ref = referenceBackend();
  const out: KernelCheck[] = [];
  try {
    for (const op of Object.keys(CASES) as OpName[])
      for (const c of CASES[op].parity.filter((p) => p.doctor)) {
        const want = await runParity(c, ref);
        for (const t of targets) {
          if (t.label === 'cuda' && ('noCuda' in OP_TABLE[op] || c.cpuOnly)) continue;
          const r = compareResult(c, await runParity(c, t.be), want, t.be.device);
          out.push({ op: c.name, impl: t.label, relError: r.rel, absError: r.abs, tolerance: r.tol.rel, ok: r.ok });
        }
      }
  } finally {
    ref.dispose();
    for (const t of targets) t.be.dispose();
  }
  return out;
}
