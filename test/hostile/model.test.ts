/**
 * Hostile model folders and call arguments (issue 15, findings 6 and 7): keys from files are
 * looked up as own properties only; ids and options are checked where they enter, as
 * FuselmErrors naming the file and field or the option; padding ids (a tokenizer smaller than
 * the model's vocabulary) are never sampled; no error quotes a file's contents.
 */
import assert from 'node:assert/strict';
import { symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadModel, type Model } from '../../lib/index.js';
import { encodeSafetensors } from '../formats/safetensors-helpers.js';
import { requireShared } from '../helpers/shared.js';
import { TINY_LLAMA, rejectsCode, removeFolder, tinyFolder, tokJson } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

describe('hostile model folders', function () {
  const dirs: string[] = [];
  const folder = (...a: Parameters<typeof tinyFolder>) => {
    const d = tinyFolder(...a);
    dirs.push(d);
    return d;
  };
  before(function () {
    requireShared(this, TINY_LLAMA);
  });
  after(() => dirs.forEach(removeFolder));

  it("model_type 'constructor', 'toString', '__proto__' are E_UNSUPPORTED (not a Function as the architecture)", async () => {
    for (const mt of ['constructor', 'toString', '__proto__', 'hasOwnProperty'])
      await rejectsCode(loadModel(folder((c) => (c.model_type = mt))), 'E_UNSUPPORTED', /model_type/);
    await rejectsCode(loadModel(folder((c) => (c.rope_scaling = { rope_type: 'constructor', factor: 2 }))), 'E_UNSUPPORTED', /rope_type/);
  });

  it('generation_config.json with bad values is E_FORMAT at load, naming the file and the field', async () => {
    const cases: Array<[object, string]> = [
      [{ do_sample: true, temperature: -1 }, 'temperature'],
      [{ do_sample: true, top_k: 2.5 }, 'top_k'],
      [{ do_sample: true, top_p: 7 }, 'top_p'],
      [{ repetition_penalty: 'x' }, 'repetition_penalty'],
      [{ max_new_tokens: -3 }, 'max_new_tokens'],
      [{ do_sample: 'yes' }, 'do_sample'],
      [{ eos_token_id: ['x'] }, 'eos_token_id'],
    ];
    for (const [gc, field] of cases) {
      const dir = folder(() => {}, { 'generation_config.json': JSON.stringify(gc) });
      await rejectsCode(loadModel(dir), 'E_FORMAT', new RegExp(`generation_config\\.json.*${field}`));
    }
    // nulls are unset fields (transformers writes them)
    const dir = folder(() => {}, { 'generation_config.json': JSON.stringify({ temperature: null, max_new_tokens: 2 }) });
    await using m = await loadModel(dir, { threads: 1 });
    assert.equal((await m.generate([1, 2], { ignoreEog: true })).ids.length, 2);
  });

  it('a tokenizer smaller than vocab_size: padding ids are never sampled, greedy or not', async () => {
    // the tokenizer has 5 tokens, the model 11 logit rows
    const dir = folder(() => {}, { 'tokenizer.json': JSON.stringify(tokJson()) });
    await using m = await loadModel(dir, { threads: 1 });
    assert.equal(m.tokenizer.vocabSize, 5);
    for (const seed of [1, 2, 3, 4]) {
      const r = await m.generate([1, 2], { temperature: 50, seed, maxTokens: 12, ignoreEog: true });
      assert.equal(r.ids.length, 12);
      for (const id of r.ids) assert.ok(id < 5, `padding id ${id} sampled`);
    }
    const greedy = await m.generate([[1, 2], [3]], { maxTokens: 12, ignoreEog: true });
    for (const r of greedy) for (const id of r.ids) assert.ok(id < 5, `padding id ${id} chosen`);
    const beams = await m.beamSearch([1, 2], { numBeams: 3, maxTokens: 5, ignoreEog: true });
    for (const s of beams.sequences) for (const id of s.ids) assert.ok(id < 5, `padding id ${id} in a beam`);
  });

  it('shard names "", "." and ".." in the index are E_FORMAT (not EISDIR)', async () => {
    for (const shard of ['', '.', '..', 'a/b']) {
      const dir = folder(() => {}, { 'model.safetensors.index.json': JSON.stringify({ weight_map: { 'model.norm.weight': shard } }) });
      await rejectsCode(loadModel(dir), 'E_FORMAT', /weight_map/);
    }
    const dir = folder(() => {}, { 'model.safetensors.index.json': JSON.stringify({ weight_map: { constructor: 'model.safetensors' } }) });
    await rejectsCode(loadModel(dir), 'E_FORMAT', /constructor/);
  });

  it("a safetensors dtype 'constructor' is E_FORMAT", async () => {
    const bytes = encodeSafetensors({ 'model.norm.weight': { dtype: 'constructor', shape: [8], data: new Uint8Array(32) } });
    await rejectsCode(loadModel(folder(() => {}, { 'model.safetensors': bytes })), 'E_FORMAT', /dtype/);
  });

  it('a config.json that is not JSON (a symlink to another file) never echoes its contents', async () => {
    const dir = folder();
    const secret = path.join(dir, 'secret.txt');
    writeFileSync(secret, 'root:x:0:0:SECRET-PASSWORD-LINE\n');
    unlinkSync(path.join(dir, 'config.json'));
    symlinkSync(secret, path.join(dir, 'config.json'));
    const err = await rejectsCode(loadModel(dir), 'E_FORMAT', /config\.json/);
    assert.doesNotMatch(err.message, /root|SECRET/);
    assert.doesNotMatch(String(err.cause?.message ?? ''), /root|SECRET/);
    // the same for tokenizer.json and generation_config.json
    for (const name of ['tokenizer.json', 'generation_config.json']) {
      const d = folder();
      writeFileSync(path.join(d, name), 'root:x:0:0:SECRET');
      const e = await rejectsCode(loadModel(d), 'E_FORMAT', new RegExp(name.replace('.', '\\.')));
      assert.doesNotMatch(e.message + String(e.cause?.message ?? ''), /root|SECRET/);
    }
  });
});

describe('hostile call arguments', function () {
  let dir: string;
  let m: Model;
  before(async function () {
    requireShared(this, TINY_LLAMA);
    dir = tinyFolder(() => {}, { 'tokenizer.json': JSON.stringify(tokJson((j) => Object.assign(j.model.vocab, { c: 5, d: 6, e: 7, f: 8, g: 9, h: 10 }))) });
    m = await loadModel(dir, { threads: 1 });
  });
  after(async () => {
    await m?.dispose();
    if (dir) removeFolder(dir);
  });

  it('loadModel: null options, bad numbers, and a batchSize larger than the context (capped)', async () => {
    await rejectsCode(loadModel(dir, null as any), 'E_INVALID_ARG', /options/);
    await rejectsCode(loadModel(null as any), 'E_INVALID_ARG', /path/);
    for (const [k, v] of [['contextSize', 1.5], ['contextSize', NaN], ['contextSize', '16'], ['threads', 1e9], ['batchSize', -1], ['batchSize', Infinity]] as const)
      await rejectsCode(loadModel(dir, { [k]: v } as any), 'E_INVALID_ARG', new RegExp(k));
    await rejectsCode(loadModel(dir, { impl: 'fast' as any }), 'E_INVALID_ARG', /impl/);
    await rejectsCode(loadModel(dir, { onProgress: 5 as any }), 'E_INVALID_ARG', /onProgress/);
    await using small = await loadModel(dir, { threads: 1, contextSize: 8, batchSize: 1e7 });
    assert.equal(small.batchSize, 8);
  });

  it('generate(): options of the wrong type are E_INVALID_ARG (signal, eogIds, stop, null)', async () => {
    await rejectsCode(m.generate('a', { signal: 'x' as any }), 'E_INVALID_ARG', /signal/);
    await rejectsCode(m.generate('a', { eogIds: '123' as any }), 'E_INVALID_ARG', /eogIds/);
    await rejectsCode(m.generate('a', { eogIds: [1.5] }), 'E_INVALID_ARG', /eogIds/);
    await rejectsCode(m.generate('a', { stop: 5 as any }), 'E_INVALID_ARG', /stop/);
    await rejectsCode(m.generate('a', { stop: [''] }), 'E_INVALID_ARG', /stop/);
    await rejectsCode(m.generate('a', null as any), 'E_INVALID_ARG', /options/);
    await rejectsCode(m.generate('a', { maxTokens: 2.5 }), 'E_INVALID_ARG', /maxTokens/);
    await rejectsCode(m.generate('a', { ignoreEog: 'yes' as any }), 'E_INVALID_ARG', /ignoreEog/);
    await rejectsCode(m.generate('a', { topK: -1 }), 'E_INVALID_ARG', /topK/);
    await rejectsCode(m.generate([0.5] as any), 'E_INVALID_ARG', /token id/);
    await rejectsCode(m.generate([null] as any), 'E_INVALID_ARG', /token id/);
    await rejectsCode(m.evaluate([1], null as any), 'E_INVALID_ARG', /options/);
    const it = m.stream('a', { signal: {} as any });
    await rejectsCode(it.next(), 'E_INVALID_ARG', /signal/);
    // the model is still usable
    assert.equal((await m.generate([1, 2], { maxTokens: 2, ignoreEog: true })).ids.length, 2);
  });

  it('beamSearch(): numBeams is capped (1e5 overflowed the stack, 1e9 hung) and options are checked', async () => {
    await rejectsCode(m.beamSearch([1, 2], { numBeams: 1e5, maxTokens: 2 }), 'E_INVALID_ARG', /numBeams/);
    await rejectsCode(m.beamSearch([1, 2], { numBeams: 1e9, maxTokens: 2 }), 'E_INVALID_ARG', /numBeams/);
    await rejectsCode(m.beamSearch([1, 2], null as any), 'E_INVALID_ARG', /options/);
    await rejectsCode(m.beamSearch([1, 2], { numBeams: 2, maxTokens: 2, stop: 5 as any }), 'E_INVALID_ARG', /stop/);
    await rejectsCode(m.beamSearch([1, 2], { numBeams: 2, maxTokens: 2, signal: 'x' as any }), 'E_INVALID_ARG', /signal/);
    await rejectsCode(m.beamSearch([1, 2], { numBeams: 2, maxTokens: 2, eogIds: '1' as any }), 'E_INVALID_ARG', /eogIds/);
  });

  it('tokenizer: decode(null), encode(5) are E_INVALID_ARG', async () => {
    await rejectsCode(() => m.tokenizer.decode(null as any), 'E_INVALID_ARG');
    await rejectsCode(() => m.tokenizer.encode(5 as any), 'E_INVALID_ARG');
  });
});

describe('hostile embedding calls', function () {
  it('embed([null]), embed(5), null options and loadEmbeddingModel(path, null) are E_INVALID_ARG', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-bert');
    const { loadEmbeddingModel } = await import('../../lib/index.js');
    const { sharedPath } = await import('../helpers/shared.js');
    const dir = sharedPath('models/hf/neural-api-tiny-bert');
    await rejectsCode(loadEmbeddingModel(dir, null as any), 'E_INVALID_ARG', /options/);
    const words = tokJson((j) => {
      j.model = { type: 'WordPiece', vocab: Object.fromEntries(['[UNK]', '[CLS]', '[SEP]', 'a', 'b'].map((t, i) => [t, i])), unk_token: '[UNK]' };
      j.pre_tokenizer = { type: 'BertPreTokenizer' };
      j.decoder = { type: 'WordPiece' };
      j.added_tokens = [];
    });
    const d = tinyFolder(() => {}, { 'tokenizer.json': JSON.stringify(words) }, 'models/hf/neural-api-tiny-bert');
    try {
      await using m = await loadEmbeddingModel(d, { threads: 1 });
      assert.equal((await m.embed(['a b'])).length, 1);
      await rejectsCode(m.embed([null] as any), 'E_INVALID_ARG', /embed/);
      await rejectsCode(m.embed(5 as any), 'E_INVALID_ARG', /embed/);
      await rejectsCode(m.embed('a', null as any), 'E_INVALID_ARG', /options/);
    } finally {
      removeFolder(d);
    }
  });
});

describe('hostile: more public entry points', function () {
  it('chat(null), ChatTemplate(tok, null), loadTokenizer(5) and 1000 parallel prompts are E_INVALID_ARG', async function () {
    requireShared(this, TINY_LLAMA);
    const { ChatTemplate, loadTokenizer } = await import('../../lib/index.js');
    const dir = tinyFolder(() => {}, { 'tokenizer.json': JSON.stringify(tokJson()) });
    try {
      await using m = await loadModel(dir, { threads: 1 });
      await rejectsCode(() => m.chat(null as any), 'E_INVALID_ARG', /options/);
      await rejectsCode(() => new ChatTemplate(m.tokenizer, null as any), 'E_INVALID_ARG', /options/);
      await rejectsCode(loadTokenizer(5 as any), 'E_INVALID_ARG', /path/);
      await rejectsCode(m.generate(Array.from({ length: 1000 }, () => [1])), 'E_INVALID_ARG', /at most 256/);
    } finally {
      removeFolder(dir);
    }
  });
});

describe('hostile: error messages stay short', function () {
  it('a megabyte-long value from config.json is cut in the message', async function () {
    requireShared(this, TINY_LLAMA);
    const dir = tinyFolder((c) => (c.hidden_size = 'x'.repeat(1 << 20)));
    try {
      const e = await rejectsCode(loadModel(dir), 'E_FORMAT', /hidden_size/);
      assert.ok(e.message.length < 1000, `message of ${e.message.length} characters`);
    } finally {
      removeFolder(dir);
    }
  });
});
