/**
 * Parity-test helpers: seeded random data, normalized error against a reference, and a
 * one-op graph runner so each op can be run at every kernel level this CPU has.
 */
import assert from 'node:assert/strict';
import type { NativeImpl } from '../../bindings.js';
import type { GraphNode } from '../../lib/ops/table.js';
import { CpuBackend } from '../../lib/backend.js';
import { native } from '../../lib/native.js';

export { randn, rng } from './random.js';

/** Every kernel level this CPU can run, except the reference itself. */
export function fastImpls(): NativeImpl[] {
  return native().cpuInfo().impls.filter((i) => i !== 'reference');
}

/** ‖out − ref‖ / ‖ref‖ */
export function relErr(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (out[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / den);
}

export interface Tolerance {
  /** max ‖out − ref‖ / ‖ref‖ */
  rel: number;
  /** max |out − ref| */
  abs: number;
}

/** Asserts out ≈ ref, printing the normalized error, max-abs and the first mismatches. */
export function assertClose(out: ArrayLike<number>, ref: ArrayLike<number>, tol: Tolerance, what: string): void {
  assert.equal(out.length, ref.length, `${what}: length`);
  let num = 0, den = 0, maxAbs = 0;
  const bad: string[] = [];
  for (let i = 0; i < ref.length; i++) {
    const d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    const a = Math.abs(d);
    if (!(a <= maxAbs)) maxAbs = a; // NaN-propagating
    if (!(a <= tol.abs) && bad.length < 5) bad.push(`[${i}] got ${out[i]} want ${ref[i]}`);
  }
  const rel = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
  assert.ok(
    rel <= tol.rel && maxAbs <= tol.abs,
    `${what}: rel err ${rel.toExponential(3)} (tol ${tol.rel}), max abs ${maxAbs.toExponential(3)} (tol ${tol.abs}); first mismatches: ${bad.join('; ')}`,
  );
}

/** Runs one op as a one-node graph at kernel level `impl` with `threads` threads. */
export async function runOp(node: GraphNode, o: { impl: NativeImpl; threads?: number; n: number; pos?: number; maxRows?: number }): Promise<void> {
  const be = new CpuBackend({ threads: o.threads ?? 2, impl: o.impl });
  const g = be.graph([node], o.maxRows ?? o.n);
  try {
    await g.run(o.n, o.pos ?? 0);
  } finally {
    g.dispose();
    be.dispose();
  }
}
