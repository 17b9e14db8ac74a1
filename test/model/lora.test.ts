/**
 * LoRA adapters at run time (issue 19), against ../shared/models/oracles/lora (two PEFT adapters
 * for the llama3-ropefreqs fixture, transformers+peft's and llama.cpp's results):
 * - a PEFT folder on the Hugging Face base: last-position logits within 1e-4 of the largest and
 *   24 greedy tokens equal to transformers+peft's, adapter1 at 1.0 and 0.5, adapter2 at 1.0;
 * - the converted GGUF adapters on the GGUF base: 24 greedy tokens equal to llama.cpp's (CPU,
 *   and the CUDA backend, its emulator without a GPU);
 * - across formats (PEFT on the GGUF base, the GGUF adapter on the HF base: llama's q/k rows are
 *   in another order in a GGUF) the same tokens;
 * - several adapters add up (adapter1 at 0.5 twice is adapter1 at 1.0);
 * - the prompt cache is keyed by the adapters: a prompt cached under one adapter is never
 *   reused under another or none;
 * - four sequences with four adapter sets in one batch each equal their run alone, and on the
 *   CUDA backend the CPU's;
 * - beamSearch, stream and chat take them as generate does;
 * - use_rslora and alpha_pattern change the factor as PEFT does (alpha/√r; per module);
 * - open slots: disposing an adapter a slot used leaves the others' admissions working;
 * - bad adapters are typed errors naming what is wrong, and 100 load/dispose cycles leave RSS
 *   flat; two 50 MB adapters load with the event loop free (< 50 ms, best of 3), the worker's
 *   values equal pairValues' on this thread.
 * Skipped, saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ggufMetadataSpec, readGguf, writeGguf } from '../../lib/formats/gguf.js';
import { GgmlType } from '../../lib/formats/ggml-types.js';
import { loadModel, type Model } from '../../lib/index.js';
import type { AdapterUse } from '../../lib/model/lora.js';
import { loadOnCuda } from '../helpers/cuda.js';
import { loopGap } from '../hostile/helpers.js';
import { type PairJob, pairValues } from '../../lib/model/lora-values.js';
import { startWorker } from '../../lib/worker.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

interface Prompt {
  text: string;
  ids_with_special: number[];
  hf_last_logits: number[];
  hf_greedy: number[];
  llamacpp_greedy?: number[];
}
interface Oracle {
  adapters: Record<'adapter1' | 'adapter2', { dir: string; gguf: string } & Record<string, Prompt[]>>;
}

const LORA = 'models/oracles/lora';
const HF_BASE = sharedPath('models', 'oracles', 'llama3-ropefreqs', 'hf');
const GGUF_BASE = sharedPath('models', 'oracles', 'llama3-ropefreqs', 'llama3-ropefreqs.f32.gguf');
const RUNS: Array<[name: 'adapter1' | 'adapter2', field: string, scale: number]> = [
  ['adapter1', 'scale_1.0', 1],
  ['adapter1', 'scale_0.5', 0.5],
  ['adapter2', 'scale_1.0', 1],
];
const OPTS = { device: 'cpu', kvType: 'f32', contextSize: 256 } as const;

const greedy = async (m: Model, ids: number[], adapters?: AdapterUse[]) => (await m.generate(ids, { maxTokens: 24, ignoreEog: true, adapters })).ids;

describe('LoRA adapters (oracles)', function () {
  this.timeout(120_000);
  let o: Oracle;
  before(function () {
    requireShared(this, `${LORA}/oracle.json`, 'models/oracles/llama3-ropefreqs/hf/config.json');
    o = readSharedJson<Oracle>(`${LORA}/oracle.json`);
  });

  it('a PEFT folder on the HF base: logits within 1e-4 of the largest and greedy tokens as transformers+peft', async () => {
    await using m = await loadModel(HF_BASE, OPTS);
    for (const [name, field, scale] of RUNS) {
      const adapter = await m.loadAdapter(sharedPath(LORA, o.adapters[name].dir));
      let worst = 0;
      for (const p of o.adapters[name][field]) {
        const uses = [{ adapter, scale }];
        const logits = await m.evaluate(p.ids_with_special, { adapters: uses });
        const big = Math.max(...p.hf_last_logits.map(Math.abs));
        p.hf_last_logits.forEach((v, i) => (worst = Math.max(worst, Math.abs(logits[i] - v) / big)));
        assert.deepEqual(await greedy(m, p.ids_with_special, uses), p.hf_greedy, `${name} ${field} '${p.text}': greedy`);
      }
      console.log(`      ${name} at ${scale}: last logits max |ours - peft| / max |logit| = ${worst.toExponential(2)}`);
      assert.ok(worst <= 1e-4, `${name} ${field}: ${worst}`);
      adapter.dispose();
    }
  });

  it('the GGUF adapters on the GGUF base: greedy tokens as llama.cpp (CPU and CUDA)', async () => {
    await using cpu = await loadModel(GGUF_BASE, OPTS);
    await using gpu = await loadOnCuda(GGUF_BASE, { kvType: 'f32', contextSize: 256 });
    for (const [name, field, scale] of RUNS) {
      const file = sharedPath(LORA, o.adapters[name].gguf);
      const a = await cpu.loadAdapter(file), g = await gpu.loadAdapter(file);
      for (const p of o.adapters[name][field]) {
        assert.deepEqual(await greedy(cpu, p.ids_with_special, [{ adapter: a, scale }]), p.llamacpp_greedy, `${name} ${field} '${p.text}': CPU`);
        assert.deepEqual(await greedy(gpu, p.ids_with_special, [{ adapter: g, scale }]), p.llamacpp_greedy, `${name} ${field} '${p.text}': CUDA`);
      }
    }
  });

  it('across formats: a PEFT folder on the GGUF base, a GGUF adapter on the HF base (q/k rows reordered)', async () => {
    await using gguf = await loadModel(GGUF_BASE, OPTS);
    await using hf = await loadModel(HF_BASE, OPTS);
    for (const [name, field, scale] of RUNS) {
      const peft = await gguf.loadAdapter(sharedPath(LORA, o.adapters[name].dir));
      const conv = await hf.loadAdapter(sharedPath(LORA, o.adapters[name].gguf));
      for (const p of o.adapters[name][field]) {
        assert.deepEqual(await greedy(gguf, p.ids_with_special, [{ adapter: peft, scale }]), p.hf_greedy, `${name} ${field}: PEFT on the GGUF`);
        assert.deepEqual(await greedy(hf, p.ids_with_special, [{ adapter: conv, scale }]), p.hf_greedy, `${name} ${field}: GGUF adapter on the folder`);
      }
    }
  });

  it('several adapters add up; scale 0 and no adapter are the base', async () => {
    await using m = await loadModel(GGUF_BASE, OPTS);
    const a = await m.loadAdapter(sharedPath(LORA, o.adapters.adapter1.gguf));
    const p = o.adapters.adapter1['scale_1.0'][0];
    assert.deepEqual(await greedy(m, p.ids_with_special, [{ adapter: a, scale: 0.5 }, { adapter: a, scale: 0.5 }]), p.llamacpp_greedy);
    const base = await greedy(m, p.ids_with_special);
    assert.notDeepEqual(base, p.llamacpp_greedy);
    assert.deepEqual(await greedy(m, p.ids_with_special, [{ adapter: a, scale: 0 }]), base);
  });

  it('the prompt cache is keyed by the adapter set: never reused under another', async () => {
    await using m = await loadModel(GGUF_BASE, OPTS);
    const a1 = await m.loadAdapter(sharedPath(LORA, o.adapters.adapter1.gguf));
    const a2 = await m.loadAdapter(sharedPath(LORA, o.adapters.adapter2.gguf));
    const ids = o.adapters.adapter1['scale_1.0'][1].ids_with_special;
    const base = await m.evaluate(ids);
    const with1 = await m.evaluate(ids, { adapters: [{ adapter: a1 }] });
    const with2 = await m.evaluate(ids, { adapters: [{ adapter: a2 }] });
    const half = await m.evaluate(ids, { adapters: [{ adapter: a1, scale: 0.5 }] });
    // each the same evaluated fresh, after the others
    for (const [want, uses] of [[with1, [{ adapter: a1 }]], [base, undefined], [half, [{ adapter: a1, scale: 0.5 }]], [with2, [{ adapter: a2 }]]] as const) {
      await m.clearCache();
      const fresh = await m.evaluate(ids, { adapters: uses as AdapterUse[] | undefined });
      assert.deepEqual(Array.from(fresh), Array.from(want));
    }
    // a generation that extends the cached prompt under another adapter set equals a fresh one
    const cont = o.adapters.adapter1['scale_1.0'][1];
    await m.evaluate(cont.ids_with_special);
    assert.deepEqual(await greedy(m, cont.ids_with_special, [{ adapter: a1 }]), cont.llamacpp_greedy);
    assert.notDeepEqual(Array.from(base), Array.from(with1));
  });

  it('slots: disposing an adapter a slot used leaves the slots usable; the slot forgets it', async () => {
    await using m = await loadModel(GGUF_BASE, OPTS);
    const a1 = await m.loadAdapter(sharedPath(LORA, o.adapters.adapter1.gguf));
    const a2 = await m.loadAdapter(sharedPath(LORA, o.adapters.adapter2.gguf));
    const ids = o.adapters.adapter1['scale_1.0'][1].ids_with_special;
    const base = await m.evaluate(ids);
    const with2 = await m.evaluate(ids, { adapters: [{ adapter: a2 }] });
    const slots = await m.openSlots(2);
    try {
      slots.useAdapters(0, [{ adapter: a1 }]);
      slots.useAdapters(1, [{ adapter: a2 }]);
      await slots.step([{ slot: 0, ids, pos: 0 }, { slot: 1, ids, pos: 0 }]);
      a1.dispose();
      // both slots admit again: slot 1 keeps a2, slot 0 runs the base
      slots.useAdapters(1, [{ adapter: a2 }]);
      slots.useAdapters(0, undefined);
      const [l0, l1] = await slots.step([{ slot: 0, ids, pos: 0 }, { slot: 1, ids, pos: 0 }]);
      assert.deepEqual(Array.from(l0), Array.from(base));
      assert.deepEqual(Array.from(l1), Array.from(with2));
      assert.throws(() => slots.useAdapters(0, [{ adapter: a1 }]), { code: 'E_INVALID_ARG', message: /was disposed/ });
    } finally {
      slots.close();
    }
  });

  it('four sequences with four adapter sets in one batch each equal their run alone', async () => {
    await using m = await loadModel(GGUF_BASE, OPTS);
    const a1 = await m.loadAdapter(sharedPath(LORA, o.adapters.adapter1.gguf));
    const a2 = await m.loadAdapter(sharedPath(LORA, o.adapters.adapter2.gguf));
    const prompts = o.adapters.adapter1['scale_1.0'].map((p) => p.ids_with_special);
    const sets: Array<AdapterUse[] | undefined> = [undefined, [{ adapter: a1 }], [{ adapter: a2, scale: 0.5 }], [{ adapter: a1, scale: 0.5 }, { adapter: a2 }]];
    const items = sets.map((adapters, i) => ({ prompt: prompts[i % prompts.length], adapters }));
    const batch = await m.generate(items, { maxTokens: 16, ignoreEog: true });
    for (const [i, it] of items.entries()) {
      const solo = (await m.generate(it.prompt, { maxTokens: 16, ignoreEog: true, adapters: it.adapters })).ids;
      assert.deepEqual(batch[i].ids, solo, `sequence ${i}`);
    }
    assert.deepEqual(batch[1].ids, o.adapters.adapter1['scale_1.0'][1].llamacpp_greedy!.slice(0, 16));
  });

  it('on the CUDA backend (its emulator without a GPU): a batch of four adapter sets equals the CPU’s', async () => {
    await using cpu = await loadModel(GGUF_BASE, OPTS);
    await using gpu = await loadOnCuda(GGUF_BASE, { kvType: 'f32', contextSize: 256 });
    const file1 = sharedPath(LORA, o.adapters.adapter1.gguf), file2 = sharedPath(LORA, o.adapters.adapter2.gguf);
    const sets = async (m: Model): Promise<Array<AdapterUse[] | undefined>> => {
      const a1 = await m.loadAdapter(file1), a2 = await m.loadAdapter(file2);
      return [[{ adapter: a2 }], undefined, [{ adapter: a1, scale: 0.5 }, { adapter: a2 }], [{ adapter: a1 }]];
    };
    const prompts = o.adapters.adapter1['scale_1.0'].map((p) => p.ids_with_special);
    const run = async (m: Model) => (await m.generate((await sets(m)).map((adapters, i) => ({ prompt: prompts[i % prompts.length], adapters })), { maxTokens: 8, ignoreEog: true })).map((r) => r.ids);
    assert.deepEqual(await run(gpu), await run(cpu));
  });

  it('chat takes adapters: a turn equals generate() of its prompt with them, and differs without', async () => {
    await using m = await loadModel(GGUF_BASE, OPTS);
    const a1 = await m.loadAdapter(sharedPath(LORA, o.adapters.adapter1.gguf));
    const opts = { maxTokens: 8, ignoreEog: true, adapters: [{ adapter: a1 }] };
    const turn = await m.chat().send('Once upon a time', opts);
    const plain = await m.chat().send('Once upon a time', { ...opts, adapters: undefined });
    assert.deepEqual((await m.generate(turn.promptIds, opts)).ids, turn.ids);
    assert.notDeepEqual(plain.ids, turn.ids);
  });

  it('beamSearch and stream take adapters too', async () => {
    await using m = await loadModel(GGUF_BASE, OPTS);
    const a1 = await m.loadAdapter(sharedPath(LORA, o.adapters.adapter1.gguf));
    const p = o.adapters.adapter1['scale_1.0'][0];
    // one beam is greedy search
    const beams = await m.beamSearch(p.ids_with_special, { numBeams: 1, maxTokens: 8, adapters: [{ adapter: a1 }] });
    assert.deepEqual(beams.sequences[0].ids, p.llamacpp_greedy!.slice(0, 8));
    const plain = await m.beamSearch(p.ids_with_special, { numBeams: 1, maxTokens: 8 });
    assert.notDeepEqual(plain.sequences[0].ids, beams.sequences[0].ids);
    const streamed: number[] = [];
    for await (const c of m.stream(p.ids_with_special, { maxTokens: 8, ignoreEog: true, adapters: [{ adapter: a1 }] })) if (c.id >= 0) streamed.push(c.id);
    assert.deepEqual(streamed, p.llamacpp_greedy!.slice(0, 8));
  });
});

describe('LoRA adapters: bad input', function () {
  this.timeout(60_000);
  let dir: string;
  before(function () {
    requireShared(this, `${LORA}/oracle.json`);
    dir = mkdtempSync(path.join(tmpdir(), 'fuselm-lora-'));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  /** adapter1's PEFT folder with its config changed. */
  const peftWith = (name: string, change: (c: Record<string, unknown>) => void) => {
    const d = path.join(dir, name);
    cpSync(sharedPath(LORA, 'adapter1'), d, { recursive: true });
    const cfg = JSON.parse(readFileSync(path.join(d, 'adapter_config.json'), 'utf8'));
    change(cfg);
    writeFileSync(path.join(d, 'adapter_config.json'), JSON.stringify(cfg));
    return d;
  };

  it('DoRA, modules_to_save, another peft_type: E_UNSUPPORTED naming it; a wrong rank: E_FORMAT', async () => {
    await using m = await loadModel(HF_BASE, OPTS);
    await assert.rejects(m.loadAdapter(peftWith('dora', (c) => (c.use_dora = true))), { code: 'E_UNSUPPORTED', message: /use_dora .*DoRA/ });
    await assert.rejects(m.loadAdapter(peftWith('mts', (c) => (c.modules_to_save = ['lm_head']))), { code: 'E_UNSUPPORTED', message: /modules_to_save/ });
    await assert.rejects(m.loadAdapter(peftWith('ia3', (c) => (c.peft_type = 'IA3'))), { code: 'E_UNSUPPORTED', message: /peft_type "IA3"/ });
    await assert.rejects(m.loadAdapter(peftWith('rank', (c) => (c.rank_pattern = { q_proj: 8 }))), { code: 'E_FORMAT', message: /q_proj\.lora_A\.weight' has rank 4, but the config says r = 8/ });
  });

  it('use_rslora (alpha/√r) and alpha_pattern change the factor as PEFT does', async () => {
    await using m = await loadModel(HF_BASE, OPTS);
    const ids = [1, 438, 956, 1079];
    const plain = await m.loadAdapter(sharedPath(LORA, 'adapter1'));
    // r = 4, alpha 8: rslora's 8/2 = 4 is twice 8/4
    const rs = await m.loadAdapter(peftWith('rslora', (c) => (c.use_rslora = true)));
    // alpha 16 on every projection (names and dotted suffixes), and on q_proj alone
    const ap = await m.loadAdapter(peftWith('alpha', (c) => (c.alpha_pattern = { q_proj: 16, k_proj: 16, v_proj: 16, 'self_attn.o_proj': 16, 'mlp.gate_proj': 16, up_proj: 16, down_proj: 16 })));
    const q = await m.loadAdapter(peftWith('alpha-q', (c) => (c.alpha_pattern = { q_proj: 16 })));
    const twice = await m.evaluate(ids, { adapters: [{ adapter: plain, scale: 2 }] });
    const close = (x: Float32Array, y: Float32Array) => x.every((v, i) => Math.abs(v - y[i]) <= 1e-5 * (1 + Math.abs(y[i])));
    assert.ok(close(await m.evaluate(ids, { adapters: [{ adapter: rs }] }), twice));
    assert.ok(close(await m.evaluate(ids, { adapters: [{ adapter: ap }] }), twice));
    const once = await m.evaluate(ids, { adapters: [{ adapter: plain }] });
    const onlyQ = await m.evaluate(ids, { adapters: [{ adapter: q }] });
    assert.ok(!close(onlyQ, twice) && !close(onlyQ, once));
    await assert.rejects(m.loadAdapter(peftWith('regex', (c) => (c.rank_pattern = { '(a+)+$': 4 }))), { code: 'E_UNSUPPORTED', message: /rank_pattern: pattern key "\(a\+\)\+\$" is not a plain module name/ });
  });

  it('an adapter for another model: E_FORMAT naming the tensor; another architecture: E_INVALID_ARG', async function () {
    requireShared(this, 'models/oracles/qwen2/qwen2.f32.gguf');
    await using qwen = await loadModel(sharedPath('models', 'oracles', 'qwen2', 'qwen2.f32.gguf'), OPTS);
    await assert.rejects(qwen.loadAdapter(sharedPath(LORA, 'adapter1', 'adapter1.f32.gguf')), { code: 'E_INVALID_ARG', message: /general\.architecture is "llama", but the model is qwen2/ });
    // attn_k's B with the rows of a q projection: does not fit the base's k (GQA: 32 rows)
    const src = sharedPath(LORA, 'adapter1', 'adapter1.f32.gguf');
    const f = await readGguf(src);
    const bytes = readFileSync(src);
    const out = path.join(dir, 'wide-k.gguf');
    await writeGguf(out, {
      version: 3,
      metadata: ggufMetadataSpec(f),
      tensors: f.tensors.map((t) =>
        t.name === 'blk.1.attn_k.weight.lora_b'
          ? { name: t.name, type: t.type, dims: [t.dims[0], 64], data: new Uint8Array(t.dims[0] * 64 * 4) }
          : { name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.nbytes) }),
    });
    await assert.rejects(qwen.loadAdapter(out), { code: 'E_INVALID_ARG' });
    // a tensor that is not a LoRA pair of a projection
    const extra = path.join(dir, 'extra.gguf');
    await writeGguf(extra, {
      version: 3,
      metadata: ggufMetadataSpec(f),
      tensors: [
        ...f.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.nbytes) })),
        { name: 'token_embd.weight.lora_a', type: GgmlType.F32, dims: [64, 4], data: new Uint8Array(64 * 4 * 4) },
      ],
    });
    await using llama = await loadModel(GGUF_BASE, OPTS);
    await assert.rejects(llama.loadAdapter(out), { code: 'E_FORMAT', message: /tensor 'blk\.1\.attn_k\.weight\.lora_a': A \[4, 64\] and B \[64, 4\] do not fit the base projection \[32, 64\]/ });
    await assert.rejects(llama.loadAdapter(extra), { code: 'E_UNSUPPORTED', message: /token_embd\.weight\.lora_a/ });
    // a model GGUF is not an adapter
    await assert.rejects(llama.loadAdapter(GGUF_BASE), { code: 'E_FORMAT', message: /general\.type/ });
    // an adapter of another model, or disposed, used here
    const b = await llama.loadAdapter(src);
    await assert.rejects(qwen.generate('hi', { maxTokens: 1, adapters: [{ adapter: b }] }), { code: 'E_INVALID_ARG', message: /loaded by another model/ });
    const a = await llama.loadAdapter(src);
    a.dispose();
    await assert.rejects(llama.generate('hi', { maxTokens: 1, adapters: [{ adapter: a }] }), { code: 'E_INVALID_ARG', message: /was disposed/ });
    await assert.rejects(llama.generate('hi', { maxTokens: 1, adapters: [{ adapter: a, scale: NaN }] }), { code: 'E_INVALID_ARG', message: /scale must be a finite number/ });
  });

  it('two 50 MB adapters load together with the event loop free (delay < 50 ms), decoded off the JS thread', async () => {
    await using m = await loadModel(GGUF_BASE, OPTS);
    const f = await readGguf(sharedPath(LORA, 'adapter1', 'adapter1.f32.gguf'));
    // f16 pairs of rank 10496 on every projection: 51 MB, 102 MB of f32 once decoded
    const r = 10496;
    const files = ['big-a.gguf', 'big-b.gguf'].map((n) => path.join(dir, n));
    for (const [i, file] of files.entries())
      await writeGguf(file, {
        version: 3,
        metadata: ggufMetadataSpec(f),
        tensors: f.tensors.map((t) => {
          const dims = t.name.endsWith('lora_a') ? [t.dims[0], r] : [r, t.dims[1]];
          return { name: t.name, type: GgmlType.F16, dims, data: new Uint8Array(dims[0] * dims[1] * 2).fill(0x30 + i) };
        }),
      });
    assert.ok(statSync(files[0]).size > 50e6);
    let best = Infinity;
    for (let i = 0; i < 3 && best >= 50; i++) {
      const { result, gap } = await loopGap(() => Promise.all(files.map((p) => m.loadAdapter(p))));
      assert.equal(result[0].layers[0].wq!.bt.shape[0], r);
      for (const a of result) a.dispose();
      best = Math.min(best, gap);
    }
    assert.ok(best < 50, `event loop delay ${best.toFixed(1)} ms while two 50 MB adapters loaded`);
    for (const p of files) rmSync(p);
  });

  it('the LoRA worker gives pairValues\' values bit for bit, and a read past the file as E_FORMAT', async () => {
    const f = await readGguf(sharedPath(LORA, 'adapter1', 'adapter1.f32.gguf'));
    const raw = (name: string) => {
      const t = f.tensors.find((x) => x.name === name)!;
      return { name, file: sharedPath(LORA, 'adapter1', 'adapter1.f32.gguf'), offset: t.offset, nbytes: t.nbytes, type: t.type, shape: [...t.dims].reverse() };
    };
    const job: PairJob = { a: raw('blk.0.attn_q.weight.lora_a'), b: raw('blk.0.attn_q.weight.lora_b'), factor: 0.75, reorder: { heads: 4, to: 'hf' } };
    const w = startWorker('model/lora-worker');
    try {
      const ask = (id: number, j: PairJob) =>
        new Promise<{ id: number; a?: Float32Array; bt?: Float32Array; error?: { code: string; message: string } }>((resolve, reject) => {
          w.once('message', resolve);
          w.once('error', reject);
          w.postMessage({ id, job: j });
        });
      const here = await pairValues(job);
      const there = await ask(1, job);
      assert.equal(there.id, 1);
      assert.deepEqual([there.a, there.bt], [here.a, here.bt]);
      const past = await ask(2, { ...job, a: { ...job.a, offset: 1e9 } });
      assert.equal(past.id, 2);
      assert.equal(past.error?.code, 'E_FORMAT');
      assert.match(past.error!.message, /lora_a' at offset 1000000000 runs past the end of the file/);
    } finally {
      await w.terminate();
    }
  });

  it('100 load/dispose cycles leave RSS flat', async () => {
    // a large adapter (r = 512 on every projection: 5 MB of f32 pairs) so a leak would show
    await using m = await loadModel(GGUF_BASE, OPTS);
    const src = sharedPath(LORA, 'adapter1', 'adapter1.f32.gguf');
    const f = await readGguf(src);
    const r = 512;
    const big = path.join(dir, 'big.gguf');
    await writeGguf(big, {
      version: 3,
      metadata: ggufMetadataSpec(f),
      tensors: f.tensors.map((t) => {
        const dims = t.name.endsWith('lora_a') ? [t.dims[0], r] : [r, t.dims[1]];
        return { name: t.name, type: GgmlType.F32, dims, data: new Uint8Array(dims[0] * dims[1] * 4).fill(1) };
      }),
    });
    const ids = [1, 438, 956];
    const cycle = async () => {
      const a = await m.loadAdapter(big);
      await m.generate(ids, { maxTokens: 1, adapters: [{ adapter: a, scale: 1e-3 }] });
      a.dispose();
    };
    for (let i = 0; i < 10; i++) await cycle();
    global.gc?.();
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 100; i++) await cycle();
    global.gc?.();
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    console.log(`      RSS after 100 more cycles of a 5 MB adapter: ${grown >= 0 ? '+' : ''}${grown.toFixed(1)} MiB`);
    assert.ok(grown < 32, `RSS grew by ${grown.toFixed(1)} MiB`);
  });
});
