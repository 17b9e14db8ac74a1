/**
 * Decoder weights from a Hugging Face folder's safetensors, under the tensor names of each
 * architecture, into the same LlamaWeights the forward pass reads:
 *  - llama / mistral / qwen2 / phi3 (fused qkv_proj, gate_up_proj): `model.embed_tokens`, `model.layers.N.{input_layernorm,
 *    self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}`,
 *    `model.norm`, `lm_head` (absent when tied); qwen2 adds q/k/v biases; the mixtures of
 *    experts (Mixtral, Qwen2-MoE, Qwen3-MoE) have per-expert matrices in place of the MLP's,
 *    stacked at load (hfExperts);
 *  - gpt2, with or without the `transformer.` prefix: `wte`, `wpe`, `h.N.{ln_1, attn.c_attn,
 *    attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}`, `ln_f`. Conv1D weights are stored [in, out];
 *    they are transposed natively at load (a one-op graph, in their stored dtype) into the
 *    [out, in] matmul reads, and the fused c_attn is split into q, k and v on the way.
 * Matrices keep their stored dtype (F32, F16 or BF16, read natively) unless a `dtype` of 'q8_0'
 * or 'f16' asks to convert them, by the rule GGUF loading follows (weights.ts); norms and biases
 * must be f32 for the kernels, so F16/BF16 vectors are widened at load (they are small).
 */
import type { NativeTensor } from '../../bindings.js';
import { ops, type CpuBackend } from '../backend.js';
import { FuselmError } from '../errors.js';
import { GgmlType } from '../formats/ggml-types.js';
import { toF32 } from '../formats/quants.js';
import { loadSafetensorsTensor, type SafetensorsModel, type SafetensorsTensor } from '../formats/safetensors.js';
import { callAsync, native } from '../native.js';
import { emptyTensor, tensorFromF32 } from '../tensor.js';
import type { ModelConfig } from './config.js';
import { type LayerWeights, type LlamaWeights, ropeFactors } from './llama.js';
import { sinusoidalPositions } from './positions.js';
import { convertMatrix, stackTensors, type WeightDtype } from './weights.js';

export class HfTensors {
  readonly st: SafetensorsModel;
  readonly where: string;
  readonly dtype: WeightDtype;
  #prefix = '';
  constructor(st: SafetensorsModel, where: string, prefixes: string[] = [''], dtype: WeightDtype = 'auto') {
    this.st = st;
    this.where = where;
    this.dtype = dtype;
    // the first prefix under which the model's tensors are found (e.g. 'transformer.')
    const keys = [...st.tensors.keys()];
    this.#prefix = prefixes.find((p) => keys.some((k) => k.startsWith(p))) ?? '';
  }
  has(name: string): boolean {
    return this.st.tensors.has(this.#prefix + name) || this.st.tensors.has(name);
  }
  info(name: string): SafetensorsTensor {
    const t = this.st.tensors.get(this.#prefix + name) ?? this.st.tensors.get(name);
    if (!t) throw new FuselmError('E_FORMAT', `${this.where}: tensor '${this.#prefix + name}' is missing`);
    return t;
  }
  /** A matrix (or table) with `shape`, in its stored dtype or converted as `dtype` says. */
  async matrix(name: string, shape: number[]): Promise<NativeTensor> {
    return this.convert(await this.stored(name, shape), name);
  }
  /** A matrix in its stored dtype. */
  async stored(name: string, shape?: number[]): Promise<NativeTensor> {
    return loadSafetensorsTensor(this.info(name), shape);
  }
  /** `t` (loaded from tensor `name`) converted as `dtype` says. */
  convert(t: NativeTensor, name: string): NativeTensor {
    return convertMatrix(t, this.dtype, `${this.where}: tensor '${this.#prefix + name}'`);
  }
  /**
   * Rows start .. start + shape[0] - 1 of a matrix stored with `total` rows (a fused
   * projection: Phi-3's qkv_proj, gate_up_proj), converted as `dtype` says.
   */
  async rows(name: string, shape: number[], at: { start: number; total: number }): Promise<NativeTensor> {
    const t = this.info(name);
    const [rows, cols] = shape;
    if (t.shape.length !== 2 || t.shape[0] !== at.total || t.shape[1] !== cols)
      throw new FuselmError('E_FORMAT', `${t.file}: tensor '${t.name}' has shape [${t.shape}], expected [${at.total}, ${cols}]`);
    const rowBytes = t.nbytes / at.total;
    const slice = { ...t, shape: [rows, cols], offset: t.offset + at.start * rowBytes, nbytes: rows * rowBytes };
    return this.convert(await loadSafetensorsTensor(slice), name);
  }
  /** A vector as f32: natively when stored as F32, widened otherwise. `at` takes a slice. */
  async vector(name: string, n: number, at?: { start: number; total: number }): Promise<NativeTensor> {
    const t = this.info(name);
    const total = at?.total ?? n;
    if (t.shape.reduce((a, b) => a * b, 1) !== total)
      throw new FuselmError('E_FORMAT', `${t.file}: tensor '${t.name}' has shape [${t.shape}], expected ${total} values`);
    const start = at?.start ?? 0;
    if (t.dtype === 'F32') return callAsync(() => native().tensorFromFile(t.file, t.offset + 4 * start, 'f32', [n]));
    const type = t.dtype === 'F16' ? GgmlType.F16 : t.dtype === 'BF16' ? GgmlType.BF16 : undefined;
    if (type === undefined) throw new FuselmError('E_UNSUPPORTED', `${t.file}: tensor '${t.name}' has dtype ${t.dtype} (supported: F32, F16, BF16)`);
    const raw = await loadSafetensorsTensor(t);
    try {
      const bytes = new Uint8Array(raw.read(2 * start, 2 * n));
      return tensorFromF32('f32', [n], toF32(type, bytes, n, `${t.file}: ${t.name}`));
    } finally {
      raw.free();
    }
  }
}

/** Runs one load-time op (a transpose) natively on the backend's threads. */
async function runOnce(be: CpuBackend, node: ReturnType<typeof ops.transpose>): Promise<void> {
  const g = be.graph([node], 1);
  try {
    await g.run(1, 0);
  } finally {
    g.dispose();
  }
}

/** Loads the decoder weights of an HF llama / mistral / qwen2 / qwen3 / phi3 / gemma* / gpt2 checkpoint. */
export async function loadHfDecoderWeights(
  st: SafetensorsModel,
  c: ModelConfig,
  be: CpuBackend,
  where: string,
  opts: { contextSize: number; dtype?: WeightDtype; onProgress?: (loaded: number, total: number) => void },
): Promise<LlamaWeights> {
  const { dtype = 'auto', onProgress } = opts;
  const loaded: NativeTensor[] = [];
  const keep = <T extends NativeTensor | undefined>(t: T): T => (t && loaded.push(t), t);
  let n = 0;
  const total = c.nLayers + 2;
  try {
    if (c.architecture === 'gpt2') return await loadGpt2(new HfTensors(st, where, ['transformer.', ''], dtype), c, be, keep, () => onProgress?.(++n, total), opts.contextSize);
    const T = new HfTensors(st, where, [''], dtype);
    const q = c.nHeads * c.headDim, kv = c.nKvHeads * c.headDim;
    // a dense MLP's width (a mixture of experts' dense layers: their own)
    const F = c.moe?.dense?.ffnDim ?? c.ffnDim;
    // Gemma stores its RMSNorm weights as w for a scale of 1 + w: add the 1 once, in f32
    const norm = (t: NativeTensor): NativeTensor => {
      if (!c.architecture.startsWith('gemma')) return t;
      t.write(new Float32Array(t.read()).map((x) => x + 1));
      return t;
    };
    const tokenEmbd = keep(await T.matrix('model.embed_tokens.weight', [c.vocabSize, c.dim]));
    onProgress?.(++n, total);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}.`;
      const m = async (s: string, shape: number[]) => keep(await T.matrix(p + s, shape));
      const normWeight = async (s: string) => norm(keep(await T.vector(p + s, c.dim)));
      // Phi-3 fuses q, k, v into qkv_proj and gate, up into gate_up_proj (gate first)
      const fused = c.architecture === 'phi3';
      const part = async (s: string, start: number, rows: number, total: number) => keep(await T.rows(p + s, [rows, c.dim], { start, total }));
      const L: LayerWeights = {
        attnNorm: await normWeight('input_layernorm.weight'),
        wq: fused ? await part('self_attn.qkv_proj.weight', 0, q, q + 2 * kv) : await m('self_attn.q_proj.weight', [q, c.dim]),
        wk: fused ? await part('self_attn.qkv_proj.weight', q, kv, q + 2 * kv) : await m('self_attn.k_proj.weight', [kv, c.dim]),
        wv: fused ? await part('self_attn.qkv_proj.weight', q + kv, kv, q + 2 * kv) : await m('self_attn.v_proj.weight', [kv, c.dim]),
        wo: await m('self_attn.o_proj.weight', [c.dim, q]),
        // Gemma-2: post_attention_layernorm is the attention output's norm; the MLP's pre-norm
        // is pre_feedforward_layernorm
        ffnNorm: await normWeight(c.sandwichNorms ? 'pre_feedforward_layernorm.weight' : 'post_attention_layernorm.weight'),
        ...(c.moe && !c.moe.dense?.layers[l]
          ? await hfExperts(T, p, c, keep)
          : {
              wGate: fused ? await part('mlp.gate_up_proj.weight', 0, F, 2 * F) : await m('mlp.gate_proj.weight', [F, c.dim]),
              wUp: fused ? await part('mlp.gate_up_proj.weight', F, F, 2 * F) : await m('mlp.up_proj.weight', [F, c.dim]),
              wDown: await m('mlp.down_proj.weight', [c.dim, F]),
            }),
      };
      if (c.qkNorm) {
        L.qNorm = norm(keep(await T.vector(p + 'self_attn.q_norm.weight', c.headDim)));
        L.kNorm = norm(keep(await T.vector(p + 'self_attn.k_norm.weight', c.headDim)));
      }
      if (c.sandwichNorms) {
        L.postAttnNorm = await normWeight('post_attention_layernorm.weight');
        L.postFfnNorm = await normWeight('post_feedforward_layernorm.weight');
      }
      if (c.biases === 'qkv') {
        L.bq = keep(await T.vector(p + 'self_attn.q_proj.bias', q));
        L.bk = keep(await T.vector(p + 'self_attn.k_proj.bias', kv));
        L.bv = keep(await T.vector(p + 'self_attn.v_proj.bias', kv));
      }
      // llama's attention_bias also gives o_proj a bias; mlp_bias the MLP projections
      const opt = async (s: string, len: number) => (T.has(p + s) ? keep(await T.vector(p + s, len)) : undefined);
      L.bo = await opt('self_attn.o_proj.bias', c.dim);
      if (T.has(p + 'mlp.up_proj.bias') || T.has(p + 'mlp.gate_proj.bias'))
        throw new FuselmError('E_UNSUPPORTED', `${where}: MLP biases (mlp_bias) are not supported yet`);
      layers.push(L);
      onProgress?.(++n, total);
    }
    const outputNorm = norm(keep(await T.vector('model.norm.weight', c.dim)));
    const output = !c.tiedEmbeddings && T.has('lm_head.weight') ? keep(await T.matrix('lm_head.weight', [c.vocabSize, c.dim])) : tokenEmbd;
    onProgress?.(++n, total);
    // the fixed table only for the positions the model will use (max_position_embeddings may be 1e8)
    const rows = Math.min(c.contextLength, opts.contextSize);
    const posEmbd = c.positional === 'sinusoidal' ? keep(tensorFromF32('f32', [rows, c.dim], sinusoidalPositions(rows, c.dim))) : undefined;
    const factors = ropeFactors(c, opts.contextSize);
    const ropeFreqs = factors ? keep(tensorFromF32('f32', [factors.length], factors)) : undefined;
    return { tokenEmbd, layers, outputNorm, output, posEmbd, ropeFreqs };
  } catch (e) {
    for (const t of loaded) t.free();
    throw e;
  }
}

/**
 * A layer's experts from per-expert matrices, stacked at load into the [experts, rows, cols]
 * tensors moe_matmul reads (each converted as `dtype` says first): Mixtral's
 * block_sparse_moe.{gate, experts.N.w1 (gate), w3 (up), w2 (down)}; Qwen-MoE's mlp.{gate,
 * experts.N.{gate,up,down}_proj}, and Qwen2-MoE's mlp.shared_expert.* with mlp.shared_expert_gate.
 */
async function hfExperts(T: HfTensors, p: string, c: ModelConfig, keep: <X extends NativeTensor | undefined>(t: X) => X): Promise<Partial<LayerWeights>> {
  const m = c.moe!, F = m.expertFfnDim;
  const mixtral = T.has(`${p}block_sparse_moe.gate.weight`);
  const base = mixtral ? `${p}block_sparse_moe.` : `${p}mlp.`;
  const names = mixtral ? { gate: 'w1', up: 'w3', down: 'w2' } : { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };
  const stack = async (which: 'gate' | 'up' | 'down', shape: number[]) => {
    const parts: NativeTensor[] = [];
    try {
      for (let e = 0; e < m.experts; e++) parts.push(await T.matrix(`${base}experts.${e}.${names[which]}.weight`, shape));
      return keep(stackTensors(parts));
    } finally {
      for (const t of parts) t.free();
    }
  };
  const w: Partial<LayerWeights> = {
    router: keep(await T.matrix(`${base}gate.weight`, [m.experts, c.dim])),
    gateExps: await stack('gate', [F, c.dim]),
    upExps: await stack('up', [F, c.dim]),
    downExps: await stack('down', [c.dim, F]),
  };
  if (m.sharedExpert) {
    w.sharedGate = keep(await T.vector(`${base}shared_expert_gate.weight`, c.dim));
    w.wGate = keep(await T.matrix(`${base}shared_expert.gate_proj.weight`, [c.ffnDim, c.dim]));
    w.wUp = keep(await T.matrix(`${base}shared_expert.up_proj.weight`, [c.ffnDim, c.dim]));
    w.wDown = keep(await T.matrix(`${base}shared_expert.down_proj.weight`, [c.dim, c.ffnDim]));
  }
  return w;
}

async function loadGpt2(
  T: HfTensors,
  c: ModelConfig,
  be: CpuBackend,
  keep: <X extends NativeTensor | undefined>(t: X) => X,
  progress: () => void,
  contextSize: number,
): Promise<LlamaWeights> {
  const D = c.dim, F = c.ffnDim;
  /** Conv1D [in, out] → [out, in] slices (columns col0 .. col0 + rows of the stored matrix). */
  const conv = async (name: string, inDim: number, outTotal: number, slices: Array<[number, number]>) => {
    const raw = await T.stored(name, [inDim, outTotal]);
    try {
      const outs: NativeTensor[] = [];
      for (const [col0, rows] of slices) {
        const out = emptyTensor(raw.dtype, [rows, inDim]);
        try {
          await runOnce(be, ops.transpose(out, raw, col0));
        } catch (e) {
          out.free();
          throw e;
        }
        outs.push(keep(T.convert(out, name)));
      }
      return outs;
    } finally {
      raw.free();
    }
  };
  const tokenEmbd = keep(await T.matrix('wte.weight', [c.vocabSize, D]));
  const learned = keep(await T.matrix('wpe.weight', [c.contextLength, D]));
  const rows = Math.min(c.contextLength, contextSize);
  const posEmbd = c.positional === 'sinusoidal' ? keep(tensorFromF32('f32', [rows, D], sinusoidalPositions(rows, D))) : learned;
  progress();
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `h.${l}.`;
    const v = async (s: string, n: number, at?: { start: number; total: number }) => keep(await T.vector(p + s, n, at));
    const [wq, wk, wv] = await conv(p + 'attn.c_attn.weight', D, 3 * D, [[0, D], [D, D], [2 * D, D]]);
    const [wo] = await conv(p + 'attn.c_proj.weight', D, D, [[0, D]]);
    const [wUp] = await conv(p + 'mlp.c_fc.weight', D, F, [[0, F]]);
    const [wDown] = await conv(p + 'mlp.c_proj.weight', F, D, [[0, D]]);
    layers.push({
      attnNorm: await v('ln_1.weight', D),
      attnNormB: await v('ln_1.bias', D),
      wq, wk, wv, wo, wUp, wDown,
      bq: await v('attn.c_attn.bias', D, { start: 0, total: 3 * D }),
      bk: await v('attn.c_attn.bias', D, { start: D, total: 3 * D }),
      bv: await v('attn.c_attn.bias', D, { start: 2 * D, total: 3 * D }),
      bo: await v('attn.c_proj.bias', D),
      ffnNorm: await v('ln_2.weight', D),
      ffnNormB: await v('ln_2.bias', D),
      bUp: await v('mlp.c_fc.bias', F),
      bDown: await v('mlp.c_proj.bias', D),
    });
    progress();
  }
  const outputNorm = keep(await T.vector('ln_f.weight', D));
  const outputNormB = keep(await T.vector('ln_f.bias', D));
  const output = !c.tiedEmbeddings && T.has('lm_head.weight') ? keep(await T.matrix('lm_head.weight', [c.vocabSize, D])) : tokenEmbd;
  progress();
  if (posEmbd !== learned) learned.free();
  return { tokenEmbd, posEmbd, layers, outputNorm, outputNormB, output };
}
