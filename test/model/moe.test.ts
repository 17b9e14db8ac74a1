/**
 * Mixtures of experts without a peer (test/peers/moe-diff.test.ts compares them with llama.cpp,
 * test/model/oracles.test.ts runs the Mixtral oracle). On random-weight GGUFs written here:
 *  - Qwen2-MoE (shared expert) and Qwen3-MoE Hugging Face folders made from those GGUFs (per-expert
 *    tensors under transformers' names, stacked at load) give the GGUF's last logits (within
 *    1e-5 of the largest) and greedy tokens: the config.json reading (num_experts,
 *    num_experts_per_tok, moe_intermediate_size, shared_expert_intermediate_size,
 *    norm_topk_prob) agrees with the GGUF reading;
 *  - the emulated CUDA backend picks the CPU's greedy tokens, shared expert included, and with
 *    q4_0 experts, whose 10-token prefill runs the grouped GEMM (cuda/moe_matmul_gemm.cu);
 *  - batched generation of several prompts gives each prompt's own greedy tokens, and the
 *    server's continuous batching (two requests at once) each request's;
 *  - dtype 'q8_0' converts the experts at load, from a GGUF and a folder;
 *  - the memory plan counts the experts: a budget of 90% of the file is refused;
 *  - a GGUF storing each expert as its own tensor (older Mixtral conversions: blk.N.ffn_gate.E...)
 *    gives the stacked file's logits bit for bit and its greedy tokens (f32 and q8_0, mapped and
 *    read), the memory plan counting the stacks as memory of their own; a missing expert, one
 *    of another shape or type, one past expert_count are E_FORMAT naming the tensor;
 *  - bad files are E_FORMAT naming the tensor or key: an expert count the tensors do not have,
 *    a router of the wrong width, a missing expert stack, more experts used than there are, a
 *    missing per-expert tensor in a folder, a GGUF with a dense layer (llama.cpp reads none);
 *  - dense layers among a Qwen-MoE folder's sparse ones (mlp_only_layers, decoder_sparse_step,
 *    as transformers places them, intermediate_size wide) give the logits and greedy tokens of
 *    the same model written all-sparse (each dense layer as identical experts).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GgmlType } from '../../lib/formats/ggml-types.js';
import { type GgufFile, ggufMetadataSpec, gv, readGguf, writeGguf } from '../../lib/formats/gguf.js';
import { loadModel, type Model } from '../../lib/index.js';
import { configFromGguf, configFromHf } from '../../lib/model/config.js';
import { disposeLlamaWeights, loadLlamaWeights } from '../../lib/model/llama.js';
import { ggufWeightItems } from '../../lib/model/memory.js';
import { CPU_BLOCK_DTYPES } from '../../lib/model/weights.js';
import { createServer } from '../../lib/server/server.js';
import { type SyntheticModelSpec, writeSyntheticModel } from '../../lib/tools/synthetic.js';
import { encodeSafetensors, type Entry } from '../formats/safetensors-helpers.js';
import { loadOnCuda } from '../helpers/cuda.js';
import { type GgufTensorSpec, writeSplitExperts } from '../helpers/split-experts.js';

const opts = { kvType: 'f32', contextSize: 128 } as const;
let dir: string;
before(() => (dir = mkdtempSync(path.join(tmpdir(), 'fuselm-moe-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

const spec = (arch: 'llama' | 'qwen2moe' | 'qwen3moe', more: Partial<SyntheticModelSpec> = {}): SyntheticModelSpec => ({
  arch, vocabSize: 301, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 80, contextLength: 256, dtype: 'f32', seed: 7,
  experts: { count: 4, used: 2, ffn: 48, shared: arch === 'qwen2moe' }, ...more,
});
const QWEN2 = spec('qwen2moe'), QWEN3 = spec('qwen3moe'), MIXTRAL = spec('llama', { experts: { count: 8, used: 2, ffn: 64 } });

let files = 0;
async function write(s: SyntheticModelSpec): Promise<string> {
  const file = path.join(dir, `${files++}.gguf`);
  await writeSyntheticModel(file, s);
  return file;
}

const prompt = Array.from({ length: 20 }, (_, i) => 3 + ((i * 37) % 290));
const greedy = async (m: Model, p = prompt, n = 12) => (await m.generate(p, { maxTokens: n, temperature: 0, ignoreEog: true })).ids;

/** A GGUF's f32 tensor as values, by name. */
function values(f: GgufFile, name: string): Float32Array {
  const t = f.tensorByName.get(name)!;
  const b = readFileSync(f.path).subarray(t.offset, t.offset + t.nbytes);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** f32 tensors of a Hugging Face folder by name: row-major shape and values. */
type HfEntries = Record<string, { shape: number[]; v: Float32Array }>;

/** The Hugging Face tensors of a Qwen-MoE GGUF written by writeSyntheticModel (f32, NeoX rope in both: no permuting). */
async function hfEntriesOf(file: string, s: SyntheticModelSpec, modelType: 'qwen2_moe' | 'qwen3_moe'): Promise<HfEntries> {
  const f = await readGguf(file);
  const x = s.experts!, D = s.dim;
  const entries: HfEntries = {};
  const put = (name: string, shape: number[], v: Float32Array) => (entries[name] = { shape, v });
  const from = (name: string, gguf: string) => put(name, [...f.tensorByName.get(gguf)!.dims].reverse(), values(f, gguf));
  from('model.embed_tokens.weight', 'token_embd.weight');
  for (let l = 0; l < s.nLayers; l++) {
    const p = `model.layers.${l}.`, b = `blk.${l}.`;
    from(p + 'input_layernorm.weight', b + 'attn_norm.weight');
    for (const n of ['q', 'k', 'v']) from(p + `self_attn.${n}_proj.weight`, b + `attn_${n}.weight`);
    from(p + 'self_attn.o_proj.weight', b + 'attn_output.weight');
    if (modelType === 'qwen2_moe') for (const n of ['q', 'k', 'v']) from(p + `self_attn.${n}_proj.bias`, b + `attn_${n}.bias`);
    else (from(p + 'self_attn.q_norm.weight', b + 'attn_q_norm.weight'), from(p + 'self_attn.k_norm.weight', b + 'attn_k_norm.weight'));
    from(p + 'post_attention_layernorm.weight', b + 'ffn_norm.weight');
    from(p + 'mlp.gate.weight', b + 'ffn_gate_inp.weight');
    for (const [hf, gguf, rows, cols] of [['gate_proj', 'gate', x.ffn, D], ['up_proj', 'up', x.ffn, D], ['down_proj', 'down', D, x.ffn]] as const) {
      const all = values(f, `${b}ffn_${gguf}_exps.weight`);
      for (let e = 0; e < x.count; e++) put(`${p}mlp.experts.${e}.${hf}.weight`, [rows, cols], all.slice(e * rows * cols, (e + 1) * rows * cols));
    }
    if (x.shared) {
      for (const n of ['gate', 'up', 'down']) from(p + `mlp.shared_expert.${n}_proj.weight`, b + `ffn_${n}_shexp.weight`);
      put(p + 'mlp.shared_expert_gate.weight', [1, D], values(f, b + 'ffn_gate_inp_shexp.weight'));
    }
  }
  from('model.norm.weight', 'output_norm.weight');
  from('lm_head.weight', 'output.weight');
  return entries;
}

/** A Qwen-MoE folder of these tensors; its config.json from `s`, with `more` keys. */
function writeFolder(entries: HfEntries, s: SyntheticModelSpec, modelType: 'qwen2_moe' | 'qwen3_moe', more: Record<string, unknown> = {}): string {
  const x = s.experts!, D = s.dim;
  const st: Record<string, Entry> = {};
  for (const [name, { shape, v }] of Object.entries(entries)) st[name] = { dtype: 'F32', shape, data: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
  const folder = path.join(dir, `folder-${files++}`);
  mkdirSync(folder);
  writeFileSync(path.join(folder, 'config.json'), JSON.stringify({
    model_type: modelType, vocab_size: s.vocabSize, hidden_size: D, num_hidden_layers: s.nLayers, num_attention_heads: s.nHeads,
    num_key_value_heads: s.nKvHeads, intermediate_size: 999, moe_intermediate_size: x.ffn, num_experts: x.count, num_experts_per_tok: x.used,
    ...(x.shared ? { shared_expert_intermediate_size: s.ffnDim } : {}), norm_topk_prob: modelType === 'qwen3_moe',
    rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 256, tie_word_embeddings: false, hidden_act: 'silu',
    ...(modelType === 'qwen3_moe' ? { head_dim: D / s.nHeads } : {}), ...more,
  }));
  writeFileSync(path.join(folder, 'model.safetensors'), encodeSafetensors(st));
  return folder;
}

/** The Hugging Face folder of a Qwen-MoE GGUF written by writeSyntheticModel. */
async function folderOf(file: string, s: SyntheticModelSpec, modelType: 'qwen2_moe' | 'qwen3_moe'): Promise<string> {
  return writeFolder(await hfEntriesOf(file, s, modelType), s, modelType);
}

describe('mixture-of-experts models', function () {
  this.timeout(120_000);

  for (const [name, s, type] of [['Qwen2-MoE (shared expert, weights not renormalized)', QWEN2, 'qwen2_moe'], ['Qwen3-MoE (renormalized)', QWEN3, 'qwen3_moe']] as const)
    it(`${name}: the Hugging Face folder gives the GGUF's logits and greedy tokens`, async () => {
      const file = await write(s);
      const folder = await folderOf(file, s, type);
      await using g = await loadModel(file, opts);
      await using h = await loadModel(folder, opts);
      const a = await g.evaluate(prompt), b = await h.evaluate(prompt);
      const scale = Math.max(...Array.from(a, Math.abs));
      const worst = Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]))) / scale;
      console.log(`      folder vs GGUF: max |Δ logit| / max |logit| = ${worst.toExponential(2)}`);
      assert.ok(worst <= 1e-5, `${worst}`);
      g.clearCache();
      h.clearCache();
      assert.deepEqual(await greedy(h), await greedy(g));
    });

  for (const [name, s] of [
    ['Mixtral layout, 8 experts top 2', MIXTRAL],
    ['Qwen2-MoE with its shared expert', QWEN2],
    ['Mixtral layout, q4_0 experts (prefill on the grouped tensor-core GEMM)', spec('llama', { dtype: 'q4_0', experts: { count: 4, used: 2, ffn: 64 } })],
  ] as const)
    it(`${name}: emulated CUDA picks the CPU's greedy tokens`, async () => {
      const file = await write(s);
      await using cpu = await loadModel(file, { ...opts, device: 'cpu' });
      await using gpu = await loadOnCuda(file, opts);
      const p = prompt.slice(0, 10);
      assert.deepEqual(await greedy(gpu, p, 6), await greedy(cpu, p, 6));
    });

  it('batched prompts and the server: each sequence its own greedy tokens', async () => {
    const file = await write(MIXTRAL);
    await using m = await loadModel(file, { ...opts, threads: 2 });
    const prompts = [prompt, prompt.slice(3, 11), prompt.slice(0, 5).reverse()];
    const alone = [];
    for (const p of prompts) alone.push(await greedy(m, p, 10));
    const together = await m.generate(prompts, { maxTokens: 10, temperature: 0, ignoreEog: true });
    assert.deepEqual(together.map((r) => r.ids), alone);
    // two requests at once through the server's scheduler (one step for both)
    const texts = ['the cat sat', 'on a mat and'];
    const want = [];
    for (const t of texts) want.push((await m.generate(t, { maxTokens: 8, temperature: 0, ignoreEog: true })).text);
    const s = createServer(m, { parallel: 2 });
    try {
      await s.ready;
      const base = await s.listen({ port: 0 });
      const replies = await Promise.all(texts.map((prompt) =>
        fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt, max_tokens: 8, temperature: 0, ignore_eos: true }) }).then((r) => r.json())));
      assert.deepEqual(replies.map((r: any) => r.choices[0].text), want);
    } finally {
      await s.close();
    }
  });

  it("dtype 'q8_0' converts the expert stacks at load (GGUF and folder alike)", async () => {
    const s = spec('qwen2moe', { dim: 128, experts: { count: 4, used: 2, ffn: 64, shared: true }, ffnDim: 96 });
    const file = await write(s);
    const folder = await folderOf(file, s, 'qwen2_moe');
    await using exact = await loadModel(file, opts);
    const want = await exact.evaluate(prompt);
    const scale = Math.max(...Array.from(want, Math.abs));
    const w = await loadLlamaWeights(await readGguf(file), configFromGguf(await readGguf(file)), { contextSize: 64, dtype: 'q8_0' });
    try {
      assert.deepEqual([w.layers[1].gateExps?.dtype, w.layers[1].downExps?.dtype, w.layers[1].router?.dtype], ['q8_0', 'q8_0', 'q8_0']);
      assert.deepEqual(w.layers[1].downExps?.shape, [4, 128, 64]);
    } finally {
      disposeLlamaWeights(w);
    }
    for (const where of [file, folder]) {
      await using m = await loadModel(where, { ...opts, dtype: 'q8_0' });
      const got = await m.evaluate(prompt);
      const worst = Math.max(...Array.from(got, (v, i) => Math.abs(v - want[i]))) / scale;
      // q8_0 weights and activations: a few 1e-3 of the largest logit, not 0 (so it did convert)
      assert.ok(worst > 1e-5 && worst < 5e-2, `${where}: ${worst}`);
    }
  });

  it('the memory plan counts the experts', async () => {
    const file = await write(spec('llama', { experts: { count: 8, used: 2, ffn: 512 } }));
    await assert.rejects(loadModel(file, { ...opts, maxMemory: Math.floor(statSync(file).size * 0.9) }), { code: 'E_OUT_OF_MEMORY' });
  });

  describe("dense layers among the sparse ones (Qwen-MoE folders' mlp_only_layers, decoder_sparse_step)", () => {
    it('which layers are dense, as transformers decides', () => {
      const base = { model_type: 'qwen2_moe', vocab_size: 300, hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 96, moe_intermediate_size: 32, shared_expert_intermediate_size: 48, num_experts: 4, num_experts_per_tok: 2 };
      const dense = (more: Record<string, unknown>) => configFromHf({ ...base, ...more }, 'config.json').moe!.dense;
      assert.equal(dense({}), undefined);
      assert.equal(dense({ decoder_sparse_step: 1, mlp_only_layers: [] }), undefined);
      assert.deepEqual(dense({ decoder_sparse_step: 2 }), { layers: [true, false, true, false], ffnDim: 96 });
      assert.deepEqual(dense({ decoder_sparse_step: 2, mlp_only_layers: [3] }), { layers: [true, false, true, true], ffnDim: 96 });
      assert.deepEqual(dense({ mlp_only_layers: [0, 2, 7] }), { layers: [true, false, true, false], ffnDim: 96 });
      assert.deepEqual(dense({ decoder_sparse_step: 3 }), { layers: [true, true, false, true], ffnDim: 96 });
    });

    /**
     * The expected model without dense layers: an all-sparse folder whose experts are as wide as
     * the dense MLPs (intermediate_size); its sparse layers' experts zero-padded (SwiGLU of zero
     * rows adds exactly 0), each dense layer's every expert the dense MLP (weights renormalized:
     * their sum is the MLP's output) and its shared expert's down projection zero.
     */
    const MOE_FF = 32, DENSE_FF = 48;
    for (const [name, type, more] of [
      ['Qwen3-MoE, decoder_sparse_step 2', 'qwen3_moe', { decoder_sparse_step: 2 }],
      ['Qwen2-MoE (shared expert), mlp_only_layers [0, 3]', 'qwen2_moe', { mlp_only_layers: [0, 3] }],
    ] as const)
      it(`${name}: the logits and greedy tokens of the same model written all-sparse`, async () => {
        const s = spec(type === 'qwen2_moe' ? 'qwen2moe' : 'qwen3moe', { nLayers: 4, experts: { count: 4, used: 2, ffn: DENSE_FF, shared: type === 'qwen2_moe' } });
        const wide = await hfEntriesOf(await write(s), s, type);
        const denseLayers = configFromHf({ model_type: type, num_hidden_layers: 4, hidden_size: 64, num_attention_heads: 4, vocab_size: 301, intermediate_size: DENSE_FF, moe_intermediate_size: MOE_FF, shared_expert_intermediate_size: s.ffnDim, num_experts: 4, num_experts_per_tok: 2, ...more }, 'c').moe!.dense!.layers;
        const mixed: HfEntries = {};
        for (const [n, t] of Object.entries(wide)) {
          const m = /^model\.layers\.(\d+)\.mlp\.(.*)$/.exec(n);
          if (!m) {
            mixed[n] = t;
            continue;
          }
          const l = Number(m[1]), p = `model.layers.${l}.mlp.`, ex = /^experts\.(\d+)\.(\w+)_proj\.weight$/.exec(m[2]);
          if (denseLayers[l]) {
            // the dense MLP is expert 0; every expert of the all-sparse twin repeats it
            if (ex) {
              const first = wide[`${p}experts.0.${ex[2]}_proj.weight`];
              if (ex[1] === '0') mixed[`${p}${ex[2]}_proj.weight`] = first;
              else t.v.set(first.v);
            } else if (m[2] === 'shared_expert.down_proj.weight') t.v.fill(0);
            continue;
          }
          if (!ex) {
            mixed[n] = t;
            continue;
          }
          // a sparse layer: experts MOE_FF wide, the twin's zero-padded to DENSE_FF
          const [rows, cols] = t.shape;
          if (ex[2] === 'down') {
            const v = new Float32Array(rows * MOE_FF);
            for (let r = 0; r < rows; r++) (v.set(t.v.subarray(r * cols, r * cols + MOE_FF), r * MOE_FF), t.v.fill(0, r * cols + MOE_FF, (r + 1) * cols));
            mixed[n] = { shape: [rows, MOE_FF], v };
          } else {
            mixed[n] = { shape: [MOE_FF, cols], v: t.v.slice(0, MOE_FF * cols) };
            t.v.fill(0, MOE_FF * cols);
          }
        }
        const twin = writeFolder(wide, s, type, { norm_topk_prob: true });
        const folder = writeFolder(mixed, s, type, { norm_topk_prob: true, intermediate_size: DENSE_FF, moe_intermediate_size: MOE_FF, ...more });
        await using want = await loadModel(twin, opts);
        await using got = await loadModel(folder, opts);
        const a = await want.evaluate(prompt), b = await got.evaluate(prompt);
        const scale = Math.max(...Array.from(a, Math.abs));
        const worst = Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]))) / scale;
        console.log(`      mixed vs all-sparse twin: max |Δ logit| / max |logit| = ${worst.toExponential(2)}`);
        assert.ok(worst <= 1e-5, `${worst}`);
        want.clearCache();
        got.clearCache();
        assert.deepEqual(await greedy(got), await greedy(want));
      });
  });

  describe('each expert its own tensor (older Mixtral conversions)', () => {
    async function split(s: SyntheticModelSpec, change?: (tensors: GgufTensorSpec[]) => void) {
      const src = await write(s), out = path.join(dir, `${files++}.gguf`);
      await writeSplitExperts(src, out, change);
      return { src, out };
    }

    for (const [name, s] of [['f32', MIXTRAL], ['q8_0', spec('llama', { dtype: 'q8_0', experts: { count: 4, used: 2, ffn: 64 } })]] as const)
      for (const useMmap of [true, false])
        it(`${name}, ${useMmap ? 'mapped' : 'read'}: the stacked file's logits bit for bit and its greedy tokens`, async () => {
          const { src, out } = await split(s);
          assert.ok((await readGguf(out)).tensorByName.has('blk.1.ffn_down.1.weight'));
          await using stacked = await loadModel(src, { ...opts, useMmap });
          await using each = await loadModel(out, { ...opts, useMmap });
          assert.deepEqual(await each.evaluate(prompt), await stacked.evaluate(prompt));
          stacked.clearCache();
          each.clearCache();
          assert.deepEqual(await greedy(each), await greedy(stacked));
        });

    it('the memory plan counts the copied stacks as memory of their own, not file-backed pages', async () => {
      const { src, out } = await split(MIXTRAL);
      const [stacked, each] = [await readGguf(src), await readGguf(out)];
      const exps = stacked.tensors.filter((t) => t.name.endsWith('_exps.weight')).reduce((n, t) => n + t.nbytes, 0);
      const [mapped] = ggufWeightItems(stacked, 'auto', CPU_BLOCK_DTYPES, true);
      const [fileBacked, own] = ggufWeightItems(each, 'auto', CPU_BLOCK_DTYPES, true);
      assert.equal(fileBacked.bytes, mapped.bytes - exps);
      assert.ok(own.bytes >= exps && own.bytes < exps + 6 * (2 << 20), `${own.bytes} for ${exps} bytes of experts`);
    });

    const bad = (what: string, change: (tensors: GgufTensorSpec[]) => void, message: RegExp, s: SyntheticModelSpec = MIXTRAL) =>
      it(`${what}: E_FORMAT naming the tensor`, async () => {
        const { out } = await split(s, change);
        await assert.rejects(loadModel(out, opts), { code: 'E_FORMAT', message });
      });
    const find = (tensors: GgufTensorSpec[], name: string) => tensors.find((t) => t.name === name)!;
    bad('a missing expert', (ts) => ts.splice(ts.findIndex((t) => t.name === 'blk.1.ffn_up.5.weight'), 1), /tensor 'blk\.1\.ffn_up\.5\.weight' is missing/);
    bad('an expert of another shape', (ts) => {
      const t = find(ts, 'blk.0.ffn_down.2.weight');
      t.dims = [32, 64];
      t.data = t.data.subarray(0, t.data.length / 2);
    }, /tensor 'blk\.0\.ffn_down\.2\.weight' has dims \[32,64\] \(innermost first\), expected \[64,64\]/);
    bad('an expert of another type', (ts) => {
      const t = find(ts, 'blk.1.ffn_gate.3.weight');
      t.type = GgmlType.F16;
      t.data = t.data.subarray(0, t.data.length / 2);
    }, /tensor 'blk\.1\.ffn_gate\.3\.weight' is of type F16, expert 0's of F32/);
    bad('one expert more than expert_count', (ts) => {
      const t = find(ts, 'blk.0.ffn_gate.3.weight');
      ts.push({ ...t, name: 'blk.0.ffn_gate.4.weight' });
    }, /tensor 'blk\.0\.ffn_gate\.4\.weight' is past the file's expert count, 4/, spec('llama', { experts: { count: 4, used: 2, ffn: 64 } }));
  });

  describe('bad files: E_FORMAT naming the tensor or key', () => {
    /** The file of `s` with its metadata and tensors changed. */
    async function altered(s: SyntheticModelSpec, change: (meta: ReturnType<typeof ggufMetadataSpec>, tensors: Array<{ name: string; type: GgmlType; dims: number[]; data: Uint8Array }>) => void) {
      const src = await write(s);
      const f = await readGguf(src);
      const bytes = readFileSync(src);
      const meta = ggufMetadataSpec(f);
      const tensors = f.tensors.map((t) => ({ name: t.name, type: t.type, dims: [...t.dims], data: bytes.subarray(t.offset, t.offset + t.nbytes) }));
      change(meta, tensors);
      const out = path.join(dir, `${files++}.gguf`);
      await writeGguf(out, { version: 3, metadata: meta, tensors });
      return out;
    }
    const setKey = (meta: ReturnType<typeof ggufMetadataSpec>, key: string, v: number) => Object.assign(meta.find((m) => m.key === key)!, gv.u32(v));

    it('expert_count that the tensors do not have', async () => {
      const file = await altered(QWEN3, (meta) => setKey(meta, 'qwen3moe.expert_count', 5));
      await assert.rejects(loadModel(file, opts), { code: 'E_FORMAT', message: /tensor 'blk\.0\.ffn_gate_inp\.weight' has dims \[64,4\] \(innermost first\), expected \[64,5\]/ });
    });
    it('a router of the wrong width', async () => {
      const file = await altered(MIXTRAL, (_, tensors) => {
        const t = tensors.find((x) => x.name === 'blk.1.ffn_gate_inp.weight')!;
        t.dims = [32, 16];
      });
      await assert.rejects(loadModel(file, opts), { code: 'E_FORMAT', message: /tensor 'blk\.1\.ffn_gate_inp\.weight' has dims \[32,16\]/ });
    });
    it('an expert stack of another count than the router', async () => {
      const file = await altered(MIXTRAL, (_, tensors) => {
        const t = tensors.find((x) => x.name === 'blk.0.ffn_down_exps.weight')!;
        t.dims = [t.dims[0], t.dims[1], 4];
        t.data = t.data.subarray(0, t.data.length / 2);
      });
      await assert.rejects(loadModel(file, opts), { code: 'E_FORMAT', message: /tensor 'blk\.0\.ffn_down_exps\.weight' has dims \[64,64,4\]/ });
    });
    it('a missing expert stack', async () => {
      const file = await altered(QWEN2, (_, tensors) => tensors.splice(tensors.findIndex((x) => x.name === 'blk.1.ffn_up_exps.weight'), 1));
      await assert.rejects(loadModel(file, opts), { code: 'E_FORMAT', message: /tensor 'blk\.1\.ffn_up_exps\.weight' is missing/ });
    });
    it('more experts used than there are', async () => {
      const file = await altered(QWEN2, (meta) => setKey(meta, 'qwen2moe.expert_used_count', 6));
      await assert.rejects(loadModel(file, opts), { code: 'E_FORMAT', message: /qwen2moe\.expert_count = 4 and qwen2moe\.expert_used_count = 6/ });
    });
    it('a GGUF with a dense layer among the sparse ones: E_FORMAT naming the missing router (llama.cpp has no such layers)', async () => {
      const file = await altered(QWEN3, (_, tensors) => {
        const gone = ['ffn_gate_inp', 'ffn_gate_exps', 'ffn_up_exps', 'ffn_down_exps'].map((n) => `blk.1.${n}.weight`);
        const exps = (n: string) => tensors.find((t) => t.name === `blk.1.ffn_${n}_exps.weight`)!;
        // expert 0 as the layer's dense MLP
        const dense = ['gate', 'up', 'down'].map((n) => ({ ...exps(n), name: `blk.1.ffn_${n}.weight`, dims: exps(n).dims.slice(0, 2), data: exps(n).data.subarray(0, exps(n).data.length / 4) }));
        tensors.splice(0, tensors.length, ...tensors.filter((t) => !gone.includes(t.name)), ...dense);
      });
      await assert.rejects(loadModel(file, opts), { code: 'E_FORMAT', message: /tensor 'blk\.1\.ffn_gate_inp\.weight' is missing/ });
    });
    it('bad decoder_sparse_step and mlp_only_layers', () => {
      const base = { model_type: 'qwen3_moe', vocab_size: 300, hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 96, moe_intermediate_size: 32, num_experts: 4, num_experts_per_tok: 2 };
      assert.throws(() => configFromHf({ ...base, decoder_sparse_step: 0 }, 'c'), { code: 'E_FORMAT', message: /'decoder_sparse_step' must be an integer >= 1, got 0/ });
      assert.throws(() => configFromHf({ ...base, mlp_only_layers: [1, 'x'] }, 'c'), { code: 'E_FORMAT', message: /'mlp_only_layers' must be a list of layer indices/ });
    });
    it('a folder missing one expert\'s tensor', async () => {
      const file = await write(QWEN3);
      const folder = await folderOf(file, QWEN3, 'qwen3_moe');
      const st = path.join(folder, 'model.safetensors');
      // rename one tensor in the header (same length, so offsets hold)
      const b = Buffer.from(readFileSync(st));
      const at = b.indexOf('model.layers.1.mlp.experts.3.up_proj.weight');
      b.write('model.layers.1.mlp.experts.3.up_proj.weighX', at);
      writeFileSync(st, b);
      await assert.rejects(loadModel(folder, opts), { code: 'E_FORMAT', message: /tensor 'model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight' is missing/ });
    });
  });
});
