/**
 * Normalizers: text → text before pre-tokenization, with Hugging Face's semantics (only the
 * output string matters here; offsets are not tracked).
 *
 * - NFC/NFD/NFKC/NFKD (Qwen2 uses NFC);
 * - Lowercase: per character (Rust's char::to_lowercase), so a final Σ is σ, not ς as JS's
 *   String.toLowerCase would give in context;
 * - BERT: drop NUL, U+FFFD and control/format/private-use characters, turn the rest of White_Space
 *   into ' ', surround CJK ideographs with spaces, strip accents (NFD, then drop nonspacing marks;
 *   on by default when lowercasing) and lowercase;
 * - Prepend / Replace (Llama-2's tokenizer.json: prepend '▁', spaces to '▁'), Strip, StripAccents,
 *   Sequence.
 */
import { isWhiteSpace } from './pretokenize.js';

export type Normalizer = (text: string) => string;

const NON_ASCII = /[^\x00-\x7f]/;
const lowerCache = new Map<number, string>();

/** Lowercases character by character, as Rust's char::to_lowercase does. */
export function lowercase(s: string): string {
  if (!NON_ASCII.test(s)) return s.toLowerCase();
  let out = '';
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    if (cp < 0x80) out += cp >= 65 && cp <= 90 ? String.fromCharCode(cp + 32) : s[i];
    else {
      let l = lowerCache.get(cp);
      if (l === undefined) {
        l = String.fromCodePoint(cp).toLowerCase();
        lowerCache.set(cp, l);
      }
      out += l;
    }
    i += w;
  }
  return out;
}

/** What BERT's clean_text drops: control, format, private-use (unassigned characters stay). */
const OTHER = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}]/u;
const MN = /\p{Mn}/gu;
const MARK = /\p{M}/gu;

/** HF's CJK ideograph ranges for BERT's handle_chinese_chars. */
export function isCjkIdeograph(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

export interface BertNormalizerOptions {
  cleanText?: boolean;
  handleChineseChars?: boolean;
  /** Default: the value of lowercase. */
  stripAccents?: boolean | null;
  lowercase?: boolean;
}

export function bertNormalizer(opts: BertNormalizerOptions): Normalizer {
  const clean = opts.cleanText ?? true;
  const cjk = opts.handleChineseChars ?? true;
  const lower = opts.lowercase ?? true;
  const strip = opts.stripAccents ?? lower;
  return (text) => {
    let s = text;
    if (clean || cjk) {
      let out = '';
      let plainFrom = 0; // copy runs of untouched ASCII at once
      for (let i = 0; i < s.length; ) {
        const cp = s.codePointAt(i)!;
        const w = cp > 0xffff ? 2 : 1;
        let rep: string | undefined;
        if (clean) {
          if (cp === 9 || cp === 10 || cp === 13) rep = ' ';
          else if (cp === 0 || cp === 0xfffd || (cp < 0x20 || (cp >= 0x7f && OTHER.test(String.fromCodePoint(cp))))) rep = '';
          else if (isWhiteSpace(cp) && cp !== 0x20) rep = ' ';
        }
        if (rep === undefined && cjk && cp >= 0x3400 && isCjkIdeograph(cp)) rep = ` ${String.fromCodePoint(cp)} `;
        if (rep !== undefined) {
          out += s.slice(plainFrom, i) + rep;
          plainFrom = i + w;
        }
        i += w;
      }
      s = plainFrom === 0 ? s : out + s.slice(plainFrom);
    }
    if (strip && NON_ASCII.test(s)) s = s.normalize('NFD').replace(MN, '');
    if (lower) s = lowercase(s);
    return s;
  };
}

export function sequenceNormalizer(steps: Normalizer[]): Normalizer {
  if (steps.length === 1) return steps[0];
  return (text) => {
    let s = text;
    for (const f of steps) s = f(s);
    return s;
  };
}

export const nfc: Normalizer = (s) => s.normalize('NFC');
export const nfd: Normalizer = (s) => s.normalize('NFD');
export const nfkc: Normalizer = (s) => s.normalize('NFKC');
export const nfkd: Normalizer = (s) => s.normalize('NFKD');
export const stripAccents: Normalizer = (s) => (NON_ASCII.test(s) ? s.replace(MARK, '') : s);

/** HF Prepend: the string goes in front of any non-empty text. */
export function prependNormalizer(prefix: string): Normalizer {
  return (s) => (s.length > 0 ? prefix + s : s);
}

/** HF Replace with a literal pattern, or a regex (a global RegExp). */
export function replaceNormalizer(pattern: string | RegExp, content: string): Normalizer {
  if (typeof pattern === 'string') return (s) => s.replaceAll(pattern, content);
  return (s) => s.replace(pattern, () => content);
}

/** HF Strip: remove White_Space on the left and/or right. */
export function stripNormalizer(left: boolean, right: boolean): Normalizer {
  return (s) => {
    let a = 0;
    let b = s.length;
    if (left) while (a < b && isWhiteSpace(s.codePointAt(a)!)) a++;
    if (right) while (b > a && isWhiteSpace(s.charCodeAt(b - 1))) b--;
    return s.slice(a, b);
  };
}
