/**
 * Which tokens a grammar allows next, for one grammar and one vocabulary; built once and shared
 * by every request with the same grammar (XGrammar's idea, done lazily):
 *
 *  - Per CHAR position p, the token cache: the vocabulary trie walked once from the stack
 *    (p, BOUNDARY), where BOUNDARY stands for "whatever is below". A token is *accepted* when its
 *    bytes are consumed without looking below (whatever the real stack, it is allowed); it is
 *    *dependent* when matching reached the boundary with bytes left (the real stack decides);
 *    every other token is rejected whatever the stack.
 *  - Per matcher state (a set of stacks), the mask: the accepted bits of each stack's position,
 *    OR-ed, plus the dependent tokens checked against the real stack; cached per state, so a
 *    state seen before (a string's inside, an object's next key) costs a lookup.
 *
 * End-of-generation tokens are allowed exactly when the grammar is complete.
 */
import { FuselmError } from '../errors.js';
import type { CompiledGrammar } from './compile.js';
import { ACCEPT, BOUNDARY, DEAD, StackSets } from './stacks.js';
import { VocabTrie } from './vocab-trie.js';

export interface GrammarVocab {
  /** Per token id: the bytes it prints (tokenizer.tokenBytes). */
  bytes: ReadonlyArray<Uint8Array>;
  /** End-of-generation ids. */
  eog: readonly number[];
}

interface PositionCache {
  accepted: Uint32Array;
  dependent: Int32Array;
}

/** Masks kept per grammar: at most this many bytes of them. */
const MASK_CACHE_BYTES = 32 << 20;

export class TokenMasks {
  readonly stacks: StackSets;
  readonly trie: VocabTrie;
  readonly vocabSize: number;
  /** Words of a mask: bit (id & 31) of word (id >> 5). */
  readonly words: number;
  /** The state before any output. */
  readonly initial: number;
  readonly #vocab: GrammarVocab;
  readonly #positions = new Map<number, PositionCache>();
  readonly #masks = new Map<number, Uint32Array>();
  readonly #maxMasks: number;

  constructor(g: CompiledGrammar, vocab: GrammarVocab) {
    this.stacks = new StackSets(g);
    this.trie = new VocabTrie(vocab.bytes);
    this.vocabSize = vocab.bytes.length;
    this.words = (this.vocabSize + 31) >> 5;
    this.#vocab = vocab;
    this.#maxMasks = Math.max(16, Math.floor(MASK_CACHE_BYTES / (4 * this.words)));
    this.initial = this.stacks.initial();
  }

  /** The state after token `id`, DEAD when the grammar does not allow it. */
  next(state: number, id: number): number {
    if (this.#vocab.eog.includes(id)) return this.canEnd(state) ? state : DEAD;
    const b = this.#vocab.bytes[id];
    return b === undefined || b.length === 0 ? DEAD : this.stacks.walk(state, b);
  }

  /** The root rule may end here. */
  canEnd(state: number): boolean {
    return this.stacks.has(state, ACCEPT);
  }

  /** Nothing may follow: the output is complete. */
  mustEnd(state: number): boolean {
    const s = this.stacks.sets[state];
    return s.length === 1 && s[0] === ACCEPT;
  }

  /** The allowed tokens in state `state` as bits; shared, do not modify. */
  mask(state: number): Uint32Array {
    const hit = this.#masks.get(state);
    if (hit) {
      this.#masks.delete(state); // most recently used last
      this.#masks.set(state, hit);
      return hit;
    }
    const bits = new Uint32Array(this.words);
    const st = this.stacks;
    for (const s of st.sets[state]) {
      if (s === ACCEPT) continue;
      const single = st.setOf([s]);
      if (st.partial[s] !== 0) {
        this.#walk(single, bits, undefined); // inside a character: walked whole (rare)
        continue;
      }
      const pc = this.#position(st.pos[s]);
      const a = pc.accepted;
      for (let w = 0; w < bits.length; w++) bits[w] |= a[w];
      const bytes = this.#vocab.bytes;
      for (const t of pc.dependent) if (!(bits[t >> 5] & (1 << (t & 31))) && st.walk(single, bytes[t]) !== DEAD) bits[t >> 5] |= 1 << (t & 31);
    }
    const end = this.canEnd(state);
    for (const t of this.#vocab.eog) {
      if (t >= this.vocabSize) continue;
      if (end) bits[t >> 5] |= 1 << (t & 31);
      else bits[t >> 5] &= ~(1 << (t & 31));
    }
    if (this.#masks.size >= this.#maxMasks) this.#masks.delete(this.#masks.keys().next().value!);
    this.#masks.set(state, bits);
    return bits;
  }

  /** Sets logits of the tokens not allowed in `state` to -Infinity (ids past the vocabulary too). */
  apply(state: number, logits: Float32Array): void {
    const bits = this.mask(state);
    const n = Math.min(logits.length, this.vocabSize);
    let any = false;
    for (let w = 0; w < bits.length; w++) {
      const v = bits[w];
      if (v === 0xffffffff) {
        any = true;
        continue;
      }
      const base = w << 5;
      if (v === 0) {
        logits.fill(-Infinity, base, Math.min(base + 32, n));
        continue;
      }
      any = true;
      for (let i = 0; i < 32 && base + i < n; i++) if (!(v & (1 << i))) logits[base + i] = -Infinity;
    }
    if (logits.length > n) logits.fill(-Infinity, n);
    if (!any) throw new FuselmError('E_INVALID_ARG', 'grammar: no token of the vocabulary can continue the output here (the grammar needs text this vocabulary cannot write)');
  }

  /** The token cache of CHAR position `pos` (computed on first use). */
  #position(pos: number): PositionCache {
    let pc = this.#positions.get(pos);
    if (!pc) {
      const accepted = new Uint32Array(this.words);
      const dependent: number[] = [];
      const start = this.stacks.setOf([this.stacks.node(pos, 0, BOUNDARY)]);
      this.#walk(start, accepted, dependent);
      pc = { accepted, dependent: Int32Array.from(dependent) };
      this.#positions.set(pos, pc);
    }
    return pc;
  }

  /**
   * The trie walked from `state`: tokens whose bytes all match get their bit in `bits`; with
   * `dependent`, the tokens that ran past a BOUNDARY and then failed are collected there.
   */
  #walk(state: number, bits: Uint32Array, dependent: number[] | undefined): void {
    const { byte, end, first, count, order } = this.trie;
    const st = this.stacks;
    const visit = (n: number, set: number, pastBoundary: boolean) => {
      const dep = pastBoundary || (dependent !== undefined && st.has(set, BOUNDARY));
      for (let c = n + 1; c < end[n]; c = end[c]) {
        const next = st.step(set, byte[c]);
        if (next === DEAD) {
          if (dep) for (let k = first[c]; k < first[end[c]]; k++) dependent!.push(order[k]);
          continue;
        }
        for (let k = first[c], e = first[c] + count[c]; k < e; k++) bits[order[k] >> 5] |= 1 << (order[k] & 31);
        if (end[c] > c + 1) visit(c, next, dep);
      }
    };
    visit(0, state, false);
  }
}
