/**
 * The public Model: loads a GGUF, owns the weights, backend and sequence state, and runs
 * generation. Calls on one model are serialized (each waits its turn), so concurrent calls
 * never corrupt each other's KV cache.
 */
import { Chat, type ChatOptions } from '../chat.js';
import { FuselmError, shown } from '../errors.js';
import { readGgufModel } from '../formats/gguf-split.js';
import { type Backend, CpuBackend, CudaBackend, resolveDevice } from '../backend.js';
import type { NativeDevice, NativeImpl } from '../../bindings.js';
import { type FinishReason, type GenerateOptions, type GenerateResult, SequenceRun, type StreamChunk, checkGenerateOptions, checkGenerationConfig, generationDefaults } from '../generate.js';
import { beamConstraint, type GrammarOptions, grammarMasks, prepareGrammar } from '../grammar/constraint.js';
import { type BeamEndOptions, type BeamHypothesis, type BeamSearchOptions, beamSearch, checkBeamOptions, hypothesisEnds } from '../beam.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { tokenizerFromGguf } from '../tokenizer/from-gguf.js';
import { withAsyncEncode } from '../tokenizer/async.js';
import { resolve as resolvePath } from 'node:path';
import { type ModelConfig, configFromGguf, configFromHf } from './config.js';
import { type GenerationConfig, isDirectory, readHfFolder } from '../formats/hf.js';
import { openSafetensorsFolder } from '../formats/safetensors.js';
import { folderHasTokenizer, loadTokenizer } from '../tokenizer/load.js';
import { loadHfDecoderWeights } from './hf-weights.js';
import { idsOnlyTokenizer } from './ids-tokenizer.js';
import { type LlamaWeights, LlamaState, disposeLlamaWeights, loadLlamaWeights, uploadLlamaWeights } from './llama.js';
import { CPU_BLOCK_DTYPES, CUDA_BLOCK_DTYPES, checkWeightDtype, GgufMappings, type WeightDtype } from './weights.js';
import { loadGpt2GgufWeights } from './gpt2-gguf.js';
import { DecodeCall, type Timings } from './decode-call.js';
import { SequenceSlots } from './slots.js';
import { type AdapterUse, acquireAdapters, adapterKey, checkAdapterUses, type LoraAdapter, LoraSet, loadLoraAdapter } from './lora.js';
import { availableMemory, checkMemoryPlan, decoderStateItems, ggufWeightItems, type MemoryItem, safetensorsWeightBytes } from './memory.js';
import { GgmlType } from '../formats/ggml-types.js';
import { DEFAULT_MODEL } from '../default-model.js';
import { type PullProgress, resolveModelPath } from '../hub/pull.js';
import { call, native } from '../native.js';
import { isEncoderDecoderConfig, loadGgufEncoderDecoder, loadHfEncoderDecoder } from './load-encoder-decoder.js';
import { ggufGet } from '../formats/gguf.js';

export interface LoadModelOptions {
  /**
   * 'auto' picks CUDA when a device works, else the CPU. 'cuda' throws NO_CUDA_DEVICE without
   * one, unless FUSELM_CUDA_EMULATE=1 runs the CUDA backend on its CPU emulator (slowly).
   */
  device?: 'auto' | 'cpu' | 'cuda';
  /**
   * KV cache element type: 'auto' (the default) is f32 on the CPU; on CUDA it keeps f32 for f32
   * weights and uses f16 otherwise. f16 and bf16 halve the cache and its reads in decode.
   */
  kvType?: 'auto' | 'f32' | 'f16' | 'bf16';
  /** CPU threads (loading, and the CPU backend); default: physical cores. */
  threads?: number;
  /** KV cache positions; default min(the model's context length, 4096). */
  contextSize?: number;
  /** Most prompt tokens evaluated per forward call; default min(512, contextSize). */
  batchSize?: number;
  /** CPU kernel level (for testing and benchmarks); default 'auto'. */
  impl?: NativeImpl;
  /**
   * Weight format: 'auto' (the default) runs F32/F16/BF16 and the GGUF block formats the
   * backend's kernels take as stored (CPU_BLOCK_DTYPES, CUDA_BLOCK_DTYPES) and converts other
   * block formats to q8_0; 'q8_0' or 'f16' converts every matrix, of a GGUF or of a Hugging Face folder.
   */
  dtype?: WeightDtype;
  /**
   * Map a GGUF file read-only instead of reading it (default true, as llama.cpp's use_mmap):
   * weights kept as stored are views into the page cache, so a warm file loads without a copy
   * and its pages are file-backed; CUDA uploads from the mapping and keeps no host copy.
   * Weights converted at load have memory of their own either way. Truncating or rewriting the
   * file while the model is loaded is undefined (the process may die of SIGBUS), as for llama.cpp.
   */
  useMmap?: boolean;
  /** Called after each weight tensor is loaded (for a progress bar). */
  onProgress?: (loaded: number, total: number) => void;
  /**
   * Bytes the model may take in host memory: its weights as held, its KV cache at the full
   * contextSize, activations and logits, and later the caches of parallel sequences and beams.
   * The plan is summed before anything is allocated; one that does not fit is E_OUT_OF_MEMORY
   * naming its parts. Default: the memory available to this process (free memory, within its
   * cgroup's limit). On a CUDA device the weights are staged in host memory within this budget,
   * and the whole plan must also fit the device's free memory.
   */
  maxMemory?: number;
  /** Called as a model reference's files download (hf:..., a URL not yet in the cache). */
  onDownload?: (p: PullProgress) => void;
}

export interface BeamSearchModelOptions extends BeamSearchOptions, BeamEndOptions, GrammarOptions {
  /** Add the tokenizer's BOS (and EOS) tokens around a text prompt; default: as the model says. */
  addSpecial?: boolean;
  /** Ends the search within one step; the promise rejects with E_ABORTED. */
  signal?: AbortSignal;
  /** LoRA adapters, as generate()'s. */
  adapters?: AdapterUse[];
}

export interface BeamSearchResult {
  /**
   * Best first: generated ids and text, sum of logprobs, the length-penalized score, and why
   * each ended ('contextFull' when the KV cache, not maxTokens, cut it short).
   */
  sequences: (Omit<BeamHypothesis, 'finishReason'> & { text: string; finishReason: FinishReason })[];
  promptIds: number[];
  timings: Timings;
}

/** How long a stream waits for its consumer's next() before it releases the model (GenerateOptions.idleTimeout). */
export const DEFAULT_STREAM_IDLE_MS = 60_000;

/**
 * A stream's hold on the model: released once, by the stream's end, its idle timer, or the
 * FinalizationRegistry when the stream's iterator is garbage (it must never reference the
 * iterator, or the iterator could never be collected).
 */
class StreamLease {
  #release: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  expired = false;

  hold(release: () => void): void {
    this.#release = release;
  }

  /** Starts the idle timer while the stream waits for its consumer (Infinity or 0: none). */
  arm(ms: number): void {
    if (!(ms > 0 && ms < Infinity)) return;
    this.#timer = setTimeout(() => {
      this.expired = true;
      this.release();
    }, ms);
    this.#timer.unref?.();
  }

  disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  release(): void {
    this.disarm();
    const r = this.#release;
    this.#release = undefined;
    r?.();
  }
}

/** Releases the model held by a stream whose iterator was dropped without return(). */
const streamLeases = new FinalizationRegistry<StreamLease>((lease) => lease.release());

/** What loadModel hands the Model. */
interface ModelInit {
  contextSize: number;
  batchSize: number;
  generationConfig?: GenerationConfig;
  memory?: { max?: number; planned: number };
}

export class Model {
  readonly path: string;
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  /** Where the model runs. */
  readonly device: 'cpu' | 'cuda';
  /** CPU threads of the CPU backend (0 on CUDA). */
  readonly threads: number;
  readonly contextSize: number;
  readonly batchSize: number;
  /** The KV cache's element type (loadModel's kvType, 'auto' resolved). */
  readonly kvType: 'f32' | 'f16' | 'bf16';
  /** Timings of the most recent generation. */
  lastTimings: Timings | undefined;
  /** Why the most recent single-prompt generate() or stream() ended (a stream has no result object to say it). */
  lastFinishReason: FinishReason | undefined;
  /** The model's own generation defaults (a Hugging Face folder's generation_config.json; {} otherwise). */
  readonly generationConfig: GenerationConfig;

  #weights: LlamaWeights | undefined;
  #backend: Backend;
  #state: LlamaState;
  #queue: Promise<void> = Promise.resolve();
  /** Parallel sequences' state, made for the batch size last used. */
  #batch: LlamaState | undefined;
  /** The tokens whose keys and values the KV cache holds, at positions 0..n-1. */
  #cached: number[] = [];
  #disposed = false;
  /** maxMemory and the load plan's total (for the caches made later: batches, beams). */
  #memory: { max?: number; planned: number };
  /** The adapter set and weights #cached was evaluated under ('' for none): another never reuses it. */
  #cachedLora = '';
  /** Adapters loaded for this model, and their stacked sets by the adapters' ids (the latest LORA_SETS kept). */
  #adapters = new Set<LoraAdapter>();
  /** The adapters the call holding the model uses (acquired for it, released when its turn ends). */
  #turnAdapters: LoraAdapter[] = [];
  #loraSets = new Map<string, LoraSet>();

  /** Use loadModel(). */
  constructor(
    path: string,
    config: ModelConfig,
    tokenizer: Tokenizer,
    weights: LlamaWeights,
    backend: Backend,
    o: ModelInit,
  ) {
    this.path = path;
    this.generationConfig = o.generationConfig ?? {};
    this.config = config;
    this.tokenizer = tokenizer;
    this.#weights = weights;
    this.#backend = backend;
    this.device = backend.device === 'cpu' ? 'cpu' : 'cuda';
    this.threads = backend instanceof CpuBackend ? backend.threads : 0;
    this.contextSize = o.contextSize;
    this.batchSize = o.batchSize;
    this.kvType = backend.kvDtype;
    this.#memory = o.memory ?? { planned: 0 };
    this.#state = new LlamaState(config, weights, backend, { contextSize: o.contextSize, batchSize: o.batchSize });
  }

  /**
   * Checks the caches of `sequences` more sequences at `contextSize` positions against what is
   * left of maxMemory after the load plan (without maxMemory: the memory available now; on a
   * CUDA device: the device's free memory).
   */
  #checkMoreState(what: string, sequences: number, contextSize: number, batchSize: number): void {
    const kvBytes = this.kvType === 'f32' ? 4 : 2;
    const items = decoderStateItems(this.config, { contextSize, batchSize, sequences, kvBytes });
    const device = this.#backend.device;
    if (device !== 'cpu') {
      const free = call(() => native().deviceMemoryInfo(device)).free;
      return checkMemoryPlan(`${this.path}: ${what}`, items, free, `the free memory of the ${device} device`, 'fewer sequences or a smaller contextSize');
    }
    const m = this.#memory;
    if (m.max !== undefined) checkMemoryPlan(`${this.path}: ${what}`, items, Math.max(0, m.max - m.planned), 'what maxMemory leaves after the model', 'fewer sequences or a smaller contextSize');
    else checkMemoryPlan(`${this.path}: ${what}`, items, availableMemory(), 'the memory available', 'fewer sequences or a smaller contextSize');
  }

  /** Waits until every earlier call on this model has finished; returns the release. */
  async #turn(): Promise<() => void> {
    const prev = this.#queue;
    let release!: () => void;
    this.#queue = new Promise<void>((r) => (release = r));
    await prev;
    return () => {
      // the adapters the call used: one disposed meanwhile is freed now
      for (const a of this.#turnAdapters.splice(0)) a.release();
      release();
    };
  }

  /** Runs fn when every earlier call on this model has finished. */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.#turn();
    try {
      this.#checkLive();
      return await fn();
    } finally {
      release();
    }
  }

  #checkLive(): void {
    if (this.#disposed) throw new FuselmError('E_DISPOSED', 'model used after dispose()');
  }

  /** #promptIds, with a text prompt encoded by encodeAsync (large texts off the JS thread). */
  async #promptIdsAsync(prompt: string | number[], addSpecial?: boolean): Promise<number[]> {
    if (typeof prompt === 'string' && this.tokenizer.encodeAsync) return this.tokenizer.encodeAsync(prompt, { addSpecial: addSpecial ?? true });
    return this.#promptIds(prompt, addSpecial);
  }

  #promptIds(prompt: string | number[], addSpecial?: boolean): number[] {
    if (typeof prompt === 'string') return this.tokenizer.encode(prompt, { addSpecial: addSpecial ?? true });
    if (!Array.isArray(prompt)) throw new FuselmError('E_INVALID_ARG', 'prompt must be a string or an array of token ids');
    const V = this.config.vocabSize;
    for (const id of prompt)
      if (!Number.isInteger(id) || id < 0 || id >= V)
        throw new FuselmError('E_INVALID_ARG', `prompt token id ${typeof id === 'number' ? id : typeof id} is outside the vocabulary (0..${V - 1})`);
    return prompt;
  }

  /** Throws E_CONTEXT_FULL for a prompt longer than the KV cache. */
  #checkFits(ids: number[]): void {
    if (ids.length > this.contextSize)
      throw new FuselmError('E_CONTEXT_FULL', `the prompt has ${ids.length} tokens but the context holds ${this.contextSize}`);
  }

  /**
   * Evaluates ids[from..] on sequence `seq` of `state` in prompt batches (its cache must already
   * hold ids[0..from)), calling check() before each batch; returns the logits of the last token,
   * or with allLogits those of every evaluated one.
   */
  async #forwardPrompt(
    state: LlamaState,
    ids: number[],
    o: { from?: number; seq?: number; allLogits?: boolean; check?: () => void } = {},
  ): Promise<Float32Array> {
    const { from = 0, seq = 0, allLogits = false } = o;
    if (ids.length === 0) throw new FuselmError('E_INVALID_ARG', 'cannot evaluate an empty prompt');
    this.#checkFits(ids);
    const parts: Float32Array[] = [];
    for (let pos = from; pos < ids.length; pos += this.batchSize) {
      o.check?.();
      parts.push(await state.forward(Int32Array.from(ids.slice(pos, pos + this.batchSize)), pos, { allLogits, seq }));
    }
    if (!allLogits) return parts[parts.length - 1];
    const out = new Float32Array((ids.length - from) * this.config.vocabSize);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  /**
   * Reads a LoRA adapter for this model (lib/model/lora.ts): a PEFT folder
   * (adapter_config.json + adapter_model.safetensors) or a GGUF adapter (convert_lora_to_gguf).
   * Use it in `adapters: [{ adapter, scale }]`; adapter.dispose() frees it once nothing uses it
   * (LoraAdapter says how).
   */
  async loadAdapter(path: string): Promise<LoraAdapter> {
    this.#checkLive();
    const a = await loadLoraAdapter(path, this.config, this.#weights!.layers, this.#backend, (d) => this.#dropAdapter(d));
    if (this.#disposed) {
      a.dispose();
      this.#checkLive();
    }
    this.#adapters.add(a);
    return a;
  }

  #dropAdapter(a: LoraAdapter): void {
    this.#adapters.delete(a);
    for (const [k, set] of this.#loraSets)
      if (set.adapters.includes(a)) {
        set.dispose();
        this.#loraSets.delete(k);
      }
  }

  /**
   * The stacked set of the adapters some sequence uses, and each sequence's weights of them
   * (its scales summed per adapter), with a key per sequence naming its adapters and scales.
   */
  #loraFor(uses: ReadonlyArray<AdapterUse[] | undefined>): { set?: LoraSet; weights: Float32Array[]; keys: string[] } {
    const all = new Map<number, LoraAdapter>();
    for (const list of uses)
      for (const u of list ?? []) {
        // a use starts with acquire(), which refuses a disposed adapter: one in use is never freed
        if (u.adapter.isFreed) throw new FuselmError('E_DISPOSED', `adapter ${u.adapter.path} was freed while in use`);
        if (!this.#adapters.has(u.adapter)) throw new FuselmError('E_INVALID_ARG', `adapter ${u.adapter.path} was loaded by another model`);
        all.set(u.adapter.id, u.adapter);
      }
    const adapters = [...all.values()].sort((a, b) => a.id - b.id);
    const weights = uses.map((list) => {
      const w = new Float32Array(adapters.length);
      for (const u of list ?? []) w[adapters.indexOf(u.adapter)] += u.scale ?? 1;
      return w;
    });
    const keys = uses.map(adapterKey);
    if (!adapters.length) return { weights, keys };
    const key = adapters.map((a) => a.id).join(',');
    let set = this.#loraSets.get(key);
    if (set) this.#loraSets.delete(key);
    else {
      for (const [k, old] of [...this.#loraSets].slice(0, Math.max(0, this.#loraSets.size - LORA_SETS + 1))) {
        old.dispose();
        this.#loraSets.delete(k);
      }
      set = new LoraSet(adapters, this.#backend);
    }
    this.#loraSets.set(key, set);
    return { set, weights, keys };
  }

  /** The model's own state under `uses` (none: no adapters); its cached prompt is forgotten when they differ from its own. */
  #useAdapters(uses: AdapterUse[] | undefined): { set?: LoraSet; weights: Float32Array[] } {
    this.#turnAdapters.push(...acquireAdapters(uses));
    const l = this.#loraFor([uses]);
    this.#state.useLora(l.set, l.weights);
    if (l.keys[0] !== this.#cachedLora) {
      this.#cached = [];
      this.#cachedLora = l.keys[0];
    }
    return l;
  }

  /** #forwardPrompt on the model's own state, keeping #cached true to what its cache holds. */
  async #forwardCached(ids: number[], o: { from?: number; allLogits?: boolean; check?: () => void } = {}): Promise<Float32Array> {
    // positions from `from` on are overwritten: until they all are, only the prefix is known
    this.#cached = ids.slice(0, o.from ?? 0);
    const logits = await this.#forwardPrompt(this.#state, ids, o);
    this.#cached = [...ids];
    return logits;
  }

  /** A call's prompt on the model's own state, from the prefix its cache already holds (a chat's earlier turns). */
  #prompt(call: DecodeCall, ids: number[]): Promise<Float32Array> {
    return call.prompt(ids, this.#cached, (from) => this.#forwardCached(ids, { from, check: () => call.check() }));
  }

  /**
   * Logits for a token sequence evaluated from position 0: of the last token [vocab], or with
   * allLogits of every token [n * vocab] (row i predicts token i + 1).
   */
  evaluate(ids: number[], opts: { allLogits?: boolean; adapters?: AdapterUse[] } = {}): Promise<Float32Array> {
    if (typeof opts !== 'object' || opts === null || (opts.allLogits !== undefined && typeof opts.allLogits !== 'boolean'))
      return Promise.reject(new FuselmError('E_INVALID_ARG', 'evaluate() options must be an object { allLogits?: boolean, adapters?: [...] }'));
    return this.#exclusive(async () => {
      if (opts.adapters !== undefined) checkAdapterUses(opts.adapters, 'adapters');
      this.#useAdapters(opts.adapters);
      return this.#forwardCached(this.#promptIds(ids), { allLogits: opts.allLogits });
    });
  }

  /**
   * Beam search (lib/beam.ts for the semantics): the prompt is evaluated once and its KV cache
   * shared by every beam, whose own caches hold only the tokens they generate; all beams step
   * in one batched forward. Returns the best numReturnSequences hypotheses, best first.
   */
  beamSearch(prompt: string | number[], opts: BeamSearchModelOptions): Promise<BeamSearchResult> {
    return this.#exclusive(async () => {
      const o = checkBeamOptions(opts);
      const end = hypothesisEnds(this.tokenizer, opts);
      await prepareGrammar(this.tokenizer, opts);
      const masks = grammarMasks(this.tokenizer, opts);
      if (opts.addSpecial !== undefined && typeof opts.addSpecial !== 'boolean') throw new FuselmError('E_INVALID_ARG', 'addSpecial must be a boolean');
      if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) throw new FuselmError('E_INVALID_ARG', 'signal must be an AbortSignal');
      if (opts.adapters !== undefined) checkAdapterUses(opts.adapters, 'adapters');
      const promptIds = await this.#promptIdsAsync(prompt, opts.addSpecial);
      const lora = this.#useAdapters(opts.adapters);
      const call = new DecodeCall(opts.signal);
      // padding rows past the tokenizer's vocabulary are never chosen
      const T = this.tokenizer.vocabSize;
      const mask = (l: Float32Array) => (T < l.length ? l.fill(-Infinity, T) : l);
      const logits = mask(await this.#prompt(call, promptIds));
      // the beams' own caches start after the prompt; the last token needs no evaluation
      const rows = Math.min(o.maxTokens - 1, this.contextSize - promptIds.length);
      let state: LlamaState | undefined;
      try {
        if (rows > 0) this.#checkMoreState(`${o.numBeams} beams`, o.numBeams, rows, o.numBeams);
        if (rows > 0)
          state = new LlamaState(this.config, this.#weights!, this.#backend, {
            contextSize: rows,
            batchSize: o.numBeams,
            sequences: o.numBeams,
            prefix: { ...this.#state.caches(0), len: promptIds.length },
          });
        state?.useLora(lora.set, Array.from({ length: o.numBeams }, () => lora.weights[0]));
        const V = this.config.vocabSize;
        const step = async (parents: number[], tokens: number[], generated: number) => {
          const s = state!;
          // beam i continues beam parents[i]: its generated rows (all but the newest token's) move
          s.copyCacheRows(Array.from({ length: o.numBeams }, (_, i) => parents[i] ?? i), generated - 1);
          const ids = Int32Array.from({ length: o.numBeams }, (_, i) => tokens[i] ?? tokens[0]);
          const all = await s.forwardBatch(ids, new Int32Array(o.numBeams).fill(generated - 1));
          return tokens.map((_, i) => mask(all.subarray(i * V, (i + 1) * V)));
        };
        const limit = Math.min(o.maxTokens, rows + 1);
        const constraint = masks && beamConstraint(masks, opts.eogIds);
        const hyps = await beamSearch(logits, step, { ...o, maxTokens: limit }, end.ends, () => call.check(), constraint);
        const timings = call.finish(hyps.reduce((n, h) => n + h.ids.length, 0));
        this.lastTimings = timings;
        const reason = (h: BeamHypothesis): FinishReason => (h.finishReason === 'maxTokens' && limit < o.maxTokens ? 'contextFull' : h.finishReason);
        return { promptIds, timings, sequences: hyps.map((h) => ({ ...h, text: end.text(h), finishReason: reason(h) })) };
      } finally {
        state?.dispose();
      }
    });
  }

  /** The token loop shared by generate() and stream(); runs while holding the model. */
  async *#tokens(prompt: string | number[], o: GenerateOptions, done: (r: Omit<GenerateResult, 'text' | 'ids'>) => void): AsyncGenerator<StreamChunk> {
    await prepareGrammar(this.tokenizer, o);
    const run = new SequenceRun(this.tokenizer, await this.#promptIdsAsync(prompt, o.addSpecial), o, this.config.vocabSize);
    const promptIds = run.promptIds;
    this.#useAdapters(o.adapters);
    const call = new DecodeCall(o.signal);
    let logits = await this.#prompt(call, promptIds);
    let pos = promptIds.length;
    // greedy on a GPU: each step's argmax id comes back instead of the logits
    const onDevice = this.device !== 'cpu' && run.argmaxOnly;
    let chosen: number | undefined;
    while (!run.done) {
      await run.prepare();
      call.check();
      const chunk = chosen === undefined ? run.step(logits) : run.stepChosen(chosen);
      if (chunk) yield chunk;
      if (run.done) break;
      if (pos >= this.contextSize) {
        run.end('contextFull');
        break;
      }
      call.check();
      if (onDevice) chosen = await this.#state.forwardArgmax(run.lastId, pos);
      else logits = await this.#state.forward(Int32Array.of(run.lastId), pos);
      this.#cached.push(run.lastId);
      pos++;
    }
    const tail = run.finish();
    if (tail) yield tail;
    const timings = call.finish(run.ids.length);
    this.lastTimings = timings;
    this.lastFinishReason = run.finishReason;
    done({ promptIds, finishReason: run.finishReason!, timings, ...(o.logprobs === undefined ? {} : { logprobs: run.logprobs }) });
  }

  /**
   * Several prompts generated together: each has a KV cache of its own, and after the prompts
   * every step evaluates one token of every unfinished sequence in a single forward call, so
   * the weights are read once per step for all of them.
   */
  async #generateBatch(prompts: BatchPrompt[], o: GenerateOptions): Promise<GenerateResult[]> {
    if (prompts.length > MAX_SEQUENCES) throw new FuselmError('E_INVALID_ARG', `at most ${MAX_SEQUENCES} prompts are generated together, got ${prompts.length}`);
    const runs: SequenceRun[] = [];
    await prepareGrammar(this.tokenizer, o);
    const uses: Array<AdapterUse[] | undefined> = [];
    for (const [i, p] of prompts.entries()) {
      const item = typeof p === 'object' && !Array.isArray(p) ? p : { prompt: p };
      if (item.adapters !== undefined) checkAdapterUses(item.adapters, `prompts[${i}].adapters`);
      uses.push(item.adapters ?? o.adapters);
      runs.push(new SequenceRun(this.tokenizer, await this.#promptIdsAsync(item.prompt, o.addSpecial), o, this.config.vocabSize));
    }
    const S = runs.length;
    for (const r of runs) this.#checkFits(r.promptIds);
    if (!this.#batch || this.#batch.sequences !== S) {
      this.#batch?.dispose();
      this.#batch = undefined;
      this.#checkMoreState(`${S} parallel sequences`, S, this.contextSize, this.batchSize);
      this.#batch = new LlamaState(this.config, this.#weights!, this.#backend, { contextSize: this.contextSize, batchSize: this.batchSize, sequences: S });
    }
    const state = this.#batch;
    for (const u of uses) this.#turnAdapters.push(...acquireAdapters(u));
    const lora = this.#loraFor(uses);
    state.useLora(lora.set, lora.weights);
    const call = new DecodeCall(o.signal);
    const logits: Float32Array[] = [];
    for (let s = 0; s < S; s++) {
      const ids = runs[s].promptIds;
      // what the parallel sequences' caches hold is not tracked: every prompt is evaluated whole
      logits[s] = await call.prompt(ids, [], (from) => this.#forwardPrompt(state, ids, { from, seq: s, check: () => call.check() }));
    }
    const pos = runs.map((r) => r.promptIds.length);
    const V = this.config.vocabSize;
    // greedy on a GPU: each step's argmax ids come back instead of the logits
    const onDevice = this.device !== 'cpu' && runs.every((r) => r.argmaxOnly);
    let chosen: Int32Array | undefined;
    for (;;) {
      call.check();
      for (let s = 0; s < S; s++) {
        if (runs[s].done) continue;
        await runs[s].prepare();
        if (chosen) runs[s].stepChosen(chosen[s]);
        else runs[s].step(logits[s]);
        if (!runs[s].done && pos[s] >= this.contextSize) runs[s].end('contextFull');
      }
      if (runs.every((r) => r.done)) break;
      // finished sequences ride along on their last position; their rows are ignored
      const ids = Int32Array.from(runs, (r) => (r.ids.length ? r.lastId : r.promptIds[r.promptIds.length - 1]));
      const positions = Int32Array.from(pos, (p) => Math.min(p, this.contextSize - 1));
      if (onDevice) {
        chosen = await state.forwardBatchArgmax(ids, positions);
      } else {
        const all = await state.forwardBatch(ids, positions);
        for (let s = 0; s < S; s++) logits[s] = all.subarray(s * V, (s + 1) * V);
      }
      for (let s = 0; s < S; s++) if (!runs[s].done) pos[s]++;
    }
    this.lastTimings = call.finish(runs.reduce((n, r) => n + r.ids.length, 0));
    return runs.map((r) => {
      r.finish();
      return {
        text: r.text,
        ids: r.ids,
        promptIds: r.promptIds,
        finishReason: r.finishReason!,
        timings: call.sequenceTimings(r.promptIds.length, 0, r.ids.length),
        ...(o.logprobs === undefined ? {} : { logprobs: r.logprobs }),
      };
    });
  }

  /**
   * `sequences` KV cache slots of contextSize positions each, for a scheduler that steps them
   * itself (lib/server's continuous batching). They hold the model until closed: other calls
   * wait their turn, as behind a stream.
   */
  async openSlots(sequences: number, opts: { batchSize?: number; paged?: { blockSize: number; blocks: number } } = {}): Promise<SequenceSlots> {
    if (!(Number.isInteger(sequences) && sequences >= 1 && sequences <= MAX_SEQUENCES))
      throw new FuselmError('E_INVALID_ARG', `openSlots: sequences must be an integer in 1..${MAX_SEQUENCES}, got ${shown(sequences)}`);
    const batchSize = opts.batchSize ?? this.batchSize;
    if (!(Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= this.contextSize))
      throw new FuselmError('E_INVALID_ARG', `openSlots: batchSize must be an integer in 1..${this.contextSize}, got ${shown(batchSize)}`);
    const release = await this.#turn();
    try {
      this.#checkLive();
      this.#checkMoreState(`${sequences} slots`, sequences, this.contextSize, batchSize);
      const state = new LlamaState(this.config, this.#weights!, this.#backend, { contextSize: this.contextSize, batchSize, sequences, paged: opts.paged });
      return new SequenceSlots(state, this.config.vocabSize, release, (uses) => this.#loraFor(uses), opts.paged);
    } catch (e) {
      release();
      throw e;
    }
  }

  /** Bytes of the KV cache of the model's sequence as allocated now: K and V, every layer; it grows with the positions used, up to contextSize. */
  get kvCacheBytes(): number {
    this.#checkLive();
    return this.#state.kvCacheBytes;
  }

  /**
   * Forgets the KV cache's contents, so the next call evaluates its whole prompt (calls
   * otherwise reuse the prefix they share with the previous one).
   */
  clearCache(): Promise<void> {
    return this.#exclusive(async () => {
      this.#cached = [];
    });
  }

  /** A chat session rendered with the model's chat template (see lib/chat.ts). */
  chat(opts: ChatOptions = {}): Chat {
    this.#checkLive();
    return new Chat(this, opts);
  }

  /**
   * Generates a continuation of prompt; resolves with its text, ids and timings. An array of
   * prompts is generated as parallel sequences in batched steps (one result per prompt).
   */
  generate(prompt: string | number[], opts?: GenerateOptions): Promise<GenerateResult>;
  generate(prompts: BatchPrompt[], opts?: GenerateOptions): Promise<GenerateResult[]>;
  generate(prompt: string | number[] | BatchPrompt[], callOpts: GenerateOptions = {}): Promise<GenerateResult | GenerateResult[]> {
    let opts: GenerateOptions;
    try {
      opts = this.#withDefaults(callOpts);
    } catch (e) {
      return Promise.reject(e);
    }
    if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((p) => isBatchPrompt(p)))
      return this.#exclusive(() => this.#generateBatch(prompt as BatchPrompt[], opts));
    return this.#exclusive(async () => {
      let meta!: Omit<GenerateResult, 'text' | 'ids'>;
      const ids: number[] = [];
      let text = '';
      for await (const c of this.#tokens(prompt as string | number[], opts, (m) => (meta = m))) {
        text += c.text;
        if (c.id >= 0) ids.push(c.id);
      }
      return { text, ids, ...meta };
    });
  }

  /** Call options over the model's own defaults (its generation_config.json, when it has one). */
  #withDefaults(opts: GenerateOptions): GenerateOptions {
    checkGenerateOptions(opts);
    const d = generationDefaults(this.generationConfig);
    const defined = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    return { ...d, ...defined };
  }

  /**
   * Streams the continuation as text chunks that never split a UTF-8 character. The stream holds
   * the model from its first next() until it ends, its return() is called (a `for await` loop
   * left early), its iterator is garbage collected, or the consumer leaves it idle (no next())
   * for `idleTimeout` ms (GenerateOptions; default 60 s): then the model is released for other
   * calls and the stream's next next() rejects with E_ABORTED. So a stream read once and dropped
   * cannot hold the model forever.
   */
  stream(prompt: string | number[], opts: GenerateOptions = {}): AsyncGenerator<StreamChunk> {
    const lease = new StreamLease();
    const gen = this.#stream(prompt, opts, lease);
    streamLeases.register(gen, lease);
    return gen;
  }

  async *#stream(prompt: string | number[], opts: GenerateOptions, lease: StreamLease): AsyncGenerator<StreamChunk> {
    // Take our turn on the model, then hold it until the stream ends (or the consumer stops).
    lease.hold(await this.#turn());
    try {
      this.#checkLive();
      const o = this.#withDefaults(opts);
      const idle = o.idleTimeout ?? DEFAULT_STREAM_IDLE_MS;
      for await (const c of this.#tokens(prompt, o, () => {})) {
        lease.arm(idle);
        yield c;
        lease.disarm();
        if (lease.expired)
          throw new FuselmError('E_ABORTED', `stream: no next() for ${idle} ms (idleTimeout): the stream released the model and ended`);
      }
    } finally {
      lease.release();
    }
  }

  /** Frees native memory at once (after any call in flight has finished). */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    await this.#exclusive(async () => {
      this.#disposed = true;
      this.#state.dispose();
      this.#batch?.dispose();
      for (const a of [...this.#adapters]) a.dispose();
      if (this.#weights) disposeLlamaWeights(this.#weights);
      this.#weights = undefined;
      this.#backend.dispose();
    }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/**
 * Loads a model: a GGUF file, or a Hugging Face folder (config.json, model.safetensors or
 * shards, tokenizer.json, generation_config.json), given as a path or a model reference
 * (lib/hub/ref.ts: hf:owner/repo/file.gguf, hf:owner/repo, an https URL; read from the cache,
 * pulled first when not there). Without one, the bundled stories260K.gguf. Weights are read
 * natively, off the JS thread.
 */
export async function loadModel(ref: string = DEFAULT_MODEL, opts: LoadModelOptions = {}): Promise<Model> {
  checkLoadOptions(ref, opts);
  const device = modelDevice(opts);
  const path = await resolveModelPath(ref, { onProgress: opts.onDownload });
  if (await isDirectory(path)) return loadHfModel(path, opts, device);
  const f = await readGgufModel(path);
  // an encoder-decoder (T5) is an EncoderDecoderModel: generate, stream and beamSearch as here, on the encoder's input
  if (ggufGet(f, 'general.architecture') === 't5') return (await loadGgufEncoderDecoder(path, f, opts, device)) as unknown as Model;
  const config = configFromGguf(f);
  if (config.architecture === 'bert') throw new FuselmError('E_UNSUPPORTED', `${path}: bert is an encoder; load it with loadEmbeddingModel()`);
  const tokenizer = withAsyncEncode(tokenizerFromGguf(f), { kind: 'gguf', path: resolvePath(path) });
  if (tokenizer.vocabSize !== config.vocabSize)
    throw new FuselmError('E_FORMAT', `${path}: the tokenizer has ${tokenizer.vocabSize} tokens but token_embd.weight has ${config.vocabSize} rows`);
  const { contextSize, batchSize } = sizes(config, opts, path);
  const dtype = checkWeightDtype(opts.dtype ?? 'auto', 'loadModel');
  const firstQ = f.tensors.find((t) => t.name.startsWith('blk.0.attn_q'));
  // the block formats kept as stored are those the running backend's kernels take
  const blocks = device === 'cpu' ? CPU_BLOCK_DTYPES : CUDA_BLOCK_DTYPES;
  const mmap = opts.useMmap ?? true;
  const planned = checkLoadPlan(path, config, opts, device, {
    contextSize,
    batchSize,
    weights: ggufWeightItems(f, dtype, blocks, mmap),
    kvBytes: plannedKvBytes(opts, dtype, firstQ && firstQ.type === GgmlType.F32),
  });
  const cpu = cpuBackend(opts, device);
  return finishLoad(path, config, tokenizer, cpu, device, opts, { contextSize, batchSize, memory: { max: opts.maxMemory, planned } }, async () => {
    const mappings = mmap ? new GgufMappings() : undefined;
    try {
      return config.architecture === 'gpt2'
        ? await loadGpt2GgufWeights(f, config, { dtype, blocks, mappings, onProgress: opts.onProgress })
        : await loadLlamaWeights(f, config, { contextSize, dtype, blocks, mappings, onProgress: opts.onProgress });
    } finally {
      await mappings?.close(); // the views hold the mapping from here on
    }
  },
  );
}

/** The most prompts one generate() call runs as parallel sequences (each has a KV cache of its own). */
export const MAX_SEQUENCES = 256;

/** Stacked adapter sets a model keeps (a server's few adapter combinations). */
const LORA_SETS = 8;

/** One prompt of a parallel batch: a text or ids, or with adapters of its own. */
export type BatchPrompt = string | number[] | { prompt: string | number[]; adapters?: AdapterUse[] };

function isBatchPrompt(p: unknown): p is BatchPrompt {
  return typeof p === 'string' || Array.isArray(p) || (typeof p === 'object' && p !== null && 'prompt' in p);
}

/** The most KV cache positions a model may have (positions are int32 in the kernels). */
export const MAX_CONTEXT_SIZE = 1 << 24;

/** loadModel's arguments checked before anything is read (E_INVALID_ARG naming the option). */
export function checkLoadOptions(path: unknown, opts: unknown): asserts opts is LoadModelOptions {
  if (typeof path !== 'string' || path.length === 0) throw new FuselmError('E_INVALID_ARG', 'the model path must be a non-empty string');
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw new FuselmError('E_INVALID_ARG', 'loadModel options must be an object');
  const o = opts as LoadModelOptions;
  const int = (name: keyof LoadModelOptions, lo: number, hi: number) => {
    const v = o[name];
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi))
      throw new FuselmError('E_INVALID_ARG', `${name} must be an integer in ${lo}..${hi}, got ${typeof v === 'number' ? v : typeof v}`);
  };
  int('threads', 1, 1024);
  int('contextSize', 1, MAX_CONTEXT_SIZE);
  int('batchSize', 1, MAX_CONTEXT_SIZE);
  if (o.maxMemory !== undefined && !(typeof o.maxMemory === 'number' && o.maxMemory > 0 && Number.isFinite(o.maxMemory)))
    throw new FuselmError('E_INVALID_ARG', `maxMemory must be a finite number of bytes > 0, got ${typeof o.maxMemory === 'number' ? o.maxMemory : typeof o.maxMemory}`);
  if (o.impl !== undefined && !['auto', 'reference', 'portable', 'avx2', 'avx512'].includes(o.impl as string))
    throw new FuselmError('E_INVALID_ARG', `impl must be 'auto', 'reference', 'portable', 'avx2' or 'avx512', got ${String(o.impl).slice(0, 40)}`);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new FuselmError('E_INVALID_ARG', 'onProgress must be a function');
  if (o.onDownload !== undefined && typeof o.onDownload !== 'function') throw new FuselmError('E_INVALID_ARG', 'onDownload must be a function');
  if (o.device !== undefined && typeof o.device !== 'string') throw new FuselmError('E_INVALID_ARG', `device must be 'auto', 'cpu' or 'cuda'`);
  if (o.useMmap !== undefined && typeof o.useMmap !== 'boolean') throw new FuselmError('E_INVALID_ARG', `useMmap must be a boolean, got ${typeof o.useMmap}`);
  if (o.kvType !== undefined && typeof o.kvType !== 'string') throw new FuselmError('E_INVALID_ARG', `kvType must be 'auto', 'f32', 'f16' or 'bf16'`);
}

/** The memory budget of loadModel's options, and how messages name it. */
function memoryBudget(opts: LoadModelOptions): { bytes: number; name: string } {
  return opts.maxMemory !== undefined ? { bytes: opts.maxMemory, name: 'maxMemory' } : { bytes: availableMemory(), name: 'the memory available' };
}

/** KV element bytes as kvDtypeFor will choose them, from the type of the first layer's q weight (f32: 4, else 2). */
function plannedKvBytes(opts: LoadModelOptions, dtype: WeightDtype, firstQIsF32: boolean | undefined): number {
  const kv = opts.kvType ?? 'auto';
  if (kv !== 'auto') return kv === 'f32' ? 4 : 2;
  return dtype === 'auto' && firstQIsF32 !== false ? 4 : 2;
}

/**
 * The load-time plan (weights, the KV cache at contextSize, activations and logits) checked
 * against the budget, before anything is allocated; returns what it counts against the host
 * budget. On a CUDA device the weights are staged in host memory first, and the whole plan must
 * fit the device's free memory (cudaMemGetInfo; the emulator's device is FUSELM_EMU_DEVICE_MEMORY).
 */
function checkLoadPlan(
  where: string,
  config: ModelConfig,
  opts: LoadModelOptions,
  device: NativeDevice,
  o: { contextSize: number; batchSize: number; weights: MemoryItem[]; kvBytes: number },
): number {
  const budget = memoryBudget(opts);
  const weightBytes = o.weights.reduce((n, i) => n + i.bytes, 0);
  const [kv, acts] = decoderStateItems(config, o);
  const items = [...o.weights, kv, acts];
  const perPosition = 2 * config.nLayers * config.nKvHeads * config.headDim * o.kvBytes;
  const hint = (bytes: number) => {
    const fits = Math.floor((bytes - weightBytes - acts.bytes) / perPosition);
    return fits >= 1 ? `contextSize ${fits} or less would fit` : 'the weights alone do not fit';
  };
  if (device !== 'cpu') {
    // the weights are staged in host memory (or mapped) within the budget; the whole plan must fit the device's free memory
    checkMemoryPlan(where, o.weights, budget.bytes, budget.name, '');
    const free = call(() => native().deviceMemoryInfo(device)).free;
    checkMemoryPlan(where, items, free, `the free memory of the ${device} device`, hint(free));
    return weightBytes;
  }
  checkMemoryPlan(where, items, budget.bytes, budget.name, hint(budget.bytes));
  return items.reduce((n, i) => n + i.bytes, 0);
}

/** 'cpu', 'cuda' or 'cuda-emulated' for the options and this machine (see LoadModelOptions.device). */
function modelDevice(opts: LoadModelOptions): NativeDevice {
  const kv = opts.kvType ?? 'auto';
  if (!['auto', 'f32', 'f16', 'bf16'].includes(kv)) throw new FuselmError('E_INVALID_ARG', `kvType must be 'auto', 'f32', 'f16' or 'bf16', got '${kv}'`);
  return resolveDevice(opts.device);
}

/** The CPU backend that loads the weights (and runs the model on device 'cpu' unless finishLoad needs another KV cache type). */
function cpuBackend(opts: LoadModelOptions, device: 'cpu' | 'cuda' | 'cuda-emulated'): CpuBackend {
  const kv = opts.kvType ?? 'auto';
  return new CpuBackend({ threads: opts.threads, impl: opts.impl, kvDtype: device === 'cpu' && kv !== 'auto' ? kv : 'f32' });
}

/**
 * kvType 'auto', on either backend: f32 for f32 weights (the file asks for full precision;
 * stories260K then matches llama.cpp's F32-cache logits within 1e-5), else f16, llama.cpp's
 * default cache type (half the KV memory; stories260K's greedy tokens stay llama.cpp's).
 */
function kvDtypeFor(opts: LoadModelOptions, weights: LlamaWeights): 'f32' | 'f16' | 'bf16' {
  const kv = opts.kvType ?? 'auto';
  return kv !== 'auto' ? kv : weights.layers[0]?.wq.dtype === 'f32' ? 'f32' : 'f16';
}

/**
 * Loads the weights on the host (`cpu` runs load-time ops such as transposes), then makes the
 * model on the CPU, or uploads the weights to the CUDA device and frees the host copies.
 */
async function finishLoad(
  path: string,
  config: ModelConfig,
  tokenizer: Tokenizer,
  cpu: CpuBackend,
  device: 'cpu' | 'cuda' | 'cuda-emulated',
  opts: LoadModelOptions,
  o: ModelInit,
  load: () => Promise<LlamaWeights>,
): Promise<Model> {
  let weights: LlamaWeights | undefined;
  let backend: Backend = cpu;
  try {
    weights = await load();
    const kvDtype = kvDtypeFor(opts, weights);
    if (device !== 'cpu') {
      backend = new CudaBackend({ emulated: device === 'cuda-emulated', kvDtype });
      cpu.dispose();
      weights = uploadLlamaWeights(weights, backend);
    } else if (kvDtype !== cpu.kvDtype) {
      backend = new CpuBackend({ threads: opts.threads, impl: opts.impl, kvDtype });
      cpu.dispose();
    }
    return new Model(path, config, tokenizer, weights, backend, o);
  } catch (e) {
    if (weights) disposeLlamaWeights(weights);
    cpu.dispose();
    backend.dispose();
    throw e;
  }
}

function sizes(config: ModelConfig, opts: LoadModelOptions, where: string): { contextSize: number; batchSize: number } {
  const contextSize = opts.contextSize ?? Math.min(config.contextLength, 4096);
  if (!Number.isInteger(contextSize) || contextSize < 1) throw new FuselmError('E_INVALID_ARG', `contextSize must be a positive integer, got ${contextSize}`);
  if (config.positional !== 'rope' && contextSize > config.contextLength)
    throw new FuselmError('E_INVALID_ARG', `contextSize ${contextSize} exceeds the ${config.contextLength} positions of this model's position table`);
  if (config.ropeMaxContext !== undefined && contextSize > config.ropeMaxContext)
    throw new FuselmError('E_UNSUPPORTED', `${where}: contextSize ${contextSize} is past the ${config.ropeMaxContext} positions this model's dynamic NTK rope scaling leaves unchanged (past them transformers changes the rope base with the length; fuselm does not yet)`);
  if (contextSize > MAX_CONTEXT_SIZE) throw new FuselmError('E_INVALID_ARG', `contextSize must be at most ${MAX_CONTEXT_SIZE}, got ${contextSize}`);
  // a prompt batch never holds more than the context: a larger batchSize is capped to it
  const batchSize = Math.min(opts.batchSize ?? 512, contextSize);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new FuselmError('E_INVALID_ARG', `batchSize must be a positive integer, got ${batchSize}`);
  return { contextSize, batchSize };
}

/** A Hugging Face model folder (decoders: llama, mistral, qwen2, gpt2). */
async function loadHfModel(dir: string, opts: LoadModelOptions, device: 'cpu' | 'cuda' | 'cuda-emulated'): Promise<Model> {
  const hf = await readHfFolder(dir);
  if (isEncoderDecoderConfig(hf.rawConfig)) return (await loadHfEncoderDecoder(hf, opts, device)) as unknown as Model;
  const config = configFromHf(hf.rawConfig, hf.configPath);
  if (config.architecture === 'bert')
    throw new FuselmError('E_UNSUPPORTED', `${dir}: bert is an encoder; load it with loadEmbeddingModel()`);
  const dtype = checkWeightDtype(opts.dtype ?? 'auto', 'loadModel');
  const { contextSize, batchSize } = sizes(config, opts, hf.configPath);
  const st = await openSafetensorsFolder(dir);
  const firstQ = [...st.tensors.values()].find((t) => /(^|\.)(layers|h)\.0\.(self_attn\.q_proj|attn\.c_attn)\.weight$/.test(t.name));
  const planned = checkLoadPlan(dir, config, opts, device, {
    contextSize,
    batchSize,
    weights: [{ what: 'weights', bytes: safetensorsWeightBytes(st) }],
    kvBytes: plannedKvBytes(opts, dtype, firstQ && firstQ.dtype === 'F32'),
  });
  const gen = checkGenerationConfig(hf.generationConfig, `${dir}/generation_config.json`);
  const list = (v: number | number[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]).filter((x) => Number.isInteger(x));
  // the folder's tokenizer takes generation_config.json's eos_token_id ones into its end-of-generation set
  const tokenizer = (await folderHasTokenizer(dir))
    ? await loadTokenizer(dir)
    : idsOnlyTokenizer(config.vocabSize, { bos: list(gen.bos_token_id)[0], eos: list(gen.eos_token_id)[0], eog: list(gen.eos_token_id) });
  if (tokenizer.vocabSize > config.vocabSize)
    throw new FuselmError('E_FORMAT', `${dir}: the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary has ${config.vocabSize}`);
  const cpu = cpuBackend(opts, device);
  return finishLoad(dir, config, tokenizer, cpu, device, opts, { contextSize, batchSize, generationConfig: gen, memory: { max: opts.maxMemory, planned } }, () =>
    loadHfDecoderWeights(st, config, cpu, dir, { contextSize, dtype, onProgress: opts.onProgress }),
  );
}

