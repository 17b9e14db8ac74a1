/**
 * The paged KV cache's pool of blocks, as the scheduler hands them out: reference counts (a
 * block is held by every slot whose block table lists it), and the prefix cache: full blocks
 * keyed by (their parent block's id, their token ids), so a block holding the same tokens after
 * the same prefix is found and shared instead of evaluated again. Keys are exact (the parent's
 * id is unique to one chain of blocks and never reused), so a hit can never be another prefix's.
 * A block no slot holds is free, or, if registered, cached until the pool runs short: then the
 * least recently released cached block is taken back first (LRU). A prefix that ends inside a
 * block is found too (partial): the registered block under the same parent whose first tokens
 * hold most of it, for its holder to copy those rows into a block of its own (copy on write).
 */
export class KvBlocks {
  /** Id of the empty prefix, the parent of every sequence's first block. */
  static readonly ROOT = 0;
  readonly #ref: Int32Array;
  /** Registered blocks: their key, chain id and when they were last released. */
  readonly #key: (string | undefined)[];
  /** Registered blocks' tokens, and the registered blocks under each parent chain id. */
  readonly #tokens: (readonly number[])[];
  readonly #parent: number[];
  readonly #children = new Map<number, Set<number>>();
  readonly #id: number[];
  readonly #released: number[];
  readonly #byKey = new Map<string, number>();
  readonly #free: number[];
  #ids = KvBlocks.ROOT;
  #clock = 0;
  /** The chain roots of prefixes evaluated under other weights (LoRA adapter sets), by key. */
  readonly #roots = new Map<string, number>([['', KvBlocks.ROOT]]);

  constructor(readonly blocks: number, readonly blockSize: number) {
    this.#ref = new Int32Array(blocks);
    this.#key = new Array(blocks).fill(undefined);
    this.#tokens = new Array(blocks).fill([]);
    this.#parent = new Array(blocks).fill(0);
    this.#id = new Array(blocks).fill(0);
    this.#released = new Array(blocks).fill(0);
    this.#free = Array.from({ length: blocks }, (_, i) => blocks - 1 - i);
  }

  /** A block for new positions, held once: a free one, else the least recently used cached one (forgotten); undefined when every block is held. */
  take(): number | undefined {
    let b = this.#free.pop();
    if (b === undefined) {
      let lru = -1;
      for (let i = 0; i < this.blocks; i++) if (this.#ref[i] === 0 && this.#key[i] !== undefined && (lru < 0 || this.#released[i] < this.#released[lru])) lru = i;
      if (lru < 0) return undefined;
      this.#unregister(lru);
      b = lru;
    }
    this.#ref[b] = 1;
    return b;
  }

  /**
   * The parent of the first block of prefixes evaluated under `weights` (a key naming the LoRA
   * adapters and their scales; '' the base model's: ROOT): blocks evaluated under other weights
   * hold other keys and values for the same tokens, so each set of weights has its own chains.
   */
  root(weights: string): number {
    let r = this.#roots.get(weights);
    if (r === undefined) this.#roots.set(weights, (r = ++this.#ids));
    return r;
  }

  hold(b: number): void {
    this.#ref[b]++;
  }

  /** One holder lets go; unheld, a registered block stays cached, another is free. */
  release(b: number): void {
    if (--this.#ref[b] > 0) return;
    if (this.#key[b] !== undefined) this.#released[b] = ++this.#clock;
    else this.#free.push(b);
  }

  /**
   * A full block (its `tokens` after the prefix `parent`) becomes findable; returns the chain id
   * of its tokens (another block's, when one holding them is registered already).
   */
  register(parent: number, tokens: readonly number[], b: number): number {
    const key = `${parent}:${tokens.join(',')}`;
    const had = this.#byKey.get(key);
    if (had !== undefined) return this.#id[had];
    if (this.#key[b] !== undefined) return this.#id[b];
    this.#byKey.set(key, b);
    this.#key[b] = key;
    this.#tokens[b] = [...tokens];
    this.#parent[b] = parent;
    let kids = this.#children.get(parent);
    if (!kids) this.#children.set(parent, (kids = new Set()));
    kids.add(b);
    return (this.#id[b] = ++this.#ids);
  }

  /** The registered block holding `tokens` after the prefix `parent`, and its chain id. */
  lookup(parent: number, tokens: readonly number[]): { block: number; id: number } | undefined {
    const b = this.#byKey.get(`${parent}:${tokens.join(',')}`);
    return b === undefined ? undefined : { block: b, id: this.#id[b] };
  }

  /**
   * The registered block under `parent` whose first tokens are the longest run of `tokens`' first
   * ones (at least one), and that run's length: `tokens` hold fewer than a block's (a prefix
   * ending inside a block), or differ from every full block's after some of them.
   */
  partial(parent: number, tokens: readonly number[]): { block: number; rows: number } | undefined {
    let best: { block: number; rows: number } | undefined;
    for (const b of this.#children.get(parent) ?? []) {
      const have = this.#tokens[b];
      let n = 0;
      while (n < tokens.length && n < have.length && have[n] === tokens[n]) n++;
      if (n > (best?.rows ?? 0)) best = { block: b, rows: n };
    }
    return best;
  }

  /**
   * Whether a holder may write into block b (positions past a kept prefix that ends inside it):
   * a block only it holds may (a registered one is forgotten first: its tokens change); a shared
   * one may not.
   */
  writable(b: number): boolean {
    if (this.#ref[b] > 1) return false;
    if (this.#key[b] !== undefined) this.#unregister(b);
    return true;
  }

  #unregister(b: number): void {
    this.#byKey.delete(this.#key[b]!);
    this.#key[b] = undefined;
    this.#tokens[b] = [];
    const kids = this.#children.get(this.#parent[b])!;
    kids.delete(b);
    if (!kids.size) this.#children.delete(this.#parent[b]);
  }

  /** Blocks no slot holds and no prefix keeps (free), and those a prefix keeps (cached, reusable). */
  get counts(): { free: number; cached: number } {
    let cached = 0;
    for (let i = 0; i < this.blocks; i++) if (this.#ref[i] === 0 && this.#key[i] !== undefined) cached++;
    return { free: this.#free.length, cached };
  }
}
