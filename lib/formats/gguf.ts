/**
 * GGUF reader and writer.
 *
 * Layout (little-endian): magic "GGUF", version u32 (2 or 3), tensor_count u64, kv_count u64,
 * kv_count metadata pairs (key string, value type u32, value), tensor_count tensor infos (name
 * string, n_dims u32, dims u64[n_dims] innermost first, ggml type u32, offset u64 relative to the
 * data section), then the data section at the header end rounded up to `general.alignment`.
 * A string is a u64 byte length plus that many UTF-8 bytes.
 *
 * The parser treats every file as hostile: each length and count is checked against the bytes
 * left in the file before anything is allocated or looped over, so a corrupt file gives a
 * FormatError naming the offset and field, never a crash, a hang or a giant allocation.
 * `readGguf` reads only the header, in growing chunks, and never the tensor data.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { FormatError, FuselmError } from '../errors.js';
import { openRegularFile } from './files.js';
import { GgmlType, ggmlTypeName, ggmlTypeSize, isKnownGgmlType } from './ggml-types.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_MAX_DIMS = 4;
/** Arrays of arrays deeper than this are refused (real files use depth 1). */
export const GGUF_MAX_ARRAY_DEPTH = 8;
/** Headers (metadata + tensor infos) larger than this are refused rather than read into memory.
 * Real headers are a few MB even for 256k-token vocabularies. */
export const GGUF_MAX_HEADER_BYTES = 256 * 1024 * 1024;
/** ggml's GGML_MAX_NAME: tensor names must be shorter than this for llama.cpp to load them. */
const GGML_MAX_NAME = 64;
const INITIAL_READ = 1024 * 1024;

export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Numeric arrays come back as the matching typed array. */
export type GgufArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array;

/**
 * A metadata value. Scalars: 8-32 bit integers and floats are numbers, UINT64/INT64 are bigints,
 * BOOL a boolean, STRING a string. Arrays: numeric ones are typed arrays, BOOL arrays boolean[],
 * STRING arrays string[], arrays of arrays plain arrays of those.
 */
export type GgufValue = number | bigint | boolean | string | GgufValue[] | GgufArray;

/** The on-disk type of a value. `inner` (arrays of arrays only) gives each element's own type. */
export interface GgufTypeInfo {
  type: GgufValueType;
  elemType?: GgufValueType;
  inner?: GgufTypeInfo[];
}

export interface GgufTensorInfo {
  name: string;
  /** Innermost first, as stored (GGUF [8, 11] is the row-major [11][8] matrix). */
  dims: number[];
  type: GgmlType;
  /** ABSOLUTE file offset of the tensor's data (in `file` when given). */
  offset: number;
  nbytes: number;
  nelements: number;
  /** The part of a split model that holds the data (readGgufModel); absent: the GgufFile's own file. */
  file?: GgufPart;
}

/** A file of a model, with the size its header was checked against. */
export interface GgufPart {
  path: string;
  fileSize: number;
}

export interface GgufFile {
  path: string;
  version: number;
  alignment: number;
  /** Absolute file offset of the data section (header end rounded up to the alignment). In a
   * file without tensors this can lie past fileSize: such files often end right after the header. */
  dataOffset: number;
  fileSize: number;
  metadata: Map<string, GgufValue>;
  /** The stored type of each value, so the writer can round-trip a file exactly. */
  metadataTypes: Map<string, GgufTypeInfo>;
  /** In file order. */
  tensors: GgufTensorInfo[];
  tensorByName: Map<string, GgufTensorInfo>;
}

export interface GgufMetaEntry extends GgufTypeInfo {
  key: string;
  value: GgufValue;
}

export interface GgufWriteSpec {
  version?: 2 | 3;
  /** Data alignment; default 32, or the value of a `general.alignment` entry in `metadata`. */
  alignment?: number;
  metadata: GgufMetaEntry[];
  /**
   * Laid out in this order; `data` must be exactly the tensor's byte size. writeGguf also takes
   * a function that produces it when its turn comes, so a large model never sits in memory whole.
   */
  tensors: Array<{ name: string; type: GgmlType; dims: number[]; data: Uint8Array | (() => Promise<Uint8Array>) }>;
}

/**
 * Thrown by parseGguf when the header continues past the bytes it was given but not past
 * `fileSize`: the caller should read at least `needed` bytes from the start and parse again.
 * readGguf handles it; only direct callers of parseGguf with a partial buffer ever see it.
 */
export class GgufNeedMoreBytes extends Error {
  constructor(readonly needed: number) {
    super(`GGUF header needs ${needed} bytes`);
    this.name = 'GgufNeedMoreBytes';
  }
}

// Byte size of each fixed-size value type; STRING and ARRAY are variable.
const FIXED_SIZE: Partial<Record<GgufValueType, number>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

type TypedArrayCtor = { new (buf: ArrayBuffer, off: number, len: number): GgufArray; new (len: number): GgufArray };
const TYPED_ARRAY: Partial<Record<GgufValueType, TypedArrayCtor>> = {
  [GgufValueType.UINT8]: Uint8Array,
  [GgufValueType.INT8]: Int8Array,
  [GgufValueType.UINT16]: Uint16Array,
  [GgufValueType.INT16]: Int16Array,
  [GgufValueType.UINT32]: Uint32Array,
  [GgufValueType.INT32]: Int32Array,
  [GgufValueType.FLOAT32]: Float32Array,
  [GgufValueType.FLOAT64]: Float64Array,
  [GgufValueType.UINT64]: BigUint64Array,
  [GgufValueType.INT64]: BigInt64Array,
};

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function typeName(t: number): string {
  return typeof GgufValueType[t] === 'string' ? GgufValueType[t] : `unknown(${t})`;
}

function isValueType(t: number): t is GgufValueType {
  return Number.isInteger(t) && t >= 0 && t <= 12;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function isPowerOfTwo(n: number): boolean {
  // n & (n - 1) works for every u32 power of two: 2^31 | 0 is negative but the AND is still 0.
  return Number.isInteger(n) && n > 0 && n <= 0xffffffff && (n & (n - 1)) === 0;
}

// ---------------------------------------------------------------------------------------------
// Reader

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Where each metadata value sits, for error messages; kept out of GgufFile so that stays plain data. */
const valueOffsets = new WeakMap<GgufFile, { kvStart: number; offsets: Map<string, number> }>();

/** A bounds-checked little-endian cursor over the header bytes. */
class Cursor {
  pos = 0;
  private readonly dv: DataView;
  /** Bytes at [0, limit) are both present and inside the file. */
  private readonly limit: number;

  constructor(
    readonly bytes: Uint8Array,
    readonly path: string,
    readonly fileSize: number,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.limit = Math.min(bytes.length, fileSize);
  }

  fail(field: string, problem: string, at = this.pos): never {
    throw new FormatError(this.path, at, field, problem);
  }

  /** Bytes of the file after the cursor (whether or not they are in the buffer yet). */
  remaining(): number {
    return Math.max(0, this.fileSize - this.pos);
  }

  /** Ensures `n` bytes at the cursor are readable: FormatError past the file end or the header
   * limit, GgufNeedMoreBytes when they are in the file but not in the buffer. */
  need(n: number, field: string): void {
    const end = this.pos + n;
    if (end <= this.limit) return;
    if (end > this.fileSize) this.fail(field, `truncated: need ${end} bytes, file has ${this.fileSize}`);
    if (end > GGUF_MAX_HEADER_BYTES) {
      this.fail(field, `header would extend to byte ${end}, past the ${GGUF_MAX_HEADER_BYTES}-byte limit on GGUF headers`);
    }
    throw new GgufNeedMoreBytes(end);
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(field: string): bigint {
    this.need(8, field);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A u64 length or count that must fit in the rest of the file at `perItem` bytes each. */
  count(field: string, perItem: number, what: string): number {
    const at = this.pos;
    const n = this.u64(field);
    const rem = this.remaining();
    if (n * BigInt(perItem) > BigInt(rem)) {
      this.fail(field, `${what} ${n} needs at least ${n * BigInt(perItem)} bytes, only ${rem} left in the file`, at);
    }
    return Number(n);
  }

  string(field: string): string {
    const len = this.count(`${field} length`, 1, 'string length');
    this.need(len, field);
    const at = this.pos;
    this.pos += len;
    try {
      return utf8.decode(this.bytes.subarray(at, at + len));
    } catch {
      return this.fail(field, `string of ${len} bytes is not valid UTF-8`, at);
    }
  }

  scalar(type: GgufValueType, field: string): number | bigint | boolean {
    const size = FIXED_SIZE[type]!;
    this.need(size, field);
    const p = this.pos;
    const dv = this.dv;
    this.pos += size;
    switch (type) {
      case GgufValueType.UINT8: return dv.getUint8(p);
      case GgufValueType.INT8: return dv.getInt8(p);
      case GgufValueType.UINT16: return dv.getUint16(p, true);
      case GgufValueType.INT16: return dv.getInt16(p, true);
      case GgufValueType.UINT32: return dv.getUint32(p, true);
      case GgufValueType.INT32: return dv.getInt32(p, true);
      case GgufValueType.FLOAT32: return dv.getFloat32(p, true);
      case GgufValueType.UINT64: return dv.getBigUint64(p, true);
      case GgufValueType.INT64: return dv.getBigInt64(p, true);
      case GgufValueType.FLOAT64: return dv.getFloat64(p, true);
      case GgufValueType.BOOL: {
        const b = dv.getUint8(p);
        if (b > 1) this.fail(field, `bool must be 0 or 1, got ${b}`, p);
        return b === 1;
      }
      default: return this.fail(field, `internal: ${typeName(type)} is not a scalar type`, p);
    }
  }

  /** A value of `type` (already read) at the cursor, with its full type info. */
  value(type: number, field: string, depth: number): [GgufValue, GgufTypeInfo] {
    if (!isValueType(type)) this.fail(field, `unknown value type ${type}`, this.pos - 4);
    if (type === GgufValueType.STRING) return [this.string(field), { type }];
    if (type === GgufValueType.ARRAY) return this.array(field, depth + 1);
    return [this.scalar(type, field), { type }];
  }

  array(field: string, depth: number): [GgufValue, GgufTypeInfo] {
    if (depth > GGUF_MAX_ARRAY_DEPTH) this.fail(field, `arrays nested deeper than ${GGUF_MAX_ARRAY_DEPTH} levels`);
    const elemType = this.u32(`${field} element type`);
    if (!isValueType(elemType)) this.fail(`${field} element type`, `unknown value type ${elemType}`, this.pos - 4);
    // The least each element can take: its fixed size, a string's length field, or an inner
    // array's type + count. Checked before allocating or looping.
    const minSize = FIXED_SIZE[elemType] ?? (elemType === GgufValueType.STRING ? 8 : 12);
    const n = this.count(`${field} count`, minSize, `array of ${typeName(elemType)}, count`);
    const info: GgufTypeInfo = { type: GgufValueType.ARRAY, elemType };

    const ctor = TYPED_ARRAY[elemType];
    if (ctor) {
      const nbytes = n * minSize;
      this.need(nbytes, field);
      const at = this.pos;
      this.pos += nbytes;
      if (HOST_LITTLE_ENDIAN) {
        // slice() copies into a fresh, aligned buffer; typed arrays can't view unaligned bytes.
        return [new ctor(this.bytes.slice(at, at + nbytes).buffer, 0, n), info];
      }
      const out = new ctor(n);
      const save = this.pos;
      this.pos = at;
      for (let i = 0; i < n; i++) out[i] = this.scalar(elemType, field) as never;
      this.pos = save;
      return [out, info];
    }
    if (elemType === GgufValueType.BOOL) {
      this.need(n, field);
      const out: boolean[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = this.scalar(GgufValueType.BOOL, `${field}[${i}]`) as boolean;
      return [out, info];
    }
    if (elemType === GgufValueType.STRING) {
      const out: string[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = this.string(`${field}[${i}]`);
      return [out, info];
    }
    // Arrays of arrays.
    const out: GgufValue[] = new Array(n);
    const inner: GgufTypeInfo[] = new Array(n);
    for (let i = 0; i < n; i++) [out[i], inner[i]] = this.array(`${field}[${i}]`, depth + 1);
    info.inner = inner;
    return [out, info];
  }
}

/**
 * Parses a GGUF header from `bytes` (the start of the file; it may stop anywhere after the
 * header). Sync and pure. Throws FormatError for malformed input, FuselmError E_UNSUPPORTED for
 * well-formed but unsupported files, and GgufNeedMoreBytes when the header runs past `bytes`
 * but not past `fileSize`.
 */
export function parseGguf(bytes: Uint8Array, opts: { path: string; fileSize: number }): GgufFile {
  const { path, fileSize } = opts;
  const c = new Cursor(bytes, path, fileSize);

  const magic = c.u32('magic');
  if (magic !== GGUF_MAGIC) {
    const hex = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    c.fail('magic', `not a GGUF file: expected "GGUF" (47 47 55 46), got ${hex}`, 0);
  }
  const version = c.u32('version');
  if (version === 1) {
    throw new FuselmError('E_UNSUPPORTED', `${path}: GGUF version 1 is not supported (only versions 2 and 3)`);
  }
  if (version === 0x02000000 || version === 0x03000000) {
    throw new FuselmError('E_UNSUPPORTED', `${path}: big-endian GGUF files are not supported`);
  }
  if (version !== 2 && version !== 3) c.fail('version', `unknown GGUF version ${version} (expected 2 or 3)`, 4);

  const tensorCountBig = c.u64('tensor_count');
  const kvCountBig = c.u64('metadata_kv_count');
  // Each kv pair takes at least 13 bytes (key length 8, value type 4, a 1-byte value) and each
  // tensor info at least 32 (name length 8, n_dims 4, one dim 8, type 4, offset 8).
  const rem = BigInt(c.remaining());
  if (kvCountBig * 13n > rem) c.fail('metadata_kv_count', `${kvCountBig} pairs cannot fit in the ${rem} bytes left in the file`, 16);
  if (tensorCountBig * 32n + kvCountBig * 13n > rem) {
    c.fail('tensor_count', `${tensorCountBig} tensor infos cannot fit in the ${rem} bytes left in the file`, 8);
  }
  const kvCount = Number(kvCountBig);
  const tensorCount = Number(tensorCountBig);

  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, GgufTypeInfo>();
  const offsets = new Map<string, number>();
  const kvStart = c.pos;
  for (let i = 0; i < kvCount; i++) {
    const keyAt = c.pos;
    const key = c.string(`metadata[${i}] key`);
    if (metadata.has(key)) c.fail(`metadata[${i}] key`, `duplicate key "${key}"`, keyAt);
    const type = c.u32(`metadata "${key}" value type`);
    offsets.set(key, c.pos);
    const [value, info] = c.value(type, `metadata "${key}"`, 0);
    metadata.set(key, value);
    metadataTypes.set(key, info);
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (metadata.has('general.alignment')) {
    const at = offsets.get('general.alignment')!;
    const t = metadataTypes.get('general.alignment')!.type;
    if (t !== GgufValueType.UINT32) c.fail('general.alignment', `expected type UINT32, got ${typeName(t)}`, at);
    alignment = metadata.get('general.alignment') as number;
    if (!isPowerOfTwo(alignment)) c.fail('general.alignment', `alignment ${alignment} is not a non-zero power of two`, at);
  }

  // Tensor infos. Offsets and overlaps are checked once the data section start is known.
  const tensors: GgufTensorInfo[] = [];
  const tensorByName = new Map<string, GgufTensorInfo>();
  const infoAt: number[] = [];
  const relOffsets: number[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const at = c.pos;
    infoAt.push(at);
    const name = c.string(`tensor[${i}] name`);
    const f = `tensor[${i}] "${name}"`;
    if (tensorByName.has(name)) c.fail(`${f} name`, `duplicate tensor name "${name}"`, at);
    const nDims = c.u32(`${f} n_dims`);
    if (nDims === 0 || nDims > GGUF_MAX_DIMS) c.fail(`${f} n_dims`, `n_dims ${nDims} is not in 1..${GGUF_MAX_DIMS}`, c.pos - 4);
    const dims: bigint[] = [];
    let nel = 1n;
    for (let d = 0; d < nDims; d++) {
      const dim = c.u64(`${f} dims[${d}]`);
      if (dim === 0n) c.fail(`${f} dims[${d}]`, 'dimension is 0', c.pos - 8);
      if (dim > BigInt(Number.MAX_SAFE_INTEGER)) c.fail(`${f} dims[${d}]`, `dimension ${dim} is absurd`, c.pos - 8);
      dims.push(dim);
      nel *= dim; // BigInt: can't overflow, compared against the file size below
    }
    const type = c.u32(`${f} type`);
    if (!isKnownGgmlType(type)) c.fail(`${f} type`, `unknown ggml tensor type ${type}`, c.pos - 4);
    const relOffset = c.u64(`${f} offset`);

    const size = ggmlTypeSize(type);
    if (!size) {
      throw new FuselmError('E_UNSUPPORTED', `${path}: tensor "${name}" has type ${ggmlTypeName(type)}, whose size fuselm does not know`);
    }
    if (nel >= 2n ** 63n) c.fail(`${f} dims`, `element count [${dims.join(', ')}] overflows int64`, at);
    if (dims[0] % BigInt(size.blockSize) !== 0n) {
      c.fail(`${f} dims[0]`, `${dims[0]} is not a multiple of the ${ggmlTypeName(type)} block size ${size.blockSize}`, at);
    }
    const nbytes = (nel / BigInt(size.blockSize)) * BigInt(size.typeSize);
    if (nbytes > BigInt(fileSize)) {
      c.fail(`${f} dims`, `[${dims.join(', ')}] ${ggmlTypeName(type)} needs ${nbytes} bytes, more than the whole file (${fileSize})`, at);
    }
    if (nel > BigInt(Number.MAX_SAFE_INTEGER)) c.fail(`${f} dims`, `element count ${nel} is beyond 2^53`, at);
    if (relOffset > BigInt(fileSize)) c.fail(`${f} offset`, `data offset ${relOffset} is past the end of the file (${fileSize})`, c.pos - 8);
    relOffsets.push(Number(relOffset));
    const info: GgufTensorInfo = {
      name,
      dims: dims.map(Number),
      type,
      offset: 0, // absolute; filled in below
      nbytes: Number(nbytes),
      nelements: Number(nel),
    };
    tensors.push(info);
    tensorByName.set(name, info);
  }

  const dataOffset = alignUp(c.pos, alignment);
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    const f = `tensor[${i}] "${t.name}" offset`;
    const rel = relOffsets[i];
    const offsetField = infoAt[i]; // the error points at the tensor info
    if (rel % alignment !== 0) c.fail(f, `data offset ${rel} is not a multiple of the alignment ${alignment}`, offsetField);
    t.offset = dataOffset + rel;
    if (t.offset + t.nbytes > fileSize) {
      c.fail(f, `data [${t.offset}, ${t.offset + t.nbytes}) runs past the end of the file (${fileSize})`, offsetField);
    }
  }
  const byOffset = tensors.map((t, i) => ({ t, i })).sort((a, b) => a.t.offset - b.t.offset);
  for (let k = 1; k < byOffset.length; k++) {
    const prev = byOffset[k - 1].t;
    const { t, i } = byOffset[k];
    if (t.offset < prev.offset + prev.nbytes) {
      c.fail(`tensor[${i}] "${t.name}" offset`, `data [${t.offset}, ${t.offset + t.nbytes}) overlaps tensor "${prev.name}" [${prev.offset}, ${prev.offset + prev.nbytes})`, infoAt[i]);
    }
  }

  const file: GgufFile = { path, version, alignment, dataOffset, fileSize, metadata, metadataTypes, tensors, tensorByName };
  valueOffsets.set(file, { kvStart, offsets });
  return file;
}

function ioError(path: string, e: unknown): FuselmError {
  const code = (e as NodeJS.ErrnoException)?.code;
  const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String((e as Error)?.message ?? e);
  return new FuselmError('E_IO', `${path}: ${why}`, { cause: e });
}

/** Reads `want` bytes from the start of the file, reusing the `have` bytes already read. */
async function readPrefix(fh: FileHandle, path: string, have: Uint8Array, want: number): Promise<Uint8Array> {
  const buf = new Uint8Array(want);
  buf.set(have);
  let pos = have.length;
  while (pos < want) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(buf, pos, want - pos, pos));
    } catch (e) {
      throw ioError(path, e);
    }
    if (bytesRead === 0) throw new FuselmError('E_IO', `${path}: file ended at byte ${pos} while reading (was it truncated while open?)`);
    pos += bytesRead;
  }
  return buf;
}

/**
 * Reads and parses the header of a GGUF file. Only header bytes are read: 1 MiB first, then
 * doubling (or jumping to what the parser asks for) until the header fits. The parser checks
 * every length against the file size before asking, so a hostile length can't make this read
 * past the file, nor past GGUF_MAX_HEADER_BYTES.
 */
export async function readGguf(path: string): Promise<GgufFile> {
  // only a regular file is opened for reading (a FIFO would block): files.ts
  const { fh, size: fileSize } = await openRegularFile(path, 'GGUF file');
  try {
    let bytes: Uint8Array = new Uint8Array(0);
    let want = Math.min(fileSize, INITIAL_READ);
    for (;;) {
      bytes = await readPrefix(fh, path, bytes, want);
      try {
        return parseGguf(bytes, { path, fileSize });
      } catch (e) {
        if (!(e instanceof GgufNeedMoreBytes)) throw e;
        // The parser only asks for bytes inside the file, so this always grows the buffer.
        const next = Math.min(fileSize, Math.max(want * 2, e.needed));
        if (next <= want) throw new FuselmError('E_FORMAT', `${path}: internal: parser asked for ${e.needed} bytes at offset ${want}`);
        want = next;
      }
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Typed getters

function valueAt(f: GgufFile, key: string): number {
  const o = valueOffsets.get(f);
  return o?.offsets.get(key) ?? o?.kvStart ?? 0;
}

function describe(f: GgufFile, key: string): string {
  const t = f.metadataTypes.get(key);
  if (!t) return typeof f.metadata.get(key);
  return t.type === GgufValueType.ARRAY ? `ARRAY of ${typeName(t.elemType ?? -1)}` : typeName(t.type);
}

function missing(f: GgufFile, key: string): never {
  throw new FormatError(f.path, valueOffsets.get(f)?.kvStart ?? 0, key, `required metadata key "${key}" is missing`);
}

function wrongType(f: GgufFile, key: string, expected: string): never {
  throw new FormatError(f.path, valueAt(f, key), key, `expected ${expected}, got ${describe(f, key)}`);
}

export function ggufGet(f: GgufFile, key: string): GgufValue | undefined {
  return f.metadata.get(key);
}

/** A STRING value; `fallback` when the key is absent (else FormatError). */
export function ggufString(f: GgufFile, key: string, fallback?: string): string {
  const v = f.metadata.get(key);
  if (v === undefined) return fallback !== undefined ? fallback : missing(f, key);
  if (typeof v !== 'string') wrongType(f, key, 'string');
  return v;
}

/** Any integer or float scalar as a number; a 64-bit value must be a safe integer. */
export function ggufNumber(f: GgufFile, key: string, fallback?: number): number {
  const v = f.metadata.get(key);
  if (v === undefined) return fallback !== undefined ? fallback : missing(f, key);
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new FormatError(f.path, valueAt(f, key), key, `value ${v} does not fit a JavaScript number exactly`);
    }
    return Number(v);
  }
  return wrongType(f, key, 'a number');
}

export function ggufBool(f: GgufFile, key: string, fallback?: boolean): boolean {
  const v = f.metadata.get(key);
  if (v === undefined) return fallback !== undefined ? fallback : missing(f, key);
  if (typeof v !== 'boolean') wrongType(f, key, 'bool');
  return v;
}

/**
 * An ARRAY value (typed array, boolean[], string[] or nested arrays). With `elemType`, the
 * stored element type must be that one (or one of those).
 */
export function ggufArray(f: GgufFile, key: string, elemType?: GgufValueType | GgufValueType[]): GgufValue[] | GgufArray {
  const v = f.metadata.get(key);
  if (v === undefined) return missing(f, key);
  const t = f.metadataTypes.get(key);
  if (t?.type !== GgufValueType.ARRAY) wrongType(f, key, 'an array');
  if (elemType !== undefined) {
    const ok = Array.isArray(elemType) ? elemType : [elemType];
    if (!ok.includes(t.elemType!)) wrongType(f, key, `ARRAY of ${ok.map(typeName).join(' or ')}`);
  }
  return v as GgufValue[] | GgufArray;
}

/** A STRING array (e.g. tokenizer.ggml.tokens). */
export function ggufStringArray(f: GgufFile, key: string): string[] {
  return ggufArray(f, key, GgufValueType.STRING) as string[];
}

/** The metadata as writer entries, in file order: `encodeGguf({ metadata: ggufMetadataSpec(f), ... })`
 * reproduces the header exactly. */
export function ggufMetadataSpec(f: GgufFile): GgufMetaEntry[] {
  return [...f.metadata].map(([key, value]) => ({ key, value, ...f.metadataTypes.get(key)! }));
}

// ---------------------------------------------------------------------------------------------
// Writer

function badArg(msg: string): never {
  throw new FuselmError('E_INVALID_ARG', `GGUF writer: ${msg}`);
}

/** Growable little-endian byte buffer. */
class ByteWriter {
  private buf = new Uint8Array(4096);
  private dv = new DataView(this.buf.buffer);
  len = 0;

  private reserve(n: number): number {
    if (this.len + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.len + n) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
      this.dv = new DataView(next.buffer);
    }
    const at = this.len;
    this.len += n;
    return at;
  }
  // reserve() first, then this.dv: reserve may replace the buffer (and its DataView).
  u8(v: number) { const at = this.reserve(1); this.dv.setUint8(at, v); }
  i8(v: number) { const at = this.reserve(1); this.dv.setInt8(at, v); }
  u16(v: number) { const at = this.reserve(2); this.dv.setUint16(at, v, true); }
  i16(v: number) { const at = this.reserve(2); this.dv.setInt16(at, v, true); }
  u32(v: number) { const at = this.reserve(4); this.dv.setUint32(at, v, true); }
  i32(v: number) { const at = this.reserve(4); this.dv.setInt32(at, v, true); }
  f32(v: number) { const at = this.reserve(4); this.dv.setFloat32(at, v, true); }
  f64(v: number) { const at = this.reserve(8); this.dv.setFloat64(at, v, true); }
  u64(v: bigint) { const at = this.reserve(8); this.dv.setBigUint64(at, v, true); }
  i64(v: bigint) { const at = this.reserve(8); this.dv.setBigInt64(at, v, true); }
  bytes(b: Uint8Array) { const at = this.reserve(b.length); this.buf.set(b, at); }
  str(s: string, what: string) {
    if (/\p{Cs}/u.test(s)) badArg(`${what} contains a lone surrogate, which UTF-8 cannot encode`);
    const b = utf8Encoder.encode(s);
    this.u64(BigInt(b.length));
    this.bytes(b);
  }
  result(): Uint8Array { return this.buf.slice(0, this.len); }
}
const utf8Encoder = new TextEncoder();

const INT_RANGE: Partial<Record<GgufValueType, [number, number]>> = {
  [GgufValueType.UINT8]: [0, 0xff],
  [GgufValueType.INT8]: [-0x80, 0x7f],
  [GgufValueType.UINT16]: [0, 0xffff],
  [GgufValueType.INT16]: [-0x8000, 0x7fff],
  [GgufValueType.UINT32]: [0, 0xffffffff],
  [GgufValueType.INT32]: [-0x80000000, 0x7fffffff],
};

function toBigInt(v: unknown, type: GgufValueType, what: string): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else return badArg(`${what}: ${typeName(type)} needs a bigint or safe integer, got ${String(v)}`);
  const [lo, hi] = type === GgufValueType.UINT64 ? [0n, 2n ** 64n - 1n] : [-(2n ** 63n), 2n ** 63n - 1n];
  if (b < lo || b > hi) badArg(`${what}: ${b} is out of range for ${typeName(type)}`);
  return b;
}

function writeScalar(w: ByteWriter, type: GgufValueType, v: unknown, what: string): void {
  const range = INT_RANGE[type];
  if (range) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) {
      badArg(`${what}: ${String(v)} is not a valid ${typeName(type)}`);
    }
  }
  switch (type) {
    case GgufValueType.UINT8: return w.u8(v as number);
    case GgufValueType.INT8: return w.i8(v as number);
    case GgufValueType.UINT16: return w.u16(v as number);
    case GgufValueType.INT16: return w.i16(v as number);
    case GgufValueType.UINT32: return w.u32(v as number);
    case GgufValueType.INT32: return w.i32(v as number);
    case GgufValueType.FLOAT32:
    case GgufValueType.FLOAT64:
      if (typeof v !== 'number') badArg(`${what}: ${typeName(type)} needs a number, got ${typeof v}`);
      return type === GgufValueType.FLOAT32 ? w.f32(v) : w.f64(v);
    case GgufValueType.UINT64: return w.u64(toBigInt(v, type, what));
    case GgufValueType.INT64: return w.i64(toBigInt(v, type, what));
    case GgufValueType.BOOL:
      if (typeof v !== 'boolean') badArg(`${what}: BOOL needs a boolean, got ${typeof v}`);
      return w.u8(v ? 1 : 0);
    case GgufValueType.STRING:
      if (typeof v !== 'string') badArg(`${what}: STRING needs a string, got ${typeof v}`);
      return w.str(v, what);
    default:
      return badArg(`${what}: unknown value type ${type}`);
  }
}

/** The element type of an inner array, from its JS shape (for nested arrays written without `inner`). */
function inferArrayInfo(v: unknown, what: string): GgufTypeInfo {
  const typed: Array<[GgufValueType, Function]> = [
    [GgufValueType.UINT8, Uint8Array], [GgufValueType.INT8, Int8Array], [GgufValueType.UINT16, Uint16Array],
    [GgufValueType.INT16, Int16Array], [GgufValueType.UINT32, Uint32Array], [GgufValueType.INT32, Int32Array],
    [GgufValueType.FLOAT32, Float32Array], [GgufValueType.FLOAT64, Float64Array],
    [GgufValueType.UINT64, BigUint64Array], [GgufValueType.INT64, BigInt64Array],
  ];
  for (const [t, ctor] of typed) if (v instanceof ctor) return { type: GgufValueType.ARRAY, elemType: t };
  if (Array.isArray(v) && v.length > 0) {
    if (v.every((x) => typeof x === 'string')) return { type: GgufValueType.ARRAY, elemType: GgufValueType.STRING };
    if (v.every((x) => typeof x === 'boolean')) return { type: GgufValueType.ARRAY, elemType: GgufValueType.BOOL };
    if (v.every((x) => Array.isArray(x) || ArrayBuffer.isView(x))) {
      return { type: GgufValueType.ARRAY, elemType: GgufValueType.ARRAY, inner: v.map((x, i) => inferArrayInfo(x, `${what}[${i}]`)) };
    }
  }
  return badArg(`${what}: cannot infer the element type of this inner array; pass \`inner\` type info`);
}

function writeArray(w: ByteWriter, info: GgufTypeInfo, v: unknown, what: string, depth: number): void {
  if (depth > GGUF_MAX_ARRAY_DEPTH) badArg(`${what}: arrays nested deeper than ${GGUF_MAX_ARRAY_DEPTH}`);
  const elemType = info.elemType;
  if (elemType === undefined || !isValueType(elemType)) badArg(`${what}: ARRAY needs a valid elemType`);
  if (!Array.isArray(v) && !(ArrayBuffer.isView(v) && !(v instanceof DataView))) badArg(`${what}: ARRAY needs an array value`);
  const arr = v as ArrayLike<unknown>;
  w.u32(elemType);
  w.u64(BigInt(arr.length));
  const ctor = TYPED_ARRAY[elemType];
  if (ctor && HOST_LITTLE_ENDIAN && v instanceof (ctor as Function)) {
    const t = v as GgufArray;
    w.bytes(new Uint8Array(t.buffer, t.byteOffset, t.byteLength)); // fast path: bytes as they are
    return;
  }
  if (elemType === GgufValueType.ARRAY) {
    const inner = info.inner;
    if (inner && inner.length !== arr.length) badArg(`${what}: inner has ${inner.length} entries for ${arr.length} elements`);
    for (let i = 0; i < arr.length; i++) {
      const ii = inner?.[i] ?? inferArrayInfo(arr[i], `${what}[${i}]`);
      if (ii.type !== GgufValueType.ARRAY) badArg(`${what}[${i}]: inner type must be ARRAY`);
      writeArray(w, ii, arr[i], `${what}[${i}]`, depth + 1);
    }
    return;
  }
  for (let i = 0; i < arr.length; i++) writeScalar(w, elemType, arr[i], `${what}[${i}]`);
}

interface Layout {
  header: Uint8Array; // magic .. tensor infos, unpadded
  dataOffset: number;
  tensorOffsets: number[]; // relative to dataOffset
  tensorBytes: number[];
  dataSize: number; // including the padding after the last tensor
  alignment: number;
}

function layoutGguf(spec: GgufWriteSpec): Layout {
  const version = spec.version ?? 3;
  if (version !== 2 && version !== 3) badArg(`version ${String(version)} (only 2 and 3 are written)`);

  const keys = new Set<string>();
  for (const m of spec.metadata) {
    if (typeof m.key !== 'string') badArg('metadata key must be a string');
    if (keys.has(m.key)) badArg(`duplicate metadata key "${m.key}"`);
    keys.add(m.key);
  }
  // The alignment comes from spec.alignment or a general.alignment entry; they must agree.
  const alignEntry = spec.metadata.find((m) => m.key === 'general.alignment');
  if (alignEntry && (alignEntry.type !== GgufValueType.UINT32 || typeof alignEntry.value !== 'number')) {
    badArg('general.alignment must be a UINT32');
  }
  const alignment = spec.alignment ?? (alignEntry?.value as number | undefined) ?? GGUF_DEFAULT_ALIGNMENT;
  if (!isPowerOfTwo(alignment)) badArg(`alignment ${alignment} is not a power of two`);
  if (alignEntry && alignEntry.value !== alignment) badArg(`general.alignment ${String(alignEntry.value)} disagrees with alignment ${alignment}`);
  // llama.cpp only honours a non-default alignment through the key, so write it when needed.
  const metadata = [...spec.metadata];
  if (!alignEntry && alignment !== GGUF_DEFAULT_ALIGNMENT) {
    metadata.push({ key: 'general.alignment', type: GgufValueType.UINT32, value: alignment });
  }

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(version);
  w.u64(BigInt(spec.tensors.length));
  w.u64(BigInt(metadata.length));
  for (const m of metadata) {
    const what = `metadata "${m.key}"`;
    w.str(m.key, `${what} key`);
    if (!isValueType(m.type)) badArg(`${what}: unknown value type ${m.type}`);
    w.u32(m.type);
    if (m.type === GgufValueType.ARRAY) writeArray(w, m, m.value, what, 1);
    else writeScalar(w, m.type, m.value, what);
  }

  const names = new Set<string>();
  const tensorOffsets: number[] = [];
  const tensorBytes: number[] = [];
  let cur = 0;
  for (const t of spec.tensors) {
    const what = `tensor "${t.name}"`;
    if (typeof t.name !== 'string') badArg('tensor name must be a string');
    if (names.has(t.name)) badArg(`duplicate tensor name "${t.name}"`);
    names.add(t.name);
    if (utf8Encoder.encode(t.name).length >= GGML_MAX_NAME) badArg(`${what}: name must be shorter than ${GGML_MAX_NAME} bytes`);
    if (!Array.isArray(t.dims) || t.dims.length < 1 || t.dims.length > GGUF_MAX_DIMS) badArg(`${what}: needs 1..${GGUF_MAX_DIMS} dims`);
    for (const d of t.dims) if (!Number.isSafeInteger(d) || d < 1) badArg(`${what}: bad dimension ${d}`);
    const size = ggmlTypeSize(t.type);
    if (!size) badArg(`${what}: type ${ggmlTypeName(t.type)} has no known size`);
    if (t.dims[0] % size.blockSize !== 0) badArg(`${what}: dims[0] = ${t.dims[0]} is not a multiple of the block size ${size.blockSize}`);
    let nel = 1n;
    for (const d of t.dims) nel *= BigInt(d);
    const nbytes = (nel / BigInt(size.blockSize)) * BigInt(size.typeSize);
    const lazy = typeof t.data === 'function';
    if (!lazy && (!(t.data instanceof Uint8Array) || BigInt(t.data.length) !== nbytes)) {
      badArg(`${what}: data must be ${nbytes} bytes, got ${(t.data as Uint8Array | undefined)?.length}`);
    }
    w.str(t.name, `${what} name`);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(BigInt(d));
    w.u32(t.type);
    w.u64(BigInt(cur));
    tensorOffsets.push(cur);
    tensorBytes.push(Number(nbytes));
    cur = alignUp(cur + Number(nbytes), alignment); // reference writers pad after every tensor
  }

  const header = w.result();
  return { header, dataOffset: alignUp(header.length, alignment), tensorOffsets, tensorBytes, dataSize: cur, alignment };
}

/** File size for a layout. Like the reference writer, a file without tensors ends right after the
 * header, without padding it out to the (empty) data section. */
function fileSizeOf(l: Layout, nTensors: number): number {
  return nTensors > 0 ? l.dataOffset + l.dataSize : l.header.length;
}

/** The whole file in memory. */
export function encodeGguf(spec: GgufWriteSpec): Uint8Array {
  const l = layoutGguf(spec);
  const out = new Uint8Array(fileSizeOf(l, spec.tensors.length)); // zero-filled, so padding is zeros
  out.set(l.header, 0);
  spec.tensors.forEach((t, i) => {
    if (typeof t.data === 'function') badArg(`tensor "${t.name}": encodeGguf needs the data itself; writeGguf takes a function`);
    out.set(t.data, l.dataOffset + l.tensorOffsets[i]);
  });
  return out;
}

/** Writes a GGUF file, streaming the tensors instead of building the file in memory. */
export async function writeGguf(path: string, spec: GgufWriteSpec): Promise<void> {
  const l = layoutGguf(spec);
  let fh: FileHandle;
  try {
    fh = await open(path, 'w');
  } catch (e) {
    throw ioError(path, e);
  }
  try {
    const zeros = new Uint8Array(Math.min(l.alignment, 65536));
    const write = async (b: Uint8Array) => {
      let off = 0;
      while (off < b.length) off += (await fh.write(b, off, b.length - off)).bytesWritten;
    };
    const pad = async (n: number) => {
      for (; n > 0; n -= zeros.length) await write(zeros.subarray(0, Math.min(n, zeros.length)));
    };
    await write(l.header);
    if (spec.tensors.length > 0) await pad(l.dataOffset - l.header.length);
    for (let i = 0; i < spec.tensors.length; i++) {
      const t = spec.tensors[i];
      const data = typeof t.data === 'function' ? await t.data() : t.data;
      if (!(data instanceof Uint8Array) || data.length !== l.tensorBytes[i])
        badArg(`tensor "${t.name}": data must be ${l.tensorBytes[i]} bytes, got ${(data as Uint8Array | undefined)?.length}`);
      const end = i + 1 < spec.tensors.length ? l.tensorOffsets[i + 1] : l.dataSize;
      await write(data);
      await pad(end - l.tensorOffsets[i] - data.length);
    }
  } catch (e) {
    throw e instanceof FuselmError ? e : ioError(path, e);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Metadata value helpers: `[{ key: 'general.architecture', ...gv.str('llama') }]`

type Num = number | bigint;
const T = GgufValueType;
const arr = <V extends GgufValue>(elemType: GgufValueType, value: V) => ({ type: T.ARRAY, elemType, value });

export const gv = {
  u8: (v: number) => ({ type: T.UINT8, value: v }),
  i8: (v: number) => ({ type: T.INT8, value: v }),
  u16: (v: number) => ({ type: T.UINT16, value: v }),
  i16: (v: number) => ({ type: T.INT16, value: v }),
  u32: (v: number) => ({ type: T.UINT32, value: v }),
  i32: (v: number) => ({ type: T.INT32, value: v }),
  u64: (v: Num) => ({ type: T.UINT64, value: BigInt(v) }),
  i64: (v: Num) => ({ type: T.INT64, value: BigInt(v) }),
  f32: (v: number) => ({ type: T.FLOAT32, value: v }),
  f64: (v: number) => ({ type: T.FLOAT64, value: v }),
  bool: (v: boolean) => ({ type: T.BOOL, value: v }),
  str: (v: string) => ({ type: T.STRING, value: v }),
  arrU8: (v: ArrayLike<number>) => arr(T.UINT8, Uint8Array.from(v)),
  arrI8: (v: ArrayLike<number>) => arr(T.INT8, Int8Array.from(v)),
  arrU16: (v: ArrayLike<number>) => arr(T.UINT16, Uint16Array.from(v)),
  arrI16: (v: ArrayLike<number>) => arr(T.INT16, Int16Array.from(v)),
  arrU32: (v: ArrayLike<number>) => arr(T.UINT32, Uint32Array.from(v)),
  arrI32: (v: ArrayLike<number>) => arr(T.INT32, Int32Array.from(v)),
  arrU64: (v: ArrayLike<Num>) => arr(T.UINT64, BigUint64Array.from(Array.from(v, BigInt))),
  arrI64: (v: ArrayLike<Num>) => arr(T.INT64, BigInt64Array.from(Array.from(v, BigInt))),
  arrF32: (v: ArrayLike<number>) => arr(T.FLOAT32, Float32Array.from(v)),
  arrF64: (v: ArrayLike<number>) => arr(T.FLOAT64, Float64Array.from(v)),
  arrBool: (v: boolean[]) => arr(T.BOOL, [...v]),
  arrStr: (v: string[]) => arr(T.STRING, [...v]),
  /** An array of arrays; inner types are inferred from the values unless `inner` is given. */
  arrArr: (v: GgufValue[], inner?: GgufTypeInfo[]) => ({ ...arr(T.ARRAY, v), ...(inner ? { inner } : {}) }),
};
