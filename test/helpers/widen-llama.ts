/**
 * A trained llama GGUF widened, exactly, to a width the 256-value k-quant superblocks fit, so
 * real weights can be stored as Q4_K, Q5_K and Q6_K. stories260K (the one trained model in
 * ../shared) has rows of 64 and 172, where llama.cpp's k-quant mixtures fall back to Q5_0,
 * Q8_0 and F16.
 *
 * Widening by zeros computes the same function in f32:
 * - every matrix is padded with zeros: the residual stream gains dimensions that stay 0;
 * - more heads of the same head size (the query/KV ratio kept, so the real heads keep their
 *   KV heads): the added heads have zero Q, K, V and their wo columns are zero;
 * - ffn grows by zero gate/up rows (silu(0) * 0 = 0) and zero ffn_down columns;
 * - RMSNorm: the mean of squares over D values is (d/D) of the mean over d, so the norm
 *   weights are scaled by sqrt(d/D) and epsilon by d/D (exact in binary for d/D = 1/4).
 * The padded rows quantize to the same blocks as a real row would for their real part; the
 * zero tails give zero blocks.
 */
import { readFileSync } from 'node:fs';
import { FuselmError } from '../../lib/errors.js';
import { GgmlType } from '../../lib/formats/ggml-types.js';
import { ggufMetadataSpec, readGguf, writeGguf } from '../../lib/formats/gguf.js';

export interface WidenShape {
  /** The new embedding width (a multiple of the head size). */
  dim: number;
  /** The new feed-forward width. */
  ffn: number;
}

/** Copies the rows×cols f32 matrix `x` into the top-left corner of a zero rows2×cols2 one. */
function pad(x: Float32Array, rows: number, cols: number, rows2: number, cols2: number, scale = 1): Float32Array {
  const y = new Float32Array(rows2 * cols2);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) y[r * cols2 + c] = x[r * cols + c] * scale;
  return y;
}

export async function widenLlama(src: string, dst: string, to: WidenShape): Promise<void> {
  const f = await readGguf(src);
  const num = (key: string) => f.metadata.get(`llama.${key}`) as number;
  if (f.metadata.get('general.architecture') !== 'llama') throw new FuselmError('E_UNSUPPORTED', `${src}: widenLlama takes llama models`);
  const d = num('embedding_length'), ffn = num('feed_forward_length'), heads = num('attention.head_count');
  const kvHeads = num('attention.head_count_kv') ?? heads;
  const headDim = d / heads;
  const heads2 = to.dim / headDim, kvHeads2 = (heads2 * kvHeads) / heads;
  if (!Number.isInteger(heads2) || !Number.isInteger(kvHeads2) || to.dim < d || to.ffn < ffn)
    throw new FuselmError('E_INVALID_ARG', `${src}: cannot widen dim ${d} / ffn ${ffn} (head size ${headDim}) to dim ${to.dim} / ffn ${to.ffn}`);
  // the rope width defaults to the head size, which stays: it must be stated for the new width
  if (!f.metadata.has('llama.rope.dimension_count')) throw new FuselmError('E_UNSUPPORTED', `${src}: no llama.rope.dimension_count`);
  const raw = readFileSync(src);
  const normScale = Math.sqrt(d / to.dim);
  const tensors = f.tensors.map((t) => {
    if (t.type !== GgmlType.F32) throw new FuselmError('E_UNSUPPORTED', `${src}: tensor '${t.name}' is ${GgmlType[t.type]}, widenLlama takes F32`);
    const x = new Float32Array(raw.buffer.slice(raw.byteOffset + t.offset, raw.byteOffset + t.offset + t.nbytes));
    const [cols, rows = 1] = t.dims;
    // [new row length, new row count] by the tensor's role
    const kind = t.name.replace(/^blk\.\d+\./, '');
    const shape: Record<string, [number, number]> = {
      'token_embd.weight': [to.dim, rows],
      'output.weight': [to.dim, rows],
      'attn_q.weight': [to.dim, heads2 * headDim],
      'attn_k.weight': [to.dim, kvHeads2 * headDim],
      'attn_v.weight': [to.dim, kvHeads2 * headDim],
      'attn_output.weight': [heads2 * headDim, to.dim],
      'ffn_gate.weight': [to.dim, to.ffn],
      'ffn_up.weight': [to.dim, to.ffn],
      'ffn_down.weight': [to.ffn, to.dim],
      'attn_norm.weight': [to.dim, 1],
      'ffn_norm.weight': [to.dim, 1],
      'output_norm.weight': [to.dim, 1],
    };
    const s = shape[kind];
    if (!s) throw new FuselmError('E_UNSUPPORTED', `${src}: widenLlama does not know tensor '${t.name}'`);
    const y = pad(x, rows, cols, s[1], s[0], kind.endsWith('norm.weight') ? normScale : 1);
    return { name: t.name, type: GgmlType.F32, dims: t.dims.length === 1 ? [s[0]] : s, data: new Uint8Array(y.buffer) };
  });
  const set: Record<string, number> = {
    'llama.embedding_length': to.dim,
    'llama.feed_forward_length': to.ffn,
    'llama.attention.head_count': heads2,
    'llama.attention.head_count_kv': kvHeads2,
    'llama.attention.layer_norm_rms_epsilon': (num('attention.layer_norm_rms_epsilon') * d) / to.dim,
  };
  const metadata = ggufMetadataSpec(f).map((m) => (m.key in set ? { ...m, value: set[m.key] } : m));
  await writeGguf(dst, { version: 3, alignment: f.alignment, metadata, tensors });
}
