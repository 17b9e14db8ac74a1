/**
 * JSON Schemas for the structured-output tests (nested objects, optional properties, arrays,
 * tuples, enums, const, anyOf/oneOf/allOf, $ref, string limits, patterns, formats, integer and
 * number ranges, nullable),
 * every one with a finite language so that a generation always completes; an ajv validator for
 * them; and the longest output a grammar allows (to size maxTokens and the context).
 */
import { Ajv2020 as Ajv } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { CHAR, type CompiledGrammar, END, REF } from '../../lib/grammar/compile.js';
import type { JsonSchema } from '../../lib/grammar/json-schema.js';

export const SCHEMAS: Record<string, Exclude<JsonSchema, boolean>> = {
  flat: {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 10 }, age: { type: 'integer', minimum: 0, maximum: 120 }, ok: { type: 'boolean' } },
    required: ['name', 'age', 'ok'],
  },
  optional: {
    type: 'object',
    properties: { a: { type: 'integer', minimum: 1, maximum: 9 }, b: { type: 'string', maxLength: 3 }, c: { type: 'null' }, d: { type: 'boolean' } },
    required: ['b'],
  },
  nested: {
    type: 'object',
    properties: {
      person: { type: 'object', properties: { first: { type: 'string', maxLength: 8 }, zip: { type: 'string', pattern: '^\\d{5}$' } }, required: ['first', 'zip'] },
      active: { type: 'boolean' },
    },
    required: ['person', 'active'],
  },
  intArray: { type: 'array', items: { type: 'integer', minimum: -20, maximum: 100 }, minItems: 1, maxItems: 4 },
  colors: { enum: ['red', 'green', 'blue', 'dark "grey"'] },
  constant: { const: { kind: 'fixed', n: [1, 2, null] } },
  anyOf: { anyOf: [{ type: 'string', maxLength: 5 }, { type: 'integer', minimum: -3, maximum: 3 }, { type: 'null' }] },
  oneOf: {
    oneOf: [
      { type: 'object', properties: { kind: { const: 'circle' }, r: { type: 'integer', minimum: 1, maximum: 50 } }, required: ['kind', 'r'] },
      { type: 'object', properties: { kind: { const: 'square' }, side: { type: 'integer', minimum: 1, maximum: 50 } }, required: ['kind', 'side'] },
    ],
  },
  refs: {
    $defs: { point: { type: 'object', properties: { x: { type: 'integer', minimum: -99, maximum: 99 }, y: { type: 'integer', minimum: -99, maximum: 99 } }, required: ['x', 'y'] } },
    type: 'object',
    properties: { from: { $ref: '#/$defs/point' }, to: { $ref: '#/$defs/point' } },
    required: ['from', 'to'],
  },
  nullable: { type: ['string', 'null'], maxLength: 6 },
  lengths: { type: 'string', minLength: 2, maxLength: 4 },
  date: { type: 'string', format: 'date' },
  uuid: { type: 'string', format: 'uuid' },
  event: { type: 'object', properties: { at: { type: 'string', format: 'date-time' }, tz: { type: 'string', format: 'time' } }, required: ['at'] },
  email: { type: 'string', format: 'email' },
  pattern: { type: 'string', pattern: '^[A-Z]{2}-[0-9]{3}(x|yz)?$' },
  number: { type: 'object', properties: { v: { type: 'number' } }, required: ['v'], additionalProperties: false },
  enumArray: { type: 'array', items: { enum: ['a', 'b', 3, true] }, minItems: 2, maxItems: 3 },
  matrix: { type: 'array', items: { type: 'array', items: { type: 'boolean' }, maxItems: 3 }, maxItems: 2 },
  bounds: { type: 'object', properties: { n: { type: 'integer', exclusiveMinimum: 10, exclusiveMaximum: 1000 }, m: { type: 'integer', maximum: -5, minimum: -300 } }, required: ['n', 'm'] },
  allOf: {
    $defs: { base: { type: 'object', properties: { id: { type: 'integer', minimum: 1, maximum: 99 }, tag: { type: 'string', maxLength: 3 } }, required: ['id'] } },
    allOf: [{ $ref: '#/$defs/base' }, { type: 'object', properties: { done: { type: 'boolean' }, tag: { type: 'string', minLength: 1 } }, required: ['done'] }],
  },
  numberRanges: {
    type: 'object',
    properties: { p: { type: 'number', minimum: 0, maximum: 1 }, t: { type: 'number', exclusiveMinimum: -40, exclusiveMaximum: 60 }, neg: { type: 'number', maximum: 0, exclusiveMinimum: -2 } },
    required: ['p', 't', 'neg'],
  },
  tuple: { type: 'array', prefixItems: [{ type: 'string', maxLength: 4 }, { type: 'integer', minimum: 0, maximum: 9 }, { type: 'boolean' }], items: false, minItems: 2 },
  tupleRest: { type: 'array', prefixItems: [{ const: 'v1' }], items: { type: 'integer', minimum: 0, maximum: 3 }, maxItems: 3 },
  formats: {
    type: 'object',
    properties: { site: { type: 'string', format: 'uri' }, host: { type: 'string', format: 'hostname' }, ip: { type: 'string', format: 'ipv4' } },
    required: ['site', 'host', 'ip'],
  },
  nullableKeyword: { type: 'integer', minimum: 0, maximum: 5, nullable: true },
};

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** An ajv for draft 2020-12 (prefixItems), with the formats. */
export function makeAjv(): Ajv {
  // (strictTuples off: a tuple whose later items may be left out is meant)
  const ajv = new Ajv({ strict: true, strictTuples: false, allErrors: true });
  addFormats(ajv);
  return ajv;
}

/** The most bytes a string of the grammar's language can have (Infinity for recursion). */
export function longestBytes(g: CompiledGrammar): number {
  const memo = new Map<number, number>();
  const maxCharBytes = (c: number) => {
    const r = g.classes[c].ranges;
    const top = r[r.length - 1];
    return top < 0x80 ? 1 : top < 0x800 ? 2 : top < 0x10000 ? 3 : 4;
  };
  const rule = (id: number): number => {
    const m = memo.get(id);
    if (m !== undefined) return m;
    memo.set(id, Infinity); // on the path: recursion
    let best = 0;
    for (const start of g.ruleAlts[id]) {
      let sum = 0;
      for (let p = start; g.kind[p] !== END; p++) sum += g.kind[p] === CHAR ? maxCharBytes(g.arg[p]) : g.kind[p] === REF ? rule(g.arg[p]) : 0;
      best = Math.max(best, sum);
    }
    memo.set(id, best);
    return best;
  };
  return rule(g.root);
}
