/**
 * KV cache slots stepped by a caller's own scheduler (the server's continuous batching): each
 * slot is one sequence's cache; step() evaluates, in one forward, prompt chunks of some slots
 * and the next token of others. The slots hold the model (other calls on it wait) until close().
 */
import { FuselmError } from '../errors.js';
import type { LlamaState } from './llama.js';
import { type AdapterUse, acquireAdapters, type LoraAdapter, type LoraSet } from './lora.js';

/** Model's resolution of each slot's adapters into a stacked set, per-slot weights and keys. */
export type SlotAdapters = (uses: ReadonlyArray<AdapterUse[] | undefined>) => { set?: LoraSet; weights: Float32Array[]; keys: string[] };

export class SequenceSlots {
  /** Number of slots (parallel sequences). */
  readonly size: number;
  /** KV cache positions of each slot. */
  readonly contextSize: number;
  /** Most tokens one step() evaluates. */
  readonly batchSize: number;
  /** Logits per row. */
  readonly vocabSize: number;
  /** Paged (openSlots' `paged`): the pool's blocks and their positions; each slot's blocks are set by setBlocks(). */
  readonly paged: { blockSize: number; blocks: number } | undefined;
  #state: LlamaState | undefined;
  readonly #release: () => void;
  readonly #resolve: SlotAdapters;
  /** Each slot's LoRA adapters (undefined: none), as useAdapters gave them. */
  #uses: Array<AdapterUse[] | undefined>;
  /** Per slot, the adapters its sequence holds (acquired by useAdapters, until releaseAdapters or the next useAdapters). */
  #held: LoraAdapter[][];
  /**
   * Every adapter a slot has used (while not disposed): the stacked set keeps them all, so it
   * changes (and the graphs with it) only when a new one comes, not as requests come and go.
   */
  #known = new Set<AdapterUse['adapter']>();

  /** Made by Model.openSlots(). */
  constructor(state: LlamaState, vocabSize: number, release: () => void, adapters: SlotAdapters, paged?: { blockSize: number; blocks: number }) {
    this.#state = state;
    this.#resolve = adapters;
    this.#uses = Array.from({ length: state.sequences }, () => undefined);
    this.#held = Array.from({ length: state.sequences }, () => []);
    this.size = state.sequences;
    this.contextSize = state.contextSize;
    this.batchSize = state.batchSize;
    this.vocabSize = vocabSize;
    this.paged = paged && { ...paged };
    this.#release = release;
  }

  #live(): LlamaState {
    if (!this.#state) throw new FuselmError('E_DISPOSED', 'sequence slots used after close()');
    return this.#state;
  }

  /**
   * One forward over spans of several slots (prompt chunks and decode tokens together, at most
   * batchSize tokens in all, each slot at most once): span i evaluates `ids` of slot `slot` at
   * positions pos .. pos + ids.length - 1 (the slot's cache must hold its positions before pos).
   * Returns each span's last-token logits.
   */
  async step(spans: readonly { slot: number; ids: readonly number[]; pos: number }[]): Promise<Float32Array[]> {
    const s = this.#live();
    for (const sp of spans) {
      if (!(Number.isInteger(sp.pos) && sp.pos >= 0 && sp.pos + sp.ids.length <= this.contextSize))
        throw new FuselmError('E_CONTEXT_FULL', `step: positions ${sp.pos}..${sp.pos + sp.ids.length - 1} are past the ${this.contextSize} of a slot`);
      // a slot that released its adapters, one of them disposed since: stepping it would run without it
      const gone = this.#held[sp.slot]?.length ? undefined : this.#uses[sp.slot]?.find((u) => u.adapter.disposed);
      if (gone) throw new FuselmError('E_DISPOSED', `step: slot ${sp.slot}'s adapter ${gone.adapter.path} was disposed after releaseAdapters(${sp.slot}); give the slot its adapters again (useAdapters) first`);
    }
    return s.forwardSpans(spans.map((sp) => ({ seq: sp.slot, ids: sp.ids, pos: sp.pos })));
  }

  /**
   * The LoRA adapters slot `slot`'s next steps apply (Model.loadAdapter's, each times its scale;
   * undefined: none), for a sequence starting on it. Returns a key naming them and their scales:
   * a slot's cached tokens are reusable only under the same key. The slot holds them (an
   * adapter disposed meanwhile stays, and is freed when no one holds it any more) until its
   * sequence ends: releaseAdapters(slot), or its next useAdapters. A disposed adapter is an
   * E_INVALID_ARG here, unless `held`: the caller holds the adapters for this sequence already
   * (LoraAdapter.acquire; a queued request), so those disposed since it took them are taken too.
   */
  useAdapters(slot: number, uses: AdapterUse[] | undefined, held = false): string {
    this.#live();
    const taken = acquireAdapters(uses, held);
    let key: string;
    try {
      key = this.#apply(slot, uses);
    } catch (e) {
      for (const a of taken) a.release();
      throw e;
    }
    const old = this.#held[slot];
    this.#held[slot] = taken;
    this.#uses[slot] = uses;
    for (const u of uses ?? []) this.#known.add(u.adapter);
    // an adapter only this slot held and disposed meanwhile is freed: the set goes without it
    this.#releaseAll(old);
    return key;
  }

  /**
   * Slot `slot`'s sequence has ended: the adapters it holds are released (one disposed meanwhile
   * is freed once no one holds it). The slot keeps its tokens under its key; stepping it again
   * after one of its adapters was disposed is an E_DISPOSED until useAdapters gives it adapters.
   */
  releaseAdapters(slot: number): void {
    this.#live();
    const old = this.#held[slot] ?? [];
    this.#held[slot] = [];
    this.#releaseAll(old);
  }

  /** Releases adapters; where that freed one, the stacked set is made again without it. */
  #releaseAll(adapters: LoraAdapter[]): void {
    for (const a of adapters) a.release();
    if (adapters.some((a) => a.isFreed)) this.#apply(-1, undefined);
  }

  /**
   * The stacked set of the slots' adapters with slot `slot`'s as `uses`: a slot's held ones as
   * they are, a released slot's without those disposed since, and every adapter slots have
   * used at weight 0 (as one more sequence past the slots, its weights unread) so the set
   * changes only when a new one comes. Returns slot `slot`'s key.
   */
  #apply(slot: number, uses: AdapterUse[] | undefined): string {
    for (const a of this.#known) if (a.disposed && !this.#held.some((h) => h.includes(a))) this.#known.delete(a);
    const next = this.#uses.map((u, i) => (i === slot ? uses : this.#held[i].length ? u : u?.filter((x) => !x.adapter.disposed)));
    const l = this.#resolve([...next, [...this.#known].map((adapter) => ({ adapter, scale: 0 }))]);
    this.#live().useLora(l.set, l.weights);
    return l.keys[slot] ?? '';
  }

  /** Paged: slot `slot`'s positions i * blockSize .. (i + 1) * blockSize - 1 live in pool block blocks[i]. */
  setBlocks(slot: number, blocks: readonly number[]): void {
    this.#live().setBlocks(slot, blocks);
  }

  /** Paged: positions 0 .. rows - 1 of pool block `to` become block `from`'s (copy on write of a shared block). */
  copyBlockRows(from: number, to: number, rows: number): void {
    this.#live().copyBlockRows(from, to, rows);
  }

  /** Bytes of the slots' KV caches as allocated now. */
  get kvCacheBytes(): number {
    return this.#live().kvCacheBytes;
  }

  /** Frees the caches and releases the model. */
  close(): void {
    if (!this.#state) return;
    for (const h of this.#held.splice(0)) for (const a of h) a.release();
    this.#state.dispose();
    this.#state = undefined;
    this.#release();
  }
}
