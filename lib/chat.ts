/**
 * Chat templates and chat sessions. A conversation is rendered with the model's own chat
 * template (Jinja, via @huggingface/jinja) with the variables transformers' apply_chat_template
 * passes, and tokenized with its special tokens recognized; a Chat generates one prompt per turn
 * and reuses the KV cache of the prefix a turn shares with the previous one, so a turn evaluates
 * only its new tokens. Replies end at the tokenizer's end-of-generation tokens (tokenizer.eogIds:
 * Llama-3's <|eot_id|>, ChatML's <|im_end|>, Gemma's <end_of_turn>, Phi-3's <|end|>, EOS).
 */
import { Template } from '@huggingface/jinja';
import { FuselmError, shown } from './errors.js';
import { type RenderRequest, renderConversation, type TemplateMessage, strftime, TemplateBudgetExceeded, TemplateRaised } from './jinja-env.js';
import { DEFAULT_TEMPLATE_BUDGET, type TemplateBudget } from './template-budget.js';
import { renderInWorker } from './template-pool.js';
import type { GenerationConfig } from './formats/hf.js';
import { type GenerateOptions, type GenerateResult, type StreamChunk, generationDefaults } from './generate.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';
import {
  checkToolMessage, checkToolOptions, templateInput, type ToolCall, type ToolDefinition, type ToolFamily, toolFamily, toolGrammar, toolReply,
  type ToolMessageFields, type ToolOptions,
} from './chat-tools.js';

/**
 * A message: `content` is its text (an assistant's that only calls tools: ''). Tool calls and
 * their results ride in the tool fields: an assistant's `toolCalls`, a 'tool' message's
 * `toolCallId` (and `name`).
 */
export interface ChatMessage extends ToolMessageFields {
  role: string;
  content: string;
}

/** chat.send()'s and chat.stream()'s options: generation's and the tool-call ones. */
export interface ChatSendOptions extends GenerateOptions, ToolOptions {}

/**
 * A reply; `toolCalls` when the model called tools, then `content` is the text it wrote before
 * them ('' when none) and `text` the whole reply as the model wrote it.
 */
export interface ChatResult extends GenerateResult {
  toolCalls?: ToolCall[];
  content?: string;
}

/** A streamed reply's chunk; the last one (id -1) carries `toolCalls` and `content` when the model called tools. */
export interface ChatStreamChunk extends StreamChunk {
  toolCalls?: ToolCall[];
  content?: string;
}

/** Used when the model carries no template of its own (llama.cpp falls back to ChatML too). */
export const CHATML_TEMPLATE =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface ChatTemplateOptions {
  /** A Jinja chat template overriding the model's own. */
  template?: string;
  /**
   * More template variables, over fuselm's (transformers' apply_chat_template keyword
   * arguments): e.g. `{ date_string: '26 Jul 2024' }`, `{ enable_thinking: false }`, `{ tools }`.
   */
  templateVariables?: Record<string, unknown>;
  /**
   * What one render may spend: `timeMs` of wall time (default 2000), `steps` evaluations (each
   * expression and loop iteration; default 1,000,000; range() may not make a longer list) and
   * `outputChars` of text (default 64 Mi). Past one, the render fails with E_TEMPLATE.
   * Chat.send()/stream() and renderAsync()/encodeAsync() render in a worker thread, so the event
   * loop stays free meanwhile; render()/encode() run on the calling thread.
   */
  templateBudget?: Partial<TemplateBudget>;
}

export interface ChatOptions extends ChatSendOptions, ChatTemplateOptions {
  /** A system message that opens the conversation. */
  system?: string;
  /**
   * When the conversation no longer fits the context: 'error' (the default) rejects with
   * E_CONTEXT_FULL; 'dropOldest' drops the oldest turns after the system message until it fits.
   */
  contextShift?: 'error' | 'dropOldest';
}

function checkMessages(messages: unknown): asserts messages is ChatMessage[] {
  if (!Array.isArray(messages)) throw new FuselmError('E_INVALID_ARG', 'messages must be an array of { role, content }');
  messages.forEach((m, i) => {
    if (!m || typeof m !== 'object' || typeof m.role !== 'string' || typeof m.content !== 'string')
      throw new FuselmError('E_INVALID_ARG', `messages[${i}] must be { role: string, content: string }, got ${shown(m)}`);
    checkToolMessage(m, i);
  });
}

/** A render's options: the generation prompt at the end (default true), and tools shown to the model. */
export interface RenderOptions {
  addGenerationPrompt?: boolean;
  tools?: ToolDefinition[];
}

/**
 * A chat template parsed once, bound to a tokenizer. Errors: a template that does not parse or
 * fails to render is E_UNSUPPORTED when it is the model's own (@huggingface/jinja cannot run
 * it) and E_INVALID_ARG when the caller gave it; a template that calls raise_exception()
 * (roles out of order, an unsupported role) is E_INVALID_ARG with the template's message.
 */
export class ChatTemplate {
  readonly source: string;
  readonly #template: Template;
  readonly #tok: Tokenizer;
  readonly #variables: Record<string, unknown>;
  /** Who is to blame when the template fails: the model's own one, or the caller's. */
  readonly #what: string;
  readonly #code: 'E_UNSUPPORTED' | 'E_INVALID_ARG';
  readonly #systemRole: { known?: boolean } = {};
  readonly #budget: TemplateBudget;

  /** The template of `opts.template`, else the tokenizer's, else ChatML. */
  constructor(tokenizer: Tokenizer, opts: ChatTemplateOptions = {}) {
    if (typeof opts !== 'object' || opts === null) throw new FuselmError('E_INVALID_ARG', 'chat template options must be an object');
    this.#tok = tokenizer;
    const own = opts.template === undefined && tokenizer.chatTemplate !== undefined;
    this.#what = own ? "the model's chat template" : opts.template !== undefined ? 'the chat template given in the options' : 'the ChatML template';
    this.#code = own ? 'E_UNSUPPORTED' : 'E_INVALID_ARG';
    if (opts.template !== undefined && typeof opts.template !== 'string') throw new FuselmError('E_INVALID_ARG', 'template must be a string (Jinja)');
    this.source = opts.template ?? tokenizer.chatTemplate ?? CHATML_TEMPLATE;
    this.#budget = checkBudget(opts.templateBudget);
    if (opts.templateVariables !== undefined && (typeof opts.templateVariables !== 'object' || opts.templateVariables === null))
      throw new FuselmError('E_INVALID_ARG', 'templateVariables must be an object');
    try {
      this.#template = new Template(this.source);
    } catch (e) {
      throw new FuselmError(this.#code, `${this.#what} does not parse: ${(e as Error).message}`, { cause: e });
    }
    const text = (id: number | undefined) => (id === undefined ? undefined : tokenizer.tokenToPiece(id));
    const specials = { bos_token: text(tokenizer.bos), eos_token: text(tokenizer.eos), unk_token: text(tokenizer.unk), pad_token: text(tokenizer.pad) };
    this.#variables = {
      ...Object.fromEntries(Object.entries(specials).filter(([, v]) => v !== undefined)),
      tools: null,
      documents: null,
      // Llama-3.1's template says "Today Date: {date_string}": today, as llama.cpp passes it and
      // Llama-3.2's template computes it (strftime_now). Fixed when the template is made, so
      // that a conversation's earlier turns, and their KV cache, stay valid past midnight.
      date_string: strftime(new Date(), '%d %b %Y'),
      ...opts.templateVariables,
    };
  }

  /** The error for a failed render. */
  #error(e: unknown): FuselmError {
    if (e instanceof TemplateRaised) return new FuselmError('E_INVALID_ARG', `${this.#what} rejected the conversation: ${e.message}`, { cause: e });
    if (e instanceof TemplateBudgetExceeded) return new FuselmError('E_TEMPLATE', `${this.#what} was stopped: ${e.message}`, { cause: e });
    return new FuselmError(this.#code, `${this.#what} failed to render: ${(e as Error).message}`, { cause: e });
  }

  /** How this template's model calls tools (chat-tools.ts). */
  get toolFamily(): ToolFamily {
    return toolFamily(this.source);
  }

  #request(messages: ChatMessage[], opts: RenderOptions): RenderRequest {
    checkMessages(messages);
    if (typeof opts !== 'object' || opts === null) throw new FuselmError('E_INVALID_ARG', 'render options must be an object');
    const input = templateInput(messages, checkToolOptions({ tools: opts.tools }), this.toolFamily);
    const variables = input.tools ? { ...this.#variables, tools: input.tools } : this.#variables;
    return { source: this.source, variables, messages: input.messages as TemplateMessage[], addGenerationPrompt: opts.addGenerationPrompt ?? true, budget: this.#budget };
  }

  /** Whether a system message gets into the text (Gemma's and Mistral-Instruct's templates refuse one). */
  get supportsSystemRole(): boolean {
    if (this.#systemRole.known === undefined) {
      try {
        renderConversation(this.#template, this.#request([{ role: 'system', content: '' }], { addGenerationPrompt: true }), this.#systemRole);
      } catch {
        this.#systemRole.known ??= false;
      }
    }
    return this.#systemRole.known!;
  }

  /**
   * The conversation as text, on the calling thread (under the template budget). A leading
   * system message that the template does not support is merged into the first user message
   * ("system\n\nuser"), as llama.cpp does and as Gemma-3's own template does.
   */
  render(messages: ChatMessage[], opts: RenderOptions = {}): string {
    const r = this.#request(messages, opts);
    try {
      return renderConversation(this.#template, r, this.#systemRole);
    } catch (e) {
      throw this.#error(e);
    }
  }

  /** render() in the template worker thread: the event loop stays free while a template runs. */
  async renderAsync(messages: ChatMessage[], opts: RenderOptions = {}): Promise<string> {
    const r = this.#request(messages, opts);
    let text: string | undefined;
    try {
      text = await renderInWorker(r);
    } catch (e) {
      throw this.#error(e);
    }
    return text ?? this.render(messages, opts);
  }

  /** encode() with the render in the template worker thread and the tokenizing by encodeAsync(). */
  async encodeAsync(messages: ChatMessage[], opts: RenderOptions = {}): Promise<number[]> {
    return this.tokenizeAsync(await this.renderAsync(messages, opts));
  }

  /** tokenize() with the tokenizer's encodeAsync() where it has one (large texts off the JS thread). */
  async tokenizeAsync(text: string): Promise<number[]> {
    const tok = this.#tok;
    const ids = tok.encodeAsync ? await tok.encodeAsync(text, { parseSpecial: true }) : tok.encode(text, { parseSpecial: true });
    return tok.addBos && tok.bos !== undefined && ids[0] !== tok.bos ? [tok.bos, ...ids] : ids;
  }

  /**
   * The conversation tokenized, special tokens in the text recognized (`<|im_start|>` is one
   * id). The tokenizer's BOS is added as it says (add_bos_token), unless the text already
   * starts with it: a template that writes bos_token itself does not get a second one.
   */
  encode(messages: ChatMessage[], opts: RenderOptions = {}): number[] {
    return this.tokenize(this.render(messages, opts));
  }

  /** encode() of an already rendered text. */
  tokenize(text: string): number[] {
    const tok = this.#tok;
    const ids = tok.encode(text, { parseSpecial: true });
    return tok.addBos && tok.bos !== undefined && ids[0] !== tok.bos ? [tok.bos, ...ids] : ids;
  }
}

/**
 * transformers' apply_chat_template: the messages rendered with the tokenizer's chat template
 * (or opts.template) and tokenized as a Chat would (ChatTemplate.render / encode).
 */
export function applyChatTemplate(
  tokenizer: Tokenizer,
  messages: ChatMessage[],
  opts: ChatTemplateOptions & RenderOptions = {},
): { text: string; ids: number[] } {
  const t = new ChatTemplate(tokenizer, opts);
  const text = t.render(messages, opts);
  return { text, ids: t.tokenize(text) };
}

/** The template budget of the options, defaults filled in (E_INVALID_ARG for a value that is not a positive number). */
function checkBudget(b: Partial<TemplateBudget> | undefined): TemplateBudget {
  if (b === undefined) return DEFAULT_TEMPLATE_BUDGET;
  if (typeof b !== 'object' || b === null) throw new FuselmError('E_INVALID_ARG', 'templateBudget must be an object');
  const out = { ...DEFAULT_TEMPLATE_BUDGET };
  for (const k of ['timeMs', 'steps', 'outputChars'] as const) {
    const v = b[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new FuselmError('E_INVALID_ARG', `templateBudget.${k} must be a finite number > 0, got ${String(v)}`);
    out[k] = v;
  }
  return out;
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
  /** The chat template in use (the model's own, opts.template, or ChatML). */
  readonly template: ChatTemplate;
  readonly #model: ChatModel;
  readonly #opts: ChatOptions;

  constructor(model: ChatModel, opts: ChatOptions = {}) {
    if (typeof opts !== 'object' || opts === null) throw new FuselmError('E_INVALID_ARG', 'chat options must be an object');
    this.#model = model;
    this.#opts = opts;
    this.template = new ChatTemplate(model.tokenizer, opts);
    if (opts.contextShift !== undefined && opts.contextShift !== 'error' && opts.contextShift !== 'dropOldest')
      throw new FuselmError('E_INVALID_ARG', `contextShift must be 'error' or 'dropOldest', got '${opts.contextShift}'`);
    if (opts.system !== undefined) {
      if (typeof opts.system !== 'string') throw new FuselmError('E_INVALID_ARG', 'system must be a string');
      this.messages.push({ role: 'system', content: opts.system });
    }
  }

  /**
   * The prompt for the next turn, leaving `o.maxTokens` positions free for the reply (or the
   * model's default, or 1 when the reply is unbounded); shifted per contextShift when it does
   * not fit.
   */
  async #turnPrompt(messages: ChatMessage[], o: GenerateOptions, tools: ToolDefinition[] | undefined): Promise<number[]> {
    const reply = o.maxTokens ?? generationDefaults(this.#model.generationConfig).maxTokens ?? 1;
    const room = this.#model.contextSize - reply;
    let msgs = messages;
    for (;;) {
      const ids = await this.template.encodeAsync(msgs, { tools });
      if (ids.length <= room) return ids;
      const first = msgs[0]?.role === 'system' ? 1 : 0;
      if (this.#opts.contextShift !== 'dropOldest' || msgs.length - first <= 1)
        throw new FuselmError(
          'E_CONTEXT_FULL',
          `the conversation needs ${ids.length} tokens and the reply ${reply} more, but the context holds ${this.#model.contextSize}`,
        );
      // drop the oldest turn: a user message and what answers it (replies, tool calls and results)
      const next = msgs.findIndex((m, i) => i > first && m.role === 'user');
      const drop = next < 0 ? 1 : next - first;
      msgs = [...msgs.slice(0, first), ...msgs.slice(first + drop)];
    }
  }

  /** A turn's generation options, and its tools and their grammar's family when the reply may call them. */
  #turn(opts: ChatSendOptions): { o: GenerateOptions; tools?: ToolDefinition[]; family?: ToolFamily } {
    if (typeof opts !== 'object' || opts === null) throw new FuselmError('E_INVALID_ARG', 'send options must be an object');
    const { system: _s, template: _t, templateVariables: _v, contextShift: _c, templateBudget: _b, ...chatGen } = this.#opts;
    const { tools: _tools, toolChoice, parallelToolCalls, ...gen } = { ...chatGen, ...opts };
    const t: ToolOptions = { tools: opts.tools ?? this.#opts.tools, toolChoice, parallelToolCalls };
    const tools = checkToolOptions(t);
    const o: GenerateOptions = { ...gen, addSpecial: false };
    const family = this.template.toolFamily;
    const grammar = toolGrammar(tools, t, family);
    if (grammar === undefined) return { o, tools };
    if (o.grammar !== undefined || o.jsonSchema !== undefined) throw new FuselmError('E_INVALID_ARG', "give tools or grammar/jsonSchema, not both (or toolChoice 'none')");
    return { o: { ...o, grammar }, tools, family };
  }

  /** The messages a send adds before the reply: a user message, or the caller's (tool results). */
  #added(input: string | ChatMessage[]): ChatMessage[] {
    if (typeof input === 'string') return [{ role: 'user', content: input }];
    checkMessages(input);
    if (input.length === 0) throw new FuselmError('E_INVALID_ARG', 'send() needs a text or at least one message');
    return input.map((m) => ({ ...m }));
  }

  /** The reply as the history keeps it. */
  #reply(r: { content: string; toolCalls?: ToolCall[] }): ChatMessage {
    return r.toolCalls ? { role: 'assistant', content: r.content, toolCalls: r.toolCalls } : { role: 'assistant', content: r.content };
  }

  /**
   * Sends a user message (a text), or messages (tool results: `{ role: 'tool', toolCallId,
   * content }`); resolves with the assistant's reply (added to messages). With `tools`, the
   * reply may call them (toolChoice): it is held to the template family's call shape and the
   * calls come back parsed as `toolCalls`.
   */
  async send(input: string | ChatMessage[], opts: ChatSendOptions = {}): Promise<ChatResult> {
    const { o, tools, family } = this.#turn(opts);
    const added = this.#added(input);
    const r: ChatResult = await this.#model.generate(await this.#turnPrompt([...this.messages, ...added], o, tools), o);
    const split = family ? toolReply(r.text, family) : { content: r.text };
    if (split.toolCalls) Object.assign(r, split);
    this.messages.push(...added, this.#reply(split));
    return r;
  }

  /** send() streamed; the reply joins messages when the stream ends. */
  async *stream(input: string | ChatMessage[], opts: ChatSendOptions = {}): AsyncGenerator<ChatStreamChunk> {
    const { o, tools, family } = this.#turn(opts);
    const added = this.#added(input);
    let reply = '';
    for await (const c of this.#model.stream(await this.#turnPrompt([...this.messages, ...added], o, tools), o)) {
      reply += c.text;
      yield c;
    }
    const split = family ? toolReply(reply, family) : { content: reply };
    if (split.toolCalls) yield { text: '', id: -1, ...split };
    this.messages.push(...added, this.#reply(split));
  }

  /** Forgets the conversation (the system message stays). */
  reset(): void {
    this.messages.splice(this.messages[0]?.role === 'system' ? 1 : 0);
  }
}
