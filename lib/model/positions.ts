/**
 * The original Transformer's sinusoidal positional encoding ("Attention Is All You Need",
 * section 3.5): PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)),
 * added to the token embeddings. Computed in double, stored as f32 [positions, d].
 */
export function sinusoidalPositions(positions: number, d: number, base = 10000): Float32Array {
  const out = new Float32Array(positions * d);
  for (let pos = 0; pos < positions; pos++)
    for (let i = 0; 2 * i < d; i++) {
      const angle = pos / Math.pow(base, (2 * i) / d);
      out[pos * d + 2 * i] = Math.sin(angle);
      if (2 * i + 1 < d) out[pos * d + 2 * i + 1] = Math.cos(angle);
    }
  return out;
}
