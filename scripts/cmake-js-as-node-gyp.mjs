#!/usr/bin/env node
// prebuildify drives node-gyp (`node-gyp rebuild --target=... --release ...`); this stand-in
// takes those arguments and builds with cmake-js instead, into build/Release where prebuildify
// looks for the .node file. Used as PREBUILD_NODE_GYP by `npm run prebuildify`.
import { spawnSync } from 'node:child_process';
import { copyFileSync, readdirSync, renameSync } from 'node:fs';
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
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build', ...(debug ? ['--debug'] : [])], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
// prebuildify strips the .node in place and then moves it into prebuilds/. Hand it a fresh
// copy (a new inode), so that a process which has the built addon loaded, such as the test
// run that packs the package, never sees its mapped code rewritten under it.
const out = path.join('build', debug ? 'Debug' : 'Release');
for (const f of readdirSync(out).filter((n) => n.endsWith('.node'))) {
  copyFileSync(path.join(out, f), path.join(out, f + '.tmp'));
  renameSync(path.join(out, f + '.tmp'), path.join(out, f));
}
