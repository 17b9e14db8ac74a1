/**
 * Converting a Hugging Face folder's weights at load, `loadModel(folder, { dtype })`, by the rule
 * GGUF loading follows. Proves that
 *  - 'q8_0' on neural-api-tiny-llama-q8src (32-wide rows: one q8_0 block each) gives the logits
 *    of neural-api-tiny_llama_q8.gguf, the same weights quantized by the reference GGUF writer
 *    (the gguf Python package), within 1e-6 normalized error: the same quantized values;
 *  - against the F32 logits, f16 stays within 0.5 % normalized error (measured 0.13 %) and q8_0
 *    within 8 % (measured 4.0 %), f16 at least 10x closer. Why these sizes: f16 rounds each
 *    weight by at most 2^-11 of itself; q8_0 by up to 1/254 of its block's largest value, and
 *    its matmul also rounds the activations to int8 blocks, so its error per product is some
 *    10-30x f16's; two layers of random (untrained) weights and the softmax amplify both alike;
 *  - GPT-2's Conv1D weights are transposed at load, then converted: q8_0 on neural-api-tiny-gpt2
 *    (8-wide rows fall back to f16, the 32-wide ffn_down becomes q8_0) gives exactly the logits
 *    of the same weights converted from a gpt2 GGUF, and differs from f16;
 *  - a dtype outside 'auto' | 'q8_0' | 'f16' is an E_INVALID_ARG.
 * Skipped, saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FuselmError } from '../../lib/errors.js';
import { loadModel } from '../../lib/model/model.js';
import type { WeightDtype } from '../../lib/model/weights.js';
import { requireShared, sharedPath } from '../helpers/shared.js';
import { writeGpt2Gguf } from './gguf-from-hf.js';

const log = (s: string) => console.log(`      ${s}`);
const Q8SRC = 'models/hf/neural-api-tiny-llama-q8src';
const Q8GGUF = 'models/gguf/neural-api-tiny_llama_q8.gguf';
const SEQUENCES = [[1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4], [7, 6, 5, 4, 3, 2, 1, 0], [3, 3, 3, 1, 5, 0, 2, 6, 4, 7]];

/** Logits at every position of every sequence. */
async function logits(p: string, dtype: WeightDtype, seqs = SEQUENCES): Promise<Float32Array> {
  await using m = await loadModel(p, { dtype });
  const parts: Float32Array[] = [];
  for (const s of seqs) parts.push(await m.evaluate(s, { allLogits: true }));
  return Float32Array.from(parts.flatMap((x) => [...x]));
}

/** ‖a − ref‖ / ‖ref‖ */
function normErr(a: Float32Array, ref: Float32Array): number {
  let d = 0, r = 0;
  for (let i = 0; i < ref.length; i++) {
    d += (a[i] - ref[i]) ** 2;
    r += ref[i] ** 2;
  }
  return Math.sqrt(d / r);
}

describe('Hugging Face folders: dtype conversion at load', () => {
  it("q8_0 equals the reference writer's Q8_0 GGUF of the same weights; f16 and q8_0 stay close to f32", async function () {
    requireShared(this, `${Q8SRC}/config.json`, Q8GGUF);
    const f32 = await logits(sharedPath(Q8SRC), 'auto');
    const f16 = await logits(sharedPath(Q8SRC), 'f16');
    const q8 = await logits(sharedPath(Q8SRC), 'q8_0');
    const q8File = await logits(sharedPath(Q8GGUF), 'auto');
    const [eF16, eQ8, eFile] = [normErr(f16, f32), normErr(q8, f32), normErr(q8, q8File)];
    log(`vs f32: f16 ${(eF16 * 100).toFixed(3)} %, q8_0 ${(eQ8 * 100).toFixed(3)} %; q8_0 vs the Q8_0 GGUF ${eFile.toExponential(2)}`);
    assert.ok(eFile < 1e-6, `q8_0 vs the Q8_0 GGUF: ${eFile}`);
    assert.ok(eF16 > 0 && eF16 < 0.005, `f16: ${eF16}`);
    assert.ok(eQ8 < 0.08, `q8_0: ${eQ8}`);
    assert.ok(eF16 * 10 < eQ8, `f16 ${eF16} is not 10x closer than q8_0 ${eQ8}`);
  });

  it("neural-api-tiny-gpt2: q8_0 gives exactly the GGUF path's q8_0 (f16 below a block's width)", async function () {
    requireShared(this, 'models/hf/neural-api-tiny-gpt2/config.json');
    const dir = sharedPath('models/hf/neural-api-tiny-gpt2');
    const tmp = mkdtempSync(path.join(tmpdir(), 'fuselm-hf-dtype-'));
    try {
      const file = path.join(tmp, 'gpt2.gguf');
      await writeGpt2Gguf(dir, file);
      const seqs = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]];
      const q8 = await logits(dir, 'q8_0', seqs);
      assert.deepEqual(q8, await logits(file, 'q8_0', seqs));
      assert.notDeepEqual(q8, await logits(dir, 'f16', seqs));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('an unknown dtype is an E_INVALID_ARG', async function () {
    requireShared(this, `${Q8SRC}/config.json`);
    await assert.rejects(
      loadModel(sharedPath(Q8SRC), { dtype: 'q4_0' as WeightDtype }),
      (e: unknown) => e instanceof FuselmError && e.code === 'E_INVALID_ARG' && /dtype must be 'auto', 'q8_0' or 'f16', got 'q4_0'/.test(e.message),
    );
  });
});
