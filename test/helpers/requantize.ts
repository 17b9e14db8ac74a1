/**
 * The twin of a quantized GGUF made by another block quantizer: every tensor keeps the file's
 * type (so the same llama.cpp mixture), and each block-format tensor is quantized again from
 * the f32 source by `quantize` (e.g. llama.cpp's own, test/helpers/ggml-quantize.ts). Comparing
 * the two files compares the quantizers alone.
 */
import { readFileSync } from 'node:fs';
import { FuselmError } from '../../lib/errors.js';
import { GgmlType, ggmlTypeSize } from '../../lib/formats/ggml-types.js';
import { ggufMetadataSpec, readGguf, writeGguf } from '../../lib/formats/gguf.js';
import type { GgmlQuantize } from './ggml-quantize.js';

export async function requantizeLike(quantized: string, f32: string, out: string, quantize: GgmlQuantize): Promise<void> {
  const q = await readGguf(quantized), src = await readGguf(f32);
  const qRaw = readFileSync(quantized), srcRaw = readFileSync(f32);
  const tensors = q.tensors.map((t) => {
    const s = src.tensorByName.get(t.name)!;
    if (s?.type !== GgmlType.F32) throw new FuselmError('E_INVALID_ARG', `${f32}: tensor '${t.name}' is missing or not F32`);
    const block = (ggmlTypeSize(t.type)?.blockSize ?? 1) > 1;
    const data = block
      ? quantize(t.type, new Float32Array(srcRaw.buffer.slice(srcRaw.byteOffset + s.offset, srcRaw.byteOffset + s.offset + s.nbytes)), t.dims[0])
      : new Uint8Array(qRaw.subarray(t.offset, t.offset + t.nbytes));
    return { name: t.name, type: t.type, dims: t.dims, data };
  });
  await writeGguf(out, { version: 3, alignment: q.alignment, metadata: ggufMetadataSpec(q), tensors });
}
