/**
 * safetensors: an 8-byte little-endian header length N, an N-byte JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {...}}`, then the data
 * section; offsets are relative to its start. Sharded models list their files in
 * model.safetensors.index.json (`weight_map`: tensor name → shard file).
 *
 * parseSafetensorsHeader is pure and checks everything the loader relies on: the header lies
 * inside the file, its JSON is an object of well-formed entries, every tensor's byte size
 * equals numel × dtype size, tensors lie inside the data section and do not overlap. Anything
 * else is a FormatError naming file, offset and field, never a crash. Tensor data is read
 * natively (tensorFromFile), never through the JS heap.
 */
import { stat } from 'node:fs/promises';
import { hasOwn, openRegularFile, readJsonFile } from './files.js';
import path from 'node:path';
import type { NativeDType, NativeTensor } from '../../bindings.js';
import { FormatError, FuselmError, shown } from '../errors.js';
import { callAsync, native } from '../native.js';

/** Byte size per element of every dtype safetensors defines. */
const DTYPE_SIZE: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
};
/** The dtypes fuselm loads, natively, as they are stored. */
const NATIVE: Record<string, NativeDType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** A header larger than this is refused before it is read (real ones are well under 10 MB). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsTensor {
  name: string;
  /** The file holding it (a shard for sharded models). */
  file: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offset of the data in `file`. */
  offset: number;
  nbytes: number;
}

export interface SafetensorsFile {
  path: string;
  fileSize: number;
  /** Where the data section starts: 8 + header length. */
  dataOffset: number;
  metadata: Record<string, string>;
  tensors: Map<string, SafetensorsTensor>;
}

/**
 * Parses a safetensors header. `head` holds at least the first 8 + N bytes of the file (or the
 * whole file when shorter); fileSize is the real file size.
 */
export function parseSafetensorsHeader(head: Uint8Array, opts: { path: string; fileSize: number }): SafetensorsFile {
  const file = opts.path;
  const fail = (offset: number, field: string, problem: string): never => {
    throw new FormatError(file, offset, field, problem);
  };
  if (opts.fileSize < 8 || head.length < 8) fail(0, 'header length', `the file has ${opts.fileSize} bytes, fewer than the 8-byte header length`);
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(opts.fileSize - 8)) fail(0, 'header length', `header length ${n64} runs past the end of the file (${opts.fileSize} bytes)`);
  const n = Number(n64);
  if (n > SAFETENSORS_MAX_HEADER_BYTES) fail(0, 'header length', `header length ${n} exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit`);
  if (n < 2) fail(0, 'header length', `header length ${n} is too small for a JSON object`);
  if (head.length < 8 + n) fail(8, 'header', `only ${head.length - 8} of ${n} header bytes were given`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(8, 8 + n)));
  } catch (e) {
    // V8's message quotes the text: only the position is passed on (files.ts)
    const pos = /at position (\d+)/.exec((e as Error).message)?.[1];
    fail(8 + Number(pos ?? 0), 'header', `not valid UTF-8 JSON${pos !== undefined ? ` (at header position ${pos})` : ''}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(8, 'header', 'the JSON header is not an object');
  const dataOffset = 8 + n, dataSize = opts.fileSize - dataOffset;
  const tensors = new Map<string, SafetensorsTensor>();
  let metadata: Record<string, string> = {};
  const spans: Array<[number, number, string]> = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    const field = (f: string) => `${name}.${f}`;
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(8, '__metadata__', 'must be an object of strings');
      for (const [k, s] of Object.entries(v as object)) if (typeof s !== 'string') fail(8, `__metadata__.${k}`, 'must be a string');
      metadata = v as Record<string, string>;
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(8, name, 'a tensor entry must be an object');
    const e = v as Record<string, unknown>;
    if (typeof e.dtype !== 'string') fail(8, field('dtype'), 'missing or not a string');
    const dtype = e.dtype as string;
    if (!hasOwn(DTYPE_SIZE, dtype)) fail(8, field('dtype'), `unknown dtype ${JSON.stringify(dtype.slice(0, 40))}`);
    const size = DTYPE_SIZE[dtype];
    if (!Array.isArray(e.shape) || e.shape.length > 8 || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(8, field('shape'), `must be an array of at most 8 non-negative integers, got ${shown(e.shape)}`);
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(8, field('data_offsets'), `must be [begin, end] of non-negative integers, got ${shown(off)}`);
    const [begin, end] = off as number[];
    if (end < begin) fail(8, field('data_offsets'), `end ${end} is before begin ${begin}`);
    if (end > dataSize) fail(dataOffset + begin, field('data_offsets'), `end ${end} runs past the data section (${dataSize} bytes)`);
    let numel = 1;
    for (const d of shape) numel *= d;
    if (numel * size !== end - begin)
      fail(dataOffset + begin, field('data_offsets'), `shape [${shape}] of ${dtype} needs ${numel * size} bytes, the offsets span ${end - begin}`);
    tensors.set(name, { name, file, dtype, shape, offset: dataOffset + begin, nbytes: end - begin });
    spans.push([begin, end, name]);
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let maxEnd = 0, last = '';
  for (const [begin, end, name] of spans) {
    if (end === begin) continue;
    if (begin < maxEnd) fail(dataOffset + begin, `${name}.data_offsets`, `overlaps tensor '${last}'`);
    maxEnd = end;
    last = name;
  }
  return { path: file, fileSize: opts.fileSize, dataOffset, metadata, tensors };
}

async function pathExists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Reads and checks the header of one .safetensors file (the data stays on disk). */
export async function readSafetensors(p: string): Promise<SafetensorsFile> {
  // only a regular file is opened for reading (a FIFO would block): files.ts
  const { fh, size } = await openRegularFile(p, 'safetensors file');
  try {
    const len = Buffer.alloc(8);
    const { bytesRead } = await fh.read(len, 0, 8, 0);
    if (bytesRead < 8) return parseSafetensorsHeader(len.subarray(0, bytesRead), { path: p, fileSize: size });
    const n = len.readBigUInt64LE(0);
    if (n > BigInt(Math.min(size - 8, SAFETENSORS_MAX_HEADER_BYTES))) return parseSafetensorsHeader(len, { path: p, fileSize: size });
    const head = Buffer.alloc(8 + Number(n));
    await fh.read(head, 0, head.length, 0);
    return parseSafetensorsHeader(head, { path: p, fileSize: size });
  } finally {
    await fh.close();
  }
}

/** A model's tensors across one file or several shards. */
export interface SafetensorsModel {
  files: SafetensorsFile[];
  tensors: Map<string, SafetensorsTensor>;
}

/**
 * Opens the weights of a Hugging Face folder: model.safetensors.index.json (shards) when
 * present, else model.safetensors, else the folder's only .safetensors file.
 */
export async function openSafetensorsFolder(dir: string): Promise<SafetensorsModel> {
  const indexPath = path.join(dir, 'model.safetensors.index.json');
  let index: unknown;
  if (await pathExists(indexPath)) index = await readJsonFile(indexPath, 'safetensors index');
  let shardNames: string[];
  let weightMap: Record<string, string> | undefined;
  if (index !== undefined) {
    const wm = (index as { weight_map?: unknown })?.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm) || !Object.values(wm).every((v) => typeof v === 'string'))
      throw new FormatError(indexPath, 0, 'weight_map', 'must be an object of tensor name → shard file name');
    weightMap = wm as Record<string, string>;
    shardNames = [...new Set(Object.values(weightMap))];
    for (const s of shardNames)
      if (s === '' || s === '.' || s === '..' || /[/\\\0]/.test(s))
        throw new FormatError(indexPath, 0, 'weight_map', `shard ${JSON.stringify(s.slice(0, 80))} is not a file name in the folder`);
  } else {
    const { readdir } = await import('node:fs/promises');
    const all = (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort();
    if (all.includes('model.safetensors')) shardNames = ['model.safetensors'];
    else if (all.length === 1) shardNames = all;
    else throw new FuselmError('E_IO', `${dir}: no model.safetensors (nor an index of shards)${all.length ? `; found ${all.join(', ')}` : ''}`);
  }
  const files = await Promise.all(shardNames.map((s) => readSafetensors(path.join(dir, s))));
  const tensors = new Map<string, SafetensorsTensor>();
  for (const f of files)
    for (const [name, t] of f.tensors) {
      if (tensors.has(name)) throw new FormatError(f.path, t.offset, name, `tensor also present in ${tensors.get(name)!.file}`);
      if (weightMap && hasOwn(weightMap, name) && path.join(dir, weightMap[name]) !== f.path)
        throw new FormatError(f.path, t.offset, name, `the index places this tensor in ${weightMap[name]}`);
      tensors.set(name, t);
    }
  if (weightMap)
    for (const [name, shard] of Object.entries(weightMap))
      if (!tensors.has(name)) throw new FormatError(path.join(dir, shard), 0, name, 'listed in the index but not in the shard');
  return { files, tensors };
}

/**
 * Loads a tensor natively in its stored dtype (F32, F16 or BF16), optionally checking its
 * shape. Other dtypes are E_UNSUPPORTED.
 */
export async function loadSafetensorsTensor(t: SafetensorsTensor, shape?: number[]): Promise<NativeTensor> {
  if (shape && (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])))
    throw new FormatError(t.file, t.offset, t.name, `shape is [${t.shape}], expected [${shape}]`);
  const dt = hasOwn(NATIVE, t.dtype) ? NATIVE[t.dtype] : undefined;
  if (!dt) throw new FuselmError('E_UNSUPPORTED', `${t.file}: tensor '${t.name}' has dtype ${t.dtype} (supported: F32, F16, BF16)`);
  const s = t.shape.length ? t.shape : [1];
  return callAsync(() => native().tensorFromFile(t.file, t.offset, dt, s));
}
