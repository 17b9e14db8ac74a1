/**
 * Weight tensors from a GGUF file: checked against the shape the model expects; kept in the
 * file's own dtype, they are views into the mapped file (useMmap, GgufMappings) or read natively
 * (off the JS thread, never through the JS heap); converted at load otherwise.
 */
import { open } from 'node:fs/promises';
import type { NativeDType, NativeMappedFile, NativeTensor } from '../../bindings.js';
import { FuselmError } from '../errors.js';
import { GgmlType } from '../formats/ggml-types.js';
import type { GgufFile, GgufPart, GgufTensorInfo } from '../formats/gguf.js';
import { toF32 } from '../formats/quants.js';
import { callAsync, native } from '../native.js';
import { emptyTensor, tensorFromF32 } from '../tensor.js';

const DTYPES: Partial<Record<GgmlType, NativeDType>> = {
  [GgmlType.F32]: 'f32',
  [GgmlType.F16]: 'f16',
  [GgmlType.BF16]: 'bf16',
  [GgmlType.Q8_0]: 'q8_0',
  [GgmlType.Q4_0]: 'q4_0',
  [GgmlType.Q4_1]: 'q4_1',
  [GgmlType.Q5_0]: 'q5_0',
  [GgmlType.Q5_1]: 'q5_1',
  [GgmlType.Q2_K]: 'q2_k',
  [GgmlType.Q3_K]: 'q3_k',
  [GgmlType.Q4_K]: 'q4_k',
  [GgmlType.Q5_K]: 'q5_k',
  [GgmlType.Q6_K]: 'q6_k',
  [GgmlType.IQ4_NL]: 'iq4_nl',
  [GgmlType.IQ4_XS]: 'iq4_xs',
};

/**
 * The block formats the CPU kernels run as stored (matmul on the weights as the file holds
 * them, embedding rows dequantized as llama.cpp does); a stored block format outside the set a
 * backend runs is converted to q8_0 at load.
 */
export const CPU_BLOCK_DTYPES: ReadonlySet<NativeDType> = new Set<NativeDType>(['q8_0', 'q4_k', 'q6_k', 'q5_k', 'q4_0', 'q5_0', 'iq4_nl', 'iq4_xs', 'q2_k', 'q3_k', 'q4_1', 'q5_1']);
/**
 * The CUDA backend's: every block format (matmul: cuda/gemv_quant.cu, cuda/gemm_quant.cu,
 * cuda/gemm_q8_0.cu; embedding: cuda/embedding.cu).
 */
export const CUDA_BLOCK_DTYPES: ReadonlySet<NativeDType> = new Set<NativeDType>([
  'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_xs',
]);

export function hasTensor(f: GgufFile, name: string): boolean {
  return f.tensorByName.has(name);
}

/**
 * The weight format a model runs with: 'auto' keeps F32/F16/BF16 and the block formats the
 * backend runs (CPU_BLOCK_DTYPES) as stored, and converts other block formats to q8_0; 'q8_0'
 * or 'f16' converts every weight matrix. A q8_0 row needs whole blocks of 32 values; narrower
 * rows become f16.
 */
export type WeightDtype = 'auto' | 'q8_0' | 'f16';

/**
 * The dtype a GGUF tensor is held in (vectors: f32; matrices: targetDtype's rule); a tensor
 * held in its stored dtype is used as the file stores it (a view when the file is mapped).
 */
export function heldDtype(t: GgufTensorInfo, want: WeightDtype, blocks?: ReadonlySet<NativeDType>): { held: NativeDType; asStored: boolean } {
  const stored = DTYPES[t.type];
  const held = t.dims.length === 1 ? 'f32' : targetDtype(stored, t.dims[0], want, blocks);
  return { held, asStored: held === stored };
}

function targetDtype(stored: NativeDType | undefined, cols: number, want: WeightDtype, blocks: ReadonlySet<NativeDType> = CPU_BLOCK_DTYPES): NativeDType {
  const q8 = cols % 32 === 0 ? 'q8_0' : 'f16';
  if (want === 'f16') return 'f16';
  if (want === 'q8_0') return stored === 'q8_0' ? 'q8_0' : q8;
  if (stored === 'f32' || stored === 'f16' || stored === 'bf16') return stored;
  return stored !== undefined && blocks.has(stored) ? stored : q8;
}

/**
 * The files one load maps (LoadModelOptions.useMmap): each read-only (native/mapped_file.h) on
 * first use, one mapping per file, so each part of a split model is mapped on its own. A tensor
 * kept as stored is a view into its file's mapping and holds a share of it; close() drops the
 * loader's handles, so a file is unmapped once the last of its views is freed.
 */
export class GgufMappings {
  #files = new Map<string, Promise<NativeMappedFile>>();

  /** The mapping of a file; E_FORMAT if the file is now smaller than when its header was read. */
  file(part: GgufPart): Promise<NativeMappedFile> {
    let m = this.#files.get(part.path);
    if (!m) this.#files.set(part.path, (m = callAsync(() => native().mapFile(part.path, part.fileSize))));
    return m;
  }

  async close(): Promise<void> {
    const all = [...this.#files.values()];
    this.#files.clear();
    for (const m of await Promise.allSettled(all)) if (m.status === 'fulfilled') m.value.free();
  }
}

/**
 * Loads tensor `name` with row-major `shape` (GGUF stores dims innermost first, so GGUF
 * [K, N] is shape [N, K]). Vectors (norms) come as f32; matrices in `dtype`'s format. Tensors
 * kept as stored are views into the file when `mappings` is given (read-only: nothing may write
 * them), else read natively; converted ones pass through JS one at a time.
 * `rows` takes a slice of the outermost dim (rows of a matrix, values of a vector), as from
 * llama.cpp's fused attn_qkv: the stored tensor then has `rows.total` of them.
 */
export async function loadGgufTensor(
  f: GgufFile,
  name: string,
  shape: number[],
  opts: { dtype?: WeightDtype; rows?: { start: number; total: number }; blocks?: ReadonlySet<NativeDType>; mappings?: GgufMappings } = {},
): Promise<NativeTensor> {
  const info = f.tensorByName.get(name);
  if (!info) throw new FuselmError('E_FORMAT', `${f.path}: tensor '${name}' is missing`);
  const want = [...shape].reverse();
  if (opts.rows) want[want.length - 1] = opts.rows.total;
  if (info.dims.length !== want.length || info.dims.some((d, i) => d !== want[i]))
    throw new FuselmError(
      'E_FORMAT',
      `${f.path}: tensor '${name}' has dims [${info.dims}] (innermost first), expected [${want}]`,
    );
  // a whole row is whole blocks (GGUF requires it), so a row slice is a byte range
  const rowBytes = info.nbytes / want[want.length - 1];
  const offset = info.offset + (opts.rows?.start ?? 0) * rowBytes;
  const nbytes = rowBytes * shape[0];
  const nelements = shape.reduce((a, b) => a * b, 1);
  const { held: target, asStored } = heldDtype(info, opts.dtype ?? 'auto', opts.blocks);
  const part = info.file ?? f; // a split model's part, or the file itself
  if (asStored) {
    if (!opts.mappings) return callAsync(() => native().tensorFromFile(part.path, offset, target, shape));
    const m = await opts.mappings.file(part);
    return callAsync(() => m.tensor(offset, target, shape));
  }
  const what = `${part.path}: tensor '${name}'`;
  const bytes = new Uint8Array(nbytes);
  const fh = await open(part.path, 'r').catch((e) => {
    throw new FuselmError('E_IO', `${part.path}: ${(e as Error).message}`);
  });
  try {
    const { bytesRead } = await fh.read(bytes, 0, nbytes, offset);
    if (bytesRead !== nbytes) throw new FuselmError('E_FORMAT', `${what}: data at offset ${offset} runs past the end of the file`);
  } finally {
    await fh.close();
  }
  return tensorFromF32(target, shape, toF32(info.type, bytes, nelements, what));
}

const GGML_TYPES: Partial<Record<NativeDType, GgmlType>> = { f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16 };

/**
 * A matrix loaded in its stored dtype (f32, f16 or bf16), converted as `dtype` says by the rule
 * GGUF tensors follow; the input is freed when a new tensor replaces it.
 */
export function convertMatrix(t: NativeTensor, dtype: WeightDtype, what: string): NativeTensor {
  const target = targetDtype(t.dtype, t.shape[t.shape.length - 1], dtype);
  if (target === t.dtype) return t;
  try {
    const type = GGML_TYPES[t.dtype];
    if (type === undefined) throw new FuselmError('E_UNSUPPORTED', `${what}: cannot convert a ${t.dtype} tensor to ${target}`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    return tensorFromF32(target, t.shape, toF32(type, new Uint8Array(t.read()), n, what));
  } finally {
    t.free();
  }
}

/** Matrices of one dtype and shape [N, K] as one [count, N, K] tensor, copied (the inputs stay the caller's). */
export function stackTensors(parts: NativeTensor[]): NativeTensor {
  const out = emptyTensor(parts[0].dtype, [parts.length, ...parts[0].shape]);
  parts.forEach((t, i) => {
    const bytes = new Uint8Array(t.read());
    out.write(bytes, i * bytes.length);
  });
  return out;
}

/** Checks a dtype option (`where` names the call). */
export function checkWeightDtype(dtype: string, where: string): WeightDtype {
  if (!['auto', 'q8_0', 'f16'].includes(dtype)) throw new FuselmError('E_INVALID_ARG', `${where}: dtype must be 'auto', 'q8_0' or 'f16', got '${dtype}'`);
  return dtype as WeightDtype;
}
