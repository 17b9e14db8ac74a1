/**
 * Which tokens a grammar allows next, for one grammar and one vocabulary; built once and shared
 * by every request with the same grammar (XGrammar's idea, done lazily):
 *
 *  - Per stack top, the token cache: the vocabulary trie walked once from the stack cut to its
 *    top CONTEXT_DEPTH frames (a character begun by the last token included), the rest replaced by BOUNDARY ("whatever is below"). A token is
 *    *accepted* when its bytes are consumed without looking below the cut (whatever the real
 *    stack, it is allowed); it is *dependent* when matching reached the cut with bytes left (the
 *    real stack decides); every other token is rejected whatever the stack. With one frame this
 *    is XGrammar's per-position cache; a few frames keep most tokens context-independent where
 *    a rule is short (one character of a bounded string: its caller decides what may follow).
 *  - Per matcher state (a set of stacks), the mask: the accepted bits of each stack's cache,
 *    OR-ed, plus the dependent tokens checked against the real stack; cached per state, so a
 *    state seen before (a string's inside, an object's next key) costs a lookup.
 *
 * End-of-generation tokens are allowed exactly when the grammar is complete.
 *
 * A fresh token cache walks the whole vocabulary trie (10-50 ms at 128k tokens): prepare(state)
 * makes a state's mask a slice of the walk at a time, giving the event loop a turn between
 * slices, so that generation can have the mask ready before it needs it.
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
  /** The trie of `bytes`, built by the first TokenMasks of this vocabulary and shared by the others. */
  trie?: VocabTrie;
}

interface PositionCache {
  accepted: Uint32Array;
  dependent: Int32Array;
}

/** Stack frames a token cache looks at (see the module comment). */
const CONTEXT_DEPTH = 4;

/** Masks kept per grammar: at most this many bytes of them. */
const MASK_CACHE_BYTES = 32 << 20;
/** prepare() walks this many trie nodes between looks at the clock. */
const SLICE_NODES = 4096;
/** Dependent tokens checked between looks at the clock. */
const DEPENDENT_SLICE = 1024;
/** prepare() gives the event loop a turn after this long. */
const SLICE_MS = 4;

/** A trie walk that can stop and go on: per depth its node, state, next child, whether a boundary was passed. */
interface Walk {
  nodeAt: Int32Array;
  setAt: Int32Array;
  childAt: Int32Array;
  depAt: Uint8Array;
  d: number;
  bits: Uint32Array;
  dependent: number[];
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class TokenMasks {
  readonly stacks: StackSets;
  readonly trie: VocabTrie;
  readonly vocabSize: number;
  /** Words of a mask: bit (id & 31) of word (id >> 5). */
  readonly words: number;
  /** The state before any output. */
  readonly initial: number;
  readonly #vocab: GrammarVocab;
  /** Token caches by the cut stack's node id. */
  readonly #caches = new Map<number, PositionCache>();
  readonly #masks = new Map<number, Uint32Array>();
  readonly #maxMasks: number;

  constructor(g: CompiledGrammar, vocab: GrammarVocab) {
    this.stacks = new StackSets(g);
    this.trie = vocab.trie ??= new VocabTrie(vocab.bytes);
    this.vocabSize = vocab.bytes.length;
    this.words = (this.vocabSize + 31) >> 5;
    this.#vocab = vocab;
    this.#maxMasks = Math.max(16, Math.floor(MASK_CACHE_BYTES / (4 * this.words)));
    this.initial = this.stacks.initial();
  }

  /**
   * About how many bytes the caches hold (token caches, state masks, stacks and their
   * transition tables): they grow with the states met, so a caller may start afresh past a budget.
   */
  get footprint(): number {
    let dependent = 0;
    for (const c of this.#caches.values()) dependent += c.dependent.length;
    const st = this.stacks;
    return 4 * this.words * (this.#caches.size + this.#masks.size) + 4 * dependent + 1100 * st.sets.length + 24 * st.nodes;
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

  /** The mask of `state` is made (mask() costs a lookup). */
  ready(state: number): boolean {
    return this.#masks.has(state);
  }

  /**
   * Makes the mask of `state` with the event loop free between slices of the work: the token
   * caches it needs are walked a slice at a time.
   */
  async prepare(state: number): Promise<void> {
    let since = performance.now();
    for (const s of this.stacks.sets[state]) {
      if (s === ACCEPT) continue;
      const cut = this.#cut(s, CONTEXT_DEPTH);
      if (this.#caches.has(cut)) continue;
      const walk = this.#startWalk(this.stacks.setOf([cut]));
      while (!this.#walkSlice(walk, SLICE_NODES)) {
        if (performance.now() - since < SLICE_MS) continue;
        await turn();
        since = performance.now();
      }
      // (a mask() meanwhile may have made it too: the same cache)
      if (!this.#caches.has(cut)) this.#caches.set(cut, { accepted: walk.bits, dependent: Int32Array.from(walk.dependent) });
    }
    const build = this.#build(state);
    for (let r = build.next(); ; r = build.next()) {
      if (r.done) return void this.#keep(state, r.value);
      if (performance.now() - since < SLICE_MS) continue;
      await turn();
      since = performance.now();
    }
  }

  /** The allowed tokens in state `state` as bits; shared, do not modify. */
  mask(state: number): Uint32Array {
    const hit = this.#masks.get(state);
    if (hit) {
      this.#masks.delete(state); // most recently used last
      this.#masks.set(state, hit);
      return hit;
    }
    const build = this.#build(state);
    let r = build.next();
    while (!r.done) r = build.next();
    return this.#keep(state, r.value);
  }

  /** A made mask cached (the least recently used one dropped past the budget). */
  #keep(state: number, bits: Uint32Array): Uint32Array {
    if (this.#masks.size >= this.#maxMasks) this.#masks.delete(this.#masks.keys().next().value!);
    this.#masks.set(state, bits);
    return bits;
  }

  /**
   * Makes the mask of `state`: the accepted bits of each stack's token cache OR-ed, plus the
   * dependent tokens checked against the real stack (a pause every DEPENDENT_SLICE of them).
   */
  *#build(state: number): Generator<void, Uint32Array> {
    const bits = new Uint32Array(this.words);
    const st = this.stacks;
    const bytes = this.#vocab.bytes;
    for (const s of st.sets[state]) {
      if (s === ACCEPT) continue;
      const single = st.setOf([s]);
      const pc = this.#cache(this.#cut(s, CONTEXT_DEPTH));
      const a = pc.accepted;
      for (let w = 0; w < bits.length; w++) bits[w] |= a[w];
      const dep = pc.dependent;
      for (let i = 0; i < dep.length; i++) {
        const t = dep[i];
        if (!(bits[t >> 5] & (1 << (t & 31))) && st.walk(single, bytes[t]) !== DEAD) bits[t >> 5] |= 1 << (t & 31);
        if (i % DEPENDENT_SLICE === DEPENDENT_SLICE - 1) yield;
      }
    }
    const end = this.canEnd(state);
    for (const t of this.#vocab.eog) {
      if (t >= this.vocabSize) continue;
      if (end) bits[t >> 5] |= 1 << (t & 31);
      else bits[t >> 5] &= ~(1 << (t & 31));
    }
    return bits;
  }

  /** Sets logits of the tokens not allowed in `state` to -Infinity (ids past the vocabulary too). */
  apply(state: number, logits: Float32Array): void {
    const bits = this.mask(state);
    const n = Math.min(logits.length, this.vocabSize);
    let any = false;
    let zeroFrom = -1; // start of the current run of all-zero words: filled in one call
    for (let w = 0; w < bits.length; w++) {
      const v = bits[w];
      if (v === 0) {
        if (zeroFrom < 0) zeroFrom = w;
        continue;
      }
      if (zeroFrom >= 0) {
        logits.fill(-Infinity, zeroFrom << 5, Math.min(w << 5, n));
        zeroFrom = -1;
      }
      any = true;
      if (v === 0xffffffff) continue;
      // only the zero bits, lowest first (ids past n have zero bits too: stop there)
      const base = w << 5;
      for (let z = ~v; z !== 0; z &= z - 1) {
        const id = base + 31 - Math.clz32(z & -z);
        if (id >= n) break;
        logits[id] = -Infinity;
      }
    }
    if (zeroFrom >= 0) logits.fill(-Infinity, zeroFrom << 5, n);
    if (logits.length > n) logits.fill(-Infinity, n);
    if (!any) throw new FuselmError('E_INVALID_ARG', 'grammar: no token of the vocabulary can continue the output here (the grammar needs text this vocabulary cannot write)');
  }

  /** Stack `s` with the frames below its top `depth` replaced by BOUNDARY. */
  #cut(s: number, depth: number): number {
    if (s <= BOUNDARY) return s;
    if (depth === 0) return BOUNDARY;
    const st = this.stacks;
    return st.node(st.pos[s], st.partial[s], this.#cut(st.parent[s], depth - 1));
  }

  /** The token cache of the cut stack `cut` (computed on first use). */
  #cache(cut: number): PositionCache {
    let pc = this.#caches.get(cut);
    if (!pc) {
      const walk = this.#startWalk(this.stacks.setOf([cut]));
      this.#walkSlice(walk, Infinity);
      pc = { accepted: walk.bits, dependent: Int32Array.from(walk.dependent) };
      this.#caches.set(cut, pc);
    }
    return pc;
  }

  #boundary(set: number): boolean {
    const s = this.stacks.sets[set];
    return s[0] === BOUNDARY || s[1] === BOUNDARY;
  }

  /** A walk of the trie from `state` (an explicit DFS), not started. */
  #startWalk(state: number): Walk {
    const n = this.trie.depth + 1;
    const w: Walk = { nodeAt: new Int32Array(n), setAt: new Int32Array(n), childAt: new Int32Array(n), depAt: new Uint8Array(n), d: 0, bits: new Uint32Array(this.words), dependent: [] };
    w.setAt[0] = state;
    w.childAt[0] = 1;
    w.depAt[0] = this.#boundary(state) ? 1 : 0;
    return w;
  }

  /**
   * Goes on with walk `w` for up to `nodes` trie nodes; true when it is done. Tokens whose bytes
   * all match get their bit in `w.bits`; the tokens that ran past a BOUNDARY and then failed
   * are collected in `w.dependent`.
   */
  #walkSlice(w: Walk, nodes: number): boolean {
    const { byte, end, first, count, order } = this.trie;
    const st = this.stacks;
    let trans = st.transitions;
    const { nodeAt, setAt, childAt, depAt, bits, dependent } = w;
    let d = w.d;
    for (let left = nodes; d >= 0 && left > 0; left--) {
      const n = nodeAt[d], c = childAt[d];
      if (c >= end[n]) {
        d--;
        continue;
      }
      childAt[d] = end[c];
      const set = setAt[d], b = byte[c];
      let next = trans[set * 256 + b];
      if (next < 0) {
        next = st.step(set, b);
        trans = st.transitions; // maybe grown
      }
      if (next === DEAD) {
        if (depAt[d]) for (let k = first[c], e = first[end[c]]; k < e; k++) dependent.push(order[k]);
        continue;
      }
      for (let k = first[c], e = first[c] + count[c]; k < e; k++) bits[order[k] >> 5] |= 1 << (order[k] & 31);
      if (end[c] > c + 1) {
        d++;
        nodeAt[d] = c;
        setAt[d] = next;
        childAt[d] = c + 1;
        depAt[d] = depAt[d - 1] || this.#boundary(next) ? 1 : 0;
      }
    }
    w.d = d;
    return d < 0;
  }

}
