/**
 * Weight tensors from a GGUF file: checked against the shape the model expects, read natively
 * (off the JS thread, never through the JS heap) when kept in the file's own dtype, converted
 * at load otherwise.
 */
import { open } from 'node:fs/promises';
import type { NativeDType, NativeTensor } from '../../bindings.js';
import { FuselmError } from '../errors.js';
import { GgmlType } from '../formats/ggml-types.js';
import type { GgufFile } from '../formats/gguf.js';
import { toF32 } from '../formats/quants.js';
import { callAsync, native } from '../native.js';
import { tensorFromF32 } from '../tensor.js';

const DTYPES: Partial<Record<GgmlType, NativeDType>> = {
  [GgmlType.F32]: 'f32',
  [GgmlType.F16]: 'f16',
  [GgmlType.BF16]: 'bf16',
  [GgmlType.Q8_0]: 'q8_0',
};

export function hasTensor(f: GgufFile, name: string): boolean {
  return f.tensorByName.has(name);
}

/**
 * The weight format a model runs with: 'auto' keeps F32/F16/BF16/Q8_0 as stored and converts
 * the block formats (Q4_0 ... Q6_K) to q8_0; 'q8_0' or 'f16' converts every weight matrix.
 * A q8_0 row needs whole blocks of 32 values; narrower rows become f16.
 */
export type WeightDtype = 'auto' | 'q8_0' | 'f16';

function targetDtype(stored: NativeDType | undefined, cols: number, want: WeightDtype): NativeDType {
  const q8 = cols % 32 === 0 ? 'q8_0' : 'f16';
  if (want === 'f16') return 'f16';
  if (want === 'q8_0') return stored === 'q8_0' ? 'q8_0' : q8;
  return stored ?? q8;
}

/**
 * Loads tensor `name` with row-major `shape` (GGUF stores dims innermost first, so GGUF
 * [K, N] is shape [N, K]). Vectors (norms) come as f32; matrices in `dtype`'s format. Tensors
 * kept as stored are read natively; converted ones pass through JS one at a time.
 */
export async function loadGgufTensor(f: GgufFile, name: string, shape: number[], opts: { dtype?: WeightDtype } = {}): Promise<NativeTensor> {
  const info = f.tensorByName.get(name);
  if (!info) throw new FuselmError('E_FORMAT', `${f.path}: tensor '${name}' is missing`);
  const want = [...shape].reverse();
  if (info.dims.length !== want.length || info.dims.some((d, i) => d !== want[i]))
    throw new FuselmError(
      'E_FORMAT',
      `${f.path}: tensor '${name}' has dims [${info.dims}] (innermost first), expected [${want}]`,
    );
  const stored = DTYPES[info.type];
  const target = shape.length === 1 ? 'f32' : targetDtype(stored, shape[shape.length - 1], opts.dtype ?? 'auto');
  if (stored === target) return callAsync(() => native().tensorFromFile(f.path, info.offset, target, shape));
  const what = `${f.path}: tensor '${name}'`;
  const bytes = new Uint8Array(info.nbytes);
  const fh = await open(f.path, 'r').catch((e) => {
    throw new FuselmError('E_IO', `${f.path}: ${(e as Error).message}`);
  });
  try {
    const { bytesRead } = await fh.read(bytes, 0, info.nbytes, info.offset);
    if (bytesRead !== info.nbytes) throw new FuselmError('E_FORMAT', `${what}: data at offset ${info.offset} runs past the end of the file`);
  } finally {
    await fh.close();
  }
  return tensorFromF32(target, shape, toF32(info.type, bytes, info.nelements, what));
}
