#!/usr/bin/env node
// prebuildify drives node-gyp (`node-gyp rebuild --target=... --release ...`); this stand-in
// takes those arguments and builds the published addon with cmake-js instead. Used as
// PREBUILD_NODE_GYP by `npm run prebuildify`.
//
// The prebuild carries the CUDA backend, so it is built in its own folder, build-prebuild/,
// with FUSELM_CUDA=ON (the developer build in build/ is CPU + emulator only) and checked by
// loading it: a build without nvcc fails here instead of publishing a CPU-only addon.
// FUSELM_CUDA_ARCHS=90 narrows the GPU architectures (tests: one compile instead of four);
// FUSELM_CUDA=OFF makes a CPU-only prebuild on purpose (tests on machines without nvcc).
// The .node is then copied to build/Release, where prebuildify looks for it (and strips it
// and moves it into prebuilds/); build-prebuild/ keeps the unstripped one.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
if (args[0] !== 'rebuild') {
  console.error(`cmake-js-as-node-gyp: only "rebuild" is supported, got ${args.join(' ')}`);
  process.exit(2);
}
const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const debug = args.includes('--debug');
const cuda = process.env.FUSELM_CUDA === 'OFF' ? 'OFF' : 'ON';
const archs = process.env.FUSELM_CUDA_ARCHS;
const r = spawnSync(
  process.execPath,
  [
    cmakeJs, 'compile', '--out', 'build-prebuild', `--CDFUSELM_CUDA=${cuda}`, '--CDFUSELM_EMU_TESTS=OFF',
    ...(archs ? [`--CDFUSELM_CUDA_ARCHS=${archs}`] : []), ...(debug ? ['--debug'] : []),
  ],
  { stdio: 'inherit' },
);
if (r.status !== 0) process.exit(r.status ?? 1);

const config = debug ? 'Debug' : 'Release';
const built = path.join('build-prebuild', config);
const names = readdirSync(built).filter((n) => n.endsWith('.node'));
for (const f of names) {
  const compiled = require(path.resolve(built, f)).cudaInfo().compiled;
  if (compiled !== (cuda === 'ON')) {
    console.error(
      cuda === 'ON'
        ? `cmake-js-as-node-gyp: ${f} was built without the CUDA backend (is nvcc on the PATH?); the published prebuild must carry it`
        : `cmake-js-as-node-gyp: ${f} has the CUDA backend although FUSELM_CUDA=OFF`,
    );
    process.exit(1);
  }
}
if (cuda === 'OFF') console.error('cmake-js-as-node-gyp: FUSELM_CUDA=OFF: this prebuild has no CUDA backend (not for publishing)');
// a fresh copy (a new inode) in build/Release, so that a process which has the developer
// build loaded, such as the test run that packs the package, never sees its mapped code rewritten
const out = path.join('build', config);
mkdirSync(out, { recursive: true });
for (const f of names) {
  copyFileSync(path.join(built, f), path.join(out, f + '.tmp'));
  renameSync(path.join(out, f + '.tmp'), path.join(out, f));
}
