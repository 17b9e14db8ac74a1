/**
 * Encoder-decoder models (T5, BART): the encoder reads the input once; each decoder layer's
 * cross-attention K/V are projected from its output once per input and kept; then the decoder
 * generates one token per sequence and step from its start token, with a self-attention KV
 * cache per sequence. generate(), stream() and beamSearch() take the encoder's input (text or
 * ids) and return the decoder's tokens, the start token not counted. Several inputs given to
 * generate() are packed into one encoder pass (each attends over its own rows only: no padding
 * reaches a score) and decoded as parallel sequences; the beams of beamSearch() share the one
 * encoder output and its cross K/V.
 *
 * The two architectures differ in a few lines of the op lists (`#encoderNodes`,
 * `#decoderNodes`): T5 is pre-norm with RMS norms, a relative position bias (one table per
 * stack, shared by its layers, expanded at load into a bias per head and distance: the
 * seq2seq_attention op's posBias), unscaled q·k and a gated or plain FFN; BART is post-norm
 * with LayerNorms, learned positions (offset 2) behind a LayerNorm of the embeddings, biases
 * everywhere, and a final_logits_bias. lib/model/t5.ts and lib/model/bart.ts read their files.
 */
import type { NativeTensor } from '../../bindings.js';
import { type Backend, CpuBackend, type Graph, ops, type SeqSpan } from '../backend.js';
import type { GraphNode } from '../ops/table.js';
import { beamConstraint, type GrammarOptions, grammarMasks } from '../grammar/constraint.js';
import { type BeamEndOptions, type BeamHypothesis, type BeamSearchOptions, beamSearch, checkBeamOptions, hypothesisEnds } from '../beam.js';
import { FuselmError } from '../errors.js';
import { CallQueue } from './call-queue.js';
import type { GenerationConfig } from '../formats/hf.js';
import { type FinishReason, type GenerateOptions, type GenerateResult, SequenceRun, type StreamChunk, checkGenerateOptions, generationDefaults } from '../generate.js';
import { emptyTensor, readF32Rows } from '../tensor.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { DecodeCall, type Timings } from './decode-call.js';

export interface EncoderDecoderConfig {
  architecture: 't5' | 'bart';
  vocabSize: number;
  dim: number;
  nHeads: number;
  headDim: number;
  ffnDim: number;
  encoderLayers: number;
  decoderLayers: number;
  normEps: number;
  /** The FFN's activation; gated: act(x·wGate) * (x·wUp) (T5 v1.1's gated-gelu). */
  act: 'gelu' | 'gelu_tanh' | 'relu';
  gated: boolean;
  /** Multiplies q·k: T5 1 (folded into its weights), BART 1/sqrt(headDim). */
  attnScale: number;
  /** Multiplies the token embeddings (BART's scale_embedding: sqrt(dim)). */
  embedScale: number;
  /** Multiplies the decoder's last hidden state before the LM head (T5 with tied embeddings: dim^-0.5). */
  outputScale: number;
  /** The LM head is the embedding table (a folder's tie_word_embeddings; a GGUF without output.weight). */
  tiedEmbeddings: boolean;
  /** T5: relative-attention buckets and the distance where they saturate. */
  relBuckets?: number;
  relMaxDistance?: number;
  /** BART: rows of the learned position tables (positions are offset by 2 into them). */
  positionRows?: number;
  decoderStartId: number;
  /** Forced first and last tokens (BART's forced_bos_token_id / forced_eos_token_id). */
  forcedBosId?: number;
  forcedEosId?: number;
  /** Most encoder tokens and decoder positions. */
  maxEncoderTokens: number;
  maxDecoderTokens: number;
}

/** One layer's weights; the decoder's have the cross-attention too. Biases and the gate are as the architecture has them. */
export interface EncDecLayer {
  attnNorm: NativeTensor; attnNormB?: NativeTensor;
  wq: NativeTensor; wk: NativeTensor; wv: NativeTensor; wo: NativeTensor;
  bq?: NativeTensor; bk?: NativeTensor; bv?: NativeTensor; bo?: NativeTensor;
  crossNorm?: NativeTensor; crossNormB?: NativeTensor;
  cq?: NativeTensor; ck?: NativeTensor; cv?: NativeTensor; co?: NativeTensor;
  cbq?: NativeTensor; cbk?: NativeTensor; cbv?: NativeTensor; cbo?: NativeTensor;
  ffnNorm: NativeTensor; ffnNormB?: NativeTensor;
  wUp: NativeTensor; bUp?: NativeTensor; wGate?: NativeTensor; wDown: NativeTensor; bDown?: NativeTensor;
}

export interface EncDecWeights {
  embed: NativeTensor;
  /** The LM head (the embedding table itself when tied). */
  lmHead: NativeTensor;
  finalLogitsBias?: NativeTensor;
  /** T5: the relative position bias, per head and distance j - i in -R..R: f32 [nHeads, 2R + 1]. */
  encRelBias?: NativeTensor; decRelBias?: NativeTensor;
  /** T5: the norms after each stack. */
  encFinalNorm?: NativeTensor; decFinalNorm?: NativeTensor;
  /** BART: learned positions and the LayerNorm of the embeddings. */
  encPos?: NativeTensor; decPos?: NativeTensor;
  encEmbNorm?: NativeTensor; encEmbNormB?: NativeTensor; decEmbNorm?: NativeTensor; decEmbNormB?: NativeTensor;
  enc: EncDecLayer[];
  dec: EncDecLayer[];
}

export function encDecTensors(w: EncDecWeights): NativeTensor[] {
  const own = [w.embed, w.lmHead, w.finalLogitsBias, w.encRelBias, w.decRelBias, w.encFinalNorm, w.decFinalNorm, w.encPos, w.decPos, w.encEmbNorm, w.encEmbNormB, w.decEmbNorm, w.decEmbNormB];
  const all = [...own, ...[...w.enc, ...w.dec].flatMap((L) => Object.values(L) as NativeTensor[])].filter((t): t is NativeTensor => t !== undefined);
  return [...new Set(all)];
}

/**
 * T5's bucket of a relative position (key minus query), as transformers computes it: half the
 * buckets for each direction when bidirectional; exact below half of them, then logarithmic
 * up to maxDistance, where they saturate.
 */
export function t5Bucket(rel: number, bidirectional: boolean, buckets: number, maxDistance: number): number {
  let nb = buckets, bucket = 0, n: number;
  if (bidirectional) {
    nb = Math.floor(nb / 2);
    if (rel > 0) bucket += nb;
    n = Math.abs(rel);
  } else n = Math.max(-rel, 0);
  const maxExact = Math.floor(nb / 2);
  if (n < maxExact) return bucket + n;
  // transformers: float32 log ratio, then truncation toward zero
  const f = Math.fround(Math.fround(Math.log(Math.fround(n / maxExact))) / Math.fround(Math.log(maxDistance / maxExact)));
  const large = maxExact + Math.trunc(Math.fround(f * (nb - maxExact)));
  return bucket + Math.min(large, nb - 1);
}

/** T5's bias table [buckets, nHeads] (row-major, as stored) expanded to [nHeads, 2R + 1] by distance -R..R, R = maxDistance. */
export function expandRelBias(table: Float32Array, nHeads: number, bidirectional: boolean, buckets: number, maxDistance: number): Float32Array {
  const R = maxDistance, W = 2 * R + 1, out = new Float32Array(nHeads * W);
  for (let d = -R; d <= R; d++) {
    const b = t5Bucket(d, bidirectional, buckets, maxDistance);
    for (let h = 0; h < nHeads; h++) out[h * W + d + R] = table[b * nHeads + h];
  }
  return out;
}

/** beamSearch()'s options, as Model's (lib/model/model.ts BeamSearchModelOptions). */
export interface EncoderDecoderBeamOptions extends BeamSearchOptions, BeamEndOptions, GrammarOptions {
  addSpecial?: boolean;
  signal?: AbortSignal;
}

/** beamSearch()'s result, as Model's: the best hypotheses first, the encoder input's ids, timings. */
export interface EncoderDecoderBeamResult {
  sequences: (Omit<BeamHypothesis, 'finishReason'> & { text: string; finishReason: FinishReason })[];
  promptIds: number[];
  timings: Timings;
}

export interface EncoderDecoderInit {
  generationConfig: GenerationConfig;
}

/** One sequence of #generate: its encoder input's ids, its options and its run (sampler, stop strings, text). */
interface DecoderSequence {
  ids: number[];
  o: GenerateOptions;
  run: SequenceRun;
}

/** The most inputs one generate() call decodes as parallel sequences (as Model's MAX_SEQUENCES). */
const MAX_INPUTS = 256;

/** The encoder pass's tensors: inputs packed row after row, scratch K/V caches for one input at a time. */
type EncoderTensors = Record<'ids' | 'posIds' | 'zeroPos' | 'x' | 'xn' | 'xb' | 'q' | 'k' | 'v' | 'att' | 'hb' | 'hg' | 'kc' | 'vc', NativeTensor>;

/** One encoded batch: per input its token count and, per decoder layer, its cross K and V. */
interface Encoded {
  lengths: number[];
  crossK: NativeTensor[][];
  crossV: NativeTensor[][];
  hidden: Float32Array;
}

/** The decoder state of `n` sequences: self-attention caches per sequence and layer, and its graph. */
class DecoderState {
  readonly kSelf: NativeTensor[][];
  readonly vSelf: NativeTensor[][];
  readonly ids: NativeTensor;
  readonly posIds: NativeTensor;
  readonly positions: NativeTensor;
  readonly x: Record<'x' | 'xn' | 'xb' | 'q' | 'k' | 'v' | 'att' | 'hb' | 'hg' | 'logits', NativeTensor>;
  graph: Graph | undefined;

  constructor(be: Backend, c: EncoderDecoderConfig, readonly n: number, readonly rows: number) {
    const f = (cols: number) => be.empty('f32', [n, cols]);
    const D = c.dim, A = c.nHeads * c.headDim;
    this.kSelf = Array.from({ length: n }, () => Array.from({ length: c.decoderLayers }, () => be.empty('f32', [rows, A])));
    this.vSelf = Array.from({ length: n }, () => Array.from({ length: c.decoderLayers }, () => be.empty('f32', [rows, A])));
    this.ids = emptyTensor('i32', [n]);
    this.posIds = emptyTensor('i32', [n]);
    this.positions = emptyTensor('i32', [n]);
    this.x = { x: f(D), xn: f(D), xb: f(D), q: f(A), k: f(A), v: f(A), att: f(A), hb: f(c.ffnDim), hg: f(c.ffnDim), logits: be.empty('f32', [n, c.vocabSize]) };
  }

  /** Sequence s continues sequence from[s]: its first `rows` cache rows are copied over (beam search). */
  copyRows(from: number[], rows: number): void {
    if (rows === 0) return;
    const bytes = rows * this.kSelf[0][0].nbytes / this.rows;
    const snap = new Map<number, ArrayBuffer[]>();
    for (const f of new Set(from.filter((f, s) => f !== s))) snap.set(f, [...this.kSelf[f], ...this.vSelf[f]].map((t) => t.read(0, bytes)));
    from.forEach((f, s) => {
      if (f === s) return;
      const src = snap.get(f)!;
      [...this.kSelf[s], ...this.vSelf[s]].forEach((t, i) => t.write(new Uint8Array(src[i])));
    });
  }

  dispose(): void {
    this.graph?.dispose();
    for (const t of [...this.kSelf.flat(), ...this.vSelf.flat(), this.ids, this.posIds, this.positions, ...Object.values(this.x)]) t.free();
  }
}

/**
 * A T5 or BART model. loadModel returns one for their files, typed as Model: generate(),
 * stream(), beamSearch() and the fields the CLI reads are the same; a decoder-only model's
 * chat(), evaluate() and openSlots() are E_UNSUPPORTED here (clearCache() has nothing to clear).
 */
export class EncoderDecoderModel {
  readonly isEncoderDecoder = true;
  readonly path: string;
  readonly config: EncoderDecoderConfig;
  readonly tokenizer: Tokenizer;
  readonly device: 'cpu' | 'cuda';
  readonly threads: number | undefined;
  /** Most decoder positions (the start token and the generated tokens). */
  readonly contextSize: number;
  readonly generationConfig: GenerationConfig;
  lastTimings: Timings | undefined;
  lastFinishReason: FinishReason | undefined;
  #w: EncDecWeights | undefined;
  #be: Backend;
  readonly #calls = new CallQueue(() => this.#w !== undefined);

  constructor(path: string, c: EncoderDecoderConfig, tokenizer: Tokenizer, w: EncDecWeights, be: Backend, o: EncoderDecoderInit) {
    this.path = path;
    this.config = c;
    this.tokenizer = tokenizer;
    this.device = be.device === 'cpu' ? 'cpu' : 'cuda';
    this.threads = be instanceof CpuBackend ? be.threads : undefined;
    this.contextSize = c.maxDecoderTokens;
    this.generationConfig = o.generationConfig;
    this.#w = w;
    this.#be = be;
  }


  /**
   * The encoder's input ids: a text (with the tokenizer's special tokens unless addSpecial is
   * false; a large one encoded off the JS thread, by encodeAsync) or ids, checked.
   */
  async #inputIds(input: string | number[], addSpecial?: boolean): Promise<number[]> {
    const c = this.config, tok = this.tokenizer, o = { addSpecial: addSpecial ?? true };
    const ids = typeof input === 'string' ? await (tok.encodeAsync ? tok.encodeAsync(input, o) : tok.encode(input, o)) : input;
    if (!Array.isArray(ids)) throw new FuselmError('E_INVALID_ARG', 'the input must be a string or an array of token ids');
    if (ids.length === 0) throw new FuselmError('E_INVALID_ARG', 'the encoder input is empty');
    if (ids.length > c.maxEncoderTokens) throw new FuselmError('E_CONTEXT_FULL', `the input has ${ids.length} tokens; the encoder takes at most ${c.maxEncoderTokens}`);
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new FuselmError('E_INVALID_ARG', `token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
    return [...ids];
  }

  // ---- the op lists -----------------------------------------------------------------------

  /** out = x·w (+ b) */
  static #linear(out: NativeTensor, x: NativeTensor, w: NativeTensor, b?: NativeTensor): GraphNode[] {
    return b ? [ops.matmul(out, x, w), ops.addBias(out, out, b)] : [ops.matmul(out, x, w)];
  }

  #norm(out: NativeTensor, x: NativeTensor, w: NativeTensor, b: NativeTensor | undefined): GraphNode {
    return b ? ops.layerNorm(out, x, w, b, this.config.normEps) : ops.rmsNorm(out, x, w, this.config.normEps);
  }

  /** xb = FFN(xn): act(xn·wUp) or act(xn·wGate) * (xn·wUp), then ·wDown. */
  #ffn(L: EncDecLayer, t: { xn: NativeTensor; xb: NativeTensor; hb: NativeTensor; hg: NativeTensor }): GraphNode[] {
    const lin = EncoderDecoderModel.#linear, act = this.config.act;
    const activate = (h: NativeTensor) => (act === 'relu' ? ops.relu(h, h) : ops.gelu(h, h, { tanh: act === 'gelu_tanh' }));
    const up = L.wGate
      ? [ops.matmul(t.hg, t.xn, L.wGate), activate(t.hg), ops.matmul(t.hb, t.xn, L.wUp), ops.mul(t.hb, t.hg, t.hb)]
      : [...lin(t.hb, t.xn, L.wUp, L.bUp), activate(t.hb)];
    return [...up, ...lin(t.xb, t.hb, L.wDown, L.bDown)];
  }

  /**
   * One sublayer with its residual: pre-norm (T5) x += f(norm(x)); post-norm (BART)
   * x = norm(x + f(x)).
   */
  #residual(t: { x: NativeTensor; xn: NativeTensor; xb: NativeTensor }, norm: NativeTensor, normB: NativeTensor | undefined, f: (input: NativeTensor) => GraphNode[]): GraphNode[] {
    if (this.config.architecture === 't5') return [this.#norm(t.xn, t.x, norm, normB), ...f(t.xn), ops.add(t.x, t.x, t.xb)];
    return [...f(t.x), ops.add(t.x, t.x, t.xb), this.#norm(t.x, t.x, norm, normB)];
  }

  /** Embeddings of ids (and, for BART, positions posIds already offset by 2, and its LayerNorm) into t.x. */
  #embed(t: { x: NativeTensor; xb: NativeTensor }, ids: NativeTensor, posIds: NativeTensor, pos?: NativeTensor, norm?: NativeTensor, normB?: NativeTensor): GraphNode[] {
    const c = this.config, w = this.#w!;
    const nodes = [ops.embedding(t.x, w.embed, ids)];
    if (c.embedScale !== 1) nodes.push(ops.scale(t.x, t.x, c.embedScale));
    if (pos) nodes.push(ops.embedding(t.xb, pos, posIds), ops.add(t.x, t.x, t.xb));
    if (norm) nodes.push(this.#norm(t.x, t.x, norm, normB));
    return nodes;
  }

  /**
   * The encoder over inputs packed row after row (`lengths`), then every decoder layer's cross
   * K/V of each input stored in its own tensors. The self-attention runs per input through
   * scratch caches, so each attends over its own tokens only.
   */
  #encoderNodes(t: EncoderTensors, lengths: number[], enc: Encoded): GraphNode[] {
    const c = this.config, w = this.#w!, lin = EncoderDecoderModel.#linear;
    let row0 = 0;
    const spans: SeqSpan[] = lengths.map((rows) => ((row0 += rows), { row0: row0 - rows, rows, slot: 0 }));
    const attn = { nHeads: c.nHeads, headDim: c.headDim, scale: c.attnScale, causal: false, posBias: w.encRelBias };
    const nodes = this.#embed(t, t.ids, t.posIds, w.encPos, w.encEmbNorm, w.encEmbNormB);
    for (const L of w.enc) {
      nodes.push(...this.#residual(t, L.attnNorm, L.attnNormB, (h) => [
        ...lin(t.q, h, L.wq, L.bq), ...lin(t.k, h, L.wk, L.bk), ...lin(t.v, h, L.wv, L.bv),
        ...spans.flatMap((s) => [ops.kvStore(t.kc, t.k, s), ops.kvStore(t.vc, t.v, s), ops.seq2seqAttention(t.att, t.q, t.kc, t.vc, attn, s)]),
        ...lin(t.xb, t.att, L.wo, L.bo),
      ]));
      nodes.push(...this.#residual(t, L.ffnNorm, L.ffnNormB, (h) => this.#ffn(L, { ...t, xn: h })));
    }
    if (w.encFinalNorm) nodes.push(ops.rmsNorm(t.x, t.x, w.encFinalNorm, c.normEps));
    w.dec.forEach((L, l) => {
      nodes.push(...lin(t.k, t.x, L.ck!, L.cbk), ...lin(t.v, t.x, L.cv!, L.cbv));
      spans.forEach((s, e) => nodes.push(ops.kvStore(enc.crossK[e][l], t.k, s), ops.kvStore(enc.crossV[e][l], t.v, s)));
    });
    return nodes;
  }

  /** One decoder step of every sequence of `st` (a token each); sequence s reads the cross K/V of input inputOf[s]. */
  #decoderNodes(st: DecoderState, enc: Encoded, inputOf: number[]): GraphNode[] {
    const c = this.config, w = this.#w!, t = st.x, lin = EncoderDecoderModel.#linear;
    const spans: SeqSpan[] = inputOf.map((_, s) => ({ row0: s, rows: 1, slot: s }));
    const self = { nHeads: c.nHeads, headDim: c.headDim, scale: c.attnScale, causal: true, posBias: w.decRelBias };
    const nodes = this.#embed(t, st.ids, st.posIds, w.decPos, w.decEmbNorm, w.decEmbNormB);
    w.dec.forEach((L, l) => {
      nodes.push(...this.#residual(t, L.attnNorm, L.attnNormB, (h) => [
        ...lin(t.q, h, L.wq, L.bq), ...lin(t.k, h, L.wk, L.bk), ...lin(t.v, h, L.wv, L.bv),
        ...spans.flatMap((sp, s) => [
          ops.kvStore(st.kSelf[s][l], t.k, sp), ops.kvStore(st.vSelf[s][l], t.v, sp),
          ops.seq2seqAttention(t.att, t.q, st.kSelf[s][l], st.vSelf[s][l], self, sp),
        ]),
        ...lin(t.xb, t.att, L.wo, L.bo),
      ]));
      nodes.push(...this.#residual(t, L.crossNorm!, L.crossNormB, (h) => [
        ...lin(t.q, h, L.cq!, L.cbq),
        ...spans.map((sp, s) => {
          const e = inputOf[s];
          return ops.seq2seqAttention(t.att, t.q, enc.crossK[e][l], enc.crossV[e][l], { nHeads: c.nHeads, headDim: c.headDim, scale: c.attnScale, causal: false, keys: enc.lengths[e] }, sp);
        }),
        ...lin(t.xb, t.att, L.co!, L.cbo),
      ]));
      nodes.push(...this.#residual(t, L.ffnNorm, L.ffnNormB, (h) => this.#ffn(L, { ...t, xn: h })));
    });
    if (w.decFinalNorm) nodes.push(ops.rmsNorm(t.x, t.x, w.decFinalNorm, c.normEps));
    if (c.outputScale !== 1) nodes.push(ops.scale(t.x, t.x, c.outputScale));
    nodes.push(ops.matmul(t.logits, t.x, w.lmHead));
    if (w.finalLogitsBias) nodes.push(ops.addBias(t.logits, t.logits, w.finalLogitsBias));
    return nodes;
  }

  // ---- running them -----------------------------------------------------------------------

  /** Runs the encoder over inputs (packed) and makes their cross K/V; the caller frees them (#freeEncoded). */
  async #encode(inputs: number[][]): Promise<Encoded> {
    const c = this.config, be = this.#be, D = c.dim, A = c.nHeads * c.headDim;
    const lengths = inputs.map((ids) => ids.length), n = lengths.reduce((a, b) => a + b, 0);
    const maxLen = Math.max(...lengths);
    const enc: Encoded = {
      lengths,
      crossK: lengths.map((len) => this.#w!.dec.map(() => be.empty('f32', [len, A]))),
      crossV: lengths.map((len) => this.#w!.dec.map(() => be.empty('f32', [len, A]))),
      hidden: new Float32Array(0),
    };
    const f = (cols: number, rows = n) => be.empty('f32', [rows, cols]);
    const t: EncoderTensors = {
      ids: emptyTensor('i32', [n]), posIds: emptyTensor('i32', [n]), zeroPos: emptyTensor('i32', [1]),
      x: f(D), xn: f(D), xb: f(D), q: f(A), k: f(A), v: f(A), att: f(A), hb: f(c.ffnDim), hg: f(c.ffnDim),
      kc: f(A, maxLen), vc: f(A, maxLen),
    };
    let g: Graph | undefined;
    try {
      t.ids.write(Int32Array.from(inputs.flat()));
      t.posIds.write(Int32Array.from(inputs.flatMap((ids) => ids.map((_, i) => i + 2))));
      t.zeroPos.write(Int32Array.of(0));
      g = be.graph(this.#encoderNodes(t, lengths, enc), n, t.zeroPos);
      await g.run(n, 0);
      enc.hidden = readF32Rows(t.x, 0, n);
      return enc;
    } catch (e) {
      this.#freeEncoded(enc);
      throw e;
    } finally {
      g?.dispose();
      for (const x of Object.values(t)) x.free();
    }
  }

  #freeEncoded(enc: Encoded): void {
    for (const x of [...enc.crossK.flat(), ...enc.crossV.flat()]) x.free();
  }

  /** A decoder state of n sequences with room for `rows` positions, its graph reading inputs inputOf[s]. */
  #decoderState(enc: Encoded, inputOf: number[], rows: number): DecoderState {
    const st = new DecoderState(this.#be, this.config, inputOf.length, rows);
    try {
      st.graph = this.#be.graph(this.#decoderNodes(st, enc, inputOf), inputOf.length, st.positions);
      return st;
    } catch (e) {
      st.dispose();
      throw e;
    }
  }

  /** One step: token ids[s] at position pos[s] of each sequence; the logits of each. */
  async #step(st: DecoderState, ids: number[], pos: number[]): Promise<Float32Array[]> {
    const V = this.config.vocabSize;
    st.ids.write(Int32Array.from(ids));
    st.positions.write(Int32Array.from(pos));
    st.posIds.write(Int32Array.from(pos, (p) => p + 2));
    await st.graph!.run(st.n, 0);
    const all = readF32Rows(st.x.logits, 0, st.n);
    return ids.map((_, s) => all.slice(s * V, (s + 1) * V));
  }

  /** The forced tokens of generation_config (BART): the first token, and the last one at the token limit. */
  #force(logits: Float32Array, generated: number, maxTokens: number): Float32Array {
    const c = this.config;
    const forced = generated === 0 && c.forcedBosId !== undefined ? c.forcedBosId : generated === maxTokens - 1 && c.forcedEosId !== undefined ? c.forcedEosId : undefined;
    if (forced !== undefined) {
      logits.fill(-Infinity);
      logits[forced] = 0;
    }
    return logits;
  }

  /** The encoder's last hidden states [tokens * dim] of one input (text or ids). */
  encode(input: string | number[], opts: { addSpecial?: boolean } = {}): Promise<Float32Array> {
    return this.#calls.run(async () => {
      const enc = await this.#encode([await this.#inputIds(input, opts.addSpecial)]);
      this.#freeEncoded(enc);
      return enc.hidden;
    });
  }

  /**
   * The decoder's logits for the token after its start token and `decoderIds` (none: the
   * first step's), for an input (text or encoder ids).
   */
  logits(input: string | number[], decoderIds: number[] = [], opts: { addSpecial?: boolean } = {}): Promise<Float32Array> {
    return this.#calls.run(async () => {
      const c = this.config, ids = await this.#inputIds(input, opts.addSpecial);
      if (!Array.isArray(decoderIds) || !decoderIds.every((id) => Number.isInteger(id) && id >= 0 && id < c.vocabSize))
        throw new FuselmError('E_INVALID_ARG', `decoderIds must be token ids in 0..${c.vocabSize - 1}`);
      const seq = [c.decoderStartId, ...decoderIds];
      if (seq.length > c.maxDecoderTokens) throw new FuselmError('E_CONTEXT_FULL', `${seq.length} decoder tokens; the decoder takes at most ${c.maxDecoderTokens}`);
      const enc = await this.#encode([ids]);
      let st: DecoderState | undefined;
      try {
        st = this.#decoderState(enc, [0], seq.length);
        let out: Float32Array = new Float32Array(0);
        for (let p = 0; p < seq.length; p++) out = (await this.#step(st, [seq[p]], [p]))[0];
        return out;
      } finally {
        st?.dispose();
        this.#freeEncoded(enc);
      }
    });
  }

  /** Call options over the model's own defaults (its generation_config.json). */
  #withDefaults(opts: GenerateOptions): GenerateOptions {
    checkGenerateOptions(opts);
    const defined = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    return { ...generationDefaults(this.generationConfig), ...defined };
  }

  /**
   * The decoder's tokens for each sequence (its encoder input's ids and its options), decoded as
   * parallel sequences. `signal` ends the whole call (E_ABORTED); a sequence's own
   * `options.signal` ends it alone: its entry is that E_ABORTED error, the others go on.
   * `onChunk` sees each sequence's chunks as they come.
   */
  async #generate(seqs: DecoderSequence[], signal: AbortSignal | undefined, onChunk?: (s: number, c: StreamChunk) => void): Promise<(GenerateResult | FuselmError)[]> {
    const c = this.config;
    const start = c.decoderStartId;
    const runs = seqs.map((q) => q.run);
    const limits = seqs.map((q) => Math.min(q.o.maxTokens ?? Infinity, c.maxDecoderTokens));
    const failed: (FuselmError | undefined)[] = seqs.map(() => undefined);
    const live = (s: number) => !runs[s].done && !failed[s];
    const call = new DecodeCall(signal);
    let enc: Encoded | undefined;
    let st: DecoderState | undefined;
    try {
      await call.prompt(seqs.flatMap((q) => q.ids), [], async () => {
        enc = await this.#encode(seqs.map((q) => q.ids));
        return new Float32Array(0);
      });
      // positions 0 .. maxTokens - 1: the start token, then every generated token but the last
      st = this.#decoderState(enc!, seqs.map((_, i) => i), Math.max(1, ...limits));
      const last = runs.map(() => start);
      for (let pos = 0; runs.some((_, s) => live(s)); pos++) {
        call.check();
        seqs.forEach((q, s) => {
          if (live(s) && q.o.signal?.aborted) failed[s] = new FuselmError('E_ABORTED', 'generation aborted', { cause: q.o.signal.reason });
        });
        if (!runs.some((_, s) => live(s))) break;
        if (pos >= c.maxDecoderTokens) {
          for (const r of runs) r.end('contextFull');
          break;
        }
        const logits = await this.#step(st, last, runs.map(() => pos));
        for (const [s, r] of runs.entries()) {
          if (!live(s)) continue;
          await r.prepare();
          const chunk = r.step(this.#force(logits[s], r.ids.length, limits[s]));
          if (chunk && onChunk) onChunk(s, chunk);
          if (!r.done) last[s] = r.lastId;
        }
      }
      const timings = call.finish(runs.reduce((n, r) => n + r.ids.length, 0));
      this.lastTimings = timings;
      return runs.map((r, s) => {
        if (failed[s]) return failed[s]!;
        const tail = r.finish();
        if (tail && onChunk) onChunk(s, tail);
        return { text: r.text, ids: r.ids, promptIds: seqs[s].ids, finishReason: r.finishReason!, timings, ...(seqs[s].o.logprobs === undefined ? {} : { logprobs: r.logprobs }) };
      });
    } finally {
      st?.dispose();
      if (enc) this.#freeEncoded(enc);
    }
  }

  /** The inputs' ids (checked), each with the same options, as #generate's sequences. */
  async #sequences(inputs: Array<string | number[]>, o: GenerateOptions): Promise<DecoderSequence[]> {
    if (inputs.length > MAX_INPUTS) throw new FuselmError('E_INVALID_ARG', `at most ${MAX_INPUTS} inputs are generated together, got ${inputs.length}`);
    const seqs: DecoderSequence[] = [];
    for (const x of inputs) seqs.push(this.#sequence(await this.#inputIds(x, o.addSpecial), o));
    return seqs;
  }

  #sequence(ids: number[], o: GenerateOptions): DecoderSequence {
    return { ids, o, run: new SequenceRun(this.tokenizer, [this.config.decoderStartId], o, this.config.vocabSize) };
  }

  /** #generate's results with the first failure thrown (the calls that run their sequences as one). */
  static #all(out: (GenerateResult | FuselmError)[]): GenerateResult[] {
    const bad = out.find((r) => r instanceof FuselmError);
    if (bad) throw bad;
    return out as GenerateResult[];
  }

  /**
   * Sequences of different requests decoded together (a server's batch): each its own input,
   * options (sampling, limits, its own abort signal) and chunks. Each settles on its own: bad
   * input or options, or an abort, fail that sequence only; the others' results are what each
   * gives alone (greedy or seeded).
   */
  generateEach(items: { input: string | number[]; options?: GenerateOptions; onChunk?: (c: StreamChunk) => void }[]): Promise<PromiseSettledResult<GenerateResult>[]> {
    if (!Array.isArray(items) || items.length > MAX_INPUTS) return Promise.reject(new FuselmError('E_INVALID_ARG', `generateEach takes an array of at most ${MAX_INPUTS} sequences`));
    return this.#calls.run(async () => {
      const out: PromiseSettledResult<GenerateResult>[] = items.map(() => ({ status: 'rejected', reason: undefined }));
      const seqs: DecoderSequence[] = [], of: number[] = [];
      for (const [i, it] of items.entries()) {
        try {
          const o = this.#withDefaults(it.options ?? {});
          if (o.signal?.aborted) throw new FuselmError('E_ABORTED', 'generation aborted', { cause: o.signal.reason });
          seqs.push(this.#sequence(await this.#inputIds(it.input, o.addSpecial), o));
          of.push(i);
        } catch (e) {
          out[i] = { status: 'rejected', reason: e };
        }
      }
      if (!seqs.length) return out;
      const results = await this.#generate(seqs, undefined, (s, ch) => items[of[s]].onChunk?.(ch));
      results.forEach((r, s) => (out[of[s]] = r instanceof FuselmError ? { status: 'rejected', reason: r } : { status: 'fulfilled', value: r }));
      return out;
    });
  }

  /**
   * Generates the decoder's output for an input (text or encoder ids); an array of inputs is
   * encoded in one pass and decoded as parallel sequences (one result each).
   */
  generate(input: string | number[], opts?: GenerateOptions): Promise<GenerateResult>;
  generate(inputs: Array<string | number[]>, opts?: GenerateOptions): Promise<GenerateResult[]>;
  generate(input: string | number[] | Array<string | number[]>, opts: GenerateOptions = {}): Promise<GenerateResult | GenerateResult[]> {
    let o: GenerateOptions;
    try {
      o = this.#withDefaults(opts);
    } catch (e) {
      return Promise.reject(e);
    }
    const batch = Array.isArray(input) && input.length > 0 && input.every((p) => typeof p === 'string' || Array.isArray(p));
    return this.#calls.run(async () => {
      const seqs = await this.#sequences(batch ? (input as Array<string | number[]>) : [input as string | number[]], o);
      const out = EncoderDecoderModel.#all(await this.#generate(seqs, o.signal));
      this.lastFinishReason = out[0].finishReason;
      return batch ? out : out[0];
    });
  }

  /**
   * The decoder's output as text chunks that never split a UTF-8 character. Leaving the stream
   * early (return(), a `for await` loop left) stops the generation within one step.
   */
  async *stream(input: string | number[], opts: GenerateOptions = {}): AsyncGenerator<StreamChunk> {
    const o = this.#withDefaults(opts);
    const left = new AbortController();
    const signal = o.signal ? AbortSignal.any([o.signal, left.signal]) : left.signal;
    const chunks: StreamChunk[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    let failed: unknown;
    const job = this.#calls.run(async () => EncoderDecoderModel.#all(await this.#generate(await this.#sequences([input], o), signal, (_, c) => (chunks.push(c), wake?.()))))
      .then((r) => (this.lastFinishReason = r[0].finishReason))
      .catch((e) => (failed = e))
      .finally(() => ((done = true), wake?.()));
    try {
      for (;;) {
        while (chunks.length) yield chunks.shift()!;
        if (done) break;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
      if (failed) throw failed;
    } finally {
      left.abort();
      await job;
    }
  }

  /**
   * Beam search (lib/beam.ts for the semantics) over the decoder: the input is encoded once and
   * every beam reads the same cross K/V; each beam has its own self-attention cache.
   */
  beamSearch(input: string | number[], opts: EncoderDecoderBeamOptions): Promise<EncoderDecoderBeamResult> {
    return this.#calls.run(async () => {
      const o: Required<BeamSearchOptions> = checkBeamOptions(opts);
      const c = this.config;
      const end = hypothesisEnds(this.tokenizer, opts);
      const masks = grammarMasks(this.tokenizer, opts);
      const ids = await this.#inputIds(input, opts.addSpecial);
      const call = new DecodeCall(opts.signal);
      const limit = Math.min(o.maxTokens, c.maxDecoderTokens);
      let enc: Encoded | undefined;
      let st: DecoderState | undefined;
      try {
        await call.prompt(ids, [], async () => {
          enc = await this.#encode([ids]);
          return new Float32Array(0);
        });
        const K = o.numBeams;
        st = this.#decoderState(enc!, new Array<number>(K).fill(0), limit);
        const state = st;
        const first = this.#force((await this.#step(state, new Array<number>(K).fill(c.decoderStartId), new Array<number>(K).fill(0)))[0], 0, limit);
        const step = async (parents: number[], tokens: number[], generated: number) => {
          // beam i continues beam parents[i]: its cache rows (the start token and generated - 1 tokens) move
          state.copyRows(Array.from({ length: K }, (_, i) => parents[i] ?? i), generated);
          const next = Array.from({ length: K }, (_, i) => tokens[i] ?? tokens[0]);
          const logits = await this.#step(state, next, new Array<number>(K).fill(generated));
          return tokens.map((_, i) => this.#force(logits[i], generated, limit));
        };
        const constraint = masks && beamConstraint(masks, opts.eogIds);
        const hyps = await beamSearch(first, step, { ...o, maxTokens: limit }, end.ends, () => call.check(), constraint);
        const timings = call.finish(hyps.reduce((n, h) => n + h.ids.length, 0));
        this.lastTimings = timings;
        const reason = (h: BeamHypothesis) => (h.finishReason === 'maxTokens' && limit < o.maxTokens ? 'contextFull' as const : h.finishReason);
        return { promptIds: ids, timings, sequences: hyps.map((h) => ({ ...h, text: end.text(h), finishReason: reason(h) })) };
      } finally {
        st?.dispose();
        if (enc) this.#freeEncoded(enc);
      }
    });
  }

  #unsupported(what: string): never {
    throw new FuselmError('E_UNSUPPORTED', `${what} is not supported on an encoder-decoder model (${this.config.architecture}): use generate(), stream() or beamSearch()`);
  }

  chat(): never {
    return this.#unsupported('chat()');
  }

  evaluate(): Promise<never> {
    return Promise.reject(new FuselmError('E_UNSUPPORTED', `evaluate() is not supported on an encoder-decoder model (${this.config.architecture}): use encode() or generate()`));
  }

  openSlots(): Promise<never> {
    return Promise.reject(new FuselmError('E_UNSUPPORTED', `openSlots() is not supported on an encoder-decoder model (${this.config.architecture})`));
  }

  /** Nothing is cached between calls (each input is encoded anew). */
  clearCache(): Promise<void> {
    return this.#calls.run(async () => {});
  }

  /** Frees native memory at once (after any call in flight has finished). */
  async dispose(): Promise<void> {
    await this.#calls.idle();
    if (!this.#w) return;
    for (const t of encDecTensors(this.#w)) t.free();
    this.#w = undefined;
    this.#be.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
