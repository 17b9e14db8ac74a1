/**
 * `fuselm convert`: a Hugging Face decoder folder (config.json, safetensors in F32, F16 or
 * BF16, tokenizer.model / tokenizer.json) as a llama-family GGUF laid out as llama.cpp's
 * convert_hf_to_gguf.py lays it out (its tensor names, dims innermost first, metadata keys):
 *
 * - llama / mistral: q and k rows permuted from HF's rotate-half order to the adjacent pairs
 *   llama.cpp's rope rotates (per head: first half and second half interleaved);
 * - Gemma 1/2/3: norm weights stored as 1 + w (HF's Gemma norms multiply by 1 + w);
 * - Phi-3: the fused qkv_proj and gate_up_proj kept fused (attn_qkv, ffn_up); LongRoPE factors
 *   as rope_factors_short/long tensors with attn_factor and the original context;
 * - Llama-3.1 rope scaling as the rope_freqs tensor; YaRN and linear as rope.scaling.* keys;
 * - the tokenizer as llama.cpp's converter writes it: a SentencePiece vocabulary
 *   (tokenizer.ggml.model "llama": pieces, scores and types from tokenizer.model) when the folder
 *   has tokenizer.model, else a byte-level BPE one from tokenizer.json ("gpt2": tokens, types,
 *   merges, the pre-tokenizer recognized as GPT-2's, Llama-3's or Qwen2's); special ids and
 *   add_bos/eos from tokenizer_config.json, the chat template. A byte-fallback tokenizer.json
 *   without tokenizer.model (its piece scores are not in the JSON) and unknown pre-tokenizers are
 *   E_UNSUPPORTED, as llama.cpp's converter refuses what it cannot write faithfully.
 *
 * The model is a ModelSource: metadata plus tensors read one at a time when the writer asks,
 * so a large model never sits in memory; lib/tools/quantize.ts writes it in any file type.
 * test/model/hf-twins.test.ts holds the result to the GGUFs llama.cpp's converter made of
 * the same folders, tensor for tensor and tokenizer key for key.
 */
import { readFile, open } from 'node:fs/promises';
import path from 'node:path';
import { FuselmError } from '../errors.js';
import { GgmlType } from '../formats/ggml-types.js';
import { type GgufMetaEntry, gv } from '../formats/gguf.js';
import { toF32 } from '../formats/quants.js';
import { type SafetensorsTensor, openSafetensorsFolder } from '../formats/safetensors.js';
import { llama3FreqFactors } from '../model/config.js';
import { syntheticVocab } from './synthetic-vocab.js';

/** A tensor of a model being converted or quantized, read when asked. */
export interface SourceTensor {
  name: string;
  /** Innermost first, as GGUF stores them. */
  dims: readonly number[];
  type: GgmlType;
  nbytes: number;
  /** The bytes as stored (in `type`). */
  raw(): Promise<Uint8Array>;
  /** The values as f32. */
  f32(): Promise<Float32Array>;
  /** Rows start .. start + count - 1 as f32 (a row: dims[0] values), where the source can read part of a tensor. */
  rowsF32?(start: number, count: number): Promise<Float32Array>;
}

export interface ModelSource {
  metadata: GgufMetaEntry[];
  alignment?: number;
  tensors: SourceTensor[];
  close(): Promise<void>;
}

export interface HfSourceOptions {
  /**
   * 'folder' (default): the folder's tokenizer (tokenizer.model or tokenizer.json), an
   * E_UNSUPPORTED without one; 'synthetic': a made-up SentencePiece-style vocabulary of the config's size, for test
   * folders that have no tokenizer.
   */
  vocab?: 'folder' | 'synthetic';
}

/** The HF model types converted, and the GGUF architecture each becomes. */
const ARCHS: Record<string, string> = {
  llama: 'llama', mistral: 'llama', qwen2: 'qwen2', qwen3: 'qwen3', phi3: 'phi3', gemma: 'gemma', gemma2: 'gemma2', gemma3_text: 'gemma3',
};

type Json = Record<string, any>;

const OMITTED: Record<string, Array<'head_dim' | 'rope_dims' | 'rope_base'>> = {
  qwen2: ['head_dim', 'rope_dims'],
  phi3: ['head_dim'],
  gemma2: ['rope_dims', 'rope_base'],
};

async function readJson(file: string, required: boolean): Promise<Json | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FuselmError('E_IO', `${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new FuselmError('E_FORMAT', `${file}: not valid JSON: ${(e as Error).message}`);
  }
}

/** A safetensors tensor as f32 values (F32, F16, BF16). */
async function readF32(t: SafetensorsTensor): Promise<Float32Array> {
  const type = t.dtype === 'F32' ? GgmlType.F32 : t.dtype === 'F16' ? GgmlType.F16 : t.dtype === 'BF16' ? GgmlType.BF16 : undefined;
  if (type === undefined) throw new FuselmError('E_UNSUPPORTED', `${t.file}: tensor '${t.name}' has dtype ${t.dtype} (convert reads F32, F16 and BF16)`);
  const bytes = new Uint8Array(t.nbytes);
  const fh = await open(t.file, 'r');
  try {
    const { bytesRead } = await fh.read(bytes, 0, t.nbytes, t.offset);
    if (bytesRead !== t.nbytes) throw new FuselmError('E_FORMAT', `${t.file}: tensor '${t.name}' runs past the end of the file`);
  } finally {
    await fh.close();
  }
  return toF32(type, bytes, t.shape.reduce((a, b) => a * b, 1), `${t.file}: tensor '${t.name}'`);
}

/** An F32 tensor computed when read. */
function f32Tensor(name: string, shape: readonly number[], values: () => Promise<Float32Array>): SourceTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return {
    name,
    dims: [...shape].reverse(),
    type: GgmlType.F32,
    nbytes: 4 * n,
    f32: values,
    async raw() {
      const x = await values();
      return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    },
  };
}

/** Opens an HF decoder folder as the GGUF llama.cpp's converter would write (in F32). */
export async function hfSource(dir: string, o: HfSourceOptions = {}): Promise<ModelSource> {
  const cfg = (await readJson(path.join(dir, 'config.json'), true))!;
  const mt = String(cfg.model_type);
  const arch = ARCHS[mt];
  if (!arch) throw new FuselmError('E_UNSUPPORTED', `${dir}: model_type '${mt}' is not converted (supported: ${Object.keys(ARCHS).join(', ')})`);
  const st = await openSafetensorsFolder(dir);
  const info = (n: string) => {
    const t = st.tensors.get(n);
    if (!t) throw new FuselmError('E_FORMAT', `${dir}: tensor '${n}' is missing`);
    return t;
  };
  const has = (n: string) => st.tensors.has(n);
  const H = cfg.num_attention_heads as number, KV = (cfg.num_key_value_heads ?? H) as number;
  const hd = (cfg.head_dim ?? cfg.hidden_size / H) as number;
  const gemma = arch.startsWith('gemma');
  // llama.cpp's llama graph rotates adjacent pairs: each head's rows (first half, second half)
  // interleaved
  const permute = (x: Float32Array, [R, C]: number[], heads: number): Float32Array => {
    if (arch !== 'llama') return x;
    const half = R / heads / 2, out = new Float32Array(R * C);
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < half; j++)
        for (const s of [0, 1]) out.set(x.subarray((h * 2 * half + s * half + j) * C, (h * 2 * half + s * half + j + 1) * C), (h * 2 * half + 2 * j + s) * C);
    return out;
  };
  const plain = (gguf: string, hf: string, f: (x: Float32Array, shape: number[]) => Float32Array = (x) => x) => {
    const t = info(hf);
    return f32Tensor(gguf, t.shape, async () => f(await readF32(t), t.shape));
  };
  const norm = (gguf: string, hf: string) => plain(gguf, hf, (x) => (gemma ? x.map((v) => v + 1) : x));
  const tensors: SourceTensor[] = [plain('token_embd.weight', 'model.embed_tokens.weight')];
  const sandwich = arch === 'gemma2' || arch === 'gemma3';
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`, b = `blk.${l}.`;
    const opt = (hf: string, gguf: string, f?: (x: Float32Array, shape: number[]) => Float32Array) => (has(p + hf) ? [plain(b + gguf, p + hf, f)] : []);
    const optNorm = (hf: string, gguf: string) => (has(p + hf) ? [norm(b + gguf, p + hf)] : []);
    tensors.push(
      norm(b + 'attn_norm.weight', p + 'input_layernorm.weight'),
      ...opt('self_attn.qkv_proj.weight', 'attn_qkv.weight'),
      ...opt('self_attn.q_proj.weight', 'attn_q.weight', (x, s) => permute(x, s, H)),
      ...opt('self_attn.k_proj.weight', 'attn_k.weight', (x, s) => permute(x, s, KV)),
      ...opt('self_attn.v_proj.weight', 'attn_v.weight'),
      ...opt('self_attn.q_proj.bias', 'attn_q.bias'),
      ...opt('self_attn.k_proj.bias', 'attn_k.bias'),
      ...opt('self_attn.v_proj.bias', 'attn_v.bias'),
      ...optNorm('self_attn.q_norm.weight', 'attn_q_norm.weight'),
      ...optNorm('self_attn.k_norm.weight', 'attn_k_norm.weight'),
      plain(b + 'attn_output.weight', p + 'self_attn.o_proj.weight'),
      ...(sandwich
        ? [
            norm(b + 'post_attention_norm.weight', p + 'post_attention_layernorm.weight'),
            norm(b + 'ffn_norm.weight', p + 'pre_feedforward_layernorm.weight'),
            norm(b + 'post_ffw_norm.weight', p + 'post_feedforward_layernorm.weight'),
          ]
        : [norm(b + 'ffn_norm.weight', p + 'post_attention_layernorm.weight')]),
      ...opt('mlp.gate_up_proj.weight', 'ffn_up.weight'),
      ...opt('mlp.gate_proj.weight', 'ffn_gate.weight'),
      ...opt('mlp.up_proj.weight', 'ffn_up.weight'),
      plain(b + 'ffn_down.weight', p + 'mlp.down_proj.weight'),
    );
  }
  tensors.push(norm('output_norm.weight', 'model.norm.weight'));
  if (has('lm_head.weight') && !(cfg.tie_word_embeddings ?? gemma)) tensors.push(plain('output.weight', 'lm_head.weight'));

  const k = (s: string) => `${arch}.${s}`;
  const rp = (cfg.rope_parameters?.full_attention ?? cfg.rope_parameters ?? cfg.rope_scaling ?? {}) as Json;
  const ropeType = rp.rope_type ?? rp.type ?? 'default';
  const dims = Math.round(hd * (rp.partial_rotary_factor ?? cfg.partial_rotary_factor ?? 1));
  const theta = rp.rope_theta ?? cfg.rope_theta ?? 10000;
  // keys some of llama.cpp's converters leave out when they hold the default the loader derives
  // (head size hidden/heads, rope over the whole head, base 10000): left out here too, then
  const omits = new Set(OMITTED[arch] ?? []);
  const meta: GgufMetaEntry[] = [
    { key: 'general.architecture', ...gv.str(arch) },
    // (not naming the family: llama.cpp special-cases phi-3 vocabularies by general.name)
    { key: 'general.type', ...gv.str('model') },
    { key: 'general.name', ...gv.str(path.basename(path.resolve(dir))) },
    { key: k('context_length'), ...gv.u32(cfg.max_position_embeddings ?? 2048) },
    { key: k('embedding_length'), ...gv.u32(cfg.hidden_size) },
    { key: k('block_count'), ...gv.u32(cfg.num_hidden_layers) },
    { key: k('feed_forward_length'), ...gv.u32(cfg.intermediate_size) },
    { key: k('attention.head_count'), ...gv.u32(H) },
    { key: k('attention.head_count_kv'), ...gv.u32(KV) },
    ...(omits.has('head_dim') && hd === cfg.hidden_size / H
      ? []
      : [
          { key: k('attention.key_length'), ...gv.u32(hd) },
          { key: k('attention.value_length'), ...gv.u32(hd) },
        ]),
    { key: k('attention.layer_norm_rms_epsilon'), ...gv.f32(cfg.rms_norm_eps ?? 1e-6) },
    ...(omits.has('rope_dims') && dims === hd ? [] : [{ key: k('rope.dimension_count'), ...gv.u32(dims) }]),
    ...(omits.has('rope_base') && theta === 10000 ? [] : [{ key: k('rope.freq_base'), ...gv.f32(theta) }]),
    { key: 'general.file_type', ...gv.u32(0) },
    ...(o.vocab === 'synthetic' ? syntheticVocab(cfg.vocab_size) : await folderVocab(dir, arch, cfg.vocab_size)),
  ];
  if (arch === 'llama') meta.push({ key: k('vocab_size'), ...gv.u32(cfg.vocab_size) });
  // Phi-3's converter writes the window always (0 for none); Gemma's when there is one
  if (arch === 'phi3' || (sandwich && cfg.sliding_window)) meta.push({ key: k('attention.sliding_window'), ...gv.u32(cfg.sliding_window ?? 0) });
  if (arch === 'gemma2')
    meta.push({ key: k('attn_logit_softcapping'), ...gv.f32(cfg.attn_logit_softcapping) }, { key: k('final_logit_softcapping'), ...gv.f32(cfg.final_logit_softcapping) });
  const vector = (name: string, v: ArrayLike<number>) => f32Tensor(name, [v.length], async () => Float32Array.from(v));
  if (ropeType === 'linear') meta.push({ key: k('rope.scaling.type'), ...gv.str('linear') }, { key: k('rope.scaling.factor'), ...gv.f32(rp.factor) });
  if (ropeType === 'llama3')
    tensors.push(vector('rope_freqs.weight', llama3FreqFactors(rp.rope_theta ?? cfg.rope_theta ?? 10000, dims, rp.factor, rp.low_freq_factor, rp.high_freq_factor, rp.original_max_position_embeddings)));
  if (ropeType === 'yarn')
    meta.push(
      { key: k('rope.scaling.type'), ...gv.str('yarn') },
      { key: k('rope.scaling.factor'), ...gv.f32(rp.factor) },
      { key: k('rope.scaling.original_context_length'), ...gv.u32(rp.original_max_position_embeddings ?? cfg.max_position_embeddings) },
    );
  if (ropeType === 'longrope') {
    const orig = rp.original_max_position_embeddings ?? cfg.original_max_position_embeddings;
    const s = cfg.max_position_embeddings / orig;
    tensors.push(vector('rope_factors_long.weight', rp.long_factor), vector('rope_factors_short.weight', rp.short_factor));
    meta.push(
      { key: k('rope.scaling.attn_factor'), ...gv.f32(s <= 1 ? 1 : Math.sqrt(1 + Math.log(s) / Math.log(orig))) },
      { key: k('rope.scaling.original_context_length'), ...gv.u32(orig) },
    );
  } else if (arch === 'phi3' && cfg.original_max_position_embeddings !== undefined) {
    meta.push({ key: k('rope.scaling.original_context_length'), ...gv.u32(cfg.original_max_position_embeddings) });
  } else if (!['default', 'linear', 'llama3', 'yarn'].includes(ropeType)) {
    throw new FuselmError('E_UNSUPPORTED', `${dir}: rope scaling '${ropeType}' is not converted`);
  }
  return { metadata: meta, tensors, close: async () => undefined };
}

// ---------------------------------------------------------------------------------------------
// The tokenizer, as llama.cpp's converter writes a SentencePiece vocabulary.

/** SentencePiece piece types (sentencepiece_model.proto), which GGUF's token_type reuses. */
const SP_NORMAL = 1, SP_CONTROL = 3, SP_USER_DEFINED = 4, SP_UNUSED = 5;

interface SpModel {
  pieces: Array<{ piece: string; score: number; type: number }>;
  /** normalizer_spec.add_dummy_prefix (true unless the model says otherwise). */
  addDummyPrefix: boolean;
}

/**
 * The pieces of a SentencePiece tokenizer.model: a protobuf ModelProto whose field 1 repeats
 * SentencePiece {1: piece, 2: score (f32), 3: type (enum, default NORMAL)} and whose field 3 is
 * the NormalizerSpec (field 3 there: add_dummy_prefix). Other fields are skipped.
 */
export function parseSentencePieceModel(b: Uint8Array, where: string): SpModel {
  let pos = 0;
  const bad = (why: string): never => {
    throw new FuselmError('E_FORMAT', `${where}: not a SentencePiece model (${why} at byte ${pos})`);
  };
  const varint = (end: number): number => {
    let v = 0, mul = 1;
    for (;;) {
      if (pos >= end) bad('truncated varint');
      const c = b[pos++];
      v += (c & 0x7f) * mul;
      if (c < 0x80) return v;
      mul *= 128;
      if (mul > 2 ** 63) bad('varint too long');
    }
  };
  // Calls onField(field, wireType, valueStart, valueEnd | varint value) for each field in [start, end).
  const fields = (start: number, end: number, onField: (field: number, wire: number, at: number, len: number, v: number) => void) => {
    pos = start;
    while (pos < end) {
      const key = varint(end);
      const field = Math.floor(key / 8), wire = key & 7;
      if (wire === 0) onField(field, wire, pos, 0, varint(end));
      else if (wire === 2) {
        const len = varint(end);
        if (pos + len > end) bad('field runs past its message');
        const at = pos;
        pos += len;
        const save = pos;
        onField(field, wire, at, len, 0);
        pos = save;
      } else if (wire === 5) {
        if (pos + 4 > end) bad('truncated fixed32');
        const at = pos;
        pos += 4;
        onField(field, wire, at, 4, 0);
      } else if (wire === 1) {
        pos += 8;
        if (pos > end) bad('truncated fixed64');
      } else bad(`wire type ${wire}`);
    }
  };
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const dec = new TextDecoder('utf-8', { fatal: false });
  const pieces: SpModel['pieces'] = [];
  let addDummyPrefix = true;
  fields(0, b.length, (field, wire, at, len) => {
    if (field === 1 && wire === 2) {
      const p = { piece: '', score: 0, type: SP_NORMAL };
      fields(at, at + len, (f, w, a, l, v) => {
        if (f === 1 && w === 2) p.piece = dec.decode(b.subarray(a, a + l));
        else if (f === 2 && w === 5) p.score = dv.getFloat32(a, true);
        else if (f === 3 && w === 0) p.type = v;
      });
      pieces.push(p);
    } else if (field === 3 && wire === 2) {
      fields(at, at + len, (f, w, _a, _l, v) => {
        if (f === 3 && w === 0) addDummyPrefix = v !== 0;
      });
    }
  });
  if (pieces.length === 0) bad('no pieces');
  return { pieces, addDummyPrefix };
}

/**
 * The tokenizer.* entries llama.cpp's converter writes for a folder: a SentencePiece vocabulary
 * from tokenizer.model when there is one, else a byte-level BPE one (tokenizer.ggml.model
 * "gpt2") from tokenizer.json. `vocabSize`: the embedding's rows (the vocabulary is padded to it).
 */
export async function folderVocab(dir: string, arch: string, vocabSize: number): Promise<GgufMetaEntry[]> {
  let spBytes: Uint8Array;
  try {
    spBytes = await readFile(path.join(dir, 'tokenizer.model'));
  } catch {
    return bpeVocab(dir, vocabSize);
  }
  const sp = parseSentencePieceModel(spBytes, path.join(dir, 'tokenizer.model'));
  const tokens = sp.pieces.map((p) => p.piece);
  const scores = sp.pieces.map((p) => p.score);
  // llama.cpp keeps unknown, control, unused and byte pieces' types; user-defined ones are normal
  const types = sp.pieces.map((p) => (p.type === SP_USER_DEFINED ? SP_NORMAL : p.type));
  const tc = (await readJson(path.join(dir, 'tokenizer_config.json'), false)) ?? {};
  const tj = (await readJson(path.join(dir, 'tokenizer.json'), false)) ?? {};
  const added = (tj.added_tokens ?? []) as Array<{ id: number; content: string; special?: boolean }>;
  for (const a of added) {
    if (a.id >= vocabSize) continue;
    while (tokens.length <= a.id) {
      tokens.push(`[PAD${tokens.length}]`);
      scores.push(-1000);
      types.push(SP_UNUSED);
    }
    if (arch === 'phi3') {
      // Phi-3's converter marks every added token (the specials included) with score -1000
      tokens[a.id] = a.content;
      scores[a.id] = -1000;
      types[a.id] = a.special ? SP_CONTROL : SP_USER_DEFINED;
    } else if (types[a.id] === SP_UNUSED) {
      // others only fill pieces the model leaves unused
      tokens[a.id] = a.content;
      types[a.id] = a.special ? SP_CONTROL : SP_USER_DEFINED;
    }
  }
  // padded to the embedding's size as the converter does
  while (tokens.length < vocabSize) {
    tokens.push(`[PAD${tokens.length}]`);
    scores.push(-1000);
    types.push(SP_UNUSED);
  }
  const out: GgufMetaEntry[] = [];
  // llama's converter writes the SentencePiece dummy-prefix flag; Gemma's always writes false
  if (arch === 'llama') out.push({ key: 'tokenizer.ggml.add_space_prefix', ...gv.bool(sp.addDummyPrefix) });
  out.push(
    { key: 'tokenizer.ggml.model', ...gv.str('llama') },
    { key: 'tokenizer.ggml.pre', ...gv.str('default') },
    { key: 'tokenizer.ggml.tokens', ...gv.arrStr(tokens) },
    { key: 'tokenizer.ggml.scores', ...gv.arrF32(scores) },
    { key: 'tokenizer.ggml.token_type', ...gv.arrI32(types) },
  );
  out.push(...specialIds(tokens, tc, ['bos', 'eos', 'unknown', 'padding']));
  out.push(
    { key: 'tokenizer.ggml.add_bos_token', ...gv.bool(tc.add_bos_token ?? true) },
    { key: 'tokenizer.ggml.add_sep_token', ...gv.bool(false) },
    { key: 'tokenizer.ggml.add_eos_token', ...gv.bool(tc.add_eos_token ?? false) },
  );
  if (arch.startsWith('gemma')) out.push({ key: 'tokenizer.ggml.add_space_prefix', ...gv.bool(false) });
  if (typeof tc.chat_template === 'string') out.push({ key: 'tokenizer.chat_template', ...gv.str(tc.chat_template) });
  return out;
}

/** tokenizer.ggml.<name>_token_id of the special tokens tokenizer_config.json names (as text or {content}). */
function specialIds(tokens: string[], tc: Json, names: Array<'bos' | 'eos' | 'unknown' | 'padding'>): GgufMetaEntry[] {
  const field = { bos: 'bos_token', eos: 'eos_token', unknown: 'unk_token', padding: 'pad_token' };
  const out: GgufMetaEntry[] = [];
  for (const name of names) {
    const v = tc[field[name]];
    const s = typeof v === 'string' ? v : (v as { content?: string } | undefined)?.content;
    const id = s === undefined ? -1 : tokens.indexOf(s);
    if (id >= 0) out.push({ key: `tokenizer.ggml.${name}_token_id`, ...gv.u32(id) });
  }
  return out;
}

/**
 * llama.cpp's name (tokenizer.ggml.pre) for the pre-tokenizer of a tokenizer.json, recognized
 * as its converter does by what it splits with: GPT-2's byte-level regex, Llama-3's pattern
 * (digits in runs of up to three), Qwen2's (single digits). Anything else is E_UNSUPPORTED, as
 * llama.cpp's converter refuses a pre-tokenizer it does not know (the default would tokenize
 * differently from the model's own tokenizer).
 */
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = LLAMA3_SPLIT.replace('\\p{N}{1,3}', '\\p{N}');
function bpePre(tj: Json, where: string): string {
  const pre = tj.pre_tokenizer as Json | null;
  const steps: Json[] = pre?.type === 'Sequence' ? (pre.pretokenizers as Json[]) : pre ? [pre] : [];
  const splits = steps.filter((p) => p.type === 'Split').map((p) => p.pattern?.Regex ?? p.pattern?.String);
  const byteLevel = steps.find((p) => p.type === 'ByteLevel');
  if (splits.length === 0 && byteLevel && byteLevel.use_regex !== false) return 'gpt-2';
  if (splits.length === 1 && byteLevel && byteLevel.use_regex === false) {
    if (splits[0] === LLAMA3_SPLIT) return 'llama-bpe';
    if (splits[0] === QWEN2_SPLIT) return 'qwen2';
  }
  throw new FuselmError('E_UNSUPPORTED', `${where}: pre-tokenizer not recognized (known: GPT-2's, Llama-3's and Qwen2's byte-level splits): ${JSON.stringify(pre).slice(0, 300)}`);
}

/** A byte-level BPE vocabulary (tokenizer.ggml.model "gpt2") from tokenizer.json. */
async function bpeVocab(dir: string, vocabSize: number): Promise<GgufMetaEntry[]> {
  const where = path.join(dir, 'tokenizer.json');
  const tj = await readJson(where, false);
  if (!tj)
    throw new FuselmError('E_UNSUPPORTED', `${dir}: no tokenizer.model or tokenizer.json; convert writes the folder's tokenizer into the GGUF and needs one`);
  const model = tj.model as Json;
  if (model?.type !== 'BPE' || model.byte_fallback)
    throw new FuselmError(
      'E_UNSUPPORTED',
      `${where}: a ${model?.type}${model?.byte_fallback ? ' (byte-fallback)' : ''} tokenizer without tokenizer.model; convert writes SentencePiece vocabularies from tokenizer.model and byte-level BPE ones from tokenizer.json`,
    );
  const pre = bpePre(tj, where);
  const tokens: string[] = [];
  const types: number[] = [];
  for (const [t, id] of Object.entries(model.vocab as Record<string, number>)) {
    tokens[id] = t;
    types[id] = SP_NORMAL;
  }
  for (const a of (tj.added_tokens ?? []) as Array<{ id: number; content: string; special?: boolean }>) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? SP_CONTROL : SP_USER_DEFINED;
  }
  // ids no token takes, and the embedding rows past the vocabulary: unused padding, as the converter writes
  const n = Math.max(vocabSize, tokens.length);
  for (let i = 0; i < n; i++)
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = SP_UNUSED;
    }
  // merges as "left right" (tokenizers >= 0.20 stores them as pairs)
  const merges = ((model.merges ?? []) as Array<string | string[]>).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const tc = (await readJson(path.join(dir, 'tokenizer_config.json'), false)) ?? {};
  const out: GgufMetaEntry[] = [
    { key: 'tokenizer.ggml.model', ...gv.str('gpt2') },
    { key: 'tokenizer.ggml.pre', ...gv.str(pre) },
    { key: 'tokenizer.ggml.tokens', ...gv.arrStr(tokens) },
    { key: 'tokenizer.ggml.token_type', ...gv.arrI32(types) },
    { key: 'tokenizer.ggml.merges', ...gv.arrStr(merges) },
    ...specialIds(tokens, tc, ['bos', 'eos', 'padding']),
  ];
  // written only when the tokenizer says (llama.cpp's defaults for gpt2 vocabularies apply otherwise)
  if (typeof tc.add_bos_token === 'boolean') out.push({ key: 'tokenizer.ggml.add_bos_token', ...gv.bool(tc.add_bos_token) });
  if (typeof tc.add_eos_token === 'boolean') out.push({ key: 'tokenizer.ggml.add_eos_token', ...gv.bool(tc.add_eos_token) });
  if (typeof tc.chat_template === 'string') out.push({ key: 'tokenizer.chat_template', ...gv.str(tc.chat_template) });
  return out;
}
