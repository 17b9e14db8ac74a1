/**
 * The BPE piece cache: lookups by a range of a larger string return exactly what was stored for
 * equal text (never for a different piece with the same hash slot), and a full cache starts over.
 */
import assert from 'node:assert/strict';
import { PieceCache } from '../../lib/tokenizer/piece-cache.js';

const get = (c: PieceCache, text: string, a: number, b: number) => {
  const out: number[] = [];
  return c.get(text, a, b, PieceCache.hash(text, a, b), out) ? out : undefined;
};
const set = (c: PieceCache, text: string, a: number, b: number, ids: number[]) => c.set(text, a, b, PieceCache.hash(text, a, b), ids, 0, ids.length);

describe('PieceCache', () => {
  it('finds a piece by any range holding the same text', () => {
    const c = new PieceCache(8);
    set(c, 'hello world', 6, 11, [7, 8]);
    assert.deepEqual(get(c, 'world', 0, 5), [7, 8]);
    assert.deepEqual(get(c, 'a world!', 2, 7), [7, 8]);
    assert.equal(get(c, 'worlds', 0, 6), undefined);
    assert.equal(get(c, 'worle', 0, 5), undefined);
  });

  it('keeps apart many pieces, including ones sharing slots', () => {
    const c = new PieceCache(5000);
    const words = Array.from({ length: 5000 }, (_, i) => `w${i.toString(36)}\u00e9`);
    words.forEach((w, i) => set(c, w, 0, w.length, [i, i + 1, i + 2].slice(0, 1 + (i % 3))));
    words.forEach((w, i) => assert.deepEqual(get(c, ` ${w} `, 1, w.length + 1), [i, i + 1, i + 2].slice(0, 1 + (i % 3)), w));
  });

  it('starts over when full', () => {
    const c = new PieceCache(2);
    set(c, 'a', 0, 1, [1]);
    set(c, 'b', 0, 1, [2]);
    set(c, 'c', 0, 1, [3]);
    assert.equal(get(c, 'a', 0, 1), undefined);
    assert.deepEqual(get(c, 'c', 0, 1), [3]);
  });
});
