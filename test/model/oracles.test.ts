/**
 * The reference fixtures of ../shared/models/oracles (tiny random-weight models made by
 * transformers 5 and converted by llama.cpp's own converter; their README says how): for each
 * supported one, the prompts tokenize to the oracle's ids; the GGUF's 24 greedy tokens (EOS
 * off, F32 KV cache) equal llama.cpp's; the Hugging Face folder's equal transformers' and its
 * last-position logits are within 1e-4 of transformers' (relative to the largest). On the CPU,
 * and again on the CUDA backend (its emulator without a GPU): the same greedy tokens.
 * - llama3-ropefreqs: Llama-3.1 rope scaling (rope_type llama3 in rope_parameters; the GGUF's
 *   rope_freqs.weight), theta 5e5: before, the GGUF ran without its rope_freqs and the folder
 *   with theta 10000, silently.
 * - qwen2: q/k/v biases, tied embeddings, theta 1e6 in rope_parameters, the qwen2 GGUF
 *   architecture (NeoX rope).
 * - phi3: q/k/v fused (qkv_proj, attn_qkv) and gate/up fused (gate_up_proj, ffn_up), read as
 *   row slices; partial_rotary_factor 1 in rope_parameters.
 * - gemma2: embeddings times sqrt(64), norm weights stored as w - 1 in the folder (1 + w in the
 *   GGUF), GELU-tanh GeGLU, sandwich norms, attention soft-capping 50 and final logits 30,
 *   query_pre_attn_scalar, a sliding window on every other layer (4096: inactive here).
 * - mistral-swa: a sliding window of 8 in the folder (transformers' reference); none in the
 *   GGUF, whose converter drops it (llama.cpp's reference).
 * - mixtral: a mixture of experts (4 experts of width 96, top 2, renormalized): the folder's
 *   per-expert w1/w3/w2 stacked at load, the GGUF's ffn_*_exps as stored.
 * And a llama GGUF holding a tensor the model would not read (here a q/k norm) is refused,
 * naming it, instead of running without it.
 * Skipped, saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GgmlType } from '../../lib/formats/ggml-types.js';
import { ggufMetadataSpec, readGguf, writeGguf } from '../../lib/formats/gguf.js';
import { loadModel, type Model } from '../../lib/index.js';
import { loadOnCuda } from '../helpers/cuda.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

interface Prompt {
  text: string;
  ids_with_special: number[];
  hf_last_logits: number[];
  hf_greedy: number[];
  llamacpp_greedy: number[];
}
interface Oracle {
  fixture: string;
  prompts: Prompt[];
}

const FIXTURES: Array<[dir: string, gguf: string]> = [
  ['llama3-ropefreqs', 'llama3-ropefreqs.f32.gguf'],
  ['qwen2', 'qwen2.f32.gguf'],
  // window 8, shorter than the longer prompts and every continuation: the folder keeps it (as
  // transformers); llama.cpp's converter drops it, so the GGUF runs without one (as llama.cpp)
  ['mistral-swa', 'mistral-swa.f32.gguf'],
  ['phi3', 'phi3.f32.gguf'],
  ['gemma2', 'gemma2.f32.gguf'],
  ['mixtral', 'mixtral.f32.gguf'],
];

async function greedy(m: Model, ids: number[]): Promise<number[]> {
  return (await m.generate(ids, { maxTokens: 24, ignoreEog: true })).ids;
}

describe('oracle fixtures (transformers and llama.cpp)', () => {
  for (const [dir, gguf] of FIXTURES)
    describe(dir, () => {
      it('the GGUF: tokens as transformers, 24 greedy tokens as llama.cpp (CPU and CUDA)', async function () {
        requireShared(this, `models/oracles/${dir}/oracle.json`);
        const o = readSharedJson<Oracle>(`models/oracles/${dir}/oracle.json`);
        const file = sharedPath('models', 'oracles', dir, gguf);
        await using cpu = await loadModel(file, { device: 'cpu', kvType: 'f32', contextSize: 256 });
        await using gpu = await loadOnCuda(file, { kvType: 'f32', contextSize: 256 });
        for (const p of o.prompts) {
          assert.deepEqual(cpu.tokenizer.encode(p.text, { addSpecial: true }), p.ids_with_special, `${p.text}: ids`);
          assert.deepEqual(await greedy(cpu, p.ids_with_special), p.llamacpp_greedy, `${p.text}: greedy on the CPU`);
          assert.deepEqual(await greedy(gpu, p.ids_with_special), p.llamacpp_greedy, `${p.text}: greedy on CUDA`);
        }
      });

      it('the Hugging Face folder: last logits within 1e-4 and 24 greedy tokens as transformers (CPU and CUDA)', async function () {
        requireShared(this, `models/oracles/${dir}/oracle.json`);
        const o = readSharedJson<Oracle>(`models/oracles/${dir}/oracle.json`);
        await using m = await loadModel(sharedPath('models', 'oracles', dir, 'hf'), { device: 'cpu', kvType: 'f32', contextSize: 256 });
        let worst = 0;
        for (const p of o.prompts) {
          assert.deepEqual(m.tokenizer.encode(p.text, { addSpecial: true }), p.ids_with_special, `${p.text}: ids`);
          const logits = await m.evaluate(p.ids_with_special);
          const V = p.hf_last_logits.length;
          const last = logits.subarray(logits.length - V);
          const scale = Math.max(...p.hf_last_logits.map(Math.abs));
          for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(last[i] - p.hf_last_logits[i]) / scale);
          m.clearCache();
          assert.deepEqual(await greedy(m, p.ids_with_special), p.hf_greedy, `${p.text}: greedy`);
        }
        console.log(`      ${dir}: last logits max |ours - transformers| / max |logit| = ${worst.toExponential(2)}`);
        assert.ok(worst <= 1e-4, `${dir}: ${worst}`);
        // the same tokens on the CUDA backend
        await using gpu = await loadOnCuda(sharedPath('models', 'oracles', dir, 'hf'), { kvType: 'f32', contextSize: 256 });
        for (const p of o.prompts) assert.deepEqual(await greedy(gpu, p.ids_with_special), p.hf_greedy, `${p.text}: greedy on CUDA`);
      });
    });
});

describe('a GGUF tensor the model does not read', () => {
  it('is an E_UNSUPPORTED naming it, not a silent omission', async function () {
    requireShared(this, 'models/oracles/llama3-ropefreqs/llama3-ropefreqs.f32.gguf');
    const src = sharedPath('models', 'oracles', 'llama3-ropefreqs', 'llama3-ropefreqs.f32.gguf');
    const f = await readGguf(src);
    const bytes = readFileSync(src);
    const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-oracle-'));
    try {
      const out = path.join(dir, 'extra.gguf');
      await writeGguf(out, {
        version: 3,
        metadata: ggufMetadataSpec(f),
        tensors: [
          ...f.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.nbytes) })),
          { name: 'blk.0.attn_q_norm.weight', type: GgmlType.F32, dims: [16], data: new Uint8Array(64) },
        ],
      });
      await assert.rejects(loadModel(out, { device: 'cpu' }), { code: 'E_UNSUPPORTED', message: /tensor blk\.0\.attn_q_norm\.weight of this llama model is not supported/ });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
