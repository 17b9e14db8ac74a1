/**
 * GPT-2 weights from a GGUF under llama.cpp's tensor names, into the LlamaWeights the decoder
 * pass reads: `token_embd`, `position_embd`, `blk.N.{attn_norm, attn_qkv, attn_output, ffn_norm,
 * ffn_up, ffn_down}` (each with `.weight` and `.bias`), `output_norm` (+ bias), `output` (absent
 * when tied). llama.cpp's converter stores the Conv1D weights already transposed to [out, in]
 * (GGUF dims [in, out], innermost first), so attn_qkv is the row-major [3·D, D] matrix whose
 * rows are q, then k, then v: each is a row slice, read straight from the file.
 */
import type { NativeDType, NativeTensor } from '../../bindings.js';
import type { GgufFile } from '../formats/gguf.js';
import type { ModelConfig } from './config.js';
import type { LayerWeights, LlamaWeights } from './llama.js';
import { type GgufMappings, hasTensor, loadGgufTensor, type WeightDtype } from './weights.js';

export async function loadGpt2GgufWeights(
  f: GgufFile,
  c: ModelConfig,
  o: { dtype?: WeightDtype; blocks?: ReadonlySet<NativeDType>; mappings?: GgufMappings; onProgress?: (loaded: number, total: number) => void } = {},
): Promise<LlamaWeights> {
  const { dtype = 'auto', blocks, mappings, onProgress } = o;
  const D = c.dim, F = c.ffnDim, kv = c.nKvHeads * c.headDim, qkv = D + 2 * kv;
  const loaded: NativeTensor[] = [];
  const total = 3 + c.nLayers;
  let done = 0;
  const load = async (name: string, shape: number[], rows?: { start: number; total: number }) => {
    const t = await loadGgufTensor(f, name, shape, { dtype, rows, blocks, mappings });
    loaded.push(t);
    return t;
  };
  try {
    const tokenEmbd = await load('token_embd.weight', [c.vocabSize, D]);
    const posEmbd = await load('position_embd.weight', [c.contextLength, D]);
    onProgress?.(++done, total);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const t = (n: string, shape: number[], rows?: { start: number; total: number }) => load(`blk.${l}.${n}`, shape, rows);
      const qkvRows = (start: number, n: number) => ({ start, total: qkv, n });
      const [q, k, v] = [qkvRows(0, D), qkvRows(D, kv), qkvRows(D + kv, kv)];
      layers.push({
        attnNorm: await t('attn_norm.weight', [D]),
        attnNormB: await t('attn_norm.bias', [D]),
        wq: await t('attn_qkv.weight', [q.n, D], q),
        wk: await t('attn_qkv.weight', [k.n, D], k),
        wv: await t('attn_qkv.weight', [v.n, D], v),
        bq: await t('attn_qkv.bias', [q.n], q),
        bk: await t('attn_qkv.bias', [k.n], k),
        bv: await t('attn_qkv.bias', [v.n], v),
        wo: await t('attn_output.weight', [D, D]),
        bo: await t('attn_output.bias', [D]),
        ffnNorm: await t('ffn_norm.weight', [D]),
        ffnNormB: await t('ffn_norm.bias', [D]),
        wUp: await t('ffn_up.weight', [F, D]),
        bUp: await t('ffn_up.bias', [F]),
        wDown: await t('ffn_down.weight', [D, F]),
        bDown: await t('ffn_down.bias', [D]),
      });
      onProgress?.(++done, total);
    }
    const outputNorm = await load('output_norm.weight', [D]);
    const outputNormB = await load('output_norm.bias', [D]);
    onProgress?.(++done, total);
    const output = hasTensor(f, 'output.weight') ? await load('output.weight', [c.vocabSize, D]) : tokenEmbd;
    onProgress?.(++done, total);
    return { tokenEmbd, posEmbd, layers, outputNorm, outputNormB, output };
  } catch (e) {
    for (const t of loaded) t.free();
    throw e;
  }
}
