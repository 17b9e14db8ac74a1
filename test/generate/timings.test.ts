/**
 * Timings: decode tok/s counts forward steps (n - 1 for n tokens: the first comes from the
 * prompt's logits), as llama.cpp's eval rate does, so benchmarks compare like with like.
 */
import assert from 'node:assert/strict';
import { DecodeCall } from '../../lib/model/decode-call.js';

describe('generation timings', () => {
  it('tokensPerSecond is (generated - 1) / generateSeconds; 0 with fewer than two tokens', async () => {
    const call = new DecodeCall(undefined);
    await call.prompt([1, 2, 3], [], async () => new Float32Array(1));
    await new Promise((r) => setTimeout(r, 30));
    const t = call.finish(16);
    assert.equal(t.generatedTokens, 16);
    assert.ok(t.generateSeconds >= 0.025);
    assert.ok(Math.abs(t.tokensPerSecond - 15 / t.generateSeconds) < 1e-9, `${t.tokensPerSecond} vs ${15 / t.generateSeconds}`);
    assert.equal(call.sequenceTimings(3, 0, 1).tokensPerSecond, 0);
    assert.equal(call.sequenceTimings(3, 0, 0).tokensPerSecond, 0);
  });
});
