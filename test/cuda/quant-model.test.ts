/**
 * GGUF block formats run as stored on the CUDA backend (a GPU, else its emulator): random-weight
 * llama GGUFs whose every matrix (token_embd and output included) is in one format, written by
 * the plain test quantizer (lib/formats/quant-fit.ts), against the same file on the CPU with
 * every matrix dequantized to f16 (the oracle: no activation rounding; f16 holds these weights
 * to 2^-11):
 *  - CUDA keeps the matrices in the file's format ('auto', CUDA_BLOCK_DTYPES);
 *  - the logits of every position, evaluated in one batch (the prefill GEMM, f16 tiles:
 *    cuda/gemm_quant.cu) and in batches of 4 (the dp4a GEMV, int8 activations:
 *    cuda/gemv_quant.cu), are within TOL of the largest |logit|: each matmul's activation rounding moves its outputs by ~4e-3
 *    of their size (arch-diff's TOL.q8_0 for the same W8A8 arithmetic). A wrong block, scale or
 *    bit moves the logits by their own size;
 *  - the greedy ids are the CPU's, or part only at a near-tie (a gap within TOL).
 * Formats the CPU can dequantize (lib/formats/quants.ts); q2_k, q3_k, iq4_nl and iq4_xs are
 * held to their definitions by the kernel tests (cuda/emu/tests/*_quant_test.cu).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readGguf } from '../../lib/formats/gguf.js';
import { loadModel, type Model } from '../../lib/index.js';
import { configFromGguf } from '../../lib/model/config.js';
import { disposeLlamaWeights, loadLlamaWeights } from '../../lib/model/llama.js';
import { CUDA_BLOCK_DTYPES } from '../../lib/model/weights.js';
import { Rng } from '../../lib/sampling/rng.js';
import { type SyntheticModelSpec, type WeightType, writeSyntheticModel } from '../../lib/tools/synthetic.js';
import { loadOnCuda } from '../helpers/cuda.js';

const CONTEXT = 64;
const PROMPT = 12;
const GENERATE = 6;
const TOL = 5e-2;
const FORMATS: WeightType[] = ['q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k', 'q5_k', 'q6_k'];

/** 2 layers, dim 256 and MLP 512: every row whole 256-value superblocks. */
const spec = (dtype: WeightType, seed: number): SyntheticModelSpec => ({
  arch: 'llama', vocabSize: 301, dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 512, contextLength: 256, dtype, seed,
});

/** max |a - b| / max |b| per row of V. */
function rowDiffs(a: Float32Array, b: Float32Array, V: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < b.length / V; r++) {
    let d = 0, scale = 0;
    for (let i = r * V; i < (r + 1) * V; i++) {
      d = Math.max(d, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(b[i]));
    }
    out.push(d / scale);
  }
  return out;
}

const greedy = (m: Model, prompt: number[]) =>
  m.generate(prompt, { maxTokens: GENERATE, temperature: 0, ignoreEog: true }).then((r) => r.ids);

const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-cuda-quant-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('GGUF block formats as stored on the CUDA backend', function () {
  this.timeout(300_000);
  FORMATS.forEach((dtype, i) =>
    it(`${dtype}: logits within ${TOL} of the CPU's on f16 weights, its greedy ids`, async () => {
      const s = spec(dtype, 31 + i);
      const file = path.join(dir, `${dtype}.gguf`);
      await writeSyntheticModel(file, s);
      const f = await readGguf(file);
      const w = await loadLlamaWeights(f, configFromGguf(f), { contextSize: CONTEXT, dtype: 'auto', blocks: CUDA_BLOCK_DTYPES });
      try {
        assert.equal(w.layers[0].wq.dtype, dtype);
        assert.equal(w.layers[1].wDown?.dtype, dtype);
      } finally {
        disposeLlamaWeights(w);
      }

      const rng = new Rng(s.vocabSize * 5 + i);
      const prompt = Array.from({ length: PROMPT }, () => 3 + Math.floor(rng.next() * (s.vocabSize - 3)));
      const V = s.vocabSize;
      await using cpu = await loadModel(file, { kvType: 'f32', contextSize: CONTEXT, device: 'cpu', dtype: 'f16' });
      await using gpu = await loadOnCuda(file, { kvType: 'f32', contextSize: CONTEXT });
      // batches of 4 tokens: every matmul takes the GEMV, with 4 tokens and with 1
      await using gpu4 = await loadOnCuda(file, { kvType: 'f32', contextSize: CONTEXT, batchSize: 4 });
      const want = await greedy(cpu, prompt), got = await greedy(gpu, prompt);
      // every position's logits on the CPU's token path
      const tokens = [...prompt, ...want.slice(0, -1)];
      const ref = await cpu.evaluate(tokens, { allLogits: true });
      const gemm = Math.max(...rowDiffs(await gpu.evaluate(tokens, { allLogits: true }), ref, V));
      const gemv = Math.max(...rowDiffs(await gpu4.evaluate(tokens, { allLogits: true }), ref, V));
      console.log(`      ${dtype}: logits within ${gemm.toExponential(2)} (prefill GEMM), ${gemv.toExponential(2)} (GEMV) of the largest`);
      assert.ok(gemm <= TOL, `${dtype}: the GEMM's logits differ by ${gemm} of the largest`);
      assert.ok(gemv <= TOL, `${dtype}: the GEMV's logits differ by ${gemv} of the largest`);
      const step = got.findIndex((id, k) => id !== want[k]);
      if (step >= 0) {
        const row = ref.slice((PROMPT - 1 + step) * V, (PROMPT + step) * V);
        const gap = Math.abs(row[got[step]] - row[want[step]]) / Math.max(...Array.from(row, Math.abs));
        console.log(`      greedy ids part at step ${step}, a near-tie of ${gap.toExponential(2)}`);
        assert.ok(gap <= TOL, `greedy ids part at step ${step} with a logit gap of ${gap}: not a near-tie`);
      }
    }),
  );
});
