/**
 * KV cache slots stepped by a caller's own scheduler (the server's continuous batching): each
 * slot is one sequence's cache; prefill() evaluates a chunk of one slot's prompt, decode() one
 * token of each of the first `rows` slots in a single batched forward. The slots hold the model
 * (other calls on it wait) until close().
 */
import { FuselmError } from '../errors.js';
import type { LlamaState } from './llama.js';

export class SequenceSlots {
  /** Number of slots (parallel sequences). */
  readonly size: number;
  /** KV cache positions of each slot. */
  readonly contextSize: number;
  /** Most tokens one prefill() evaluates. */
  readonly batchSize: number;
  /** Logits per row. */
  readonly vocabSize: number;
  #state: LlamaState | undefined;
  readonly #release: () => void;

  /** Made by Model.openSlots(). */
  constructor(state: LlamaState, vocabSize: number, release: () => void) {
    this.#state = state;
    this.size = state.sequences;
    this.contextSize = state.contextSize;
    this.batchSize = state.batchSize;
    this.vocabSize = vocabSize;
    this.#release = release;
  }

  #live(): LlamaState {
    if (!this.#state) throw new FuselmError('E_DISPOSED', 'sequence slots used after close()');
    return this.#state;
  }

  /**
   * Evaluates ids (1 .. batchSize of them) of slot `slot` at positions pos .. pos + ids.length - 1
   * (the slot's cache must hold its positions before pos); returns the last token's logits.
   */
  prefill(slot: number, ids: readonly number[], pos: number): Promise<Float32Array> {
    const s = this.#live();
    if (!(Number.isInteger(slot) && slot >= 0 && slot < this.size)) throw new FuselmError('E_INVALID_ARG', `prefill: slot ${slot} is not in 0..${this.size - 1}`);
    if (ids.length < 1 || ids.length > this.batchSize) throw new FuselmError('E_INVALID_ARG', `prefill: ${ids.length} tokens, expected 1..${this.batchSize}`);
    if (!(Number.isInteger(pos) && pos >= 0 && pos + ids.length <= this.contextSize))
      throw new FuselmError('E_CONTEXT_FULL', `prefill: positions ${pos}..${pos + ids.length - 1} are past the ${this.contextSize} of a slot`);
    return s.forward(Int32Array.from(ids), pos, { seq: slot });
  }

  /**
   * One token of each of slots 0 .. ids.length - 1: ids[s] at positions[s]. Returns their logits,
   * [ids.length * vocabSize]. A slot with nothing to decode rides along at a position whose
   * cache row it does not need (its next one).
   */
  decode(ids: Int32Array, positions: Int32Array): Promise<Float32Array> {
    const s = this.#live();
    for (const p of positions) if (!(p >= 0 && p < this.contextSize)) throw new FuselmError('E_CONTEXT_FULL', `decode: position ${p} is past the ${this.contextSize} of a slot`);
    return s.forwardBatch(ids, positions, ids.length);
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
