/**
 * The priority queue of candidate merges that both BPE flavours use: entries ordered by key
 * (smallest first), ties by position (leftmost first), each carrying two ints. Stored as
 * parallel typed arrays so a 1 MB input allocates no per-entry objects; reused across calls.
 * SentencePiece pushes -score as the key (highest score first), byte-level BPE the merge rank.
 */
export class MergeQueue {
  size = 0;
  private key = new Float64Array(64);
  private pos = new Int32Array(64);
  private a = new Int32Array(64);
  private b = new Int32Array(64);
  // The most recently popped entry.
  topKey = 0;
  topPos = 0;
  topA = 0;
  topB = 0;

  clear(): void {
    this.size = 0;
  }

  private before(x: number, y: number): boolean {
    return this.key[x] < this.key[y] || (this.key[x] === this.key[y] && this.pos[x] < this.pos[y]);
  }

  private swap(x: number, y: number): void {
    const k = this.key[x]; this.key[x] = this.key[y]; this.key[y] = k;
    let t = this.pos[x]; this.pos[x] = this.pos[y]; this.pos[y] = t;
    t = this.a[x]; this.a[x] = this.a[y]; this.a[y] = t;
    t = this.b[x]; this.b[x] = this.b[y]; this.b[y] = t;
  }

  private grow(): void {
    const cap = this.key.length * 2;
    const key = new Float64Array(cap); key.set(this.key); this.key = key;
    const pos = new Int32Array(cap); pos.set(this.pos); this.pos = pos;
    const a = new Int32Array(cap); a.set(this.a); this.a = a;
    const b = new Int32Array(cap); b.set(this.b); this.b = b;
  }

  push(key: number, pos: number, a: number, b = 0): void {
    if (this.size === this.key.length) this.grow();
    let i = this.size++;
    this.key[i] = key;
    this.pos[i] = pos;
    this.a[i] = a;
    this.b[i] = b;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the first entry into topKey / topPos / topA / topB. Call only when size > 0. */
  pop(): void {
    this.topKey = this.key[0];
    this.topPos = this.pos[0];
    this.topA = this.a[0];
    this.topB = this.b[0];
    const last = --this.size;
    if (last === 0) return;
    this.key[0] = this.key[last];
    this.pos[0] = this.pos[last];
    this.a[0] = this.a[last];
    this.b[0] = this.b[last];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= last) break;
      const r = l + 1;
      const c = r < last && this.before(r, l) ? r : l;
      if (!this.before(c, i)) break;
      this.swap(c, i);
      i = c;
    }
  }
}
