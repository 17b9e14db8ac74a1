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

  /** The replacement of the shortest key that is a prefix of `s` (Hugging Face's transform), if any. */
  #first(s: string): string | undefined {
    const b = utf8.encode(s);
    let r: string | undefined;
    this.#prefixes(b, 0, b.length, (_, v) => ((r = this.#replacement.get(v)), true));
    return r;
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

  /** Hugging Face's normalization, grapheme by grapheme. */
  normalizeGraphemes(text: string): string {
    this.#segmenter ??= new Intl.Segmenter('en', { granularity: 'grapheme' });
    let out = '';
    for (const { segment: g } of this.#segmenter.segment(text)) {
      if (utf8.encode(g).length < GRAPHEME_MAX_BYTES) {
        const r = this.#first(g);
        if (r !== undefined) {
          out += r;
          continue;
        }
      }
      for (const ch of g) out += this.#first(ch) ?? ch;
    }
    return out;
  }
}

/** Bytes of the UTF-8 character starting with byte `lead` (text from a JS string is valid UTF-8). */
function charBytes(lead: number): number {
  return lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}
