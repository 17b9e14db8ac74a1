/**
 * Token masks: the fast mask (per-position token cache + dependent tokens + per-state cache)
 * equals the plain reference — every token's bytes walked from the state one by one — at every
 * step of random walks through JSON-like grammars, on a synthetic vocabulary full of partial
 * UTF-8 tokens and on GPT-2's real byte-level vocabulary (from ../shared). End-of-generation
 * tokens are allowed exactly where the grammar may end; the vocabulary trie holds every token
 * once; the compiled masks are reused across requests.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { compileGbnf } from '../../lib/grammar/compile.js';
import { grammarMasks } from '../../lib/grammar/constraint.js';
import { jsonSchemaToGbnf } from '../../lib/grammar/json-schema.js';
import { DEAD } from '../../lib/grammar/stacks.js';
import { TokenMasks } from '../../lib/grammar/token-masks.js';
import { VocabTrie } from '../../lib/grammar/vocab-trie.js';
import { parseGguf } from '../../lib/formats/gguf.js';
import { tokenizerFromGguf } from '../../lib/tokenizer/from-gguf.js';
import type { Tokenizer } from '../../lib/tokenizer/tokenizer.js';
import { rng } from '../helpers/random.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

const utf8 = new TextEncoder();

/** Single bytes, ASCII pieces, whole and split multi-byte characters; token 0 prints nothing, 1 is EOG. */
function syntheticVocab(r: () => number): Uint8Array[] {
  const out: Uint8Array[] = [new Uint8Array(0), new Uint8Array(0)];
  for (let b = 0; b < 256; b++) out.push(Uint8Array.of(b));
  const pieces = ['{', '}', '[', ']', '"', ':', ',', ' ', '\n', 'a', 'b', 'name', 'age', 'true', 'false', 'null', '0', '12', '-', '.', 'e', '\\', 'é', '日本', '😀'];
  for (let n = 0; n < 3000; n++) {
    let s = '';
    const len = 1 + Math.floor(r() * 4);
    for (let k = 0; k < len; k++) s += pieces[Math.floor(r() * pieces.length)];
    const b = utf8.encode(s);
    // cut some inside a character
    out.push(r() < 0.2 ? b.subarray(0, Math.max(1, b.length - 1)) : b);
  }
  return out;
}

const GRAMMARS: Record<string, string> = {
  json: jsonSchemaToGbnf(true),
  object: jsonSchemaToGbnf({
    type: 'object',
    properties: { name: { type: 'string', maxLength: 6 }, age: { type: 'integer', minimum: -5, maximum: 120 }, tags: { type: 'array', items: { enum: ['a', 'é', 1] }, maxItems: 3 } },
    required: ['name'],
  }),
  unicode: 'root ::= ([^a-z"] | "日本")+ "!"',
};

/** Random walk through the grammar, checking the mask against the reference at every step. */
function checkWalks(m: TokenMasks, bytes: Uint8Array[], eog: number[], seed: number, walks: number, steps: number): number {
  const r = rng(seed);
  let checked = 0;
  for (let w = 0; w < walks; w++) {
    let s = m.initial;
    for (let i = 0; i < steps && !m.mustEnd(s); i++) {
      const mask = m.mask(s);
      const ok: number[] = [];
      for (let t = 0; t < bytes.length; t++) {
        const ref = eog.includes(t) ? m.canEnd(s) : bytes[t].length > 0 && m.stacks.walk(s, bytes[t]) !== DEAD;
        const got = (mask[t >> 5] & (1 << (t & 31))) !== 0;
        if (ref !== got) assert.fail(`step ${i}: token ${t} (${JSON.stringify(Array.from(bytes[t]))}): mask says ${got}, reference ${ref}`);
        if (ref) ok.push(t);
        checked++;
      }
      assert.ok(ok.length > 0, 'a state with no allowed token');
      const t = ok[Math.floor(r() * ok.length)];
      if (eog.includes(t)) break;
      s = m.next(s, t);
      assert.notEqual(s, DEAD);
    }
  }
  return checked;
}

describe('grammar token masks', () => {
  it('the vocabulary trie holds every token with bytes once, in byte order', () => {
    const bytes = syntheticVocab(rng(1));
    const trie = new VocabTrie(bytes);
    const seen = new Set<number>();
    for (let n = 0; n < trie.nodes; n++) {
      for (let k = trie.first[n]; k < trie.first[n] + trie.count[n]; k++) seen.add(trie.order[k]);
      assert.ok(trie.end[n] > n && trie.end[n] <= trie.nodes);
    }
    assert.equal(seen.size, bytes.filter((b) => b.length > 0).length);
    assert.ok(!seen.has(0) && !seen.has(1));
  });

  for (const [name, g] of Object.entries(GRAMMARS))
    it(`equal the reference at every step (${name}, synthetic vocabulary with split characters)`, () => {
      const bytes = syntheticVocab(rng(2));
      const m = new TokenMasks(compileGbnf(g), { bytes, eog: [1] });
      assert.ok(checkWalks(m, bytes, [1], 3, 8, 60) > 10000);
    });

  it("equal the reference on GPT-2's byte-level vocabulary", function () {
    requireShared(this, 'tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf');
    const file = sharedPath('tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf');
    const data = readFileSync(file);
    const tok = tokenizerFromGguf(parseGguf(new Uint8Array(data.buffer, data.byteOffset, data.length), { path: file, fileSize: data.length }));
    const bytes = Array.from({ length: tok.vocabSize }, (_, i) => tok.tokenBytes(i));
    const m = new TokenMasks(compileGbnf(GRAMMARS.object), { bytes, eog: [...tok.eogIds] });
    assert.ok(checkWalks(m, bytes, [...tok.eogIds], 4, 2, 25) > 100000);
  });

  it('the trie built in the worker equals the one built here; prepare() makes the masks mask() makes', async function () {
    requireShared(this, 'tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf');
    const file = sharedPath('tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf');
    const data = readFileSync(file);
    const tok = tokenizerFromGguf(parseGguf(new Uint8Array(data.buffer, data.byteOffset, data.length), { path: file, fileSize: data.length }));
    const bytes = Array.from({ length: tok.vocabSize }, (_, i) => tok.tokenBytes(i));
    const here = new VocabTrie(bytes);
    const built = await VocabTrie.build(bytes);
    for (const k of ['byte', 'end', 'first', 'count', 'order', 'nodes', 'depth'] as const) assert.deepEqual(built[k], here[k], k);
    const eog = [...tok.eogIds];
    const r = rng(5);
    let prepared = 0;
    for (const g of Object.values(GRAMMARS)) {
      // two instances: one made in slices by prepare(), one all at once by mask()
      const sliced = new TokenMasks(compileGbnf(g), { bytes, eog, trie: built });
      const whole = new TokenMasks(compileGbnf(g), { bytes, eog, trie: here });
      let s = sliced.initial, w = whole.initial; // (each instance numbers its states)
      for (let i = 0; i < 12 && !sliced.mustEnd(s); i++) {
        if (!sliced.ready(s)) prepared++;
        await sliced.prepare(s);
        assert.ok(sliced.ready(s));
        const mask = sliced.mask(s);
        assert.deepEqual(mask, whole.mask(w), `step ${i}`);
        const ok: number[] = [];
        for (let t = 0; t < bytes.length; t++) if (mask[t >> 5] & (1 << (t & 31)) && !eog.includes(t)) ok.push(t);
        if (ok.length === 0) break;
        const t = ok[Math.floor(r() * ok.length)];
        [s, w] = [sliced.next(s, t), whole.next(w, t)];
      }
    }
    assert.ok(prepared >= 20, `${prepared} states prepared`);
  });

  it("tokenizer.tokenBytes gives each token's printed bytes (SentencePiece and byte-level BPE)", function () {
    requireShared(this, 'tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf', 'tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf');
    const load = (rel: string) => {
      const file = sharedPath(rel);
      const data = readFileSync(file);
      return tokenizerFromGguf(parseGguf(new Uint8Array(data.buffer, data.byteOffset, data.length), { path: file, fileSize: data.length }));
    };
    const dec = new TextDecoder();
    for (const tok of [load('tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf'), load('tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf')]) {
      // the bytes of a text's tokens, joined, are the text (a leading space kept)
      const text = ' Hello, wörld 日本 😀 {"a": 1}';
      const ids = tok.encode(text);
      const joined = ids.flatMap((id) => Array.from(tok.tokenBytes(id)));
      assert.equal(dec.decode(Uint8Array.from(joined)).trimStart(), text.trimStart());
      // the emoji's bytes come in pieces that are not whole characters
      assert.ok(ids.some((id) => { const b = tok.tokenBytes(id); return b.length > 0 && (b[0] & 0xc0) === 0x80; }), 'a token starting with a continuation byte');
    }
    const spm = load('tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf');
    assert.equal(spm.tokenBytes(spm.bos!).length, 0, 'a control token prints nothing');
  });

  it('allow end-of-generation tokens only where the grammar may end', () => {
    const bytes = [new Uint8Array(0), utf8.encode('a'), utf8.encode('b')];
    const m = new TokenMasks(compileGbnf('root ::= "a" "b"?'), { bytes, eog: [0] });
    const has = (s: number, t: number) => (m.mask(s)[0] & (1 << t)) !== 0;
    assert.ok(!has(m.initial, 0) && has(m.initial, 1) && !has(m.initial, 2));
    const a = m.next(m.initial, 1);
    assert.ok(has(a, 0) && has(a, 2) && m.canEnd(a) && !m.mustEnd(a));
    const ab = m.next(a, 2);
    assert.ok(m.mustEnd(ab));
    assert.equal(m.next(m.initial, 0), DEAD);
  });

  it('apply() sets -Infinity on every token left out and fails clearly when none is left', () => {
    const bytes = Array.from({ length: 70 }, (_, i) => utf8.encode(i < 10 ? String(i) : `x${i}`));
    const m = new TokenMasks(compileGbnf('root ::= [0-4]'), { bytes, eog: [] });
    const logits = new Float32Array(72).fill(1);
    m.apply(m.initial, logits);
    for (let i = 0; i < 72; i++) assert.equal(logits[i], i < 5 ? 1 : -Infinity, `logit ${i}`);
    const none = new TokenMasks(compileGbnf('root ::= "é"'), { bytes, eog: [] });
    assert.throws(() => none.apply(none.initial, new Float32Array(70)), { code: 'E_INVALID_ARG', message: /no token of the vocabulary can continue/ });
  });

  it('are compiled once per tokenizer and grammar, and reused', () => {
    const bytes = syntheticVocab(rng(5));
    const tok = { vocabSize: bytes.length, eogIds: [1], tokenBytes: (i: number) => bytes[i] } as unknown as Tokenizer;
    const a = grammarMasks(tok, { grammar: GRAMMARS.unicode });
    assert.ok(a && a === grammarMasks(tok, { grammar: GRAMMARS.unicode }));
    assert.ok(grammarMasks(tok, { jsonSchema: { type: 'string' } }) === grammarMasks(tok, { jsonSchema: { type: 'string' } }));
    assert.equal(grammarMasks(tok, {}), undefined);
    // the caches' size is tracked (a grammar past its budget is compiled afresh)
    const before = a.footprint;
    a.mask(a.next(a.initial, 2 + 0x41));
    assert.ok(a.footprint > before);
  });
});
