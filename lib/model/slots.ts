/**
 * KV cache slots stepped by a caller's own scheduler (the server's continuous batching): each
 * slot is one sequence's cache; step() evaluates, in one forward, prompt chunks of some slots
 * and the next token of others. The slots hold the model (other calls on it wait) until close().
 */
import { FuselmError } from '../errors.js';
import type { LlamaState } from './llama.js';
import type { AdapterUse, LoraSet } from './lora.js';

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
  /** Each slot's LoRA adapters (undefined: none). */
  #uses: Array<AdapterUse[] | undefined>;
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
    for (const sp of spans)
      if (!(Number.isInteger(sp.pos) && sp.pos >= 0 && sp.pos + sp.ids.length <= this.contextSize))
        throw new FuselmError('E_CONTEXT_FULL', `step: positions ${sp.pos}..${sp.pos + sp.ids.length - 1} are past the ${this.contextSize} of a slot`);
    return s.forwardSpans(spans.map((sp) => ({ seq: sp.slot, ids: sp.ids, pos: sp.pos })));
  }

  /**
   * The LoRA adapters slot `slot`'s next steps apply (Model.loadAdapter's, each times its scale;
   * undefined: none). Returns a key naming them and their scales: a slot's cached tokens are
   * reusable only under the same key. A slot forgets the adapters disposed since it used them
   * (dispose an adapter once the sequences using it have ended).
   */
  useAdapters(slot: number, uses: AdapterUse[] | undefined): string {
    const s = this.#live();
    const next = this.#uses.map((u, i) => (i === slot ? uses : u?.filter((x) => !x.adapter.disposed)));
    for (const u of uses ?? []) this.#known.add(u.adapter);
    for (const a of this.#known) if (a.disposed) this.#known.delete(a);
    // the known adapters at weight 0, as one more sequence past the slots (its weights unread)
    const l = this.#resolve([...next, [...this.#known].map((adapter) => ({ adapter, scale: 0 }))]);
    s.useLora(l.set, l.weights);
    this.#uses = next;
    return l.keys[slot];
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
    this.#state.dispose();
    this.#state = undefined;
    this.#release();
  }
}
