/**
 * The Hugging Face tokenizer pipeline, shared by tokenizer.json files and by GGUF "gpt2" / "bert"
 * vocabs:
 *
 *   text ─(lone surrogates → U+FFFD)─▶ added tokens split out (non-normalized ones, on raw text)
 *        ─▶ per remaining span: normalizer ─▶ added tokens with normalized: true ─▶ pre-tokenizer
 *        ─▶ model (BPE / WordPiece) per piece ─▶ post-processor template with addSpecial.
 *
 * Added tokens follow HF: leftmost-longest match, lstrip/rstrip absorb the whitespace beside the
 * token, single_word needs word boundaries. Non-special added tokens are always matched; special
 * ones only with parseSpecial (HF always matches them; transformers' split_special_tokens=True is
 * our default).
 *
 * Decoding runs the decoder chain per token (ByteLevel → raw bytes, ByteFallback <0xNN> → a byte,
 * Replace, Metaspace, WordPiece with its per-token cleanup, Strip of the fused output's leading
 * space), so the same pieces drive decode() and the UTF-8-safe stream decoder.
 */
import { FuselmError } from '../errors.js';
import { byteLevelTokenBytes } from './bpe.js';
import type { Normalizer } from './normalize.js';
import { checkEncodeArgs, toWellFormed, type PreTokenizer } from './pretokenize.js';
import { decodeWith, Utf8StreamDecoder, type PieceSource } from './stream-decoder.js';
import type { DecodeOptions, EncodeOptions, StreamDecoder, StreamDecoderOptions, Tokenizer } from './tokenizer.js';

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  singleWord?: boolean;
  /** Matched in the normalized text rather than the raw one. */
  normalized?: boolean;
}

/** Added tokens by their first UTF-16 unit, and a flag per unit that starts one (a fast skip). */
interface AddedTable {
  byFirst: Map<number, AddedToken[]>;
  first: Uint8Array;
}

function newAddedTable(): AddedTable {
  return { byFirst: new Map(), first: new Uint8Array(65536) };
}

export interface WordModel {
  encodeWord(word: string, out: number[]): void;
  /** encodeWord(text.slice(a, b), out), where the model can do it without the slice. */
  encodeRange?(text: string, a: number, b: number, out: number[]): void;
}

export type DecoderStep =
  | { type: 'byteLevel' }
  | { type: 'replace'; pattern: string; content: string }
  | { type: 'byteFallback' }
  | { type: 'fuse' }
  | { type: 'strip'; content: string; start: number; stop: number }
  | { type: 'metaspace'; replacement: string; prependFirst: boolean }
  | { type: 'wordpiece'; prefix: string; cleanup: boolean }
  | { type: 'bpeSuffix'; suffix: string };

/** A post-processor template: token ids, with `null` where the encoded text goes. */
export type Template = Array<number[] | null>;

export interface PipelineSpec {
  /** Token strings by id (model vocab and added tokens); holes allowed. */
  tokens: (string | undefined)[];
  model: WordModel;
  normalizer?: Normalizer;
  preTokenizer?: PreTokenizer;
  added: AddedToken[];
  template?: Template;
  decoder: DecoderStep[];
  bos?: number;
  eos?: number;
  eot?: number;
  unk?: number;
  pad?: number;
  eog?: Iterable<number>;
  /** Used when there is no template: add BOS / EOS around the text with addSpecial. */
  addBos?: boolean;
  addEos?: boolean;
  chatTemplate?: string;
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** HF's WordPiece decoder cleanup, applied to each token. */
function cleanup(s: string): string {
  return s
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" do not", " don't")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

function isWordChar(c: string | undefined): boolean {
  return c !== undefined && /[\p{L}\p{N}_]/u.test(c);
}

export class PipelineTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly eot: number | undefined;
  readonly unk: number | undefined;
  readonly pad: number | undefined;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly eogIds: readonly number[];
  /** The chat template from tokenizer_config.json (a Jinja string), when there is one. */
  readonly chatTemplate: string | undefined;

  private readonly tokens: (string | undefined)[];
  private readonly model: WordModel;
  private readonly normalizer: Normalizer | undefined;
  private readonly preTokenizer: PreTokenizer | undefined;
  private readonly template: Template | undefined;
  private readonly decoder: DecoderStep[];
  private readonly eogSet: Set<number>;
  private readonly specialIds = new Set<number>();
  /** Added tokens by first UTF-16 unit, longest first: [raw-matched, normalized-matched]. */
  private readonly rawAdded = newAddedTable();
  private readonly normAdded = newAddedTable();
  /** Decoder output per id for non-first / first positions, computed on demand. */
  private readonly pieceCache: (string | Uint8Array | undefined)[];
  private readonly firstPieceCache: (string | Uint8Array | undefined)[];
  private readonly stripLeading: boolean;
  private readonly firstDependent: boolean;

  constructor(spec: PipelineSpec) {
    this.tokens = spec.tokens;
    this.vocabSize = spec.tokens.length;
    const check = (name: string, id: number | undefined) => {
      if (id === undefined) return undefined;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new FuselmError('E_INVALID_ARG', `tokenizer: ${name} token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
      }
      return id;
    };
    this.bos = check('bos', spec.bos);
    this.eos = check('eos', spec.eos);
    this.eot = check('eot', spec.eot);
    this.unk = check('unk', spec.unk);
    this.pad = check('pad', spec.pad);
    this.model = spec.model;
    this.normalizer = spec.normalizer;
    this.preTokenizer = spec.preTokenizer;
    this.template = spec.template;
    this.decoder = spec.decoder;
    this.chatTemplate = spec.chatTemplate;
    if (spec.template) {
      const a = spec.template.indexOf(null);
      this.addBos = spec.template.slice(0, a).some((x) => x && x.length > 0);
      this.addEos = spec.template.slice(a + 1).some((x) => x && x.length > 0);
    } else {
      this.addBos = (spec.addBos ?? false) && this.bos !== undefined;
      this.addEos = (spec.addEos ?? false) && this.eos !== undefined;
    }
    const eog = spec.eog ?? [this.eos, this.eot].filter((x): x is number => x !== undefined);
    this.eogSet = new Set([...eog].map((id) => check('eog', id)!));
    this.eogIds = Object.freeze([...this.eogSet].sort((a, b) => a - b));
    for (const t of spec.added) {
      check('added', t.id);
      if (t.special) this.specialIds.add(t.id);
      if (t.content.length === 0) continue;
      const table = t.normalized && spec.normalizer ? this.normAdded : this.rawAdded;
      const k = t.content.charCodeAt(0);
      let list = table.byFirst.get(k);
      if (!list) table.byFirst.set(k, (list = []));
      list.push(t);
      table.first[k] = 1;
    }
    for (const m of [this.rawAdded, this.normAdded]) for (const l of m.byFirst.values()) l.sort((a, b) => b.content.length - a.content.length);
    this.pieceCache = new Array(this.vocabSize);
    this.firstPieceCache = new Array(this.vocabSize);
    // Strip of the leading space after Fuse (Llama-2) acts on the whole output.
    const fuseAt = this.decoder.findIndex((d) => d.type === 'fuse');
    this.stripLeading = this.decoder.some((d, i) => d.type === 'strip' && fuseAt >= 0 && i > fuseAt && d.start > 0 && d.content === ' ');
    this.firstDependent = this.decoder.some((d) => d.type === 'metaspace' || d.type === 'wordpiece');
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    checkEncodeArgs(text, opts);
    const body: number[] = [];
    this.encodeBody(toWellFormed(text), opts.parseSpecial ?? false, body);
    if (!opts.addSpecial) return body;
    if (this.template) {
      const out: number[] = [];
      for (const part of this.template) {
        if (part === null) for (const id of body) out.push(id);
        else for (const id of part) out.push(id);
      }
      return out;
    }
    if (this.addBos) body.unshift(this.bos!);
    if (this.addEos) body.push(this.eos!);
    return body;
  }

  private encodeBody(text: string, parseSpecial: boolean, out: number[]): void {
    this.splitAdded(text, 0, text.length, this.rawAdded, parseSpecial, out, (start, end) => {
      let s = text.slice(start, end);
      if (this.normalizer) s = this.normalizer(s);
      if (s.length === 0) return;
      const first = start === 0;
      this.splitAdded(s, 0, s.length, this.normAdded, parseSpecial, out, (a, b) => this.encodeSpan(s.slice(a, b), first && a === 0, out));
    });
  }

  private encodeSpan(s: string, first: boolean, out: number[]): void {
    if (!this.preTokenizer) {
      this.model.encodeWord(s, out);
      return;
    }
    const model = this.model;
    if (this.preTokenizer.ranges && model.encodeRange) {
      this.preTokenizer.ranges(s, (a, b) => model.encodeRange!(s, a, b, out));
      return;
    }
    const pieces: string[] = [];
    this.preTokenizer(s, pieces, first);
    for (const p of pieces) model.encodeWord(p, out);
  }

  /**
   * Finds added tokens in text[start, end) (leftmost, longest), pushing their ids and handing the
   * text between them to `span`.
   */
  private splitAdded(
    text: string,
    start: number,
    end: number,
    table: AddedTable,
    parseSpecial: boolean,
    out: number[],
    span: (a: number, b: number) => void,
  ): void {
    let from = start;
    if (table.byFirst.size > 0) {
      const firstChars = table.first;
      for (let i = start; i < end; i++) {
        if (firstChars[text.charCodeAt(i)] === 0) continue;
        const list = table.byFirst.get(text.charCodeAt(i))!;
        let hit: AddedToken | undefined;
        for (const t of list) {
          if (t.special && !parseSpecial) continue;
          if (i + t.content.length > end || !text.startsWith(t.content, i)) continue;
          if (t.singleWord && (isWordChar(text[i - 1]) || isWordChar(text[i + t.content.length]))) continue;
          hit = t;
          break;
        }
        if (!hit) continue;
        let s = i;
        let e = i + hit.content.length;
        if (hit.lstrip) while (s > from && /\s/u.test(text[s - 1])) s--;
        if (hit.rstrip) while (e < end && /\s/u.test(text[e])) e++;
        if (s > from) span(from, s);
        out.push(hit.id);
        from = e;
        i = e - 1;
      }
    }
    if (from < end) span(from, end);
  }

  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string {
    return decodeWith(this.pieceSource(opts), ids, opts);
  }

  createStreamDecoder(opts?: StreamDecoderOptions): StreamDecoder {
    return new Utf8StreamDecoder(this.pieceSource(opts), opts);
  }

  /** A PieceSource that knows whether a token is the first printed one (Metaspace, WordPiece). */
  private pieceSource(opts?: DecodeOptions): PieceSource {
    let first = this.firstDependent && opts?.stripLeadingSpace !== false;
    return {
      stripsLeadingSpace: this.stripLeading,
      piece: (id: number, skipSpecial: boolean) => {
        const p = this.piece(id, skipSpecial, first);
        if (p.length > 0) first = false;
        return p;
      },
    };
  }

  /** What token `id` prints at a first / later position. */
  piece(id: number, skipSpecial: boolean, first: boolean): string | Uint8Array {
    this.checkToken(id);
    if (skipSpecial && this.specialIds.has(id)) return '';
    const cache = first ? this.firstPieceCache : this.pieceCache;
    let p = cache[id];
    if (p === undefined) {
      p = this.runDecoder(this.tokens[id] ?? '', first);
      cache[id] = p;
    }
    return p;
  }

  private runDecoder(token: string, first: boolean): string | Uint8Array {
    let cur: string | Uint8Array = token;
    let fused = false;
    for (const d of this.decoder) {
      if (d.type === 'byteLevel') {
        if (typeof cur === 'string') cur = byteLevelTokenBytes(cur);
        continue;
      }
      if (d.type === 'fuse') {
        fused = true;
        continue;
      }
      if (typeof cur !== 'string') continue;
      switch (d.type) {
        case 'replace':
          cur = cur.replaceAll(d.pattern, d.content);
          break;
        case 'byteFallback': {
          const m = BYTE_TOKEN.exec(cur);
          if (m) cur = Uint8Array.of(parseInt(m[1], 16));
          break;
        }
        case 'strip':
          if (!fused) {
            let a = 0;
            let b = cur.length;
            while (a < d.start && a < b && cur[a] === d.content) a++;
            while (cur.length - b < d.stop && b > a && cur[b - 1] === d.content) b--;
            cur = cur.slice(a, b);
          }
          break;
        case 'metaspace':
          cur = cur.replaceAll(d.replacement, ' ');
          if (first && d.prependFirst && cur.startsWith(' ')) cur = cur.slice(1);
          break;
        case 'wordpiece':
          if (!first) cur = cur.startsWith(d.prefix) ? cur.slice(d.prefix.length) : ' ' + cur;
          if (d.cleanup) cur = cleanup(cur);
          break;
        case 'bpeSuffix':
          cur = cur.replaceAll(d.suffix, ' ');
          break;
      }
    }
    return cur;
  }

  tokenToPiece(id: number): string {
    this.checkToken(id);
    return this.tokens[id] ?? '';
  }

  /** The id of a token string (vocab or added), or undefined. */
  tokenToId(token: string): number | undefined {
    const i = this.tokens.indexOf(token);
    return i >= 0 ? i : undefined;
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  tokenBytes(id: number): Uint8Array {
    const p = this.piece(id, true, false);
    return typeof p === 'string' ? utf8.encode(p) : p;
  }

  isEog(id: number): boolean {
    return this.eogSet.has(id);
  }

  private checkToken(id: number): void {
    if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
      throw new FuselmError('E_INVALID_ARG', `token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }
}

const utf8 = new TextEncoder();
