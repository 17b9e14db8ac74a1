/**
 * Chat sessions: the conversation is rendered with the model's own chat template (Jinja, via
 * @huggingface/jinja) and generated as one prompt per turn. The model reuses the KV cache of
 * the prefix a turn shares with the previous one, so a turn evaluates only its new tokens.
 */
import { Template } from '@huggingface/jinja';
import { FuselmError } from './errors.js';
import type { GenerationConfig } from './formats/hf.js';
import { type GenerateOptions, type GenerateResult, type StreamChunk, generationDefaults } from './generate.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';

export interface ChatMessage {
  role: string;
  content: string;
}

/** Used when the model carries no template of its own (llama.cpp falls back to ChatML too). */
export const CHATML_TEMPLATE =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface ChatOptions extends GenerateOptions {
  /** A system message that opens the conversation. */
  system?: string;
  /** A Jinja chat template overriding the model's own. */
  template?: string;
  /**
   * When the conversation no longer fits the context: 'error' (the default) rejects with
   * E_CONTEXT_FULL; 'dropOldest' drops the oldest turns after the system message until it fits.
   */
  contextShift?: 'error' | 'dropOldest';
}

/** What a chat needs of its model: a Model (an interface, so that chat.ts and model.ts do not import each other). */
export interface ChatModel {
  readonly tokenizer: Tokenizer;
  readonly contextSize: number;
  readonly generationConfig: GenerationConfig;
  generate(prompt: number[], opts: GenerateOptions): Promise<GenerateResult>;
  stream(prompt: number[], opts: GenerateOptions): AsyncGenerator<StreamChunk>;
}

export class Chat {
  readonly messages: ChatMessage[] = [];
  readonly #model: ChatModel;
  readonly #opts: ChatOptions;
  readonly #template: Template;

  constructor(model: ChatModel, opts: ChatOptions = {}) {
    this.#model = model;
    this.#opts = opts;
    const source = opts.template ?? model.tokenizer.chatTemplate ?? CHATML_TEMPLATE;
    try {
      this.#template = new Template(source);
    } catch (e) {
      throw new FuselmError('E_INVALID_ARG', `the chat template does not parse: ${(e as Error).message}`, { cause: e });
    }
    if (opts.contextShift !== undefined && opts.contextShift !== 'error' && opts.contextShift !== 'dropOldest')
      throw new FuselmError('E_INVALID_ARG', `contextShift must be 'error' or 'dropOldest', got '${opts.contextShift}'`);
    if (opts.system !== undefined) this.messages.push({ role: 'system', content: opts.system });
  }

  /** The conversation rendered through the template and tokenized, ready for generation. */
  #prompt(messages: ChatMessage[]): number[] {
    const tok = this.#model.tokenizer;
    const piece = (id: number | undefined) => (id === undefined ? '' : tok.tokenToPiece(id));
    let text: string;
    try {
      text = this.#template.render({ messages, add_generation_prompt: true, bos_token: piece(tok.bos), eos_token: piece(tok.eos) });
    } catch (e) {
      throw new FuselmError('E_INVALID_ARG', `the chat template failed to render: ${(e as Error).message}`, { cause: e });
    }
    // Templates that write the BOS text themselves must not get a second one.
    const bosText = piece(tok.bos);
    const addBos = tok.addBos && tok.bos !== undefined && !(bosText && text.startsWith(bosText));
    const ids = tok.encode(text, { parseSpecial: true });
    return addBos ? [tok.bos!, ...ids] : ids;
  }

  /**
   * The prompt for the next turn, leaving `o.maxTokens` positions free for the reply (or the
   * model's default, or 1 when the reply is unbounded); shifted per contextShift when it does
   * not fit.
   */
  #turnPrompt(messages: ChatMessage[], o: GenerateOptions): number[] {
    const reply = o.maxTokens ?? generationDefaults(this.#model.generationConfig).maxTokens ?? 1;
    const room = this.#model.contextSize - reply;
    let msgs = messages;
    for (;;) {
      const ids = this.#prompt(msgs);
      if (ids.length <= room) return ids;
      const first = msgs[0]?.role === 'system' ? 1 : 0;
      if (this.#opts.contextShift !== 'dropOldest' || msgs.length - first <= 1)
        throw new FuselmError(
          'E_CONTEXT_FULL',
          `the conversation needs ${ids.length} tokens and the reply ${reply} more, but the context holds ${this.#model.contextSize}`,
        );
      // drop the oldest turn (a user message and the reply after it)
      const drop = msgs[first + 1]?.role === 'assistant' ? 2 : 1;
      msgs = [...msgs.slice(0, first), ...msgs.slice(first + drop)];
    }
  }

  #options(opts: GenerateOptions): GenerateOptions {
    const { system: _s, template: _t, contextShift: _c, ...gen } = this.#opts;
    return { ...gen, ...opts, addSpecial: false };
  }

  /** Sends a user message; resolves with the assistant's reply (added to messages). */
  async send(text: string, opts: GenerateOptions = {}): Promise<GenerateResult> {
    const o = this.#options(opts);
    const messages = [...this.messages, { role: 'user', content: text }];
    const r = await this.#model.generate(this.#turnPrompt(messages, o), o);
    this.messages.push({ role: 'user', content: text }, { role: 'assistant', content: r.text });
    return r;
  }

  /** Sends a user message and streams the reply; it joins messages when the stream ends. */
  async *stream(text: string, opts: GenerateOptions = {}): AsyncGenerator<StreamChunk> {
    const o = this.#options(opts);
    const messages = [...this.messages, { role: 'user', content: text }];
    let reply = '';
    for await (const c of this.#model.stream(this.#turnPrompt(messages, o), o)) {
      reply += c.text;
      yield c;
    }
    this.messages.push({ role: 'user', content: text }, { role: 'assistant', content: reply });
  }

  /** Forgets the conversation (the system message stays). */
  reset(): void {
    this.messages.splice(this.messages[0]?.role === 'system' ? 1 : 0);
  }
}
