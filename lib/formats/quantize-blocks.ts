/**
 * Quantization of f32 rows into GGUF's block formats, natively (native/quant, off the JS
 * thread and on every core): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL. `search` (the
 * default) fits each block's scales (and mins) by the weighted least-squares searches
 * llama.cpp uses for its k-quants; `plain` is the min/max fit, kept as the baseline the tests
 * measure against. lib/formats/quants.ts decodes every format written here.
 */
import type { NativeQuantFormat } from '../../bindings.js';
import { FuselmError } from '../errors.js';
import { callAsync, native } from '../native.js';
import { GgmlType, ggmlTypeName, ggmlTypeSize } from './ggml-types.js';

export const BLOCK_FORMATS: Partial<Record<GgmlType, NativeQuantFormat>> = {
  [GgmlType.Q4_0]: 'q4_0',
  [GgmlType.Q4_1]: 'q4_1',
  [GgmlType.Q5_0]: 'q5_0',
  [GgmlType.Q5_1]: 'q5_1',
  [GgmlType.Q8_0]: 'q8_0',
  [GgmlType.Q2_K]: 'q2_k',
  [GgmlType.Q3_K]: 'q3_k',
  [GgmlType.Q4_K]: 'q4_k',
  [GgmlType.Q5_K]: 'q5_k',
  [GgmlType.Q6_K]: 'q6_k',
  [GgmlType.IQ4_NL]: 'iq4_nl',
  // not a block format, but converted the same way (natively, on every core)
  [GgmlType.F16]: 'f16',
};

export function canQuantize(type: GgmlType): boolean {
  return BLOCK_FORMATS[type] !== undefined;
}

export interface QuantizeRowsOptions {
  /** 'search' (default): the scale search; 'plain': the min/max fit (the baseline). */
  fit?: 'search' | 'plain';
  /** Worker threads (default: every core). */
  threads?: number;
}

/** The rows of `src` (each `cols` values, a multiple of the type's block) in block type `type`. */
export async function quantizeRows(type: GgmlType, src: Float32Array, cols: number, o: QuantizeRowsOptions = {}): Promise<Uint8Array> {
  const format = BLOCK_FORMATS[type];
  const size = ggmlTypeSize(type);
  if (!format || !size) throw new FuselmError('E_UNSUPPORTED', `cannot quantize to ${ggmlTypeName(type)} (supported: ${Object.values(BLOCK_FORMATS).join(', ')})`);
  if (!Number.isInteger(cols) || cols <= 0 || cols % size.blockSize !== 0)
    throw new FuselmError('E_INVALID_ARG', `${ggmlTypeName(type)} rows need a multiple of ${size.blockSize} values, got ${cols}`);
  if (src.length % cols !== 0) throw new FuselmError('E_INVALID_ARG', `${src.length} values are not whole rows of ${cols}`);
  const dst = new Uint8Array((src.length / size.blockSize) * size.typeSize);
  await callAsync(() => native().quantizeRows(format, src, cols, dst, (o.fit ?? 'search') === 'search', o.threads));
  return dst;
}
