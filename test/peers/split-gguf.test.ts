/**
 * Split GGUFs against llama.cpp (node-llama-cpp's prebuilt CPU binary): stories260K split in
 * three parts the way gguf-split writes them (test/helpers/split-gguf.ts) loads in llama.cpp and
 * in fuselm (each part mapped) and decodes the same greedy ids in both, so the layout fuselm
 * reads is llama.cpp's. Skips, saying why, unless the peer is installed (`npm run peer:llama-cpp`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '../../lib/index.js';
import { llamaCppGreedy, openLlamaCpp, requireLlamaCpp } from '../helpers/llama-cpp.js';
import { requireShared, sharedPath } from '../helpers/shared.js';
import { writeSplitGguf } from '../helpers/split-gguf.js';

describe('llama.cpp peer: split GGUFs', function () {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-split-'));
  let llama: any;

  before(async function () {
    requireShared(this, 'models/stories260K.gguf');
    llama = await requireLlamaCpp(this);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('three parts load in both and decode the same greedy ids', async () => {
    const [first] = await writeSplitGguf(sharedPath('models/stories260K.gguf'), path.join(dir, 'stories'), 3);
    await using ours = await loadModel(first);
    const mine = await ours.generate('Once upon a time', { maxTokens: 32 });
    const { seq, dispose } = await openLlamaCpp(llama, first, 256);
    try {
      assert.deepEqual(await llamaCppGreedy(seq, mine.promptIds, mine.ids.length, { yieldEogToken: false }), mine.ids);
    } finally {
      await dispose();
    }
  });
});
