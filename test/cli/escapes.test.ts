/**
 * processEscapes reads command-line escapes as llama.cpp does: the simple ones, \xNN bytes
 * decoded together as UTF-8, \uNNNN code units; unknown or cut escapes are kept as written.
 */
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { processEscapes } from '../../lib/cli/escapes.js';

describe('CLI escapes', () => {
  it('turns the simple escapes into their characters', () => {
    assert.equal(processEscapes('a\\nb\\tc\\rd', '--stop'), 'a\nb\tc\rd');
    assert.equal(processEscapes('\\\\n', '--stop'), '\\n', 'an escaped backslash followed by n is not a newline');
    assert.equal(processEscapes(`\\"\\'`, '--stop'), `"'`);
  });

  it('decodes \\xNN bytes as UTF-8 and \\uNNNN as code units', () => {
    assert.equal(processEscapes('\\x41\\x0a', '--stop'), 'A\n');
    assert.equal(processEscapes('\\xe2\\x80\\x9cq', '--stop'), '\u201cq');
    assert.equal(processEscapes('\\u00e9\\ud83d\\ude00', '--stop'), 'é😀');
    assert.throws(() => processEscapes('\\xff', '--stop'), (e) => e instanceof InvalidArgumentError && /--stop/.test(e.message) && /\\xff/.test(e.message));
  });

  it('keeps unknown and cut escapes as written', () => {
    for (const s of ['\\q', '\\x4', '\\xzz', '\\u12', 'end\\', 'plain .']) assert.equal(processEscapes(s, '--stop'), s);
  });
});
