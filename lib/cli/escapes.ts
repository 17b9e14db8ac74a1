/**
 * Backslash escapes in command-line text, as llama.cpp reads them (`--stop '\n'` is a newline):
 * \n \r \t \\ \" \' , \xNN (a byte: consecutive ones are decoded together as UTF-8, so
 * '\xe2\x80\x9c' is “) and \uNNNN (a UTF-16 code unit). Any other backslash is kept as written.
 */
import { InvalidArgumentError } from 'commander';

const SIMPLE: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', '"': '"', "'": "'" };

export function processEscapes(text: string, flag: string): string {
  let out = '';
  let bytes: number[] = [];
  const flushBytes = () => {
    if (!bytes.length) return;
    try {
      out += new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
    } catch {
      throw new InvalidArgumentError(`${flag}: the \\x escapes ${bytes.map((b) => '\\x' + b.toString(16).padStart(2, '0')).join('')} are not UTF-8`);
    }
    bytes = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '\\' && next === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
      bytes.push(parseInt(text.slice(i + 2, i + 4), 16));
      i += 3;
      continue;
    }
    flushBytes();
    if (c === '\\' && next !== undefined && SIMPLE[next] !== undefined) {
      out += SIMPLE[next];
      i += 1;
    } else if (c === '\\' && next === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
      out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
      i += 5;
    } else out += c;
  }
  flushBytes();
  return out;
}
