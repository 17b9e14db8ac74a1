/**
 * The architectures without a transformers oracle in ../shared (Qwen3, Gemma, Gemma-3, and the
 * YaRN, LongRoPE, linear and llama3 rope scalings on several families) as twins: a random-weight
 * Hugging Face folder written here, and the GGUF llama.cpp's converter would make of it
 * (gguf-from-hf.ts). Proves
 *  - that converter lays the oracle folders out exactly as llama.cpp's own converter did (every
 *    tensor of their GGUFs equal, q/k permutation and Gemma's 1 + w included), so a twin stands
 *    for a real converted file;
 *  - each folder and its GGUF give the same last-position logits (within 1e-4 of the largest)
 *    and the same 16 greedy tokens: the config.json reading (both rope spellings, Gemma-3's
 *    per-layer-type rope_parameters) agrees with the GGUF reading, on the CPU and emulated CUDA;
 *  - with the llama.cpp peer installed (flash attention off, F32 cache), llama.cpp decodes the same
 *    greedy tokens from the GGUF and its last logits are within 2e-5 of the largest (Gemma: 1e-3).
 * Skipped, saying why, without ../shared (converter check) or the peer (its check).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readGguf } from '../../lib/formats/gguf.js';
import { loadModel } from '../../lib/model/model.js';
import { encodeSafetensors, type Entry } from '../formats/safetensors-helpers.js';
import { loadLlamaCpp } from '../../scripts/llama-cpp-peer.js';
import { loadOnCuda } from '../helpers/cuda.js';
import { llamaCppGreedy, openLlamaCpp } from '../helpers/llama-cpp.js';
import { rng, randn } from '../helpers/random.js';
import { requireShared, sharedPath } from '../helpers/shared.js';
import { writeLlamaFamilyGguf } from './gguf-from-hf.js';
import { quantizeModel } from '../../lib/tools/quantize.js';

const log = (s: string) => console.log(`      ${s}`);
let dir: string;
before(() => (dir = mkdtempSync(path.join(tmpdir(), 'fuselm-twins-'))));
after(() => process.env.KEEP_TWINS || rmSync(dir, { recursive: true, force: true }));

describe('HF → GGUF converter (test side) against llama.cpp\'s converter', () => {
  for (const name of ['llama3-ropefreqs', 'qwen2', 'phi3', 'gemma2', 'mistral-swa'])
    it(`${name}: every tensor of llama.cpp's GGUF, the same`, async function () {
      requireShared(this, `models/oracles/${name}/${name}.f32.gguf`);
      const out = path.join(dir, `${name}.conv.gguf`);
      await writeLlamaFamilyGguf(sharedPath(`models/oracles/${name}/hf`), out);
      const [ours, theirs] = await Promise.all([readGguf(out), readGguf(sharedPath(`models/oracles/${name}/${name}.f32.gguf`))]);
      assert.deepEqual(ours.tensors.map((t) => t.name).sort(), theirs.tensors.map((t) => t.name).sort());
      const { openSync, readSync, closeSync } = await import('node:fs');
      const read = (file: string, offset: number, n: number) => {
        const fd = openSync(file, 'r');
        try {
          const b = Buffer.alloc(n);
          readSync(fd, b, 0, n, offset);
          return new Float32Array(b.buffer, b.byteOffset, n / 4);
        } finally {
          closeSync(fd);
        }
      };
      let worst = 0;
      for (const t of theirs.tensors) {
        const o = ours.tensorByName.get(t.name)!;
        assert.deepEqual(o.dims, t.dims, t.name);
        const a = read(out, o.offset, o.nbytes), b = read(theirs.path, t.offset, t.nbytes);
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      }
      // rope_freqs is computed in float32 by the converter, in double here
      assert.ok(worst < 1e-6, `largest difference ${worst}`);
      for (const key of ['rope.dimension_count', 'rope.freq_base', 'attention.head_count_kv', 'attention.sliding_window', 'attn_logit_softcapping', 'final_logit_softcapping'].map((k) => `${theirs.metadata.get('general.architecture')}.${k}`))
        if (theirs.metadata.has(key)) assert.equal(Number(ours.metadata.get(key)), Number(theirs.metadata.get(key)), key);
    });

  // lib's converter with the folders' own tokenizer.model (`fuselm convert`): every metadata
  // entry llama.cpp's converter wrote, the tokenizer's included, equal; only general.size_label
  // (a parameter-count label) and general.name (the folder's name) are not compared.
  for (const name of ['llama3-ropefreqs', 'qwen2', 'phi3', 'gemma2', 'mistral-swa'])
    it(`${name}: fuselm convert writes llama.cpp's metadata and tokenizer`, async function () {
      requireShared(this, `models/oracles/${name}/${name}.f32.gguf`);
      const out = path.join(dir, `${name}.tok.gguf`);
      await quantizeModel(sharedPath(`models/oracles/${name}/hf`), out, 'f32');
      const [ours, theirs] = await Promise.all([readGguf(out), readGguf(sharedPath(`models/oracles/${name}/${name}.f32.gguf`))]);
      const skip = new Set(['general.size_label', 'general.name']);
      const keys = [...theirs.metadata.keys()].filter((k) => !skip.has(k));
      assert.deepEqual([...ours.metadata.keys()].filter((k) => !skip.has(k)).sort(), keys.sort());
      for (const k of keys) {
        const a = ours.metadata.get(k), b = theirs.metadata.get(k);
        // f32 values (rope base, epsilon) read back as the same float32
        if (typeof b === 'number') assert.equal(Math.fround(Number(a)), Math.fround(b), k);
        else assert.deepEqual(a, b, k);
      }
      assert.equal(ours.metadata.get('general.name'), 'hf');
    });
});

type Twin = { name: string; config: Record<string, unknown>; contextSize?: number };

const base = { hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 96, vocab_size: 411, rms_norm_eps: 1e-6, max_position_embeddings: 4096 };
const gemma3 = { ...base, num_hidden_layers: 6, model_type: 'gemma3_text', head_dim: 32, query_pre_attn_scalar: 32, sliding_window: 5, hidden_activation: 'gelu_pytorch_tanh' };
const longrope = (ctx: number): Twin => ({
  name: `phi3 LongRoPE, context ${ctx} (${ctx > 1024 ? 'long' : 'short'} factors)`, contextSize: ctx,
  config: {
    ...base, model_type: 'phi3', original_max_position_embeddings: 1024, max_position_embeddings: 16384,
    rope_scaling: { type: 'longrope', short_factor: [1, 1.1, 1.3, 1.7, 2, 2.5, 3, 4], long_factor: [1, 2, 4, 8, 12, 16, 24, 32] },
  },
});
const TWINS: Twin[] = [
  { name: 'qwen3 (q/k norms)', config: { ...base, model_type: 'qwen3', head_dim: 16, rope_theta: 1e6, tie_word_embeddings: true } },
  { name: 'gemma', config: { ...base, model_type: 'gemma', head_dim: 32, hidden_act: 'gelu' } },
  { name: 'gemma3, window 5, rope_scaling linear 8 on global layers', config: { ...gemma3, rope_theta: 1e6, rope_local_base_freq: 10000, rope_scaling: { rope_type: 'linear', factor: 8 } } },
  {
    name: 'gemma3, transformers-5 per-layer-type rope_parameters',
    config: { ...gemma3, rope_parameters: { full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 10000 } } },
  },
  { name: 'llama YaRN factor 4', config: { ...base, model_type: 'llama', rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 1024 } } },
  { name: 'qwen2 YaRN (rope_parameters)', config: { ...base, model_type: 'qwen2', rope_parameters: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 1024, rope_theta: 1e6 } } },
  longrope(512),
  longrope(2048),
  { name: 'mistral linear 2', config: { ...base, model_type: 'mistral', rope_scaling: { type: 'linear', factor: 2 } } },
];

/** The HF tensors of a decoder config, random: matrices N(0, 1/cols)·2, norms around 1 (Gemma: around 0, stored as w). */
function writeFolder(d: string, cfg: Record<string, any>, seed: number): void {
  const r = rng(seed);
  const D = cfg.hidden_size, H = cfg.num_attention_heads, KV = cfg.num_key_value_heads, hd = cfg.head_dim ?? D / H, F = cfg.intermediate_size, V = cfg.vocab_size;
  const gemma = String(cfg.model_type).startsWith('gemma');
  const entries: Record<string, Entry> = {};
  const put = (name: string, shape: number[], data: Float32Array) => (entries[name] = { dtype: 'F32', shape, data: new Uint8Array(data.buffer) });
  const mat = (name: string, rows: number, cols: number) => put(name, [rows, cols], randn(rows * cols, r, 2 / Math.sqrt(cols)));
  const norm = (name: string, n: number) => put(name, [n], randn(n, r, 0.1).map((x) => (gemma ? x : 1 + x)));
  put('model.embed_tokens.weight', [V, D], randn(V * D, r, gemma ? 0.25 : 1));
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    norm(p + 'input_layernorm.weight', D);
    if (cfg.model_type === 'phi3') {
      mat(p + 'self_attn.qkv_proj.weight', (H + 2 * KV) * hd, D);
      mat(p + 'mlp.gate_up_proj.weight', 2 * F, D);
    } else {
      mat(p + 'self_attn.q_proj.weight', H * hd, D);
      mat(p + 'self_attn.k_proj.weight', KV * hd, D);
      mat(p + 'self_attn.v_proj.weight', KV * hd, D);
      mat(p + 'mlp.gate_proj.weight', F, D);
      mat(p + 'mlp.up_proj.weight', F, D);
    }
    if (cfg.model_type === 'qwen2')
      for (const [n, rows] of [['q', H * hd], ['k', KV * hd], ['v', KV * hd]] as const) put(p + `self_attn.${n}_proj.bias`, [rows], randn(rows, r, 0.1));
    if (cfg.model_type === 'qwen3' || cfg.model_type === 'gemma3_text') (norm(p + 'self_attn.q_norm.weight', hd), norm(p + 'self_attn.k_norm.weight', hd));
    mat(p + 'self_attn.o_proj.weight', D, H * hd);
    norm(p + 'post_attention_layernorm.weight', D);
    if (cfg.model_type === 'gemma3_text') (norm(p + 'pre_feedforward_layernorm.weight', D), norm(p + 'post_feedforward_layernorm.weight', D));
    mat(p + 'mlp.down_proj.weight', D, F);
  }
  norm('model.norm.weight', D);
  if (!(cfg.tie_word_embeddings ?? gemma)) mat('lm_head.weight', V, D);
  mkdirSync(d);
  writeFileSync(path.join(d, 'config.json'), JSON.stringify(cfg));
  writeFileSync(path.join(d, 'model.safetensors'), encodeSafetensors(entries));
}

let llama: any;

describe('Hugging Face folder and its GGUF twin: the same logits and greedy tokens', function () {
  this.timeout(120_000);
  before(async () => {
    const peer = await loadLlamaCpp();
    if ('reason' in peer) console.log(`      (llama.cpp comparison skipped: ${peer.reason})`);
    else llama = peer.llama;
  });
  const prompt = [1, ...Array.from({ length: 23 }, (_, i) => 259 + ((i * 37) % 150))];

  TWINS.forEach((t, n) => {
    it(t.name, async () => {
      const folder = path.join(dir, `twin-${n}`), file = path.join(dir, `twin-${n}.gguf`);
      writeFolder(folder, t.config, 1000 + n);
      await writeLlamaFamilyGguf(folder, file);
      const runs: Array<{ ids: number[]; last: Float32Array }> = [];
      for (const [where, device] of [[folder, 'cpu'], [file, 'cpu'], [file, 'cuda']] as const) {
        const opts = { kvType: 'f32', contextSize: t.contextSize ?? 256, threads: 2 } as const;
        await using m = device === 'cuda' ? await loadOnCuda(where, opts) : await loadModel(where, opts);
        const logits = await m.evaluate(prompt);
        const V = t.config.vocab_size as number;
        const res = await m.generate(prompt, { maxTokens: 16 });
        runs.push({ ids: res.ids, last: logits.slice(logits.length - V) });
      }
      const scale = Math.max(...runs[0].last.map(Math.abs));
      const worst = Math.max(...runs.slice(1).map((r) => Math.max(...r.last.map((x, i) => Math.abs(x - runs[0].last[i])))));
      log(`folder vs GGUF (CPU, emulated CUDA): max |Δ logit| / max |logit| = ${(worst / scale).toExponential(2)}; greedy ${runs[0].ids.join(' ')}`);
      assert.ok(worst / scale < 1e-4, `logits differ by ${worst / scale} of the largest`);
      for (const r of runs.slice(1)) assert.deepEqual(r.ids, runs[0].ids);
      if (!llama) return;
      const lc = await openLlamaCpp(llama, file, t.contextSize ?? 256);
      try {
        const res = await lc.seq.controlledEvaluate(prompt.map((id, j) => (j === prompt.length - 1 ? [id, { generateNext: { logits: true } }] : id)));
        const lg: Map<number, number> = res[prompt.length - 1].next.logits;
        const diff = Math.max(...runs[1].last.map((x, i) => Math.abs(x - (lg.get(i) ?? NaN))));
        const theirs = await llamaCppGreedy(lc.seq, prompt, runs[0].ids.length, { yieldEogToken: false });
        log(`GGUF vs llama.cpp: max |Δ logit| / max |logit| = ${(diff / scale).toExponential(2)}`);
        // Gemma: llama.cpp's CPU GELU reads an f16 table (test/peers/arch-diff.test.ts)
        const tol = String(t.config.model_type).startsWith('gemma') ? 1e-3 : 2e-5;
        assert.ok(diff / scale < tol, `llama.cpp's logits differ by ${diff / scale} of the largest`);
        assert.deepEqual(runs[0].ids, theirs, 'llama.cpp greedy');
      } finally {
        await lc.dispose();
      }
    });
  });
});
