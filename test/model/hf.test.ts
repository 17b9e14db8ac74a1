/**
 * Hugging Face model folders. Proves that
 *  - llama (single file and sharded), mistral (sliding window 4 over 16-token sequences) and
 *    qwen2 (q/k/v biases) give the reference logits of ../shared/models/hf/neural-api-*
 *    (float64 HF forward passes) within 1e-4 at every position of every sequence, with the
 *    reference kernels and the fast ones;
 *  - gpt2 (LayerNorm, learned positions, GELU tanh, Conv1D weights transposed at load, tied
 *    head; tensor names without the `transformer.` prefix) does the same;
 *  - a folder with a tokenizer.json loads it and generates text (campello, lm-buddy-fake-gpt2
 *    with the real GPT-2 tokenizer, `transformer.`-prefixed names), and generation_config.json
 *    is kept as model.generationConfig; a folder without a tokenizer ends generation at every
 *    eos_token_id of its generation_config.json;
 *  - decoding token by token through the KV cache gives the same logits as the whole sequence,
 *    and batched generation (GPT-2's learned positions per sequence, Mistral's window, Qwen2's
 *    biases) gives the same tokens as one prompt at a time;
 *  - F16 and BF16 checkpoints (written here from the tiny Llama and GPT-2, norms, biases and
 *    Conv1D weights included) load and give the logits of an F32 checkpoint holding the same
 *    rounded values;
 *  - a malformed or unsupported config.json is a FuselmError naming the file and key.
 * Skipped, saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FuselmError } from '../../lib/errors.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../lib/formats/ggml-types.js';
import { parseSafetensorsHeader } from '../../lib/formats/safetensors.js';
import { encodeSafetensors } from '../formats/safetensors-helpers.js';
import type { NativeImpl } from '../../bindings.js';
import { loadModel } from '../../lib/model/model.js';
import { requireShared, readSharedJson, sharedPath } from '../helpers/shared.js';
import { fastImpls } from '../helpers/parity.js';

const log = (s: string) => console.log(`      ${s}`);

async function maxLogitErr(folder: string, refFolder: string, impl: NativeImpl): Promise<number> {
  const ref = readSharedJson<{ sequences: number[][]; logits: number[][][] }>(`models/hf/${refFolder}/reference_logits.json`);
  await using m = await loadModel(sharedPath(`models/hf/${folder}`), { impl, threads: 2 });
  let worst = 0;
  for (let s = 0; s < ref.sequences.length; s++) {
    const ids = ref.sequences[s];
    const got = await m.evaluate(ids, { allLogits: true });
    const V = m.config.vocabSize;
    assert.equal(got.length, ids.length * V);
    for (let t = 0; t < ids.length; t++)
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(got[t * V + v] - ref.logits[s][t][v]));
  }
  return worst;
}

describe('Hugging Face folders: reference logits', () => {
  const cases: Array<[string, string]> = [
    ['neural-api-tiny-llama', 'neural-api-tiny-llama'],
    ['neural-api-tiny-llama-sharded', 'neural-api-tiny-llama'],
    ['neural-api-tiny-mistral', 'neural-api-tiny-mistral'],
    ['neural-api-tiny-qwen2', 'neural-api-tiny-qwen2'],
    ['neural-api-tiny-gpt2', 'neural-api-tiny-gpt2'],
  ];
  for (const [folder, refFolder] of cases)
    it(`${folder}: logits within 1e-4 of the reference, every kernel level`, async function () {
      requireShared(this, `models/hf/${folder}/config.json`, `models/hf/${refFolder}/reference_logits.json`);
      for (const impl of ['reference', ...fastImpls()] as NativeImpl[]) {
        const err = await maxLogitErr(folder, refFolder, impl);
        log(`${impl}: max |logit - ref| = ${err.toExponential(2)}`);
        assert.ok(err < 1e-4, `${folder} ${impl}: max error ${err}`);
      }
    });

  it('mistral: decoding token by token (KV cache, window) matches the whole-sequence logits', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-mistral/reference_logits.json');
    const ref = readSharedJson<{ sequences: number[][]; logits: number[][][] }>('models/hf/neural-api-tiny-mistral/reference_logits.json');
    await using m = await loadModel(sharedPath('models/hf/neural-api-tiny-mistral'), { batchSize: 1 });
    assert.equal(m.config.slidingWindow, 4);
    const ids = ref.sequences[0];
    const all = await m.evaluate(ids, { allLogits: true });
    const V = m.config.vocabSize;
    let worst = 0;
    for (let t = 0; t < ids.length; t++) for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(all[t * V + v] - ref.logits[0][t][v]));
    assert.ok(worst < 1e-4, `batch 1: ${worst}`);
  });
});

describe('Hugging Face folders: tokenizers and generation', () => {
  for (const folder of ['neural-api-tiny-gpt2', 'neural-api-tiny-mistral', 'neural-api-tiny-qwen2'])
    it(`${folder}: batched generation (per-sequence positions) equals one prompt at a time`, async function () {
      requireShared(this, `models/hf/${folder}/config.json`);
      await using m = await loadModel(sharedPath(`models/hf/${folder}`));
      const prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 1]];
      const single: number[][] = [];
      for (const p of prompts) single.push((await m.generate(p, { maxTokens: 6, ignoreEog: true })).ids);
      const batch = (await m.generate(prompts, { maxTokens: 6, ignoreEog: true })).map((r) => r.ids);
      assert.deepEqual(batch, single);
    });

  it('campello-tiny-llama-synthetic loads with its tokenizer and generates', async function () {
    requireShared(this, 'models/hf/campello-tiny-llama-synthetic/tokenizer.json');
    await using m = await loadModel(sharedPath('models/hf/campello-tiny-llama-synthetic'));
    assert.equal(m.config.architecture, 'llama');
    assert.deepEqual(m.tokenizer.encode('hi', { addSpecial: true }), [1, 5]);
    const r = await m.generate('hi', { maxTokens: 5, ignoreEog: true });
    assert.equal(r.ids.length, 5);
    assert.equal(typeof r.text, 'string');
  });

  it('lm-buddy-fake-gpt2 (transformer. names) loads with the real GPT-2 tokenizer and generates', async function () {
    requireShared(this, 'models/hf/lm-buddy-fake-gpt2/tokenizer.json');
    await using m = await loadModel(sharedPath('models/hf/lm-buddy-fake-gpt2'), { contextSize: 64 });
    assert.equal(m.config.architecture, 'gpt2');
    assert.equal(m.generationConfig.eos_token_id, 50256);
    assert.deepEqual(m.tokenizer.encode('Hello world'), [15496, 995]);
    const r = await m.generate('Hello world', { maxTokens: 8, ignoreEog: true });
    assert.equal(r.ids.length, 8);
    assert.ok(r.ids.every((id) => id >= 0 && id < 50257));
  });

  it('a folder without a tokenizer takes token ids and decodes placeholders', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-llama/config.json');
    await using m = await loadModel(sharedPath('models/hf/neural-api-tiny-llama'));
    const r = await m.generate([1, 2, 3], { maxTokens: 3 });
    assert.equal(r.ids.length, 3);
    assert.match(r.text, /^(<\d+>){3}$/);
  });

  it("a folder without a tokenizer ends generation at every eos_token_id of its generation_config.json", async function () {
    requireShared(this, 'models/hf/neural-api-tiny-llama/config.json');
    const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-hf-eos-'));
    try {
      for (const f of ['config.json', 'model.safetensors']) writeFileSync(path.join(dir, f), readFileSync(sharedPath(`models/hf/neural-api-tiny-llama/${f}`)));
      writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2, 7] }));
      await using m = await loadModel(dir);
      assert.deepEqual([m.tokenizer.eos, m.tokenizer.eogIds], [2, [2, 7]]);
      // the second one, made the greedy choice, ends generation at once; with ignoreEog it is generated
      const r = await m.generate([1, 2, 3], { maxTokens: 3, logitBias: { 7: 1000 } });
      assert.deepEqual([r.finishReason, r.ids], ['eog', []]);
      assert.deepEqual((await m.generate([1, 2, 3], { maxTokens: 3, logitBias: { 7: 1000 }, ignoreEog: true })).ids, [7, 7, 7]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Hugging Face folders: dtypes and bad configs', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(path.join(tmpdir(), 'fuselm-hf-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A tiny model rewritten with every tensor in `dtype` (F32 ones holding the rounded values). */
  function rewrite(name: string, dtype: 'F16' | 'BF16', asF32: boolean, model = 'neural-api-tiny-llama'): string {
    const src = sharedPath(`models/hf/${model}`);
    const bytes = new Uint8Array(readFileSync(path.join(src, 'model.safetensors')));
    const st = parseSafetensorsHeader(bytes, { path: src, fileSize: bytes.length });
    const [enc, dec] = dtype === 'F16' ? [f32ToF16Bits, f16BitsToF32] : [f32ToBf16Bits, bf16BitsToF32];
    const entries: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
    for (const [n, t] of st.tensors) {
      const f = new Float32Array(bytes.buffer.slice(t.offset, t.offset + t.nbytes));
      const bits = Uint16Array.from(f, enc);
      entries[n] = asF32
        ? { dtype: 'F32', shape: t.shape, data: new Uint8Array(Float32Array.from(bits, dec).buffer) }
        : { dtype, shape: t.shape, data: new Uint8Array(bits.buffer) };
    }
    const d = path.join(dir, name);
    mkdirSync(d);
    writeFileSync(path.join(d, 'config.json'), readFileSync(path.join(src, 'config.json')));
    writeFileSync(path.join(d, 'model.safetensors'), encodeSafetensors(entries));
    return d;
  }

  for (const model of ['neural-api-tiny-llama', 'neural-api-tiny-gpt2'])
    for (const dtype of ['F16', 'BF16'] as const)
      it(`${model}: ${dtype} checkpoints load natively and match F32 holding the same values`, async function () {
        requireShared(this, `models/hf/${model}/model.safetensors`);
        // the weights are the subject: both with an f32 KV cache ('auto' would give the half
        // checkpoint llama.cpp's f16 cache, which moves these logits by ~1e-3)
        await using half = await loadModel(rewrite(`${model}-${dtype}-h`, dtype, false, model), { kvType: 'f32' });
        await using full = await loadModel(rewrite(`${model}-${dtype}-f`, dtype, true, model), { kvType: 'f32' });
        const ids = [1, 4, 2, 8, 5, 7, 0, 3];
        const a = await half.evaluate(ids, { allLogits: true }), b = await full.evaluate(ids, { allLogits: true });
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
        assert.ok(worst < 1e-5, `${dtype}: ${worst}`);
      });

  const bad: Array<[string, object, RegExp]> = [
    ['unknown model_type', { model_type: 'mamba' }, /model_type "mamba" is not supported/],
    ['missing hidden_size', { model_type: 'llama', num_attention_heads: 2 }, /missing 'hidden_size'/],
    ['ill-typed field', { model_type: 'gpt2', n_embd: '8', n_head: 2 }, /'n_embd' must be a number/],
    ['unsupported rope scaling', { model_type: 'llama', hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 4, vocab_size: 3, rope_scaling: { type: 'su', factor: 4 } }, /rope_scaling rope_type "su" is not supported yet \(supported: default, linear, llama3, yarn, longrope, dynamic\)/],
    ['a rope_parameters type not supported', { model_type: 'llama', hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 4, vocab_size: 3, rope_parameters: { rope_type: 'mrope', rope_theta: 1e4 } }, /rope_parameters rope_type "mrope" is not supported yet/],
    ['a yarn field not understood', { model_type: 'qwen2', hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 4, vocab_size: 3, rope_scaling: { type: 'yarn', factor: 4, finetuned: true } }, /rope_scaling\.finetuned \(true\) is not supported with rope_type 'yarn'/],
    ['longrope factors of the wrong length', { model_type: 'phi3', hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 4, vocab_size: 3, original_max_position_embeddings: 16, max_position_embeddings: 64, rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [1, 2] } }, /rope_scaling\.short_factor must be 2 positive numbers/],
    ['a rope_parameters field the type does not define', { model_type: 'qwen2', hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 4, vocab_size: 3, rope_parameters: { rope_type: 'default', rope_theta: 1e6, attention_factor: 2 } }, /rope_parameters\.attention_factor \(2\) is not supported with rope_type 'default'/],
    ['heads not dividing', { model_type: 'llama', hidden_size: 8, num_attention_heads: 3, num_key_value_heads: 2, num_hidden_layers: 1, intermediate_size: 4, vocab_size: 3, head_dim: 2 }, /multiple of the KV head count/],
  ];
  for (const [what, cfg, re] of bad)
    it(`config.json: ${what} → FuselmError`, async () => {
      const d = path.join(dir, what.replace(/\W+/g, '-'));
      mkdirSync(d);
      writeFileSync(path.join(d, 'config.json'), JSON.stringify(cfg));
      await assert.rejects(loadModel(d), (e: unknown) => {
        assert.ok(e instanceof FuselmError, String(e));
        assert.match(e.message, re);
        assert.match(e.message, /config\.json/);
        return true;
      });
    });

  it('dynamic NTK rope scaling: a contextSize past the original positions → E_UNSUPPORTED', async () => {
    const d = path.join(dir, 'dynamic-ntk');
    mkdirSync(d);
    const cfg = { model_type: 'llama', hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 4, vocab_size: 3, max_position_embeddings: 4096, rope_scaling: { type: 'dynamic', factor: 2 } };
    writeFileSync(path.join(d, 'config.json'), JSON.stringify(cfg));
    await assert.rejects(loadModel(d, { contextSize: 8192 }), (e: unknown) =>
      e instanceof FuselmError && e.code === 'E_UNSUPPORTED' && /config\.json: contextSize 8192 is past the 4096 positions/.test(e.message));
  });

  it('config.json that is not JSON → E_FORMAT', async () => {
    const d = path.join(dir, 'notjson');
    mkdirSync(d);
    writeFileSync(path.join(d, 'config.json'), '{"model_type": ');
    await assert.rejects(loadModel(d), (e: unknown) => e instanceof FuselmError && e.code === 'E_FORMAT');
  });
});
