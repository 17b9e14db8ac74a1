/**
 * What this proves: the GGUF parser survives hostile input. Starting from a valid small file made
 * by the writer (string, bool, nested and float arrays; F32, F16 and Q8_0 tensors), it feeds the
 * parser every truncation, every single-bit flip, thousands of seeded random multi-bit flips,
 * byte overwrites and extreme u64 values, plus hand-made attacks (huge string, array, kv and
 * tensor counts, dims whose product overflows 2^64, deep nesting, offsets past the end,
 * overlapping or unaligned tensors, alignment 0 or 3, bad UTF-8, duplicates). Every variant
 * either parses into a self-consistent result (every tensor aligned, inside the file, not
 * overlapping another) or throws a FuselmError; an E_FORMAT message always names the offset.
 * Any other exception (RangeError, TypeError...) fails the test, and because every count is
 * checked against the file size first, no variant can allocate or loop its way into a hang.
 * With ../shared present, random flips in the real files' headers (a 512-token vocabulary, a
 * Q8_0 model, a 32k-token vocabulary) are held to the same rule.
 * The same variants, given as a short prefix of the file, either ask for more bytes that are
 * inside the file, or give the same answer as the whole file: readGguf's chunked reading is safe.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError, FuselmError } from '../../lib/errors.js';
import { GgufNeedMoreBytes, GgufValueType as VT, parseGguf, type GgufFile } from '../../lib/formats/gguf.js';
import { GgmlType } from '../../lib/formats/ggml-types.js';
import { randInt, rng, sharedDir, smallModelBytes } from './gguf-helpers.js';

const PATH = 'fuzz.gguf';

/** Checks the invariants the loader relies on, for a file the parser accepted. */
function checkConsistent(f: GgufFile, label: string): void {
  const sorted = [...f.tensors].sort((a, b) => a.offset - b.offset);
  let end = 0;
  for (const t of sorted) {
    assert.ok(t.offset >= f.dataOffset && (t.offset - f.dataOffset) % f.alignment === 0, `${label}: ${t.name} misaligned`);
    assert.ok(t.offset >= end, `${label}: ${t.name} overlaps`);
    assert.ok(t.offset + t.nbytes <= f.fileSize, `${label}: ${t.name} past the end`);
    assert.ok(t.dims.length >= 1 && t.dims.length <= 4 && t.dims.every((d) => Number.isSafeInteger(d) && d > 0), `${label}: ${t.name} dims`);
    end = t.offset + t.nbytes;
  }
}

type Outcome = { ok: true; file: GgufFile } | { ok: false; error: FuselmError };

/** Parses a variant; anything but success or a well-formed FuselmError fails the test. */
function attempt(bytes: Uint8Array, label: string): Outcome {
  try {
    const file = parseGguf(bytes, { path: PATH, fileSize: bytes.length });
    checkConsistent(file, label);
    return { ok: true, file };
  } catch (e) {
    if (!(e instanceof FuselmError)) {
      assert.fail(`${label}: threw ${(e as Error)?.constructor?.name ?? typeof e} instead of a FuselmError: ${String((e as Error)?.stack ?? e)}`);
    }
    if (e.code === 'E_FORMAT') assert.match(e.message, /offset \d+/, `${label}: ${e.message}`);
    return { ok: false, error: e };
  }
}

/** The same bytes given as a prefix: the parser must ask only for bytes inside the file, and
 * when it doesn't ask, answer as it does for the whole file. */
function attemptPrefix(bytes: Uint8Array, prefix: number, whole: Outcome, label: string): void {
  try {
    parseGguf(bytes.subarray(0, prefix), { path: PATH, fileSize: bytes.length });
    assert.ok(whole.ok, `${label}: prefix ${prefix} parsed but the whole file did not`);
  } catch (e) {
    if (e instanceof GgufNeedMoreBytes) {
      assert.ok(e.needed > prefix && e.needed <= bytes.length, `${label}: asked for ${e.needed} bytes with ${prefix} of ${bytes.length}`);
      return;
    }
    assert.ok(e instanceof FuselmError, `${label}: prefix threw ${String(e)}`);
    assert.ok(!whole.ok && whole.error.message === e.message, `${label}: prefix gave "${e.message}", whole file ${whole.ok ? 'parsed' : `gave "${whole.error.message}"`}`);
  }
}

describe('GGUF parser fuzz', function () {
  this.timeout(60_000);
  const base = smallModelBytes();
  const baseFile = parseGguf(base, { path: PATH, fileSize: base.length });
  const headerEnd = baseFile.dataOffset;

  it('the base file is valid', () => {
    assert.ok(attempt(base, 'base').ok);
    assert.equal(baseFile.tensors.length, 3);
  });

  it('every truncation fails cleanly, until only the trailing padding is cut', () => {
    const lastEnd = Math.max(...baseFile.tensors.map((t) => t.offset + t.nbytes));
    assert.ok(lastEnd < base.length, 'the base file ends with padding');
    for (let n = 0; n < base.length; n++) {
      const out = attempt(base.slice(0, n), `truncated to ${n}`);
      if (n >= lastEnd) assert.ok(out.ok, `truncated to ${n}: only padding is missing, yet it failed`);
      else assert.ok(!out.ok && out.error.code === 'E_FORMAT', `truncated to ${n} parsed`);
    }
  });

  it('every single-bit flip in the file', () => {
    let parsed = 0;
    for (let bit = 0; bit < base.length * 8; bit++) {
      const v = base.slice();
      v[bit >> 3] ^= 1 << (bit & 7);
      const out = attempt(v, `bit ${bit} flipped`);
      if (out.ok) parsed++;
      if ((bit & 15) === 0) attemptPrefix(v, bit % headerEnd, out, `bit ${bit} flipped`);
    }
    // Flips in tensor data (and some metadata values) still parse; most header flips don't.
    assert.ok(parsed >= (base.length - headerEnd) * 8, `only ${parsed} variants parsed`);
  });

  it('20000 seeded random multi-bit flips and byte overwrites', () => {
    const r = rng(20240601);
    const special = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x20, 0x3f];
    for (let i = 0; i < 20000; i++) {
      const v = base.slice();
      // Mostly in the header, where the parser looks.
      const span = r() < 0.85 ? headerEnd : v.length;
      if (i % 2 === 0) {
        for (let k = randInt(r, 2, 8); k > 0; k--) {
          const bit = randInt(r, 0, span * 8 - 1);
          v[bit >> 3] ^= 1 << (bit & 7);
        }
      } else {
        for (let k = randInt(r, 1, 4); k > 0; k--) {
          const at = randInt(r, 0, span - 1);
          const len = randInt(r, 1, 4);
          for (let j = at; j < Math.min(at + len, v.length); j++) v[j] = r() < 0.5 ? special[randInt(r, 0, special.length - 1)] : randInt(r, 0, 255);
        }
      }
      const label = `random variant ${i}`;
      const out = attempt(v, label);
      if (i % 10 === 0) attemptPrefix(v, randInt(r, 0, headerEnd), out, label);
    }
  });

  it('5000 extreme u64 / u32 values written at random header positions', () => {
    const r = rng(99);
    const u64s = [2n ** 64n - 1n, 2n ** 63n, 2n ** 62n, 2n ** 32n, 2n ** 53n + 1n, BigInt(base.length), BigInt(base.length + 1), 0n];
    const u32s = [0xffffffff, 0x80000000, 13, 9, 40, 1000, 0];
    for (let i = 0; i < 5000; i++) {
      const v = base.slice();
      const dv = new DataView(v.buffer);
      const at = randInt(r, 0, headerEnd - 8);
      if (r() < 0.6) dv.setBigUint64(at, u64s[randInt(r, 0, u64s.length - 1)], true);
      else dv.setUint32(at, u32s[randInt(r, 0, u32s.length - 1)], true);
      attempt(v, `extreme value ${i} at ${at}`);
    }
  });
});

describe('GGUF parser fuzz on the real headers in ../shared', function () {
  this.timeout(60_000);
  const shared = sharedDir();
  const files = ['models/stories260K.gguf', 'models/gguf/neural-api-tiny_llama_q8.gguf', 'tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf'];
  before(function () {
    if (!shared) {
      console.log('    (skipped: ../shared is absent, so there are no real GGUF headers to mutate)');
      this.skip();
    }
  });

  for (const rel of files) {
    it(`random header flips of ${rel}`, function () {
      const path = join(shared!, rel);
      if (!existsSync(path)) {
        console.log(`    (skipped: ${path} is absent)`);
        this.skip();
      }
      const bytes = new Uint8Array(readFileSync(path));
      const headerEnd = Math.min(parseGguf(bytes, { path: PATH, fileSize: bytes.length }).dataOffset, bytes.length);
      const r = rng(headerEnd);
      // The vocab file's header is the whole 700 KB file: fewer, since each parse reads it all.
      const n = headerEnd > 100_000 ? 300 : 2000;
      for (let i = 0; i < n; i++) {
        // Mutate in place and restore, rather than copying a megabyte per variant.
        const saved: Array<[number, number]> = [];
        for (let k = randInt(r, 1, 4); k > 0; k--) {
          const at = randInt(r, 0, headerEnd - 1);
          saved.push([at, bytes[at]]);
          bytes[at] = r() < 0.5 ? bytes[at] ^ (1 << randInt(r, 0, 7)) : randInt(r, 0, 255);
        }
        attempt(bytes, `${rel} variant ${i}`);
        for (const [at, b] of saved.reverse()) bytes[at] = b;
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Hand-made hostile files, each aimed at one check.

/** A raw little-endian byte builder, so a test can write what the writer would refuse. */
class Raw {
  private parts: number[] = [];
  u8(v: number) { this.parts.push(v & 0xff); return this; }
  u32(v: number) { for (let i = 0; i < 4; i++) this.parts.push((v >>> (8 * i)) & 0xff); return this; }
  u64(v: bigint | number) { const b = BigInt(v); for (let i = 0n; i < 8n; i++) this.parts.push(Number((b >> (8n * i)) & 0xffn)); return this; }
  raw(bytes: ArrayLike<number>) { for (let i = 0; i < bytes.length; i++) this.parts.push(bytes[i]); return this; }
  str(s: string | number[]) { const b = typeof s === 'string' ? new TextEncoder().encode(s) : s; return this.u64(b.length).raw(b); }
  header(nTensors: bigint | number, nKv: bigint | number, version = 3) { return this.u32(0x46554747).u32(version).u64(nTensors).u64(nKv); }
  kvU32(key: string, v: number) { return this.str(key).u32(VT.UINT32).u32(v); }
  tensor(name: string, dims: Array<bigint | number>, type: number, offset: bigint | number) {
    this.str(name).u32(dims.length);
    for (const d of dims) this.u64(d);
    return this.u32(type).u64(offset);
  }
  /** Pads to `align` and appends `n` data bytes. */
  data(n: number, align = 32) { while (this.parts.length % align) this.parts.push(0); for (let i = 0; i < n; i++) this.parts.push(i & 0xff); return this; }
  bytes() { return Uint8Array.from(this.parts); }
}

describe('hand-made hostile GGUF files', () => {
  const cases: Array<[string, () => Uint8Array, RegExp, string?]> = [
    ['bad magic', () => new Raw().u32(0x46554746).u32(3).u64(0).u64(0).bytes(), /field magic: not a GGUF file/],
    ['version 0', () => new Raw().header(0, 0, 0).bytes(), /field version: unknown GGUF version 0/],
    ['version 1', () => new Raw().header(0, 0, 1).bytes(), /version 1 is not supported/, 'E_UNSUPPORTED'],
    ['huge key length', () => new Raw().header(0, 1).u64(2n ** 64n - 1n).raw([0, 0, 0, 0, 0]).bytes(), /key length: string length 18446744073709551615 needs at least/],
    ['key length one past the end', () => new Raw().header(0, 1).u64(6).raw([97, 97, 97, 97, 97]).bytes(), /string length 6 needs at least 6 bytes, only 5 left/],
    ['huge string value', () => new Raw().header(0, 1).str('k').u32(VT.STRING).u64(2n ** 62n).bytes(), /"k" length: string length/],
    ['huge kv count', () => new Raw().header(0, 2n ** 64n - 1n).bytes(), /field metadata_kv_count: 18446744073709551615 pairs cannot fit/],
    ['kv count just too big', () => new Raw().header(0, 2).kvU32('a', 1).bytes(), /metadata_kv_count: 2 pairs cannot fit/],
    ['huge tensor count', () => new Raw().header(2n ** 63n, 0).bytes(), /field tensor_count: 9223372036854775808 tensor infos cannot fit/],
    ['huge u32 array count', () => new Raw().header(0, 1).str('k').u32(VT.ARRAY).u32(VT.UINT32).u64(2n ** 62n).raw([1, 2, 3, 4]).bytes(), /count: array of UINT32, count 4611686018427387904 needs at least/],
    ['huge string array count', () => new Raw().header(0, 1).str('k').u32(VT.ARRAY).u32(VT.STRING).u64(2n ** 61n).raw(new Array(64).fill(0)).bytes(), /array of STRING, count 2305843009213693952/],
    ['string array count 1 too many', () => new Raw().header(0, 1).str('k').u32(VT.ARRAY).u32(VT.STRING).u64(3).str('a').str('b').bytes(), /"k"\[2\] length: truncated|array of STRING, count 3/],
    ['unknown value type', () => new Raw().header(0, 1).str('k').u32(13).u32(0).bytes(), /field metadata "k": unknown value type 13/],
    ['unknown array element type', () => new Raw().header(0, 1).str('k').u32(VT.ARRAY).u32(99).u64(0).bytes(), /element type: unknown value type 99/],
    ['arrays nested 100 deep', () => { const r = new Raw().header(0, 1).str('k').u32(VT.ARRAY); for (let i = 0; i < 100; i++) r.u32(VT.ARRAY).u64(1); return r.u32(VT.UINT8).u64(0).bytes(); }, /nested deeper than 8/],
    ['bool 2', () => new Raw().header(0, 1).str('k').u32(VT.BOOL).u8(2).bytes(), /bool must be 0 or 1, got 2/],
    ['invalid UTF-8 key', () => new Raw().header(0, 1).str([0x61, 0xc3, 0x28]).u32(VT.UINT8).u8(0).bytes(), /key: string of 3 bytes is not valid UTF-8/],
    ['invalid UTF-8 in a string array', () => new Raw().header(0, 1).str('k').u32(VT.ARRAY).u32(VT.STRING).u64(1).str([0xed, 0xa0, 0x80]).bytes(), /"k"\[0\]: string of 3 bytes is not valid UTF-8/],
    ['duplicate key', () => new Raw().header(0, 2).kvU32('k', 1).kvU32('k', 2).bytes(), /duplicate key "k"/],
    ['alignment 0', () => new Raw().header(0, 1).kvU32('general.alignment', 0).bytes(), /field general.alignment: alignment 0 is not a non-zero power of two/],
    ['alignment 3', () => new Raw().header(0, 1).kvU32('general.alignment', 3).bytes(), /alignment 3 is not a non-zero power of two/],
    ['alignment as u64', () => new Raw().header(0, 1).str('general.alignment').u32(VT.UINT64).u64(32).bytes(), /general.alignment: expected type UINT32, got UINT64/],
    ['n_dims 0', () => new Raw().header(1, 0).tensor('t', [], GgmlType.F32, 0).data(4).bytes(), /n_dims: n_dims 0 is not in 1..4/],
    ['n_dims 5', () => new Raw().header(1, 0).tensor('t', [1, 1, 1, 1, 1], GgmlType.F32, 0).data(4).bytes(), /n_dims 5 is not in 1..4/],
    ['a dim of 0', () => new Raw().header(1, 0).tensor('t', [4, 0], GgmlType.F32, 0).data(4).bytes(), /dims\[1\]: dimension is 0/],
    ['dims product overflows 2^64', () => new Raw().header(1, 0).tensor('t', [2 ** 32, 2 ** 32, 2 ** 32], GgmlType.F32, 0).data(4).bytes(), /overflows int64/],
    ['dims product past the file', () => new Raw().header(1, 0).tensor('t', [2 ** 20, 2 ** 20], GgmlType.F32, 0).data(4).bytes(), /needs 4398046511104 bytes, more than the whole file/],
    ['absurd single dim', () => new Raw().header(1, 0).tensor('t', [2n ** 63n], GgmlType.I8, 0).data(4).bytes(), /dimension 9223372036854775808 is absurd/],
    ['unknown ggml type (retired 4)', () => new Raw().header(1, 0).tensor('t', [32], 4, 0).data(32).bytes(), /type: unknown ggml tensor type 4/],
    ['unknown ggml type 1000', () => new Raw().header(1, 0).tensor('t', [32], 1000, 0).data(32).bytes(), /unknown ggml tensor type 1000/],
    ['Q8_0 row not a block multiple', () => new Raw().header(1, 0).tensor('t', [33], GgmlType.Q8_0, 0).data(68).bytes(), /33 is not a multiple of the Q8_0 block size 32/],
    ['offset past the end', () => new Raw().header(1, 0).tensor('t', [4], GgmlType.F32, 2n ** 40n).data(16).bytes(), /offset: data offset 1099511627776 is past the end/],
    ['data runs past the end', () => new Raw().header(1, 0).tensor('t', [4], GgmlType.F32, 32).data(40).bytes(), /runs past the end of the file/],
    ['unaligned offset', () => new Raw().header(1, 0).tensor('t', [4], GgmlType.F32, 4).data(64).bytes(), /data offset 4 is not a multiple of the alignment 32/],
    ['overlapping tensors', () => new Raw().header(2, 0).tensor('a', [16], GgmlType.F32, 0).tensor('b', [16], GgmlType.F32, 32).data(128).bytes(), /"b" offset: data .* overlaps tensor "a"/],
    ['duplicate tensor name', () => new Raw().header(2, 0).tensor('a', [4], GgmlType.F32, 0).tensor('a', [4], GgmlType.F32, 32).data(64).bytes(), /duplicate tensor name "a"/],
    ['truncated inside a tensor info', () => new Raw().header(1, 0).str('t').u32(2).u64(4).bytes(), /truncated|tensor infos cannot fit/],
  ];

  for (const [what, make, expected, code = 'E_FORMAT'] of cases) {
    it(what, () => {
      const bytes = make();
      const out = attempt(bytes, what);
      assert.ok(!out.ok, `${what}: parsed`);
      assert.equal(out.error.code, code, out.error.message);
      if (code === 'E_FORMAT') assert.ok(out.error instanceof FormatError);
      assert.match(out.error.message, expected);
      assert.ok(out.error.message.startsWith(`${PATH}: `), out.error.message);
    });
  }

  it('a well-formed hand-made file parses (so the cases above fail for their own reason)', () => {
    const bytes = new Raw().header(2, 2).kvU32('general.alignment', 32).str('s').u32(VT.STRING).str('é')
      .tensor('a', [16], GgmlType.F32, 0).tensor('b', [32], GgmlType.Q8_0, 64).data(64 + 34).bytes();
    const out = attempt(bytes, 'good');
    assert.ok(out.ok);
    assert.equal(out.file.metadata.get('s'), 'é');
    assert.equal(out.file.tensors[1].nbytes, 34);
  });
});
