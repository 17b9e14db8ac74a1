/**
 * The end-of-generation set (tokenizer.eogIds) follows llama.cpp's rules (lib/tokenizer/eog.ts):
 * EOS, EOT and EOM from the GGUF keys or found by their text, the fill-in-the-middle pad / repo /
 * file-separator tokens, every token whose text is a known end marker whatever its type, minus
 * gpt-oss's <|end|>; a Hugging Face folder adds generation_config.json's eos_token_id ones.
 * Real vocabularies give the sets llama.cpp prints for those models.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type GgufMetaEntry, gv } from '../../lib/formats/gguf.js';
import { loadTokenizer } from '../../lib/index.js';
import { EOG_TEXTS, findEndTokens } from '../../lib/tokenizer/eog.js';
import { tokenizerFromJson } from '../../lib/tokenizer/from-tokenizer-json.js';
import { TokenType, type Tokenizer } from '../../lib/tokenizer/tokenizer.js';
import { ggufTokenizer, gemmaTokenizer, spmVocab } from '../helpers/vocab.js';
import { requireFiles, TOKENIZER_FILES, VOCAB_DIR } from './helpers.js';

const pieces = (tok: Tokenizer) => tok.eogIds.map((id) => tok.tokenToPiece(id));

describe('end of generation: the rules', () => {
  it('EOS, the end markers by text, EOT by preference, EOM', () => {
    const v = ['<unk>', '<|begin_of_text|>', '<|end_of_text|>', 'a', '<|eom_id|>', '<|eot_id|>', 'b'];
    const r = findEndTokens(v, { eos: [2] });
    assert.deepEqual(r.eog, [2, 4, 5]);
    assert.equal(r.eot, 5); // <|eot_id|> is preferred to <|end_of_text|>
    assert.equal(r.eom, 4);
    // ids the file names win over the texts
    const named = findEndTokens(v, { eos: [2], eot: 6, eom: 3 });
    assert.deepEqual([named.eot, named.eom], [6, 3]);
    assert.deepEqual(named.eog, [2, 3, 4, 5, 6]);
    // a vocab without markers: EOS alone; no EOS: empty
    assert.deepEqual(findEndTokens(['<s>', '</s>', 'x'], { eos: [1] }).eog, [1]);
    assert.deepEqual(findEndTokens(['x', 'y'], {}).eog, []);
  });

  it('every known end marker, several EOS ids, undefined ones skipped, a repeated text twice', () => {
    // (without <|call|>: with both it and <|return|>, <|end|> would not count; see the gpt-oss test)
    const v = ['x', ...EOG_TEXTS.filter((t) => t !== '<|call|>'), '<|im_end|>'];
    const r = findEndTokens(v, { eos: [0, undefined] });
    assert.deepEqual(r.eog, v.map((_, i) => i));
    assert.ok(!findEndTokens(['<|im_end|>x', 'im_end', '<|IM_END|>'], {}).eog.length, 'only the exact texts');
  });

  it("fill-in-the-middle pad, repo and file-separator tokens end generation (Qwen's)", () => {
    const v = ['<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|fim_pad|>', '<|repo_name|>', '<|file_sep|>', '<|endoftext|>'];
    assert.deepEqual(findEndTokens(v, {}).eog, [3, 4, 5, 6]);
    // named by the file, other ids
    assert.deepEqual(findEndTokens(['a', 'b', 'c', 'd'], { fimPad: 1, fimRep: 2, fimSep: 3 }).eog, [1, 2, 3]);
  });

  it("gpt-oss: <|end|> does not end the reply where <|return|> and <|call|> do", () => {
    const harmony = findEndTokens(['<|endoftext|>', '<|end|>', '<|return|>', '<|call|>', '<|start|>'], { eos: [2] });
    assert.deepEqual(harmony.eog, [0, 2, 3]);
    assert.equal(harmony.eot, 0); // not <|end|>
    // without both, <|end|> ends it (Phi-3)
    assert.deepEqual(findEndTokens(['<|endoftext|>', '<|end|>', '<|return|>'], {}).eog, [0, 1, 2]);
  });
});

describe('end of generation: GGUF vocabs', () => {
  const meta = (tokens: string[], types: number[], extra: GgufMetaEntry[] = []) => [
    { key: 'tokenizer.ggml.model', ...gv.str('llama') },
    { key: 'tokenizer.ggml.tokens', ...gv.arrStr(tokens) },
    { key: 'tokenizer.ggml.token_type', ...gv.arrI32(types) },
    ...extra,
  ];

  it('reads the eot, eom and fim keys, and finds markers whatever their token type', () => {
    const { tokens, types } = spmVocab([
      ['<unk>', TokenType.UNKNOWN],
      ['<s>', TokenType.CONTROL],
      ['</s>', TokenType.CONTROL],
      ['<|im_end|>', TokenType.NORMAL], // a converter that forgot to mark it: llama.cpp still ends there
      ['<|end|>', TokenType.USER_DEFINED],
      ['<my_eot>', TokenType.CONTROL],
      ['<my_eom>', TokenType.CONTROL],
      ['<my_fim_sep>', TokenType.CONTROL],
    ]);
    const tok = ggufTokenizer(
      meta(tokens, types, [
        { key: 'tokenizer.ggml.eot_token_id', ...gv.u32(5) },
        { key: 'tokenizer.ggml.eom_token_id', ...gv.u32(6) },
        { key: 'tokenizer.ggml.fim_sep_token_id', ...gv.u32(7) },
      ]),
    );
    assert.deepEqual(tok.eogIds, [2, 3, 4, 5, 6, 7]);
    assert.equal(tok.eot, 5);
    for (const id of tok.eogIds) assert.ok(tok.isEog(id));
    assert.ok(!tok.isEog(1) && !tok.isEog(0) && !tok.isEog(8));
    assert.ok(Object.isFrozen(tok.eogIds));
  });

  it('an id key past the vocab or 0xFFFFFFFF means none (the texts decide)', () => {
    const { tokens, types } = spmVocab([['<unk>', TokenType.UNKNOWN], ['<s>', TokenType.CONTROL], ['</s>', TokenType.CONTROL], ['<|eot_id|>', TokenType.CONTROL]]);
    const tok = ggufTokenizer(meta(tokens, types, [{ key: 'tokenizer.ggml.eot_token_id', ...gv.u32(0xffffffff) }]));
    assert.equal(tok.eot, 3);
    assert.deepEqual(tok.eogIds, [2, 3]);
  });

  it("Gemma's layout: <eos> and <end_of_turn>", () => {
    const tok = gemmaTokenizer();
    assert.deepEqual(tok.eogIds, [1, 107]);
    assert.deepEqual(pieces(tok), ['<eos>', '<end_of_turn>']);
    assert.equal(tok.eot, 107);
  });

  it("Phi-3 (llama.cpp's vocab file): <|endoftext|> and <|end|>, as llama.cpp prints for it", async function () {
    const file = path.join(VOCAB_DIR, 'ggml-vocab-phi-3.gguf');
    requireFiles(this, file);
    const tok = await loadTokenizer(file);
    assert.deepEqual(tok.eogIds, [32000, 32007]);
    assert.deepEqual(pieces(tok), ['<|endoftext|>', '<|end|>']);
    assert.ok(!tok.isEog(32001), '<|assistant|> does not end generation in llama.cpp');
  });
});

describe('end of generation: Hugging Face tokenizers and folders', () => {
  it("Qwen: <|endoftext|>, <|im_end|> and the FIM pad / repo / file-separator tokens, as llama.cpp prints for Qwen2.5", async function () {
    requireFiles(this, TOKENIZER_FILES.qwen3);
    const tok = await loadTokenizer(TOKENIZER_FILES.qwen3);
    assert.deepEqual(tok.eogIds, [151643, 151645, 151662, 151663, 151664]);
    assert.deepEqual(pieces(tok), ['<|endoftext|>', '<|im_end|>', '<|fim_pad|>', '<|repo_name|>', '<|file_sep|>']);
  });

  it("Llama-3: <|end_of_text|> (tokenizer_config's eos) and <|eot_id|> (by its text)", async function () {
    requireFiles(this, TOKENIZER_FILES.llama3);
    const tok = await loadTokenizer(TOKENIZER_FILES.llama3);
    assert.equal(tok.eos, 128001);
    assert.deepEqual(tok.eogIds, [128001, 128009]);
    assert.deepEqual(pieces(tok), ['<|end_of_text|>', '<|eot_id|>']);
    assert.equal(tok.eot, 128009);
  });

  describe('a model folder', () => {
    let dir: string;
    before(function () {
      requireFiles(this, TOKENIZER_FILES.llama2);
      dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-eog-'));
    });
    after(() => dir && rmSync(dir, { recursive: true, force: true }));

    const folder = (name: string, files: Record<string, string>) => {
      const d = path.join(dir, name);
      cpSync(path.dirname(TOKENIZER_FILES.llama2), d, { recursive: true });
      for (const [f, text] of Object.entries(files)) writeFileSync(path.join(d, f), text);
      return d;
    };

    it("adds generation_config.json's eos_token_id, one or a list", async () => {
      assert.deepEqual((await loadTokenizer(folder('none', {}))).eogIds, [2]);
      assert.deepEqual((await loadTokenizer(folder('one', { 'generation_config.json': '{"eos_token_id": 13}' }))).eogIds, [2, 13]);
      const list = await loadTokenizer(folder('list', { 'generation_config.json': '{"bos_token_id": 1, "eos_token_id": [2, 29871, 13]}' }));
      assert.deepEqual(list.eogIds, [2, 13, 29871]);
      assert.ok(list.isEog(29871) && !list.isEog(1));
      // an id past the tokenizer's vocabulary (a padded embedding) cannot come out of it: left out
      assert.deepEqual((await loadTokenizer(folder('past', { 'generation_config.json': '{"eos_token_id": [2, 40000]}' }))).eogIds, [2]);
    });

    it('a malformed eos_token_id is E_FORMAT naming generation_config.json', async () => {
      const d = folder('bad', { 'generation_config.json': '{"eos_token_id": "</s>"}' });
      await assert.rejects(loadTokenizer(d), (e: Error & { code?: string }) => e.code === 'E_FORMAT' && /generation_config\.json.*eos_token_id/.test(e.message));
    });

    it("takes chat_template.jinja over tokenizer_config.json's chat_template", async () => {
      const own = await loadTokenizer(folder('own', {}));
      assert.match(own.chatTemplate!, /<\|assistant\|>/); // TinyLlama's, from tokenizer_config.json
      const jinja = await loadTokenizer(folder('jinja', { 'chat_template.jinja': '{{ messages[0].content }}' }));
      assert.equal(jinja.chatTemplate, '{{ messages[0].content }}');
    });
  });

  it('tokenizer_config.json chat_template as a list of named templates, or malformed', () => {
    const json = { model: { type: 'BPE', vocab: { a: 0, '</s>': 1 }, merges: [] }, added_tokens: [{ id: 1, content: '</s>', special: true }] };
    const named = [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }];
    assert.equal(tokenizerFromJson(json, { chat_template: named }).chatTemplate, 'D');
    assert.equal(tokenizerFromJson(json, { chat_template: [{ name: 'rag', template: 'R' }] }).chatTemplate, undefined);
    assert.equal(tokenizerFromJson(json, { chat_template: 'S' }, { chatTemplate: 'J' }).chatTemplate, 'J');
    assert.throws(() => tokenizerFromJson(json, { chat_template: 42 }), { code: 'E_FORMAT' });
    assert.deepEqual(tokenizerFromJson(json, { eos_token: '</s>' }, { generationEos: [0, 1] }).eogIds, [0, 1]);
  });
});
