/**
 * The public tokenizer contract. Every tokenizer family (SentencePiece-BPE here; byte-level BPE
 * and WordPiece later) implements `Tokenizer`, so the model, the sampler loop and the CLI never
 * care which algorithm sits behind it.
 */

/** GGUF `tokenizer.ggml.token_type` values (llama.cpp's llama_token_type / SentencePiece's piece types). */
export enum TokenType {
  UNDEFINED = 0,
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export interface EncodeOptions {
  /** Add BOS / EOS as the tokenizer's addBos / addEos say. Default false. */
  addSpecial?: boolean;
  /** Recognize control tokens written in the text (e.g. "<s>") as those tokens. Default false.
   * User-defined tokens are always recognized. */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Control tokens (BOS, EOS, chat markers) produce no text. Default true. */
  skipSpecial?: boolean;
  /** Drop the one space at the very start of the output that the encoder's space prefix put
   * there. Default: true when the tokenizer adds a space prefix. Set it false when decoding a
   * continuation (tokens that follow earlier text), where that space is real. */
  stripLeadingSpace?: boolean;
}

/** Options of createStreamDecoder: the same meaning as for decode(). */
export type StreamDecoderOptions = DecodeOptions;

/**
 * Turns tokens into text one at a time. push() returns the text completed so far and never half
 * a UTF-8 character: bytes of an unfinished character wait for the tokens that complete it.
 * flush() returns what is left (an unfinished character as U+FFFD). The concatenation of every
 * push() and the final flush() equals decode() of all the tokens.
 */
export interface StreamDecoder {
  push(id: number): string;
  flush(): string;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly eot?: number;
  readonly unk?: number;
  readonly pad?: number;
  /**
   * True when there is no vocabulary behind it (a model folder without tokenizer files): text
   * cannot be encoded, prompts are token ids, and ids decode to `<id>` placeholders.
   */
  readonly idsOnly?: boolean;
  /** GGUF tokenizer.ggml.add_bos_token (default true for the llama vocab). */
  readonly addBos: boolean;
  /** GGUF tokenizer.ggml.add_eos_token (default false). */
  readonly addEos: boolean;
  /**
   * The model's chat template (Jinja): GGUF tokenizer.chat_template, or a Hugging Face folder's
   * chat_template.jinja, else tokenizer_config.json's chat_template (its "default" one when it is a list).
   */
  readonly chatTemplate?: string;
  encode(text: string, opts?: EncodeOptions): number[];
  /**
   * encode() that keeps the event loop free: large texts are encoded in a worker thread (by a
   * copy of the tokenizer built there from the same file), small ones in place. Tokenizers
   * without a file behind them encode in place.
   */
  encodeAsync?(text: string, opts?: EncodeOptions): Promise<number[]>;
  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string;
  /** The raw piece string as stored in the vocab (e.g. "▁Once", "<0x0A>", "<s>"). */
  tokenToPiece(id: number): string;
  /**
   * Every token id that ends generation, ascending: EOS, EOT, EOM and the end markers found by
   * their text, and a Hugging Face folder's generation_config.json eos_token_id ones (the rules
   * are in tokenizer/eog.ts). generate() stops at any of them and leaves it out of the reply.
   */
  readonly eogIds: readonly number[];
  /** True for the ids in eogIds. */
  isEog(id: number): boolean;
  /**
   * The bytes token `id` prints after other text (no leading-space stripping), maybe part of a
   * UTF-8 character; empty for a token that prints nothing (control tokens). Grammars match these.
   */
  tokenBytes(id: number): Uint8Array;
  createStreamDecoder(opts?: StreamDecoderOptions): StreamDecoder;
}
