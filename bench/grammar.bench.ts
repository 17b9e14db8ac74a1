/**
 * Structured output's cost per token.
 *
 *  - Mask time: the grammar's whole per-token work (mask + applying it to a logits row +
 *    advancing past the chosen token) for a JSON Schema, on a 32k vocabulary (llama-spm, from
 *    ../shared) and a 128k byte-level BPE one (GPT-2's widened to 128,256 tokens). Tokens are
 *    drawn uniformly among the allowed ones (a random model), seeded. "first request" times the
 *    first generation with a fresh grammar (every cache cold: per-position token caches and
 *    per-state masks are built as they are met); "later requests" the next ones with the same
 *    compiled grammar and new seeds (requests 2-9, and 41-50 once the caches have filled). Mean
 *    and p99 over all tokens of those requests. setupMs: compiling the grammar and building the
 *    vocabulary trie (the trie is built once per vocabulary).
 *  - Beside llama.cpp (node-llama-cpp): the grammar's added seconds per token on both (peerBench).
 *  - Decode: tok/s with the schema against tok/s without (ignoreEog) on the TinyLlama-1.1B-shaped
 *    q8_0 synthetic model, 1 thread, temperature 1, 24 tokens, after a warm-up request with the
 *    schema; runs alternated, medians of 5.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileGbnf } from '../lib/grammar/compile.js';
import { jsonSchemaToGbnf } from '../lib/grammar/json-schema.js';
import { TokenMasks } from '../lib/grammar/token-masks.js';
import { parseGguf } from '../lib/formats/gguf.js';
import { loadModel } from '../lib/model/model.js';
import { tokenizerFromGguf } from '../lib/tokenizer/from-gguf.js';
import { widenedByteLevelVocab, writeSyntheticModel } from '../lib/tools/synthetic.js';
import { loadLlamaCpp } from './peers/llama-cpp.js';
import { type BenchResult } from './util.js';
import { benchModel, syntheticBenchModel } from '../lib/tools/bench-models.js';

const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared');

/** A typical extraction schema: nested object, bounded and free strings, enum, integer range, array, format. */
export const BENCH_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 24 },
    age: { type: 'integer', minimum: 0, maximum: 130 },
    email: { type: 'string', format: 'email' },
    role: { enum: ['admin', 'user', 'guest'] },
    address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' }, zip: { type: 'string', pattern: '^[0-9]{5}$' } }, required: ['street', 'city'] },
    tags: { type: 'array', items: { type: 'string', maxLength: 12 }, maxItems: 4 },
    active: { type: 'boolean' },
  },
  required: ['name', 'age', 'role', 'address', 'active'],
};

function gguf(file: string) {
  const d = readFileSync(file);
  return parseGguf(new Uint8Array(d.buffer, d.byteOffset, d.length), { path: file, fileSize: d.length });
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Per-token seconds of `requests` generations of up to `maxTokens` tokens with one compiled grammar. */
function maskTimes(m: TokenMasks, eog: readonly number[], requests: number, maxTokens: number, seed: number): number[][] {
  const out: number[][] = [];
  const logits = new Float32Array(m.vocabSize);
  for (let q = 0; q < requests; q++) {
    const r = rng(seed + q);
    const times: number[] = [];
    let s = m.initial;
    for (let i = 0; i < maxTokens && !m.mustEnd(s); i++) {
      logits.fill(0);
      const t0 = process.hrtime.bigint();
      m.apply(s, logits);
      // the draw is the sampler's work, not the grammar's: untimed
      const t1 = process.hrtime.bigint();
      let n = 0;
      for (let t = 0; t < logits.length; t++) if (logits[t] === 0) n++;
      let k = Math.floor(r() * n), id = 0;
      for (let t = 0; t < logits.length; t++) if (logits[t] === 0 && k-- === 0) id = t;
      const t2 = process.hrtime.bigint();
      if (eog.includes(id)) break;
      s = m.next(s, id);
      times.push(Number(t1 - t0 + (process.hrtime.bigint() - t2)) / 1e9);
    }
    out.push(times);
  }
  return out;
}

function stats(xs: number[]): { mean: number; p99: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { mean: xs.reduce((a, b) => a + b, 0) / xs.length, p99: s[Math.min(s.length - 1, Math.floor(0.99 * s.length))] };
}

async function maskBench(label: string, bytes: Uint8Array[], eog: readonly number[]): Promise<BenchResult[]> {
  const text = jsonSchemaToGbnf(BENCH_SCHEMA);
  const t0 = performance.now();
  const m = new TokenMasks(compileGbnf(text), { bytes, eog });
  const setupMs = performance.now() - t0;
  const runs = maskTimes(m, eog, 50, 300, 1);
  const first = runs[0], later = runs.slice(1, 9).flat(), steady = runs.slice(40).flat();
  const a = stats(first), b = stats(later), c = stats(steady);
  return [
    { name: `mask ${label} first request`, seconds: a.mean, meanUs: a.mean * 1e6, p99Us: a.p99 * 1e6, tokens: first.length, setupMs },
    { name: `mask ${label} requests 2-9`, seconds: b.mean, meanUs: b.mean * 1e6, p99Us: b.p99 * 1e6, tokens: later.length },
    { name: `mask ${label} requests 41-50`, seconds: c.mean, meanUs: c.mean * 1e6, p99Us: c.p99 * 1e6, tokens: steady.length },
  ];
}

async function decodeBench(): Promise<BenchResult> {
  const file = await syntheticBenchModel('tinyllama-1.1b', 'q8_0');
  const model = await loadModel(file, { threads: 1, contextSize: 256 });
  try {
    const gen = 24;
    const prompt = [1, 450, 4996, 338];
    const schema = { type: 'object', properties: { story: { type: 'string' } }, required: ['story'] }; // a free string: never finishes in `gen` tokens
    await model.generate(prompt, { maxTokens: 4, jsonSchema: schema, temperature: 1 }); // compile + warm-up
    // alternated runs (the machine is shared: a slow spell hits both sides), medians of 5
    const plain: number[] = [], withSchema: number[] = [];
    for (let rep = 0; rep < 5; rep++)
      for (const [o, xs] of [[{ ignoreEog: true }, plain], [{ jsonSchema: schema }, withSchema]] as const) {
        await model.clearCache();
        const r = await model.generate(prompt, { maxTokens: gen, temperature: 1, seed: rep, ...o });
        xs.push(r.ids.length / r.timings.generateSeconds);
      }
    const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
    const [p, w] = [med(plain), med(withSchema)];
    return { name: 'decode tinyllama-1.1b q8_0 1t, schema vs none', seconds: 1 / w, tokensPerSecond: w, plainTokensPerSecond: p, ratio: w / p };
  } finally {
    await model.dispose();
  }
}

/**
 * Beside llama.cpp: the same GBNF text (jsonSchemaToGbnf of BENCH_SCHEMA) on both sides, on a
 * small random-weight llama with the 128k vocabulary (the forward step is cheap, so the
 * grammar's cost shows): seconds per token with the grammar minus seconds per token without,
 * temperature 1, 64 tokens, medians of 3 alternated runs after a warm-up. node-llama-cpp's
 * grammar runs llama.cpp's grammar sampler.
 */
async function peerBench(vocabFile: string): Promise<BenchResult[]> {
  const llama = await loadLlamaCpp();
  if (!llama) return [];
  const file = path.join(os.tmpdir(), `fuselm-grammar-peer-${process.pid}.gguf`);
  const src = gguf(vocabFile);
  const vocab = [...src.metadata.keys()].filter((k) => k.startsWith('tokenizer.')).map((key) => ({ key, ...src.metadataTypes.get(key)!, value: src.metadata.get(key)! }));
  await writeSyntheticModel(file, { arch: 'llama', dtype: 'f16', vocabSize: 128256, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 128, contextLength: 512, vocab });
  const grammar = jsonSchemaToGbnf(BENCH_SCHEMA);
  const gen = 64, prompt = [15496, 995];
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  try {
    const model = await loadModel(file, { threads: 1, contextSize: 256 });
    const ours: Record<string, number[]> = { plain: [], grammar: [] };
    try {
      for (let rep = 0; rep <= 3; rep++)
        for (const [k, o] of [['plain', { ignoreEog: true }], ['grammar', { grammar }]] as const) {
          await model.clearCache();
          const r = await model.generate(prompt, { maxTokens: gen, temperature: 1, seed: rep, ...o });
          if (rep > 0) ours[k].push(r.timings.generateSeconds / r.ids.length);
        }
    } finally {
      await model.dispose();
    }
    const { LlamaGrammarEvaluationState } = await import(path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'peers/.deps/node_modules/node-llama-cpp/dist/index.js'));
    const lm = await llama.loadModel({ modelPath: file });
    const theirs: Record<string, number[]> = { plain: [], grammar: [] };
    try {
      const ctx = await lm.createContext({ contextSize: 256, threads: 1 });
      const seq = ctx.getSequence();
      const g = await llama.createGrammar({ grammar });
      for (let rep = 0; rep <= 3; rep++)
        for (const k of ['plain', 'grammar']) {
          await seq.clearHistory();
          await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
          const state = k === 'grammar' ? new LlamaGrammarEvaluationState({ model: lm, grammar: g }) : undefined;
          let n = 0;
          const t0 = performance.now();
          for await (const _ of seq.evaluate(prompt.slice(-1), { temperature: 1, grammarEvaluationState: state })) if (++n >= gen) break;
          if (rep > 0) theirs[k].push((performance.now() - t0) / 1000 / n);
        }
      await ctx.dispose();
    } finally {
      await lm.dispose();
    }
    const oursCost = med(ours.grammar) - med(ours.plain), theirsCost = med(theirs.grammar) - med(theirs.plain);
    return [
      {
        name: 'grammar cost per token 128k, beside llama.cpp',
        seconds: oursCost,
        fuselmUs: oursCost * 1e6,
        llamaCppUs: theirsCost * 1e6,
        speedup: theirsCost / oursCost,
        fuselmPlainUs: med(ours.plain) * 1e6,
        llamaCppPlainUs: med(theirs.plain) * 1e6,
      },
    ];
  } finally {
    rmSync(file, { force: true });
  }
}

export async function run(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const spm = path.join(shared, 'tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf');
  const gpt2 = path.join(shared, 'tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf');
  if (existsSync(spm)) {
    const tok = tokenizerFromGguf(gguf(spm));
    out.push(...(await maskBench('32k llama-spm', Array.from({ length: tok.vocabSize }, (_, i) => tok.tokenBytes(i)), tok.eogIds)));
  } else process.stderr.write(`grammar: skipping the 32k vocabulary (${spm} not found)\n`);
  if (existsSync(gpt2)) {
    // a vocab-only GGUF of the widened vocabulary, so the tokenizer reads it as it reads any
    const file = await benchModel('grammar-vocab-128k.gguf', (out) =>
      writeSyntheticModel(out, { arch: 'llama', dtype: 'f32', vocabSize: 128256, dim: 8, nLayers: 1, nHeads: 1, nKvHeads: 1, ffnDim: 8, contextLength: 64, vocab: widenedByteLevelVocab(gguf(gpt2), 128256) }));
    const tok = tokenizerFromGguf(gguf(file));
    out.push(...(await maskBench('128k byte-level', Array.from({ length: tok.vocabSize }, (_, i) => tok.tokenBytes(i)), tok.eogIds)));
    if (!process.env.FUSELM_BENCH_NO_PEER) out.push(...(await peerBench(file)));
  } else process.stderr.write(`grammar: skipping the 128k vocabulary (${gpt2} not found)\n`);
  if (!process.env.FUSELM_BENCH_NO_DECODE) out.push(await decodeBench());
  return out;
}
