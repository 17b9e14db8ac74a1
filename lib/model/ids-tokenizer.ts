/**
 * The tokenizer of a model folder that ships none (test checkpoints): prompts must be token ids,
 * and ids decode to `<id>` placeholders, so evaluate(), generate() and stream() still work.
 */
import { FuselmError } from '../errors.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

export function idsOnlyTokenizer(vocabSize: number, o: { bos?: number; eos?: number } = {}): Tokenizer {
  const piece = (id: number) => `<${id}>`;
  return {
    vocabSize,
    bos: o.bos,
    eos: o.eos,
    addBos: false,
    addEos: false,
    encode() {
      throw new FuselmError('E_UNSUPPORTED', 'this model folder has no tokenizer.json: give prompts as token ids');
    },
    decode: (ids) => Array.from(ids, piece).join(''),
    tokenToPiece: piece,
    isEog: (id) => id === o.eos,
    createStreamDecoder: () => ({ push: piece, flush: () => '' }),
  };
}
