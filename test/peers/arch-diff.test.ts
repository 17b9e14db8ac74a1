/**
 * Differential tests against llama.cpp (node-llama-cpp's prebuilt CPU binary) on random-weight
 * GGUFs written here (lib/tools/synthetic.ts) for every architecture fuselm reads from GGUF and
 * the shape variants that break engines: GQA ratios 1 to 4 and MQA, head dims 32 to 256, odd
 * vocabulary sizes, tied and untied output, f32, f16, bf16 and q8_0 weights, rope scaling
 * (Llama-3.1's rope_freqs, linear), Qwen2's biases, Phi-3's fused tensors, Gemma-2's sandwich
 * norms, soft-caps and sliding window (5 positions, so it is active here), and Gemma-2 files
 * without those keys (llama.cpp's defaults). For each, over a 40-token prompt and 20 greedy
 * tokens, with F32 KV caches on both sides:
 *  - the logits at every generated position, on llama.cpp's token path, are within the
 *    variant's tolerance (TOL) of the largest |logit| of llama.cpp's (the measured maximum is
 *    printed);
 *  - f16, bf16 and q8_0 files: the same rounded weights stored as f32 ("widened") give llama.cpp
 *    logits within the f32 tolerance (Gemma-2: TOL.gelu) of fuselm's on the rounded file
 *    (q8_0: fuselm's reference kernels, which do not round activations), so the larger
 *    tolerance of the direct comparison is spent on the engines' activation rounding alone;
 *  - fuselm's greedy ids equal llama.cpp's; where they part, it must be at a near-tie: the two
 *    picks' logits (fuselm's, on the shared prefix) within the tolerance (printed);
 *  - the last logits move with the first prompt token by far more than the tolerance, so
 *    attention across the whole prompt (rope, windows, caps) is what is being compared;
 *  - one-key changes (window, pattern, caps, rope base and scaling) move llama.cpp's logits
 *    beyond the tolerance: the comparison sees each of them;
 *  - the emulated CUDA backend picks the CPU's greedy ids (no peer needed).
 * Skips, saying why, without the peer (`npm run peer:llama-cpp`).
 *
 * Not compared: Phi-3's attention.sliding_window, which fuselm applies (as transformers) and
 * llama.cpp ignores ("Phi SWA is currently disabled"); the Phi-3 files here have none.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gv } from '../../lib/formats/gguf.js';
import { loadModel, type LoadModelOptions, type Model } from '../../lib/index.js';
import { llama3FreqFactors } from '../../lib/model/config.js';
import { Rng } from '../../lib/sampling/rng.js';
import { type SyntheticModelSpec, writeSyntheticModel } from '../../lib/tools/synthetic.js';
import { loadOnCuda } from '../helpers/cuda.js';
import { type LlamaCppSession, llamaCppGreedy, openLlamaCpp, requireLlamaCpp } from '../helpers/llama-cpp.js';

const PROMPT = 40;
const GENERATE = 20;
const CONTEXT = 128;

/** Logit tolerances, relative to the largest |logit|, by what makes the engines differ. */
const TOL = {
  /** f32 on both sides, sums in other orders: measured up to 3.5e-6. */
  f32: 2e-5,
  /**
   * Gemma-2's GeGLU: llama.cpp's CPU GELU rounds its input to f16 and reads the result from an
   * f16 table (GGML_GELU_FP16): measured up to 2.3e-4 (with both caps biting), else ~8e-5.
   */
  gelu: 1e-3,
  /**
   * llama.cpp rounds activations to f16 before an f16 matmul (ggml's vec_dot_type for F16);
   * fuselm widens the weights and keeps f32: measured up to 1.2e-3, the same as llama.cpp's own
   * f16 file against its widened twin, while fuselm's f16 run equals its run on the twin.
   */
  f16: 3e-3,
  /** The same with bf16 (8 bits of mantissa to f16's 11): measured 8.1e-3. */
  bf16: 2.5e-2,
  /**
   * q8_0 is W8A8 in both (activations rounded to q8_0 blocks, the same arithmetic, f16 block
   * scales included), which is discontinuous: an ulp of difference upstream (rope, softmax,
   * norms summed in another order) flips one activation's rounding, and that spreads through
   * the later roundings. Measured up to 1.8e-2 (each engine is ~2.5e-2 from the exact product),
   * and often exactly 0.
   */
  q8_0: 5e-2,
  /**
   * q8_0 after the first prompt token, where attention cannot mix in other positions' noise
   * yet: the same W8A8 arithmetic agrees to a few ulp-seeded flips (measured 0). With an f32
   * block scale for the activations instead of llama.cpp's f16 one (as fuselm had), 1.4e-2.
   */
  q8_0First: 5e-3,
};

/** The tolerance where neither engine rounds activations (f32 weights, or the widened twin). */
const exactTolerance = (s: SyntheticModelSpec) => (s.arch.startsWith('gemma') ? TOL.gelu : TOL.f32);

function tolerance(s: SyntheticModelSpec): number {
  if (s.dtype === 'q8_0') return TOL.q8_0;
  if (s.dtype === 'f16' || s.dtype === 'bf16') return TOL[s.dtype];
  return exactTolerance(s);
}

/** A 2-layer model of nHeads x headDim, the MLP 1.5x as wide (rounded to 32 for q8_0 blocks). */
function shape(arch: SyntheticModelSpec['arch'], headDim: number, nHeads: number, nKvHeads: number, vocabSize: number, more: Partial<SyntheticModelSpec> = {}): SyntheticModelSpec {
  const dim = nHeads * headDim;
  return { arch, vocabSize, dim, nLayers: 2, nHeads, nKvHeads, ffnDim: Math.ceil((1.5 * dim) / 32) * 32, contextLength: 256, dtype: 'f32', seed: vocabSize + headDim, ...more };
}

// Llama-3.1's scaling with an original context of 16, so that at these positions the pairs are a
// mix of kept, interpolated and divided by 8
const LLAMA3 = shape('llama', 64, 4, 2, 301, { ropeTheta: 5e5, ropeFreqs: llama3FreqFactors(5e5, 64, 8, 1, 4, 16) });
const LINEAR = shape('llama', 64, 4, 2, 301, { ropeScaling: { type: 'linear', factor: 4 } });
// Gemma-2 is always tied; llama.cpp puts the window on every other layer from the first
const GEMMA = shape('gemma2', 64, 4, 2, 1001, { slidingWindow: 5, attnSoftcap: 50, finalSoftcap: 30 });
const GEMMA_CAPS = { ...shape('gemma2', 32, 4, 2, 517, { slidingWindow: 7, attnSoftcap: 3, finalSoftcap: 8, dtype: 'f16' }), headDim: 96 };
const GEMMA_PATTERN = shape('gemma2', 64, 2, 1, 301, { nLayers: 3, slidingWindow: 5, slidingWindowPattern: 3, attnSoftcap: 50, finalSoftcap: 30 });

// YaRN with an original context of 64: at these positions the pairs are a mix of kept,
// ramped and interpolated; cos and sin scaled by 1 + 0.1 ln 4
const yarn = (factor: number, original: number): SyntheticModelSpec['keys'] => [
  ['rope.scaling.type', gv.str('yarn')],
  ['rope.scaling.factor', gv.f32(factor)],
  ['rope.scaling.original_context_length', gv.u32(original)],
];
const GEMMA3 = shape('gemma3', 64, 4, 2, 517, { nLayers: 6, slidingWindow: 5, ropeTheta: 1e6 });

const VARIANTS: Array<[name: string, spec: SyntheticModelSpec]> = [
  ['llama hd64 4/4 heads (MHA), vocab 301', shape('llama', 64, 4, 4, 301)],
  ['llama hd64 4/2 heads (GQA 2), vocab 1001, tied', shape('llama', 64, 4, 2, 1001, { tied: true })],
  ['llama hd32 8/2 heads (GQA 4), vocab 517', shape('llama', 32, 8, 2, 517)],
  ['llama hd64 4/1 heads (MQA), vocab 301, tied', shape('llama', 64, 4, 1, 301, { tied: true })],
  ['llama hd80 2/1 heads, vocab 1531', shape('llama', 80, 2, 1, 1531)],
  ['llama hd96 3/1 heads (GQA 3), vocab 301', shape('llama', 96, 3, 1, 301)],
  ['llama hd128 2/1 heads, vocab 777, tied', shape('llama', 128, 2, 1, 777, { tied: true })],
  ['llama hd256 2/1 heads, vocab 301', shape('llama', 256, 2, 1, 301)],
  ['llama hd64 4/2 heads, f16', shape('llama', 64, 4, 2, 1001, { dtype: 'f16' })],
  ['llama hd128 2/1 heads, f16, tied', shape('llama', 128, 2, 1, 301, { dtype: 'f16', tied: true })],
  ['llama hd64 4/2 heads, q8_0', shape('llama', 64, 4, 2, 1001, { dtype: 'q8_0' })],
  ['llama hd64 4/2 heads, bf16', shape('llama', 64, 4, 2, 1001, { dtype: 'bf16' })],
  ['llama hd96 3/1 heads, q8_0, tied', shape('llama', 96, 3, 1, 301, { dtype: 'q8_0', tied: true })],
  ['llama rope_freqs (Llama-3.1 scaling), theta 5e5', LLAMA3],
  ['llama linear rope scaling x4', LINEAR],
  // Qwen2: q/k/v biases, NeoX rope
  ['qwen2 hd64 4/2 heads, theta 1e6, tied', shape('qwen2', 64, 4, 2, 1001, { tied: true, ropeTheta: 1e6 })],
  ['qwen2 hd128 4/1 heads (GQA 4), vocab 301', shape('qwen2', 128, 4, 1, 301)],
  ['qwen2 hd64 4/2 heads, f16', shape('qwen2', 64, 4, 2, 517, { dtype: 'f16' })],
  ['qwen2 hd64 4/2 heads, q8_0, tied', shape('qwen2', 64, 4, 2, 517, { dtype: 'q8_0', tied: true })],
  // Phi-3: fused attn_qkv and ffn_up (gate ‖ up), NeoX rope
  ['phi3 hd64 4/4 heads, vocab 301', shape('phi3', 64, 4, 4, 301)],
  ['phi3 hd96 3/1 heads (GQA 3), vocab 1001, tied', shape('phi3', 96, 3, 1, 1001, { tied: true })],
  ['gemma2 hd64 4/2 heads, window 5, caps 50/30', GEMMA],
  ['gemma2 head dim 96 with dim 128 (key_length), window 7, caps 3/8 (both biting), f16', GEMMA_CAPS],
  ['gemma2 3 layers, window pattern 3 (layers 0 and 1 sliding), window 5', GEMMA_PATTERN],
  // no window or cap keys: llama.cpp's defaults (4096, 50, 30) must apply on both sides
  ['gemma2 without window and cap keys', shape('gemma2', 64, 4, 2, 301)],
  ['gemma2 sliding layers with their own rope base (rope.freq_base_swa 1e4, global 1e6), window 5', shape('gemma2', 64, 4, 2, 301, { slidingWindow: 5, ropeTheta: 1e6, keys: [['rope.freq_base_swa', gv.f32(1e4)]] })],
  ['llama YaRN x4 over an original context of 64', shape('llama', 64, 4, 2, 301, { keys: yarn(4, 64) })],
  ['qwen2 YaRN x4 over 64, theta 1e6, tied', shape('qwen2', 64, 4, 2, 517, { tied: true, ropeTheta: 1e6, keys: yarn(4, 64) })],
  // Qwen3: per-head q/k RMSNorms before rope
  ['qwen3 hd64 4/2 heads, vocab 1001', shape('qwen3', 64, 4, 2, 1001)],
  ['qwen3 hd128 4/1 heads, tied, theta 1e6', shape('qwen3', 128, 4, 1, 301, { tied: true, ropeTheta: 1e6 })],
  ['gemma hd64 4/4 heads', shape('gemma', 64, 4, 4, 517)],
  ['gemma hd256 2/1 heads', shape('gemma', 256, 2, 1, 301)],
  // Gemma-3: 5 sliding layers (base 10000) then a global one (the file's base and scaling)
  ['gemma3 6 layers, window 5, global theta 1e6', GEMMA3],
  ['gemma3 6 layers, window 5, global linear scaling x8', { ...GEMMA3, ropeScaling: { type: 'linear', factor: 8 } }],
  ['gemma3 3 layers, window pattern 3, f16', shape('gemma3', 64, 4, 2, 301, { nLayers: 3, slidingWindow: 5, slidingWindowPattern: 3, dtype: 'f16' })],
];

/** Index of the largest value (the lowest index on ties, as both engines' greedy pick). */
function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/** max |a - b| / max |b| */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return d / scale;
}

/**
 * Where greedy ids `a` and `b` first part, and the gap between the two picks there in
 * `logits` (the logits of each step, on the shared prefix) relative to its largest |logit|.
 */
function parting(a: number[], b: number[], logits: Float32Array[]): { step: number; gap: number } | undefined {
  const step = a.findIndex((id, i) => id !== b[i]);
  if (step < 0) return undefined;
  const row = logits[step];
  return { step, gap: Math.abs(row[a[step]] - row[b[step]]) / Math.max(...Array.from(row, Math.abs)) };
}

/** The largest relDiff of matching rows. */
const worstRow = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((row, i) => relDiff(row, b[i])));

const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-arch-diff-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

async function write(spec: SyntheticModelSpec): Promise<string> {
  const file = path.join(dir, `${files++}.gguf`);
  await writeSyntheticModel(file, spec);
  return file;
}

function promptFor(s: SyntheticModelSpec): number[] {
  const rng = new Rng(s.vocabSize * 7 + s.dim);
  return Array.from({ length: PROMPT }, () => 3 + Math.floor(rng.next() * (s.vocabSize - 3)));
}

/** llama.cpp's logits after tokens[from], tokens[from + 1], ... (one evaluation from position 0). */
async function llamaCppLogits(s: LlamaCppSession, tokens: number[], from: number, vocab: number): Promise<Float32Array[]> {
  await s.seq.clearHistory();
  const res = await s.seq.controlledEvaluate(tokens.map((id, j) => (j >= from ? [id, { generateNext: { logits: true } }] : id)));
  return tokens.slice(from).map((_, i) => {
    const m: Map<number, number> = res[from + i].next.logits;
    assert.equal(m.size, vocab, 'llama.cpp gave logits of the whole vocabulary');
    const row = new Float32Array(vocab);
    for (const [id, v] of m) row[id] = v;
    return row;
  });
}

async function withLlamaCpp<T>(llama: any, file: string, fn: (s: LlamaCppSession) => Promise<T>): Promise<T> {
  const s = await openLlamaCpp(llama, file, CONTEXT);
  try {
    return await fn(s);
  } finally {
    await s.dispose();
  }
}

/** fuselm's logits after tokens[from], tokens[from + 1], ... (one evaluation from position 0). */
async function fuselmLogits(m: Model, tokens: number[], from: number): Promise<Float32Array[]> {
  const V = m.config.vocabSize;
  const all = await m.evaluate(tokens, { allLogits: true });
  return tokens.slice(from).map((_, i) => all.slice((from + i) * V, (from + i + 1) * V));
}

const fuselmOptions: LoadModelOptions = { kvType: 'f32', contextSize: CONTEXT };

function fuselmGreedy(m: Model, prompt: number[], n = GENERATE): Promise<number[]> {
  return m.generate(prompt, { maxTokens: n, temperature: 0, ignoreEog: true }).then((r) => r.ids);
}

describe('llama.cpp differential: random-weight GGUFs of every architecture and shape', function () {
  let llama: any;
  before(async function () {
    llama = await requireLlamaCpp(this);
  });

  for (const [name, spec] of VARIANTS) {
    const tol = tolerance(spec);
    it(`${name}: logits within ${tol} and the same greedy ids as llama.cpp`, async () => {
      const file = await write(spec);
      const prompt = promptFor(spec), V = spec.vocabSize;
      // llama.cpp's greedy path, and both engines' logits along it
      const theirs = await withLlamaCpp(llama, file, async (s) => {
        const ids = await llamaCppGreedy(s.seq, prompt, GENERATE);
        const first = (await llamaCppLogits(s, prompt.slice(0, 1), 0, V))[0];
        return { ids, first, logits: await llamaCppLogits(s, [...prompt, ...ids.slice(0, -1)], PROMPT - 1, V) };
      });
      const tokens = [...prompt, ...theirs.ids.slice(0, -1)];
      await using m = await loadModel(file, fuselmOptions);
      const mine = await fuselmGreedy(m, prompt);
      const ours = await fuselmLogits(m, tokens, PROMPT - 1);
      // the harness reads llama.cpp's logits at the positions its greedy picks came from
      theirs.ids.forEach((id, step) => assert.equal(argmax(theirs.logits[step]), id, `llama.cpp's pick at step ${step} is its argmax`));
      const worst = worstRow(ours, theirs.logits);

      // f16, bf16 and q8_0: the same values as f32, in llama.cpp, against fuselm without activation rounding
      let widened: number | undefined;
      if (spec.dtype !== 'f32') {
        const twin = await write({ ...spec, widened: true });
        const exact = await withLlamaCpp(llama, twin, (s) => llamaCppLogits(s, tokens, PROMPT - 1, V));
        await using plain = spec.dtype === 'q8_0' ? await loadModel(file, { ...fuselmOptions, impl: 'reference' }) : undefined;
        widened = worstRow(plain ? await fuselmLogits(plain, tokens, PROMPT - 1) : ours, exact);
      }
      const tight = exactTolerance(spec);
      const first = relDiff(await m.evaluate(prompt.slice(0, 1)), theirs.first);

      // the first prompt token reaches the last position: attention spans the prompt
      const shifted = [(prompt[0] + 1) % V, ...prompt.slice(1)];
      const reach = relDiff(await m.evaluate(shifted), await m.evaluate(prompt));
      const part = parting(mine, theirs.ids, ours);
      console.log(
        `      max |fuselm - llama.cpp| / max |logit| = ${worst.toExponential(2)}` +
          (spec.dtype === 'q8_0' ? ` (after the first token ${first.toExponential(2)})` : '') +
          (widened === undefined ? '' : `, on the widened twin ${widened.toExponential(2)}`) +
          `; first-token reach ${reach.toExponential(2)}; ` +
          (part ? `greedy ids part at step ${part.step} (${mine[part.step]} vs ${theirs.ids[part.step]}), a near-tie of ${part.gap.toExponential(2)}` : `${GENERATE}/${GENERATE} greedy ids equal`),
      );
      assert.ok(worst <= tol, `logits differ by ${worst} of the largest (tolerance ${tol})`);
      assert.ok(first <= (spec.dtype === 'q8_0' ? TOL.q8_0First : tol), `after the first token, logits differ by ${first} of the largest`);
      if (widened !== undefined) assert.ok(widened <= tight, `on the widened twin, logits differ by ${widened} of the largest (tolerance ${tight})`);
      assert.ok(reach > 10 * tight, `the last logits barely depend on the first token (${reach}): the comparison would not see attention`);
      assert.equal(mine.length, GENERATE);
      if (part) assert.ok(part.gap <= tol, `greedy ids part at step ${part.step} with a logit gap of ${part.gap} of the largest: not a near-tie`);
    });
  }

  // fuselm on the file as written, llama.cpp on it with one key changed (widened, so that only
  // the change separates them): their last logits must differ beyond the tolerance, or the
  // comparisons above could not see that key
  const CHANGES: Array<[what: string, spec: SyntheticModelSpec, changed: Partial<SyntheticModelSpec>]> = [
    ['sliding window 5 -> 6', GEMMA, { slidingWindow: 6 }],
    ['window pattern 3 -> 2', GEMMA_PATTERN, { slidingWindowPattern: 2 }],
    ['attention cap 3 -> 3.3', GEMMA_CAPS, { attnSoftcap: 3.3 }],
    ['final cap 8 -> 8.8', GEMMA_CAPS, { finalSoftcap: 8.8 }],
    ['rope base 5e5 -> 5.5e5', LLAMA3, { ropeTheta: 5.5e5 }],
    ['rope_freqs left out (as fuselm once ignored it)', LLAMA3, { ropeFreqs: undefined }],
    ['linear rope factor 4 -> 4.4', LINEAR, { ropeScaling: { type: 'linear', factor: 4.4 } }],
  ];
  for (const [what, spec, changed] of CHANGES)
    it(`sees a one-key change: ${what}`, async () => {
      const prompt = promptFor(spec), tol = exactTolerance(spec);
      const other = await write({ ...spec, ...changed, widened: spec.dtype !== 'f32' });
      const theirs = await withLlamaCpp(llama, other, (s) => llamaCppLogits(s, prompt, PROMPT - 1, spec.vocabSize));
      await using m = await loadModel(await write(spec), fuselmOptions);
      const moved = relDiff(await m.evaluate(prompt), theirs[0]);
      console.log(`      moves the last logits by ${moved.toExponential(2)} of the largest (tolerance ${tol})`);
      assert.ok(moved > 3 * tol, `${what}: ${moved}`);
    });
});

// The emulator is slow, so a shorter prompt (still longer than every window) and fewer tokens.
// q8_0: CUDA's kernels round the activations to q8_0 blocks as the CPU does (W8A8) but sum in
// another order (and its GEMM scales each block's int32 sum in f32), so the two may part at a
// near-tie (within TOL.q8_0 in the CPU's logits).
describe('random-weight GGUFs of every architecture and shape on the emulated CUDA backend', function () {
  for (const [name, spec] of VARIANTS)
    it(`${name}: the CPU's greedy ids`, async () => {
      const file = await write(spec);
      const prompt = promptFor(spec).slice(0, 12), n = 8;
      await using cpu = await loadModel(file, { ...fuselmOptions, device: 'cpu' });
      await using gpu = await loadOnCuda(file, fuselmOptions);
      const want = await fuselmGreedy(cpu, prompt, n), got = await fuselmGreedy(gpu, prompt, n);
      const part = parting(got, want, await fuselmLogits(cpu, [...prompt, ...want.slice(0, -1)], prompt.length - 1));
      if (part) console.log(`      greedy ids part at step ${part.step}, a near-tie of ${part.gap.toExponential(2)}`);
      if (spec.dtype !== 'q8_0' || !part) assert.deepEqual(got, want);
      else assert.ok(part.gap <= TOL.q8_0, `greedy ids part at step ${part.step} with a logit gap of ${part.gap} of the largest: not a near-tie`);
    });
});
