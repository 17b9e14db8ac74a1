/**
 * Synthetic GGUFs with random weights, laid out as llama.cpp's converter lays out each
 * architecture (its tensor names, shapes and metadata keys), written with the GGUF writer:
 *  - writeSyntheticLlama: a llama at a real model's shape, for benchmarks (speed does not
 *    depend on the weights' values) and for tests that need a model without ../shared. Tensors
 *    of equal byte size share one random buffer, so writing a 1.1B-parameter file needs only a
 *    few hundred MB of memory.
 *  - writeSyntheticModel: a small model of any architecture in SYNTHETIC_ARCHS with every
 *    tensor drawn on its own (Gaussian matrices, norms near 1, small biases), for differential
 *    tests against llama.cpp (test/peers/arch-diff.test.ts). A new architecture is one entry
 *    in SYNTHETIC_ARCHS.
 */
import type { NativeDType } from '../../bindings.js';
import { GgmlType } from '../formats/ggml-types.js';
import { type GgufFile, type GgufMetaEntry, gv, writeGguf } from '../formats/gguf.js';
import { toF32 } from '../formats/quants.js';
import { encodeF32 } from '../tensor.js';
import { FILE_TYPE as QUANT_FILE_TYPE, planTensorTypes } from './quantize.js';
import { syntheticVocab } from './synthetic-vocab.js';

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

export type WeightType = Exclude<NativeDType, 'i32'>;

const GGML: Record<WeightType, GgmlType> = {
  f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16, q8_0: GgmlType.Q8_0,
  q4_0: GgmlType.Q4_0, q4_1: GgmlType.Q4_1, q5_0: GgmlType.Q5_0, q5_1: GgmlType.Q5_1, iq4_nl: GgmlType.IQ4_NL,
  q2_k: GgmlType.Q2_K, q3_k: GgmlType.Q3_K, q4_k: GgmlType.Q4_K, q5_k: GgmlType.Q5_K, q6_k: GgmlType.Q6_K, iq4_xs: GgmlType.IQ4_XS,
};
/** general.file_type: llama.cpp's LLAMA_FTYPE of the matrices' type (the _S variant for k-quants). */
const FILE_TYPE: Record<WeightType, number> = {
  f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, q5_0: 8, q5_1: 9, q2_k: 10, q3_k: 11, q4_k: 14, q5_k: 16, q6_k: 18, iq4_nl: 25, iq4_xs: 30, bf16: 32,
};

/** A tensor to write: its GGUF name, shape [rows, cols], [experts, rows, cols] or [n], and what it holds. */
export interface TensorPlan {
  name: string;
  shape: number[];
  /**
   * matrix: in the model's weight type; norm, bias: F32 vectors, as the converter keeps them;
   * router: an F32 matrix (the converter keeps ffn_gate_inp F32 whatever the output type).
   */
  kind: 'matrix' | 'norm' | 'bias' | 'router';
}

/** The widths a layer's tensors are made of. */
export interface LayerDims {
  dim: number;
  /** nHeads * headDim and nKvHeads * headDim */
  q: number;
  kv: number;
  ffn: number;
  headDim: number;
  /** A mixture of experts in place of the MLP (SyntheticModelSpec.experts). */
  experts?: SyntheticExperts;
}

export interface SyntheticArchLayout {
  /** Layer l's tensors, named without the `blk.<l>.` prefix and the `.weight`/`.bias` suffix. */
  layer(d: LayerDims): TensorPlan[];
  /** 'optional': output.weight written unless tied; 'tied': llama.cpp reads token_embd (Gemma). */
  output: 'optional' | 'tied';
  /** Metadata beyond the keys every architecture has, without the `<arch>.` prefix. */
  keys?(s: SyntheticModelSpec): Array<[key: string, entry: Omit<GgufMetaEntry, 'key'>]>;
}

const mat = (name: string, rows: number, cols: number): TensorPlan => ({ name, shape: [rows, cols], kind: 'matrix' });
const norm = (name: string, n: number): TensorPlan => ({ name, shape: [n], kind: 'norm' });
const bias = (name: string, n: number): TensorPlan => ({ name, shape: [n], kind: 'bias' });

/**
 * The MLP: SwiGLU's gate, up and down; or, with experts, the router ffn_gate_inp and the experts
 * stacked (ffn_{gate,up,down}_exps [experts, ff, dim] / [experts, dim, ff]), and a shared expert
 * (ffn_{gate,up,down}_shexp of width d.ffn) with its gate ffn_gate_inp_shexp [dim] when asked.
 */
const mlp = (d: LayerDims): TensorPlan[] => {
  const x = d.experts;
  if (!x) return [mat('ffn_gate', d.ffn, d.dim), mat('ffn_up', d.ffn, d.dim), mat('ffn_down', d.dim, d.ffn)];
  const exps = (name: string, rows: number, cols: number): TensorPlan => ({ name, shape: [x.count, rows, cols], kind: 'matrix' });
  return [
    { name: 'ffn_gate_inp', shape: [x.count, d.dim], kind: 'router' },
    exps('ffn_gate_exps', x.ffn, d.dim),
    exps('ffn_up_exps', x.ffn, d.dim),
    exps('ffn_down_exps', d.dim, x.ffn),
    ...(x.shared ? [{ name: 'ffn_gate_inp_shexp', shape: [d.dim], kind: 'router' } as TensorPlan, mat('ffn_gate_shexp', d.ffn, d.dim), mat('ffn_up_shexp', d.ffn, d.dim), mat('ffn_down_shexp', d.dim, d.ffn)] : []),
  ];
};

/** llama's layer: separate q, k, v, and the SwiGLU MLP's gate, up and down (or experts: Mixtral). */
const llamaLayer = (d: LayerDims): TensorPlan[] => [
  norm('attn_norm', d.dim),
  mat('attn_q', d.q, d.dim),
  mat('attn_k', d.kv, d.dim),
  mat('attn_v', d.kv, d.dim),
  mat('attn_output', d.dim, d.q),
  norm('ffn_norm', d.dim),
  ...mlp(d),
];

const qkNorms = (d: LayerDims) => [norm('attn_q_norm', d.headDim), norm('attn_k_norm', d.headDim)];
const sandwich = (d: LayerDims) => [norm('post_attention_norm', d.dim), norm('post_ffw_norm', d.dim)];
const gemmaKeys = (s: SyntheticModelSpec): Array<[string, Omit<GgufMetaEntry, 'key'>]> => [
  ...when('attention.sliding_window', s.slidingWindow, gv.u32),
  ...when('attention.sliding_window_pattern', s.slidingWindowPattern, gv.u32),
  ...when('attn_logit_softcapping', s.attnSoftcap, gv.f32),
  ...when('final_logit_softcapping', s.finalSoftcap, gv.f32),
];

/** Qwen-MoE's expert widths (Mixtral's llama layout takes feed_forward_length as the experts' width). */
const expertKeys = (s: SyntheticModelSpec): Array<[string, Omit<GgufMetaEntry, 'key'>]> => [
  ...when('expert_feed_forward_length', s.experts?.ffn, gv.u32),
  ...when('expert_shared_feed_forward_length', s.experts?.shared ? s.ffnDim : undefined, gv.u32),
];

/** A key written only when the spec gives its value. */
const when = (key: string, v: number | undefined, enc: (v: number) => Omit<GgufMetaEntry, 'key'>): Array<[string, Omit<GgufMetaEntry, 'key'>]> =>
  v === undefined ? [] : [[key, enc(v)]];

/**
 * The architectures fuselm reads from GGUF, as llama.cpp's converter writes them. Rope pairing
 * is not a layout matter: llama.cpp rotates adjacent pairs for llama (its converter permutes
 * q/k rows to match) and halves (NeoX) for the others, and random weights need no permuting.
 * Another architecture is one more entry.
 */
export const SYNTHETIC_ARCHS = {
  llama: { layer: llamaLayer, output: 'optional' },
  // q, k and v biases
  qwen2: { layer: (d) => [...llamaLayer(d), bias('attn_q', d.q), bias('attn_k', d.kv), bias('attn_v', d.kv)], output: 'optional' },
  // q, k, v fused as attn_qkv (rows q, k, v); gate and up fused as ffn_up (rows gate, up)
  phi3: {
    layer: (d) => [
      norm('attn_norm', d.dim),
      mat('attn_qkv', d.q + 2 * d.kv, d.dim),
      mat('attn_output', d.dim, d.q),
      norm('ffn_norm', d.dim),
      mat('ffn_up', 2 * d.ffn, d.dim),
      mat('ffn_down', d.dim, d.ffn),
    ],
    output: 'optional',
    keys: (s) => when('attention.sliding_window', s.slidingWindow, gv.u32),
  },
  // per-head RMSNorms of q and k
  qwen3: { layer: (d) => [...llamaLayer(d), ...qkNorms(d)], output: 'optional' },
  // experts (SyntheticModelSpec.experts, with shared: true for the shared expert) and Qwen2's biases
  qwen2moe: { layer: (d) => [...llamaLayer(d), bias('attn_q', d.q), bias('attn_k', d.kv), bias('attn_v', d.kv)], output: 'optional', keys: expertKeys },
  // experts and Qwen3's q/k norms
  qwen3moe: { layer: (d) => [...llamaLayer(d), ...qkNorms(d)], output: 'optional', keys: expertKeys },
  // Gemma's norms are stored as 1 + w (the converter adds the 1: these are drawn near 1 already)
  gemma: { layer: llamaLayer, output: 'tied' },
  // sandwich norms; llama.cpp defaults the window to 4096 and the caps to 50 and 30 when the keys
  // are absent
  gemma2: { layer: (d) => [...llamaLayer(d), ...sandwich(d)], output: 'tied', keys: gemmaKeys },
  // sandwich and q/k norms; five sliding layers then a global one unless the pattern key says
  gemma3: { layer: (d) => [...llamaLayer(d), ...qkNorms(d), ...sandwich(d)], output: 'tied', keys: gemmaKeys },
} satisfies Record<string, SyntheticArchLayout>;

export type SyntheticArch = keyof typeof SYNTHETIC_ARCHS;

/** A mixture of experts: `count` experts of width `ffn`, `used` per token; a shared expert (qwen2moe). */
export interface SyntheticExperts {
  count: number;
  used: number;
  ffn: number;
  shared?: boolean;
}

export interface SyntheticModelSpec extends LlamaShape {
  arch: SyntheticArch;
  /** Matrices' type (token_embd and output included); norms and biases stay F32. */
  dtype: WeightType;
  /** Default dim / nHeads; when different it is written as attention.key_length/value_length. */
  headDim?: number;
  /** No output.weight: the vocabulary projection is token_embd (always so for 'tied' layouts). */
  tied?: boolean;
  ropeTheta?: number;
  /** <arch>.rope.scaling.type/factor (llama.cpp: linear divides positions by factor). */
  ropeScaling?: { type: string; factor: number };
  /** The rope_freqs.weight tensor (Llama-3.1's per-pair frequency divisors), ropeDims / 2 values. */
  ropeFreqs?: number[];
  /** Architecture keys written only when given (see SYNTHETIC_ARCHS). */
  slidingWindow?: number;
  /** Gemma-2/3: the window on layers l % period < period - 1 (llama.cpp's defaults: 2, 6). */
  slidingWindowPattern?: number;
  /** More `<arch>.` keys, as they are (rope.scaling.* for YaRN, rope.freq_base_swa...). */
  keys?: Array<[key: string, entry: Omit<GgufMetaEntry, 'key'>]>;
  /** Experts in place of the MLP (llama: Mixtral's layout, ffnDim then is ignored for the experts' own width; qwen2moe, qwen3moe). */
  experts?: SyntheticExperts;
  /** The tokenizer.ggml.* metadata (vocabSize tokens) instead of syntheticVocab's (e.g. widenedByteLevelVocab). */
  vocab?: GgufMetaEntry[];
  attnSoftcap?: number;
  finalSoftcap?: number;
  normEps?: number;
  seed?: number;
  /**
   * Store the matrices as F32 holding the values `dtype` rounds them to: the same model as the
   * file without it, for comparing another engine's arithmetic on it with its own on F32.
   */
  widened?: boolean;
}

/**
 * A byte-level BPE vocabulary of `n` tokens, for tests and benchmarks at a large vocabulary's
 * size: a real vocabulary's tokens, types, merges, pre-tokenizer and special ids (from its
 * GGUF), then distinct concatenations of two of its ordinary tokens (byte-level text too) until
 * there are `n`. The added tokens are never produced by encoding (no merge makes them); they
 * are generated and decoded like any other.
 */
export function widenedByteLevelVocab(f: GgufFile, n: number, seed = 1): GgufMetaEntry[] {
  const tokens = [...(f.metadata.get('tokenizer.ggml.tokens') as string[])];
  const types = Array.from((f.metadata.get('tokenizer.ggml.token_type') as ArrayLike<number> | undefined) ?? tokens.map(() => 1));
  const ordinary = tokens.filter((_, i) => types[i] === 1);
  const seen = new Set(tokens);
  let state = seed >>> 0;
  const pick = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return ordinary[state % ordinary.length];
  };
  while (tokens.length < n) {
    const t = pick() + pick();
    if (seen.has(t)) continue;
    seen.add(t);
    tokens.push(t);
    types.push(1);
  }
  const out: GgufMetaEntry[] = [
    { key: 'tokenizer.ggml.tokens', ...gv.arrStr(tokens.slice(0, n)) },
    { key: 'tokenizer.ggml.token_type', ...gv.arrI32(types.slice(0, n)) },
  ];
  for (const [key, v] of f.metadata)
    if (key.startsWith('tokenizer.ggml.') && key !== 'tokenizer.ggml.tokens' && key !== 'tokenizer.ggml.token_type' && key !== 'tokenizer.ggml.scores')
      out.push({ key, ...f.metadataTypes.get(key)!, value: v });
  return out;
}

/** Every tensor of a model, in file order, and its metadata. */
function modelPlan(s: SyntheticModelSpec): { tensors: TensorPlan[]; metadata: GgufMetaEntry[] } {
  const layout: SyntheticArchLayout = SYNTHETIC_ARCHS[s.arch];
  const headDim = s.headDim ?? s.dim / s.nHeads;
  const d: LayerDims = { dim: s.dim, q: s.nHeads * headDim, kv: s.nKvHeads * headDim, ffn: s.ffnDim, headDim, experts: s.experts };
  const tensors: TensorPlan[] = [mat('token_embd.weight', s.vocabSize, s.dim)];
  if (s.ropeFreqs) tensors.push({ name: 'rope_freqs.weight', shape: [s.ropeFreqs.length], kind: 'norm' });
  for (let l = 0; l < s.nLayers; l++)
    for (const t of layout.layer(d)) tensors.push({ ...t, name: `blk.${l}.${t.name}.${t.kind === 'bias' ? 'bias' : 'weight'}` });
  tensors.push(norm('output_norm.weight', s.dim));
  if (layout.output === 'optional' && !s.tied) tensors.push(mat('output.weight', s.vocabSize, s.dim));
  const k = (key: string, e: Omit<GgufMetaEntry, 'key'>): GgufMetaEntry => ({ key: `${s.arch}.${key}`, ...e });
  const metadata: GgufMetaEntry[] = [
    { key: 'general.architecture', ...gv.str(s.arch) },
    // no architecture in the name: llama.cpp keys vocabulary workarounds on it (a "phi3" name
    // expects Phi-3's <|endoftext|> token)
    { key: 'general.name', ...gv.str(`synthetic ${s.nLayers}x${s.dim} ${s.dtype}`) },
    k('context_length', gv.u32(s.contextLength)),
    k('embedding_length', gv.u32(s.dim)),
    k('block_count', gv.u32(s.nLayers)),
    // Mixtral (llama with experts): the experts' width
    k('feed_forward_length', gv.u32(s.arch === 'llama' && s.experts ? s.experts.ffn : s.ffnDim)),
    ...(s.experts ? [k('expert_count', gv.u32(s.experts.count)), k('expert_used_count', gv.u32(s.experts.used))] : []),
    k('attention.head_count', gv.u32(s.nHeads)),
    k('attention.head_count_kv', gv.u32(s.nKvHeads)),
    ...(headDim !== s.dim / s.nHeads ? [k('attention.key_length', gv.u32(headDim)), k('attention.value_length', gv.u32(headDim))] : []),
    k('attention.layer_norm_rms_epsilon', gv.f32(s.normEps ?? 1e-5)),
    k('rope.dimension_count', gv.u32(headDim)),
    k('rope.freq_base', gv.f32(s.ropeTheta ?? 10000)),
    ...(s.ropeScaling ? [k('rope.scaling.type', gv.str(s.ropeScaling.type)), k('rope.scaling.factor', gv.f32(s.ropeScaling.factor))] : []),
    ...[...(layout.keys?.(s) ?? []), ...(s.keys ?? [])].map(([key, e]) => k(key, e)),
    { key: 'general.file_type', ...gv.u32(FILE_TYPE[s.widened ? 'f32' : s.dtype]) },
    ...(s.vocab ?? syntheticVocab(s.vocabSize)),
  ];
  return { tensors, metadata };
}

/**
 * A seeded stream of N(0, 1) samples: mulberry32 uniforms in (0, 1), turned into pairs by
 * Box-Muller. Small and fast (a 1M-parameter model in well under a second).
 */
function normals(seed: number): (n: number) => Float32Array {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return (n) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(uniform())), a = 2 * Math.PI * uniform();
      out[i] = r * Math.cos(a);
      if (i + 1 < n) out[i + 1] = r * Math.sin(a);
    }
    return out;
  };
}

/**
 * Writes a small model of spec.arch with random weights drawn from spec.seed: matrices
 * N(0, 1 / cols) (unit gain, so activations keep their size and attention scores are of order
 * one: rope, windows and caps all move the logits), token_embd and output N(0, (2 / sqrt(dim))²)
 * (logits of a few units, well spread, so greedy picks are no near-ties), norms 1 + 0.1 N(0, 1),
 * biases 0.1 N(0, 1). rope_freqs takes no draws, so a file with and one without it hold the
 * same weights.
 */
export async function writeSyntheticModel(path: string, spec: SyntheticModelSpec): Promise<void> {
  const { tensors, metadata } = modelPlan(spec);
  const draw = normals(spec.seed ?? 1);
  await writeGguf(path, {
    metadata,
    tensors: tensors.map((t) => {
      const dims = [...t.shape].reverse();
      if (t.name === 'rope_freqs.weight') return { name: t.name, type: GgmlType.F32, dims, data: encodeF32('f32', Float32Array.from(spec.ropeFreqs!)) };
      const n = t.shape.reduce((a, b) => a * b, 1);
      const z = draw(n);
      if (t.kind === 'norm') for (let i = 0; i < n; i++) z[i] = 1 + 0.1 * z[i];
      else {
        const std = t.kind === 'bias' ? 0.1 : t.name === 'token_embd.weight' || t.name === 'output.weight' ? 2 / Math.sqrt(spec.dim) : 1 / Math.sqrt(t.shape[t.shape.length - 1]);
        for (let i = 0; i < n; i++) z[i] *= std;
      }
      const type = t.kind === 'matrix' ? spec.dtype : 'f32';
      const data = encodeF32(type, z);
      if (spec.widened && type !== 'f32') return { name: t.name, type: GgmlType.F32, dims, data: encodeF32('f32', toF32(GGML[type], data, n, t.name)) };
      return { name: t.name, type: GGML[type], dims, data };
    }),
  });
}

/** A matrix type, or one of llama.cpp's k-quant mixtures (each matrix's type as llama-quantize picks it). */
export type SyntheticLlamaType = WeightType | 'q4_k_m' | 'q5_k_m';
const isMixture = (t: SyntheticLlamaType): t is 'q4_k_m' | 'q5_k_m' => t === 'q4_k_m' || t === 'q5_k_m';
const WEIGHT_TYPE = new Map<GgmlType, WeightType>(Object.entries(GGML).map(([name, g]) => [g, name as WeightType]));

/**
 * Writes a llama GGUF of `shape` with random weights in `dtype` (norms stay F32; output.weight
 * written). A mixture gives each matrix the type `planTensorTypes` gives it (Q4_K_M: Q6_K output,
 * attn_v and ffn_down in the layers that get more bits, Q4_K elsewhere). With `experts`, a
 * Mixtral layout: the experts of a stack repeat one random matrix (speed does not depend on the
 * values), the routers are random F32, so tokens go to different experts.
 */
export async function writeSyntheticLlama(path: string, shape: LlamaShape & { experts?: SyntheticExperts }, dtype: SyntheticLlamaType, seed = 1): Promise<void> {
  const mixture = isMixture(dtype);
  if (mixture && shape.experts) throw new Error('writeSyntheticLlama: a k-quant mixture with experts is not planned');
  const { tensors, metadata } = modelPlan({ ...shape, arch: 'llama', dtype: mixture ? 'f32' : dtype });
  const types: WeightType[] = mixture
    ? planTensorTypes(tensors.map((t) => ({ name: t.name, dims: [...t.shape].reverse() })), dtype).map((g) => (g === undefined ? 'f32' : WEIGHT_TYPE.get(g)!))
    : tensors.map(() => dtype);
  if (mixture)
    for (const m of metadata) {
      if (m.key === 'general.file_type') Object.assign(m, gv.u32(QUANT_FILE_TYPE[dtype]));
      if (m.key === 'general.name') Object.assign(m, gv.str(`synthetic ${shape.nLayers}x${shape.dim} ${dtype}`));
    }
  let state = seed >>> 0;
  const uniform = (n: number, scale: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      out[i] = (state / 4294967296 - 0.5) * 2 * scale;
    }
    return out;
  };
  const byShape = new Map<string, Uint8Array>();
  await writeGguf(path, {
    metadata,
    tensors: tensors.map((t, i) => {
      const dims = [...t.shape].reverse();
      if (t.kind === 'router') return { name: t.name, type: GgmlType.F32, dims, data: encodeF32('f32', uniform(t.shape.reduce((a, b) => a * b, 1), 1 / Math.sqrt(dims[0]))) };
      if (t.kind !== 'matrix') return { name: t.name, type: GgmlType.F32, dims, data: new Uint8Array(new Float32Array(t.shape[0]).fill(1).buffer) };
      const [rows, cols] = t.shape.slice(-2), count = t.shape.length === 3 ? t.shape[0] : 1;
      const key = `${rows * cols} ${types[i]}`;
      let data = byShape.get(key);
      if (!data) byShape.set(key, (data = encodeF32(types[i], uniform(rows * cols, 1 / Math.sqrt(cols)))));
      if (count > 1) {
        // one stack buffer per size too: a Mixtral-shaped file's stacks are hundreds of MB each
        let stack = byShape.get(`${count} ${key}`);
        if (!stack) {
          byShape.set(`${count} ${key}`, (stack = new Uint8Array(count * data.length)));
          for (let e = 0; e < count; e++) stack.set(data, e * data.length);
        }
        return { name: t.name, type: GGML[types[i]], dims, data: stack };
      }
      return { name: t.name, type: GGML[types[i]], dims, data };
    }),
  });
}
