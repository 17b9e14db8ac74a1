/** toF32 of F16 and BF16 tensors: every one of the 65536 bit patterns as the scalar conversion gives it. */
import assert from 'node:assert/strict';
import { GgmlType, bf16BitsToF32, f16BitsToF32 } from '../../lib/formats/ggml-types.js';
import { toF32 } from '../../lib/formats/quants.js';

describe('toF32: F16 and BF16', () => {
  it('gives each bit pattern its scalar conversion (NaN, infinities, subnormals, -0 included)', () => {
    const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const bytes = new Uint8Array(bits.buffer);
    for (const [type, f] of [[GgmlType.F16, f16BitsToF32], [GgmlType.BF16, bf16BitsToF32]] as const) {
      const got = toF32(type, bytes, bits.length, 'x');
      for (let i = 0; i < bits.length; i++) assert.ok(Object.is(got[i], Math.fround(f(i))), `${GgmlType[type]} ${i.toString(16)}: ${got[i]} vs ${f(i)}`);
    }
  });
});
