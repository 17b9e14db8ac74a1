/**
 * End of generation: which token ids end a reply. The rules are llama.cpp's, so that a model
 * stops here where it stops there, and they are shared by GGUF vocabs and tokenizer.json files:
 *
 * - the EOS id (GGUF `tokenizer.ggml.eos_token_id`; tokenizer_config.json's `eos_token`), and
 *   for a Hugging Face folder every `eos_token_id` of generation_config.json (one or a list);
 * - the EOT id (`tokenizer.ggml.eot_token_id`, else the first of EOT_TEXTS in the vocab) and the
 *   EOM id (`tokenizer.ggml.eom_token_id`, else `<|eom_id|>`);
 * - the fill-in-the-middle pad, repo and file-separator ids (`tokenizer.ggml.fim_pad_token_id`,
 *   `fim_rep_token_id`, `fim_sep_token_id`, else the first of their well-known texts);
 * - every token whose text is one of EOG_TEXTS, whatever its type (llama.cpp matches the text
 *   too, and treats such a token as a control token);
 * - except `<|end|>` in a vocab that also has `<|return|>` and `<|call|>` (gpt-oss's harmony
 *   format, where `<|end|>` closes a message but not the reply).
 */

/** End-of-turn markers, in the order of preference for the EOT id when the file names none. */
export const EOT_TEXTS = [
  '<|eot_id|>', // Llama-3
  '<|im_end|>', // ChatML: Qwen, and many fine-tunes
  '<|end|>', // Phi-3
  '<end_of_turn>', // Gemma
  '<|endoftext|>', // GPT-2, Qwen, Phi
  '<|end_of_text|>', // Llama-3 base, Granite
  '<EOT>', // CodeLlama infill
  '_<EOT>',
  '<end_of_utterance>', // SmolDocling
  '<｜end▁of▁sentence｜>', // DeepSeek
] as const;

/** Texts whose tokens end generation. */
export const EOG_TEXTS: readonly string[] = [
  ...EOT_TEXTS,
  '<|eom_id|>', // Llama-3.1: end of a message that calls a tool
  '<|return|>', // gpt-oss (harmony)
  '<|call|>', // gpt-oss (harmony)
];

/** Fill-in-the-middle tokens that end generation, by the texts that find them when the file names none. */
const FIM_TEXTS = {
  pad: ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>'],
  rep: ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>'],
  sep: ['<|file_sep|>'],
} as const;

export interface EndTokenIds {
  /** The EOS id (and, for a Hugging Face folder, generation_config.json's eos_token_id ones). */
  eos?: Iterable<number | undefined>;
  /** Ids the file names (GGUF keys); absent ones are found by their text. */
  eot?: number;
  eom?: number;
  fimPad?: number;
  fimRep?: number;
  fimSep?: number;
}

export interface EndTokens {
  eot: number | undefined;
  eom: number | undefined;
  /** Every id that ends generation, ascending. */
  eog: number[];
}

/** The EOT and EOM ids and the end-of-generation set of a vocabulary (token texts by id). */
export function findEndTokens(pieces: ArrayLike<string | undefined>, given: EndTokenIds): EndTokens {
  // each marker text's ids (a vocab may repeat a text)
  const wanted = new Set<string>([...EOG_TEXTS, ...FIM_TEXTS.pad, ...FIM_TEXTS.rep, ...FIM_TEXTS.sep]);
  const byText = new Map<string, number[]>();
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i];
    if (p === undefined || !wanted.has(p)) continue;
    const ids = byText.get(p);
    if (ids) ids.push(i);
    else byText.set(p, [i]);
  }
  const first = (texts: readonly string[]) => {
    for (const t of texts) {
      const ids = byText.get(t);
      if (ids) return ids[0];
    }
    return undefined;
  };
  // gpt-oss: <|end|> closes a message, <|return|> and <|call|> end the reply
  const harmony = byText.has('<|return|>') && byText.has('<|call|>');
  const eot = given.eot ?? first(harmony ? EOT_TEXTS.filter((t) => t !== '<|end|>') : EOT_TEXTS);
  const eom = given.eom ?? first(['<|eom_id|>']);
  const eog = new Set<number>();
  const add = (id: number | undefined) => {
    if (id !== undefined) eog.add(id);
  };
  for (const id of given.eos ?? []) add(id);
  add(eot);
  add(eom);
  add(given.fimPad ?? first(FIM_TEXTS.pad));
  add(given.fimRep ?? first(FIM_TEXTS.rep));
  add(given.fimSep ?? first(FIM_TEXTS.sep));
  for (const t of EOG_TEXTS) for (const id of byText.get(t) ?? []) eog.add(id);
  if (harmony) for (const id of byText.get('<|end|>') ?? []) eog.delete(id);
  return { eot, eom, eog: [...eog].sort((a, b) => a - b) };
}
