/**
 * Against llama.cpp itself (node-llama-cpp's prebuilt CPU binary): a q8_0 GGUF written by
 * `fuselm quantize` from stories260K loads in llama.cpp and decodes the same greedy ids there as
 * in fuselm; stories260K's f32 perplexity over text the model sampled with a fixed seed equals
 * llama.cpp's (its logits, scored the perplexity tool's way) to 1e-6 (measured 2e-9). Skips,
 * saying why, unless the peer is installed (`npm run peer:llama-cpp`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '../../lib/index.js';
import { perplexity } from '../../lib/tools/perplexity.js';
import { quantizeGguf } from '../../lib/tools/quantize.js';
import { llamaCppGreedy, llamaCppPerplexity, openLlamaCpp, requireLlamaCpp } from '../helpers/llama-cpp.js';
import { sampledStories } from '../helpers/stories.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

describe('llama.cpp peer', function () {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-peer-'));
  let llama: any;

  before(async function () {
    requireShared(this, 'models/stories260K.gguf');
    llama = await requireLlamaCpp(this);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads our q8_0 GGUF and decodes the same greedy ids', async () => {
    const q8 = path.join(dir, 'q8.gguf');
    await quantizeGguf(sharedPath('models/stories260K.gguf'), q8, 'q8_0');
    await using ours = await loadModel(q8);
    const mine = await ours.generate('Once upon a time', { maxTokens: 32 });
    const { seq, dispose } = await openLlamaCpp(llama, q8, 256);
    try {
      assert.deepEqual(await llamaCppGreedy(seq, mine.promptIds, mine.ids.length, { yieldEogToken: false }), mine.ids);
    } finally {
      await dispose();
    }
  });

  it("stories260K's f32 perplexity equals llama.cpp's to 1e-6", async () => {
    const file = sharedPath('models/stories260K.gguf');
    await using ours = await loadModel(file, { contextSize: 128, threads: 1 });
    const text = await sampledStories(ours, 6000);
    const mine = await perplexity(ours, text, { ctx: 128 });
    // llama.cpp's logits, chunked and scored as its perplexity tool does
    const tokens = ours.tokenizer.encode(text, { addSpecial: true });
    const { seq, dispose } = await openLlamaCpp(llama, file, 128);
    try {
      const theirs = (await llamaCppPerplexity(seq, tokens, 128, ours.tokenizer.bos, ours.config.vocabSize)).perplexity;
      const rel = Math.abs(mine.perplexity - theirs) / theirs;
      console.log(`      fuselm ${mine.perplexity.toFixed(5)}, llama.cpp ${theirs.toFixed(5)} (${(rel * 100).toFixed(4)}%), ${mine.chunks} chunks`);
      assert.ok(rel < 1e-6, `fuselm ${mine.perplexity}, llama.cpp ${theirs}`);
    } finally {
      await dispose();
    }
  });
});
