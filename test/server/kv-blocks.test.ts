/**
 * KvBlocks (lib/server/kv-blocks.ts), the paged pool's bookkeeping. Proves that
 *  - blocks come free first, then the least recently released cached block (forgotten), and
 *    none while every block is held;
 *  - a block is held by each holder and is free or cached only when all let go;
 *  - a lookup finds a registered block only under its exact parent and tokens; a child becomes
 *    unreachable once its parent is taken back, and a registering twin gets the first one's id;
 *  - a shared block is not writable; an only holder's registered block is, and is forgotten;
 *  - a prefix ending inside a block finds the registered block under the same parent whose first
 *    tokens hold most of it (for copy on write), and nothing once that block is forgotten.
 */
import assert from 'node:assert/strict';
import { KvBlocks } from '../../lib/server/kv-blocks.js';

describe('KvBlocks: the paged pool and its prefix cache', () => {
  it('hands out free blocks, then cached ones least recently released first, and none when all are held', () => {
    const p = new KvBlocks(3, 4);
    const [a, b, c] = [p.take()!, p.take()!, p.take()!];
    assert.deepEqual(new Set([a, b, c]), new Set([0, 1, 2]));
    assert.equal(p.take(), undefined);
    const ida = p.register(KvBlocks.ROOT, [1, 2, 3, 4], a);
    p.register(ida, [5, 6, 7, 8], b);
    p.release(b); // released first: taken back first
    p.release(a);
    p.release(c); // not registered: free
    assert.deepEqual(p.counts, { free: 1, cached: 2 });
    assert.equal(p.take(), c);
    assert.equal(p.take(), b);
    assert.equal(p.lookup(ida, [5, 6, 7, 8]), undefined, 'b was forgotten when taken');
    assert.deepEqual(p.lookup(KvBlocks.ROOT, [1, 2, 3, 4]), { block: a, id: ida });
  });

  it('a held block stays held until every holder lets go', () => {
    const p = new KvBlocks(2, 2);
    const a = p.take()!;
    p.register(KvBlocks.ROOT, [9, 9], a);
    p.hold(a);
    assert.equal(p.writable(a), false, 'shared');
    p.release(a);
    assert.deepEqual(p.counts, { free: 1, cached: 0 });
    p.release(a);
    assert.deepEqual(p.counts, { free: 1, cached: 1 });
  });

  it('finds a block only under its exact parent and tokens; children of a block taken back are unreachable', () => {
    const p = new KvBlocks(4, 2);
    const a = p.take()!, b = p.take()!, twin = p.take()!;
    const ida = p.register(KvBlocks.ROOT, [1, 2], a);
    const idb = p.register(ida, [3, 4], b);
    assert.equal(p.register(ida, [3, 4], twin), idb, 'a twin shares the first block\'s id');
    assert.equal(p.lookup(KvBlocks.ROOT, [3, 4]), undefined);
    assert.equal(p.lookup(ida, [3, 5]), undefined);
    assert.deepEqual(p.lookup(ida, [3, 4]), { block: b, id: idb });
    // a is written into by its only holder: forgotten, and b is no longer reachable from the root
    assert.equal(p.writable(a), true);
    assert.equal(p.lookup(KvBlocks.ROOT, [1, 2]), undefined);
    const again = p.register(KvBlocks.ROOT, [1, 2], p.take()!);
    assert.notEqual(again, ida, 'ids are never reused');
    assert.equal(p.lookup(again, [3, 4]), undefined);
  });

  it('finds the block holding most of a partial prefix under its parent, until it is forgotten', () => {
    const p = new KvBlocks(4, 4);
    const a = p.take()!, b = p.take()!, c = p.take()!;
    const ida = p.register(KvBlocks.ROOT, [1, 2, 3, 4], a);
    p.register(ida, [5, 6, 7, 8], b);
    p.register(ida, [5, 6, 9, 9], c);
    assert.deepEqual(p.partial(ida, [5, 6, 7]), { block: b, rows: 3 });
    assert.deepEqual(p.partial(ida, [5, 6, 9, 1]), { block: c, rows: 3 });
    assert.equal(p.partial(ida, [7, 7]), undefined, 'no first token in common');
    assert.equal(p.partial(KvBlocks.ROOT, [5, 6]), undefined, 'another parent');
    assert.deepEqual(p.partial(KvBlocks.ROOT, [1, 2, 0]), { block: a, rows: 2 });
    p.release(b);
    p.release(c);
    p.take(); // the free block
    p.take(); // b, least recently released: forgotten
    assert.deepEqual(p.partial(ida, [5, 6, 7]), { block: c, rows: 2 });
  });
});
