/**
 * Hugging Face model folders: config.json mapped onto the one normalized ModelConfig (llama,
 * mistral, qwen2, gpt2, bert), generation_config.json kept as the model's generation defaults,
 * and the safetensors weights (see safetensors.ts). Unknown architectures and unsupported
 * options (rope scaling other than linear) are E_UNSUPPORTED; missing or ill-typed fields are
 * E_FORMAT naming the file and the key.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { FuselmError } from '../errors.js';
import { type Architecture, LLAMA_DEFAULTS, type ModelConfig, validateConfig } from '../model/config.js';

type Json = Record<string, unknown>;

/** generation_config.json as Hugging Face writes it (the keys fuselm's sampler can use, and the rest). */
export interface GenerationConfig {
  bos_token_id?: number | number[];
  eos_token_id?: number | number[];
  pad_token_id?: number;
  do_sample?: boolean;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number;
  typical_p?: number;
  repetition_penalty?: number;
  max_new_tokens?: number;
  max_length?: number;
  [key: string]: unknown;
}

export async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function readJsonFile(file: string, optional: boolean): Promise<Json | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (optional && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FuselmError('E_IO', `${file}: ${(e as Error).message}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FuselmError('E_FORMAT', `${file}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FuselmError('E_FORMAT', `${file}: not a JSON object`);
  return json as Json;
}

const ARCHS: Record<string, Architecture> = {
  llama: 'llama', mistral: 'mistral', qwen2: 'qwen2', gpt2: 'gpt2', bert: 'bert',
};

/** Maps a parsed config.json onto ModelConfig; `where` names the file in errors. */
export function configFromHf(j: Json, where: string): ModelConfig {
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
    const act = String(j.hidden_act ?? 'silu');
    if (act !== 'silu') throw new FuselmError('E_UNSUPPORTED', `${where}: hidden_act '${act}' is not supported for ${arch} (supported: silu)`);
    let freqScale = 1;
    const rs = j.rope_scaling as Json | null | undefined;
    if (rs !== undefined && rs !== null) {
      const type = rs.type ?? rs.rope_type;
      if (type === 'linear' && typeof rs.factor === 'number' && rs.factor > 0) freqScale = 1 / rs.factor;
      else if (type !== 'default')
        throw new FuselmError('E_UNSUPPORTED', `${where}: rope_scaling ${JSON.stringify(rs)} is not supported yet (supported: linear)`);
    }
    const window = arch === 'mistral' || (arch === 'qwen2' && bool('use_sliding_window', false)) ? num('sliding_window', 0) : 0;
    cfg = {
      architecture: arch, name, vocabSize: num('vocab_size'), dim, nLayers: num('num_hidden_layers'), nHeads,
      nKvHeads: num('num_key_value_heads', nHeads), headDim, ffnDim: num('intermediate_size'), normEps: num('rms_norm_eps', 1e-6),
      ropeDims: headDim, ropeTheta: num('rope_theta', 10000), ropeFreqScale: freqScale,
      // HF keeps q/k in the checkpoint's order and rotates halves (rotate_half): NeoX pairs
      ropeNeox: true,
      contextLength: num('max_position_embeddings', 2048),
      ...LLAMA_DEFAULTS,
      biases: arch === 'qwen2' ? 'qkv' : bool('attention_bias', false) ? 'qkv' : 'none',
      slidingWindow: window,
      tiedEmbeddings: bool('tie_word_embeddings', false),
    };
  }
  const pos = j.fuselm_positional;
  if (pos === 'sinusoidal') cfg.positional = 'sinusoidal';
  validateConfig(cfg, where);
  return cfg;
}

function gelu(act: string, where: string): ModelConfig['mlp'] {
  if (act === 'gelu_new' || act === 'gelu_pytorch_tanh' || act === 'gelu_fast') return 'gelu_tanh';
  if (act === 'gelu') return 'gelu_erf';
  throw new FuselmError('E_UNSUPPORTED', `${where}: activation '${act}' is not supported (supported: gelu, gelu_new)`);
}

export interface HfFolder {
  dir: string;
  config: ModelConfig;
  /** config.json as written. */
  rawConfig: Json;
  /** generation_config.json, or {} when the folder has none. */
  generationConfig: GenerationConfig;
}

/** Reads config.json and generation_config.json of a Hugging Face model folder. */
export async function readHfFolder(dir: string): Promise<HfFolder> {
  const cfgPath = path.join(dir, 'config.json');
  const rawConfig = (await readJsonFile(cfgPath, false))!;
  const config = configFromHf(rawConfig, cfgPath);
  const generationConfig = ((await readJsonFile(path.join(dir, 'generation_config.json'), true)) ?? {}) as GenerationConfig;
  return { dir, config, rawConfig, generationConfig };
}
