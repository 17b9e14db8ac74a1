/**
 * A parsed GBNF grammar flattened for the matcher. Every rule is a list of alternatives, every
 * alternative a run of elements in one flat array ending with END:
 *
 *   CHAR c   one code point of character class c
 *   REF r    rule r, then the next element
 *   END      the end of the alternative
 *
 * Groups and alternations inside a sequence become rules of their own; repetition becomes
 * copies plus tail-recursive rules (x* → S ::= x S | ""; x{0,2} → R2 ::= x R1 | "", R1 ::= x | ""),
 * so a loop never grows the matcher's stack. Checked here, as E_INVALID_ARG naming the rule: a
 * missing root, a reference to an undefined rule, a class that matches nothing, a rule that
 * matches no string at all (reachable from root), and left recursion (which includes repeating
 * something that can match the empty string).
 */
import { FuselmError } from '../errors.js';
import { type GbnfExpr, type GbnfRule, parseGbnf } from './gbnf.js';

export const END = 0, CHAR = 1, REF = 2;

/** A set of code points: sorted disjoint inclusive ranges (no surrogates), plus an ASCII table. */
export interface CharClass {
  ranges: Int32Array;
  ascii: Uint8Array;
}

export interface CompiledGrammar {
  /** Per element position: END, CHAR or REF. */
  kind: Uint8Array;
  /** Per position: the class id (CHAR) or rule id (REF). */
  arg: Int32Array;
  /** Per rule: the positions where its alternatives start. */
  ruleAlts: Int32Array[];
  ruleNames: string[];
  classes: CharClass[];
  root: number;
}

/** Most element positions a grammar may compile to. */
const MAX_POSITIONS = 1 << 21;

export function compileGbnf(text: string): CompiledGrammar {
  return compileRules(parseGbnf(text));
}

type Elem = [kind: number, arg: number];

export function compileRules(rules: GbnfRule[]): CompiledGrammar {
  const bad = (msg: string) => new FuselmError('E_INVALID_ARG', `grammar: ${msg}`);
  const ids = new Map<string, number>();
  for (const r of rules) ids.set(r.name, ids.size);
  const root = ids.get('root');
  if (root === undefined) throw bad("no rule named 'root' (generation starts there)");
  const names = rules.map((r) => r.name);
  const alts: Elem[][][] = rules.map(() => []);
  const classes: CharClass[] = [];
  const classIds = new Map<string, number>();
  let size = 0;

  const classOf = (ranges: number[], negated: boolean, rule: string): number => {
    const norm = normalizeRanges(ranges, negated);
    if (norm.length === 0) throw bad(`rule '${rule}': a character class that matches no character`);
    const key = norm.join(',');
    let id = classIds.get(key);
    if (id === undefined) {
      id = classes.length;
      classIds.set(key, id);
      const ascii = new Uint8Array(128);
      for (let i = 0; i < norm.length; i += 2) for (let c = norm[i]; c <= Math.min(norm[i + 1], 127); c++) ascii[c] = 1;
      classes.push({ ranges: Int32Array.from(norm), ascii });
    }
    return id;
  };
  const newRule = (name: string, ruleAlts: Elem[][]): number => {
    names.push(`${name}_${names.length}`);
    alts.push(ruleAlts);
    return names.length - 1;
  };
  const grow = (n: number) => {
    size += n;
    if (size > MAX_POSITIONS) throw bad(`the grammar is too large (more than ${MAX_POSITIONS} elements after expanding repetitions)`);
  };

  /** The elements of `e` as a sequence, inside user rule `rule`. */
  const seq = (e: GbnfExpr, rule: string): Elem[] => {
    switch (e.k) {
      case 'lit':
        return e.cps.map((c) => [CHAR, classOf([c, c], false, rule)]);
      case 'class':
        return [[CHAR, classOf(e.ranges, e.negated, rule)]];
      case 'ref': {
        const id = ids.get(e.name);
        if (id === undefined) throw bad(`line ${e.line}, column ${e.col}: rule '${e.name}' is not defined`);
        return [[REF, id]];
      }
      case 'seq':
        return e.items.flatMap((x) => seq(x, rule));
      case 'alt':
        return [[REF, newRule(rule, e.alts.map((a) => seq(a, rule)))]];
      case 'rep': {
        let el = seq(e.e, rule);
        const copies = e.min + (e.max === Infinity ? 1 : e.max - e.min);
        if (el.length > 1 && copies > 1) el = [[REF, newRule(rule, [el])]];
        grow(el.length * copies);
        const out: Elem[] = [];
        for (let i = 0; i < e.min; i++) out.push(...el);
        if (e.max === Infinity) {
          const star = newRule(rule, []);
          alts[star].push([...el, [REF, star]], []);
          out.push([REF, star]);
        } else if (e.max > e.min) {
          let r = newRule(rule, [el, []]);
          for (let k = 2; k <= e.max - e.min; k++) r = newRule(rule, [[...el, [REF, r]], []]);
          out.push([REF, r]);
        }
        return out;
      }
    }
  };
  rules.forEach((r, i) => {
    const e = r.expr;
    alts[i] = e.k === 'alt' ? e.alts.map((a) => seq(a, r.name)) : [seq(e, r.name)];
  });

  checkRules(names, alts, root, bad);

  // flatten
  let n = 0;
  for (const ra of alts) for (const a of ra) n += a.length + 1;
  const kind = new Uint8Array(n), arg = new Int32Array(n);
  const ruleAlts: Int32Array[] = [];
  let p = 0;
  for (const ra of alts) {
    const starts = new Int32Array(ra.length);
    ra.forEach((a, j) => {
      starts[j] = p;
      for (const [k, v] of a) {
        kind[p] = k;
        arg[p++] = v;
      }
      kind[p++] = END;
    });
    ruleAlts.push(starts);
  }
  return { kind, arg, ruleAlts, ruleNames: names, classes, root };
}

/** Ranges sorted and merged, negated within U+0000..U+10FFFF, surrogates removed. */
function normalizeRanges(ranges: number[], negated: boolean): number[] {
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i], ranges[i + 1]]);
  pairs.sort((a, b) => a[0] - b[0]);
  let merged: Array<[number, number]> = [];
  for (const [lo, hi] of pairs) {
    const last = merged[merged.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else merged.push([lo, hi]);
  }
  if (negated) {
    const out: Array<[number, number]> = [];
    let next = 0;
    for (const [lo, hi] of merged) {
      if (lo > next) out.push([next, lo - 1]);
      next = hi + 1;
    }
    if (next <= 0x10ffff) out.push([next, 0x10ffff]);
    merged = out;
  }
  const out: number[] = [];
  for (const [lo, hi] of merged) {
    // U+D800..U+DFFF have no UTF-8 encoding
    if (hi < 0xd800 || lo > 0xdfff) out.push(lo, hi);
    else {
      if (lo < 0xd800) out.push(lo, 0xd7ff);
      if (hi > 0xdfff) out.push(0xe000, hi);
    }
  }
  return out;
}

/**
 * Reachable rules must each match some string; no rule may reach itself without consuming a
 * character first (left recursion; the matcher would expand it forever).
 */
function checkRules(names: string[], alts: Elem[][][], root: number, bad: (m: string) => FuselmError): void {
  const n = names.length;
  const reach = new Uint8Array(n);
  const todo = [root];
  reach[root] = 1;
  while (todo.length) {
    const r = todo.pop()!;
    for (const a of alts[r]) for (const [k, v] of a) if (k === REF && !reach[v]) ((reach[v] = 1), todo.push(v));
  }
  const fix = (ok: (e: Elem, flags: Uint8Array) => boolean) => {
    const flags = new Uint8Array(n);
    for (let changed = true; changed; ) {
      changed = false;
      for (let r = 0; r < n; r++) if (!flags[r] && alts[r].some((a) => a.every((e) => ok(e, flags)))) ((flags[r] = 1), (changed = true));
    }
    return flags;
  };
  const nullable = fix(([k, v], f) => k === REF && f[v] === 1);
  const productive = fix(([k, v], f) => k === CHAR || f[v] === 1);
  for (let r = 0; r < n; r++) if (reach[r] && !productive[r]) throw bad(`rule '${names[r]}' matches no string (every alternative needs itself or another such rule)`);
  // left-recursion: edges to rules referenced after only nullable elements
  const edges: number[][] = alts.map((ra) => {
    const out: number[] = [];
    for (const a of ra)
      for (const [k, v] of a) {
        if (k !== REF) break;
        out.push(v);
        if (!nullable[v]) break;
      }
    return out;
  });
  const state = new Uint8Array(n); // 0 new, 1 on the path, 2 done
  const path: number[] = [];
  const visit = (r: number) => {
    state[r] = 1;
    path.push(r);
    for (const s of edges[r]) {
      if (state[s] === 1) {
        const cycle = [...path.slice(path.indexOf(s)), s].map((x) => names[x]);
        throw bad(`rule '${names[s]}' is left-recursive (${cycle.join(' → ')} without consuming a character; a repetition of something that can be empty counts too)`);
      }
      if (state[s] === 0) visit(s);
    }
    path.pop();
    state[r] = 2;
  };
  for (let r = 0; r < n; r++) if (reach[r] && state[r] === 0) visit(r);
}
