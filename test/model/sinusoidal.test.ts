/**
 * Sinusoidal positional encoding (the original Transformer's, as a config option). Proves that
 *  - the table has the paper's values: PE[pos, 2i] = sin(pos / 10000^(2i/d)),
 *    PE[pos, 2i+1] = cos(pos / 10000^(2i/d)), checked by hand at d = 4 and at odd d, each row
 *    of norm sqrt(d/2);
 *  - a model whose config.json asks for it (`"fuselm_positional": "sinusoidal"`) adds exactly
 *    that table to the embeddings: the tiny GPT-2 with the option gives the same logits as the
 *    same checkpoint whose learned wpe was overwritten with the table.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseSafetensorsHeader } from '../../lib/formats/safetensors.js';
import { loadModel } from '../../lib/model/model.js';
import { sinusoidalPositions } from '../../lib/model/positions.js';
import { requireShared, sharedPath } from '../helpers/shared.js';

describe('sinusoidal positional encoding', () => {
  it('has the paper values', () => {
    const pe = sinusoidalPositions(3, 4);
    const want = [
      [0, 1, 0, 1],
      [Math.sin(1), Math.cos(1), Math.sin(0.01), Math.cos(0.01)],
      [Math.sin(2), Math.cos(2), Math.sin(0.02), Math.cos(0.02)],
    ].flat();
    pe.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-7, `[${i}] ${v} vs ${want[i]}`));
    const odd = sinusoidalPositions(50, 5);
    for (let p = 0; p < 50; p++) {
      assert.ok(Math.abs(odd[p * 5 + 4] - Math.sin(p / Math.pow(10000, 4 / 5))) < 1e-6);
    }
    const d = 64, big = sinusoidalPositions(100, d);
    for (let p = 0; p < 100; p++) {
      let ss = 0;
      for (let i = 0; i < d; i++) ss += big[p * d + i] ** 2;
      assert.ok(Math.abs(Math.sqrt(ss) - Math.sqrt(d / 2)) < 1e-5);
    }
  });

  it('as a config option it is added to the embeddings (GPT-2 with the table as wpe)', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-gpt2/model.safetensors');
    const src = sharedPath('models/hf/neural-api-tiny-gpt2');
    const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-sin-'));
    try {
      const cfg = JSON.parse(readFileSync(path.join(src, 'config.json'), 'utf8'));
      const bytes = new Uint8Array(readFileSync(path.join(src, 'model.safetensors')));
      const st = parseSafetensorsHeader(bytes, { path: 'x', fileSize: bytes.length });
      const wpe = st.tensors.get('wpe.weight')!;
      const table = sinusoidalPositions(wpe.shape[0], wpe.shape[1]);
      const a = path.join(dir, 'a'), b = path.join(dir, 'b');
      for (const d of [a, b]) rmSync(d, { recursive: true, force: true });
      const { mkdirSync } = await import('node:fs');
      mkdirSync(a);
      mkdirSync(b);
      writeFileSync(path.join(a, 'config.json'), JSON.stringify({ ...cfg, fuselm_positional: 'sinusoidal' }));
      writeFileSync(path.join(a, 'model.safetensors'), bytes);
      const patched = bytes.slice();
      patched.set(new Uint8Array(table.buffer), wpe.offset);
      writeFileSync(path.join(b, 'config.json'), JSON.stringify(cfg));
      writeFileSync(path.join(b, 'model.safetensors'), patched);
      await using ma = await loadModel(a);
      await using mb = await loadModel(b);
      assert.equal(ma.config.positional, 'sinusoidal');
      const ids = [1, 5, 2, 9, 3, 0, 7, 7, 4, 10];
      const la = await ma.evaluate(ids, { allLogits: true }), lb = await mb.evaluate(ids, { allLogits: true });
      assert.deepEqual(la, lb);
      const orig = await loadModel(src);
      const lo = await orig.evaluate(ids, { allLogits: true });
      await orig.dispose();
      assert.notDeepEqual(la, lo, 'the option changes the positions used');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
