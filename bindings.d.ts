// The one typing of the raw native addon (build/Release/fuselm.node or prebuilds/).
// test/bindings.test.ts checks these keys against what the addon really exports.

/** The GGUF block formats kept as stored (native/quant_blocks.h); q8_0 is one of them. */
export type NativeBlockDType = 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q2_k' | 'q3_k' | 'q4_k' | 'q5_k' | 'q6_k' | 'iq4_nl' | 'iq4_xs';
export type NativeDType = 'f32' | 'f16' | 'bf16' | 'i32' | NativeBlockDType;
/** The block formats native/quant writes. */
export type NativeQuantFormat = 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q8_0' | 'q2_k' | 'q3_k' | 'q4_k' | 'q5_k' | 'q6_k' | 'iq4_nl' | 'f16';
export type NativeImpl = 'auto' | 'reference' | 'portable' | 'avx2' | 'avx512';
/** Where a tensor's memory lives: host memory, a CUDA GPU, or the CUDA backend's SIMT emulator. */
export type NativeDevice = 'cpu' | 'cuda' | 'cuda-emulated';

export interface NativeTensor {
  readonly dtype: NativeDType;
  readonly shape: number[];
  readonly nbytes: number;
  readonly device: NativeDevice;
  /** True for a read-only view into a mapped file (NativeMappedFile.tensor); writing it is an E_INVALID_ARG. */
  readonly mapped: boolean;
  /** Copies bytes into the tensor at byteOffset (default 0), wherever it lives. */
  write(bytes: ArrayBufferView, byteOffset?: number): void;
  /** A copy of the tensor's bytes (default: all of them). */
  read(byteOffset?: number, byteLength?: number): ArrayBuffer;
  /** A copy of the tensor in a device's memory. */
  to(device: NativeDevice): NativeTensor;
  /** Drops this handle's share of the memory; graphs holding the tensor keep it alive. */
  free(): void;
}

/**
 * A file mapped read-only (mapFile). Views into it hold their share of the mapping, so free()
 * only drops this handle's: the file is unmapped when the views are freed too.
 */
export interface NativeMappedFile {
  readonly path: string;
  readonly size: number;
  /**
   * The tensor at byteOffset, off the JS thread: a read-only view into the mapping, or a copy
   * where the offset does not suit the dtype's alignment (2 bytes for the block formats and
   * f16/bf16, 4 for f32/i32). E_FORMAT when it runs past the end of the file.
   */
  tensor(byteOffset: number, dtype: NativeDType, shape: number[]): Promise<NativeTensor>;
  free(): void;
}

export interface NativePool {
  readonly threads: number;
  free(): void;
}

/**
 * One op of a graph: `op` names an entry of the op table (opTable()), the other fields are that
 * op's tensor roles and parameters; a field the op does not declare, or a missing required one,
 * is an E_INVALID_ARG naming the op and the field. lib/ops/table.ts types each op's node.
 */
export interface NativeNode {
  op: string;
  [field: string]: NativeTensor | number | boolean | string | undefined;
}

/** An op of the addon's op table (native/ops/<op>.h). */
export interface NativeOpInfo {
  name: string;
  roles: Array<{ name: string; access: 'in' | 'out' | 'inout' | 'update'; required: boolean; host: boolean }>;
  params: Array<{ name: string; type: 'float' | 'int' | 'bool'; required: boolean; default?: number | boolean }>;
  /** Takes a sequence span (row0, seqRows, posSlot). */
  positional: boolean;
  /** Why the CUDA backend does not implement it; absent when it does. */
  noCuda?: string;
}

/** Graph nodes read by the addon a slice at a time (a graph of many thousands of nodes, read in one call, would block the JS thread). */
export interface NativeGraphNodes {
  /** Parses and appends nodes (numbered after those added before); returns how many there are. A bad node throws and adds nothing. */
  add(nodes: NativeNode[]): number;
  /**
   * Appends nodes packed by lib/ops/pack.ts (ints: op index, a tensor index or -1 per role, and
   * posSlot/row0/seqRows or -1 for a positional op; params: one per parameter, NaN absent);
   * `tensors` extend the list's tensor table, which the indices name. Returns how many nodes
   * there are; a bad node throws and adds nothing.
   */
  addPacked(ints: Int32Array, params: Float64Array, tensors: NativeTensor[]): number;
}

export interface NativeGraph {
  /** Runs every op for n tokens at positions pos..pos+n-1, off the JS thread. */
  run(n: number, pos: number): Promise<void>;
  free(): void;
}

export interface CpuInfo {
  features: Record<'avx2' | 'fma' | 'f16c' | 'avx512f' | 'avx512bw' | 'avx512vl' | 'avx512vnni' | 'avx512bf16', boolean>;
  impls: NativeImpl[];
  bestImpl: NativeImpl;
  physicalCores: number;
}

export interface CudaDeviceInfo {
  index: number;
  name: string;
  totalMemory: number;
  computeCapability: string;
}

export interface CudaInfo {
  compiled: boolean;
  devices: CudaDeviceInfo[];
  /** Why there is no usable device, when there is none. */
  reason?: string;
}

export interface NativeAddon {
  /** A zero-filled tensor; a CUDA device throws NO_CUDA_DEVICE when it has none. */
  Tensor: new (dtype: NativeDType, shape: number[], device?: NativeDevice) => NativeTensor;
  Pool: new (threads: number) => NativePool;
  /**
   * A graph on the CPU (pool, impl) or a CUDA device: device tensors throughout, except token
   * ids (embedding) and outputs no op reads (logits), which stay in host memory.
   */
  GraphNodes: new () => NativeGraphNodes;
  /** nodes: an array, or a GraphNodes (which the graph takes: it cannot be added to or used again). */
  Graph: new (nodes: NativeNode[] | NativeGraphNodes, options: { device?: NativeDevice; pool?: NativePool; impl?: NativeImpl; maxRows: number; positions?: NativeTensor }) => NativeGraph;
  /** The op table: every op the graphs run, with its roles and parameters. */
  opTable(): NativeOpInfo[];
  /**
   * For each 2-D tensor, a new one of `rows` rows (same dtype, columns and device) holding its
   * rows first and zeros after, made and filled off the JS thread (a KV cache growing).
   */
  growRows(tensors: NativeTensor[], rows: number): Promise<NativeTensor[]>;
  tensorFromFile(path: string, byteOffset: number, dtype: NativeDType, shape: number[]): Promise<NativeTensor>;
  /**
   * Maps a regular file read-only, off the JS thread; E_FORMAT when it is smaller than minSize
   * (the size its header was checked against). Truncating a mapped file is undefined (SIGBUS).
   */
  mapFile(path: string, minSize: number): Promise<NativeMappedFile>;
  /** Bytes of all files mapped now in this process (by a handle or a tensor view). */
  mappedFileBytes(): number;
  /**
   * Quantizes rows of `cols` values from src into dst (exactly the format's size), off the JS
   * thread on `threads` workers (default: all cores). search: the scale search of
   * native/quant (what files are written with); false: the plain min/max fit.
   */
  quantizeRows(format: NativeQuantFormat, src: Float32Array, cols: number, dst: Uint8Array, search: boolean, threads?: number): Promise<void>;
  cpuInfo(): CpuInfo;
  cudaInfo(): CudaInfo;
  /** Bytes of a CUDA device's memory that fuselm holds (tensors, graph buffers); 0 for 'cpu'. */
  deviceMemoryInUse(device: NativeDevice): number;
  /** A CUDA device's free and total bytes (cudaMemGetInfo; the emulator's device is FUSELM_EMU_DEVICE_MEMORY bytes, default 80 GiB). */
  deviceMemoryInfo(device: 'cuda' | 'cuda-emulated'): { free: number; total: number };
}
