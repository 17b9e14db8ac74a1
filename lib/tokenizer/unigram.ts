/**
 * SentencePiece Unigram (T5's tokenizer; tokenizer.json model "Unigram", GGUF
 * tokenizer.ggml.model "t5"): a word is cut into the pieces whose scores (log-probabilities)
 * sum highest, by Viterbi over its characters. Each position keeps the best-scoring way to reach
 * it; from every reachable position each piece that starts there is tried, shortest first (a
 * walk down a trie of the pieces, so the work is the length of the prefixes the vocabulary
 * holds, never every length up to its longest piece), and replaces the best only when strictly
 * better (SentencePiece's and Hugging Face's tie rule). A
 * character no piece starts with becomes the unknown token, scored as the lowest piece minus 10
 * (both libraries' penalty), and runs of unknown tokens fuse into one (Hugging Face's fuse_unk).
 */
import { FuselmError } from '../errors.js';

const UNK_PENALTY = 10;

export interface UnigramOptions {
  /** Pieces a word may be cut into (normal and user-defined ones) → id. */
  pieces: Map<string, number>;
  /** Score per id. */
  scores: ArrayLike<number>;
  unk: number | undefined;
}

/** A trie node over UTF-16 units: the piece ending here (-1: none) and the nodes below. */
interface TrieNode {
  id: number;
  next: Map<number, TrieNode> | undefined;
}

export class UnigramModel {
  readonly #scores: ArrayLike<number>;
  readonly #unk: number | undefined;
  readonly #unkScore: number;
  readonly #root: TrieNode = { id: -1, next: undefined };

  constructor(o: UnigramOptions) {
    this.#scores = o.scores;
    this.#unk = o.unk;
    let min = Infinity;
    for (const [p, id] of o.pieces) {
      min = Math.min(min, o.scores[id]);
      let node = this.#root;
      for (let i = 0; i < p.length; i++) {
        const c = p.charCodeAt(i);
        node.next ??= new Map();
        let child = node.next.get(c);
        if (!child) node.next.set(c, (child = { id: -1, next: undefined }));
        node = child;
      }
      node.id = id;
    }
    this.#unkScore = (Number.isFinite(min) ? min : 0) - UNK_PENALTY;
  }

  encodeWord(word: string, out: number[]): void {
    const n = word.length;
    if (n === 0) return;
    // best[i]: the best score of word[0, i); from[i] where its last piece starts; id[i] that piece (-1: unknown)
    const best = new Float64Array(n + 1).fill(-Infinity), from = new Int32Array(n + 1), id = new Int32Array(n + 1);
    best[0] = 0;
    const isLow = (i: number) => i < n && (word.charCodeAt(i) & 0xfc00) === 0xdc00;
    for (let i = 0; i < n; i++) {
      if (best[i] === -Infinity || isLow(i)) continue;
      const charEnd = (word.charCodeAt(i) & 0xfc00) === 0xd800 && isLow(i + 1) ? i + 2 : i + 1;
      let single = false;
      let node: TrieNode | undefined = this.#root;
      for (let end = i + 1; end <= n; end++) {
        node = node.next?.get(word.charCodeAt(end - 1));
        if (!node) break;
        const p = node.id;
        if (p < 0 || isLow(end)) continue; // never end inside a surrogate pair
        if (end === charEnd) single = true;
        const s = best[i] + this.#scores[p];
        if (s > best[end]) [best[end], from[end], id[end]] = [s, i, p];
      }
      if (!single) {
        const s = best[i] + this.#unkScore;
        if (s > best[charEnd]) [best[charEnd], from[charEnd], id[charEnd]] = [s, i, -1];
      }
    }
    const path: number[] = [];
    for (let i = n; i > 0; i = from[i]) path.push(id[i]);
    for (let k = path.length - 1; k >= 0; k--) {
      const p = path[k];
      if (p >= 0) out.push(p);
      else if (this.#unk === undefined) throw new FuselmError('E_UNSUPPORTED', 'Unigram tokenizer: a character is in no piece and the vocabulary has no unknown token');
      else if (!(k < path.length - 1 && path[k + 1] < 0)) out.push(this.#unk); // a run of unknowns fuses into one
    }
  }
}
