/**
 * The BPE model's cache of short pieces → ids, looked up by a range of a larger string, so a hit
 * (nearly every piece of ordinary text) costs a hash over its characters and no new string:
 * open addressing over FNV-1a hashes of the UTF-16 units, keys and ids kept in flat typed arrays.
 * When it fills up it starts over (the hot pieces come back at once).
 */
export class PieceCache {
  readonly #maxEntries: number;
  #slots: Int32Array; // entry index + 1, 0 = empty
  #hashes: Int32Array; // per entry
  #keyStart: Int32Array;
  #keyLen: Int32Array;
  #idStart: Int32Array;
  #idLen: Int32Array;
  #keys = new Uint16Array(1 << 16);
  #keysUsed = 0;
  #ids = new Int32Array(1 << 16);
  #idsUsed = 0;
  #entries = 0;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
    let cap = 1;
    while (cap < maxEntries * 2) cap <<= 1;
    this.#slots = new Int32Array(cap);
    this.#hashes = new Int32Array(maxEntries);
    this.#keyStart = new Int32Array(maxEntries);
    this.#keyLen = new Int32Array(maxEntries);
    this.#idStart = new Int32Array(maxEntries);
    this.#idLen = new Int32Array(maxEntries);
  }

  static hash(text: string, a: number, b: number): number {
    let h = 0x811c9dc5 | 0;
    for (let i = a; i < b; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    return h;
  }

  /** Appends the cached ids of text[a, b) to out and returns true, or returns false. */
  get(text: string, a: number, b: number, h: number, out: number[]): boolean {
    const mask = this.#slots.length - 1;
    const len = b - a;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const e = this.#slots[s] - 1;
      if (e < 0) return false;
      if (this.#hashes[e] !== h || this.#keyLen[e] !== len) continue;
      const k = this.#keyStart[e];
      let i = 0;
      while (i < len && this.#keys[k + i] === text.charCodeAt(a + i)) i++;
      if (i < len) continue;
      const from = this.#idStart[e], to = from + this.#idLen[e];
      for (let j = from; j < to; j++) out.push(this.#ids[j]);
      return true;
    }
  }

  /** Remembers ids[from, to) as text[a, b)'s (not already present: get() missed it). */
  set(text: string, a: number, b: number, h: number, ids: number[], from: number, to: number): void {
    if (this.#entries >= this.#maxEntries) this.clear();
    const len = b - a, n = to - from;
    this.#keys = grow16(this.#keys, this.#keysUsed + len);
    this.#ids = grow32(this.#ids, this.#idsUsed + n);
    const e = this.#entries++;
    this.#hashes[e] = h;
    this.#keyStart[e] = this.#keysUsed;
    this.#keyLen[e] = len;
    for (let i = 0; i < len; i++) this.#keys[this.#keysUsed + i] = text.charCodeAt(a + i);
    this.#keysUsed += len;
    this.#idStart[e] = this.#idsUsed;
    this.#idLen[e] = n;
    for (let j = 0; j < n; j++) this.#ids[this.#idsUsed + j] = ids[from + j];
    this.#idsUsed += n;
    const mask = this.#slots.length - 1;
    let s = h & mask;
    while (this.#slots[s] !== 0) s = (s + 1) & mask;
    this.#slots[s] = e + 1;
  }

  clear(): void {
    this.#slots.fill(0);
    this.#entries = this.#keysUsed = this.#idsUsed = 0;
  }
}

function grow16(a: Uint16Array<ArrayBuffer>, need: number): Uint16Array<ArrayBuffer> {
  if (need <= a.length) return a;
  const b = new Uint16Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

function grow32(a: Int32Array<ArrayBuffer>, need: number): Int32Array<ArrayBuffer> {
  if (need <= a.length) return a;
  const b = new Int32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}
