/**
 * WordPiece (BERT): each pre-token is cut greedily, longest vocab match first, from the left; every
 * piece after the first is looked up with the continuation prefix ("##"). A word longer than
 * max_input_chars_per_word characters, or one that cannot be cut completely, becomes [UNK].
 *
 * GGUF files store the vocab in llama.cpp's "phantom space" form (word-initial pieces carry a
 * '▁' prefix, continuation pieces lose their "##"); fromPhantomSpace() turns it back into the
 * original vocab.txt spelling.
 */
import { FuselmError } from '../errors.js';

export interface WordPieceOptions {
  vocab: Map<string, number>;
  unk: number;
  continuingSubwordPrefix?: string;
  maxInputCharsPerWord?: number;
}

export class WordPieceModel {
  private readonly vocab: Map<string, number>;
  private readonly unk: number;
  private readonly prefix: string;
  private readonly maxChars: number;
  /** Longest vocab entry in UTF-16 units, to bound the search. */
  private readonly maxLen: number;

  constructor(o: WordPieceOptions) {
    this.vocab = o.vocab;
    this.unk = o.unk;
    this.prefix = o.continuingSubwordPrefix ?? '##';
    this.maxChars = o.maxInputCharsPerWord ?? 100;
    let m = 0;
    for (const k of o.vocab.keys()) if (k.length > m) m = k.length;
    this.maxLen = m;
  }

  encodeWord(word: string, out: number[]): void {
    if (word.length === 0) return;
    // Length in characters (code points), as HF counts.
    let chars = 0;
    for (let i = 0; i < word.length; i++) {
      const c = word.charCodeAt(i);
      if (!(c >= 0xdc00 && c <= 0xdfff && i > 0 && (word.charCodeAt(i - 1) & 0xfc00) === 0xd800)) chars++;
    }
    if (chars > this.maxChars) {
      out.push(this.unk);
      return;
    }
    const mark = out.length;
    let start = 0;
    while (start < word.length) {
      let end = Math.min(word.length, start + this.maxLen);
      let found = -1;
      while (end > start) {
        // Never cut inside a surrogate pair.
        if (end < word.length && (word.charCodeAt(end) & 0xfc00) === 0xdc00) {
          end--;
          continue;
        }
        const piece = start > 0 ? this.prefix + word.slice(start, end) : word.slice(start, end);
        const id = this.vocab.get(piece);
        if (id !== undefined) {
          found = id;
          break;
        }
        end--;
      }
      if (found < 0) {
        out.length = mark;
        out.push(this.unk);
        return;
      }
      out.push(found);
      start = end;
    }
  }
}

/** Turns a GGUF "phantom space" WordPiece vocab back into vocab.txt spelling. */
export function fromPhantomSpace(tokens: readonly string[], types?: ArrayLike<number>): string[] {
  return tokens.map((t, i) => {
    if (types && types[i] === 3 /* CONTROL */) return t;
    if (t.startsWith('\u2581')) return t.slice(1);
    if (t.startsWith('[') && t.endsWith(']')) return t;
    return '##' + t;
  });
}

export function checkUnk(unk: number | undefined, where: string): number {
  if (unk === undefined) throw new FuselmError('E_FORMAT', `${where}: WordPiece needs an unknown token`);
  return unk;
}
