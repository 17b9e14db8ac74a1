/**
 * The tokenizer worker (a worker_threads worker; async.ts runs it): builds a copy of a tokenizer
 * from the file it came from, once, and encodes large texts with it off the JS thread.
 */
import { parentPort } from 'node:worker_threads';
import { fileStamp, type TokenizerSource } from './async.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

const built = new Map<string, Promise<Tokenizer>>();

async function tokenizerOf(source: TokenizerSource): Promise<Tokenizer> {
  const key = JSON.stringify(source);
  let t = built.get(key);
  if (!t) {
    t = (async () => {
      for (const [file, stamp] of source.stamps ?? [])
        if (fileStamp(file) !== stamp) throw new Error(`${file} changed since the tokenizer was loaded`);
      if (source.kind === 'json') {
        const { loadTokenizerJson } = await import('./load.js');
        return loadTokenizerJson(source.file, source.configFile);
      }
      if (source.kind === 'vocab-merges') return (await import('./load.js')).loadTokenizer(source.dir);
      const [{ readGguf }, { tokenizerFromGguf }] = await Promise.all([import('../formats/gguf.js'), import('./from-gguf.js')]);
      return tokenizerFromGguf(await readGguf(source.path));
    })();
    built.set(key, t);
  }
  return t;
}

parentPort!.on('message', async (m: { id: number; source: TokenizerSource; text: string; opts: EncodeOptions }) => {
  try {
    const ids = Int32Array.from((await tokenizerOf(m.source)).encode(m.text, m.opts));
    parentPort!.postMessage({ id: m.id, ids }, [ids.buffer]);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    parentPort!.postMessage({ id: m.id, error: { code: err?.code, message: String(err?.message ?? e) } });
  }
});
