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
  /** Each chunk's mean NLL (for comparing two engines chunk by chunk). */
  chunkNll: number[];
}

export type OnChunk = (chunk: number, total: number, ppl: number) => void;

/**
 * One chunk's logits from an empty cache: `ids` are the chunk's tokens (BOS first), and the
 * result gives the logits row after token j for every j in [first, ids.length - 1).
 */
export type ChunkLogits = (ids: number[], first: number) => Promise<(j: number) => ArrayLike<number>>;

/** -log softmax(row)[target], in double precision. */
export function tokenNll(row: ArrayLike<number>, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < row.length; v++) if (row[v] > max) max = row[v];
  let sum = 0;
  for (let v = 0; v < row.length; v++) sum += Math.exp(row[v] - max);
  return max + Math.log(sum) - row[target];
}

/**
 * The chunked perplexity of `tokens` (already tokenized, BOS included) with logits from any
 * engine: fuselm's `perplexity` below, and the tests' llama.cpp peer, score the same way.
 */
export async function chunkedPerplexity(tokens: readonly number[], ctx: number, bos: number | undefined, logitsOf: ChunkLogits, onChunk?: OnChunk): Promise<PerplexityResult> {
  if (!Number.isInteger(ctx) || ctx < 4) throw new FuselmError('E_INVALID_ARG', `ctx must be an integer >= 4, got ${ctx}`);
  const chunks = Math.floor(tokens.length / ctx);
  if (chunks < 1) throw new FuselmError('E_INVALID_ARG', `the text has ${tokens.length} tokens; perplexity needs at least ctx = ${ctx}`);
  const first = ctx >> 1;
  let nll = 0, count = 0;
  const running: number[] = [], chunkNll: number[] = [];
  for (let c = 0; c < chunks; c++) {
    const ids = tokens.slice(c * ctx, (c + 1) * ctx);
    if (bos !== undefined) ids[0] = bos;
    const row = await logitsOf(ids, first);
    let chunk = 0;
    for (let j = first; j < ctx - 1; j++) chunk += tokenNll(row(j), tokens[c * ctx + j + 1]);
    nll += chunk;
    count += ctx - 1 - first;
    chunkNll.push(chunk / (ctx - 1 - first));
    running.push(Math.exp(nll / count));
    onChunk?.(c + 1, chunks, running[c]);
  }
  return { perplexity: Math.exp(nll / count), nll: nll / count, chunks, scoredTokens: count, running, chunkNll };
}

/**
 * Two runs over the same chunks (two engines or two files): the mean per-chunk NLL difference
 * a − b, and that mean over its standard error (t; 0 when every chunk agrees).
 */
export function chunkDifference(a: PerplexityResult, b: PerplexityResult): { mean: number; t: number } {
  if (a.chunkNll.length !== b.chunkNll.length || a.chunkNll.length < 2)
    throw new FuselmError('E_INVALID_ARG', `chunkDifference needs two runs over the same 2 or more chunks, got ${a.chunkNll.length} and ${b.chunkNll.length}`);
  const d = a.chunkNll.map((x, i) => x - b.chunkNll[i]);
  const mean = d.reduce((s, x) => s + x, 0) / d.length;
  const sd = Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / (d.length - 1));
  return { mean, t: sd === 0 ? (mean === 0 ? 0 : Math.sign(mean) * Infinity) : mean / (sd / Math.sqrt(d.length)) };
}

export async function perplexity(model: Model, text: string, opts: { ctx?: number; onChunk?: OnChunk } = {}): Promise<PerplexityResult> {
  const ctx = opts.ctx ?? Math.min(512, model.contextSize);
  if (ctx > model.contextSize) throw new FuselmError('E_INVALID_ARG', `ctx ${ctx} is larger than the model's context (${model.contextSize}); load it with a larger contextSize`);
  const tok = model.tokenizer;
  const V = model.config.vocabSize;
  const bos = tok.addBos ? tok.bos : undefined;
  return chunkedPerplexity(tok.encode(text, { addSpecial: true }), ctx, bos, async (ids) => {
    await model.clearCache();
    const logits = await model.evaluate(ids, { allLogits: true });
    return (j) => logits.subarray(j * V, (j + 1) * V);
  }, opts.onChunk);
}
