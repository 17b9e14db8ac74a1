/**
 * SentencePiece-BPE tokenizer (GGUF tokenizer.ggml.model = "llama": Llama 1/2, Mistral, Phi-3,
 * TinyStories ...).
 *
 * Encode, per text span:
 *   1. normalize: every ' ' becomes '▁' (U+2581), and one '▁' is prepended when the vocab asks
 *      for a space prefix;
 *   2. start from one symbol per Unicode character;
 *   3. repeatedly merge the adjacent pair whose concatenation is a vocab piece with the highest
 *      score (ties: the leftmost pair), until no pair is a piece. A doubly linked list of symbols
 *      plus a priority queue of candidate pairs makes this O(n log n); queue entries made stale
 *      by an earlier merge are recognized and dropped when popped;
 *   4. each final symbol becomes its piece's id, or if it has none (a character outside the
 *      vocab) its UTF-8 bytes as byte tokens <0xNN> (byte fallback), or UNK without those.
 *
 * Control and user-defined tokens written in the text are split out first (user-defined always,
 * control and unknown ones only with parseSpecial), longest first, and the spans between them are
 * encoded separately, each span after a special token getting the space prefix again (llama.cpp's
 * SPM rule, which matches Hugging Face applying its Prepend normalizer to each span).
 *
 * Decode: '▁' becomes ' ', byte tokens become raw bytes decoded as UTF-8 together, control tokens
 * print nothing (with skipSpecial), and the one space the prefix put at the start of the output is
 * removed (Hugging Face's Strip decoder), so decode(encode(s)) === s.
 */
import { MergeQueue } from './merge-queue.js';
import { UnigramModel } from './unigram.js';
import { FuselmError } from '../errors.js';
import { decodeWith, Utf8StreamDecoder, type PieceSource } from './stream-decoder.js';
import { checkEncodeArgs } from './pretokenize.js';
import {
  TokenType,
  type DecodeOptions,
  type EncodeOptions,
  type StreamDecoder,
  type StreamDecoderOptions,
  type Tokenizer,
} from './tokenizer.js';

/** Everything an SPM tokenizer needs; from-gguf.ts fills it from GGUF metadata. */
export interface SpmVocab {
  /** Pieces by id, as stored: "▁the", "<0x0A>", "<s>". */
  tokens: readonly string[];
  /** Merge priority per id (higher merges first). Default: all 0. */
  scores?: ArrayLike<number>;
  /** TokenType per id. Default: NORMAL, except pieces spelled <0xNN>, which are BYTE. */
  types?: ArrayLike<number>;
  bos?: number;
  eos?: number;
  eot?: number;
  unk?: number;
  pad?: number;
  /** Ids that end generation. Default: eos and eot. */
  eog?: Iterable<number>;
  /** Default true. */
  addBos?: boolean;
  /** Default false. */
  addEos?: boolean;
  /** Prepend '▁' to the text before encoding, and strip the leading space when decoding. Default true. */
  addSpacePrefix?: boolean;
  /** The model's chat template (Jinja), when it has one. */
  chatTemplate?: string;
  /** Cut spans by Unigram's best-scoring path (lib/tokenizer/unigram.ts; T5) instead of BPE merges. */
  unigram?: boolean;
  /** SentencePiece's remove_extra_whitespaces: each span trimmed of spaces and runs of them made one. Default false. */
  removeExtraWhitespaces?: boolean;
  /** SentencePiece's normalization rules (a precompiled_charsmap), applied to each span before the whitespace rules. */
  normalizer?: (text: string) => string;
}

const SPACE_MARK = '\u2581';
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

interface SpecialToken {
  text: string;
  id: number;
  /** User-defined tokens are matched even without parseSpecial. */
  always: boolean;
}

/** A fragment of the input after special-token splitting: a token id, or a text range. */
type Fragment = number | { start: number; end: number };

export class SpmTokenizer implements Tokenizer, PieceSource {
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly eot: number | undefined;
  readonly unk: number | undefined;
  readonly pad: number | undefined;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly eogIds: readonly number[];
  readonly chatTemplate: string | undefined;
  readonly addSpacePrefix: boolean;

  private readonly tokens: readonly string[];
  private readonly types: Uint8Array;
  private readonly scores: Float32Array;
  /** Pieces that merging may produce (normal and user-defined) → id. */
  private readonly pieceToId = new Map<string, number>();
  /** Longest such piece in UTF-16 code units: longer pairs aren't looked up. */
  private readonly maxPieceLen: number;
  /** Byte value → id of its <0xNN> token, -1 when the vocab has none. */
  private readonly byteToId = new Int32Array(256).fill(-1);
  private readonly utf8Scratch = new Uint8Array(4);
  /** Matchable in text, longest first. */
  private readonly specials: SpecialToken[] = [];
  private readonly eogSet: Set<number>;
  /** Decoded output per id with skipSpecial on; specialText holds the raw text used when it's off. */
  private readonly output: (string | Uint8Array)[];

  // Symbol list scratch space, reused by every encode (encode is synchronous, so never shared).
  private symStart = new Int32Array(0);
  private symLen = new Int32Array(0);
  private symPrev = new Int32Array(0);
  private symNext = new Int32Array(0);
  private readonly queue = new MergeQueue();
  private readonly unigram: UnigramModel | undefined;
  private readonly removeExtraWhitespaces: boolean;
  private readonly normalizer: ((text: string) => string) | undefined;

  constructor(vocab: SpmVocab) {
    const n = vocab.tokens.length;
    if (n === 0) throw new FuselmError('E_INVALID_ARG', 'SPM tokenizer: the vocabulary is empty');
    for (const [name, arr] of [['scores', vocab.scores], ['types', vocab.types]] as const) {
      if (arr && arr.length !== n) {
        throw new FuselmError('E_INVALID_ARG', `SPM tokenizer: ${name} has ${arr.length} entries, expected ${n} (one per token)`);
      }
    }
    const checkId = (name: string, id: number | undefined): number | undefined => {
      if (id === undefined) return undefined;
      if (!Number.isInteger(id) || id < 0 || id >= n) {
        throw new FuselmError('E_INVALID_ARG', `SPM tokenizer: ${name} token id ${id} is outside the vocabulary (0..${n - 1})`);
      }
      return id;
    };
    this.vocabSize = n;
    this.tokens = vocab.tokens;
    this.bos = checkId('bos', vocab.bos);
    this.eos = checkId('eos', vocab.eos);
    this.eot = checkId('eot', vocab.eot);
    this.unk = checkId('unk', vocab.unk);
    this.pad = checkId('pad', vocab.pad);
    this.addBos = vocab.addBos ?? true;
    this.addEos = vocab.addEos ?? false;
    this.chatTemplate = vocab.chatTemplate;
    this.addSpacePrefix = vocab.addSpacePrefix ?? true;
    const eog = vocab.eog ?? [this.eos, this.eot].filter((x): x is number => x !== undefined);
    this.eogSet = new Set([...eog].map((id) => checkId('eog', id)!));
    this.eogIds = Object.freeze([...this.eogSet].sort((a, b) => a - b));

    this.scores = new Float32Array(n);
    if (vocab.scores) this.scores.set(vocab.scores);
    this.types = new Uint8Array(n);
    this.output = new Array(n);
    let maxLen = 0;
    for (let id = 0; id < n; id++) {
      const text = vocab.tokens[id];
      const byteMatch = BYTE_PIECE.exec(text);
      let type = vocab.types ? vocab.types[id] : byteMatch ? TokenType.BYTE : TokenType.NORMAL;
      // A BYTE-typed token not spelled <0xNN> can't be a byte; treat it as text.
      if (type === TokenType.BYTE && !byteMatch) type = TokenType.NORMAL;
      this.types[id] = type;
      switch (type) {
        case TokenType.BYTE: {
          const b = parseInt(byteMatch![1], 16);
          // Later duplicates win, as llama.cpp's piece→id map does.
          this.byteToId[b] = id;
          this.output[id] = Uint8Array.of(b);
          break;
        }
        case TokenType.CONTROL:
        case TokenType.UNKNOWN:
        case TokenType.UNUSED:
          this.output[id] = '';
          if (type !== TokenType.UNUSED && text.length > 0) this.specials.push({ text, id, always: false });
          break;
        case TokenType.USER_DEFINED:
          // Printed verbatim, always matched in text.
          this.output[id] = text;
          if (text.length > 0) this.specials.push({ text, id, always: true });
          this.pieceToId.set(text, id);
          if (text.length > maxLen) maxLen = text.length;
          break;
        default: // NORMAL, UNDEFINED, and unknown type codes
          this.output[id] = text.replaceAll(SPACE_MARK, ' ');
          this.pieceToId.set(text, id);
          if (text.length > maxLen) maxLen = text.length;
      }
    }
    this.maxPieceLen = maxLen;
    this.removeExtraWhitespaces = vocab.removeExtraWhitespaces ?? false;
    this.normalizer = vocab.normalizer;
    this.unigram = vocab.unigram ? new UnigramModel({ pieces: this.pieceToId, scores: this.scores, unk: this.unk }) : undefined;
    this.specials.sort((a, b) => b.text.length - a.text.length || a.id - b.id);
  }

  get stripsLeadingSpace(): boolean {
    return this.addSpacePrefix;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    checkEncodeArgs(text, opts);
    const out: number[] = [];
    if (opts.addSpecial && this.addBos && this.bos !== undefined) out.push(this.bos);
    let prevSpecial = true; // the first span gets the space prefix, and so does each one after a special token
    for (const frag of this.splitSpecial(text, opts.parseSpecial ?? false)) {
      if (typeof frag === 'number') {
        out.push(frag);
        prevSpecial = true;
      } else {
        let s = text.slice(frag.start, frag.end);
        if (this.normalizer) s = this.normalizer(s);
        if (this.removeExtraWhitespaces) s = s.replace(/ {2,}/g, ' ').trim();
        // nothing left (only spaces): no space-prefix piece either, as llama.cpp
        if (this.removeExtraWhitespaces && s === '') continue;
        s = s.replaceAll(' ', SPACE_MARK);
        if (this.addSpacePrefix && prevSpecial) s = SPACE_MARK + s;
        this.encodeSpan(s, out);
        prevSpecial = false;
      }
    }
    if (opts.addSpecial && this.addEos && this.eos !== undefined) out.push(this.eos);
    return out;
  }

  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string {
    return decodeWith(this, ids, opts);
  }

  createStreamDecoder(opts?: StreamDecoderOptions): StreamDecoder {
    return new Utf8StreamDecoder(this, opts);
  }

  tokenToPiece(id: number): string {
    this.checkToken(id);
    return this.tokens[id];
  }

  /** The TokenType of a token. */
  tokenType(id: number): TokenType {
    this.checkToken(id);
    return this.types[id];
  }

  isEog(id: number): boolean {
    return this.eogSet.has(id);
  }

  tokenBytes(id: number): Uint8Array {
    const p = this.piece(id, true);
    return typeof p === 'string' ? utf8.encode(p) : p;
  }

  /** PieceSource: what token `id` prints. */
  piece(id: number, skipSpecial: boolean): string | Uint8Array {
    this.checkToken(id);
    const out = this.output[id];
    if (!skipSpecial && out === '') return this.tokens[id]; // control/unknown/unused shown raw
    return out;
  }

  private checkToken(id: number): void {
    if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
      throw new FuselmError('E_INVALID_ARG', `token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }

  /**
   * Cuts the text at special tokens, llama.cpp's way: one token at a time, longest first, each
   * occurrence inside what is still raw text becomes a token fragment. Empty text gives nothing.
   */
  private splitSpecial(text: string, parseSpecial: boolean): Fragment[] {
    if (text.length === 0) return [];
    let frags: Fragment[] = [{ start: 0, end: text.length }];
    for (const sp of this.specials) {
      if (!sp.always && !parseSpecial) continue;
      if (!text.includes(sp.text)) continue; // the common case: one native scan, no allocation
      const next: Fragment[] = [];
      for (const f of frags) {
        if (typeof f === 'number') {
          next.push(f);
          continue;
        }
        let pos = f.start;
        for (;;) {
          const at = text.indexOf(sp.text, pos);
          if (at < 0 || at + sp.text.length > f.end) break;
          if (at > pos) next.push({ start: pos, end: at });
          next.push(sp.id);
          pos = at + sp.text.length;
        }
        if (pos < f.end) next.push({ start: pos, end: f.end });
      }
      frags = next;
    }
    return frags;
  }

  private ensureScratch(n: number): void {
    if (this.symStart.length >= n) return;
    const cap = Math.max(n, 2 * this.symStart.length, 64);
    this.symStart = new Int32Array(cap);
    this.symLen = new Int32Array(cap);
    this.symPrev = new Int32Array(cap);
    this.symNext = new Int32Array(cap);
  }

  /** Queues the merge of adjacent symbols l and r if their concatenation is a piece. */
  private tryMerge(s: string, l: number, r: number): void {
    const len = this.symLen[l] + this.symLen[r];
    if (len > this.maxPieceLen) return;
    const start = this.symStart[l];
    const id = this.pieceToId.get(s.slice(start, start + len));
    if (id !== undefined) this.queue.push(-this.scores[id], l, r, len); // highest score first
  }

  /** BPE over one normalized span (already '▁'-escaped and prefixed). */
  private encodeSpan(s: string, out: number[]): void {
    const n = s.length;
    if (n === 0) return;
    if (this.unigram) return this.unigram.encodeWord(s, out);
    this.ensureScratch(n);
    const start = this.symStart;
    const len = this.symLen;
    const prev = this.symPrev;
    const next = this.symNext;

    // One symbol per code point (a surrogate pair stays together). Symbol indices follow text
    // order, and a merge keeps the left index, so "smaller index" always means "further left".
    let count = 0;
    for (let i = 0; i < n; ) {
      const c = s.charCodeAt(i);
      const w = c >= 0xd800 && c <= 0xdbff && i + 1 < n && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
      start[count] = i;
      len[count] = w;
      prev[count] = count - 1;
      next[count] = count + 1;
      count++;
      i += w;
    }
    next[count - 1] = -1;

    const q = this.queue;
    q.clear();
    for (let i = 0; i + 1 < count; i++) this.tryMerge(s, i, i + 1);
    while (q.size > 0) {
      q.pop();
      const l = q.topPos;
      const r = q.topA;
      // Stale entry: one side has been merged away (length 0) or grew since it was queued. Left
      // and right only ever grow or vanish, so unchanged lengths mean both are still adjacent.
      if (len[l] === 0 || len[r] === 0 || len[l] + len[r] !== q.topB) continue;
      len[l] += len[r];
      len[r] = 0;
      const after = next[r];
      next[l] = after;
      if (after >= 0) prev[after] = l;
      if (prev[l] >= 0) this.tryMerge(s, prev[l], l);
      if (after >= 0) this.tryMerge(s, l, after);
    }

    for (let i = 0; i >= 0; i = next[i]) {
      const id = this.pieceToId.get(s.slice(start[i], start[i] + len[i]));
      if (id !== undefined) out.push(id);
      else this.byteFallback(s.codePointAt(start[i])!, out);
    }
  }

  /** A character outside the vocab: its UTF-8 bytes as byte tokens, else UNK. */
  private byteFallback(cp: number, out: number[]): void {
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // lone surrogate: what TextEncoder would write
    const u = this.utf8Scratch;
    let nb: number;
    if (cp < 0x80) {
      u[0] = cp;
      nb = 1;
    } else if (cp < 0x800) {
      u[0] = 0xc0 | (cp >> 6);
      u[1] = 0x80 | (cp & 0x3f);
      nb = 2;
    } else if (cp < 0x10000) {
      u[0] = 0xe0 | (cp >> 12);
      u[1] = 0x80 | ((cp >> 6) & 0x3f);
      u[2] = 0x80 | (cp & 0x3f);
      nb = 3;
    } else {
      u[0] = 0xf0 | (cp >> 18);
      u[1] = 0x80 | ((cp >> 12) & 0x3f);
      u[2] = 0x80 | ((cp >> 6) & 0x3f);
      u[3] = 0x80 | (cp & 0x3f);
      nb = 4;
    }
    let haveAll = true;
    for (let i = 0; i < nb; i++) if (this.byteToId[u[i]] < 0) haveAll = false;
    if (haveAll) {
      for (let i = 0; i < nb; i++) out.push(this.byteToId[u[i]]);
      return;
    }
    if (this.unk === undefined) {
      const hex = cp.toString(16).toUpperCase().padStart(4, '0');
      throw new FuselmError('E_UNSUPPORTED', `SPM tokenizer: cannot encode U+${hex}: not in the vocab, no byte tokens for it and no unknown token`);
    }
    out.push(this.unk); // one UNK per character, as SentencePiece does
  }
}

const utf8 = new TextEncoder();
