/**
 * Pre-tokenizers: cut normalized text into the pieces ("words") that the model encodes one by one.
 *
 * The regexes are the published ones (GPT-2, Llama-3, Qwen2, and the sets llama.cpp selects by the
 * GGUF key tokenizer.ggml.pre), written for JavaScript's `u` regexes. Hugging Face runs them with
 * Oniguruma, so the translation keeps Oniguruma's meaning:
 *   - `\s` is Unicode White_Space there (it includes U+0085 and not U+FEFF, unlike JS's `\s`), so
 *     it becomes `\p{White_Space}`; `\S` becomes `\P{White_Space}`;
 *   - `(?i:'s|'t|...)` (no inline flags in JS) becomes `(?:'[sS]|'[tT]|...)`;
 *   - `\d` and `\w` become their Unicode forms.
 * All of them are alternations of single-character classes with `+`, `*`, `?` or `{1,3}`, and
 * the only lookahead is the one-character `(?!\S)`, so V8 matches them in time linear in the
 * input (the tests time 1 MB inputs of one repeated character and without spaces).
 *
 * A pre-tokenizer maps one string to a list of pieces; `sequence` chains them as Hugging Face's
 * Sequence does (each step runs on every piece of the previous one).
 */
import { FuselmError, shown } from '../errors.js';

/** Splits `text` into pieces appended to `out`. `first`: the text starts the input (HF Metaspace's
 * prepend_scheme "first" prepends only there). */
export interface PreTokenizer {
  (text: string, out: string[], first: boolean): void;
  /**
   * Where the pieces are exactly consecutive ranges covering the text (a single regex split
   * that keeps matches and gaps, the byte-level case): calls onPiece(start, end) for each, so
   * the model can encode them without the strings being made.
   */
  ranges?: (text: string, onPiece: (start: number, end: number) => void) => void;
}

const WS = '\\p{White_Space}';
const NWS = '\\P{White_Space}';

/** The contractions GPT-2 lists, case-sensitive. */
const CONTRACTIONS = "'s|'t|'re|'ve|'m|'ll|'d";
/** Llama-3 / Qwen2's (?i:'s|'t|'re|'ve|'m|'ll|'d) expanded by hand: ASCII case only (HF does not
 * fold U+017F long s or U+212A Kelvin into these; the differential test checks). */
const CONTRACTIONS_CI = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

/** GPT-2's pattern, as in its encoder.py and in HF's ByteLevel pre-tokenizer. */
export const GPT2_PATTERN = `${CONTRACTIONS}| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|${WS}+(?!${NWS})|${WS}+`;
/** Llama-3's pattern (digits in runs of at most three). */
export const LLAMA3_PATTERN =
  `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${WS}*[\\r\\n]+|${WS}+(?!${NWS})|${WS}+`;
/** Qwen2's pattern: Llama-3's with single digits. */
export const QWEN2_PATTERN =
  `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${WS}*[\\r\\n]+|${WS}+(?!${NWS})|${WS}+`;
/** GPT-4o / o200k-style pattern (Tekken-like casing split plus trailing contractions). */
const O200K_PATTERN = [
  `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+${CONTRACTIONS_CI}?`,
  `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*${CONTRACTIONS_CI}?`,
  `\\p{N}{1,3}`,
  ` ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*`,
  `${WS}*[\\r\\n]+`,
  `${WS}+(?!${NWS})`,
  `${WS}+`,
].join('|');
const TEKKEN_PATTERN = [
  `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+`,
  `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*`,
  `\\p{N}`,
  ` ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*`,
  `${WS}*[\\r\\n]+`,
  `${WS}+(?!${NWS})`,
  `${WS}+`,
].join('|');
/** llama.cpp's GPT-2 form (without the trailing `\s+`; text no regex matches stays a piece of its own, which gives the same pieces). */
const GPT2_LLAMACPP = `${CONTRACTIONS}| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|${WS}+(?!${NWS})`;
const CJK_RUN = '[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+';
const DEEPSEEK_LLM_LETTERS =
  '\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\u{10400}-\u{1044f}\u{104b0}-\u{104d3}\u{104d8}-\u{104fb}\u{10c80}-\u{10cb2}\u{10cc0}-\u{10cf2}\u{118a0}-\u{118df}\u{1e900}-\u{1e943}]+';

/**
 * The regex sets llama.cpp applies for each tokenizer.ggml.pre value, in Oniguruma syntax as
 * published (translated by onigToJs). Each regex splits every piece the previous one left,
 * keeping both the matches and the text between them.
 */
const GPT2_SET = [GPT2_LLAMACPP];
const LLAMA3_SET = [LLAMA3_PATTERN];
const QWEN2_SET = [QWEN2_PATTERN];
const STARCODER_SET = ['\\p{N}', GPT2_LLAMACPP];
const FALCON_SET = ['[\\p{P}\\$\\+<=>\\^~\\|`]+', GPT2_LLAMACPP, '[0-9][0-9][0-9]'];
const DEFAULT_SET = ['[\\p{P}\\$\\+<=>\\^~\\|]+', GPT2_LLAMACPP, '\\p{N}+', '[0-9][0-9][0-9]'];
const BLOOM_SET = [' ?[^(\\s|.,!?…。，、।۔،)]+'];
const GGUF_PRE: Record<string, string[]> = {
  default: DEFAULT_SET,
  'gpt-2': GPT2_SET,
  mpt: GPT2_SET,
  olmo: GPT2_SET,
  jais: GPT2_SET,
  trillion: GPT2_SET,
  'llama-bpe': LLAMA3_SET,
  llama3: LLAMA3_SET,
  'falcon3': LLAMA3_SET,
  'falcon-h1': LLAMA3_SET,
  pixtral: LLAMA3_SET,
  'midm-2.0': LLAMA3_SET,
  'lfm2': LLAMA3_SET,
  dbrx: LLAMA3_SET,
  smaug: LLAMA3_SET,
  'smaug-bpe': LLAMA3_SET,
  'chatglm-bpe': LLAMA3_SET,
  glm4: LLAMA3_SET,
  qwen2: QWEN2_SET,
  'deepseek-r1-qwen': QWEN2_SET,
  stablelm2: QWEN2_SET,
  hunyuan: QWEN2_SET,
  'hunyuan-dense': QWEN2_SET,
  'megrez': QWEN2_SET,
  'deepseek-llm': ['[\\r\\n]', DEEPSEEK_LLM_LETTERS, '\\s?[!-/:-~！-／：-～‘-‟　-。]+',
    // llama.cpp's `\s+$`, with a lookbehind so that a whitespace run not at the end is rejected
    // once rather than from each of its positions (same matches, linear time).
    '(?<!\\s)\\s+$', CJK_RUN, '\\p{N}+'],
  'deepseek-coder': ['[\\r\\n]', '\\s?\\p{L}+', '\\s?\\p{P}+', CJK_RUN, '\\p{N}'],
  'deepseek-v3': [
    '\\p{N}{1,3}',
    '[一-龥\u3040-ゟ゠-ヿ]+',
    `[!"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_\`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  ],
  falcon: FALCON_SET,
  starcoder: STARCODER_SET,
  refact: STARCODER_SET,
  'command-r': STARCODER_SET,
  smollm: STARCODER_SET,
  codeshell: STARCODER_SET,
  exaone: STARCODER_SET,
  minerva: STARCODER_SET,
  poro: BLOOM_SET,
  bloom: BLOOM_SET,
  'gpt3-finnish': BLOOM_SET,
  viking: [' ?[^(\\s|.,!?…。，、।۔،)]+', '\\p{N}'],
  tekken: [TEKKEN_PATTERN],
  'gpt-4o': [O200K_PATTERN],
  'llama4': [O200K_PATTERN],
  'seed-coder': [
    `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^${WS}\\p{L}\\p{N}\\r\\n]+|${WS}*[\\r\\n]+|${WS}+(?!${NWS})|${WS}+`,
  ],
  bailingmoe: [
    `'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${WS}*[\\r\\n]+|${WS}+(?!${NWS})|${WS}+`,
  ],
};

/** The tokenizer.ggml.pre values this module maps to regex sets. */
export const GGUF_PRE_NAMES: readonly string[] = Object.keys(GGUF_PRE);

/** The pre-tokenizer llama.cpp uses for a GGUF `tokenizer.ggml.pre` value (regex splits only; the
 * byte-level step is the model's). Unknown names throw E_UNSUPPORTED naming the value. */
export function ggufPreTokenizer(pre: string): PreTokenizer {
  const set = Object.prototype.hasOwnProperty.call(GGUF_PRE, pre) ? GGUF_PRE[pre] : undefined;
  if (!set) {
    throw new FuselmError('E_UNSUPPORTED', `pre-tokenizer "${pre}" (tokenizer.ggml.pre) is not supported; known: ${GGUF_PRE_NAMES.join(', ')}`);
  }
  return sequence(set.map((p) => regexSplit(compileOnig(p), 'isolated', false)));
}

/**
 * Translates an Oniguruma pattern (as in tokenizer.json Split regexes and llama.cpp's lists) into
 * a JavaScript `u` regex source: `\s`/`\S`/`\d`/`\w` to their Unicode meaning, `(?i:...)` groups
 * expanded into case classes. Throws E_UNSUPPORTED for constructs JS can't express.
 */
export function onigToJs(pattern: string): string {
  let out = '';
  let inClass = false;
  /** Depth of (?i: groups currently open, and the paren depth where each started. */
  const ciStack: number[] = [];
  let depth = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const d = pattern[i + 1];
      i++;
      if (d === undefined) throw new FuselmError('E_UNSUPPORTED', `regex ${shown(pattern)}: ends with a backslash`);
      switch (d) {
        case 's': out += inClass ? WS : `[${WS}]`; break;
        case 'S': out += inClass ? NWS : `[${NWS}]`; break;
        case 'd': out += '\\p{Nd}'; break;
        case 'D': out += '\\P{Nd}'; break;
        case 'w': out += inClass ? '\\p{L}\\p{M}\\p{Nd}\\p{Pc}' : '[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]'; break;
        case 'W':
          if (inClass) throw new FuselmError('E_UNSUPPORTED', `regex ${shown(pattern)}: \\W inside a class`);
          out += '[^\\p{L}\\p{M}\\p{Nd}\\p{Pc}]';
          break;
        case 'p': case 'P': {
          // \p{...} passes through; Oniguruma's \p{^X} negation becomes \P{X}.
          const end = pattern.indexOf('}', i);
          let body = pattern.slice(i + 2, end);
          let kind = d;
          if (body.startsWith('^')) { body = body.slice(1); kind = d === 'p' ? 'P' : 'p'; }
          out += `\\${kind}{${body}}`;
          i = end;
          break;
        }
        default:
          if (/[A-Za-z]/.test(d) && !'nrtfvxuAzbB'.includes(d)) {
            throw new FuselmError('E_UNSUPPORTED', `regex ${shown(pattern)}: escape \\${d} is not supported`);
          }
          if (d === 'A') out += '^';
          else if (d === 'z') out += '$';
          else out += '\\' + d;
      }
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      if (ciStack.length > 0 && /[A-Za-z]/.test(c)) {
        out += c.toLowerCase() + c.toUpperCase();
        continue;
      }
      out += c === '[' ? '\\[' : c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (pattern[i + 1] === '^') { out += '^'; i++; }
      if (pattern[i + 1] === ']') { out += '\\]'; i++; }
      continue;
    }
    if (c === '(') {
      depth++;
      if (pattern.startsWith('(?i:', i)) {
        ciStack.push(depth);
        out += '(?:';
        i += 3;
        continue;
      }
      if (pattern.startsWith('(?', i) && !/^\(\?(?::|=|!|<=|<!)/.test(pattern.slice(i, i + 4))) {
        throw new FuselmError('E_UNSUPPORTED', `regex ${shown(pattern)}: group syntax at ${i} is not supported`);
      }
      out += c;
      continue;
    }
    if (c === ')') {
      if (ciStack[ciStack.length - 1] === depth) ciStack.pop();
      depth--;
      out += c;
      continue;
    }
    if (ciStack.length > 0 && /[A-Za-z]/.test(c)) {
      out += `[${c.toLowerCase()}${c.toUpperCase()}]`;
      continue;
    }
    out += c;
  }
  return out;
}

/**
 * Refuses regex shapes that backtrack catastrophically in a backtracking engine (V8's, as
 * Oniguruma's): a group repeated without bound (`*`, `+`, `{n,}`, `{n,m}` with m > 1) that
 * holds an alternation or a quantifier of its own, as `(a|aa)+$` or `(a+)+b`, which take time
 * exponential in the input's length on a text that almost matches. The published pre-tokenizer
 * patterns repeat only character classes, so they pass. (A linear-time engine such as RE2 is
 * not an option: those patterns need lookarounds, which RE2 lacks.) E_UNSUPPORTED naming the
 * field and the pattern.
 */
export function vetRegex(pattern: string, where = 'regex'): void {
  interface Group { alt: boolean; quant: boolean }
  const stack: Group[] = [{ alt: false, quant: false }];
  /** The group just closed (the atom a quantifier would apply to), else undefined. */
  let closed: Group | undefined;
  const refuse = (i: number) => {
    throw new FuselmError(
      'E_UNSUPPORTED',
      `${where}: regex ${JSON.stringify(pattern.length > 200 ? pattern.slice(0, 200) + '…' : pattern)}: the group repeated at ${i} holds an alternation or a quantifier (catastrophic backtracking)`,
    );
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    // a quantifier: what it repeats, and whether without bound
    let unbounded: boolean | undefined;
    let len = 1;
    if (c === '*' || c === '+') unbounded = true;
    else if (c === '?') unbounded = false;
    else if (c === '{') {
      const m = /^\{(\d*)(,?)(\d*)\}/.exec(pattern.slice(i));
      if (m) {
        unbounded = m[2] === ',' ? m[3] === '' || Number(m[3]) > 1 : Number(m[1]) > 1;
        len = m[0].length;
      }
    }
    if (unbounded !== undefined) {
      if (closed && unbounded && (closed.alt || closed.quant)) refuse(i);
      stack[stack.length - 1].quant = true;
      i += len - 1;
      // a lazy or possessive mark belongs to this quantifier
      if (pattern[i + 1] === '?' || pattern[i + 1] === '+') i++;
      closed = undefined;
      continue;
    }
    closed = undefined;
    if (c === '\\') {
      if (pattern[i + 1] === 'p' || pattern[i + 1] === 'P') {
        const end = pattern.indexOf('}', i);
        i = end < 0 ? pattern.length : end;
      } else i++;
      continue;
    }
    if (c === '[') {
      // skip the class (escapes, nested classes)
      let depth = 0;
      for (; i < pattern.length; i++) {
        if (pattern[i] === '\\') i++;
        else if (pattern[i] === '[') depth++;
        else if (pattern[i] === ']' && --depth === 0) break;
      }
      continue;
    }
    if (c === '(') {
      stack.push({ alt: false, quant: false });
      // the group's kind ((?:, (?=, (?<!, (?i:, (?<name>) is not a quantifier
      const kind = /^\(\?(?:[:=!]|<[=!]|<[A-Za-z_]\w*>|[a-zA-Z-]+:)/.exec(pattern.slice(i, i + 40));
      if (kind) i += kind[0].length - 1;
    }
    else if (c === ')' && stack.length > 1) {
      const g = stack.pop()!;
      const parent = stack[stack.length - 1];
      parent.alt ||= g.alt;
      parent.quant ||= g.quant;
      closed = g;
    } else if (c === '|') stack[stack.length - 1].alt = true;
  }
}

/** A global `u` RegExp for an Oniguruma pattern; `where` names the field it comes from in messages. */
export function compileOnig(pattern: string, where = 'regex'): RegExp {
  vetRegex(pattern, where);
  const src = onigToJs(pattern);
  try {
    return new RegExp(src, 'gu');
  } catch (e) {
    throw new FuselmError('E_UNSUPPORTED', `${where}: regex ${shown(pattern)} does not translate to JavaScript: ${(e as Error).message}`);
  }
}

/** Hugging Face's SplitDelimiterBehavior. */
export type SplitBehavior = 'removed' | 'isolated' | 'merged_with_previous' | 'merged_with_next' | 'contiguous';

/**
 * Splits at the matches of `re` (a global regex) with Hugging Face's Split semantics; `invert`
 * makes the matches the pieces' content and the gaps the delimiters.
 */
export function regexSplit(re: RegExp, behavior: SplitBehavior, invert: boolean): PreTokenizer {
  if (!re.global) throw new Error('regexSplit needs a global regex');
  const sticky = new RegExp(re.source, re.flags.replace('g', '') + 'y');
  if (behavior === 'isolated') {
    // Matches and the gaps between them are all pieces (the byte-level pre-tokenizers' case,
    // the hot path of encoding): emit them directly.
    const ranges = (text: string, onPiece: (start: number, end: number) => void) => {
      let pos = 0;
      eachMatch(re, sticky, text, (s, e) => {
        if (s > pos) onPiece(pos, s);
        onPiece(s, e);
        pos = e;
      });
      if (pos < text.length) onPiece(pos, text.length);
    };
    const split: PreTokenizer = (text, out) => ranges(text, (s, e) => out.push(text.slice(s, e)));
    split.ranges = ranges;
    return split;
  }
  return (text, out) => {
    // Collect [start, end, isMatch] spans covering the text.
    const spans: number[] = [];
    let pos = 0;
    eachMatch(re, sticky, text, (s, e) => {
      if (s > pos) spans.push(pos, s, invert ? 1 : 0);
      spans.push(s, e, invert ? 0 : 1);
      pos = e;
    });
    if (pos < text.length) spans.push(pos, text.length, invert ? 1 : 0);
    splitSpans(text, spans, behavior, out);
  };
}

/**
 * Calls onMatch(start, end) for each non-empty match of the global regex `re` in `text`.
 * `sticky` is the same pattern with the y flag: where a match starts right at the end of the
 * previous one (nearly always, for the byte-level patterns, whose alternatives cover every
 * character), its test() finds it without building a match array, which spares the garbage
 * collector a million short-lived arrays per megabyte; elsewhere `re` searches.
 */
function eachMatch(re: RegExp, sticky: RegExp, text: string, onMatch: (start: number, end: number) => void): void {
  let pos = 0;
  while (pos < text.length) {
    sticky.lastIndex = pos;
    if (sticky.test(text) && sticky.lastIndex > pos) {
      const e = sticky.lastIndex;
      onMatch(pos, e);
      pos = e;
      continue;
    }
    // the leftmost match at or after pos; an empty one is not a delimiter: step past it
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m === null) return;
    const s = m.index;
    const e = s + m[0].length;
    if (e === s) {
      pos = s + (text.codePointAt(s)! > 0xffff ? 2 : 1);
      continue;
    }
    onMatch(s, e);
    pos = e;
  }
}

/** Applies a split behaviour to [start, end, isDelimiter] triples that cover `text`. */
function splitSpans(text: string, spans: number[], behavior: SplitBehavior, out: string[]): void {
  const n = spans.length / 3;
  switch (behavior) {
    case 'removed':
      for (let k = 0; k < n; k++) if (!spans[3 * k + 2]) out.push(text.slice(spans[3 * k], spans[3 * k + 1]));
      return;
    case 'isolated':
      for (let k = 0; k < n; k++) out.push(text.slice(spans[3 * k], spans[3 * k + 1]));
      return;
    case 'contiguous': {
      let k = 0;
      while (k < n) {
        const start = spans[3 * k];
        const d = spans[3 * k + 2];
        let end = spans[3 * k + 1];
        while (k + 1 < n && spans[3 * (k + 1) + 2] === d && d === 1) end = spans[3 * ++k + 1];
        out.push(text.slice(start, end));
        k++;
      }
      return;
    }
    case 'merged_with_previous': {
      let start = -1;
      for (let k = 0; k < n; k++) {
        if (start < 0) start = spans[3 * k];
        if (spans[3 * k + 2]) {
          out.push(text.slice(start, spans[3 * k + 1]));
          start = -1;
        }
      }
      if (start >= 0) out.push(text.slice(start));
      return;
    }
    case 'merged_with_next': {
      let start = 0;
      for (let k = 0; k < n; k++) {
        if (spans[3 * k + 2] && spans[3 * k] > start) {
          out.push(text.slice(start, spans[3 * k]));
          start = spans[3 * k];
        }
      }
      if (start < text.length) out.push(text.slice(start));
      return;
    }
  }
}

/** Runs pre-tokenizers one after another, each over every piece of the previous one. */
export function sequence(steps: PreTokenizer[]): PreTokenizer {
  if (steps.length === 1) return steps[0];
  return (text, out, first) => {
    let pieces = [text];
    for (const step of steps) {
      const next: string[] = [];
      for (let k = 0; k < pieces.length; k++) step(pieces[k], next, first && k === 0);
      pieces = next;
    }
    for (const p of pieces) out.push(p);
  };
}

/** Unicode White_Space, as Rust's char::is_whitespace. */
export function isWhiteSpace(cp: number): boolean {
  if (cp <= 0x20) return cp === 0x20 || (cp >= 9 && cp <= 13);
  if (cp < 0x85) return false;
  return (
    cp === 0x85 || cp === 0xa0 || cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
    cp === 0x2028 || cp === 0x2029 || cp === 0x202f || cp === 0x205f || cp === 0x3000
  );
}

const PUNCT = /\p{P}/u;
/** BERT's punctuation: ASCII punctuation (symbols included) and Unicode P* categories. */
export function isBertPunctuation(cp: number): boolean {
  if (cp < 0x80) return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
  return PUNCT.test(String.fromCodePoint(cp));
}

/** HF BertPreTokenizer: split on whitespace (dropped) and isolate each punctuation character. */
export const bertPreTokenizer: PreTokenizer = (text, out) => {
  let start = -1;
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    if (isWhiteSpace(cp)) {
      if (start >= 0) out.push(text.slice(start, i));
      start = -1;
    } else if (isBertPunctuation(cp)) {
      if (start >= 0) out.push(text.slice(start, i));
      start = -1;
      out.push(text.slice(i, i + w));
    } else if (start < 0) start = i;
    i += w;
  }
  if (start >= 0) out.push(text.slice(start));
};

/** HF WhitespaceSplit: split on whitespace, dropping it. */
export const whitespaceSplit: PreTokenizer = (text, out) => {
  let start = -1;
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    if (isWhiteSpace(cp)) {
      if (start >= 0) out.push(text.slice(start, i));
      start = -1;
    } else if (start < 0) start = i;
    i += w;
  }
  if (start >= 0) out.push(text.slice(start));
};

/** HF Whitespace pre-tokenizer: `\w+|[^\w\s]+`. */
export const whitespacePreTokenizer: PreTokenizer = regexSplit(compileOnig('\\w+|[^\\w\\s]+'), 'removed', true);

/** HF Punctuation pre-tokenizer. */
export function punctuationPreTokenizer(behavior: SplitBehavior): PreTokenizer {
  return (text, out) => {
    const spans: number[] = [];
    for (let i = 0; i < text.length; ) {
      const cp = text.codePointAt(i)!;
      const w = cp > 0xffff ? 2 : 1;
      spans.push(i, i + w, isBertPunctuation(cp) ? 1 : 0);
      i += w;
    }
    // Merge neighbouring non-delimiters into one span.
    const merged: number[] = [];
    for (let k = 0; k < spans.length; k += 3) {
      const m = merged.length;
      if (m > 0 && merged[m - 1] === 0 && spans[k + 2] === 0) merged[m - 2] = spans[k + 1];
      else merged.push(spans[k], spans[k + 1], spans[k + 2]);
    }
    splitSpans(text, merged, behavior, out);
  };
}

/** HF Digits pre-tokenizer: isolate digit runs (or each digit). */
export function digitsPreTokenizer(individual: boolean): PreTokenizer {
  return regexSplit(individual ? /\p{Nd}/gu : /\p{Nd}+/gu, individual ? 'isolated' : 'contiguous', false);
}

/** HF CharDelimiterSplit. */
export function charDelimiterSplit(delim: string): PreTokenizer {
  return (text, out) => {
    for (const p of text.split(delim)) if (p.length > 0) out.push(p);
  };
}

/**
 * HF Metaspace: spaces become the replacement character, the text gets it prepended
 * (prepend_scheme "always", or "first" for the first piece of the input), and with `split` each
 * replacement character starts a new piece.
 */
export function metaspacePreTokenizer(replacement: string, prepend: 'always' | 'first' | 'never', split: boolean): PreTokenizer {
  // an empty replacement would never advance the split below
  if (typeof replacement !== 'string' || replacement.length === 0) throw new FuselmError('E_INVALID_ARG', 'Metaspace replacement must be a non-empty string');
  return (text, out, first) => {
    let s = text.replaceAll(' ', replacement);
    if ((prepend === 'always' || (prepend === 'first' && first)) && !s.startsWith(replacement)) s = replacement + s;
    if (!split) {
      out.push(s);
      return;
    }
    let start = 0;
    for (let i = s.indexOf(replacement, 1); i >= 0; i = s.indexOf(replacement, i + replacement.length)) {
      if (i > start) out.push(s.slice(start, i));
      start = i;
    }
    if (start < s.length) out.push(s.slice(start));
  };
}

/** encode()'s arguments: a string and an options object (E_INVALID_ARG otherwise). */
export function checkEncodeArgs(text: unknown, opts: unknown): void {
  if (typeof text !== 'string') throw new FuselmError('E_INVALID_ARG', `encode() takes a string, got ${text === null ? 'null' : typeof text}`);
  if (typeof opts !== 'object' || opts === null) throw new FuselmError('E_INVALID_ARG', 'encode() options must be an object');
}

/** Replaces lone surrogates with U+FFFD, as converting a JS string to UTF-8 does. */
export function toWellFormed(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      i++;
      continue;
    }
    // Found one: rebuild from here.
    let out = s.slice(0, i);
    for (let j = i; j < s.length; j++) {
      const d = s.charCodeAt(j);
      if (d >= 0xd800 && d <= 0xdbff && j + 1 < s.length && (s.charCodeAt(j + 1) & 0xfc00) === 0xdc00) {
        out += s[j] + s[j + 1];
        j++;
      } else if (d >= 0xd800 && d <= 0xdfff) out += '\ufffd';
      else out += s[j];
    }
    return out;
  }
  return s;
}
