/**
 * `fuselm quantize`: writes a GGUF whose weight matrices are in one of llama.cpp's file types
 * (q4_0 … q8_0, the k-quant mixtures q2_k, q3_k_s/m/l, q4_k_s/m, q5_k_s/m, q6_k, f16, f32), from a GGUF (F32,
 * F16, BF16, or already quantized) or a Hugging Face model folder (converted on the way by
 * lib/tools/convert.ts). Every metadata entry (tokenizer included) is kept, general.file_type
 * and general.quantization_version set as llama.cpp sets them, so llama.cpp loads the result.
 * Tensors are read, converted and written one at a time, never the whole model; the block
 * formats are quantized natively on every core (lib/formats/quantize-blocks.ts).
 *
 * Which tensor gets which type follows llama-quantize (its llama_tensor_get_type), see
 * `planTensorTypes` below for the rules.
 */
import { open, stat } from 'node:fs/promises';
import { FuselmError } from '../errors.js';
import { GgmlType, ggmlTypeName, ggmlTypeSize, tensorByteSize } from '../formats/ggml-types.js';
import { toF32 } from '../formats/quants.js';
import { quantizeRows } from '../formats/quantize-blocks.js';
import { type GgufMetaEntry, ggufMetadataSpec, gv, readGguf, writeGguf } from '../formats/gguf.js';
import { type HfSourceOptions, type ModelSource, type SourceTensor, hfSource } from './convert.js';

/** The file types `fuselm quantize` writes. */
export const QUANTIZE_TYPES = ['f32', 'f16', 'q8_0', 'q6_k', 'q5_k_m', 'q5_k_s', 'q5_1', 'q5_0', 'q4_k_m', 'q4_k_s', 'q4_1', 'q4_0', 'q3_k_l', 'q3_k_m', 'q3_k_s', 'q2_k'] as const;
export type QuantizeType = (typeof QUANTIZE_TYPES)[number];

/** llama.cpp's general.file_type values (LLAMA_FTYPE_ALL_F32, LLAMA_FTYPE_MOSTLY_*). */
export const FILE_TYPE: Record<QuantizeType, number> = {
  f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, q5_0: 8, q5_1: 9, q2_k: 10, q3_k_s: 11, q3_k_m: 12, q3_k_l: 13, q4_k_s: 14, q4_k_m: 15, q5_k_s: 16, q5_k_m: 17, q6_k: 18,
};

/** The type of the matrices no rule moves (llama.cpp's llama_ftype_get_default_type). */
const DEFAULT_TYPE: Record<QuantizeType, GgmlType> = {
  f32: GgmlType.F32, f16: GgmlType.F16, q4_0: GgmlType.Q4_0, q4_1: GgmlType.Q4_1, q5_0: GgmlType.Q5_0, q5_1: GgmlType.Q5_1,
  q8_0: GgmlType.Q8_0, q2_k: GgmlType.Q2_K, q3_k_s: GgmlType.Q3_K, q3_k_m: GgmlType.Q3_K, q3_k_l: GgmlType.Q3_K,
  q4_k_s: GgmlType.Q4_K, q4_k_m: GgmlType.Q4_K, q5_k_s: GgmlType.Q5_K, q5_k_m: GgmlType.Q5_K, q6_k: GgmlType.Q6_K,
};

export function isQuantizeType(t: string): t is QuantizeType {
  return (QUANTIZE_TYPES as readonly string[]).includes(t);
}

const isBlockType = (t: GgmlType) => (ggmlTypeSize(t)?.blockSize ?? 1) > 1;
const fits = (t: GgmlType, rowLength: number) => rowLength % (ggmlTypeSize(t)?.blockSize ?? 1) === 0;

/** C's integer division of non-negative a by b, as llama.cpp's layer rules divide. */
const idiv = (a: number, b: number) => Math.floor(a / b);

/**
 * llama.cpp's choice of more bits for some layers: the first and last eighth of the layers,
 * and every third layer between them, in integer arithmetic (22 layers: 0, 1, 4, 7, …, 16, 19,
 * 20, 21).
 */
export function useMoreBits(layer: number, layers: number): boolean {
  return layer < idiv(layers, 8) || layer >= idiv(7 * layers, 8) || (layer - idiv(layers, 8)) % 3 === 2;
}

/** Whether llama-quantize quantizes a tensor at all: matrices named *weight, not norms or position tables. */
export function isQuantizable(name: string, dims: readonly number[]): boolean {
  return (
    name.endsWith('weight') &&
    dims.length >= 2 &&
    !name.includes('_norm.weight') &&
    !name.startsWith('position_embd') &&
    !name.startsWith('token_types') &&
    !name.includes('ssm_conv1d')
  );
}

export interface PlanOptions {
  /** `<arch>.expert_count` (MoE models get llama.cpp's 8-expert rules). */
  expertCount?: number;
  /** Query heads per KV head (q2_k gives attn_v more bits from 4 on). */
  gqa?: number;
}

/**
 * The type each tensor is written in (undefined: kept as it is), llama-quantize's rules for
 * `type`:
 *
 * - 1-D tensors, norms, position and token-type tables are kept as they are.
 * - f32, f16: every other matrix in that type; q4_0 … q6_k: the mixture below, then the
 *   shape fallback.
 * - output.weight (or token_embd.weight when the head is tied and there is no output.weight):
 *   Q6_K; Q8_0 for q8_0 files, and when its rows are not whole blocks of the file's type.
 * - attn_v.weight (and fused attn_qkv / attn_kv_b; "attn_v" below), counted in file order:
 *   q4_k_m, q5_k_m: Q6_K in the layers `useMoreBits` picks (first and last eighth of the
 *   layers, every third between); q3_k_m: Q5_K in the first two, Q4_K after; q3_k_l: Q5_K;
 *   q2_k: Q4_K with 4 or more query heads per KV head, else Q3_K.
 * - ffn_down* (by block index): q4_k_m, q5_k_m: Q6_K in the `useMoreBits` layers; q3_k_m: Q5_K in
 *   the first sixteenth of the layers, Q4_K after; q3_k_l: Q5_K; q2_k: Q3_K.
 * - q4_k_s: attn_v Q5_K in the first four, ffn_down Q5_K in the first eighth of the layers;
 *   q5_k_s, q3_k_s: no rule but the output's.
 * - attn_output: q3_k_m Q4_K, q3_k_l Q5_K, q2_k Q3_K.
 * - 8-expert MoE models: attn_v and attn_k Q8_0; attn_output Q5_K in q2_k, q3_k_s, q3_k_m,
 *   q4_k_s and q4_k_m (and no other attn_output rule).
 * - Not applied: llama.cpp's rules that need the parameter count (70B attn_v → Q5_K), the
 *   Falcon-only rules, and the IQ mixtures and q2_k_s, which fuselm does not write.
 * - Shape fallback: a row that is not whole blocks of the chosen k-quant falls back as
 *   llama.cpp's does, Q2_K and Q3_K → IQ4_NL, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and to F16
 *   when the row is not whole 32-blocks either. (For q4_0 … q8_0 llama.cpp refuses such a
 *   tensor; it is kept as it is here.)
 */
export function planTensorTypes(tensors: ReadonlyArray<{ name: string; dims: readonly number[] }>, type: QuantizeType, o: PlanOptions = {}): Array<GgmlType | undefined> {
  const base = DEFAULT_TYPE[type];
  const nExpert = o.expertCount ?? 0;
  const hasOutput = tensors.some((t) => t.name === 'output.weight');
  const isAttnV = (n: string) => /\.(attn_v|attn_qkv|attn_kv_b)\.weight$/.test(n);
  const nAttnV = tensors.filter((t) => isAttnV(t.name)).length;
  const ffnDownLayers = new Set(tensors.filter((t) => t.name.includes('ffn_down')).map((t) => layerOf(t.name)));
  const nLayers = ffnDownLayers.size;
  let iAttnV = 0;
  return tensors.map(({ name, dims }) => {
    if (!isQuantizable(name, dims)) return undefined;
    if (!isBlockType(base)) return base; // f32 / f16: no mixture
    let t = base;
    if (name === 'output.weight' || (!hasOutput && name === 'token_embd.weight')) {
      t = !fits(base, dims[0]) ? GgmlType.Q8_0 : base === GgmlType.Q8_0 ? GgmlType.Q8_0 : GgmlType.Q6_K;
    } else if (name === 'token_embd.weight') {
      // the file's type
    } else if (isAttnV(name)) {
      if (type === 'q2_k') t = (o.gqa ?? 1) >= 4 ? GgmlType.Q4_K : GgmlType.Q3_K;
      else if (type === 'q3_k_m') t = iAttnV < 2 ? GgmlType.Q5_K : GgmlType.Q4_K;
      else if (type === 'q3_k_l') t = GgmlType.Q5_K;
      else if ((type === 'q4_k_m' || type === 'q5_k_m') && useMoreBits(iAttnV, nAttnV)) t = GgmlType.Q6_K;
      else if (type === 'q4_k_s' && iAttnV < 4) t = GgmlType.Q5_K;
      if (nExpert === 8) t = GgmlType.Q8_0;
      iAttnV++;
    } else if (/\.attn_k\.weight$/.test(name)) {
      if (nExpert === 8) t = GgmlType.Q8_0;
    } else if (name.includes('ffn_down')) {
      const layer = layerOf(name);
      if (type === 'q2_k') t = GgmlType.Q3_K;
      else if (type === 'q3_k_m') t = layer < idiv(nLayers, 16) ? GgmlType.Q5_K : GgmlType.Q4_K;
      else if (type === 'q3_k_l') t = GgmlType.Q5_K;
      else if ((type === 'q4_k_m' || type === 'q5_k_m') && useMoreBits(layer, nLayers)) t = GgmlType.Q6_K;
      else if (type === 'q4_k_s' && layer < idiv(nLayers, 8)) t = GgmlType.Q5_K;
    } else if (/\.attn_output\.weight$/.test(name)) {
      if (nExpert === 8) {
        if (type === 'q2_k' || type === 'q3_k_s' || type === 'q3_k_m' || type === 'q4_k_s' || type === 'q4_k_m') t = GgmlType.Q5_K;
      } else if (type === 'q2_k') t = GgmlType.Q3_K;
      else if (type === 'q3_k_m') t = GgmlType.Q4_K;
      else if (type === 'q3_k_l') t = GgmlType.Q5_K;
    }
    return fallback(t, dims[0]);
  });
}

function layerOf(name: string): number {
  const m = /^blk\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : 0;
}

/** llama.cpp's tensor_type_fallback for rows that are not whole blocks (undefined: keep the tensor). */
function fallback(t: GgmlType, rowLength: number): GgmlType | undefined {
  if (fits(t, rowLength)) return t;
  const next =
    t === GgmlType.Q2_K || t === GgmlType.Q3_K ? GgmlType.IQ4_NL
    : t === GgmlType.Q4_K ? GgmlType.Q5_0
    : t === GgmlType.Q5_K ? GgmlType.Q5_1
    : t === GgmlType.Q6_K ? GgmlType.Q8_0
    : undefined;
  if (next === undefined) return undefined;
  return fits(next, rowLength) ? next : GgmlType.F16;
}

export interface QuantizeReport {
  tensors: number;
  /** Tensors written in another type than they came in. */
  converted: number;
  /** How many tensors of each type the output holds, by type name. */
  types: Record<string, number>;
  bytesIn: number;
  bytesOut: number;
}

export interface QuantizeOptions extends HfSourceOptions {
  /** Called after each tensor is written. */
  onTensor?: (done: number, total: number, name: string) => void;
  /** Worker threads for the block formats (default: every core). */
  threads?: number;
  /**
   * 'search' (default): the scale searches; 'plain': the min/max fits, which for q4_0 … q5_1
   * are llama.cpp's own (byte for byte), for comparisons.
   */
  fit?: 'search' | 'plain';
  /** Values per piece when large tensors are converted piecewise (default 64 Mi; tests set it small). */
  pieceValues?: number;
}

/** A GGUF as a ModelSource: its metadata and tensors, each read when asked. */
async function ggufSource(input: string): Promise<ModelSource> {
  const f = await readGguf(input);
  const fh = await open(input, 'r');
  return {
    metadata: ggufMetadataSpec(f),
    alignment: f.alignment,
    tensors: f.tensors.map((t) => ({
      name: t.name,
      dims: t.dims,
      type: t.type,
      nbytes: t.nbytes,
      async raw() {
        const bytes = new Uint8Array(t.nbytes);
        await fh.read(bytes, 0, t.nbytes, t.offset);
        return bytes;
      },
      async f32() {
        return toF32(t.type, await this.raw(), t.nelements, `${input}: tensor '${t.name}'`);
      },
      async rowsF32(start: number, count: number) {
        // rows are whole blocks of any type, so a row range is a byte range
        const rowBytes = t.nbytes / (t.nelements / t.dims[0]);
        const bytes = new Uint8Array(count * rowBytes);
        await fh.read(bytes, 0, bytes.length, t.offset + start * rowBytes);
        return toF32(t.type, bytes, count * t.dims[0], `${input}: tensor '${t.name}'`);
      },
    })),
    close: () => fh.close(),
  };
}

/** Opens a GGUF file or a Hugging Face model folder (config.json and safetensors) as a source. */
export async function openModelSource(input: string, o: HfSourceOptions = {}): Promise<ModelSource> {
  let isDir: boolean;
  try {
    isDir = (await stat(input)).isDirectory();
  } catch (e) {
    throw new FuselmError('E_IO', `${input}: ${(e as Error).message}`);
  }
  return isDir ? hfSource(input, o) : ggufSource(input);
}

/** Whether two paths name one existing file (false when either is missing). */
export async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = await Promise.all([stat(a), stat(b)]);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** Writes `output` from `input` (a GGUF or an HF folder) as llama.cpp's file type `type`. */
export async function quantizeModel(input: string, output: string, type: QuantizeType, o: QuantizeOptions = {}): Promise<QuantizeReport> {
  if (!isQuantizeType(type)) throw new FuselmError('E_INVALID_ARG', `quantize type must be one of ${QUANTIZE_TYPES.join(', ')}, got '${type}'`);
  // tensors are read from the input while the output is written: one file would be truncated under the reader
  if (await sameFile(input, output)) throw new FuselmError('E_INVALID_ARG', `quantize: the output ${output} is the input file; write to another path`);
  const src = await openModelSource(input, o);
  try {
    const arch = src.metadata.find((m) => m.key === 'general.architecture')?.value;
    const num = (key: string) => {
      const v = src.metadata.find((m) => m.key === `${arch}.${key}`)?.value;
      return typeof v === 'number' ? v : undefined;
    };
    const heads = num('attention.head_count'), kvHeads = num('attention.head_count_kv') ?? heads;
    const plan = planTensorTypes(src.tensors, type, { expertCount: num('expert_count'), gqa: heads && kvHeads ? heads / kvHeads : undefined });
    const report: QuantizeReport = { tensors: src.tensors.length, converted: 0, types: {}, bytesIn: 0, bytesOut: 0 };
    let done = 0;
    const tensors = src.tensors.map((t, i) => {
      const outType = plan[i] ?? t.type;
      return {
        name: t.name,
        type: outType,
        dims: [...t.dims],
        data: async () => {
          let out: Uint8Array;
          if (outType === t.type) out = await t.raw();
          else {
            out = await convertTensor(t, outType, o);
            report.converted++;
          }
          report.bytesIn += t.nbytes;
          report.bytesOut += out.length;
          report.types[ggmlTypeName(outType)] = (report.types[ggmlTypeName(outType)] ?? 0) + 1;
          o.onTensor?.(++done, src.tensors.length, t.name);
          return out;
        },
      };
    });
    const metadata: GgufMetaEntry[] = src.metadata.filter((m) => m.key !== 'general.file_type' && m.key !== 'general.quantization_version');
    metadata.push({ key: 'general.file_type', ...gv.u32(FILE_TYPE[type]) });
    // llama.cpp writes the quantization version into every file it quantizes
    metadata.push({ key: 'general.quantization_version', ...gv.u32(2) });
    await writeGguf(output, { version: 3, alignment: src.alignment, metadata, tensors });
    return report;
  } finally {
    await src.close();
  }
}

/** quantizeModel with only a progress callback (the signature the tests and older callers use). */
export async function quantizeGguf(input: string, output: string, type: QuantizeType, onTensor?: (done: number, total: number) => void): Promise<QuantizeReport> {
  return quantizeModel(input, output, type, { onTensor });
}

/**
 * Values per piece when a large tensor is converted piecewise (64 Mi: 256 MiB of f32), so a
 * 128k-token embedding never sits in memory as f32 whole, only its converted bytes do.
 */
const PIECE_VALUES = 1 << 26;

/** A source tensor in `type`: whole, or rows at a time when it is large and the source can read rows. */
async function convertTensor(t: SourceTensor, type: GgmlType, o: QuantizeOptions): Promise<Uint8Array> {
  const cols = t.dims[0];
  const rows = t.dims.reduce((a, b) => a * b, 1) / cols;
  const piece = o.pieceValues ?? PIECE_VALUES;
  if (!t.rowsF32 || rows * cols <= piece) return encode(type, await t.f32(), cols, o);
  const perPiece = Math.max(1, Math.floor(piece / cols));
  const out = new Uint8Array(tensorByteSize(type, [...t.dims]));
  const rowBytes = out.length / rows;
  for (let r = 0; r < rows; r += perPiece) {
    const n = Math.min(perPiece, rows - r);
    out.set(await encode(type, await t.rowsF32(r, n), cols, o), r * rowBytes);
  }
  return out;
}

/** f32 values as `type`: F32, or natively F16 or a block format (rows of `rowLength`). */
async function encode(type: GgmlType, x: Float32Array, rowLength: number, o: QuantizeOptions): Promise<Uint8Array> {
  switch (type) {
    case GgmlType.F32:
      return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    default:
      return quantizeRows(type, x, rowLength, { threads: o.threads, fit: o.fit });
  }
}
