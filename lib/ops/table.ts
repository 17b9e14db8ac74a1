/**
 * The op table as TypeScript sees it (ARCHITECTURE.md, "Ops"): each op's tensor roles and
 * parameters, the same as the addon's own table (native/ops/<op>.h, exported by opTable();
 * test/ops/cases.test.ts checks the two are equal), the node types derived from it, one typed
 * builder per op for the model code, and the case table.
 *
 * The case table: for every op, the cases it is checked and timed at. One table drives the
 * parity tests (test/ops/cases.test.ts: every CPU kernel level and the CUDA backend, emulated
 * or on a GPU, against the plain reference), `fuselm doctor` (the cases marked doctor),
 * `fuselm bench kernels` and `npm run bench -- kernels` (the bench cases, against the roofline
 * measured in the same run), as ggml's test-backend-ops does in its test and perf modes.
 * `Record<OpName, ...>` makes a new op a compile error until it has cases.
 */
import type { NativeDType, NativeTensor } from '../../bindings.js';
import { emptyTensor, tensorFromF32, tensorFromI32 } from '../tensor.js';

type Access = 'in' | 'out' | 'inout' | 'update';
interface RoleSpec {
  readonly access: Access;
  readonly required?: false;
  /** May stay in host memory on a device backend (token ids in; logits or ids out). */
  readonly host?: true;
}
interface ParamSpec {
  readonly type: 'float' | 'int' | 'bool';
  /** Absent: the parameter is required. */
  readonly default?: number | boolean;
}
interface OpSpec {
  readonly roles: Readonly<Record<string, RoleSpec>>;
  readonly params: Readonly<Record<string, ParamSpec>>;
  /** Takes a sequence span (row0, seqRows, posSlot) in batched graphs. */
  readonly positional?: true;
  /** Why the CUDA backend lacks it. */
  readonly noCuda?: string;
}

const IN = { access: 'in' } as const;
const OUT = { access: 'out' } as const;
const float = { type: 'float' } as const;
const int = { type: 'int' } as const;
const bool = { type: 'bool' } as const;
/** A paged cache's block table (PagedCache): i32 in host memory, copied whole to a device. */
const BLOCK_TABLE = { access: 'in', required: false, host: true } as const;
const PAGED_PARAMS = { blockSize: { type: 'int', default: 0 }, tableRow: { type: 'int', default: 0 } } as const;

export const OP_TABLE = {
  add: { roles: { out: OUT, a: IN, b: IN }, params: {} },
  add_bias: { roles: { out: OUT, x: IN, bias: IN }, params: {} },
  argmax: { roles: { ids: { access: 'out', host: true }, x: IN }, params: {} },
  attention: {
    roles: { out: OUT, q: IN, kCache: IN, vCache: IN, kPrefix: { access: 'in', required: false }, vPrefix: { access: 'in', required: false }, blockTable: BLOCK_TABLE },
    params: {
      nHeads: int, nKvHeads: int, headDim: int, scale: float, window: { type: 'int', default: 0 }, causal: { type: 'bool', default: true },
      prefixLen: { type: 'int', default: 0 }, softcap: { type: 'float', default: 0 }, ...PAGED_PARAMS,
    },
    positional: true,
  },
  embedding: { roles: { out: OUT, table: IN, ids: { access: 'in', host: true } }, params: {} },
  gelu: { roles: { out: OUT, x: IN }, params: { tanhApprox: bool } },
  relu: { roles: { out: OUT, x: IN }, params: {} },
  kv_store: { roles: { cache: { access: 'update' }, src: IN, blockTable: BLOCK_TABLE }, params: PAGED_PARAMS, positional: true },
  layer_norm: { roles: { out: OUT, x: IN, weight: IN, bias: IN }, params: { eps: float } },
  lora: { roles: { y: { access: 'inout' }, x: IN, a: IN, bt: IN, seg: { access: 'in', host: true }, scales: { access: 'in', host: true } }, params: {} },
  matmul: { roles: { out: { access: 'out', host: true }, x: IN, w: IN }, params: { lastRows: { type: 'int', default: 0 } } },
  mul: { roles: { out: OUT, a: IN, b: IN }, params: {} },
  moe_matmul: { roles: { out: { access: 'inout' }, x: IN, w: IN, ids: IN, weights: { access: 'in', required: false } }, params: {} },
  moe_route: { roles: { ids: OUT, weights: OUT, logits: IN }, params: { normalize: bool, sigmoid: { type: 'bool', default: false } } },
  rms_norm: { roles: { out: OUT, x: IN, weight: IN }, params: { eps: float, groupSize: { type: 'int', default: 0 } } },
  scale: { roles: { out: OUT, x: IN }, params: { s: float } },
  softcap: { roles: { out: { access: 'out', host: true }, x: IN }, params: { cap: float } },
  rope: {
    roles: { x: { access: 'inout' }, freqFactors: { access: 'in', required: false } },
    params: { nHeads: int, headDim: int, nRot: int, thetaBase: float, freqScale: { type: 'float', default: 1 }, neox: bool, mscale: { type: 'float', default: 1 } },
    positional: true,
  },
  swiglu: { roles: { out: OUT, gate: IN, up: IN }, params: {} },
  seq2seq_attention: {
    roles: { out: OUT, q: IN, kCache: IN, vCache: IN, posBias: { access: 'in', required: false } },
    params: { nHeads: int, headDim: int, scale: float, causal: bool, keys: { type: 'int', default: 0 } },
    positional: true,
  },
  transpose: {
    roles: { out: OUT, x: IN },
    params: { col0: { type: 'int', default: 0 } },
    noCuda: "transpose is a load-time layout change (GPT-2's Conv1D weights), run on the CPU before upload",
  },
} as const satisfies Record<string, OpSpec>;

export type OpName = keyof typeof OP_TABLE;
type Spec<N extends OpName> = (typeof OP_TABLE)[N];
type Roles<N extends OpName> = Spec<N>['roles'];
type Params<N extends OpName> = Spec<N>['params'];
type ParamValue<P> = P extends { type: 'bool' } ? boolean : number;
type SeqFields = { row0?: number; seqRows?: number; posSlot?: number };

/** A graph node of op N: its roles as tensors and its parameters, as the table declares them. */
export type OpNode<N extends OpName> = { op: N } & {
  [K in keyof Roles<N> as Roles<N>[K] extends { required: false } ? never : K]: NativeTensor;
} & {
  [K in keyof Roles<N> as Roles<N>[K] extends { required: false } ? K : never]?: NativeTensor;
} & {
  [K in keyof Params<N> as Params<N>[K] extends { default: unknown } ? never : K]: ParamValue<Params<N>[K]>;
} & {
  [K in keyof Params<N> as Params<N>[K] extends { default: unknown } ? K : never]?: ParamValue<Params<N>[K]>;
} & (Spec<N> extends { positional: true } ? SeqFields : unknown);

/** Any op's node. */
export type GraphNode = { [N in OpName]: OpNode<N> }[OpName];

/** The tensors of a node by role, in the table's order. */
export function nodeTensors(node: GraphNode): Array<[role: string, tensor: NativeTensor]> {
  const out: Array<[string, NativeTensor]> = [];
  for (const role of Object.keys(OP_TABLE[node.op].roles)) {
    const t = (node as unknown as Record<string, NativeTensor | undefined>)[role];
    if (t) out.push([role, t]);
  }
  return out;
}

/** The roles an op writes (out, inout, update). */
export function writtenRoles(op: OpName): string[] {
  return Object.entries(OP_TABLE[op].roles as Record<string, RoleSpec>)
    .filter(([, r]) => r.access !== 'in')
    .map(([name]) => name);
}

export interface RopeOptions {
  nHeads: number;
  headDim: number;
  /** Rotated dims per head (llama.cpp's rope dimension count); defaults to headDim. */
  nRot?: number;
  thetaBase: number;
  freqScale?: number;
  /** NeoX layout rotates (i, i + nRot/2); the llama layout rotates adjacent pairs (2i, 2i+1). */
  neox?: boolean;
  /** f32 [nRot/2]: pair i's angle is divided by it (Llama-3.1's rope scaling, llama.cpp's rope_freqs). */
  freqFactors?: NativeTensor;
  /** cos and sin times mscale (YaRN's and LongRoPE's attention factor); default 1. */
  mscale?: number;
}

export interface AttentionOptions {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Usually 1 / sqrt(headDim). */
  scale: number;
  /** Sliding window: key j is visible from query i iff 0 <= i - j < window (0 or absent: none). */
  window?: number;
  /** false: bidirectional (encoders), every key of the run is visible. Default true. */
  causal?: boolean;
  /** > 0: scores soft-capped to softcap * tanh(score / softcap) before the softmax (Gemma-2). */
  softcap?: number;
  /**
   * A shared prefix (beam search: the prompt, evaluated once for every beam): keys 0 .. len-1
   * are rows of k/v, key len + j is row j of the node's own caches, and positions count from
   * len.
   */
  prefix?: { k: NativeTensor; v: NativeTensor; len: number };
  /** The caches are a paged pool (never with a prefix). */
  paged?: PagedCache;
}

export interface Seq2seqAttentionOptions {
  nHeads: number;
  headDim: number;
  scale: number;
  causal: boolean;
  /** > 0: cross-attention over exactly this many cache rows (not causal). */
  keys?: number;
  /** f32 [nHeads, 2R + 1]: an additive bias per head and relative distance j - i, clamped to ±R. */
  posBias?: NativeTensor;
}

/**
 * A paged KV cache: the cache tensors are a pool of blocks of blockSize rows, and row `row` of
 * `table` (i32 [sequences, blocks per sequence], host memory) names the block holding each run
 * of blockSize positions: position p is cache row table[row][p / blockSize] * blockSize + p % blockSize.
 */
export interface PagedCache {
  table: NativeTensor;
  blockSize: number;
  row: number;
}

const pagedFields = (p?: PagedCache) => (p ? { blockTable: p.table, blockSize: p.blockSize, tableRow: p.row } : {});

/**
 * One sequence of a batch, for the position-dependent ops: its rows start at row0 (seqRows of
 * them, default 1) and its position is read from slot `slot` of the graph's positions tensor.
 */
export interface SeqSpan {
  row0: number;
  rows?: number;
  slot: number;
}

const seqFields = (s?: SeqSpan): SeqFields => (s ? { row0: s.row0, seqRows: s.rows ?? 1, posSlot: s.slot } : {});

/** Builders for graph nodes. Activations are f32 [rows, cols]; a run uses the first n rows. */
export const ops = {
  /** out = a + b */
  add: (out: NativeTensor, a: NativeTensor, b: NativeTensor): GraphNode => ({ op: 'add', out, a, b } satisfies OpNode<'add'>),
  /**
   * y[t] += Σ_j scales[t, j] · Σ_{k in seg j} (a[k] · x[t]) · bt[k]: LoRA adapters' low-rank terms
   * (a [R, K] and bt [R, N] f32 stacked by ranks, seg i32 [1, J + 1] each adapter's ranks, scales
   * [rows, J] f32 each row's weights; native/ops/lora.h)
   */
  lora: (y: NativeTensor, x: NativeTensor, l: { a: NativeTensor; bt: NativeTensor; seg: NativeTensor; scales: NativeTensor }): GraphNode => ({
    op: 'lora', y, x, a: l.a, bt: l.bt, seg: l.seg, scales: l.scales,
  } satisfies OpNode<'lora'>),
  /** out[t] = x[t] · wᵀ, w [N, K] in f32/f16/bf16/q8_0; lastRows > 0: only x's last lastRows rows, into out rows 0.. */
  matmul: (out: NativeTensor, x: NativeTensor, w: NativeTensor, opts: { lastRows?: number } = {}): GraphNode => ({
    op: 'matmul', out, x, w, lastRows: opts.lastRows ?? 0,
  } satisfies OpNode<'matmul'>),
  /** out = x / rms(x) * weight; with groupSize, each run of groupSize values of a row on its own (per-head q/k norms) */
  rmsNorm: (out: NativeTensor, x: NativeTensor, weight: NativeTensor, eps: number, opts: { groupSize?: number } = {}): GraphNode => ({
    op: 'rms_norm', out, x, weight, eps, ...(opts.groupSize ? { groupSize: opts.groupSize } : {}),
  } satisfies OpNode<'rms_norm'>),
  /** rotary embedding of x in place; token t sits at position pos + t */
  rope: (x: NativeTensor, o: RopeOptions, seq?: SeqSpan): GraphNode => ({
    op: 'rope', x, nHeads: o.nHeads, headDim: o.headDim, nRot: o.nRot ?? o.headDim, thetaBase: o.thetaBase,
    freqScale: o.freqScale ?? 1, neox: o.neox ?? false, ...(o.freqFactors ? { freqFactors: o.freqFactors } : {}),
    ...(o.mscale !== undefined && o.mscale !== 1 ? { mscale: o.mscale } : {}), ...seqFields(seq),
  } satisfies OpNode<'rope'>),
  /** cache[pos + t] = src[t], rounded to the cache's dtype (f32, f16, bf16); paged: through the block table */
  kvStore: (cache: NativeTensor, src: NativeTensor, seq?: SeqSpan, paged?: PagedCache): GraphNode => ({
    op: 'kv_store', cache, src, ...seqFields(seq), ...pagedFields(paged),
  } satisfies OpNode<'kv_store'>),
  /** causal attention of q over the cache rows 0..pos+t, GQA */
  attention: (out: NativeTensor, q: NativeTensor, kCache: NativeTensor, vCache: NativeTensor, o: AttentionOptions, seq?: SeqSpan): GraphNode => ({
    op: 'attention', out, q, kCache, vCache, nHeads: o.nHeads, nKvHeads: o.nKvHeads, headDim: o.headDim, scale: o.scale,
    window: o.window ?? 0, causal: o.causal ?? true, softcap: o.softcap ?? 0,
    ...(o.prefix ? { kPrefix: o.prefix.k, vPrefix: o.prefix.v, prefixLen: o.prefix.len } : {}),
    ...pagedFields(o.paged), ...seqFields(seq),
  } satisfies OpNode<'attention'>),
  /**
   * The encoder-decoder models' attention (MHA): causal, or over keys 0..keys-1 whatever the
   * position (cross-attention), or (keys 0) over the run's keys; with posBias f32
   * [nHeads, 2R+1], bias[h][clamp(j - i, -R, R) + R] is added to each score (T5).
   */
  seq2seqAttention: (out: NativeTensor, q: NativeTensor, kCache: NativeTensor, vCache: NativeTensor, o: Seq2seqAttentionOptions, seq?: SeqSpan): GraphNode => ({
    op: 'seq2seq_attention', out, q, kCache, vCache, nHeads: o.nHeads, headDim: o.headDim, scale: o.scale, causal: o.causal,
    keys: o.keys ?? 0, ...(o.posBias ? { posBias: o.posBias } : {}), ...seqFields(seq),
  } satisfies OpNode<'seq2seq_attention'>),
  /** out = a * b */
  mul: (out: NativeTensor, a: NativeTensor, b: NativeTensor): GraphNode => ({ op: 'mul', out, a, b } satisfies OpNode<'mul'>),
  /**
   * Mixture-of-experts router: ids [T, k] (i32) and weights [T, k] of the k largest of each row
   * of logits [T, E], scored by softmax (or a sigmoid per expert), renormalized to sum 1 if asked
   */
  moeRoute: (ids: NativeTensor, weights: NativeTensor, logits: NativeTensor, o: { normalize: boolean; sigmoid?: boolean }): GraphNode => ({
    op: 'moe_route', ids, weights, logits, normalize: o.normalize, sigmoid: o.sigmoid ?? false,
  } satisfies OpNode<'moe_route'>),
  /**
   * Expert projections: slot j of token t multiplies x[t] (or its j-th K-wide part) by expert
   * ids[t, j] of w [E, N, K]; into out [T, k * N], or with router weights [T, k]:
   * out[t] += sum_j weights[t, j] * result_j
   */
  moeMatmul: (out: NativeTensor, x: NativeTensor, w: NativeTensor, ids: NativeTensor, weights?: NativeTensor): GraphNode => ({
    op: 'moe_matmul', out, x, w, ids, ...(weights ? { weights } : {}),
  } satisfies OpNode<'moe_matmul'>),
  /** out = x * s */
  scale: (out: NativeTensor, x: NativeTensor, s: number): GraphNode => ({ op: 'scale', out, x, s } satisfies OpNode<'scale'>),
  /** out = silu(gate) * up */
  swiglu: (out: NativeTensor, gate: NativeTensor, up: NativeTensor): GraphNode => ({ op: 'swiglu', out, gate, up } satisfies OpNode<'swiglu'>),
  /** out[t] = x[t] + bias (bias f32 [D]) */
  addBias: (out: NativeTensor, x: NativeTensor, bias: NativeTensor): GraphNode => ({ op: 'add_bias', out, x, bias } satisfies OpNode<'add_bias'>),
  /** out = (x - mean) / sqrt(var + eps) * weight + bias, per row */
  layerNorm: (out: NativeTensor, x: NativeTensor, weight: NativeTensor, bias: NativeTensor, eps: number): GraphNode => ({
    op: 'layer_norm', out, x, weight, bias, eps,
  } satisfies OpNode<'layer_norm'>),
  /** out = gelu(x): exact (erf) or GPT-2's tanh approximation */
  gelu: (out: NativeTensor, x: NativeTensor, opts: { tanh?: boolean } = {}): GraphNode => ({ op: 'gelu', out, x, tanhApprox: opts.tanh ?? false } satisfies OpNode<'gelu'>),
  /** out = max(x, 0) */
  relu: (out: NativeTensor, x: NativeTensor): GraphNode => ({ op: 'relu', out, x } satisfies OpNode<'relu'>),
  /**
   * out [Cout, R] = (x[:, col0 .. col0 + Cout))ᵀ for x [R, C]: all of it whatever the run's n
   * (a load-time layout change)
   */
  transpose: (out: NativeTensor, x: NativeTensor, col0 = 0): GraphNode => ({ op: 'transpose', out, x, col0 } satisfies OpNode<'transpose'>),
  /** ids[t] = argmax of x's row t (lowest on ties, NaN never wins), for the rows a run covers; ids i32 */
  argmax: (ids: NativeTensor, x: NativeTensor): GraphNode => ({ op: 'argmax', ids, x } satisfies OpNode<'argmax'>),
  /** out = cap * tanh(x / cap), for the rows a run covers (Gemma-2's final logit soft-capping) */
  softcap: (out: NativeTensor, x: NativeTensor, cap: number): GraphNode => ({ op: 'softcap', out, x, cap } satisfies OpNode<'softcap'>),
  /** out[t] = table[ids[t]] widened to f32; ids is i32 */
  embedding: (out: NativeTensor, table: NativeTensor, ids: NativeTensor): GraphNode => ({ op: 'embedding', out, table, ids } satisfies OpNode<'embedding'>),
};

// ---- The case table ----------------------------------------------------------------------

export interface Tolerance {
  /** max ‖out − ref‖ / ‖ref‖ over each written tensor */
  rel: number;
  /** max |out − ref| */
  abs: number;
}

export interface ParityCase {
  name: string;
  /** The run: n rows at position pos, in a graph for maxRows rows (default n). */
  rows: number;
  pos?: number;
  maxRows?: number;
  /** Against the reference, for the CPU's fast levels and (unless `cuda` says otherwise) CUDA. */
  tol: Tolerance;
  /** CUDA's bound where it stages values in half precision (tensor cores) or differs in order. */
  cuda?: Tolerance;
  /** One of the few quick cases `fuselm doctor` runs. */
  doctor?: boolean;
  /** The node on fresh host tensors holding the case's data (the same data every call). */
  build: () => GraphNode;
}

export interface BenchCase {
  name: string;
  rows: number;
  pos?: number;
  /**
   * The nodes one timed run executes (several, so the call into the graph does not hide a
   * microsecond kernel; on distinct tensors where the data must stream from memory as in a
   * model's decode step). Seconds, bytes and flops are per node.
   */
  nodes: () => GraphNode[];
  /** Bytes one node must move (memory-bound ops) or floating-point operations it does. */
  bytes?: number;
  flops?: number;
}

export interface OpCases {
  parity: ParityCase[];
  bench: BenchCase[];
}

/** Seeded values in [-scale, scale): the same for the same seed on every machine. */
export function seeded(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2147483648 - 1) * scale;
  }
  return out;
}

const f32 = (shape: number[], seed: number, scale = 1) => tensorFromF32('f32', shape, seeded(shape.reduce((a, b) => a * b, 1), seed, scale));
const typed = (dtype: NativeDType, shape: number[], seed: number, scale = 1) =>
  tensorFromF32(dtype, shape, seeded(shape.reduce((a, b) => a * b, 1), seed, scale));
const zeros = (shape: number[], dtype: NativeDType = 'f32') => emptyTensor(dtype, shape);
const ids = (n: number, vocab: number, stride: number) => tensorFromI32([n], Int32Array.from({ length: n }, (_, i) => (i * stride + 3) % vocab));

const EXACT: Tolerance = { rel: 0, abs: 0 };
const BYTES: Record<string, number> = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32, q5_0: 22 / 32, iq4_nl: 18 / 32, iq4_xs: 136 / 256, q4_1: 20 / 32, q5_1: 24 / 32, q2_k: 84 / 256, q3_k: 110 / 256, q4_k: 144 / 256, q5_k: 176 / 256, q6_k: 210 / 256 };

/**
 * The GGUF block formats with CPU kernels on the weights as stored (native/cpu/matmul_q*.cc). Every
 * level computes each block's dot product as an exact integer and accumulates in the same f32
 * order as the integer reference: exact. CUDA runs them too (cuda/gemv_quant.cu, gemm_quant.cu)
 * but rounds x otherwise: to int8 per 32 values for decode (llama.cpp's CUDA Q8_1 activations,
 * where the CPU reference takes Q8_K's per 256 for the k-quants; for q4_0 both take Q8_0's, so
 * CUDA's decode differs by its f32 summation order only), to f16 for prefill. Each rounding moves an
 * output by ~4e-3 of its size (a step of max|x| / 127 per value, uniform x), the two together by
 * ~6e-3: CUDA_QUANT allows 2e-2 and, for these K = 512 outputs of rms ~4, 3e-1 (5 standard
 * deviations of the difference).
 */
/** A decode matvec 1 x K · N x Kᵀ in `dt`, over cold weight copies (>= 160 MiB in all), as a real step reads them. */
function decodeCase(dt: NativeDType, K: number, N: number): BenchCase {
  const bytes = Math.round(N * K * BYTES[dt]);
  return {
    name: `matmul decode ${dt} 1x${K} · ${N}x${K}ᵀ`, rows: 1, bytes,
    nodes: () => {
      const x = f32([1, K], 38), y = zeros([1, N]), w = typed(dt, [N, K], 39, 0.1);
      const stored = new Uint8Array(w.read());
      w.free();
      return cold(bytes, () => { const wc = emptyTensor(dt, [N, K]); wc.write(stored); return ops.matmul(y, x, wc); }, 160 << 20)();
    },
  };
}

const QUANT_MATMUL: NativeDType[] = ['q4_k', 'q5_k', 'q6_k', 'q4_0', 'q5_0', 'iq4_nl', 'iq4_xs', 'q2_k', 'q3_k', 'q4_1', 'q5_1'];
/** The 32-value block formats (Q4_0 family). */
const LEGACY_MATMUL: NativeDType[] = ['q4_0', 'q5_0', 'iq4_nl', 'q4_1', 'q5_1'];
const CUDA_QUANT: Tolerance = { rel: 2e-2, abs: 3e-1 };

/** `count` copies of a node, each on tensors of its own, at least `minBytes` in all. */
const cold = (bytes: number, make: () => GraphNode, minBytes = 128 << 20) => () =>
  Array.from({ length: Math.max(2, Math.ceil(minBytes / bytes)) }, make);
/** `count` repetitions of one node (its data stays in cache: the per-op cost of a small op). */
const repeat = (count: number, make: () => GraphNode) => () => {
  const n = make();
  return Array.from({ length: count }, () => n);
};

/**
 * A block table of `rows` sequences, each row `perRow` of a pool's `blocks` blocks, scattered
 * for the paged cases (with perRow = blocks, a permutation when 7 is prime to blocks).
 */
const blockTable = (rows: number, perRow: number, blocks: number) =>
  tensorFromI32([rows, perRow], Int32Array.from({ length: rows * perRow }, (_, i) => (i * 7 + 3) % blocks));

/** Row-wise ops at awkward widths (1, 31, 33, 4097) and T = 1..5. */
const ROW_SHAPES: Array<[number, number]> = [[1, 1], [3, 31], [5, 33], [2, 4097]];

/** The lora op's tensors: T rows, x [T, K], y [T, N], adapters of the given ranks, scales [T][J]. */
function loraNode(T: number, K: number, N: number, ranks: number[], scales: number[][], seed: number): GraphNode {
  const R = ranks.reduce((a, b) => a + b, 0);
  const seg = Int32Array.from({ length: ranks.length + 1 }, (_, j) => ranks.slice(0, j).reduce((a, b) => a + b, 0));
  return ops.lora(f32([T, N], seed), f32([T, K], seed + 1), {
    a: f32([R, K], seed + 2, 0.1), bt: f32([R, N], seed + 3, 0.1), seg: tensorFromI32([1, seg.length], seg), scales: tensorFromF32('f32', [T, ranks.length], Float32Array.from(scales.flat())),
  });
}
function loraCase(T: number, K: number, N: number, ranks: number[], scales: number[][], doctor = false): ParityCase {
  return { name: `lora ${T}x${K} → ${N}, ranks ${ranks.join('+')}`, rows: T, tol: { rel: 1e-6, abs: 1e-5 }, doctor, build: () => loraNode(T, K, N, ranks, scales, 61) };
}
/** Weights read once per node: a and bt of the adapters some row uses (f32), memory-bound at decode sizes. */
function loraBench(T: number, K: number, N: number, ranks: number[], scales: number[][]): BenchCase {
  const R = ranks.reduce((a, b) => a + b, 0);
  return { name: `lora ${T}x${K} → ${N}, ${ranks.length} adapter${ranks.length > 1 ? 's' : ''} of r=${ranks[0]}`, rows: T, bytes: R * (K + N) * 4, nodes: repeat(8, () => loraNode(T, K, N, ranks, scales, 62)) };
}

export const CASES: Record<OpName, OpCases> = {
  add: {
    // one f32 add per element everywhere: exact
    parity: [
      ...ROW_SHAPES.map(([T, D]): ParityCase => ({ name: `add ${T}x${D}`, rows: T, tol: EXACT, build: () => ops.add(zeros([T, D]), f32([T, D], 1), f32([T, D], 2)) })),
      { name: 'add in place 7x96', rows: 7, tol: EXACT, doctor: true, build: () => { const x = f32([7, 96], 3); return ops.add(x, x, f32([7, 96], 4)); } },
    ],
    bench: [{ name: 'add 64x4096', rows: 64, bytes: 3 * 64 * 4096 * 4, nodes: repeat(16, () => ops.add(zeros([64, 4096]), f32([64, 4096], 1), f32([64, 4096], 2))) }],
  },
  lora: {
    // the dot products a[k] · x[t] in another summation order (vectorized; a warp's lanes on
    // CUDA), the rest as the reference: ~1e-7 of the output. Awkward sizes, adapters switched
    // off per row (scale 0), an adapter with no ranks, work enough to be split among threads.
    parity: [
      loraCase(1, 33, 31, [4], [[1]]),
      loraCase(3, 31, 33, [4, 0, 8], [[1, 0, 0.5], [0, 1, 0], [0, 0, 0]]),
      loraCase(5, 4097, 65, [16], [[1], [0.5], [0], [2], [-1]], true),
      loraCase(4, 64, 4097, [2, 3, 5, 1], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
      // above the CPU's inline threshold: both passes threaded
      loraCase(9, 2048, 640, [64, 0, 32], Array.from({ length: 9 }, (_, t) => [t % 3 === 0 ? 1 : 0, 1, t % 2 ? -0.5 : 0])),
    ],
    bench: [
      loraBench(1, 2048, 2048, [16], [[1]]),
      loraBench(8, 2048, 5632, Array(8).fill(16), Array.from({ length: 8 }, (_, t) => Array.from({ length: 8 }, (_, j) => (j === t ? 1 : 0)))),
    ],
  },
  mul: {
    // one f32 multiply per element everywhere: exact
    parity: [
      ...ROW_SHAPES.map(([T, D]): ParityCase => ({ name: `mul ${T}x${D}`, rows: T, tol: EXACT, doctor: D === 33, build: () => ops.mul(zeros([T, D]), f32([T, D], 51), f32([T, D], 52)) })),
      { name: 'mul in place 7x96', rows: 7, tol: EXACT, build: () => { const x = f32([7, 96], 53); return ops.mul(x, x, f32([7, 96], 54)); } },
    ],
    bench: [{ name: 'mul 64x9216', rows: 64, bytes: 3 * 64 * 9216 * 4, nodes: repeat(8, () => ops.mul(zeros([64, 9216]), f32([64, 9216], 51), f32([64, 9216], 52))) }],
  },
  scale: {
    parity: ROW_SHAPES.map(([T, D]): ParityCase => ({
      name: `scale ${T}x${D}`, rows: T, tol: EXACT, doctor: D === 33, build: () => { const x = f32([T, D], 55); return ops.scale(x, x, 48); },
    })),
    bench: [{ name: 'scale 64x2304', rows: 64, bytes: 2 * 64 * 2304 * 4, nodes: repeat(16, () => ops.scale(zeros([64, 2304]), f32([64, 2304], 56), 48)) }],
  },
  add_bias: {
    parity: ROW_SHAPES.map(([T, D]): ParityCase => ({
      name: `add_bias ${T}x${D}`, rows: T, tol: EXACT, doctor: D === 33, build: () => ops.addBias(zeros([T, D]), f32([T, D], 5), f32([D], 6)),
    })),
    bench: [1, 64].map((T): BenchCase => ({
      name: `add_bias ${T}x4096`, rows: T, bytes: (2 * T * 4096 + 4096) * 4,
      nodes: repeat(T === 1 ? 64 : 8, () => { const x = f32([T, 4096], 7); return ops.addBias(x, x, f32([4096], 8)); }),
    })),
  },
  swiglu: {
    // silu's exp: the fast levels' vector exp is within 2 ulp of expf
    parity: ROW_SHAPES.map(([T, D]): ParityCase => ({
      name: `swiglu ${T}x${D}`, rows: T, tol: { rel: 1e-6, abs: 1e-6 }, doctor: D === 33, build: () => ops.swiglu(zeros([T, D]), f32([T, D], 9, 4), f32([T, D], 10)),
    })),
    bench: [{ name: 'swiglu 64x5632', rows: 64, bytes: 3 * 64 * 5632 * 4, nodes: repeat(8, () => ops.swiglu(zeros([64, 5632]), f32([64, 5632], 9), f32([64, 5632], 10))) }],
  },
  gelu: {
    // the fast levels' erf/tanh are accurate to ~2e-7 absolute: a lone output near zero (1x1)
    // would measure that as a large relative error, so the widths start at 31
    parity: [false, true].flatMap((tanh) => ROW_SHAPES.slice(1).map(([T, D]): ParityCase => ({
      name: `gelu ${tanh ? 'tanh' : 'erf'} ${T}x${D}`, rows: T, tol: { rel: 1e-6, abs: 1e-6 }, doctor: D === 33,
      build: () => ops.gelu(zeros([T, D]), f32([T, D], 11, 6), { tanh }),
    }))),
    bench: [false, true].map((tanh): BenchCase => ({
      name: `gelu ${tanh ? 'tanh' : 'erf'} 64x8192`, rows: 64, bytes: 2 * 64 * 8192 * 4,
      nodes: repeat(8, () => { const x = f32([64, 8192], 12, 4); return ops.gelu(x, x, { tanh }); }),
    })),
  },
  relu: {
    parity: ROW_SHAPES.map(([T, D]): ParityCase => ({
      name: `relu ${T}x${D}`, rows: T, tol: EXACT, doctor: D === 33,
      build: () => ops.relu(zeros([T, D]), f32([T, D], 161, 3)),
    })),
    bench: [{ name: 'relu 64x8192', rows: 64, bytes: 2 * 64 * 8192 * 4, nodes: repeat(8, () => { const x = f32([64, 8192], 162, 4); return ops.relu(x, x); }) }],
  },
  rms_norm: {
    parity: ROW_SHAPES.map(([T, D]): ParityCase => ({
      name: `rms_norm ${T}x${D}`, rows: T, tol: { rel: 1e-6, abs: 1e-5 }, doctor: D === 33,
      build: () => ops.rmsNorm(zeros([T, D]), f32([T, D], 13), f32([D], 14), 1e-5),
    })).concat(
      // per-head q/k norm (Qwen3, Gemma-3): 4 heads of 32, 2 of 128 in place
      [[3, 4, 32], [1, 2, 128]].map(([T, H, G]): ParityCase => ({
        name: `rms_norm ${T}x${H * G} groups of ${G}`, rows: T, tol: { rel: 1e-6, abs: 1e-5 },
        build: () => { const x = f32([T, H * G], 13); return ops.rmsNorm(x, x, f32([G], 14), 1e-6, { groupSize: G }); },
      })),
    ),
    bench: [1, 64].map((T): BenchCase => ({
      name: `rms_norm ${T}x4096`, rows: T, bytes: 2 * T * 4096 * 4,
      nodes: repeat(T === 1 ? 64 : 16, () => ops.rmsNorm(zeros([T, 4096]), f32([T, 4096], 13), f32([4096], 14), 1e-5)),
    })),
  },
  layer_norm: {
    parity: ROW_SHAPES.map(([T, D]): ParityCase => ({
      name: `layer_norm ${T}x${D}`, rows: T, tol: { rel: 1e-6, abs: 1e-5 }, doctor: D === 33,
      build: () => ops.layerNorm(zeros([T, D]), f32([T, D], 15, 3), f32([D], 16), f32([D], 17), 1e-5),
    })),
    bench: [1, 64].map((T): BenchCase => ({
      name: `layer_norm ${T}x4096`, rows: T, bytes: 2 * T * 4096 * 4,
      nodes: repeat(T === 1 ? 64 : 16, () => ops.layerNorm(zeros([T, 4096]), f32([T, 4096], 15), f32([4096], 16), f32([4096], 17), 1e-5)),
    })),
  },
  rope: {
    parity: [
      { neox: false, nRot: 24, H: 4, HD: 24, T: 5, pos: 11, doctor: true },
      { neox: true, nRot: 24, H: 4, HD: 24, T: 5, pos: 11 },
      { neox: false, nRot: 8, H: 3, HD: 32, T: 2, pos: 1000 }, // partial rotation (nRot < headDim)
      { neox: true, nRot: 16, H: 3, HD: 32, T: 1, pos: 4095 },
      // Llama-3.1's scaling: per-pair factors 1 .. 8 (rope_freqs), decode and prefill
      { neox: false, nRot: 16, H: 2, HD: 16, T: 1, pos: 3000, factors: true },
      { neox: true, nRot: 24, H: 4, HD: 24, T: 6, pos: 17, factors: true },
      // YaRN / LongRoPE: factors and a magnitude on cos and sin, partial rotation (Phi-4-mini)
      { neox: true, nRot: 24, H: 2, HD: 32, T: 3, pos: 5000, factors: true, mscale: 1.19 },
    ].map((c: { neox: boolean; nRot: number; H: number; HD: number; T: number; pos: number; doctor?: boolean; factors?: boolean; mscale?: number }): ParityCase => ({
      name: `rope ${c.neox ? 'neox' : 'llama'} ${c.T}x${c.H}x${c.HD} nRot ${c.nRot} pos ${c.pos}${c.factors ? ' freq factors' : ''}${c.mscale ? ` mscale ${c.mscale}` : ''}`, rows: c.T, pos: c.pos,
      tol: { rel: 1e-6, abs: 1e-6 }, doctor: c.doctor,
      build: () => ops.rope(f32([c.T, c.H * c.HD], 18), {
        nHeads: c.H, headDim: c.HD, nRot: c.nRot, thetaBase: c.factors ? 500000 : 10000, freqScale: c.pos > 1000 && !c.factors ? 0.25 : 1, neox: c.neox, mscale: c.mscale,
        freqFactors: c.factors ? tensorFromF32('f32', [c.nRot / 2], Float32Array.from({ length: c.nRot / 2 }, (_, i) => 1 + (7 * i) / (c.nRot / 2 - 1))) : undefined,
      }),
    })),
    // "hit": the ops share positions and settings, so all but the first find the cos/sin table
    // of the one before (q and k of every layer do); "miss": nRot alternates 128 / 126, so
    // every op computes its table. Measured before the table (double pow/cos/sin per pair and
    // token): [64x32x128] 1t 181 us -> 36 us llama / 26 us NeoX (hit), 41 us (miss).
    bench: [false, true].flatMap((neox) => ['hit', 'miss'].map((table): BenchCase => ({
      name: `rope ${neox ? 'neox' : 'llama'} ${table} 64x32x128`, rows: 64, pos: 1000, bytes: 2 * 64 * 4096 * 4,
      nodes: () => {
        const x = f32([64, 4096], 19);
        return Array.from({ length: 8 }, (_, i) => ops.rope(x, { nHeads: 32, headDim: 128, nRot: table === 'miss' && i % 2 ? 126 : 128, thetaBase: 10000, neox }));
      },
    }))),
  },
  kv_store: {
    // the cache is compared whole (rows outside pos .. pos + n - 1 must stay as they were)
    parity: (['f32'] as NativeDType[]).flatMap((dt) => [[1, 39], [5, 7], [16, 0]].map(([T, pos]): ParityCase => ({
      name: `kv_store ${dt} ${T} rows at ${pos}`, rows: T, pos, tol: EXACT, doctor: T === 5,
      build: () => ops.kvStore(typed(dt, [40, 48], 20), f32([T, 48], 21)),
    })).concat(
      // paged: pools of 8 blocks of 4 rows and 9 of 8, the rows through row 1 of a
      // scattered table, across block boundaries; the whole pool compared
      [[20, 9, 4, 8], [1, 27, 4, 8], [17, 0, 8, 9]].map(([T, pos, bs, blocks]): ParityCase => ({
        name: `kv_store ${dt} paged (block ${bs}) ${T} rows at ${pos}`, rows: T, pos, tol: EXACT,
        build: () => ops.kvStore(typed(dt, [blocks * bs, 48], 20), f32([T, 48], 21), undefined, { table: blockTable(2, blocks, blocks), blockSize: bs, row: 1 }),
      })),
    )),
    bench: (['f32'] as NativeDType[]).map((dt): BenchCase => ({
      name: `kv_store ${dt} 64x1024`, rows: 64, pos: 1000, bytes: 64 * 1024 * (4 + BYTES[dt]),
      nodes: repeat(16, () => ops.kvStore(zeros([4096, 1024], dt), f32([64, 1024], 22))),
    })).concat((['f32'] as NativeDType[]).map((dt): BenchCase => ({
      // the same copy into a paged pool: 4 blocks of 16 rows, scattered
      name: `kv_store ${dt} paged 64x1024 (block 16)`, rows: 64, pos: 1000, bytes: 64 * 1024 * (4 + BYTES[dt]),
      nodes: repeat(16, () => ops.kvStore(zeros([4096, 1024], dt), f32([64, 1024], 22), undefined, { table: blockTable(1, 256, 256), blockSize: 16, row: 0 })),
    }))),
  },
  attention: {
    parity: [
      { name: 'decode GQA 4/2x24 ctx 40', T: 1, pos: 39, H: 4, KV: 2, HD: 24, ctx: 40, doctor: true },
      { name: 'prefill GQA 4/2x24 T=7 at 20', T: 7, pos: 20, H: 4, KV: 2, HD: 24, ctx: 40 },
      { name: 'prefill MHA 3x64 T=17 at 0', T: 17, pos: 0, H: 3, KV: 3, HD: 64, ctx: 17 },
      { name: 'window 5 GQA 6/2x16 T=9 at 30', T: 9, pos: 30, H: 6, KV: 2, HD: 16, ctx: 40, window: 5 },
      { name: 'bidirectional 2/1x8 T=6', T: 6, pos: 0, H: 2, KV: 1, HD: 8, ctx: 6, causal: false },
      { name: 'prefix 9 + decode 4/2x24', T: 1, pos: 3, H: 4, KV: 2, HD: 24, ctx: 8, prefix: 9 },
      // Gemma-2's soft-capped scores (cap 2 on scores of order 1: most of them bent)
      { name: 'softcap 2 prefill GQA 4/2x16 T=9 at 20', T: 9, pos: 20, H: 4, KV: 2, HD: 16, ctx: 40, softcap: 2 },
      { name: 'softcap 2 decode MHA 2x64 ctx 70', T: 1, pos: 69, H: 2, KV: 2, HD: 64, ctx: 70, softcap: 2 },
      // paged: the caches a pool of ctx / block blocks, read through row 1 of a scattered table
      { name: 'paged (block 8) prefill GQA 4/2x24 T=7 at 20', T: 7, pos: 20, H: 4, KV: 2, HD: 24, ctx: 48, block: 8 },
      { name: 'paged (block 16) decode GQA 4/2x24 at 39', T: 1, pos: 39, H: 4, KV: 2, HD: 24, ctx: 64, block: 16 },
      { name: 'paged (block 4) window 5 GQA 6/2x16 T=9 at 30', T: 9, pos: 30, H: 6, KV: 2, HD: 16, ctx: 40, window: 5, block: 4 },
      { name: 'paged (block 16) f16 prefill MHA 2x64 T=33 at 40', T: 33, pos: 40, H: 2, KV: 2, HD: 64, ctx: 80, block: 16, f16: true },
      // >= 128 visible keys: CUDA's split-KV cuts each row into chunks, merged by the last chunk block
      { name: 'paged (block 16) decode GQA 4/2x32 at 299 (4 chunks)', T: 1, pos: 299, H: 4, KV: 2, HD: 32, ctx: 304, block: 16 },
      { name: 'paged (block 8) prefill MHA 2x24 T=3 at 200 (3 chunks)', T: 3, pos: 200, H: 2, KV: 2, HD: 24, ctx: 208, block: 8 },
      { name: 'decode GQA 8/2x16 ctx 520 (8 chunks)', T: 1, pos: 519, H: 8, KV: 2, HD: 16, ctx: 520 },
      // a prefill of >= 16 rows with an f32 cache: CUDA's tiled kernel (cuda/attention_tiled.cu)
      { name: 'softcap 2 window 9 prefill GQA 4/2x40 T=20 at 13', T: 20, pos: 13, H: 4, KV: 2, HD: 40, ctx: 40, window: 9, softcap: 2 },
    ].map((c: { name: string; T: number; pos: number; H: number; KV: number; HD: number; ctx: number; doctor?: boolean; window?: number; causal?: boolean; prefix?: number; softcap?: number; block?: number; f16?: boolean }): ParityCase => ({
      name: `attention ${c.name}`, rows: c.T, pos: c.pos, tol: { rel: 1e-5, abs: 1e-5 }, doctor: c.doctor,
      build: () => {
        const kv = c.KV * c.HD, P = c.prefix ?? 0;
        const dt: NativeDType = c.f16 ? 'f16' : 'f32', blocks = c.block ? c.ctx / c.block : 0;
        return ops.attention(zeros([c.T, c.H * c.HD]), f32([c.T, c.H * c.HD], 23), typed(dt, [c.ctx, kv], 24), typed(dt, [c.ctx, kv], 25), {
          nHeads: c.H, nKvHeads: c.KV, headDim: c.HD, scale: (c.softcap ? 4 : 1) / Math.sqrt(c.HD), window: c.window, causal: c.causal, softcap: c.softcap,
          prefix: P ? { k: f32([P, kv], 26), v: f32([P, kv], 27), len: P } : undefined,
          paged: c.block ? { table: blockTable(2, blocks, blocks), blockSize: c.block, row: 1 } : undefined,
        });
      },
    })),
    // decode reads every cached key and value once (GB/s); "cold" spreads the op over distinct
    // caches of >= 128 MiB in all, so each reads from DRAM as in a model's decode step. Prefill
    // as GFLOP/s (QK and PV: 4 * hd flops per query head and visible key).
    // Measured (2-vCPU Zen 4, before = the scalar per-(token, head) online softmax): decode cold
    // 32/8 ctx 4096 1t 10.2 -> 1.73 ms, 2t 4.9 -> 0.90 ms; prefill T128 32/8 1t 4.0 -> 42 GFLOP/s.
    bench: [
      ...[[32, 8], [32, 4]].map(([H, KV]): BenchCase => {
        const ctx = 4096, kv = KV * 128, bytes = 2 * ctx * kv * 4;
        const q = () => f32([1, H * 128], 28);
        return {
          name: `attention decode cold ${H}/${KV}x128 ctx ${ctx}`, rows: 1, pos: ctx - 1, bytes,
          nodes: cold(bytes, () => ops.attention(zeros([1, H * 128]), q(), f32([ctx, kv], 29), f32([ctx, kv], 30), { nHeads: H, nKvHeads: KV, headDim: 128, scale: 1 / Math.sqrt(128) })),
        };
      }),
      // the same decode from a paged pool (blocks of 16 rows, scattered) and from a contiguous
      // cache of the same size, both warm, for the ratio
      ...[false, true].map((paged): BenchCase => {
        const ctx = 1024, kv = 8 * 128;
        return {
          name: `attention decode ${paged ? 'paged (block 16)' : 'contiguous'} 32/8x128 ctx ${ctx}`, rows: 1, pos: ctx - 1, bytes: 2 * ctx * kv * 4,
          nodes: repeat(8, () => ops.attention(zeros([1, 32 * 128]), f32([1, 32 * 128], 28), f32([ctx, kv], 29), f32([ctx, kv], 30), {
            nHeads: 32, nKvHeads: 8, headDim: 128, scale: 1 / Math.sqrt(128), paged: paged ? { table: blockTable(1, ctx / 16, ctx / 16), blockSize: 16, row: 0 } : undefined,
          })),
        };
      }),
      {
        name: 'attention prefill 32/8x128 T=128', rows: 128, flops: 4 * 128 * 32 * ((128 * 129) / 2),
        nodes: repeat(1, () => ops.attention(zeros([128, 4096]), f32([128, 4096], 31), f32([128, 1024], 32), f32([128, 1024], 33), { nHeads: 32, nKvHeads: 8, headDim: 128, scale: 1 / Math.sqrt(128) })),
      },
    ],
  },
  seq2seq_attention: {
    // T5's relative-position bias (bidirectional encoder, causal decoder, distances past R
    // clamped) and cross-attention over a fixed key count; odd head dims and key counts past
    // the CUDA kernel's chunk of 256.
    parity: [
      { name: 'encoder bias 4x16 T=9', T: 9, pos: 0, H: 4, HD: 16, ctx: 9, causal: false, R: 4, doctor: true },
      { name: 'decoder bias prefill 3x24 T=5 at 7', T: 5, pos: 7, H: 3, HD: 24, ctx: 16, causal: true, R: 8 },
      { name: 'decoder bias decode 2x33 at 300', T: 1, pos: 300, H: 2, HD: 33, ctx: 301, causal: true, R: 128 },
      { name: 'cross 4x16 T=3 keys 11', T: 3, pos: 40, H: 4, HD: 16, ctx: 20, causal: false, keys: 11 },
      { name: 'cross 2x64 T=1 keys 300', T: 1, pos: 2, H: 2, HD: 64, ctx: 300, causal: false, keys: 300 },
    ].map((c: { name: string; T: number; pos: number; H: number; HD: number; ctx: number; causal: boolean; R?: number; keys?: number; doctor?: boolean }): ParityCase => ({
      name: `seq2seq_attention ${c.name}`, rows: c.T, pos: c.pos, tol: { rel: 1e-5, abs: 1e-5 }, doctor: c.doctor,
      build: () => ops.seq2seqAttention(zeros([c.T, c.H * c.HD]), f32([c.T, c.H * c.HD], 150), f32([c.ctx, c.H * c.HD], 151), f32([c.ctx, c.H * c.HD], 152), {
        nHeads: c.H, headDim: c.HD, scale: c.R ? 1 : 1 / Math.sqrt(c.HD), causal: c.causal, keys: c.keys,
        posBias: c.R ? f32([c.H, 2 * c.R + 1], 153, 2) : undefined,
      }),
    })),
    // t5-small's shapes (8 heads x 64): the encoder over 128 tokens, one decoder step over 128 keys (as GFLOP/s: 4 * hd per head and key)
    bench: [
      {
        name: 'seq2seq_attention encoder bias 8x64 T=128', rows: 128, flops: 4 * 64 * 8 * 128 * 128,
        nodes: repeat(4, () => ops.seq2seqAttention(zeros([128, 512]), f32([128, 512], 154), f32([128, 512], 155), f32([128, 512], 156), { nHeads: 8, headDim: 64, scale: 1, causal: false, posBias: f32([8, 257], 157) })),
      },
      {
        name: 'seq2seq_attention cross decode 8x64 keys 128', rows: 1, pos: 5, flops: 4 * 64 * 8 * 128,
        nodes: repeat(16, () => ops.seq2seqAttention(zeros([1, 512]), f32([1, 512], 158), f32([128, 512], 159), f32([128, 512], 160), { nHeads: 8, headDim: 64, scale: 1, causal: false, keys: 128 })),
      },
    ],
  },
  matmul: {
    // f32/f16/bf16: the same stored weights, f32 accumulation in another order than the
    // reference's double (measured <= 4.4e-7). q8_0: the fast levels (and CUDA) also round x to
    // 8 bits per value, as llama.cpp does: ~5e-3 over an output (test/ops/matmul.test.ts pins
    // the integer arithmetic down exactly). CUDA's tensor-core GEMM (more than 8 rows) stages x
    // in the weights' f16/bf16.
    parity: (['f32', 'f16', 'bf16', 'q8_0'] as NativeDType[]).flatMap((dt) => [1, 7, 17].map((T): ParityCase => {
      const K = 96, N = 67;
      const tol = { rel: dt === 'q8_0' ? 3e-2 : 1e-5, abs: dt === 'q8_0' ? 3e-1 : 1e-4 };
      const half = dt === 'f16' || dt === 'bf16';
      return {
        name: `matmul ${dt} ${T}x${K} · ${N}x${K}ᵀ`, rows: T, tol, doctor: T === 7,
        cuda: T > 8 && half ? { rel: dt === 'f16' ? 2e-3 : 1e-2, abs: dt === 'f16' ? 2e-2 : 1e-1 } : undefined,
        build: () => ops.matmul(zeros([T, N]), f32([T, K], 34), typed(dt, [N, K], 35)),
      };
    }).concat([{
      name: `matmul ${dt} last 3 rows of 5`, rows: 5, tol: { rel: dt === 'q8_0' ? 3e-2 : 1e-5, abs: dt === 'q8_0' ? 3e-1 : 1e-4 },
      build: () => ops.matmul(zeros([3, 33]), f32([5, 64], 36), typed(dt, [33, 64], 37), { lastRows: 3 }),
    }])).concat(QUANT_MATMUL.flatMap((dt) => [1, 3, 7, 17].map((T): ParityCase => {
      // odd N, K two superblocks; T = 7 and 17 take the 4- and 8-token tiles and their remainders
      const K = 512, N = 67;
      return {
        name: `matmul ${dt} ${T}x${K} · ${N}x${K}ᵀ`, rows: T, tol: EXACT, doctor: T === 7, cuda: CUDA_QUANT,
        build: () => ops.matmul(zeros([T, N]), f32([T, K], 134), typed(dt, [N, K], 135)),
      };
    }).concat(LEGACY_MATMUL.includes(dt) ? [{
      // an odd number of 32-value blocks (the rows tiles' last block goes alone)
      name: `matmul ${dt} 5x544 · 67x544ᵀ`, rows: 5, tol: EXACT, cuda: CUDA_QUANT,
      build: () => ops.matmul(zeros([5, 67]), f32([5, 544], 138), typed(dt, [67, 544], 139)),
    }] : []).concat([{
      name: `matmul ${dt} last 3 rows of 5`, rows: 5, tol: EXACT, cuda: CUDA_QUANT,
      build: () => ops.matmul(zeros([3, 33]), f32([5, 256], 136), typed(dt, [33, 256], 137), { lastRows: 3 }),
    }]))),
    // The decode matvec streams its weights from memory as a real decode step does: the op runs
    // over distinct weight copies of >= 160 MiB in all. Bench notes (Zen 4, 1 thread, us per
    // matvec 2048x5632): v0 scalar f16 38700 / q8_0 11450; v1 4 neighbour rows 1577 / 1610;
    // v2 4 long streams, q8_0 integer dot 846 / 498 (v1 lost to the prefetcher).
    // AVX-512 VNNI, 1 thread, weights in L2 (256 rows, K 4096; q8_0 K 2048), min of 200 runs, us,
    // before -> after 512-bit unpacking, vpdpbusd + int16-pair scaling, Q4_0 in block pairs and
    // q8_0 in row pairs: q4_k 20.2 -> 16.4, q5_k 25.6 -> 19.8, q6_k 26.2 -> 14.2-14.8, q4_0 32.8 ->
    // 22.0, q8_0 9.6 -> 8.3; prefill tiles (K 2048, 8 tokens) q4_k 34.4 -> 31.2, q6_k 4 -> 8 tokens 118 -> 134 Gmac/s.
    // Q4_0 family's rows tile (4 rows x 4 tokens; issue 14, loaded host, one run each, addon
    // before -> after): matmul prefill q4_0 64x2048 1t 30.4 -> 53.7 GFLOP/s, 2t 19.2 -> 99.3.
    // Q4_0 in llama.cpp's repacked order, 16 rows transposed in registers x 16 tokens (issue 14,
    // load 4-8, one run each, addon before -> after): prefill q4_0 64x2048 1t 186.5 -> 464.8
    // GFLOP/s; decode 1x2048 · 5632x2048 1t 277 -> 284 us, 4096x4096 376 -> 346 us.
    // Q4_0 decode tiles (4 rows x groups of 4 blocks, x regrouped per call; issue 14), weights in
    // L2 (256 x 4096, 1 token, a throwaway harness, best of 7 timings, 1t, load 8-15, addon before
    // -> after): AVX-512 VNNI 19.8-20.9 -> 12.5-15.1 us, AVX2 182-203 -> 20-21 us; AVX2 prefill
    // (4 rows x 4 tokens; 256 x 2048, 16 tokens) 214-220 -> 156-157 us.
    bench: [
      // TinyLlama-1.1B's ffn_up/gate (every type issue 14's decode targets name)
      ...(['f32', 'f16', 'bf16', 'q8_0', 'q4_k', 'q5_k', 'q6_k', 'q4_0'] as NativeDType[]).map((dt) => decodeCase(dt, 2048, 5632)),
      ...(['f32', 'f16', 'q8_0', ...QUANT_MATMUL] as NativeDType[]).map((dt): BenchCase => ({
        name: `matmul prefill ${dt} 64x2048 · 2048x2048ᵀ`, rows: 64, flops: 2 * 64 * 2048 * 2048,
        nodes: repeat(1, () => ops.matmul(zeros([64, 2048]), f32([64, 2048], 40), typed(dt, [2048, 2048], 41, 0.1))),
      })),
      // the GGUF block formats at a 4096 x 4096 decode (llama-7B's attention projections)
      ...QUANT_MATMUL.map((dt) => decodeCase(dt, 4096, 4096)),
    ],
  },
  moe_route: {
    // the picks exact everywhere (by the logits); the weights: the CPU's double softmax against
    // CUDA's f32 expf, a few ulp
    parity: [
      { T: 1, E: 4, k: 2, normalize: true, doctor: true },
      { T: 5, E: 8, k: 2, normalize: true },
      { T: 3, E: 60, k: 4, normalize: false },
      { T: 2, E: 128, k: 8, normalize: true },
      { T: 7, E: 1, k: 1, normalize: false, sigmoid: true }, // Qwen2-MoE's shared-expert gate
      { T: 4, E: 16, k: 3, normalize: false, sigmoid: true },
    ].map((c): ParityCase => ({
      name: `moe_route ${c.T}x${c.E} top ${c.k}${c.normalize ? ' normalized' : ''}${c.sigmoid ? ' sigmoid' : ''}`, rows: c.T, tol: { rel: 1e-6, abs: 1e-6 }, doctor: c.doctor,
      build: () => ops.moeRoute(zeros([c.T, c.k], 'i32'), zeros([c.T, c.k]), f32([c.T, c.E], 60 + c.E, 3), { normalize: c.normalize, sigmoid: c.sigmoid }),
    })).concat([{
      // equal logits: the lower expert first
      name: 'moe_route ties 2x8 top 3', rows: 2, tol: { rel: 1e-6, abs: 1e-6 },
      build: () => ops.moeRoute(zeros([2, 3], 'i32'), zeros([2, 3]), tensorFromF32('f32', [2, 8], Float32Array.from({ length: 16 }, (_, i) => (i % 8) % 3 === 1 ? 2 : i % 2)), { normalize: true }),
    }]),
    bench: [[1, 8, 2], [64, 128, 8]].map(([T, E, k]): BenchCase => ({
      name: `moe_route ${T}x${E} top ${k}`, rows: T, bytes: T * (E + 2 * k) * 4,
      nodes: repeat(16, () => ops.moeRoute(zeros([T, k], 'i32'), zeros([T, k]), f32([T, E], 61), { normalize: true })),
    })),
  },
  moe_matmul: {
    // the chosen experts' one-row matmuls (matmul's reference) against the fast path's grouped
    // ones: f32/f16/bf16 within f32 summation order, q8_0 within x's 8-bit rounding (as
    // matmul's cases), the block formats exact; CUDA multiplies x unquantized (CUDA_QUANT), or
    // for the block formats but q8_0 from 8 tokens on rounded to f16 in the grouped GEMM (T = 9)
    parity: (['f32', 'f16', 'bf16', 'q8_0', 'q4_k', 'q6_k', 'q4_0', 'q5_k'] as NativeDType[]).flatMap((dt) => [
      { T: 1, weighted: false }, { T: 5, weighted: false }, { T: 1, weighted: true }, { T: 6, weighted: true }, { T: 9, weighted: false }, { T: 9, weighted: true },
    ].map(({ T, weighted }): ParityCase => {
      const block = !['f32', 'f16', 'bf16'].includes(dt), E = 4, k = 2, N = 33, K = block ? 256 : 96;
      const tol = dt === 'q8_0' ? { rel: 3e-2, abs: 3e-1 } : block ? EXACT : { rel: 1e-5, abs: 1e-4 };
      // each row's k experts distinct; expert 3 never chosen when T = 1
      const chosen = () => tensorFromI32([T, k], Int32Array.from({ length: T * k }, (_, i) => (Math.floor(i / k) + (i % k) * 2) % E));
      return {
        name: `moe_matmul ${dt} ${T}x${weighted ? k * K : K} · ${E}x${N}x${K}ᵀ top ${k}${weighted ? ' weighted' : ''}`, rows: T, tol, doctor: T === 5 && dt === 'q4_k',
        cuda: block ? CUDA_QUANT : undefined,
        build: () => weighted
          ? ops.moeMatmul(f32([T, N], 62), f32([T, k * K], 63), typed(dt, [E, N, K], 64), chosen(), f32([T, k], 65))
          : ops.moeMatmul(zeros([T, k * N]), f32([T, K], 63), typed(dt, [E, N, K], 64), chosen()),
      };
    })),
    // Mixtral's shape with TinyLlama-sized experts (8 experts of 5632 x 2048, top 2): a decode
    // step reads the 2 chosen experts only (bytes); 12 steps over 3 copies of the whole stack
    // (0.3 GB for q8_0), each copy's 4 disjoint pairs of experts chosen once, so every step
    // reads its experts from memory; prefill of 64 tokens, every expert chosen (flops)
    bench: (['q8_0', 'q4_k'] as NativeDType[]).flatMap((dt): BenchCase[] => {
      const E = 8, k = 2, N = 5632, K = 2048;
      const stack = () => typed(dt, [E, N, K], 66, 0.1);
      const route = (T: number, first = 1) => tensorFromI32([T, k], Int32Array.from({ length: T * k }, (_, i) => (first + i * 3) % E));
      return [
        { name: `moe_matmul decode ${dt} 1x${K} · ${E}x${N}x${K}ᵀ top ${k}`, rows: 1, bytes: Math.round(k * N * K * BYTES[dt]),
          nodes: () => {
            const stacks = [stack(), stack(), stack()], x = f32([1, K], 67), y = zeros([1, k * N]);
            // step i: copy i % 3, experts 2j and 2j + 3 (mod 8, distinct pairs for j = 0..3)
            return Array.from({ length: 12 }, (_, i) => ops.moeMatmul(y, x, stacks[i % 3], route(1, 2 * Math.floor(i / 3))));
          } },
        { name: `moe_matmul prefill ${dt} 64x${K} · ${E}x${N}x${K}ᵀ top ${k}`, rows: 64, flops: 2 * 64 * k * N * K,
          nodes: repeat(1, () => ops.moeMatmul(zeros([64, k * N]), f32([64, K], 67), stack(), route(64))) },
      ];
    }),
  },
  embedding: {
    // table rows widened to f32 as stored: exact on every backend
    parity: (['f32', 'f16', 'bf16', 'q8_0'] as NativeDType[]).map((dt): ParityCase => ({
      name: `embedding ${dt} 7 of 50x96`, rows: 7, tol: EXACT, doctor: dt === 'q8_0',
      build: () => ops.embedding(zeros([7, 96]), typed(dt, [50, 96], 42), ids(7, 50, 7)),
    })).concat((['q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_xs'] as NativeDType[]).map((dt): ParityCase => ({
      // the GGUF block formats: each value in llama.cpp's order of f32 operations everywhere
      name: `embedding ${dt} 7 of 50x512`, rows: 7, tol: EXACT,
      build: () => ops.embedding(zeros([7, 512]), typed(dt, [50, 512], 44), ids(7, 50, 7)),
    }))),
    bench: (['f16', 'q8_0'] as NativeDType[]).map((dt): BenchCase => ({
      name: `embedding ${dt} 64 of 32000x2048`, rows: 64, bytes: Math.round(64 * 2048 * (4 + BYTES[dt])),
      nodes: repeat(8, () => ops.embedding(zeros([64, 2048]), zeros([32000, 2048], dt), ids(64, 32000, 401))),
    })),
  },
  argmax: {
    parity: [
      { name: 'argmax 5x1000', rows: 5, tol: EXACT, doctor: true, build: () => ops.argmax(zeros([5], 'i32'), f32([5, 1000], 43)) },
      // ties resolve to the lowest index
      { name: 'argmax ties 2x64', rows: 2, tol: EXACT, build: () => ops.argmax(zeros([2], 'i32'), tensorFromF32('f32', [2, 64], Float32Array.from({ length: 128 }, (_, i) => (i % 64) % 5 === 3 ? 1 : 0))) },
      { name: 'argmax 1x128256', rows: 1, tol: EXACT, build: () => ops.argmax(zeros([1], 'i32'), f32([1, 128256], 44)) },
    ],
    bench: [32000, 128256].map((V): BenchCase => ({
      name: `argmax 1x${V}`, rows: 1, bytes: V * 4, nodes: repeat(16, () => ops.argmax(zeros([1], 'i32'), f32([1, V], 45))),
    })),
  },
  softcap: {
    // cap * tanh(x / cap): the fast levels' vector tanh is within ~2e-7 relative (a series near
    // zero, the exp form above), CUDA's tanhf a few ulp; logits-sized values, some saturating
    parity: [[1, 7], [3, 33], [2, 4097], [1, 50000]].map(([T, D]): ParityCase => ({
      name: `softcap ${T}x${D} cap 30`, rows: T, tol: { rel: 1e-6, abs: 3e-5 }, doctor: D === 33,
      build: () => ops.softcap(zeros([T, D]), f32([T, D], 48, 120), 30),
    })).concat([{
      name: 'softcap last row of 4 (x one row)', rows: 4, tol: { rel: 1e-6, abs: 3e-5 },
      build: () => { const x = f32([1, 256], 49, 60); return ops.softcap(x, x, 50); },
    }]),
    bench: [{ name: 'softcap 1x256000', rows: 1, bytes: 2 * 256000 * 4, nodes: repeat(8, () => { const x = f32([1, 256000], 50, 60); return ops.softcap(x, x, 30); }) }],
  },
  transpose: {
    // values moved bit for bit (a load-time op of the CPU backend only)
    parity: (['f32', 'f16'] as NativeDType[]).map((dt): ParityCase => ({
      name: `transpose ${dt} 33x70 cols 5..36`, rows: 1, tol: EXACT, doctor: dt === 'f32',
      build: () => ops.transpose(zeros([31, 33], dt), typed(dt, [33, 70], 46), 5),
    })),
    bench: [[768, 2304], [3072, 768]].map(([R, C]): BenchCase => ({
      name: `transpose f32 ${R}x${C}`, rows: 1, bytes: 2 * R * C * 4, nodes: repeat(1, () => ops.transpose(zeros([C, R]), f32([R, C], 47))),
    })),
  },
};
