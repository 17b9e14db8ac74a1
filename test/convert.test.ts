/**
 * `fuselm convert` from F16 and BF16 safetensors: the oracle llama3-ropefreqs folder re-encoded in
 * each dtype converts to the tensors of the F32 folder's conversion rounded to that dtype (the
 * llama q/k permutation and the rest of the layout commute with the rounding), bit for bit; an
 * unsupported dtype and a missing tensor are typed errors naming the tensor.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GgmlType, bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../lib/formats/ggml-types.js';
import { readGguf } from '../lib/formats/gguf.js';
import { readSafetensors } from '../lib/formats/safetensors.js';
import { quantizeModel } from '../lib/tools/quantize.js';
import { type Entry, encodeSafetensors } from './formats/safetensors-helpers.js';
import { requireShared, sharedPath } from './helpers/shared.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fuselm-convert-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The folder `src` with its weights re-encoded by `encode` (entries by name). */
async function reencode(src: string, name: string, encode: (name: string, shape: number[], x: Float32Array) => Entry | undefined): Promise<string> {
  const out = path.join(dir, name);
  mkdirSync(out);
  for (const f of ['config.json', 'tokenizer.model', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(src, f), path.join(out, f));
  const st = await readSafetensors(path.join(src, 'model.safetensors'));
  const raw = readFileSync(path.join(src, 'model.safetensors'));
  const entries: Record<string, Entry> = {};
  for (const t of st.tensors.values()) {
    const x = new Float32Array(raw.buffer.slice(raw.byteOffset + t.offset, raw.byteOffset + t.offset + t.nbytes));
    const e = encode(t.name, t.shape, x);
    if (e) entries[t.name] = e;
  }
  writeFileSync(path.join(out, 'model.safetensors'), encodeSafetensors(entries));
  return out;
}

function tensorsOf(file: string) {
  const g = readGguf(file);
  const raw = readFileSync(file);
  return g.then((f) => new Map(f.tensors.map((t) => [t.name, { type: t.type, x: new Float32Array(raw.buffer.slice(raw.byteOffset + t.offset, raw.byteOffset + t.offset + t.nbytes)) }])));
}

describe('convert: F16 and BF16 safetensors', function () {
  this.timeout(120_000);
  const src = () => sharedPath('models/oracles/llama3-ropefreqs/hf');
  before(function () {
    requireShared(this, 'models/oracles/llama3-ropefreqs/hf/tokenizer.model');
  });

  for (const [dtype, toBits, fromBits] of [
    ['F16', f32ToF16Bits, f16BitsToF32],
    ['BF16', f32ToBf16Bits, bf16BitsToF32],
  ] as const)
    it(`${dtype}: the F32 conversion's tensors rounded to ${dtype}`, async () => {
      const folder = await reencode(src(), dtype, (_n, shape, x) => ({ dtype, shape, data: new Uint8Array(Uint16Array.from(x, toBits).buffer) }));
      const a = path.join(dir, `${dtype}-from-f32.gguf`), b = path.join(dir, `${dtype}.gguf`);
      await quantizeModel(src(), a, 'f32');
      await quantizeModel(folder, b, 'f32');
      const [ref, ours] = await Promise.all([tensorsOf(a), tensorsOf(b)]);
      assert.deepEqual([...ours.keys()], [...ref.keys()]);
      for (const [name, t] of ref) {
        const o = ours.get(name)!;
        assert.equal(o.type, GgmlType.F32, name);
        // rope_freqs is computed from the config, not read: the same in both
        const expect = name === 'rope_freqs.weight' ? t.x : Float32Array.from(t.x, (v) => fromBits(toBits(v)));
        assert.deepEqual(o.x, expect, name);
      }
    });

  it('an unsupported dtype or a missing tensor is a typed error naming it', async () => {
    const i8 = await reencode(src(), 'I8', (n, shape, x) => (n === 'model.norm.weight' ? { dtype: 'I8', shape, data: Uint8Array.from(x, () => 1) } : { dtype: 'F32', shape, data: new Uint8Array(x.buffer) }));
    await assert.rejects(quantizeModel(i8, path.join(dir, 'x.gguf'), 'f16'), { code: 'E_UNSUPPORTED', message: /model\.norm\.weight.*I8/ });
    const missing = await reencode(src(), 'missing', (n, shape, x) => (n === 'model.layers.1.mlp.down_proj.weight' ? undefined : { dtype: 'F32', shape, data: new Uint8Array(x.buffer) }));
    await assert.rejects(quantizeModel(missing, path.join(dir, 'y.gguf'), 'f16'), { code: 'E_FORMAT', message: /model\.layers\.1\.mlp\.down_proj\.weight/ });
  });
});
