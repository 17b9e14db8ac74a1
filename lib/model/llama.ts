/**
 * The decoder forward pass, composed from backend ops: token embedding, then per layer
 * RMSNorm → Q/K/V projections → RoPE → KV cache → causal GQA attention → output projection →
 * residual, RMSNorm → SwiGLU MLP → residual; final RMSNorm and the vocabulary projection.
 * The op list is built once into a native graph, so a forward step is one native call.
 * The same pass runs the other decoders, as the config says: Mistral (a sliding window in
 * attention), Qwen2 (q/k/v biases), GPT-2 (LayerNorm with biases, learned absolute positions
 * added to the embeddings instead of RoPE, biases everywhere, a GELU MLP), and the sinusoidal
 * positions of the original Transformer (a fixed table in place of the learned one), and
 * mixtures of experts in place of the MLP (Mixtral, Qwen2-MoE, Qwen3-MoE: #moeFfn).
 */
import type { NativeDType, NativeTensor } from '../../bindings.js';
import { type Backend, type Graph, graphInSlices, ops, type SeqSpan } from '../backend.js';
import { GgmlType } from '../formats/ggml-types.js';
import type { GgufFile } from '../formats/gguf.js';
import { FuselmError } from '../errors.js';
import { callAsync, native } from '../native.js';
import type { GraphNode } from '../ops/table.js';
import { emptyTensor, readF32Rows, tensorFromF32 } from '../tensor.js';
import type { ModelConfig } from './config.js';
import type { LoraModule, LoraSet } from './lora.js';
import { type GgufMappings, hasTensor, loadGgufTensor, stackTensors, type WeightDtype } from './weights.js';

export interface LayerWeights {
  attnNorm: NativeTensor;
  wq: NativeTensor;
  wk: NativeTensor;
  wv: NativeTensor;
  wo: NativeTensor;
  ffnNorm: NativeTensor;
  /** Absent for the plain (non-gated) GELU MLP. With experts (config.moe): the shared expert's, if any. */
  wGate?: NativeTensor;
  wUp?: NativeTensor;
  wDown?: NativeTensor;
  /** Mixture of experts: the router [experts, dim] and the experts stacked [experts, ff, dim] ([experts, dim, ff] down). */
  router?: NativeTensor;
  gateExps?: NativeTensor;
  upExps?: NativeTensor;
  downExps?: NativeTensor;
  /** Qwen2-MoE: the shared expert's gate [dim] (its output times sigmoid(x · gate)). */
  sharedGate?: NativeTensor;
  /** Per-head RMSNorm weights [headDim] of q and k (config.qkNorm: Qwen3, Gemma-3). */
  qNorm?: NativeTensor;
  kNorm?: NativeTensor;
  /** Gemma-2's norms of the attention's and the MLP's outputs (config.sandwichNorms). */
  postAttnNorm?: NativeTensor;
  postFfnNorm?: NativeTensor;
  /** Biases, as the config's `biases` and `normType` say (Qwen2: q/k/v; GPT-2: all). */
  bq?: NativeTensor;
  bk?: NativeTensor;
  bv?: NativeTensor;
  bo?: NativeTensor;
  attnNormB?: NativeTensor;
  ffnNormB?: NativeTensor;
  bUp?: NativeTensor;
  bDown?: NativeTensor;
}

export interface LlamaWeights {
  tokenEmbd: NativeTensor;
  /** Absolute positions added to the embeddings: learned (GPT-2) or sinusoidal. [ctx, dim] f32. */
  posEmbd?: NativeTensor;
  layers: LayerWeights[];
  outputNorm: NativeTensor;
  outputNormB?: NativeTensor;
  /** The vocabulary projection; the token embedding itself when the model ties them. */
  output: NativeTensor;
  /**
   * Rope frequency divisors [ropeDims / 2], all the model's combined (ropeFactors): a GGUF's
   * rope_freqs.weight (Llama-3.1), LongRoPE's short or long factors, and those computed from
   * the config (llama3 from a config.json, YaRN).
   */
  ropeFreqs?: NativeTensor;
}

/**
 * The divisors of every rotated pair, as one list: the file's own (`file`: a GGUF's rope_freqs),
 * LongRoPE's short factors, or its long ones when the context is longer than the original one
 * (as llama.cpp chooses, once, by the context size), and the config's computed ones, multiplied.
 * Undefined when there are none.
 */
export function ropeFactors(
  c: ModelConfig,
  contextSize: number,
  file: { freqs?: ArrayLike<number>; short?: ArrayLike<number>; long?: ArrayLike<number> } = {},
): Float32Array | undefined {
  const lr = c.ropeLongrope;
  const long = lr !== undefined && contextSize > lr.original;
  const longrope = lr && (long ? (file.long ?? lr.long) : (file.short ?? lr.short));
  if (lr && !longrope) throw new FuselmError('E_FORMAT', `LongRoPE scaling without its ${long ? 'long' : 'short'} factors`);
  const parts = [file.freqs, longrope, c.ropeFreqFactors].filter((p): p is ArrayLike<number> => !!p);
  if (!parts.length) return undefined;
  return Float32Array.from({ length: c.ropeDims / 2 }, (_, i) => parts.reduce((p, f) => p * f[i], 1));
}

/**
 * Loads every weight of a llama-family GGUF (llama, qwen2, qwen3, qwen2moe, qwen3moe, phi3, gemma, gemma2, gemma3) with the shapes the config implies.
 * A tensor the file holds and this model does not read is an E_UNSUPPORTED naming it: it
 * would change the numbers (as Llama-3.1's rope_freqs did before it was read).
 */
export async function loadLlamaWeights(
  f: GgufFile,
  c: ModelConfig,
  o: { contextSize: number; dtype?: WeightDtype; blocks?: ReadonlySet<NativeDType>; mappings?: GgufMappings; onProgress?: (loaded: number, total: number) => void },
): Promise<LlamaWeights> {
  const { dtype = 'auto', blocks, mappings, onProgress } = o;
  const kv = c.nKvHeads * c.headDim, q = c.nHeads * c.headDim;
  const total = f.tensors.length;
  const read = new Set<string>();
  const held: NativeTensor[] = [];
  const load = async (name: string, shape: number[], rows?: { start: number; total: number }) => {
    const t = await loadGgufTensor(f, name, shape, { dtype, rows, blocks, mappings });
    held.push(t);
    read.add(name);
    onProgress?.(read.size, total);
    return t;
  };
  try {
    const tokenEmbd = await load('token_embd.weight', [c.vocabSize, c.dim]);
    // rope divisors: read as numbers, combined into one tensor
    const values = async (name: string) => {
      if (!hasTensor(f, name)) return undefined;
      const t = await load(name, [c.ropeDims / 2]);
      try {
        return new Float32Array(t.read());
      } finally {
        t.free();
      }
    };
    const factors = ropeFactors(c, o.contextSize, {
      freqs: await values('rope_freqs.weight'), short: await values('rope_factors_short.weight'), long: await values('rope_factors_long.weight'),
    });
    const ropeFreqs = factors ? tensorFromF32('f32', [factors.length], factors) : undefined;
    if (ropeFreqs) held.push(ropeFreqs);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const t = (n: string, shape: number[]) => load(`blk.${l}.${n}.weight`, shape);
      // Phi-3 stores q, k and v as one attn_qkv, and the MLP's gate and up as one ffn_up (gate
      // first): each part is a slice of rows
      const qkv = hasTensor(f, `blk.${l}.attn_qkv.weight`), fusedUp = c.architecture === 'phi3';
      const part = (n: string, start: number, rows: number, total: number) => load(`blk.${l}.${n}.weight`, [rows, c.dim], { start, total });
      const L: LayerWeights = {
        attnNorm: await t('attn_norm', [c.dim]),
        wq: qkv ? await part('attn_qkv', 0, q, q + 2 * kv) : await t('attn_q', [q, c.dim]),
        wk: qkv ? await part('attn_qkv', q, kv, q + 2 * kv) : await t('attn_k', [kv, c.dim]),
        wv: qkv ? await part('attn_qkv', q + kv, kv, q + 2 * kv) : await t('attn_v', [kv, c.dim]),
        wo: await t('attn_output', [c.dim, q]),
        ffnNorm: await t('ffn_norm', [c.dim]),
        ...(c.moe
          ? await loadGgufExperts(f, c, l, t, async (n, shape) => {
              const w = await loadSplitExperts(f, l, n, c.moe!.experts, shape, { dtype, blocks, mappings });
              held.push(w);
              for (let e = 0; e < c.moe!.experts; e++) read.add(`blk.${l}.${n}.${e}.weight`);
              onProgress?.(read.size, total);
              return w;
            })
          : {
              wGate: fusedUp ? await part('ffn_up', 0, c.ffnDim, 2 * c.ffnDim) : await t('ffn_gate', [c.ffnDim, c.dim]),
              wUp: fusedUp ? await part('ffn_up', c.ffnDim, c.ffnDim, 2 * c.ffnDim) : await t('ffn_up', [c.ffnDim, c.dim]),
              wDown: await t('ffn_down', [c.dim, c.ffnDim]),
            }),
      };
      if (c.qkNorm) {
        L.qNorm = await t('attn_q_norm', [c.headDim]);
        L.kNorm = await t('attn_k_norm', [c.headDim]);
      }
      if (c.sandwichNorms) {
        L.postAttnNorm = await t('post_attention_norm', [c.dim]);
        L.postFfnNorm = await t('post_ffw_norm', [c.dim]);
      }
      if (c.biases === 'qkv') {
        L.bq = await load(`blk.${l}.attn_q.bias`, [q]);
        L.bk = await load(`blk.${l}.attn_k.bias`, [kv]);
        L.bv = await load(`blk.${l}.attn_v.bias`, [kv]);
      }
      layers.push(L);
    }
    const outputNorm = await load('output_norm.weight', [c.dim]);
    const output = hasTensor(f, 'output.weight') ? await load('output.weight', [c.vocabSize, c.dim]) : tokenEmbd;
    const w: LlamaWeights = { tokenEmbd, layers, outputNorm, output, ropeFreqs };
    const unread = f.tensors.map((t) => t.name).filter((n) => !read.has(n));
    if (unread.length)
      throw new FuselmError('E_UNSUPPORTED', `${f.path}: tensor${unread.length > 1 ? 's' : ''} ${unread.slice(0, 8).join(', ')}${unread.length > 8 ? ', ...' : ''} of this ${c.architecture} model ${unread.length > 1 ? 'are' : 'is'} not supported (fuselm would ignore ${unread.length > 1 ? 'them' : 'it'} and compute something else)`);
    return w;
  } catch (e) {
    for (const t of held) t.free(); // a failed load holds no memory (nor a mapped file) until GC
    throw e;
  }
}

/**
 * A layer's experts from a GGUF (llama.cpp's names): the router ffn_gate_inp, the stacked
 * ffn_{gate,up,down}_exps, and Qwen2-MoE's shared expert ffn_{gate,up,down}_shexp with its gate
 * ffn_gate_inp_shexp. A tensor of another shape (an expert count that does not match
 * expert_count, a router of the wrong width) is an E_FORMAT naming it (loadGgufTensor). Older
 * Mixtral conversions store each expert as its own tensor (ffn_gate.E, ffn_up.E, ffn_down.E):
 * those are stacked at load (`split`, loadSplitExperts).
 */
async function loadGgufExperts(
  f: GgufFile,
  c: ModelConfig,
  l: number,
  t: (name: string, shape: number[]) => Promise<NativeTensor>,
  split: (name: string, shape: number[]) => Promise<NativeTensor>,
): Promise<Partial<LayerWeights>> {
  const m = c.moe!, E = m.experts, F = m.expertFfnDim;
  const stack = (n: string, shape: number[]) =>
    !hasTensor(f, `blk.${l}.${n}_exps.weight`) && hasTensor(f, `blk.${l}.${n}.0.weight`) ? split(n, shape) : t(`${n}_exps`, [E, ...shape]);
  return {
    router: await t('ffn_gate_inp', [E, c.dim]),
    gateExps: await stack('ffn_gate', [F, c.dim]),
    upExps: await stack('ffn_up', [F, c.dim]),
    downExps: await stack('ffn_down', [c.dim, F]),
    ...(m.sharedExpert
      ? {
          sharedGate: await t('ffn_gate_inp_shexp', [c.dim]),
          wGate: await t('ffn_gate_shexp', [c.ffnDim, c.dim]),
          wUp: await t('ffn_up_shexp', [c.ffnDim, c.dim]),
          wDown: await t('ffn_down_shexp', [c.dim, c.ffnDim]),
        }
      : {}),
  };
}

/**
 * Experts 0 .. count - 1 of layer l stored one tensor each (blk.l.name.E.weight, each `shape`),
 * copied into one [count, ...shape] tensor as moe_matmul reads them; this costs the experts'
 * bytes in memory of their own (not the mapped file's pages) and one copy at load, as llama.cpp
 * pays for such files (it merges them with mmap off). A missing expert, one of another shape
 * or type than expert 0's, or one past the count is an E_FORMAT naming the tensor.
 */
async function loadSplitExperts(
  f: GgufFile,
  l: number,
  name: string,
  count: number,
  shape: number[],
  o: { dtype: WeightDtype; blocks?: ReadonlySet<NativeDType>; mappings?: GgufMappings },
): Promise<NativeTensor> {
  const tensorName = (e: number) => `blk.${l}.${name}.${e}.weight`;
  if (hasTensor(f, tensorName(count)))
    throw new FuselmError('E_FORMAT', `${f.path}: tensor '${tensorName(count)}' is past the file's expert count, ${count}`);
  const type0 = f.tensorByName.get(tensorName(0))!.type;
  const parts: NativeTensor[] = [];
  try {
    for (let e = 0; e < count; e++) {
      const info = f.tensorByName.get(tensorName(e));
      if (info && info.type !== type0)
        throw new FuselmError('E_FORMAT', `${f.path}: tensor '${tensorName(e)}' is of type ${GgmlType[info.type] ?? info.type}, expert 0's of ${GgmlType[type0] ?? type0}: one layer's experts must share a type`);
      parts.push(await loadGgufTensor(f, tensorName(e), shape, o));
    }
    return stackTensors(parts);
  } finally {
    for (const p of parts) p.free();
  }
}

/** Rows row0 .. row0 + rows - 1 of a step, sequence seq's, at the position in slot `slot` (forwardSpans). */
interface RowSpan {
  seq: number;
  row0: number;
  rows: number;
  slot: number;
}

/** forwardSpans' graphs kept (a scheduler's steps repeat a few layouts while its sequences decode). */
const SPAN_GRAPHS = 8;

/** KV cache positions allocated at first; they double as a conversation grows (#ensureCapacity). */
const INITIAL_CACHE_POSITIONS = 256;

export interface LlamaStateOptions {
  /** KV cache positions (per sequence). */
  contextSize: number;
  /** Most tokens evaluated in one forward call (prompt batches). */
  batchSize: number;
  /** Sequences with a KV cache of their own, decoded together by forwardBatch (default 1). */
  sequences?: number;
  /**
   * A prefix every sequence shares (beam search: the prompt, evaluated once, in another state's
   * caches, one per layer): its len positions come first, and the sequences' own caches hold
   * the positions after it (contextSize of them), so forwardBatch positions count from len.
   */
  prefix?: { k: NativeTensor[]; v: NativeTensor[]; len: number };
  /**
   * A paged KV cache (a server's): one pool per layer of `blocks` blocks of `blockSize`
   * positions, shared by the sequences, each reading and writing through its row of a block
   * table (setBlocks) that its caller fills. Such a state steps with forwardSpans only.
   */
  paged?: { blockSize: number; blocks: number };
}

/**
 * Activations, KV caches and graphs for one or more sequences, in the backend's memory (the
 * token ids, positions and logits in host memory). forward() evaluates tokens of
 * one sequence at its next positions; forwardBatch() takes one token of every sequence in a
 * single step, so the weights are read once for all of them.
 */
export class LlamaState {
  readonly contextSize: number;
  readonly batchSize: number;
  readonly sequences: number;
  #c: ModelConfig;
  #w: LlamaWeights;
  #be: Backend;
  #ids: NativeTensor;
  /** Absolute position of each row, for an added position table. */
  #posIds: NativeTensor;
  /**
   * forwardBatch's positions: slot s (absolute) for rope, with a prefix also slot S + s (own cache
   * row); forwardSpans': slot s a span's first row, S + s its last (#spanLayout).
   */
  #positions: NativeTensor;
  #prefix: LlamaStateOptions['prefix'];
  #acts: Record<'x' | 'xb' | 'xb2' | 'q' | 'k' | 'v' | 'att' | 'hb' | 'hb2', NativeTensor>;
  /**
   * A mixture of experts' activations: router logits [B, E], each row's chosen experts and
   * weights [B, k], the chosen experts' hidden rows [B, k * ff]; the shared expert's gate logit,
   * its (constant) expert id and sigmoid weight [B, 1].
   */
  #moe: (Record<'logits' | 'ids' | 'weights' | 'hb' | 'hb2' | 'shLogit' | 'shIds' | 'shWeight', NativeTensor> & { dense?: Record<'hb' | 'hb2', NativeTensor> }) | undefined;
  /** [sequence][layer]; paged, [0][layer] is the pool of every sequence */
  #kCache: NativeTensor[][];
  #vCache: NativeTensor[][];
  /**
   * Positions the caches hold now. They start small and double (up to contextSize) when a step
   * needs more, so memory follows the positions actually used, not the context's length.
   */
  #capacity: number;
  #logitsLast: NativeTensor;
  #logitsAll: NativeTensor | undefined;
  /** Paged: the block table, i32 [sequences, blocks per context] in host memory. */
  #paged: { table: NativeTensor; blockSize: number; blocks: number } | undefined;
  /** Greedy steps: the logits stay in the backend's memory and only the argmax ids come back. */
  #greedy: { logits: NativeTensor; logitsAll?: NativeTensor; ids: NativeTensor } | undefined;
  /** Keyed by `${sequence}:${allLogits}`, and 'batch'. */
  #graphs = new Map<string, Graph>();
  #raw = new Map<NativeTensor, NativeTensor>();
  /**
   * LoRA adapters (lib/model/lora.ts): the stacked set the graphs apply, each sequence's weight
   * of each of its adapters, and the per-row scales [batchSize, adapters] the lora ops read.
   */
  #lora: { set: LoraSet; weights: Float32Array[]; scales: NativeTensor } | undefined;

  constructor(c: ModelConfig, w: LlamaWeights, be: Backend, o: LlamaStateOptions) {
    this.#c = c;
    this.#w = w;
    this.#be = be;
    this.contextSize = o.contextSize;
    this.sequences = o.sequences ?? 1;
    this.batchSize = Math.max(o.batchSize, this.sequences);
    const B = this.batchSize, q = c.nHeads * c.headDim, kv = c.nKvHeads * c.headDim;
    this.#ids = emptyTensor('i32', [B]);
    this.#posIds = emptyTensor('i32', [B]);
    this.#prefix = o.prefix;
    this.#positions = emptyTensor('i32', [this.sequences * 2]);
    const act = (cols: number) => be.empty('f32', [B, cols]);
    this.#acts = {
      x: act(c.dim), xb: act(c.dim), xb2: act(c.dim),
      q: act(q), k: act(kv), v: act(kv), att: act(q),
      hb: act(c.ffnDim), hb2: act(c.ffnDim),
    };
    const m = c.moe;
    this.#moe = m && {
      logits: act(m.experts), ids: be.empty('i32', [B, m.used]), weights: act(m.used),
      hb: act(m.used * m.expertFfnDim), hb2: act(m.used * m.expertFfnDim),
      shLogit: act(1), shIds: be.empty('i32', [B, 1]), shWeight: act(1),
      // the dense layers' MLP rows (MoeConfig.dense)
      dense: m.dense && { hb: act(m.dense.ffnDim), hb2: act(m.dense.ffnDim) },
    };
    this.#capacity = Math.min(o.contextSize, INITIAL_CACHE_POSITIONS);
    if (o.paged) {
      const { blockSize, blocks } = o.paged;
      if (!(Number.isInteger(blockSize) && blockSize >= 1 && Number.isInteger(blocks) && blocks >= 1))
        throw new FuselmError('E_INVALID_ARG', `paged KV cache: blockSize and blocks must be integers >= 1, got ${blockSize} and ${blocks}`);
      if (o.prefix) throw new FuselmError('E_INVALID_ARG', 'a paged KV cache takes no shared prefix');
      const perSeq = Math.ceil(o.contextSize / blockSize);
      this.#paged = { table: emptyTensor('i32', [this.sequences, perSeq]), blockSize, blocks };
      this.#paged.table.write(new Int32Array(this.sequences * perSeq).fill(-1));
      this.#capacity = blocks * blockSize;
    }
    const caches = () => Array.from({ length: o.paged ? 1 : this.sequences }, () => Array.from({ length: c.nLayers }, () => be.empty(be.kvDtype, [this.#capacity, kv])));
    this.#kCache = caches();
    this.#vCache = caches();
    this.#logitsLast = emptyTensor('f32', [1, c.vocabSize]);
  }

  /**
   * The op list of one forward step. `seq` >= 0: all rows belong to that sequence, at the run's
   * position; 'batch': row s is sequence s, at its own position; a list of spans: rows row0 ..
   * row0 + rows - 1 are sequence `seq`'s, from the position in its slot on. Logits of the last
   * `lastRows` rows only (into the logits' first rows), or of all rows (0); `tail` after them.
   * Made layer by layer as graphInSlices reads them, so a thousand layers' nodes are never alive
   * at once (a young generation full of them makes the garbage collector's pauses long).
   */
  *#nodes(logits: NativeTensor, lastRows: number, seq: number | 'batch' | readonly RowSpan[], tail: GraphNode[] = []): Generator<GraphNode> {
    const c = this.#c, w = this.#w, a = this.#acts;
    const rope = { headDim: c.headDim, nRot: c.ropeDims, thetaBase: c.ropeTheta, freqScale: c.ropeFreqScale, neox: c.ropeNeox, freqFactors: w.ropeFreqs, mscale: c.ropeMscale };
    // Gemma-3's sliding layers: their own base and scale, no factors
    const ropeSliding = c.ropeSliding && { ...rope, thetaBase: c.ropeSliding.theta, freqScale: c.ropeSliding.freqScale, freqFactors: undefined, mscale: undefined };
    // llama.cpp's 1.0f / sqrtf(head dim), rounded in f32 twice (head dim 96: one ulp below the rounded exact value)
    const attn = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, scale: c.attnScale ?? Math.fround(1 / Math.fround(Math.sqrt(c.headDim))), softcap: c.attnSoftcap };
    yield ops.embedding(a.x, w.tokenEmbd, this.#ids);
    if (c.embedScale) yield ops.scale(a.x, a.x, c.embedScale);
    if (w.posEmbd) yield* [ops.embedding(a.xb, w.posEmbd, this.#posIds), ops.add(a.x, a.x, a.xb)];
    const useRope = c.positional === 'rope';
    const norm = (out: NativeTensor, x: NativeTensor, wt: NativeTensor, b?: NativeTensor) =>
      c.normType === 'layer' ? ops.layerNorm(out, x, wt, b!, c.normEps) : ops.rmsNorm(out, x, wt, c.normEps);
    const bias = (t: NativeTensor, b?: NativeTensor) => (b ? [ops.addBias(t, t, b)] : []);
    // rope, the KV cache and attention run per sequence; everything else on all rows at once
    const spans: { s: number; span?: SeqSpan }[] =
      seq === 'batch'
        ? Array.from({ length: this.sequences }, (_, s) => ({ s, span: { row0: s, slot: s } }))
        : typeof seq === 'number'
          ? [{ s: seq }]
          : seq.map((r) => ({ s: r.seq, span: { row0: r.row0, rows: r.rows, slot: r.slot } }));
    const positional = (l: number) =>
      spans.flatMap(({ s, span }) => {
        const pre = this.#prefix;
        // with a prefix, the cache and attention work at the own cache's row (slot S + s)
        const row = pre && span ? { row0: s, slot: this.sequences + s } : span;
        const slidingLayer = !c.slidingLayers || c.slidingLayers[l];
        const window = slidingLayer ? c.slidingWindow : 0;
        const ropeL = ropeSliding && c.slidingLayers?.[l] ? ropeSliding : rope;
        const pg = this.#paged, paged = pg && { table: pg.table, blockSize: pg.blockSize, row: s };
        const attnL = { ...attn, window, ...(pre ? { prefix: { k: pre.k[l], v: pre.v[l], len: pre.len } } : {}), paged };
        const kc = this.#kCache[pg ? 0 : s][l], vc = this.#vCache[pg ? 0 : s][l];
        return [
          ...(useRope ? [ops.rope(a.q, { ...ropeL, nHeads: c.nHeads }, span), ops.rope(a.k, { ...ropeL, nHeads: c.nKvHeads }, span)] : []),
          ops.kvStore(kc, a.k, row, paged),
          ops.kvStore(vc, a.v, row, paged),
          ops.attention(a.att, a.q, kc, vc, attnL, row),
        ];
      });
    const post = (t?: NativeTensor) => (t ? [norm(a.xb2, a.xb2, t)] : []);
    const lora = this.#lora;
    for (const [l, L] of w.layers.entries()) {
      // a projection: its matmul, then the adapters' low-rank terms where some adapter targets it
      const proj = (y: NativeTensor, x: NativeTensor, m: LoraModule) => {
        const st = lora?.set.layers[l][m];
        return [ops.matmul(y, x, L[m]!), ...(st ? [ops.lora(y, x, { ...st, scales: lora!.scales })] : [])];
      };
      // the MLP of a layer from its input xb, added to the residual x (a mixture of experts'
      // dense layers: of their own width, in rows of their own)
      const ffn = (): GraphNode[] => {
        if (L.gateExps) return this.#moeFfn(L);
        const { hb, hb2 } = this.#moe?.dense ?? a;
        const mlp = !L.wGate
          ? [...proj(hb, a.xb, 'wUp'), ...bias(hb, L.bUp), ops.gelu(hb, hb, { tanh: c.mlp === 'gelu_tanh' })]
          : c.mlp === 'geglu_tanh'
            ? [...proj(hb, a.xb, 'wGate'), ...proj(hb2, a.xb, 'wUp'), ops.gelu(hb, hb, { tanh: true }), ops.mul(hb, hb, hb2)]
            : [...proj(hb, a.xb, 'wGate'), ...proj(hb2, a.xb, 'wUp'), ops.swiglu(hb, hb, hb2)];
        return [...mlp, ...proj(a.xb2, hb, 'wDown'), ...bias(a.xb2, L.bDown), ...post(L.postFfnNorm), ops.add(a.x, a.x, a.xb2)];
      };
      yield* [
        norm(a.xb, a.x, L.attnNorm, L.attnNormB),
        ...proj(a.q, a.xb, 'wq'),
        ...bias(a.q, L.bq),
        ...proj(a.k, a.xb, 'wk'),
        ...bias(a.k, L.bk),
        ...proj(a.v, a.xb, 'wv'),
        ...bias(a.v, L.bv),
        ...(L.qNorm && L.kNorm
          ? [ops.rmsNorm(a.q, a.q, L.qNorm, c.normEps, { groupSize: c.headDim }), ops.rmsNorm(a.k, a.k, L.kNorm, c.normEps, { groupSize: c.headDim })]
          : []),
        ...positional(l),
        ...proj(a.xb2, a.att, 'wo'),
        ...bias(a.xb2, L.bo),
        ...post(L.postAttnNorm),
        ops.add(a.x, a.x, a.xb2),
        norm(a.xb, a.x, L.ffnNorm, L.ffnNormB),
        ...ffn(),
      ];
    }
    yield norm(a.xb, a.x, w.outputNorm, w.outputNormB);
    if (c.finalSoftcap) {
      // the projection into a twin of the logits tensor in the backend's memory, then the cap
      const raw = this.#rawLogits(logits);
      yield* [ops.matmul(raw, a.xb, w.output, { lastRows }), ops.softcap(logits, raw, c.finalSoftcap)];
    } else yield ops.matmul(logits, a.xb, w.output, { lastRows });
    yield* tail;
  }

  /**
   * A mixture of experts' MLP on xb, added to x: the router's logits, each token's top-k experts
   * (moe_route), the chosen experts' gate and up projections (moe_matmul: each expert once over
   * the tokens routed to it), SwiGLU, and their down projections summed with the router's
   * weights straight into the residual; then Qwen2-MoE's shared expert, its down projection
   * added times sigmoid(xb · sharedGate) (a one-expert route with a sigmoid).
   */
  #moeFfn(L: LayerWeights): GraphNode[] {
    const c = this.#c.moe!, a = this.#acts, m = this.#moe!;
    return [
      ops.matmul(m.logits, a.xb, L.router!),
      ops.moeRoute(m.ids, m.weights, m.logits, { normalize: c.normalize }),
      ops.moeMatmul(m.hb, a.xb, L.gateExps!, m.ids),
      ops.moeMatmul(m.hb2, a.xb, L.upExps!, m.ids),
      ops.swiglu(m.hb, m.hb, m.hb2),
      ops.moeMatmul(a.x, m.hb, L.downExps!, m.ids, m.weights),
      ...(L.sharedGate
        ? [
            ops.matmul(a.hb, a.xb, L.wGate!),
            ops.matmul(a.hb2, a.xb, L.wUp!),
            ops.swiglu(a.hb, a.hb, a.hb2),
            ops.matmul(m.shLogit, a.xb, L.sharedGate),
            ops.moeRoute(m.shIds, m.shWeight, m.shLogit, { normalize: false, sigmoid: true }),
            ops.moeMatmul(a.x, a.hb, L.wDown!, m.shIds, m.shWeight),
          ]
        : []),
    ];
  }

  /** Soft-capped models: the uncapped logits of a logits tensor, [rows, vocab] in the backend's memory. */
  #rawLogits(logits: NativeTensor): NativeTensor {
    let raw = this.#raw.get(logits);
    if (!raw) this.#raw.set(logits, (raw = this.#be.empty('f32', logits.shape)));
    return raw;
  }

  #allLogits(): NativeTensor {
    return (this.#logitsAll ??= emptyTensor('f32', [this.batchSize, this.#c.vocabSize]));
  }

  /**
   * The adapters the next steps apply: `set` (undefined: none), and for each sequence its weight
   * of each of the set's adapters (scale · alpha / r is the op's; 0: not applied). Another set
   * rebuilds the graphs on their next use; new weights only change what the next run writes.
   */
  useLora(set: LoraSet | undefined, weights: Float32Array[] = []): void {
    if (set !== this.#lora?.set) {
      for (const g of this.#graphs.values()) g.dispose();
      this.#graphs.clear();
      this.#lora?.scales.free();
      this.#lora = set && { set, weights, scales: emptyTensor('f32', [this.batchSize, set.adapters.length]) };
    } else if (this.#lora) this.#lora.weights = weights;
  }

  /** The lora ops' scales of a run of `rows` rows, row r being sequence seqOf(r)'s. */
  #writeScales(rows: number, seqOf: (row: number) => number): void {
    const l = this.#lora;
    if (!l) return;
    const J = l.set.adapters.length;
    const out = new Float32Array(rows * J);
    for (let r = 0; r < rows; r++) {
      const w = l.weights[seqOf(r)];
      if (w) out.set(w, r * J);
    }
    l.scales.write(out);
  }

  /**
   * Grows the caches to hold positions 0 .. end - 1 (at most contextSize: beyond it the step
   * fails with E_CONTEXT_FULL): new caches of twice the positions (or more), made and the rows
   * so far copied over off the JS thread (growRows), and the graphs, which name the old ones,
   * rebuilt on their next use.
   */
  async #ensureCapacity(end: number): Promise<void> {
    if (this.#paged) throw new FuselmError('E_INVALID_ARG', 'a paged KV cache steps with forwardSpans');
    if (end <= this.#capacity || this.#capacity >= this.contextSize) return;
    let cap = this.#capacity;
    while (cap < end) cap *= 2;
    cap = Math.min(cap, this.contextSize);
    const old = [...this.#kCache.flat(), ...this.#vCache.flat()];
    const fresh = await callAsync(() => native().growRows(old, cap));
    const L = this.#c.nLayers, S = this.sequences;
    this.#kCache = Array.from({ length: S }, (_, s) => fresh.slice(s * L, (s + 1) * L));
    this.#vCache = Array.from({ length: S }, (_, s) => fresh.slice((S + s) * L, (S + s + 1) * L));
    for (const t of old) t.free();
    this.#capacity = cap;
    for (const g of this.#graphs.values()) g.dispose();
    this.#graphs.clear();
  }

  /** The graph of `key`, built (in slices: graphInSlices) on first use. */
  async #graph(key: string, nodes: () => Iterable<GraphNode>, positions?: NativeTensor): Promise<Graph> {
    let g = this.#graphs.get(key);
    if (!g) {
      g = await graphInSlices(this.#be, nodes(), this.batchSize, positions);
      this.#graphs.set(key, g);
    }
    return g;
  }

  /**
   * Evaluates ids (at most batchSize) of sequence `seq` (default 0) at positions pos ..
   * pos + ids.length - 1. Returns the logits of the last token [vocab], or with allLogits those
   * of every token [n * vocab].
   */
  async forward(ids: Int32Array, pos: number, opts: { allLogits?: boolean; seq?: number } = {}): Promise<Float32Array> {
    if (this.#prefix) throw new FuselmError('E_INVALID_ARG', 'a state with a shared prefix steps with forwardBatch');
    const seq = opts.seq ?? 0, all = opts.allLogits ?? false;
    await this.#ensureCapacity(pos + ids.length);
    const logits = all ? this.#allLogits() : this.#logitsLast;
    const g = await this.#graph(`${seq}:${all}`, () => this.#nodes(logits, all ? 0 : 1, seq));
    this.#ids.write(ids);
    if (this.#w.posEmbd) this.#posIds.write(Int32Array.from(ids, (_, t) => pos + t));
    this.#writeScales(ids.length, () => seq);
    await g.run(ids.length, pos);
    return readF32Rows(logits, 0, all ? ids.length : 1);
  }

  /**
   * forward() of one token of sequence `seq` for a greedy step: the argmax of its logits (the
   * lowest id on ties), taken by the backend, so only the id leaves it.
   */
  async forwardArgmax(id: number, pos: number, seq = 0): Promise<number> {
    await this.#ensureCapacity(pos + 1);
    const gr = this.#greedyTensors();
    const g = await this.#graph(`${seq}:argmax`, () => this.#nodes(gr.logits, 1, seq, [ops.argmax(gr.ids, gr.logits)]));
    this.#ids.write(Int32Array.of(id));
    if (this.#w.posEmbd) this.#posIds.write(Int32Array.of(pos));
    this.#writeScales(1, () => seq);
    await g.run(1, pos);
    return new Int32Array(gr.ids.read(0, 4))[0];
  }

  /** forwardBatch() for greedy steps of every sequence: the argmax id of each. */
  async forwardBatchArgmax(ids: Int32Array, positions: Int32Array): Promise<Int32Array> {
    await this.#ensureCapacity(Math.max(...positions) + 1);
    const gr = this.#greedyTensors();
    gr.logitsAll ??= this.#be.empty('f32', [this.batchSize, this.#c.vocabSize]);
    const logits = gr.logitsAll;
    const g = await this.#graph('batch:argmax', () => this.#nodes(logits, 0, 'batch', [ops.argmax(gr.ids, logits)]), this.#positions);
    this.#ids.write(ids);
    this.#writePositions(positions);
    this.#writeScales(this.sequences, (r) => r);
    await g.run(this.sequences, 0);
    return new Int32Array(gr.ids.read(0, this.sequences * 4));
  }

  /**
   * One forward over spans of several sequences (a scheduler's step: prompt chunks and decode
   * tokens together, the weights read once): span i evaluates `ids` of sequence `seq` at
   * positions pos .. pos + ids.length - 1 (its cache must hold the positions before pos), at most
   * batchSize tokens in all, each sequence at most once. Returns each span's last-token logits;
   * only those rows go through the vocabulary projection (#spanLayout).
   */
  async forwardSpans(spans: readonly { seq: number; ids: ArrayLike<number>; pos: number }[]): Promise<Float32Array[]> {
    if (this.#prefix) throw new FuselmError('E_INVALID_ARG', 'a state with a shared prefix steps with forwardBatch');
    const seen = new Set<number>();
    let rows = 0, end = 0;
    for (const sp of spans) {
      if (!(Number.isInteger(sp.seq) && sp.seq >= 0 && sp.seq < this.sequences) || seen.has(sp.seq))
        throw new FuselmError('E_INVALID_ARG', `forwardSpans: sequence ${sp.seq} is not one of 0..${this.sequences - 1} or comes twice`);
      if (sp.ids.length < 1 || !(Number.isInteger(sp.pos) && sp.pos >= 0)) throw new FuselmError('E_INVALID_ARG', `forwardSpans: sequence ${sp.seq} has ${sp.ids.length} tokens at position ${sp.pos}`);
      seen.add(sp.seq);
      rows += sp.ids.length;
      end = Math.max(end, sp.pos + sp.ids.length);
    }
    if (rows < 1 || rows > this.batchSize) throw new FuselmError('E_INVALID_ARG', `forwardSpans: ${rows} tokens, expected 1..${this.batchSize}`);
    if (!this.#paged) await this.#ensureCapacity(end);
    const layout = this.#spanLayout(spans.map((sp) => ({ seq: sp.seq, rows: sp.ids.length })));
    const logits = this.#allLogits();
    const key = `spans:${layout.map((r) => `${r.seq}x${r.rows}@${r.slot}`).join(',')}`;
    const g = await this.#spanGraph(key, () => this.#nodes(logits, spans.length, layout));
    const ids = new Int32Array(rows), positions = new Int32Array(2 * this.sequences), posIds = new Int32Array(rows);
    const bySeq = new Map(spans.map((sp) => [sp.seq, sp]));
    for (const r of layout) {
      const sp = bySeq.get(r.seq)!;
      const first = r.slot < this.sequences ? 0 : sp.ids.length - 1; // the span's first rows, or its last
      for (let t = 0; t < r.rows; t++) {
        ids[r.row0 + t] = sp.ids[first + t];
        posIds[r.row0 + t] = sp.pos + first + t;
      }
      positions[r.slot] = sp.pos + first;
    }
    this.#ids.write(ids);
    this.#positions.write(positions);
    if (this.#w.posEmbd) this.#posIds.write(posIds);
    const rowSeq = layout.flatMap((r) => Array<number>(r.rows).fill(r.seq));
    this.#writeScales(rows, (r) => rowSeq[r]);
    await g.run(rows, 0);
    return spans.map((_, i) => readF32Rows(logits, i, 1));
  }

  /**
   * The rows of a forwardSpans step: every span's last row goes to the end, in span order, so
   * the vocabulary projection runs on those rows only (matmul's lastRows), not on every prompt
   * row. A span of n > 1 tokens is two row ranges of its sequence: its first n - 1 rows at the
   * front (position slot s), its last row at the back (slot S + s). Within a layer the front
   * ranges store their keys and values before the back rows attend, so each last row sees its
   * whole span.
   */
  #spanLayout(spans: readonly { seq: number; rows: number }[]): RowSpan[] {
    const layout: RowSpan[] = [];
    let row0 = 0;
    for (const sp of spans)
      if (sp.rows > 1) {
        layout.push({ seq: sp.seq, row0, rows: sp.rows - 1, slot: sp.seq });
        row0 += sp.rows - 1;
      }
    for (const sp of spans) layout.push({ seq: sp.seq, row0: row0++, rows: 1, slot: this.sequences + sp.seq });
    return layout;
  }

  /** #graph for forwardSpans' layouts, of which the most recently used SPAN_GRAPHS are kept. */
  async #spanGraph(key: string, nodes: () => Iterable<GraphNode>): Promise<Graph> {
    const g = this.#graphs.get(key);
    if (g) {
      // most recently used last
      this.#graphs.delete(key);
      this.#graphs.set(key, g);
      return g;
    }
    const kept = [...this.#graphs.keys()].filter((k) => k.startsWith('spans:'));
    for (const k of kept.slice(0, Math.max(0, kept.length - SPAN_GRAPHS + 1))) {
      this.#graphs.get(k)!.dispose();
      this.#graphs.delete(k);
    }
    return this.#graph(key, nodes, this.#positions);
  }

  /** Each sequence's position (after the prefix, if any: its own cache row) for a batched step. */
  #writePositions(positions: Int32Array): void {
    const P = this.#prefix?.len;
    const abs = P === undefined ? positions : Int32Array.from(positions, (p) => p + P);
    this.#positions.write(P === undefined ? positions : Int32Array.from([...abs, ...positions]));
    if (this.#w.posEmbd) this.#posIds.write(abs);
  }

  /**
   * Paged: sequence `seq`'s positions i * blockSize .. (i + 1) * blockSize - 1 live in pool block
   * blocks[i] (blocks 0 .. blocks.length - 1 of its table row; the rest of the row is left as it
   * was). The next forwardSpans reads and writes through it.
   */
  setBlocks(seq: number, blocks: readonly number[]): void {
    const pg = this.#paged;
    if (!pg) throw new FuselmError('E_INVALID_ARG', 'setBlocks: the KV cache is not paged');
    const perSeq = pg.table.shape[1];
    if (!(Number.isInteger(seq) && seq >= 0 && seq < this.sequences) || blocks.length > perSeq)
      throw new FuselmError('E_INVALID_ARG', `setBlocks: sequence ${seq} of 0..${this.sequences - 1}, ${blocks.length} blocks of at most ${perSeq}`);
    for (const b of blocks)
      if (!(Number.isInteger(b) && b >= 0 && b < pg.blocks)) throw new FuselmError('E_INVALID_ARG', `setBlocks: block ${b} is not one of the pool's 0..${pg.blocks - 1}`);
    if (blocks.length) pg.table.write(Int32Array.from(blocks), seq * perSeq * 4);
  }

  /**
   * Paged: positions 0 .. rows - 1 of pool block `to` become those of block `from` (keys and
   * values, every layer): a block shared up to some row gets a copy its new holder can write
   * past that row. Through host memory on a device (a few KiB per layer).
   */
  copyBlockRows(from: number, to: number, rows: number): void {
    const pg = this.#paged;
    if (!pg) throw new FuselmError('E_INVALID_ARG', 'copyBlockRows: the KV cache is not paged');
    for (const b of [from, to])
      if (!(Number.isInteger(b) && b >= 0 && b < pg.blocks)) throw new FuselmError('E_INVALID_ARG', `copyBlockRows: block ${b} is not one of the pool's 0..${pg.blocks - 1}`);
    if (!(Number.isInteger(rows) && rows >= 0 && rows <= pg.blockSize)) throw new FuselmError('E_INVALID_ARG', `copyBlockRows: ${rows} rows of a block of ${pg.blockSize}`);
    if (rows === 0 || from === to) return;
    for (const t of [...this.#kCache[0], ...this.#vCache[0]]) {
      const rowBytes = t.nbytes / t.shape[0];
      t.write(new Uint8Array(t.read(from * pg.blockSize * rowBytes, rows * rowBytes)), to * pg.blockSize * rowBytes);
    }
  }

  /** Bytes of all the KV caches as allocated now (every sequence and layer, K and V). */
  get kvCacheBytes(): number {
    return [...this.#kCache.flat(), ...this.#vCache.flat()].reduce((n, t) => n + t.nbytes, 0);
  }

  /** The KV caches of sequence `seq`, one per layer (a prefix for another state). */
  caches(seq: number): { k: NativeTensor[]; v: NativeTensor[] } {
    if (this.#paged) throw new FuselmError('E_INVALID_ARG', 'caches: a paged KV cache is one pool');
    return { k: this.#kCache[seq], v: this.#vCache[seq] };
  }

  /**
   * Sequence s's cache rows 0 .. rows-1 become those of sequence from[s] (beam search's
   * reordering: only the generated rows, never a shared prefix).
   */
  copyCacheRows(from: number[], rows: number): void {
    if (this.#paged) throw new FuselmError('E_INVALID_ARG', 'copyCacheRows: a paged KV cache moves blocks, not rows');
    const bytes = rows * this.#kCache[0][0].nbytes / this.#kCache[0][0].shape[0];
    if (bytes === 0) return;
    const moved = from.map((f, s) => (f === s ? undefined : f));
    const snap = new Map<number, ArrayBuffer[]>();
    for (const f of new Set(moved.filter((f): f is number => f !== undefined)))
      snap.set(f, [...this.#kCache[f], ...this.#vCache[f]].map((t) => t.read(0, bytes)));
    moved.forEach((f, s) => {
      if (f === undefined) return;
      const src = snap.get(f)!;
      [...this.#kCache[s], ...this.#vCache[s]].forEach((t, i) => t.write(new Uint8Array(src[i])));
    });
  }

  #greedyTensors() {
    return (this.#greedy ??= { logits: this.#be.empty('f32', [1, this.#c.vocabSize]), ids: emptyTensor('i32', [this.batchSize]) });
  }

  /**
   * One step of every sequence: ids[s] at positions[s] for sequence s. Returns the logits of
   * all of them [sequences * vocab].
   */
  async forwardBatch(ids: Int32Array, positions: Int32Array): Promise<Float32Array> {
    await this.#ensureCapacity(Math.max(...positions) + 1);
    const logits = this.#allLogits();
    const g = await this.#graph('batch', () => this.#nodes(logits, 0, 'batch'), this.#positions);
    this.#ids.write(ids);
    this.#writePositions(positions);
    this.#writeScales(this.sequences, (r) => r);
    await g.run(this.sequences, 0);
    return readF32Rows(logits, 0, this.sequences);
  }

  dispose(): void {
    for (const g of this.#graphs.values()) g.dispose();
    this.#graphs.clear();
    const gr = this.#greedy;
    this.#lora?.scales.free();
    for (const t of [this.#ids, this.#posIds, this.#positions, this.#paged?.table, ...Object.values(this.#acts), ...Object.values({ ...this.#moe, dense: undefined }), ...Object.values(this.#moe?.dense ?? {}), ...this.#kCache.flat(), ...this.#vCache.flat(), this.#logitsLast, this.#logitsAll, gr?.logits, gr?.logitsAll, gr?.ids, ...this.#raw.values()])
      t?.free();
  }
}

export function disposeLlamaWeights(w: LlamaWeights): void {
  w.tokenEmbd.free();
  w.output.free();
  w.outputNorm.free();
  w.outputNormB?.free();
  w.posEmbd?.free();
  w.ropeFreqs?.free();
  for (const L of w.layers) for (const t of Object.values(L)) t?.free();
}

/**
 * The backend's copy of every weight (a tensor shared by two roles, such as tied embeddings, is
 * copied once); the host tensors are freed. The CPU backend uses the weights as they are.
 */
export function uploadLlamaWeights(w: LlamaWeights, be: Backend): LlamaWeights {
  if (be.device === 'cpu') return w;
  const copies = new Map<NativeTensor, NativeTensor>();
  const up = (t: NativeTensor) => {
    let d = copies.get(t);
    if (!d) copies.set(t, (d = be.upload(t)));
    return d;
  };
  const upOpt = (t?: NativeTensor) => (t ? up(t) : undefined);
  try {
    const out: LlamaWeights = {
      tokenEmbd: up(w.tokenEmbd),
      posEmbd: upOpt(w.posEmbd),
      layers: w.layers.map((L) => Object.fromEntries(Object.entries(L).map(([k, t]) => [k, upOpt(t)])) as unknown as LayerWeights),
      outputNorm: up(w.outputNorm),
      outputNormB: upOpt(w.outputNormB),
      output: up(w.output),
      ropeFreqs: upOpt(w.ropeFreqs),
    };
    disposeLlamaWeights(w);
    return out;
  } catch (e) {
    for (const d of copies.values()) d.free();
    throw e;
  }
}
