/**
 * Perplexity, fuselm vs llama.cpp (node-llama-cpp's prebuilt CPU binary), on the same files in
 * the same run: stories260K (../shared, the one trained model) widened exactly to rows of 256
 * (test/helpers/widen-llama.ts) so its files hold Q4_K, Q5_K and Q6_K blocks, in f32 and as
 * `fuselm quantize` writes q8_0, q6_k, q5_k_m, q4_k_m and q4_0. Text: stories the f32 model
 * writes (test/helpers/stories.ts; FUSELM_BENCH_PPL_CHARS characters, default 24000, ~10k
 * tokens), chunks of 128, scored by the same code for both engines (llama.cpp's perplexity
 * tool's method, lib/tools/perplexity.ts). One thread, F32 KV caches.
 *
 * Per file: both engines' perplexity, their relative difference and its t (the mean per-chunk
 * NLL difference over its standard error), llama.cpp's own perplexity one token per evaluation
 * (its other code path: the noise floor of the comparison), and the perplexity of the same
 * mixture quantized by llama.cpp's own quantizer (test/helpers/requantize.ts), both files
 * evaluated by llama.cpp, with the losses against f32. `seconds`: fuselm's whole perplexity run.
 * FUSELM_BENCH_PPL_IMPL=reference|portable|avx2|avx512 runs fuselm's kernels of that level
 * (default auto: the best the CPU has).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../lib/index.js';
import type { NativeImpl } from '../bindings.js';
import { type PerplexityResult, chunkDifference, perplexity } from '../lib/tools/perplexity.js';
import { type QuantizeType, quantizeModel } from '../lib/tools/quantize.js';
import { ggmlQuantize } from '../test/helpers/ggml-quantize.js';
import { llamaCppPerplexity, openLlamaCpp } from '../test/helpers/llama-cpp.js';
import { requantizeLike } from '../test/helpers/requantize.js';
import { sampledStories } from '../test/helpers/stories.js';
import { widenLlama } from '../test/helpers/widen-llama.js';
import { loadLlamaCpp } from './peers/llama-cpp.js';
import type { BenchResult } from './util.js';

const CTX = 128;
const TYPES: Array<QuantizeType | 'f32'> = ['f32', 'q8_0', 'q6_k', 'q5_k_m', 'q4_k_m', 'q4_0'];
const stories = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/models/stories260K.gguf');

export async function run(): Promise<BenchResult[]> {
  if (!existsSync(stories)) {
    process.stderr.write(`perplexity bench: skipping (${stories} not found)\n`);
    return [];
  }
  const llama = await loadLlamaCpp();
  if (!llama) return [];
  const quantize = ggmlQuantize();
  if (typeof quantize !== 'function') process.stderr.write(`perplexity bench: no llama.cpp quantizer (${quantize.reason}); its twins are left out\n`);
  const impl = (process.env.FUSELM_BENCH_PPL_IMPL ?? 'auto') as NativeImpl;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-ppl-bench-'));
  try {
    const wide = path.join(dir, 'wide-f32.gguf');
    await widenLlama(stories, wide, { dim: 256, ffn: 256 });
    let text: string, tokens: number[], bos: number | undefined, vocab: number;
    {
      await using m = await loadModel(stories, { threads: 1, contextSize: CTX, kvType: 'f32' });
      text = await sampledStories(m, Number(process.env.FUSELM_BENCH_PPL_CHARS ?? 24000));
      tokens = m.tokenizer.encode(text, { addSpecial: true });
      bos = m.tokenizer.addBos ? m.tokenizer.bos : undefined;
      vocab = m.config.vocabSize;
    }
    const theirs = async (file: string, batchSize?: number) => {
      const s = await openLlamaCpp(llama, file, CTX, { batchSize });
      try {
        return await llamaCppPerplexity(s.seq, tokens, CTX, bos, vocab);
      } finally {
        await s.dispose();
      }
    };
    const out: BenchResult[] = [];
    let f32 = 0;
    for (const type of TYPES) {
      const file = type === 'f32' ? wide : path.join(dir, `wide-${type}.gguf`);
      if (type !== 'f32') await quantizeModel(wide, file, type);
      const t0 = performance.now();
      let mine: PerplexityResult;
      {
        await using m = await loadModel(file, { threads: 1, contextSize: CTX, kvType: 'f32', impl });
        mine = await perplexity(m, text, { ctx: CTX });
      }
      const seconds = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      const batched = await theirs(file);
      const llamaCppSeconds = (performance.now() - t1) / 1000;
      const oneByOne = await theirs(file, 1);
      if (type === 'f32') f32 = batched.perplexity;
      const r: BenchResult = {
        name: `stories260K-wide ${type} ctx${CTX} ${mine.scoredTokens} scored tokens impl ${impl}`,
        seconds,
        llamaCppSeconds,
        fuselm: mine.perplexity,
        llamaCpp: batched.perplexity,
        relDiff: mine.perplexity / batched.perplexity - 1,
        t: chunkDifference(mine, batched).t,
        llamaCppOneToken: oneByOne.perplexity,
        llamaCppSelfRelDiff: oneByOne.perplexity / batched.perplexity - 1,
      };
      if (type !== 'f32' && type !== 'q8_0' && typeof quantize === 'function') {
        const twin = path.join(dir, `wide-${type}-ggml.gguf`);
        await requantizeLike(file, wide, twin, quantize);
        const t = await theirs(twin);
        Object.assign(r, { lossFuselmQuantizer: batched.perplexity / f32 - 1, lossLlamaCppQuantizer: t.perplexity / f32 - 1, quantizerT: chunkDifference(batched, t).t });
        rmSync(twin);
      }
      out.push(r);
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
