/**
 * BERT, encoder-only: word + position + token-type embeddings → LayerNorm, then per layer
 * bidirectional attention (every token sees every token of the text) → output projection →
 * residual → LayerNorm (post-norm), GELU (erf) MLP → residual → LayerNorm; the pooler is
 * tanh(W · h[CLS] + b). Exposed as EmbeddingModel.embed(texts, {pooling, normalize}).
 * Tensor names with or without the `bert.` prefix (BertModel vs BertFor* checkpoints).
 */
import type { NativeTensor } from '../../bindings.js';
import { CpuBackend, type Graph, ops } from '../backend.js';
import { FuselmError } from '../errors.js';
import { readHfFolder } from '../formats/hf.js';
import { openSafetensorsFolder } from '../formats/safetensors.js';
import { emptyTensor, readF32Rows } from '../tensor.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { ModelConfig } from './config.js';
import { HfTensors } from './hf-weights.js';
import type { NativeImpl } from '../../bindings.js';

interface BertLayer {
  wq: NativeTensor; bq: NativeTensor; wk: NativeTensor; bk: NativeTensor; wv: NativeTensor; bv: NativeTensor;
  wo: NativeTensor; bo: NativeTensor; attnNorm: NativeTensor; attnNormB: NativeTensor;
  wUp: NativeTensor; bUp: NativeTensor; wDown: NativeTensor; bDown: NativeTensor; ffnNorm: NativeTensor; ffnNormB: NativeTensor;
}

export interface BertWeights {
  word: NativeTensor;
  pos: NativeTensor;
  type: NativeTensor;
  embNorm: NativeTensor;
  embNormB: NativeTensor;
  layers: BertLayer[];
  poolW?: NativeTensor;
  poolB?: NativeTensor;
}

export async function loadBertWeights(T: HfTensors, c: ModelConfig): Promise<BertWeights> {
  const D = c.dim, F = c.ffnDim;
  const all: NativeTensor[] = [];
  const m = async (n: string, shape: number[]) => (all.push(await T.matrix(n, shape)), all[all.length - 1]);
  const v = async (n: string, len: number) => (all.push(await T.vector(n, len)), all[all.length - 1]);
  try {
    const e = 'embeddings.';
    const w: BertWeights = {
      word: await m(e + 'word_embeddings.weight', [c.vocabSize, D]),
      pos: await m(e + 'position_embeddings.weight', [c.contextLength, D]),
      type: await m(e + 'token_type_embeddings.weight', [c.typeVocabSize, D]),
      embNorm: await v(e + 'LayerNorm.weight', D),
      embNormB: await v(e + 'LayerNorm.bias', D),
      layers: [],
    };
    for (let l = 0; l < c.nLayers; l++) {
      const p = `encoder.layer.${l}.`;
      w.layers.push({
        wq: await m(p + 'attention.self.query.weight', [D, D]), bq: await v(p + 'attention.self.query.bias', D),
        wk: await m(p + 'attention.self.key.weight', [D, D]), bk: await v(p + 'attention.self.key.bias', D),
        wv: await m(p + 'attention.self.value.weight', [D, D]), bv: await v(p + 'attention.self.value.bias', D),
        wo: await m(p + 'attention.output.dense.weight', [D, D]), bo: await v(p + 'attention.output.dense.bias', D),
        attnNorm: await v(p + 'attention.output.LayerNorm.weight', D), attnNormB: await v(p + 'attention.output.LayerNorm.bias', D),
        wUp: await m(p + 'intermediate.dense.weight', [F, D]), bUp: await v(p + 'intermediate.dense.bias', F),
        wDown: await m(p + 'output.dense.weight', [D, F]), bDown: await v(p + 'output.dense.bias', D),
        ffnNorm: await v(p + 'output.LayerNorm.weight', D), ffnNormB: await v(p + 'output.LayerNorm.bias', D),
      });
    }
    if (T.has('pooler.dense.weight')) {
      w.poolW = await m('pooler.dense.weight', [D, D]);
      w.poolB = await v('pooler.dense.bias', D);
    }
    return w;
  } catch (err) {
    for (const t of all) t.free();
    throw err;
  }
}

function disposeBertWeights(w: BertWeights): void {
  for (const t of [w.word, w.pos, w.type, w.embNorm, w.embNormB, w.poolW, w.poolB]) t?.free();
  for (const L of w.layers) for (const t of Object.values(L)) t.free();
}

export interface EmbedOptions {
  /** 'mean' (default): the average of the token states; 'cls': the first token's state. */
  pooling?: 'mean' | 'cls';
  /** Scale each embedding to unit L2 norm (default true). */
  normalize?: boolean;
}

export interface EncodeResult {
  /** Last hidden states [n * dim]. */
  hidden: Float32Array;
  /** tanh(W · h[0] + b), when the checkpoint has a pooler. */
  pooler?: Float32Array;
}

/** An encoder model (BERT): token ids in, hidden states and sentence embeddings out. */
export class EmbeddingModel {
  readonly path: string;
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer | undefined;
  readonly maxTokens: number;
  #w: BertWeights | undefined;
  #be: CpuBackend;
  #t: Record<'ids' | 'posIds' | 'typeIds' | 'x' | 'xb' | 'q' | 'k' | 'v' | 'att' | 'hb' | 'h0' | 'pool', NativeTensor>;
  #kCache: NativeTensor[];
  #vCache: NativeTensor[];
  #graph: Graph;
  #poolGraph: Graph | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(path: string, c: ModelConfig, w: BertWeights, tokenizer: Tokenizer | undefined, be: CpuBackend) {
    this.path = path;
    this.config = c;
    this.tokenizer = tokenizer;
    this.#w = w;
    this.#be = be;
    const B = (this.maxTokens = c.contextLength), D = c.dim;
    const f = (cols: number, rows = B) => emptyTensor('f32', [rows, cols]);
    this.#t = {
      ids: emptyTensor('i32', [B]), posIds: emptyTensor('i32', [B]), typeIds: emptyTensor('i32', [B]),
      x: f(D), xb: f(D), q: f(D), k: f(D), v: f(D), att: f(D), hb: f(c.ffnDim), h0: f(D, 1), pool: f(D, 1),
    };
    this.#kCache = w.layers.map(() => f(D));
    this.#vCache = w.layers.map(() => f(D));
    const t = this.#t;
    const attn = { nHeads: c.nHeads, nKvHeads: c.nHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), causal: false };
    const nodes = [
      ops.embedding(t.x, w.word, t.ids),
      ops.embedding(t.xb, w.pos, t.posIds),
      ops.add(t.x, t.x, t.xb),
      ops.embedding(t.xb, w.type, t.typeIds),
      ops.add(t.x, t.x, t.xb),
      ops.layerNorm(t.x, t.x, w.embNorm, w.embNormB, c.normEps),
    ];
    w.layers.forEach((L, l) =>
      nodes.push(
        ops.matmul(t.q, t.x, L.wq), ops.addBias(t.q, t.q, L.bq),
        ops.matmul(t.k, t.x, L.wk), ops.addBias(t.k, t.k, L.bk),
        ops.matmul(t.v, t.x, L.wv), ops.addBias(t.v, t.v, L.bv),
        ops.kvStore(this.#kCache[l], t.k), ops.kvStore(this.#vCache[l], t.v),
        ops.attention(t.att, t.q, this.#kCache[l], this.#vCache[l], attn),
        ops.matmul(t.xb, t.att, L.wo), ops.addBias(t.xb, t.xb, L.bo),
        ops.add(t.x, t.x, t.xb), ops.layerNorm(t.x, t.x, L.attnNorm, L.attnNormB, c.normEps),
        ops.matmul(t.hb, t.x, L.wUp), ops.addBias(t.hb, t.hb, L.bUp), ops.gelu(t.hb, t.hb, { tanh: c.mlp === 'gelu_tanh' }),
        ops.matmul(t.xb, t.hb, L.wDown), ops.addBias(t.xb, t.xb, L.bDown),
        ops.add(t.x, t.x, t.xb), ops.layerNorm(t.x, t.x, L.ffnNorm, L.ffnNormB, c.normEps),
      ),
    );
    this.#graph = be.graph(nodes, B);
    if (w.poolW && w.poolB) this.#poolGraph = be.graph([ops.matmul(t.pool, t.h0, w.poolW), ops.addBias(t.pool, t.pool, w.poolB)], 1);
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      if (!this.#w) throw new FuselmError('E_DISPOSED', 'model used after dispose()');
      return fn();
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Hidden states of one token sequence (all tokens real), with token types (default all 0). */
  encode(ids: number[], typeIds?: number[]): Promise<EncodeResult> {
    return this.#exclusive(async () => {
      const c = this.config, n = ids.length;
      if (n < 1) throw new FuselmError('E_INVALID_ARG', 'encode: empty input');
      if (n > this.maxTokens) throw new FuselmError('E_CONTEXT_FULL', `encode: ${n} tokens, the model takes at most ${this.maxTokens}`);
      const types = typeIds ?? new Array<number>(n).fill(0);
      if (types.length !== n) throw new FuselmError('E_INVALID_ARG', `encode: ${n} ids but ${types.length} token types`);
      for (const id of ids)
        if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new FuselmError('E_INVALID_ARG', `token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
      for (const t of types)
        if (!Number.isInteger(t) || t < 0 || t >= c.typeVocabSize) throw new FuselmError('E_INVALID_ARG', `token type ${t} is outside 0..${c.typeVocabSize - 1}`);
      this.#t.ids.write(Int32Array.from(ids));
      this.#t.posIds.write(Int32Array.from(ids, (_, i) => i));
      this.#t.typeIds.write(Int32Array.from(types));
      await this.#graph.run(n, 0);
      const hidden = readF32Rows(this.#t.x, 0, n);
      if (!this.#poolGraph) return { hidden };
      this.#t.h0.write(hidden.slice(0, c.dim));
      await this.#poolGraph.run(1, 0);
      return { hidden, pooler: readF32Rows(this.#t.pool, 0, 1).map(Math.tanh) };
    });
  }

  /** One embedding per text: its tokens' states pooled (mean or CLS), L2-normalized by default. */
  async embed(texts: string | string[], opts: EmbedOptions = {}): Promise<Float32Array[]> {
    const tok = this.tokenizer;
    if (!tok) throw new FuselmError('E_UNSUPPORTED', `${this.path}: the folder has no tokenizer.json; use encode(ids)`);
    const pooling = opts.pooling ?? 'mean';
    if (pooling !== 'mean' && pooling !== 'cls') throw new FuselmError('E_INVALID_ARG', `pooling must be 'mean' or 'cls', got '${pooling}'`);
    const D = this.config.dim;
    const out: Float32Array[] = [];
    for (const text of typeof texts === 'string' ? [texts] : texts) {
      const ids = tok.encode(text, { addSpecial: true });
      const { hidden } = await this.encode(ids);
      const n = ids.length, e = new Float32Array(D);
      if (pooling === 'cls') e.set(hidden.subarray(0, D));
      else {
        for (let t = 0; t < n; t++) for (let i = 0; i < D; i++) e[i] += hidden[t * D + i];
        for (let i = 0; i < D; i++) e[i] /= n;
      }
      if (opts.normalize ?? true) {
        let ss = 0;
        for (const v of e) ss += v * v;
        const s = ss > 0 ? 1 / Math.sqrt(ss) : 0;
        for (let i = 0; i < D; i++) e[i] *= s;
      }
      out.push(e);
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.#queue;
    if (!this.#w) return;
    this.#graph.dispose();
    this.#poolGraph?.dispose();
    for (const t of [...Object.values(this.#t), ...this.#kCache, ...this.#vCache]) t.free();
    disposeBertWeights(this.#w);
    this.#w = undefined;
    this.#be.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

export interface LoadEmbeddingModelOptions {
  threads?: number;
  impl?: NativeImpl;
}

/** Loads a BERT Hugging Face folder as an EmbeddingModel (tokenizer.json when present). */
export async function loadEmbeddingModel(dir: string, opts: LoadEmbeddingModelOptions = {}): Promise<EmbeddingModel> {
  const hf = await readHfFolder(dir);
  if (hf.config.architecture !== 'bert')
    throw new FuselmError('E_UNSUPPORTED', `${dir}: '${hf.config.architecture}' is not an encoder; load it with loadModel()`);
  const st = await openSafetensorsFolder(dir);
  const tokenizer = await loadTokenizer(dir).catch((e) => {
    if (e instanceof FuselmError && e.code === 'E_UNSUPPORTED') return undefined;
    throw e;
  });
  const be = new CpuBackend({ threads: opts.threads, impl: opts.impl });
  try {
    const w = await loadBertWeights(new HfTensors(st, dir, ['bert.', '']), hf.config);
    return new EmbeddingModel(dir, hf.config, w, tokenizer, be);
  } catch (e) {
    be.dispose();
    throw e;
  }
}
