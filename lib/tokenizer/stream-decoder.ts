/**
 * Token-by-token detokenization that never splits a UTF-8 character.
 *
 * A token's text is either a complete string (most tokens) or raw bytes that may be only part of
 * a character (SentencePiece byte-fallback tokens like <0xE2>, byte-level BPE tokens). Raw bytes
 * go through one streaming TextDecoder, which holds back an unfinished character until the bytes
 * that complete it arrive. When a complete-string token follows raw bytes, the bytes are flushed
 * first: a string token's UTF-8 never starts with a continuation byte, so it could not have
 * completed the character anyway, and the WHATWG decoder would emit the same U+FFFD at that point
 * if it saw all the bytes at once. So the output is the same for every way of splitting the ids,
 * and decode() is literally this decoder run over all of them.
 */
import { FuselmError } from '../errors.js';
import type { StreamDecoder, StreamDecoderOptions } from './tokenizer.js';

/** What a tokenizer tells the decoder about its tokens. */
export interface PieceSource {
  /** The output of token `id`: a string when it is whole UTF-8 text ('' for a token that prints
   * nothing), a Uint8Array of raw bytes when it may be part of a character. Throws FuselmError
   * E_INVALID_ARG for an id outside the vocab. */
  piece(id: number, skipSpecial: boolean): string | Uint8Array;
  /** Default of stripLeadingSpace: whether the encoder adds a space prefix that decoding removes. */
  readonly stripsLeadingSpace: boolean;
}

export class Utf8StreamDecoder implements StreamDecoder {
  private readonly td = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private readonly skipSpecial: boolean;
  /** The last input was raw bytes, so the TextDecoder may hold an unfinished character. */
  private inBytes = false;
  /** Nothing has been emitted yet and one leading space is still to be removed. */
  private stripPending: boolean;

  constructor(
    private readonly source: PieceSource,
    opts: StreamDecoderOptions = {},
  ) {
    this.skipSpecial = opts.skipSpecial ?? true;
    this.stripPending = opts.stripLeadingSpace ?? source.stripsLeadingSpace;
  }

  push(id: number): string {
    const p = this.source.piece(id, this.skipSpecial);
    if (typeof p === 'string') {
      // A token that prints nothing (a skipped BOS) must not break a byte run: decode() of the
      // same ids would join the bytes on either side of it.
      if (p.length === 0) return '';
      const before = this.inBytes ? this.td.decode() : '';
      this.inBytes = false;
      return this.emit(before.length === 0 ? p : before + p);
    }
    this.inBytes = true;
    return this.emit(this.td.decode(p, { stream: true }));
  }

  flush(): string {
    const rest = this.inBytes ? this.td.decode() : '';
    this.inBytes = false;
    return this.emit(rest);
  }

  private emit(text: string): string {
    if (this.stripPending && text.length > 0) {
      this.stripPending = false;
      if (text.charCodeAt(0) === 0x20) return text.slice(1);
    }
    return text;
  }
}

/** decode() for any PieceSource: the stream decoder over all ids, then flush. */
export function decodeWith(source: PieceSource, ids: ArrayLike<number>, opts?: StreamDecoderOptions): string {
  if (typeof ids !== 'object' || ids === null || !Number.isSafeInteger(ids.length) || ids.length < 0)
    throw new FuselmError('E_INVALID_ARG', `decode() takes an array of token ids, got ${ids === null ? 'null' : typeof ids}`);
  if (opts !== undefined && (typeof opts !== 'object' || opts === null)) throw new FuselmError('E_INVALID_ARG', 'decode() options must be an object');
  const d = new Utf8StreamDecoder(source, opts);
  let out = '';
  for (let i = 0; i < ids.length; i++) out += d.push(ids[i]);
  return out + d.flush();
}
