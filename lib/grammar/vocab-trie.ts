/**
 * The vocabulary's token byte strings as a trie in flat arrays, nodes numbered in preorder so
 * that a node's subtree is the node range [n, end[n]) and the tokens at or below it are one
 * range of `order` (token ids sorted by their bytes). Walking it once against the grammar's
 * state decides every token that shares a prefix together. Tokens that print nothing (control
 * tokens) are left out: a grammar never allows them.
 */
export class VocabTrie {
  /** The byte leading into each node (node 0 is the root). */
  readonly byte: Uint8Array;
  /** One past the last node of each node's subtree. */
  readonly end: Int32Array;
  /** Per node: the first index in `order` of the tokens at or below it (and a sentinel at nodes). */
  readonly first: Int32Array;
  /** Per node: how many tokens end exactly there (they come first in its range). */
  readonly count: Int32Array;
  /** Token ids with bytes, sorted by their bytes. */
  readonly order: Int32Array;
  readonly nodes: number;
  /** The longest token's length in bytes (the trie's depth). */
  readonly depth: number;

  constructor(bytes: ReadonlyArray<Uint8Array>) {
    const ids: number[] = [];
    for (let i = 0; i < bytes.length; i++) if (bytes[i].length > 0) ids.push(i);
    ids.sort((a, b) => compareBytes(bytes[a], bytes[b]) || a - b);
    const byte: number[] = [0], end: number[] = [0], first: number[] = [0], count: number[] = [0];
    const path = [0];
    let prev: Uint8Array = new Uint8Array(0);
    ids.forEach((id, k) => {
      const b = bytes[id];
      let l = 0;
      while (l < prev.length && l < b.length && prev[l] === b[l]) l++;
      while (path.length - 1 > l) end[path.pop()!] = byte.length;
      for (let d = l; d < b.length; d++) {
        path.push(byte.length);
        byte.push(b[d]);
        end.push(0);
        first.push(k);
        count.push(0);
      }
      count[path[path.length - 1]]++;
      prev = b;
    });
    while (path.length) end[path.pop()!] = byte.length;
    first.push(ids.length);
    this.byte = Uint8Array.from(byte);
    this.end = Int32Array.from(end);
    this.first = Int32Array.from(first);
    this.count = Int32Array.from(count);
    this.order = Int32Array.from(ids);
    this.nodes = byte.length;
    this.depth = ids.reduce((m, id) => Math.max(m, bytes[id].length), 0);
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
