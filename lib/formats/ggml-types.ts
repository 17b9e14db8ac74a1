/**
 * The ggml tensor type table (the numeric ids GGUF files store), the block geometry of each type,
 * and the few scalar converters the GGUF writer and the tests need: f32 <-> f16 / bf16 bit
 * patterns and the Q8_0 block quantizer. The compute kernels live in native/; this file only has
 * to be exact, not fast.
 */
import { FuselmError } from '../errors.js';

/** ggml tensor types with the ids used on disk. Gaps (4, 5, 31-33, 36-38) are retired types. */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
}

export interface GgmlTypeSize {
  /** Elements per block (1 for plain scalar types). */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

// [blockSize, typeSize] per type. QK_K super-blocks are 256 elements. Every entry was checked
// against the block struct layouts (e.g. Q4_K: f16 d + f16 dmin + 12 scale bytes + 128 nibble
// bytes = 144). A type missing here is known by name but has no size, and a tensor of it is
// E_UNSUPPORTED.
const SIZES: Partial<Record<GgmlType, readonly [number, number]>> = {
  [GgmlType.F32]: [1, 4],
  [GgmlType.F16]: [1, 2],
  [GgmlType.BF16]: [1, 2],
  [GgmlType.F64]: [1, 8],
  [GgmlType.I8]: [1, 1],
  [GgmlType.I16]: [1, 2],
  [GgmlType.I32]: [1, 4],
  [GgmlType.I64]: [1, 8],
  [GgmlType.Q4_0]: [32, 18], // f16 d + 16 nibble bytes
  [GgmlType.Q4_1]: [32, 20], // f16 d, f16 m + 16
  [GgmlType.Q5_0]: [32, 22], // f16 d + 4 high-bit bytes + 16
  [GgmlType.Q5_1]: [32, 24], // f16 d, f16 m + 4 + 16
  [GgmlType.Q8_0]: [32, 34], // f16 d + 32 int8
  [GgmlType.Q8_1]: [32, 36], // f16 d, f16 s + 32 int8
  [GgmlType.Q2_K]: [256, 84],
  [GgmlType.Q3_K]: [256, 110],
  [GgmlType.Q4_K]: [256, 144],
  [GgmlType.Q5_K]: [256, 176],
  [GgmlType.Q6_K]: [256, 210],
  [GgmlType.Q8_K]: [256, 292], // f32 d + 256 int8 + 16 int16 sums
  [GgmlType.IQ2_XXS]: [256, 66],
  [GgmlType.IQ2_XS]: [256, 74],
  [GgmlType.IQ3_XXS]: [256, 98],
  [GgmlType.IQ1_S]: [256, 50],
  [GgmlType.IQ4_NL]: [32, 18],
  [GgmlType.IQ3_S]: [256, 110],
  [GgmlType.IQ2_S]: [256, 82],
  [GgmlType.IQ4_XS]: [256, 136],
  [GgmlType.IQ1_M]: [256, 56],
  [GgmlType.TQ1_0]: [256, 54],
  [GgmlType.TQ2_0]: [256, 66],
  [GgmlType.MXFP4]: [32, 17], // e8m0 scale byte + 16 nibble bytes
};

/** True when `t` is an id in the table above (a known type, whether or not it has a size). */
export function isKnownGgmlType(t: number): t is GgmlType {
  return Number.isInteger(t) && typeof GgmlType[t] === 'string';
}

/** "Q8_0" for 8; "unknown(4)" for ids outside the table. */
export function ggmlTypeName(t: number): string {
  return isKnownGgmlType(t) ? GgmlType[t] : `unknown(${t})`;
}

/** Block geometry of a type, or undefined when the type is unknown or has no known size. */
export function ggmlTypeSize(t: number): GgmlTypeSize | undefined {
  if (!isKnownGgmlType(t)) return undefined;
  const s = SIZES[t];
  return s ? { blockSize: s[0], typeSize: s[1] } : undefined;
}

/**
 * Bytes taken by a tensor of `type` with `dims` (innermost first, as GGUF stores them).
 * Exact BigInt arithmetic; throws E_UNSUPPORTED for a type without a size and E_INVALID_ARG when
 * dims[0] is not a multiple of the block size or the result exceeds Number.MAX_SAFE_INTEGER.
 */
export function tensorByteSize(type: GgmlType, dims: readonly number[]): number {
  const size = ggmlTypeSize(type);
  if (!size) throw new FuselmError('E_UNSUPPORTED', `tensor type ${ggmlTypeName(type)} has no known byte size`);
  if (dims.length === 0) throw new FuselmError('E_INVALID_ARG', 'tensor needs at least one dimension');
  let n = 1n;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new FuselmError('E_INVALID_ARG', `bad tensor dimension ${d} in [${dims.join(', ')}]`);
    n *= BigInt(d);
  }
  if (dims[0] % size.blockSize !== 0) {
    throw new FuselmError('E_INVALID_ARG', `dims[0] = ${dims[0]} is not a multiple of the ${ggmlTypeName(type)} block size ${size.blockSize}`);
  }
  const bytes = (n / BigInt(size.blockSize)) * BigInt(size.typeSize);
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FuselmError('E_INVALID_ARG', `tensor [${dims.join(', ')}] of ${ggmlTypeName(type)} is ${bytes} bytes, too large`);
  }
  return Number(bytes);
}

// ---------------------------------------------------------------------------------------------
// Scalar converters. One shared 4-byte scratch buffer gives us the f32 bit pattern of a number.

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** f32 -> IEEE half bits, round to nearest even; overflow -> inf, NaN stays NaN (quiet). */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 127 + 15; // rebiased exponent
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Half subnormal: value = m * 2^-24. Below 2^-25 everything rounds to zero.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e; // 14..24
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (m & 1) !== 0)) m++; // may carry into the smallest normal: still right
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // a carry into the exponent is correct, up to inf
  return h;
}

/** IEEE half bits -> number (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1024 + m) * 2 ** (e - 25);
}

/** f32 -> bfloat16 bits (the top half of the f32), round to nearest even; NaN stays NaN. */
export function f32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  const lsb = (b >>> 16) & 1;
  // Plain arithmetic, not |0: b + 0x7fff can pass 2^32 only for negative values, where the
  // division still gives the right top half (rounding up into -inf).
  return Math.floor((b + 0x7fff + lsb) / 0x10000) & 0xffff;
}

/** bfloat16 bits -> number (exact). */
export function bf16BitsToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0];
}

/** roundf: to nearest, halves away from zero (Math.round sends -2.5 to -2). */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

export const QK8_0 = 32;
const Q8_0_BLOCK_BYTES = 34;

/**
 * Q8_0 quantization, bit-exact with ggml's reference (quantize_row_q8_0_ref): per block of 32,
 * d = amax/127 and id = 1/d computed in f32, q = roundf(x*id), d stored as f16 (the quants use
 * the unrounded f32 d, as the reference does). src.length must be a multiple of 32.
 */
export function quantizeQ8_0(src: Float32Array): Uint8Array {
  if (src.length % QK8_0 !== 0) {
    throw new FuselmError('E_INVALID_ARG', `quantizeQ8_0: length ${src.length} is not a multiple of ${QK8_0}`);
  }
  const nb = src.length / QK8_0;
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  const q = new Int8Array(out.buffer);
  const f = Math.fround;
  for (let b = 0; b < nb; b++) {
    const base = b * QK8_0;
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(src[base + j]));
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    const o = b * Q8_0_BLOCK_BYTES;
    const h = f32ToF16Bits(d);
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < QK8_0; j++) q[o + 2 + j] = roundHalfAway(f(src[base + j] * id));
  }
  return out;
}

/** Q8_0 -> f32: x = f16(d) * q, n values (a multiple of 32) from n/32 blocks of 34 bytes. */
export function dequantizeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  if (!Number.isSafeInteger(n) || n < 0 || n % QK8_0 !== 0) {
    throw new FuselmError('E_INVALID_ARG', `dequantizeQ8_0: n = ${n} is not a multiple of ${QK8_0}`);
  }
  const nb = n / QK8_0;
  if (bytes.length < nb * Q8_0_BLOCK_BYTES) {
    throw new FuselmError('E_INVALID_ARG', `dequantizeQ8_0: ${n} values need ${nb * Q8_0_BLOCK_BYTES} bytes, got ${bytes.length}`);
  }
  const out = new Float32Array(n);
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = f16BitsToF32(bytes[o] | (bytes[o + 1] << 8));
    for (let j = 0; j < QK8_0; j++) {
      const v = bytes[o + 2 + j];
      out[b * QK8_0 + j] = d * (v > 127 ? v - 256 : v);
    }
  }
  return out;
}
