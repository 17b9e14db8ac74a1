/**
 * A t5 GGUF's SentencePiece charsmap (tokenizer.ggml.precompiled_charsmap) against llama.cpp
 * (node-llama-cpp, vocabulary only): the T5 fixture's GGUF rewritten with a charsmap built here
 * (test/helpers/charsmap.ts: NFKC-like rules, a three-character key that only a longest match
 * over the text finds) tokenizes 300 random texts to llama.cpp's ids. Skips, saying why, without
 * ../shared or the peer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GgufValueType, ggufMetadataSpec, readGguf, writeGguf } from '../../lib/formats/gguf.js';
import { tokenizerFromGguf } from '../../lib/tokenizer/from-gguf.js';
import { buildCharsmap, CHARSMAP_RULES, charsmapTexts } from '../helpers/charsmap.js';
import { requireLlamaCpp } from '../helpers/llama-cpp.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

describe("llama.cpp: a t5 GGUF's precompiled_charsmap", function () {
  this.timeout(120_000);

  it("300 random texts give llama.cpp's ids", async function () {
    requireShared(this, 'models/oracles/t5/t5.f32.gguf');
    const llama = await requireLlamaCpp(this);
    const src = sharedPath('models', 'oracles', 't5', 't5.f32.gguf');
    const f = await readGguf(src);
    const bytes = readFileSync(src);
    const key = 'tokenizer.ggml.precompiled_charsmap';
    const metadata = ggufMetadataSpec(f).filter((m) => m.key !== key);
    metadata.push({ key, type: GgufValueType.ARRAY, elemType: GgufValueType.UINT8, value: buildCharsmap(CHARSMAP_RULES) });
    const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-charsmap-'));
    try {
      const file = path.join(dir, 't5-charsmap.gguf');
      await writeGguf(file, { version: 3, metadata, tensors: f.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.nbytes) })) });
      const ours = tokenizerFromGguf(await readGguf(file));
      const peer = await llama.loadModel({ modelPath: file, vocabOnly: true });
      try {
        let moved = 0;
        for (const t of charsmapTexts(300, 41)) {
          const want = [...peer.tokenize(t)];
          assert.deepEqual(ours.encode(t), want, JSON.stringify(t));
          if (t.includes('...') || /[\uff01-\uff5e\u3000]/.test(t)) moved++;
        }
        assert.ok(moved > 100, `texts the rules change: ${moved}`);
      } finally {
        await peer.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
