/**
 * The memory plan of a model: what loading it and running it will allocate at most (weights as
 * they will be held, the KV caches at their full contextSize, activations and logits), summed
 * before anything is allocated and checked against a budget, so that a hostile or mistaken file
 * or option is an E_OUT_OF_MEMORY naming what does not fit rather than a process killed by the
 * kernel's OOM killer. The budget is LoadModelOptions.maxMemory, by default the memory the
 * machine has available for this process (its cgroup's limit included: process.availableMemory).
 */
import { freemem } from 'node:os';
import { FuselmError } from '../errors.js';
import type { NativeDType } from '../../bindings.js';
import type { GgufFile } from '../formats/gguf.js';
import type { SafetensorsModel } from '../formats/safetensors.js';
import type { ModelConfig } from './config.js';
import { heldDtype, type WeightDtype } from './weights.js';

export interface MemoryItem {
  what: string;
  bytes: number;
}

/** Bytes this process may still allocate: free memory, within the cgroup's limit where there is one. */
export function availableMemory(): number {
  const p = process as NodeJS.Process & { availableMemory?: () => number };
  const avail = typeof p.availableMemory === 'function' ? p.availableMemory() : freemem();
  return Number.isFinite(avail) && avail > 0 ? avail : freemem();
}

/** A large host buffer is 2 MiB aligned and sized (native/tensor.cc): the plan counts it so. */
function bufferBytes(n: number): number {
  const huge = 2 << 20;
  return n >= huge ? Math.ceil(n / huge) * huge : n;
}

const MiB = (n: number) => `${(n / 2 ** 20).toFixed(n < 2 ** 20 ? 2 : 0)} MiB`;

const HELD_BYTES_PER_VALUE: Partial<Record<NativeDType, number>> = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32 };

/**
 * The weights of a GGUF as they will be held (heldDtype): those kept as stored take their size
 * in the file, as file-backed pages when the file is mapped (`mapped`: exact, shared with the
 * page cache) or buffers of their own; converted ones their converted size (q8_0: 34 bytes per
 * 32 values, f16 2 bytes, vectors f32).
 */
export function ggufWeightItems(f: GgufFile, dtype: WeightDtype, blocks: ReadonlySet<NativeDType>, mapped: boolean): MemoryItem[] {
  let fileBacked = 0, own = 0;
  // experts stored one tensor each (older Mixtral GGUFs): one buffer per layer and projection,
  // copied at load even from a mapped file (loadSplitExperts)
  const stacks = new Map<string, number>();
  for (const t of f.tensors) {
    const { held, asStored } = heldDtype(t, dtype, blocks);
    const bytes = asStored ? t.nbytes : Math.ceil(t.nelements * (HELD_BYTES_PER_VALUE[held] ?? 4));
    const stack = /^(blk\.\d+\.ffn_(?:gate|up|down))\.\d+\.weight$/.exec(t.name)?.[1];
    if (stack) stacks.set(stack, (stacks.get(stack) ?? 0) + bytes);
    else if (asStored && mapped) fileBacked += t.nbytes;
    else own += bufferBytes(bytes);
  }
  for (const bytes of stacks.values()) own += bufferBytes(bytes);
  const items: MemoryItem[] = [];
  if (fileBacked) items.push({ what: 'weights mapped from the file (file-backed)', bytes: fileBacked });
  if (own || !fileBacked) items.push({ what: mapped ? 'weights converted at load' : 'weights', bytes: own });
  return items;
}

/** The weights of a Hugging Face folder as stored (conversions only shrink them). */
export function safetensorsWeightBytes(st: SafetensorsModel): number {
  let total = 0;
  for (const t of st.tensors.values()) total += bufferBytes(t.nbytes);
  return total;
}

/** KV caches, activations and logits of `sequences` sequences of a decoder at contextSize positions. */
export function decoderStateItems(c: ModelConfig, o: { contextSize: number; batchSize: number; sequences?: number; kvBytes: number }): MemoryItem[] {
  const S = o.sequences ?? 1;
  const kvWidth = c.nKvHeads * c.headDim;
  const perLayer = bufferBytes(o.contextSize * kvWidth * o.kvBytes);
  const B = Math.max(o.batchSize, S);
  const q = c.nHeads * c.headDim;
  // experts: router logits, picks and weights, the chosen experts' hidden rows, the shared gate's three; the dense layers' MLP rows
  const m = c.moe;
  const moeActs = m ? B * (m.experts + 2 * m.used + 2 * m.used * m.expertFfnDim + 3 + 2 * (m.dense?.ffnDim ?? 0)) * 4 : 0;
  const acts = B * (3 * c.dim + 2 * q + 2 * kvWidth + 2 * c.ffnDim) * 4 + moeActs;
  return [
    { what: `KV cache (${S > 1 ? `${S} sequences × ` : ''}${c.nLayers} layers × 2 × ${o.contextSize} positions × ${kvWidth} × ${o.kvBytes} bytes)`, bytes: S * 2 * c.nLayers * perLayer },
    { what: `activations and logits (batch ${B})`, bytes: bufferBytes(acts) + bufferBytes(B * c.vocabSize * 4) + c.vocabSize * 4 },
  ];
}

/**
 * Throws E_OUT_OF_MEMORY when the items do not fit `budget` bytes, naming each and the total;
 * `hint` says what to change (a smaller contextSize...).
 */
export function checkMemoryPlan(where: string, items: MemoryItem[], budget: number, budgetName: string, hint: string): void {
  const total = items.reduce((n, i) => n + i.bytes, 0);
  if (total <= budget) return;
  const list = items.map((i) => `${i.what}: ${MiB(i.bytes)}`).join('; ');
  throw new FuselmError('E_OUT_OF_MEMORY', `${where}: needs ${MiB(total)} (${list}) but ${budgetName} is ${MiB(budget)}${hint ? `; ${hint}` : ''}`);
}
