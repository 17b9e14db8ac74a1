/**
 * One normalized model config for every architecture, read from a file's own metadata: a
 * GGUF's keys (configFromGguf) or a Hugging Face config.json (configFromHf). Model code reads
 * only this, never raw GGUF keys or config.json fields. Unknown architectures and unsupported
 * options are E_UNSUPPORTED; missing or ill-typed fields are E_FORMAT naming the file and key.
 */
import { FuselmError } from '../errors.js';
import { type GgufFile, ggufBool, ggufNumber, ggufString } from '../formats/gguf.js';
import type { JsonObject } from '../formats/hf.js';

export type Architecture = 'llama' | 'mistral' | 'qwen2' | 'phi3' | 'gemma2' | 'gpt2' | 'bert';

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
   * Per-pair rope frequency divisors from a config.json's scaling (llama3); a GGUF carries them
   * as the rope_freqs.weight tensor instead. Absent: none.
   */
  ropeFreqFactors?: number[];
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
  if (arch !== 'llama' && arch !== 'qwen2' && arch !== 'phi3' && arch !== 'gemma2' && arch !== 'gpt2' && arch !== 'bert')
    throw new FuselmError('E_UNSUPPORTED', `${f.path}: architecture '${arch}' is not supported yet (supported: llama, qwen2, phi3, gemma2, gpt2, bert)`);
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
  const experts = ggufNumber(f, k('expert_count'), 0);
  if (experts > 0)
    throw new FuselmError('E_UNSUPPORTED', `${f.path}: mixture-of-experts models (${k('expert_count')} = ${experts}) are not supported yet`);
  const scalingType = ggufString(f, k('rope.scaling.type'), 'none');
  const scalingFactor = ggufNumber(f, k('rope.scaling.factor'), 0);
  const cfg: ModelConfig = {
    ...common,
    ffnDim: ggufNumber(f, k('feed_forward_length')),
    normEps: ggufNumber(f, k('attention.layer_norm_rms_epsilon'), 1e-5),
    ropeDims: ggufNumber(f, k('rope.dimension_count'), headDim),
    ropeTheta: ggufNumber(f, k('rope.freq_base'), 10000),
    ropeFreqScale: scalingType === 'linear' && scalingFactor > 0 ? 1 / scalingFactor : 1,
    ...LLAMA_DEFAULTS,
    // llama.cpp's converter permutes llama's q/k rows for adjacent-pair rotation; Qwen2's and
    // Phi-3's stay in the checkpoint's order and rotate halves (llama.cpp's NEOX rope type)
    ropeNeox: arch !== 'llama',
    biases: arch === 'qwen2' ? 'qkv' : 'none',
    // Phi-3 (mini 4k: 2047) keeps its window (as transformers; llama.cpp ignores it); llama.cpp's
    // converter writes none for the others. Gemma-2 without the key: llama.cpp's 4096.
    slidingWindow: ggufNumber(f, k('attention.sliding_window'), arch === 'gemma2' ? 4096 : 0),
  };
  if (arch === 'gemma2') {
    // the converter stores the norm weights as 1 + w (Gemma's RMSNorm scales by 1 + w). GGUF
    // has no query_pre_attn_scalar: llama.cpp takes 1/sqrt(head dim), and for the 27B (46
    // layers) 1/sqrt(hidden / heads), as that model was trained. Absent keys take llama.cpp's
    // values: caps 50 and 30; the window on layers l % period < period - 1 (period 2: the even
    // layers; 0: all).
    const period = ggufNumber(f, k('attention.sliding_window_pattern'), 2);
    if (!Number.isInteger(period) || period < 0)
      throw new FuselmError('E_FORMAT', `${f.path}: ${k('attention.sliding_window_pattern')} must be an integer >= 0, got ${period}`);
    const swaBase = ggufNumber(f, k('rope.freq_base_swa'), cfg.ropeTheta);
    if (swaBase !== cfg.ropeTheta)
      throw new FuselmError('E_UNSUPPORTED', `${f.path}: ${k('rope.freq_base_swa')} (${swaBase}) different from ${k('rope.freq_base')} (${cfg.ropeTheta}) is not supported yet`);
    gemma2(cfg, {
      slidingLayers: Array.from({ length: cfg.nLayers }, (_, l) => period === 0 || l % period < period - 1),
      attnScale: cfg.nLayers === 46 ? 1 / Math.sqrt(dim / nHeads) : undefined,
      attnSoftcap: ggufNumber(f, k('attn_logit_softcapping'), 50),
      finalSoftcap: ggufNumber(f, k('final_logit_softcapping'), 30),
    });
  }
  if (scalingType !== 'none' && scalingType !== 'linear')
    throw new FuselmError('E_UNSUPPORTED', `${f.path}: rope scaling '${scalingType}' is not supported yet (supported: none, linear)`);
  validateConfig(cfg, f.path);
  return cfg;
}

const ARCHS: Record<string, Architecture> = {
  llama: 'llama', mistral: 'mistral', qwen2: 'qwen2', phi3: 'phi3', gemma2: 'gemma2', gpt2: 'gpt2', bert: 'bert',
};

/** Maps a parsed config.json onto ModelConfig; `where` names the file in errors. */
export function configFromHf(j: JsonObject, where: string): ModelConfig {
  const num = (key: string, fallback?: number): number => {
    const v = j[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new FuselmError('E_FORMAT', `${where}: missing '${key}'`);
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new FuselmError('E_FORMAT', `${where}: '${key}' must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = j[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new FuselmError('E_FORMAT', `${where}: '${key}' must be a boolean, got ${JSON.stringify(v)}`);
    return v;
  };
  const mt = j.model_type;
  const arch = typeof mt === 'string' ? ARCHS[mt] : undefined;
  if (!arch)
    throw new FuselmError('E_UNSUPPORTED', `${where}: model_type ${JSON.stringify(mt)} is not supported (supported: ${Object.keys(ARCHS).join(', ')})`);
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
    const gemma = arch === 'gemma2';
    const act = String(gemma ? (j.hidden_activation ?? j.hidden_act ?? 'gelu_pytorch_tanh') : (j.hidden_act ?? 'silu'));
    if (act !== (gemma ? 'gelu_pytorch_tanh' : 'silu'))
      throw new FuselmError('E_UNSUPPORTED', `${where}: activation '${act}' is not supported for ${arch} (supported: ${gemma ? 'gelu_pytorch_tanh' : 'silu'})`);
    if (j.use_bidirectional_attention === true) throw new FuselmError('E_UNSUPPORTED', `${where}: use_bidirectional_attention is not supported`);
    const rope = hfRope(j, where, headDim, num('rope_theta', 10000), num('partial_rotary_factor', 1));
    const window = arch === 'mistral' || arch === 'phi3' || gemma || (arch === 'qwen2' && bool('use_sliding_window', false)) ? num('sliding_window', 0) : 0;
    cfg = {
      architecture: arch, name, vocabSize: num('vocab_size'), dim, nLayers: num('num_hidden_layers'), nHeads,
      nKvHeads: num('num_key_value_heads', nHeads), headDim, ffnDim: num('intermediate_size'), normEps: num('rms_norm_eps', 1e-6),
      ropeDims: rope.dims, ropeTheta: rope.theta, ropeFreqScale: rope.freqScale, ropeFreqFactors: rope.freqFactors,
      // HF keeps q/k in the checkpoint's order and rotates halves (rotate_half): NeoX pairs
      ropeNeox: true,
      contextLength: num('max_position_embeddings', 2048),
      ...LLAMA_DEFAULTS,
      biases: arch === 'qwen2' ? 'qkv' : bool('attention_bias', false) ? 'qkv' : 'none',
      slidingWindow: window,
      tiedEmbeddings: bool('tie_word_embeddings', gemma),
    };
    if (gemma) {
      // norm weights stored as w (Gemma's RMSNorm scales by 1 + w): the loader adds the 1
      const types = j.layer_types;
      if (types !== undefined && types !== null &&
          (!Array.isArray(types) || types.length !== cfg.nLayers || types.some((t) => t !== 'sliding_attention' && t !== 'full_attention')))
        throw new FuselmError('E_UNSUPPORTED', `${where}: layer_types ${JSON.stringify(types)} is not supported (one of sliding_attention, full_attention per layer)`);
      gemma2(cfg, {
        slidingLayers: Array.isArray(types) ? types.map((t) => t === 'sliding_attention') : Array.from({ length: cfg.nLayers }, (_, l) => l % 2 === 0),
        attnScale: 1 / Math.sqrt(num('query_pre_attn_scalar', headDim)),
        attnSoftcap: num('attn_logit_softcapping', 0),
        finalSoftcap: num('final_logit_softcapping', 0),
      });
    }
  }
  const pos = j.fuselm_positional;
  if (pos === 'sinusoidal') cfg.positional = 'sinusoidal';
  validateConfig(cfg, where);
  return cfg;
}

/** Gemma-2 on top of the llama family: GeGLU, sandwich norms, scaled embeddings, soft-capping. */
function gemma2(
  cfg: ModelConfig,
  o: { slidingLayers: boolean[]; attnScale?: number; attnSoftcap: number; finalSoftcap: number },
): void {
  cfg.mlp = 'geglu_tanh';
  cfg.sandwichNorms = true;
  cfg.embedScale = Math.fround(Math.sqrt(cfg.dim));
  cfg.slidingLayers = o.slidingLayers;
  cfg.attnScale = o.attnScale;
  cfg.attnSoftcap = o.attnSoftcap || undefined;
  cfg.finalSoftcap = o.finalSoftcap || undefined;
}

/**
 * The rotary embedding of a llama-family config.json: `rope_parameters` (transformers 5) or
 * `rope_scaling` with a top-level `rope_theta` (transformers 4). Types: default, linear
 * (positions divided by factor) and llama3 (Llama-3.1's per-frequency factors). Any other
 * type, or a field of these the type does not define, is an E_UNSUPPORTED naming it: a rope
 * setting that is not understood changes every number.
 */
function hfRope(
  j: JsonObject,
  where: string,
  headDim: number,
  topTheta: number,
  topPartial: number,
): { theta: number; dims: number; freqScale: number; freqFactors?: number[] } {
  const rp = (j.rope_parameters ?? j.rope_scaling) as JsonObject | null | undefined;
  const key = j.rope_parameters !== undefined ? 'rope_parameters' : 'rope_scaling';
  // the rotated share of each head (Phi-3: 1; Phi-4-mini: 0.75)
  const rotated = (partial: number) => {
    const dims = Math.round(headDim * partial);
    if (!(partial > 0 && partial <= 1) || dims % 2) throw new FuselmError('E_UNSUPPORTED', `${where}: partial_rotary_factor ${partial} does not give an even number of rotated dims of ${headDim}`);
    return dims;
  };
  if (rp === undefined || rp === null) return { theta: topTheta, dims: rotated(topPartial), freqScale: 1 };
  if (typeof rp !== 'object' || Array.isArray(rp)) throw new FuselmError('E_FORMAT', `${where}: '${key}' must be an object`);
  const type = rp.rope_type ?? rp.type ?? 'default';
  const field = (name: string): number => {
    const v = rp[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new FuselmError('E_FORMAT', `${where}: ${key}.${name} must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const theta = rp.rope_theta !== undefined ? field('rope_theta') : topTheta;
  const dims = rotated(rp.partial_rotary_factor !== undefined ? field('partial_rotary_factor') : topPartial);
  const known: Record<string, string[]> = {
    default: [],
    linear: ['factor'],
    llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
  };
  if (typeof type !== 'string' || !(type in known))
    throw new FuselmError('E_UNSUPPORTED', `${where}: ${key} rope_type ${JSON.stringify(type)} is not supported yet (supported: ${Object.keys(known).join(', ')})`);
  for (const k of Object.keys(rp))
    if (!['rope_type', 'type', 'rope_theta', 'partial_rotary_factor', ...known[type]].includes(k))
      throw new FuselmError('E_UNSUPPORTED', `${where}: ${key}.${k} (${JSON.stringify(rp[k])}) is not supported with rope_type '${type}'`);
  if (type === 'linear') return { theta, dims, freqScale: 1 / field('factor') };
  if (type === 'llama3') return { theta, dims, freqScale: 1, freqFactors: llama3FreqFactors(theta, dims, field('factor'), field('low_freq_factor'), field('high_freq_factor'), field('original_max_position_embeddings')) };
  return { theta, dims, freqScale: 1 };
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
  if (c.positional !== 'rope') return;
  if (c.ropeDims < 2 || c.ropeDims % 2 || c.ropeDims > c.headDim) bad(`rope dimension count ${c.ropeDims} must be even and <= head dim ${c.headDim}`);
  if (!(c.ropeTheta > 0)) bad(`rope base must be > 0, got ${c.ropeTheta}`);
}
