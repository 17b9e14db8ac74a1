/**
 * The op table as TypeScript sees it (ARCHITECTURE.md, "Ops"): each op's tensor roles and
 * parameters, the same as the addon's own table (native/ops/<op>.h, exported by opTable();
 * test/ops/table.test.ts checks the two are equal), the node types derived from it, and one
 * typed builder per op for the model code.
 */
import type { NativeTensor } from '../../bindings.js';

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

export const OP_TABLE = {
  add: { roles: { out: OUT, a: IN, b: IN }, params: {} },
  add_bias: { roles: { out: OUT, x: IN, bias: IN }, params: {} },
  argmax: { roles: { ids: { access: 'out', host: true }, x: IN }, params: {} },
  attention: {
    roles: { out: OUT, q: IN, kCache: IN, vCache: IN, kPrefix: { access: 'in', required: false }, vPrefix: { access: 'in', required: false } },
    params: { nHeads: int, nKvHeads: int, headDim: int, scale: float, window: { type: 'int', default: 0 }, causal: { type: 'bool', default: true }, prefixLen: { type: 'int', default: 0 } },
    positional: true,
  },
  embedding: { roles: { out: OUT, table: IN, ids: { access: 'in', host: true } }, params: {} },
  gelu: { roles: { out: OUT, x: IN }, params: { tanhApprox: bool } },
  kv_store: { roles: { cache: { access: 'update' }, src: IN }, params: {}, positional: true },
  layer_norm: { roles: { out: OUT, x: IN, weight: IN, bias: IN }, params: { eps: float } },
  matmul: { roles: { out: { access: 'out', host: true }, x: IN, w: IN }, params: { lastRow: { type: 'bool', default: false } } },
  rms_norm: { roles: { out: OUT, x: IN, weight: IN }, params: { eps: float } },
  rope: {
    roles: { x: { access: 'inout' } },
    params: { nHeads: int, headDim: int, nRot: int, thetaBase: float, freqScale: { type: 'float', default: 1 }, neox: bool },
    positional: true,
  },
  swiglu: { roles: { out: OUT, gate: IN, up: IN }, params: {} },
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
  /**
   * A shared prefix (beam search: the prompt, evaluated once for every beam): keys 0 .. len-1
   * are rows of k/v, key len + j is row j of the node's own caches, and positions count from
   * len.
   */
  prefix?: { k: NativeTensor; v: NativeTensor; len: number };
}

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
  /** out[t] = x[t] · wᵀ, w [N, K] in f32/f16/bf16/q8_0; lastRow: only x's row n-1, into out row 0 */
  matmul: (out: NativeTensor, x: NativeTensor, w: NativeTensor, opts: { lastRow?: boolean } = {}): GraphNode => ({
    op: 'matmul', out, x, w, lastRow: opts.lastRow ?? false,
  } satisfies OpNode<'matmul'>),
  /** out = x / rms(x) * weight */
  rmsNorm: (out: NativeTensor, x: NativeTensor, weight: NativeTensor, eps: number): GraphNode => ({
    op: 'rms_norm', out, x, weight, eps,
  } satisfies OpNode<'rms_norm'>),
  /** rotary embedding of x in place; token t sits at position pos + t */
  rope: (x: NativeTensor, o: RopeOptions, seq?: SeqSpan): GraphNode => ({
    op: 'rope', x, nHeads: o.nHeads, headDim: o.headDim, nRot: o.nRot ?? o.headDim, thetaBase: o.thetaBase,
    freqScale: o.freqScale ?? 1, neox: o.neox ?? false, ...seqFields(seq),
  } satisfies OpNode<'rope'>),
  /** cache[pos + t] = src[t], rounded to the cache's dtype (f32, f16, bf16) */
  kvStore: (cache: NativeTensor, src: NativeTensor, seq?: SeqSpan): GraphNode => ({ op: 'kv_store', cache, src, ...seqFields(seq) } satisfies OpNode<'kv_store'>),
  /** causal attention of q over the cache rows 0..pos+t, GQA */
  attention: (out: NativeTensor, q: NativeTensor, kCache: NativeTensor, vCache: NativeTensor, o: AttentionOptions, seq?: SeqSpan): GraphNode => ({
    op: 'attention', out, q, kCache, vCache, nHeads: o.nHeads, nKvHeads: o.nKvHeads, headDim: o.headDim, scale: o.scale,
    window: o.window ?? 0, causal: o.causal ?? true,
    ...(o.prefix ? { kPrefix: o.prefix.k, vPrefix: o.prefix.v, prefixLen: o.prefix.len } : {}),
    ...seqFields(seq),
  } satisfies OpNode<'attention'>),
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
  /**
   * out [Cout, R] = (x[:, col0 .. col0 + Cout))ᵀ for x [R, C]: all of it whatever the run's n
   * (a load-time layout change)
   */
  transpose: (out: NativeTensor, x: NativeTensor, col0 = 0): GraphNode => ({ op: 'transpose', out, x, col0 } satisfies OpNode<'transpose'>),
  /** ids[t] = argmax of x's row t (lowest on ties, NaN never wins), for the rows a run covers; ids i32 */
  argmax: (ids: NativeTensor, x: NativeTensor): GraphNode => ({ op: 'argmax', ids, x } satisfies OpNode<'argmax'>),
  /** out[t] = table[ids[t]] widened to f32; ids is i32 */
  embedding: (out: NativeTensor, table: NativeTensor, ids: NativeTensor): GraphNode => ({ op: 'embedding', out, table, ids } satisfies OpNode<'embedding'>),
};
