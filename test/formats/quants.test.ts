/**
 * The GGUF block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) dequantize to exactly what
 * their published definitions say: blocks are packed here, bit by bit from the layout, out of
 * chosen scales and integer quants, and dequantize() must give back d·q (+ m) per value. A
 * model whose weights are stored in these formats loads (converted to q8_0 or f16) and agrees
 * with the same model stored as the f32 values the blocks define.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GgmlType, f16BitsToF32, f32ToF16Bits } from '../../lib/formats/ggml-types.js';
import { type GgufWriteSpec, ggufMetadataSpec, readGguf, writeGguf } from '../../lib/formats/gguf.js';
import { dequantize } from '../../lib/formats/quants.js';
import { loadModel } from '../../lib/index.js';
import { SHAPES, writeSyntheticLlama } from '../../lib/tools/synthetic.js';
import { relErr } from '../helpers/parity.js';
import { randInt, rng } from '../helpers/random.js';

interface Packed {
  bytes: Uint8Array;
  values: Float32Array;
}

/** An f16 scale: its bits and the exact value they hold. */
function half(r: () => number, lo = 0.001, hi = 0.1): [number, number] {
  const bits = f32ToF16Bits(lo + r() * (hi - lo));
  return [bits, f16BitsToF32(bits)];
}

function putF16(b: Uint8Array, o: number, bits: number): void {
  b[o] = bits & 0xff;
  b[o + 1] = bits >> 8;
}

/**
 * Packs `blocks` blocks of a format from random parameters; values are what the spec defines.
 * `small` keeps values near ±0.1, as a trained layer's weights are (for the model test).
 */
function pack(type: GgmlType, blocks: number, seed: number, small = false): Packed {
  const k = small ? 0.1 : 1;
  const r = rng(seed);
  const sizes: Record<number, [number, number]> = {
    [GgmlType.Q4_0]: [32, 18], [GgmlType.Q4_1]: [32, 20], [GgmlType.Q5_0]: [32, 22], [GgmlType.Q5_1]: [32, 24],
    [GgmlType.Q4_K]: [256, 144], [GgmlType.Q5_K]: [256, 176], [GgmlType.Q6_K]: [256, 210],
  };
  const [n, size] = sizes[type];
  const bytes = new Uint8Array(blocks * size), values = new Float32Array(blocks * n);
  for (let blk = 0; blk < blocks; blk++) {
    const b = bytes.subarray(blk * size, (blk + 1) * size), y = values.subarray(blk * n, (blk + 1) * n);
    if (type === GgmlType.Q4_0 || type === GgmlType.Q4_1 || type === GgmlType.Q5_0 || type === GgmlType.Q5_1) {
      const five = type === GgmlType.Q5_0 || type === GgmlType.Q5_1, withMin = type === GgmlType.Q4_1 || type === GgmlType.Q5_1;
      const [dBits, d] = half(r, 0.001 * k, 0.1 * k), [mBits, m] = withMin ? half(r, -0.5 * k, 0.5 * k) : [0, 0];
      putF16(b, 0, dBits);
      if (withMin) putF16(b, 2, mBits);
      const q = Array.from({ length: 32 }, () => randInt(r, 0, five ? 31 : 15));
      const qs = five ? (withMin ? 8 : 6) : withMin ? 4 : 2;
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        b[qs + j] = (q[j] & 15) | ((q[j + 16] & 15) << 4);
        if (five) qh |= ((q[j] >> 4) << j) | ((q[j + 16] >> 4) << (j + 16));
      }
      if (five) for (let k = 0; k < 4; k++) b[qs - 4 + k] = (qh >>> (8 * k)) & 0xff;
      const offset = withMin ? 0 : five ? 16 : 8;
      for (let j = 0; j < 32; j++) y[j] = (q[j] - offset) * d + m;
    } else if (type === GgmlType.Q4_K || type === GgmlType.Q5_K) {
      const five = type === GgmlType.Q5_K;
      const [dBits, d] = half(r, 0.001 * k * k, 0.01 * k * k), [minBits, dmin] = half(r, 0.001 * k * k, 0.01 * k * k);
      putF16(b, 0, dBits);
      putF16(b, 2, minBits);
      const sc = Array.from({ length: 8 }, () => randInt(r, 0, 63)), mn = Array.from({ length: 8 }, () => randInt(r, 0, 63));
      for (let j = 0; j < 4; j++) {
        b[4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        b[4 + j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        b[4 + j + 8] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
      }
      const q = Array.from({ length: 256 }, () => randInt(r, 0, five ? 31 : 15));
      const qs = five ? 48 : 16;
      for (let c = 0; c < 4; c++)
        for (let l = 0; l < 32; l++) {
          b[qs + 32 * c + l] = (q[64 * c + l] & 15) | ((q[64 * c + 32 + l] & 15) << 4);
          if (five) b[16 + l] |= ((q[64 * c + l] >> 4) << (2 * c)) | ((q[64 * c + 32 + l] >> 4) << (2 * c + 1));
        }
      for (let i = 0; i < 256; i++) y[i] = d * sc[i >> 5] * q[i] - dmin * mn[i >> 5];
    } else {
      const [dBits, d] = half(r, 0.001 * k, 0.01 * k);
      putF16(b, 208, dBits);
      const scale = Array.from({ length: 16 }, () => (small ? randInt(r, -16, 16) : randInt(r, -128, 127)));
      for (let s = 0; s < 16; s++) b[192 + s] = scale[s] & 0xff;
      const q = Array.from({ length: 256 }, () => randInt(r, 0, 63));
      for (let h = 0; h < 2; h++)
        for (let l = 0; l < 32; l++) {
          const [i1, i2, i3, i4] = [128 * h + l, 128 * h + l + 32, 128 * h + l + 64, 128 * h + l + 96];
          b[64 * h + l] = (q[i1] & 15) | ((q[i3] & 15) << 4);
          b[64 * h + l + 32] = (q[i2] & 15) | ((q[i4] & 15) << 4);
          b[128 + 32 * h + l] = (q[i1] >> 4) | ((q[i2] >> 4) << 2) | ((q[i3] >> 4) << 4) | ((q[i4] >> 4) << 6);
        }
      for (let i = 0; i < 256; i++) y[i] = d * scale[i >> 4] * (q[i] - 32);
    }
  }
  return { bytes, values };
}

const TYPES = [GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];

describe('GGUF block formats', () => {
  for (const type of TYPES) {
    it(`${GgmlType[type]} dequantizes to its definition`, () => {
      const p = pack(type, 9, type * 31);
      const got = dequantize(type, p.bytes, p.values.length);
      for (let i = 0; i < got.length; i++)
        assert.ok(Math.abs(got[i] - p.values[i]) <= 1e-6 * Math.max(1, Math.abs(p.values[i])), `${GgmlType[type]} value ${i}: got ${got[i]} want ${p.values[i]}`);
    });
  }

  it('rejects a byte count that does not hold the values', () => {
    assert.throws(() => dequantize(GgmlType.Q4_K, new Uint8Array(100), 256), { code: 'E_INVALID_ARG' });
    assert.throws(() => dequantize(GgmlType.IQ2_XXS, new Uint8Array(100), 256), { code: 'E_UNSUPPORTED' });
  });

  it('a model stored in block formats loads and matches the f32 model of the same values', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-quants-'));
    try {
      const shape = { ...SHAPES.tiny, dim: 256, ffnDim: 512, nHeads: 4, nKvHeads: 2, vocabSize: 300 };
      await writeSyntheticLlama(path.join(dir, 'base.gguf'), shape, 'f32');
      const base = await readGguf(path.join(dir, 'base.gguf'));
      const { readFile } = await import('node:fs/promises');
      const raw = await readFile(base.path);
      // every matrix of the layers in a block format (cycling through all seven), the same
      // dequantized values as F32 in the twin file
      const quant: GgufWriteSpec['tensors'] = [], exact: GgufWriteSpec['tensors'] = [];
      let k = 0;
      for (const t of base.tensors) {
        const data = new Uint8Array(raw.subarray(t.offset, t.offset + t.nbytes));
        if (t.dims.length === 2 && t.name.startsWith('blk.')) {
          const type = TYPES[k++ % TYPES.length];
          const blocks = (t.dims[0] * t.dims[1]) / (type >= GgmlType.Q4_K ? 256 : 32);
          const p = pack(type, blocks, k, true);
          quant.push({ name: t.name, type, dims: t.dims, data: p.bytes });
          exact.push({ name: t.name, type: GgmlType.F32, dims: t.dims, data: new Uint8Array(p.values.buffer) });
        } else {
          quant.push({ name: t.name, type: t.type, dims: t.dims, data });
          exact.push({ name: t.name, type: t.type, dims: t.dims, data });
        }
      }
      await writeGguf(path.join(dir, 'quant.gguf'), { metadata: ggufMetadataSpec(base), tensors: quant });
      await writeGguf(path.join(dir, 'exact.gguf'), { metadata: ggufMetadataSpec(base), tensors: exact });
      const ids = [1, 40, 41, 100, 7, 200];
      await using ref = await loadModel(path.join(dir, 'exact.gguf'));
      const want = await ref.evaluate(ids, { allLogits: true });
      for (const [dtype, tol] of [['auto', 3e-2], ['f16', 2e-3]] as const) {
        await using m = await loadModel(path.join(dir, 'quant.gguf'), { dtype });
        const err = relErr(await m.evaluate(ids, { allLogits: true }), want);
        assert.ok(err < tol, `${dtype}: rel err ${err}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
