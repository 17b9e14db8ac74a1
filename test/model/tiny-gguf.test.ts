/**
 * The tiny random-weight GGUFs in ../shared/models/gguf (f32, f16, q8_0) load and generate;
 * the f32 one's logits equal Hugging Face's float64 reference for the same weights (GGUF's Q/K
 * rows are permuted for llama-layout RoPE, which our llama-layout rope undoes by construction),
 * and the f16 one's come close.
 */
import assert from 'node:assert/strict';
import { loadModel } from '../../lib/index.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

const REF = 'models/hf/neural-api-tiny-llama/reference_logits.json';

describe('tiny GGUF models', function () {
  for (const [file, tol] of [
    ['neural-api-tiny_llama_f32.gguf', 1e-5],
    // f16 weights differ from the reference's by up to 4.4e-4 (SOURCES.md): relative rounding of
    // 2^-11 carried through two layers onto logits of magnitude ~3 gives errors of ~5e-3
    ['neural-api-tiny_llama_f16.gguf', 1e-2],
  ] as const) {
    it(`${file}: logits match the HF reference (max abs <= ${tol})`, async function () {
      requireShared(this, `models/gguf/${file}`, REF);
      const ref = readSharedJson<{ sequences: number[][]; logits: number[][][] }>(REF);
      await using m = await loadModel(sharedPath(`models/gguf/${file}`), { contextSize: 16 });
      const V = m.config.vocabSize;
      let maxAbs = 0;
      for (let s = 0; s < ref.sequences.length; s++) {
        const got = await m.evaluate(ref.sequences[s], { allLogits: true });
        for (let i = 0; i < ref.sequences[s].length; i++)
          for (let j = 0; j < V; j++) maxAbs = Math.max(maxAbs, Math.abs(got[i * V + j] - ref.logits[s][i][j]));
      }
      assert.ok(maxAbs <= tol, `max abs diff ${maxAbs}`);
    });
  }

  for (const file of ['neural-api-tiny_llama_f32.gguf', 'neural-api-tiny_llama_f16.gguf', 'neural-api-tiny_llama_q8.gguf']) {
    it(`${file}: loads and generates deterministically`, async function () {
      requireShared(this, `models/gguf/${file}`);
      await using m = await loadModel(sharedPath(`models/gguf/${file}`));
      const a = await m.generate([1, 2, 3], { maxTokens: 5, ignoreEog: true });
      const b = await m.generate([1, 2, 3], { maxTokens: 5, ignoreEog: true });
      assert.equal(a.ids.length, Math.min(5, m.contextSize - 3 + 1));
      assert.deepEqual(a.ids, b.ids);
      for (const id of a.ids) assert.ok(id >= 0 && id < m.config.vocabSize);
    });
  }
});
