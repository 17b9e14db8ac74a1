/**
 * The CUDA backend behind the model API. Without a GPU it runs on the SIMT emulator
 * (FUSELM_CUDA_EMULATE=1), the same kernel sources compiled for the CPU; with one, the same
 * checks run on the GPU. stories260K through device 'cuda' must match llama.cpp's logits
 * within 1e-3 and its greedy tokens exactly; without a device, 'auto' falls back to the CPU and
 * 'cuda' fails with NO_CUDA_DEVICE.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { devices, FuselmError, loadModel, type Model } from '../../lib/index.js';
import { CpuBackend, CudaBackend, ops } from '../../lib/backend.js';
import { native } from '../../lib/native.js';
import { writeSyntheticLlama } from '../../lib/tools/synthetic.js';
import { emptyTensor, readF32Rows, tensorFromF32, tensorFromI32 } from '../../lib/tensor.js';
import { loadOnCuda } from '../helpers/cuda.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

const MODEL = 'models/stories260K.gguf';
const ORACLE = 'models/stories260K.oracle.json';
const hasGpu = () => native().cudaInfo().devices.length > 0;

function maxAbsDiff(got: Float32Array, want: number[][], V: number): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) for (let j = 0; j < V; j++) m = Math.max(m, Math.abs(got[i * V + j] - want[i][j]));
  return m;
}

describe('CUDA backend', function () {
  describe('on a machine without a CUDA device', function () {
    before(function () {
      if (hasGpu()) {
        console.log('      skipped: this machine has a working CUDA device');
        this.skip();
      }
    });

    it('devices() says why CUDA is absent', () => {
      const d = devices();
      assert.deepEqual(d.cuda.devices, []);
      assert.ok(d.cuda.reason && d.cuda.reason.length > 10, `reason: ${d.cuda.reason}`);
    });

    it("device 'auto' falls back to the CPU", async function () {
      requireShared(this, MODEL);
      await using m = await loadModel(sharedPath(MODEL), { device: 'auto', threads: 1 });
      assert.equal(m.device, 'cpu');
    });

    it("device 'cuda' fails with NO_CUDA_DEVICE (unless FUSELM_CUDA_EMULATE=1)", async function () {
      requireShared(this, MODEL);
      const before = process.env.FUSELM_CUDA_EMULATE;
      delete process.env.FUSELM_CUDA_EMULATE;
      try {
        await assert.rejects(loadModel(sharedPath(MODEL), { device: 'cuda' }), (e: unknown) => {
          assert.ok(e instanceof FuselmError);
          assert.equal(e.code, 'NO_CUDA_DEVICE');
          assert.match(e.message, /FUSELM_CUDA_EMULATE/);
          return true;
        });
      } finally {
        if (before !== undefined) process.env.FUSELM_CUDA_EMULATE = before;
      }
    });

    it("new Tensor(..., 'cuda') fails with NO_CUDA_DEVICE", () => {
      assert.throws(() => new (native().Tensor)('f32', [4], 'cuda'), (e: any) => e.code === 'NO_CUDA_DEVICE');
    });
  });

  describe('stories260K on device cuda', function () {
    let oracle: any;
    let model: Model;
    before(async function () {
      requireShared(this, MODEL, ORACLE);
      oracle = readSharedJson(ORACLE);
      model = await loadOnCuda(sharedPath(MODEL));
    });
    after(async () => model?.dispose());

    it('runs on CUDA', () => {
      assert.equal(model.device, 'cuda');
      assert.equal(model.threads, 0);
    });

    it("gives llama.cpp's logits at every prompt position (max abs <= 1e-3)", async () => {
      const ids: number[] = oracle.prompt_logits.ids;
      const got = await model.evaluate(ids, { allLogits: true });
      const d = maxAbsDiff(got, oracle.prompt_logits.logits, model.config.vocabSize);
      assert.ok(d <= 1e-3, `max abs diff ${d}`);
    });

    it("greedy 64 tokens equal llama.cpp's, text included", async () => {
      const r = await model.generate(oracle.greedy.prompt, { maxTokens: oracle.greedy.n });
      assert.deepEqual(r.ids, oracle.greedy.ids);
      assert.equal(r.text, oracle.greedy.text);
    });

    it('greedy through the logits (logprobs asked) equals greedy through the on-device argmax', async () => {
      const r = await model.generate(oracle.greedy.prompt, { maxTokens: 16, logprobs: 1 });
      assert.deepEqual(r.ids, oracle.greedy.ids.slice(0, 16));
      assert.equal(r.logprobs?.length, 16);
    });

    it("beam search (the prompt's cache shared through attention's prefix) gives the CPU's hypotheses", async () => {
      await using cpu = await loadModel(sharedPath(MODEL), { device: 'cpu', threads: 2 });
      const o = { numBeams: 4, maxTokens: 12, numReturnSequences: 4 };
      const want = await cpu.beamSearch(oracle.greedy.prompt, o);
      const got = await model.beamSearch(oracle.greedy.prompt, o);
      assert.deepEqual(got.sequences.map((h) => h.ids), want.sequences.map((h) => h.ids));
      got.sequences.forEach((h, i) => assert.ok(Math.abs(h.score - want.sequences[i].score) < 1e-4, `${h.score} vs ${want.sequences[i].score}`));
      const one = await model.beamSearch(oracle.greedy.prompt, { numBeams: 1, maxTokens: 16 });
      assert.deepEqual(one.sequences[0].ids, oracle.greedy.ids.slice(0, 16));
      await using half = await loadOnCuda(sharedPath(MODEL), { kvType: 'f16' });
      const f16 = await half.beamSearch(oracle.greedy.prompt, o);
      assert.deepEqual(f16.sequences[0].ids, want.sequences[0].ids, 'the best hypothesis with an f16 cache');
    });

    it("a chat's second turn reuses the cache on the device and replies as on the CPU", async function () {
      requireShared(this, 'tokenizers/hf/llama2-tinyllama/tokenizer_config.json');
      const template = readSharedJson('tokenizers/hf/llama2-tinyllama/tokenizer_config.json').chat_template;
      await using cpu = await loadModel(sharedPath(MODEL), { device: 'cpu', threads: 2 });
      const turns = async (m: Model) => {
        const chat = m.chat({ template, maxTokens: 10 });
        return [await chat.send('Once upon a time'), await chat.send('What happened next?')];
      };
      const [g1, g2] = await turns(model);
      const [c1, c2] = await turns(cpu);
      assert.deepEqual([g1.ids, g2.ids], [c1.ids, c2.ids]);
      assert.ok(g2.timings.cachedTokens >= g1.promptIds.length, `reused ${g2.timings.cachedTokens}`);
    });

    it('prompt batches of 3 tokens give the same tokens', async () => {
      await using m = await loadOnCuda(sharedPath(MODEL), { batchSize: 3 });
      const r = await m.generate(oracle.greedy.prompt, { maxTokens: 16 });
      assert.deepEqual(r.ids, oracle.greedy.ids.slice(0, 16));
    });

    it('an f16 KV cache stays within 1e-2 of the logits and keeps the greedy tokens', async () => {
      await using m = await loadOnCuda(sharedPath(MODEL), { kvType: 'f16' });
      const ids: number[] = oracle.prompt_logits.ids;
      const d = maxAbsDiff(await m.evaluate(ids, { allLogits: true }), oracle.prompt_logits.logits, m.config.vocabSize);
      // f16 keeps 11 significant bits: keys and values are off by up to 2^-11 relative
      assert.ok(d <= 1e-2, `max abs diff ${d}`);
      const r = await m.generate(oracle.greedy.prompt, { maxTokens: 32 });
      assert.deepEqual(r.ids, oracle.greedy.ids.slice(0, 32));
    });

    it('frees every device allocation at dispose', async () => {
      const device = hasGpu() ? 'cuda' : 'cuda-emulated';
      const before = native().deviceMemoryInUse(device);
      const m = await loadOnCuda(sharedPath(MODEL), { kvType: 'f16' });
      await m.generate(['Once upon', 'Lily'], { maxTokens: 4 });
      await m.generate('Once upon a time', { maxTokens: 4 });
      assert.ok(native().deviceMemoryInUse(device) > before + 500_000, 'the weights live on the device');
      await m.dispose();
      assert.equal(native().deviceMemoryInUse(device), before);
    });

    it('parallel sequences give the tokens of single runs', async () => {
      const prompts: string[] = oracle.greedy_other_prompts.slice(0, 3).map((p: any) => p.prompt);
      const batch = await model.generate(prompts, { maxTokens: 12 });
      for (let i = 0; i < prompts.length; i++) assert.deepEqual(batch[i].ids, oracle.greedy_other_prompts[i].ids.slice(0, 12), prompts[i]);
    });
  });

  describe('a synthetic Llama on device cuda against the CPU', function () {
    // head_dim 64 and a 40-token prompt: the tensor-core GEMMs (f16, and W8A8 for q8_0), the
    // FA2 prefill attention over an f16 cache, then GEMV and split-KV decode steps
    const shape = { vocabSize: 300, dim: 128, nLayers: 2, nHeads: 2, nKvHeads: 1, ffnDim: 256, contextLength: 256 };
    const prompt = Array.from({ length: 40 }, (_, i) => 1 + ((i * 37) % 290));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-cuda-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    // Both sides use the same KV cache type ('auto': f16 for f16 weights on either backend).
    // bounds: f16 weights — CUDA rounds activations to f16 for the tensor cores: ~2^-11
    // relative per rounding through two layers. q8_0 — both sides quantize activations to int8
    // alike (W8A8), so with an f32 cache only summation order differs; with an f16 cache a key
    // or value a few f32 ulp apart can round to neighbouring f16 values, which moves some
    // activations across an int8 step (1/254 of a block's largest value), and the next layer's
    // quantization amplifies it (measured 1.2e-2).
    const cases = [
      { dtype: 'f16', kvType: 'auto', bound: 5e-3 },
      { dtype: 'q8_0', kvType: 'f32', bound: 1e-3 },
      { dtype: 'q8_0', kvType: 'f16', bound: 3e-2 },
    ] as const;
    for (const { dtype, kvType, bound } of cases)
      it(`${dtype} weights, ${kvType} KV cache: logits within ${bound} of the CPU's (normalized), the same greedy tokens`, async () => {
        const file = path.join(dir, `${dtype}.gguf`);
        if (!existsSync(file)) await writeSyntheticLlama(file, shape, dtype, 7);
        await using cpu = await loadModel(file, { device: 'cpu', threads: 2, kvType });
        await using gpu = await loadOnCuda(file, { kvType });
        const want = await cpu.evaluate(prompt, { allLogits: true });
        const got = await gpu.evaluate(prompt, { allLogits: true });
        let num = 0, den = 0;
        for (let i = 0; i < want.length; i++) {
          num += (got[i] - want[i]) ** 2;
          den += want[i] ** 2;
        }
        const err = Math.sqrt(num / den);
        console.log(`      normalized error ${err.toExponential(2)} (bound ${bound})`);
        assert.ok(err < bound, `normalized error ${err}`);
        const a = await cpu.generate(prompt, { maxTokens: 8 });
        const b = await gpu.generate(prompt, { maxTokens: 8 });
        assert.deepEqual(b.ids, a.ids);
      });
  });

  describe('the memory plan on a CUDA device', function () {
    // 32 layers, head_dim 32, f16 cache: 4 KiB per position (32 × 2 × 32 × 2 bytes), 16 MiB at
    // 4096 positions, 4 MiB at 1024. The emulator is given a 16 MiB device (FUSELM_EMU_DEVICE_MEMORY).
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-cuda-plan-'));
    const file = path.join(dir, 'l32.gguf');
    const device = () => (hasGpu() ? 'cuda' : 'cuda-emulated');
    before(() => writeSyntheticLlama(file, { vocabSize: 300, dim: 64, nLayers: 32, nHeads: 2, nKvHeads: 1, ffnDim: 96, contextLength: 4096 }, 'f16', 3));
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("deviceMemoryInfo reports the device's free and total memory (the emulator's: FUSELM_EMU_DEVICE_MEMORY)", () => {
      const info = native().deviceMemoryInfo(device());
      assert.ok(info.total > 0 && info.free > 0 && info.free <= info.total, JSON.stringify(info));
      if (hasGpu()) return;
      assert.equal(info.total, 80 * 2 ** 30);
      process.env.FUSELM_EMU_DEVICE_MEMORY = String(16 * 2 ** 20);
      try {
        assert.deepEqual(native().deviceMemoryInfo('cuda-emulated'), { free: 16 * 2 ** 20, total: 16 * 2 ** 20 });
        // what the backend holds is not free
        const t = new (native().Tensor)('f32', [1024, 1024], 'cuda-emulated');
        assert.equal(native().deviceMemoryInfo('cuda-emulated').free, 12 * 2 ** 20);
        t.free();
      } finally {
        delete process.env.FUSELM_EMU_DEVICE_MEMORY;
      }
      assert.throws(() => native().deviceMemoryInfo('cpu' as never), { code: 'E_INVALID_ARG' });
    });

    it('a model whose KV cache does not fit the device is E_OUT_OF_MEMORY before anything is allocated there', async function () {
      const free = native().deviceMemoryInfo(device()).free;
      // on a GPU: a context whose cache alone is twice the free memory (it fits 2^24 positions up to 64 GiB free)
      const tooLong = hasGpu() ? Math.ceil((2 * free) / 4096) : 4096;
      if (tooLong > 2 ** 24) {
        console.log(`      skipped: ${(free / 2 ** 30).toFixed(0)} GiB free holds this model's cache at the largest contextSize (2^24)`);
        this.skip();
      }
      const before = native().deviceMemoryInUse(device());
      if (!hasGpu()) process.env.FUSELM_EMU_DEVICE_MEMORY = String(16 * 2 ** 20);
      try {
        await assert.rejects(loadOnCuda(file, { contextSize: tooLong }), (e: FuselmError) => {
          assert.equal(e.code, 'E_OUT_OF_MEMORY');
          assert.match(e.message, new RegExp(`KV cache \\(32 layers × 2 × ${tooLong} positions.*free memory of the ${device()} device.*contextSize \\d+ or less would fit`));
          return true;
        });
        assert.equal(native().deviceMemoryInUse(device()), before, 'nothing was allocated on the device');
        if (hasGpu()) return;
        // the context the message offers fits, and runs
        await using m = await loadOnCuda(file, { contextSize: 1024 });
        assert.equal((await m.generate([1, 2], { maxTokens: 2, ignoreEog: true })).ids.length, 2);
        // more parallel sequences than the device holds are refused the same way
        await assert.rejects(m.generate(Array.from({ length: 64 }, () => [1]), { maxTokens: 1 }), { code: 'E_OUT_OF_MEMORY', message: /free memory of the cuda-emulated device/ });
      } finally {
        delete process.env.FUSELM_EMU_DEVICE_MEMORY;
      }
    });
  });

  describe('Hugging Face decoders on device cuda against the CPU', function () {
    // GPT-2 (LayerNorm fused with the residual, GELU, biases, learned positions), Qwen2 (q/k/v
    // biases), Mistral (sliding window): f32 weights and cache, so only summation order differs
    for (const name of ['neural-api-tiny-gpt2', 'neural-api-tiny-qwen2', 'neural-api-tiny-mistral'])
      it(`${name}: the CPU's logits within 1e-5 (normalized)`, async function () {
        requireShared(this, `models/hf/${name}/config.json`);
        const dir = sharedPath('models', 'hf', name);
        await using cpu = await loadModel(dir, { device: 'cpu', threads: 2 });
        await using gpu = await loadOnCuda(dir);
        const ids = Array.from({ length: Math.min(20, cpu.contextSize) }, (_, i) => 1 + ((i * 13) % Math.min(cpu.config.vocabSize - 1, 97)));
        const want = await cpu.evaluate(ids, { allLogits: true });
        const got = await gpu.evaluate(ids, { allLogits: true });
        let num = 0, den = 0;
        for (let i = 0; i < want.length; i++) {
          num += (got[i] - want[i]) ** 2;
          den += want[i] ** 2;
        }
        assert.ok(Math.sqrt(num / den) < 1e-5, `normalized error ${Math.sqrt(num / den)}`);
      });
  });

  describe('device tensors and graphs (emulated device)', function () {
    it('copies tensors to the device and back', () => {
      const host = tensorFromF32('f32', [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6]));
      const dev = host.to('cuda-emulated');
      assert.equal(dev.device, 'cuda-emulated');
      assert.equal(host.device, 'cpu');
      assert.deepEqual(Array.from(readF32Rows(dev, 0, 2)), [1, 2, 3, 4, 5, 6]);
      dev.write(Float32Array.from([9, 8]), 4);
      assert.deepEqual(Array.from(readF32Rows(dev, 0, 1)), [1, 9, 8]);
      assert.deepEqual(Array.from(new Float32Array(dev.to('cpu').read())), [1, 9, 8, 4, 5, 6]);
      assert.throws(() => dev.read(0, 1000), /outside/);
    });

    it('keeps q8_0 as int8 and scale planes on the device; reads and writes see the stored blocks at any byte range', async () => {
      // 3 rows of 2 blocks (34 bytes each: f16 scale, 32 int8), scales near 0.01
      const rows = 3, cols = 64, bytes = new Uint8Array(rows * 2 * 34);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + 11) & 255;
      const setScales = (b: Uint8Array) => { for (let blk = 0; blk < rows * 2; blk++) b.set([0x1f + blk, 0x21], blk * 34); };
      setScales(bytes);
      const host = emptyTensor('q8_0', [rows, cols]);
      host.write(bytes);
      const dev = host.to('cuda-emulated');
      assert.deepEqual(new Uint8Array(dev.read()), bytes);
      assert.deepEqual(new Uint8Array(dev.read(33, 40)), bytes.subarray(33, 73));
      // writes that start and end inside blocks (and one inside a single block) keep the blocks' other bytes
      for (const [off, len] of [[30, 50], [1, 3], [101, 102]]) {
        const patch = Uint8Array.from({ length: len }, (_, i) => (200 - 3 * i + off) & 255);
        dev.write(patch, off);
        bytes.set(patch, off);
      }
      assert.deepEqual(new Uint8Array(dev.read()), bytes);
      setScales(bytes);
      dev.write(bytes.subarray(0, 34 * 3), 0); // (the scales back near 0.01 for the kernel below)
      dev.write(bytes.subarray(34 * 3), 34 * 3);
      assert.deepEqual(new Uint8Array(dev.read()), bytes);
      assert.deepEqual(new Uint8Array(dev.to('cpu').read()), bytes);
      assert.deepEqual(new Uint8Array(dev.to('cuda-emulated').read()), bytes);
      // the device kernels read the planes: an embedding gather equals the CPU's from the stored bytes
      const ids = tensorFromI32([3], Int32Array.from([2, 0, 1]));
      const gathered = async (be: CpuBackend | CudaBackend, table: typeof dev) => {
        const out = be instanceof CudaBackend ? be.empty('f32', [3, cols]) : emptyTensor('f32', [3, cols]);
        const g = be.graph([ops.embedding(out, table, ids)], 3);
        await g.run(3, 0);
        g.dispose();
        return readF32Rows(out, 0, 3);
      };
      host.write(bytes);
      const cpu = new CpuBackend({ threads: 1 });
      const want = await gathered(cpu, host);
      cpu.dispose();
      assert.deepEqual(Array.from(await gathered(new CudaBackend({ emulated: true }), dev)), Array.from(want));
    });

    it('copies a 1-D host input that is read whole (lora seg [J + 1]) whole, whatever the run\'s rows', async () => {
      // seg [0, 2, 2, 5] has more values than the run's 1 row: copied by rows, it would lose adapters 1 and 2
      const K = 8, N = 4, R = 5, J = 3;
      const seeded = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + k) * 0.5);
      const run = async (be: CpuBackend | CudaBackend) => {
        const dev = (t: ReturnType<typeof emptyTensor>) => (be instanceof CudaBackend ? be.upload(t) : t);
        const y = dev(tensorFromF32('f32', [1, N], seeded(N, 1)));
        const node = ops.lora(y, dev(tensorFromF32('f32', [1, K], seeded(K, 2))), {
          a: dev(tensorFromF32('f32', [R, K], seeded(R * K, 3))), bt: dev(tensorFromF32('f32', [R, N], seeded(R * N, 4))),
          seg: tensorFromI32([J + 1], Int32Array.from([0, 2, 2, 5])), scales: tensorFromF32('f32', [1, J], Float32Array.from([0.5, 1, 2])),
        });
        const g = be.graph([node], 1);
        await g.run(1, 0);
        g.dispose();
        return Array.from(readF32Rows(y, 0, 1));
      };
      const cpu = new CpuBackend({ threads: 1 });
      const want = await run(cpu);
      cpu.dispose();
      const got = await run(new CudaBackend({ emulated: true }));
      for (let i = 0; i < N; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-6 * (1 + Math.abs(want[i])), `y[${i}]: ${got[i]} want ${want[i]}`);
    });

    it('decode: add + rms_norm + q/k/v matmuls (the norm writing its y as int8 for them) give the CPU\'s outputs', async () => {
      // add_norm quantizes y in the launch that writes it when a block-format matmul on y follows
      // (T <= 8); a wrong int8 copy would move every output by its own size. The CPU's rms_norm sums
      // in another order (llama.cpp's), so one ulp of y may flip an int8 rounding: the matmuls'
      // reference runs on the CPU over the y the device wrote, and y is checked on its own.
      const D = 64, rows = 4, Ns = [48, 16, 16];
      const seeded = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + k) * 2);
      const q8 = (N: number, k: number) => {
        const b = new Uint8Array(N * (D / 32) * 34);
        for (let i = 0; i < b.length; i++) b[i] = (i * 29 + k * 7) & 255;
        for (let blk = 0; blk < N * (D / 32); blk++) b.set([0x10 + (blk & 7), 0x22], blk * 34);
        const t = emptyTensor('q8_0', [N, D]);
        t.write(b);
        return t;
      };
      const weights = Ns.map((N, j) => q8(N, j));
      const run = async (be: CpuBackend | CudaBackend, n: number, yIn?: Float32Array) => {
        const dev = (t: ReturnType<typeof emptyTensor>) => (be instanceof CudaBackend ? be.upload(t) : t);
        const y = dev(yIn ? tensorFromF32('f32', [rows, D], yIn) : emptyTensor('f32', [rows, D]));
        const outs = Ns.map((N) => dev(emptyTensor('f32', [rows, N])));
        const matmuls = outs.map((o, j) => ops.matmul(o, y, dev(weights[j])));
        const norm = () => {
          const x = dev(tensorFromF32('f32', [rows, D], seeded(rows * D, 1)));
          return [
            ops.add(x, x, dev(tensorFromF32('f32', [rows, D], seeded(rows * D, 2)))),
            ops.rmsNorm(y, x, dev(tensorFromF32('f32', [D], seeded(D, 3))), 1e-5),
          ];
        };
        const g = be.graph(yIn ? matmuls : [...norm(), ...matmuls], rows);
        await g.run(n, 0);
        g.dispose();
        const yRows = new Float32Array(rows * D);
        yRows.set(readF32Rows(y, 0, n));
        return { y: yRows, outs: outs.map((o, j) => Array.from(readF32Rows(o, 0, n)).map((v) => ({ v, j }))).flat() };
      };
      for (const n of [1, 3]) {
        const cpu = new CpuBackend({ threads: 1 });
        const cpuRun = await run(cpu, n);
        const got = await run(new CudaBackend({ emulated: true }), n);
        const want = (await run(cpu, n, got.y)).outs;
        cpu.dispose();
        const yBig = Math.max(...cpuRun.y.map(Math.abs));
        for (let i = 0; i < n * D; i++) assert.ok(Math.abs(got.y[i] - cpuRun.y[i]) <= 1e-6 * yBig, `n=${n} y[${i}]: ${got.y[i]} want ${cpuRun.y[i]}`);
        const big = Math.max(...want.map((w) => Math.abs(w.v)));
        for (let i = 0; i < want.length; i++)
          assert.ok(Math.abs(got.outs[i].v - want[i].v) <= 1e-5 * big, `n=${n} matmul ${want[i].j}, value ${i}: ${got.outs[i].v} want ${want[i].v}`);
      }
    });

    it('runs a graph: host ids in, host logits out', async () => {
      const be = new CudaBackend({ emulated: true });
      const table = be.upload(tensorFromF32('f32', [4, 2], Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7])));
      const w = be.upload(tensorFromF32('f32', [3, 2], Float32Array.from([1, 0, 0, 1, 1, 1])));
      const x = be.empty('f32', [2, 2]);
      const ids = emptyTensor('i32', [2]);
      const logits = emptyTensor('f32', [2, 3]);
      const g = be.graph([ops.embedding(x, table, ids), ops.matmul(logits, x, w)], 2);
      ids.write(Int32Array.from([3, 1]));
      await g.run(2, 0);
      assert.deepEqual(Array.from(readF32Rows(logits, 0, 2)), [6, 7, 13, 2, 3, 5]);
      ids.write(Int32Array.from([0]));
      await g.run(1, 0);
      assert.deepEqual(Array.from(readF32Rows(logits, 0, 1)), [0, 1, 1]);
      g.dispose();
    });

    it('refuses tensors in the wrong memory, naming the op and role', () => {
      const be = new CudaBackend({ emulated: true });
      const cpu = new CpuBackend({ threads: 1 });
      const hostX = emptyTensor('f32', [2, 4]);
      const devX = be.empty('f32', [2, 4]);
      const w = tensorFromF32('f32', [4], new Float32Array(4).fill(1));
      assert.throws(() => be.graph([ops.rmsNorm(devX, hostX, be.upload(w), 1e-5)], 2), /op #0 \(rms_norm\): x f32\[2, 4\] is in host memory/);
      assert.throws(() => cpu.graph([ops.rmsNorm(hostX, devX, w, 1e-5)], 2), /op #0 \(rms_norm\): x is in cuda-emulated memory/);
      cpu.dispose();
    });

    it('reports a token id outside the table found on the device as E_INVALID_ARG, and runs on after it', async () => {
      const be = new CudaBackend({ emulated: true });
      const table = be.upload(tensorFromF32('f32', [4, 2], Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7])));
      const x = be.empty('f32', [2, 2]);
      const devIds = be.upload(tensorFromI32([2], Int32Array.from([1, 9])));
      const g = be.graph([ops.embedding(x, table, devIds)], 2);
      await assert.rejects(g.run(2, 0), { code: 'E_INVALID_ARG', message: /token id 9 at row 1 is outside the embedding table/ });
      await g.run(1, 0); // the error word is cleared each step: the next run is fine
      assert.deepEqual(Array.from(readF32Rows(x, 0, 1)), [2, 3]);
      g.dispose();
    });
  });
});
