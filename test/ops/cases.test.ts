/**
 * The op table and its case table, on every implementation present.
 *
 * Proves: (1) lib/ops/table.ts declares exactly the addon's op table (opTable(): names, roles
 * with their access, parameters with types and defaults, sequence spans, the reason an op has
 * no CUDA implementation), so the typed builders cannot drift from the native parser; (2) the
 * native parser refuses a node with a missing required parameter or tensor, a field the op does
 * not declare, or a parameter of the wrong type, naming the op and the field; (3) every parity
 * case of every op (lib/ops/cases.ts) gives, on every fast CPU kernel level with 1 and 2
 * threads, on the CUDA backend's SIMT emulator, and on a GPU when there is one, the plain
 * reference's result within the case's tolerance (the measured worst errors are printed);
 * (4) an op without a CUDA implementation is refused by a CUDA graph with the table's reason.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { type Backend, CpuBackend, CudaBackend } from '../../lib/backend.js';
import { CASES, OP_TABLE, type OpName, ops } from '../../lib/ops/table.js';
import { compareResult, referenceBackend, runParity } from '../../lib/ops/run.js';
import { native } from '../../lib/native.js';
import { emptyTensor } from '../../lib/tensor.js';
import { fastImpls } from '../helpers/parity.js';

const OPS = Object.keys(OP_TABLE) as OpName[];

describe('op table', () => {
  it('lib/ops/table.ts declares exactly the addon’s ops, roles and parameters', () => {
    const nativeTable = native().opTable();
    assert.deepEqual(nativeTable.map((o) => o.name), [...OPS].sort());
    for (const o of nativeTable) {
      const spec = OP_TABLE[o.name as OpName] as unknown as {
        roles: Record<string, { access: string; required?: false; host?: true }>;
        params: Record<string, { type: string; default?: number | boolean }>;
        positional?: true;
        noCuda?: string;
      };
      assert.deepEqual(
        o.roles,
        Object.entries(spec.roles).map(([name, r]) => ({ name, access: r.access, required: r.required ?? true, host: r.host ?? false })),
        `${o.name} roles`,
      );
      assert.deepEqual(
        o.params,
        Object.entries(spec.params).map(([name, p]) =>
          'default' in p ? { name, type: p.type, required: false, default: p.default } : { name, type: p.type, required: true }),
        `${o.name} params`,
      );
      assert.equal(o.positional, spec.positional ?? false, `${o.name} positional`);
      assert.equal(o.noCuda, spec.noCuda, `${o.name} noCuda`);
    }
  });

  it('refuses missing, unknown and mistyped fields, naming the op and the field', () => {
    const be = new CpuBackend({ threads: 1 });
    const x = emptyTensor('f32', [2, 8]);
    const node = ops.rope(x, { nHeads: 2, headDim: 4, thetaBase: 10000 }) as unknown as Record<string, unknown>;
    const graph = (n: Record<string, unknown>) => be.graph([n as never], 2);
    const { thetaBase: _, ...noTheta } = node;
    assert.throws(() => graph(noTheta), { code: 'E_INVALID_ARG', message: /node #0 \(rope\): missing parameter 'thetaBase' \(number\)/ });
    assert.throws(() => graph({ ...node, thetaBse: 1e6 }), { code: 'E_INVALID_ARG', message: /node #0 \(rope\): unknown field 'thetaBse'/ });
    assert.throws(() => graph({ ...node, nHeads: 2.5 }), { code: 'E_INVALID_ARG', message: /parameter 'nHeads' must be an integer/ });
    assert.throws(() => graph({ ...node, neox: 1 }), { code: 'E_INVALID_ARG', message: /parameter 'neox' must be a boolean/ });
    assert.throws(() => graph({ op: 'add', out: x, a: x }), { code: 'E_INVALID_ARG', message: /node #0 \(add\): missing tensor 'b'/ });
    assert.throws(() => graph({ op: 'nope', out: x }), { code: 'E_INVALID_ARG', message: /node #0: unknown op 'nope'/ });
    assert.throws(() => graph({ ...ops.add(x, x, x), posSlot: 0 }), { code: 'E_INVALID_ARG', message: /unknown field 'posSlot'/ });
    be.dispose();
  });

  it('allocates nothing when imported (the cases build their tensors only when run)', () => {
    // the model code imports the table: a case that made its tensors eagerly cost every user of
    // loadModel its bench data (once 240 MB of RSS)
    const probe = (mod: string) =>
      Number(execFileSync(process.execPath, ['--import', 'tsx', '-e', `await import(${JSON.stringify(mod)}); console.log(process.memoryUsage().rss)`], { encoding: 'utf8' }));
    const base = probe(new URL('../../lib/tensor.ts', import.meta.url).href);
    const table = probe(new URL('../../lib/ops/table.ts', import.meta.url).href);
    assert.ok(table - base < 32e6, `importing lib/ops/table.ts costs ${((table - base) / 1e6).toFixed(0)} MB of RSS`);
  });

  it('has parity cases, a doctor case and bench cases for every op', () => {
    for (const op of OPS) {
      assert.ok(CASES[op].parity.length > 0, `${op}: no parity case`);
      assert.ok(CASES[op].parity.some((c) => c.doctor), `${op}: no doctor case`);
      assert.ok(CASES[op].bench.length > 0, `${op}: no bench case`);
      for (const c of [...CASES[op].parity, ...CASES[op].bench]) assert.ok(c.name.startsWith(op), `${op}: case '${c.name}' must start with the op's name`);
    }
  });
});

interface Target {
  label: string;
  make: () => Backend;
}

function targets(): Target[] {
  const t: Target[] = [];
  for (const impl of fastImpls()) for (const threads of [1, 2]) t.push({ label: `${impl}/${threads}t`, make: () => new CpuBackend({ impl, threads }) });
  t.push({ label: 'cuda-emulated', make: () => new CudaBackend({ emulated: true }) });
  if (native().cudaInfo().devices.length > 0) t.push({ label: 'cuda', make: () => new CudaBackend() });
  return t;
}

describe('op cases on every implementation (lib/ops/cases.ts)', () => {
  const all = targets();
  for (const op of OPS) {
    describe(op, () => {
      const worst = new Map<string, { rel: number; abs: number }>();
      after(() => {
        for (const [label, w] of worst) console.log(`      ${op} ${label}: worst rel ${w.rel.toExponential(2)}, max abs ${w.abs.toExponential(2)}`);
      });
      for (const c of CASES[op].parity)
        it(c.name, async () => {
          const refBe = referenceBackend();
          const want = await runParity(c, refBe).finally(() => refBe.dispose());
          for (const target of all) {
            const be = target.make();
            try {
              if (be.device !== 'cpu' && 'noCuda' in OP_TABLE[op]) {
                await assert.rejects(runParity(c, be), { code: 'E_UNSUPPORTED', message: new RegExp(`has no CUDA implementation: ${op}`) });
                continue;
              }
              const r = compareResult(c, await runParity(c, be), want, be.device);
              assert.ok(r.ok, `${c.name} on ${target.label}: rel ${r.rel.toExponential(3)} (tol ${r.tol.rel}), max abs ${r.abs.toExponential(3)} (tol ${r.tol.abs}); first: ${r.first.join('; ')}`);
              const w = worst.get(target.label) ?? { rel: 0, abs: 0 };
              worst.set(target.label, { rel: Math.max(w.rel, r.rel), abs: Math.max(w.abs, r.abs) });
            } finally {
              be.dispose();
            }
          }
        });
    });
  }
});
