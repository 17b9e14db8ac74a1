/**
 * Against llama.cpp itself (node-llama-cpp's prebuilt CPU binary): a q8_0 GGUF written by
 * `fuselm quantize` from stories260K loads in llama.cpp and decodes the same greedy ids there as
 * in fuselm; stories260K's f32 perplexity over text the model sampled with a fixed seed equals
 * llama.cpp's (its logits, scored the perplexity tool's way) within 0.5%. Skips, saying why,
 * unless the peer is installed (`npm run peer:llama-cpp`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '../../lib/index.js';
import { perplexity } from '../../lib/tools/perplexity.js';
import { quantizeGguf } from '../../lib/tools/quantize.js';
import { openLlamaCpp, requireLlamaCpp } from '../helpers/llama-cpp.js';
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
      const theirs: number[] = [];
      for await (const id of seq.evaluate(mine.promptIds, { temperature: 0 })) {
        theirs.push(id);
        if (theirs.length === mine.ids.length) break;
      }
      assert.deepEqual(theirs, mine.ids);
    } finally {
      await dispose();
    }
  });

  it("stories260K's f32 perplexity equals llama.cpp's within 0.5%", async () => {
    const file = sharedPath('models/stories260K.gguf');
    await using ours = await loadModel(file, { contextSize: 128, threads: 1 });
    let text = '';
    for (let seed = 1; text.length < 6000; seed++) text += (await ours.generate('Once upon a time', { maxTokens: 300, temperature: 0.8, seed })).text + '\n';
    const mine = await perplexity(ours, text, { ctx: 128 });
    // llama.cpp's logits, chunked and scored as its perplexity tool does
    const tokens = ours.tokenizer.encode(text, { addSpecial: true });
    const { seq, dispose } = await openLlamaCpp(llama, file, 128);
    try {
      let nll = 0, count = 0;
      for (let c = 0; c < mine.chunks; c++) {
        const ids = tokens.slice(c * 128, (c + 1) * 128);
        ids[0] = ours.tokenizer.bos!;
        await seq.clearHistory();
        const res = await seq.controlledEvaluate(ids.map((id: number, j: number) => (j >= 64 && j < 127 ? [id, { generateNext: { logits: true } }] : id)));
        for (let j = 64; j < 127; j++) {
          const logits: Map<number, number> = res[j].next.logits;
          let max = -Infinity;
          for (const v of logits.values()) max = Math.max(max, v);
          let sum = 0;
          for (const v of logits.values()) sum += Math.exp(v - max);
          nll += max + Math.log(sum) - logits.get(tokens[c * 128 + j + 1])!;
          count++;
        }
      }
      const theirs = Math.exp(nll / count);
      const rel = Math.abs(mine.perplexity - theirs) / theirs;
      console.log(`      fuselm ${mine.perplexity.toFixed(5)}, llama.cpp ${theirs.toFixed(5)} (${(rel * 100).toFixed(4)}%), ${mine.chunks} chunks`);
      assert.ok(rel < 0.005, `fuselm ${mine.perplexity}, llama.cpp ${theirs}`);
    } finally {
      await dispose();
    }
  });
});
