/**
 * Hostile tokenizer.json files (issue 15): every schema problem is a FuselmError naming the
 * field (E_FORMAT for a wrong type or value, E_UNSUPPORTED for a component fuselm lacks), never a
 * raw TypeError, a hang or a tokenizer that sends non-integer ids to the model.
 */
import assert from 'node:assert/strict';
import { tokenizerFromJson } from '../../lib/tokenizer/from-tokenizer-json.js';

import { tokJson } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const throwsCode = (f: () => unknown, code: string, field?: RegExp) =>
  assert.throws(f, (e: any) => {
    assert.equal(e?.name === 'FuselmError' || e?.name === 'FormatError', true, `not a FuselmError: ${e}`);
    assert.equal(e.code, code, e.message);
    if (field) assert.match(e.message, field);
    return true;
  });

describe('hostile tokenizer.json', () => {
  it('the valid base file loads and round-trips', () => {
    const t = tokenizerFromJson(tokJson());
    assert.deepEqual(t.encode('a b'), [3, 0, 2]);
    assert.equal(t.decode(t.encode('a b')), 'a b');
  });

  it('Metaspace with an empty replacement is E_FORMAT at load (encode() used to spin forever)', () => {
    throwsCode(() => tokenizerFromJson(tokJson((j) => (j.pre_tokenizer.replacement = ''))), 'E_FORMAT', /pre_tokenizer\.replacement/);
    throwsCode(() => tokenizerFromJson(tokJson((j) => (j.decoder.replacement = ''))), 'E_FORMAT', /decoder\.replacement/);
    throwsCode(() => tokenizerFromJson(tokJson((j) => (j.pre_tokenizer.replacement = 'ab'))), 'E_FORMAT', /replacement/);
    throwsCode(() => tokenizerFromJson(tokJson((j) => (j.pre_tokenizer.prepend_scheme = 'constructor'))), 'E_UNSUPPORTED', /prepend_scheme/);
  });

  it('vocab ids that are not integers in range are E_FORMAT (they used to reach the forward pass)', () => {
    for (const bad of ['x', 8.5, null, -1, 1e12, true])
      throwsCode(() => tokenizerFromJson(tokJson((j) => (j.model.vocab.a = bad))), 'E_FORMAT', /model\.vocab/);
    for (const bad of ['4', 4.5, null])
      throwsCode(() => tokenizerFromJson(tokJson((j) => (j.added_tokens[0].id = bad))), 'E_FORMAT', /added_tokens\[0\]\.id/);
  });

  it('schema problems are typed errors naming the field, not TypeErrors', () => {
    const cases: Array<[(j: any) => void, string, RegExp]> = [
      [(j) => (j.model = 5), 'E_FORMAT', /model/],
      [(j) => (j.model.vocab = 'abc'), 'E_FORMAT', /model\.vocab/],
      [(j) => (j.model.merges = 5), 'E_FORMAT', /model\.merges/],
      [(j) => (j.model.merges = [[1, 2]]), 'E_FORMAT', /merges\[0\]/],
      [(j) => (j.model.merges = [null]), 'E_FORMAT', /merges\[0\]/],
      [(j) => (j.model.type = 5), 'E_FORMAT', /model\.type/],
      [(j) => (j.model.byte_fallback = 'yes'), 'E_FORMAT', /byte_fallback/],
      [(j) => (j.added_tokens = {}), 'E_FORMAT', /added_tokens/],
      [(j) => (j.added_tokens = [null]), 'E_FORMAT', /added_tokens\[0\]/],
      [(j) => (j.added_tokens[0].content = 7), 'E_FORMAT', /added_tokens\[0\]\.content/],
      [(j) => (j.added_tokens[0].content = ''), 'E_FORMAT', /added_tokens\[0\]\.content/],
      [(j) => (j.pre_tokenizer = { type: 'Sequence', pretokenizers: 5 }), 'E_FORMAT', /pretokenizers/],
      [(j) => (j.pre_tokenizer = { type: 'Sequence', pretokenizers: [null, 3] }), 'E_FORMAT', /pretokenizers\[1\]/],
      [(j) => (j.pre_tokenizer = { type: 'Split', pattern: { String: 'a' }, behavior: 'constructor' }), 'E_UNSUPPORTED', /behavior/],
      [(j) => (j.pre_tokenizer = { type: 'Split', pattern: { String: '' }, behavior: 'Isolated' }), 'E_FORMAT', /pattern/],
      [(j) => (j.pre_tokenizer = { type: 'Punctuation', behavior: '__proto__' }), 'E_UNSUPPORTED', /behavior/],
      [(j) => (j.pre_tokenizer = { type: 'CharDelimiterSplit', delimiter: 5 }), 'E_FORMAT', /delimiter/],
      [(j) => (j.pre_tokenizer = { type: 'toString' }), 'E_UNSUPPORTED', /pre_tokenizer/],
      [(j) => (j.pre_tokenizer = 'Metaspace'), 'E_FORMAT', /pre_tokenizer/],
      [(j) => (j.normalizer = { type: 'Sequence', normalizers: 'x' }), 'E_FORMAT', /normalizers/],
      [(j) => (j.normalizer = { type: 'Prepend', prepend: 5 }), 'E_FORMAT', /prepend/],
      [(j) => (j.normalizer = { type: 'Replace', pattern: { String: 'a' }, content: null }), 'E_FORMAT', /content/],
      [(j) => (j.normalizer = { type: 'Replace', pattern: 5, content: 'x' }), 'E_FORMAT', /pattern/],
      [(j) => (j.decoder = { type: 'Sequence', decoders: {} }), 'E_FORMAT', /decoders/],
      [(j) => (j.decoder = { type: 'Strip', content: ' ', start: -1 }), 'E_FORMAT', /start/],
      [(j) => (j.decoder = { type: 'Replace', pattern: { String: '' }, content: ' ' }), 'E_FORMAT', /pattern/],
      [(j) => (j.post_processor = { type: 'TemplateProcessing', single: 5 }), 'E_FORMAT', /single/],
      [(j) => (j.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: 'x' } }], special_tokens: { x: { ids: ['a'] } } }), 'E_FORMAT', /ids/],
      [(j) => (j.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: 'x' } }], special_tokens: { x: { ids: [99] } } }), 'E_FORMAT', /outside the vocabulary/],
      [(j) => (j.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: 'toString' } }] }), 'E_FORMAT', /no ids/],
      [(j) => (j.post_processor = { type: 'BertProcessing', cls: 5, sep: ['</s>', 4] }), 'E_FORMAT', /cls/],
    ];
    for (const [patch, code, field] of cases) throwsCode(() => tokenizerFromJson(tokJson(patch)), code, field);
  });

  it('encode() and decode() refuse arguments of the wrong type with E_INVALID_ARG', () => {
    const t = tokenizerFromJson(tokJson());
    for (const bad of [null, undefined, 5, {}]) throwsCode(() => t.encode(bad as any), 'E_INVALID_ARG', /encode/);
    throwsCode(() => t.encode('a', null as any), 'E_INVALID_ARG', /options/);
    for (const bad of [null, undefined, 5, 'abc']) throwsCode(() => t.decode(bad as any), 'E_INVALID_ARG', /decode/);
    throwsCode(() => t.decode([1.5]), 'E_INVALID_ARG');
    throwsCode(() => t.decode([null as any]), 'E_INVALID_ARG');
  });
});
