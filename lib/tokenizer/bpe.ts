/**
 * The BPE model: one pre-token ("word") → token ids, by merge rank, as Hugging Face's BPE does.
 *
 * Two alphabets:
 *   - byte-level (GPT-2, Llama-3, Qwen2): the word's UTF-8 bytes, each byte standing for the
 *     vocab token of its printable stand-in character (GPT-2's bytes_to_unicode table);
 *   - characters (Llama-2 / Mistral tokenizer.json): one symbol per code point; a character not in
 *     the vocab becomes its UTF-8 bytes as <0xNN> tokens (byte_fallback) or the unknown token
 *     (consecutive ones fused with fuse_unk).
 * Then, repeatedly, the adjacent pair with the lowest merge rank is merged (ties: leftmost), until
 * no adjacent pair has a merge. Short words use a direct scan; long ones a doubly linked list of
 * symbols and a binary heap of candidate merges (stale entries recognized when popped), so a
 * 1 MB word takes O(n log n). With ignore_merges (Llama-3) a word that is itself a vocab token is
 * taken whole. Results for short words are cached.
 */
import { MergeQueue } from './merge-queue.js';
import { PieceCache } from './piece-cache.js';
import { FuselmError, shown } from '../errors.js';

/** GPT-2's bytes_to_unicode: byte → the character standing for it in byte-level vocabs. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return table;
})();

/** The inverse of BYTE_TO_CHAR, by char code (-1 for characters that stand for no byte). */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(512).fill(-1);
  for (let b = 0; b < 256; b++) t[BYTE_TO_CHAR[b].charCodeAt(0)] = b;
  return t;
})();

/** The bytes a byte-level vocab token stands for. As in HF's ByteLevel decoder, a token with any
 * character outside the table stands for its own UTF-8. */
export function byteLevelTokenBytes(token: string): Uint8Array {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < 512 ? CHAR_TO_BYTE[c] : -1;
    if (b < 0) return new TextEncoder().encode(token);
    out[i] = b;
  }
  return out;
}

/** Open-addressing hash map (left id, right id) → (rank, merged id), on typed arrays. */
class PairTable {
  private readonly mask: number;
  private readonly keyA: Int32Array;
  private readonly keyB: Int32Array;
  private readonly rank: Int32Array;
  private readonly merged: Int32Array;

  constructor(capacityHint: number) {
    let cap = 16;
    while (cap < capacityHint * 2) cap *= 2;
    this.mask = cap - 1;
    this.keyA = new Int32Array(cap).fill(-1);
    this.keyB = new Int32Array(cap);
    this.rank = new Int32Array(cap);
    this.merged = new Int32Array(cap);
  }

  private slot(a: number, b: number): number {
    return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) >>> 0;
  }

  /** Adds a pair unless present (the first, lowest-rank entry wins, as in HF). */
  set(a: number, b: number, rank: number, merged: number): void {
    let i = this.slot(a, b) & this.mask;
    while (this.keyA[i] !== -1) {
      if (this.keyA[i] === a && this.keyB[i] === b) return;
      i = (i + 1) & this.mask;
    }
    this.keyA[i] = a;
    this.keyB[i] = b;
    this.rank[i] = rank;
    this.merged[i] = merged;
  }

  /** The slot of the pair, or -1. */
  find(a: number, b: number): number {
    let i = this.slot(a, b) & this.mask;
    for (;;) {
      const k = this.keyA[i];
      if (k === -1) return -1;
      if (k === a && this.keyB[i] === b) return i;
      i = (i + 1) & this.mask;
    }
  }

  rankAt(slot: number): number {
    return this.rank[slot];
  }

  mergedAt(slot: number): number {
    return this.merged[slot];
  }
}

export interface BpeModelOptions {
  /** Token string → id (the model's vocab; added tokens need not be here). */
  vocab: Map<string, number>;
  /** Merges in rank order, as [left, right] token strings. */
  merges: ReadonlyArray<readonly [string, string]>;
  /** Byte-level alphabet (GPT-2 style). */
  byteLevel: boolean;
  /** Take a word that is a vocab token whole (Llama-3). */
  ignoreMerges?: boolean;
  /** Characters not in the vocab become <0xNN> byte tokens. */
  byteFallback?: boolean;
  unk?: number;
  fuseUnk?: boolean;
  /** Prefix of every symbol but the first of a word (rare in BPE vocabs). */
  continuingSubwordPrefix?: string;
  /** Suffix of the last symbol of a word. */
  endOfWordSuffix?: string;
}

/** Words up to this length (UTF-16 units) are cached. */
const CACHE_MAX_WORD = 64;
const CACHE_MAX_ENTRIES = 200_000;
/** Words with at most this many symbols use the direct scan. */
const SCAN_MAX = 24;

export class BpeModel {
  private readonly vocab: Map<string, number>;
  private readonly pairs: PairTable;
  private readonly byteLevel: boolean;
  private readonly ignoreMerges: boolean;
  private readonly byteFallback: boolean;
  private readonly unk: number | undefined;
  private readonly fuseUnk: boolean;
  private readonly prefix: string;
  private readonly suffix: string;
  /** Byte → id of its stand-in token (byte-level), or of its <0xNN> token (byte fallback); -1 if none. */
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly cache = new PieceCache(CACHE_MAX_ENTRIES);

  // Scratch, reused by every call.
  private ids = new Int32Array(256);
  private prev = new Int32Array(256);
  private next = new Int32Array(256);
  private bytes = new Uint8Array(1024);
  private readonly heap = new MergeQueue();

  constructor(o: BpeModelOptions) {
    this.vocab = o.vocab;
    this.byteLevel = o.byteLevel;
    this.ignoreMerges = o.ignoreMerges ?? false;
    this.byteFallback = o.byteFallback ?? false;
    this.unk = o.unk;
    this.fuseUnk = o.fuseUnk ?? false;
    this.prefix = o.continuingSubwordPrefix ?? '';
    this.suffix = o.endOfWordSuffix ?? '';
    this.pairs = new PairTable(o.merges.length);
    for (let r = 0; r < o.merges.length; r++) {
      const [a, b] = o.merges[r];
      const ia = o.vocab.get(a);
      const ib = o.vocab.get(b);
      let merged = a + b;
      if (this.prefix && b.startsWith(this.prefix)) merged = a + b.slice(this.prefix.length);
      const im = o.vocab.get(merged);
      if (ia === undefined || ib === undefined || im === undefined) {
        throw new FuselmError('E_FORMAT', `BPE merge ${r} "${a} ${b}": ${ia === undefined ? `"${a}"` : ib === undefined ? `"${b}"` : `"${merged}"`} is not in the vocab`);
      }
      this.pairs.set(ia, ib, r, im);
    }
    for (let b = 0; b < 256; b++) {
      const key = this.byteLevel ? BYTE_TO_CHAR[b] : `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      const id = o.vocab.get(key);
      if (id !== undefined) this.byteIds[b] = id;
    }
  }

  /** Appends the ids of one word. */
  encodeWord(word: string, out: number[]): void {
    this.encodeRange(word, 0, word.length, out);
  }

  /** Appends the ids of the word text[a, b) (a pre-token of a longer text; sliced only on a cache miss). */
  encodeRange(text: string, a: number, b: number, out: number[]): void {
    if (b <= a) return;
    if (b - a > CACHE_MAX_WORD) {
      this.encodeUncached(text.slice(a, b), out);
      return;
    }
    const h = PieceCache.hash(text, a, b);
    if (this.cache.get(text, a, b, h, out)) return;
    const from = out.length;
    this.encodeUncached(text.slice(a, b), out);
    this.cache.set(text, a, b, h, out, from, out.length);
  }

  private ensure(n: number): void {
    if (this.ids.length >= n) return;
    const cap = Math.max(n, this.ids.length * 2);
    this.ids = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    this.next = new Int32Array(cap);
  }

  private encodeUncached(word: string, out: number[]): void {
    let n: number;
    if (this.byteLevel) {
      n = this.toBytes(word);
      if (this.ignoreMerges) {
        let mapped = '';
        for (let i = 0; i < n; i++) mapped += BYTE_TO_CHAR[this.bytes[i]];
        const id = this.vocab.get(mapped);
        if (id !== undefined) {
          out.push(id);
          return;
        }
      }
      this.ensure(n);
      const ids = this.ids;
      for (let i = 0; i < n; i++) {
        const id = this.byteIds[this.bytes[i]];
        if (id < 0) {
          throw new FuselmError('E_UNSUPPORTED', `byte-level BPE: the vocab has no token for byte 0x${this.bytes[i].toString(16)}`);
        }
        ids[i] = id;
      }
    } else {
      if (this.ignoreMerges) {
        const id = this.vocab.get(word);
        if (id !== undefined) {
          out.push(id);
          return;
        }
      }
      n = this.charSymbols(word);
    }
    if (n <= SCAN_MAX) this.mergeScan(n);
    else this.mergeHeap(n);
    for (let i = 0; i >= 0 && i < n; i = this.next[i]) out.push(this.ids[i]);
  }

  /** UTF-8 of the word into this.bytes; returns the length. */
  private toBytes(word: string): number {
    if (this.bytes.length < word.length * 3) this.bytes = new Uint8Array(word.length * 3);
    const u = this.bytes;
    let n = 0;
    for (let i = 0; i < word.length; i++) {
      let c = word.charCodeAt(i);
      if (c < 0x80) {
        u[n++] = c;
        continue;
      }
      if (c < 0x800) {
        u[n++] = 0xc0 | (c >> 6);
        u[n++] = 0x80 | (c & 0x3f);
        continue;
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = word.charCodeAt(i + 1);
        if (c <= 0xdbff && (d & 0xfc00) === 0xdc00) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          u[n++] = 0xf0 | (cp >> 18);
          u[n++] = 0x80 | ((cp >> 12) & 0x3f);
          u[n++] = 0x80 | ((cp >> 6) & 0x3f);
          u[n++] = 0x80 | (cp & 0x3f);
          i++;
          continue;
        }
        c = 0xfffd; // a lone surrogate: what TextEncoder writes
      }
      u[n++] = 0xe0 | (c >> 12);
      u[n++] = 0x80 | ((c >> 6) & 0x3f);
      u[n++] = 0x80 | (c & 0x3f);
    }
    return n;
  }

  /** Character symbols (with byte fallback / unk) into this.ids; returns the count. */
  private charSymbols(word: string): number {
    this.ensure(word.length * 4);
    const ids = this.ids;
    let n = 0;
    let prevUnk = false;
    for (let i = 0; i < word.length; ) {
      const cp = word.codePointAt(i)!;
      const w = cp > 0xffff ? 2 : 1;
      let s = word.slice(i, i + w);
      if (i > 0 && this.prefix) s = this.prefix + s;
      if (i + w === word.length && this.suffix) s += this.suffix;
      i += w;
      const id = this.vocab.get(s);
      if (id !== undefined) {
        ids[n++] = id;
        prevUnk = false;
        continue;
      }
      if (this.byteFallback) {
        const b = new TextEncoder().encode(s);
        let all = true;
        for (const x of b) if (this.byteIds[x] < 0) all = false;
        if (all) {
          for (const x of b) ids[n++] = this.byteIds[x];
          prevUnk = false;
          continue;
        }
      }
      if (this.unk === undefined) {
        throw new FuselmError('E_UNSUPPORTED', `BPE: cannot encode ${shown(s)}: not in the vocab and no unknown token`);
      }
      if (!(this.fuseUnk && prevUnk)) ids[n++] = this.unk;
      prevUnk = true;
    }
    return n;
  }

  /** Direct merging for short words: find the best pair, merge, repeat. */
  private mergeScan(n: number): void {
    const ids = this.ids;
    const next = this.next;
    let count = n;
    for (;;) {
      let bestRank = 0x7fffffff;
      let bestPos = -1;
      let bestSlot = -1;
      for (let i = 0; i + 1 < count; i++) {
        const slot = this.pairs.find(ids[i], ids[i + 1]);
        if (slot >= 0) {
          const r = this.pairs.rankAt(slot);
          if (r < bestRank) {
            bestRank = r;
            bestPos = i;
            bestSlot = slot;
          }
        }
      }
      if (bestPos < 0) break;
      ids[bestPos] = this.pairs.mergedAt(bestSlot);
      for (let i = bestPos + 1; i + 1 < count; i++) ids[i] = ids[i + 1];
      count--;
    }
    for (let i = 0; i < count; i++) next[i] = i + 1 < count ? i + 1 : -1;
  }

  private mergeHeap(n: number): void {
    const ids = this.ids;
    const prev = this.prev;
    const next = this.next;
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const h = this.heap;
    h.size = 0;
    for (let i = 0; i + 1 < n; i++) {
      const slot = this.pairs.find(ids[i], ids[i + 1]);
      if (slot >= 0) h.push(this.pairs.rankAt(slot), i, i + 1);
    }
    while (h.size > 0) {
      h.pop();
      const l = h.topPos;
      const r = h.topA;
      // Stale unless l and r are still alive, adjacent, and still form this very merge.
      if (ids[l] < 0 || ids[r] < 0 || next[l] !== r) continue;
      const slot = this.pairs.find(ids[l], ids[r]);
      if (slot < 0 || this.pairs.rankAt(slot) !== h.topKey) continue;
      ids[l] = this.pairs.mergedAt(slot);
      ids[r] = -1;
      const after = next[r];
      next[l] = after;
      if (after >= 0) prev[after] = l;
      const before = prev[l];
      if (before >= 0) {
        const s = this.pairs.find(ids[before], ids[l]);
        if (s >= 0) h.push(this.pairs.rankAt(s), before, l);
      }
      if (after >= 0) {
        const s = this.pairs.find(ids[l], ids[after]);
        if (s >= 0) h.push(this.pairs.rankAt(s), l, after);
      }
    }
  }
}
