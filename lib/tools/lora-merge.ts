/**
 * `fuselm lora merge BASE ADAPTER OUT.gguf`: the adapter folded into the base's weights,
 * W' = W + scale · alpha / r · B·A (PEFT's merge_and_unload, llama.cpp's export-lora), written as
 * a GGUF llama.cpp loads. The base is a GGUF or a Hugging Face folder (read as `fuselm convert`
 * reads it); the adapter a PEFT folder or a GGUF adapter (lib/model/lora.ts). The merged
 * projections are written in `type` (default: each base tensor's own type, re-encoded), every
 * other tensor and the metadata as they are.
 */
import { FuselmError, shown } from '../errors.js';
import { GgmlType, ggmlTypeName } from '../formats/ggml-types.js';
import { writeGguf } from '../formats/gguf.js';
import { BLOCK_FORMATS, canQuantize, quantizeRows } from '../formats/quantize-blocks.js';
import { isDirectory } from '../formats/hf.js';
import { adapterPairs, type FoundPair, LORA_GGUF_NAMES, qkOrderDiffers, readPair } from '../model/lora.js';
import { qkRowOrder } from '../model/lora-values.js';
import { openModelSource, sameFile } from './quantize.js';

export interface MergeOptions {
  /** The adapter's weight (default 1). */
  scale?: number;
  /** The merged projections' type: f32, f16, q8_0 or another block format (default: as the base stores each). */
  type?: string;
  /** Called after each merged tensor. */
  onTensor?: (done: number, total: number, name: string) => void;
}

export interface MergeReport {
  tensors: number;
  merged: number;
}

/** The GgmlType a --type name names (f32, or a type the native encoder writes). */
export function mergeType(name: string): GgmlType {
  if (name.toLowerCase() === 'f32') return GgmlType.F32;
  const hit = Object.entries(BLOCK_FORMATS).find(([, n]) => n === name.toLowerCase());
  if (!hit) throw new FuselmError('E_INVALID_ARG', `lora merge: type must be f32 or one of ${Object.values(BLOCK_FORMATS).join(', ')}, got ${shown(name)}`);
  return Number(hit[0]) as GgmlType;
}

export async function mergeLora(base: string, adapter: string, output: string, o: MergeOptions = {}): Promise<MergeReport> {
  const scale = o.scale ?? 1;
  if (!(typeof scale === 'number' && Number.isFinite(scale))) throw new FuselmError('E_INVALID_ARG', `lora merge: scale must be a finite number, got ${shown(scale)}`);
  const forced = o.type === undefined ? undefined : mergeType(o.type);
  for (const p of [base, adapter])
    if (await sameFile(p, output)) throw new FuselmError('E_INVALID_ARG', `lora merge: the output ${output} is an input; write to another path`);
  const src = await openModelSource(base);
  try {
    const arch = src.metadata.find((m) => m.key === 'general.architecture')?.value;
    if (typeof arch !== 'string') throw new FuselmError('E_FORMAT', `${base}: no general.architecture`);
    const pairs = await adapterPairs(adapter, arch);
    // the output is a GGUF: its llama q/k rows in llama.cpp's order (a PEFT adapter's are not)
    const reorder = qkOrderDiffers(arch, true, (await isDirectory(adapter)) ? 'peft' : 'gguf');
    const meta = (k: string) => src.metadata.find((m) => m.key === `${arch}.${k}`)?.value;
    const heads = Number(meta('attention.head_count')), kvHeads = Number(meta('attention.head_count_kv') ?? heads);
    if (pairs.size === 0) throw new FuselmError('E_FORMAT', `${adapter}: the adapter holds no LoRA tensors`);
    const byName = new Map<string, FoundPair>();
    for (const f of pairs.values()) {
      const name = `blk.${f.layer}.${LORA_GGUF_NAMES[f.module]}.weight`;
      const t = src.tensors.find((x) => x.name === name);
      const what = `${(f.a ?? f.b)!.file}: tensor '${(f.a ?? f.b)!.name}'`;
      if (!t) throw new FuselmError('E_INVALID_ARG', `${what}: the base has no tensor ${name} to merge it into`);
      const [K, N] = t.dims;
      if (!f.a || !f.b || f.a.shape[1] !== K || f.b.shape[0] !== N)
        throw new FuselmError('E_FORMAT', `${what}: A [${f.a?.shape.join(', ')}] and B [${f.b?.shape.join(', ')}] do not fit ${name} [${N}, ${K}]`);
      byName.set(name, f);
    }
    let done = 0;
    const tensors = src.tensors.map((t) => {
      const f = byName.get(t.name);
      if (!f) return { name: t.name, type: t.type, dims: [...t.dims], data: () => t.raw() };
      const type = forced ?? t.type;
      if (type !== GgmlType.F32 && !canQuantize(type))
        throw new FuselmError('E_UNSUPPORTED', `${base}: tensor '${t.name}' is ${ggmlTypeName(t.type)}, which fuselm cannot write; pass --type`);
      return {
        name: t.name,
        type,
        dims: [...t.dims],
        data: async () => {
          const w = await t.f32();
          const { a, b: stored, r, K, N, factor } = await readPair(f);
          const qkHeads = f.module === 'wq' ? heads : f.module === 'wk' ? kvHeads : 0;
          const b = reorder && qkHeads ? qkRowOrder(stored, N, r, qkHeads, 'gguf') : stored;
          const s = scale * factor;
          for (let n = 0; n < N; n++) {
            const row = w.subarray(n * K, (n + 1) * K);
            for (let k = 0; k < r; k++) {
              const c = b[n * r + k] * s;
              if (c === 0) continue;
              const ak = a.subarray(k * K, (k + 1) * K);
              for (let i = 0; i < K; i++) row[i] += c * ak[i];
            }
          }
          o.onTensor?.(++done, byName.size, t.name);
          return type === GgmlType.F32 ? new Uint8Array(w.buffer, w.byteOffset, w.byteLength) : quantizeRows(type, w, K);
        },
      };
    });
    await writeGguf(output, { version: 3, alignment: src.alignment, metadata: src.metadata, tensors });
    return { tensors: tensors.length, merged: byName.size };
  } finally {
    await src.close();
  }
}
