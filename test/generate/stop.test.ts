/**
 * Stop strings: found across any split of the text into token pieces, the stop text never
 * emitted, text that only looked like a stop's beginning released in order, earliest stop wins.
 */
import assert from 'node:assert/strict';
import { StopMatcher } from '../../lib/sampling/stop.js';
import { rng } from '../helpers/random.js';

function run(stops: string[], pieces: string[]): { text: string; stopped: boolean } {
  const m = new StopMatcher(stops);
  let text = '';
  for (const p of pieces) {
    const r = m.push(p);
    text += r.text;
    if (r.stopped) return { text, stopped: true };
  }
  return { text: text + m.flush(), stopped: false };
}

function randomSplit(s: string, r: () => number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; ) {
    const n = 1 + Math.floor(r() * 4);
    out.push(s.slice(i, i + n));
    i += n;
  }
  return out;
}

describe('stop strings', () => {
  it('stops before the stop text for every split of the text', () => {
    const r = rng(3);
    const text = 'Once upon a time.\nUser: hi\nBot: hello';
    for (let i = 0; i < 500; i++) {
      assert.deepEqual(run(['\nUser:'], randomSplit(text, r)), { text: 'Once upon a time.', stopped: true });
    }
  });

  it('releases text that only looked like the start of a stop string', () => {
    assert.deepEqual(run(['</end>'], ['a </', 'e', 'nd', ' b']), { text: 'a </end b', stopped: false });
    assert.deepEqual(run(['xyz'], ['x', 'y']), { text: 'xy', stopped: false });
  });

  it('takes the earliest of several stop strings, and a stop at the very start', () => {
    assert.deepEqual(run(['bb', 'a b'], ['xx a', ' bb']), { text: 'xx ', stopped: true });
    assert.deepEqual(run(['###'], ['###', 'more']), { text: '', stopped: true });
  });

  it('rejects empty stop strings', () => {
    assert.throws(() => new StopMatcher(['']), { code: 'E_INVALID_ARG' });
  });
});
