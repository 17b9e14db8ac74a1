/**
 * safetensors: proves that
 *  - a file written here (F32, F16, BF16, a scalar, metadata) parses, and its tensors load
 *    natively with the right values;
 *  - a sharded folder (model.safetensors.index.json) opens as one tensor map, and with
 *    ../shared the real sharded tiny Llama equals the single-file one tensor for tensor;
 *  - each malformed case named by the format (header length past the file, bad JSON, offsets
 *    out of range or overlapping, shape/byte-size mismatch, unknown dtype) is a FormatError;
 *  - a fuzz of every truncation, every single-bit flip of the header and random multi-byte
 *    flips: each variant parses into a consistent result or throws a FuselmError, nothing else.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FormatError, FuselmError } from '../../lib/errors.js';
import { loadSafetensorsTensor, openSafetensorsFolder, parseSafetensorsHeader, readSafetensors } from '../../lib/formats/safetensors.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../../lib/formats/ggml-types.js';
import { readF32Rows } from '../../lib/tensor.js';
import { requireShared, sharedPath } from '../helpers/shared.js';
import { rng } from '../helpers/random.js';
import { encodeSafetensors } from './safetensors-helpers.js';

const f32 = (v: number[]) => new Uint8Array(new Float32Array(v).buffer);
const u16 = (v: number[], conv: (x: number) => number) => new Uint8Array(new Uint16Array(v.map(conv)).buffer);

function sample(): Uint8Array {
  return encodeSafetensors(
    {
      'a.weight': { dtype: 'F32', shape: [2, 3], data: f32([1, 2, 3, 4, 5, 6]) },
      'b.weight': { dtype: 'F16', shape: [4], data: u16([0.5, -1, 2, 65504], f32ToF16Bits) },
      'c.weight': { dtype: 'BF16', shape: [2, 1], data: u16([3, -0.25], f32ToBf16Bits) },
      scalar: { dtype: 'F32', shape: [], data: f32([7]) },
    },
    { format: 'pt' },
  );
}

describe('safetensors', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(path.join(tmpdir(), 'fuselm-st-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('parses a written file and loads F32/F16/BF16 tensors natively', async () => {
    const p = path.join(dir, 'model.safetensors');
    writeFileSync(p, sample());
    const f = await readSafetensors(p);
    assert.deepEqual(f.metadata, { format: 'pt' });
    assert.deepEqual([...f.tensors.keys()], ['a.weight', 'b.weight', 'c.weight', 'scalar']);
    const a = await loadSafetensorsTensor(f.tensors.get('a.weight')!, [2, 3]);
    assert.deepEqual([...readF32Rows(a, 0, 2)], [1, 2, 3, 4, 5, 6]);
    const b = await loadSafetensorsTensor(f.tensors.get('b.weight')!);
    assert.equal(b.dtype, 'f16');
    assert.deepEqual([...new Uint16Array(b.read())], [0.5, -1, 2, 65504].map(f32ToF16Bits));
    const c = await loadSafetensorsTensor(f.tensors.get('c.weight')!);
    assert.equal(c.dtype, 'bf16');
    assert.deepEqual([...new Uint16Array(c.read())], [3, -0.25].map(f32ToBf16Bits));
    await assert.rejects(loadSafetensorsTensor(f.tensors.get('a.weight')!, [3, 2]), FormatError);
    for (const t of [a, b, c]) t.free();
  });

  it('opens shards through model.safetensors.index.json', async () => {
    const d = mkdtempSync(path.join(dir, 'sh-'));
    writeFileSync(path.join(d, 's1.safetensors'), encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: f32([1]) } }));
    writeFileSync(path.join(d, 's2.safetensors'), encodeSafetensors({ y: { dtype: 'F32', shape: [2], data: f32([2, 3]) } }));
    writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: { x: 's1.safetensors', y: 's2.safetensors' } }));
    const m = await openSafetensorsFolder(d);
    assert.deepEqual([...m.tensors.keys()].sort(), ['x', 'y']);
    const y = await loadSafetensorsTensor(m.tensors.get('y')!);
    assert.deepEqual([...readF32Rows(y, 0, 1)], [2, 3]);
    writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { x: 's2.safetensors', y: 's2.safetensors' } }));
    await assert.rejects(openSafetensorsFolder(d), FormatError);
  });

  it('the real sharded tiny Llama equals the single file', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-llama-sharded', 'models/hf/neural-api-tiny-llama');
    const sh = await openSafetensorsFolder(sharedPath('models/hf/neural-api-tiny-llama-sharded'));
    const one = await openSafetensorsFolder(sharedPath('models/hf/neural-api-tiny-llama'));
    assert.equal(sh.files.length, 2);
    assert.deepEqual([...sh.tensors.keys()].sort(), [...one.tensors.keys()].sort());
    for (const [name, t] of one.tensors) {
      const a = await loadSafetensorsTensor(t), b = await loadSafetensorsTensor(sh.tensors.get(name)!);
      assert.deepEqual(new Uint8Array(a.read()), new Uint8Array(b.read()), name);
      a.free();
      b.free();
    }
  });

  const header = (h: unknown, data = 0) => {
    const hb = new TextEncoder().encode(JSON.stringify(h));
    const out = new Uint8Array(8 + hb.length + data);
    new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
    out.set(hb, 8);
    return out;
  };
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['shorter than 8 bytes', new Uint8Array(5), /fewer than the 8-byte/],
    ['header length past the file', (() => { const b = sample(); new DataView(b.buffer).setBigUint64(0, 1n << 40n, true); return b; })(), /past the end of the file/],
    ['bad JSON', (() => { const b = header({ a: 1 }); b[9] = 0x7d; return b; })(), /not valid UTF-8 JSON/],
    ['JSON not an object', header([1, 2]), /not an object/],
    ['offsets out of range', header({ t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4), /past the data section/],
    ['offsets reversed', header({ t: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, 4), /before begin/],
    ['overlapping tensors', header({ t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, u: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /overlaps/],
    ['shape/size mismatch', header({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), /needs 12 bytes/],
    ['dtype/size mismatch', header({ t: { dtype: 'F16', shape: [2], data_offsets: [0, 8] } }, 8), /needs 4 bytes/],
    ['unknown dtype', header({ t: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, 8), /unknown dtype/],
    ['bad shape', header({ t: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }), /shape/],
    ['bad metadata', header({ __metadata__: { a: 1 } }), /must be a string/],
  ];
  for (const [what, bytes, re] of cases)
    it(`malformed: ${what} → FormatError`, () => {
      assert.throws(() => parseSafetensorsHeader(bytes, { path: 'bad.safetensors', fileSize: bytes.length }), (e: unknown) => {
        assert.ok(e instanceof FormatError, String(e));
        assert.match(e.message, re);
        assert.match(e.message, /bad\.safetensors: at offset \d+/);
        return true;
      });
    });

  it('fuzz: truncations and bit flips parse consistently or throw FuselmError', () => {
    const good = sample();
    let parsed = 0, rejected = 0;
    const attempt = (b: Uint8Array, label: string) => {
      try {
        const f = parseSafetensorsHeader(b, { path: 'fuzz.safetensors', fileSize: b.length });
        const spans = [...f.tensors.values()].map((t) => [t.offset, t.offset + t.nbytes]).sort((x, y) => x[0] - y[0]);
        for (let i = 0; i < spans.length; i++) {
          assert.ok(spans[i][0] >= f.dataOffset && spans[i][1] <= b.length, `${label}: inside the file`);
          if (i && spans[i][1] > spans[i][0]) assert.ok(spans[i][0] >= spans[i - 1][1], `${label}: no overlap`);
        }
        parsed++;
      } catch (e) {
        if (!(e instanceof FuselmError)) assert.fail(`${label}: threw ${String(e)}`);
        rejected++;
      }
    };
    for (let n = 0; n < good.length; n++) attempt(good.subarray(0, n), `truncated to ${n}`);
    const hdrEnd = 8 + Number(new DataView(good.buffer).getBigUint64(0, true));
    for (let i = 0; i < hdrEnd * 8; i++) {
      const b = good.slice();
      b[i >> 3] ^= 1 << (i & 7);
      attempt(b, `bit ${i} flipped`);
    }
    const r = rng(5);
    for (let k = 0; k < 3000; k++) {
      const b = good.slice();
      const flips = 1 + Math.floor(r() * 4);
      for (let j = 0; j < flips; j++) b[Math.floor(r() * hdrEnd)] = Math.floor(r() * 256);
      attempt(b, `random variant ${k}`);
    }
    assert.ok(parsed > 0 && rejected > 0, `parsed ${parsed}, rejected ${rejected}`);
  });
});
