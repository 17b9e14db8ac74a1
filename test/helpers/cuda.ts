/**
 * Device 'cuda' in tests: a GPU when there is one, else the CUDA backend's SIMT emulator
 * (FUSELM_CUDA_EMULATE=1 for the duration of the call only).
 */
import { loadModel, type LoadModelOptions, type Model } from '../../lib/index.js';

export async function withCudaEmulation<T>(fn: () => Promise<T>): Promise<T> {
  const before = process.env.FUSELM_CUDA_EMULATE;
  process.env.FUSELM_CUDA_EMULATE = '1';
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.FUSELM_CUDA_EMULATE;
    else process.env.FUSELM_CUDA_EMULATE = before;
  }
}

/** loadModel on device 'cuda' (see above). */
export function loadOnCuda(path: string, opts: LoadModelOptions = {}): Promise<Model> {
  return withCudaEmulation(() => loadModel(path, { ...opts, device: 'cuda' }));
}
