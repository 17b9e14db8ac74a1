/**
 * LoRA adapters at run time (issue 19): a PEFT folder (adapter_config.json +
 * adapter_model.safetensors) or a llama.cpp GGUF adapter (general.type = adapter), read into
 * f32 pairs per layer and projection, applied unmerged by the `lora` op after each targeted
 * matmul: y = W·x + s·B(A·x), s = scale · alpha / r (alpha / √r with PEFT's use_rslora; a GGUF
 * adapter's alpha of 0 means s = scale, as llama.cpp has it), whatever W's dtype.
 *
 * Each pair is held as A [r, K] and Bᵀ [r, N] with alpha / r folded into Bᵀ, so adapters stack
 * by rows: a LoraSet is several adapters' pairs stacked per projection, and the op's per-row
 * scales pick each row's adapters (one batch, sequences with different adapters).
 */
import type { Worker } from 'node:worker_threads';
import path from 'node:path';
import type { NativeTensor } from '../../bindings.js';
import type { Backend } from '../backend.js';
import { FuselmError, type FuselmErrorCode, shown } from '../errors.js';
import { GgmlType } from '../formats/ggml-types.js';
import { ggufGet, readGguf } from '../formats/gguf.js';
import { hasOwn, readJsonFile } from '../formats/files.js';
import { isDirectory } from '../formats/hf.js';
import { readSafetensors } from '../formats/safetensors.js';
import { emptyTensor, tensorFromF32, tensorFromI32 } from '../tensor.js';
import { startWorker } from '../worker.js';
import type { ModelConfig } from './config.js';
import { type PairJob, pairValues, type RawTensor, readValues } from './lora-values.js';

/** The projections an adapter may target, by their LayerWeights names. */
export type LoraModule = 'wq' | 'wk' | 'wv' | 'wo' | 'wGate' | 'wUp' | 'wDown';
export const LORA_MODULES: readonly LoraModule[] = ['wq', 'wk', 'wv', 'wo', 'wGate', 'wUp', 'wDown'];

const PEFT_NAMES: Record<string, LoraModule> = {
  'self_attn.q_proj': 'wq', 'self_attn.k_proj': 'wk', 'self_attn.v_proj': 'wv', 'self_attn.o_proj': 'wo',
  'mlp.gate_proj': 'wGate', 'mlp.up_proj': 'wUp', 'mlp.down_proj': 'wDown',
};
const GGUF_NAMES: Record<string, LoraModule> = {
  attn_q: 'wq', attn_k: 'wk', attn_v: 'wv', attn_output: 'wo', ffn_gate: 'wGate', ffn_up: 'wUp', ffn_down: 'wDown',
};

/** [K, N] of a projection: its input and output widths. */
function moduleDims(c: ModelConfig, m: LoraModule): [number, number] {
  const q = c.nHeads * c.headDim, kv = c.nKvHeads * c.headDim;
  return { wq: [c.dim, q], wk: [c.dim, kv], wv: [c.dim, kv], wo: [q, c.dim], wGate: [c.dim, c.ffnDim], wUp: [c.dim, c.ffnDim], wDown: [c.ffnDim, c.dim] }[m] as [number, number];
}

/** One projection's low-rank pair: A [r, K] f32 and Bᵀ [r, N] f32 times alpha / r. */
export interface LoraPair {
  a: NativeTensor;
  bt: NativeTensor;
}

let nextAdapterId = 1;

/**
 * A key naming a call's adapters and their scales (summed per adapter, zero left out): cached
 * keys and values are reusable only under the same key.
 */
/** One adapter of a call: applied times `scale` (default 1). */
export interface AdapterUse {
  adapter: LoraAdapter;
  scale?: number;
}

/** E_INVALID_ARG unless `a` is a list of { adapter: LoraAdapter, scale?: finite number }. */
export function checkAdapterUses(a: unknown, what: string): asserts a is AdapterUse[] {
  if (!Array.isArray(a)) throw new FuselmError('E_INVALID_ARG', `${what} must be an array of { adapter, scale }`);
  a.forEach((u: unknown, i) => {
    const o = u as AdapterUse;
    if (typeof u !== 'object' || u === null || !(o.adapter instanceof LoraAdapter))
      throw new FuselmError('E_INVALID_ARG', `${what}[${i}] must be { adapter, scale } with an adapter from model.loadAdapter()`);
    if (o.scale !== undefined && !(typeof o.scale === 'number' && Number.isFinite(o.scale)))
      throw new FuselmError('E_INVALID_ARG', `${what}[${i}].scale must be a finite number, got ${shown(o.scale)}`);
  });
}

/** Each distinct adapter of `uses` acquired (all or none: on an error those taken are released); `holder` as acquire()'s. */
export function acquireAdapters(uses: readonly AdapterUse[] | undefined, holder = false): LoraAdapter[] {
  const taken: LoraAdapter[] = [];
  try {
    for (const a of new Set((uses ?? []).map((u) => u.adapter))) {
      a.acquire(holder);
      taken.push(a);
    }
  } catch (e) {
    for (const a of taken) a.release();
    throw e;
  }
  return taken;
}

export function adapterKey(uses: readonly AdapterUse[] | undefined): string {
  const ids = [...new Set((uses ?? []).map((u) => u.adapter.id))].sort((a, b) => a - b);
  const w = new Float32Array(ids.length);
  for (const u of uses ?? []) w[ids.indexOf(u.adapter.id)] += u.scale ?? 1;
  return ids.flatMap((id, j) => (w[j] ? [`${id}*${w[j]}`] : [])).join(',');
}

/**
 * A loaded adapter (Model.loadAdapter). Pass it in `adapters: [{ adapter, scale }]`. dispose()
 * may come at any time: from then on a new use of it is an E_INVALID_ARG ('was disposed'), while
 * what already uses it keeps it until it ends (a generate/stream/chat turn/beamSearch/evaluate
 * call, a slot's sequence until SequenceSlots.releaseAdapters or another useAdapters, a server
 * request): its memory is freed when the last of them ends (`freed` resolves then). So a
 * sequence never silently loses its adapter part-way, as node-llama-cpp frees an adapter only
 * once no context uses it.
 */
export class LoraAdapter {
  readonly path: string;
  readonly format: 'peft' | 'gguf';
  /** Distinct per adapter loaded: keys the prompt cache and the stacked sets. */
  readonly id: number;
  /** Per layer, the projections it targets. */
  readonly layers: ReadonlyArray<Partial<Record<LoraModule, LoraPair>>>;
  /** Resolves once its memory is freed: at dispose(), or when the last sequence using it then ends. */
  readonly freed: Promise<void>;
  #disposed = false;
  #isFreed = false;
  #users = 0;
  #onFree: (a: LoraAdapter) => void;
  #resolveFreed!: () => void;

  constructor(p: string, format: 'peft' | 'gguf', layers: Array<Partial<Record<LoraModule, LoraPair>>>, onFree: (a: LoraAdapter) => void) {
    this.path = p;
    this.format = format;
    this.layers = layers;
    this.id = nextAdapterId++;
    this.#onFree = onFree;
    this.freed = new Promise((r) => (this.#resolveFreed = r));
  }

  /** True from dispose() on: no new use may start. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** True once its tensors are freed (disposed, and nothing uses it any more). */
  get isFreed(): boolean {
    return this.#isFreed;
  }

  /**
   * A sequence or call starts using it (Model, SequenceSlots, the server's scheduler): an
   * E_INVALID_ARG once disposed. `holder`: the caller holds it already for the same use (a queued
   * request taking its slot), so it is refused only once freed (never, while held).
   */
  acquire(holder = false): void {
    if (this.#isFreed || (this.#disposed && !holder)) throw new FuselmError('E_INVALID_ARG', `adapter ${this.path} was disposed`);
    this.#users++;
  }

  /** The end of an acquire(): the last one after dispose() frees it. */
  release(): void {
    if (this.#users <= 0) throw new FuselmError('E_INVALID_ARG', `adapter ${this.path} released more often than acquired`);
    if (--this.#users === 0 && this.#disposed) this.#free();
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#users === 0) this.#free();
  }

  #free(): void {
    this.#isFreed = true;
    this.#onFree(this);
    freePairs(this.layers);
    this.#resolveFreed();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function freePairs(layers: ReadonlyArray<Partial<Record<LoraModule, LoraPair>>>): void {
  for (const l of layers) for (const p of Object.values(l)) if (p) (p.a.free(), p.bt.free());
}

/** A projection's A and B as found in the file, with the factor folded into Bᵀ. */
export interface FoundPair {
  layer: number;
  module: LoraModule;
  a?: RawTensor;
  b?: RawTensor;
  /** alpha / r (or as the format says), from the rank of the file's A. */
  factor: (rank: number) => number;
}

/**
 * Reads an adapter for a model of config `c` whose layers are `layers` (to know which
 * projections it has), into the backend's memory. Everything is checked before anything is
 * allocated; on any error nothing stays allocated.
 */
export async function loadLoraAdapter(
  p: string,
  c: ModelConfig,
  layers: ReadonlyArray<Partial<Record<LoraModule, unknown>>>,
  be: Backend,
  onFree: (a: LoraAdapter) => void,
): Promise<LoraAdapter> {
  if (typeof p !== 'string' || p === '') throw new FuselmError('E_INVALID_ARG', 'loadAdapter: path must be a non-empty string');
  const format = (await isDirectory(p)) ? 'peft' : 'gguf';
  const found = await adapterPairs(p, c.architecture);
  // every pair complete, of a projection this model has, with shapes that fit it
  for (const f of found.values()) {
    const what = (t?: RawTensor) => `${t?.file ?? p}: tensor '${t?.name ?? `${f.module} of layer ${f.layer}`}'`;
    if (!f.a || !f.b) throw new FuselmError('E_FORMAT', `${what(f.a ?? f.b)}: its ${f.a ? 'B' : 'A'} matrix is missing`);
    if (f.layer >= c.nLayers) throw new FuselmError('E_INVALID_ARG', `${what(f.a)}: layer ${f.layer}, but the model has ${c.nLayers} layers`);
    if (c.moe && (f.module === 'wGate' || f.module === 'wUp' || f.module === 'wDown'))
      throw new FuselmError('E_UNSUPPORTED', `${what(f.a)}: LoRA on the MLP of a mixture-of-experts model (its experts or shared expert) is not supported; attention projections are`);
    if (!layers[f.layer][f.module]) throw new FuselmError('E_INVALID_ARG', `${what(f.a)}: the model has no ${f.module} projection to adapt`);
    const [K, N] = moduleDims(c, f.module);
    const [ra, ka] = f.a.shape, [nb, rb] = f.b.shape;
    if (f.a.shape.length !== 2 || f.b.shape.length !== 2 || ka !== K || nb !== N || ra !== rb || ra < 1)
      throw new FuselmError('E_FORMAT', `${what(f.a)}: A [${f.a.shape.join(", ")}] and B [${f.b.shape.join(", ")}] do not fit the base projection [${N}, ${K}] (expected A [r, ${K}], B [${N}, r])`);
  }
  if (found.size === 0) throw new FuselmError('E_FORMAT', `${p}: the adapter holds no LoRA tensors`);
  const pairs = [...found.values()];
  const jobs = pairs.map((f): PairJob => {
    // a llama GGUF base ropes adjacent pairs (ropeNeox false), a Hugging Face folder halves
    const heads = f.module === 'wq' ? c.nHeads : f.module === 'wk' ? c.nKvHeads : 0;
    const reorder = heads && qkOrderDiffers(c.architecture, !c.ropeNeox, format) ? { heads, to: c.ropeNeox ? ('hf' as const) : ('gguf' as const) } : undefined;
    return { a: f.a!, b: f.b!, factor: f.factor(f.a!.shape[0]), reorder };
  });
  const out: Array<Partial<Record<LoraModule, LoraPair>>> = Array.from({ length: c.nLayers }, () => ({}));
  const values = new PairReader();
  try {
    for (const [i, f] of pairs.entries()) {
      const { a, b } = jobs[i];
      const v = await values.read(jobs[i]);
      const pair = { a: toBackend(be, await tensorInSlices(a.shape, v.a)), bt: undefined as unknown as NativeTensor };
      out[f.layer][f.module] = pair;
      pair.bt = toBackend(be, await tensorInSlices([a.shape[0], b.shape[0]], v.bt));
    }
  } catch (e) {
    for (const l of out) for (const q of Object.values(l)) if (q) (q.a?.free(), q.bt?.free());
    throw e;
  } finally {
    values.close();
  }
  return new LoraAdapter(p, format, out, onFree);
}

/** Bytes copied into a tensor between two turns of the event loop. */
const WRITE_SLICE = 1 << 20;

/** An f32 tensor of `values`, copied in slices so that a large one does not hold the event loop. */
async function tensorInSlices(shape: number[], values: Float32Array): Promise<NativeTensor> {
  const t = emptyTensor('f32', shape);
  try {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    for (let at = 0; at < bytes.length; at += WRITE_SLICE) {
      if (at) await new Promise<void>((r) => setImmediate(r));
      t.write(bytes.subarray(at, at + WRITE_SLICE), at);
    }
    return t;
  } catch (e) {
    t.free();
    throw e;
  }
}

/** How long the LoRA worker stays after the last adapter loaded (loads in a row reuse it). */
const WORKER_IDLE_MS = 2000;

interface WorkerLink {
  worker: Worker;
  /** The requests sent, by id. */
  waiting: Map<number, { resolve: (m: PairReply) => void; reject: (e: unknown) => void }>;
  next: number;
  idle?: NodeJS.Timeout;
}

type PairReply = { id: number } & ({ a: Float32Array; bt: Float32Array } | { error: { code: FuselmErrorCode; message: string } });

/**
 * Pairs' values read by the LoRA worker: one thread for the process, shared by the adapters
 * loading at once, ended a while after none is (it holds the process meanwhile only while
 * used). Where no worker starts or it dies, they are read on this thread (from then on), a turn
 * of the event loop given between pairs.
 */
class PairReader {
  static #link: WorkerLink | undefined;
  static #users = 0;
  static #failed = false;

  constructor() {
    PairReader.#users++;
  }

  async read(job: PairJob): Promise<{ a: Float32Array; bt: Float32Array }> {
    if (!PairReader.#failed)
      try {
        const link = PairReader.#start();
        const id = link.next++;
        const reply = await new Promise<PairReply>((resolve, reject) => {
          link.waiting.set(id, { resolve, reject });
          link.worker.postMessage({ id, job });
        });
        if ('error' in reply) throw new FuselmError(reply.error.code, reply.error.message);
        return reply;
      } catch (e) {
        if (e instanceof FuselmError) throw e;
        PairReader.#failed = true;
      }
    await new Promise<void>((r) => setImmediate(r));
    return pairValues(job);
  }

  close(): void {
    const link = PairReader.#link;
    if (--PairReader.#users > 0 || !link) return;
    link.worker.unref();
    link.idle = setTimeout(() => {
      if (PairReader.#link === link) PairReader.#link = undefined;
      void link.worker.terminate();
    }, WORKER_IDLE_MS).unref();
  }

  static #start(): WorkerLink {
    const had = PairReader.#link;
    if (had) {
      clearTimeout(had.idle);
      had.worker.ref();
      return had;
    }
    const link: WorkerLink = { worker: startWorker('model/lora-worker'), waiting: new Map(), next: 0 };
    const fail = (e: unknown) => {
      if (PairReader.#link === link) PairReader.#link = undefined;
      for (const r of link.waiting.values()) r.reject(e);
      link.waiting.clear();
    };
    link.worker.on('message', (m: PairReply) => {
      const r = link.waiting.get(m.id);
      link.waiting.delete(m.id);
      r?.resolve(m);
    });
    link.worker.on('error', fail);
    link.worker.on('exit', () => fail(new Error('the LoRA worker exited')));
    return (PairReader.#link = link);
  }
}

function toBackend(be: Backend, t: NativeTensor): NativeTensor {
  if (be.device === 'cpu') return t;
  try {
    return be.upload(t);
  } finally {
    t.free();
  }
}

const ST_TYPES: Record<string, GgmlType> = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16 };

/**
 * adapter_config.json keys that change the numbers and are not implemented: each must be
 * absent, null, false or empty.
 */
const PEFT_UNSUPPORTED = [
  'use_dora', 'modules_to_save', 'lora_bias', 'use_qalora', 'trainable_token_indices', 'alora_invocation_tokens', 'layer_replication',
  'target_parameters', 'arrow_config', 'use_bdlora', 'monteclora_config', 'kasa_config', 'velora_config',
];

/**
 * PEFT's rank_pattern / alpha_pattern lookup: the first key that is the module's full name or a
 * dotted suffix of it (PEFT matches `(.*\.)?key$` as a regular expression; a key with other
 * regular-expression syntax, which could backtrack without end on a file's say-so, is an
 * E_UNSUPPORTED naming it).
 */
function patternValue(patterns: Record<string, unknown>, module: string, where: string): unknown {
  for (const k of Object.keys(patterns)) {
    if (!/^[\w.]+$/.test(k)) throw new FuselmError('E_UNSUPPORTED', `${where}: pattern key ${JSON.stringify(k.slice(0, 80))} is not a plain module name (only names and dotted suffixes are supported)`);
    if (module === k || module.endsWith(`.${k}`)) return patterns[k];
  }
  return undefined;
}

async function peftPairs(dir: string): Promise<Map<string, FoundPair>> {
  const cfgPath = path.join(dir, 'adapter_config.json');
  const cfg = (await readJsonFile(cfgPath, 'adapter config')) as Record<string, unknown>;
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new FuselmError('E_FORMAT', `${cfgPath}: must be a JSON object`);
  const field = (k: string) => (hasOwn(cfg, k) ? cfg[k] : undefined);
  if (field('peft_type') !== 'LORA') throw new FuselmError('E_UNSUPPORTED', `${cfgPath}: peft_type ${JSON.stringify(field('peft_type'))} is not supported (only LORA)`);
  for (const k of PEFT_UNSUPPORTED) {
    const v = field(k);
    const set = !(v === undefined || v === null || v === false || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && Object.keys(v).length === 0));
    if (set) throw new FuselmError('E_UNSUPPORTED', `${cfgPath}: ${k} is not supported (${k === 'use_dora' ? 'DoRA' : k} changes the numbers)`);
  }
  if (field('bias') !== undefined && field('bias') !== 'none') throw new FuselmError('E_UNSUPPORTED', `${cfgPath}: bias ${JSON.stringify(field('bias'))} is not supported (only "none")`);
  if (field('fan_in_fan_out') === true) throw new FuselmError('E_UNSUPPORTED', `${cfgPath}: fan_in_fan_out is not supported (Conv1D bases)`);
  const num = (k: string, v: unknown) => {
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new FuselmError('E_FORMAT', `${cfgPath}: ${k} must be a number > 0, got ${JSON.stringify(v)}`);
    return v;
  };
  const r = num('r', field('r')), alpha = num('lora_alpha', field('lora_alpha'));
  const rslora = field('use_rslora') === true;
  const obj = (k: string) => {
    const v = field(k) ?? {};
    if (typeof v !== 'object' || Array.isArray(v)) throw new FuselmError('E_FORMAT', `${cfgPath}: ${k} must be an object`);
    return v as Record<string, unknown>;
  };
  const rankPattern = obj('rank_pattern'), alphaPattern = obj('alpha_pattern');
  const st = await readSafetensors(path.join(dir, 'adapter_model.safetensors'));
  const found = new Map<string, FoundPair>();
  for (const t of st.tensors.values()) {
    const m = /^base_model\.model\.((?:model\.)?layers\.(\d+)\.(self_attn\.\w+|mlp\.\w+))\.lora_(A|B)\.weight$/.exec(t.name);
    const module = m && hasOwn(PEFT_NAMES, m[3]) ? PEFT_NAMES[m[3]] : undefined;
    if (!m || !module) throw new FuselmError('E_UNSUPPORTED', `${t.file}: tensor '${t.name}' is not a LoRA A/B of a supported projection (q/k/v/o_proj, gate/up/down_proj)`);
    const type = hasOwn(ST_TYPES, t.dtype) ? ST_TYPES[t.dtype] : undefined;
    if (type === undefined) throw new FuselmError('E_UNSUPPORTED', `${t.file}: tensor '${t.name}' has dtype ${t.dtype} (supported: F32, F16, BF16)`);
    const full = m[1], layer = Number(m[2]);
    const key = `${layer}.${module}`;
    const rm = num(`rank_pattern of ${full}`, patternValue(rankPattern, full, `${cfgPath}: rank_pattern`) ?? r);
    const am = num(`alpha_pattern of ${full}`, patternValue(alphaPattern, full, `${cfgPath}: alpha_pattern`) ?? alpha);
    const f = found.get(key) ?? { layer, module, factor: (rank: number) => {
      if (rank !== rm) throw new FuselmError('E_FORMAT', `${t.file}: tensor '${t.name}' has rank ${rank}, but the config says r = ${rm} for ${full}`);
      return rslora ? am / Math.sqrt(rm) : am / rm;
    } };
    f[m[4] === 'A' ? 'a' : 'b'] = { name: t.name, file: t.file, offset: t.offset, nbytes: t.nbytes, type, shape: t.shape };
    found.set(key, f);
  }
  // the ranks against the config, before anything is read
  for (const f of found.values()) if (f.a) f.factor(f.a.shape[0]);
  return found;
}

/** GGUF tensor names of the projections (the inverse of GGUF_NAMES). */
export const LORA_GGUF_NAMES = Object.fromEntries(Object.entries(GGUF_NAMES).map(([k, v]) => [v, k])) as Record<LoraModule, string>;

/**
 * An adapter's pairs as the file holds them (not read yet), for a base of architecture `arch`:
 * a PEFT folder, or a GGUF adapter whose general.architecture must be `arch`.
 */
export async function adapterPairs(p: string, arch: string): Promise<Map<string, FoundPair>> {
  return (await isDirectory(p)) ? peftPairs(p) : ggufPairs(p, arch);
}

/** Whether the q/k rows of a base and an adapter are in different orders (qkRowOrder): llama GGUFs only hold the adjacent pairs. */
export function qkOrderDiffers(architecture: string, baseIsGguf: boolean, adapterFormat: 'peft' | 'gguf'): boolean {
  return architecture === 'llama' && baseIsGguf !== (adapterFormat === 'gguf');
}

/** A pair's values: A [r, K], B [N, r] as stored, and its factor (alpha / r or as the format says). */
export async function readPair(f: FoundPair): Promise<{ a: Float32Array; b: Float32Array; r: number; K: number; N: number; factor: number }> {
  if (!f.a || !f.b) throw new FuselmError('E_FORMAT', `${(f.a ?? f.b)!.file}: tensor '${(f.a ?? f.b)!.name}': its ${f.a ? 'B' : 'A'} matrix is missing`);
  const [r, K] = f.a.shape, N = f.b.shape[0];
  if (f.b.shape[1] !== r) throw new FuselmError('E_FORMAT', `${f.b.file}: tensor '${f.b.name}' has shape [${f.b.shape.join(', ')}], expected [${N}, ${r}] (A's rank)`);
  return { a: await readValues(f.a), b: await readValues(f.b), r, K, N, factor: f.factor(r) };
}

async function ggufPairs(p: string, architecture: string): Promise<Map<string, FoundPair>> {
  const f = await readGguf(p);
  const str = (k: string) => ggufGet(f, k);
  if (str('general.type') !== 'adapter') throw new FuselmError('E_FORMAT', `${p}: general.type is ${JSON.stringify(str('general.type'))}, expected "adapter" (a LoRA GGUF from convert_lora_to_gguf)`);
  if (str('adapter.type') !== 'lora') throw new FuselmError('E_UNSUPPORTED', `${p}: adapter.type ${JSON.stringify(str('adapter.type'))} is not supported (only "lora")`);
  const arch = str('general.architecture');
  if (arch !== architecture) throw new FuselmError('E_INVALID_ARG', `${p}: general.architecture is ${JSON.stringify(arch)}, but the model is ${architecture}`);
  for (const k of f.metadata.keys())
    if (k.startsWith('adapter.') && !['adapter.type', 'adapter.lora.alpha'].includes(k))
      throw new FuselmError('E_UNSUPPORTED', `${p}: metadata ${k} is not supported (it would change the numbers)`);
  const alphaV = str('adapter.lora.alpha') ?? 0;
  if (typeof alphaV !== 'number' || !Number.isFinite(alphaV) || alphaV < 0) throw new FuselmError('E_FORMAT', `${p}: adapter.lora.alpha must be a number >= 0`);
  const alpha = alphaV;
  const found = new Map<string, FoundPair>();
  for (const t of f.tensors) {
    const m = /^blk\.(\d+)\.(\w+)\.weight\.lora_(a|b)$/.exec(t.name);
    const module = m && hasOwn(GGUF_NAMES, m[2]) ? GGUF_NAMES[m[2]] : undefined;
    if (!m || !module) throw new FuselmError('E_UNSUPPORTED', `${p}: tensor '${t.name}' is not a LoRA a/b of a supported projection (attn_q/k/v/output, ffn_gate/up/down)`);
    if (![GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0].includes(t.type) || t.dims.length !== 2)
      throw new FuselmError('E_UNSUPPORTED', `${p}: tensor '${t.name}' has type ${GgmlType[t.type] ?? t.type} and ${t.dims.length} dims (supported: 2-dim F32, F16, BF16, Q8_0)`);
    const layer = Number(m[1]);
    const key = `${layer}.${module}`;
    const pair = found.get(key) ?? { layer, module, factor: (rank: number) => (alpha ? alpha / rank : 1) };
    pair[m[3] as 'a' | 'b'] = { name: t.name, file: t.file?.path ?? p, offset: t.offset, nbytes: t.nbytes, type: t.type, shape: [...t.dims].reverse() };
    found.set(key, pair);
  }
  return found;
}

/** One projection's stacked pairs in a LoraSet: the op's a, bt and seg. */
export interface LoraStack {
  a: NativeTensor;
  bt: NativeTensor;
  seg: NativeTensor;
}

/**
 * Several adapters stacked per projection (the lora op's a, bt, seg): adapter j's ranks are
 * seg[j] .. seg[j+1] - 1, none where it does not target the projection. One adapter's set uses
 * its own tensors; several are copied into stacks.
 */
export class LoraSet {
  readonly adapters: readonly LoraAdapter[];
  /** Per layer, per projection some adapter targets. */
  readonly layers: ReadonlyArray<Partial<Record<LoraModule, LoraStack>>>;
  #owned: NativeTensor[] = [];

  constructor(adapters: readonly LoraAdapter[], be: Backend) {
    this.adapters = adapters;
    const J = adapters.length;
    try {
      this.layers = adapters[0].layers.map((_, l) => {
        const stacks: Partial<Record<LoraModule, LoraStack>> = {};
        for (const m of LORA_MODULES) {
          const pairs = adapters.map((ad) => ad.layers[l][m]);
          if (pairs.every((q) => !q)) continue;
          const seg = Int32Array.from({ length: J + 1 }, (_, j) => pairs.slice(0, j).reduce((n, q) => n + (q?.a.shape[0] ?? 0), 0));
          const segT = tensorFromI32([1, J + 1], seg);
          this.#owned.push(segT);
          if (J === 1) {
            stacks[m] = { a: pairs[0]!.a, bt: pairs[0]!.bt, seg: segT };
            continue;
          }
          const stack = (pick: (q: LoraPair) => NativeTensor) => {
            const parts = pairs.filter((q): q is LoraPair => !!q).map(pick);
            const cols = parts[0].shape[1], rows = seg[J];
            const host = new Uint8Array(rows * cols * 4);
            let off = 0;
            for (const t of parts) {
              const b = new Uint8Array(t.read());
              host.set(b, off);
              off += b.length;
            }
            const t = toBackend(be, tensorFromF32('f32', [rows, cols], new Float32Array(host.buffer)));
            this.#owned.push(t);
            return t;
          };
          stacks[m] = { a: stack((q) => q.a), bt: stack((q) => q.bt), seg: segT };
        }
        return stacks;
      });
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  dispose(): void {
    for (const t of this.#owned) t.free();
    this.#owned = [];
  }
}
