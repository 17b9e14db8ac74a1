/**
 * Fuzzing (issue 15): seeded mutants of GGUF files, safetensors headers, config.json (and
 * generation_config.json), tokenizer.json and chat templates, each run through its whole path
 * (load, then a short generate; encode and decode; render). Every case must end with a result
 * or a FuselmError: an untyped error, a crash (the cases run in child processes), or a case that
 * makes no progress for PER_CASE_MS fails the test, naming the kind and seed to replay with
 * `npx tsx test/hostile/fuzz-child.ts <kind> <seed> 1 <dir>`. CI runs a few dozen cases per
 * kind; FUSELM_FUZZ_CASES=<n> runs n per kind (the long mode).
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
const CASES = Number(process.env.FUSELM_FUZZ_CASES ?? 0) || 60;
const PER_CASE_MS = 20_000;

interface Run {
  outcomes: Map<number, string>;
  untyped: string[];
  stuck?: number;
  crashed?: { seed: number | undefined; code: number | null; signal: string | null; stderr: string };
}

/** Runs seeds [first, first + count) of `kind` in a child; on a hang or crash, reports it and goes on after that seed. */
async function fuzz(kind: string, first: number, count: number, work: string): Promise<Run[]> {
  const runs: Run[] = [];
  let next = first;
  while (next < first + count) {
    const run: Run = { outcomes: new Map(), untyped: [] };
    runs.push(run);
    const child = spawn(process.execPath, [...process.execArgv, '--max-old-space-size=1536', CHILD, kind, String(next), String(first + count - next), work], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
        if (what === 'start') {
          current = Number(seed);
          arm();
        } else if (what === 'done') run.outcomes.set(Number(seed), rest.join(' '));
        else if (what === 'untyped') run.untyped.push(`${kind} seed ${seed}: ${rest.join(' ')}`);
      }
    });
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
    clearTimeout(timer);
    if (run.stuck === undefined && (code !== 0 || signal)) run.crashed = { seed: current, code, signal, stderr };
    next = run.stuck !== undefined || run.crashed ? (current ?? next) + 1 : first + count;
  }
  return runs;
}

describe('hostile: fuzzing', function () {
  this.timeout(Math.max(600_000, CASES * 10_000));
  let work: string;
  before(function () {
    requireShared(this, TINY_LLAMA);
    work = mkdtempSync(path.join(tmpdir(), 'fuselm-fuzz-'));
  });
  after(() => work && rmSync(work, { recursive: true, force: true }));

  for (const kind of ['gguf', 'safetensors', 'config', 'tokenizer', 'template']) {
    it(`${kind}: ${CASES} seeded mutants end in a result or a FuselmError, no crash, no hang`, async () => {
      const runs = await fuzz(kind, 1, CASES, work);
      const problems = [
        ...runs.flatMap((r) => r.untyped),
        ...runs.filter((r) => r.stuck !== undefined).map((r) => `${kind} seed ${r.stuck}: no progress for ${PER_CASE_MS} ms`),
        ...runs.filter((r) => r.crashed).map((r) => `${kind} seed ${r.crashed!.seed}: the process died (code ${r.crashed!.code}, signal ${r.crashed!.signal}): ${r.crashed!.stderr.slice(-500)}`),
      ];
      const outcomes = new Map<string, number>();
      for (const r of runs) for (const o of r.outcomes.values()) outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
      console.log(`      ${kind}: ${[...outcomes].map(([o, n]) => `${o} ${n}`).join(', ')}`);
      assert.deepEqual(problems, []);
      assert.equal([...runs].reduce((n, r) => n + r.outcomes.size, 0), CASES);
    });
  }
});
