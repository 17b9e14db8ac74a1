#!/usr/bin/env node
// Each CUDA kernel's registers, spills, stack and static shared memory as ptxas reports them
// (-Xptxas -v), for one arch: every cuda/*.cu compiled to a throw-away cubin with the addon's
// flags. Registers and spills are compile-time facts, so this runs here (nvcc, no GPU);
// scripts/gpu-prepare.mjs puts its JSON into .gpu/ for the GPU check to print beside the
// measurements. Dynamic shared memory (the only kind the kernels use, common.cuh) is set per
// launch and is not in it.
//   node scripts/ptxas-report.mjs [--arch 90] [--out report.json]
// Exits 1 when a file does not compile (spills are listed, for the reader to judge).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const arch = opt('--arch', '90');
const outFile = opt('--out', null);

const tmp = mkdtempSync(path.join(os.tmpdir(), 'fuselm-ptxas-'));
const kernels = [];
const failures = [];
try {
  for (const file of readdirSync(path.join(root, 'cuda')).filter((f) => f.endsWith('.cu')).sort()) {
    const r = spawnSync('nvcc', ['-cubin', `-arch=sm_${arch}`, '-O3', '--Werror', 'all-warnings', '-std=c++17', '-Icuda', '-Inative', '-DFUSELM_HAVE_CUDA=1',
      '-Xptxas', '-v', '-o', path.join(tmp, 'k.cubin'), `cuda/${file}`], { cwd: root, encoding: 'utf8' });
    if (r.error) throw r.error;
    if (r.status !== 0) {
      failures.push({ file, error: (r.stderr || r.stdout).slice(-2000) });
      continue;
    }
    kernels.push(...parsePtxas(r.stderr, file));
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

// ptxas prints per entry function: "Compiling entry function 'M' for 'sm_90'", then
// "N bytes stack frame, S bytes spill stores, L bytes spill loads" and "Used R registers, ...
// [B bytes smem, ]...".
function parsePtxas(text, file) {
  const out = [];
  let cur = null, owner = null;
  for (const line of text.split('\n')) {
    const entry = line.match(/Compiling entry function '([^']+)'/);
    if (entry) {
      cur = { file, mangled: entry[1], kernel: '', registers: 0, spillStores: 0, spillLoads: 0, stackBytes: 0, staticSmemBytes: 0 };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    // the frame line follows "Function properties for NAME": the entry's own, or an out-of-line
    // device function's (printed after the entry's), which must not overwrite the entry's
    const props = line.match(/Function properties for (\S+)/);
    if (props) owner = props[1];
    const frame = line.match(/(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/);
    if (frame && owner === cur.mangled) [cur.stackBytes, cur.spillStores, cur.spillLoads] = frame.slice(1).map(Number);
    const used = line.match(/Used (\d+) registers/);
    if (used) {
      cur.registers = Number(used[1]);
      const smem = line.match(/(\d+) bytes smem/);
      if (smem) cur.staticSmemBytes = Number(smem[1]);
    }
  }
  if (out.length) {
    const names = execFileSync('c++filt', { input: out.map((k) => k.mangled).join('\n'), encoding: 'utf8' }).split('\n');
    // "void fuselm::gpu::gemv_quant_kernel<(fuselm::DType)8, 1>(float*, ...)" -> "gemv_quant_kernel<(DType)8, 1>"
    out.forEach((k, i) => (k.kernel = withoutParameters((names[i] ?? k.mangled).replace(/^void /, '')).replaceAll(/fuselm::(gpu::)?/g, '')));
  }
  return out;
}

// A demangled signature without its parameter list (the last parenthesized group; template
// arguments may hold parentheses too).
function withoutParameters(sig) {
  if (!sig.endsWith(')')) return sig;
  let depth = 0;
  for (let i = sig.length - 1; i >= 0; i--) {
    if (sig[i] === ')') depth++;
    else if (sig[i] === '(' && --depth === 0) return sig.slice(0, i);
  }
  return sig;
}

const spilling = kernels.filter((k) => k.spillStores || k.spillLoads);
const report = { arch: `sm_${arch}`, kernels, failures, spilling: spilling.map((k) => k.kernel) };
if (outFile) writeFileSync(outFile, JSON.stringify(report, null, 1));
process.stdout.write(`${'kernel'.padEnd(60)} regs  spill st/ld  stack  smem  (sm_${arch}, static smem only)\n`);
for (const k of kernels)
  process.stdout.write(`${k.kernel.slice(0, 60).padEnd(60)} ${String(k.registers).padStart(4)}  ${`${k.spillStores}/${k.spillLoads}`.padStart(11)}  ${String(k.stackBytes).padStart(5)}  ${String(k.staticSmemBytes).padStart(4)}\n`);
for (const f of failures) process.stdout.write(`FAILED to compile ${f.file}:\n${f.error}\n`);
process.stdout.write(`${kernels.length} kernels, ${spilling.length} spilling${spilling.length ? `: ${report.spilling.join(', ')}` : ''}, ${failures.length} files failed\n`);
process.exitCode = failures.length ? 1 : 0;
