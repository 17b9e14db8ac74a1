/**
 * GPT-2-era Hugging Face folders ship the slow tokenizer's files, vocab.json and merges.txt,
 * without a tokenizer.json. They are byte-level BPE: this writes the tokenizer.json that
 * transformers' converter makes of them (ByteLevel pre-tokenizer, with a prefix space only when
 * tokenizer_config.json's add_prefix_space says so; the ByteLevel decoder; no unk token) and the added tokens tokenizer_config.json lists, so that
 * tokenizerFromJson builds it as it builds any other.
 */
import { FuselmError } from '../errors.js';

/** The tokenizer.json of vocab.json's object and merges.txt's text (`where` names them in errors). */
export function tokenizerJsonFromVocabMerges(vocab: unknown, mergesText: string, config: unknown, where: { vocab: string; merges: string }): object {
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab))
    throw new FuselmError('E_FORMAT', `${where.vocab}: must be an object of token -> id`);
  const merges: string[] = [];
  for (const [i, line] of mergesText.split('\n').entries()) {
    const text = line.replace(/\r$/, '');
    if (text === '' || (i === 0 && text.startsWith('#version'))) continue;
    if (text.split(' ').length !== 2) throw new FuselmError('E_FORMAT', `${where.merges}: line ${i + 1} is not two tokens separated by one space`);
    merges.push(text);
  }
  const prefixSpace = (config as { add_prefix_space?: unknown } | undefined)?.add_prefix_space === true;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: prefixSpace, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    added_tokens: addedTokens(config),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

/** tokenizer_config.json's added_tokens_decoder, as tokenizer.json's added_tokens. */
function addedTokens(config: unknown): object[] {
  const decoder = (config as { added_tokens_decoder?: unknown } | undefined)?.added_tokens_decoder;
  if (decoder === undefined || decoder === null) return [];
  if (typeof decoder !== 'object' || Array.isArray(decoder)) throw new FuselmError('E_FORMAT', 'tokenizer_config.json added_tokens_decoder: must be an object of id -> token');
  return Object.entries(decoder as Record<string, Record<string, unknown>>).map(([id, t]) => ({
    id: Number(id),
    content: t?.content,
    single_word: t?.single_word ?? false,
    lstrip: t?.lstrip ?? false,
    rstrip: t?.rstrip ?? false,
    normalized: t?.normalized ?? true,
    special: t?.special ?? false,
  }));
}
