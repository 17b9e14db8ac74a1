/**
 * Model references and `pullModel` against a hub stand-in on 127.0.0.1 (test/helpers/hub-server.ts,
 * HF_ENDPOINT pointing at it, FUSELM_CACHE a temporary folder): a download cut halfway resumes
 * with a Range request (within one pull, and in the next pull after giving up or an abort); 503s
 * are retried; a dead process's lock is taken over and a part of another version discarded; the sha256 the
 * hub reports is checked and a corrupted file removed; 404 is E_NOT_FOUND and a gated file
 * without HF_TOKEN E_AUTH, with the token it downloads and the token never reaches the CDN;
 * split GGUFs fetch every part and load from the first;
 * a model folder fetches what a model needs (its safetensors shards from the index) and nothing
 * else, and no name from the hub leaves the cache folder; two processes pulling one file make
 * one good file;
 * with the server stopped, the cached models load and generate; listCache / removeCached.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MODEL, FuselmError, cacheDir, listCache, loadModel, loadTokenizer, pullModel, removeCached } from '../../lib/index.js';
import { parseModelRef, splitGgufParts } from '../../lib/hub/ref.js';
import { HubServer, sha256 } from '../helpers/hub-server.js';
import { writeSplitGguf } from '../helpers/split-gguf.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

const stories = readFileSync(DEFAULT_MODEL);

async function rejects(p: Promise<unknown>, code: string, message?: RegExp): Promise<FuselmError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof FuselmError, `expected a FuselmError, got ${(e as Error).stack}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

/** Every file under `dir`, dot-files included (download leftovers must not remain). */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe('model references', () => {
  it('parses hf: files and folders (with revisions), URLs and paths; refuses malformed ones with E_INVALID_ARG', () => {
    assert.deepEqual(parseModelRef('hf:ggml-org/models/tinyllamas/stories260K.gguf'), { kind: 'hf-file', repo: 'ggml-org/models', file: 'tinyllamas/stories260K.gguf', revision: 'main' });
    assert.deepEqual(parseModelRef('hf:Qwen/Qwen3-0.6B@refs/pr/1'), { kind: 'hf-repo', repo: 'Qwen/Qwen3-0.6B', revision: 'refs/pr/1' });
    assert.deepEqual(parseModelRef('hf:a/b/c.gguf@v1.0'), { kind: 'hf-file', repo: 'a/b', file: 'c.gguf', revision: 'v1.0' });
    assert.equal(parseModelRef('https://example.com/m/x.gguf').kind, 'url');
    assert.deepEqual(parseModelRef('./models/x.gguf'), { kind: 'path', path: './models/x.gguf' });
    for (const bad of ['hf:', 'hf:owner', 'hf:owner/', 'hf:../x/y.gguf', 'hf:a/b/../../etc/passwd', 'hf:a/b/c.gguf@', 'hf:a/b@..', 'hf:a/b/x\\y.gguf', 'http://example.com/x.gguf', 'https://u:p@example.com/x.gguf', 'https://example.com/'])
      assert.throws(() => parseModelRef(bad), (e: FuselmError) => e.code === 'E_INVALID_ARG', bad);
  });

  it('the cache is $FUSELM_CACHE, else $XDG_CACHE_HOME/fuselm, else ~/.cache/fuselm', () => {
    const saved = { FUSELM_CACHE: process.env.FUSELM_CACHE, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME };
    try {
      process.env.FUSELM_CACHE = '/tmp/fz';
      process.env.XDG_CACHE_HOME = '/tmp/xdg';
      assert.equal(cacheDir(), '/tmp/fz');
      delete process.env.FUSELM_CACHE;
      assert.equal(cacheDir(), '/tmp/xdg/fuselm');
      process.env.XDG_CACHE_HOME = 'relative/is/ignored'; // as the XDG spec says
      assert.equal(cacheDir(), path.join(os.homedir(), '.cache/fuselm'));
      delete process.env.XDG_CACHE_HOME;
      assert.equal(cacheDir(), path.join(os.homedir(), '.cache/fuselm'));
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('names every part of a split GGUF', () => {
    assert.deepEqual(splitGgufParts('q4/m-00002-of-00003.gguf'), ['q4/m-00001-of-00003.gguf', 'q4/m-00002-of-00003.gguf', 'q4/m-00003-of-00003.gguf']);
    assert.deepEqual(splitGgufParts('m.gguf'), ['m.gguf']);
  });
});

describe('pullModel and the cache', function () {
  this.timeout(60_000);
  let hub: HubServer;
  let cache: string;
  const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, HF_TOKEN: process.env.HF_TOKEN, FUSELM_CACHE: process.env.FUSELM_CACHE };
  const fast = { retryDelayMs: 5 };
  let splitParts: Buffer[] = [];

  before(async () => {
    hub = await new HubServer().start();
    cache = mkdtempSync(path.join(os.tmpdir(), 'fuselm-cache-test-'));
    process.env.HF_ENDPOINT = hub.endpoint;
    process.env.FUSELM_CACHE = cache;
    delete process.env.HF_TOKEN;
    const [part1, part2] = await writeSplitGguf(DEFAULT_MODEL, path.join(cache, 'split-src'), 2);
    splitParts = [readFileSync(part1), readFileSync(part2)];
    rmSync(part1);
    rmSync(part2);
    hub.repos.set('tiny/stories', { files: new Map([['stories260K.gguf', stories], ['README.md', Buffer.from('# stories\n')], ['bad.gguf', stories]]) });
    hub.repos.set('tiny/split', {
      files: new Map([
        ['q/s-00001-of-00002.gguf', splitParts[0]],
        ['q/s-00002-of-00002.gguf', splitParts[1]],
      ]),
    });
    hub.repos.set('tiny/gated', { files: new Map([['stories260K.gguf', stories]]), token: 'hf_test_secret' });
    hub.corrupt.add('bad.gguf');
  });
  after(async () => {
    await hub.stop().catch(() => {});
    rmSync(cache, { recursive: true, force: true });
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  });
  beforeEach(() => {
    hub.requests.length = 0;
    delete process.env.HF_TOKEN;
  });

  it('a download cut halfway resumes with a Range request and is verified; the progress reaches the size', async () => {
    hub.cutNext.add(sha256(stories));
    const seen: number[] = [];
    const r = await pullModel('hf:tiny/stories/stories260K.gguf', { ...fast, onProgress: (p) => seen.push(p.bytes) });
    assert.equal(r.path, path.join(cache, 'hf/tiny/stories/main/stories260K.gguf'));
    assert.deepEqual(r.downloaded, ['stories260K.gguf']);
    assert.ok(readFileSync(r.path).equals(stories));
    const cdn = hub.requests.filter((q) => q.server === 'cdn');
    assert.equal(cdn.length, 2);
    assert.equal(cdn[0].range, undefined);
    const from = Number(/^bytes=(\d+)-$/.exec(cdn[1].range ?? '')?.[1]);
    assert.ok(from > 0 && from < stories.length, `resumed from ${cdn[1].range}`);
    assert.equal(seen.at(-1), stories.length);
    assert.deepEqual(tree(path.dirname(r.path)), ['stories260K.gguf'], 'no .part, .part.json or .lock left');
    // already cached: nothing fetched again
    hub.requests.length = 0;
    assert.deepEqual((await pullModel('hf:tiny/stories/stories260K.gguf')).downloaded, []);
    assert.equal(hub.requests.length, 0);
  });

  it('a pull that gives up keeps its bytes; the next pull resumes from them', async () => {
    hub.cutNext.add(sha256(stories));
    const ref = 'hf:tiny/stories/stories260K.gguf@main';
    rmSync(path.join(cache, 'hf/tiny/stories'), { recursive: true, force: true });
    await rejects(pullModel(ref, { retries: 0 }), 'E_NETWORK', /run again to resume/);
    const part = path.join(cache, 'hf/tiny/stories/main/.stories260K.gguf.part');
    const kept = readFileSync(part).length;
    assert.ok(kept > 0 && kept < stories.length);
    assert.ok(!existsSync(path.join(cache, 'hf/tiny/stories/main/stories260K.gguf')), 'no file at the final name before it is whole');
    hub.requests.length = 0;
    const r = await pullModel(ref);
    assert.ok(readFileSync(r.path).equals(stories));
    assert.equal(hub.requests.find((q) => q.server === 'cdn')?.range, `bytes=${kept}-`);
  });

  it('503s are retried; an AbortSignal stops a download with E_ABORTED, keeping its bytes and no lock', async () => {
    hub.repos.set('tiny/slow', { files: new Map([['stories260K.gguf', stories]]) });
    hub.unavailable = 2;
    hub.delayMs = 30;
    const ac = new AbortController();
    const dir = path.join(cache, 'hf/tiny/slow/main');
    try {
      await rejects(pullModel('hf:tiny/slow/stories260K.gguf', { ...fast, signal: ac.signal, onProgress: (p) => p.bytes > 0 && ac.abort() }), 'E_ABORTED');
    } finally {
      hub.delayMs = 0;
    }
    assert.equal(hub.requests.filter((q) => q.server === 'hub').length, 3, 'two 503s, then the redirect');
    assert.deepEqual(tree(dir), ['.stories260K.gguf.part', '.stories260K.gguf.part.json']);
    const r = await pullModel('hf:tiny/slow/stories260K.gguf', fast);
    assert.ok(readFileSync(r.path).equals(stories));
    assert.deepEqual(tree(dir), ['stories260K.gguf']);
  });

  it('a lock left by a dead process is taken over; a part of another version is discarded, not resumed', async () => {
    hub.repos.set('tiny/left', { files: new Map([['stories260K.gguf', stories]]) });
    const dir = path.join(cache, 'hf/tiny/left/main');
    mkdirSync(dir, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(path.join(dir, '.stories260K.gguf.lock'), String(dead));
    writeFileSync(path.join(dir, '.stories260K.gguf.part'), Buffer.alloc(1000, 7));
    writeFileSync(path.join(dir, '.stories260K.gguf.part.json'), 'not json');
    const r = await pullModel('hf:tiny/left/stories260K.gguf', fast);
    assert.ok(readFileSync(r.path).equals(stories));
    assert.deepEqual(tree(dir), ['stories260K.gguf']);
    const cdn = hub.requests.filter((q) => q.server === 'cdn');
    assert.deepEqual(cdn.map((q) => q.range), ['bytes=1000-', undefined], 'the Range answer was dropped for a whole download');
  });

  it("a body that does not match the hub's sha256 is E_CHECKSUM and removed", async () => {
    await rejects(pullModel('hf:tiny/stories/bad.gguf', fast), 'E_CHECKSUM', /sha256 is [0-9a-f]{64}, the server reported [0-9a-f]{64}; the file was removed/);
    const dir = path.join(cache, 'hf/tiny/stories/main');
    assert.deepEqual(tree(dir).filter((f) => f.includes('bad')), []);
  });

  it("a non-LFS file is checked against its ETag (git's blob id)", async () => {
    const r = await pullModel('hf:tiny/stories/README.md', fast);
    assert.equal(readFileSync(r.path, 'utf8'), '# stories\n');
  });

  it('404 is E_NOT_FOUND; a gated file without HF_TOKEN is E_AUTH saying to set it; with it, the token goes to the hub only', async () => {
    await rejects(pullModel('hf:tiny/stories/missing.gguf', fast), 'E_NOT_FOUND', /hf:tiny\/stories\/missing\.gguf: not found .*404: "EntryNotFound/);
    await rejects(pullModel('hf:nobody/nothing', fast), 'E_NOT_FOUND', /RepoNotFound/);
    await rejects(pullModel('hf:tiny/stories/x.gguf@v2', fast), 'E_NOT_FOUND', /RevisionNotFound/);
    await rejects(pullModel('hf:tiny/gated/stories260K.gguf', fast), 'E_AUTH', /401.*set HF_TOKEN/);
    process.env.HF_TOKEN = 'hf_wrong';
    const e = await rejects(pullModel('hf:tiny/gated/stories260K.gguf', fast), 'E_AUTH', /HF_TOKEN was sent/);
    assert.ok(!e.message.includes('hf_wrong'), 'the token is never in a message');
    process.env.HF_TOKEN = 'hf_test_secret';
    hub.requests.length = 0;
    const r = await pullModel('hf:tiny/gated/stories260K.gguf', fast);
    assert.ok(readFileSync(r.path).equals(stories));
    assert.equal(hub.requests.find((q) => q.server === 'hub')?.authorization, 'Bearer hf_test_secret');
    assert.deepEqual(hub.requests.filter((q) => q.server === 'cdn').map((q) => q.authorization), [undefined]);
  });

  it('a URL is fetched (through the redirect, checked by its sha256) into the cache once', async () => {
    const url = `${hub.endpoint}/tiny/stories/resolve/main/stories260K.gguf?download=true`;
    const r = await pullModel(url, fast);
    assert.equal(path.basename(r.path), 'stories260K.gguf');
    assert.ok(readFileSync(r.path).equals(stories));
    assert.equal(readFileSync(path.join(path.dirname(r.path), '.source'), 'utf8'), url + '\n');
    assert.ok((await listCache()).some((m) => m.ref === url && m.bytes === stories.length));
    hub.requests.length = 0;
    assert.deepEqual((await pullModel(url)).downloaded, []);
    assert.equal(hub.requests.length, 0);
  });

  it('a split GGUF fetches every part, and the pulled model loads from its first part', async () => {
    const r = await pullModel('hf:tiny/split/q/s-00001-of-00002.gguf', fast);
    assert.deepEqual(r.downloaded, ['q/s-00001-of-00002.gguf', 'q/s-00002-of-00002.gguf']);
    const dir = path.join(cache, 'hf/tiny/split/main/q');
    assert.ok(readFileSync(path.join(dir, 's-00001-of-00002.gguf')).equals(splitParts[0]));
    assert.ok(readFileSync(path.join(dir, 's-00002-of-00002.gguf')).equals(splitParts[1]));
    const split = await loadModel(r.path, { threads: 1 });
    const whole = await loadModel(DEFAULT_MODEL, { threads: 1 });
    try {
      assert.deepEqual((await split.generate('Once upon a time', { maxTokens: 16 })).ids, (await whole.generate('Once upon a time', { maxTokens: 16 })).ids);
    } finally {
      await split.dispose();
      await whole.dispose();
    }
  });

  it('a model folder fetches config, tokenizer files and the shards its index names, and nothing else', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-llama-sharded/model.safetensors.index.json');
    const src = sharedPath('models/hf/neural-api-tiny-llama-sharded');
    const files = new Map(readdirSync(src).map((f) => [f, readFileSync(path.join(src, f))]));
    files.set('consolidated.safetensors', Buffer.from('not needed'));
    files.set('onnx/model.onnx', Buffer.from('not needed'));
    files.set('README.md', Buffer.from('not needed'));
    hub.repos.set('tiny/folder', { files });
    const r = await pullModel('hf:tiny/folder', fast);
    assert.equal(r.path, path.join(cache, 'hf/tiny/folder/main'));
    assert.deepEqual(
      tree(r.path).filter((f) => !f.startsWith('.')),
      ['config.json', 'model.safetensors.index.json', 'tiny_llama-00001-of-00002.safetensors', 'tiny_llama-00002-of-00002.safetensors'],
    );
    assert.deepEqual(tree(r.path).filter((f) => f.startsWith('.')), ['.fuselm-folder.json']);
    // an index naming a file outside the repository is refused before anything is written there
    const evil = new Map(files);
    evil.set('model.safetensors.index.json', Buffer.from(JSON.stringify({ weight_map: { 'a.weight': '../../../evil.safetensors' } })));
    hub.repos.set('tiny/evil', { files: evil });
    await rejects(pullModel('hf:tiny/evil', fast), 'E_INVALID_ARG', /bad file path "\.\.\/\.\.\/\.\.\/evil\.safetensors"/);
    assert.ok(!existsSync(path.join(cache, 'hf/evil.safetensors')) && !existsSync(path.join(cache, 'evil.safetensors')));
    // a repository with no config.json is no folder: the message names its GGUFs
    await rejects(pullModel('hf:tiny/stories', fast), 'E_INVALID_ARG', /no config\.json.*hf:tiny\/stories\/stories260K\.gguf/);
  });

  it('two processes pulling one file make one good file (the second waits on the lock)', async function () {
    hub.repos.set('tiny/race', { files: new Map([['stories260K.gguf', stories]]) });
    const entry = fileURLToPath(new URL('../../lib/hub/pull.ts', import.meta.url));
    const script = `const { pullModel } = await import(${JSON.stringify(entry)}); console.log('start'); const r = await pullModel('hf:tiny/race/stories260K.gguf'); console.log(JSON.stringify(r));`;
    const start = () => {
      const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: process.env, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      const started = new Promise<void>((r) => c.stdout.on('data', () => out.startsWith('start') && r()));
      const done = new Promise<{ path: string; downloaded: string[] }>((resolve, reject) =>
        c.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.split('\n')[1])) : reject(new Error(`exit ${code}`)))),
      );
      return { started, done };
    };
    const until = async (cond: () => boolean) => {
      while (!cond()) await new Promise((r) => setTimeout(r, 20));
    };
    // the first process's bytes are held back until the second is surely waiting on the lock
    let release!: () => void;
    hub.hold = new Promise<void>((r) => (release = r));
    try {
      const first = start();
      await until(() => hub.requests.some((q) => q.server === 'cdn'));
      const second = start();
      await second.started;
      await new Promise((r) => setTimeout(r, 500));
      release();
      const results = await Promise.all([first.done, second.done]);
      assert.equal(results[0].path, results[1].path);
      assert.ok(readFileSync(results[0].path).equals(stories));
      assert.deepEqual(results.map((x) => x.downloaded), [['stories260K.gguf'], []], 'the first downloaded, the second used its file');
    } finally {
      release();
      hub.hold = undefined;
    }
    assert.equal(hub.requests.filter((q) => q.server === 'cdn').length, 1, 'the bytes were fetched once');
    assert.deepEqual(tree(path.join(cache, 'hf/tiny/race/main')), ['stories260K.gguf']);
  });

  it('with the server stopped, the cached models load and run; listCache lists them, removeCached removes', async function () {
    await pullModel('hf:tiny/stories/stories260K.gguf');
    await hub.stop();
    const viaRef = await loadModel('hf:tiny/stories/stories260K.gguf', { threads: 1 });
    const bundled = await loadModel(undefined, { threads: 1 });
    try {
      const a = await viaRef.generate('Once upon a time', { maxTokens: 16 });
      const b = await bundled.generate('Once upon a time', { maxTokens: 16 });
      assert.equal(a.ids.length, 16);
      assert.deepEqual(a.ids, b.ids);
    } finally {
      await viaRef.dispose();
      await bundled.dispose();
    }
    assert.deepEqual((await loadTokenizer('hf:tiny/stories/stories260K.gguf')).encode('Lily'), (await loadTokenizer()).encode('Lily'));
    if (existsSync(path.join(cache, 'hf/tiny/folder/main/.fuselm-folder.json'))) {
      const folder = await loadModel('hf:tiny/folder', { threads: 1 });
      const direct = await loadModel(sharedPath('models/hf/neural-api-tiny-llama-sharded'), { threads: 1 });
      try {
        assert.deepEqual(await folder.evaluate([1, 2, 3]), await direct.evaluate([1, 2, 3]));
      } finally {
        await folder.dispose();
        await direct.dispose();
      }
    }
    // not cached and no server: a network error at once, not a hang or a crash
    await rejects(loadModel('hf:tiny/stories/other.gguf', { threads: 1 }).then((m) => m.dispose()), 'E_NETWORK', /cannot reach .*ECONNREFUSED/);

    const listed = await listCache();
    const byRef = new Map(listed.map((m) => [m.ref, m]));
    assert.equal(byRef.get('hf:tiny/stories/stories260K.gguf')?.bytes, stories.length);
    assert.equal(byRef.get('hf:tiny/split/q/s-00001-of-00002.gguf')?.bytes, splitParts[0].length + splitParts[1].length, 'a split GGUF is one entry with all its parts');
    assert.ok(!byRef.has('hf:tiny/split/q/s-00002-of-00002.gguf'));
    assert.deepEqual(await removeCached('hf:tiny/stories/stories260K.gguf'), [path.join(cache, 'hf/tiny/stories/main/stories260K.gguf')]);
    assert.ok(!(await listCache()).some((m) => m.ref === 'hf:tiny/stories/stories260K.gguf'));
    await rejects(removeCached('hf:tiny/stories/stories260K.gguf'), 'E_NOT_FOUND');
    await removeCached('hf:tiny/split');
    assert.ok(!existsSync(path.join(cache, 'hf/tiny/split')));
  });
});
