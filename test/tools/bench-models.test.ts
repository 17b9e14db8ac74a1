/**
 * Benchmarks keep their synthetic models in one named folder ($FUSELM_BENCH_DIR, default
 * os.tmpdir()/fuselm-bench), written once and reused by later runs, never a half file; and
 * `npm run -s bench` prints one JSON document on stdout and nothing else.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { benchModel, benchModelDir, syntheticBenchModel } from '../../lib/tools/bench-models.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('benchmark models folder', () => {
  let dir: string;
  const saved = process.env.FUSELM_BENCH_DIR;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-bench-dir-'));
    process.env.FUSELM_BENCH_DIR = dir;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.FUSELM_BENCH_DIR;
    else process.env.FUSELM_BENCH_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it('defaults to os.tmpdir()/fuselm-bench', () => {
    delete process.env.FUSELM_BENCH_DIR;
    assert.equal(benchModelDir(), path.join(os.tmpdir(), 'fuselm-bench'));
  });

  it('writes a synthetic model once and reuses it', async () => {
    const file = await syntheticBenchModel('tiny', 'f16');
    assert.equal(path.dirname(file), dir);
    const written = statSync(file).mtimeMs;
    assert.equal(await syntheticBenchModel('tiny', 'f16'), file);
    assert.equal(statSync(file).mtimeMs, written, 'not written again');
    assert.deepEqual(readdirSync(dir), [path.basename(file)]);
  });

  it('leaves no file when writing fails', async () => {
    await assert.rejects(benchModel('broken.gguf', async () => { throw new Error('disk full'); }), /disk full/);
    await assert.rejects(
      benchModel('half.gguf', async (part) => {
        const { writeFileSync } = await import('node:fs');
        writeFileSync(part, 'half');
        throw new Error('killed');
      }),
      /killed/,
    );
    assert.deepEqual(readdirSync(dir), []);
  });
});

describe('npm run -s bench', () => {
  it('prints JSON and nothing else on stdout (progress and the table go to stderr)', async () => {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = await promisify(execFile)(npm, ['run', '-s', 'bench', '--', 'argmax 1x32000'], { cwd: root, maxBuffer: 1 << 26 });
    const doc = JSON.parse(r.stdout);
    assert.ok(doc.results.kernels.length >= 1, r.stdout);
    assert.match(r.stderr, /argmax 1x32000/);
  });
});
