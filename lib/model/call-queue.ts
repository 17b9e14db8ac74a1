import { FuselmError } from '../errors.js';

/**
 * A model's calls, run one at a time in order of arrival (they share its activations and
 * caches); a call queued after the model was disposed is E_DISPOSED.
 */
export class CallQueue {
  #tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly alive: () => boolean) {}

  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(() => {
      if (!this.alive()) throw new FuselmError('E_DISPOSED', 'model used after dispose()');
      return fn();
    });
    this.#tail = run.catch(() => {});
    return run;
  }

  /** Settles when every call queued so far has ended. */
  idle(): Promise<unknown> {
    return this.#tail;
  }
}
