/**
 * README's JavaScript/TypeScript code blocks run as written on every Node the package supports
 * (package.json's engines: >= 20). Each block is type-stripped (esbuild, target esnext: nothing
 * lowered) and run by plain Node as an ES module, in a folder where the paths it names
 * (stories260K.gguf, path/to/hf-folder, ...) are links to ../shared models, with `fuselm`
 * resolved to lib/ (other packages from the project's node_modules). Model references a block names (`hf:owner/repo/file.gguf`) are served by the
 * hub stand-in (test/helpers/hub-server.ts, HF_ENDPOINT pointing at it, a fresh cache) with the
 * bundled stories260K in the named file's place, so the pull-on-first-use path runs as written.
 * The same block is also compiled for the oldest supported Node: a block that
 * needs lowering there (`await using` on Node 20) uses syntax that Node cannot parse.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { transformSync } from 'esbuild';
import { requireShared, sharedPath } from './helpers/shared.js';
import { HubServer } from './helpers/hub-server.js';
import { DEFAULT_MODEL } from '../lib/default-model.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const oldestNode = `node${/>=\s*(\d+)/.exec(pkg.engines.node)![1]}`;

/** The paths README's examples name, and the ../shared files standing in for them. */
const PLACEHOLDERS: Record<string, string> = {
  'stories260K.gguf': 'models/stories260K.gguf',
  'model.gguf': 'models/stories260K.gguf',
  'path/to/hf-folder': 'models/hf/campello-tiny-llama-synthetic',
  'path/to/bert-folder': 'models/hf/lm-buddy-bert-tiniest',
  'tokenizer.json': 'models/hf/campello-tiny-llama-synthetic/tokenizer.json',
};

/** Fenced blocks whose language is JS or TS, with the README line each starts on. */
function codeBlocks(markdown: string): { line: number; lang: string; code: string }[] {
  const out = [];
  for (const m of markdown.matchAll(/^```(js|javascript|mjs|ts|typescript)\n([\s\S]*?)^```$/gm))
    out.push({ line: markdown.slice(0, m.index).split('\n').length, lang: m[1], code: m[2] });
  return out;
}

describe('README examples', function () {
  const blocks = codeBlocks(readFileSync(path.join(root, 'README.md'), 'utf8'));

  it('README has JS/TS blocks to check (the extraction works)', () => {
    assert.ok(blocks.length >= 1);
    assert.ok(blocks.some((b) => b.code.includes("from 'fuselm'")));
  });

  for (const b of blocks) {
    const compile = (target: string) => transformSync(b.code, { loader: 'ts', format: 'esm', target }).code;

    it(`the block at README.md:${b.line} needs no syntax newer than ${oldestNode}`, () => {
      assert.equal(compile(oldestNode), compile('esnext'), `esbuild had to lower the block for ${oldestNode}: it does not parse there`);
    });

    it(`the block at README.md:${b.line} runs on this Node (${process.version})`, async function () {
      requireShared(this, ...Object.values(PLACEHOLDERS));
      const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-readme-'));
      let hub: HubServer | undefined;
      try {
        for (const [name, rel] of Object.entries(PLACEHOLDERS)) {
          mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
          symlinkSync(sharedPath(rel), path.join(dir, name));
        }
        // the other packages a block imports (openai, ...) resolve from the project's node_modules
        symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
        const lib = pathToFileURL(path.join(root, 'lib/index.ts')).href;
        const code = compile('esnext').replace(/from\s+(['"])fuselm\1/g, `from '${lib}'`);
        const file = path.join(dir, 'example.mjs');
        writeFileSync(file, code);
        const refs = [...b.code.matchAll(/hf:([\w.-]+\/[\w.-]+)\/([\w./-]+\.gguf)/g)];
        if (refs.length) {
          hub = await new HubServer().start();
          for (const [, repo, name] of refs) hub.repos.set(repo, { files: new Map([[name, readFileSync(DEFAULT_MODEL)]]) });
        }
        const env = { ...process.env, ...(hub ? { HF_ENDPOINT: hub.endpoint, FUSELM_CACHE: path.join(dir, 'cache') } : {}) };
        // tsx only so that lib/'s .ts files load; the example itself is .mjs, which it leaves as written
        const r = await promisify(execFile)(process.execPath, ['--import', tsxLoader, file], { cwd: dir, env, timeout: 100_000 }).catch((e) => e);
        assert.equal(r.code ?? 0, 0, `README.md:${b.line} failed:\n${r.stderr}`);
        if (hub) assert.ok(hub.requests.length > 0, 'the block pulled its model reference');
      } finally {
        await hub?.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
