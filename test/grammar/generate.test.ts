/**
 * Structured output through the public API. Property test: generations at temperature 1 with
 * random seeds across the test schemas (test/helpers/json-schemas.ts) always finish ('eog', the grammar complete) with
 * text that JSON.parse reads and ajv validates — on stories260K (../shared) and on a random-weight
 * llama with a 128,256-token byte-level BPE vocabulary (GPT-2's widened, ../shared). CI counts
 * are 100 and 40 generations; FUSELM_LONG_GRAMMAR=1 runs 500 on each. llama.cpp-style example
 * grammars (arithmetic, chess moves, lists; written here) only produce strings of their
 * language, checked by parsers in this file. The options work on generate, stream, chat.send and
 * beamSearch and are checked at run time.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compileGbnf } from '../../lib/grammar/compile.js';
import { jsonSchemaToGbnf } from '../../lib/grammar/json-schema.js';
import { parseGguf } from '../../lib/formats/gguf.js';
import { loadModel, type Model } from '../../lib/model/model.js';
import { widenedByteLevelVocab, writeSyntheticModel } from '../../lib/tools/synthetic.js';
import { longestBytes, makeAjv, SCHEMAS } from '../helpers/json-schemas.js';
import { rng } from '../helpers/random.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

const LONG = process.env.FUSELM_LONG_GRAMMAR === '1';

/** `count` generations spread over the schemas, each checked. */
async function propertyTest(model: Model, count: number, seed: number): Promise<void> {
  const ajv = makeAjv();
  const names = Object.keys(SCHEMAS);
  const r = rng(seed);
  for (let n = 0; n < count; n++) {
    const name = names[n % names.length];
    const schema = SCHEMAS[name];
    const longest = longestBytes(compileGbnf(jsonSchemaToGbnf(schema)));
    const res = await model.generate('Once upon a time', { jsonSchema: schema, temperature: 1, seed: Math.floor(r() * 2 ** 31), maxTokens: longest + 1 });
    assert.equal(res.finishReason, 'eog', `${name}: ${JSON.stringify(res.text)} ended by ${res.finishReason}`);
    let value: unknown;
    assert.doesNotThrow(() => (value = JSON.parse(res.text)), `${name}: ${JSON.stringify(res.text)} is not JSON`);
    const validate = ajv.compile(schema);
    assert.ok(validate(value), `${name}: ${res.text}: ${ajv.errorsText(validate.errors)}`);
  }
}

describe('structured output (generate with grammar / jsonSchema)', function () {
  this.timeout(LONG ? 3_600_000 : 600_000);

  describe('stories260K', () => {
    let model: Model;
    before(async function () {
      requireShared(this, 'models/stories260K.gguf');
      model = await loadModel(sharedPath('models/stories260K.gguf'));
    });
    after(async () => model?.dispose());

    it(`${LONG ? 500 : 100} generations at temperature 1 over ${Object.keys(SCHEMAS).length} schemas: all parse and validate`, async () => {
      await propertyTest(model, LONG ? 500 : 100, 260);
    });

    it('example grammars only produce strings of their language', async () => {
      // the checkers themselves tell members from non-members
      assert.ok(EXAMPLES.arithmetic.check('(a+12)*b= 7\n') && !EXAMPLES.arithmetic.check('1+=2\n') && !EXAMPLES.arithmetic.check('1234567=1\n'));
      assert.ok(EXAMPLES.chess.check('1. e4 Nf6\n2. O-O exd5+\n') && !EXAMPLES.chess.check('1. e9 e4\n'));
      assert.ok(EXAMPLES.list.check('- milk\n- eggs\n') && !EXAMPLES.list.check('- \n'));
      for (const [name, { grammar, check }] of Object.entries(EXAMPLES)) {
        let finished = 0;
        for (let seed = 0; seed < 8; seed++) {
          const r = await model.generate('Once upon a time', { grammar, temperature: 1, seed, maxTokens: 300 });
          if (r.finishReason === 'maxTokens') continue; // a long but unfinished output cannot be checked whole
          assert.equal(r.finishReason, 'eog');
          assert.ok(check(r.text), `${name}: ${JSON.stringify(r.text)}`);
          finished++;
        }
        assert.ok(finished >= 4, `${name}: only ${finished} of 8 generations finished`);
      }
    });

    it('greedy, stream, batches, chat.send and beamSearch follow the grammar too', async () => {
      const grammar = 'root ::= "The " animal " was " ("big" | "small" | "happy") "."\nanimal ::= [a-z]{2,8}';
      const ok = (t: string) => /^The [a-z]{2,8} was (big|small|happy)\.$/.test(t);
      const greedy = await model.generate('Once upon a time', { grammar, maxTokens: 40 });
      assert.ok(ok(greedy.text) && greedy.finishReason === 'eog', greedy.text);
      let streamed = '';
      for await (const c of model.stream('Once upon a time', { grammar, temperature: 1, seed: 3, maxTokens: 40 })) streamed += c.text;
      const same = await model.generate('Once upon a time', { grammar, temperature: 1, seed: 3, maxTokens: 40 });
      assert.equal(streamed, same.text);
      assert.ok(ok(streamed), streamed);
      const chat = model.chat();
      const reply = await chat.send('Tell me about Tom.', { jsonSchema: SCHEMAS.flat, temperature: 1, seed: 5, maxTokens: 400 });
      assert.ok(makeAjv().validate(SCHEMAS.flat, JSON.parse(reply.text)), reply.text);
      const batch = await model.generate(['Once upon a time', 'Tom had a dog'], { grammar, temperature: 1, seed: 9, maxTokens: 40 });
      for (const b of batch) assert.ok(ok(b.text) && b.finishReason === 'eog', b.text);
      const beams = await model.beamSearch('Once upon a time', { grammar, numBeams: 3, numReturnSequences: 3, maxTokens: 40 });
      assert.equal(beams.sequences.length, 3);
      for (const s of beams.sequences) assert.ok(ok(s.text) && s.finishReason === 'eog', s.text);
    });

    it('checks the options at run time', async () => {
      const bad = async (o: object, code: string, re: RegExp) =>
        assert.rejects(model.generate('Once', o as never), (e: { code?: string; message: string }) => e.code === code && re.test(e.message));
      await bad({ grammar: 5 }, 'E_INVALID_ARG', /grammar must be a string/);
      await bad({ jsonSchema: 'x' }, 'E_INVALID_ARG', /jsonSchema must be a JSON Schema/);
      await bad({ grammar: 'root ::= "a"', jsonSchema: {} }, 'E_INVALID_ARG', /not both/);
      await bad({ grammar: 'root ::= "a" b' }, 'E_INVALID_ARG', /rule 'b' is not defined/);
      await bad({ jsonSchema: { type: 'string', format: 'ipv6' } }, 'E_UNSUPPORTED', /format "ipv6"/);
      await assert.rejects(model.beamSearch('Once', { numBeams: 2, maxTokens: 4, grammar: 'root ::= (' }), { code: 'E_INVALID_ARG' });
      await assert.rejects(model.chat().send('Hi', { jsonSchema: 3 as never }), { code: 'E_INVALID_ARG' });
    });
  });

  describe('random-weight llama, 128k byte-level BPE vocabulary', () => {
    let model: Model;
    const file = path.join(os.tmpdir(), `fuselm-grammar-test-${process.pid}.gguf`);
    before(async function () {
      requireShared(this, 'tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf');
      const src = sharedPath('tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf');
      const d = readFileSync(src);
      const vocab = widenedByteLevelVocab(parseGguf(new Uint8Array(d.buffer, d.byteOffset, d.length), { path: src, fileSize: d.length }), 128256);
      await writeSyntheticModel(file, { arch: 'llama', dtype: 'f16', vocabSize: 128256, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 128, contextLength: 1024, vocab });
      model = await loadModel(file);
      assert.equal(model.tokenizer.vocabSize, 128256);
    });
    after(async () => {
      await model?.dispose();
      rmSync(file, { force: true });
    });

    it(`${LONG ? 500 : 40} generations at temperature 1 over ${Object.keys(SCHEMAS).length} schemas: all parse and validate`, async () => {
      await propertyTest(model, LONG ? 500 : 40, 128);
    });
  });
});

/** Grammars in the spirit of llama.cpp's examples (written here), each with a checker. */
const EXAMPLES: Record<string, { grammar: string; check: (s: string) => boolean }> = {
  arithmetic: {
    grammar: `root ::= (expr "=" ws term "\\n"){1,2}
expr ::= term ([-+*/] term){0,3}
term ::= ident | num | "(" ws expr ")" ws
ident ::= [a-z] [a-z0-9_]{0,7} ws
num ::= [0-9]{1,6} ws
ws ::= [ \\t]{0,3}`,
    check: (s) => {
      // a recursive-descent parser of the same language
      let i = 0;
      const ws = () => {
        let n = 0;
        while ((s[i] === ' ' || s[i] === '\t') && n < 3) (i++, n++);
      };
      const term = (): boolean => {
        if (s[i] === '(') {
          i++;
          ws();
          if (!expr() || s[i] !== ')') return false;
          i++;
          ws();
          return true;
        }
        const m = /^([a-z][a-z0-9_]{0,7}|[0-9]{1,6})/.exec(s.slice(i));
        if (!m) return false;
        i += m[0].length;
        if (/^[a-z]/.test(m[0]) && /^[a-z0-9_]/.test(s[i] ?? '')) return false;
        if (/^[0-9]/.test(m[0]) && /^[0-9]/.test(s[i] ?? '')) return false;
        ws();
        return true;
      };
      const expr = (): boolean => {
        if (!term()) return false;
        for (let n = 0; n < 3 && '-+*/'.includes(s[i] ?? 'x'); n++) {
          i++;
          if (!term()) return false;
        }
        return true;
      };
      let lines = 0;
      while (i < s.length) {
        if (!expr() || s[i] !== '=') return false;
        i++;
        ws();
        if (!term() || s[i] !== '\n') return false;
        i++;
        lines++;
      }
      return lines > 0 && lines <= 2;
    },
  },
  chess: {
    grammar: `root ::= "1. " move " " move "\\n" ([2-9] ". " move " " move "\\n"){0,3}
move ::= (pawn | nonpawn | castle) [+#]?
pawn ::= ([a-h] "x")? [a-h] [1-8] ("=" [NBRQ])?
nonpawn ::= [NBKQR] [a-h]? [1-8]? "x"? [a-h] [1-8]
castle ::= "O-O" "-O"?`,
    check: (s) => {
      const move = '(?:(?:[a-h]x)?[a-h][1-8](?:=[NBRQ])?|[NBKQR][a-h]?[1-8]?x?[a-h][1-8]|O-O(?:-O)?)[+#]?';
      return new RegExp(`^1\\. ${move} ${move}\\n(?:[2-9]\\. ${move} ${move}\\n){0,3}$`).test(s);
    },
  },
  list: {
    grammar: `root ::= item{1,5}
item ::= "- " [^\\n]{1,20} "\\n"`,
    check: (s) => /^(- [^\n]{1,20}\n){1,5}$/u.test(s),
  },
};
