/**
 * A plain quantizer for every GGUF block format fuselm runs as stored: a min/max fit per
 * (sub-)block, written for TEST DATA (random-weight GGUFs, parity cases) and nothing else. It is
 * not llama.cpp's quantizer (no error-minimizing search over scales; `fuselm quantize` is where
 * a quality one belongs); what it must get right is the byte layout, which both engines read
 * (native/quant_blocks.h documents it; lib/formats/quants.ts reads most of it back).
 */
import type { NativeBlockDType } from '../../bindings.js';
import { FuselmError } from '../errors.js';
import { f16BitsToF32, f32ToF16Bits, quantizeQ8_0 } from './ggml-types.js';

const KVALUES = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

const round = (x: number) => (x < 0 ? -Math.round(-x) : Math.round(x));
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));
/** x stored as f16: returns the value the block will hold. */
function putF16(out: Uint8Array, o: number, x: number): number {
  const h = f32ToF16Bits(x);
  out[o] = h & 0xff;
  out[o + 1] = h >>> 8;
  return f16BitsToF32(h);
}
/** The value of largest magnitude (with its sign) of x[a, b). */
function signedMax(x: Float32Array, a: number, b: number): number {
  let m = 0;
  for (let i = a; i < b; i++) if (Math.abs(x[i]) > Math.abs(m)) m = x[i];
  return m;
}
function minMax(x: Float32Array, a: number, b: number): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = a; i < b; i++) {
    lo = Math.min(lo, x[i]);
    hi = Math.max(hi, x[i]);
  }
  return [lo, hi];
}
const nearestGrid = (v: number) => {
  let best = 0;
  for (let i = 1; i < 16; i++) if (Math.abs(KVALUES[i] - v) < Math.abs(KVALUES[best] - v)) best = i;
  return best;
};

// Legacy blocks of 32. Each writes one block of x[k, k + 32) at out[o].
function q4_0(x: Float32Array, k: number, out: Uint8Array, o: number): void {
  const d = putF16(out, o, signedMax(x, k, k + 32) / -8);
  const id = d ? 1 / d : 0;
  for (let j = 0; j < 16; j++) {
    const a = clamp(round(x[k + j] * id) + 8, 0, 15), b = clamp(round(x[k + 16 + j] * id) + 8, 0, 15);
    out[o + 2 + j] = a | (b << 4);
  }
}
function q4_1(x: Float32Array, k: number, out: Uint8Array, o: number): void {
  const [lo, hi] = minMax(x, k, k + 32);
  const d = putF16(out, o, (hi - lo) / 15);
  const m = putF16(out, o + 2, lo);
  const id = d ? 1 / d : 0;
  for (let j = 0; j < 16; j++) {
    const a = clamp(round((x[k + j] - m) * id), 0, 15), b = clamp(round((x[k + 16 + j] - m) * id), 0, 15);
    out[o + 4 + j] = a | (b << 4);
  }
}
function q5(x: Float32Array, k: number, out: Uint8Array, o: number, withMin: boolean): void {
  let d: number, m = 0;
  if (withMin) {
    const [lo, hi] = minMax(x, k, k + 32);
    d = putF16(out, o, (hi - lo) / 31);
    m = putF16(out, o + 2, lo);
  } else {
    d = putF16(out, o, signedMax(x, k, k + 32) / -16);
  }
  const id = d ? 1 / d : 0;
  const q = (v: number) => (withMin ? clamp(round((v - m) * id), 0, 31) : clamp(round(v * id) + 16, 0, 31));
  const h = o + (withMin ? 4 : 2);
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const a = q(x[k + j]), b = q(x[k + 16 + j]);
    out[h + 4 + j] = (a & 15) | ((b & 15) << 4);
    qh |= ((a >> 4) << j) | ((b >> 4) << (j + 16));
  }
  for (let i = 0; i < 4; i++) out[h + i] = (qh >>> (8 * i)) & 0xff;
}
function iq4nl(x: Float32Array, k: number, out: Uint8Array, o: number): void {
  const d = putF16(out, o, signedMax(x, k, k + 32) / KVALUES[0]);
  const id = d ? 1 / d : 0;
  for (let j = 0; j < 16; j++) out[o + 2 + j] = nearestGrid(x[k + j] * id) | (nearestGrid(x[k + 16 + j] * id) << 4);
}

/** Q4_K / Q5_K's 12 scale bytes from 8 6-bit scales and mins. */
function packK4(out: Uint8Array, s: number, sc: number[], mn: number[]): void {
  for (let j = 0; j < 4; j++) {
    out[s + j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
    out[s + j + 4] = (mn[j] & 63) | ((mn[j + 4] >> 4) << 6);
    out[s + j + 8] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
  }
}

/** Q4_K (bits 4) and Q5_K (bits 5): 8 sub-blocks of 32 with a scale and a min each. */
function qK45(x: Float32Array, k: number, out: Uint8Array, o: number, bits: 4 | 5): void {
  const top = (1 << bits) - 1;
  const scales: number[] = [], mins: number[] = [];
  for (let j = 0; j < 8; j++) {
    const [lo, hi] = minMax(x, k + 32 * j, k + 32 * j + 32);
    const m = Math.min(0, lo);
    scales.push((hi - m) / top);
    mins.push(-m);
  }
  const d = putF16(out, o, Math.max(...scales) / 63);
  const dmin = putF16(out, o + 2, Math.max(...mins) / 63);
  const sc = scales.map((s) => (d ? clamp(round(s / d), 0, 63) : 0));
  const mn = mins.map((m) => (dmin ? clamp(round(m / dmin), 0, 63) : 0));
  packK4(out, o + 4, sc, mn);
  const qh = o + 16, qs = bits === 5 ? o + 48 : o + 16;
  const q = (i: number, j: number) => {
    const step = d * sc[j];
    return step ? clamp(round((x[k + i] + dmin * mn[j]) / step), 0, top) : 0;
  };
  for (let c = 0; c < 4; c++)
    for (let l = 0; l < 32; l++) {
      const a = q(64 * c + l, 2 * c), b = q(64 * c + 32 + l, 2 * c + 1);
      out[qs + 32 * c + l] = (a & 15) | ((b & 15) << 4);
      if (bits === 5) out[qh + l] |= ((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1));
    }
}

function q6K(x: Float32Array, k: number, out: Uint8Array, o: number): void {
  const scales: number[] = [];
  for (let j = 0; j < 16; j++) scales.push(signedMax(x, k + 16 * j, k + 16 * j + 16) / -32);
  const d = putF16(out, o + 208, Math.max(...scales.map(Math.abs)) / 127);
  const sc = scales.map((s) => (d ? clamp(round(s / d), -128, 127) : 0));
  for (let j = 0; j < 16; j++) out[o + 192 + j] = sc[j] & 0xff;
  for (let n = 0; n < 2; n++)
    for (let l = 0; l < 32; l++)
      for (let c = 0; c < 4; c++) {
        const i = 128 * n + 32 * c + l, j = 8 * n + (l >> 4) + 2 * c;
        const step = d * sc[j];
        const q = step ? clamp(round(x[k + i] / step) + 32, 0, 63) : 32;
        const ql = o + 64 * n + l + (c & 1) * 32;
        out[ql] |= (q & 15) << (c >= 2 ? 4 : 0);
        out[o + 128 + 32 * n + l] |= (q >> 4) << (2 * c);
      }
}

/** Q2_K (bits 2, 4-bit scale and min per 16) and Q3_K (bits 3, 6-bit signed scale per 16, no min). */
function q23K(x: Float32Array, k: number, out: Uint8Array, o: number, three: boolean): void {
  const qs = three ? o + 32 : o + 16;
  const slot = (i: number) => {
    const n = i >> 7, c = (i >> 5) & 3, l = i & 31;
    return { byte: 32 * n + l, shift: 2 * c, sub: 8 * n + 2 * c + (l >> 4), hbit: 4 * n + c, hbyte: l };
  };
  if (!three) {
    const scales: number[] = [], mins: number[] = [];
    for (let j = 0; j < 16; j++) {
      const [lo, hi] = minMax(x, k + 16 * j, k + 16 * j + 16);
      const m = Math.min(0, lo);
      scales.push((hi - m) / 3);
      mins.push(-m);
    }
    const d = putF16(out, o + 80, Math.max(...scales) / 15);
    const dmin = putF16(out, o + 82, Math.max(...mins) / 15);
    const sc = scales.map((s) => (d ? clamp(round(s / d), 0, 15) : 0));
    const mn = mins.map((m) => (dmin ? clamp(round(m / dmin), 0, 15) : 0));
    for (let j = 0; j < 16; j++) out[o + j] = sc[j] | (mn[j] << 4);
    for (let i = 0; i < 256; i++) {
      const s = slot(i);
      const step = d * sc[s.sub];
      const q = step ? clamp(round((x[k + i] + dmin * mn[s.sub]) / step), 0, 3) : 0;
      out[qs + s.byte] |= q << s.shift;
    }
    return;
  }
  const scales: number[] = [];
  for (let j = 0; j < 16; j++) scales.push(signedMax(x, k + 16 * j, k + 16 * j + 16) / -4);
  const d = putF16(out, o + 108, Math.max(...scales.map(Math.abs)) / 31);
  const sc = scales.map((s) => (d ? clamp(round(s / d), -32, 31) : 0));
  for (let j = 0; j < 16; j++) {
    const v = sc[j] + 32;
    if (j < 8) out[o + 96 + j] |= v & 15;
    else out[o + 96 + j - 8] |= (v & 15) << 4;
    out[o + 96 + 8 + (j % 4)] |= (v >> 4) << (2 * (j >> 2));
  }
  for (let i = 0; i < 256; i++) {
    const s = slot(i);
    const step = d * sc[s.sub];
    const q = step ? clamp(round(x[k + i] / step), -4, 3) + 4 : 4; // 0..7: low 2 bits, and the third in hmask
    out[qs + s.byte] |= (q & 3) << s.shift;
    if (q >= 4) out[o + s.hbyte] |= 1 << s.hbit;
  }
}

function iq4xs(x: Float32Array, k: number, out: Uint8Array, o: number): void {
  const scales: number[] = [];
  for (let j = 0; j < 8; j++) scales.push(signedMax(x, k + 32 * j, k + 32 * j + 32) / KVALUES[0]);
  const d = putF16(out, o, Math.max(...scales.map(Math.abs)) / 31);
  let sh = 0;
  for (let ib = 0; ib < 8; ib++) {
    const ls = d ? clamp(round(scales[ib] / d), -32, 31) : 0;
    const v = ls + 32;
    out[o + 4 + (ib >> 1)] |= (v & 15) << (4 * (ib & 1));
    sh |= (v >> 4) << (2 * ib);
    const step = d * ls;
    const id = step ? 1 / step : 0;
    for (let j = 0; j < 16; j++)
      out[o + 8 + 16 * ib + j] = nearestGrid(x[k + 32 * ib + j] * id) | (nearestGrid(x[k + 32 * ib + 16 + j] * id) << 4);
  }
  out[o + 2] = sh & 0xff;
  out[o + 3] = sh >>> 8;
}

type Fit = (x: Float32Array, k: number, out: Uint8Array, o: number) => void;
const FITS: Record<Exclude<NativeBlockDType, 'q8_0'>, { block: number; bytes: number; fit: Fit }> = {
  q4_0: { block: 32, bytes: 18, fit: q4_0 },
  q4_1: { block: 32, bytes: 20, fit: q4_1 },
  q5_0: { block: 32, bytes: 22, fit: (x, k, out, o) => q5(x, k, out, o, false) },
  q5_1: { block: 32, bytes: 24, fit: (x, k, out, o) => q5(x, k, out, o, true) },
  iq4_nl: { block: 32, bytes: 18, fit: iq4nl },
  q2_k: { block: 256, bytes: 84, fit: (x, k, out, o) => q23K(x, k, out, o, false) },
  q3_k: { block: 256, bytes: 110, fit: (x, k, out, o) => q23K(x, k, out, o, true) },
  q4_k: { block: 256, bytes: 144, fit: (x, k, out, o) => qK45(x, k, out, o, 4) },
  q5_k: { block: 256, bytes: 176, fit: (x, k, out, o) => qK45(x, k, out, o, 5) },
  q6_k: { block: 256, bytes: 210, fit: q6K },
  iq4_xs: { block: 256, bytes: 136, fit: iq4xs },
};

/** Values per block of a block format. */
export function blockValues(type: NativeBlockDType): number {
  return type === 'q8_0' ? 32 : FITS[type].block;
}

/** src (a multiple of the block size) as blocks of `type`, fitted by min/max (test data). */
export function quantizeBlocks(type: NativeBlockDType, src: Float32Array): Uint8Array {
  if (type === 'q8_0') return quantizeQ8_0(src);
  const f = FITS[type];
  if (src.length % f.block !== 0) throw new FuselmError('E_INVALID_ARG', `quantizeBlocks: ${type} needs a multiple of ${f.block} values, got ${src.length}`);
  const nb = src.length / f.block;
  const out = new Uint8Array(nb * f.bytes);
  for (let b = 0; b < nb; b++) f.fit(src, b * f.block, out, b * f.bytes);
  return out;
}
