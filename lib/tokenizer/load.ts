/**
 * loadTokenizer(path): a GGUF file (full model or vocab-only), a tokenizer.json, or a model
 * folder holding one; beside a tokenizer.json, tokenizer_config.json (special tokens, chat
 * template), chat_template.jinja and generation_config.json (more end-of-generation ids) are
 * read when present.
 */
import { stat } from 'node:fs/promises';
import { openRegularFile, readJsonFile, readRegularText } from '../formats/files.js';
import path from 'node:path';
import { FuselmError, shown } from '../errors.js';
import { readGguf } from '../formats/gguf.js';
import { type TokenizerSource, withAsyncEncode } from './async.js';
import { tokenizerFromGguf } from './from-gguf.js';
import { tokenizerFromJson } from './from-tokenizer-json.js';
import { tokenizerJsonFromVocabMerges } from './from-vocab-merges.js';
import type { Tokenizer } from './tokenizer.js';
import { DEFAULT_MODEL } from '../default-model.js';
import { resolveModelPath } from '../hub/pull.js';

async function readJson(file: string, what: string): Promise<unknown> {
  return readJsonFile(file, what);
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** generation_config.json's eos_token_id: a token id, a list of them, or absent. */
function eosTokenIds(file: string, generation: unknown): number[] {
  const v = (generation as { eos_token_id?: unknown } | null)?.eos_token_id;
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => Number.isInteger(x) && x >= 0))
    throw new FuselmError('E_FORMAT', `${file}: eos_token_id must be a token id or a list of them, got ${shown(v)}`);
  return list as number[];
}

/** Whether a model folder has a tokenizer loadTokenizer reads: tokenizer.json, or vocab.json with merges.txt. */
export async function folderHasTokenizer(dir: string): Promise<boolean> {
  return (await exists(path.join(dir, 'tokenizer.json'))) || ((await exists(path.join(dir, 'vocab.json'))) && (await exists(path.join(dir, 'merges.txt'))));
}

/**
 * Builds a tokenizer from a tokenizer.json path (or from `made`, a tokenizer.json object made of
 * other files, as if read from there), with tokenizer_config.json, chat_template.jinja and
 * generation_config.json beside it when present.
 */
export async function loadTokenizerJson(file: string, configFile?: string, made?: { json: object; source: TokenizerSource }): Promise<Tokenizer> {
  const json = made?.json ?? (await readJson(file, 'tokenizer.json'));
  const dir = path.dirname(file);
  const cfgPath = configFile ?? path.join(dir, 'tokenizer_config.json');
  const config = (await exists(cfgPath)) ? await readJson(cfgPath, 'tokenizer_config.json') : undefined;
  const genPath = path.join(dir, 'generation_config.json');
  const generationEos = (await exists(genPath)) ? eosTokenIds(genPath, await readJson(genPath, 'generation_config.json')) : undefined;
  const jinjaPath = path.join(dir, 'chat_template.jinja');
  let chatTemplate: string | undefined;
  if (await exists(jinjaPath)) {
    chatTemplate = await readRegularText(jinjaPath, 'chat template');
  }
  try {
    return withAsyncEncode(tokenizerFromJson(json, config, { generationEos, chatTemplate }), made?.source ?? { kind: 'json', file: path.resolve(file), configFile: configFile && path.resolve(configFile) });
  } catch (e) {
    if (e instanceof FuselmError) throw new FuselmError(e.code, `${file}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * Loads the tokenizer of a GGUF file, a tokenizer.json, or a Hugging Face model folder, by path
 * or model reference (loadModel's); without one, the bundled stories260K's.
 */
export async function loadTokenizer(ref: string = DEFAULT_MODEL): Promise<Tokenizer> {
  if (typeof ref !== 'string' || ref.length === 0) throw new FuselmError('E_INVALID_ARG', 'loadTokenizer() takes a path (a non-empty string)');
  const p = await resolveModelPath(ref);
  let st;
  try {
    st = await stat(p);
  } catch (e) {
    throw new FuselmError('E_IO', `${p}: ${(e as Error).message}`, { cause: e });
  }
  if (st.isDirectory()) {
    const json = path.join(p, 'tokenizer.json');
    if (await exists(json)) return loadTokenizerJson(json);
    const vocab = path.join(p, 'vocab.json'), merges = path.join(p, 'merges.txt');
    if ((await exists(vocab)) && (await exists(merges))) {
      const cfgPath = path.join(p, 'tokenizer_config.json');
      const config = (await exists(cfgPath)) ? await readJson(cfgPath, 'tokenizer_config.json') : undefined;
      const built = tokenizerJsonFromVocabMerges(await readJson(vocab, 'vocab.json'), await readRegularText(merges, 'merges.txt'), config, { vocab, merges });
      return loadTokenizerJson(json, undefined, { json: built, source: { kind: 'vocab-merges', dir: path.resolve(p) } });
    }
    throw new FuselmError('E_UNSUPPORTED', `${p}: the folder has no tokenizer.json, nor vocab.json with merges.txt (other slow-tokenizer files alone are not supported)`);
  }
  const { fh } = await openRegularFile(p, 'tokenizer file');
  const head = Buffer.alloc(4);
  try {
    await fh.read(head, 0, 4, 0);
  } finally {
    await fh.close();
  }
  if (head.toString('latin1') === 'GGUF') return withAsyncEncode(tokenizerFromGguf(await readGguf(p)), { kind: 'gguf', path: path.resolve(p) });
  if (p.endsWith('.json') || head[0] === 0x7b /* { */) return loadTokenizerJson(p);
  throw new FuselmError('E_UNSUPPORTED', `${p}: neither a GGUF file nor a tokenizer.json`);
}
