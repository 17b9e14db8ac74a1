/**
 * The grammar's pushdown matcher at the byte level, as sets of stacks.
 *
 * A stack is a node (pos, partial, parent): `pos` the CHAR element to match next, `partial` the
 * bytes of a UTF-8 character begun but not finished there, `parent` the stack to continue with
 * when the element's alternative ends (a node whose pos is the element after a REF). Nodes are
 * hash-consed (equal stacks have equal ids), so a set of stacks is a sorted list of ids, and
 * sets are interned too: a matcher state is one small integer, and the step "state, byte →
 * state" is memoized. Two marker nodes end stacks: ACCEPT (the root rule is complete) and
 * BOUNDARY (used by the token cache: "the rest depends on the stack below").
 *
 * Code points are matched byte by byte: a lead byte starts a partial character when some member
 * of the class can still begin with the bytes so far; the last byte checks membership. Overlong
 * forms, surrogates and bytes that are not UTF-8 never match.
 */
import { CHAR, type CharClass, type CompiledGrammar, END, REF } from './compile.js';

export const ACCEPT = 0, BOUNDARY = 1;
/** The interned empty set: no stack survived. */
export const DEAD = 0;

export class StackSets {
  readonly g: CompiledGrammar;
  pos = new Int32Array(1024);
  partial = new Int32Array(1024);
  parent = new Int32Array(1024);
  nodes = 2;
  readonly #intern = new Map<number, Map<number, number>>();
  readonly #expanded = new Map<number, Int32Array>();
  /** Interned sets (sorted node ids) and their keys. */
  readonly sets: Int32Array[] = [new Int32Array(0)];
  readonly #setIds = new Map<string, number>([['', DEAD]]);
  /**
   * transitions[set * 256 + byte]: the set after that byte, -1 while not yet computed. Read by
   * hot loops, filled by step(); replaced by a larger array as sets are added (read it again
   * after a step() that returned a new set).
   */
  transitions = new Int32Array(256 * 64).fill(-1);
  #seen = new Int32Array(1024);
  #stamp = 0;

  constructor(g: CompiledGrammar) {
    this.g = g;
    this.pos[ACCEPT] = this.pos[BOUNDARY] = -1;
  }

  /** The id of stack (pos, partial, parent). */
  node(pos: number, partial: number, parent: number): number {
    let m = this.#intern.get(parent);
    if (!m) this.#intern.set(parent, (m = new Map()));
    const key = pos * 0x200000 + partial; // partial < 2^21
    let id = m.get(key);
    if (id === undefined) {
      id = this.nodes++;
      if (id >= this.pos.length) {
        const grow = (a: Int32Array) => {
          const b = new Int32Array(a.length * 2);
          b.set(a);
          return b;
        };
        this.pos = grow(this.pos);
        this.partial = grow(this.partial);
        this.parent = grow(this.parent);
      }
      this.pos[id] = pos;
      this.partial[id] = partial;
      this.parent[id] = parent;
      m.set(key, id);
    }
    return id;
  }

  /** The set id of these node ids (any order, duplicates allowed). */
  setOf(ids: ArrayLike<number>): number {
    const sorted = Int32Array.from(new Set(Array.from(ids))).sort();
    const key = sorted.join(',');
    let id = this.#setIds.get(key);
    if (id === undefined) {
      id = this.sets.length;
      this.sets.push(sorted);
      this.#setIds.set(key, id);
      if (256 * (id + 1) > this.transitions.length) {
        const t = new Int32Array(this.transitions.length * 2).fill(-1);
        t.set(this.transitions);
        this.transitions = t;
      }
    }
    return id;
  }

  /** The state before any input: the root rule's alternatives. */
  initial(): number {
    const out: number[] = [];
    for (const s of this.g.ruleAlts[this.g.root]) this.#expand(s, ACCEPT, out);
    return this.setOf(out);
  }

  /** The stacks below stack `parent` resumed at `pos`, each stopped at a CHAR element or a marker (memoized). */
  #expandAt(pos: number, parent: number): Int32Array {
    const key = this.node(pos, 0, parent);
    let r = this.#expanded.get(key);
    if (!r) {
      const out: number[] = [];
      this.#expand(pos, parent, out);
      r = Int32Array.from(new Set(out));
      this.#expanded.set(key, r);
    }
    return r;
  }

  #expand(pos: number, parent: number, out: number[]): void {
    const g = this.g;
    const k = g.kind[pos];
    if (k === CHAR) out.push(this.node(pos, 0, parent));
    else if (k === END) {
      if (parent === ACCEPT || parent === BOUNDARY) out.push(parent);
      else for (const s of this.#expandAt(this.pos[parent], this.parent[parent])) out.push(s);
    } else if (k === REF) {
      // a reference that ends its alternative continues straight with the parent (a tail call)
      const cont = g.kind[pos + 1] === END ? parent : this.node(pos + 1, 0, parent);
      for (const s of g.ruleAlts[g.arg[pos]]) this.#expand(s, cont, out);
    }
  }

  /** The state after byte `b` from state `set` (markers end there; memoized). */
  step(set: number, b: number): number {
    let r = this.transitions[set * 256 + b];
    if (r < 0) {
      const out: number[] = [];
      for (const s of this.sets[set]) if (s > BOUNDARY) this.#advance(s, b, out);
      r = out.length === 0 ? DEAD : this.setOf(out);
      this.transitions[set * 256 + b] = r; // after setOf(), which may have grown the array
    }
    return r;
  }

  /** The state after all of `bytes`, DEAD as soon as nothing matches. */
  walk(set: number, bytes: Uint8Array): number {
    for (let i = 0; i < bytes.length && set !== DEAD; i++) set = this.step(set, bytes[i]);
    return set;
  }

  /** Whether set `set` holds node `node` (cheap for the markers: they sort first). */
  has(set: number, node: number): boolean {
    const s = this.sets[set];
    if (node <= BOUNDARY) return s[0] === node || s[1] === node;
    return s.indexOf(node) >= 0;
  }

  #advance(s: number, b: number, out: number[]): void {
    const pos = this.pos[s], partial = this.partial[s], parent = this.parent[s];
    const cls = this.g.classes[this.g.arg[pos]];
    const more = (cp: number) => {
      if (inClass(cls, cp)) for (const x of this.#expandAt(pos + 1, parent)) out.push(x);
    };
    if (partial === 0) {
      if (b < 0x80) return cls.ascii[b] ? more(b) : undefined;
      const len = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
      if (len === 0) return;
      const acc = b & (len === 2 ? 0x1f : len === 3 ? 0x0f : 0x07);
      if (feasible(cls, acc, len - 1, len)) out.push(this.node(pos, (len << 18) | ((len - 1) << 16) | acc, parent));
      return;
    }
    if ((b & 0xc0) !== 0x80) return;
    const len = partial >> 18, rem = ((partial >> 16) & 3) - 1, acc = ((partial & 0xffff) << 6) | (b & 0x3f);
    if (rem === 0) {
      if (acc >= MIN_CP[len]) more(acc); // overlong forms never match
      return;
    }
    if (feasible(cls, acc, rem, len)) out.push(this.node(pos, (len << 18) | (rem << 16) | acc, parent));
  }
}

const MIN_CP = [0, 0, 0x80, 0x800, 0x10000];

export function inClass(c: CharClass, cp: number): boolean {
  if (cp < 128) return c.ascii[cp] === 1;
  const r = c.ranges;
  let lo = 0, hi = (r.length >> 1) - 1;
  while (lo <= hi) {
    const m = (lo + hi) >> 1;
    if (cp < r[2 * m]) hi = m - 1;
    else if (cp > r[2 * m + 1]) lo = m + 1;
    else return true;
  }
  return false;
}

/** Some member of `c` of UTF-8 length `len` starts with the bits `acc` and has `rem` continuation bytes to come. */
function feasible(c: CharClass, acc: number, rem: number, len: number): boolean {
  const lo = Math.max(acc * 2 ** (6 * rem), MIN_CP[len]);
  const hi = Math.min((acc + 1) * 2 ** (6 * rem) - 1, 0x10ffff);
  if (lo > hi) return false; // an overlong form or past U+10FFFF
  const r = c.ranges;
  for (let i = 0; i < r.length; i += 2) if (r[i] <= hi && r[i + 1] >= lo) return true;
  return false;
}
