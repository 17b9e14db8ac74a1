/**
 * JSON Schema → GBNF. Every string the grammar accepts is JSON that validates against the schema
 * (whitespace between tokens is limited, numbers to 15 integer digits, 16 fraction digits and 2
 * exponent digits, so that a generation always finishes and a number is a finite double). Supported:
 *
 *   type (one or a list), enum, const, anyOf / oneOf (oneOf's exclusivity is not enforced, as
 *   in llama.cpp), $ref to "#..." JSON pointers ($defs, definitions, recursion included);
 *   objects: properties in their order, required ones always, optional ones maybe, then other
 *   keys when additionalProperties is true or a schema (keys none of the properties' names) or
 *   of patternProperties' one pattern; arrays: items, prefixItems, minItems, maxItems; strings:
 *   minLength, maxLength, pattern (regex.ts), format date, time, date-time, uuid, email,
 *   hostname, ipv4, uri; integers: minimum, maximum, exclusive ones; numbers: the same with
 *   integer values; allOf merged where exact; nullable; uniqueItems false.
 *
 * Any other keyword (except annotations: title, description, default, examples, $schema, $id,
 * $comment, deprecated, readOnly, writeOnly) is E_UNSUPPORTED naming it.
 */
import { FuselmError, shown } from '../errors.js';
import { regexToGbnf } from './regex.js';

export type JsonSchema = boolean | { [keyword: string]: unknown };

const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly', '$defs', 'definitions']);
const HANDLED = new Set([
  'type', 'enum', 'const', 'anyOf', 'oneOf', '$ref', 'properties', 'required', 'additionalProperties', 'patternProperties', 'items', 'prefixItems', 'minItems', 'maxItems',
  'minLength', 'maxLength', 'pattern', 'format', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
]);
/** Keywords folded away before the conversion: allOf (merged), nullable (OpenAPI's), uniqueItems false. */
const FOLDED = new Set(['allOf', 'nullable', 'uniqueItems']);
/** Bound keywords: when allOf merges two, the tighter one wins. */
const LOWER = new Set(['minimum', 'exclusiveMinimum', 'minLength', 'minItems']);
const UPPER = new Set(['maximum', 'exclusiveMaximum', 'maxLength', 'maxItems']);
const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'];
/** Largest |integer| the grammar writes: 15 digits (within a double's exact integers). */
const INT_LIMIT = 1e15 - 1;

const PRIMITIVES: Record<string, string> = {
  ws: '| " " | "\\n" [ \\t]{0,20}',
  boolean: '"true" | "false"',
  null: '"null"',
  integer: '"-"? ("0" | [1-9] [0-9]{0,14})',
  // exponents of at most two digits: the value stays a finite double
  number: '"-"? ("0" | [1-9] [0-9]{0,14}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?',
  // escapes: \uXXXX outside the surrogates only (a pair would count as two characters here, one in JSON Schema)
  char: '[^"\\\\\\x00-\\x1f\\x7f] | "\\\\" (["\\\\/bfnrt] | "u" ([0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}))',
  string: '"\\"" char* "\\""',
  value: 'object | array | string | number | boolean | null',
  object: '"{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}"',
  array: '"[" ws ( value ws ( "," ws value ws )* )? "]"',
  date: '[0-9]{4} "-" ( ("0" [13578] | "1" [02]) "-" ("0" [1-9] | [12] [0-9] | "3" [01]) | ("0" [469] | "11") "-" ("0" [1-9] | [12] [0-9] | "30") | "02-" ("0" [1-9] | "1" [0-9] | "2" [0-8]) )',
  time: '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])',
  'date-time': 'date "T" time',
  uuid: '[0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12}',
  'email-label': '[a-zA-Z0-9] ([a-zA-Z0-9-]{0,20} [a-zA-Z0-9])?',
  email: 'email-atom ("." email-atom){0,3} "@" email-label ("." email-label){1,3}',
  'email-atom': '[a-zA-Z0-9_+-]{1,16}',
  hostname: 'email-label ("." email-label){0,3}',
  ipv4: 'octet "." octet "." octet "." octet',
  octet: '"25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9]',
  // scheme://host[:port][/path][?query][#fragment], of RFC 3986's characters (percent-encodings included)
  uri: '[a-z] [a-z0-9+.-]{0,10} "://" hostname (":" [0-9]{1,5})? ("/" uri-char{0,20}){0,6} ("?" uri-char{0,40})? ("#" uri-char{0,20})?',
  'uri-char': '[a-zA-Z0-9._~!$&\'()*+,;=:@-] | "%" [0-9a-fA-F] [0-9a-fA-F]',
};
/** Which primitives each one uses. */
const USES: Record<string, string[]> = {
  string: ['char'], value: ['object', 'array', 'string', 'number', 'boolean', 'null'], object: ['ws', 'string', 'value'], array: ['ws', 'value'],
  'date-time': ['date', 'time'], email: ['email-atom', 'email-label'], hostname: ['email-label'], ipv4: ['octet'], uri: ['hostname', 'uri-char'],
};
const FORMATS = new Set(['date', 'time', 'date-time', 'uuid', 'email', 'hostname', 'ipv4', 'uri']);

/** The GBNF grammar of a JSON Schema (root rule `root`). */
export function jsonSchemaToGbnf(schema: JsonSchema): string {
  const g = new SchemaGrammar();
  return g.grammar(g.expression(schema, 'root'));
}

/**
 * Grammar rules for one or more JSON Schemas, and rules of the caller's around them (tool
 * calls: one schema per function's arguments, in one grammar).
 */
export class SchemaGrammar {
  readonly #rules = new Map<string, string>();
  /** Rule names per schema and $ref. */
  readonly #refs = new Map<string, string>();
  #root: JsonSchema = true;
  #schemas = 0;
  /** What errors call the schema being converted. */
  #label = 'jsonSchema';

  /** The GBNF expression for `schema`'s instances (its $refs resolved within it); `label` names it in errors. */
  expression(schema: JsonSchema, hint: string, label = 'jsonSchema'): string {
    this.#root = schema;
    this.#label = label;
    this.#schemas++;
    return this.#visit(schema, '#', hint);
  }

  /** A rule of the caller's (named after `hint`); its name. */
  define(hint: string, body: string): string {
    return this.#rule(hint, body);
  }

  /** The whole grammar, with `root ::= rootBody`. */
  grammar(rootBody: string): string {
    this.#rules.set('root', rootBody);
    return [...this.#rules].map(([k, v]) => `${k} ::= ${v}`).join('\n') + '\n';
  }

  #unsupported(at: string, what: string): FuselmError {
    return new FuselmError('E_UNSUPPORTED', `${this.#label} at ${at}: ${what}`);
  }

  #invalid(at: string, what: string): FuselmError {
    return new FuselmError('E_INVALID_ARG', `${this.#label} at ${at}: ${what}`);
  }

  /** A primitive rule (and those it uses) added; its name. */
  #prim(name: string): string {
    if (!this.#rules.has(name)) {
      this.#rules.set(name, PRIMITIVES[name]);
      for (const u of USES[name] ?? []) this.#prim(u);
    }
    return name;
  }

  /** A new rule named after `hint`; its name. */
  #rule(hint: string, body: string): string {
    const base = hint.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'r';
    let name = base;
    for (let i = 1; this.#rules.has(name) || name in PRIMITIVES || name === 'root'; i++) name = `${base}-${i}`;
    this.#rules.set(name, body);
    return name;
  }

  /** The GBNF expression of `s`, found at JSON pointer `at`; `hint` names rules made for it. */
  #visit(s: unknown, at: string, hint: string): string {
    if (s === true) return this.#prim('value');
    if (s === false) throw this.#unsupported(at, 'the schema false (it accepts nothing)');
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw this.#invalid(at, `a schema must be an object or a boolean, got ${shown(s)}`);
    let o = s as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!HANDLED.has(k) && !ANNOTATIONS.has(k) && !FOLDED.has(k)) throw this.#unsupported(at, `the keyword ${k} is not supported`);
    if (o.uniqueItems !== undefined) {
      if (o.uniqueItems !== false) throw this.#unsupported(at, 'uniqueItems: a grammar cannot tell items apart (the keyword uniqueItems is not supported)');
      const { uniqueItems: _, ...rest } = o;
      o = rest;
    }
    if (o.nullable !== undefined) {
      if (typeof o.nullable !== 'boolean') throw this.#invalid(at, `nullable must be a boolean, got ${shown(o.nullable)}`);
      const { nullable, ...rest } = o;
      return nullable ? `(${this.#visit(rest, at, hint)}) | ${this.#prim('null')}` : this.#visit(rest, at, hint);
    }
    if (o.allOf !== undefined) {
      const { allOf, ...rest } = o;
      if (!Array.isArray(allOf) || allOf.length === 0) throw this.#invalid(at, 'allOf must be a non-empty array of schemas');
      return this.#visit(this.#merge([...allOf.map((x, i) => this.#resolve(x, `${at}/allOf/${i}`)), rest], at), at, hint);
    }
    const own = Object.keys(o).filter((k) => HANDLED.has(k));
    const alone = (k: string) => {
      const others = own.filter((x) => x !== k);
      if (others.length) throw this.#unsupported(at, `${k} beside ${others.join(', ')} is not supported`);
    };
    if (o.$ref !== undefined) {
      alone('$ref');
      return this.#ref(o.$ref, at);
    }
    for (const k of ['anyOf', 'oneOf'] as const)
      if (o[k] !== undefined) {
        alone(k);
        const list = o[k];
        if (!Array.isArray(list) || list.length === 0) throw this.#invalid(at, `${k} must be a non-empty array of schemas`);
        return list.map((x, i) => this.#visit(x, `${at}/${k}/${i}`, `${hint}-${i}`)).join(' | ');
      }
    if (o.const !== undefined || o.enum !== undefined) {
      const values = o.const !== undefined ? [o.const] : o.enum;
      if (!Array.isArray(values) || values.length === 0) throw this.#invalid(at, 'enum must be a non-empty array');
      // beside a type (an allOf merge makes this common): only the values of that type
      const types = o.type === undefined ? undefined : Array.isArray(o.type) ? o.type : [o.type];
      const typed = types ? values.filter((v) => types.includes(jsonType(v)) || (jsonType(v) === 'integer' && types.includes('number'))) : values;
      if (typed.length === 0) throw this.#invalid(at, `no value of ${o.const !== undefined ? 'const' : 'enum'} has type ${shown(o.type)}`);
      return typed.map((v) => this.#literal(v)).join(' | ');
    }
    let types: string[];
    if (o.type === undefined) {
      if (o.properties !== undefined || o.additionalProperties !== undefined || o.patternProperties !== undefined || o.required !== undefined) types = ['object'];
      else if (o.items !== undefined || o.minItems !== undefined || o.maxItems !== undefined) types = ['array'];
      else if (o.minLength !== undefined || o.maxLength !== undefined || o.pattern !== undefined || o.format !== undefined) types = ['string'];
      else if (['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'].some((k) => o[k] !== undefined)) types = ['number'];
      else return this.#prim('value');
    } else types = Array.isArray(o.type) ? (o.type as string[]) : [o.type as string];
    for (const t of types) if (!TYPES.includes(t)) throw this.#invalid(at, `type must be one of ${TYPES.join(', ')} (or a list of them), got ${shown(t)}`);
    // "number" also admits integers
    const alts = types.filter((t) => !(t === 'integer' && types.includes('number'))).map((t) => this.#typed(t, o, at, hint));
    return alts.length === 1 ? alts[0] : alts.map((a) => `(${a})`).join(' | ');
  }

  #typed(t: string, o: Record<string, unknown>, at: string, hint: string): string {
    switch (t) {
      case 'null':
      case 'boolean':
        return this.#prim(t);
      case 'integer':
      case 'number':
        return this.#number(t, o, at);
      case 'string':
        return this.#string(o, at, hint);
      case 'array':
        return this.#array(o, at, hint);
      default:
        return this.#object(o, at, hint);
    }
  }

  #ref(ref: unknown, at: string): string {
    const { target, parts } = this.#target(ref, at);
    const key = `${this.#schemas}:${ref}`;
    let name = this.#refs.get(key);
    if (name !== undefined) return name;
    name = this.#rule(`ref-${parts[parts.length - 1] ?? 'root'}`, '""'); // reserved now: the target may refer back to itself
    this.#refs.set(key, name);
    this.#rules.set(name, this.#visit(target, ref as string, name));
    return name;
  }

  /** What a local $ref points at. */
  #target(ref: unknown, at: string): { target: unknown; parts: string[] } {
    if (typeof ref !== 'string' || !ref.startsWith('#')) throw this.#unsupported(at, `$ref ${shown(ref)}: only local references ("#/...") are supported`);
    let target: unknown = this.#root;
    const parts = ref === '#' || ref === '#/' ? [] : ref.slice(2).split('/');
    for (const raw of parts) {
      const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
      if (typeof target !== 'object' || target === null || !(key in target)) throw this.#invalid(at, `$ref ${shown(ref)} points at nothing`);
      target = (target as Record<string, unknown>)[key];
    }
    return { target, parts };
  }

  /** An allOf member with a lone $ref replaced by its target (followed up to 32 times: a cycle cannot be merged). */
  #resolve(x: unknown, at: string): unknown {
    for (let i = 0; i < 32; i++) {
      if (typeof x !== 'object' || x === null || Array.isArray(x)) return x;
      const o = x as Record<string, unknown>;
      if (o.$ref === undefined || Object.keys(o).some((k) => k !== '$ref' && !ANNOTATIONS.has(k))) return x;
      x = this.#target(o.$ref, at).target;
    }
    throw this.#unsupported(at, 'allOf over a $ref cycle cannot be merged');
  }

  /**
   * allOf's schemas merged into one, where that is exact: properties joined (a name in two
   * gets allOf of both), required united, the tighter of two bounds, types intersected, items
   * and additionalProperties schemas as allOf of both; equal values kept. Anything else given
   * twice differently is E_UNSUPPORTED naming it.
   */
  #merge(list: unknown[], at: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const closed: Record<string, unknown>[] = [];
    for (const x of list) {
      if (x === true) continue;
      if (x === false) throw this.#unsupported(at, 'the schema false in allOf (it accepts nothing)');
      if (typeof x !== 'object' || x === null || Array.isArray(x)) throw this.#invalid(at, `allOf must list schemas, got ${shown(x)}`);
      const o = x as Record<string, unknown>;
      if (o.additionalProperties !== undefined && o.additionalProperties !== true) closed.push(o);
      for (const [k, v] of Object.entries(o)) {
        if (ANNOTATIONS.has(k)) continue;
        if (!(k in out)) {
          out[k] = v;
          continue;
        }
        const w = out[k];
        if (JSON.stringify(w) === JSON.stringify(v)) continue;
        if (k === 'properties' && isObject(w) && isObject(v)) {
          const props = { ...w };
          for (const [n, ps] of Object.entries(v)) props[n] = n in w ? { allOf: [w[n], ps] } : ps;
          out[k] = props;
        } else if (k === 'required' && Array.isArray(w) && Array.isArray(v)) out[k] = [...new Set([...w, ...v])];
        else if (k === 'allOf' && Array.isArray(w) && Array.isArray(v)) out[k] = [...w, ...v];
        else if (k === 'type') {
          const list = (t: unknown) => (Array.isArray(t) ? t : [t]);
          const both = list(w).filter((t) => list(v).includes(t) || (t === 'integer' && list(v).includes('number')));
          for (const t of list(v)) if (t === 'integer' && list(w).includes('number') && !both.includes(t)) both.push(t);
          if (both.length === 0) throw this.#invalid(at, `allOf: no value has type ${shown(w)} and type ${shown(v)}`);
          out[k] = both;
        } else if (LOWER.has(k) && typeof w === 'number' && typeof v === 'number') out[k] = Math.max(w, v);
        else if (UPPER.has(k) && typeof w === 'number' && typeof v === 'number') out[k] = Math.min(w, v);
        else if ((k === 'items' || k === 'additionalProperties') && w !== false && v !== false) out[k] = w === true ? v : v === true ? w : { allOf: [w, v] };
        else if (k === 'items' || k === 'additionalProperties') out[k] = false;
        else throw this.#unsupported(at, `allOf: ${k} is given differently in two schemas and cannot be merged`);
      }
    }
    // a schema that closes its object admits only its own properties
    const names = isObject(out.properties) ? Object.keys(out.properties) : [];
    for (const c of closed) {
      const own = isObject(c.properties) ? Object.keys(c.properties) : [];
      const other = names.find((n) => !own.includes(n));
      if (other !== undefined) throw this.#unsupported(at, `allOf: additionalProperties in one schema rejects the property ${shown(other)} of another`);
    }
    return out;
  }

  /** A number within integer bounds: written without an exponent, its integer part and fraction held to the range. */
  #numberRange(o: Record<string, unknown>, bounds: string[], at: string): string {
    for (const k of bounds) {
      const v = o[k] as number;
      if (!Number.isInteger(v)) throw this.#unsupported(at, `${k} ${v} on a number: only integer bounds are supported`);
      if (Math.abs(v) > INT_LIMIT) throw this.#unsupported(at, `${k} ${v}: at most ${INT_LIMIT} in magnitude is supported`);
    }
    let lo = -INT_LIMIT, loEx = false, hi = INT_LIMIT, hiEx = false;
    if (o.minimum !== undefined) lo = o.minimum as number;
    if (o.exclusiveMinimum !== undefined && (o.exclusiveMinimum as number) >= lo) [lo, loEx] = [o.exclusiveMinimum as number, true];
    if (o.maximum !== undefined) hi = o.maximum as number;
    if (o.exclusiveMaximum !== undefined && (o.exclusiveMaximum as number) <= hi) [hi, hiEx] = [o.exclusiveMaximum as number, true];
    if (lo > hi || (lo === hi && (loEx || hiEx))) throw this.#invalid(at, `no number lies within ${bounds.map((k) => `${k} ${o[k]}`).join(', ')}`);
    const alts: string[] = [];
    // v >= 0: magnitudes [max(lo, 0), hi]; v < 0: "-" and magnitudes (0 excluded: no "-0") up to -lo
    if (hi > 0 || (hi === 0 && !hiEx)) alts.push(...magnitudes(Math.max(lo, 0), lo >= 0 && loEx, hi, hiEx));
    if (lo < 0) {
      const neg = magnitudes(Math.max(-hi, 0), hi >= 0 || hiEx, -lo, loEx);
      if (neg.length) alts.push(`"-" (${neg.join(' | ')})`);
    }
    return `(${alts.join(' | ')})`;
  }

  /** A JSON value written exactly (as JSON.stringify writes it), as a GBNF literal. */
  #literal(v: unknown): string {
    return gbnfString(JSON.stringify(v));
  }

  #count(o: Record<string, unknown>, k: string, at: string): number | undefined {
    const v = o[k];
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || (v as number) < 0) throw this.#invalid(at, `${k} must be an integer >= 0, got ${shown(v)}`);
    if ((v as number) > 10000) throw this.#unsupported(at, `${k} ${v}: at most 10000 is supported`);
    return v as number;
  }

  #string(o: Record<string, unknown>, at: string, hint: string): string {
    const min = this.#count(o, 'minLength', at), max = this.#count(o, 'maxLength', at);
    if (min !== undefined && max !== undefined && max < min) throw this.#invalid(at, `maxLength ${max} is below minLength ${min}`);
    if (o.format !== undefined) {
      if (typeof o.format !== 'string' || !FORMATS.has(o.format)) throw this.#unsupported(at, `format ${shown(o.format)} is not supported (supported: ${[...FORMATS].join(', ')})`);
      if (o.pattern !== undefined || min !== undefined || max !== undefined) throw this.#unsupported(at, 'format beside pattern, minLength or maxLength is not supported');
      return `"\\"" ${this.#prim(o.format)} "\\""`;
    }
    if (o.pattern !== undefined) {
      if (typeof o.pattern !== 'string') throw this.#invalid(at, 'pattern must be a string');
      if (min !== undefined || max !== undefined) throw this.#unsupported(at, 'pattern beside minLength or maxLength is not supported');
      return `"\\"" ${this.#rule(`${hint}-pattern`, regexToGbnf(o.pattern))} "\\""`;
    }
    if (min === undefined && max === undefined) return this.#prim('string');
    this.#prim('char');
    return `"\\"" char{${min ?? 0},${max ?? ''}} "\\""`;
  }

  #number(t: string, o: Record<string, unknown>, at: string): string {
    const bounds = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'].filter((k) => o[k] !== undefined);
    if (bounds.length === 0) return this.#prim(t);
    for (const k of bounds) if (typeof o[k] !== 'number' || !Number.isFinite(o[k])) throw this.#invalid(at, `${k} must be a finite number, got ${shown(o[k])}`);
    if (t === 'number') return this.#numberRange(o, bounds, at);
    let lo = -INT_LIMIT, hi = INT_LIMIT;
    if (o.minimum !== undefined) lo = Math.max(lo, Math.ceil(o.minimum as number));
    if (o.exclusiveMinimum !== undefined) lo = Math.max(lo, Math.floor(o.exclusiveMinimum as number) + 1);
    if (o.maximum !== undefined) hi = Math.min(hi, Math.floor(o.maximum as number));
    if (o.exclusiveMaximum !== undefined) hi = Math.min(hi, Math.ceil(o.exclusiveMaximum as number) - 1);
    if (lo > hi) throw this.#invalid(at, `no integer lies within ${bounds.map((k) => `${k} ${o[k]}`).join(', ')}`);
    return `(${integerRange(lo, hi)})`;
  }

  #array(o: Record<string, unknown>, at: string, hint: string): string {
    const min = this.#count(o, 'minItems', at) ?? 0, max = this.#count(o, 'maxItems', at);
    if (max !== undefined && max < min) throw this.#invalid(at, `maxItems ${max} is below minItems ${min}`);
    if (Array.isArray(o.items)) throw this.#unsupported(at, 'items as a list (tuples) is not supported (prefixItems is)');
    if (o.prefixItems !== undefined) return this.#tuple(o, min, max, at, hint);
    const ws = this.#prim('ws');
    const item = o.items === undefined ? this.#prim('value') : this.#rule(`${hint}-item`, this.#visit(o.items, `${at}/items`, `${hint}-item`));
    if (max === 0) return `"[" ${ws} "]"`;
    const more = `("," ${ws} ${item} ${ws}){${Math.max(0, min - 1)},${max === undefined ? '' : max - 1}}`;
    const list = `${item} ${ws} ${more}`;
    return `"[" ${ws} ${min === 0 ? `(${list})?` : list} "]"`;
  }

  /** prefixItems: item i of its schema, the rest of items' (none when items is false); later items only after earlier ones. */
  #tuple(o: Record<string, unknown>, min: number, max: number | undefined, at: string, hint: string): string {
    const prefix = o.prefixItems;
    if (!Array.isArray(prefix) || prefix.length === 0) throw this.#invalid(at, 'prefixItems must be a non-empty array of schemas');
    const k = prefix.length;
    if (o.items === false && min > k) throw this.#invalid(at, `minItems ${min} is above the ${k} prefixItems, and items is false`);
    const ws = this.#prim('ws');
    if (max === 0) return `"[" ${ws} "]"`;
    const rules = prefix.map((x, i) => this.#rule(`${hint}-${i}`, this.#visit(x, `${at}/prefixItems/${i}`, `${hint}-${i}`)));
    const last = Math.min(k, max ?? k);
    let tail = '""';
    if (o.items !== false && (max === undefined || max > k)) {
      const item = o.items === undefined || o.items === true ? this.#prim('value') : this.#rule(`${hint}-item`, this.#visit(o.items, `${at}/items`, `${hint}-item`));
      tail = `("," ${ws} ${item} ${ws}){${Math.max(0, min - k)},${max === undefined ? '' : max - k}}`;
    }
    for (let i = last - 1; i >= 0; i--) {
      const body = `${i ? `"," ${ws} ` : ''}${rules[i]} ${ws} ${tail}`;
      tail = i >= min ? `(${body})?` : body;
    }
    return `"[" ${ws} ${tail} "]"`;
  }

  /**
   * patternProperties' key/value pair: a key of its one pattern (no property name may match
   * it, so a key is never one of theirs), its schema's value; other keys only with
   * additionalProperties false or left out. (Keys are not kept unique, as JSON.parse does not need.)
   */
  #patternKeys(o: Record<string, unknown>, names: string[], at: string, hint: string): string {
    const pp = o.patternProperties;
    if (!isObject(pp)) throw this.#invalid(at, 'patternProperties must be an object of schemas');
    const entries = Object.entries(pp);
    if (entries.length !== 1) throw this.#unsupported(at, `patternProperties with ${entries.length} patterns (one is supported)`);
    if (o.additionalProperties !== undefined && o.additionalProperties !== false)
      throw this.#unsupported(at, 'patternProperties beside additionalProperties other than false is not supported');
    const [pattern, schema] = entries[0];
    let re: RegExp;
    try {
      re = new RegExp(pattern, 'u');
    } catch (e) {
      throw this.#invalid(at, `patternProperties: ${shown(pattern)} is not a regular expression: ${(e as Error).message}`);
    }
    const clash = names.find((n) => re.test(n));
    if (clash !== undefined) throw this.#unsupported(at, `patternProperties: the property ${shown(clash)} matches ${shown(pattern)} (its value would need both schemas)`);
    const ws = this.#prim('ws');
    const key = this.#rule(`${hint}-pattern-key`, regexToGbnf(pattern));
    const value = this.#rule(`${hint}-pattern-value`, this.#visit(schema, `${at}/patternProperties/${pattern}`, `${hint}-pattern-value`));
    return this.#rule(`${hint}-other`, `"\\"" ${key} "\\"" ${ws} ":" ${ws} ${value} ${ws}`);
  }

  /** A JSON string (unescaped characters only) that is none of `names`: a walk down their trie, leaving it anywhere but at a name's end. */
  #otherKey(names: string[], hint: string): string {
    type Node = { end: boolean; kids: Map<string, Node> };
    const root: Node = { end: false, kids: new Map() };
    // a name with a character JSON must escape cannot be written unescaped: no key to avoid
    const plainName = (n: string) => [...n].every((ch) => ch !== '"' && ch !== '\\' && ch.codePointAt(0)! >= 0x20 && ch !== '\x7f');
    for (const n of names.filter(plainName)) {
      let node = root;
      for (const ch of n) {
        let next = node.kids.get(ch);
        if (!next) node.kids.set(ch, (next = { end: false, kids: new Map() }));
        node = next;
      }
      node.end = true;
    }
    const plain = '[^"\\\\\\x00-\\x1f\\x7f]';
    const rest = this.#rule(`${hint}-key-rest`, `${plain}* "\\""`);
    const walk = (node: Node): string => {
      const alts: string[] = [];
      if (!node.end) alts.push('"\\""');
      const kids = [...node.kids.keys()].map((ch) => `\\U${ch.codePointAt(0)!.toString(16).padStart(8, '0')}`).join('');
      alts.push(`[^"\\\\\\x00-\\x1f\\x7f${kids}] ${rest}`);
      for (const [ch, kid] of node.kids) alts.push(`${gbnfString(ch)} ${walk(kid)}`);
      return this.#rule(`${hint}-key`, alts.join(' | '));
    };
    return `"\\"" ${walk(root)}`;
  }

  #object(o: Record<string, unknown>, at: string, hint: string): string {
    const props = o.properties ?? {};
    if (typeof props !== 'object' || props === null || Array.isArray(props)) throw this.#invalid(at, 'properties must be an object');
    const required = o.required ?? [];
    if (!Array.isArray(required) || !required.every((x) => typeof x === 'string')) throw this.#invalid(at, 'required must be an array of strings');
    const names = Object.keys(props);
    for (const r of required) if (!names.includes(r)) throw this.#unsupported(at, `required names ${shown(r)}, which is not in properties`);
    const ws = this.#prim('ws');
    const extra = o.additionalProperties;
    if (names.length === 0 && o.patternProperties === undefined) {
      if (extra === false) return `"{" ${ws} "}"`;
      const value = extra === undefined || extra === true ? this.#prim('value') : this.#rule(`${hint}-extra`, this.#visit(extra, `${at}/additionalProperties`, `${hint}-extra`));
      const kv = `${this.#prim('string')} ${ws} ":" ${ws} ${value} ${ws}`;
      return `"{" ${ws} (${kv} ("," ${ws} ${kv})*)? "}"`;
    }
    // other keys: any string but the properties' names, each value of additionalProperties' schema
    let other: string | undefined;
    if (o.patternProperties !== undefined) other = this.#patternKeys(o, names, at, hint);
    else if (extra !== undefined && extra !== false) {
      const value = extra === true ? this.#prim('value') : this.#rule(`${hint}-extra`, this.#visit(extra, `${at}/additionalProperties`, `${hint}-extra`));
      other = this.#rule(`${hint}-other`, `${this.#otherKey(names, hint)} ${ws} ":" ${ws} ${value} ${ws}`);
    }
    const kvs = names.map((n) => {
      const value = this.#visit((props as Record<string, unknown>)[n], `${at}/properties/${n}`, `${hint}-${n}`);
      return `${gbnfString(JSON.stringify(n))} ${ws} ":" ${ws} ${this.#rule(`${hint}-${n}`, value)} ${ws}`;
    });
    // tail(i, comma): the properties from i on, after earlier ones (comma) or none (no comma);
    // made on demand, so that no rule is left unused
    const tails = new Map<string, string>();
    const tail = (i: number, comma: boolean): string => {
      if (i === names.length) return other === undefined ? '""' : comma ? `("," ${ws} ${other})*` : `(${other} ("," ${ws} ${other})*)?`;
      const key = `${i}${comma}`;
      let name = tails.get(key);
      if (name === undefined) {
        const take = `${comma ? `"," ${ws} ` : ''}${kvs[i]} ${tail(i + 1, true)}`;
        const body = required.includes(names[i]) ? take : `${take} | ${tail(i + 1, comma)}`;
        tails.set(key, (name = this.#rule(`${hint}-after-${i}${comma ? '-c' : ''}`, body)));
      }
      return name;
    };
    return `"{" ${ws} ${tail(0, false)} "}"`;
  }
}

/** A JSON value's type, as JSON Schema names it (integers are "integer"). */
function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * GBNF for decimal numbers (no exponent) whose magnitude lies between integers a <= b, either
 * end maybe exclusive; alternatives by integer part (none when the range is empty).
 */
function magnitudes(a: number, aEx: boolean, b: number, bEx: boolean): string[] {
  // at most 16 fraction digits, as unbounded numbers; nonzero: k zeros, a nonzero digit, the rest
  const frac = '("." [0-9]{1,16})?', zero = '("." "0"{1,16})?';
  const nonzero = `"." (${Array.from({ length: 16 }, (_, k) => `${k ? `"0"{${k}} ` : ''}[1-9] [0-9]{0,${15 - k}}`).join(' | ')})`;
  if (a === b) return aEx || bEx ? [] : [`"${a}" ${zero}`];
  const alts = [aEx ? `"${a}" ${nonzero}` : `"${a}" ${frac}`];
  if (a + 1 <= b - 1) alts.push(`(${integerRange(a + 1, b - 1)}) ${frac}`);
  if (!bEx) alts.push(`"${b}" ${zero}`);
  return alts;
}

/** A GBNF literal for a text. */
export function gbnfString(text: string): string {
  let s = '"';
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') s += `\\${ch}`;
    else if (c < 0x20 || c === 0x7f) s += `\\x${c.toString(16).padStart(2, '0')}`;
    else s += ch;
  }
  return `${s}"`;
}

/** GBNF for the decimal integers in [lo, hi] (no leading zeros, no "-0"). */
export function integerRange(lo: number, hi: number): string {
  const alts: string[] = [];
  if (lo < 0) {
    const neg = nonNegativeRange(Math.max(1, -hi), -lo);
    alts.push(`"-" (${neg.join(' | ')})`);
  }
  if (hi >= 0) alts.push(...nonNegativeRange(Math.max(0, lo), hi));
  return alts.join(' | ');
}

/** Alternatives for [a, b], a ≥ 0, split by number of digits. */
function nonNegativeRange(a: number, b: number): string[] {
  const out: string[] = [];
  for (let d = String(a).length; d <= String(b).length; d++) {
    const lo = Math.max(a, d === 1 ? 0 : 10 ** (d - 1)), hi = Math.min(b, 10 ** d - 1);
    if (lo <= hi) out.push(sameLength(String(lo), String(hi)));
  }
  return out;
}

/** GBNF for the digit strings of one length between lo and hi (inclusive). */
function sameLength(lo: string, hi: string): string {
  if (lo === hi) return `"${lo}"`;
  let k = 0;
  while (lo[k] === hi[k]) k++;
  const prefix = k ? `"${lo.slice(0, k)}" ` : '';
  const x = Number(lo[k]), y = Number(hi[k]), r = lo.length - k - 1;
  const loRest = lo.slice(k + 1), hiRest = hi.slice(k + 1);
  const any = r ? ` [0-9]{${r}}` : '';
  if (/^0*$/.test(loRest) && /^9*$/.test(hiRest)) return `${prefix}[${x}-${y}]${any}`;
  const alts: string[] = [];
  alts.push(r ? `"${x}" (${sameLength(loRest, '9'.repeat(r))})` : `"${x}"`);
  if (y - x > 1) alts.push(`[${x + 1}-${y - 1}]${any}`);
  alts.push(r ? `"${y}" (${sameLength('0'.repeat(r), hiRest)})` : `"${y}"`);
  return `${prefix}(${alts.join(' | ')})`;
}
