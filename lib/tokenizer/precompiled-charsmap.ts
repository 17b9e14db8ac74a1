/**
 * SentencePiece's precompiled_charsmap normalizer (t5-small, mT5, ALBERT, XLM-R... carry it:
 * tokenizer.json `{ type: 'Precompiled', precompiled_charsmap: base64 }`, GGUF
 * `tokenizer.ggml.precompiled_charsmap`). The blob is
 *   u32 LE  trie_size (bytes)
 *   trie    trie_size / 4 units (u32 LE) of a Darts-clone double-array trie over the UTF-8 bytes
 *           of the text prefixes that change, each key's value the offset of its replacement in
 *   normalized  the replacements: NUL-terminated UTF-8 strings, one after another.
 * A unit: bits 0-7 its label (bit 31 too: a value unit never matches a byte), bit 8 "has a
 * leaf", bits 10-30 the offset to its children's block (shifted left 8 more when bit 9 is set);
 * from node p with unit u, the child for byte c is at p ^ offset(u) ^ c, and a node's value
 * (when it has a leaf) in the unit at p ^ offset(u), bits 0-30.
 *
 * Two ways of applying it, as the two libraries do:
 * - normalizeLongest (SentencePiece, llama.cpp's t5 vocabulary: GGUF files): along the text, the
 *   longest key that is a prefix of the rest is replaced; where none is, one character is kept.
 * - normalizeGraphemes (Hugging Face tokenizers: tokenizer.json): per extended grapheme cluster;
 *   one under 6 UTF-8 bytes is replaced whole when any key is a prefix of it (the shortest key's
 *   replacement); otherwise each of its characters is replaced when a key is a prefix of it.
 * parse() checks every node reachable from the root (children blocks and values in range,
 * replacements NUL-terminated UTF-8) so the searches never read outside the blob.
 */
import { FuselmError } from '../errors.js';

const VALUE_MASK = 0x7fffffff;
/** HF: graphemes this long or longer are looked up character by character. */
const GRAPHEME_MAX_BYTES = 6;

const hasLeaf = (u: number) => ((u >>> 8) & 1) === 1;
const label = (u: number) => u & 0x800000ff;
const offsetOf = (u: number) => (u >>> 10) << ((u & (1 << 9)) >>> 6);

const utf8 = new TextEncoder();

export class PrecompiledCharsmap {
  readonly #units: Uint32Array;
  /** Replacement string per value (offset into the normalized block). */
  readonly #replacement = new Map<number, string>();
  #segmenter: Intl.Segmenter | undefined;
  /** Per UTF-16 unit looked up as a grapheme of its own, its replacement (null: kept). */
  readonly #single: (string | null | undefined)[] = [];
  /** #plain's answers per UTF-16 unit: 0 not asked yet, 1 yes, 2 no. */
  readonly #plainCache = new Uint8Array(0x10000);

  private constructor(units: Uint32Array) {
    this.#units = units;
  }

  /** Reads and checks a blob; `where` names it in errors (E_FORMAT naming the field and offset). */
  static parse(blob: Uint8Array, where: string): PrecompiledCharsmap {
    const bad = (field: string, why: string): never => {
      throw new FuselmError('E_FORMAT', `${where}: precompiled_charsmap ${field}: ${why}`);
    };
    if (blob.length < 4) bad('trie_size', `expected a 4-byte size, got ${blob.length} bytes`);
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = dv.getUint32(0, true);
    if (trieSize === 0 || trieSize % 4 !== 0) bad('trie_size', `expected a positive multiple of 4, got ${trieSize}`);
    if (4 + trieSize > blob.length) bad('trie_size', `${trieSize} bytes of trie, but only ${blob.length - 4} follow the size`);
    const units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < units.length; i++) units[i] = dv.getUint32(4 + 4 * i, true);
    const normalized = blob.subarray(4 + trieSize);
    const cm = new PrecompiledCharsmap(units);
    const text = new TextDecoder('utf-8', { fatal: true });
    // every node reachable from the root: its children's block in range, its value a string
    const seen = new Uint8Array(units.length);
    const stack = [0];
    seen[0] = 1;
    while (stack.length) {
      const p = stack.pop()!;
      const base = p ^ offsetOf(units[p]);
      if ((base | 0xff) >= units.length) bad('trie', `node ${p} (byte ${4 + 4 * p}) points at unit ${base}, past the ${units.length} units`);
      if (p !== 0 && hasLeaf(units[p])) {
        const v = units[base] & VALUE_MASK;
        if (!cm.#replacement.has(v)) {
          if (v >= normalized.length) bad('normalized', `node ${p} (byte ${4 + 4 * p}) has value ${v}, past the ${normalized.length} bytes of replacements`);
          const end = normalized.indexOf(0, v);
          if (end < 0) bad('normalized', `the replacement at ${v} has no terminating NUL`);
          try {
            cm.#replacement.set(v, text.decode(normalized.subarray(v, end)));
          } catch {
            bad('normalized', `the replacement at ${v} is not UTF-8`);
          }
        }
      }
      for (let c = 1; c < 256; c++) {
        const q = base ^ c;
        if (!seen[q] && label(units[q]) === c) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    return cm;
  }

  /** Calls match(length, value) for each key that is a prefix of bytes[from, end), shortest first (stops when it returns true). */
  #prefixes(bytes: Uint8Array, from: number, end: number, match: (length: number, value: number) => boolean | void): void {
    const u = this.#units;
    let p = offsetOf(u[0]);
    for (let i = from; i < end; i++) {
      const c = bytes[i];
      if (c === 0) return;
      p ^= c;
      const unit = u[p];
      if (label(unit) !== c) return;
      p ^= offsetOf(unit);
      if (hasLeaf(unit) && match(i - from + 1, u[p] & VALUE_MASK)) return;
    }
  }

  /**
   * The replacement of the shortest key that is a prefix of the UTF-8 bytes of text[from, to)
   * (Hugging Face's transform), if any; the bytes made as the walk goes (a lone surrogate as
   * U+FFFD's, as TextEncoder and Rust's strings have it).
   */
  #first(text: string, from: number, to: number): string | undefined {
    const u = this.#units;
    let p = offsetOf(u[0]);
    const step = (c: number): number => {
      // 1: a key ends here (p at its value), 0: go on, -1: no key goes on
      if (c === 0) return -1;
      p ^= c;
      const unit = u[p];
      if (label(unit) !== c) return -1;
      p ^= offsetOf(unit);
      return hasLeaf(unit) ? 1 : 0;
    };
    for (let i = from; i < to; i++) {
      let cp = text.charCodeAt(i);
      if (cp >= 0xd800 && cp < 0xe000) {
        const lo = i + 1 < to ? text.charCodeAt(i + 1) : 0;
        if (cp < 0xdc00 && lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          i++;
        } else cp = 0xfffd;
      }
      const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      for (let k = n - 1; k >= 0; k--) {
        const byte = n === 1 ? cp : k === n - 1 ? (0xf00 >>> n) & 0xff | (cp >>> (6 * k)) : 0x80 | ((cp >>> (6 * k)) & 0x3f);
        const r = step(byte);
        if (r < 0) return undefined;
        if (r > 0) return this.#replacement.get(u[p] & VALUE_MASK);
      }
    }
    return undefined;
  }

  /** SentencePiece's normalization: the longest key at each point replaced, other characters kept. */
  normalizeLongest(text: string): string {
    const b = utf8.encode(text);
    const dec = new TextDecoder();
    let out = '';
    let kept = 0; // bytes from here on are kept as they are, so far
    for (let i = 0; i < b.length; ) {
      let len = 0, value = 0;
      this.#prefixes(b, i, b.length, (l, v) => void ([len, value] = [l, v]));
      if (len === 0) {
        i += charBytes(b[i]);
        continue;
      }
      out += dec.decode(b.subarray(kept, i)) + this.#replacement.get(value)!;
      i += len;
      kept = i;
    }
    return kept === 0 ? text : out + dec.decode(b.subarray(kept));
  }

  /**
   * Hugging Face's normalization, grapheme by grapheme. A character that breaks graphemes on
   * both sides whatever its neighbours (#plain), between two such, is a grapheme of its own: its
   * replacement is looked up once per character; only the runs between such go through
   * Intl.Segmenter (slow per segment).
   */
  normalizeGraphemes(text: string): string {
    this.#segmenter ??= new Intl.Segmenter('en', { granularity: 'grapheme' });
    const n = text.length;
    // prev, cur, next: whether characters i - 1, i, i + 1 are plain (the text's ends count as plain)
    const plainAt = (i: number) => i < 0 || i >= n || this.#plain(text.charCodeAt(i));
    let out = '';
    let kept = 0; // text[kept, i) is unchanged so far
    const replace = (from: number, to: number, r: string) => {
      out += text.slice(kept, from) + r;
      kept = to;
    };
    let prev = true, cur = plainAt(0), next = plainAt(1);
    let runFrom = -1; // start of the run of characters not alone, being gathered
    for (let i = 0; i < n; i++, prev = cur, cur = next, next = plainAt(i + 1)) {
      if (!(prev && cur && next)) {
        if (runFrom < 0) runFrom = i;
        continue;
      }
      if (runFrom >= 0) {
        this.#segmented(text, runFrom, i, replace);
        runFrom = -1;
      }
      const c = text.charCodeAt(i);
      let r = this.#single[c];
      if (r === undefined) r = this.#single[c] = this.#first(text, i, i + 1) ?? null;
      if (r !== null) replace(i, i + 1, r);
    }
    if (runFrom >= 0) this.#segmented(text, runFrom, n, replace);
    return kept === 0 ? text : out + text.slice(kept);
  }

  /** text[from, to), whose ends are grapheme breaks, cut into graphemes by Intl.Segmenter. */
  #segmented(text: string, from: number, to: number, replace: (from: number, to: number, r: string) => void): void {
    for (const { segment, index } of this.#segmenter!.segment(text.slice(from, to))) this.#grapheme(text, from + index, from + index + segment.length, replace);
  }

  /**
   * Whether UTF-16 unit c is a character with a grapheme break before and after it between
   * any two such characters: not CR (CR LF), no surrogate (astral characters, regional
   * indicators), no Hangul jamo or syllable (they join each other), and one the segmenter
   * splits from 'a' on both sides (so not Extend, SpacingMark, ZWJ or Prepend). Asked of the
   * segmenter once per character.
   */
  #plain(c: number): boolean {
    if (c < 0x80) return c !== 13;
    if ((c >= 0xd800 && c < 0xe000) || (c >= 0x1100 && c < 0x1200) || (c >= 0xa960 && c < 0xa980) || (c >= 0xac00 && c < 0xd800)) return false;
    let v = this.#plainCache[c];
    if (v === 0) {
      let parts = 0;
      for (const _ of this.#segmenter!.segment(`a${String.fromCharCode(c)}a`)) parts++;
      this.#plainCache[c] = v = parts === 3 ? 1 : 2;
    }
    return v === 1;
  }

  /** One grapheme text[from, to): replaced whole when under 6 UTF-8 bytes and a key is a prefix of it, else character by character. */
  #grapheme(text: string, from: number, to: number, replace: (from: number, to: number, r: string) => void): void {
    if (utf8Length(text, from, to) < GRAPHEME_MAX_BYTES) {
      const r = this.#first(text, from, to);
      if (r !== undefined) return replace(from, to, r);
    }
    for (let i = from; i < to; ) {
      const w = text.codePointAt(i)! > 0xffff ? 2 : 1;
      const r = this.#first(text, i, i + w);
      if (r !== undefined) replace(i, i + w, r);
      i += w;
    }
  }
}

/** Bytes of text[from, to) in UTF-8 (a lone surrogate: U+FFFD's 3). */
function utf8Length(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < to && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) (n += 4), i++;
    else n += 3;
  }
  return n;
}

/** Bytes of the UTF-8 character starting with byte `lead` (text from a JS string is valid UTF-8). */
function charBytes(lead: number): number {
  return lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}
