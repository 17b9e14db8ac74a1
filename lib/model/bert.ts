/**
 * BERT, encoder-only: word + position + token-type embeddings → LayerNorm, then per layer
 * bidirectional attention (every token sees every token of the text) → output projection →
 * residual → LayerNorm (post-norm), GELU (erf) MLP → residual → LayerNorm; the pooler is
 * tanh(W · h[CLS] + b). Exposed as EmbeddingModel.embed(texts, {pooling, normalize}), which
 * packs several texts into one forward pass, each attending over its own rows only.
 * Loads a Hugging Face folder (tensor names with or without the `bert.` prefix: BertModel vs
 * BertFor* checkpoints) or a GGUF under llama.cpp's bert names (no pooler: its converter drops it).
 */
import type { NativeTensor } from '../../bindings.js';
import { type Backend, CpuBackend, CudaBackend, type Graph, ops, resolveDevice, type SeqSpan } from '../backend.js';
import { FuselmError } from '../errors.js';
import { CallQueue } from './call-queue.js';
import { type GgufFile, ggufNumber } from '../formats/gguf.js';
import { readGgufModel } from '../formats/gguf-split.js';
import { isDirectory, readHfFolder } from '../formats/hf.js';
import { openSafetensorsFolder } from '../formats/safetensors.js';
import { emptyTensor, readF32Rows } from '../tensor.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { configFromGguf, configFromHf, type ModelConfig } from './config.js';
import { tokenizerFromGguf } from '../tokenizer/from-gguf.js';
import { checkWeightDtype, GgufMappings, loadGgufTensor, type WeightDtype } from './weights.js';
import { HfTensors } from './hf-weights.js';
import type { NativeImpl } from '../../bindings.js';
import { resolveModelPath } from '../hub/pull.js';

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

/**
 * BERT weights of a GGUF under llama.cpp's names: `token_embd`, `position_embd`, `token_types`,
 * `token_embd_norm`, `blk.N.{attn_q, attn_k, attn_v, attn_output, attn_output_norm, ffn_up,
 * ffn_down, layer_output_norm}`, every one with `.weight` and `.bias` (tables and norms aside).
 * The matrices are HF's [out, in] as stored (GGUF dims [in, out]).
 */
export async function loadBertGgufWeights(f: GgufFile, c: ModelConfig, dtype: WeightDtype, mappings?: GgufMappings): Promise<BertWeights> {
  const D = c.dim, F = c.ffnDim;
  const all: NativeTensor[] = [];
  const t = async (n: string, shape: number[]) => (all.push(await loadGgufTensor(f, n, shape, { dtype, mappings })), all[all.length - 1]);
  try {
    const w: BertWeights = {
      word: await t('token_embd.weight', [c.vocabSize, D]),
      pos: await t('position_embd.weight', [c.contextLength, D]),
      type: await t('token_types.weight', [c.typeVocabSize, D]),
      embNorm: await t('token_embd_norm.weight', [D]),
      embNormB: await t('token_embd_norm.bias', [D]),
      layers: [],
    };
    for (let l = 0; l < c.nLayers; l++) {
      const p = `blk.${l}.`;
      w.layers.push({
        wq: await t(p + 'attn_q.weight', [D, D]), bq: await t(p + 'attn_q.bias', [D]),
        wk: await t(p + 'attn_k.weight', [D, D]), bk: await t(p + 'attn_k.bias', [D]),
        wv: await t(p + 'attn_v.weight', [D, D]), bv: await t(p + 'attn_v.bias', [D]),
        wo: await t(p + 'attn_output.weight', [D, D]), bo: await t(p + 'attn_output.bias', [D]),
        attnNorm: await t(p + 'attn_output_norm.weight', [D]), attnNormB: await t(p + 'attn_output_norm.bias', [D]),
        wUp: await t(p + 'ffn_up.weight', [F, D]), bUp: await t(p + 'ffn_up.bias', [F]),
        wDown: await t(p + 'ffn_down.weight', [D, F]), bDown: await t(p + 'ffn_down.bias', [D]),
        ffnNorm: await t(p + 'layer_output_norm.weight', [D]), ffnNormB: await t(p + 'layer_output_norm.bias', [D]),
      });
    }
    return w;
  } catch (err) {
    for (const x of all) x.free();
    throw err;
  }
}

/**
 * llama.cpp's pooling types (`<arch>.pooling_type`): 1 mean, 2 cls, 3 last; 0 (none: per-token
 * outputs) pools by mean here, the default of embed(). 4 (rank) needs a classifier head.
 */
const GGUF_POOLING: Record<number, Pooling> = { 0: 'mean', 1: 'mean', 2: 'cls', 3: 'last' };

function poolingFromGguf(f: GgufFile, arch: string): Pooling {
  const key = `${arch}.pooling_type`;
  const v = ggufNumber(f, key, 0);
  const p = GGUF_POOLING[v];
  if (!p) throw new FuselmError('E_UNSUPPORTED', `${f.path}: metadata "${key}" is ${v}; supported: 0 (none), 1 (mean), 2 (cls), 3 (last)`);
  return p;
}

/** The weights in a device's memory (the host copies are the caller's to free). */
function uploadBertWeights(w: BertWeights, be: Backend): BertWeights {
  const copies: NativeTensor[] = [];
  const up = <T extends NativeTensor | undefined>(t: T): T => (t ? (copies.push(be.upload(t)), copies[copies.length - 1]) : t) as T;
  try {
    return {
      ...w,
      word: up(w.word), pos: up(w.pos), type: up(w.type), embNorm: up(w.embNorm), embNormB: up(w.embNormB),
      poolW: up(w.poolW), poolB: up(w.poolB),
      layers: w.layers.map((L) => Object.fromEntries(Object.entries(L).map(([k, t]) => [k, up(t as NativeTensor)])) as unknown as typeof L),
    };
  } catch (e) {
    for (const t of copies) t.free();
    throw e;
  }
}

function disposeBertWeights(w: BertWeights): void {
  for (const t of [w.word, w.pos, w.type, w.embNorm, w.embNormB, w.poolW, w.poolB]) t?.free();
  for (const L of w.layers) for (const t of Object.values(L)) t.free();
}


/** How token states become one embedding: their mean, the first ([CLS]) one, or the last one. */
export type Pooling = 'mean' | 'cls' | 'last';

export interface EmbedOptions {
  /** Default: the model's own (a GGUF's pooling type), else 'mean'. */
  pooling?: Pooling;
  /** Scale each embedding to unit L2 norm (default true). */
  normalize?: boolean;
}

export interface EncodeResult {
  /** Last hidden states [n * dim]. */
  hidden: Float32Array;
  /** tanh(W · h[0] + b), when the checkpoint has a pooler. */
  pooler?: Float32Array;
}

/** Token ids and token types of one text. */
interface Sequence {
  ids: number[];
  types: number[];
}

/** Graphs kept for batch layouts (text lengths) seen recently. */
const MAX_BATCH_GRAPHS = 8;

/** An encoder model (BERT): token ids in, hidden states and sentence embeddings out. */
export class EmbeddingModel {
  readonly path: string;
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer | undefined;
  /** Most tokens of one text, and of one forward pass (texts are packed up to it). */
  readonly maxTokens: number;
  /** embed()'s default pooling. */
  readonly pooling: Pooling;
  /** Where it runs: 'cpu', or 'cuda' (a GPU, or the CUDA backend's emulator). */
  readonly device: 'cpu' | 'cuda';
  #w: BertWeights | undefined;
  #be: Backend;
  #t: Record<'ids' | 'posIds' | 'typeIds' | 'x' | 'xb' | 'q' | 'k' | 'v' | 'att' | 'hb' | 'h0' | 'pool' | 'zeroPos', NativeTensor>;
  #kCache: NativeTensor[];
  #vCache: NativeTensor[];
  /** One text per run. */
  #graph: Graph;
  /** Several texts per run, keyed by their lengths. */
  #batchGraphs = new Map<string, Graph>();
  #poolGraph: Graph | undefined;
  readonly #calls = new CallQueue(() => this.#w !== undefined);

  /** `w` in the backend's memory; token ids, positions and types stay host tensors. */
  constructor(path: string, c: ModelConfig, w: BertWeights, tokenizer: Tokenizer | undefined, be: Backend, pooling: Pooling = 'mean') {
    this.path = path;
    this.config = c;
    this.tokenizer = tokenizer;
    this.pooling = pooling;
    this.device = be.device === 'cpu' ? 'cpu' : 'cuda';
    this.#w = w;
    this.#be = be;
    const B = (this.maxTokens = c.contextLength), D = c.dim;
    const f = (cols: number, rows = B) => be.empty('f32', [rows, cols]);
    this.#t = {
      ids: emptyTensor('i32', [B]), posIds: emptyTensor('i32', [B]), typeIds: emptyTensor('i32', [B]),
      x: f(D), xb: f(D), q: f(D), k: f(D), v: f(D), att: f(D), hb: f(c.ffnDim), h0: f(D, 1), pool: f(D, 1),
      zeroPos: emptyTensor('i32', [1]),
    };
    this.#t.zeroPos.write(Int32Array.of(0));
    this.#kCache = w.layers.map(() => f(D));
    this.#vCache = w.layers.map(() => f(D));
    this.#graph = be.graph(this.#nodes(w), B);
    if (w.poolW && w.poolB) this.#poolGraph = be.graph([ops.matmul(this.#t.pool, this.#t.h0, w.poolW), ops.addBias(this.#t.pool, this.#t.pool, w.poolB)], 1);
  }

  /**
   * The op list of a forward pass. With `spans`, the rows hold several texts: the row-wise ops
   * run on all of them at once, while the K/V stores and the attention run per text, in turn,
   * through the same cache rows from position 0, so each text attends over its own tokens only.
   */
  #nodes(w: BertWeights, spans?: SeqSpan[]) {
    const c = this.config, t = this.#t;
    const attn = { nHeads: c.nHeads, nKvHeads: c.nHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), causal: false };
    const nodes = [
      ops.embedding(t.x, w.word, t.ids),
      ops.embedding(t.xb, w.pos, t.posIds),
      ops.add(t.x, t.x, t.xb),
      ops.embedding(t.xb, w.type, t.typeIds),
      ops.add(t.x, t.x, t.xb),
      ops.layerNorm(t.x, t.x, w.embNorm, w.embNormB, c.normEps),
    ];
    w.layers.forEach((L, l) => {
      const [kc, vc] = [this.#kCache[l], this.#vCache[l]];
      const attention = (span?: SeqSpan) => [ops.kvStore(kc, t.k, span), ops.kvStore(vc, t.v, span), ops.attention(t.att, t.q, kc, vc, attn, span)];
      nodes.push(
        ops.matmul(t.q, t.x, L.wq), ops.addBias(t.q, t.q, L.bq),
        ops.matmul(t.k, t.x, L.wk), ops.addBias(t.k, t.k, L.bk),
        ops.matmul(t.v, t.x, L.wv), ops.addBias(t.v, t.v, L.bv),
        ...(spans ? spans.flatMap(attention) : attention()),
        ops.matmul(t.xb, t.att, L.wo), ops.addBias(t.xb, t.xb, L.bo),
        ops.add(t.x, t.x, t.xb), ops.layerNorm(t.x, t.x, L.attnNorm, L.attnNormB, c.normEps),
        ops.matmul(t.hb, t.x, L.wUp), ops.addBias(t.hb, t.hb, L.bUp), ops.gelu(t.hb, t.hb, { tanh: c.mlp === 'gelu_tanh' }),
        ops.matmul(t.xb, t.hb, L.wDown), ops.addBias(t.xb, t.xb, L.bDown),
        ops.add(t.x, t.x, t.xb), ops.layerNorm(t.x, t.x, L.ffnNorm, L.ffnNormB, c.normEps),
      );
    });
    return nodes;
  }

  /** The graph for texts of these lengths (built on first use; a few layouts are kept). */
  #batchGraph(lengths: number[]): Graph {
    const key = lengths.join(',');
    let g = this.#batchGraphs.get(key);
    if (g) return g;
    if (this.#batchGraphs.size >= MAX_BATCH_GRAPHS) {
      const [oldest, old] = this.#batchGraphs.entries().next().value!;
      old.dispose();
      this.#batchGraphs.delete(oldest);
    }
    let row0 = 0;
    const spans = lengths.map((rows) => ((row0 += rows), { row0: row0 - rows, rows, slot: 0 }));
    g = this.#be.graph(this.#nodes(this.#w!, spans), this.maxTokens, this.#t.zeroPos);
    this.#batchGraphs.set(key, g);
    return g;
  }


  #check(ids: number[], types: number[]): void {
    const c = this.config, n = ids.length;
    if (n < 1) throw new FuselmError('E_INVALID_ARG', 'encode: empty input');
    if (n > this.maxTokens) throw new FuselmError('E_CONTEXT_FULL', `encode: ${n} tokens, the model takes at most ${this.maxTokens}`);
    if (types.length !== n) throw new FuselmError('E_INVALID_ARG', `encode: ${n} ids but ${types.length} token types`);
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new FuselmError('E_INVALID_ARG', `token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
    for (const t of types)
      if (!Number.isInteger(t) || t < 0 || t >= c.typeVocabSize) throw new FuselmError('E_INVALID_ARG', `token type ${t} is outside 0..${c.typeVocabSize - 1}`);
  }

  /** One forward pass over texts whose tokens fit maxTokens together; their hidden states, row after row. */
  async #forward(seqs: Sequence[]): Promise<Float32Array> {
    const ids = seqs.flatMap((s) => s.ids);
    this.#t.ids.write(Int32Array.from(ids));
    this.#t.posIds.write(Int32Array.from(seqs.flatMap((s) => s.ids.map((_, i) => i))));
    this.#t.typeIds.write(Int32Array.from(seqs.flatMap((s) => s.types)));
    const g = seqs.length === 1 ? this.#graph : this.#batchGraph(seqs.map((s) => s.ids.length));
    await g.run(ids.length, 0);
    return readF32Rows(this.#t.x, 0, ids.length);
  }

  /** Hidden states of one token sequence (all tokens real), with token types (default all 0). */
  encode(ids: number[], typeIds?: number[]): Promise<EncodeResult> {
    return this.#calls.run(async () => {
      const types = typeIds ?? new Array<number>(ids.length).fill(0);
      this.#check(ids, types);
      const hidden = await this.#forward([{ ids, types }]);
      if (!this.#poolGraph) return { hidden };
      this.#t.h0.write(hidden.slice(0, this.config.dim));
      await this.#poolGraph.run(1, 0);
      return { hidden, pooler: readF32Rows(this.#t.pool, 0, 1).map(Math.tanh) };
    });
  }

  /**
   * One embedding per text: its tokens' states pooled (mean, CLS or last), L2-normalized by
   * default. Texts are packed, in order, into forward passes of at most maxTokens tokens.
   */
  async embed(texts: string | string[], opts: EmbedOptions = {}): Promise<Float32Array[]> {
    const tok = this.tokenizer;
    if (!tok) throw new FuselmError('E_UNSUPPORTED', `${this.path}: the model has no tokenizer; use encode(ids)`);
    if (typeof opts !== 'object' || opts === null) throw new FuselmError('E_INVALID_ARG', 'embed() options must be an object');
    if (typeof texts !== 'string' && !(Array.isArray(texts) && texts.every((t) => typeof t === 'string')))
      throw new FuselmError('E_INVALID_ARG', 'embed() takes a string or an array of strings');
    if (opts.normalize !== undefined && typeof opts.normalize !== 'boolean') throw new FuselmError('E_INVALID_ARG', 'normalize must be a boolean');
    const pooling = opts.pooling ?? this.pooling;
    if (pooling !== 'mean' && pooling !== 'cls' && pooling !== 'last')
      throw new FuselmError('E_INVALID_ARG', `pooling must be 'mean', 'cls' or 'last', got '${pooling}'`);
    const seqs = (typeof texts === 'string' ? [texts] : texts).map((text): Sequence => {
      const ids = tok.encode(text, { addSpecial: true });
      return { ids, types: new Array<number>(ids.length).fill(0) };
    });
    return this.#calls.run(async () => {
      for (const s of seqs) this.#check(s.ids, s.types);
      const out: Float32Array[] = [];
      for (let i = 0; i < seqs.length; ) {
        let n = 0, j = i;
        while (j < seqs.length && n + seqs[j].ids.length <= this.maxTokens) n += seqs[j++].ids.length;
        const batch = seqs.slice(i, j);
        const hidden = await this.#forward(batch);
        let row0 = 0;
        for (const s of batch) {
          out.push(this.#pool(hidden, row0, s.ids.length, pooling, opts.normalize ?? true));
          row0 += s.ids.length;
        }
        i = j;
      }
      return out;
    });
  }

  /** The embedding of the n token states at rows row0 .. row0 + n - 1 of `hidden`. */
  #pool(hidden: Float32Array, row0: number, n: number, pooling: Pooling, normalize: boolean): Float32Array {
    const D = this.config.dim, e = new Float32Array(D);
    const rows = hidden.subarray(row0 * D, (row0 + n) * D);
    if (pooling === 'cls') e.set(rows.subarray(0, D));
    else if (pooling === 'last') e.set(rows.subarray((n - 1) * D));
    else {
      for (let t = 0; t < n; t++) for (let i = 0; i < D; i++) e[i] += rows[t * D + i];
      for (let i = 0; i < D; i++) e[i] /= n;
    }
    if (normalize) {
      let ss = 0;
      for (const v of e) ss += v * v;
      const s = ss > 0 ? 1 / Math.sqrt(ss) : 0;
      for (let i = 0; i < D; i++) e[i] *= s;
    }
    return e;
  }

  async dispose(): Promise<void> {
    await this.#calls.idle();
    if (!this.#w) return;
    this.#graph.dispose();
    for (const g of this.#batchGraphs.values()) g.dispose();
    this.#batchGraphs.clear();
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
  /** As loadModel's: 'auto' (CUDA when a device works, else the CPU), 'cpu' or 'cuda'. */
  device?: 'auto' | 'cpu' | 'cuda';
  threads?: number;
  impl?: NativeImpl;
  /** Weight format, as loadModel's: 'auto' (as stored), or convert every matrix to 'q8_0' or 'f16'. */
  dtype?: WeightDtype;
  /** Map a GGUF instead of reading it, as loadModel's (default true). */
  useMmap?: boolean;
}

/**
 * Loads a BERT model as an EmbeddingModel: a Hugging Face folder (its tokenizer.json when
 * present) or a GGUF (its tokenizer and pooling type), by path or model reference (loadModel's).
 */
export async function loadEmbeddingModel(ref: string, opts: LoadEmbeddingModelOptions = {}): Promise<EmbeddingModel> {
  if (typeof ref !== 'string' || ref.length === 0) throw new FuselmError('E_INVALID_ARG', 'the model path must be a non-empty string');
  if (typeof opts !== 'object' || opts === null) throw new FuselmError('E_INVALID_ARG', 'loadEmbeddingModel options must be an object');
  if (opts.useMmap !== undefined && typeof opts.useMmap !== 'boolean') throw new FuselmError('E_INVALID_ARG', `useMmap must be a boolean, got ${typeof opts.useMmap}`);
  const path = await resolveModelPath(ref);
  const dtype = checkWeightDtype(opts.dtype ?? 'auto', 'loadEmbeddingModel');
  if (!(await isDirectory(path))) return loadGgufEmbeddingModel(path, dtype, opts);
  const hf = await readHfFolder(path);
  const config = configFromHf(hf.rawConfig, hf.configPath);
  if (config.architecture !== 'bert')
    throw new FuselmError('E_UNSUPPORTED', `${path}: '${config.architecture}' is not an encoder; load it with loadModel()`);
  const st = await openSafetensorsFolder(path);
  const tokenizer = await loadTokenizer(path).catch((e) => {
    if (e instanceof FuselmError && e.code === 'E_UNSUPPORTED') return undefined;
    throw e;
  });
  return onBackend(opts, () => loadBertWeights(new HfTensors(st, path, ['bert.', ''], dtype), config), (w, be) => new EmbeddingModel(path, config, w, tokenizer, be));
}

async function loadGgufEmbeddingModel(path: string, dtype: WeightDtype, opts: LoadEmbeddingModelOptions): Promise<EmbeddingModel> {
  const f = await readGgufModel(path);
  const config = configFromGguf(f);
  if (config.architecture !== 'bert')
    throw new FuselmError('E_UNSUPPORTED', `${path}: '${config.architecture}' is not an encoder; load it with loadModel()`);
  const pooling = poolingFromGguf(f, config.architecture);
  const tokenizer = tokenizerFromGguf(f);
  if (tokenizer.vocabSize !== config.vocabSize)
    throw new FuselmError('E_FORMAT', `${path}: the tokenizer has ${tokenizer.vocabSize} tokens but token_embd.weight has ${config.vocabSize} rows`);
  const load = async () => {
    const mappings = (opts.useMmap ?? true) ? new GgufMappings() : undefined;
    try {
      return await loadBertGgufWeights(f, config, dtype, mappings);
    } finally {
      await mappings?.close(); // the views hold the mapping from here on
    }
  };
  return onBackend(opts, load, (w, be) => new EmbeddingModel(path, config, w, tokenizer, be, pooling));
}

/** Loads the weights on the host, then makes the model on the CPU or uploads them to the CUDA device. */
async function onBackend(
  opts: LoadEmbeddingModelOptions,
  load: () => Promise<BertWeights>,
  make: (w: BertWeights, be: Backend) => EmbeddingModel,
): Promise<EmbeddingModel> {
  const device = resolveDevice(opts.device);
  const be: Backend = device === 'cpu' ? new CpuBackend({ threads: opts.threads, impl: opts.impl }) : new CudaBackend({ emulated: device === 'cuda-emulated' });
  let w: BertWeights | undefined;
  try {
    w = await load();
    if (be.device !== 'cpu') {
      const host = w;
      w = uploadBertWeights(host, be);
      disposeBertWeights(host);
    }
    return make(w, be);
  } catch (e) {
    if (w) disposeBertWeights(w);
    be.dispose();
    throw e;
  }
}
