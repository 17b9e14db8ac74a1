/**
 * Download speed of pullModel from the hub stand-in on 127.0.0.1 (test/helpers/hub-server.ts, in
 * a child process: a 302 to a second server, as the hub redirects to its CDN), 256 MiB of random bytes, into a
 * fresh cache each run: MB/s of the whole pull (sha256 verified, written, fsync'd, renamed),
 * beside curl (`curl -sL -o`, when installed) fetching the same URL to a file in the same run,
 * alone and followed by `sha256sum` of the file (verified as fuselm verifies).
 * The network is loopback, so this measures fuselm's own cost per byte (fetch, hashing, writes),
 * not a real link. Medians of 3 runs after one warm-up.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pullModel } from '../lib/hub/pull.js';
import { median, type BenchResult } from './util.js';

const BYTES = 256 << 20;

function hasCurl(): boolean {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The stand-in runs in a child process, so that its event loop does not share a thread with the
 * client measured (curl is another process too). Resolves with its endpoint and a stop function.
 */
async function startHub(): Promise<{ endpoint: string; stop: () => void }> {
  const helper = fileURLToPath(new URL('../test/helpers/hub-server.ts', import.meta.url));
  const script = `const { HubServer } = await import(${JSON.stringify(helper)}); const { randomFillSync } = await import('node:crypto');
const hub = await new HubServer().start(); hub.repos.set('bench/blob', { files: new Map([['blob.gguf', randomFillSync(Buffer.alloc(${BYTES}))]]) });
console.log(hub.endpoint);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const endpoint = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(String(d).trim()));
    child.once('exit', (code) => reject(new Error(`the hub stand-in exited with ${code}`)));
  });
  return { endpoint, stop: () => child.kill() };
}

export async function run(): Promise<BenchResult[]> {
  const hub = await startHub();
  const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, FUSELM_CACHE: process.env.FUSELM_CACHE };
  process.env.HF_ENDPOINT = hub.endpoint;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fuselm-pull-bench-'));
  const url = `${hub.endpoint}/bench/blob/resolve/main/blob.gguf`;
  const timed = async (fn: () => Promise<void> | void): Promise<number> => {
    const t = performance.now();
    await fn();
    return (performance.now() - t) / 1000;
  };
  try {
    const fuselm: number[] = [];
    const curl: number[] = [];
    const curlVerified: number[] = [];
    const curlThere = hasCurl();
    for (let rep = 0; rep < 4; rep++) {
      process.env.FUSELM_CACHE = path.join(tmp, `cache-${rep}`);
      const s = await timed(async () => void (await pullModel('hf:bench/blob/blob.gguf')));
      rmSync(process.env.FUSELM_CACHE, { recursive: true, force: true });
      if (rep > 0) fuselm.push(s);
      if (curlThere) {
        const out = path.join(tmp, 'curl.bin');
        const sh = (cmd: string, args: string[]) => new Promise<void>((resolve, reject) => void execFile(cmd, args, (e) => (e ? reject(e) : resolve())));
        const c = await timed(() => sh('curl', ['-sfL', '-o', out, url]));
        const v = await timed(() => sh('sha256sum', [out]));
        rmSync(out, { force: true });
        if (rep > 0) {
          curl.push(c);
          curlVerified.push(c + v);
        }
      }
    }
    const results: BenchResult[] = [];
    const f = median(fuselm);
    results.push({ name: 'pullModel 256 MiB (sha256, fsync, rename)', seconds: f, bytes: BYTES, MBps: BYTES / 1e6 / f });
    if (curl.length) {
      const c = median(curl);
      results.push({ name: 'curl -sL -o 256 MiB (peer)', seconds: c, bytes: BYTES, MBps: BYTES / 1e6 / c, fuselmVsCurl: c / f });
      const cv = median(curlVerified);
      results.push({ name: 'curl, then sha256sum (peer, verified too)', seconds: cv, bytes: BYTES, MBps: BYTES / 1e6 / cv, fuselmVsCurlVerified: cv / f });
    }
    return results;
  } finally {
    hub.stop();
    rmSync(tmp, { recursive: true, force: true });
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}
