/**
 * The CLI as a user runs it, in a child process: `fuselm run` streams stories260K's greedy
 * continuation (equal to llama.cpp's) to stdout and speed to stderr; --json prints the result;
 * a model folder's generation_config.json temperature applies unless --temperature is given;
 * tokenize, inspect and doctor print what they say; bad usage exits 2 and a bad model file
 * exits 1 with a message, never a stack trace.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEmbeddingModel, loadModel } from '../lib/index.js';
import { readSharedJson, requireShared, sharedPath } from './helpers/shared.js';

const run = promisify(execFile);
const entry = fileURLToPath(new URL('../lib/cli/run.ts', import.meta.url));

async function fuselm(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', entry, ...args], { env: process.env });
    return { code: 0, ...r };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('CLI', function () {
  it('run streams the greedy continuation and reports speed', async function () {
    requireShared(this, 'models/stories260K.gguf', 'models/stories260K.oracle.json');
    const oracle = readSharedJson('models/stories260K.oracle.json');
    const r = await fuselm('run', '-m', sharedPath('models/stories260K.gguf'), 'Once upon a time', '--max-tokens', '64', '--threads', '1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, oracle.greedy.text + '\n');
    assert.match(r.stderr, /prompt: 5 tokens, [\d.]+ tok\/s; generated: 64 tokens, [\d.]+ tok\/s \(1 threads\)/);
  });

  it('run ends quietly with exit 0 when its stdout is closed early (`fuselm run … | head`)', async function () {
    requireShared(this, 'models/stories260K.gguf');
    // no --max-tokens: it would generate to the end of the context, far past the first chunk
    const child = spawn(process.execPath, ['--import', 'tsx', entry, 'run', '-m', sharedPath('models/stories260K.gguf'), 'Once upon a time', '-t', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise((r) => child.on('close', r));
    assert.equal(stderr, '', 'no stack trace and no speed line: generation stopped at the closed pipe');
    assert.equal(code, 0);
  });

  it("--stop is single-valued and repeatable, and reads escapes: --stop '\\n' is a newline", async function () {
    requireShared(this, 'models/stories260K.gguf', 'models/stories260K.oracle.json');
    const text: string = readSharedJson('models/stories260K.oracle.json').greedy.text;
    const model = sharedPath('models/stories260K.gguf');
    // the prompt after --stop's value is the prompt, not a second stop string
    const dot = await fuselm('run', '-m', model, '--stop', '.', 'Once upon a time', '-n', '64');
    assert.equal(dot.code, 0, dot.stderr);
    assert.equal(dot.stdout, text.slice(0, text.indexOf('.')) + '\n');
    const newline = await fuselm('run', '-m', model, 'Once upon a time', '-n', '64', '--stop', '\\n', '--json');
    assert.equal(newline.code, 0, newline.stderr);
    assert.equal(JSON.parse(newline.stdout).text, text.slice(0, text.indexOf('\n')));
    assert.equal(JSON.parse(newline.stdout).finishReason, 'stop');
    // repeated: whichever comes first
    const two = await fuselm('run', '-m', model, 'Once upon a time', '-n', '64', '--stop', 'ball', '--stop', 'Lily', '--json');
    assert.equal(JSON.parse(two.stdout).text, text.slice(0, text.indexOf('Lily')));
  });

  it('run --beams prints the best hypothesis (one beam: the greedy text, cut at a --stop); --beams needs --max-tokens', async function () {
    requireShared(this, 'models/stories260K.gguf', 'models/stories260K.oracle.json');
    const oracle = readSharedJson('models/stories260K.oracle.json');
    const model = sharedPath('models/stories260K.gguf');
    const one = await fuselm('run', '-m', model, 'Once upon a time', '-n', '64', '--beams', '1');
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, oracle.greedy.text + '\n');
    const stopped = await fuselm('run', '-m', model, 'Once upon a time', '-n', '64', '--beams', '1', '--stop', '.');
    assert.equal(stopped.stdout, oracle.greedy.text.slice(0, oracle.greedy.text.indexOf('.')) + '\n', stopped.stderr);
    const four = await fuselm('run', '-m', model, 'Once upon a time', '-n', '8', '--beams', '4', '--json');
    assert.equal(four.code, 0, four.stderr);
    assert.equal(JSON.parse(four.stdout).sequences.length, 1);
    const bad = await fuselm('run', '-m', model, 'Once upon a time', '--beams', '4');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--beams needs --max-tokens/);
  });

  it("run samples with the model folder's generation_config.json temperature; --temperature overrides it", async function () {
    requireShared(this, 'models/hf/campello-tiny-llama-synthetic/tokenizer.json');
    const src = sharedPath('models/hf/campello-tiny-llama-synthetic');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-cli-genconfig-'));
    try {
      for (const f of readdirSync(src)) copyFileSync(path.join(src, f), path.join(dir, f));
      writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ do_sample: true, temperature: 1.5 }));
      let sampled: number[], greedy: number[];
      {
        await using m = await loadModel(dir, { threads: 1 });
        sampled = (await m.generate('hi', { maxTokens: 8, temperature: 1.5 })).ids;
        greedy = (await m.generate('hi', { maxTokens: 8, temperature: 0 })).ids;
      }
      assert.notDeepEqual(sampled, greedy, 'sampling at 1.5 must differ from greedy for this test to tell them apart');
      const ids = async (...flags: string[]) => {
        const r = await fuselm('run', '-m', dir, 'hi', '-n', '8', '--threads', '1', '--json', ...flags);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout).ids as number[];
      };
      assert.deepEqual(await ids('--seed', '0'), sampled); // the API's default seed
      assert.deepEqual(await ids('--temperature', '0'), greedy);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('run samples with a random seed when --seed is absent, reported in --json and on stderr, and replayable', async function () {
    requireShared(this, 'models/stories260K.gguf');
    const model = sharedPath('models/stories260K.gguf');
    const sample = async (...flags: string[]) => {
      const r = await fuselm('run', '-m', model, 'Once upon a time', '-n', '24', '--temperature', '1.5', '-t', '1', ...flags);
      assert.equal(r.code, 0, r.stderr);
      return r;
    };
    const a = JSON.parse((await sample('--json')).stdout);
    const b = JSON.parse((await sample('--json')).stdout);
    assert.ok(Number.isInteger(a.seed) && Number.isInteger(b.seed));
    assert.notEqual(a.seed, b.seed, 'two runs without --seed draw different seeds');
    assert.deepEqual(JSON.parse((await sample('--json', '--seed', String(a.seed))).stdout).ids, a.ids, 'the reported seed replays the run');
    const streamed = await sample();
    const seed = /; seed (\d+)$/m.exec(streamed.stderr)?.[1];
    assert.ok(seed, streamed.stderr);
    assert.equal((await sample('--seed', seed)).stdout, streamed.stdout);
  });

  it('run --json prints the result object (the same with --no-mmap)', async function () {
    requireShared(this, 'models/stories260K.gguf', 'models/stories260K.oracle.json');
    const oracle = readSharedJson('models/stories260K.oracle.json');
    for (const flags of [[], ['--no-mmap']]) {
      const r = await fuselm('run', '-m', sharedPath('models/stories260K.gguf'), 'Once upon a time', '-n', '16', '--json', ...flags);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.deepEqual(out.ids, oracle.greedy.ids.slice(0, 16), flags.join(' '));
      assert.equal(out.finishReason, 'maxTokens');
    }
  });

  it('exits 2 on bad usage with one line and where the help is, and 1 on a bad model file', async () => {
    const usage = await fuselm('run'); // no prompt (without -m, run uses the bundled model)
    assert.equal(usage.code, 2);
    assert.equal(usage.stderr, "fuselm: give the prompt as text or as --ids, one of them\nsee 'fuselm run --help'\n");
    const badN = await fuselm('run', '-m', 'x.gguf', 'p', '--max-tokens', 'many');
    assert.equal(badN.code, 2);
    assert.match(badN.stderr, /^fuselm: .*--max-tokens must be an integer >= 0\nsee 'fuselm run --help'\n$/);
    // sampling values out of range are usage errors naming the flag, found before a model is read
    for (const [flag, value, range] of [['--top-p', '2', /in \(0, 1\]/], ['--top-p', '0', /in \(0, 1\]/], ['--min-p', '1.5', /in \[0, 1\]/], ['--repeat-penalty', '0', />\s0/], ['--temperature', '-1', />= 0/]] as const) {
      const r = await fuselm('run', '-m', 'x.gguf', 'p', flag, value);
      assert.equal(r.code, 2, `${flag} ${value}`);
      assert.match(r.stderr, new RegExp(`^fuselm: .*${flag} must be a number`), r.stderr);
      assert.match(r.stderr, range);
      assert.equal(r.stderr.split('\n').length, 3, r.stderr);
    }
    // an action's own usage check names its command's help
    const both = await fuselm('bench', 'e2e', '--shape', 'tiny', '-m', 'x.gguf');
    assert.equal(both.stderr, "fuselm: give either --model or --shape\nsee 'fuselm bench e2e --help'\n");
    const unknown = await fuselm('frobnicate');
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, "fuselm: unknown command 'frobnicate'\nsee 'fuselm --help'\n");
    const missing = await fuselm('run', '-m', '/nonexistent/model.gguf', 'hello');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^fuselm: .*\/nonexistent\/model\.gguf/);
    assert.doesNotMatch(missing.stderr, /at .*\.ts:\d+/);
  });

  it('run and tokenize take --ids; a folder without a tokenizer prints ids', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-llama/model.safetensors', 'models/stories260K.gguf');
    const noTok = sharedPath('models/hf/neural-api-tiny-llama');
    let expected: number[];
    {
      const m = await loadModel(noTok, { threads: 1 });
      expected = (await m.generate([1, 2, 3], { maxTokens: 5 })).ids;
      await m.dispose();
    }
    assert.equal(expected.length, 5);
    const ids = await fuselm('run', '-m', noTok, '--ids', '1,2,3', '-n', '5', '-t', '1');
    assert.equal(ids.code, 0, ids.stderr);
    assert.equal(ids.stdout, expected.join(' ') + '\n');
    const text = await fuselm('run', '-m', noTok, 'hello', '-n', '2');
    assert.equal(text.code, 1);
    assert.match(text.stderr, /no tokenizer .*--ids/);
    const stories = sharedPath('models/stories260K.gguf');
    const fromIds = await fuselm('run', '-m', stories, '--ids', '1,346,306,414,263,304,341', '-n', '8', '--json');
    const fromText = await fuselm('run', '-m', stories, 'Hello world', '-n', '8', '--json');
    assert.deepEqual(JSON.parse(fromIds.stdout).ids, JSON.parse(fromText.stdout).ids);
    const tok = await fuselm('tokenize', '-m', stories, '--ids', '1,346,306', '--json');
    assert.equal(tok.code, 0, tok.stderr);
    assert.deepEqual(JSON.parse(tok.stdout), { ids: [1, 346, 306], pieces: ['<s>', '▁He', 'll'], text: 'Hell' });
    for (const args of [['run', '-m', stories, 'text', '--ids', '1'], ['run', '-m', stories], ['run', '-m', stories, '--ids', '1,,2'], ['tokenize', '-m', stories, '--ids', '1,999999']]) {
      const bad = await fuselm(...args);
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.match(bad.stderr, /--ids/);
    }
  });

  it('embed prints the embedding model\'s vectors, as the API gives them', async function () {
    requireShared(this, 'models/hf/lm-buddy-bert-tiniest/tokenizer.json');
    const dir = sharedPath('models/hf/lm-buddy-bert-tiniest');
    const texts = ['a sentence', 'another one here'];
    let expected: number[][];
    {
      const m = await loadEmbeddingModel(dir, { threads: 1 });
      expected = (await m.embed(texts, { pooling: 'cls' })).map((v) => Array.from(v));
      await m.dispose();
    }
    const r = await fuselm('embed', '-m', dir, ...texts, '--pooling', 'cls', '-t', '1');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l)), expected);
    const j = await fuselm('embed', '-m', dir, 'one', '--json', '--no-normalize');
    const out = JSON.parse(j.stdout);
    assert.equal(out.embeddings.length, 1);
    assert.equal(out.dim, out.embeddings[0].length);
    assert.notEqual(Math.hypot(...out.embeddings[0]).toFixed(3), '1.000', '--no-normalize keeps the pooled length');
  });

  it('--help lists the run command; --version prints the package version', async () => {
    const r = await fuselm('--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /run \[options\] \[prompt\]/);
    const v = await fuselm('--version');
    assert.equal(v.code, 0);
    assert.equal(v.stdout, JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version + '\n');
  });

  it('an empty folder as the model is "not a GGUF file or model folder", not a raw ENOENT', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-cli-empty-'));
    try {
      const r = await fuselm('run', '-m', dir, 'hello');
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `fuselm: ${dir}: not a GGUF file or model folder (a Hugging Face model folder holds config.json; this one has none)\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a generation that fills the context says so: finishReason contextFull and a stderr line', async function () {
    requireShared(this, 'models/stories260K.gguf');
    const model = sharedPath('models/stories260K.gguf');
    const notice = 'fuselm: the context is full (16 positions): generation stopped there; --context-size sets it\n';
    const json = await fuselm('run', '-m', model, 'Once upon a time', '-c', '16', '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).finishReason, 'contextFull');
    assert.equal(json.stderr, notice);
    const streamed = await fuselm('run', '-m', model, 'Once upon a time', '-c', '16');
    assert.equal(streamed.code, 0, streamed.stderr);
    assert.ok(streamed.stderr.startsWith(notice), streamed.stderr);
    const room = await fuselm('run', '-m', model, 'Once upon a time', '-c', '16', '-n', '4');
    assert.doesNotMatch(room.stderr, /context is full/);
  });

  it('tokenize prints ids and pieces (and --json)', async function () {
    requireShared(this, 'models/stories260K.gguf');
    const r = await fuselm('tokenize', '-m', sharedPath('models/stories260K.gguf'), 'Hello world', '--json', '--add-special');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ids: [1, 346, 306, 414, 263, 304, 341], pieces: ['<s>', '▁He', 'll', 'o', '▁w', 'or', 'ld'] });
    const plain = await fuselm('tokenize', '-m', sharedPath('models/stories260K.gguf'), 'Hello');
    assert.match(plain.stdout, /^\s+346 "▁He"$/m);
  });

  it('inspect prints the metadata and the tensor table', async function () {
    requireShared(this, 'models/stories260K.gguf');
    const r = await fuselm('inspect', sharedPath('models/stories260K.gguf'), '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.version, 3);
    assert.equal(out.metadata['llama.block_count'], 5);
    assert.equal(out.metadata['tokenizer.ggml.tokens'].length, 512);
    assert.equal(out.tensors.length, 48);
    const embd = out.tensors.find((t: any) => t.name === 'token_embd.weight');
    assert.deepEqual([embd.type, embd.dims, embd.bytes], ['F32', [64, 512], 64 * 512 * 4]);
    const text = await fuselm('inspect', sharedPath('models/stories260K.gguf'));
    assert.match(text.stdout, /GGUF v3, 19 metadata keys, 48 tensors/);
    const st = await fuselm('inspect', sharedPath('models/hf/neural-api-tiny-llama/model.safetensors'), '--json');
    assert.equal(st.code, 0, st.stderr);
    const sto = JSON.parse(st.stdout);
    assert.equal(sto.format, 'safetensors');
    assert.deepEqual(sto.tensors.find((t: any) => t.name === 'model.embed_tokens.weight').dims, [11, 8]);
    const bad = await fuselm('inspect', '/nonexistent.gguf');
    assert.equal(bad.code, 1);
  });

  it('doctor reports the backends and every kernel agreeing with its reference', async () => {
    const r = await fuselm('doctor', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.ok, true);
    assert.ok(out.kernels.length >= 8);
    assert.ok(out.devices.cpu.physicalCores >= 1);
    if (out.devices.cuda.devices.length === 0) assert.ok(out.devices.cuda.reason);
  });

  it('quantize writes a q8_0 GGUF that run loads; perplexity prints the running value', async function () {
    requireShared(this, 'models/stories260K.gguf');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-cli-'));
    try {
      const out = path.join(dir, 'q8.gguf');
      const q = await fuselm('quantize', sharedPath('models/stories260K.gguf'), out, '--type', 'q8_0', '--json');
      assert.equal(q.code, 0, q.stderr);
      assert.equal(JSON.parse(q.stdout).converted, 32);
      const r = await fuselm('run', '-m', out, 'Once upon a time', '-n', '8', '--json');
      assert.equal(JSON.parse(r.stdout).ids.length, 8);
      const textFile = path.join(dir, 'text.txt');
      writeFileSync(textFile, 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. '.repeat(20));
      const p = await fuselm('perplexity', '-m', out, '-f', textFile, '--ctx', '64');
      assert.equal(p.code, 0, p.stderr);
      assert.match(p.stdout, /^\[1\][\d.]+,\[2\][\d.]+/);
      assert.match(p.stdout, /perplexity: [\d.]+ over \d+ chunks of 64 tokens/);
      // a type llama.cpp has but fuselm does not write is bad usage; a file that is not a GGUF an error
      const bad = await fuselm('quantize', sharedPath('models/stories260K.gguf'), out, '--type', 'iq2_xs');
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /^fuselm: .*--type must be one of f32, f16, q8_0, q6_k, q5_k_m.*\nsee 'fuselm quantize --help'\n$/);
      // llama-quantize's spelling is taken too
      const upper = await fuselm('quantize', sharedPath('models/stories260K.gguf'), out, '--type', 'Q8_0', '--json');
      assert.equal(upper.code, 0, upper.stderr);
      assert.deepEqual(JSON.parse(upper.stdout).types, JSON.parse(q.stdout).types);
      const notGguf = await fuselm('quantize', textFile, path.join(dir, 'x.gguf'), '--type', 'q4_0');
      assert.equal(notGguf.code, 1);
      assert.match(notGguf.stderr, /text\.txt/);
      assert.deepEqual(readdirSync(dir).sort(), ['q8.gguf', 'text.txt'], 'a failed run leaves no file behind');
      const same = await fuselm('quantize', out, out, '--type', 'q4_0');
      assert.equal(same.code, 1);
      assert.match(same.stderr, /overwrite the input/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("convert writes an HF folder as llama.cpp's converter does; quantize takes HF folders and the k-quant mixtures", async function () {
    requireShared(this, 'models/oracles/llama3-ropefreqs/hf/tokenizer.model', 'models/oracles/llama3-ropefreqs/llama3-ropefreqs.f32.gguf');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-cli-'));
    try {
      const hf = sharedPath('models/oracles/llama3-ropefreqs/hf');
      // f16 from the folder, and f16 from the GGUF llama.cpp's converter made of it: the same greedy ids
      const conv = await fuselm('convert', hf, path.join(dir, 'conv.gguf'), '--json');
      assert.equal(conv.code, 0, conv.stderr);
      assert.deepEqual(JSON.parse(conv.stdout).types, { F32: 6, F16: 16 }); // 2 layers of 7 matrices, token_embd, output
      const ref = await fuselm('quantize', sharedPath('models/oracles/llama3-ropefreqs/llama3-ropefreqs.f32.gguf'), path.join(dir, 'ref.gguf'), '--type', 'f16');
      assert.equal(ref.code, 0, ref.stderr);
      const ids = async (file: string) => {
        const r = await fuselm('run', '-m', file, 'Once upon a time', '-n', '12', '--json', '--threads', '1');
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout).ids as number[];
      };
      assert.deepEqual(await ids(path.join(dir, 'conv.gguf')), await ids(path.join(dir, 'ref.gguf')));
      // the folder straight to q4_k_m: its rows of 64 fall back from Q4_K to Q5_0, as llama.cpp's do
      const q = await fuselm('quantize', hf, path.join(dir, 'q4km.gguf'), '--type', 'q4_k_m', '--json');
      assert.equal(q.code, 0, q.stderr);
      // Q8_0: output (rows not whole 256-blocks), and layer 1's attn_v and ffn_down (Q6_K by use_more_bits, Q8_0 by the fallback)
      assert.deepEqual(JSON.parse(q.stdout).types, { F32: 6, Q5_0: 13, Q8_0: 3 });
      assert.equal((await ids(path.join(dir, 'q4km.gguf'))).length, 12);
      const notFolder = await fuselm('convert', path.join(dir, 'ref.gguf'), path.join(dir, 'x.gguf'));
      assert.equal(notFolder.code, 1);
      assert.match(notFolder.stderr, /is not a folder/);
      const noTokenizer = await fuselm('convert', sharedPath('models/hf/neural-api-tiny-llama'), path.join(dir, 'x.gguf'));
      assert.equal(noTokenizer.code, 1);
      assert.match(noTokenizer.stderr, /no tokenizer\.model or tokenizer\.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('chat answers each line, keeps the conversation, and handles /reset and /exit', async function () {
    requireShared(this, 'models/stories260K.gguf');
    const child = spawn(process.execPath, ['--import', 'tsx', entry, 'chat', '-m', sharedPath('models/stories260K.gguf'), '-n', '6'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stdin.end('Once upon a time\n/reset\nLily\n/exit\nnever read\n');
    const code = await new Promise((r) => child.on('close', r));
    assert.equal(code, 0);
    const lines = stdout.split('\n');
    assert.equal(lines.length, 4, stdout); // reply, reset notice, reply, final newline
    assert.equal(lines[1], '(conversation reset)');
    assert.ok(lines[0].length > 0 && lines[2].length > 0);
  });

  it('bench e2e measures a synthetic model; bench kernels reports ops against the roofline of their memory level, with progress', async function () {
    this.timeout(300_000); // five benchmark runs; slow on a loaded machine
    const r = await fuselm('bench', 'e2e', '--shape', 'tiny', '--dtype', 'f16', '-p', '16', '-n', '4', '-r', '1', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.ok(out.prefillTokensPerSecond > 0 && out.decodeTokensPerSecond > 0);
    const both = await fuselm('bench', 'e2e', '--shape', 'tiny', '-m', 'x.gguf');
    assert.equal(both.code, 2);
    const k = await fuselm('bench', 'kernels', '--filter', 'rms_norm 64x4096', '--json');
    assert.equal(k.code, 0, k.stderr);
    const rep = JSON.parse(k.stdout);
    assert.equal(rep.kernels.length, 1);
    assert.ok(rep.copyGBps > 0 && rep.kernels[0].gbps > 0 && rep.kernels[0].rooflineShare > 0);
    assert.match(k.stderr, /^bench kernels: 1\/1 rms_norm 64x4096$/m);
    // rms_norm 64x4096 moves 2 MiB per op: its ceiling is a cache's or main memory's, measured in this run
    assert.ok(rep.levels.some((l: { level: string }) => l.level === rep.kernels[0].level), JSON.stringify(rep.levels));
    assert.equal(rep.levels.at(-1).level, 'memory');
    // every case below its level's ceiling: a cache-resident one is not held to main memory's rate
    const all = await fuselm('bench', 'kernels', '--filter', '1x4096', '--json', '-t', '1');
    assert.equal(all.code, 0, all.stderr);
    const small = JSON.parse(all.stdout).kernels;
    assert.ok(small.length >= 3);
    for (const c of small) assert.ok(c.rooflineShare > 0 && c.rooflineShare <= 1, `${c.op}: ${c.rooflineShare}`);
    // the same cases run on the CUDA backend (here its emulator: the path, not the speed)
    const e = await fuselm('bench', 'kernels', '--device', 'cuda-emulated', '--filter', 'add_bias 1x4096', '--json');
    assert.equal(e.code, 0, e.stderr);
    const erep = JSON.parse(e.stdout);
    assert.equal(erep.device, 'cuda-emulated');
    assert.deepEqual(erep.kernels.map((x: { op: string }) => x.op), ['add_bias 1x4096']);
  });
});
