/**
 * Shared by the GGUF tests: a seeded PRNG (so every random case is reproducible from its seed),
 * the location of ../shared, and the small valid model the fuzz test mutates.
 */
import { existsSync } from 'node:fs';
import { encodeGguf, gv, type GgufWriteSpec } from '../../lib/formats/gguf.js';
import { GgmlType, f32ToF16Bits, quantizeQ8_0 } from '../../lib/formats/ggml-types.js';
import { SHARED } from '../helpers/shared.js';
import { rng } from '../helpers/random.js';

export { randInt, randomBytes, rng } from '../helpers/random.js';

export function randomF32(r: () => number, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() * 2 - 1) * 3;
  return x;
}

/** ../shared beside the repository root, or undefined when this checkout has none. */
export function sharedDir(): string | undefined {
  return existsSync(SHARED) ? SHARED : undefined;
}

/** A small valid model: a few metadata kinds (incl. string, bool and nested arrays) and F32, F16
 * and Q8_0 tensors. */
export function smallModelSpec(): GgufWriteSpec {
  const r = rng(7);
  const f16 = new Uint8Array(16 * 2 * 2);
  const dv = new DataView(f16.buffer);
  for (let i = 0; i < 32; i++) dv.setUint16(i * 2, f32ToF16Bits(r() - 0.5), true);
  return {
    metadata: [
      { key: 'general.architecture', ...gv.str('llama') },
      { key: 'llama.block_count', ...gv.u32(1) },
      { key: 'llama.attention.layer_norm_rms_epsilon', ...gv.f32(1e-5) },
      { key: 'tokenizer.ggml.tokens', ...gv.arrStr(['<unk>', '<s>', '</s>', 'a', 'bé', '▁the']) },
      { key: 'tokenizer.ggml.scores', ...gv.arrF32([0, 0, 0, -1, -2, -3]) },
      { key: 'tokenizer.ggml.add_bos_token', ...gv.bool(true) },
      { key: 'general.size', ...gv.u64(123456789n) },
      { key: 'test.flags', ...gv.arrBool([true, false]) },
      { key: 'test.nested', ...gv.arrArr([Int32Array.of(-1, 2), ['x']]) },
    ],
    tensors: [
      { name: 'token_embd.weight', type: GgmlType.F32, dims: [4, 6], data: new Uint8Array(randomF32(r, 24).buffer) },
      { name: 'blk.0.attn_q.weight', type: GgmlType.F16, dims: [16, 2], data: f16 },
      { name: 'blk.0.ffn_up.weight', type: GgmlType.Q8_0, dims: [32, 2], data: quantizeQ8_0(randomF32(r, 64)) },
    ],
  };
}

export function smallModelBytes(): Uint8Array {
  return encodeGguf(smallModelSpec());
}
