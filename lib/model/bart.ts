/**
 * BART folders (BartForConditionalGeneration: config.json and safetensors) into
 * EncoderDecoderConfig and EncDecWeights (lib/model/encoder-decoder.ts runs them).
 *
 * Numbers: token embeddings (× sqrt(d_model) with scale_embedding) plus learned positions read
 * at position + 2 (BART's offset), then a LayerNorm (layernorm_embedding); post-norm layers
 * (LayerNorm eps 1e-5) with biases on every projection; q·k scaled by head_dim^-0.5; GELU
 * (erf, or the tanh form for gelu_new); the LM head tied to the embeddings unless
 * tie_word_embeddings is false (then lm_head.weight), plus final_logits_bias. mBART's pre-norm variants (normalize_before,
 * add_final_layer_norm) and other activations are E_UNSUPPORTED.
 */
import type { NativeTensor } from '../../bindings.js';
import { FuselmError, shown } from '../errors.js';
import type { GenerationConfig, JsonObject } from '../formats/hf.js';
import type { EncDecWeights, EncoderDecoderConfig } from './encoder-decoder.js';
import type { HfTensors } from './hf-weights.js';
import { hfFields } from './t5.js';

const BART_ACTS: Record<string, 'gelu' | 'gelu_tanh'> = { gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh' };

/** `gen`: generation_config.json, whose forced_bos/eos_token_id override config.json's (as transformers reads them). */
export function bartConfigFromHf(j: JsonObject, gen: GenerationConfig, where: string): EncoderDecoderConfig {
  const F = hfFields(j, where);
  for (const key of ['normalize_before', 'add_final_layer_norm'])
    if (F.bool(key, false)) throw new FuselmError('E_UNSUPPORTED', `${where}: ${key} (mBART's pre-norm layout) is not supported`);
  const act = F.str('activation_function', 'gelu');
  if (!Object.prototype.hasOwnProperty.call(BART_ACTS, act)) throw new FuselmError('E_UNSUPPORTED', `${where}: activation_function ${shown(act)} is not supported (supported: ${Object.keys(BART_ACTS).join(', ')})`);
  const dim = F.int('d_model'), nHeads = F.int('encoder_attention_heads');
  for (const [a, b] of [['encoder_attention_heads', 'decoder_attention_heads'], ['encoder_ffn_dim', 'decoder_ffn_dim']])
    if (F.int(a) !== F.int(b)) throw new FuselmError('E_UNSUPPORTED', `${where}: ${a} ${F.int(a)} different from ${b} ${F.int(b)} is not supported`);
  if (dim % nHeads) throw new FuselmError('E_FORMAT', `${where}: d_model ${dim} is not a multiple of encoder_attention_heads ${nHeads}`);
  const positions = F.int('max_position_embeddings');
  const forced = (key: string): number | undefined => {
    const v = gen[key] ?? j[key];
    if (v === undefined || v === null) return undefined;
    if (!Number.isInteger(v) || (v as number) < 0) throw new FuselmError('E_FORMAT', `${where}: '${key}' must be a token id, got ${shown(v)}`);
    return v as number;
  };
  return {
    architecture: 'bart', vocabSize: F.int('vocab_size'), dim, nHeads, headDim: dim / nHeads, ffnDim: F.int('encoder_ffn_dim'),
    encoderLayers: F.int('encoder_layers'), decoderLayers: F.int('decoder_layers'), normEps: 1e-5,
    act: BART_ACTS[act], gated: false, attnScale: (dim / nHeads) ** -0.5, embedScale: F.bool('scale_embedding', false) ? Math.sqrt(dim) : 1,
    outputScale: 1, tiedEmbeddings: F.bool('tie_word_embeddings', true), positionRows: positions + 2, decoderStartId: F.int('decoder_start_token_id'),
    forcedBosId: forced('forced_bos_token_id'), forcedEosId: forced('forced_eos_token_id'),
    maxEncoderTokens: positions, maxDecoderTokens: positions,
  };
}

export async function loadBartHfWeights(T: HfTensors, c: EncoderDecoderConfig): Promise<EncDecWeights> {
  const D = c.dim, F = c.ffnDim;
  const all: NativeTensor[] = [];
  const m = async (n: string, shape: number[]) => (all.push(await T.matrix(n, shape)), all[all.length - 1]);
  const v = async (n: string, len: number) => (all.push(await T.vector(n, len)), all[all.length - 1]);
  const proj = async (p: string, out: number, inp: number) => [await m(p + '.weight', [out, inp]), await v(p + '.bias', out)] as const;
  const attn = async (p: string) => {
    const [wq, bq] = await proj(p + 'q_proj', D, D), [wk, bk] = await proj(p + 'k_proj', D, D);
    const [wv, bv] = await proj(p + 'v_proj', D, D), [wo, bo] = await proj(p + 'out_proj', D, D);
    return { wq, bq, wk, bk, wv, bv, wo, bo };
  };
  const layer = async (p: string) => {
    const [wUp, bUp] = await proj(p + 'fc1', F, D), [wDown, bDown] = await proj(p + 'fc2', D, F);
    return {
      ...(await attn(p + 'self_attn.')), attnNorm: await v(p + 'self_attn_layer_norm.weight', D), attnNormB: await v(p + 'self_attn_layer_norm.bias', D),
      wUp, bUp, wDown, bDown, ffnNorm: await v(p + 'final_layer_norm.weight', D), ffnNormB: await v(p + 'final_layer_norm.bias', D),
    };
  };
  try {
    const embed = await m('shared.weight', [c.vocabSize, D]);
    const w: EncDecWeights = {
      embed, lmHead: c.tiedEmbeddings ? embed : await m('lm_head.weight', [c.vocabSize, D]),
      finalLogitsBias: T.has('final_logits_bias') ? await v('final_logits_bias', c.vocabSize) : undefined,
      encPos: await m('encoder.embed_positions.weight', [c.positionRows!, D]), decPos: await m('decoder.embed_positions.weight', [c.positionRows!, D]),
      encEmbNorm: await v('encoder.layernorm_embedding.weight', D), encEmbNormB: await v('encoder.layernorm_embedding.bias', D),
      decEmbNorm: await v('decoder.layernorm_embedding.weight', D), decEmbNormB: await v('decoder.layernorm_embedding.bias', D),
      enc: [], dec: [],
    };
    for (let l = 0; l < c.encoderLayers; l++) w.enc.push(await layer(`encoder.layers.${l}.`));
    for (let l = 0; l < c.decoderLayers; l++) {
      const p = `decoder.layers.${l}.`;
      const x = await attn(p + 'encoder_attn.');
      w.dec.push({
        ...(await layer(p)), cq: x.wq, cbq: x.bq, ck: x.wk, cbk: x.bk, cv: x.wv, cbv: x.bv, co: x.wo, cbo: x.bo,
        crossNorm: await v(p + 'encoder_attn_layer_norm.weight', D), crossNormB: await v(p + 'encoder_attn_layer_norm.bias', D),
      });
    }
    return w;
  } catch (e) {
    for (const t of all) t.free();
    throw e;
  }
}
