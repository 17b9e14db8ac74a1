/** Small vocab-only GGUF tokenizers built in memory, for the chat-template and end-of-generation tests. */
import { encodeGguf, type GgufMetaEntry, gv, parseGguf } from '../../lib/formats/gguf.js';
import { tokenizerFromGguf } from '../../lib/tokenizer/from-gguf.js';
import { TokenType, type Tokenizer } from '../../lib/tokenizer/tokenizer.js';

/** The tokenizer of a vocab-only GGUF holding `metadata`. */
export function ggufTokenizer(metadata: GgufMetaEntry[], name = 'vocab.gguf'): Tokenizer {
  const bytes = encodeGguf({ metadata, tensors: [] });
  return tokenizerFromGguf(parseGguf(bytes, { path: name, fileSize: bytes.length }));
}

/** A SentencePiece vocab: `specials` (text, type) first, then the 256 byte tokens, then single-character pieces. */
export function spmVocab(specials: Array<[string, TokenType]>, chars = ' abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?\'-'): { tokens: string[]; types: number[] } {
  const tokens = specials.map(([t]) => t);
  const types = specials.map(([, k]) => k);
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TokenType.BYTE);
  }
  for (const c of chars) {
    tokens.push(c === ' ' ? '\u2581' : c);
    types.push(TokenType.NORMAL);
  }
  return { tokens, types };
}

/**
 * Gemma's special-token layout (google/gemma-2-2b-it: <pad>=0 <eos>=1 <bos>=2 <unk>=3 <mask>=4,
 * <unused0..> up to 105, <start_of_turn>=106 <end_of_turn>=107), no space prefix, as its GGUF
 * has them; single characters stand in for its 256k pieces.
 */
export function gemmaTokenizer(chatTemplate?: string): Tokenizer {
  const specials: Array<[string, TokenType]> = [
    ['<pad>', TokenType.CONTROL],
    ['<eos>', TokenType.CONTROL],
    ['<bos>', TokenType.CONTROL],
    ['<unk>', TokenType.UNKNOWN],
    ['<mask>', TokenType.USER_DEFINED],
  ];
  while (specials.length < 106) specials.push([`<unused${specials.length - 5}>`, TokenType.UNUSED]);
  // llama.cpp's converter makes the special added tokens control tokens
  specials.push(['<start_of_turn>', TokenType.CONTROL], ['<end_of_turn>', TokenType.CONTROL]);
  const { tokens, types } = spmVocab(specials);
  return ggufTokenizer(
    [
      { key: 'tokenizer.ggml.model', ...gv.str('llama') },
      { key: 'tokenizer.ggml.tokens', ...gv.arrStr(tokens) },
      { key: 'tokenizer.ggml.scores', ...gv.arrF32(tokens.map(() => 0)) },
      { key: 'tokenizer.ggml.token_type', ...gv.arrI32(types) },
      { key: 'tokenizer.ggml.bos_token_id', ...gv.u32(2) },
      { key: 'tokenizer.ggml.eos_token_id', ...gv.u32(1) },
      { key: 'tokenizer.ggml.unknown_token_id', ...gv.u32(3) },
      { key: 'tokenizer.ggml.padding_token_id', ...gv.u32(0) },
      { key: 'tokenizer.ggml.add_bos_token', ...gv.bool(true) },
      { key: 'tokenizer.ggml.add_space_prefix', ...gv.bool(false) },
      ...(chatTemplate === undefined ? [] : [{ key: 'tokenizer.chat_template', ...gv.str(chatTemplate) }]),
    ],
    'gemma-vocab.gguf',
  );
}
