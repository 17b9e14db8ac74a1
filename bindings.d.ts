// The one typing of the raw native addon (build/Release/fuselm.node or prebuilds/).
// test/bindings.test.ts checks these keys against what the addon really exports.

export type NativeDType = 'f32' | 'f16' | 'bf16' | 'i32' | 'q8_0';
export type NativeImpl = 'auto' | 'reference' | 'portable' | 'avx2' | 'avx512';
/** Where a tensor's memory lives: host memory, a CUDA GPU, or the CUDA backend's SIMT emulator. */
export type NativeDevice = 'cpu' | 'cuda' | 'cuda-emulated';

export interface NativeTensor {
  readonly dtype: NativeDType;
  readonly shape: number[];
  readonly nbytes: number;
  readonly device: NativeDevice;
  /** Copies bytes into the tensor at byteOffset (default 0), wherever it lives. */
  write(bytes: ArrayBufferView, byteOffset?: number): void;
  /** A copy of the tensor's bytes (default: all of them). */
  read(byteOffset?: number, byteLength?: number): ArrayBuffer;
  /** A copy of the tensor in a device's memory. */
  to(device: NativeDevice): NativeTensor;
  /** Drops this handle's share of the memory; graphs holding the tensor keep it alive. */
  free(): void;
}

export interface NativePool {
  readonly threads: number;
  free(): void;
}

/** One op of a graph. Roles per op (lib/backend.ts builds these): see native/backend.h. */
export interface NativeNode {
  op: 'add' | 'matmul' | 'rms_norm' | 'rope' | 'kv_store' | 'attention' | 'swiglu' | 'embedding' | 'add_bias' | 'layer_norm' | 'gelu' | 'transpose' | 'argmax';
  out: NativeTensor;
  a?: NativeTensor;
  b?: NativeTensor;
  c?: NativeTensor;
  eps?: number;
  scale?: number;
  thetaBase?: number;
  freqScale?: number;
  nHeads?: number;
  nKvHeads?: number;
  headDim?: number;
  nRot?: number;
  neox?: boolean;
  lastRow?: boolean;
  /** attention: sliding window (0: none); causal false for encoders. */
  window?: number;
  causal?: boolean;
  /** gelu: the tanh approximation instead of erf. */
  tanhApprox?: boolean;
  /** transpose: the first column of x taken. */
  col0?: number;
  /** rope, kv_store, attention of one sequence in a batch: its first row, row count, and the
   * slot of the graph's positions tensor holding its position. */
  row0?: number;
  seqRows?: number;
  posSlot?: number;
  /** attention: keys 0 .. prefixLen-1 from these caches, key prefixLen + j from row j of b/c (beam search). */
  kPrefix?: NativeTensor;
  vPrefix?: NativeTensor;
  prefixLen?: number;
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
  Graph: new (nodes: NativeNode[], options: { device?: NativeDevice; pool?: NativePool; impl?: NativeImpl; maxRows: number; positions?: NativeTensor }) => NativeGraph;
  tensorFromFile(path: string, byteOffset: number, dtype: NativeDType, shape: number[]): Promise<NativeTensor>;
  cpuInfo(): CpuInfo;
  cudaInfo(): CudaInfo;
  /** The CUDA smoke kernel: a + b on the device. Throws E_UNSUPPORTED when built without CUDA. */
  cudaAdd(a: Float32Array, b: Float32Array, device?: number): Float32Array;
  /** Bytes of a CUDA device's memory that fuselm holds (tensors, graph buffers); 0 for 'cpu'. */
  deviceMemoryInUse(device: NativeDevice): number;
}
