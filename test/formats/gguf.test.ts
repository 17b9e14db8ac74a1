/**
 * What this proves: the GGUF writer and reader agree with each other and with the format.
 * Random tiny models using every metadata value type (all scalars, arrays of every element type,
 * nested arrays, empty arrays, awkward UTF-8) and a spread of tensor types survive
 * encode -> parse exactly, in GGUF v2 and v3 and at alignments 32, 64 and 1, and re-encoding
 * the parsed file gives the same bytes. The f16 / bf16 / Q8_0 converters give known values
 * (rounding ties, subnormals, inf, NaN) and round-trip every 16-bit pattern. readGguf reads
 * files from disk (including a header bigger than its first 1 MiB read) and reports missing
 * files as E_IO; the typed getters name the key and the expected vs actual type. With
 * ../shared present, the real files parse (stories260K, the tiny GGUF models, the vocab-only
 * tokenizers) and the writer reproduces each of them byte for byte.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError, FuselmError } from '../../lib/errors.js';
import {
  GgufValueType as VT,
  encodeGguf,
  ggufArray,
  ggufBool,
  ggufGet,
  ggufMetadataSpec,
  ggufNumber,
  ggufString,
  ggufStringArray,
  gv,
  parseGguf,
  readGguf,
  writeGguf,
  type GgufFile,
  type GgufMetaEntry,
  type GgufWriteSpec,
} from '../../lib/formats/gguf.js';
import {
  GgmlType,
  bf16BitsToF32,
  dequantizeQ8_0,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  ggmlTypeName,
  ggmlTypeSize,
  quantizeQ8_0,
  tensorByteSize,
} from '../../lib/formats/ggml-types.js';
import { randInt, randomBytes, randomF32, rng, sharedDir } from './gguf-helpers.js';

const parse = (bytes: Uint8Array, path = 'test.gguf') => parseGguf(bytes, { path, fileSize: bytes.length });

/** The spec that re-creates a parsed file: its metadata and its tensors' bytes. */
function respec(f: GgufFile, bytes: Uint8Array): GgufWriteSpec {
  return {
    version: f.version as 2 | 3,
    alignment: f.alignment,
    metadata: ggufMetadataSpec(f),
    tensors: f.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.nbytes) })),
  };
}

function randomString(r: () => number): string {
  const pieces = ['a', 'Z', ' ', '▁', 'é', '日本', '🦙', '\u0000', '\n', 'ab'];
  let s = '';
  for (let i = randInt(r, 0, 6); i > 0; i--) s += pieces[randInt(r, 0, pieces.length - 1)];
  return s;
}

/** Every value type, with edge values mixed into random ones. */
function randomMetadata(r: () => number): GgufMetaEntry[] {
  const n = () => randInt(r, 0, 9);
  const pick = <T>(xs: T[]) => xs[randInt(r, 0, xs.length - 1)];
  const ints = (lo: number, hi: number) => Array.from({ length: n() }, () => pick([lo, hi, 0, randInt(r, lo, hi)]));
  const f32s = () => Array.from({ length: n() }, () => pick([Math.fround(r() * 1e6 - 5e5), -0, Infinity, 1.5e-45]));
  const m: GgufMetaEntry[] = [
    { key: 'general.architecture', ...gv.str('llama') },
    { key: 's.u8', ...gv.u8(pick([0, 255, randInt(r, 0, 255)])) },
    { key: 's.i8', ...gv.i8(pick([-128, 127, randInt(r, -128, 127)])) },
    { key: 's.u16', ...gv.u16(pick([0, 65535, randInt(r, 0, 65535)])) },
    { key: 's.i16', ...gv.i16(pick([-32768, 32767, randInt(r, -32768, 32767)])) },
    { key: 's.u32', ...gv.u32(pick([0, 4294967295, randInt(r, 0, 4294967295)])) },
    { key: 's.i32', ...gv.i32(pick([-2147483648, 2147483647, randInt(r, -2147483648, 2147483647)])) },
    { key: 's.u64', ...gv.u64(pick([0n, 2n ** 64n - 1n, BigInt(randInt(r, 0, 2 ** 40)) * 12345n])) },
    { key: 's.i64', ...gv.i64(pick([-(2n ** 63n), 2n ** 63n - 1n, -BigInt(randInt(r, 0, 2 ** 40))])) },
    { key: 's.f32', ...gv.f32(pick([Math.fround(r() * 100), -0, -Infinity, NaN, 3.4028234663852886e38])) },
    { key: 's.f64', ...gv.f64(pick([r() * 1e300, -0, Infinity, NaN, 5e-324])) },
    { key: 's.bool', ...gv.bool(r() < 0.5) },
    { key: 's.str', ...gv.str(randomString(r)) },
    { key: 's.empty', ...gv.str('') },
    { key: 'a.u8', ...gv.arrU8(ints(0, 255)) },
    { key: 'a.i8', ...gv.arrI8(ints(-128, 127)) },
    { key: 'a.u16', ...gv.arrU16(ints(0, 65535)) },
    { key: 'a.i16', ...gv.arrI16(ints(-32768, 32767)) },
    { key: 'a.u32', ...gv.arrU32(ints(0, 4294967295)) },
    { key: 'a.i32', ...gv.arrI32(ints(-2147483648, 2147483647)) },
    { key: 'a.u64', ...gv.arrU64(Array.from({ length: n() }, () => pick([0n, 2n ** 64n - 1n, BigInt(randInt(r, 0, 1e9))]))) },
    { key: 'a.i64', ...gv.arrI64(Array.from({ length: n() }, () => pick([-(2n ** 63n), 2n ** 63n - 1n, BigInt(randInt(r, -1e9, 1e9))]))) },
    { key: 'a.f32', ...gv.arrF32(f32s()) },
    { key: 'a.f64', ...gv.arrF64(Array.from({ length: n() }, () => r() * 2 - 1)) },
    { key: 'a.bool', ...gv.arrBool(Array.from({ length: n() }, () => r() < 0.5)) },
    { key: 'a.str', ...gv.arrStr(Array.from({ length: n() }, () => randomString(r))) },
    { key: 'a.empty', ...gv.arrStr([]) },
    // Arrays of arrays, inner types inferred from the values...
    { key: 'a.nested', ...gv.arrArr([Float32Array.from(f32s()), ['x', randomString(r)], [Int8Array.of(-1, 2), [true, false]], [[[Uint16Array.of(7)]]]]) },
    // ...or given explicitly, which an empty inner array needs.
    {
      key: 'a.nested_typed',
      ...gv.arrArr([[], Uint32Array.of(1, 2)], [
        { type: VT.ARRAY, elemType: VT.STRING },
        { type: VT.ARRAY, elemType: VT.UINT32 },
      ]),
    },
  ];
  // Shuffle so key order is random too (the reader must keep file order).
  for (let i = m.length - 1; i > 0; i--) {
    const j = randInt(r, 0, i);
    [m[i], m[j]] = [m[j], m[i]];
  }
  return m;
}

const TENSOR_TYPES = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.I8, GgmlType.I32, GgmlType.F64, GgmlType.IQ4_XS, GgmlType.MXFP4];

function randomTensors(r: () => number): GgufWriteSpec['tensors'] {
  return Array.from({ length: randInt(r, 0, 6) }, (_, i) => {
    const type = TENSOR_TYPES[randInt(r, 0, TENSOR_TYPES.length - 1)];
    const { blockSize } = ggmlTypeSize(type)!;
    const dims = [blockSize * randInt(r, 1, 2), ...Array.from({ length: randInt(r, 0, 3) }, () => randInt(r, 1, 3))];
    return { name: `blk.${i}.weight`, type, dims, data: randomBytes(r, tensorByteSize(type, dims)) };
  });
}

describe('GGUF writer -> reader round trip', () => {
  for (const version of [2, 3] as const) {
    for (const alignment of [32, 64, 1]) {
      it(`v${version}, alignment ${alignment}: 25 random models parse back exactly`, () => {
        for (let seed = 1; seed <= 25; seed++) {
          const r = rng(seed * 1000 + version * 100 + alignment);
          const spec: GgufWriteSpec = { version, alignment, metadata: randomMetadata(r), tensors: randomTensors(r) };
          const bytes = encodeGguf(spec);
          const f = parse(bytes);

          assert.equal(f.version, version);
          assert.equal(f.alignment, alignment);
          assert.equal(f.fileSize, bytes.length);
          assert.equal(f.dataOffset % alignment, 0);
          // general.alignment is written only when it isn't the default.
          assert.equal(f.metadata.has('general.alignment'), alignment !== 32);
          const expected = new Map(spec.metadata.map((m) => [m.key, m.value]));
          if (alignment !== 32) expected.set('general.alignment', alignment);
          assert.deepEqual([...f.metadata.keys()], [...expected.keys()], 'keys in file order');
          assert.deepEqual(f.metadata, expected, `seed ${seed}`);
          for (const m of spec.metadata) {
            assert.equal(f.metadataTypes.get(m.key)!.type, m.type, m.key);
            assert.equal(f.metadataTypes.get(m.key)!.elemType, m.elemType, m.key);
          }

          assert.equal(f.tensors.length, spec.tensors.length);
          spec.tensors.forEach((t, i) => {
            const got = f.tensors[i];
            assert.equal(got.name, t.name);
            assert.equal(f.tensorByName.get(t.name), got);
            assert.deepEqual(got.dims, t.dims);
            assert.equal(got.type, t.type);
            assert.equal(got.nbytes, t.data.length);
            assert.equal(got.nelements, t.dims.reduce((a, b) => a * b, 1));
            assert.equal((got.offset - f.dataOffset) % alignment, 0, 'offset aligned');
            assert.deepEqual(bytes.subarray(got.offset, got.offset + got.nbytes), t.data);
          });
          // Re-encoding what was read reproduces the file byte for byte.
          assert.deepEqual(encodeGguf(respec(f, bytes)), bytes);
        }
      });
    }
  }

  it('pads tensor data with zeros and ends the file on an alignment boundary', () => {
    const spec: GgufWriteSpec = {
      alignment: 64,
      metadata: [{ key: 'general.architecture', ...gv.str('x') }],
      tensors: [
        { name: 'a', type: GgmlType.F32, dims: [3], data: new Uint8Array(12).fill(0xaa) },
        { name: 'b', type: GgmlType.I8, dims: [5], data: new Uint8Array(5).fill(0xbb) },
      ],
    };
    const bytes = encodeGguf(spec);
    const f = parse(bytes);
    assert.equal(f.tensors[1].offset - f.tensors[0].offset, 64);
    assert.equal(bytes.length, f.tensors[1].offset + 64);
    assert.ok(bytes.subarray(f.tensors[0].offset + 12, f.tensors[1].offset).every((b) => b === 0));
    assert.ok(bytes.subarray(f.tensors[1].offset + 5).every((b) => b === 0));
  });

  it('the writer refuses bad specs with E_INVALID_ARG', () => {
    const base = (): GgufWriteSpec => ({ metadata: [{ key: 'k', ...gv.u32(1) }], tensors: [] });
    const bad: Array<[string, (s: GgufWriteSpec) => void]> = [
      ['duplicate key', (s) => s.metadata.push({ key: 'k', ...gv.u8(1) })],
      ['u8 out of range', (s) => s.metadata.push({ key: 'x', ...gv.u8(256) })],
      ['i32 not an integer', (s) => s.metadata.push({ key: 'x', ...gv.i32(1.5) })],
      ['string for a number', (s) => s.metadata.push({ key: 'x', type: VT.UINT32, value: '1' })],
      ['u64 negative', (s) => s.metadata.push({ key: 'x', type: VT.UINT64, value: -1n })],
      ['lone surrogate', (s) => s.metadata.push({ key: 'x', ...gv.str('\ud800') })],
      ['empty inner array without types', (s) => s.metadata.push({ key: 'x', ...gv.arrArr([[]]) })],
      ['alignment 3', (s) => (s.alignment = 3)],
      ['alignment disagreeing with general.alignment', (s) => { s.alignment = 64; s.metadata.push({ key: 'general.alignment', ...gv.u32(32) }); }],
      ['data size mismatch', (s) => s.tensors.push({ name: 't', type: GgmlType.F32, dims: [4], data: new Uint8Array(15) })],
      ['dims[0] not a block multiple', (s) => s.tensors.push({ name: 't', type: GgmlType.Q8_0, dims: [16], data: new Uint8Array(17) })],
      ['5 dims', (s) => s.tensors.push({ name: 't', type: GgmlType.I8, dims: [1, 1, 1, 1, 1], data: new Uint8Array(1) })],
      ['name of 64 bytes', (s) => s.tensors.push({ name: 'n'.repeat(64), type: GgmlType.I8, dims: [1], data: new Uint8Array(1) })],
      ['duplicate tensor', (s) => { const t = { name: 't', type: GgmlType.I8, dims: [1], data: new Uint8Array(1) }; s.tensors.push(t, t); }],
    ];
    for (const [what, mutate] of bad) {
      const s = base();
      mutate(s);
      assert.throws(() => encodeGguf(s), (e: unknown) => e instanceof FuselmError && e.code === 'E_INVALID_ARG', what);
    }
  });
});

describe('ggml type table', () => {
  it('has the official ids and block sizes', () => {
    assert.equal(GgmlType.Q8_0, 8);
    assert.equal(GgmlType.BF16, 30);
    assert.equal(GgmlType.MXFP4, 39);
    assert.equal(ggmlTypeName(GgmlType.Q4_K), 'Q4_K');
    assert.equal(ggmlTypeName(4), 'unknown(4)');
    assert.deepEqual(ggmlTypeSize(GgmlType.Q8_0), { blockSize: 32, typeSize: 34 });
    assert.deepEqual(ggmlTypeSize(GgmlType.Q6_K), { blockSize: 256, typeSize: 210 });
    assert.equal(ggmlTypeSize(5), undefined);
  });

  it('tensorByteSize is exact and checked', () => {
    assert.equal(tensorByteSize(GgmlType.F16, [64, 512]), 65536);
    assert.equal(tensorByteSize(GgmlType.Q8_0, [64, 3]), 2 * 3 * 34);
    assert.equal(tensorByteSize(GgmlType.Q4_K, [4096, 4096]), 16 * 4096 * 144);
    assert.throws(() => tensorByteSize(GgmlType.Q8_0, [33]), /multiple of the Q8_0 block size 32/);
    assert.throws(() => tensorByteSize(GgmlType.F32, [2 ** 31, 2 ** 31]), /too large/);
  });
});

describe('f16 / bf16 converters', () => {
  it('f32 -> f16 known values, ties to even, subnormals, inf, nan', () => {
    const cases: Array<[number, number]> = [
      [1.0, 0x3c00], [-2.5, 0xc100], [65504, 0x7bff], [0, 0x0000], [-0, 0x8000],
      [65519, 0x7bff], [65520, 0x7c00], [1e9, 0x7c00], [-Infinity, 0xfc00], [Infinity, 0x7c00],
      [2 ** -14, 0x0400], [2 ** -24, 0x0001], [6e-8, 0x0001], [1023 * 2 ** -24, 0x03ff],
      [1023.5 * 2 ** -24, 0x0400], // rounds up out of the subnormals
      [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -26, 0x0000], // ties to even
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -11 + 2 ** -20, 0x3c01],
    ];
    for (const [x, h] of cases) assert.equal(f32ToF16Bits(x), h, `f16(${x})`);
    const nan = f32ToF16Bits(NaN);
    assert.equal(nan & 0x7c00, 0x7c00);
    assert.notEqual(nan & 0x3ff, 0);
  });

  it('f16 -> f32 known values and every pattern round-trips', () => {
    assert.equal(f16BitsToF32(0x3c00), 1);
    assert.equal(f16BitsToF32(0xc100), -2.5);
    assert.equal(f16BitsToF32(0x7bff), 65504);
    assert.equal(f16BitsToF32(0x0001), 2 ** -24);
    assert.ok(Object.is(f16BitsToF32(0x8000), -0));
    assert.equal(f16BitsToF32(0xfc00), -Infinity);
    assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
    for (let h = 0; h < 0x10000; h++) {
      const x = f16BitsToF32(h);
      if (Number.isNaN(x)) assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(x))));
      else if (f32ToF16Bits(x) !== h) assert.fail(`f16 0x${h.toString(16)} -> ${x} -> 0x${f32ToF16Bits(x).toString(16)}`);
    }
  });

  it('bf16 known values, ties to even, and every pattern round-trips', () => {
    const cases: Array<[number, number]> = [
      [1.0, 0x3f80], [-2.5, 0xc020], [0, 0], [-0, 0x8000], [Infinity, 0x7f80], [-Infinity, 0xff80],
      [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [1 + 2 ** -8 + 2 ** -20, 0x3f81],
      [3.4028234663852886e38, 0x7f80], [-3.4028234663852886e38, 0xff80], [2 ** -133, 0x0001],
    ];
    for (const [x, h] of cases) assert.equal(f32ToBf16Bits(x), h, `bf16(${x})`);
    assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
    assert.equal(bf16BitsToF32(0x3f80), 1);
    for (let h = 0; h < 0x10000; h++) {
      const x = bf16BitsToF32(h);
      if (Number.isNaN(x)) assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(x))));
      else if (f32ToBf16Bits(x) !== h) assert.fail(`bf16 0x${h.toString(16)} round trip`);
    }
  });
});

describe('Q8_0', () => {
  it('matches the reference rounding on a hand-made block', () => {
    const x = new Float32Array(32);
    x.set([127, 2.5, -2.5, 0.5, -0.5, 1.49, -127, 63.5]);
    const q = quantizeQ8_0(x);
    assert.equal(q.length, 34);
    assert.equal(q[0] | (q[1] << 8), 0x3c00, 'd = 127/127 = 1.0 as f16');
    assert.deepEqual(Array.from(new Int8Array(q.buffer, 2, 8)), [127, 3, -3, 1, -1, 1, -127, 64]); // halves away from zero
    assert.deepEqual(Array.from(dequantizeQ8_0(q, 32).subarray(0, 8)), [127, 3, -3, 1, -1, 1, -127, 64]);
  });

  it('an all-zero block has d = 0 and dequantizes to zeros', () => {
    const q = quantizeQ8_0(new Float32Array(64));
    assert.ok(q.every((b) => b === 0));
    assert.ok(dequantizeQ8_0(q, 64).every((v) => v === 0));
  });

  it('round trip error is within half a step (plus the f16 scale error)', () => {
    const r = rng(42);
    const x = randomF32(r, 32 * 200);
    for (let i = 0; i < x.length; i += 97) x[i] *= 1000; // some blocks with outliers
    const y = dequantizeQ8_0(quantizeQ8_0(x), x.length);
    for (let b = 0; b < x.length / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
      const d = amax / 127;
      // |x - q*d16| <= d/2 + 127 * |d - d16|, and |d - d16| <= d * 2^-11.
      const bound = d * (0.5 + 127 / 2048) * 1.0001;
      for (let j = 0; j < 32; j++) {
        const err = Math.abs(x[b * 32 + j] - y[b * 32 + j]);
        if (err > bound) assert.fail(`block ${b} elem ${j}: error ${err} > ${bound}`);
      }
    }
    assert.throws(() => quantizeQ8_0(new Float32Array(31)), /multiple of 32/);
  });
});

describe('readGguf', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'fuselm-gguf-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads what writeGguf wrote, identical to encodeGguf', async () => {
    const r = rng(3);
    const spec: GgufWriteSpec = { alignment: 64, metadata: randomMetadata(r), tensors: randomTensors(r) };
    const path = join(dir, 'a.gguf');
    await writeGguf(path, spec);
    assert.deepEqual(new Uint8Array(readFileSync(path)), encodeGguf(spec));
    const f = await readGguf(path);
    assert.equal(f.path, path);
    assert.deepEqual(f.metadata, parse(encodeGguf(spec)).metadata);
  });

  it('grows its read past 1 MiB for a big header', async () => {
    const tokens = Array.from({ length: 150_000 }, (_, i) => `token_${i}`); // ~2 MB of strings
    const spec: GgufWriteSpec = {
      metadata: [{ key: 'tokenizer.ggml.tokens', ...gv.arrStr(tokens) }],
      tensors: [{ name: 'w', type: GgmlType.F32, dims: [8], data: new Uint8Array(32) }],
    };
    const path = join(dir, 'big.gguf');
    await writeGguf(path, spec);
    const f = await readGguf(path);
    assert.deepEqual(ggufStringArray(f, 'tokenizer.ggml.tokens'), tokens);
    assert.equal(f.tensors[0].offset + 32, f.fileSize);
  });

  it('needs only the header bytes: a header-only prefix parses given the full file size', () => {
    const bytes = encodeGguf({ metadata: [], tensors: [{ name: 'w', type: GgmlType.F32, dims: [1024], data: new Uint8Array(4096) }] });
    const f = parse(bytes);
    const g = parseGguf(bytes.subarray(0, f.dataOffset), { path: 'p', fileSize: bytes.length });
    assert.deepEqual(g.tensors, f.tensors);
  });

  it('a missing file is E_IO naming the path; a directory too', async () => {
    const missing = join(dir, 'nope.gguf');
    await assert.rejects(readGguf(missing), (e: unknown) => e instanceof FuselmError && e.code === 'E_IO' && e.message.includes(missing));
    await assert.rejects(readGguf(dir), (e: unknown) => e instanceof FuselmError && e.code === 'E_IO');
  });

  it('an empty file is a FormatError', async () => {
    const path = join(dir, 'empty.gguf');
    writeFileSync(path, new Uint8Array(0));
    await assert.rejects(readGguf(path), (e: unknown) => e instanceof FormatError && /truncated/.test(e.message));
  });
});

describe('version handling', () => {
  const withVersion = (v: number) => {
    const b = encodeGguf({ metadata: [], tensors: [] });
    new DataView(b.buffer).setUint32(4, v, true);
    return b;
  };
  it('v1 is E_UNSUPPORTED naming the version; v4 is E_FORMAT', () => {
    assert.throws(() => parse(withVersion(1)), (e: unknown) => e instanceof FuselmError && e.code === 'E_UNSUPPORTED' && /version 1/.test(e.message));
    assert.throws(() => parse(withVersion(4)), (e: unknown) => e instanceof FormatError && /version 4/.test(e.message));
    assert.throws(() => parse(withVersion(0x03000000)), (e: unknown) => e instanceof FuselmError && e.code === 'E_UNSUPPORTED' && /big-endian/.test(e.message));
  });
});

describe('typed getters', () => {
  const f = parse(encodeGguf({
    metadata: [
      { key: 'name', ...gv.str('llama') },
      { key: 'n', ...gv.u32(5) },
      { key: 'eps', ...gv.f32(0.5) },
      { key: 'big', ...gv.u64(2n ** 60n) },
      { key: 'small', ...gv.i64(-7n) },
      { key: 'flag', ...gv.bool(true) },
      { key: 'toks', ...gv.arrStr(['a', 'b']) },
      { key: 'scores', ...gv.arrF32([1, 2]) },
    ],
    tensors: [],
  }), 'model.gguf');

  it('return values of the right type, with fallbacks for absent keys', () => {
    assert.equal(ggufString(f, 'name'), 'llama');
    assert.equal(ggufNumber(f, 'n'), 5);
    assert.equal(ggufNumber(f, 'eps'), 0.5);
    assert.equal(ggufNumber(f, 'small'), -7);
    assert.equal(ggufBool(f, 'flag'), true);
    assert.equal(ggufGet(f, 'nope'), undefined);
    assert.equal(ggufString(f, 'nope', 'dflt'), 'dflt');
    assert.equal(ggufNumber(f, 'nope', 3), 3);
    assert.equal(ggufBool(f, 'nope', false), false);
    assert.deepEqual(ggufStringArray(f, 'toks'), ['a', 'b']);
    assert.deepEqual(ggufArray(f, 'scores', VT.FLOAT32), Float32Array.of(1, 2));
    assert.deepEqual(ggufArray(f, 'scores', [VT.FLOAT32, VT.FLOAT64]), Float32Array.of(1, 2));
  });

  it('throw FormatErrors naming the file, key, expected and actual type', () => {
    const fails = (fn: () => unknown, ...parts: RegExp[]) =>
      assert.throws(fn, (e: unknown) => e instanceof FormatError && parts.every((p) => p.test(e.message)) && /model\.gguf/.test(e.message) && /offset \d+/.test(e.message));
    fails(() => ggufString(f, 'n'), /field n:/, /expected string, got UINT32/);
    fails(() => ggufNumber(f, 'name'), /expected a number, got STRING/);
    fails(() => ggufBool(f, 'n'), /expected bool, got UINT32/);
    fails(() => ggufNumber(f, 'big'), /does not fit a JavaScript number/);
    fails(() => ggufString(f, 'general.architecture'), /required metadata key "general.architecture" is missing/);
    fails(() => ggufArray(f, 'name'), /expected an array, got STRING/);
    fails(() => ggufStringArray(f, 'scores'), /expected ARRAY of STRING, got ARRAY of FLOAT32/);
  });
});

describe('the real files in ../shared', function () {
  const shared = sharedDir();
  before(function () {
    if (!shared) {
      console.log('    (skipped: ../shared is absent, so there are no real GGUF files to read)');
      this.skip();
    }
  });

  it('stories260K.gguf: v3 llama, 5 blocks, 512 tokens, token_embd [64, 512] F32', async () => {
    const f = await readGguf(join(shared!, 'models', 'stories260K.gguf'));
    assert.equal(f.version, 3);
    assert.equal(ggufString(f, 'general.architecture'), 'llama');
    assert.equal(ggufNumber(f, 'llama.block_count'), 5);
    assert.equal(ggufStringArray(f, 'tokenizer.ggml.tokens').length, 512);
    const emb = f.tensorByName.get('token_embd.weight')!;
    assert.deepEqual(emb.dims, [64, 512]);
    assert.equal(emb.type, GgmlType.F32);
    assert.equal(f.tensors.length, 48);
    const end = Math.max(...f.tensors.map((t) => t.offset + t.nbytes));
    assert.ok(end <= f.fileSize);
  });

  const realFiles = (): string[] => {
    if (!shared) return [];
    const list = (d: string) => readdirSync(d).filter((n) => n.endsWith('.gguf')).map((n) => join(d, n));
    return [join(shared, 'models', 'stories260K.gguf'), ...list(join(shared, 'models', 'gguf')), ...list(join(shared, 'tokenizers', 'llama.cpp-vocab'))];
  };

  it('every GGUF parses (vocab-only ones with 0 tensors), and the writer reproduces each byte for byte', async () => {
    const files = realFiles();
    assert.ok(files.length >= 5, `found only ${files.length} files`);
    for (const path of files) {
      const f = await readGguf(path);
      const vocabOnly = path.includes('llama.cpp-vocab');
      if (vocabOnly) assert.equal(f.tensors.length, 0, path);
      else assert.ok(f.tensors.length > 0, path);
      assert.ok(ggufString(f, 'general.architecture').length > 0);
      for (const t of f.tensors) assert.ok(t.offset + t.nbytes <= f.fileSize, `${path} ${t.name}`);
      const bytes = new Uint8Array(readFileSync(path));
      assert.deepEqual(encodeGguf(respec(f, bytes)), bytes, `re-encoding ${path}`);
    }
  });
});
