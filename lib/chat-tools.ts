/**
 * Tool calls (OpenAI-style function calling) over a chat template: the tool definitions checked,
 * the conversation prepared for the template (tools passed as transformers passes them, tool
 * calls and results in the message shapes templates read), a grammar that holds the reply to the
 * template family's tool-call shape with each function's arguments held to its parameters schema,
 * and the reply parsed back into tool calls.
 *
 * Families, told from the template's text:
 *   llama3   Llama-3.1's JSON call: {"name": "f", "parameters": {...}} (one call a turn)
 *   hermes   Qwen2.5 / Hermes: <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>, one or more
 *   generic  a template without a tool section: the tools are described in the system message,
 *            calls take the hermes shape, and tool calls and results in the history become text
 * With toolChoice 'auto' a hermes/generic reply is free text (never holding '<tool_call>')
 * optionally followed by tool calls, as Qwen2.5 often writes them; a llama3 reply is either text
 * that does not open with '{' or one call. 'required' and a named function allow calls only;
 * 'none' leaves the reply free (the tools are still shown to the model).
 */
import { randomUUID } from 'node:crypto';
import { FuselmError, shown } from './errors.js';
import { gbnfString, type JsonSchema, SchemaGrammar } from './grammar/json-schema.js';

export interface ToolFunction {
  /** [A-Za-z0-9_-], 1 to 64 characters (OpenAI's rule). */
  name: string;
  description?: string;
  /** A JSON Schema of the arguments object; left out: no arguments ({}). */
  parameters?: { [keyword: string]: unknown };
  /** OpenAI's flag; arguments always follow the schema here. */
  strict?: boolean | null;
}

export interface ToolDefinition {
  type: 'function';
  function: ToolFunction;
}

export type ToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

export interface ToolCall {
  id: string;
  type: 'function';
  /** `arguments`: a JSON text of an object that validates against the function's parameters. */
  function: { name: string; arguments: string };
}

export interface ToolOptions {
  /** Functions the model may call (OpenAI's `tools`). */
  tools?: ToolDefinition[];
  /** Default 'auto' when there are tools. */
  toolChoice?: ToolChoice;
  /** More than one call in a reply (where the family allows it); default true. */
  parallelToolCalls?: boolean;
}

export type ToolFamily = 'llama3' | 'hermes' | 'generic';

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** The tool options checked (E_INVALID_ARG naming the field); the tools as given, or undefined without any. */
export function checkToolOptions(o: ToolOptions): ToolDefinition[] | undefined {
  const bad = (msg: string) => new FuselmError('E_INVALID_ARG', msg);
  const { tools, toolChoice, parallelToolCalls } = o;
  if (tools !== undefined) {
    if (!Array.isArray(tools)) throw bad(`tools must be an array of { type: 'function', function: { name, parameters } }, got ${shown(tools)}`);
    const seen = new Set<string>();
    tools.forEach((t, i) => {
      if (!t || typeof t !== 'object' || t.type !== 'function' || !t.function || typeof t.function !== 'object')
        throw bad(`tools[${i}] must be { type: 'function', function: { name, parameters } }, got ${shown(t)}`);
      const f = t.function;
      if (typeof f.name !== 'string' || !NAME.test(f.name)) throw bad(`tools[${i}].function.name must be 1 to 64 of [A-Za-z0-9_-], got ${shown(f.name)}`);
      if (seen.has(f.name)) throw bad(`tools[${i}].function.name ${shown(f.name)} is given twice`);
      seen.add(f.name);
      if (f.description !== undefined && typeof f.description !== 'string') throw bad(`tools[${i}].function.description must be a string`);
      if (f.parameters !== undefined && (typeof f.parameters !== 'object' || f.parameters === null || Array.isArray(f.parameters)))
        throw bad(`tools[${i}].function.parameters must be a JSON Schema object, got ${shown(f.parameters)}`);
    });
  }
  if (toolChoice !== undefined) {
    const named = typeof toolChoice === 'object' && toolChoice !== null && toolChoice.type === 'function' && typeof toolChoice.function?.name === 'string';
    if (!named && toolChoice !== 'auto' && toolChoice !== 'none' && toolChoice !== 'required')
      throw bad(`toolChoice must be 'auto', 'none', 'required' or { type: 'function', function: { name } }, got ${shown(toolChoice)}`);
    if (named && !tools?.some((t) => t.function.name === toolChoice.function.name))
      throw bad(`toolChoice names the function ${shown(toolChoice.function.name)}, which is not in tools`);
    if ((named || toolChoice === 'required') && !tools?.length) throw bad(`toolChoice ${shown(toolChoice)} needs tools`);
  }
  if (parallelToolCalls !== undefined && typeof parallelToolCalls !== 'boolean') throw bad(`parallelToolCalls must be a boolean, got ${shown(parallelToolCalls)}`);
  return tools?.length ? tools : undefined;
}

/** The tool-call family of a chat template (see the file's comment). */
export function toolFamily(templateSource: string): ToolFamily {
  if (!/\btools\b/.test(templateSource)) return 'generic';
  if (templateSource.includes('<tool_call>')) return 'hermes';
  if (templateSource.includes('"parameters"')) return 'llama3';
  return 'generic';
}

/** A message as the chat keeps it: text, or an assistant's tool calls, or a tool's result. */
export interface ToolMessageFields {
  /** An assistant message's tool calls. */
  toolCalls?: ToolCall[];
  /** A 'tool' message: the id of the call it answers. */
  toolCallId?: string;
  /** A 'tool' message: the function's name. */
  name?: string;
}

type Message = { role: string; content: string } & ToolMessageFields;

/** E_INVALID_ARG for a message's tool fields of the wrong shape. */
export function checkToolMessage(m: Message, i: number): void {
  const bad = (msg: string) => new FuselmError('E_INVALID_ARG', `messages[${i}].${msg}`);
  if (m.toolCallId !== undefined && typeof m.toolCallId !== 'string') throw bad(`toolCallId must be a string, got ${shown(m.toolCallId)}`);
  if (m.name !== undefined && typeof m.name !== 'string') throw bad(`name must be a string, got ${shown(m.name)}`);
  if (m.toolCalls === undefined) return;
  if (!Array.isArray(m.toolCalls)) throw bad(`toolCalls must be an array, got ${shown(m.toolCalls)}`);
  m.toolCalls.forEach((c, j) => {
    if (!c || typeof c !== 'object' || !c.function || typeof c.function.name !== 'string' || typeof c.function.arguments !== 'string')
      throw bad(`toolCalls[${j}] must be { id, type: 'function', function: { name, arguments: string } }, got ${shown(c)}`);
    try {
      JSON.parse(c.function.arguments);
    } catch {
      throw bad(`toolCalls[${j}].function.arguments must be JSON text, got ${shown(c.function.arguments)}`);
    }
  });
}

/**
 * The messages and `tools` variable a template renders. llama3/hermes: tool calls as
 * transformers gives them to templates (`tool_calls: [{ id, type, function: { name,
 * arguments: object } }]`, `tool_call_id`); plain messages stay as they are (Llama-3.1's
 * template tests `'tool_calls' in message`). generic: the tools described in the system message
 * and calls and results written as hermes text, so any template renders them.
 */
export function templateInput(messages: Message[], tools: ToolDefinition[] | undefined, family: ToolFamily): { messages: Record<string, unknown>[]; tools: ToolDefinition[] | null } {
  if (family !== 'generic') {
    const out = messages.map((m) => {
      // (other fields a template may read, e.g. reasoning_content, pass through)
      const { toolCalls, toolCallId, ...t } = m as Message & Record<string, unknown>;
      if (toolCalls?.length)
        t.tool_calls = toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.function.name, arguments: JSON.parse(c.function.arguments) } }));
      if (toolCallId !== undefined) t.tool_call_id = toolCallId;
      return t;
    });
    return { messages: out, tools: tools ?? null };
  }
  const out: Record<string, unknown>[] = [];
  for (const m of messages) {
    if (m.role === 'tool') {
      const text = `<tool_response>\n${m.content}\n</tool_response>`;
      const last = out[out.length - 1];
      // results of one turn's calls go together in one user message
      if (last?.role === 'user' && String(last.content).startsWith('<tool_response>')) last.content += `\n${text}`;
      else out.push({ role: 'user', content: text });
    } else if (m.toolCalls?.length) {
      const calls = m.toolCalls.map((c) => hermesCall(c.function.name, c.function.arguments)).join('\n');
      out.push({ role: m.role, content: m.content ? `${m.content}\n${calls}` : calls });
    } else out.push({ ...m });
  }
  if (tools) {
    const text = toolsSystemText(tools);
    if (out[0]?.role === 'system') out[0] = { role: 'system', content: `${out[0].content}\n\n${text}` };
    else out.unshift({ role: 'system', content: text });
  }
  return { messages: out, tools: null };
}

/** How the generic family tells the model about its tools (the hermes wording, written here). */
function toolsSystemText(tools: ToolDefinition[]): string {
  return (
    '# Tools\n\nYou may call one or more functions to help with the request. Their signatures are within <tools></tools>:\n<tools>\n' +
    tools.map((t) => JSON.stringify(t)).join('\n') +
    '\n</tools>\n\nTo call a function, reply with a JSON object of its name and arguments within <tool_call></tool_call> tags:\n' +
    '<tool_call>\n{"name": <function-name>, "arguments": <arguments-json-object>}\n</tool_call>'
  );
}

function hermesCall(name: string, args: string): string {
  return `<tool_call>\n{"name": ${JSON.stringify(name)}, "arguments": ${args}}\n</tool_call>`;
}

/**
 * The GBNF grammar the reply must follow, or undefined when it is free (no tools, or
 * toolChoice 'none'). Each function's arguments follow its parameters schema (an absent one: {}).
 */
export function toolGrammar(tools: ToolDefinition[] | undefined, o: ToolOptions, family: ToolFamily): string | undefined {
  const choice = o.toolChoice ?? 'auto';
  if (!tools || choice === 'none') return undefined;
  const chosen = typeof choice === 'object' ? tools.filter((t) => t.function.name === choice.function.name) : tools;
  const g = new SchemaGrammar();
  const key = family === 'llama3' ? 'parameters' : 'arguments';
  const calls = chosen.map((t) => {
    const i = tools.indexOf(t);
    const params = t.function.parameters ?? { type: 'object', additionalProperties: false };
    const args = g.define(`${t.function.name}-args`, g.expression(params, `${t.function.name}-args`, `tools[${i}].function.parameters`));
    const open = `{"name": ${JSON.stringify(t.function.name)}, ${JSON.stringify(key)}: `;
    return family === 'llama3' ? `${gbnfString(open)} ${args} "}"` : `${gbnfString(`<tool_call>\n${open}`)} ${args} ${gbnfString('}\n</tool_call>')}`;
  });
  const call = g.define('tool-call', calls.join(' | '));
  // Llama-3.1 takes one call a turn; a named function is called once, as OpenAI does
  const many = family !== 'llama3' && typeof choice !== 'object' && o.parallelToolCalls !== false;
  const body = many ? `${call} ("\\n" ${call})*` : call;
  if (choice !== 'auto') return g.grammar(body);
  if (family === 'llama3') return g.grammar(`${g.define('tool-calls', body)} | ${g.define('free-text', '([^{] .*)?')}`);
  return g.grammar(`${g.define('free-text', textWithout(HERMES_OPEN))} ${g.define('tool-calls', body)}?`);
}

const HERMES_OPEN = '<tool_call>';

/**
 * GBNF for the texts that never hold `word` (whose first character occurs in it only there):
 * runs without that character, each occurrence followed by a part of the word broken off by
 * another character, or by the next occurrence, or by the end.
 */
function textWithout(word: string): string {
  const cls = (c: string) => (c === ']' || c === '\\' || c === '^' || c === '-' ? `\\${c}` : c);
  const first = cls(word[0]);
  let broken = '';
  for (let k = word.length - 1; k >= 1; k--) {
    const inner = k === word.length - 1 ? '' : ` | ${gbnfString(word[k])} (${broken})`;
    broken = `"" | [^${cls(word[k])}${first}] [^${first}]*${inner}`;
  }
  return `[^${first}]* (${gbnfString(word[0])} (${broken}))*`;
}

/**
 * The reply's tool calls, parsed from a reply its grammar held to the family's shape; undefined
 * when it holds none (free text, or calls cut short by maxTokens or a stop string).
 */
export function parseToolCalls(text: string, family: ToolFamily): ToolCall[] | undefined {
  const calls: { name: unknown; args: unknown }[] = [];
  try {
    if (family === 'llama3') {
      if (!text.startsWith('{')) return undefined;
      const v = JSON.parse(text);
      calls.push({ name: v?.name, args: v?.parameters });
    } else {
      if (!text.startsWith('<tool_call>')) return undefined;
      const parts = text.split(/<\/tool_call>\n?/);
      if (parts.pop() !== '') return undefined; // the last call is unfinished
      for (const p of parts) {
        if (!p.startsWith('<tool_call>')) return undefined;
        const v = JSON.parse(p.slice('<tool_call>'.length));
        calls.push({ name: v?.name, args: v?.arguments });
      }
    }
  } catch {
    return undefined;
  }
  if (!calls.every((c) => typeof c.name === 'string' && typeof c.args === 'object' && c.args !== null && !Array.isArray(c.args))) return undefined;
  return calls.map((c) => ({ id: `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`, type: 'function', function: { name: c.name as string, arguments: JSON.stringify(c.args) } }));
}

/**
 * A reply split into the text the model wrote before its tool calls (trailing white space
 * dropped) and the calls; all of it is content when it holds no finished calls.
 */
export function toolReply(text: string, family: ToolFamily): { content: string; toolCalls?: ToolCall[] } {
  const at = family === 'llama3' ? (text.startsWith('{') ? 0 : -1) : text.indexOf(HERMES_OPEN);
  const toolCalls = at < 0 ? undefined : parseToolCalls(text.slice(at), family);
  return toolCalls ? { content: text.slice(0, at).trimEnd(), toolCalls } : { content: text };
}

/**
 * How much of `text` (a reply so far) is surely content, to be streamed now: all but what may
 * still become tool calls (a llama3 reply opening with '{'; a hermes opening, or a start of one
 * at the end, and the white space before it).
 */
export function surelyContent(text: string, family: ToolFamily): number {
  if (family === 'llama3') return text.startsWith('{') ? 0 : text.length;
  let cut = text.indexOf(HERMES_OPEN);
  if (cut < 0) {
    cut = text.length;
    for (let k = Math.min(HERMES_OPEN.length - 1, text.length); k > 0; k--)
      if (text.endsWith(HERMES_OPEN.slice(0, k))) {
        cut -= k;
        break;
      }
  }
  while (cut > 0 && /\s/.test(text[cut - 1])) cut--;
  return cut;
}
