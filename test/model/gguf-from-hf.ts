/**
 * Writes GGUF files from the F32 Hugging Face folders in ../shared, laid out the way llama.cpp's
 * converter lays out gpt2 and bert models (its published tensor names, dims innermost first and
 * metadata keys), so the GGUF loaders can be checked against the HF-folder path on the same
 * weights. The tokenizer metadata comes from a llama.cpp vocab-only GGUF of the same vocabulary
 * when there is one, else from a small made-up vocabulary.
 */
import { readFileSync } from 'node:fs';
import { readGguf, writeGguf, gv, type GgufMetaEntry, type GgufWriteSpec } from '../../lib/formats/gguf.js';
import { GgmlType } from '../../lib/formats/ggml-types.js';
import { openSafetensorsFolder } from '../../lib/formats/safetensors.js';
import { llama3FreqFactors } from '../../lib/model/config.js';
import { syntheticVocab } from '../../lib/tools/synthetic.js';

interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

/** Every tensor of an F32 safetensors folder, by name without `prefix`. */
async function readF32Folder(dir: string, prefix: string): Promise<Map<string, F32Tensor>> {
  const st = await openSafetensorsFolder(dir);
  const out = new Map<string, F32Tensor>();
  for (const t of st.tensors.values()) {
    if (t.dtype !== 'F32') throw new Error(`${t.name}: expected F32, got ${t.dtype}`);
    const bytes = readFileSync(t.file).subarray(t.offset, t.offset + t.nbytes);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    out.set(t.name.startsWith(prefix) ? t.name.slice(prefix.length) : t.name, { shape: t.shape, data });
  }
  return out;
}

/** Row-major [R, C] → [C, R]. */
function transpose(t: F32Tensor): F32Tensor {
  const [R, C] = t.shape;
  const out = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = t.data[r * C + c];
  return { shape: [C, R], data: out };
}

/** A GGUF tensor entry: F32, dims innermost first. */
function f32Entry(name: string, t: F32Tensor) {
  return { name, type: GgmlType.F32, dims: [...t.shape].reverse(), data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
}

/** The tokenizer.* entries of a llama.cpp vocab-only GGUF. */
async function tokenizerEntries(vocabGguf: string): Promise<GgufMetaEntry[]> {
  const f = await readGguf(vocabGguf);
  return [...f.metadata.keys()]
    .filter((k) => k.startsWith('tokenizer.'))
    .map((key) => ({ key, value: f.metadata.get(key)!, ...f.metadataTypes.get(key)! }));
}

function hfConfig(dir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')) as Record<string, unknown>;
}

export interface GgufFromHfOptions {
  /** A vocab-only GGUF whose tokenizer.* metadata is copied; default: `vocab` made-up tokens. */
  vocabGguf?: string;
  /** Leave out output.weight (a tied head), which llama.cpp's gpt2 converter always writes. */
  tied?: boolean;
  /** bert: the `bert.pooling_type` value (absent by default, as without sentence-transformers files). */
  poolingType?: number;
  /** Malformed files: tensors replaced (by GGUF name), tensors left out. */
  replace?: Record<string, { dims: number[]; data: Float32Array }>;
  drop?: string[];
}

function finish(spec: GgufWriteSpec, o: GgufFromHfOptions): GgufWriteSpec {
  for (const [name, r] of Object.entries(o.replace ?? {})) {
    const i = spec.tensors.findIndex((t) => t.name === name);
    spec.tensors[i] = { name, type: GgmlType.F32, dims: r.dims, data: new Uint8Array(r.data.buffer) };
  }
  spec.tensors = spec.tensors.filter((t) => !o.drop?.includes(t.name));
  return spec;
}

/**
 * A gpt2 GGUF of an HF GPT-2 folder: Conv1D weights transposed to [out, in], c_attn kept fused
 * as attn_qkv (rows q, k, v), the tied head written out as output.weight.
 */
export async function writeGpt2Gguf(dir: string, out: string, o: GgufFromHfOptions = {}): Promise<void> {
  const cfg = hfConfig(dir) as { n_embd: number; n_layer: number; n_head: number; n_positions?: number; n_ctx?: number; n_inner?: number | null; layer_norm_epsilon?: number; vocab_size: number };
  const w = await readF32Folder(dir, 'transformer.');
  const get = (n: string) => {
    const t = w.get(n);
    if (!t) throw new Error(`${dir}: no tensor ${n}`);
    return t;
  };
  const tensors = [f32Entry('token_embd.weight', get('wte.weight')), f32Entry('position_embd.weight', get('wpe.weight'))];
  for (let l = 0; l < cfg.n_layer; l++) {
    const h = `h.${l}.`, b = `blk.${l}.`;
    tensors.push(
      f32Entry(b + 'attn_norm.weight', get(h + 'ln_1.weight')),
      f32Entry(b + 'attn_norm.bias', get(h + 'ln_1.bias')),
      f32Entry(b + 'attn_qkv.weight', transpose(get(h + 'attn.c_attn.weight'))),
      f32Entry(b + 'attn_qkv.bias', get(h + 'attn.c_attn.bias')),
      f32Entry(b + 'attn_output.weight', transpose(get(h + 'attn.c_proj.weight'))),
      f32Entry(b + 'attn_output.bias', get(h + 'attn.c_proj.bias')),
      f32Entry(b + 'ffn_norm.weight', get(h + 'ln_2.weight')),
      f32Entry(b + 'ffn_norm.bias', get(h + 'ln_2.bias')),
      f32Entry(b + 'ffn_up.weight', transpose(get(h + 'mlp.c_fc.weight'))),
      f32Entry(b + 'ffn_up.bias', get(h + 'mlp.c_fc.bias')),
      f32Entry(b + 'ffn_down.weight', transpose(get(h + 'mlp.c_proj.weight'))),
      f32Entry(b + 'ffn_down.bias', get(h + 'mlp.c_proj.bias')),
    );
  }
  tensors.push(f32Entry('output_norm.weight', get('ln_f.weight')), f32Entry('output_norm.bias', get('ln_f.bias')));
  if (!o.tied) tensors.push(f32Entry('output.weight', get('wte.weight')));
  const tokenizer = o.vocabGguf
    ? await tokenizerEntries(o.vocabGguf)
    : [
        { key: 'tokenizer.ggml.model', ...gv.str('gpt2') },
        { key: 'tokenizer.ggml.pre', ...gv.str('gpt-2') },
        { key: 'tokenizer.ggml.tokens', ...gv.arrStr(Array.from({ length: cfg.vocab_size }, (_, i) => String.fromCharCode(97 + i))) },
        { key: 'tokenizer.ggml.merges', ...gv.arrStr([]) },
      ];
  await writeGguf(
    out,
    finish(
      {
        metadata: [
          { key: 'general.architecture', ...gv.str('gpt2') },
          { key: 'general.name', ...gv.str('test-gpt2') },
          { key: 'gpt2.block_count', ...gv.u32(cfg.n_layer) },
          { key: 'gpt2.context_length', ...gv.u32(cfg.n_positions ?? cfg.n_ctx ?? 1024) },
          { key: 'gpt2.embedding_length', ...gv.u32(cfg.n_embd) },
          { key: 'gpt2.feed_forward_length', ...gv.u32(cfg.n_inner ?? 4 * cfg.n_embd) },
          { key: 'gpt2.attention.head_count', ...gv.u32(cfg.n_head) },
          { key: 'gpt2.attention.layer_norm_epsilon', ...gv.f32(cfg.layer_norm_epsilon ?? 1e-5) },
          { key: 'general.file_type', ...gv.u32(0) },
          ...tokenizer,
        ],
        tensors,
      },
      o,
    ),
  );
}

/** A bert GGUF of an HF BERT folder: the encoder's tensors under llama.cpp's names, no pooler. */
export async function writeBertGguf(dir: string, out: string, o: GgufFromHfOptions = {}): Promise<void> {
  const cfg = hfConfig(dir) as { hidden_size: number; num_hidden_layers: number; num_attention_heads: number; intermediate_size: number; max_position_embeddings?: number; layer_norm_eps?: number; type_vocab_size?: number; vocab_size: number };
  const w = await readF32Folder(dir, 'bert.');
  const get = (n: string) => {
    const t = w.get(n);
    if (!t) throw new Error(`${dir}: no tensor ${n}`);
    return t;
  };
  const e = 'embeddings.';
  const tensors = [
    f32Entry('token_embd.weight', get(e + 'word_embeddings.weight')),
    f32Entry('token_types.weight', get(e + 'token_type_embeddings.weight')),
    f32Entry('position_embd.weight', get(e + 'position_embeddings.weight')),
    f32Entry('token_embd_norm.weight', get(e + 'LayerNorm.weight')),
    f32Entry('token_embd_norm.bias', get(e + 'LayerNorm.bias')),
  ];
  const names: Array<[string, string]> = [
    ['attn_q', 'attention.self.query'],
    ['attn_k', 'attention.self.key'],
    ['attn_v', 'attention.self.value'],
    ['attn_output', 'attention.output.dense'],
    ['attn_output_norm', 'attention.output.LayerNorm'],
    ['ffn_up', 'intermediate.dense'],
    ['ffn_down', 'output.dense'],
    ['layer_output_norm', 'output.LayerNorm'],
  ];
  for (let l = 0; l < cfg.num_hidden_layers; l++)
    for (const [gguf, hf] of names)
      for (const kind of ['weight', 'bias']) tensors.push(f32Entry(`blk.${l}.${gguf}.${kind}`, get(`encoder.layer.${l}.${hf}.${kind}`)));
  const tokenizer = o.vocabGguf
    ? await tokenizerEntries(o.vocabGguf)
    : [
        { key: 'tokenizer.ggml.model', ...gv.str('bert') },
        // phantom-space spelling: word starts carry '▁', [UNK]-style specials stay as they are
        { key: 'tokenizer.ggml.tokens', ...gv.arrStr(['[UNK]', ...Array.from({ length: cfg.vocab_size - 1 }, (_, i) => '\u2581' + String.fromCharCode(97 + i))]) },
      ];
  await writeGguf(
    out,
    finish(
      {
        metadata: [
          { key: 'general.architecture', ...gv.str('bert') },
          { key: 'general.name', ...gv.str('test-bert') },
          { key: 'bert.block_count', ...gv.u32(cfg.num_hidden_layers) },
          { key: 'bert.context_length', ...gv.u32(cfg.max_position_embeddings ?? 512) },
          { key: 'bert.embedding_length', ...gv.u32(cfg.hidden_size) },
          { key: 'bert.feed_forward_length', ...gv.u32(cfg.intermediate_size) },
          { key: 'bert.attention.head_count', ...gv.u32(cfg.num_attention_heads) },
          { key: 'bert.attention.layer_norm_epsilon', ...gv.f32(cfg.layer_norm_eps ?? 1e-12) },
          { key: 'bert.attention.causal', ...gv.bool(false) },
          ...(o.poolingType === undefined ? [] : [{ key: 'bert.pooling_type', ...gv.u32(o.poolingType) }]),
          { key: 'general.file_type', ...gv.u32(0) },
          ...tokenizer.filter((t) => t.key !== 'tokenizer.ggml.token_type_count'),
          { key: 'tokenizer.ggml.token_type_count', ...gv.u32(cfg.type_vocab_size ?? 2) },
        ],
        tensors,
      },
      o,
    ),
  );
}

/**
 * A llama-family GGUF of an F32 HF decoder folder, as llama.cpp's convert_hf_to_gguf.py writes
 * it (its published tensor names and metadata keys): llama (and mistral) q/k rows permuted from
 * rotate-half to adjacent pairs; Gemma norm weights stored as 1 + w; Phi-3's fused projections
 * kept fused, its LongRoPE factors as rope_factors_short/long tensors with attn_factor and the
 * original context; Llama-3.1's factors as rope_freqs; YaRN and linear scaling as rope.scaling.*
 * keys. The tokenizer is the synthetic SentencePiece-style vocabulary. Checked against the GGUFs
 * llama.cpp's own converter made of the oracle folders (test/model/hf-twins.test.ts).
 */
export async function writeLlamaFamilyGguf(dir: string, out: string): Promise<void> {
  const cfg = hfConfig(dir) as Record<string, any>;
  const mt = String(cfg.model_type);
  const arch = mt === 'mistral' ? 'llama' : mt === 'gemma3_text' ? 'gemma3' : mt;
  const w = await readF32Folder(dir, '');
  const get = (n: string) => {
    const t = w.get(n);
    if (!t) throw new Error(`${dir}: no tensor ${n}`);
    return t;
  };
  const H = cfg.num_attention_heads as number, KV = (cfg.num_key_value_heads ?? H) as number;
  const hd = (cfg.head_dim ?? cfg.hidden_size / H) as number;
  const gemma = arch.startsWith('gemma');
  // llama.cpp's llama graph rotates adjacent pairs: each head's rows (first half, second half) interleaved
  const permute = (t: F32Tensor, heads: number): F32Tensor => {
    if (arch !== 'llama') return t;
    const [R, C] = t.shape, half = R / heads / 2, out = new Float32Array(R * C);
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < half; j++)
        for (const s of [0, 1]) out.set(t.data.subarray((h * 2 * half + s * half + j) * C, (h * 2 * half + s * half + j + 1) * C), (h * 2 * half + 2 * j + s) * C);
    return { shape: t.shape, data: out };
  };
  const norm = (t: F32Tensor): F32Tensor => (gemma ? { shape: t.shape, data: t.data.map((x) => x + 1) } : t);
  const tensors = [f32Entry('token_embd.weight', get('model.embed_tokens.weight'))];
  const sandwich = arch === 'gemma2' || arch === 'gemma3';
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`, b = `blk.${l}.`;
    const opt = (hf: string, gguf: string, f: (t: F32Tensor) => F32Tensor = (t) => t) => (w.has(p + hf) ? [f32Entry(b + gguf, f(get(p + hf)))] : []);
    tensors.push(
      f32Entry(b + 'attn_norm.weight', norm(get(p + 'input_layernorm.weight'))),
      ...opt('self_attn.qkv_proj.weight', 'attn_qkv.weight'),
      ...opt('self_attn.q_proj.weight', 'attn_q.weight', (t) => permute(t, H)),
      ...opt('self_attn.k_proj.weight', 'attn_k.weight', (t) => permute(t, KV)),
      ...opt('self_attn.v_proj.weight', 'attn_v.weight'),
      ...opt('self_attn.q_proj.bias', 'attn_q.bias'),
      ...opt('self_attn.k_proj.bias', 'attn_k.bias'),
      ...opt('self_attn.v_proj.bias', 'attn_v.bias'),
      ...opt('self_attn.q_norm.weight', 'attn_q_norm.weight', norm),
      ...opt('self_attn.k_norm.weight', 'attn_k_norm.weight', norm),
      f32Entry(b + 'attn_output.weight', get(p + 'self_attn.o_proj.weight')),
      ...(sandwich
        ? [
            f32Entry(b + 'post_attention_norm.weight', norm(get(p + 'post_attention_layernorm.weight'))),
            f32Entry(b + 'ffn_norm.weight', norm(get(p + 'pre_feedforward_layernorm.weight'))),
            f32Entry(b + 'post_ffw_norm.weight', norm(get(p + 'post_feedforward_layernorm.weight'))),
          ]
        : [f32Entry(b + 'ffn_norm.weight', norm(get(p + 'post_attention_layernorm.weight')))]),
      ...opt('mlp.gate_up_proj.weight', 'ffn_up.weight'),
      ...opt('mlp.gate_proj.weight', 'ffn_gate.weight'),
      ...opt('mlp.up_proj.weight', 'ffn_up.weight'),
      f32Entry(b + 'ffn_down.weight', get(p + 'mlp.down_proj.weight')),
    );
  }
  tensors.push(f32Entry('output_norm.weight', norm(get('model.norm.weight'))));
  if (w.has('lm_head.weight') && !(cfg.tie_word_embeddings ?? gemma)) tensors.push(f32Entry('output.weight', get('lm_head.weight')));
  const k = (s: string) => `${arch}.${s}`;
  const rp = (cfg.rope_parameters?.full_attention ?? cfg.rope_parameters ?? cfg.rope_scaling ?? {}) as Record<string, any>;
  const type = rp.rope_type ?? rp.type ?? 'default';
  const dims = Math.round(hd * (rp.partial_rotary_factor ?? cfg.partial_rotary_factor ?? 1));
  const meta: GgufMetaEntry[] = [
    { key: 'general.architecture', ...gv.str(arch) },
    // (not naming the family: llama.cpp special-cases phi-3 vocabularies by general.name)
    { key: 'general.name', ...gv.str('fuselm test twin') },
    { key: k('context_length'), ...gv.u32(cfg.max_position_embeddings ?? 2048) },
    { key: k('embedding_length'), ...gv.u32(cfg.hidden_size) },
    { key: k('block_count'), ...gv.u32(cfg.num_hidden_layers) },
    { key: k('feed_forward_length'), ...gv.u32(cfg.intermediate_size) },
    { key: k('attention.head_count'), ...gv.u32(H) },
    { key: k('attention.head_count_kv'), ...gv.u32(KV) },
    { key: k('attention.key_length'), ...gv.u32(hd) },
    { key: k('attention.value_length'), ...gv.u32(hd) },
    { key: k('attention.layer_norm_rms_epsilon'), ...gv.f32(cfg.rms_norm_eps ?? 1e-6) },
    { key: k('rope.dimension_count'), ...gv.u32(dims) },
    { key: k('rope.freq_base'), ...gv.f32(rp.rope_theta ?? cfg.rope_theta ?? 10000) },
    { key: 'general.file_type', ...gv.u32(0) },
    ...syntheticVocab(cfg.vocab_size),
  ];
  // Phi-3's converter writes the window always (0 for none); Gemma's when there is one
  if (arch === 'phi3' || (sandwich && cfg.sliding_window)) meta.push({ key: k('attention.sliding_window'), ...gv.u32(cfg.sliding_window ?? 0) });
  if (arch === 'gemma2')
    meta.push({ key: k('attn_logit_softcapping'), ...gv.f32(cfg.attn_logit_softcapping) }, { key: k('final_logit_softcapping'), ...gv.f32(cfg.final_logit_softcapping) });
  if (type === 'linear') meta.push({ key: k('rope.scaling.type'), ...gv.str('linear') }, { key: k('rope.scaling.factor'), ...gv.f32(rp.factor) });
  if (type === 'llama3') {
    const f = llama3FreqFactors(rp.rope_theta ?? cfg.rope_theta ?? 10000, dims, rp.factor, rp.low_freq_factor, rp.high_freq_factor, rp.original_max_position_embeddings);
    tensors.push({ name: 'rope_freqs.weight', type: GgmlType.F32, dims: [f.length], data: new Uint8Array(Float32Array.from(f).buffer) });
  }
  if (type === 'yarn')
    meta.push(
      { key: k('rope.scaling.type'), ...gv.str('yarn') },
      { key: k('rope.scaling.factor'), ...gv.f32(rp.factor) },
      { key: k('rope.scaling.original_context_length'), ...gv.u32(rp.original_max_position_embeddings ?? cfg.max_position_embeddings) },
    );
  if (type === 'longrope') {
    const orig = rp.original_max_position_embeddings ?? cfg.original_max_position_embeddings;
    const s = cfg.max_position_embeddings / orig;
    const vec = (name: string, v: number[]) => ({ name, type: GgmlType.F32, dims: [v.length], data: new Uint8Array(Float32Array.from(v).buffer) });
    tensors.push(vec('rope_factors_long.weight', rp.long_factor), vec('rope_factors_short.weight', rp.short_factor));
    meta.push(
      { key: k('rope.scaling.attn_factor'), ...gv.f32(s <= 1 ? 1 : Math.sqrt(1 + Math.log(s) / Math.log(orig))) },
      { key: k('rope.scaling.original_context_length'), ...gv.u32(orig) },
    );
  }
  await writeGguf(out, { metadata: meta, tensors });
}
