/**
 * The backend interface as the model code sees it: typed builders for each op (one per op,
 * named as in native/backend.h) and a Backend that turns a list of ops into a native graph
 * run with one call per forward step.
 */
import type { NativeDevice, NativeDType, NativeGraph, NativeImpl, NativeNode, NativePool, NativeTensor } from '../bindings.js';
import { FuselmError } from './errors.js';
import { call, callAsync, native } from './native.js';

export type { NativeTensor as Tensor } from '../bindings.js';

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

const seqFields = (s?: SeqSpan) => (s ? { row0: s.row0, seqRows: s.rows ?? 1, posSlot: s.slot } : {});

/** Builders for graph nodes. Activations are f32 [rows, cols]; a run uses the first n rows. */
export const ops = {
  /** out = a + b */
  add: (out: NativeTensor, a: NativeTensor, b: NativeTensor): NativeNode => ({ op: 'add', out, a, b }),
  /** out[t] = x[t] · wᵀ, w [N, K] in f32/f16/bf16/q8_0; lastRow: only x's row n-1, into out row 0 */
  matmul: (out: NativeTensor, x: NativeTensor, w: NativeTensor, opts: { lastRow?: boolean } = {}): NativeNode => ({
    op: 'matmul', out, a: x, b: w, lastRow: opts.lastRow ?? false,
  }),
  /** out = x / rms(x) * w */
  rmsNorm: (out: NativeTensor, x: NativeTensor, w: NativeTensor, eps: number): NativeNode => ({
    op: 'rms_norm', out, a: x, b: w, eps,
  }),
  /** rotary embedding of x in place; token t sits at position pos + t */
  rope: (x: NativeTensor, o: RopeOptions, seq?: SeqSpan): NativeNode => ({
    op: 'rope', out: x, nHeads: o.nHeads, headDim: o.headDim, nRot: o.nRot ?? o.headDim, thetaBase: o.thetaBase,
    freqScale: o.freqScale ?? 1, neox: o.neox ?? false, ...seqFields(seq),
  }),
  /** cache[pos + t] = src[t] */
  kvStore: (cache: NativeTensor, src: NativeTensor, seq?: SeqSpan): NativeNode => ({ op: 'kv_store', out: cache, a: src, ...seqFields(seq) }),
  /** causal attention of q over the cache rows 0..pos+t, GQA */
  attention: (out: NativeTensor, q: NativeTensor, kCache: NativeTensor, vCache: NativeTensor, o: AttentionOptions, seq?: SeqSpan): NativeNode => ({
    op: 'attention', out, a: q, b: kCache, c: vCache, nHeads: o.nHeads, nKvHeads: o.nKvHeads, headDim: o.headDim, scale: o.scale,
    window: o.window ?? 0, causal: o.causal ?? true,
    ...(o.prefix ? { kPrefix: o.prefix.k, vPrefix: o.prefix.v, prefixLen: o.prefix.len } : {}),
    ...seqFields(seq),
  }),
  /** out = silu(gate) * up */
  swiglu: (out: NativeTensor, gate: NativeTensor, up: NativeTensor): NativeNode => ({ op: 'swiglu', out, a: gate, b: up }),
  /** out[t] = x[t] + bias (bias f32 [D]) */
  addBias: (out: NativeTensor, x: NativeTensor, bias: NativeTensor): NativeNode => ({ op: 'add_bias', out, a: x, b: bias }),
  /** out = (x - mean) / sqrt(var + eps) * w + b, per row */
  layerNorm: (out: NativeTensor, x: NativeTensor, w: NativeTensor, b: NativeTensor, eps: number): NativeNode => ({
    op: 'layer_norm', out, a: x, b: w, c: b, eps,
  }),
  /** out = gelu(x): exact (erf) or GPT-2's tanh approximation */
  gelu: (out: NativeTensor, x: NativeTensor, opts: { tanh?: boolean } = {}): NativeNode => ({ op: 'gelu', out, a: x, tanhApprox: opts.tanh ?? false }),
  /**
   * out [Cout, R] = (x[:, col0 .. col0 + Cout))ᵀ for x [R, C]: all of it whatever the run's n
   * (a load-time layout change)
   */
  transpose: (out: NativeTensor, x: NativeTensor, col0 = 0): NativeNode => ({ op: 'transpose', out, a: x, col0 }),
  /** ids[t] = argmax of x's row t (lowest on ties, NaN never wins), for the rows a run covers; ids i32 */
  argmax: (ids: NativeTensor, x: NativeTensor): NativeNode => ({ op: 'argmax', out: ids, a: x }),
  /** out[t] = table[ids[t]] widened to f32; ids is i32 */
  embedding: (out: NativeTensor, table: NativeTensor, ids: NativeTensor): NativeNode => ({
    op: 'embedding', out, a: table, b: ids,
  }),
};

/** A compiled op list; run() executes all of it in one native call, off the JS thread. */
export class Graph {
  #g: NativeGraph | undefined;
  readonly maxRows: number;
  constructor(g: NativeGraph, maxRows: number) {
    this.#g = g;
    this.maxRows = maxRows;
  }
  run(n: number, pos: number): Promise<void> {
    const g = this.#g;
    if (!g) return Promise.reject(new FuselmError('E_DISPOSED', 'graph used after dispose()'));
    return callAsync(() => g.run(n, pos));
  }
  dispose(): void {
    this.#g?.free();
    this.#g = undefined;
  }
}

export interface CpuBackendOptions {
  /** Worker threads; default: the machine's physical cores. */
  threads?: number;
  /** Kernel level; 'auto' picks the best the CPU supports, 'reference' the plain scalar code. */
  impl?: NativeImpl;
  /** KV cache element type; default f32. f16 and bf16 halve the cache and its reads in decode. */
  kvDtype?: 'f32' | 'f16' | 'bf16';
}

function checkKvDtype(kvDtype: string): void {
  if (!['f32', 'f16', 'bf16'].includes(kvDtype))
    throw new FuselmError('E_INVALID_ARG', `kvDtype must be 'f32', 'f16' or 'bf16', got '${kvDtype}'`);
}

/**
 * What the model code needs of a backend: memory for activations and KV caches, copies of the
 * weights, and graphs. Token ids, positions and logits stay host tensors on every backend.
 */
export interface Backend {
  readonly device: NativeDevice;
  /** The KV cache's element type. */
  readonly kvDtype: 'f32' | 'f16' | 'bf16';
  /** A zero-filled tensor in the backend's memory. */
  empty(dtype: NativeDType, shape: number[]): NativeTensor;
  /** The backend's copy of a host tensor (the CPU's is the tensor itself). */
  upload(t: NativeTensor): NativeTensor;
  graph(nodes: NativeNode[], maxRows: number, positions?: NativeTensor): Graph;
  dispose(): void;
}

/** The CPU backend: a persistent thread pool shared by the graphs built on it. */
export class CpuBackend implements Backend {
  readonly device = 'cpu' as const;
  readonly kvDtype: 'f32' | 'f16' | 'bf16';
  readonly threads: number;
  readonly impl: NativeImpl;
  #pool: NativePool | undefined;

  constructor(opts: CpuBackendOptions = {}) {
    this.kvDtype = opts.kvDtype ?? 'f32';
    checkKvDtype(this.kvDtype);
    const info = native().cpuInfo();
    const threads = opts.threads ?? info.physicalCores;
    if (!Number.isInteger(threads) || threads < 1)
      throw new FuselmError('E_INVALID_ARG', `threads must be a positive integer, got ${threads}`);
    this.threads = threads;
    this.impl = opts.impl ?? 'auto';
    if (this.impl !== 'auto' && !info.impls.includes(this.impl))
      throw new FuselmError('E_UNSUPPORTED', `this CPU cannot run the '${this.impl}' kernels (it has: ${info.impls.join(', ')})`);
    this.#pool = call(() => new (native().Pool)(threads));
  }

  empty(dtype: NativeDType, shape: number[]): NativeTensor {
    return call(() => new (native().Tensor)(dtype, shape));
  }

  upload(t: NativeTensor): NativeTensor {
    return t;
  }

  /** A graph of `nodes` for up to maxRows rows; `positions` (i32) feeds nodes with a SeqSpan. */
  graph(nodes: NativeNode[], maxRows: number, positions?: NativeTensor): Graph {
    const pool = this.#pool;
    if (!pool) throw new FuselmError('E_DISPOSED', 'backend used after dispose()');
    const g = call(() => new (native().Graph)(nodes, { pool, impl: this.impl, maxRows, positions }));
    return new Graph(g, maxRows);
  }

  dispose(): void {
    this.#pool?.free();
    this.#pool = undefined;
  }
}

export interface CudaBackendOptions {
  /** Run on the SIMT emulator instead of a GPU (slow; for machines without one). */
  emulated?: boolean;
  /** KV cache element type; default f16 (half the reads of f32 in decode). */
  kvDtype?: 'f32' | 'f16' | 'bf16';
}

/**
 * The CUDA backend (device 0): device memory for weights, activations and KV caches, graphs run
 * as kernel launches on a stream with one synchronization per step. Memory is freed when the
 * last tensor or graph holding it is dropped.
 */
export class CudaBackend implements Backend {
  readonly device: 'cuda' | 'cuda-emulated';
  readonly kvDtype: 'f32' | 'f16' | 'bf16';

  constructor(opts: CudaBackendOptions = {}) {
    this.device = opts.emulated ? 'cuda-emulated' : 'cuda';
    this.kvDtype = opts.kvDtype ?? 'f16';
    checkKvDtype(this.kvDtype);
  }

  empty(dtype: NativeDType, shape: number[]): NativeTensor {
    return call(() => new (native().Tensor)(dtype, shape, this.device));
  }

  upload(t: NativeTensor): NativeTensor {
    return call(() => t.to(this.device));
  }

  graph(nodes: NativeNode[], maxRows: number, positions?: NativeTensor): Graph {
    const g = call(() => new (native().Graph)(nodes, { device: this.device, maxRows, positions }));
    return new Graph(g, maxRows);
  }

  dispose(): void {}
}
