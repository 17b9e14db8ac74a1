/**
 * Loaded by mocha before any test file (.mocharc.json "require"): the run gets its own temp
 * folder, which becomes os.tmpdir() (TMPDIR) for the tests and every process they start, and is
 * removed when the run ends. So whatever a test leaves there (a folder made at load time by a
 * suite that --grep then filtered out, a synthetic bench model, a compiled helper) goes with it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The run's folder; its name says whose it is when a killed run leaves it behind. */
export const TEST_TMPDIR = mkdtempSync(path.join(os.tmpdir(), 'fuselm-test-run-'));
process.env.TMPDIR = TEST_TMPDIR;

export function mochaGlobalTeardown(): void {
  rmSync(TEST_TMPDIR, { recursive: true, force: true });
}
