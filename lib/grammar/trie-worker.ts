/**
 * The vocabulary trie worker (VocabTrie.build starts one per vocabulary): builds the trie of
 * the token byte strings it is sent and sends its arrays back, so that the sort of a large
 * vocabulary does not stall the application's event loop.
 */
import { parentPort } from 'node:worker_threads';
import { unpackBytes, VocabTrie } from './vocab-trie.js';

parentPort!.once('message', (m: { data: Uint8Array; offsets: Int32Array }) => {
  const t = new VocabTrie(unpackBytes(m.data, m.offsets));
  const arrays = { byte: t.byte, end: t.end, first: t.first, count: t.count, order: t.order, nodes: t.nodes, depth: t.depth };
  parentPort!.postMessage(arrays, [t.byte, t.end, t.first, t.count, t.order].map((a) => a.buffer as ArrayBuffer));
});
