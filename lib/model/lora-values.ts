/**
 * An adapter pair's values as the model holds them, from its file: A [r, K] decoded to f32, and
 * B [N, r] decoded, its q/k rows put in the base's order where they differ, scaled by the
 * pair's factor and transposed to Bᵀ [r, N]. Free of the addon, so the LoRA worker
 * (lora-worker.ts) runs it off the JS thread.
 */
import { open } from 'node:fs/promises';
import { FuselmError } from '../errors.js';
import type { GgmlType } from '../formats/ggml-types.js';
import { toF32 } from '../formats/quants.js';

/** One tensor of an adapter file: where its bytes are and how they are stored. */
export interface RawTensor {
  name: string;
  file: string;
  offset: number;
  nbytes: number;
  type: GgmlType;
  /** Row-major. */
  shape: number[];
}

/** What pairValues needs of a pair (plain data: it crosses to the worker). */
export interface PairJob {
  a: RawTensor;
  b: RawTensor;
  /** alpha / r (or as the format says), folded into Bᵀ. */
  factor: number;
  /** B's q/k rows into the base's order (qkRowOrder), where the adapter's differs. */
  reorder?: { heads: number; to: 'gguf' | 'hf' };
}

/** A pair's A [r, K] and scaled Bᵀ [r, N]. */
export async function pairValues(job: PairJob): Promise<{ a: Float32Array; bt: Float32Array }> {
  const [r] = job.a.shape, N = job.b.shape[0];
  const a = await readValues(job.a);
  const stored = await readValues(job.b);
  const b = job.reorder ? qkRowOrder(stored, N, r, job.reorder.heads, job.reorder.to) : stored;
  const bt = new Float32Array(r * N);
  for (let o = 0; o < N; o++) for (let k = 0; k < r; k++) bt[k * N + o] = b[o * r + k] * job.factor;
  return { a, bt };
}

export async function readValues(t: RawTensor): Promise<Float32Array> {
  const bytes = new Uint8Array(t.nbytes);
  const fh = await open(t.file, 'r').catch((e) => {
    throw new FuselmError('E_IO', `${t.file}: ${(e as Error).message}`);
  });
  try {
    const { bytesRead } = await fh.read(bytes, 0, t.nbytes, t.offset);
    if (bytesRead !== t.nbytes) throw new FuselmError('E_FORMAT', `${t.file}: tensor '${t.name}' at offset ${t.offset} runs past the end of the file`);
  } finally {
    await fh.close();
  }
  return toF32(t.type, bytes, t.shape.reduce((a, b) => a * b, 1), `${t.file}: tensor '${t.name}'`);
}

/**
 * B's rows of a q or k projection ([N, r], `heads` heads) from Hugging Face's rotate-half order
 * into the adjacent pairs llama.cpp's converter gives its llama GGUFs (each head's first and
 * second halves interleaved), or back (`to` 'hf'). A PEFT adapter on a llama GGUF base needs the
 * one, a GGUF adapter on a Hugging Face llama folder the other.
 */
export function qkRowOrder(b: Float32Array, N: number, r: number, heads: number, to: 'gguf' | 'hf'): Float32Array {
  const half = N / heads / 2, out = new Float32Array(b.length);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < half; j++)
      for (const s of [0, 1]) {
        const hf = h * 2 * half + s * half + j, gguf = h * 2 * half + 2 * j + s;
        const [from, into] = to === 'gguf' ? [hf, gguf] : [gguf, hf];
        out.set(b.subarray(from * r, (from + 1) * r), into * r);
      }
  return out;
}
