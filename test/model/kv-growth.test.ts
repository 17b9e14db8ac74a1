/**
 * The KV cache grows with the positions actually used: a model starts with a small cache
 * whatever its contextSize, doubles it when a step needs more (the rows so far copied into the
 * new one, the graphs rebuilt), and stops at contextSize, where the next step is
 * E_CONTEXT_FULL. A prompt evaluated in batches that cross the growth gives the logits of the
 * same prompt evaluated in one batch into a cache made at its size, on the CPU and on CUDA
 * (emulated without a GPU). Needs ../shared's stories260K.
 */
import assert from 'node:assert/strict';
import { loadModel, type LoadModelOptions, type Model } from '../../lib/index.js';
import { withCudaEmulation } from '../helpers/cuda.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

const MODEL = 'models/stories260K.gguf';

function load(opts: LoadModelOptions): Promise<Model> {
  return withCudaEmulation(() => loadModel(sharedPath(MODEL), { threads: 2, kvType: 'f32', ...opts }));
}

describe('KV cache growth', () => {
  for (const device of ['cpu', 'cuda'] as const)
    it(`${device}: starts small, grows by doubling with the rows kept, stops at contextSize`, async function () {
      requireShared(this, MODEL);
      const ids = Array.from({ length: 300 }, (_, i) => 1 + ((i * 37) % 500));
      await using grown = await load({ device, batchSize: 100 });
      const c = grown.config, perPosition = 2 * c.nLayers * c.nKvHeads * c.headDim * 4;
      assert.equal(grown.contextSize, 2048);
      const first = grown.kvCacheBytes;
      assert.ok(first < perPosition * grown.contextSize, 'the cache is not allocated for the whole context up front');
      const a = await grown.evaluate(ids, { allLogits: true }); // batches of 100: the cache grows between them
      assert.ok(grown.kvCacheBytes > first && grown.kvCacheBytes < perPosition * grown.contextSize, `${grown.kvCacheBytes} bytes`);
      assert.equal(grown.kvCacheBytes % perPosition, 0);
      await using once = await load({ device, batchSize: 300 });
      const b = await once.evaluate(ids, { allLogits: true }); // one batch: the cache made at its size at once
      let d = 0;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
      assert.ok(d < 1e-4, `logits differ by ${d}`);

      await using small = await load({ device, contextSize: 300, batchSize: 100 });
      await small.evaluate(ids);
      assert.equal(small.kvCacheBytes, perPosition * 300, 'capped at contextSize');
      small.clearCache();
      await assert.rejects(small.evaluate([...ids, 1]), { code: 'E_CONTEXT_FULL' });
    });
});
