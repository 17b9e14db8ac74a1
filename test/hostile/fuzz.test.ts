/**
 * Fuzzing (issue 15): seeded mutants of GGUF files, safetensors headers, config.json (and
 * generation_config.json), tokenizer.json and chat templates, each run through its whole path
 * (load, then a short generate; encode and decode; render). Every case must end with a result
 * or a FuselmError: an untyped error, a crash (the cases run in child processes), or a case that
 * makes no progress for PER_CASE_MS fails the test, naming the kind and seed to replay with
 * `npx tsx test/hostile/fuzz-child.ts <kind> <seed> 1 <dir>`.
 * The children run under a 2 GiB memory limit (RLIMIT_DATA, `ulimit -d`: every private writable
 * mapping, so the JS heap, malloc and the addon's mmap'd buffers; `ulimit -v` would also count
 * the address space V8 and WebAssembly reserve without using it, and stop Node itself). Each
 * child reports the limit it runs under, and the test checks it. A case that would need more
 * must end in a FuselmError (E_OUT_OF_MEMORY), never in a killed process.
 * CI runs 60 cases per kind; FUSELM_FUZZ_CASES=<n> runs n per kind, and FUSELM_FUZZ_CASES=full
 * the issue's counts (10,000 GGUF, 2,000 of each other kind). FUSELM_FUZZ_MEMORY_LIMIT=<bytes>
 * changes the limit, 0 lifts it (the sanitizer step: AddressSanitizer maps terabytes of shadow).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireShared } from '../helpers/shared.js';
import { TINY_LLAMA } from './helpers.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fuzz-child.ts');
const KINDS = ['gguf', 'safetensors', 'config', 'tokenizer', 'template'] as const;
const FULL: Record<(typeof KINDS)[number], number> = { gguf: 10_000, safetensors: 2_000, config: 2_000, tokenizer: 2_000, template: 2_000 };
const casesOf = (kind: (typeof KINDS)[number]): number =>
  process.env.FUSELM_FUZZ_CASES === 'full' ? FULL[kind] : Number(process.env.FUSELM_FUZZ_CASES ?? 0) || 60;
const PER_CASE_MS = 20_000;
/** Cases per child process: a fresh process now and then, so that no slow leak adds up across thousands of cases. */
const BATCH = 500;
const MEMORY_LIMIT = Number(process.env.FUSELM_FUZZ_MEMORY_LIMIT ?? 2 ** 31);

interface Run {
  outcomes: Map<number, string>;
  untyped: string[];
  /** The data limit the child reported (bytes; Infinity for none). */
  limit?: number;
  stuck?: number;
  crashed?: { seed: number | undefined; code: number | null; signal: string | null; stderr: string };
}

/** The child's command: node with the test's flags, under `ulimit -d` when there is a limit. */
function childCommand(args: string[]): [string, string[]] {
  const node = [process.execPath, ...process.execArgv, '--max-old-space-size=1536', CHILD, ...args];
  if (!MEMORY_LIMIT) return [node[0], node.slice(1)];
  return ['/bin/sh', ['-c', `ulimit -d ${Math.floor(MEMORY_LIMIT / 1024)} && exec "$@"`, 'sh', ...node]];
}

/** Runs seeds [first, first + count) of `kind` in children of at most BATCH cases; on a hang or crash, reports it and goes on after that seed. */
async function fuzz(kind: string, first: number, count: number, work: string): Promise<Run[]> {
  const runs: Run[] = [];
  let next = first;
  while (next < first + count) {
    const run: Run = { outcomes: new Map(), untyped: [] };
    runs.push(run);
    const n = Math.min(BATCH, first + count - next);
    const [cmd, args] = childCommand([kind, String(next), String(n), work]);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let current: number | undefined;
    let stderr = '';
    let buf = '';
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        run.stuck = current;
        child.kill('SIGKILL');
      }, PER_CASE_MS);
    };
    arm();
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
    child.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [what, seed, ...rest] = line.split(' ');
        if (what === 'limit') run.limit = Number(seed);
        else if (what === 'start') {
          current = Number(seed);
          arm();
        } else if (what === 'done') run.outcomes.set(Number(seed), rest.join(' '));
        else if (what === 'untyped') run.untyped.push(`${kind} seed ${seed}: ${rest.join(' ')}`);
      }
    });
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
    clearTimeout(timer);
    if (run.stuck === undefined && (code !== 0 || signal)) run.crashed = { seed: current, code, signal, stderr };
    next = run.stuck !== undefined || run.crashed ? (current ?? next) + 1 : next + n;
  }
  return runs;
}

describe('hostile: fuzzing', function () {
  this.timeout(Math.max(600_000, Math.max(...KINDS.map(casesOf)) * 10_000));
  let work: string;
  before(function () {
    requireShared(this, TINY_LLAMA);
    work = mkdtempSync(path.join(tmpdir(), 'fuselm-fuzz-'));
  });
  after(() => work && rmSync(work, { recursive: true, force: true }));

  if (!MEMORY_LIMIT) console.log('      (FUSELM_FUZZ_MEMORY_LIMIT=0: the children run without a memory limit)');
  for (const kind of KINDS) {
    const CASES = casesOf(kind);
    const limit = MEMORY_LIMIT ? `under a ${MEMORY_LIMIT / 2 ** 30} GiB memory limit` : 'without a memory limit';
    it(`${kind}: ${CASES} seeded mutants ${limit} end in a result or a FuselmError, no crash, no hang`, async () => {
      const t0 = performance.now();
      const runs = await fuzz(kind, 1, CASES, work);
      const problems = [
        ...runs.flatMap((r) => r.untyped),
        ...runs.filter((r) => r.stuck !== undefined).map((r) => `${kind} seed ${r.stuck}: no progress for ${PER_CASE_MS} ms`),
        ...runs.filter((r) => r.crashed).map((r) => `${kind} seed ${r.crashed!.seed}: the process died (code ${r.crashed!.code}, signal ${r.crashed!.signal}): ${r.crashed!.stderr.slice(-500)}`),
      ];
      const outcomes = new Map<string, number>();
      for (const r of runs) for (const o of r.outcomes.values()) outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
      console.log(`      ${kind}: ${[...outcomes].map(([o, n]) => `${o} ${n}`).join(', ')} (${runs.length} processes, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      assert.deepEqual(problems, []);
      for (const r of runs) assert.equal(r.limit, MEMORY_LIMIT || Infinity, 'the memory limit the child runs under');
      assert.equal([...runs].reduce((n, r) => n + r.outcomes.size, 0), CASES);
    });
  }
});
