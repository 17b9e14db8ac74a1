/**
 * Every error fuselm throws on purpose is a FuselmError with a stable `code`, so callers can
 * branch on `err.code` instead of parsing messages. Messages name the problem concretely:
 * file, offset, field, expected vs got.
 */
export type FuselmErrorCode =
  | 'E_FORMAT' // a model/tokenizer file is malformed (truncated, corrupted, hostile)
  | 'E_UNSUPPORTED' // well-formed but not supported (tensor type, architecture, vocab type)
  | 'E_INVALID_ARG' // an API argument is wrong (shape, dtype, option value)
  | 'E_IO' // the file system refused (missing file, permission)
  | 'E_NATIVE' // the native addon failed to load or reported an error
  | 'E_DISPOSED' // a model or tensor was used after dispose()
  | 'E_CONTEXT_FULL' // the KV cache has no room for more tokens
  | 'E_ABORTED' // an AbortSignal ended the operation
  | 'E_OUT_OF_MEMORY' // an allocation failed, or the memory plan does not fit the budget (maxMemory)
  | 'E_TEMPLATE' // a chat template ran past its time, step or output budget
  | 'E_NOT_FOUND' // a model reference names a repository, revision or file the hub does not have
  | 'E_AUTH' // the hub refused without (or with a wrong) HF_TOKEN: a gated or private repository
  | 'E_CHECKSUM' // a downloaded file's sha256 differs from the one the server reported (the file is removed)
  | 'E_NETWORK' // a download failed after its retries (no server, a connection cut past its retries, a 5xx status)
  | 'NO_CUDA_DEVICE'; // device 'cuda' was asked for but no CUDA device works (the message says why)

export class FuselmError extends Error {
  readonly code: FuselmErrorCode;
  constructor(code: FuselmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FuselmError';
    this.code = code;
  }
}

/** A malformed file: the message always carries the file, byte offset and field. */
export class FormatError extends FuselmError {
  readonly file: string;
  readonly offset: number;
  readonly field: string;
  constructor(file: string, offset: number, field: string, problem: string) {
    super('E_FORMAT', `${file}: at offset ${offset}, field ${field}: ${problem}`);
    this.name = 'FormatError';
    this.file = file;
    this.offset = offset;
    this.field = field;
  }
}

/**
 * A value from a file or a caller, for an error message: JSON, cut to `max` characters (a
 * hostile file's value can be megabytes long).
 */
export function shown(v: unknown, max = 80): string {
  let t: string;
  try {
    t = typeof v === 'string' ? JSON.stringify(v.length > max ? v.slice(0, max) : v) : (JSON.stringify(v) ?? String(v));
  } catch {
    t = typeof v;
  }
  return t.length > max ? `${t.slice(0, max)}…` : t;
}
