/**
 * One normalized model config for every architecture, read from a file's own metadata. Model
 * code reads only this, never raw GGUF keys.
 */
import { FuselmError } from '../errors.js';
import { type GgufFile, ggufNumber, ggufString } from '../formats/gguf.js';

export interface ModelConfig {
  architecture: 'llama';
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
  /** NeoX pairing (i, i + n/2) instead of llama's adjacent pairs. */
  ropeNeox: boolean;
  /** Context length the model was trained for. */
  contextLength: number;
}

/** Reads the config of a llama-architecture GGUF (llama.cpp's key names). */
export function configFromGguf(f: GgufFile): ModelConfig {
  const arch = ggufString(f, 'general.architecture');
  if (arch !== 'llama')
    throw new FuselmError('E_UNSUPPORTED', `${f.path}: architecture '${arch}' is not supported yet (supported: llama)`);
  const k = (s: string) => `${arch}.${s}`;
  const dim = ggufNumber(f, k('embedding_length'));
  const nHeads = ggufNumber(f, k('attention.head_count'));
  const nKvHeads = ggufNumber(f, k('attention.head_count_kv'), nHeads);
  const embd = f.tensorByName.get('token_embd.weight');
  const tokens = f.metadata.get('tokenizer.ggml.tokens');
  const vocabSize = embd?.dims[1] ?? (Array.isArray(tokens) ? tokens.length : 0);
  const headDim = dim / nHeads;
  const scalingType = ggufString(f, k('rope.scaling.type'), 'none');
  const scalingFactor = ggufNumber(f, k('rope.scaling.factor'), 0);
  const cfg: ModelConfig = {
    architecture: 'llama',
    name: ggufString(f, 'general.name', arch),
    vocabSize,
    dim,
    nLayers: ggufNumber(f, k('block_count')),
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: ggufNumber(f, k('feed_forward_length')),
    normEps: ggufNumber(f, k('attention.layer_norm_rms_epsilon'), 1e-5),
    ropeDims: ggufNumber(f, k('rope.dimension_count'), headDim),
    ropeTheta: ggufNumber(f, k('rope.freq_base'), 10000),
    ropeFreqScale: scalingType === 'linear' && scalingFactor > 0 ? 1 / scalingFactor : 1,
    ropeNeox: false,
    contextLength: ggufNumber(f, k('context_length'), 2048),
  };
  if (scalingType !== 'none' && scalingType !== 'linear')
    throw new FuselmError('E_UNSUPPORTED', `${f.path}: rope scaling '${scalingType}' is not supported yet (supported: none, linear)`);
  validateConfig(cfg, f.path);
  return cfg;
}

function validateConfig(c: ModelConfig, where: string): void {
  const bad = (what: string) => {
    throw new FuselmError('E_FORMAT', `${where}: invalid model config: ${what}`);
  };
  for (const key of ['vocabSize', 'dim', 'nLayers', 'nHeads', 'nKvHeads', 'ffnDim', 'contextLength'] as const)
    if (!Number.isInteger(c[key]) || c[key] < 1) bad(`${key} must be a positive integer, got ${c[key]}`);
  if (!Number.isInteger(c.headDim)) bad(`dim ${c.dim} is not a multiple of the head count ${c.nHeads}`);
  if (c.nHeads % c.nKvHeads) bad(`head count ${c.nHeads} is not a multiple of the KV head count ${c.nKvHeads}`);
  if (c.ropeDims < 2 || c.ropeDims % 2 || c.ropeDims > c.headDim) bad(`rope dimension count ${c.ropeDims} must be even and <= head dim ${c.headDim}`);
  if (!(c.normEps > 0)) bad(`norm epsilon must be > 0, got ${c.normEps}`);
  if (!(c.ropeTheta > 0)) bad(`rope base must be > 0, got ${c.ropeTheta}`);
}
