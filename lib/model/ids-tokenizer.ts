/**
 * The tokenizer of a model folder that ships none (test checkpoints): prompts must be token ids,
 * and ids decode to `<id>` placeholders, so evaluate(), generate() and stream() still work.
 */
import { FuselmError } from '../errors.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

/** `eog`: the ids that end generation (generation_config.json's eos_token_id ones). */
export function idsOnlyTokenizer(vocabSize: number, o: { bos?: number; eos?: number; eog?: number[] } = {}): Tokenizer {
  const piece = (id: number) => `<${id}>`;
  const eog = new Set(o.eog ?? (o.eos === undefined ? [] : [o.eos]));
  return {
    vocabSize,
    idsOnly: true,
    bos: o.bos,
    eos: o.eos,
    eogIds: Object.freeze([...eog].sort((a, b) => a - b)),
    addBos: false,
    addEos: false,
    encode() {
      throw new FuselmError('E_UNSUPPORTED', 'this model folder has no tokenizer (tokenizer.json, or vocab.json with merges.txt): give prompts as token ids (CLI: --ids)');
    },
    decode: (ids) => Array.from(ids, piece).join(''),
    tokenToPiece: piece,
    tokenBytes: (id) => utf8.encode(piece(id)),
    isEog: (id) => eog.has(id),
    createStreamDecoder: () => ({ push: piece, flush: () => '' }),
  };
}

const utf8 = new TextEncoder();
