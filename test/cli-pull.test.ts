/**
 * The CLI's model commands as a user runs them, in child processes against the hub stand-in
 * (test/helpers/hub-server.ts): `run` with no -m runs the bundled stories260K (its greedy text is
 * llama.cpp's, when ../shared has the oracle); `pull` fetches into $FUSELM_CACHE; `ls` lists with
 * sizes; `run -m hf:...` and `inspect hf:...` then work with the server stopped; `rm` removes; a missing file is a
 * one-line error and exit code 1.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_MODEL } from '../lib/index.js';
import { HubServer } from './helpers/hub-server.js';
import { readSharedJson, sharedPath } from './helpers/shared.js';

const entry = fileURLToPath(new URL('../lib/cli/run.ts', import.meta.url));

describe('CLI: the default model, pull, ls, rm', function () {
  this.timeout(60_000);
  let hub: HubServer;
  let cache: string;
  let env: NodeJS.ProcessEnv;
  const fuselm = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      return { code: 0, ...(await promisify(execFile)(process.execPath, ['--import', 'tsx', entry, ...args], { env })) };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };

  before(async () => {
    hub = await new HubServer().start();
    hub.repos.set('tiny/stories', { files: new Map([['stories260K.gguf', readFileSync(DEFAULT_MODEL)]]) });
    cache = mkdtempSync(path.join(os.tmpdir(), 'fuselm-cli-cache-'));
    env = { ...process.env, HF_ENDPOINT: hub.endpoint, FUSELM_CACHE: cache };
    delete env.HF_TOKEN;
  });
  after(async () => {
    await hub.stop().catch(() => {});
    rmSync(cache, { recursive: true, force: true });
  });

  it('run with no -m runs the bundled stories260K', async () => {
    const r = await fuselm('run', 'Once upon a time', '-n', '64', '-t', '1');
    assert.equal(r.code, 0, r.stderr);
    const oracle = sharedPath('models/stories260K.oracle.json');
    if (existsSync(oracle)) assert.equal(r.stdout, readSharedJson('models/stories260K.oracle.json').greedy.text + '\n');
    else assert.match(r.stdout, /^, there was a little girl named Lily/);
  });

  it('pull fetches into the cache, ls lists it, run -m / inspect hf:... work offline, rm removes it', async () => {
    const ref = 'hf:tiny/stories/stories260K.gguf';
    const pulled = await fuselm('pull', ref, '--json');
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.deepEqual(JSON.parse(pulled.stdout), { ref, path: path.join(cache, 'hf/tiny/stories/main/stories260K.gguf'), downloaded: ['stories260K.gguf'] });
    const again = await fuselm('pull', ref);
    assert.equal(again.stdout, `${ref}: already in the cache, ${path.join(cache, 'hf/tiny/stories/main/stories260K.gguf')}\n`);
    const ls = await fuselm('ls');
    assert.equal(ls.stdout, `  1.19 MB  ${ref}\n`);
    const listed = JSON.parse((await fuselm('ls', '--json')).stdout);
    assert.deepEqual(listed.map((m: { ref: string; bytes: number }) => [m.ref, m.bytes]), [[ref, readFileSync(DEFAULT_MODEL).length]]);

    await hub.stop();
    const inspected = await fuselm('inspect', ref, '--json');
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.equal(JSON.parse(inspected.stdout).tensors.length, 48);
    const viaRef = await fuselm('run', '-m', ref, 'Once upon a time', '-n', '16', '-t', '1');
    const bundled = await fuselm('run', 'Once upon a time', '-n', '16', '-t', '1');
    assert.equal(viaRef.code, 0, viaRef.stderr);
    assert.equal(viaRef.stdout, bundled.stdout);

    const rm = await fuselm('rm', ref);
    assert.equal(rm.stdout, `removed ${path.join(cache, 'hf/tiny/stories/main/stories260K.gguf')}\n`);
    assert.equal((await fuselm('ls')).stdout, `no models in ${cache}\n`);
    const gone = await fuselm('rm', ref);
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, `fuselm: ${ref} is not in the cache (${cache})\n`);
  });
});
