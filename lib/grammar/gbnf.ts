/**
 * GBNF (llama.cpp's grammar syntax) parsed into an expression tree, one entry per rule:
 *
 *   name ::= alternatives        a rule ends at a newline outside parentheses
 *   a b c    sequence            a | b   alternation         ( ... )  group
 *   "text"   literal             [a-z0-9_] [^"\\]  character class (ranges, negation)
 *   .        any character       x* x+ x? x{m} x{m,} x{m,n}   repetition
 *   # ...    comment to the end of the line
 *
 * Escapes in literals and classes: \n \r \t \\ \" \[ \] \- \^ \xHH \uHHHH \UHHHHHHHH. Names are
 * letters, digits and '-' ('_' too). Errors are E_INVALID_ARG with the line and column.
 */
import { FuselmError } from '../errors.js';

export type GbnfExpr =
  | { k: 'seq'; items: GbnfExpr[] }
  | { k: 'alt'; alts: GbnfExpr[] }
  /** A literal: its code points. */
  | { k: 'lit'; cps: number[] }
  /** A character class: inclusive code-point ranges [lo0, hi0, lo1, hi1, ...], maybe negated. */
  | { k: 'class'; ranges: number[]; negated: boolean }
  | { k: 'ref'; name: string; line: number; col: number }
  | { k: 'rep'; e: GbnfExpr; min: number; max: number };

export interface GbnfRule {
  name: string;
  expr: GbnfExpr;
  line: number;
  col: number;
}

/** Largest count a {m,n} may give (a larger one would make a huge grammar). */
export const MAX_REPEAT = 10000;

export function parseGbnf(text: string): GbnfRule[] {
  if (typeof text !== 'string') throw new FuselmError('E_INVALID_ARG', `grammar must be a string (GBNF), got ${typeof text}`);
  return new Parser(text).rules();
}

const isNameChar = (c: string) => /[A-Za-z0-9_-]/.test(c);

class Parser {
  #i = 0;
  constructor(readonly src: string) {}

  fail(msg: string, at = this.#i): FuselmError {
    const before = this.src.slice(0, at);
    const line = before.split('\n').length;
    const col = at - (before.lastIndexOf('\n') + 1) + 1;
    return new FuselmError('E_INVALID_ARG', `grammar: line ${line}, column ${col}: ${msg}`);
  }

  pos(at = this.#i): { line: number; col: number } {
    const before = this.src.slice(0, at);
    return { line: before.split('\n').length, col: at - (before.lastIndexOf('\n') + 1) + 1 };
  }

  /** Skips spaces, tabs and comments; newlines too when `newlines`. */
  space(newlines: boolean): void {
    const s = this.src;
    while (this.#i < s.length) {
      const c = s[this.#i];
      if (c === ' ' || c === '\t' || c === '\r' || (newlines && c === '\n')) this.#i++;
      else if (c === '#') while (this.#i < s.length && s[this.#i] !== '\n') this.#i++;
      else break;
    }
  }

  name(): string {
    const start = this.#i;
    while (this.#i < this.src.length && isNameChar(this.src[this.#i])) this.#i++;
    if (this.#i === start) throw this.fail(`expected a rule name, got ${this.shownHere()}`);
    return this.src.slice(start, this.#i);
  }

  shownHere(): string {
    return this.#i >= this.src.length ? 'the end of the grammar' : JSON.stringify(this.src[this.#i]);
  }

  rules(): GbnfRule[] {
    const out: GbnfRule[] = [];
    const seen = new Map<string, GbnfRule>();
    this.space(true);
    while (this.#i < this.src.length) {
      const { line, col } = this.pos();
      const name = this.name();
      this.space(false);
      if (!this.src.startsWith('::=', this.#i)) throw this.fail(`expected '::=' after rule name '${name}', got ${this.shownHere()}`);
      this.#i += 3;
      const expr = this.alternatives(false);
      if (this.#i < this.src.length && this.src[this.#i] !== '\n') throw this.fail(`unexpected ${this.shownHere()}`);
      const twice = seen.get(name);
      if (twice) throw new FuselmError('E_INVALID_ARG', `grammar: line ${line}, column ${col}: rule '${name}' is already defined at line ${twice.line}`);
      const r = { name, expr, line, col };
      seen.set(name, r);
      out.push(r);
      this.space(true);
    }
    return out;
  }

  /** alternatives: sequence ('|' sequence)*; inside parentheses newlines are spaces. */
  alternatives(nested: boolean): GbnfExpr {
    const alts = [this.sequence(nested)];
    while (this.src[this.#i] === '|') {
      this.#i++;
      this.space(true);
      alts.push(this.sequence(nested));
    }
    return alts.length === 1 ? alts[0] : { k: 'alt', alts };
  }

  sequence(nested: boolean): GbnfExpr {
    const items: GbnfExpr[] = [];
    this.space(nested);
    for (;;) {
      const c = this.src[this.#i];
      if (c === undefined || c === '|' || c === ')' || c === '\n') break;
      let e: GbnfExpr;
      if (c === '"') e = this.literal();
      else if (c === '[') e = this.charClass();
      else if (c === '.') {
        this.#i++;
        e = { k: 'class', ranges: [0, 0x10ffff], negated: false };
      } else if (c === '(') {
        const open = this.#i++;
        this.space(true);
        e = this.alternatives(true);
        this.space(true);
        if (this.src[this.#i] !== ')') throw this.fail(`the '(' at ${this.posText(open)} is not closed`);
        this.#i++;
      } else if (isNameChar(c)) {
        const { line, col } = this.pos();
        const name = this.name();
        this.space(false);
        if (this.src.startsWith('::=', this.#i)) throw this.fail(`rule '${name}' starts before the previous rule ended (a rule ends at a newline)`);
        e = { k: 'ref', name, line, col };
      } else throw this.fail(`unexpected ${this.shownHere()}`);
      this.space(nested);
      e = this.repetition(e, nested);
      items.push(e);
    }
    return items.length === 1 ? items[0] : { k: 'seq', items };
  }

  posText(at: number): string {
    const { line, col } = this.pos(at);
    return `line ${line}, column ${col}`;
  }

  repetition(e: GbnfExpr, nested: boolean): GbnfExpr {
    for (;;) {
      const c = this.src[this.#i];
      let min: number, max: number;
      if (c === '*') [min, max] = [0, Infinity];
      else if (c === '+') [min, max] = [1, Infinity];
      else if (c === '?') [min, max] = [0, 1];
      else if (c === '{') {
        const at = this.#i;
        const m = /^\{\s*(\d+)\s*(?:(,)\s*(\d*)\s*)?\}/.exec(this.src.slice(this.#i, this.#i + 40));
        if (!m) throw this.fail('expected {m}, {m,} or {m,n}');
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (max < min) throw this.fail(`{${min},${max}}: the most is below the least`, at);
        if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw this.fail(`a count above ${MAX_REPEAT}`, at);
        this.#i += m[0].length - 1;
      } else return e;
      this.#i++;
      e = { k: 'rep', e, min, max };
      this.space(nested);
    }
  }

  /** One character of a literal or class, escapes decoded. */
  char(): number {
    const s = this.src;
    if (this.#i >= s.length) throw this.fail('unexpected end of the grammar');
    const c = s.codePointAt(this.#i)!;
    if (c !== 0x5c) {
      this.#i += c > 0xffff ? 2 : 1;
      return c;
    }
    const at = this.#i;
    const e = s[this.#i + 1];
    this.#i += 2;
    const simple: Record<string, number> = { n: 10, r: 13, t: 9, '\\': 92, '"': 34, '[': 91, ']': 93, '-': 45, '^': 94, "'": 39, '/': 47 };
    if (e !== undefined && e in simple) return simple[e];
    const hex = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
    if (!hex) throw this.fail(`unknown escape \\${e ?? ''}`, at);
    const digits = s.slice(this.#i, this.#i + hex);
    if (!new RegExp(`^[0-9a-fA-F]{${hex}}$`).test(digits)) throw this.fail(`\\${e} needs ${hex} hex digits`, at);
    this.#i += hex;
    const v = parseInt(digits, 16);
    if (v > 0x10ffff) throw this.fail(`\\${e}${digits} is past U+10FFFF`, at);
    return v;
  }

  literal(): GbnfExpr {
    const open = this.#i++;
    const cps: number[] = [];
    while (this.src[this.#i] !== '"') {
      if (this.#i >= this.src.length || this.src[this.#i] === '\n') throw this.fail(`the string at ${this.posText(open)} is not closed`);
      cps.push(this.char());
    }
    this.#i++;
    return { k: 'lit', cps };
  }

  charClass(): GbnfExpr {
    const open = this.#i++;
    const negated = this.src[this.#i] === '^';
    if (negated) this.#i++;
    const ranges: number[] = [];
    while (this.src[this.#i] !== ']') {
      if (this.#i >= this.src.length || this.src[this.#i] === '\n') throw this.fail(`the class at ${this.posText(open)} is not closed`);
      const at = this.#i;
      const lo = this.char();
      let hi = lo;
      if (this.src[this.#i] === '-' && this.src[this.#i + 1] !== ']') {
        this.#i++;
        hi = this.char();
        if (hi < lo) throw this.fail('a range whose end is below its start', at);
      }
      ranges.push(lo, hi);
    }
    this.#i++;
    return { k: 'class', ranges, negated };
  }
}
