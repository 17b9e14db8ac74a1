/**
 * Perplexity the way llama.cpp's perplexity tool computes it: the text is tokenized once (with
 * BOS), cut into chunks of `ctx` tokens (the remainder is dropped); each chunk is evaluated
 * from an empty cache with its first token replaced by BOS (when the model adds one), and only
 * the second half of each chunk is scored, so every scored token sees at least ctx/2 tokens of
 * context: for j in [ctx/2, ctx-1), -log softmax(logits[j])[token j+1]. PPL = exp(mean NLL).
 */
import { FuselmError } from '../errors.js';
import type { Model } from '../model/model.js';

export interface PerplexityResult {
  perplexity: number;
  /** Mean negative log-likelihood (nats) over the scored tokens. */
  nll: number;
  chunks: number;
  scoredTokens: number;
  /** Running perplexity after each chunk. */
  running: number[];
}

export async function perplexity(model: Model, text: string, opts: { ctx?: number; onChunk?: (chunk: number, total: number, ppl: number) => void } = {}): Promise<PerplexityResult> {
  const ctx = opts.ctx ?? Math.min(512, model.contextSize);
  if (!Number.isInteger(ctx) || ctx < 4) throw new FuselmError('E_INVALID_ARG', `ctx must be an integer >= 4, got ${ctx}`);
  if (ctx > model.contextSize) throw new FuselmError('E_INVALID_ARG', `ctx ${ctx} is larger than the model's context (${model.contextSize}); load it with a larger contextSize`);
  const tok = model.tokenizer;
  const tokens = tok.encode(text, { addSpecial: true });
  const chunks = Math.floor(tokens.length / ctx);
  if (chunks < 1) throw new FuselmError('E_INVALID_ARG', `the text has ${tokens.length} tokens; perplexity needs at least ctx = ${ctx}`);
  const V = model.config.vocabSize;
  const first = ctx >> 1;
  let nll = 0, count = 0;
  const running: number[] = [];
  for (let c = 0; c < chunks; c++) {
    const ids = tokens.slice(c * ctx, (c + 1) * ctx);
    if (tok.addBos && tok.bos !== undefined) ids[0] = tok.bos;
    await model.clearCache();
    const logits = await model.evaluate(ids, { allLogits: true });
    for (let j = first; j < ctx - 1; j++) {
      const row = logits.subarray(j * V, (j + 1) * V);
      let max = -Infinity;
      for (let v = 0; v < V; v++) if (row[v] > max) max = row[v];
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
      nll += max + Math.log(sum) - row[tokens[c * ctx + j + 1]];
      count++;
    }
    running.push(Math.exp(nll / count));
    opts.onChunk?.(c + 1, chunks, running[c]);
  }
  return { perplexity: Math.exp(nll / count), nll: nll / count, chunks, scoredTokens: count, running };
}
