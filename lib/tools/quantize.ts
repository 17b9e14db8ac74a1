/**
 * `fuselm quantize`: rewrites a GGUF with its weight matrices in q8_0 or f16 (from F32, F16, BF16,
 * Q8_0 or the Q4/Q5/Q6 block formats), keeping every
 * metadata entry (tokenizer included) and the 1-D tensors (norms) as they are, so llama.cpp
 * loads the result. Tensors are read and converted one at a time, never the whole model.
 */
import { open } from 'node:fs/promises';
import { FuselmError } from '../errors.js';
import { GgmlType, f32ToF16Bits, quantizeQ8_0 } from '../formats/ggml-types.js';
import { toF32 } from '../formats/quants.js';
import { type GgufTensorInfo, ggufMetadataSpec, gv, readGguf, writeGguf } from '../formats/gguf.js';

export type QuantizeType = 'q8_0' | 'f16';

/** llama.cpp's general.file_type values (LLAMA_FTYPE_MOSTLY_*). */
const FILE_TYPE: Record<QuantizeType, number> = { f16: 1, q8_0: 7 };

export interface QuantizeReport {
  tensors: number;
  converted: number;
  bytesIn: number;
  bytesOut: number;
}

/** Writes `output` from `input` with weight matrices in `type`; onTensor reports progress. */
export async function quantizeGguf(input: string, output: string, type: QuantizeType, onTensor?: (done: number, total: number) => void): Promise<QuantizeReport> {
  if (type !== 'q8_0' && type !== 'f16') throw new FuselmError('E_INVALID_ARG', `quantize type must be q8_0 or f16, got '${type}'`);
  const f = await readGguf(input);
  const target = type === 'q8_0' ? GgmlType.Q8_0 : GgmlType.F16;
  // Matrices convert; vectors (norms, biases) stay; a q8_0 row needs whole blocks of 32.
  const converts = (t: GgufTensorInfo) => t.dims.length >= 2 && t.name.endsWith('.weight') && (target !== GgmlType.Q8_0 || t.dims[0] % 32 === 0);
  const fh = await open(input, 'r');
  const report: QuantizeReport = { tensors: f.tensors.length, converted: 0, bytesIn: 0, bytesOut: 0 };
  let done = 0;
  try {
    const tensors = f.tensors.map((t) => {
      const convert = converts(t) && t.type !== target;
      const outType = converts(t) ? target : t.type;
      return {
        name: t.name,
        type: outType,
        dims: t.dims,
        data: async () => {
          const bytes = new Uint8Array(t.nbytes);
          await fh.read(bytes, 0, t.nbytes, t.offset);
          report.bytesIn += t.nbytes;
          let out: Uint8Array = bytes;
          if (convert) {
            const x = toF32(t.type, bytes, t.nelements, `${input}: tensor '${t.name}'`);
            out = target === GgmlType.Q8_0 ? quantizeQ8_0(x) : new Uint8Array(Uint16Array.from(x, f32ToF16Bits).buffer);
            report.converted++;
          }
          report.bytesOut += out.length;
          onTensor?.(++done, f.tensors.length);
          return out;
        },
      };
    });
    const metadata = ggufMetadataSpec(f).filter((m) => m.key !== 'general.file_type' && m.key !== 'general.quantization_version');
    metadata.push({ key: 'general.file_type', ...gv.u32(FILE_TYPE[type]) });
    if (type === 'q8_0') metadata.push({ key: 'general.quantization_version', ...gv.u32(2) });
    await writeGguf(output, { version: 3, alignment: f.alignment, metadata, tensors });
  } finally {
    await fh.close();
  }
  return report;
}
