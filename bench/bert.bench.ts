/**
 * BERT embeddings (`npm run bench -- bert`): texts/s of embed() one text per call against all texts in one call (packed
 * several per forward pass), on a synthetic bert GGUF at all-MiniLM-L6 shape (384 wide, 6 layers,
 * 12 heads, ffn 1536, random f32 weights) with llama.cpp's bert-bge vocabulary from ../shared
 * (skipped without it). 2 threads, the better of 2 runs each.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GgmlType } from '../lib/formats/ggml-types.js';
import { gv, readGguf, writeGguf } from '../lib/formats/gguf.js';
import { loadEmbeddingModel } from '../lib/model/bert.js';
import type { BenchResult } from './util.js';
import { benchModel } from '../lib/tools/bench-models.js';

const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared');
const SHAPE = { dim: 384, layers: 6, heads: 12, ffn: 1536, ctx: 512, types: 2 };

/** The synthetic model, written once into the benchmarks' model folder; uniform weights in ±0.05 from a fixed seed. */
function syntheticBert(vocabFile: string): Promise<string> {
  return benchModel('bert-minilm-shape.gguf', (out) => writeSyntheticBert(vocabFile, out));
}

async function writeSyntheticBert(vocabFile: string, out: string): Promise<void> {
  const vocab = await readGguf(vocabFile);
  const tokenizer = [...vocab.metadata.keys()].filter((k) => k.startsWith('tokenizer.')).map((key) => ({ key, value: vocab.metadata.get(key)!, ...vocab.metadataTypes.get(key)! }));
  const V = (vocab.metadata.get('tokenizer.ggml.tokens') as string[]).length;
  const { dim: D, ffn: F } = SHAPE;
  let seed = 12345;
  const random = (n: number, scale: number, offset = 0) => {
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      x[i] = offset + (seed / 2 ** 32 - 0.5) * 2 * scale;
    }
    return new Uint8Array(x.buffer);
  };
  const t = (name: string, dims: number[], scale = 0.05, offset = 0) => ({ name, type: GgmlType.F32, dims, data: async () => random(dims.reduce((a, b) => a * b, 1), scale, offset) });
  const norm = (name: string) => [t(`${name}.weight`, [D], 0.01, 1), t(`${name}.bias`, [D], 0.01)];
  const tensors = [t('token_embd.weight', [D, V]), t('token_types.weight', [D, SHAPE.types]), t('position_embd.weight', [D, SHAPE.ctx]), ...norm('token_embd_norm')];
  for (let l = 0; l < SHAPE.layers; l++) {
    const b = `blk.${l}.`;
    for (const p of ['attn_q', 'attn_k', 'attn_v', 'attn_output']) tensors.push(t(`${b}${p}.weight`, [D, D]), t(`${b}${p}.bias`, [D]));
    tensors.push(...norm(`${b}attn_output_norm`), t(`${b}ffn_up.weight`, [D, F]), t(`${b}ffn_up.bias`, [F]));
    tensors.push(t(`${b}ffn_down.weight`, [F, D]), t(`${b}ffn_down.bias`, [D]), ...norm(`${b}layer_output_norm`));
  }
  const meta = (k: string, v: { type: number; value: number | boolean }) => ({ key: `bert.${k}`, ...v });
  await writeGguf(out, {
    metadata: [
      { key: 'general.architecture', ...gv.str('bert') },
      meta('block_count', gv.u32(SHAPE.layers)), meta('context_length', gv.u32(SHAPE.ctx)), meta('embedding_length', gv.u32(D)),
      meta('feed_forward_length', gv.u32(F)), meta('attention.head_count', gv.u32(SHAPE.heads)),
      meta('attention.layer_norm_epsilon', gv.f32(1e-12)), meta('attention.causal', gv.bool(false)), meta('pooling_type', gv.u32(1)),
      ...tokenizer,
    ],
    tensors,
  });
}

const SENTENCES = [
  'The quick brown fox jumps over the lazy dog.',
  'Embeddings map sentences to vectors so that similar meanings land close together.',
  'A short one.',
  'Batching several texts into one forward pass reads every weight matrix once for all of them, instead of once per text.',
  'Node.js runs JavaScript outside the browser.',
  'Which of these sentences is the closest to the question that was asked a moment ago?',
  'Rain is expected tomorrow afternoon.',
  'The library loads GGUF files and Hugging Face folders alike, and converts their weights at load when asked to.',
];

export async function run(): Promise<BenchResult[]> {
  const vocabFile = path.join(shared, 'tokenizers/llama.cpp-vocab/ggml-vocab-bert-bge.gguf');
  if (!existsSync(vocabFile)) {
    process.stderr.write(`embed: skipping (${vocabFile} not found)\n`);
    return [];
  }
  const model = await loadEmbeddingModel(await syntheticBert(vocabFile), { threads: 2 });
  try {
    const texts = Array.from({ length: 32 }, (_, i) => SENTENCES[i % SENTENCES.length]);
    const tokens = texts.reduce((n, s) => n + model.tokenizer!.encode(s, { addSpecial: true }).length, 0);
    await model.embed(texts.slice(0, 2)); // warm-up
    const best = async (fn: () => Promise<unknown>) => {
      let s = Infinity;
      for (let r = 0; r < 2; r++) {
        const t0 = performance.now();
        await fn();
        s = Math.min(s, (performance.now() - t0) / 1000);
      }
      return s;
    };
    const oneByOne = await best(async () => {
      for (const s of texts) await model.embed(s);
    });
    const batched = await best(() => model.embed(texts));
    return [
      {
        name: `minilm-l6 shape f32 2t, ${texts.length} texts (${tokens} tokens)`,
        seconds: batched,
        oneByOneTextsPerSecond: texts.length / oneByOne,
        batchedTextsPerSecond: texts.length / batched,
        speedup: oneByOne / batched,
      },
    ];
  } finally {
    await model.dispose();
  }
}
