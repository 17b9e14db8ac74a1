/**
 * A Chat stops at its model family's end-of-turn token. The tiny random-weight models of
 * ../shared/models/oracles (Llama-3.1 rope, Qwen2, Gemma-2, Phi-3, Mistral) carry a cut-down
 * Llama-2 vocabulary; here each GGUF is rewritten with its family's special tokens (in place of
 * its last, unused, pieces, as control tokens), BOS/EOS ids and published chat template, and the
 * Qwen2 Hugging Face folder likewise (added tokens, chat_template.jinja, a generation_config.json
 * eos_token_id list). Then:
 *  - the prompt of a turn holds the template's special tokens as single ids and one BOS at most;
 *  - the family's end-of-turn marker is in tokenizer.eogIds, found by its text alone;
 *  - the greedy reply stops where the model produces that marker, after some text: a logit
 *    bias on the marker is chosen from the model's own logits so that it becomes the argmax at
 *    step k >= 1 and not before; the reply is the free run's first k tokens, without the
 *    marker, finishReason 'eog' (streamed: the same text); with ignoreEog the marker is
 *    generated there instead;
 *  - the reply joins the history without the marker, and the next turn's text closes it with
 *    the family's marker.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type GgufMetaEntry, ggufMetadataSpec, gv, readGguf, writeGguf } from '../lib/formats/gguf.js';
import { type GenerateResult, loadModel, type Model } from '../lib/index.js';
import { TokenType } from '../lib/tokenizer/tokenizer.js';
import { requireShared, sharedPath } from './helpers/shared.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/chat-templates/${name}.jinja`, import.meta.url), 'utf8');

interface Family {
  name: string;
  /** The oracle model folder under ../shared/models/oracles. */
  model: string;
  template: string;
  /** Special tokens put in place of the vocab's last pieces. */
  specials: string[];
  bos?: string;
  eos?: string;
  addBos?: boolean;
  /** The end-of-turn marker generation must stop at. */
  end: string;
  /** Special tokens the first turn's prompt holds. */
  inPrompt: string[];
  /** How the next turn's text closes the reply. */
  closes: (reply: string) => string;
}

const FAMILIES: Family[] = [
  {
    name: 'Llama-3.1',
    model: 'llama3-ropefreqs',
    template: 'llama-3.1-instruct',
    specials: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
    bos: '<|begin_of_text|>',
    eos: '<|end_of_text|>',
    end: '<|eot_id|>',
    inPrompt: ['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
    closes: (r) => `${r.trim()}<|eot_id|>`,
  },
  {
    name: 'Qwen2.5',
    model: 'qwen2',
    template: 'qwen2.5-instruct',
    specials: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
    bos: '<|endoftext|>',
    eos: '<|endoftext|>',
    addBos: false,
    end: '<|im_end|>',
    inPrompt: ['<|im_start|>', '<|im_end|>'],
    closes: (r) => `${r}<|im_end|>`,
  },
  {
    name: 'Gemma-2',
    model: 'gemma2',
    template: 'gemma-2-it',
    specials: ['<start_of_turn>', '<end_of_turn>'],
    end: '<end_of_turn>',
    inPrompt: ['<s>', '<start_of_turn>', '<end_of_turn>'],
    closes: (r) => `${r.trim()}<end_of_turn>`,
  },
  {
    name: 'Phi-3',
    model: 'phi3',
    template: 'phi-3-mini-instruct',
    specials: ['<|endoftext|>', '<|system|>', '<|user|>', '<|assistant|>', '<|end|>'],
    eos: '<|endoftext|>',
    end: '<|end|>',
    inPrompt: ['<s>', '<|system|>', '<|user|>', '<|assistant|>', '<|end|>'],
    closes: (r) => `${r}<|end|>`,
  },
  {
    name: 'Mistral-Instruct',
    model: 'mistral-swa',
    template: 'mistral-instruct',
    specials: [],
    end: '</s>',
    inPrompt: ['<s>'],
    closes: (r) => `${r}</s>`,
  },
];

/** The oracle GGUF of `f.model` with the family's special tokens, BOS/EOS and template. */
async function familyGguf(f: Family, out: string): Promise<void> {
  const src = sharedPath(`models/oracles/${f.model}/${f.model}.f32.gguf`);
  const gguf = await readGguf(src);
  const tokens = [...(gguf.metadata.get('tokenizer.ggml.tokens') as string[])];
  const types = Array.from(gguf.metadata.get('tokenizer.ggml.token_type') as ArrayLike<number>);
  f.specials.forEach((t, i) => {
    const id = tokens.length - f.specials.length + i;
    tokens[id] = t;
    types[id] = TokenType.CONTROL;
  });
  const idOf = (t: string) => tokens.indexOf(t);
  const set: GgufMetaEntry[] = [
    { key: 'tokenizer.ggml.tokens', ...gv.arrStr(tokens) },
    { key: 'tokenizer.ggml.token_type', ...gv.arrI32(types) },
    { key: 'tokenizer.chat_template', ...gv.str(fixture(f.template)) },
    ...(f.bos ? [{ key: 'tokenizer.ggml.bos_token_id', ...gv.u32(idOf(f.bos)) }] : []),
    ...(f.eos ? [{ key: 'tokenizer.ggml.eos_token_id', ...gv.u32(idOf(f.eos)) }] : []),
    ...(f.addBos === false ? [{ key: 'tokenizer.ggml.add_bos_token', ...gv.bool(false) }] : []),
  ];
  const metadata = [...ggufMetadataSpec(gguf).filter((e) => !set.some((s) => s.key === e.key)), ...set];
  const bytes = readFileSync(src);
  const tensors = gguf.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: new Uint8Array(bytes.subarray(t.offset, t.offset + t.nbytes)) }));
  await writeGguf(out, { metadata, tensors });
}

/**
 * A logit bias on `end` that makes it the greedy choice at some step k >= 1 of a greedy run
 * whose tokens were `gen`, and not before: from the margins (top logit minus end's logit) at
 * each step, the first that falls clearly below all earlier ones.
 */
async function stopBias(m: Model, prompt: number[], gen: number[], end: number): Promise<{ k: number; bias: number } | undefined> {
  const V = m.config.vocabSize;
  const all = await m.evaluate([...prompt, ...gen.slice(0, -1)], { allLogits: true });
  const margins = gen.map((_, j) => {
    const row = all.subarray((prompt.length - 1 + j) * V, (prompt.length + j) * V);
    return row.reduce((a, b) => Math.max(a, b), -Infinity) - row[end];
  });
  let lowest = margins[0];
  for (let k = 1; k < margins.length; k++) {
    // 0.1 of room on each side: incremental decoding's logits differ from these by rounding only
    if (margins[k] < lowest - 0.2) return { k, bias: (margins[k] + lowest) / 2 };
    lowest = Math.min(lowest, margins[k]);
  }
  return undefined;
}

const SYSTEM = 'You are terse.';
/** Questions tried in turn until the greedy reply to one has a step where the marker can be made the choice. */
const QUESTIONS = ['Tell me a story about a cat.', 'What is the capital of France?', 'Hello there, how are you today?', 'Write a short poem.', 'Why is the sky blue?'];

/** The checks of the file header on a model whose template and markers are its family's. */
async function stopsAtEndOfTurn(m: Model, f: Family): Promise<void> {
  const tok = m.tokenizer;
  const idOf = (text: string) => Array.from({ length: tok.vocabSize }, (_, i) => i).find((i) => tok.tokenToPiece(i) === text)!;
  const end = idOf(f.end);
  assert.ok(tok.eogIds.includes(end), `${f.end} (${end}) ends generation: ${tok.eogIds}`);
  const opts = { system: SYSTEM, templateVariables: { date_string: '26 Jul 2024' }, maxTokens: 16 };

  let found: { ask: string; free: GenerateResult; k: number; bias: number } | undefined;
  for (const ask of QUESTIONS) {
    const free = await m.chat(opts).send(ask, { ignoreEog: true });
    const prompt = free.promptIds;
    for (const s of f.inPrompt) assert.ok(prompt.includes(idOf(s)), `${s} is one id of the prompt`);
    if (tok.bos !== undefined) assert.ok(prompt.filter((id) => id === tok.bos).length <= 1 && prompt.indexOf(tok.bos) <= 0, 'at most one BOS, first');
    const templateWritesBos = tok.bos !== undefined && f.inPrompt.includes(tok.tokenToPiece(tok.bos));
    assert.equal(prompt[0] === tok.bos, tok.addBos || templateWritesBos);
    const stop = await stopBias(m, prompt, free.ids, end);
    if (stop) {
      found = { ask, free, ...stop };
      break;
    }
  }
  assert.ok(found, `none of the questions gives a step where ${f.end} can be made the greedy choice`);
  const { ask: ASK, free, k, bias } = found;
  const prompt = free.promptIds;
  const chat = m.chat(opts);
  const r = await chat.send(ASK, { logitBias: { [end]: bias } });
  assert.deepEqual(r.promptIds, prompt);
  assert.equal(r.finishReason, 'eog');
  assert.deepEqual(r.ids, free.ids.slice(0, k));
  assert.equal(r.text, tok.decode(free.ids.slice(0, k)));
  let streamed = '';
  for await (const c of m.chat(opts).stream(ASK, { logitBias: { [end]: bias } })) streamed += c.text;
  assert.equal(streamed, r.text);
  const through = await m.chat(opts).send(ASK, { logitBias: { [end]: bias }, ignoreEog: true, maxTokens: k + 1 });
  assert.deepEqual(through.ids, [...free.ids.slice(0, k), end]);

  assert.equal(chat.messages.at(-1)!.content, r.text);
  const next = chat.template.render([...chat.messages, { role: 'user', content: 'More.' }]);
  assert.ok(next.includes(f.closes(r.text)), next);
}

describe('chat: each family stops at its end-of-turn token', function () {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-families-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const f of FAMILIES) {
    it(`${f.name} (GGUF): ${f.end}`, async function () {
      requireShared(this, `models/oracles/${f.model}/${f.model}.f32.gguf`);
      const file = path.join(dir, `${f.model}.gguf`);
      await familyGguf(f, file);
      await using m = await loadModel(file, { threads: 1, contextSize: 256 });
      assert.equal(m.tokenizer.chatTemplate, fixture(f.template));
      await stopsAtEndOfTurn(m, f);
    });
  }

  it("Qwen2.5 (Hugging Face folder): <|im_end|> by its text, generation_config's eos ids, chat_template.jinja over tokenizer_config's", async function () {
    requireShared(this, 'models/oracles/qwen2/hf/tokenizer.json');
    const f = FAMILIES.find((x) => x.model === 'qwen2')!;
    const hf = path.join(dir, 'qwen2-hf');
    cpSync(sharedPath('models/oracles/qwen2/hf'), hf, { recursive: true });
    // the last pieces become added special tokens (and leave the vocab and the merges)
    const json = JSON.parse(readFileSync(path.join(hf, 'tokenizer.json'), 'utf8'));
    const byId = Object.entries(json.model.vocab as Record<string, number>).sort((a, b) => a[1] - b[1]);
    const gone = new Set<string>();
    f.specials.forEach((content, i) => {
      const [piece, id] = byId[byId.length - f.specials.length + i];
      gone.add(piece);
      delete json.model.vocab[piece];
      json.added_tokens.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    });
    json.model.merges = (json.model.merges as [string, string][]).filter(([a, b]) => !gone.has(a) && !gone.has(b) && !gone.has(a + b));
    json.post_processor = null; // Qwen adds no BOS
    writeFileSync(path.join(hf, 'tokenizer.json'), JSON.stringify(json));
    const idOf = (t: string) => json.added_tokens.find((a: { content: string }) => a.content === t).id as number;
    const cfg = JSON.parse(readFileSync(path.join(hf, 'tokenizer_config.json'), 'utf8'));
    Object.assign(cfg, { bos_token: null, eos_token: '<|endoftext|>', add_bos_token: false, chat_template: 'not this one: {{ messages }}' });
    writeFileSync(path.join(hf, 'tokenizer_config.json'), JSON.stringify(cfg));
    writeFileSync(path.join(hf, 'chat_template.jinja'), fixture(f.template));
    const gen = JSON.parse(readFileSync(path.join(hf, 'generation_config.json'), 'utf8'));
    const other = 100; // a plain piece, named as an eos id by generation_config.json
    writeFileSync(path.join(hf, 'generation_config.json'), JSON.stringify({ ...gen, bos_token_id: null, eos_token_id: [idOf('<|endoftext|>'), other] }));

    await using m = await loadModel(hf, { threads: 1, contextSize: 256 });
    assert.equal(m.tokenizer.chatTemplate, fixture(f.template));
    assert.deepEqual(m.tokenizer.eogIds, [other, idOf('<|endoftext|>'), idOf('<|im_end|>')]);
    await stopsAtEndOfTurn(m, f);
    const forced = await m.chat({ system: SYSTEM }).send(QUESTIONS[0], { maxTokens: 4, logitBias: { [other]: 1000 } });
    assert.deepEqual([forced.finishReason, forced.ids], ['eog', []]);
  });
});
