/**
 * Rewrites a mixture-of-experts GGUF with each layer's stacked experts (blk.N.ffn_{gate,up,down}_exps,
 * dims [cols, rows, experts]) as one tensor per expert (blk.N.ffn_{gate,up,down}.E.weight, dims
 * [cols, rows]), the layout of older llama.cpp conversions of Mixtral; expert E's bytes are the
 * stack's E-th slice, so both files hold the same model.
 */
import { readFileSync } from 'node:fs';
import type { GgmlType } from '../../lib/formats/ggml-types.js';
import { ggufMetadataSpec, readGguf, writeGguf } from '../../lib/formats/gguf.js';

export interface GgufTensorSpec {
  name: string;
  type: GgmlType;
  dims: number[];
  data: Uint8Array;
}

/** Writes `out`; `change` may alter the tensor list (bad files) before it is written. */
export async function writeSplitExperts(src: string, out: string, change?: (tensors: GgufTensorSpec[]) => void): Promise<void> {
  const f = await readGguf(src);
  const bytes = readFileSync(src);
  const tensors: GgufTensorSpec[] = [];
  for (const t of f.tensors) {
    const data = bytes.subarray(t.offset, t.offset + t.nbytes);
    const m = /^(blk\.\d+\.ffn_(?:gate|up|down))_exps\.weight$/.exec(t.name);
    if (!m) {
      tensors.push({ name: t.name, type: t.type, dims: [...t.dims], data });
      continue;
    }
    const E = t.dims[2], each = t.nbytes / E;
    for (let e = 0; e < E; e++) tensors.push({ name: `${m[1]}.${e}.weight`, type: t.type, dims: [t.dims[0], t.dims[1]], data: data.subarray(e * each, (e + 1) * each) });
  }
  change?.(tensors);
  await writeGguf(out, { version: 3, metadata: ggufMetadataSpec(f), tensors });
}
