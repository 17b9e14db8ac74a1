/**
 * `fuselm serve` as a process: it listens at once, says when the model is ready, answers, and on
 * SIGTERM drains and exits 0. Bad usage exits 2.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { requireShared, sharedPath } from '../helpers/shared.js';

const entry = fileURLToPath(new URL('../../lib/cli/run.ts', import.meta.url));

describe('fuselm serve (the command)', function () {
  this.timeout(60_000);

  it('serves, then drains and exits 0 on SIGTERM', async function () {
    requireShared(this, 'models/stories260K.gguf');
    const child = spawn(process.execPath, ['--import', 'tsx', entry, 'serve', '-m', sharedPath('models/stories260K.gguf'), '--port', '0', '--threads', '1', '--parallel', '2', '--kv-blocks', '200'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    let err = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        err += d;
        const m = /listening on (\S+),/.exec(err);
        if (m && err.includes('ready')) resolve(m[1]);
      });
      child.on('exit', () => reject(new Error(`serve exited early: ${err}`)));
    });
    try {
      assert.equal((await fetch(`${url}/health`)).status, 200);
      const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 5, temperature: 0 }) });
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 5);
      // --kv-blocks sized the pool: the blocks of the finished request are kept, the rest free
      const metrics = await (await fetch(`${url}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
      assert.equal(value('fuselm_kv_blocks_used'), 0);
      assert.equal(value('fuselm_kv_blocks_kept') + value('fuselm_kv_blocks_free'), 200);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, err);
    assert.match(err, /draining/);
  });

  it('bad usage exits 2', async () => {
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', entry, 'serve', '-m', 'x.gguf', '--parallel', '0']).catch((e) => e);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--parallel must be an integer >= 1/);
  });
});
