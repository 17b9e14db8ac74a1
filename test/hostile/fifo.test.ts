/**
 * A FIFO (or another non-regular file) where a model file should be (issue 15, finding 5): open()
 * of a FIFO with no writer blocks a libuv thread forever; fuselm opens with O_NONBLOCK and checks
 * fstat first, so each is an E_IO naming the path, at once.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModel, loadTokenizer } from '../../lib/index.js';
import { readGguf } from '../../lib/formats/gguf.js';
import { requireShared } from '../helpers/shared.js';
import { TINY_LLAMA, rejectsCode, removeFolder, tinyFolder, tokJson } from './helpers.js';

function mkfifo(p: string): void {
  execFileSync('mkfifo', [p]);
}

describe('hostile: FIFOs in place of model files', function () {
  this.timeout(10_000);
  const dirs: string[] = [];
  before(function () {
    if (process.platform === 'win32') this.skip();
    try {
      execFileSync('mkfifo', ['--version'], { stdio: 'ignore' });
    } catch {
      console.log('      skipped: no mkfifo');
      this.skip();
    }
  });
  after(() => dirs.forEach(removeFolder));

  it('a FIFO as the GGUF path, or as the tokenizer path: E_IO naming it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-fifo-'));
    dirs.push(dir);
    const p = path.join(dir, 'model.gguf');
    mkfifo(p);
    await rejectsCode(loadModel(p), 'E_IO', /model\.gguf.*FIFO/);
    await rejectsCode(readGguf(p), 'E_IO', /FIFO/);
    await rejectsCode(loadTokenizer(p), 'E_IO', /FIFO/);
  });

  for (const name of ['config.json', 'generation_config.json', 'tokenizer.json', 'model.safetensors', 'chat_template.jinja', 'model.safetensors.index.json']) {
    it(`a FIFO as a folder's ${name}: E_IO naming it`, async function () {
      requireShared(this, TINY_LLAMA);
      const files: Record<string, string> = name === 'chat_template.jinja' ? { 'tokenizer.json': JSON.stringify(tokJson()) } : {};
      const dir = tinyFolder(() => {}, files);
      dirs.push(dir);
      try {
        unlinkSync(path.join(dir, name));
      } catch {
        // not in the folder yet
      }
      mkfifo(path.join(dir, name));
      await rejectsCode(loadModel(dir), 'E_IO', new RegExp(`${name.replaceAll('.', '\\.')}.*FIFO`));
    });
  }
});
