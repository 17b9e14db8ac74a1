/**
 * Where fuselm's logits leave llama.cpp's, a measure the perplexity's noise does not hide. Same
 * model, files and text as perplexity.bench.ts (stories260K widened to rows of 256, f32 and the
 * files `fuselm quantize` writes; stories the f32 model writes), chunks of 128 each evaluated as
 * one batch from an empty cache by both engines (one thread, F32 KV caches). Per file, over the
 * first FUSELM_BENCH_AGREE_CHUNKS chunks (default 10): how many positions' logits are bit-identical
 * to llama.cpp's (`identicalRows` of `rows`), how many chunks agree everywhere (`cleanChunks`),
 * and each chunk's first differing position (-1: none). One flipped 8-bit activation rounding
 * moves a chunk's later logits, so agreement up to a position is agreement of every op before it.
 * `seconds`: fuselm's evaluation of the chunks.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../lib/index.js';
import { type QuantizeType, quantizeModel } from '../lib/tools/quantize.js';
import { llamaCppLogits, openLlamaCpp } from '../test/helpers/llama-cpp.js';
import { sampledStories } from '../test/helpers/stories.js';
import { widenLlama } from '../test/helpers/widen-llama.js';
import { loadLlamaCpp } from './peers/llama-cpp.js';
import type { BenchResult } from './util.js';

const CTX = 128;
const TYPES: Array<QuantizeType | 'f32'> = ['f32', 'q8_0', 'q6_k', 'q5_k_m', 'q4_k_m', 'q4_0'];
const stories = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/models/stories260K.gguf');

export async function run(): Promise<BenchResult[]> {
  if (!existsSync(stories)) {
    process.stderr.write(`logit-agreement bench: skipping (${stories} not found)\n`);
    return [];
  }
  const llama = await loadLlamaCpp();
  if (!llama) return [];
  const chunks = Number(process.env.FUSELM_BENCH_AGREE_CHUNKS ?? 10);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-agree-bench-'));
  try {
    const wide = path.join(dir, 'wide-f32.gguf');
    await widenLlama(stories, wide, { dim: 256, ffn: 256 });
    let tokens: number[], bos: number | undefined, vocab: number;
    {
      await using m = await loadModel(stories, { threads: 1, contextSize: CTX, kvType: 'f32' });
      tokens = m.tokenizer.encode(await sampledStories(m, CTX * chunks * 3), { addSpecial: true });
      bos = m.tokenizer.addBos ? m.tokenizer.bos : undefined;
      vocab = m.config.vocabSize;
    }
    const n = Math.min(chunks, Math.floor(tokens.length / CTX));
    const chunk = (c: number) => {
      const ids = tokens.slice(c * CTX, (c + 1) * CTX);
      if (bos !== undefined) ids[0] = bos;
      return ids;
    };
    const out: BenchResult[] = [];
    for (const type of TYPES) {
      const file = type === 'f32' ? wide : path.join(dir, `wide-${type}.gguf`);
      if (type !== 'f32') await quantizeModel(wide, file, type);
      const theirs: Float32Array[][] = [];
      const s = await openLlamaCpp(llama, file, CTX);
      try {
        for (let c = 0; c < n; c++) theirs.push(await llamaCppLogits(s.seq, chunk(c), 0, vocab));
      } finally {
        await s.dispose();
      }
      await using m = await loadModel(file, { threads: 1, contextSize: CTX, kvType: 'f32' });
      let identical = 0, clean = 0, seconds = 0;
      const firsts: number[] = [];
      for (let c = 0; c < n; c++) {
        await m.clearCache();
        const t0 = performance.now();
        const mine = await m.evaluate(chunk(c), { allLogits: true });
        seconds += (performance.now() - t0) / 1000;
        let first = -1;
        for (let j = 0; j < CTX; j++) {
          const row = mine.subarray(j * vocab, (j + 1) * vocab);
          if (row.every((v, i) => Object.is(v, theirs[c][j][i]))) identical++;
          else if (first < 0) first = j;
        }
        if (first < 0) clean++;
        firsts.push(first);
      }
      out.push({ name: `stories260K-wide ${type} ctx${CTX} ${n} chunks`, seconds, identicalRows: identical, rows: n * CTX, cleanChunks: clean, firstDifference: firsts.join(' ') });
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
