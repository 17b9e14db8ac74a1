/**
 * The test run's temp folder (test/helpers/tmp-sandbox.ts): os.tmpdir() in tests and in the
 * processes they start is the run's own folder, which the run removes at its end.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_TMPDIR } from './helpers/tmp-sandbox.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const mocha = path.join(path.dirname(createRequire(import.meta.url).resolve('mocha/package.json')), 'bin/mocha.js');

describe('test temp folder', () => {
  it("is os.tmpdir() here and in child processes, named as the run's", () => {
    assert.equal(os.tmpdir(), TEST_TMPDIR);
    assert.match(path.basename(TEST_TMPDIR), /^fuselm-test-run-/);
    assert.ok(existsSync(TEST_TMPDIR));
    assert.equal(execFileSync(process.execPath, ['-p', "require('node:os').tmpdir()"], { encoding: 'utf8' }).trim(), TEST_TMPDIR);
  });

  it('goes away at the end of a run, with what its tests left there', () => {
    const outer = mkdtempSync(path.join(os.tmpdir(), 'outer-'));
    try {
      const spec = path.join(outer, 'leaves.test.mjs');
      writeFileSync(spec, "import { writeFileSync } from 'node:fs'; import os from 'node:os'; import path from 'node:path';\nit('leaves a file', () => writeFileSync(path.join(os.tmpdir(), 'left.txt'), 'x'));\n");
      const out = execFileSync(process.execPath, [mocha, spec], { cwd: root, env: { ...process.env, TMPDIR: outer }, encoding: 'utf8' });
      assert.match(out, /1 passing/);
      // tsx-<uid> is tsx's compile cache, made before the run starts and meant to stay
      assert.deepEqual(readdirSync(outer).filter((f) => !f.startsWith('tsx-')), ['leaves.test.mjs'], 'the nested run removed its folder');
    } finally {
      rmSync(outer, { recursive: true, force: true });
    }
  });
});
