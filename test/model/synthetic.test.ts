/**
 * Synthetic llama GGUFs written by our writer (no ../shared needed): the same weights stored
 * as f32, f16, bf16 and q8_0 give logits that agree within each format's rounding; the fast
 * kernels and the references pick the same greedy tokens; the event loop keeps running while a
 * forward step is in flight; and misuse ends in the right FuselmError. A gemma2 file's config
 * follows llama.cpp's reading of its keys (defaults, window pattern) or refuses what it cannot run.
 */
import assert from 'node:assert/strict';
import { native } from '../../lib/native.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FuselmError, GgmlType, gv, loadModel, readGguf, writeGguf } from '../../lib/index.js';
import { type GgufMetaEntry, ggufMetadataSpec } from '../../lib/formats/gguf.js';
import { configFromGguf } from '../../lib/model/config.js';
import { SHAPES, type SyntheticModelSpec, writeSyntheticLlama, writeSyntheticModel } from '../../lib/tools/synthetic.js';
import { fastImpls, relErr } from '../helpers/parity.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-synth-'));
const file = (name: string) => path.join(dir, name);
const shape = { ...SHAPES.tiny, dim: 128, ffnDim: 256, nHeads: 4, nKvHeads: 2 };

describe('synthetic llama models', function () {
  const ids = [1, 40, 41, 300 - 1, 7, 100, 200, 5];
  before(async () => {
    for (const dt of ['f32', 'f16', 'bf16', 'q8_0'] as const) await writeSyntheticLlama(file(`${dt}.gguf`), { ...shape, vocabSize: 300 }, dt);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('f16, bf16 and q8_0 logits agree with f32 within the format rounding', async () => {
    await using ref = await loadModel(file('f32.gguf'));
    const want = await ref.evaluate(ids, { allLogits: true });
    for (const [dt, tol] of [['f16', 2e-3], ['bf16', 2e-2], ['q8_0', 2e-2]] as const) {
      await using m = await loadModel(file(`${dt}.gguf`));
      const err = relErr(await m.evaluate(ids, { allLogits: true }), want);
      assert.ok(err < tol, `${dt}: rel err ${err} >= ${tol}`);
      assert.ok(err > 0, `${dt}: identical to f32, so the weights were not stored as ${dt}`);
    }
  });

  it('fast kernels and references agree (logits and greedy tokens) for every dtype', async () => {
    // q8_0's fast path quantizes activations to 8 bits as llama.cpp does (W8A8) while the
    // reference multiplies by f32 activations, so its logits differ by that rounding and its
    // greedy tokens are compared across kernel levels and thread counts instead.
    for (const [dt, tol] of [['f32', 1e-5], ['f16', 1e-5], ['bf16', 1e-5], ['q8_0', 3e-2]] as const) {
      await using fast = await loadModel(file(`${dt}.gguf`), { threads: 2 });
      await using slow = await loadModel(file(`${dt}.gguf`), { threads: 1, impl: 'reference' });
      const err = relErr(await fast.evaluate(ids, { allLogits: true }), await slow.evaluate(ids, { allLogits: true }));
      assert.ok(err < tol, `${dt}: rel err ${err}`);
      const a = await fast.generate(ids, { maxTokens: 16, ignoreEog: true });
      const others = dt === 'q8_0' ? fastImpls().map((impl) => ({ threads: 1, impl })) : [{ threads: 1, impl: 'reference' as const }];
      for (const o of others) {
        await using m = await loadModel(file(`${dt}.gguf`), o);
        const b = await m.generate(ids, { maxTokens: 16, ignoreEog: true });
        assert.deepEqual(a.ids, b.ids, `${dt} ${JSON.stringify(o)}`);
      }
    }
  });

  it("q4_k_m and q5_k_m files carry llama.cpp's tensor mixture, and fuselm runs them", async () => {
    // 8 layers: useMoreBits picks layers 0, 3, 6, 7 (first and last eighth, every third between)
    const mixShape = { ...shape, dim: 256, ffnDim: 512, nLayers: 8, vocabSize: 300 };
    for (const [type, base, fileType] of [['q4_k_m', GgmlType.Q4_K, 15], ['q5_k_m', GgmlType.Q5_K, 17]] as const) {
      await writeSyntheticLlama(file(`${type}.gguf`), mixShape, type);
      const g = await readGguf(file(`${type}.gguf`));
      const typeOf = (name: string) => g.tensors.find((t) => t.name === name)?.type;
      assert.equal(g.metadata.get('general.file_type'), fileType);
      assert.equal(typeOf('output.weight'), GgmlType.Q6_K);
      assert.equal(typeOf('token_embd.weight'), base);
      for (let l = 0; l < 8; l++) {
        const more = [0, 3, 6, 7].includes(l);
        assert.equal(typeOf(`blk.${l}.attn_v.weight`), more ? GgmlType.Q6_K : base, `${type} layer ${l} attn_v`);
        assert.equal(typeOf(`blk.${l}.ffn_down.weight`), more ? GgmlType.Q6_K : base, `${type} layer ${l} ffn_down`);
        assert.equal(typeOf(`blk.${l}.attn_q.weight`), base);
      }
      await using m = await loadModel(file(`${type}.gguf`));
      assert.equal((await m.generate(ids, { maxTokens: 4, ignoreEog: true })).ids.length, 4);
    }
  });

  it('reports loading progress once per weight tensor, ending at the total', async () => {
    const calls: Array<[number, number]> = [];
    await using m = await loadModel(file('f32.gguf'), { onProgress: (done, total) => calls.push([done, total]) });
    const total = 2 + 9 * m.config.nLayers + 1;
    assert.deepEqual(calls, Array.from({ length: total }, (_, i) => [i + 1, total]));
  });

  it('keeps the event loop running while a forward step is in flight', async () => {
    await using m = await loadModel(file('f32.gguf'), { threads: 1, impl: 'reference', contextSize: 256 });
    const prompt = Array.from({ length: 256 }, (_, i) => 3 + (i % 290));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    await m.evaluate(prompt);
    const ms = performance.now() - t0;
    clearInterval(timer);
    assert.ok(ms > 20, `the step took only ${ms} ms; make it longer for this test to mean something`);
    assert.ok(ticks >= Math.min(5, ms / 10), `only ${ticks} timer ticks during a ${ms.toFixed(0)} ms forward step`);
  });

  it('rejects misuse with typed errors', async () => {
    await assert.rejects(loadModel(file('missing.gguf')), (e: FuselmError) => e instanceof FuselmError && e.code === 'E_IO');
    const m = await loadModel(file('f32.gguf'));
    await assert.rejects(m.generate([1, 300]), { code: 'E_INVALID_ARG' });
    await assert.rejects(m.generate([]), { code: 'E_INVALID_ARG' });
    await assert.rejects(m.generate('x', { maxTokens: -1 }), { code: 'E_INVALID_ARG' });
    await assert.rejects(m.generate('x', { temperature: -1 }), { code: 'E_INVALID_ARG' });
    await m.dispose();
    await assert.rejects(m.generate('x'), { code: 'E_DISPOSED' });
    if (native().cudaInfo().devices.length === 0 && process.env.FUSELM_CUDA_EMULATE !== '1')
      await assert.rejects(loadModel(file('f32.gguf'), { device: 'cuda' }), { code: 'NO_CUDA_DEVICE' });
    await assert.rejects(loadModel(file('f32.gguf'), { device: 'gpu' as 'cuda' }), { code: 'E_INVALID_ARG' });
    await assert.rejects(loadModel(file('f32.gguf'), { threads: 0 }), { code: 'E_INVALID_ARG' });
  });

  it('names the tensor and type of an unsupported tensor type, and an unsupported architecture', async () => {
    const f = await readGguf(file('f32.gguf'));
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(f.path);
    const tensors = f.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: new Uint8Array(bytes.subarray(t.offset, t.offset + t.nbytes)) }));
    // blk.0.attn_q.weight as MXFP4 (17-byte blocks of 32), a type fuselm does not run: the data
    // just has to be the right size
    const q = tensors.find((t) => t.name === 'blk.0.attn_q.weight')!;
    q.type = GgmlType.MXFP4;
    q.data = new Uint8Array((q.dims[0] * q.dims[1] * 17) / 32);
    await writeGguf(file('q4.gguf'), { metadata: ggufMetadataSpec(f), tensors });
    await assert.rejects(loadModel(file('q4.gguf')), (e: FuselmError) => e.code === 'E_UNSUPPORTED' && /blk\.0\.attn_q\.weight/.test(e.message) && /MXFP4/.test(e.message));
    const meta = ggufMetadataSpec(f).map((e) => (e.key === 'general.architecture' ? { key: e.key, ...gv.str('mamba') } : e));
    await writeGguf(file('arch.gguf'), { metadata: meta, tensors: [] });
    await assert.rejects(loadModel(file('arch.gguf')), (e: FuselmError) => e.code === 'E_UNSUPPORTED' && /mamba/.test(e.message));
  });
});

describe('gemma2 GGUF metadata, as llama.cpp reads it', function () {
  const gdir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-gemma2-keys-'));
  after(() => rmSync(gdir, { recursive: true, force: true }));
  const spec = { arch: 'gemma2' as const, vocabSize: 300, dim: 64, nLayers: 5, nHeads: 2, nKvHeads: 1, ffnDim: 96, contextLength: 64, dtype: 'f32' as const };
  /** The config of a synthetic gemma2 file with `extra` metadata added. */
  async function config(extra: GgufMetaEntry[], o: Partial<SyntheticModelSpec> = {}) {
    const src = path.join(gdir, 'src.gguf'), out = path.join(gdir, 'out.gguf');
    await writeSyntheticModel(src, { ...spec, ...o });
    const f = await readGguf(src);
    const bytes = readFileSync(src);
    await writeGguf(out, { metadata: [...ggufMetadataSpec(f), ...extra], tensors: f.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.nbytes) })) });
    return configFromGguf(await readGguf(out));
  }

  it("takes llama.cpp's window (4096) and caps (50, 30) when the keys are absent", async () => {
    const c = await config([]);
    assert.deepEqual([c.slidingWindow, c.attnSoftcap, c.finalSoftcap, c.slidingLayers], [4096, 50, 30, [true, false, true, false, true]]);
    const given = await config([], { slidingWindow: 5, attnSoftcap: 3, finalSoftcap: 8 });
    assert.deepEqual([given.slidingWindow, given.attnSoftcap, given.finalSoftcap], [5, 3, 8]);
  });

  it('puts the window on layers l % p < p - 1 for attention.sliding_window_pattern p (0: all)', async () => {
    assert.deepEqual((await config([], { slidingWindowPattern: 3 })).slidingLayers, [true, true, false, true, true]);
    assert.deepEqual((await config([], { slidingWindowPattern: 0 })).slidingLayers, [true, true, true, true, true]);
    await assert.rejects(config([{ key: 'gemma2.attention.sliding_window_pattern', ...gv.i32(-1) }]), { code: 'E_FORMAT', message: /sliding_window_pattern must be an integer >= 0/ });
  });

  it('rope.freq_base_swa: the sliding layers rotate with their own base', async () => {
    assert.deepEqual((await config([{ key: 'gemma2.rope.freq_base_swa', ...gv.f32(100) }])).ropeSliding, { theta: 100, freqScale: 1 });
    const same = await config([{ key: 'gemma2.rope.freq_base_swa', ...gv.f32(10000) }]);
    assert.equal(same.ropeTheta, 10000);
    assert.equal(same.ropeSliding, undefined);
  });
});
