/**
 * Creating native tensors from JS data: empty tensors for activations and caches, and f32
 * data converted to any weight dtype (used by tests, benchmarks and load-time conversion).
 */
import type { NativeDType, NativeTensor } from '../bindings.js';
import { FuselmError } from './errors.js';
import { f32ToBf16Bits, f32ToF16Bits, quantizeQ8_0 } from './formats/ggml-types.js';
import { quantizeBlocks } from './formats/quant-fit.js';
import { call, native } from './native.js';

export function emptyTensor(dtype: NativeDType, shape: number[]): NativeTensor {
  return call(() => new (native().Tensor)(dtype, shape));
}

/**
 * Encodes f32 values as the bytes of `dtype` (f16/bf16 round to nearest even, q8_0 as GGUF's;
 * the other block formats by quant-fit.ts's plain min/max fit, meant for test data).
 */
export function encodeF32(dtype: NativeDType, data: Float32Array): Uint8Array {
  switch (dtype) {
    case 'f32':
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    case 'f16':
    case 'bf16': {
      const out = new Uint16Array(data.length);
      const conv = dtype === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
      for (let i = 0; i < data.length; i++) out[i] = conv(data[i]);
      return new Uint8Array(out.buffer);
    }
    case 'q8_0':
      return quantizeQ8_0(data);
    case 'i32':
      throw new FuselmError('E_INVALID_ARG', 'encodeF32: use an Int32Array for i32 tensors');
    default:
      return quantizeBlocks(dtype, data); // a plain min/max fit: test data only
  }
}

/** A tensor of `dtype` holding `data` (row-major, shape's product values). */
export function tensorFromF32(dtype: NativeDType, shape: number[], data: Float32Array): NativeTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n)
    throw new FuselmError('E_INVALID_ARG', `tensorFromF32: shape [${shape}] needs ${n} values, got ${data.length}`);
  const t = emptyTensor(dtype, shape);
  call(() => t.write(encodeF32(dtype, data)));
  return t;
}

export function tensorFromI32(shape: number[], data: Int32Array): NativeTensor {
  const t = emptyTensor('i32', shape);
  call(() => t.write(data));
  return t;
}

/** Reads rows [row, row + rows) of an f32 tensor [R, C] as a Float32Array. */
export function readF32Rows(t: NativeTensor, row: number, rows: number): Float32Array {
  const cols = t.shape[t.shape.length - 1];
  return new Float32Array(call(() => t.read(row * cols * 4, rows * cols * 4)));
}
