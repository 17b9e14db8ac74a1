/**
 * The backend interface as the model code sees it: a Backend turns a list of ops (built with
 * lib/ops/table.ts's typed builders) into a native graph run with one call per forward step.
 */
import type { NativeDevice, NativeDType, NativeGraph, NativeGraphNodes, NativeImpl, NativePool, NativeTensor } from '../bindings.js';
import { FuselmError } from './errors.js';
import { call, callAsync, native } from './native.js';
import { NodePacker } from './ops/pack.js';
import type { GraphNode } from './ops/table.js';

export type { NativeTensor as Tensor } from '../bindings.js';
export { ops, type AttentionOptions, type RopeOptions, type SeqSpan, type PagedCache } from './ops/table.js';

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

/**
 * Where a model runs, for a device option: 'auto' picks CUDA when a device works, else the CPU;
 * 'cuda' throws NO_CUDA_DEVICE without one, unless FUSELM_CUDA_EMULATE=1 runs the CUDA backend
 * on its CPU emulator ('cuda-emulated', slowly).
 */
export function resolveDevice(device: 'auto' | 'cpu' | 'cuda' = 'auto'): NativeDevice {
  if (device !== 'auto' && device !== 'cpu' && device !== 'cuda')
    throw new FuselmError('E_INVALID_ARG', `device must be 'auto', 'cpu' or 'cuda', got '${device}'`);
  if (device === 'cpu') return 'cpu';
  const cuda = native().cudaInfo();
  if (cuda.devices.length > 0) return 'cuda';
  if (device === 'auto') return 'cpu';
  if (process.env.FUSELM_CUDA_EMULATE === '1') return 'cuda-emulated';
  throw new FuselmError('NO_CUDA_DEVICE', `device 'cuda': ${cuda.reason ?? 'no CUDA device'} (FUSELM_CUDA_EMULATE=1 runs the CUDA backend on its CPU emulator)`);
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
  /** A graph of `nodes` (an array, or nodes read in slices: graphInSlices) for up to maxRows rows. */
  graph(nodes: GraphNode[] | NativeGraphNodes, maxRows: number, positions?: NativeTensor): Graph;
  dispose(): void;
}

/**
 * Nodes per slice that graphInSlices hands to the addon: making, packing and reading a node
 * costs about 2 µs of CPU (lib/ops/pack.ts; several times that on a busy machine), so a slice
 * stays well under the 50 ms the event loop may wait.
 */
const NODES_PER_SLICE = 512;

/**
 * be.graph(nodes, ...) for a large graph: the addon reads the nodes a slice at a time, packed
 * (lib/ops/pack.ts), and the event loop runs between slices (a generator's nodes are made a
 * slice at a time too). A thousand-layer model's 17,000 nodes take tens of milliseconds, which
 * in one call, on a busy machine, would stall every timer and socket of the process.
 */
export async function graphInSlices(be: Backend, nodes: Iterable<GraphNode>, maxRows: number, positions?: NativeTensor): Promise<Graph> {
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  const list = call(() => new (native().GraphNodes)());
  const packer = new NodePacker(list);
  const it = nodes[Symbol.iterator]();
  for (let r = it.next(); !r.done; ) {
    await turn();
    const slice: GraphNode[] = [];
    for (; !r.done && slice.length < NODES_PER_SLICE; r = it.next()) slice.push(r.value);
    packer.add(slice);
  }
  // the graph's own checks of every node (~1 µs each) in a turn of their own
  await turn();
  return be.graph(list, maxRows, positions);
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
    if (!Number.isInteger(threads) || threads < 1 || threads > 1024)
      throw new FuselmError('E_INVALID_ARG', `threads must be an integer in 1..1024, got ${threads}`);
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
  graph(nodes: GraphNode[] | NativeGraphNodes, maxRows: number, positions?: NativeTensor): Graph {
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

  graph(nodes: GraphNode[] | NativeGraphNodes, maxRows: number, positions?: NativeTensor): Graph {
    const g = call(() => new (native().Graph)(nodes, { device: this.device, maxRows, positions }));
    return new Graph(g, maxRows);
  }

  dispose(): void {}
}
