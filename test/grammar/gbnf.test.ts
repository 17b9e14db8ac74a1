/**
 * GBNF: the parser and compiler accept llama.cpp's syntax (rules, alternation, groups across
 * lines, * + ? {m} {m,} {m,n}, classes with ranges and negation, escapes, comments) and the
 * byte-level matcher accepts exactly the language: on random strings (ASCII and multi-byte) it
 * agrees with an equivalent JavaScript RegExp. Bad grammars are E_INVALID_ARG naming the line
 * and column, the undefined rule, the left-recursive rule or the rule that matches nothing.
 */
import assert from 'node:assert/strict';
import { compileGbnf } from '../../lib/grammar/compile.js';
import { ACCEPT, DEAD, StackSets } from '../../lib/grammar/stacks.js';
import { rng } from '../helpers/random.js';

const utf8 = new TextEncoder();

/** Whether the grammar's language holds `text` (a plain walk of its bytes). */
export function accepts(stacks: StackSets, text: string): boolean {
  const s = stacks.walk(stacks.initial(), utf8.encode(text));
  return s !== DEAD && stacks.has(s, ACCEPT);
}

function rejects(grammar: string, pattern: RegExp): void {
  assert.throws(() => compileGbnf(grammar), (e: { code?: string; message: string }) => {
    assert.equal(e.code, 'E_INVALID_ARG');
    assert.match(e.message, pattern);
    return true;
  });
}

describe('GBNF grammars', () => {
  // each grammar and a RegExp with the same language
  const pairs: Array<[string, RegExp]> = [
    ['root ::= "ab" | "c"', /^(ab|c)$/u],
    ['root ::= [a-c]* "d"', /^[a-c]*d$/u],
    ['root ::= ("x" [0-9]+)? "!"', /^(x[0-9]+)?!$/u],
    ['root ::= [^ab]{2,3}', /^[^ab]{2,3}$/u],
    ['root ::= "a"{3}', /^a{3}$/u],
    ['root ::= "a"{2,} "b"', /^a{2,}b$/u],
    ['root ::= . . "é"', /^..é$/su],
    ['root ::= [à-ÿ€]+ | "日本"', /^([à-ÿ€]+|日本)$/u],
    ['root ::= item ("," item)*\nitem ::= [a-b]+ | "(" root ")"', /^$/u], // recursive: checked against a parser below
    ['# a comment\nroot ::= x # another\nx ::= (\n  "p"\n  | "q"\n)+', /^[pq]+$/u],
    ['root ::= "\\x41\\u00e9\\n\\t\\\\\\"" [\\x30-\\x32]', /^Aé\n\t\\"[0-2]$/u],
    ['root ::= [^\\x00-\\x7f]', /^[^\x00-\x7f]$/u],
  ];
  const alphabet = ['a', 'b', 'c', 'd', 'x', '0', '1', '9', '!', ',', '(', ')', 'p', 'q', 'é', 'à', '€', '日', '本', 'A', '\n', '\t', '\\', '"', '2', '😀'];

  /** The language of pairs[8]: item ("," item)*, item = [a-b]+ | "(" root ")". */
  function nested(s: string): boolean {
    let i = 0;
    const list = (): boolean => {
      if (!item()) return false;
      while (s[i] === ',') {
        i++;
        if (!item()) return false;
      }
      return true;
    };
    const item = (): boolean => {
      if (s[i] === '(') {
        i++;
        if (!list() || s[i] !== ')') return false;
        i++;
        return true;
      }
      const start = i;
      while (s[i] === 'a' || s[i] === 'b') i++;
      return i > start;
    };
    return list() && i === s.length;
  }

  it('accepts exactly the strings of the language (against RegExp and a recursive parser)', () => {
    const r = rng(18);
    let members = 0;
    for (const [g, re] of pairs) {
      const st = new StackSets(compileGbnf(g));
      let yes = 0;
      for (let n = 0; n < 3000; n++) {
        const len = Math.floor(r() * 7);
        let s = '';
        for (let k = 0; k < len; k++) s += alphabet[Math.floor(r() * alphabet.length)];
        // bias toward members: some strings built from the letters the grammar uses
        if (n % 3 === 0) s = s.replace(/[^a-d0-9!,()pq]/g, '');
        const want = g.includes('item ::=') ? nested(s) : re.test(s);
        assert.equal(accepts(st, s), want, `${JSON.stringify(g)} on ${JSON.stringify(s)}`);
        if (want) yes++;
      }
      members += yes;
    }
    assert.ok(members > 1000, `only ${members} members among the random strings`);
  });

  it('matches known members of the rarer grammars', () => {
    const st = new StackSets(compileGbnf(pairs[10][0]));
    assert.ok(accepts(st, 'Aé\n\t\\"1'));
    assert.ok(!accepts(st, 'Aé\n\t\\"3'));
    assert.ok(accepts(new StackSets(compileGbnf(pairs[4][0])), 'aaa'));
    assert.ok(accepts(new StackSets(compileGbnf(pairs[8][0])), '(a,(b)),ab'));
  });

  it('matches multi-byte characters byte by byte, rejecting broken UTF-8', () => {
    const st = new StackSets(compileGbnf('root ::= [^a]'));
    let s = st.initial();
    s = st.step(s, 0xe6); // first byte of 日
    assert.notEqual(s, DEAD);
    assert.ok(!st.has(s, ACCEPT));
    s = st.step(st.step(s, 0x97), 0xa5);
    assert.ok(st.has(s, ACCEPT));
    assert.equal(st.step(st.initial(), 0x80), DEAD, 'a lone continuation byte');
    assert.equal(st.step(st.initial(), 0xc0), DEAD, 'an overlong lead byte');
    assert.equal(st.walk(st.initial(), Uint8Array.of(0xe0, 0x80, 0x80)), DEAD, 'an overlong three-byte form');
    assert.equal(st.walk(st.initial(), Uint8Array.of(0xe0, 0x91)), DEAD, 'an overlong form refused before its last byte');
    assert.equal(st.walk(st.initial(), Uint8Array.of(0xf4, 0x90)), DEAD, 'past U+10FFFF');
    assert.equal(st.walk(st.initial(), Uint8Array.of(0xed, 0xa0, 0x80)), DEAD, 'a surrogate');
    // a class of only 3-byte characters refuses a 2-byte lead at once
    const cjk = new StackSets(compileGbnf('root ::= [\\u4e00-\\u9fff]'));
    assert.equal(cjk.step(cjk.initial(), 0xc3), DEAD);
    assert.notEqual(cjk.step(cjk.initial(), 0xe4), DEAD);
    assert.equal(cjk.walk(cjk.initial(), Uint8Array.of(0xe3)), DEAD, 'E3 starts only U+3000..U+3FFF');
  });

  it('reports syntax errors with line and column', () => {
    rejects('root ::= "a"\nx ::= "b" )', /line 2, column 11: unexpected "\)"/);
    rejects('root ::= "abc', /line 1, column 14: the string at line 1, column 10 is not closed/);
    rejects('root ::= [a-z', /class at line 1, column 10 is not closed/);
    rejects('root ::= ( "a"', /the '\(' at line 1, column 10 is not closed/);
    rejects('root "a"', /line 1, column 6: expected '::=' after rule name 'root'/);
    rejects('root ::= "\\q"', /line 1, column 11: unknown escape \\q/);
    rejects('root ::= "\\x4"', /\\x needs 2 hex digits/);
    rejects('root ::= "a"{3,2}', /the most is below the least/);
    rejects('root ::= [z-a]', /a range whose end is below its start/);
    rejects('root ::= "a"{99999}', /a count above 10000/);
  });

  it('names undefined, duplicated, left-recursive and empty rules', () => {
    rejects('x ::= "a"', /no rule named 'root'/);
    rejects('root ::= "a" thing', /line 1, column 14: rule 'thing' is not defined/);
    rejects('root ::= "a"\nroot ::= "b"', /line 2, column 1: rule 'root' is already defined at line 1/);
    rejects('root ::= root "a" | "b"', /rule 'root' is left-recursive/);
    rejects('root ::= x\nx ::= y "a" | "c"\ny ::= "b"? x', /rule '(x|y)' is left-recursive \((x|y) → (x|y) → (x|y)/);
    rejects('root ::= ("a"?)*', /left-recursive/);
    rejects('root ::= "a" x\nx ::= "b" x', /rule '(root|x)' matches no string/);
    rejects('root ::= [^\\x00-\\U0010ffff]', /rule 'root': a character class that matches no character/);
  });

  it('allows empty alternatives, right recursion and unused rules', () => {
    const st = new StackSets(compileGbnf('root ::= | "(" root ")"\nunused ::= "z"'));
    assert.ok(accepts(st, ''));
    assert.ok(accepts(st, '((()))'));
    assert.ok(!accepts(st, '(()'));
  });
});
