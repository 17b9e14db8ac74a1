/**
 * Splits a GGUF into parts as llama.cpp's gguf-split does (`<prefix>-0000i-of-0000N.gguf`, the
 * metadata in the first part, split.no / split.count / split.tensors.count in every one, the
 * tensors in file order, about as many in each part), for the split-model tests.
 */
import { readFileSync } from 'node:fs';
import { type GgufMetaEntry, GgufValueType, ggufMetadataSpec, readGguf, writeGguf } from '../../lib/formats/gguf.js';

/** Writes the parts of `whole` as `${prefix}-0000i-of-0000N.gguf`; returns their paths, first part first. */
export async function writeSplitGguf(whole: string, prefix: string, parts: number): Promise<string[]> {
  const f = await readGguf(whole);
  const bytes = readFileSync(whole);
  const pad = (n: number) => String(n).padStart(5, '0');
  const per = Math.ceil(f.tensors.length / parts);
  const paths: string[] = [];
  for (let no = 0; no < parts; no++) {
    const split: GgufMetaEntry[] = [
      { key: 'split.no', type: GgufValueType.UINT16, value: no },
      { key: 'split.count', type: GgufValueType.UINT16, value: parts },
      { key: 'split.tensors.count', type: GgufValueType.INT32, value: f.tensors.length },
    ];
    const p = `${prefix}-${pad(no + 1)}-of-${pad(parts)}.gguf`;
    await writeGguf(p, {
      metadata: no === 0 ? [...ggufMetadataSpec(f), ...split] : split,
      tensors: f.tensors.slice(no * per, (no + 1) * per).map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.nbytes) })),
    });
    paths.push(p);
  }
  return paths;
}
