/**
 * Writes GGUF files from the F32 Hugging Face folders in ../shared, laid out the way llama.cpp's
 * converter lays out gpt2 and bert models (its published tensor names, dims innermost first and
 * metadata keys), so the GGUF loaders can be checked against the HF-folder path on the same
 * weights; llama-family folders go through lib's converter (lib/tools/convert.ts). The tokenizer metadata comes from a llama.cpp vocab-only GGUF of the same vocabulary
 * when there is one, else from a small made-up vocabulary.
 */
import { readFileSync } from 'node:fs';
import { readGguf, writeGguf, gv, type GgufMetaEntry, type GgufWriteSpec } from '../../lib/formats/gguf.js';
import { GgmlType } from '../../lib/formats/ggml-types.js';
import { openSafetensorsFolder } from '../../lib/formats/safetensors.js';
import { quantizeModel } from '../../lib/tools/quantize.js';

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
 * A llama-family F32 GGUF of an HF decoder folder, written by lib's converter (lib/tools/convert.ts,
 * `fuselm convert --type f32`) with the synthetic SentencePiece-style vocabulary, since the test
 * folders have no tokenizer. Checked against the GGUFs llama.cpp's own converter made of the
 * oracle folders (test/model/hf-twins.test.ts).
 */
export async function writeLlamaFamilyGguf(dir: string, out: string): Promise<void> {
  await quantizeModel(dir, out, 'f32', { vocab: 'synthetic' });
}
