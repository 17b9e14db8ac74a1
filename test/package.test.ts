/**
 * The npm package as a user gets it: `npm pack` holds the prebuild, ESM + CommonJS JS, types,
 * CLI, README and LICENSE and no tests or benchmarks; installed with --ignore-scripts (from
 * npm's cache where it has the packages, from the registry where not: a machine that only ran
 * `npm ci` holds the tarballs but not the registry's metadata an install resolves against)
 * into an empty project, with cmake, nvcc and every compiler hidden from PATH, it imports and
 * requires, type-checks a TypeScript consumer, runs `fuselm doctor` (the prebuild holds the CUDA
 * backend where nvcc is here; without an NVIDIA driver doctor says so), generates from a tiny
 * GGUF written by our writer, and runs the bundled default model (stories260K) from the CLI with
 * no -m and from `loadModel()` with no path. The tarball stays under 40 MB. The prebuild's
 * glibc / libstdc++ floor is what README states.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHAPES, writeSyntheticLlama } from '../lib/tools/synthetic.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npmCli = path.join(path.dirname(process.execPath), '../lib/node_modules/npm/bin/npm-cli.js');

/** README's stated floor: glibc 2.34 and the libstdc++ of GCC 12 (GLIBCXX_3.4.30). */
const GLIBC_FLOOR = [2, 34];
const GLIBCXX_FLOOR = [3, 4, 30];

/** Compares dotted versions as number arrays: < 0, 0 or > 0. */
function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
  return 0;
}

/** The newest symbol version named `prefix` (GLIBC, GLIBCXX) that objdump -T lists. */
function newest(symbols: string, prefix: string): number[] {
  const versions = [...symbols.matchAll(new RegExp(`\\b${prefix}_([0-9.]+)`, 'g'))].map((m) => m[1].split('.').map(Number));
  return versions.sort(compareVersions).at(-1) ?? [];
}

const withCuda = (() => {
  try {
    execFileSync('nvcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Whether the dynamic linker's cache lists the NVIDIA driver's libcuda.so.1 (undefined: cannot tell). */
function driverLibrary(): boolean | undefined {
  try {
    return /\blibcuda\.so\.1\b/.test(execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }));
  } catch {
    return undefined;
  }
}

describe('npm package', function () {
  this.timeout(600_000);
  let dir: string;
  let tmp: string | undefined;
  let env: NodeJS.ProcessEnv;
  let tgzBytes = 0;
  const run = (file: string, args: string[], opts: { cwd?: string } = {}) =>
    execFileSync(file, args, { cwd: opts.cwd ?? dir, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  before(async function () {
    if (!existsSync(npmCli)) {
      console.log(`      skipped: npm's CLI not found at ${npmCli}`);
      this.skip();
    }
    // the package's inputs: compiled JS and a prebuild made from the current sources, with the
    // CUDA backend as published where nvcc is here (for one GPU architecture: the compile that
    // keeps the CUDA sources from rotting in CI), CPU-only where it is not
    execFileSync('npm', ['run', 'build:ts'], { cwd: root, stdio: 'ignore' });
    if (!withCuda) console.log('      the prebuild is CPU-only: nvcc is not on the PATH, so the CUDA backend is not checked');
    execFileSync('npm', ['run', 'prebuildify'], { cwd: root, stdio: 'ignore', env: { ...process.env, ...(withCuda ? { FUSELM_CUDA_ARCHS: '90' } : { FUSELM_CUDA: 'OFF' }) } });
    // prebuildify moves build/Release/fuselm.node (a copy of build-prebuild's) into prebuilds/:
    // the developer build is linked again (nothing recompiles)
    execFileSync('npm', ['run', 'build:native'], { cwd: root, stdio: 'ignore' });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'fuselm-pack-'));
    dir = tmp;
    execFileSync('npm', ['pack', '--pack-destination', dir], { cwd: root, stdio: 'ignore' });
    // PATH holds node and nothing else: no cmake, nvcc, cc, c++, g++ or clang
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, path.join(bin, 'node'));
    env = { HOME: process.env.HOME, PATH: bin, npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), '.npm') };
    for (const tool of ['cmake', 'nvcc', 'cc', 'c++', 'g++', 'gcc', 'clang']) assert.throws(() => run('sh', ['-c', `command -v ${tool}`]), `${tool} is still on PATH`);
    const app = path.join(dir, 'app');
    mkdirSync(app);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
    tgzBytes = statSync(path.join(dir, tgz)).size;
    run(process.execPath, [npmCli, 'install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', path.join(dir, tgz)], { cwd: app });
    dir = app;
    await writeSyntheticLlama(path.join(dir, 'tiny.gguf'), SHAPES.tiny, 'q8_0');
  });
  // only the folder made above: a failure before `dir = app` must not remove os.tmpdir()
  after(() => tmp && rmSync(tmp, { recursive: true, force: true }));

  it('ships the prebuild, ESM and CommonJS JS, types, CLI, README and LICENSE, and no tests', () => {
    const pkg = path.join(dir, 'node_modules/fuselm');
    for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'bindings.d.ts', 'bin/fuselm.js', 'README.md', 'LICENSE', 'models/stories260K.gguf', 'models/LICENSE.stories260K'])
      assert.ok(existsSync(path.join(pkg, f)), f);
    assert.deepEqual(readdirSync(path.join(pkg, 'models')).sort(), ['LICENSE.stories260K', 'stories260K.gguf'], 'the default model is the only data file');
    assert.ok(tgzBytes > 0 && tgzBytes < 40e6, `the tarball is ${tgzBytes} bytes, more than 40 MB`);
    assert.ok(readdirSync(path.join(pkg, 'prebuilds/linux-x64')).some((f) => f.endsWith('.node')));
    for (const f of ['test', 'bench', 'cuda/emu/tests', 'lib']) assert.ok(!existsSync(path.join(pkg, f)), `${f} must not ship`);
  });

  it('imports, requires and generates with the prebuild', () => {
    const esm = run(process.execPath, ['--input-type=module', '-e', "import { devices } from 'fuselm'; console.log(devices().cpu.kernels)"]);
    assert.match(esm, /^(avx512|avx2|portable)\n$/);
    const cjs = run(process.execPath, ['-e', "const f = require('fuselm'); console.log(typeof f.loadModel, typeof f.FuselmError)"]);
    assert.equal(cjs, 'function function\n');
    const gen = run(process.execPath, [
      '--input-type=module',
      '-e',
      "import { loadModel } from 'fuselm'; const m = await loadModel('tiny.gguf'); const r = await m.generate([1, 40, 41], { maxTokens: 5, ignoreEog: true }); console.log(r.ids.length); await m.dispose();",
    ]);
    assert.equal(gen, '5\n');
  });

  it('runs the bundled default model: `fuselm run` with no -m, loadModel() with no path (ESM and CommonJS)', () => {
    const cli = run(process.execPath, ['node_modules/fuselm/bin/fuselm.js', 'run', 'Once upon a time', '--max-tokens', '16', '--threads', '1']);
    assert.match(cli, /^, there was a little girl named Lily\. She loved to play/);
    const esm = run(process.execPath, [
      '--input-type=module',
      '-e',
      "import { loadModel, DEFAULT_MODEL } from 'fuselm'; const m = await loadModel(); const r = await m.generate('Once upon a time', { maxTokens: 16 }); console.log(JSON.stringify([r.text, DEFAULT_MODEL])); await m.dispose();",
    ]);
    const [text, file] = JSON.parse(esm);
    assert.equal(cli, text + '\n');
    assert.equal(file, path.join(dir, 'node_modules/fuselm/models/stories260K.gguf'));
    const cjs = run(process.execPath, ['-e', "const f = require('fuselm'); f.loadModel().then(async (m) => { console.log((await m.generate('Once upon a time', { maxTokens: 16 })).text); await m.dispose(); })"]);
    assert.equal(cjs, cli);
  });

  it('type-checks a TypeScript consumer against the shipped types', () => {
    writeFileSync(
      path.join(dir, 'consumer.ts'),
      `import { loadModel, FuselmError, type GenerateResult } from 'fuselm';
const model = await loadModel('tiny.gguf', { threads: 1 });
const r: GenerateResult = await model.generate('hello', { maxTokens: 4, temperature: 0.7, topK: 20, stop: ['x'] });
const n: number = r.ids.length;
const e = new FuselmError('E_IO', 'x');
const code: 'E_IO' | string = e.code;
export { n, code };
`,
    );
    const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
    run(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2022,esnext.disposable,dom', '--skipLibCheck', 'false', '--types', 'node', '--typeRoots', path.join(root, 'node_modules/@types'), 'consumer.ts']);
  });

  it('runs `fuselm doctor` from the installed bin; the prebuild carries the CUDA backend (where nvcc built it)', () => {
    const out = JSON.parse(run(process.execPath, ['node_modules/fuselm/bin/fuselm.js', 'doctor', '--json']));
    assert.equal(out.ok, true);
    assert.equal(out.devices.cuda.compiled, withCuda);
    if (withCuda && out.devices.cuda.devices.length === 0) assert.ok(out.devices.cuda.reason, 'no GPU: doctor says why');
    if (withCuda && driverLibrary() === false) assert.equal(out.devices.cuda.reason, 'no NVIDIA driver (libcuda not found)');
  });

  it('needs no newer glibc or libstdc++ than README states', () => {
    const dirPre = path.join(dir, 'node_modules/fuselm/prebuilds/linux-x64');
    const node = path.join(dirPre, readdirSync(dirPre).find((f) => f.endsWith('.node'))!);
    const syms = execFileSync('objdump', ['-T', node], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const glibc = newest(syms, 'GLIBC'), glibcxx = newest(syms, 'GLIBCXX');
    assert.ok(compareVersions(glibc, GLIBC_FLOOR) <= 0, `needs GLIBC_${glibc.join('.')}, README says ${GLIBC_FLOOR.join('.')}`);
    assert.ok(compareVersions(glibcxx, GLIBCXX_FLOOR) <= 0, `needs GLIBCXX_${glibcxx.join('.')}, README says ${GLIBCXX_FLOOR.join('.')}`);
  });

  it('uses AVX only inside the kernels chosen at run time (the rest is x86-64 baseline)', () => {
    // the prebuild before prebuildify stripped it
    const node = path.join(root, 'build-prebuild/Release/fuselm.node');
    const asm = execFileSync('objdump', ['-d', '--no-show-raw-insn', '-C', node], { encoding: 'utf8', maxBuffer: 1 << 30 });
    const offenders = new Set<string>();
    let fn = '';
    for (const line of asm.split('\n')) {
      const head = /^[0-9a-f]+ <(.*)>:$/.exec(line);
      if (head) fn = head[1];
      else if (/%[yz]mm\d|\tv[a-z]/.test(line) && !/avx2|avx512|vnni|simd256|simd512/i.test(fn)) offenders.add(fn);
    }
    assert.deepEqual([...offenders].slice(0, 10), [], 'functions outside the dispatched kernels use AVX instructions');
  });

  it('without a fitting prebuild, the install script names the missing build tools', () => {
    const pkg = path.join(dir, 'node_modules/fuselm');
    rmSync(path.join(pkg, 'prebuilds'), { recursive: true });
    let err: { status: number; stderr: string } | undefined;
    try {
      run(process.execPath, ['scripts/install.mjs'], { cwd: pkg });
    } catch (e) {
      err = e as { status: number; stderr: string };
    }
    assert.equal(err?.status, 1);
    assert.match(err!.stderr, /no prebuilt binary fits this machine .* needs cmake \(>= 3\.18\) and a C\+\+17 compiler/);
  });
});
