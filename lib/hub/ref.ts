/**
 * Model references: what loadModel, loadTokenizer, loadEmbeddingModel, `-m` and `fuselm pull`
 * accept in place of a path.
 *
 *   path/to/model.gguf, path/to/folder     a local file or folder (anything not below)
 *   hf:owner/repo/file.gguf[@revision]     one file of a Hugging Face repository (subfolders allowed)
 *   hf:owner/repo[@revision]               a whole model folder (config.json, tokenizer, safetensors)
 *   https://host/path/model.gguf           a file at a URL
 *
 * The revision defaults to "main". Names become cache paths, so every part is checked here:
 * no empty, "." or ".." segments, no backslashes or control characters.
 */
import { FuselmError, shown } from '../errors.js';

export type ModelRef =
  | { kind: 'path'; path: string }
  | { kind: 'hf-file'; repo: string; file: string; revision: string }
  | { kind: 'hf-repo'; repo: string; revision: string }
  | { kind: 'url'; url: URL };

/** The hub's repository names: owner and name of letters, digits, '-', '_', '.', at most 96 each. */
const REPO_PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
/** Branch, tag or commit names: git's ref characters, without the ones that are unsafe in paths. */
const REVISION = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/;

function bad(ref: string, why: string): FuselmError {
  return new FuselmError('E_INVALID_ARG', `model reference ${shown(ref)}: ${why} (expected hf:owner/repo[/file][@revision], an https URL or a path)`);
}

/** A relative path inside a repository, checked segment by segment (also for names a hub's listing returns). */
export function checkRepoPath(p: string, ref: string): string {
  const segments = p.split('/');
  for (const s of segments)
    if (s === '' || s === '.' || s === '..' || s.includes('\\') || /[\u0000-\u001f\u007f]/.test(s)) throw bad(ref, `bad file path ${shown(p)}`);
  if (p.length > 1000) throw bad(ref, 'the file path is longer than 1000 characters');
  return p;
}

export function parseModelRef(ref: string): ModelRef {
  if (typeof ref !== 'string' || ref.length === 0) throw new FuselmError('E_INVALID_ARG', 'a model reference must be a non-empty string');
  if (ref.startsWith('hf:')) {
    const body = ref.slice(3);
    const at = body.lastIndexOf('@');
    const revision = at >= 0 ? body.slice(at + 1) : 'main';
    const name = at >= 0 ? body.slice(0, at) : body;
    if (!REVISION.test(revision) || revision.split('/').some((s) => s === '' || s === '.' || s === '..')) throw bad(ref, `bad revision ${shown(revision)}`);
    const [owner, repo, ...rest] = name.split('/');
    if (!owner || !repo || !REPO_PART.test(owner) || !REPO_PART.test(repo) || repo.includes('..') || owner.includes('..'))
      throw bad(ref, 'owner/repo must be two names of letters, digits, "-", "_" or "."');
    if (rest.length === 0) return { kind: 'hf-repo', repo: `${owner}/${repo}`, revision };
    return { kind: 'hf-file', repo: `${owner}/${repo}`, file: checkRepoPath(rest.join('/'), ref), revision };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) {
    let url: URL;
    try {
      url = new URL(ref);
    } catch {
      throw bad(ref, 'not a valid URL');
    }
    // http only to this machine (local mirrors, tests); anything crossing a network must be https
    const local = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) throw bad(ref, 'URLs must be https');
    if (url.username || url.password) throw bad(ref, 'URLs must not carry credentials');
    const base = decodeURIComponent(url.pathname.split('/').pop() ?? '');
    if (!base || base === '.' || base === '..' || /[\\/\u0000-\u001f]/.test(base)) throw bad(ref, 'the URL must end in a file name');
    return { kind: 'url', url };
  }
  return { kind: 'path', path: ref };
}

/** The reference as a user writes it (the revision left out when it is "main"). */
export function formatModelRef(r: ModelRef): string {
  const rev = (x: { revision: string }) => (x.revision === 'main' ? '' : `@${x.revision}`);
  switch (r.kind) {
    case 'path':
      return r.path;
    case 'url':
      return r.url.href;
    case 'hf-repo':
      return `hf:${r.repo}${rev(r)}`;
    case 'hf-file':
      return `hf:${r.repo}/${r.file}${rev(r)}`;
  }
}

/** The parts of a split GGUF (`name-00001-of-00003.gguf`): every part's name, or just `file` when it is not split. */
export function splitGgufParts(file: string): string[] {
  const m = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/.exec(file);
  if (!m) return [file];
  const count = Number(m[3]);
  if (count < 1 || Number(m[2]) < 1 || Number(m[2]) > count) return [file];
  return Array.from({ length: count }, (_, i) => `${m[1]}-${String(i + 1).padStart(5, '0')}-of-${m[3]}.gguf`);
}
