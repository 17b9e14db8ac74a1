/**
 * The environment chat templates run in: @huggingface/jinja's parser and interpreter, with the
 * globals of Python's Jinja as transformers sets it up (true/false/none and their Python
 * spellings, range, raise_exception, strftime_now). It is built here rather than by
 * Template.render() so that raise_exception() throws an error of its own (the template refused
 * the conversation, told apart from a template fuselm cannot run) and strftime_now() formats as
 * Python's C locale does ("26 Jul 2024" whatever the machine's locale).
 */
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { DEFAULT_TEMPLATE_BUDGET, type TemplateBudget } from './template-budget.js';

export { DEFAULT_TEMPLATE_BUDGET, type TemplateBudget };

/** A render stopped by its budget (chat.ts makes it an E_TEMPLATE). */
export class TemplateBudgetExceeded extends Error {
  override name = 'TemplateBudgetExceeded';
}

/** @huggingface/jinja's Interpreter as far as fuselm uses it (its .d.ts does not resolve under NodeNext). */
interface JinjaInterpreter {
  run(program: unknown): { value: unknown };
  evaluate(statement: unknown, environment: unknown): unknown;
  evaluateBlock(statements: unknown[], environment: unknown): unknown;
}
const InterpreterBase = Interpreter as unknown as new (env: Environment) => JinjaInterpreter;

/** The interpreter with the budget counted on every evaluation. */
class BudgetedInterpreter extends InterpreterBase {
  #steps = 0;
  readonly #budget: TemplateBudget;
  readonly #deadline: number;

  constructor(env: Environment, budget: TemplateBudget) {
    super(env);
    this.#budget = budget;
    this.#deadline = performance.now() + budget.timeMs;
  }

  /** A block is evaluated per loop iteration: an empty loop body counts too. */
  override evaluateBlock(statements: unknown[], environment: unknown): unknown {
    this.#step();
    return super.evaluateBlock(statements, environment);
  }

  override evaluate(statement: unknown, environment: unknown): unknown {
    this.#step();
    const v = super.evaluate(statement, environment);
    const value = (v as { value?: unknown }).value;
    if (typeof value === 'string' && value.length > this.#budget.outputChars)
      throw new TemplateBudgetExceeded(`the template made a string of more than ${this.#budget.outputChars} characters`);
    return v;
  }

  #step(): void {
    if (++this.#steps > this.#budget.steps) throw new TemplateBudgetExceeded(`the template took more than ${this.#budget.steps} evaluation steps`);
    if ((this.#steps & 1023) === 0 && performance.now() > this.#deadline)
      throw new TemplateBudgetExceeded(`the template ran for more than ${this.#budget.timeMs} ms`);
  }
}

/** What raise_exception(message) throws inside a template. */
export class TemplateRaised extends Error {
  override name = 'TemplateRaised';
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python's time.strftime in the C locale, local time: %Y %y %m %d %e %H %I %M %S %p %b %B %a %A %j %%. */
export function strftime(d: Date, format: string): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const yday = Math.round((new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime() - new Date(d.getFullYear(), 0, 1).getTime()) / 86400000) + 1;
  const fields: Record<string, () => string> = {
    Y: () => String(d.getFullYear()),
    y: () => pad(d.getFullYear() % 100),
    m: () => pad(d.getMonth() + 1),
    d: () => pad(d.getDate()),
    e: () => String(d.getDate()).padStart(2, ' '),
    H: () => pad(d.getHours()),
    I: () => pad(d.getHours() % 12 || 12),
    M: () => pad(d.getMinutes()),
    S: () => pad(d.getSeconds()),
    p: () => (d.getHours() < 12 ? 'AM' : 'PM'),
    b: () => MONTHS[d.getMonth()].slice(0, 3),
    B: () => MONTHS[d.getMonth()],
    a: () => DAYS[d.getDay()].slice(0, 3),
    A: () => DAYS[d.getDay()],
    j: () => pad(yday, 3),
    '%': () => '%',
  };
  return format.replace(/%(.)/gs, (all, c: string) => fields[c]?.() ?? all);
}

/** Python's range(stop) / range(start, stop[, step]), at most `max` numbers. */
function range(max: number, start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() arg 3 must not be zero');
  if (![start, stop, step].every((x) => typeof x === 'number' && Number.isFinite(x))) throw new Error('range() takes finite numbers');
  const n = Math.max(0, Math.ceil((stop - start) / step));
  if (n > max) throw new TemplateBudgetExceeded(`range() of ${n} numbers is more than the template's ${max} steps`);
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/**
 * Renders a parsed template with `variables` over the globals; `now` is strftime_now's clock.
 * Throws TemplateBudgetExceeded past the budget.
 */
export function renderTemplate(
  template: Template,
  variables: Record<string, unknown>,
  now: () => Date = () => new Date(),
  budget: TemplateBudget = DEFAULT_TEMPLATE_BUDGET,
): string {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    true: true,
    false: false,
    none: null,
    True: true,
    False: false,
    None: null,
    range: (start: number, stop?: number, step?: number) => range(budget.steps, start, stop, step),
    raise_exception: (message: unknown) => {
      throw new TemplateRaised(String(message));
    },
    strftime_now: (format: unknown) => strftime(now(), String(format)),
  };
  for (const [k, v] of Object.entries({ ...globals, ...variables })) if (v !== undefined) env.set(k, v);
  const out = new BudgetedInterpreter(env, budget).run(template.parsed).value;
  return typeof out === 'string' ? out : String(out);
}

/** A chat message as templates see it. */
export interface TemplateMessage {
  role: string;
  content: string;
  /** Tool calls and results (tool_calls, tool_call_id, name, as chat-tools.ts gives them) and other fields a template reads. */
  [field: string]: unknown;
}

/** A marker no template writes by itself: whether a system message reaches the rendered text. */
const SYSTEM_PROBE = 'fuselm-system-probe-7d1c';

/** One conversation to render: what ChatTemplate.render() does, as plain data (it crosses to the template worker). */
export interface RenderRequest {
  source: string;
  variables: Record<string, unknown>;
  messages: TemplateMessage[];
  addGenerationPrompt: boolean;
  budget: TemplateBudget;
}

/**
 * Renders a conversation with a parsed template. A leading system message that the template does
 * not support (it never reaches the text, or the template raises on it) is merged into the first
 * user message ("system\n\nuser"), as llama.cpp does and as Gemma-3's own template does.
 * `systemRole` caches the probe's answer per template.
 */
export function renderConversation(template: Template, r: RenderRequest, systemRole: { known?: boolean } = {}): string {
  const render = (messages: TemplateMessage[], addGen: boolean) =>
    renderTemplate(template, { ...r.variables, messages, add_generation_prompt: addGen }, undefined, r.budget);
  let msgs = r.messages;
  if (msgs[0]?.role === 'system') {
    if (systemRole.known === undefined) {
      try {
        systemRole.known = render([{ role: 'system', content: SYSTEM_PROBE }, { role: 'user', content: 'Hi' }], true).includes(SYSTEM_PROBE);
      } catch (e) {
        if (e instanceof TemplateBudgetExceeded) throw e;
        systemRole.known = false;
      }
    }
    if (!systemRole.known) {
      const u = msgs.findIndex((m) => m.role === 'user');
      if (u > 0) {
        const system = msgs[0].content;
        const merged = { role: 'user', content: system ? `${system}\n\n${msgs[u].content}` : msgs[u].content };
        msgs = [...msgs.slice(1, u), merged, ...msgs.slice(u + 1)];
      }
    }
  }
  return render(msgs, r.addGenerationPrompt);
}
