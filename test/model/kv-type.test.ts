/**
 * The KV cache's type on the CPU (loadModel's kvType), end to end on stories260K against
 * llama.cpp's outputs (../shared/models/stories260K.oracle.json, made with an F32 cache; its
 * kv_f16_comparison: llama.cpp's own F16-cache run moved the logits by 9.5e-3, same greedy ids).
 * Proves that
 *  - kvType 'auto' keeps an f32 cache on the CPU; f16 and bf16 caches take half its bytes;
 *  - the half caches really hold 16-bit values: the logits differ from the f32 cache's;
 *  - f16: prompt logits within 1.5e-2 of llama.cpp's with the fast kernels and the reference
 *    alike, the 64 greedy ids equal llama.cpp's, and so do beam search's with one beam (the
 *    prompt's keys shared as an f16 prefix). (Fast and reference logits are further apart than
 *    with an f32 cache: keys a few f32 ulp apart can round to neighbouring halves.)
 *  - bf16 (8 significant bits to f16's 11, so about 8x the error): within 1e-1, and the first
 *    32 greedy ids equal llama.cpp's;
 *  - an unknown kvType or kvDtype is refused.
 */
import assert from 'node:assert/strict';
import { CpuBackend } from '../../lib/backend.js';
import { loadModel } from '../../lib/index.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

const MODEL = 'models/stories260K.gguf';
const ORACLE = 'models/stories260K.oracle.json';

describe('KV cache type on the CPU: stories260K vs llama.cpp', function () {
  let oracle: any;
  let f32Logits: Float32Array;
  let f32Bytes: number;

  before(async function () {
    requireShared(this, MODEL, ORACLE);
    oracle = readSharedJson(ORACLE);
    await using m = await loadModel(sharedPath(MODEL), { device: 'cpu', threads: 2 });
    assert.equal(m.kvType, 'f32', "kvType 'auto' on the CPU");
    f32Logits = await m.evaluate(oracle.prompt_logits.ids, { allLogits: true });
    f32Bytes = m.kvCacheBytes;
    const c = m.config;
    // K and V of every layer for the positions allocated so far (the cache grows with use)
    const perPosition = 2 * c.nLayers * c.nKvHeads * c.headDim * 4;
    assert.ok(f32Bytes > 0 && f32Bytes % perPosition === 0 && f32Bytes <= perPosition * m.contextSize, `${f32Bytes} bytes`);
  });

  /** max |got - llama.cpp's| over the prompt's logits */
  const vsOracle = (got: Float32Array, V: number) => {
    const want: number[][] = oracle.prompt_logits.logits;
    let d = 0;
    for (let i = 0; i < want.length; i++) for (let j = 0; j < V; j++) d = Math.max(d, Math.abs(got[i * V + j] - want[i][j]));
    return d;
  };

  for (const [kvType, bound, greedy] of [['f16', 1.5e-2, 64], ['bf16', 1e-1, 32]] as const)
    it(`${kvType}: half the bytes, logits not the f32 cache's but within ${bound} of llama.cpp's, ${greedy} greedy ids equal`, async () => {
      const ids: number[] = oracle.prompt_logits.ids;
      await using m = await loadModel(sharedPath(MODEL), { device: 'cpu', threads: 2, kvType });
      assert.equal(m.kvType, kvType);
      assert.equal(m.kvCacheBytes * 2, f32Bytes);
      const got = await m.evaluate(ids, { allLogits: true });
      assert.ok(got.some((x, i) => x !== f32Logits[i]), 'the logits equal the f32 cache\'s: the cache is not half');
      const d = vsOracle(got, m.config.vocabSize);
      assert.ok(d <= bound, `max abs diff ${d} from llama.cpp`);
      await using ref = await loadModel(sharedPath(MODEL), { device: 'cpu', threads: 1, kvType, impl: 'reference' });
      const dRef = vsOracle(await ref.evaluate(ids, { allLogits: true }), m.config.vocabSize);
      assert.ok(dRef <= bound, `reference kernels: max abs diff ${dRef} from llama.cpp`);
      const r = await m.generate(oracle.greedy.prompt, { maxTokens: greedy });
      assert.deepEqual(r.ids, oracle.greedy.ids.slice(0, greedy));
    });

  it('f16: beam search with one beam (an f16 prefix) gives llama.cpp\'s greedy ids', async () => {
    await using m = await loadModel(sharedPath(MODEL), { device: 'cpu', threads: 2, kvType: 'f16' });
    const r = await m.beamSearch(oracle.greedy.prompt, { numBeams: 1, maxTokens: 64 });
    assert.deepEqual(r.sequences[0].ids, oracle.greedy.ids);
  });

  it('refuses an unknown kvType or kvDtype', async () => {
    await assert.rejects(loadModel(sharedPath(MODEL), { device: 'cpu', kvType: 'q8_0' as 'f16' }), { code: 'E_INVALID_ARG' });
    assert.throws(() => new CpuBackend({ kvDtype: 'f8' as 'f16' }), { code: 'E_INVALID_ARG', message: /kvDtype must be 'f32', 'f16' or 'bf16'/ });
  });
});
