/**
 * A chat template render's budget (its own module, free of @huggingface/jinja's types, so that
 * the public ChatTemplateOptions can name it).
 *
 * What a template may spend on one render: wall time, evaluation steps (every expression and
 * statement evaluated, a loop's iterations included; range() may not make a longer list) and
 * characters of output. A template past one of them throws TemplateBudgetExceeded.
 */
export interface TemplateBudget {
  timeMs: number;
  steps: number;
  outputChars: number;
}

/** Ample for any real chat template over a long conversation; `{% for i in range(1e8) %}` is not. */
export const DEFAULT_TEMPLATE_BUDGET: TemplateBudget = { timeMs: 2000, steps: 1_000_000, outputChars: 64 << 20 };

