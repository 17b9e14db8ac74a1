/**
 * pullModel(ref): fetches what a model reference names into the cache (lib/hub/cache.ts) and
 * resolveModelPath(ref): the local path of a reference, from the cache when it is there (so a
 * pulled model loads with no network), pulled first when not.
 *
 * Hugging Face files come from `${HF_ENDPOINT:-https://huggingface.co}/<owner>/<repo>/resolve/<revision>/<file>`
 * (with `HF_TOKEN` as a bearer token); a whole repository's file list from the hub's API,
 * `/api/models/<owner>/<repo>/revision/<revision>` (its `siblings[].rfilename`).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FuselmError, shown } from '../errors.js';
import { FOLDER_MANIFEST, cachedModelPath, repoFolder, urlFileName, urlFolder } from './cache.js';
import { type DownloadOptions, downloadFile, fetchJson } from './download.js';
import { type ModelRef, checkRepoPath, formatModelRef, parseModelRef, splitGgufParts } from './ref.js';

export interface PullProgress {
  /** The file being fetched (its repository path, or the URL's file name). */
  file: string;
  /** Its bytes so far (a resumed download counts what it had) and its size when the server says. */
  bytes: number;
  totalBytes: number | undefined;
  /** Which file of how many this pull fetches (1-based). */
  fileIndex: number;
  fileCount: number;
}

export interface PullOptions {
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
  /** Retries of a transient failure per file (default 5) and the first backoff in ms (default 500, doubling). */
  retries?: number;
  retryDelayMs?: number;
}

export interface PullResult {
  /** The reference, as written back by `fuselm ls`. */
  ref: string;
  /** What the loaders open: the file (a split GGUF's first part) or the folder. */
  path: string;
  /** The files fetched now (already cached ones are not fetched again). */
  downloaded: string[];
}

/** Files of a model folder the loaders read, besides the weights. */
const FOLDER_FILES = new Set([
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'chat_template.jinja',
  'vocab.json',
  'merges.txt',
  'vocab.txt',
]);
const SAFETENSORS_INDEX = 'model.safetensors.index.json';

function endpoint(): URL {
  const e = process.env.HF_ENDPOINT || 'https://huggingface.co';
  try {
    return new URL(e.replace(/\/+$/, '') + '/');
  } catch {
    throw new FuselmError('E_INVALID_ARG', `HF_ENDPOINT is not a URL: ${shown(e)}`);
  }
}

function hubOptions(ref: ModelRef, o: PullOptions): Omit<DownloadOptions, 'onBytes'> {
  const token = process.env.HF_TOKEN || undefined;
  return { signal: o.signal, retries: o.retries, retryDelayMs: o.retryDelayMs, token, tokenOrigin: endpoint().origin, label: formatModelRef(ref) };
}

function resolveUrl(repo: string, revision: string, file: string): URL {
  return new URL(`${repo}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`, endpoint());
}

/** The repository's top-level files, from the hub's revision API. */
async function listRepo(ref: ModelRef & { kind: 'hf-repo' }, o: PullOptions): Promise<string[]> {
  const info = await fetchJson(new URL(`api/models/${ref.repo}/revision/${encodeURIComponent(ref.revision)}`, endpoint()), hubOptions(ref, o));
  const siblings = (info as { siblings?: unknown } | null)?.siblings;
  if (!Array.isArray(siblings)) throw new FuselmError('E_NETWORK', `${formatModelRef(ref)}: the hub's answer has no siblings list`);
  return siblings.map((s) => (s as { rfilename?: unknown })?.rfilename).filter((f): f is string => typeof f === 'string');
}

/** The files a model folder needs: config, tokenizer and generation files, and the safetensors weights (from the index when there is one). */
async function folderFiles(ref: ModelRef & { kind: 'hf-repo' }, dir: string, fetchOne: (file: string) => Promise<void>, o: PullOptions): Promise<string[]> {
  const label = formatModelRef(ref);
  const all = await listRepo(ref, o);
  if (!all.includes('config.json')) {
    const ggufs = all.filter((f) => f.endsWith('.gguf'));
    throw new FuselmError(
      'E_INVALID_ARG',
      `${label}: the repository has no config.json, so it is no model folder` +
        (ggufs.length ? `; name one of its GGUF files, e.g. hf:${ref.repo}/${ggufs[0]}${ref.revision === 'main' ? '' : `@${ref.revision}`} (${ggufs.length} in all)` : ''),
    );
  }
  const top = all.filter((f) => !f.includes('/'));
  let weights: string[];
  if (top.includes(SAFETENSORS_INDEX)) {
    await fetchOne(SAFETENSORS_INDEX);
    let index: unknown;
    try {
      index = JSON.parse(await readFile(path.join(dir, SAFETENSORS_INDEX), 'utf8'));
    } catch {
      throw new FuselmError('E_FORMAT', `${label}: ${SAFETENSORS_INDEX} is not valid JSON`);
    }
    const map = (index as { weight_map?: unknown } | null)?.weight_map;
    if (typeof map !== 'object' || map === null) throw new FuselmError('E_FORMAT', `${label}: ${SAFETENSORS_INDEX} has no weight_map`);
    weights = [SAFETENSORS_INDEX, ...new Set(Object.values(map).map((f) => checkRepoPath(String(f), label)))];
  } else if (top.includes('model.safetensors')) weights = ['model.safetensors'];
  else weights = top.filter((f) => f.endsWith('.safetensors'));
  if (weights.length === 0) throw new FuselmError('E_UNSUPPORTED', `${label}: the repository has no safetensors weights (fuselm reads safetensors folders and GGUF files)`);
  // names from the hub become cache paths: each is checked as a reference's file path is
  return [...top.filter((f) => FOLDER_FILES.has(f)), ...weights].map((f) => checkRepoPath(f, label));
}

/**
 * Fetches a model reference into the cache (files already there are kept, not fetched again)
 * and returns where it is. `hf:owner/repo/file.gguf` fetches that file, all parts of a split
 * GGUF; `hf:owner/repo` the files of a model folder; a URL its file.
 */
export async function pullModel(refText: string, o: PullOptions = {}): Promise<PullResult> {
  if (typeof o !== 'object' || o === null) throw new FuselmError('E_INVALID_ARG', 'pullModel options must be an object');
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new FuselmError('E_INVALID_ARG', 'onProgress must be a function');
  for (const k of ['retries', 'retryDelayMs'] as const)
    if (o[k] !== undefined && !(Number.isInteger(o[k]) && o[k]! >= 0 && o[k]! <= 1e6)) throw new FuselmError('E_INVALID_ARG', `${k} must be an integer in 0..1000000`);
  const ref = parseModelRef(refText);
  const label = formatModelRef(ref);
  const downloaded: string[] = [];
  let index = 0;
  let count = 1;
  const fetchTo = async (url: URL, target: string, name: string) => {
    index++;
    const r = await downloadFile(url, target, {
      ...hubOptions(ref, o),
      onBytes: (bytes, totalBytes) => o.onProgress?.({ file: name, bytes, totalBytes, fileIndex: index, fileCount: count }),
    });
    if (r) downloaded.push(name);
  };
  switch (ref.kind) {
    case 'path':
      throw new FuselmError('E_INVALID_ARG', `${shown(refText)} is a path; pull takes hf:owner/repo[/file][@revision] or an https URL`);
    case 'url': {
      const dir = urlFolder(ref.url);
      const name = urlFileName(ref.url);
      await mkdir(dir, { recursive: true });
      if (!existsSync(path.join(dir, '.source'))) await writeFile(path.join(dir, '.source'), ref.url.href + '\n');
      await fetchTo(ref.url, path.join(dir, name), name);
      return { ref: label, path: path.join(dir, name), downloaded };
    }
    case 'hf-file': {
      const dir = repoFolder(ref.repo, ref.revision);
      const parts = splitGgufParts(ref.file);
      count = parts.length;
      for (const p of parts) await fetchTo(resolveUrl(ref.repo, ref.revision, p), path.join(dir, p), p);
      return { ref: label, path: path.join(dir, ref.file), downloaded };
    }
    case 'hf-repo': {
      const dir = repoFolder(ref.repo, ref.revision);
      const fetchOne = (f: string) => fetchTo(resolveUrl(ref.repo, ref.revision, f), path.join(dir, f), f);
      const files = await folderFiles(ref, dir, fetchOne, o);
      count = files.length;
      index = 0;
      for (const f of files) await fetchOne(f);
      // written last (atomically), so its presence means the folder is whole
      const manifest = path.join(dir, FOLDER_MANIFEST);
      await writeFile(`${manifest}.tmp-${process.pid}`, JSON.stringify({ ref: label, files }, null, 1));
      await rename(`${manifest}.tmp-${process.pid}`, manifest);
      return { ref: label, path: dir, downloaded };
    }
  }
}

/**
 * The local path of a model reference: a path as it is; a cached reference's file or folder
 * (no network); otherwise pulled first (`onProgress` as pullModel's).
 */
export async function resolveModelPath(refText: string, o: PullOptions = {}): Promise<string> {
  const ref = parseModelRef(refText);
  return cachedModelPath(ref) ?? (await pullModel(refText, o)).path;
}
