/**
 * Stop strings matched across token boundaries. Text is held back while it could still be the
 * start of a stop string, so the stop text itself is never emitted, however the tokens split it.
 */
import { FuselmError } from '../errors.js';

export class StopMatcher {
  readonly #stops: string[];
  #held = '';

  constructor(stops: readonly string[]) {
    for (const s of stops)
      if (typeof s !== 'string' || s.length === 0) throw new FuselmError('E_INVALID_ARG', `stop strings must be non-empty strings, got ${JSON.stringify(s)}`);
    this.#stops = [...stops];
  }

  /**
   * Adds newly decoded text. Returns the text that is now safe to emit, and whether a stop
   * string was found (then `text` ends right before it and the rest is dropped).
   */
  push(text: string): { text: string; stopped: boolean } {
    const held = this.#held + text;
    let cut = -1;
    for (const s of this.#stops) {
      const i = held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.#held = '';
      return { text: held.slice(0, cut), stopped: true };
    }
    // hold back the longest tail of `held` that is a proper prefix of some stop string
    let keep = 0;
    for (const s of this.#stops)
      for (let k = Math.min(s.length - 1, held.length); k > keep; k--)
        if (held.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
    this.#held = held.slice(held.length - keep);
    return { text: held.slice(0, held.length - keep), stopped: false };
  }

  /** The held-back text, at the end of generation (it turned out not to be a stop string). */
  flush(): string {
    const t = this.#held;
    this.#held = '';
    return t;
  }
}
