/**
 * Weight tensors from a GGUF file: checked against the shape the model expects, read natively
 * (off the JS thread, never through the JS heap) in the file's own dtype.
 */
import type { NativeDType, NativeTensor } from '../../bindings.js';
import { FuselmError } from '../errors.js';
import { GgmlType, ggmlTypeName } from '../formats/ggml-types.js';
import type { GgufFile } from '../formats/gguf.js';
import { f16BitsToF32, bf16BitsToF32 } from '../formats/ggml-types.js';
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
 * Loads tensor `name` with row-major `shape` (GGUF stores dims innermost first, so GGUF
 * [K, N] is shape [N, K]). With `f32: true` the result is converted to f32 (for norms).
 */
export async function loadGgufTensor(f: GgufFile, name: string, shape: number[], opts: { f32?: boolean } = {}): Promise<NativeTensor> {
  const info = f.tensorByName.get(name);
  if (!info) throw new FuselmError('E_FORMAT', `${f.path}: tensor '${name}' is missing`);
  const want = [...shape].reverse();
  if (info.dims.length !== want.length || info.dims.some((d, i) => d !== want[i]))
    throw new FuselmError(
      'E_FORMAT',
      `${f.path}: tensor '${name}' has dims [${info.dims}] (innermost first), expected [${want}]`,
    );
  const dtype = DTYPES[info.type];
  if (!dtype)
    throw new FuselmError(
      'E_UNSUPPORTED',
      `${f.path}: tensor '${name}' has type ${ggmlTypeName(info.type)}, which fuselm does not load yet (supported: F32, F16, BF16, Q8_0)`,
    );
  const t = await callAsync(() => native().tensorFromFile(f.path, info.offset, dtype, shape));
  if (!opts.f32 || dtype === 'f32') return t;
  if (dtype === 'q8_0') throw new FuselmError('E_UNSUPPORTED', `${f.path}: tensor '${name}' must be F32, F16 or BF16, got Q8_0`);
  const bits = new Uint16Array(t.read());
  t.free();
  const conv = dtype === 'f16' ? f16BitsToF32 : bf16BitsToF32;
  return tensorFromF32('f32', shape, Float32Array.from(bits, conv));
}
