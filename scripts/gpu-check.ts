/**
 * The GPU check (../shared/gpu/README.md): one program, run on a lent GPU machine, that proves
 * the CUDA backend there and measures it next to PyTorch on the same chip. Built and bundled
 * here by scripts/gpu-prepare.mjs into .gpu/ (with the addon, the test and bench programs and
 * the data), then run there as
 *   node .gpu/gpu-check.mjs --out $OUT [--quick]
 * Steps, each reported even when another fails:
 *   1. devices(): the GPU, its memory and compute capability;
 *   2. parity: every kernel's parity test on the GPU (fuselm_cuda_tests, the emulator tests'
 *      twin compiled by nvcc) against the CPU references; and every parity case of the op
 *      table's case table (lib/ops/table.ts) through a CUDA graph against the plain reference;
 *   3. end to end: stories260K on device 'cuda' against llama.cpp's logits and greedy tokens,
 *      and its beam search against the CPU's;
 *      decode and prefill tok/s of a synthetic TinyLlama-1.1B (f16, q8_0) on CUDA;
 *   4. kernels: fuselm_cuda_bench and torch_peers.py at the same shapes, with ratios and each
 *      case's share of its roofline (the copy bandwidth and torch's bf16 / int8 matmul rates,
 *      measured in the same run); and every op's bench cases of the case table on the GPU
 *      against its copy bandwidth;
 *   5. sanitizer: fuselm_cuda_tests under compute-sanitizer's memcheck, racecheck and synccheck
 *      (skipped with the reason when the machine has no compute-sanitizer);
 *   6. resources: each kernel's registers, spills, stack and static shared memory from ptxas
 *      (-Xptxas -v, collected here by scripts/ptxas-report.mjs into ptxas.json).
 * The full report goes to $OUT/gpu-check.json; a short table is printed last.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
process.env.FUSELM_ADDON ??= path.join(here, 'fuselm.node');

const args = process.argv.slice(2);
const outDir = args.includes('--out') ? args[args.indexOf('--out') + 1] : (process.env.OUT ?? path.join(here, 'out'));
const quick = args.includes('--quick');
// --skip a,b: leave steps out (a dry run here: FUSELM_CUDA_EMULATE=1 ... --skip e2e,kernels,peers)
const skip = new Set(args.includes('--skip') ? args[args.indexOf('--skip') + 1].split(',') : []);
mkdirSync(outDir, { recursive: true });

type Report = Record<string, unknown>;
const report: Report = { started: new Date().toISOString(), quick };
const summary: string[] = [];

function save(): void {
  writeFileSync(path.join(outDir, 'gpu-check.json'), JSON.stringify(report, null, 1));
}

async function step(name: string, fn: () => Promise<unknown> | unknown): Promise<void> {
  if (skip.has(name)) return;
  const t0 = Date.now();
  process.stderr.write(`== ${name}\n`);
  try {
    report[name] = { ok: true, seconds: 0, ...((await fn()) as object) };
  } catch (e) {
    const err = e as Error & { code?: string };
    report[name] = { ok: false, error: `${err.code ?? ''} ${err.stack ?? err}` };
    summary.push(`${name}: FAILED ${err.code ?? ''} ${err.message}`);
  }
  (report[name] as Report).seconds = (Date.now() - t0) / 1000;
  save();
}

function run(cmd: string, argv: string[], timeoutS: number) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: timeoutS * 1000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return r;
}

const lib = await import('../lib/index.js');

await step('devices', () => {
  const d = lib.devices();
  summary.push(`device: ${d.cuda.devices.map((g) => `${g.name} sm_${g.computeCapability} ${(g.totalMemory / 2 ** 30).toFixed(0)} GiB`).join(', ') || `none (${d.cuda.reason})`}`);
  return { devices: d };
});

await step('parity', () => {
  const r = run(path.join(here, 'fuselm_cuda_tests'), [], 240);
  const tests = [...r.stdout.matchAll(/^(ok  |FAIL) (\S+) ([\d.]+) ms(?: \| (.*))?$/gm)].map((m) => ({ ok: m[1] === 'ok  ', name: m[2], ms: Number(m[3]), detail: m[4] ?? '' }));
  if (tests.length === 0) throw new Error(`fuselm_cuda_tests ran no test (exit ${r.status}): ${(r.stderr || r.stdout).slice(-1000)}`);
  const failed = tests.filter((t) => !t.ok);
  summary.push(`parity on the GPU: ${tests.length - failed.length}/${tests.length} passed${failed.length ? ` — FAILED: ${failed.map((t) => t.name).join(', ')}` : ''}`);
  return { status: r.status, tests, stderr: r.stderr.slice(-4000) };
});

await step('cases', async () => {
  const { CASES, OP_TABLE } = await import('../lib/ops/table.js');
  const { compareResult, referenceBackend, runParity } = await import('../lib/ops/run.js');
  const { CudaBackend, resolveDevice } = await import('../lib/backend.js');
  const gpu = new CudaBackend({ emulated: resolveDevice('cuda') === 'cuda-emulated' }); // the emulator only in a dry run here
  const ref = referenceBackend();
  const results = [];
  try {
    for (const [op, cases] of Object.entries(CASES)) {
      if ('noCuda' in OP_TABLE[op as keyof typeof OP_TABLE]) continue;
      for (const c of cases.parity) {
        try {
          results.push(compareResult(c, await runParity(c, gpu), await runParity(c, ref), gpu.device));
        } catch (e) {
          results.push({ case: c.name, ok: false, error: `${(e as { code?: string }).code ?? ''} ${(e as Error).message}` });
        }
      }
    }
  } finally {
    gpu.dispose();
    ref.dispose();
  }
  const failed = results.filter((r) => !r.ok);
  summary.push(`op cases on the GPU: ${results.length - failed.length}/${results.length} within tolerance${failed.length ? ` — FAILED: ${failed.map((r) => r.case).join(', ')}` : ''}`);
  return { results };
});

await step('stories260K', async () => {
  const oracle = JSON.parse(readFileSync(path.join(here, 'stories260K.oracle.json'), 'utf8'));
  const out: Report = {};
  for (const kvType of ['f32', 'f16'] as const) {
    const m = await lib.loadModel(path.join(here, 'stories260K.gguf'), { device: 'cuda', kvType });
    try {
      const ids: number[] = oracle.prompt_logits.ids;
      const got = await m.evaluate(ids, { allLogits: true });
      const V = m.config.vocabSize;
      let maxAbs = 0;
      for (let i = 0; i < ids.length; i++) for (let j = 0; j < V; j++) maxAbs = Math.max(maxAbs, Math.abs(got[i * V + j] - oracle.prompt_logits.logits[i][j]));
      const r = await m.generate(oracle.greedy.prompt, { maxTokens: oracle.greedy.n });
      const same = r.ids.length === oracle.greedy.ids.length && r.ids.every((id: number, i: number) => id === oracle.greedy.ids[i]);
      // beam search through the shared-prefix attention: the same hypotheses as the CPU's
      const beams = { numBeams: 4, maxTokens: 12, numReturnSequences: 4 };
      const cpu = await lib.loadModel(path.join(here, 'stories260K.gguf'), { device: 'cpu' });
      const wantBeams = (await cpu.beamSearch(oracle.greedy.prompt, beams)).sequences.map((h) => h.ids.join(','));
      await cpu.dispose();
      const gotBeams = (await m.beamSearch(oracle.greedy.prompt, beams)).sequences.map((h) => h.ids.join(','));
      const beamsEqual = gotBeams.join('|') === wantBeams.join('|');
      out[kvType] = { device: m.device, logitsMaxAbs: maxAbs, greedyEqual: same, beamsEqualCpu: beamsEqual, tokensPerSecond: r.timings.tokensPerSecond };
      summary.push(
        `stories260K cuda kv ${kvType}: logits max abs ${maxAbs.toExponential(2)}${kvType === 'f32' ? ' (goal <= 1e-3)' : ''}, greedy 64 ${same ? 'equal' : 'DIFFER'}, 4 beams ${beamsEqual ? 'equal' : 'differ from'} the CPU's`,
      );
    } finally {
      await m.dispose();
    }
  }
  return out;
});

await step('e2e', async () => {
  const { writeSyntheticLlama, SHAPES } = await import('../lib/tools/synthetic.js');
  const { measureSpeed } = await import('../lib/tools/bench.js');
  const out: Report = {};
  for (const dtype of ['f16', 'q8_0'] as const) {
    const f = path.join(os.tmpdir(), `fuselm-tinyllama-${dtype}.gguf`);  // not under $OUT: it travels back
    if (!existsSync(f)) await writeSyntheticLlama(f, SHAPES['tinyllama-1.1b'], dtype);
    const r = await measureSpeed(f, { device: 'cuda', prompt: 512, gen: 128, reps: quick ? 2 : 3 });
    out[dtype] = r;
    summary.push(`TinyLlama-1.1B ${dtype} on ${r.device}: prefill ${r.prefillTokensPerSecond.toFixed(0)} tok/s (512), decode ${r.decodeTokensPerSecond.toFixed(1)} tok/s`);
  }
  return out;
});

await step('kernels', () => {
  const bench = path.join(here, 'fuselm_cuda_bench');
  if (!existsSync(bench)) throw new Error('fuselm_cuda_bench was not built');
  const r = run(bench, quick ? ['--quick'] : [], 200);
  if (r.status !== 0) throw new Error(`fuselm_cuda_bench exited ${r.status}: ${r.stderr.slice(-2000)}`);
  return { fuselm: JSON.parse(r.stdout) };
});

await step('case-kernels', async () => {
  const { benchKernels } = await import('../lib/tools/kernel-bench.js');
  const { resolveDevice } = await import('../lib/backend.js');
  const r = await benchKernels({ device: resolveDevice('cuda') === 'cuda-emulated' ? 'cuda-emulated' : 'cuda' });
  summary.push(`op bench cases on the GPU: copy ${r.copyGBps.toFixed(0)} GB/s; ${r.kernels.map((k) => `${k.op} ${(100 * k.rooflineShare).toFixed(0)}%`).join(', ')}`);
  return { report: r };
});

await step('peers', () => {
  // torch with a GPU, or the step is skipped with the reason (the roofline shares then stand alone)
  const probe = spawnSync('python3', ['-c', 'import torch; assert torch.cuda.is_available(), "torch sees no GPU"'], { encoding: 'utf8', timeout: 60_000 });
  if (probe.error || probe.status !== 0) {
    const reason = probe.error ? `python3: ${probe.error.message}` : (probe.stderr.trim().split('\n').pop() ?? `exit ${probe.status}`);
    summary.push(`torch peers: SKIPPED (${reason})`);
    return { skipped: reason };
  }
  const peersOut = path.join(outDir, 'peers.json');
  const r = run('python3', [path.join(here, 'torch_peers.py'), ...(quick ? ['--quick'] : []), '--out', peersOut], 200);
  if (r.status !== 0) throw new Error(`torch_peers.py exited ${r.status}: ${r.stderr.slice(-2000)}`);
  return { torch: JSON.parse(readFileSync(peersOut, 'utf8')) };
});

await step('compare', () => {
  const ours = ((report.kernels as Report)?.fuselm as BenchReport | undefined)?.cases ?? [];
  const peers = ((report.peers as Report)?.torch as PeerReport | undefined) ?? { copy_GBps: NaN, cases: [] };
  if (!ours.length) throw new Error('needs the kernel bench');
  const rows = compare(ours, peers.cases, peers);
  summary.push('', 'kernel                              shape                          fuselm ms   peer ms   peer          ratio  roofline  goal');
  for (const r of rows)
    summary.push(
      `${r.kernel.padEnd(35)} ${r.shape.padEnd(30)} ${r.ms.toFixed(3).padStart(9)} ${(Number.isNaN(r.peerMs) ? '-' : r.peerMs.toFixed(3)).padStart(9)}   ${r.peer.padEnd(13)} ${(Number.isNaN(r.ratio) ? '-' : r.ratio.toFixed(2)).padStart(5)}  ${(Number.isNaN(r.roofline) ? '-' : `${(100 * r.roofline).toFixed(0)}%`).padStart(8)}  ${r.goal}`,
    );
  return { rows };
});

await step('sanitizer', () => {
  const tool = findComputeSanitizer();
  if (!tool) {
    summary.push('compute-sanitizer: SKIPPED, not found on this machine (PATH, /usr/local/cuda*/); set FUSELM_COMPUTE_SANITIZER');
    return { skipped: 'compute-sanitizer not found' };
  }
  // every kernel test; a tool that runs out of time reports what it checked so far
  const limitS = quick ? 60 : 150;
  const tools: Report = {};
  const lines: string[] = [];
  for (const name of ['memcheck', 'racecheck', 'synccheck']) {
    const r = spawnSync(tool, ['--tool', name, '--error-exitcode', '99', '--print-limit', '20', path.join(here, 'fuselm_cuda_tests')],
      { encoding: 'utf8', timeout: limitS * 1000, maxBuffer: 64 << 20 });
    const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    const errors = Number(text.match(/ERROR SUMMARY: (\d+) error/)?.[1] ?? NaN);
    const tests = [...text.matchAll(/^(ok  |FAIL) (\S+)/gm)];
    const timedOut = r.signal !== null || (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
    const clean = !timedOut && r.status === 0 && errors === 0;
    tools[name] = { status: r.status, timedOut, errors, testsRun: tests.length, testsFailed: tests.filter((m) => m[1] === 'FAIL').length,
      // what the tool printed (its lines start with '=========': the bad accesses, hazards and
      // barrier errors with their kernels and threads), and the test lines they came between
      reports: text.split('\n').filter((l) => (/^=+\s+\S/.test(l) && !l.endsWith('COMPUTE-SANITIZER')) || l.startsWith('FAIL ')).slice(0, 200),
      tail: text.slice(-3000) };
    lines.push(`${name} ${clean ? 'clean' : timedOut ? `TIMED OUT after ${limitS} s (${tests.length} tests checked, ${Number.isNaN(errors) ? '?' : errors} errors)` : `FAILED (${Number.isNaN(errors) ? 'exit ' + r.status : `${errors} errors`})`}`);
  }
  summary.push(`compute-sanitizer over fuselm_cuda_tests: ${lines.join(', ')}`);
  return { tool, limitS, tools };
});

await step('resources', () => {
  const file = path.join(here, 'ptxas.json');
  if (!existsSync(file)) throw new Error('ptxas.json is missing (scripts/gpu-prepare.mjs writes it with scripts/ptxas-report.mjs)');
  const r = JSON.parse(readFileSync(file, 'utf8')) as PtxasReport;
  const table = r.kernels.map((k) => `${k.kernel.slice(0, 70).padEnd(70)} ${String(k.registers).padStart(4)} regs  spill ${k.spillStores}/${k.spillLoads}  stack ${k.stackBytes}  smem ${k.staticSmemBytes}`);
  writeFileSync(path.join(outDir, 'ptxas.txt'), `${r.arch}, static shared memory only (the kernels take theirs dynamically)\n${table.join('\n')}\n`);
  const most = [...r.kernels].sort((a, b) => b.registers - a.registers).slice(0, 4);
  summary.push(`ptxas ${r.arch}: ${r.kernels.length} kernels, ${r.spilling.length} spilling${r.spilling.length ? ` (${r.spilling.join(', ')})` : ''}; most registers: ${most.map((k) => `${k.kernel} ${k.registers}`).join(', ')} (all in ptxas.txt)`);
  return { ptxas: r };
});

report.finished = new Date().toISOString();
save();
process.stdout.write(`\n${summary.join('\n')}\nfull report: ${path.join(outDir, 'gpu-check.json')}\n`);

interface BenchCase { kernel: string; shape: Record<string, number | boolean | string>; ms?: number; GBps?: number; copy_share?: number; TFLOPs?: number; error?: string }
interface BenchReport { copy_GBps: number; cases: BenchCase[] }
interface PeerCase { name: string; ms?: number; GBps?: number; error?: string; [k: string]: unknown }
interface PeerReport { copy_GBps: number; bf16_mm_TFLOPs?: number; int8_mm_TOPs?: number | null; cases: PeerCase[] }
interface Row { kernel: string; shape: string; ms: number; peer: string; peerMs: number; ratio: number; roofline: number; goal: string }
interface PtxasKernel { kernel: string; registers: number; spillStores: number; spillLoads: number; stackBytes: number; staticSmemBytes: number }
interface PtxasReport { arch: string; kernels: PtxasKernel[]; spilling: string[] }

/** compute-sanitizer on this machine: $FUSELM_COMPUTE_SANITIZER, PATH, or a CUDA toolkit under /usr/local. */
function findComputeSanitizer(): string | null {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const d of existsSync('/usr/local') ? readdirSync('/usr/local').filter((n) => n.startsWith('cuda')).sort().reverse() : [])
    dirs.push(`/usr/local/${d}/bin`, `/usr/local/${d}/compute-sanitizer`);
  const found = [process.env.FUSELM_COMPUTE_SANITIZER, ...dirs.map((d) => path.join(d, 'compute-sanitizer'))].find((f) => f && existsSync(f));
  return found ?? null;
}

/**
 * A case's share of its roofline: the time it would take at the machine's ceilings measured in
 * the same run (bytes at the copy bandwidth; FLOPs at torch's bf16 matmul rate, or its int8 one
 * for the W8A8 q8_0 GEMM), whichever is longer, over the time it took. NaN without a ceiling.
 */
function rooflineShare(c: BenchCase, peers: PeerReport): number {
  const byBytes = c.copy_share ?? 0;
  let byFlops = 0;
  if (c.TFLOPs !== undefined) {
    const int8 = c.kernel === 'matmul_cuda' && c.shape.w_dtype === 'q8_0';
    const peak = int8 ? peers.int8_mm_TOPs : c.shape.w_dtype === 'f32' ? undefined : peers.bf16_mm_TFLOPs;
    if (peak) byFlops = c.TFLOPs / peak;
  }
  const share = Math.max(byBytes, byFlops);
  return share > 0 ? share : NaN;
}

/**
 * fuselm's kernel cases beside torch's at the same shapes. ratio = peer time / fuselm time
 * (above 1: fuselm is faster), except for the norms, where fuselm works in f32 and torch in
 * bf16: there both are set against the copy bandwidth and the ratio is fuselm's share of it
 * over torch's.
 */
function compare(ours: BenchCase[], torch: PeerCase[], peers: PeerReport): Row[] {
  const rows: Row[] = [];
  if (!torch.length) {
    // no torch on the machine: each case's share of the copy bandwidth the bench measured
    for (const c of ours)
      if (c.ms !== undefined)
        rows.push({ kernel: c.kernel, shape: Object.entries(c.shape).map(([k, v]) => `${k}=${v}`).join(' '), ms: c.ms, peer: 'none (no torch)', peerMs: NaN, ratio: NaN, roofline: rooflineShare(c, peers), goal: '' });
    return rows;
  }
  const peer = (name: string, keys: Record<string, unknown>) =>
    torch.find((c) => c.name === name && c.ms !== undefined && Object.entries(keys).every(([k, v]) => c[k] === v));
  for (const c of ours) {
    if (c.ms === undefined) continue;
    const sh = c.shape;
    const add = (name: string, p: PeerCase | undefined, goal: string, byShare = false) => {
      if (!p) return;
      const ratio = byShare ? (c.GBps ?? 0) / (p.GBps ?? 1) : p.ms! / c.ms!;
      rows.push({ kernel: c.kernel, shape: Object.entries(sh).map(([k, v]) => `${k}=${v}`).join(' '), ms: c.ms!, peer: name, peerMs: p.ms!, ratio, roofline: rooflineShare(c, peers), goal });
    };
    if (c.kernel.startsWith('attention_cuda:prefill') && sh.kv_dtype === 'bf16') {  // torch's SDPA cases are bf16
      const keys = { S: sh.S, D: sh.D, causal: sh.causal };
      add('sdpa_default', peer('sdpa_default', keys), '>= 1.0x');
      add('sdpa_cudnn', peer('sdpa_cudnn', keys), '>= 0.9x');
      add('sdpa_flash', peer('sdpa_flash', keys), '');
    } else if (c.kernel.startsWith('attention_cuda:decode')) {
      add('decode_sdpa', peer('decode_attention_sdpa', { ctx: sh.ctx, D: sh.D }), `>= 80% bw (fuselm ${(100 * (c.copy_share ?? 0)).toFixed(0)}%)`);
    } else if (c.kernel === 'matmul_cuda') {
      const keys = { M: sh.M, N: sh.N, K: sh.K };
      if (sh.w_dtype === 'q8_0') {
        add('int_mm_int8', peer('int_mm_int8', keys), Number(sh.M) >= 1024 ? '>= 1.0x' : '');
        add('linear_bf16', peer('linear_bf16', keys), Number(sh.M) <= 16 ? '>= 1.7x' : '');
      } else {
        add('linear_bf16', peer('linear_bf16', keys), '');
        // the GGUF block formats in decode: bound by reading the weights, so also set against
        // the copy bandwidth measured in the same run
        if (!['bf16', 'f16', 'f32'].includes(String(sh.w_dtype)) && Number(sh.M) <= 16 && c.copy_share !== undefined)
          rows.push({ kernel: c.kernel, shape: Object.entries(sh).map(([k, v]) => `${k}=${v}`).join(' '), ms: c.ms, peer: 'copy bandwidth', peerMs: NaN, ratio: c.copy_share, roofline: rooflineShare(c, peers), goal: 'bandwidth' });
      }
    } else if (c.kernel.startsWith('rms_norm') || c.kernel.startsWith('layer_norm') || c.kernel.startsWith('add_norm')) {
      const name = c.kernel.includes('layer') ? 'layer_norm_torch' : 'rms_norm_torch';
      add(name, peer(name, { rows: sh.rows, hidden: sh.hidden }), `>= 90% bw (fuselm ${(100 * (c.copy_share ?? 0)).toFixed(0)}%)`, true);
    } else if (c.copy_share !== undefined) {
      // no torch peer: the share of the copy bandwidth measured in the same run
      rows.push({ kernel: c.kernel, shape: Object.entries(sh).map(([k, v]) => `${k}=${v}`).join(' '), ms: c.ms, peer: 'copy bandwidth', peerMs: NaN, ratio: c.copy_share, roofline: rooflineShare(c, peers), goal: '' });
    }
  }
  return rows;
}
