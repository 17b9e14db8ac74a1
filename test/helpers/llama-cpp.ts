/**
 * The llama.cpp peer in tests (node-llama-cpp's prebuilt CPU binary; `npm run peer:llama-cpp`
 * installs it, see scripts/llama-cpp-peer.ts): requireLlamaCpp skips the suite, saying why,
 * without it; openLlamaCpp opens a GGUF the way the comparisons need it.
 */
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
 */
export async function openLlamaCpp(llama: any, file: string, contextSize: number): Promise<LlamaCppSession> {
  const model = await llama.loadModel({ modelPath: file });
  try {
    const ctx = await model.createContext({
      contextSize,
      batchSize: contextSize,
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
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
