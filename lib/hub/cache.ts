/**
 * The model cache: `$FUSELM_CACHE`, else `$XDG_CACHE_HOME/fuselm`, else `~/.cache/fuselm`.
 *
 *   hf/<owner>/<repo>/<revision>/<file path>   a repository's files as the loaders read them
 *   url/<sha256 of the URL, 16 hex>/<file name> a file fetched from a URL (.source holds the URL)
 *
 * Beside each file, dot-files of the download (lib/hub/download.ts): `.<name>.part` (bytes so far),
 * `.<name>.part.json` (what they belong to), `.<name>.lock`; a folder pull that finished writes
 * `.fuselm-folder.json` (its file list) in the revision folder. Listings skip dot-files.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FuselmError } from '../errors.js';
import { type ModelRef, formatModelRef, parseModelRef, splitGgufParts } from './ref.js';

/** The marker a finished folder pull leaves in its revision folder. */
export const FOLDER_MANIFEST = '.fuselm-folder.json';

/** A small JSON file the cache itself wrote, or undefined when it is missing or not JSON. */
export async function readCacheJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch {
    return undefined;
  }
}

export function cacheDir(): string {
  if (process.env.FUSELM_CACHE) return path.resolve(process.env.FUSELM_CACHE);
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'fuselm');
}

/** A revision as one folder name ("refs/pr/1" has slashes). */
function revisionFolder(revision: string): string {
  return encodeURIComponent(revision);
}

export function repoFolder(repo: string, revision: string): string {
  return path.join(cacheDir(), 'hf', ...repo.split('/'), revisionFolder(revision));
}

/** A download's dot-file beside its target: `.<name>.part`, `.<name>.part.json`, `.<name>.lock`. */
export function downloadLeftover(target: string, suffix: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}${suffix}`);
}

export function urlFolder(url: URL): string {
  return path.join(cacheDir(), 'url', createHash('sha256').update(url.href).digest('hex').slice(0, 16));
}

export function urlFileName(url: URL): string {
  return decodeURIComponent(url.pathname.split('/').pop()!);
}

/**
 * Where a reference's model is in the cache, if it is there whole: the file (the first part of a
 * split GGUF, all parts present) or the folder (its pull finished). undefined when not cached.
 */
export function cachedModelPath(ref: ModelRef): string | undefined {
  switch (ref.kind) {
    case 'path':
      return ref.path;
    case 'url': {
      const f = path.join(urlFolder(ref.url), urlFileName(ref.url));
      return existsSync(f) ? f : undefined;
    }
    case 'hf-file': {
      const dir = repoFolder(ref.repo, ref.revision);
      const parts = splitGgufParts(ref.file);
      return parts.every((p) => existsSync(path.join(dir, p))) ? path.join(dir, ref.file) : undefined;
    }
    case 'hf-repo': {
      const dir = repoFolder(ref.repo, ref.revision);
      return existsSync(path.join(dir, FOLDER_MANIFEST)) ? dir : undefined;
    }
  }
}

export interface CachedModel {
  /** The reference that loads it (and that `fuselm rm` takes). */
  ref: string;
  /** Its file or folder in the cache. */
  path: string;
  /** The files it holds (repository paths), with their sizes in bytes. */
  files: { name: string; bytes: number }[];
  bytes: number;
}

/** Every regular, non-dot file under `dir`, as paths relative to it. */
async function walk(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.name.startsWith('.')) continue;
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(path.join(dir, e.name), rel)));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}

async function sized(dir: string, names: string[]): Promise<{ name: string; bytes: number }[]> {
  // a file removed meanwhile (another process's `rm`) counts as empty rather than failing the listing
  return Promise.all(names.map(async (name) => ({ name, bytes: (await stat(path.join(dir, name)).catch(() => undefined))?.size ?? 0 })));
}

async function subfolders(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
}

function entry(ref: ModelRef, p: string, files: { name: string; bytes: number }[]): CachedModel {
  return { ref: formatModelRef(ref), path: p, files, bytes: files.reduce((s, f) => s + f.bytes, 0) };
}

/**
 * The models in the cache: each finished folder pull as `hf:owner/repo[@rev]`, each GGUF (a
 * split one as its first part, when all parts are there) as `hf:owner/repo/file.gguf[@rev]`,
 * each URL download as its URL. Files a folder pull did not list and that are no GGUF (a
 * folder pull cut short) are listed under their own file reference too, so nothing is hidden.
 */
export async function listCache(): Promise<CachedModel[]> {
  const root = cacheDir();
  const out: CachedModel[] = [];
  for (const owner of await subfolders(path.join(root, 'hf')))
    for (const name of await subfolders(path.join(root, 'hf', owner)))
      for (const revDir of await subfolders(path.join(root, 'hf', owner, name))) {
        const repo = `${owner}/${name}`;
        const revision = decodeURIComponent(revDir);
        const dir = path.join(root, 'hf', owner, name, revDir);
        const all = await walk(dir);
        const claimed = new Set<string>();
        const manifest = (await readCacheJson(path.join(dir, FOLDER_MANIFEST))) as { files?: unknown } | undefined;
        if (Array.isArray(manifest?.files)) {
          const files = manifest.files.filter((f): f is string => typeof f === 'string' && all.includes(f));
          files.forEach((f) => claimed.add(f));
          out.push(entry({ kind: 'hf-repo', repo, revision }, dir, await sized(dir, files)));
        }
        for (const f of all) {
          if (claimed.has(f)) continue;
          const parts = splitGgufParts(f);
          if (parts[0] !== f && parts.slice(1).includes(f) && all.includes(parts[0])) continue; // listed with its first part
          const present = parts.filter((p) => all.includes(p));
          present.forEach((p) => claimed.add(p));
          out.push(entry({ kind: 'hf-file', repo, file: f, revision }, path.join(dir, f), await sized(dir, present)));
        }
      }
  for (const id of await subfolders(path.join(root, 'url'))) {
    const dir = path.join(root, 'url', id);
    const source = await readFile(path.join(dir, '.source'), 'utf8').catch(() => undefined);
    const files = await walk(dir);
    if (!source || files.length === 0) continue;
    out.push(entry({ kind: 'url', url: new URL(source.trim()) }, path.join(dir, files[0]), await sized(dir, files)));
  }
  return out;
}

/**
 * Removes a reference's files from the cache: `hf:owner/repo` every revision of the repository
 * (`@rev` one revision), `hf:owner/repo/file.gguf[@rev]` that file (all parts of a split GGUF)
 * and its download leftovers, a URL its folder. Returns the paths removed; none is E_NOT_FOUND.
 */
export async function removeCached(refText: string): Promise<string[]> {
  const ref = parseModelRef(refText);
  let targets: string[];
  switch (ref.kind) {
    case 'path':
      throw new FuselmError('E_INVALID_ARG', `${refText} is a path, not a cached model reference (hf:owner/repo[/file][@revision] or a URL)`);
    case 'url':
      targets = [urlFolder(ref.url)];
      break;
    case 'hf-repo':
      targets = [refText.includes('@') ? repoFolder(ref.repo, ref.revision) : path.dirname(repoFolder(ref.repo, ref.revision))];
      break;
    case 'hf-file': {
      const dir = repoFolder(ref.repo, ref.revision);
      targets = splitGgufParts(ref.file).flatMap((p) => {
        const f = path.join(dir, p);
        return [f, downloadLeftover(f, '.part')];
      });
      break;
    }
  }
  const removed = targets.filter((t) => existsSync(t));
  if (removed.length === 0) throw new FuselmError('E_NOT_FOUND', `${refText} is not in the cache (${cacheDir()})`);
  if (ref.kind === 'hf-file') {
    // a finished folder pull that listed this file is whole no more
    const dir = repoFolder(ref.repo, ref.revision);
    const manifest = (await readCacheJson(path.join(dir, FOLDER_MANIFEST))) as { files?: unknown } | undefined;
    if (Array.isArray(manifest?.files) && manifest.files.includes(ref.file)) removed.push(path.join(dir, FOLDER_MANIFEST));
    for (const p of splitGgufParts(ref.file)) removed.push(downloadLeftover(path.join(dir, p), '.part.json'));
  }
  for (const t of removed) await rm(t, { recursive: true, force: true });
  return removed.filter((t) => !path.basename(t).startsWith('.'));
}
