/**
 * The vocabulary's token byte strings as a trie in flat arrays, nodes numbered in preorder so
 * that a node's subtree is the node range [n, end[n]) and the tokens at or below it are one
 * range of `order` (token ids sorted by their bytes). Walking it once against the grammar's
 * state decides every token that shares a prefix together. Tokens that print nothing (control
 * tokens) are left out: a grammar never allows them. Sorting a 128k vocabulary takes a second or
 * more on a busy machine: VocabTrie.build() does it in a worker thread.
 */
import { startWorker } from '../worker.js';

/** A trie's arrays, as the trie worker sends them back. */
export interface TrieArrays {
  byte: Uint8Array;
  end: Int32Array;
  first: Int32Array;
  count: Int32Array;
  order: Int32Array;
  nodes: number;
  depth: number;
}

export class VocabTrie implements TrieArrays {
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

  /** The trie of `bytes` (built here, on the calling thread), or one built already (`arrays`). */
  constructor(bytes: ReadonlyArray<Uint8Array> | TrieArrays) {
    if (!Array.isArray(bytes)) {
      const a = bytes as TrieArrays;
      [this.byte, this.end, this.first, this.count, this.order, this.nodes, this.depth] = [a.byte, a.end, a.first, a.count, a.order, a.nodes, a.depth];
      return;
    }
    // sorted by latin1 keys (one UTF-16 unit per byte: string order is byte order), natively
    const keys: string[] = [];
    const ids: number[] = [];
    for (let i = 0; i < bytes.length; i++)
      if (bytes[i].length > 0) {
        ids.push(i);
        keys[i] = latin1(bytes[i]);
      }
    ids.sort((a, b) => (keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : a - b));
    const n = ids.reduce((sum, id) => sum + bytes[id].length, 1); // an upper bound on the node count
    const byte = new Uint8Array(n), end = new Int32Array(n), first = new Int32Array(n + 1), count = new Int32Array(n);
    let nodes = 1;
    const path = [0];
    let prev = '';
    ids.forEach((id, k) => {
      const key = keys[id];
      let l = 0;
      while (l < prev.length && l < key.length && prev.charCodeAt(l) === key.charCodeAt(l)) l++;
      while (path.length - 1 > l) end[path.pop()!] = nodes;
      for (let d = l; d < key.length; d++) {
        path.push(nodes);
        byte[nodes] = key.charCodeAt(d);
        first[nodes++] = k;
      }
      count[path[path.length - 1]]++;
      prev = key;
    });
    while (path.length) end[path.pop()!] = nodes;
    first[nodes] = ids.length;
    this.byte = byte.slice(0, nodes);
    this.end = end.slice(0, nodes);
    this.first = first.slice(0, nodes + 1);
    this.count = count.slice(0, nodes);
    this.order = Int32Array.from(ids);
    this.nodes = nodes;
    this.depth = ids.reduce((m, id) => Math.max(m, bytes[id].length), 0);
  }

  /** The trie built in a worker thread (the event loop stays free); on this thread where no worker can start. */
  static async build(bytes: ReadonlyArray<Uint8Array>): Promise<VocabTrie> {
    const total = bytes.reduce((n, b) => n + b.length, 0);
    const data = new Uint8Array(total), offsets = new Int32Array(bytes.length + 1);
    for (let i = 0, at = 0; i < bytes.length; i++) {
      data.set(bytes[i], at);
      offsets[i + 1] = at += bytes[i].length;
    }
    let arrays: TrieArrays | undefined;
    try {
      const w = startWorker('grammar/trie-worker');
      arrays = await new Promise<TrieArrays>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
        w.once('exit', () => reject(new Error('the trie worker exited')));
        w.postMessage({ data, offsets }, [data.buffer, offsets.buffer]);
      }).finally(() => void w.terminate());
    } catch {
      arrays = undefined;
    }
    return new VocabTrie(arrays ?? bytes);
  }
}

/** The token byte strings packed as `data` cut at `offsets` (how they cross to the worker), as views. */
export function unpackBytes(data: Uint8Array, offsets: Int32Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < offsets.length; i++) out.push(data.subarray(offsets[i], offsets[i + 1]));
  return out;
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}
