/**
 * T5 (`npm run bench -- t5`): encoder and decoder tokens/s of a synthetic GGUF `t5` at
 * t5-small's shape (d_model 512, 6 + 6 layers, 8 heads of 64, d_ff 2048, vocabulary 32128),
 * with T5 v1.1's gated-GELU FFN (fuselm has no ReLU T5 yet) and random f32 weights, written
 * once into the benchmarks' model folder. Per thread count (FUSELM_BENCH_THREADS, default 1,2):
 * - encoder: one 128-token input through the encoder and every layer's cross K/V projection
 *   (encode()), tokens/s of the best of 3 after a warm-up;
 * - decoder: greedy generation of 64 tokens from that input (EOS off), its decode steps/s
 *   (timings.tokensPerSecond: the steps after the first token, as llama.cpp counts), best of 3,
 *   and the weight bytes a step reads (179 MB) at that rate, as a share of the run's measured
 *   copy bandwidth (decode is bound by it);
 * - beams: beamSearch with 4 beams for 32 tokens, beam-tokens/s (4 per step), best of 3.
 * No peer: node-llama-cpp has no encoder-decoder path.
 */
import { GgmlType } from '../lib/formats/ggml-types.js';
import { gv, writeGguf } from '../lib/formats/gguf.js';
import { loadModel } from '../lib/index.js';
import type { EncoderDecoderModel } from '../lib/model/encoder-decoder.js';
import { benchModel } from '../lib/tools/bench-models.js';
import { type BenchResult, measuredCopyBandwidth } from './util.js';

export const SHAPE = { dim: 512, layers: 6, heads: 8, headDim: 64, ffn: 2048, vocab: 32128, buckets: 32 };
const INPUT = 128, GREEDY = 64, BEAM_TOKENS = 32, BEAMS = 4;

/** Weights (f32 bytes) a decoder step reads: per layer self q/k/v/o, cross q/o, gate/up/down; the LM head; the cross K/V of the input. */
function decoderStepBytes(): number {
  const { dim: D, ffn: F, vocab: V, layers: L } = SHAPE, A = SHAPE.heads * SHAPE.headDim;
  return 4 * (L * (4 * D * A + 2 * D * A + 3 * D * F) + V * D + L * 2 * INPUT * A);
}

/** FLOPs of one encode(): 2 per weight and token (encoder layers, every decoder layer's cross K/V), plus attention. */
function encoderFlops(): number {
  const { dim: D, ffn: F, layers: L, heads: H, headDim: HD } = SHAPE, A = H * HD;
  return 2 * INPUT * L * (4 * D * A + 3 * D * F + 2 * D * A) + L * 4 * H * HD * INPUT * INPUT;
}

export async function writeSyntheticT5(out: string): Promise<void> {
  const { dim: D, ffn: F, vocab: V, heads: H } = SHAPE;
  const A = H * SHAPE.headDim;
  let seed = 4242;
  const random = (n: number, scale: number, offset = 0) => {
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      x[i] = offset + (seed / 2 ** 32 - 0.5) * 2 * scale;
    }
    return new Uint8Array(x.buffer);
  };
  // GGUF dims are [in, out]
  const t = (name: string, dims: number[], scale = 0.05, offset = 0) => ({ name, type: GgmlType.F32, dims, data: async () => random(dims.reduce((a, b) => a * b, 1), scale, offset) });
  const attn = (p: string, kind: string) => [t(`${p}${kind}_q.weight`, [D, A]), t(`${p}${kind}_k.weight`, [D, A]), t(`${p}${kind}_v.weight`, [D, A]), t(`${p}${kind}_o.weight`, [A, D])];
  const ffn = (p: string) => [t(`${p}ffn_norm.weight`, [D], 0.1, 1), t(`${p}ffn_gate.weight`, [D, F]), t(`${p}ffn_up.weight`, [D, F]), t(`${p}ffn_down.weight`, [F, D])];
  const tensors = [t('token_embd.weight', [D, V], 1), t('enc.output_norm.weight', [D], 0.1, 1), t('dec.output_norm.weight', [D], 0.1, 1)];
  for (let l = 0; l < SHAPE.layers; l++) {
    const e = `enc.blk.${l}.`, d = `dec.blk.${l}.`;
    if (l === 0) tensors.push(t(`${e}attn_rel_b.weight`, [H, SHAPE.buckets], 1), t(`${d}attn_rel_b.weight`, [H, SHAPE.buckets], 1));
    tensors.push(t(`${e}attn_norm.weight`, [D], 0.1, 1), ...attn(e, 'attn'), ...ffn(e));
    tensors.push(t(`${d}attn_norm.weight`, [D], 0.1, 1), ...attn(d, 'attn'), t(`${d}cross_attn_norm.weight`, [D], 0.1, 1), ...attn(d, 'cross_attn'), ...ffn(d));
  }
  const pieces = ['<pad>', '</s>', '<unk>', ...Array.from({ length: V - 3 }, (_, i) => `\u2581p${i}`)];
  const k = (key: string, v: { type: number; value: number | boolean }) => ({ key: `t5.${key}`, ...v });
  await writeGguf(out, {
    metadata: [
      { key: 'general.architecture', ...gv.str('t5') },
      k('context_length', gv.u32(512)), k('embedding_length', gv.u32(D)), k('feed_forward_length', gv.u32(F)),
      k('block_count', gv.u32(SHAPE.layers)), k('decoder_block_count', gv.u32(SHAPE.layers)), k('attention.head_count', gv.u32(H)),
      k('attention.key_length', gv.u32(SHAPE.headDim)), k('attention.value_length', gv.u32(SHAPE.headDim)),
      k('attention.layer_norm_rms_epsilon', gv.f32(1e-6)), k('attention.relative_buckets_count', gv.u32(SHAPE.buckets)), k('decoder_start_token_id', gv.u32(0)),
      { key: 'tokenizer.ggml.model', ...gv.str('t5') },
      { key: 'tokenizer.ggml.tokens', ...gv.arrStr(pieces) },
      { key: 'tokenizer.ggml.scores', ...gv.arrF32(pieces.map((_, i) => (i < 3 ? 0 : -Math.log(i)))) },
      { key: 'tokenizer.ggml.token_type', ...gv.arrI32(pieces.map((_, i) => (i === 2 ? 2 : i < 2 ? 3 : 1))) },
      { key: 'tokenizer.ggml.eos_token_id', ...gv.u32(1) }, { key: 'tokenizer.ggml.unknown_token_id', ...gv.u32(2) },
      { key: 'tokenizer.ggml.padding_token_id', ...gv.u32(0) }, { key: 'tokenizer.ggml.add_eos_token', ...gv.bool(true) },
    ],
    tensors,
  });
}

/** The fastest of `runs` calls, in seconds. */
async function best(runs: number, fn: () => Promise<unknown>): Promise<{ seconds: number }> {
  let seconds = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await fn();
    seconds = Math.min(seconds, (performance.now() - t0) / 1000);
  }
  return { seconds };
}

export async function run(): Promise<BenchResult[]> {
  const file = await benchModel('t5-small-shape-gated.f32.gguf', writeSyntheticT5);
  const threads = (process.env.FUSELM_BENCH_THREADS ?? '1,2').split(',').map(Number);
  const input = Array.from({ length: INPUT }, (_, i) => 3 + ((i * 7919) % (SHAPE.vocab - 3)));
  const out: BenchResult[] = [];
  for (const n of threads) {
    const m = (await loadModel(file, { device: 'cpu', threads: n })) as unknown as EncoderDecoderModel;
    try {
      await m.encode(input); // warm-up: pages the weights in
      const enc = await best(3, () => m.encode(input));
      out.push({ name: `t5-small shape f32 ${n}t encoder, ${INPUT}-token input (+ cross K/V)`, seconds: enc.seconds, tokensPerSecond: INPUT / enc.seconds, gflops: encoderFlops() / enc.seconds / 1e9 });
      const steps: number[] = [];
      const greedy = await best(3, async () => steps.push((await m.generate(input, { maxTokens: GREEDY, ignoreEog: true })).timings.tokensPerSecond));
      const stepsPerSecond = Math.max(...steps), gbps = (decoderStepBytes() * stepsPerSecond) / 1e9;
      out.push({ name: `t5-small shape f32 ${n}t decoder, greedy ${GREEDY} tokens`, seconds: greedy.seconds, tokensPerSecond: stepsPerSecond, weightGBps: gbps, copyBandwidthShare: (gbps * 1e9) / (await measuredCopyBandwidth()) });
      const beams = await best(3, () => m.beamSearch(input, { numBeams: BEAMS, maxTokens: BEAM_TOKENS, ignoreEog: true }));
      out.push({ name: `t5-small shape f32 ${n}t ${BEAMS}-beam search, ${BEAM_TOKENS} tokens`, seconds: beams.seconds, beamTokensPerSecond: (BEAMS * BEAM_TOKENS) / beams.seconds });
    } finally {
      await m.dispose();
    }
  }
  return out;
}
