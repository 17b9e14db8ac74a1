/** Writing small safetensors files in tests. */

export type Entry = { dtype: string; shape: number[]; data: Uint8Array };

/** Encodes a safetensors file (header padded with spaces to 8 bytes, as the reference writer does). */
export function encodeSafetensors(entries: Record<string, Entry>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let off = 0;
  for (const [name, e] of Object.entries(entries)) {
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.data.length] };
    off += e.data.length;
  }
  let json = JSON.stringify(header);
  while ((json.length + 8) % 8) json += ' ';
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let p = 8 + hb.length;
  for (const e of Object.values(entries)) (out.set(e.data, p), (p += e.data.length));
  return out;
}

