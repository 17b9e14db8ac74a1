/**
 * JSON Schema → GBNF: random walks through each of the test schemas' grammars (uniform
 * over the allowed tokens of a vocabulary of bytes and JSON-ish pieces) always give JSON that
 * parses and that ajv validates; integer ranges accept exactly their integers (exhaustively on
 * random bounds); the pattern subset accepts what the JavaScript RegExp accepts; what cannot be
 * expressed is E_UNSUPPORTED naming the keyword, what is malformed E_INVALID_ARG.
 */
import assert from 'node:assert/strict';
import { compileGbnf } from '../../lib/grammar/compile.js';
import { integerRange, type JsonSchema, jsonSchemaToGbnf } from '../../lib/grammar/json-schema.js';
import { regexToGbnf } from '../../lib/grammar/regex.js';
import { StackSets } from '../../lib/grammar/stacks.js';
import { TokenMasks } from '../../lib/grammar/token-masks.js';
import { longestBytes, makeAjv, SCHEMAS } from '../helpers/json-schemas.js';
import { rng } from '../helpers/random.js';
import { accepts } from './gbnf.test.js';

const utf8 = new TextEncoder();

function vocab(): Uint8Array[] {
  const out: Uint8Array[] = [new Uint8Array(0)]; // 0: end of generation
  for (let b = 0; b < 256; b++) out.push(Uint8Array.of(b));
  for (const p of ['{"', '":', '",', ', "', '"}', 'name', 'true', 'false', 'null', '12', '-0', '2024-', 'T1', ':00', 'Z', '@', '.com', 'é', '日本', '  ', '\n  ', '\\u00e9', '\\"', 'kind', 'circle', '"square"', 'red'])
    out.push(utf8.encode(p));
  return out;
}

describe('JSON Schema to grammar', () => {
  const bytes = vocab();
  const ajv = makeAjv();

  for (const [name, schema] of Object.entries(SCHEMAS))
    it(`schema "${name}": every random walk is valid JSON of the schema`, () => {
      const g = compileGbnf(jsonSchemaToGbnf(schema));
      const longest = longestBytes(g);
      assert.ok(Number.isFinite(longest), 'a finite language');
      const m = new TokenMasks(g, { bytes, eog: [0] });
      const validate = ajv.compile(schema);
      const r = rng(name.length * 7919);
      for (let w = 0; w < 40; w++) {
        let s = m.initial;
        const out: number[] = [];
        for (let i = 0; i <= longest && !m.mustEnd(s); i++) {
          const mask = m.mask(s);
          const ok: number[] = [];
          for (let t = 0; t < bytes.length; t++) if (mask[t >> 5] & (1 << (t & 31))) ok.push(t);
          const t = ok[Math.floor(r() * ok.length)];
          if (t === 0) break;
          out.push(...bytes[t]);
          s = m.next(s, t);
        }
        assert.ok(m.canEnd(s), 'the walk completed');
        const text = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(out));
        const value = JSON.parse(text);
        assert.ok(validate(value), `${text}: ${ajv.errorsText(validate.errors)}`);
      }
    });

  it('integer ranges accept exactly their integers, without leading zeros or -0', () => {
    const r = rng(7);
    const cases: Array<[number, number]> = [[0, 0], [-1, 1], [0, 9], [10, 99], [7, 1234], [-305, -17], [-1200, 1200], [99, 100], [1, 1000], [-9, -1]];
    for (let k = 0; k < 12; k++) {
      const a = Math.floor(r() * 3000) - 1500, b = a + Math.floor(r() * 1500);
      cases.push([a, b]);
    }
    for (const [lo, hi] of cases) {
      const st = new StackSets(compileGbnf(`root ::= ${integerRange(lo, hi)}`));
      for (let n = -1600; n <= 3100; n++) assert.equal(accepts(st, String(n)), n >= lo && n <= hi, `[${lo}, ${hi}] on ${n}`);
      assert.ok(!accepts(st, '-0') && !accepts(st, '00') && !accepts(st, `0${Math.max(lo, 1)}`));
    }
  });

  it('patterns accept what RegExp accepts (among strings JSON holds unescaped)', () => {
    const patterns = ['^[A-Z]{2}-\\d{3}$', 'ab+c', '^(foo|ba[rz])*$', '^\\w+@\\w+\\.(com|org)$', '^[^a-c]?x{2,3}$', '^a.c$', '\\s', '^\\S+$', '^(?:é|日)+$', '^\\W\\D$'];
    const alphabet = ['a', 'b', 'c', 'x', 'A', 'Z', '-', '1', '5', 'f', 'o', 'r', 'z', '@', '.', 'm', ' ', 'é', '日', '_', 'X'];
    const r = rng(11);
    for (const p of patterns) {
      const st = new StackSets(compileGbnf(`root ::= ${regexToGbnf(p)}`));
      const re = new RegExp(p, 'u');
      for (let n = 0; n < 2000; n++) {
        let s = '';
        const len = Math.floor(r() * 8);
        for (let k = 0; k < len; k++) s += alphabet[Math.floor(r() * alphabet.length)];
        if (n < 6) s = ['AB-123', 'abbc', 'foobar', 'a_1@x.org', 'xxx', 'a日c'][n];
        assert.equal(accepts(st, s), re.test(s), `/${p}/ on ${JSON.stringify(s)}`);
      }
    }
  });

  it('refuses what it cannot express with E_UNSUPPORTED naming the keyword', () => {
    const unsupported: Array<[JsonSchema, RegExp]> = [
      [{ type: 'string', foo: 1 }, /the keyword foo is not supported/],
      [{ allOf: [{ type: 'string', pattern: 'a' }, { pattern: 'b' }] }, /allOf: pattern is given differently in two schemas/],
      [{ allOf: [{ properties: { a: {} }, additionalProperties: false }, { properties: { b: {} } }] }, /additionalProperties in one schema rejects the property "b"/],
      [{ $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } }, allOf: [{ $ref: '#/$defs/a' }] }, /\$ref cycle/],
      [{ type: 'number', minimum: 1.5 }, /minimum 1.5 on a number: only integer bounds/],
      [{ type: 'object', patternProperties: { '^x': {}, '^y': {} } }, /patternProperties with 2 patterns/],
      [{ type: 'object', properties: { xa: {} }, patternProperties: { '^x': {} } }, /the property "xa" matches "\^x"/],
      [{ type: 'object', patternProperties: { '^x': {} }, additionalProperties: true }, /patternProperties beside additionalProperties/],
      [{ type: 'integer', multipleOf: 3 }, /the keyword multipleOf/],
      [{ type: 'array', uniqueItems: true }, /the keyword uniqueItems/],
      [{ type: 'string', format: 'ipv6' }, /format "ipv6" is not supported/],
      [{ $ref: 'http://example.com/s.json' }, /only local references/],
      [{ type: 'string', pattern: 'a(?=b)' }, /lookaround/],
      [{ type: 'string', pattern: '^"$' }, /would need an escape in JSON/],
      [{ type: 'string', pattern: '\\bword' }, /word boundary/],
      [{ type: 'object', properties: { a: false } }, /at #\/properties\/a: the schema false/],
      [{ type: 'array', items: [{ type: 'string' }] }, /tuples/],
      [{ type: 'string', maxLength: 20000 }, /maxLength 20000: at most 10000/],
    ];
    for (const [s, re] of unsupported) assert.throws(() => jsonSchemaToGbnf(s), (e: { code?: string; message: string }) => e.code === 'E_UNSUPPORTED' && re.test(e.message), JSON.stringify(s));
    const invalid: Array<[unknown, RegExp]> = [
      [{ type: 'strin' }, /type must be one of/],
      [{ type: 'integer', minimum: 5, maximum: 4 }, /no integer lies within/],
      [{ type: 'number', exclusiveMinimum: 4, maximum: 4 }, /no number lies within/],
      [{ allOf: [{ type: 'string' }, { type: 'integer' }] }, /allOf: no value has type "string" and type "integer"/],
      [{ allOf: [] }, /allOf must be a non-empty array/],
      [{ type: 'string', enum: [1, null] }, /no value of enum has type "string"/],
      [{ type: 'array', prefixItems: [{}], items: false, minItems: 2 }, /minItems 2 is above the 1 prefixItems/],
      [{ type: 'string', nullable: 'yes' }, /nullable must be a boolean/],
      [{ enum: [] }, /enum must be a non-empty array/],
      [{ $ref: '#/$defs/missing' }, /points at nothing/],
      [{ type: 'string', minLength: 3, maxLength: 2 }, /maxLength 2 is below minLength 3/],
      [{ type: 'object', required: 'a' }, /required must be an array of strings/],
      [42, /a schema must be an object or a boolean/],
    ];
    for (const [s, re] of invalid) assert.throws(() => jsonSchemaToGbnf(s as JsonSchema), (e: { code?: string; message: string }) => e.code === 'E_INVALID_ARG' && re.test(e.message), JSON.stringify(s));
  });

  it('number ranges accept exactly the decimals within integer bounds', () => {
    const r = rng(11);
    for (let t = 0; t < 40; t++) {
      const a = Math.floor(r() * 40) - 20, b = a + Math.floor(r() * 20);
      const s: Record<string, unknown> = { type: 'number' };
      const loEx = r() < 0.5, hiEx = r() < 0.5 && b > a;
      s[loEx ? 'exclusiveMinimum' : 'minimum'] = a;
      s[hiEx ? 'exclusiveMaximum' : 'maximum'] = b;
      if (loEx && a === b) continue;
      const st = new StackSets(compileGbnf(jsonSchemaToGbnf(s)));
      const inRange = (v: number) => (loEx ? v > a : v >= a) && (hiEx ? v < b : v <= b);
      for (let i = 0; i < 200; i++) {
        const v = Math.round((a - 3 + r() * (b - a + 6)) * 1000) / 1000;
        for (const text of [String(v), v.toFixed(2), v.toFixed(0)]) {
          if (text === '-0' || text.startsWith('-0.00') && Number(text) === 0) continue;
          assert.equal(accepts(st, text), inRange(Number(text)), `${JSON.stringify(s)} on ${text}`);
        }
      }
      assert.ok(!accepts(st, '1e1') && !accepts(st, '-0') && !accepts(st, '01'));
    }
  });

  it('allOf merges; enum and const keep the values of a type beside them', () => {
    const st = new StackSets(compileGbnf(jsonSchemaToGbnf({ allOf: [{ type: 'string' }, { enum: ['a', 1, 'b'] }] })));
    assert.ok(accepts(st, '"a"') && accepts(st, '"b"') && !accepts(st, '1'));
    const num = new StackSets(compileGbnf(jsonSchemaToGbnf({ allOf: [{ type: 'integer', minimum: 0 }, { maximum: 5 }, { exclusiveMinimum: 2 }] })));
    for (let n = -1; n <= 7; n++) assert.equal(accepts(num, String(n)), n > 2 && n <= 5, String(n));
  });

  it('patternProperties: keys of the pattern with their schema, beside the properties', () => {
    const schema = { type: 'object', properties: { id: { type: 'integer', minimum: 0, maximum: 9 } }, required: ['id'], patternProperties: { '^x-[a-z]{1,4}$': { type: 'boolean' } }, additionalProperties: false };
    const st = new StackSets(compileGbnf(jsonSchemaToGbnf(schema)));
    assert.ok(accepts(st, '{"id":1}') && accepts(st, '{"id":1,"x-ab":true,"x-q":false}'));
    assert.ok(!accepts(st, '{"id":1,"x-ab":1}') && !accepts(st, '{"id":1,"y":true}') && !accepts(st, '{"id":1,"x-abcde":true}'));
    const validate = makeAjv().compile(schema);
    for (const text of ['{"id":1,"x-ab":true,"x-q":false}', '{"id":3}']) assert.ok(validate(JSON.parse(text)), text);
    const only = new StackSets(compileGbnf(jsonSchemaToGbnf({ patternProperties: { '\\d': { type: 'null' } } })));
    assert.ok(accepts(only, '{}') && accepts(only, '{"a1":null,"2":null}') && !accepts(only, '{"a":null}'));
  });

  it('additionalProperties beside properties: other keys only, with the schema of their values', () => {
    const st = new StackSets(compileGbnf(jsonSchemaToGbnf({ type: 'object', properties: { a: { type: 'integer' }, ab: { type: 'string' } }, required: ['a'], additionalProperties: { type: 'boolean' } })));
    assert.ok(accepts(st, '{"a":1}') && accepts(st, '{"a":1,"ab":"x","abc":true,"b":false,"":true}'));
    assert.ok(!accepts(st, '{"a":1,"a":true}'), 'a listed name as another key');
    assert.ok(!accepts(st, '{"a":1,"ab":true}'), 'ab is listed: its own schema');
    assert.ok(!accepts(st, '{"a":1,"x":1}'), 'other values are booleans');
    assert.ok(!accepts(st, '{"a":1,"\u0061":true}'), 'no escapes in other keys');
    const quoted = new StackSets(compileGbnf(jsonSchemaToGbnf({ properties: { 'a"b': { type: 'integer' } }, additionalProperties: { type: 'null' } })));
    assert.ok(accepts(quoted, '{"a\\"b":1,"ab":null}') && !accepts(quoted, '{"a"b":null}'));
    const open = new StackSets(compileGbnf(jsonSchemaToGbnf({ properties: { a: { type: 'integer' } }, additionalProperties: true })));
    assert.ok(accepts(open, '{"x":[1,{"y":null}]}') && accepts(open, '{"a":2, "x":"s"}') && !accepts(open, '{"a":"s"}'));
  });

  it('recursive references make recursive rules', () => {
    const tree = { $defs: { node: { type: 'object', properties: { v: { type: 'integer', minimum: 0, maximum: 9 }, kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }, required: ['v'] } }, $ref: '#/$defs/node' };
    const st = new StackSets(compileGbnf(jsonSchemaToGbnf(tree)));
    assert.ok(accepts(st, '{"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4}]}]}'));
    assert.ok(!accepts(st, '{"v":1,"kids":[{"v":2},{"v":3},{"v":4}]}'));
  });
});
