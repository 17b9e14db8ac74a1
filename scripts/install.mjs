// npm install hook: use a prebuilt or already built addon when one loads on this machine;
// otherwise build from source with cmake-js, first saying clearly what is missing if the
// tools to do so are not there. The source build is the CPU backend and the CUDA emulator (a
// few minutes); FUSELM_CUDA=ON adds the real CUDA backend (nvcc, four GPU architectures: much
// longer), which the published prebuild carries (`npm run prebuildify`).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

try {
  require('node-gyp-build')(root);
  process.exit(0); // a prebuild or an earlier build fits this machine
} catch {
  // none fits: build below
}

const missing = [];
const has = (cmd, args = ['--version']) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
if (!has('cmake')) missing.push('cmake (>= 3.18)');
if (!has('c++') && !has('g++') && !has('clang++')) missing.push('a C++17 compiler (g++ or clang++)');
if (missing.length) {
  console.error(
    `fuselm: no prebuilt binary fits this machine (${process.platform}-${process.arch}, Node ${process.version}), ` +
      `and building from source needs ${missing.join(' and ')}, which ${missing.length > 1 ? 'are' : 'is'} not on the PATH. ` +
      'Install them and run `npm rebuild fuselm`.',
  );
  process.exit(1);
}

const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const cuda = process.env.FUSELM_CUDA === 'ON' ? 'ON' : 'OFF';
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build', `--CDFUSELM_CUDA=${cuda}`], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
