/**
 * T5 files: config.json (T5ForConditionalGeneration) with its safetensors, and llama.cpp's
 * GGUF `t5` (enc.blk.N.*, dec.blk.N.*, attn_rel_b in the first block of each stack,
 * cross_attn_*, t5.* keys), into EncoderDecoderConfig and EncDecWeights
 * (lib/model/encoder-decoder.ts runs them).
 *
 * Numbers: RMS norms without mean or bias; q·k unscaled; the FFN is gated-gelu (T5 v1.1:
 * gelu_new(x·wi_0) * (x·wi_1)), or a plain one (T5 v1.0's ReLU, or gelu); any other activation
 * is E_UNSUPPORTED. The LM head's input is scaled by d_model^-0.5
 * when the embeddings are tied, unless the config says otherwise (transformers 5's
 * scale_decoder_outputs). llama.cpp's GGUF holds no relative_attention_max_distance (llama.cpp
 * always uses 128) and no activation name: a gate tensor means gelu (tanh form, ggml's GELU),
 * none means ReLU. The LM head of a tied GGUF is not scaled, as in llama.cpp.
 */
import type { NativeTensor } from '../../bindings.js';
import { FuselmError, shown } from '../errors.js';
import { type GgufFile, ggufGet, ggufNumber } from '../formats/gguf.js';
import type { JsonObject } from '../formats/hf.js';
import { readF32Rows, tensorFromF32 } from '../tensor.js';
import type { EncDecLayer, EncDecWeights, EncoderDecoderConfig } from './encoder-decoder.js';
import { expandRelBias } from './encoder-decoder.js';
import type { HfTensors } from './hf-weights.js';
import { type GgufMappings, loadGgufTensor, type WeightDtype } from './weights.js';

/** Typed readers of config.json fields: a missing required one or a wrong type is E_FORMAT naming it. */
export function hfFields(j: JsonObject, where: string) {
  const get = (key: string) => (Object.prototype.hasOwnProperty.call(j, key) ? j[key] : undefined);
  return {
    num(key: string, fallback?: number): number {
      const v = get(key);
      if (v === undefined || v === null) {
        if (fallback === undefined) throw new FuselmError('E_FORMAT', `${where}: missing '${key}'`);
        return fallback;
      }
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new FuselmError('E_FORMAT', `${where}: '${key}' must be a number, got ${shown(v)}`);
      return v;
    },
    int(key: string, fallback?: number): number {
      const v = this.num(key, fallback);
      if (!Number.isInteger(v) || v < 0) throw new FuselmError('E_FORMAT', `${where}: '${key}' must be an integer >= 0, got ${v}`);
      return v;
    },
    bool(key: string, fallback: boolean): boolean {
      const v = get(key);
      if (v === undefined || v === null) return fallback;
      if (typeof v !== 'boolean') throw new FuselmError('E_FORMAT', `${where}: '${key}' must be a boolean, got ${shown(v)}`);
      return v;
    },
    str(key: string, fallback: string): string {
      const v = get(key);
      if (v === undefined || v === null) return fallback;
      if (typeof v !== 'string') throw new FuselmError('E_FORMAT', `${where}: '${key}' must be a string, got ${shown(v)}`);
      return v;
    },
    has: (key: string) => get(key) !== undefined && get(key) !== null,
  };
}

/** The largest relative_attention_max_distance taken (T5 uses 128). */
const MAX_REL_DISTANCE = 1 << 16;

/** T5's activations by transformers' names: gelu_new / gelu_pytorch_tanh are the tanh form. */
const T5_ACTS: Record<string, 'gelu' | 'gelu_tanh' | 'relu'> = { gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', gelu: 'gelu', relu: 'relu' };

export function t5ConfigFromHf(j: JsonObject, where: string, maxTokens: number): EncoderDecoderConfig {
  const F = hfFields(j, where);
  const dim = F.int('d_model'), nHeads = F.int('num_heads'), headDim = F.int('d_kv');
  // transformers derives the activation from feed_forward_proj ("gated-gelu" is gelu_new), whatever dense_act_fn says
  const ffp = F.str('feed_forward_proj', 'relu');
  const gated = ffp.startsWith('gated-');
  const act = Object.prototype.hasOwnProperty.call(T5_ACTS, ffp.replace(/^gated-/, '')) ? (ffp === 'gated-gelu' ? 'gelu_tanh' : T5_ACTS[ffp.replace(/^gated-/, '')]) : undefined;
  if (!act) throw new FuselmError('E_UNSUPPORTED', `${where}: feed_forward_proj ${shown(ffp)} is not supported (supported: relu, gelu, gelu_new and their gated- forms)`);
  const tied = F.bool('tie_word_embeddings', true);
  const scaled = F.has('scale_decoder_outputs') ? F.bool('scale_decoder_outputs', false) : tied;
  const relBuckets = F.int('relative_attention_num_buckets', 32), relMaxDistance = F.int('relative_attention_max_distance', 128);
  // the bias table is expanded to 2 * max_distance + 1 entries per head: a hostile value must not size it
  if (relBuckets < 4 || relMaxDistance < 2 || relMaxDistance > MAX_REL_DISTANCE)
    throw new FuselmError('E_FORMAT', `${where}: relative_attention_num_buckets ${relBuckets} / relative_attention_max_distance ${relMaxDistance} are out of range (buckets >= 4, distance 2..${MAX_REL_DISTANCE})`);
  return {
    architecture: 't5', vocabSize: F.int('vocab_size'), dim, nHeads, headDim, ffnDim: F.int('d_ff'),
    encoderLayers: F.int('num_layers'), decoderLayers: F.int('num_decoder_layers', F.int('num_layers')),
    normEps: F.num('layer_norm_epsilon', 1e-6), act, gated, attnScale: 1, embedScale: 1, outputScale: scaled ? dim ** -0.5 : 1, tiedEmbeddings: tied,
    relBuckets, relMaxDistance, decoderStartId: F.int('decoder_start_token_id', F.int('pad_token_id', 0)),
    maxEncoderTokens: maxTokens, maxDecoderTokens: maxTokens,
  };
}

/** llama.cpp's t5 keys; the activation is the gate tensor's presence (see the module comment). */
export function t5ConfigFromGguf(f: GgufFile, maxTokens: number): EncoderDecoderConfig {
  const k = (key: string) => `t5.${key}`;
  const dim = ggufNumber(f, k('embedding_length')), nHeads = ggufNumber(f, k('attention.head_count'));
  const headDim = ggufNumber(f, k('attention.key_length'), dim / nHeads);
  if (ggufNumber(f, k('attention.value_length'), headDim) !== headDim)
    throw new FuselmError('E_UNSUPPORTED', `${f.path}: ${k('attention.value_length')} different from ${k('attention.key_length')} is not supported`);
  const emb = f.tensorByName.get('token_embd.weight');
  if (!emb) throw new FuselmError('E_FORMAT', `${f.path}: tensor 'token_embd.weight' is missing`);
  const layers = ggufNumber(f, k('block_count'));
  const gated = f.tensorByName.has('enc.blk.0.ffn_gate.weight');
  return {
    architecture: 't5', vocabSize: emb.dims[1], dim, nHeads, headDim, ffnDim: ggufNumber(f, k('feed_forward_length')),
    encoderLayers: layers, decoderLayers: ggufNumber(f, k('decoder_block_count'), layers),
    normEps: ggufNumber(f, k('attention.layer_norm_rms_epsilon')), act: gated ? 'gelu_tanh' : 'relu', gated, attnScale: 1, embedScale: 1, outputScale: 1, tiedEmbeddings: !f.tensorByName.has('output.weight'),
    relBuckets: ggufNumber(f, k('attention.relative_buckets_count')), relMaxDistance: 128,
    decoderStartId: ggufNumber(f, k('decoder_start_token_id'), ggufGet(f, 'tokenizer.ggml.padding_token_id') as number | undefined ?? 0),
    maxEncoderTokens: maxTokens, maxDecoderTokens: maxTokens,
  };
}

/** Collects what it loads, so a failure frees everything loaded before it. */
class Loaded {
  readonly all: NativeTensor[] = [];
  keep<T extends NativeTensor>(t: T): T {
    this.all.push(t);
    return t;
  }
  free(): void {
    for (const t of this.all) t.free();
  }
}

/** A relative position table [buckets, nHeads] (f32 values) expanded for the stack's direction. */
function relBias(table: Float32Array, c: EncoderDecoderConfig, bidirectional: boolean): NativeTensor {
  const R = c.relMaxDistance!;
  return tensorFromF32('f32', [c.nHeads, 2 * R + 1], expandRelBias(table, c.nHeads, bidirectional, c.relBuckets!, R));
}

export async function loadT5HfWeights(T: HfTensors, c: EncoderDecoderConfig): Promise<EncDecWeights> {
  const D = c.dim, A = c.nHeads * c.headDim, F = c.ffnDim;
  const got = new Loaded();
  const m = async (n: string, shape: number[]) => got.keep(await T.matrix(n, shape));
  const v = async (n: string, len: number) => got.keep(await T.vector(n, len));
  const table = async (stack: string) => {
    const t = await T.vector(`${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, c.relBuckets! * c.nHeads);
    try {
      return relBias(readF32Rows(t, 0, 1), c, stack === 'encoder');
    } finally {
      t.free();
    }
  };
  const attn = async (p: string) => ({ wq: await m(p + 'q.weight', [A, D]), wk: await m(p + 'k.weight', [A, D]), wv: await m(p + 'v.weight', [A, D]), wo: await m(p + 'o.weight', [D, A]) });
  const ffn = async (p: string) => c.gated
    ? { wGate: await m(p + 'wi_0.weight', [F, D]), wUp: await m(p + 'wi_1.weight', [F, D]), wDown: await m(p + 'wo.weight', [D, F]) }
    : { wUp: await m(p + 'wi.weight', [F, D]), wDown: await m(p + 'wo.weight', [D, F]) };
  try {
    const embed = await m('shared.weight', [c.vocabSize, D]);
    const w: EncDecWeights = {
      embed, lmHead: c.tiedEmbeddings ? embed : await m('lm_head.weight', [c.vocabSize, D]),
      encRelBias: got.keep(await table('encoder')), decRelBias: got.keep(await table('decoder')),
      encFinalNorm: await v('encoder.final_layer_norm.weight', D), decFinalNorm: await v('decoder.final_layer_norm.weight', D),
      enc: [], dec: [],
    };
    for (let l = 0; l < c.encoderLayers; l++) {
      const p = `encoder.block.${l}.layer.`;
      w.enc.push({
        attnNorm: await v(p + '0.layer_norm.weight', D), ...(await attn(p + '0.SelfAttention.')),
        ffnNorm: await v(p + '1.layer_norm.weight', D), ...(await ffn(p + '1.DenseReluDense.')),
      });
    }
    for (let l = 0; l < c.decoderLayers; l++) {
      const p = `decoder.block.${l}.layer.`;
      const cross = await attn(p + '1.EncDecAttention.');
      w.dec.push({
        attnNorm: await v(p + '0.layer_norm.weight', D), ...(await attn(p + '0.SelfAttention.')),
        crossNorm: await v(p + '1.layer_norm.weight', D), cq: cross.wq, ck: cross.wk, cv: cross.wv, co: cross.wo,
        ffnNorm: await v(p + '2.layer_norm.weight', D), ...(await ffn(p + '2.DenseReluDense.')),
      } satisfies EncDecLayer);
    }
    return w;
  } catch (e) {
    got.free();
    throw e;
  }
}

export async function loadT5GgufWeights(f: GgufFile, c: EncoderDecoderConfig, dtype: WeightDtype, mappings?: GgufMappings): Promise<EncDecWeights> {
  const D = c.dim, A = c.nHeads * c.headDim, F = c.ffnDim;
  const got = new Loaded();
  const read = new Set<string>();
  const t = async (n: string, shape: number[]) => (read.add(n), got.keep(await loadGgufTensor(f, n, shape, { dtype, mappings })));
  const table = async (stack: string) => {
    read.add(`${stack}.blk.0.attn_rel_b.weight`);
    const raw = await loadGgufTensor(f, `${stack}.blk.0.attn_rel_b.weight`, [c.relBuckets!, c.nHeads]);
    try {
      if (raw.dtype !== 'f32') throw new FuselmError('E_UNSUPPORTED', `${f.path}: tensor '${stack}.blk.0.attn_rel_b.weight' is ${raw.dtype} (supported: f32)`);
      return relBias(readF32Rows(raw, 0, c.relBuckets!).slice(), c, stack === 'enc');
    } finally {
      raw.free();
    }
  };
  const attn = async (p: string, kind: string) => ({
    wq: await t(`${p}${kind}_q.weight`, [A, D]), wk: await t(`${p}${kind}_k.weight`, [A, D]), wv: await t(`${p}${kind}_v.weight`, [A, D]), wo: await t(`${p}${kind}_o.weight`, [D, A]),
  });
  const ffn = async (p: string) => ({
    ...(c.gated ? { wGate: await t(p + 'ffn_gate.weight', [F, D]) } : {}), wUp: await t(p + 'ffn_up.weight', [F, D]), wDown: await t(p + 'ffn_down.weight', [D, F]),
  });
  try {
    const embed = await t('token_embd.weight', [c.vocabSize, D]);
    const w: EncDecWeights = {
      embed, lmHead: c.tiedEmbeddings ? embed : await t('output.weight', [c.vocabSize, D]),
      encRelBias: got.keep(await table('enc')), decRelBias: got.keep(await table('dec')),
      encFinalNorm: await t('enc.output_norm.weight', [D]), decFinalNorm: await t('dec.output_norm.weight', [D]),
      enc: [], dec: [],
    };
    for (let l = 0; l < c.encoderLayers; l++) {
      const p = `enc.blk.${l}.`;
      w.enc.push({ attnNorm: await t(p + 'attn_norm.weight', [D]), ...(await attn(p, 'attn')), ffnNorm: await t(p + 'ffn_norm.weight', [D]), ...(await ffn(p)) });
    }
    for (let l = 0; l < c.decoderLayers; l++) {
      const p = `dec.blk.${l}.`;
      const cross = await attn(p, 'cross_attn');
      w.dec.push({
        attnNorm: await t(p + 'attn_norm.weight', [D]), ...(await attn(p, 'attn')),
        crossNorm: await t(p + 'cross_attn_norm.weight', [D]), cq: cross.wq, ck: cross.wk, cv: cross.wv, co: cross.wo,
        ffnNorm: await t(p + 'ffn_norm.weight', [D]), ...(await ffn(p)),
      });
    }
    // a tensor the model would not read means a variant it does not know (a later block's own bias table, say)
    const extra = f.tensors.find((x) => !read.has(x.name));
    if (extra) throw new FuselmError('E_UNSUPPORTED', `${f.path}: tensor ${extra.name} of this t5 model is not supported (fuselm would not read it)`);
    return w;
  } catch (e) {
    got.free();
    throw e;
  }
}
