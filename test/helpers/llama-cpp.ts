/**
 * The llama.cpp peer in tests (node-llama-cpp's prebuilt CPU binary; `npm run peer:llama-cpp`
 * installs it, see scripts/llama-cpp-peer.ts): requireLlamaCpp skips the suite, saying why,
 * without it; openLlamaCpp opens a GGUF the way the comparisons need it; llamaCppLogits and
 * llamaCppPerplexity read its logits.
 */
import { type PerplexityResult, chunkedPerplexity } from '../../lib/tools/perplexity.js';
import { loadLlamaCpp } from '../../scripts/llama-cpp-peer.js';

/** node-llama-cpp's Llama, or the calling suite skipped with the reason printed. */
export async function requireLlamaCpp(ctx: Mocha.Context): Promise<any> {
  const peer = await loadLlamaCpp();
  if ('reason' in peer) {
    console.log(`      skipped: ${peer.reason}`);
    ctx.skip();
  }
  return (peer as { llama: any }).llama;
}

export interface LlamaCppSession {
  /** A LlamaContextSequence: evaluate(), controlledEvaluate(), clearHistory(). */
  seq: any;
  dispose(): Promise<void>;
}

/**
 * A model with one sequence, an F32 KV cache and no flash attention, on one thread: with flash
 * attention (node-llama-cpp's default) llama.cpp's logits move by about 1e-3 of the largest
 * even at position 0, where attention only copies V, so it does not keep an F32 cache's values.
 * A batch of the whole context unless `batchSize` says less (1: one token per evaluation);
 * `lora`: GGUF LoRA adapters applied to the context.
 */
export async function openLlamaCpp(
  llama: any,
  file: string,
  contextSize: number,
  o: { batchSize?: number; lora?: { filePath: string; scale?: number }[] } = {},
): Promise<LlamaCppSession> {
  const model = await llama.loadModel({ modelPath: file });
  try {
    const ctx = await model.createContext({
      contextSize,
      batchSize: o.batchSize ?? contextSize,
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
      ...(o.lora ? { lora: { adapters: o.lora } } : {}),
    });
    return {
      seq: ctx.getSequence(),
      async dispose() {
        await ctx.dispose();
        await model.dispose();
      },
    };
  } catch (e) {
    await model.dispose();
    throw e;
  }
}

/**
 * llama.cpp's `n` greedy ids after `prompt`, from an empty cache; end-of-generation tokens are
 * yielded like any other unless `yieldEogToken` is false (then llama.cpp stops at one).
 */
export async function llamaCppGreedy(seq: any, prompt: readonly number[], n: number, o: { yieldEogToken?: boolean } = {}): Promise<number[]> {
  await seq.clearHistory();
  const ids: number[] = [];
  if (n <= 0) return ids;
  for await (const id of seq.evaluate(prompt, { temperature: 0, yieldEogToken: o.yieldEogToken ?? true })) {
    ids.push(id);
    if (ids.length === n) break;
  }
  return ids;
}

/** llama.cpp's logits after each of tokens[from..], from one evaluation that starts at an empty cache. */
export async function llamaCppLogits(seq: any, tokens: readonly number[], from: number, vocab: number): Promise<Float32Array[]> {
  await seq.clearHistory();
  const res = await seq.controlledEvaluate(tokens.map((id, j) => (j >= from ? [id, { generateNext: { logits: true } }] : id)));
  return tokens.slice(from).map((_, i) => {
    const row = new Float32Array(vocab);
    for (const [id, v] of res[from + i].next.logits as Map<number, number>) row[id] = v;
    return row;
  });
}

/**
 * llama.cpp's perplexity of `tokens` (BOS included): its logits, chunked and scored by the same
 * code as fuselm's perplexity (lib/tools/perplexity.ts, llama.cpp's perplexity tool's method),
 * so two results differ only where the engines' logits do. Each chunk is one batch of all its
 * tokens, as llama.cpp's tool and fuselm evaluate it (the batch's size picks some kernels' order
 * of sums: llama.cpp's repacked Q4_K sums the rows of its last T % 4 tokens as single tokens).
 */
export function llamaCppPerplexity(seq: any, tokens: readonly number[], ctx: number, bos: number | undefined, vocab: number): Promise<PerplexityResult> {
  return chunkedPerplexity(tokens, ctx, bos, async (ids, first) => {
    const rows = await llamaCppLogits(seq, ids, first, vocab);
    return (j) => rows[j - first];
  });
}
