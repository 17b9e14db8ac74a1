/**
 * Encoder-decoder models (T5, BART) against transformers: the fixtures of
 * ../shared/models/oracles/{t5,bart} (tiny random-weight models; their README says how they were
 * made). For each fixture and prompt: its text encodes to transformers' ids; the encoder's last
 * hidden states and the decoder's first-step logits are within 1e-4 of transformers' (relative to
 * the largest value), and the 16-token greedy and 4-beam outputs (EOS stopping off, as in the
 * oracle) are transformers' exactly. T5 from its Hugging Face folder and from llama.cpp's GGUF.
 * Several inputs given to generate() at once give what each gives alone (packed, each attending
 * over its own rows); generateEach's sequences each follow their own options, a bad or aborted
 * one failing alone; greedy on the CUDA backend (its emulator without a GPU), and its beams,
 * equal the CPU's. Also: T5's relative position buckets against values worked by hand; BART's
 * forced first/last tokens; a stream left early stops; T5 v1.0's ReLU FFN the same from a folder
 * and a GGUF; a GGUF or a folder missing a tensor of either half is an E_FORMAT naming it, one
 * with a tensor the model would not read an E_UNSUPPORTED naming it; config fields fuselm does
 * not run are E_UNSUPPORTED naming them; weights over maxMemory are E_OUT_OF_MEMORY. Skipped,
 * saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GgmlType } from '../../lib/formats/ggml-types.js';
import { ggufMetadataSpec, readGguf, writeGguf } from '../../lib/formats/gguf.js';
import { loadModel } from '../../lib/index.js';
import { EncoderDecoderModel, t5Bucket } from '../../lib/model/encoder-decoder.js';
import { loadOnCuda } from '../helpers/cuda.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

interface Prompt {
  text: string;
  ids_with_special: number[];
  encoder_last_hidden_state: number[][];
  decoder_start_token_id: number;
  decoder_step0_logits: number[];
  greedy_16: number[];
  beam4_16: number[];
}

const FIXTURES: Array<[name: string, oracle: string, model: string]> = [
  ['t5 (HF folder)', 'models/oracles/t5/oracle.json', 'models/oracles/t5/hf'],
  ['t5 (GGUF)', 'models/oracles/t5/oracle.json', 'models/oracles/t5/t5.f32.gguf'],
  ['bart (HF folder)', 'models/oracles/bart/oracle.json', 'models/oracles/bart/hf'],
];

/** max |a - b| over max |b|. */
function relErr(a: ArrayLike<number>, b: number[]): number {
  assert.equal(a.length, b.length);
  let d = 0, big = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    big = Math.max(big, Math.abs(b[i]));
  }
  return d / big;
}

async function load(ctx: Mocha.Context, oracle: string, model: string): Promise<[EncoderDecoderModel, Prompt[]]> {
  requireShared(ctx, oracle, model);
  const m = await loadModel(sharedPath(model), { device: 'cpu', threads: 2 });
  assert.ok(m instanceof EncoderDecoderModel, 'loadModel returns an EncoderDecoderModel');
  return [m, readSharedJson<{ prompts: Prompt[] }>(oracle).prompts];
}

for (const [name, oracle, model] of FIXTURES) {
  describe(`encoder-decoder oracle: ${name}`, function () {
    this.timeout(120_000);
    let m: EncoderDecoderModel;
    let prompts: Prompt[];
    before(async function () {
      [m, prompts] = await load(this, oracle, model);
    });
    after(async () => m?.dispose());

    it("the prompts' text encodes to transformers' ids (T5: Unigram, BART: byte-level BPE), and generate() takes text", async () => {
      for (const p of prompts) assert.deepEqual(m.tokenizer.encode(p.text, { addSpecial: true }), p.ids_with_special, p.text);
      const p = prompts[0];
      const g = await m.generate(p.text, { maxTokens: 16, ignoreEog: true });
      assert.deepEqual(g.ids, p.greedy_16.slice(1));
      assert.equal(g.text, m.tokenizer.decode(g.ids));
    });

    it('encoder output and first-step logits within 1e-4 of transformers (relative to the largest)', async () => {
      for (const p of prompts) {
        assert.equal(m.config.decoderStartId, p.decoder_start_token_id);
        const enc = relErr(await m.encode(p.ids_with_special), p.encoder_last_hidden_state.flat());
        const logits = relErr(await m.logits(p.ids_with_special), p.decoder_step0_logits);
        assert.ok(enc < 1e-4, `${p.text}: encoder output off by ${enc} of the largest`);
        assert.ok(logits < 1e-4, `${p.text}: step-0 logits off by ${logits} of the largest`);
      }
    });

    it("greedy 16 and 4-beam 16 tokens are transformers' exactly (EOS stopping off)", async () => {
      for (const p of prompts) {
        const g = await m.generate(p.ids_with_special, { maxTokens: 16, ignoreEog: true });
        assert.deepEqual(g.ids, p.greedy_16.slice(1), `${p.text}: greedy`);
        assert.equal(g.finishReason, 'maxTokens');
        assert.deepEqual(g.promptIds, p.ids_with_special);
        const b = await m.beamSearch(p.ids_with_special, { numBeams: 4, maxTokens: 16, ignoreEog: true });
        assert.deepEqual(b.sequences[0].ids, p.beam4_16.slice(1), `${p.text}: beams`);
      }
    });

    it('a batch of the inputs gives what each gives alone; stream() the same ids as generate()', async () => {
      const ids = prompts.map((p) => p.ids_with_special);
      const batch = await m.generate([...ids, ids[0]], { maxTokens: 16, ignoreEog: true });
      assert.deepEqual(batch.map((r) => r.ids), [...prompts.map((p) => p.greedy_16.slice(1)), prompts[0].greedy_16.slice(1)]);
      const streamed: number[] = [];
      for await (const c of m.stream(ids[1], { maxTokens: 16, ignoreEog: true })) if (c.id >= 0) streamed.push(c.id);
      assert.deepEqual(streamed, prompts[1].greedy_16.slice(1));
    });

    it('generateEach: each sequence its own options and result; a bad or aborted one fails alone', async () => {
      const ids = prompts.map((p) => p.ids_with_special);
      const seeded = { maxTokens: 8, temperature: 1, seed: 3 };
      const solo = await m.generate(ids[1], seeded);
      const aborted = new AbortController();
      aborted.abort();
      const later = new AbortController();
      const chunks: number[] = [];
      const out = await m.generateEach([
        { input: ids[0], options: { maxTokens: 16, ignoreEog: true } },
        { input: ids[1], options: seeded },
        { input: [3, m.config.vocabSize] },
        { input: ids[0], options: { signal: aborted.signal } },
        // ended by its signal after its second token, while the others go on
        { input: ids[1], options: { maxTokens: 16, ignoreEog: true, signal: later.signal }, onChunk: (c) => (chunks.push(c.id), chunks.length === 2 && later.abort()) },
        { input: ids[1], options: { maxTokens: 3, ignoreEog: true }, onChunk: () => {} },
      ]);
      assert.deepEqual(out.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'rejected', 'rejected', 'fulfilled']);
      const value = (i: number) => (out[i] as PromiseFulfilledResult<{ ids: number[]; text: string }>).value;
      assert.deepEqual(value(0).ids, prompts[0].greedy_16.slice(1));
      assert.equal(value(1).text, solo.text);
      assert.deepEqual(value(5).ids, prompts[1].greedy_16.slice(1, 4));
      const reason = (i: number) => (out[i] as PromiseRejectedResult).reason;
      assert.equal(reason(2).code, 'E_INVALID_ARG');
      assert.equal(reason(3).code, 'E_ABORTED');
      assert.equal(reason(4).code, 'E_ABORTED');
      assert.deepEqual(chunks, prompts[1].greedy_16.slice(1, 3));
    });

    it('bad inputs are typed errors naming what is wrong', async () => {
      const V = m.config.vocabSize;
      await assert.rejects(m.generate([], { maxTokens: 2 }), { code: 'E_INVALID_ARG', message: /empty/ });
      await assert.rejects(m.generate([3, V], { maxTokens: 2 }), { code: 'E_INVALID_ARG', message: new RegExp(`token id ${V} is outside the vocabulary`) });
      await assert.rejects(m.generate(Array.from({ length: 257 }, () => [3]), { maxTokens: 1 }), { code: 'E_INVALID_ARG', message: /at most 256 inputs/ });
      await assert.rejects(m.logits([3], [V]), { code: 'E_INVALID_ARG', message: /decoderIds/ });
      await assert.rejects(m.beamSearch([3], { numBeams: 0, maxTokens: 2 }), { code: 'E_INVALID_ARG', message: /numBeams/ });
      // a text past ASYNC_ENCODE_MIN_CHARS is encoded in the tokenizer's worker (the same vocabulary rebuilt there), then found too long
      await assert.rejects(m.generate('The house is wonderful. '.repeat(4000), { maxTokens: 1 }), { code: 'E_CONTEXT_FULL', message: /the encoder takes at most/ });
      await assert.rejects(m.evaluate(), { code: 'E_UNSUPPORTED' });
      assert.throws(() => m.chat(), { code: 'E_UNSUPPORTED' });
    });
  });
}

describe('encoder-decoder on the CUDA backend (the emulator without a GPU)', function () {
  this.timeout(300_000);
  for (const [name, oracle, model] of [FIXTURES[1], FIXTURES[2]]) {
    it(`${name}: greedy and 4 beams equal the CPU's and transformers'`, async function () {
      requireShared(this, oracle, model);
      const p = readSharedJson<{ prompts: Prompt[] }>(oracle).prompts[0];
      const m = await loadOnCuda(sharedPath(model));
      try {
        assert.equal(m.device, 'cuda');
        const g = await m.generate(p.ids_with_special, { maxTokens: 16, ignoreEog: true });
        assert.deepEqual(g.ids, p.greedy_16.slice(1));
        const b = await m.beamSearch(p.ids_with_special, { numBeams: 4, maxTokens: 16, ignoreEog: true });
        assert.deepEqual(b.sequences[0].ids, p.beam4_16.slice(1));
      } finally {
        await m.dispose();
      }
    });
  }
});

describe("T5's relative position buckets", () => {
  it("match transformers' formula at hand-worked distances (32 buckets, max distance 128)", () => {
    // bidirectional: 16 buckets a side, exact below 8, log-spaced to 128, then saturated
    const bi = (rel: number) => t5Bucket(rel, true, 32, 128);
    assert.deepEqual([0, -1, 1, -7, -8, -16, -127, -128, -5000, 200].map(bi), [0, 1, 17, 7, 8, 10, 15, 15, 15, 31]);
    // causal: 32 buckets for keys behind, exact below 16; keys ahead (never seen) bucket 0
    const causal = (rel: number) => t5Bucket(rel, false, 32, 128);
    assert.deepEqual([0, -1, -15, -16, -32, -127, -128, 5].map(causal), [0, 1, 15, 16, 21, 31, 31, 0]);
  });
});

describe('a T5 GGUF with a missing or unknown tensor', function () {
  this.timeout(60_000);
  const rewrite = async (ctx: Mocha.Context, edit: (names: string[]) => { drop?: string; add?: string }, check: (file: string) => Promise<void>) => {
    requireShared(ctx, 'models/oracles/t5/t5.f32.gguf');
    const src = sharedPath('models', 'oracles', 't5', 't5.f32.gguf');
    const f = await readGguf(src);
    const bytes = readFileSync(src);
    const { drop, add } = edit(f.tensors.map((t) => t.name));
    const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-t5-'));
    try {
      const out = path.join(dir, 'edited.gguf');
      await writeGguf(out, {
        version: 3,
        metadata: ggufMetadataSpec(f),
        tensors: [
          ...f.tensors.filter((t) => t.name !== drop).map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.nbytes) })),
          ...(add ? [{ name: add, type: GgmlType.F32, dims: [4, 32], data: new Uint8Array(4 * 4 * 32) }] : []),
        ],
      });
      await check(out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  for (const missing of ['enc.blk.1.attn_q.weight', 'enc.output_norm.weight', 'dec.blk.1.cross_attn_k.weight', 'dec.blk.0.attn_rel_b.weight', 'dec.output_norm.weight']) {
    it(`without ${missing}: E_FORMAT naming it`, async function () {
      await rewrite(this, () => ({ drop: missing }), (file) =>
        assert.rejects(loadModel(file, { device: 'cpu' }), (e: Error & { code?: string }) => e.code === 'E_FORMAT' && e.message.includes(`'${missing}' is missing`)));
    });
  }
  it('with a bias table in a later block (a variant fuselm does not know): E_UNSUPPORTED naming it', async function () {
    await rewrite(this, () => ({ add: 'enc.blk.1.attn_rel_b.weight' }), (file) =>
      assert.rejects(loadModel(file, { device: 'cpu' }), { code: 'E_UNSUPPORTED', message: /tensor enc\.blk\.1\.attn_rel_b\.weight of this t5 model is not supported/ }));
  });
});

describe("BART's forced first and last tokens (generation_config), and a stream left early", function () {
  this.timeout(60_000);
  it('forced_bos_token_id and forced_eos_token_id take the first and the last place, in generate() and beamSearch()', async function () {
    requireShared(this, 'models/oracles/bart/hf');
    const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-bart-'));
    try {
      const src = sharedPath('models', 'oracles', 'bart', 'hf');
      for (const f of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'])
        writeFileSync(path.join(dir, f), readFileSync(path.join(src, f)));
      const gen = JSON.parse(readFileSync(path.join(src, 'generation_config.json'), 'utf8'));
      writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ ...gen, forced_bos_token_id: 7, forced_eos_token_id: 9 }));
      writeFileSync(path.join(dir, 'config.json'), readFileSync(path.join(src, 'config.json')));
      const m = await loadModel(dir, { device: 'cpu' });
      try {
        const ids = [1000, 83, 81, 504, 1002];
        const g = await m.generate(ids, { maxTokens: 5, ignoreEog: true });
        assert.equal(g.ids.length, 5);
        assert.equal(g.ids[0], 7);
        assert.equal(g.ids[4], 9);
        const b = await m.beamSearch(ids, { numBeams: 3, maxTokens: 5, ignoreEog: true });
        for (const s of b.sequences) assert.deepEqual([s.ids[0], s.ids[4]], [7, 9]);
      } finally {
        await m.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaving a stream after 2 tokens stops it and frees the model for the next call', async function () {
    requireShared(this, 'models/oracles/t5/oracle.json', 'models/oracles/t5/hf');
    const [p] = readSharedJson<{ prompts: Prompt[] }>('models/oracles/t5/oracle.json').prompts;
    const m = await loadModel(sharedPath('models', 'oracles', 't5', 'hf'), { device: 'cpu' });
    try {
      const seen: number[] = [];
      for await (const c of m.stream(p.ids_with_special, { maxTokens: 400, ignoreEog: true })) if (seen.push(c.id) === 2) break;
      assert.deepEqual(seen, p.greedy_16.slice(1, 3));
      assert.equal((m as unknown as EncoderDecoderModel).lastTimings, undefined, 'the generation was cut short (a finished one sets lastTimings)');
      const g = await m.generate(p.ids_with_special, { maxTokens: 16, ignoreEog: true });
      assert.deepEqual(g.ids, p.greedy_16.slice(1));
    } finally {
      await m.dispose();
    }
  });
});

/**
 * A copy of a model folder whose model.safetensors keeps each tensor under rename(name), or
 * drops it where that is undefined.
 */
function copyFolder(src: string, dst: string, rename: (name: string) => string | undefined): string {
  const st = readFileSync(path.join(src, 'model.safetensors'));
  const n = Number(st.readBigUInt64LE(0));
  const header = JSON.parse(st.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const parts: Buffer[] = [];
  const out: Record<string, unknown> = {};
  let at = 0;
  for (const [name, t] of Object.entries(header)) {
    const to = name === '__metadata__' ? undefined : rename(name);
    if (to === undefined) continue;
    const data = st.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
    out[to] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + data.length] };
    parts.push(data);
    at += data.length;
  }
  const json = Buffer.from(JSON.stringify(out));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  mkdirSync(dst);
  writeFileSync(path.join(dst, 'model.safetensors'), Buffer.concat([len, json, ...parts]));
  for (const f of readdirSync(src)) if (f !== 'model.safetensors') writeFileSync(path.join(dst, f), readFileSync(path.join(src, f)));
  return dst;
}

describe('a folder missing a tensor of either half', function () {
  this.timeout(60_000);
  const cases: Array<[fixture: string, missing: string]> = [
    ['t5', 'encoder.block.1.layer.1.DenseReluDense.wi_0.weight'],
    ['t5', 'decoder.block.1.layer.1.EncDecAttention.k.weight'],
    ['bart', 'model.encoder.layers.1.fc1.weight'],
    ['bart', 'model.decoder.layers.0.encoder_attn.v_proj.bias'],
  ];
  for (const [fixture, missing] of cases)
    it(`${fixture} without ${missing}: E_FORMAT naming it`, async function () {
      requireShared(this, `models/oracles/${fixture}/hf`);
      const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-encdec-missing-'));
      try {
        const folder = copyFolder(sharedPath('models', 'oracles', fixture, 'hf'), path.join(dir, 'hf'), (name) => (name === missing ? undefined : name));
        await assert.rejects(loadModel(folder, { device: 'cpu' }), (e: Error & { code?: string }) => e.code === 'E_FORMAT' && e.message.includes(`'${missing}' is missing`));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
});

describe('untied embeddings', function () {
  this.timeout(60_000);
  for (const fixture of ['t5', 'bart'])
    it(`${fixture} with tie_word_embeddings false and no lm_head.weight: E_FORMAT naming it`, async function () {
      requireShared(this, `models/oracles/${fixture}/hf`);
      const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-encdec-untied-'));
      try {
        const folder = copyFolder(sharedPath('models', 'oracles', fixture, 'hf'), path.join(dir, 'hf'), (name) => name);
        const config = JSON.parse(readFileSync(path.join(folder, 'config.json'), 'utf8'));
        writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: false }));
        await assert.rejects(loadModel(folder, { device: 'cpu' }), { code: 'E_FORMAT', message: /lm_head\.weight' is missing/ });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
});

describe('T5 v1.0 style (ReLU, no gate): the folder and the GGUF agree', function () {
  this.timeout(60_000);
  it("feed_forward_proj 'relu' with wi, and a GGUF without ffn_gate, give the same logits and greedy ids (and not the gated model's)", async function () {
    requireShared(this, 'models/oracles/t5/hf', 'models/oracles/t5/t5.f32.gguf', 'models/oracles/t5/oracle.json');
    const src = sharedPath('models', 'oracles', 't5');
    const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-t5relu-'));
    try {
      // the folder: wi_1 renamed wi, wi_0 dropped, feed_forward_proj relu
      const folder = copyFolder(path.join(src, 'hf'), path.join(dir, 'hf'), (name) => (name.endsWith('wi_0.weight') ? undefined : name.replace('wi_1.weight', 'wi.weight')));
      const config = JSON.parse(readFileSync(path.join(src, 'hf', 'config.json'), 'utf8'));
      writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ ...config, feed_forward_proj: 'relu', dense_act_fn: 'relu', is_gated_act: false }));
      // the GGUF: without its ffn_gate tensors
      const gguf = path.join(dir, 'relu.gguf');
      const f = await readGguf(path.join(src, 't5.f32.gguf'));
      const bytes = readFileSync(path.join(src, 't5.f32.gguf'));
      await writeGguf(gguf, {
        version: 3,
        metadata: ggufMetadataSpec(f),
        tensors: f.tensors.filter((t) => !t.name.includes('ffn_gate')).map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.nbytes) })),
      });
      const [p] = readSharedJson<{ prompts: Prompt[] }>('models/oracles/t5/oracle.json').prompts;
      const a = (await loadModel(folder, { device: 'cpu' })) as unknown as EncoderDecoderModel;
      const b = (await loadModel(gguf, { device: 'cpu' })) as unknown as EncoderDecoderModel;
      try {
        assert.equal(a.config.act, 'relu');
        assert.equal(b.config.act, 'relu');
        const la = await a.logits(p.ids_with_special, [5, 6]);
        assert.ok(relErr(await b.logits(p.ids_with_special, [5, 6]), [...la]) < 1e-6);
        const ga = await a.generate(p.ids_with_special, { maxTokens: 16, ignoreEog: true });
        assert.deepEqual((await b.generate(p.ids_with_special, { maxTokens: 16, ignoreEog: true })).ids, ga.ids);
        assert.notDeepEqual(ga.ids, p.greedy_16.slice(1));
      } finally {
        await Promise.all([a.dispose(), b.dispose()]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('encoder-decoder weights against maxMemory', () => {
  for (const model of ['models/oracles/t5/t5.f32.gguf', 'models/oracles/t5/hf', 'models/oracles/bart/hf'])
    it(`${model}: weights over maxMemory are an E_OUT_OF_MEMORY naming them, before anything is loaded`, async function () {
      requireShared(this, model);
      await assert.rejects(loadModel(sharedPath(model), { device: 'cpu', maxMemory: 100_000 }), { code: 'E_OUT_OF_MEMORY', message: /weights/ });
    });
});

describe('encoder-decoder config fields fuselm does not run (E_UNSUPPORTED), or out of range (E_FORMAT)', () => {
  const cases: Array<[fixture: string, change: Record<string, unknown>, code: string, message: RegExp]> = [
    ['t5', { feed_forward_proj: 'gated-silu' }, 'E_UNSUPPORTED', /feed_forward_proj "gated-silu" is not supported/],
    ['t5', { relative_attention_max_distance: 1e9 }, 'E_FORMAT', /relative_attention_max_distance 1000000000 are out of range/],
    ['t5', { decoder_start_token_id: 5000 }, 'E_FORMAT', /decoder_start_token_id 5000 is outside the vocabulary \(0\.\.288\)/],
    ['bart', { normalize_before: true }, 'E_UNSUPPORTED', /normalize_before \(mBART's pre-norm layout\) is not supported/],
    ['bart', { activation_function: 'swish' }, 'E_UNSUPPORTED', /activation_function "swish" is not supported/],
    ['bart', { decoder_attention_heads: 8 }, 'E_UNSUPPORTED', /encoder_attention_heads 4 different from decoder_attention_heads 8 is not supported/],
  ];
  for (const [fixture, change, code, message] of cases)
    it(`${fixture} with ${JSON.stringify(change)}: ${code} naming it`, async function () {
      requireShared(this, `models/oracles/${fixture}/hf/config.json`);
      const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-encdec-config-'));
      try {
        const config = JSON.parse(readFileSync(sharedPath('models', 'oracles', fixture, 'hf', 'config.json'), 'utf8'));
        writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, ...change }));
        await assert.rejects(loadModel(dir, { device: 'cpu' }), { code, message });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
