/**
 * One normalized model config for every architecture, read from a file's own metadata: a
 * GGUF's keys (configFromGguf) or a Hugging Face config.json (configFromHf). Model code reads
 * only this, never raw GGUF keys or config.json fields. Unknown architectures and unsupported
 * options are E_UNSUPPORTED; missing or ill-typed fields are E_FORMAT naming the file and key.
 */
import { FuselmError, shown } from '../errors.js';
import { type GgufFile, ggufBool, ggufGet, ggufNumber, ggufString } from '../formats/gguf.js';
import type { JsonObject } from '../formats/hf.js';

export type Architecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'qwen2moe' | 'qwen3moe' | 'phi3' | 'gemma' | 'gemma2' | 'gemma3' | 'gpt2' | 'bert';

/**
 * A sparse mixture of experts in place of every layer's MLP (Mixtral, Qwen2-MoE, Qwen3-MoE):
 * a router picks `used` of `experts` SwiGLU experts per token (softmax over the experts, the
 * top `used`, their weights renormalized to sum 1 when `normalize`), whose outputs are summed
 * with those weights. Qwen2-MoE adds a shared expert every token takes (of width ffnDim), its
 * output times sigmoid(a gate's logit). Qwen-MoE folders may keep some layers dense (`dense`).
 */
export interface MoeConfig {
  experts: number;
  used: number;
  /** Each routed expert's hidden width. */
  expertFfnDim: number;
  normalize: boolean;
  sharedExpert: boolean;
  /**
   * Layers with a plain SwiGLU MLP of width ffnDim in place of the experts (layers[l] true),
   * as transformers' Qwen2-MoE/Qwen3-MoE build them from mlp_only_layers and
   * decoder_sparse_step; absent: every layer has experts.
   */
  dense?: { layers: boolean[]; ffnDim: number };
}

export interface ModelConfig {
  architecture: Architecture;
  name: string;
  vocabSize: number;
  /** Model width (embedding length). */
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ffnDim: number;
  normEps: number;
  /** Rotated dims per head. */
  ropeDims: number;
  ropeTheta: number;
  /** Position multiplier (1 / linear scaling factor). */
  ropeFreqScale: number;
  /**
   * Per-pair rope frequency divisors computed from the scaling settings (llama3 from a
   * config.json; YaRN from either; a GGUF carries llama3's as the rope_freqs.weight tensor
   * instead, and the two multiply). Absent: none.
   */
  ropeFreqFactors?: number[];
  /** cos and sin of the rotation scaled by this (YaRN's and LongRoPE's attention factor); absent: 1. */
  ropeMscale?: number;
  /**
   * LongRoPE (Phi-3 128k): per-pair divisors for contexts of up to `original` positions (short)
   * and for longer ones (long). Which applies is fixed by the context size at load, as llama.cpp
   * does. A GGUF carries them as rope_factors_short/long tensors instead of here.
   */
  ropeLongrope?: { original: number; short?: number[]; long?: number[] };
  /** Gemma-3: the sliding-window layers' own rope base and scale (no factors, no mscale). */
  ropeSliding?: { theta: number; freqScale: number };
  /**
   * The most positions the rotation is exact for (dynamic NTK scaling: transformers changes the
   * base past them); a larger contextSize is refused. Absent: no limit.
   */
  ropeMaxContext?: number;
  /** Qwen3, Gemma-3: an RMSNorm of each head of q and of k (weights [headDim]) before rope. */
  qkNorm?: boolean;
  /** NeoX pairing (i, i + n/2) instead of llama's adjacent pairs. */
  ropeNeox: boolean;
  /** Context length the model was trained for. */
  contextLength: number;
  /** RMSNorm (llama family) or LayerNorm with a bias (GPT-2, BERT). */
  normType: 'rms' | 'layer';
  /**
   * How positions enter: rotary in attention; a learned table added to the embeddings (GPT-2,
   * BERT); the original Transformer's fixed sinusoidal table added to the embeddings.
   */
  positional: 'rope' | 'learned' | 'sinusoidal';
  /**
   * MLP: gated SiLU (gate, up, down); gated GELU-tanh (Gemma's GeGLU); or up → GELU (tanh
   * approximation or exact erf) → down.
   */
  mlp: 'swiglu' | 'geglu_tanh' | 'gelu_tanh' | 'gelu_erf';
  /** Which projections carry biases: none, q/k/v only (Qwen2), or every projection and norm (GPT-2, BERT). */
  biases: 'none' | 'qkv' | 'all';
  /** Sliding-window attention: key j is visible from query i iff 0 <= i - j < window; 0: none. */
  slidingWindow: number;
  /** Which layers the window applies to (Gemma-2: every other one, from the first); absent: all. */
  slidingLayers?: boolean[];
  /** Gemma-2: the embeddings times sqrt(hidden size) (rounded to f32), before the first layer. */
  embedScale?: number;
  /** The attention scale when not 1 / sqrt(headDim) (Gemma-2's query_pre_attn_scalar^-0.5). */
  attnScale?: number;
  /** Gemma-2: attention scores and final logits soft-capped to cap * tanh(x / cap); absent: none. */
  attnSoftcap?: number;
  finalSoftcap?: number;
  /** Gemma-2: an RMSNorm on the attention's and the MLP's output before each residual add. */
  sandwichNorms?: boolean;
  /** The vocabulary projection is the token embedding. */
  tiedEmbeddings: boolean;
  /** false: bidirectional encoder (BERT). */
  causal: boolean;
  /** Norm after each residual add (BERT) instead of before each block. */
  postNorm: boolean;
  /** Token type (segment) vocabulary; 0: none. */
  typeVocabSize: number;
  /** Absent: a dense MLP. */
  moe?: MoeConfig;
}

/** The llama-family defaults of the fields GGUF llama files do not spell out. */
export const LLAMA_DEFAULTS = {
  normType: 'rms',
  positional: 'rope',
  mlp: 'swiglu',
  biases: 'none',
  slidingWindow: 0,
  causal: true,
  postNorm: false,
  typeVocabSize: 0,
} as const;

/**
 * Reads the config of a GGUF under llama.cpp's key names (`<arch>.embedding_length` ...):
 * llama; gpt2 (LayerNorm with biases, learned positions, GELU-tanh MLP); bert (the same pieces
 * post-norm, bidirectional, exact-GELU, with token types).
 */
export function configFromGguf(f: GgufFile): ModelConfig {
  const arch = ggufString(f, 'general.architecture');
  if (!(GGUF_ARCHS as readonly string[]).includes(arch))
    throw new FuselmError('E_UNSUPPORTED', `${f.path}: architecture '${arch}' is not supported yet (supported: ${GGUF_ARCHS.join(', ')})`);
  const k = (s: string) => `${arch}.${s}`;
  const dim = ggufNumber(f, k('embedding_length'));
  const nHeads = ggufNumber(f, k('attention.head_count'));
  const nKvHeads = ggufNumber(f, k('attention.head_count_kv'), nHeads);
  const embd = f.tensorByName.get('token_embd.weight');
  const tokens = f.metadata.get('tokenizer.ggml.tokens');
  const vocabSize = embd?.dims[1] ?? (Array.isArray(tokens) ? tokens.length : 0);
  // a head's width: key_length where written (Gemma: 256 with 2304 / 8 heads), else dim / heads
  const headDim = ggufNumber(f, k('attention.key_length'), dim / nHeads);
  if (ggufNumber(f, k('attention.value_length'), headDim) !== headDim)
    throw new FuselmError('E_UNSUPPORTED', `${f.path}: ${k('attention.value_length')} different from ${k('attention.key_length')} is not supported`);
  const common = {
    architecture: arch as Architecture,
    name: ggufString(f, 'general.name', arch),
    vocabSize,
    dim,
    nLayers: ggufNumber(f, k('block_count')),
    nHeads,
    nKvHeads,
    headDim,
    contextLength: ggufNumber(f, k('context_length'), arch === 'gpt2' || arch === 'bert' ? 512 : 2048),
    tiedEmbeddings: !f.tensorByName.has('output.weight'),
  };
  if (arch === 'gpt2' || arch === 'bert') {
    // LayerNorm models: llama.cpp's gpt2 and bert graphs; no rotary positions
    const cfg: ModelConfig = {
      ...common,
      ffnDim: ggufNumber(f, k('feed_forward_length'), 4 * dim),
      normEps: ggufNumber(f, k('attention.layer_norm_epsilon'), arch === 'bert' ? 1e-12 : 1e-5),
      ropeDims: 0, ropeTheta: 10000, ropeFreqScale: 1, ropeNeox: false,
      normType: 'layer', positional: 'learned', biases: 'all', slidingWindow: 0,
      mlp: arch === 'bert' ? 'gelu_erf' : 'gelu_tanh',
      causal: arch === 'gpt2' || ggufBool(f, k('attention.causal'), false),
      postNorm: arch === 'bert',
      // the token type table's rows (llama.cpp also writes tokenizer.ggml.token_type_count)
      typeVocabSize: arch === 'bert' ? (f.tensorByName.get('token_types.weight')?.dims[1] ?? ggufNumber(f, 'tokenizer.ggml.token_type_count', 0)) : 0,
    };
    validateConfig(cfg, f.path);
    return cfg;
  }
  const moe = ggufMoe(f, arch);
  // keys of other llama-family variants (Granite, Grok, DBRX...) that change the numbers
  for (const key of ['logit_scale', 'embedding_scale', 'residual_scale', 'attention.scale', 'attention.clamp_kqv', 'attention.layer_norm_epsilon'])
    if (ggufGet(f, k(key)) !== undefined) throw new FuselmError('E_UNSUPPORTED', `${f.path}: ${k(key)} is not supported for ${arch} (fuselm would ignore it and compute something else)`);
  const ropeDims = ggufNumber(f, k('rope.dimension_count'), headDim);
  const ropeTheta = ggufNumber(f, k('rope.freq_base'), 10000);
  const cfg: ModelConfig = {
    ...common,
    // Qwen2-MoE: the shared expert's width (Qwen3-MoE: unused, the routed experts' own)
    ffnDim: arch === 'qwen2moe' ? ggufNumber(f, k('expert_shared_feed_forward_length'), ggufNumber(f, k('feed_forward_length'))) : moe?.expertFfnDim ?? ggufNumber(f, k('feed_forward_length')),
    normEps: ggufNumber(f, k('attention.layer_norm_rms_epsilon'), 1e-5),
    ropeDims,
    ropeTheta,
    ...ggufRopeScaling(f, arch, ropeTheta, ropeDims, common.contextLength),
    ...LLAMA_DEFAULTS,
    // llama.cpp's converter permutes llama's q/k rows for adjacent-pair rotation; the others'
    // stay in the checkpoint's order and rotate halves (llama.cpp's NEOX rope type)
    ropeNeox: arch !== 'llama',
    biases: arch === 'qwen2' || arch === 'qwen2moe' ? 'qkv' : 'none',
    // Phi-3 (mini 4k: 2047) keeps its window (as transformers; llama.cpp ignores it); llama.cpp's
    // converter writes none for the others. Gemma-2 without the key: llama.cpp's 4096.
    slidingWindow: ggufNumber(f, k('attention.sliding_window'), arch === 'gemma2' ? 4096 : 0),
    qkNorm: arch === 'qwen3' || arch === 'qwen3moe' || arch === 'gemma3' || undefined,
    moe,
  };
  // Gemma: the converter stores every norm weight as 1 + w (Gemma's RMSNorm scales by 1 + w).
  // GGUF has no query_pre_attn_scalar: llama.cpp takes 1/sqrt(head dim), and for the 27B
  // models (Gemma-2: 46 layers, Gemma-3: 62) 1/sqrt(hidden / heads), as they were trained.
  const gemmaScale = (layers27b: number) => (cfg.nLayers === layers27b ? 1 / Math.sqrt(dim / nHeads) : undefined);
  // the window on layers l % period < period - 1 (Gemma-2: period 2, the even layers; Gemma-3:
  // 6, five sliding then one global; 0: all), as llama.cpp reads sliding_window_pattern
  const pattern = (fallback: number) => {
    const period = ggufNumber(f, k('attention.sliding_window_pattern'), fallback);
    if (!Number.isInteger(period) || period < 0)
      throw new FuselmError('E_FORMAT', `${f.path}: ${k('attention.sliding_window_pattern')} must be an integer >= 0, got ${period}`);
    return Array.from({ length: cfg.nLayers }, (_, l) => period === 0 || l % period < period - 1);
  };
  if (arch === 'gemma') gemma(cfg, {});
  if (arch === 'gemma2') {
    // absent caps take llama.cpp's values, 50 and 30
    gemma(cfg, {
      sandwich: true,
      slidingLayers: pattern(2),
      attnScale: gemmaScale(46),
      attnSoftcap: ggufNumber(f, k('attn_logit_softcapping'), 50),
      finalSoftcap: ggufNumber(f, k('final_logit_softcapping'), 30),
    });
    const swaBase = ggufNumber(f, k('rope.freq_base_swa'), cfg.ropeTheta);
    if (swaBase !== cfg.ropeTheta) cfg.ropeSliding = { theta: swaBase, freqScale: cfg.ropeFreqScale };
  }
  if (arch === 'gemma3') {
    // the sliding layers rotate with base 10000 (or rope.freq_base_swa) and no scaling, the
    // global ones with the file's settings
    gemma(cfg, {
      sandwich: true,
      slidingLayers: pattern(6),
      attnScale: gemmaScale(62),
      attnSoftcap: ggufNumber(f, k('attn_logit_softcapping'), 0),
      finalSoftcap: ggufNumber(f, k('final_logit_softcapping'), 0),
    });
    cfg.ropeSliding = { theta: ggufNumber(f, k('rope.freq_base_swa'), 10000), freqScale: 1 };
  }
  validateConfig(cfg, f.path);
  return cfg;
}

/** The llama-family architectures a GGUF may name. */
const GGUF_ARCHS = ['llama', 'qwen2', 'qwen3', 'qwen2moe', 'qwen3moe', 'phi3', 'gemma', 'gemma2', 'gemma3', 'gpt2', 'bert'] as const;

/**
 * A GGUF's experts as llama.cpp reads them: `expert_count` and `expert_used_count`; the experts'
 * width from `expert_feed_forward_length` (Qwen-MoE) or `feed_forward_length` (Mixtral, arch
 * llama). Routing weights renormalized as llama.cpp's graphs do: llama (Mixtral) and qwen3moe
 * yes, qwen2moe no; Qwen2-MoE's shared expert. qwen2moe and qwen3moe without experts are E_FORMAT.
 */
function ggufMoe(f: GgufFile, arch: string): MoeConfig | undefined {
  const k = (s: string) => `${arch}.${s}`;
  const experts = ggufNumber(f, k('expert_count'), 0);
  const isMoeArch = arch === 'qwen2moe' || arch === 'qwen3moe';
  if (experts === 0 && !isMoeArch) return undefined;
  if (!['llama', 'qwen2moe', 'qwen3moe'].includes(arch))
    throw new FuselmError('E_UNSUPPORTED', `${f.path}: mixture-of-experts ${arch} models (${k('expert_count')} = ${experts}) are not supported (supported: llama, qwen2moe, qwen3moe)`);
  const used = ggufNumber(f, k('expert_used_count'));
  if (!(Number.isInteger(experts) && experts >= 1 && Number.isInteger(used) && used >= 1 && used <= experts))
    throw new FuselmError('E_FORMAT', `${f.path}: ${k('expert_count')} = ${experts} and ${k('expert_used_count')} = ${used} must be integers with 1 <= used <= count`);
  for (const key of ['expert_weights_scale', 'expert_weights_norm', 'expert_gating_func', 'expert_shared_count', 'leading_dense_block_count'])
    if (ggufGet(f, k(key)) !== undefined) throw new FuselmError('E_UNSUPPORTED', `${f.path}: ${k(key)} is not supported for ${arch} (fuselm would ignore it and compute something else)`);
  return {
    experts,
    used,
    // llama.cpp's qwen2moe without the key: feed_forward_length / used
    expertFfnDim: isMoeArch
      ? ggufNumber(f, k('expert_feed_forward_length'), arch === 'qwen2moe' ? ggufNumber(f, k('feed_forward_length')) / used : undefined)
      : ggufNumber(f, k('feed_forward_length')),
    normalize: arch !== 'qwen2moe',
    sharedExpert: arch === 'qwen2moe',
  };
}

/**
 * A GGUF's rope scaling, read as llama.cpp reads it: `rope.scaling.type` (linear when absent, as
 * llama.cpp defaults) with `rope.scaling.factor` (or the older `rope.scale_linear`): none,
 * linear (positions divided by factor), yarn (per-pair divisors from factor,
 * original_context_length and yarn_beta_fast/slow; cos and sin scaled by 1 + 0.1 ln factor),
 * longrope (Phi-3: the rope_factors_short/long tensors, chosen by the context size against
 * original_context_length). `rope.scaling.attn_factor` scales cos and sin with any type. Other
 * types, and yarn settings llama.cpp special-cases (yarn_log_multiplier, yarn_ext_factor), are
 * E_UNSUPPORTED.
 */
function ggufRopeScaling(
  f: GgufFile,
  arch: string,
  theta: number,
  dims: number,
  contextLength: number,
): Pick<ModelConfig, 'ropeFreqScale' | 'ropeFreqFactors' | 'ropeMscale' | 'ropeLongrope'> {
  const k = (s: string) => `${arch}.rope.${s}`;
  const type = ggufString(f, k('scaling.type'), 'linear');
  const factor = ggufNumber(f, k('scaling.factor'), ggufNumber(f, k('scale_linear'), 0));
  const attnFactor = ggufNumber(f, k('scaling.attn_factor'), 1);
  const original = ggufNumber(f, k('scaling.original_context_length'), contextLength);
  const mscale = (m: number) => (m !== 1 ? m : undefined);
  const longrope = f.tensorByName.has('rope_factors_long.weight') || f.tensorByName.has('rope_factors_short.weight');
  for (const key of ['scaling.yarn_log_multiplier', 'scaling.yarn_ext_factor'])
    if (ggufGet(f, k(key)) !== undefined && type === 'yarn')
      throw new FuselmError('E_UNSUPPORTED', `${f.path}: ${k(key)} is not supported yet (fuselm reads yarn's factor, original_context_length, yarn_beta_fast/slow and attn_factor)`);
  // Phi-3's LongRoPE GGUFs carry the factor tensors and no type (so 'linear', with no factor)
  const lr = longrope || type === 'longrope' ? { ropeLongrope: { original } } : {};
  if (type === 'none') return { ropeFreqScale: 1, ropeMscale: mscale(attnFactor), ...lr };
  if (type === 'linear' || type === 'longrope') return { ropeFreqScale: factor > 0 ? 1 / factor : 1, ropeMscale: mscale(attnFactor), ...lr };
  if (type === 'yarn') {
    if (longrope) throw new FuselmError('E_UNSUPPORTED', `${f.path}: yarn rope scaling together with LongRoPE factor tensors is not supported`);
    if (!(factor > 0)) throw new FuselmError('E_FORMAT', `${f.path}: yarn rope scaling needs ${k('scaling.factor')} > 0`);
    const y = yarnFactors(theta, dims, factor, original, ggufNumber(f, k('scaling.yarn_beta_fast'), 32), ggufNumber(f, k('scaling.yarn_beta_slow'), 1));
    return { ropeFreqScale: 1, ropeFreqFactors: y.factors, ropeMscale: mscale(attnFactor * yarnMscale(factor)) };
  }
  throw new FuselmError('E_UNSUPPORTED', `${f.path}: rope scaling '${type}' is not supported yet (supported: none, linear, yarn, longrope)`);
}

/** YaRN's attention factor for a context `factor` times the original (1 + 0.1 ln factor). */
export function yarnMscale(factor: number, m = 1): number {
  return factor <= 1 ? 1 : 0.1 * m * Math.log(factor) + 1;
}

/**
 * YaRN's per-pair divisors (the YaRN paper, as llama.cpp and transformers compute it): pairs that
 * turn fewer than betaSlow times over the original context are interpolated (divided by
 * factor), those turning more than betaFast times are kept, and a linear ramp between the two
 * correction dims mixes them.
 */
export function yarnFactors(
  theta: number,
  dims: number,
  factor: number,
  original: number,
  betaFast: number,
  betaSlow: number,
  truncate = true,
): { factors: number[] } {
  // the pair index at which a frequency turns `turns` times over the original context
  const corr = (turns: number) => (dims * Math.log(original / (turns * 2 * Math.PI))) / (2 * Math.log(theta));
  const lo = Math.max(0, truncate ? Math.floor(corr(betaFast)) : corr(betaFast));
  const hi = Math.min(dims - 1, truncate ? Math.ceil(corr(betaSlow)) : corr(betaSlow));
  const factors = Array.from({ length: dims / 2 }, (_, i) => {
    const keep = 1 - Math.min(1, Math.max(0, (i - lo) / Math.max(0.001, hi - lo))); // 1: extrapolate (keep)
    return 1 / ((1 - keep) / factor + keep);
  });
  return { factors };
}

const ARCHS: Record<string, Architecture> = {
  llama: 'llama', mistral: 'mistral', qwen2: 'qwen2', qwen3: 'qwen3', phi3: 'phi3', gemma: 'gemma', gemma2: 'gemma2',
  gemma3_text: 'gemma3', gpt2: 'gpt2', bert: 'bert',
  // Mixtral is Mistral with experts
  mixtral: 'mistral', qwen2_moe: 'qwen2moe', qwen3_moe: 'qwen3moe',
};

/** Maps a parsed config.json onto ModelConfig; `where` names the file in errors. */
export function configFromHf(j: JsonObject, where: string): ModelConfig {
  const num = (key: string, fallback?: number): number => {
    const v = j[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new FuselmError('E_FORMAT', `${where}: missing '${key}'`);
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new FuselmError('E_FORMAT', `${where}: '${key}' must be a number, got ${shown(v)}`);
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = j[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new FuselmError('E_FORMAT', `${where}: '${key}' must be a boolean, got ${shown(v)}`);
    return v;
  };
  const mt = j.model_type;
  // an own-property lookup: model_type "constructor" or "__proto__" is not an architecture
  const arch = typeof mt === 'string' && Object.prototype.hasOwnProperty.call(ARCHS, mt) ? ARCHS[mt] : undefined;
  if (!arch)
    throw new FuselmError('E_UNSUPPORTED', `${where}: model_type ${typeof mt === 'string' ? JSON.stringify(mt.slice(0, 60)) : typeof mt} is not supported (supported: ${Object.keys(ARCHS).join(', ')})`);
  const name = typeof j._name_or_path === 'string' && j._name_or_path ? j._name_or_path : arch;
  let cfg: ModelConfig;
  if (arch === 'gpt2') {
    const dim = num('n_embd'), nHeads = num('n_head');
    const act = String(j.activation_function ?? 'gelu_new');
    cfg = {
      architecture: arch, name, vocabSize: num('vocab_size'), dim, nLayers: num('n_layer'), nHeads, nKvHeads: nHeads,
      headDim: dim / nHeads, ffnDim: num('n_inner', 4 * dim), normEps: num('layer_norm_epsilon', 1e-5),
      ropeDims: 0, ropeTheta: 10000, ropeFreqScale: 1, ropeNeox: false, contextLength: num('n_positions', num('n_ctx', 1024)),
      normType: 'layer', positional: 'learned', mlp: gelu(act, where), biases: 'all', slidingWindow: 0,
      tiedEmbeddings: bool('tie_word_embeddings', true), causal: true, postNorm: false, typeVocabSize: 0,
    };
  } else if (arch === 'bert') {
    const dim = num('hidden_size'), nHeads = num('num_attention_heads');
    const pet = j.position_embedding_type ?? 'absolute';
    if (pet !== 'absolute') throw new FuselmError('E_UNSUPPORTED', `${where}: position_embedding_type '${pet}' is not supported (supported: absolute)`);
    cfg = {
      architecture: arch, name, vocabSize: num('vocab_size'), dim, nLayers: num('num_hidden_layers'), nHeads, nKvHeads: nHeads,
      headDim: dim / nHeads, ffnDim: num('intermediate_size'), normEps: num('layer_norm_eps', 1e-12),
      ropeDims: 0, ropeTheta: 10000, ropeFreqScale: 1, ropeNeox: false, contextLength: num('max_position_embeddings', 512),
      normType: 'layer', positional: 'learned', mlp: gelu(String(j.hidden_act ?? 'gelu'), where), biases: 'all', slidingWindow: 0,
      tiedEmbeddings: false, causal: false, postNorm: true, typeVocabSize: num('type_vocab_size', 2),
    };
  } else {
    const dim = num('hidden_size'), nHeads = num('num_attention_heads');
    const headDim = num('head_dim', dim / nHeads);
    const isGemma = arch === 'gemma' || arch === 'gemma2' || arch === 'gemma3';
    // transformers' Gemma MLPs read hidden_activation (gelu_pytorch_tanh when unset) and ignore hidden_act
    const act = String(isGemma ? (j.hidden_activation ?? 'gelu_pytorch_tanh') : (j.hidden_act ?? 'silu'));
    if (act !== (isGemma ? 'gelu_pytorch_tanh' : 'silu'))
      throw new FuselmError('E_UNSUPPORTED', `${where}: activation '${act}' is not supported for ${arch} (supported: ${isGemma ? 'gelu_pytorch_tanh' : 'silu'})`);
    if (j.use_bidirectional_attention === true) throw new FuselmError('E_UNSUPPORTED', `${where}: use_bidirectional_attention is not supported`);
    const contextLength = num('max_position_embeddings', 2048);
    const ropeCtx = { where, headDim, theta: num('rope_theta', 10000), partial: num('partial_rotary_factor', 1), contextLength, topOriginal: j.original_max_position_embeddings };
    // Gemma-3 (transformers 5): one rope_parameters entry per layer type
    const perType = arch === 'gemma3' && isObject(j.rope_parameters) && 'full_attention' in j.rope_parameters;
    const rope = perType
      ? hfRope((j.rope_parameters as JsonObject).full_attention, 'rope_parameters.full_attention', ropeCtx)
      : hfRope(j.rope_parameters ?? j.rope_scaling, j.rope_parameters !== undefined ? 'rope_parameters' : 'rope_scaling', ropeCtx);
    const qwen = arch === 'qwen2' || arch === 'qwen3' || arch === 'qwen2moe' || arch === 'qwen3moe';
    const sliding = arch === 'mistral' || arch === 'phi3' || arch === 'gemma2' || arch === 'gemma3' || (qwen && bool('use_sliding_window', false));
    const moe = hfMoe(j, mt as string, where, num, bool);
    cfg = {
      architecture: arch, name, vocabSize: num('vocab_size'), dim, nLayers: num('num_hidden_layers'), nHeads,
      nKvHeads: num('num_key_value_heads', nHeads), headDim, normEps: num('rms_norm_eps', 1e-6),
      // Qwen2-MoE: the shared expert's width; Mixtral and Qwen3-MoE: the experts' own (unused)
      ffnDim: arch === 'qwen2moe' ? num('shared_expert_intermediate_size') : moe ? moe.expertFfnDim : num('intermediate_size'),
      ropeDims: rope.dims, ropeTheta: rope.theta, ropeFreqScale: rope.freqScale, ropeFreqFactors: rope.freqFactors,
      ropeMscale: rope.mscale, ropeLongrope: rope.longrope, ropeMaxContext: rope.maxContext,
      // HF keeps q/k in the checkpoint's order and rotates halves (rotate_half): NeoX pairs
      ropeNeox: true,
      contextLength,
      ...LLAMA_DEFAULTS,
      biases: arch === 'qwen2' || arch === 'qwen2moe' ? 'qkv' : bool('attention_bias', false) ? 'qkv' : 'none',
      slidingWindow: sliding ? num('sliding_window', 0) : 0,
      tiedEmbeddings: bool('tie_word_embeddings', isGemma),
      qkNorm: arch === 'qwen3' || arch === 'qwen3moe' || arch === 'gemma3' || undefined,
      moe,
    };
    // Gemma: norm weights stored as w (Gemma's RMSNorm scales by 1 + w): the loader adds the 1
    const layerTypes = (pattern: (l: number) => boolean) => {
      const types = j.layer_types;
      if (types === undefined || types === null) return Array.from({ length: cfg.nLayers }, (_, l) => pattern(l));
      if (!Array.isArray(types) || types.length !== cfg.nLayers || types.some((t) => t !== 'sliding_attention' && t !== 'full_attention'))
        throw new FuselmError('E_UNSUPPORTED', `${where}: layer_types ${shown(types)} is not supported (one of sliding_attention, full_attention per layer)`);
      return types.map((t) => t === 'sliding_attention');
    };
    const gemmaOpts = {
      attnScale: 1 / Math.sqrt(num('query_pre_attn_scalar', headDim)),
      attnSoftcap: num('attn_logit_softcapping', 0),
      finalSoftcap: num('final_logit_softcapping', 0),
    };
    // Qwen's window, when on, covers the layers from max_window_layers on (or as layer_types says)
    if (qwen && cfg.slidingWindow) cfg.slidingLayers = layerTypes((l) => l >= num('max_window_layers', 28));
    if (arch === 'gemma') gemma(cfg, {});
    if (arch === 'gemma2') gemma(cfg, { sandwich: true, slidingLayers: layerTypes((l) => l % 2 === 0), ...gemmaOpts });
    if (arch === 'gemma3') {
      const pattern = num('sliding_window_pattern', 6);
      gemma(cfg, { sandwich: true, slidingLayers: layerTypes((l) => (l + 1) % pattern !== 0), ...gemmaOpts });
      // the sliding layers rotate with their own base and no scaling
      const local: HfRope = perType
        ? hfRope((j.rope_parameters as JsonObject).sliding_attention, 'rope_parameters.sliding_attention', ropeCtx)
        : { theta: num('rope_local_base_freq', 10000), dims: rope.dims, freqScale: 1 };
      if (local.dims !== rope.dims || local.freqFactors || local.mscale || local.longrope || local.maxContext)
        throw new FuselmError('E_UNSUPPORTED', `${where}: rope scaling on Gemma-3's sliding-window layers is not supported (only a base and a linear factor)`);
      cfg.ropeSliding = { theta: local.theta, freqScale: local.freqScale };
    }
  }
  const pos = j.fuselm_positional;
  if (pos === 'sinusoidal') cfg.positional = 'sinusoidal';
  validateConfig(cfg, where);
  return cfg;
}

/**
 * The Gemma family on top of the llama one: GeGLU, embeddings scaled by sqrt(hidden), tied
 * output; Gemma-2 and -3 add sandwich norms, sliding-window layers and (Gemma-2) soft-capping.
 */
function gemma(
  cfg: ModelConfig,
  o: { sandwich?: boolean; slidingLayers?: boolean[]; attnScale?: number; attnSoftcap?: number; finalSoftcap?: number },
): void {
  cfg.mlp = 'geglu_tanh';
  cfg.sandwichNorms = o.sandwich || undefined;
  cfg.embedScale = Math.fround(Math.sqrt(cfg.dim));
  cfg.slidingLayers = o.slidingLayers;
  if (!o.slidingLayers) cfg.slidingWindow = 0;
  cfg.attnScale = o.attnScale;
  cfg.attnSoftcap = o.attnSoftcap || undefined;
  cfg.finalSoftcap = o.finalSoftcap || undefined;
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

interface HfRope {
  theta: number;
  dims: number;
  freqScale: number;
  freqFactors?: number[];
  mscale?: number;
  longrope?: ModelConfig['ropeLongrope'];
  maxContext?: number;
}

/**
 * The rotary embedding of a llama-family config.json from its scaling object `rp` (named `key`):
 * `rope_parameters` (transformers 5, which also holds rope_theta) or `rope_scaling` with a
 * top-level `rope_theta` (transformers 4). Types, computed as transformers does:
 *  - default; linear (positions divided by factor);
 *  - llama3 (Llama-3.1's per-frequency factors);
 *  - yarn (per-pair divisors, and cos/sin scaled by attention_factor, by default 1 + 0.1 ln factor
 *    or the mscale / mscale_all_dim ratio);
 *  - longrope (Phi-3: short and long per-pair factors, and cos/sin scaled by attention_factor,
 *    by default sqrt(1 + ln(s) / ln(original)) where s = max_position_embeddings / original);
 *  - dynamic (NTK): the plain rotation while the context stays within the original positions,
 *    which is all fuselm runs it for (contextSize beyond it is refused: transformers changes the
 *    base with the sequence length there).
 * Any other type, or a field the type does not define, is an E_UNSUPPORTED naming it: a rope
 * setting that is not understood changes every number.
 */
function hfRope(
  rp: unknown,
  key: string,
  o: { where: string; headDim: number; theta: number; partial: number; contextLength: number; topOriginal: unknown },
): HfRope {
  const { where, headDim } = o;
  // the rotated share of each head (Phi-3: 1; Phi-4-mini: 0.75)
  const rotated = (partial: number) => {
    const dims = Math.round(headDim * partial);
    if (!(partial > 0 && partial <= 1) || dims % 2) throw new FuselmError('E_UNSUPPORTED', `${where}: partial_rotary_factor ${partial} does not give an even number of rotated dims of ${headDim}`);
    return dims;
  };
  if (rp === undefined || rp === null) return { theta: o.theta, dims: rotated(o.partial), freqScale: 1 };
  if (!isObject(rp)) throw new FuselmError('E_FORMAT', `${where}: '${key}' must be an object`);
  const type = rp.rope_type ?? rp.type ?? 'default';
  const has = (name: string) => rp[name] !== undefined && rp[name] !== null;
  const field = (name: string, fallback?: number): number => {
    const v = rp[name];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new FuselmError('E_FORMAT', `${where}: ${key}.${name} must be a positive number, got ${shown(v)}`);
    return v;
  };
  const theta = has('rope_theta') ? field('rope_theta') : o.theta;
  const dims = rotated(has('partial_rotary_factor') ? field('partial_rotary_factor') : o.partial);
  const known: Record<string, string[]> = {
    default: [],
    linear: ['factor'],
    llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
    yarn: ['factor', 'original_max_position_embeddings', 'attention_factor', 'beta_fast', 'beta_slow', 'mscale', 'mscale_all_dim', 'truncate'],
    longrope: ['short_factor', 'long_factor', 'factor', 'attention_factor', 'original_max_position_embeddings'],
    dynamic: ['factor', 'original_max_position_embeddings'],
  };
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(known, type))
    throw new FuselmError('E_UNSUPPORTED', `${where}: ${key} rope_type ${typeof type === 'string' ? JSON.stringify(type.slice(0, 60)) : typeof type} is not supported yet (supported: ${Object.keys(known).join(', ')})`);
  for (const k of Object.keys(rp))
    if (!['rope_type', 'type', 'rope_theta', 'partial_rotary_factor', ...known[type]].includes(k))
      throw new FuselmError('E_UNSUPPORTED', `${where}: ${key}.${k} (${shown(rp[k])}) is not supported with rope_type '${type}'`);
  const plain = { theta, dims, freqScale: 1 };
  // the pretrained context: in the scaling object (transformers 5), else top-level (Phi-3), else max_position_embeddings
  const topOriginal = typeof o.topOriginal === 'number' && o.topOriginal > 0 ? o.topOriginal : undefined;
  const original = () => field('original_max_position_embeddings', topOriginal ?? o.contextLength);
  switch (type) {
    case 'linear':
      return { ...plain, freqScale: 1 / field('factor') };
    case 'llama3':
      return { ...plain, freqFactors: llama3FreqFactors(theta, dims, field('factor'), field('low_freq_factor'), field('high_freq_factor'), field('original_max_position_embeddings')) };
    case 'yarn': {
      const factor = field('factor');
      if (rp.truncate !== undefined && typeof rp.truncate !== 'boolean') throw new FuselmError('E_FORMAT', `${where}: ${key}.truncate must be a boolean`);
      const m = has('mscale') ? field('mscale') : 0, mAll = has('mscale_all_dim') ? field('mscale_all_dim') : 0;
      const mscale = has('attention_factor') ? field('attention_factor') : m && mAll ? yarnMscale(factor, m) / yarnMscale(factor, mAll) : yarnMscale(factor);
      const y = yarnFactors(theta, dims, factor, original(), field('beta_fast', 32), field('beta_slow', 1), rp.truncate !== false);
      return { ...plain, freqFactors: y.factors, mscale: mscale !== 1 ? mscale : undefined };
    }
    case 'longrope': {
      const factors = (name: string) => {
        const v = rp[name];
        if (!Array.isArray(v) || v.length !== dims / 2 || v.some((x) => typeof x !== 'number' || !(x > 0)))
          throw new FuselmError('E_FORMAT', `${where}: ${key}.${name} must be ${dims / 2} positive numbers (one per rotated pair)`);
        return v as number[];
      };
      const orig = original();
      // transformers scales by the ratio of the context to the original one where the config names both
      const s = topOriginal !== undefined || has('original_max_position_embeddings') ? o.contextLength / orig : field('factor', 1);
      const mscale = has('attention_factor') ? field('attention_factor') : s <= 1 ? 1 : Math.sqrt(1 + Math.log(s) / Math.log(orig));
      return { ...plain, mscale: mscale !== 1 ? mscale : undefined, longrope: { original: orig, short: factors('short_factor'), long: factors('long_factor') } };
    }
    case 'dynamic':
      field('factor');
      return { ...plain, maxContext: original() };
    default:
      return plain;
  }
}

/**
 * Llama-3.1's rope scaling as per-pair factors (the angle of pair i is divided by factor i, as
 * llama.cpp's rope_freqs): wavelengths shorter than original / high are kept, longer than
 * original / low are stretched by `factor`, and those between are interpolated smoothly.
 */
export function llama3FreqFactors(theta: number, dims: number, factor: number, low: number, high: number, original: number): number[] {
  if (!(high > low)) throw new FuselmError('E_FORMAT', `llama3 rope scaling needs high_freq_factor > low_freq_factor, got ${high} and ${low}`);
  const lowWavelen = original / low, highWavelen = original / high;
  return Array.from({ length: dims / 2 }, (_, i) => {
    const wavelen = (2 * Math.PI) / Math.pow(theta, (-2 * i) / dims);
    if (wavelen < highWavelen) return 1;
    if (wavelen > lowWavelen) return factor;
    const smooth = (original / wavelen - low) / (high - low);
    return 1 / ((1 - smooth) / factor + smooth);
  });
}

/**
 * The experts of a Mixtral, Qwen2-MoE or Qwen3-MoE config.json (undefined for the others), as
 * transformers runs them: Mixtral renormalizes the top-k weights; the Qwens as norm_topk_prob
 * says (Qwen2-MoE's default false, Qwen3-MoE's false, its released configs true). A Qwen layer
 * l has experts iff l is not in mlp_only_layers and (l + 1) % decoder_sparse_step == 0; the
 * others a dense MLP of intermediate_size. The keys read: num_local_experts / num_experts,
 * num_experts_per_tok, intermediate_size (Mixtral's experts; the Qwens' dense layers),
 * moe_intermediate_size, shared_expert_intermediate_size (Qwen2-MoE), norm_topk_prob,
 * decoder_sparse_step, mlp_only_layers; the others of these configs change nothing at inference
 * (router_aux_loss_coef, output_router_logits, router_jitter_noise: training only).
 */
function hfMoe(
  j: JsonObject,
  modelType: string,
  where: string,
  num: (key: string, fallback?: number) => number,
  bool: (key: string, fallback: boolean) => boolean,
): MoeConfig | undefined {
  if (modelType === 'mixtral')
    return { experts: num('num_local_experts'), used: num('num_experts_per_tok'), expertFfnDim: num('intermediate_size'), normalize: true, sharedExpert: false };
  if (modelType !== 'qwen2_moe' && modelType !== 'qwen3_moe') return undefined;
  return {
    experts: num('num_experts'),
    used: num('num_experts_per_tok'),
    expertFfnDim: num('moe_intermediate_size'),
    normalize: bool('norm_topk_prob', false),
    sharedExpert: modelType === 'qwen2_moe',
    dense: hfDenseLayers(j, where, num),
  };
}

/** The dense layers among a Qwen-MoE config's sparse ones (MoeConfig.dense); undefined when there are none. */
function hfDenseLayers(j: JsonObject, where: string, num: (key: string, fallback?: number) => number): MoeConfig['dense'] {
  const step = num('decoder_sparse_step', 1);
  if (!Number.isInteger(step) || step < 1) throw new FuselmError('E_FORMAT', `${where}: 'decoder_sparse_step' must be an integer >= 1, got ${step}`);
  const only = j.mlp_only_layers ?? [];
  if (!Array.isArray(only) || only.some((l) => !Number.isInteger(l) || (l as number) < 0))
    throw new FuselmError('E_FORMAT', `${where}: 'mlp_only_layers' must be a list of layer indices, got ${shown(only)}`);
  const layers = Array.from({ length: num('num_hidden_layers') }, (_, l) => only.includes(l) || (l + 1) % step !== 0);
  return layers.some((d) => d) ? { layers, ffnDim: num('intermediate_size') } : undefined;
}

function gelu(act: string, where: string): ModelConfig['mlp'] {
  if (act === 'gelu_new' || act === 'gelu_pytorch_tanh' || act === 'gelu_fast') return 'gelu_tanh';
  if (act === 'gelu') return 'gelu_erf';
  throw new FuselmError('E_UNSUPPORTED', `${where}: activation '${act}' is not supported (supported: gelu, gelu_new)`);
}

export function validateConfig(c: ModelConfig, where: string): void {
  const bad = (what: string) => {
    throw new FuselmError('E_FORMAT', `${where}: invalid model config: ${what}`);
  };
  for (const key of ['vocabSize', 'dim', 'nLayers', 'nHeads', 'nKvHeads', 'ffnDim', 'contextLength'] as const)
    if (!Number.isInteger(c[key]) || c[key] < 1) bad(`${key} must be a positive integer, got ${c[key]}`);
  if (!Number.isInteger(c.headDim)) bad(`dim ${c.dim} is not a multiple of the head count ${c.nHeads}`);
  if (c.nHeads % c.nKvHeads) bad(`head count ${c.nHeads} is not a multiple of the KV head count ${c.nKvHeads}`);
  if (!Number.isInteger(c.slidingWindow) || c.slidingWindow < 0) bad(`sliding window must be an integer >= 0, got ${c.slidingWindow}`);
  if (!(c.normEps > 0)) bad(`norm epsilon must be > 0, got ${c.normEps}`);
  const m = c.moe;
  if (m) {
    for (const key of ['experts', 'used', 'expertFfnDim'] as const)
      if (!Number.isInteger(m[key]) || m[key] < 1) bad(`expert ${key} must be a positive integer, got ${m[key]}`);
    if (m.used > m.experts) bad(`${m.used} experts used per token of ${m.experts}`);
    if (m.dense && !(Number.isInteger(m.dense.ffnDim) && m.dense.ffnDim >= 1)) bad(`the dense layers' MLP width must be a positive integer, got ${m.dense.ffnDim}`);
  }
  if (c.positional !== 'rope') return;
  if (c.ropeDims < 2 || c.ropeDims % 2 || c.ropeDims > c.headDim) bad(`rope dimension count ${c.ropeDims} must be even and <= head dim ${c.headDim}`);
  if (!(c.ropeTheta > 0)) bad(`rope base must be > 0, got ${c.ropeTheta}`);
}
