/**
 * A JSON Schema `pattern` (ECMAScript regex syntax, a subset) as a GBNF expression over the
 * characters of a JSON string's content. Supported: literals, `.`, classes with ranges and
 * negation, \d \w \s \D \W \S, escapes of punctuation, groups ( ) (?: ), alternation and the
 * quantifiers * + ? {m} {m,} {m,n} (lazy forms match the same strings). A pattern is unanchored,
 * as JSON Schema says, unless it starts with ^ / ends with $. The output never needs JSON
 * escaping: `"`, `\` and control characters are left out of every class and `.`, and a pattern
 * that requires one is E_UNSUPPORTED. Backreferences, lookaround and \b are E_UNSUPPORTED.
 */
import { FuselmError } from '../errors.js';

/** Characters a JSON string can hold without an escape: not '"', '\\', U+0000..U+001F, U+007F. */
const FORBIDDEN: number[] = [0x00, 0x1f, 0x22, 0x22, 0x5c, 0x5c, 0x7f, 0x7f];
const DIGIT = [0x30, 0x39];
const WORD = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
/** ECMAScript's \s, control characters left out (they would need escapes). */
const SPACE = [0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff];
/** What \s matches in ECMAScript, controls included (for \S). */
const SPACE_ALL = [0x09, 0x0d, ...SPACE];

/** `.` and the content of an unanchored end: any character a JSON string holds unescaped. */
export const JSON_CHAR = classText(subtract([0, 0x10ffff], FORBIDDEN));

export function regexToGbnf(pattern: string): string {
  const p = new RegexParser(pattern);
  return p.pattern();
}

class RegexParser {
  #i = 0;
  constructor(readonly src: string) {}

  fail(msg: string): FuselmError {
    return new FuselmError('E_UNSUPPORTED', `jsonSchema: pattern ${JSON.stringify(this.src)}: at ${this.#i}: ${msg}`);
  }

  pattern(): string {
    const start = this.src.startsWith('^');
    if (start) this.#i++;
    const body = this.alternation();
    let end = false;
    if (this.src[this.#i] === '$') {
      end = true;
      this.#i++;
    }
    if (this.#i < this.src.length) throw this.fail(`unexpected ${JSON.stringify(this.src[this.#i])}`);
    return `${start ? '' : `${JSON_CHAR}* `}(${body})${end ? '' : ` ${JSON_CHAR}*`}`;
  }

  alternation(): string {
    const alts = [this.sequence()];
    while (this.src[this.#i] === '|') {
      this.#i++;
      alts.push(this.sequence());
    }
    return alts.join(' | ');
  }

  sequence(): string {
    const items: string[] = [];
    for (;;) {
      const c = this.src[this.#i];
      if (c === undefined || c === '|' || c === ')' || (c === '$' && this.#i === this.src.length - 1)) break;
      let atom: string;
      if (c === '(') {
        this.#i++;
        if (this.src[this.#i] === '?') {
          if (this.src[this.#i + 1] !== ':') throw this.fail('lookaround and named groups are not supported');
          this.#i += 2;
        }
        atom = `(${this.alternation()})`;
        if (this.src[this.#i] !== ')') throw this.fail('a group is not closed');
        this.#i++;
      } else if (c === '[') atom = this.charClass();
      else if (c === '.') {
        this.#i++;
        atom = JSON_CHAR;
      } else if (c === '\\') atom = classText(this.escape(false));
      else if ('*+?{'.includes(c)) throw this.fail(`nothing to repeat before ${JSON.stringify(c)}`);
      else if (c === '^' || c === '$') throw this.fail('anchors are supported only at the start and the end');
      else {
        const cp = this.src.codePointAt(this.#i)!;
        this.#i += cp > 0xffff ? 2 : 1;
        atom = classText(this.allowed([cp, cp]));
      }
      items.push(this.quantifier(atom));
    }
    return items.length ? items.join(' ') : '""';
  }

  quantifier(atom: string): string {
    const c = this.src[this.#i];
    let q = '';
    if (c === '*' || c === '+' || c === '?') {
      q = c;
      this.#i++;
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.#i));
      if (!m) return atom; // a literal '{' in ECMAScript's annex B; not supported as such
      q = m[0];
      this.#i += m[0].length;
    } else return atom;
    if (this.src[this.#i] === '?') this.#i++; // lazy: the same language
    return `${atom}${q}`;
  }

  /** An escape outside or inside a class, as code-point ranges. */
  escape(inClass: boolean): number[] {
    const e = this.src[this.#i + 1];
    this.#i += 2;
    switch (e) {
      case 'd':
        return DIGIT;
      case 'w':
        return WORD;
      case 's':
        return SPACE;
      case 'D':
      case 'W':
      case 'S':
        if (inClass) throw this.fail(`\\${e} inside a class`);
        return subtract([0, 0x10ffff], e === 'D' ? DIGIT : e === 'W' ? WORD : SPACE_ALL);
      case 'b':
      case 'B':
        throw this.fail(`\\${e} (word boundary) is not supported`);
      case 'n':
      case 'r':
      case 't':
      case 'f':
      case 'v':
        throw this.fail(`\\${e}: a control character cannot be written in a JSON string unescaped`);
      case 'u': {
        const h = /^[0-9a-fA-F]{4}/.exec(this.src.slice(this.#i));
        if (!h) throw this.fail('\\u needs 4 hex digits');
        this.#i += 4;
        const v = parseInt(h[0], 16);
        return this.allowed([v, v]);
      }
      case 'x': {
        const h = /^[0-9a-fA-F]{2}/.exec(this.src.slice(this.#i));
        if (!h) throw this.fail('\\x needs 2 hex digits');
        this.#i += 2;
        const v = parseInt(h[0], 16);
        return this.allowed([v, v]);
      }
      default:
        if (e === undefined || /[0-9a-zA-Z]/.test(e)) throw this.fail(`the escape \\${e ?? ''} is not supported`);
        return this.allowed([e.codePointAt(0)!, e.codePointAt(0)!]);
    }
  }

  /** A single character's ranges, E_UNSUPPORTED when JSON would need to escape it. */
  allowed(r: number[]): number[] {
    const out = subtract(r, FORBIDDEN);
    if (out.length === 0) throw this.fail(`the character U+${r[0].toString(16).padStart(4, '0')} would need an escape in JSON`);
    return out;
  }

  charClass(): string {
    this.#i++;
    const negated = this.src[this.#i] === '^';
    if (negated) this.#i++;
    const ranges: number[] = [];
    let first = true;
    while (this.src[this.#i] !== ']' || first) {
      first = false;
      if (this.#i >= this.src.length) throw this.fail('a class is not closed');
      const lo = this.classAtom();
      if (this.src[this.#i] === '-' && this.src[this.#i + 1] !== ']' && lo.length === 2 && lo[0] === lo[1]) {
        this.#i++;
        const hi = this.classAtom();
        if (hi.length !== 2 || hi[0] !== hi[1] || hi[0] < lo[0]) throw this.fail('a bad range in a class');
        ranges.push(lo[0], hi[0]);
      } else ranges.push(...lo);
    }
    this.#i++;
    const set = subtract(negated ? subtract([0, 0x10ffff], ranges) : normalize(ranges), FORBIDDEN);
    if (set.length === 0) throw this.fail('a class with no character a JSON string can hold unescaped');
    return classText(set);
  }

  classAtom(): number[] {
    if (this.src[this.#i] === '\\') {
      const e = this.src[this.#i + 1];
      if (e === 'b') throw this.fail('\\b in a class (backspace) would need an escape in JSON');
      if (e !== undefined && !/[dwsDWSux]/.test(e) && !/[0-9a-zA-Z]/.test(e)) {
        this.#i += 2;
        const v = e.codePointAt(0)!;
        return [v, v];
      }
      return this.escape(true);
    }
    const cp = this.src.codePointAt(this.#i)!;
    this.#i += cp > 0xffff ? 2 : 1;
    return [cp, cp];
  }
}

/** Sorted, merged ranges. */
function normalize(r: number[]): number[] {
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < r.length; i += 2) pairs.push([r[i], r[i + 1]]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    if (out.length && lo <= out[out.length - 1] + 1) out[out.length - 1] = Math.max(out[out.length - 1], hi);
    else out.push(lo, hi);
  }
  return out;
}

/** The ranges of `a` minus those of `b`. */
function subtract(a: number[], b: number[]): number[] {
  const na = normalize(a), nb = normalize(b);
  const out: number[] = [];
  for (let i = 0; i < na.length; i += 2) {
    let lo = na[i];
    const hi = na[i + 1];
    for (let j = 0; j < nb.length && lo <= hi; j += 2) {
      if (nb[j + 1] < lo || nb[j] > hi) continue;
      if (nb[j] > lo) out.push(lo, nb[j] - 1);
      lo = nb[j + 1] + 1;
    }
    if (lo <= hi) out.push(lo, hi);
  }
  return out;
}

/** A GBNF class for these ranges (code points written as \x / \u / \U escapes where not plain). */
export function classText(r: number[]): string {
  const ch = (c: number) =>
    c >= 0x30 && c <= 0x39 ? String.fromCharCode(c) : c >= 0x41 && c <= 0x5a ? String.fromCharCode(c) : c >= 0x61 && c <= 0x7a ? String.fromCharCode(c)
      : c <= 0xff ? `\\x${c.toString(16).padStart(2, '0')}` : c <= 0xffff ? `\\u${c.toString(16).padStart(4, '0')}` : `\\U${c.toString(16).padStart(8, '0')}`;
  let s = '[';
  for (let i = 0; i < r.length; i += 2) s += r[i] === r[i + 1] ? ch(r[i]) : `${ch(r[i])}-${ch(r[i + 1])}`;
  return `${s}]`;
}
