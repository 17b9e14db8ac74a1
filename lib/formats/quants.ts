/**
 * Dequantization of the GGUF block formats most downloads use (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K,
 * Q3_K, Q4_K, Q5_K, Q6_K), written from the published block layouts. Models holding them are converted at
 * load time to a format the kernels run (q8_0 or f16).
 *
 * Layouts (little-endian; d, m, dmin are f16):
 *   Q4_0  32 values, 18 B: d, qs[16]            x = (nibble - 8) * d
 *   Q4_1  32 values, 20 B: d, m, qs[16]         x = nibble * d + m
 *   Q5_0  32 values, 22 B: d, qh u32, qs[16]    x = (nibble | fifth bit << 4) - 16) * d
 *   Q5_1  32 values, 24 B: d, m, qh, qs[16]     x = (nibble | fifth bit << 4) * d + m
 *   (low nibbles of qs are values 0..15, high nibbles values 16..31; bit j of qh is value j's fifth bit)
 *   Q4_K 256 values, 144 B: d, dmin, scales[12], qs[128]; 8 sub-blocks of 32 with 6-bit scale and
 *        min: x = d * sc * nibble - dmin * m
 *   Q5_K 256 values, 176 B: d, dmin, scales[12], qh[32], qs[128]; as Q4_K with a fifth bit from qh
 *   Q6_K 256 values, 210 B: ql[128], qh[64], scales[16] (int8), d; 16 sub-blocks of 16:
 *        x = d * scale * (6-bit q - 32)
 *   Q2_K 256 values, 84 B: scales[16] (4-bit scale | 4-bit min << 4), qs[64], d, dmin; 16
 *        sub-blocks of 16: x = d * sc * q - dmin * m, q 2 bits (value 128h + 32k + l in bits 2k
 *        of qs[32h + l])
 *   Q3_K 256 values, 110 B: hmask[32], qs[64], scales[12], d; 16 sub-blocks of 16 with 6-bit
 *        scales offset by 32 (low nibbles of scale j in scales[j % 8], the j < 8 ones low, the
 *        rest high; top 2 bits in bits 2 (j / 4) of scales[8 + j % 4]): x = d * (sc - 32) * q,
 *        q = low 2 bits (as Q2_K) - 4 unless bit i / 32 of hmask[i % 32] is set
 *   IQ4_NL 32 values, 18 B: d, qs[16] (nibbles as Q4_0's): x = d * IQ4_NL_LEVELS[nibble]
 */
import { FuselmError } from '../errors.js';
import { GgmlType, bf16BitsToF32, dequantizeQ8_0, f16BitsToF32, ggmlTypeName } from './ggml-types.js';

const f16 = (b: Uint8Array, o: number) => f16BitsToF32(b[o] | (b[o + 1] << 8));

function q4_0(b: Uint8Array, o: number, y: Float32Array, k: number): void {
  const d = f16(b, o);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 2 + j];
    y[k + j] = ((q & 0x0f) - 8) * d;
    y[k + j + 16] = ((q >> 4) - 8) * d;
  }
}

function q4_1(b: Uint8Array, o: number, y: Float32Array, k: number): void {
  const d = f16(b, o), m = f16(b, o + 2);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 4 + j];
    y[k + j] = (q & 0x0f) * d + m;
    y[k + j + 16] = (q >> 4) * d + m;
  }
}

function q5(b: Uint8Array, o: number, y: Float32Array, k: number, withMin: boolean): void {
  const d = f16(b, o), m = withMin ? f16(b, o + 2) : 0;
  const h = o + (withMin ? 4 : 2);
  const qh = (b[h] | (b[h + 1] << 8) | (b[h + 2] << 16) | (b[h + 3] << 24)) >>> 0;
  const offset = withMin ? 0 : 16;
  for (let j = 0; j < 16; j++) {
    const q = b[h + 4 + j];
    const lo = (q & 0x0f) | (((qh >>> j) & 1) << 4);
    const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
    y[k + j] = (lo - offset) * d + m;
    y[k + j + 16] = (hi - offset) * d + m;
  }
}

/** The 6-bit scale and min of sub-block j (0..7) packed in Q4_K/Q5_K's 12 scale bytes at s. */
function scaleMinK4(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j] & 63, b[s + j + 4] & 63];
  return [(b[s + j + 4] & 0x0f) | ((b[s + j - 4] >> 6) << 4), (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4)];
}

function qK(b: Uint8Array, o: number, y: Float32Array, k: number, five: boolean): void {
  const d = f16(b, o), dmin = f16(b, o + 2);
  const s = o + 4, qh = o + 16, qs = five ? o + 48 : o + 16;
  for (let c = 0; c < 4; c++) {
    // 64 values: sub-block 2c from the low nibbles of 32 bytes, 2c+1 from the high nibbles
    const [sc1, m1] = scaleMinK4(b, s, 2 * c), [sc2, m2] = scaleMinK4(b, s, 2 * c + 1);
    for (let l = 0; l < 32; l++) {
      const q = b[qs + 32 * c + l];
      const h1 = five ? ((b[qh + l] >> (2 * c)) & 1) << 4 : 0;
      const h2 = five ? ((b[qh + l] >> (2 * c + 1)) & 1) << 4 : 0;
      y[k + 64 * c + l] = d * sc1 * ((q & 0x0f) + h1) - dmin * m1;
      y[k + 64 * c + 32 + l] = d * sc2 * ((q >> 4) + h2) - dmin * m2;
    }
  }
}

function q6K(b: Uint8Array, o: number, y: Float32Array, k: number): void {
  const d = f16(b, o + 208);
  for (let n = 0; n < 2; n++) {
    // 128 values from ql[64 n ..], qh[32 n ..], scales[8 n ..]
    const ql = o + 64 * n, qh = o + 128 + 32 * n, sc = o + 192 + 8 * n;
    const s = (i: number) => (b[sc + i] << 24) >> 24; // int8
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const h = b[qh + l];
      const q1 = ((b[ql + l] & 0x0f) | ((h & 3) << 4)) - 32;
      const q2 = ((b[ql + l + 32] & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
      const q3 = ((b[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
      const q4 = ((b[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
      y[k + 128 * n + l] = d * s(is) * q1;
      y[k + 128 * n + l + 32] = d * s(is + 2) * q2;
      y[k + 128 * n + l + 64] = d * s(is + 4) * q3;
      y[k + 128 * n + l + 96] = d * s(is + 6) * q4;
    }
  }
}

/** IQ4_NL's 16 levels (ggml's kvalues_iq4nl), denser near zero. */
const IQ4_NL_LEVELS = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

function iq4nl(b: Uint8Array, o: number, y: Float32Array, k: number): void {
  const d = f16(b, o);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 2 + j];
    y[k + j] = d * IQ4_NL_LEVELS[q & 0x0f];
    y[k + j + 16] = d * IQ4_NL_LEVELS[q >> 4];
  }
}

function q2K(b: Uint8Array, o: number, y: Float32Array, k: number): void {
  const d = f16(b, o + 80), dmin = f16(b, o + 82);
  for (let i = 0; i < 256; i++) {
    const sc = b[o + (i >> 4)];
    const q = (b[o + 16 + 32 * (i >> 7) + (i & 31)] >> (2 * ((i >> 5) & 3))) & 3;
    y[k + i] = d * (sc & 0x0f) * q - dmin * (sc >> 4);
  }
}

function q3K(b: Uint8Array, o: number, y: Float32Array, k: number): void {
  const d = f16(b, o + 108), s = o + 96;
  for (let i = 0; i < 256; i++) {
    const j = i >> 4;
    const low = j < 8 ? b[s + j] & 0x0f : b[s + j - 8] >> 4;
    const sc = (low | (((b[s + 8 + (j & 3)] >> (2 * (j >> 2))) & 3) << 4)) - 32;
    const q = ((b[o + 32 + 32 * (i >> 7) + (i & 31)] >> (2 * ((i >> 5) & 3))) & 3) - ((b[o + (i & 31)] >> (i >> 5)) & 1 ? 0 : 4);
    y[k + i] = d * sc * q;
  }
}

const FORMATS: Partial<Record<GgmlType, { block: number; bytes: number; fn: (b: Uint8Array, o: number, y: Float32Array, k: number) => void }>> = {
  [GgmlType.Q4_0]: { block: 32, bytes: 18, fn: q4_0 },
  [GgmlType.Q4_1]: { block: 32, bytes: 20, fn: q4_1 },
  [GgmlType.Q5_0]: { block: 32, bytes: 22, fn: (b, o, y, k) => q5(b, o, y, k, false) },
  [GgmlType.Q5_1]: { block: 32, bytes: 24, fn: (b, o, y, k) => q5(b, o, y, k, true) },
  [GgmlType.IQ4_NL]: { block: 32, bytes: 18, fn: iq4nl },
  [GgmlType.Q2_K]: { block: 256, bytes: 84, fn: q2K },
  [GgmlType.Q3_K]: { block: 256, bytes: 110, fn: q3K },
  [GgmlType.Q4_K]: { block: 256, bytes: 144, fn: (b, o, y, k) => qK(b, o, y, k, false) },
  [GgmlType.Q5_K]: { block: 256, bytes: 176, fn: (b, o, y, k) => qK(b, o, y, k, true) },
  [GgmlType.Q6_K]: { block: 256, bytes: 210, fn: q6K },
};

export function canDequantize(type: GgmlType): boolean {
  return FORMATS[type] !== undefined;
}

/** The n values held by `bytes` of block type `type`, as f32. */
export function dequantize(type: GgmlType, bytes: Uint8Array, n: number): Float32Array {
  const f = FORMATS[type];
  if (!f) throw new FuselmError('E_UNSUPPORTED', `cannot dequantize ${ggmlTypeName(type)} (supported: Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL)`);
  if (n % f.block !== 0 || bytes.length < (n / f.block) * f.bytes)
    throw new FuselmError('E_INVALID_ARG', `${ggmlTypeName(type)}: ${n} values need ${(n / f.block) * f.bytes} bytes in blocks of ${f.block}, got ${bytes.length}`);
  const y = new Float32Array(n);
  for (let i = 0; i < n / f.block; i++) f.fn(bytes, i * f.bytes, y, i * f.block);
  return y;
}

/** f(h) of each h (a plain loop: Float32Array.from with a map function is many times slower). */
function mapU16(h: Uint16Array, f: (bits: number) => number): Float32Array {
  const y = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) y[i] = f(h[i]);
  return y;
}

/**
 * Any tensor type fuselm reads, as f32: F32, F16, BF16, Q8_0 and the block formats above.
 * `what` names the tensor in the error for any other type.
 */
export function toF32(type: GgmlType, bytes: Uint8Array, n: number, what: string): Float32Array {
  const u16 = () => new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  switch (type) {
    case GgmlType.F32:
      return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 4 * n));
    case GgmlType.F16:
      return mapU16(u16(), f16BitsToF32);
    case GgmlType.BF16:
      return mapU16(u16(), bf16BitsToF32);
    case GgmlType.Q8_0:
      return dequantizeQ8_0(bytes, n);
    default:
      if (canDequantize(type)) return dequantize(type, bytes, n);
      throw new FuselmError(
        'E_UNSUPPORTED',
        `${what} has type ${ggmlTypeName(type)}, which fuselm does not load (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL)`,
      );
  }
}
