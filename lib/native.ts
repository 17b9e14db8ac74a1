/**
 * Loads the native addon once (node-gyp-build finds prebuilds/ or build/Release/) and turns
 * its errors into FuselmErrors. FUSELM_ADDON=/path/to/fuselm.node overrides the search, which
 * is how side-by-side builds (CPU-only, CUDA) are tested.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { NativeAddon } from '../bindings.js';
import { FuselmError, type FuselmErrorCode } from './errors.js';

const require = createRequire(import.meta.url);
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let addon: NativeAddon | undefined;
let loadError: FuselmError | undefined;

/** The native addon; throws a FuselmError (E_NATIVE) saying why when it cannot be loaded. */
export function native(): NativeAddon {
  if (addon) return addon;
  if (loadError) throw loadError;
  try {
    const override = process.env.FUSELM_ADDON;
    addon = (override ? require(path.resolve(override)) : require('node-gyp-build')(packageRoot)) as NativeAddon;
    return addon;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    loadError = new FuselmError(
      'E_NATIVE',
      `the fuselm native addon could not be loaded: ${why}. ` +
        'Build it with `npm run build:native` (needs cmake and a C++ compiler), or reinstall fuselm.',
      { cause: e },
    );
    throw loadError;
  }
}

const codes = new Set<FuselmErrorCode>([
  'E_FORMAT', 'E_UNSUPPORTED', 'E_INVALID_ARG', 'E_IO', 'E_NATIVE', 'E_DISPOSED', 'E_CONTEXT_FULL', 'E_ABORTED', 'E_OUT_OF_MEMORY',
  'NO_CUDA_DEVICE',
]);

/** Maps an error thrown by the addon (an Error with `code`) to a FuselmError. */
export function fromNative(e: unknown): FuselmError {
  if (e instanceof FuselmError) return e;
  const err = e as { code?: string; message?: string };
  const code = err?.code && codes.has(err.code as FuselmErrorCode) ? (err.code as FuselmErrorCode) : 'E_NATIVE';
  return new FuselmError(code, err?.message ?? String(e), { cause: e });
}

/** Calls fn and rethrows any native error as a FuselmError. */
export function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e);
  }
}

/** Awaits a native promise and rethrows its rejection as a FuselmError. */
export async function callAsync<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (e) {
    throw fromNative(e);
  }
}
