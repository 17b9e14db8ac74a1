/**
 * The chat template worker (a worker_threads worker; template-pool.ts runs it): renders
 * conversations off the JS thread, so that a hostile template costs the worker its time budget,
 * not the application's event loop. Parsed templates are kept by source.
 */
import { parentPort } from 'node:worker_threads';
import { Template } from '@huggingface/jinja';
import { type RenderRequest, TemplateBudgetExceeded, TemplateRaised, renderConversation } from './jinja-env.js';

const parsed = new Map<string, { template: Template; systemRole: { known?: boolean } }>();

parentPort!.on('message', (m: { id: number; request: RenderRequest }) => {
  try {
    let t = parsed.get(m.request.source);
    if (!t) {
      if (parsed.size > 16) parsed.clear();
      t = { template: new Template(m.request.source), systemRole: {} };
      parsed.set(m.request.source, t);
    }
    parentPort!.postMessage({ id: m.id, text: renderConversation(t.template, m.request, t.systemRole) });
  } catch (e) {
    const kind = e instanceof TemplateRaised ? 'raised' : e instanceof TemplateBudgetExceeded ? 'budget' : 'error';
    parentPort!.postMessage({ id: m.id, error: { kind, message: String((e as Error)?.message ?? e) } });
  }
});
