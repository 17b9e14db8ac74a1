/**
 * The environment chat templates run in: @huggingface/jinja's parser and interpreter, with the
 * globals of Python's Jinja as transformers sets it up (true/false/none and their Python
 * spellings, range, raise_exception, strftime_now). It is built here rather than by
 * Template.render() so that raise_exception() throws an error of its own (the template refused
 * the conversation, told apart from a template fuselm cannot run) and strftime_now() formats as
 * Python's C locale does ("26 Jul 2024" whatever the machine's locale).
 */
import { Environment, Interpreter, Template } from '@huggingface/jinja';

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

/** Python's range(stop) / range(start, stop[, step]). */
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() arg 3 must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** Renders a parsed template with `variables` over the globals; `now` is strftime_now's clock. */
export function renderTemplate(template: Template, variables: Record<string, unknown>, now: () => Date = () => new Date()): string {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    true: true,
    false: false,
    none: null,
    True: true,
    False: false,
    None: null,
    range,
    raise_exception: (message: unknown) => {
      throw new TemplateRaised(String(message));
    },
    strftime_now: (format: unknown) => strftime(now(), String(format)),
  };
  for (const [k, v] of Object.entries({ ...globals, ...variables })) if (v !== undefined) env.set(k, v);
  const out = new Interpreter(env).run(template.parsed).value;
  return typeof out === 'string' ? out : String(out);
}
