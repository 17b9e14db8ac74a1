#!/usr/bin/env node
// Prepares the GPU check (../shared/gpu/README.md) here, so the lent machine only runs it:
// builds the addon, fuselm_cuda_tests and fuselm_cuda_bench for one arch (default sm_90, the
// H200) into build-gpu/, bundles scripts/gpu-check.ts into one JS file, collects each kernel's
// registers and spills from ptxas (scripts/ptxas-report.mjs), and puts it all with the data and
// the Node binary into .gpu/ (git-ignored). Then prints the
// device command. Usage: node scripts/gpu-prepare.mjs [--arch 90] [--skip-build]
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = path.resolve(root, '..', 'shared');
const args = process.argv.slice(2);
const arch = args.includes('--arch') ? args[args.indexOf('--arch') + 1] : '90';
const out = path.join(root, '.gpu');
const build = path.join(root, 'build-gpu');

const sh = (cmd, argv) => execFileSync(cmd, argv, { cwd: root, stdio: 'inherit' });

if (!args.includes('--skip-build')) {
  // configure every time: compile alone keeps an existing cache's options
  sh('npx', ['cmake-js', 'configure', '--out', 'build-gpu', `--CDFUSELM_CUDA_ARCHS=${arch}`, '--CDFUSELM_CUDA_BENCH=ON']);
  sh('npx', ['cmake-js', 'build', '--out', 'build-gpu']);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(out);

sh('npx', ['esbuild', 'scripts/gpu-check.ts', '--bundle', '--platform=node', '--format=esm', '--target=node20',
  `--outfile=${path.join(out, 'gpu-check.mjs')}`,
  // bundled ESM still needs a CommonJS require for the addon and node-gyp-build
  "--banner:js=import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"]);

// registers, spills, stack and static shared memory per kernel, for the check to report
// (a spill does not stop the preparation; a file that does not compile does)
sh('node', ['scripts/ptxas-report.mjs', '--arch', arch, '--out', path.join(out, 'ptxas.json')]);

const copies = [
  [path.join(build, 'Release', 'fuselm.node'), 'fuselm.node'],
  [path.join(build, 'Release', 'fuselm_cuda_tests'), 'fuselm_cuda_tests'],
  [path.join(build, 'Release', 'fuselm_cuda_bench'), 'fuselm_cuda_bench'],
  [path.join(shared, 'models', 'stories260K.gguf'), 'stories260K.gguf'],
  [path.join(shared, 'models', 'stories260K.oracle.json'), 'stories260K.oracle.json'],
  [path.join(shared, 'gpu', 'torch_peers.py'), 'torch_peers.py'],
  [path.join(shared, 'gpu', 'node-v20.20.2-linux-x64.xz'), 'node.xz'],
];
let total = 0;
for (const [from, to] of copies) {
  if (!existsSync(from)) throw new Error(`missing ${from}`);
  copyFileSync(from, path.join(out, to));
  total += statSync(from).size;
}
total += statSync(path.join(out, 'gpu-check.mjs')).size;
process.stdout.write(
  `.gpu/ is ready: ${(total / 2 ** 20).toFixed(1)} MiB (the carry limit is 64 MiB)\n` +
    'device command (run with carry [".gpu"]):\n' +
    '  xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node && chmod +x .gpu/fuselm_cuda_* && /tmp/node .gpu/gpu-check.mjs --out $OUT --quick\n',
);
