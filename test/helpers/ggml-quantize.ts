/**
 * llama.cpp's own block quantizer (ggml_quantize_chunk from the peer's libggml-base.so, no
 * importance matrix: what `llama-quantize` does without --imatrix), for tests that hold
 * fuselm's quantizers to it (and the perplexity bench). test/helpers/ggml-quantize.c is compiled
 * once per call of ggmlQuantize with the system C compiler; requireGgmlQuantize skips the suite,
 * saying why, without the peer or a compiler.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LLAMA_CPP_PEER } from '../../scripts/llama-cpp-peer.js';

export type GgmlQuantize = (type: number, x: Float32Array, cols: number) => Uint8Array;

function findLibGgmlBase(): string | undefined {
  const scope = path.join(LLAMA_CPP_PEER.dir, 'node_modules', '@node-llama-cpp');
  if (!existsSync(scope)) return undefined;
  for (const pkg of readdirSync(scope)) {
    const bins = path.join(scope, pkg, 'bins');
    if (!existsSync(bins)) continue;
    for (const b of readdirSync(bins)) {
      const lib = path.join(bins, b, 'libggml-base.so');
      if (existsSync(lib)) return lib;
    }
  }
  return undefined;
}

/** llama.cpp's quantizer as a function, or why there is none. */
export function ggmlQuantize(): GgmlQuantize | { reason: string } {
  const lib = findLibGgmlBase();
  if (!lib) return { reason: `no libggml-base.so under ${LLAMA_CPP_PEER.dir} (npm run peer:llama-cpp installs the llama.cpp peer)` };
  const exe = path.join(mkdtempSync(path.join(os.tmpdir(), 'fuselm-ggq-')), 'ggml-quantize');
  const src = fileURLToPath(new URL('./ggml-quantize.c', import.meta.url));
  try {
    execFileSync('cc', ['-O2', '-o', exe, src, '-ldl'], { stdio: 'pipe' });
  } catch (e) {
    return { reason: `cannot compile ${src}: ${(e as Error).message.split('\n')[0]}` };
  }
  return (type, x, cols) =>
    new Uint8Array(execFileSync(exe, [lib, String(type), String(x.length / cols), String(cols)], { input: Buffer.from(x.buffer, x.byteOffset, x.byteLength), maxBuffer: 1 << 30 }));
}

/** llama.cpp's quantizer as a function, or the calling suite skipped with the reason printed. */
export function requireGgmlQuantize(ctx: Mocha.Context): GgmlQuantize {
  const q = ggmlQuantize();
  if (typeof q === 'function') return q;
  console.log(`      skipped: ${q.reason}`);
  ctx.skip();
  throw new Error('unreachable');
}
