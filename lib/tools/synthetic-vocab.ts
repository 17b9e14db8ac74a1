/**
 * The vocabulary of synthetic models (lib/tools/synthetic.ts) and of `convert --vocab synthetic`,
 * on its own so that the converter does not import the model writer (which imports the quantizer,
 * which imports the converter).
 */
import { type GgufMetaEntry, gv } from '../formats/gguf.js';

/** A SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then filler pieces. */
export function syntheticVocab(n: number): GgufMetaEntry[] {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; tokens.length < n; i++) {
    // ▁a ▁b ... then two-letter pieces: all distinct, all plain text
    const s = i < 26 ? '\u2581' + letters[i] : letters[Math.floor((i - 26) / 26) % 26] + letters[(i - 26) % 26] + (i >= 26 + 676 ? String(i) : '');
    tokens.push(s);
    types.push(1);
  }
  tokens.length = n;
  types.length = n;
  return [
    { key: 'tokenizer.ggml.model', ...gv.str('llama') },
    { key: 'tokenizer.ggml.tokens', ...gv.arrStr(tokens) },
    { key: 'tokenizer.ggml.scores', ...gv.arrF32(tokens.map((_, i) => -i)) },
    { key: 'tokenizer.ggml.token_type', ...gv.arrI32(types) },
    { key: 'tokenizer.ggml.bos_token_id', ...gv.u32(1) },
    { key: 'tokenizer.ggml.eos_token_id', ...gv.u32(2) },
    { key: 'tokenizer.ggml.unknown_token_id', ...gv.u32(0) },
  ];
}
