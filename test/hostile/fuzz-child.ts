/**
 * One fuzzing run (spawned by fuzz.test.ts in a child process, so that a crash, an abort or a
 * hang is caught and named by its seed): `fuzz-child.ts <kind> <firstSeed> <count> <workdir>`.
 * Prints `limit <bytes>` first, the memory limit it runs under (RLIMIT_DATA; Infinity for none),
 * then `start <seed>` before each case and `done <seed> <outcome>` after it, where outcome is
 * `ok` or the FuselmError code; anything else thrown is printed as `untyped <seed> <name>: <message>`
 * and the run goes on (with FUZZ_STACK=1 also its stack, on stderr).
 */
import { mkdirSync, readFileSync, readdirSync, copyFileSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ChatTemplate, FuselmError, loadModel } from '../../lib/index.js';
import { tokenizerFromJson } from '../../lib/tokenizer/from-tokenizer-json.js';
import { writeSyntheticModel } from '../../lib/tools/synthetic.js';
import { rng, randInt } from '../helpers/random.js';
import { sharedPath } from '../helpers/shared.js';
import { tokJson } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const [kind, first, count, work] = process.argv.slice(2);
const MEM = 1 << 30;

const HOSTILE: unknown[] = [
  null, -1, 0, 1, 2.5, -0.5, 1e308, -1e308, 1e9, 2 ** 53, 2 ** 31, '', 'x', 'constructor', '__proto__', 'toString', 'hasOwnProperty',
  [], {}, [null], [1, 'a'], { type: 'constructor' }, true, false, 'a'.repeat(5000), '▁', '(a|aa)+$', [[0, 1]], { String: '' }, { Regex: '(' },
];

/** Applies `n` seeded mutations to a JSON value: a field replaced by a hostile value, removed, or a subtree copied elsewhere. */
function mutateJson(root: any, r: () => number, n: number): any {
  const v = structuredClone(root);
  for (let k = 0; k < n; k++) {
    // walk to a random container
    let node: any = v;
    for (let depth = 0; depth < 6; depth++) {
      const keys = node && typeof node === 'object' ? Object.keys(node) : [];
      if (!keys.length || r() < 0.3) break;
      const next = node[keys[randInt(r, 0, keys.length - 1)]];
      if (!next || typeof next !== 'object') break;
      node = next;
    }
    if (!node || typeof node !== 'object') continue;
    const keys = Object.keys(node);
    const key = keys.length && r() < 0.8 ? keys[randInt(r, 0, keys.length - 1)] : HOSTILE[randInt(r, 0, HOSTILE.length - 1)] === null ? 'type' : 'model_type';
    const op = r();
    if (op < 0.7) node[key] = structuredClone(HOSTILE[randInt(r, 0, HOSTILE.length - 1)]);
    else if (op < 0.85) delete node[key];
    else node[key] = structuredClone(v);
  }
  // as a file holds it (a deleted array element is a null there, not a hole)
  return JSON.parse(JSON.stringify(v));
}

function flipBytes(b: Uint8Array, r: () => number, n: number, limit: number): Uint8Array {
  const out = b.slice();
  for (let k = 0; k < n; k++) {
    const i = randInt(r, 0, Math.min(limit, out.length) - 1);
    out[i] = r() < 0.5 ? out[i] ^ (1 << randInt(r, 0, 7)) : randInt(r, 0, 255);
  }
  return r() < 0.1 ? out.subarray(0, randInt(r, 0, out.length)) : out;
}

/** Loads a model and, when it loads, generates two tokens: every id must be in the vocabulary. */
async function loadAndRun(p: string): Promise<void> {
  const m = await loadModel(p, { threads: 1, maxMemory: MEM, contextSize: 64 });
  try {
    const r = await m.generate([1, 2], { maxTokens: 2, ignoreEog: true });
    for (const id of r.ids) if (!(Number.isInteger(id) && id >= 0 && id < m.config.vocabSize)) throw new Error(`id ${id} out of the vocabulary`);
    if (m.tokenizer.vocabSize > 0) m.tokenizer.decode(r.ids);
  } finally {
    await m.dispose();
  }
}

function tinyCopy(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const src = sharedPath('models/hf/neural-api-tiny-llama');
  for (const f of readdirSync(src)) if (f !== 'reference_logits.json') copyFileSync(path.join(src, f), path.join(dir, f));
}

async function runCase(seed: number): Promise<void> {
  const r = rng(seed * 7919 + 17);
  const dir = path.join(work, `${kind}-${seed}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  switch (kind) {
    case 'gguf': {
      const base = path.join(work, 'base.gguf');
      const bytes = readFileSync(base);
      const p = path.join(dir, 'm.gguf');
      writeFileSync(p, flipBytes(bytes, r, randInt(r, 1, 8), 4096));
      return loadAndRun(p);
    }
    case 'safetensors': {
      tinyCopy(dir);
      const file = path.join(dir, 'model.safetensors');
      const bytes = new Uint8Array(readFileSync(file));
      if (r() < 0.5) {
        const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        const header = mutateJson(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))), r, randInt(r, 1, 3));
        const hb = new TextEncoder().encode(JSON.stringify(header));
        const out = new Uint8Array(8 + hb.length + bytes.length - 8 - n);
        new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
        out.set(hb, 8);
        out.set(bytes.subarray(8 + n), 8 + hb.length);
        writeFileSync(file, out);
      } else writeFileSync(file, flipBytes(bytes, r, randInt(r, 1, 6), 600));
      return loadAndRun(dir);
    }
    case 'config': {
      tinyCopy(dir);
      const file = path.join(dir, 'config.json');
      writeFileSync(file, JSON.stringify(mutateJson(JSON.parse(readFileSync(file, 'utf8')), r, randInt(r, 1, 3))));
      if (r() < 0.3) writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify(mutateJson({ do_sample: true, temperature: 0.7, top_k: 20, top_p: 0.9, eos_token_id: [1, 2], max_new_tokens: 5 }, r, 2)));
      return loadAndRun(dir);
    }
    case 'tokenizer': {
      const json = mutateJson(tokJson(), r, randInt(r, 1, 2));
      const t = tokenizerFromJson(json);
      const ids = t.encode('a b ab\u2581 </s> ba'.repeat(randInt(r, 1, 50)), { addSpecial: r() < 0.5, parseSpecial: r() < 0.5 });
      for (const id of ids) if (!(Number.isInteger(id) && id >= 0 && id < t.vocabSize)) throw new Error(`encode gave id ${id}`);
      t.decode(ids);
      return;
    }
    case 'template': {
      const parts = [
        '{% for m in messages %}', '{% endfor %}', '{{ m.content }}', "{{ messages[0]['content'] }}", '{% for i in range(', '1000000', '100', ') %}',
        '{% if add_generation_prompt %}', '{% endif %}', "{{ 'ab' * ", '99999999', ' }}', '{{ raise_exception("no") }}', '{% set x = ', 'x', ' %}',
        '{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}', '{{ bos_token }}', '{{ strftime_now("%Y") }}', '{{', '}}', '{%', '%}', '{# #}', 'text',
        '{{ messages | length }}', '{{ undefined_thing.attr }}', '{{ (1/0) }}', "{{ 'x' | upper }}", '{% for i in range(100) %}{% for j in range(100) %}{{ i }}{% endfor %}{% endfor %}',
      ];
      let src = '';
      for (let k = randInt(r, 1, 10); k > 0; k--) src += parts[randInt(r, 0, parts.length - 1)];
      const t = new ChatTemplate(tokenizerFromJson(tokJson()), { template: src, templateBudget: { timeMs: 1000 } });
      const msgs = [{ role: 'system', content: 's' }, { role: 'user', content: 'a' }];
      if (r() < 0.5) t.render(msgs);
      else await t.renderAsync(msgs);
      return;
    }
    default:
      throw new Error(`unknown kind ${kind}`);
  }
}

/** The soft RLIMIT_DATA of this process, from /proc/self/limits. */
function dataLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max data size'));
  const soft = line?.slice('Max data size'.length).trim().split(/\s+/)[0];
  return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft);
}

console.log(`limit ${dataLimit()}`);
if (kind === 'gguf') {
  await writeSyntheticModel(path.join(work, 'base.gguf'), { arch: 'llama', dtype: 'f32', vocabSize: 300, dim: 16, nLayers: 2, nHeads: 2, nKvHeads: 1, ffnDim: 24, contextLength: 64 });
}
for (let seed = Number(first); seed < Number(first) + Number(count); seed++) {
  console.log(`start ${seed}`);
  try {
    await runCase(seed);
    console.log(`done ${seed} ok`);
  } catch (e) {
    if (e instanceof FuselmError) console.log(`done ${seed} ${e.code}`);
    else console.log(`untyped ${seed} ${(e as Error)?.name}: ${String((e as Error)?.message ?? e).slice(0, 300).replaceAll('\n', ' ')}`);
    if (process.env.FUZZ_STACK) console.error((e as Error)?.stack);
  }
  rmSync(path.join(work, `${kind}-${seed}`), { recursive: true, force: true });
}
console.log('end');
process.exit(0);
