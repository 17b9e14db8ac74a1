/**
 * Synthetic llama GGUFs with random weights at real model shapes, written with the GGUF
 * writer: for benchmarks (speed does not depend on the weights' values) and for tests that
 * need a model without ../shared. Tensors of equal byte size share one random buffer, so
 * writing a 1.1B-parameter file needs only a few hundred MB of memory.
 */
import type { NativeDType } from '../../bindings.js';
import { GgmlType } from '../formats/ggml-types.js';
import { type GgufMetaEntry, gv, writeGguf } from '../formats/gguf.js';
import { encodeF32 } from '../tensor.js';

export interface LlamaShape {
  vocabSize: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  ffnDim: number;
  contextLength: number;
}

/** Published shapes of well-known models. */
export const SHAPES: Record<string, LlamaShape> = {
  'tinyllama-1.1b': { vocabSize: 32000, dim: 2048, nLayers: 22, nHeads: 32, nKvHeads: 4, ffnDim: 5632, contextLength: 2048 },
  'llama-3-8b': { vocabSize: 128256, dim: 4096, nLayers: 32, nHeads: 32, nKvHeads: 8, ffnDim: 14336, contextLength: 8192 },
  tiny: { vocabSize: 300, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 96, contextLength: 256 },
  /** Small weights, a 32k context: decode speed dominated by attention over the cache. */
  'long-ctx': { vocabSize: 4096, dim: 512, nLayers: 4, nHeads: 8, nKvHeads: 2, ffnDim: 1408, contextLength: 32768 },
};

const GGML: Record<Exclude<NativeDType, 'i32'>, GgmlType> = { f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16, q8_0: GgmlType.Q8_0 };

/** A SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then filler pieces. */
export function syntheticVocab(n: number): GgufMetaEntry[] {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; tokens.length < n; i++) {
    // ▁a ▁b ... then two-letter pieces: all distinct, all plain text
    const s = i < 26 ? '\u2581' + letters[i] : letters[Math.floor((i - 26) / 26) % 26] + letters[(i - 26) % 26] + (i >= 26 + 676 ? String(i) : '');
    tokens.push(s);
    types.push(1);
  }
  tokens.length = n;
  types.length = n;
  return [
    { key: 'tokenizer.ggml.model', ...gv.str('llama') },
    { key: 'tokenizer.ggml.tokens', ...gv.arrStr(tokens) },
    { key: 'tokenizer.ggml.scores', ...gv.arrF32(tokens.map((_, i) => -i)) },
    { key: 'tokenizer.ggml.token_type', ...gv.arrI32(types) },
    { key: 'tokenizer.ggml.bos_token_id', ...gv.u32(1) },
    { key: 'tokenizer.ggml.eos_token_id', ...gv.u32(2) },
    { key: 'tokenizer.ggml.unknown_token_id', ...gv.u32(0) },
  ];
}

/** Writes a llama GGUF of `shape` with random weights in `dtype` (norms stay F32). */
export async function writeSyntheticLlama(path: string, shape: LlamaShape, dtype: Exclude<NativeDType, 'i32'>, seed = 1): Promise<void> {
  const s = shape, hd = s.dim / s.nHeads;
  let state = seed >>> 0;
  const random = (n: number, scale: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      out[i] = (state / 4294967296 - 0.5) * 2 * scale;
    }
    return out;
  };
  const byShape = new Map<string, Uint8Array>();
  const weight = (rows: number, cols: number, t: Exclude<NativeDType, 'i32'>) => {
    const key = `${rows * cols}:${t}`;
    let data = byShape.get(key);
    if (!data) byShape.set(key, (data = encodeF32(t, random(rows * cols, 1 / Math.sqrt(cols)))));
    return { type: GGML[t], dims: [cols, rows], data };
  };
  const norm = () => ({ type: GgmlType.F32, dims: [s.dim], data: new Uint8Array(new Float32Array(s.dim).fill(1).buffer) });
  const tensors = [{ name: 'token_embd.weight', ...weight(s.vocabSize, s.dim, dtype) }];
  for (let l = 0; l < s.nLayers; l++) {
    const b = `blk.${l}.`;
    tensors.push(
      { name: b + 'attn_norm.weight', ...norm() },
      { name: b + 'attn_q.weight', ...weight(s.dim, s.dim, dtype) },
      { name: b + 'attn_k.weight', ...weight(s.nKvHeads * hd, s.dim, dtype) },
      { name: b + 'attn_v.weight', ...weight(s.nKvHeads * hd, s.dim, dtype) },
      { name: b + 'attn_output.weight', ...weight(s.dim, s.dim, dtype) },
      { name: b + 'ffn_norm.weight', ...norm() },
      { name: b + 'ffn_gate.weight', ...weight(s.ffnDim, s.dim, dtype) },
      { name: b + 'ffn_up.weight', ...weight(s.ffnDim, s.dim, dtype) },
      { name: b + 'ffn_down.weight', ...weight(s.dim, s.ffnDim, dtype) },
    );
  }
  tensors.push({ name: 'output_norm.weight', ...norm() }, { name: 'output.weight', ...weight(s.vocabSize, s.dim, dtype) });
  await writeGguf(path, {
    metadata: [
      { key: 'general.architecture', ...gv.str('llama') },
      { key: 'general.name', ...gv.str(`synthetic ${s.nLayers}x${s.dim} ${dtype}`) },
      { key: 'llama.context_length', ...gv.u32(s.contextLength) },
      { key: 'llama.embedding_length', ...gv.u32(s.dim) },
      { key: 'llama.block_count', ...gv.u32(s.nLayers) },
      { key: 'llama.feed_forward_length', ...gv.u32(s.ffnDim) },
      { key: 'llama.attention.head_count', ...gv.u32(s.nHeads) },
      { key: 'llama.attention.head_count_kv', ...gv.u32(s.nKvHeads) },
      { key: 'llama.attention.layer_norm_rms_epsilon', ...gv.f32(1e-5) },
      { key: 'llama.rope.dimension_count', ...gv.u32(hd) },
      { key: 'llama.rope.freq_base', ...gv.f32(10000) },
      { key: 'general.file_type', ...gv.u32(dtype === 'f32' ? 0 : dtype === 'f16' ? 1 : dtype === 'q8_0' ? 7 : 32) },
      ...syntheticVocab(s.vocabSize),
    ],
    tensors,
  });
}
