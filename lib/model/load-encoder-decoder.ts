/**
 * loadModel's path for encoder-decoder files: a T5 or BART folder, or a GGUF `t5`. Reads the
 * config and tokenizer (a folder without one takes token ids only), loads the weights on the host and makes an EncoderDecoderModel on the
 * CPU or the CUDA device (the weights uploaded, the host copies freed).
 */
import { resolve as resolvePath } from 'node:path';
import type { NativeDevice, NativeImpl, NativeTensor } from '../../bindings.js';
import { type Backend, CpuBackend, CudaBackend } from '../backend.js';
import { FuselmError } from '../errors.js';
import type { GgufFile } from '../formats/gguf.js';
import type { HfFolder, JsonObject } from '../formats/hf.js';
import { openSafetensorsFolder } from '../formats/safetensors.js';
import { checkGenerationConfig } from '../generate.js';
import { withAsyncEncode } from '../tokenizer/async.js';
import { tokenizerFromGguf } from '../tokenizer/from-gguf.js';
import { folderHasTokenizer, loadTokenizer } from '../tokenizer/load.js';
import { bartConfigFromHf, loadBartHfWeights } from './bart.js';
import { type EncDecWeights, encDecTensors, type EncoderDecoderConfig, EncoderDecoderModel } from './encoder-decoder.js';
import { HfTensors } from './hf-weights.js';
import { idsOnlyTokenizer } from './ids-tokenizer.js';
import { loadT5GgufWeights, loadT5HfWeights, t5ConfigFromGguf, t5ConfigFromHf } from './t5.js';
import { availableMemory, checkMemoryPlan, ggufWeightItems, type MemoryItem, safetensorsWeightBytes } from './memory.js';
import { CPU_BLOCK_DTYPES, CUDA_BLOCK_DTYPES, checkWeightDtype, GgufMappings, type WeightDtype } from './weights.js';

/** What loadModel's options (LoadModelOptions, checked there) say to these models. */
export interface EncoderDecoderLoadOptions {
  threads?: number;
  impl?: NativeImpl;
  dtype?: WeightDtype;
  useMmap?: boolean;
  /** T5: most encoder tokens and decoder positions (default 512); BART: at most its position table. */
  contextSize?: number;
  /** Bytes the weights may take (default: the memory available), checked before any is loaded. */
  maxMemory?: number;
}

/**
 * The weights, as held, checked against the budget before anything is allocated (E_OUT_OF_MEMORY
 * naming the parts). The per-call state (cross K/V, decoder caches) is small beside them and not
 * planned here.
 */
function checkWeightPlan(where: string, items: MemoryItem[], opts: EncoderDecoderLoadOptions): void {
  const budget = opts.maxMemory ?? availableMemory();
  checkMemoryPlan(where, items, budget, opts.maxMemory !== undefined ? 'maxMemory' : 'the memory available', 'the weights alone do not fit');
}

/** The config's token ids (decoder start, forced first and last) within the vocabulary, else E_FORMAT naming the field. */
function checkTokenIds(c: EncoderDecoderConfig, where: string): EncoderDecoderConfig {
  const ids: Array<[string, number | undefined]> = [['decoder_start_token_id', c.decoderStartId], ['forced_bos_token_id', c.forcedBosId], ['forced_eos_token_id', c.forcedEosId]];
  for (const [field, id] of ids)
    if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id < c.vocabSize))
      throw new FuselmError('E_FORMAT', `${where}: ${field} ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
  return c;
}

/** The config.json model types and GGUF architectures that are encoder-decoders. */
export const ENCODER_DECODER_TYPES = ['t5', 'bart'];

export function isEncoderDecoderConfig(j: JsonObject): boolean {
  return typeof j.model_type === 'string' && ENCODER_DECODER_TYPES.includes(j.model_type);
}

/** T5 has no position table: its encoder input and decoder output are bounded by contextSize (default 512). */
const T5_DEFAULT_TOKENS = 512;

export async function loadHfEncoderDecoder(hf: HfFolder, opts: EncoderDecoderLoadOptions, device: NativeDevice): Promise<EncoderDecoderModel> {
  const dir = hf.dir, j = hf.rawConfig;
  const gen = checkGenerationConfig(hf.generationConfig, `${dir}/generation_config.json`);
  const c = checkTokenIds(j.model_type === 't5' ? t5ConfigFromHf(j, hf.configPath, opts.contextSize ?? T5_DEFAULT_TOKENS) : bartConfigFromHf(j, gen, hf.configPath), hf.configPath);
  if (opts.contextSize !== undefined && c.architecture === 'bart') c.maxEncoderTokens = c.maxDecoderTokens = Math.min(opts.contextSize, c.maxDecoderTokens);
  const dtype = checkWeightDtype(opts.dtype ?? 'auto', 'loadModel');
  const st = await openSafetensorsFolder(dir);
  checkWeightPlan(dir, [{ what: 'weights', bytes: safetensorsWeightBytes(st) }], opts);
  const eos = [gen.eos_token_id, j.eos_token_id].flat().find((x) => Number.isInteger(x)) as number | undefined;
  const tokenizer = (await folderHasTokenizer(dir)) ? await loadTokenizer(dir) : idsOnlyTokenizer(c.vocabSize, { eos });
  if (tokenizer.vocabSize > c.vocabSize)
    throw new FuselmError('E_FORMAT', `${dir}: the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary has ${c.vocabSize}`);
  const T = new HfTensors(st, dir, c.architecture === 'bart' ? ['model.', ''] : [''], dtype);
  const load = () => (c.architecture === 't5' ? loadT5HfWeights(T, c) : loadBartHfWeights(T, c));
  return onBackend(opts, device, load, (w, be) => new EncoderDecoderModel(dir, c, tokenizer, w, be, { generationConfig: gen }));
}

export async function loadGgufEncoderDecoder(path: string, f: GgufFile, opts: EncoderDecoderLoadOptions, device: NativeDevice): Promise<EncoderDecoderModel> {
  const c = checkTokenIds(t5ConfigFromGguf(f, opts.contextSize ?? T5_DEFAULT_TOKENS), path);
  const dtype = checkWeightDtype(opts.dtype ?? 'auto', 'loadModel');
  checkWeightPlan(path, ggufWeightItems(f, dtype, device === 'cpu' ? CPU_BLOCK_DTYPES : CUDA_BLOCK_DTYPES, opts.useMmap ?? true), opts);
  const tokenizer = withAsyncEncode(tokenizerFromGguf(f), { kind: 'gguf', path: resolvePath(path) });
  if (tokenizer.vocabSize !== c.vocabSize)
    throw new FuselmError('E_FORMAT', `${path}: the tokenizer has ${tokenizer.vocabSize} tokens but token_embd.weight has ${c.vocabSize} rows`);
  const load = async () => {
    const mappings = (opts.useMmap ?? true) ? new GgufMappings() : undefined;
    try {
      return await loadT5GgufWeights(f, c, dtype, mappings);
    } finally {
      await mappings?.close(); // the views hold the mapping from here on
    }
  };
  return onBackend(opts, device, load, (w, be) => new EncoderDecoderModel(path, c, tokenizer, w, be, { generationConfig: {} }));
}

/** The weights in the device's memory (one copy of a tensor used twice: tied embeddings). */
function uploadWeights(w: EncDecWeights, be: Backend): EncDecWeights {
  const copies = new Map<NativeTensor, NativeTensor>();
  const up = <T extends NativeTensor | undefined>(t: T): T => {
    if (!t) return t;
    let c = copies.get(t);
    if (!c) copies.set(t, (c = be.upload(t)));
    return c as T;
  };
  try {
    const layer = <L extends object>(L: L): L => Object.fromEntries(Object.entries(L).map(([k, t]) => [k, up(t as NativeTensor | undefined)])) as L;
    return { ...layer({ ...w, enc: undefined, dec: undefined }), enc: w.enc.map(layer), dec: w.dec.map(layer) } as EncDecWeights;
  } catch (e) {
    for (const t of copies.values()) t.free();
    throw e;
  }
}

async function onBackend(
  opts: EncoderDecoderLoadOptions,
  device: NativeDevice,
  load: () => Promise<EncDecWeights>,
  make: (w: EncDecWeights, be: Backend) => EncoderDecoderModel,
): Promise<EncoderDecoderModel> {
  const be: Backend = device === 'cpu' ? new CpuBackend({ threads: opts.threads, impl: opts.impl }) : new CudaBackend({ emulated: device === 'cuda-emulated' });
  let w: EncDecWeights | undefined;
  try {
    w = await load();
    if (be.device !== 'cpu') {
      const host = w;
      w = uploadWeights(host, be);
      for (const t of encDecTensors(host)) t.free();
    }
    return make(w, be);
  } catch (e) {
    if (w) for (const t of encDecTensors(w)) t.free();
    be.dispose();
    throw e;
  }
}
