/**
 * Opening files that may be hostile: only regular files are read (a FIFO, a socket or a device at
 * a model's path would block open() or read forever), and a file that is not valid JSON is
 * reported by position, never by quoting it (a config.json symlinked to /etc/passwd must not
 * echo its first bytes into an error message that may be logged or sent to a client).
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { FuselmError } from '../errors.js';

/** Text files (JSON, templates) larger than this are refused before they are read. */
export const MAX_TEXT_FILE_BYTES = 512 * 1024 * 1024;

/** True when `o` has `key` as an own property (never one of Object.prototype's: "constructor", "__proto__"). */
export function hasOwn(o: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}

/**
 * Opens `p` for reading without blocking (O_NONBLOCK: opening a FIFO with no writer returns at
 * once), then checks with fstat that it is a regular file; anything else is E_IO naming the path
 * and what it is. `what` names the file's role in messages.
 */
export async function openRegularFile(p: string, what = 'file'): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(p, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw new FuselmError('E_IO', `${p}: cannot open the ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      const kind = st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';
      throw new FuselmError('E_IO', `${p}: the ${what} is ${kind}, not a regular file`);
    }
    return { fh, size: st.size };
  } catch (e) {
    await fh.close().catch(() => {});
    throw e instanceof FuselmError ? e : new FuselmError('E_IO', `${p}: cannot stat the ${what}: ${(e as Error).message}`, { cause: e });
  }
}

/** The text of a regular file (UTF-8), at most MAX_TEXT_FILE_BYTES. */
export async function readRegularText(p: string, what = 'file', maxBytes = MAX_TEXT_FILE_BYTES): Promise<string> {
  const { fh, size } = await openRegularFile(p, what);
  try {
    if (size > maxBytes) throw new FuselmError('E_FORMAT', `${p}: the ${what} is ${size} bytes, more than the ${maxBytes} a ${what} may have`);
    return await fh.readFile('utf8');
  } catch (e) {
    throw e instanceof FuselmError ? e : new FuselmError('E_IO', `${p}: cannot read the ${what}: ${(e as Error).message}`, { cause: e });
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * JSON.parse with an E_FORMAT naming the file and the position of the error. V8's own message
 * quotes the text around the error, so it is not passed on (neither as message nor as cause).
 */
export function parseJsonText(text: string, p: string, what = 'file'): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const pos = /at position (\d+)/.exec((e as Error).message)?.[1];
    const where = pos !== undefined ? ` (at position ${pos})` : /end of JSON input/.test((e as Error).message) ? ' (it ends early)' : '';
    throw new FuselmError('E_FORMAT', `${p}: the ${what} is not valid JSON${where}`);
  }
}

/** A JSON file's parsed value. */
export async function readJsonFile(p: string, what = 'file'): Promise<unknown> {
  return parseJsonText(await readRegularText(p, what), p, what);
}
