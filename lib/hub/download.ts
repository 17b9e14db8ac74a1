/**
 * One file from an HTTP(S) server into the cache, as a hub download must be made:
 *
 * - bytes go to `.<name>.part` beside the target and are renamed onto it only once whole and
 *   verified, so a file at the target's name is always complete;
 * - an interrupted download resumes with a Range request from the part's length (`.<name>.part.json`
 *   says which remote file the bytes belong to; a part of another version is discarded);
 * - the checksum the server reports is verified: the hub's `X-Linked-Etag` (the sha256 of an LFS
 *   file, sent on the redirect to its CDN) or an `ETag` of 64 hex digits (sha256); an ETag of 40
 *   hex digits on a non-LFS file is git's blob id, sha1("blob <size>\0" + bytes). A mismatch
 *   removes the part and is E_CHECKSUM;
 * - redirects are followed by hand (at most 10), so those headers are seen, and the token
 *   (Authorization) goes only to the endpoint's own origin, never to a CDN;
 * - transient failures (a connection cut or reset, 408, 429, 5xx) are retried with exponential
 *   backoff, keeping the bytes already written;
 * - `.<name>.lock` (O_EXCL, holding the pid) makes a second process wait for the first, whose
 *   file it then uses; a lock whose process is gone, or whose part has not grown for 10 minutes,
 *   is taken over.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FuselmError, shown } from '../errors.js';
import { downloadLeftover, readCacheJson } from './cache.js';

export interface DownloadOptions {
  /** Called as bytes arrive: bytes of the file so far (a resumed part counts), and its size when known. */
  onBytes?: (bytes: number, total: number | undefined) => void;
  signal?: AbortSignal;
  /** Authorization: Bearer <token>, sent to `tokenOrigin` only. */
  token?: string;
  tokenOrigin?: string;
  /** Attempts after the first for transient failures (default 5). */
  retries?: number;
  /** The first backoff in ms, doubled each retry up to 30 s (default 500). */
  retryDelayMs?: number;
  /** How messages name what is downloaded (the model reference). */
  label: string;
}

/** What one download learned: the checksum it verified (if the server gave one) and the hub's commit. */
export interface Downloaded {
  sha256?: string;
  gitSha1?: string;
  commit?: string;
  bytes: number;
}

const MAX_REDIRECTS = 10;
/** A lock whose download has written nothing for this long is taken over. */
const STALE_LOCK_MS = 10 * 60_000;
const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

/** A failure worth another attempt (its bytes so far are kept). */
class Transient extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

function isLocal(u: URL): boolean {
  return u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]';
}

/** An ETag's value without W/ and quotes. */
function etagValue(v: string | null): string | undefined {
  if (!v) return undefined;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();
}

function aborted(signal: AbortSignal | undefined, label: string): FuselmError {
  return new FuselmError('E_ABORTED', `${label}: the download was aborted`, { cause: signal?.reason });
}

/** The error of a final, non-success status. */
function statusError(res: Response, url: URL, o: DownloadOptions): Error {
  const hubCode = res.headers.get('x-error-code');
  const hubMessage = res.headers.get('x-error-message');
  const detail = `${url.origin}${url.pathname} answered ${res.status}${hubMessage ? `: ${shown(hubMessage, 200)}` : ''}`;
  if (res.status === 404 || hubCode === 'RepoNotFound' || hubCode === 'EntryNotFound' || hubCode === 'RevisionNotFound')
    return new FuselmError('E_NOT_FOUND', `${o.label}: not found (${detail})${o.token ? '' : '; a private repository needs HF_TOKEN'}`);
  if (res.status === 401 || res.status === 403)
    return new FuselmError(
      'E_AUTH',
      `${o.label}: access refused (${detail}); ${o.token ? 'HF_TOKEN was sent: check that it is valid and that its account accepted the repository\'s terms' : 'a gated or private repository needs an access token: set HF_TOKEN'}`,
    );
  if (TRANSIENT_STATUS.has(res.status)) {
    const after = Number(res.headers.get('retry-after'));
    return new Transient(detail, Number.isFinite(after) && after > 0 ? Math.min(after, 30) * 1000 : undefined);
  }
  return new FuselmError('E_NETWORK', `${o.label}: ${detail}`);
}

/**
 * GET `url` with manual redirects. Returns the final response (2xx or an error status) and the
 * headers of every hop, in order, for the checksum headers of the hub's redirect.
 */
async function get(url: URL, range: number, o: DownloadOptions): Promise<{ res: Response; hops: Headers[]; url: URL }> {
  const hops: Headers[] = [];
  let u = url;
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    // identity: fetch would otherwise ask for gzip and decode it, and Range and sizes would not hold
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'fuselm' };
    if (range > 0) headers.range = `bytes=${range}-`;
    if (o.token && u.origin === o.tokenOrigin) headers.authorization = `Bearer ${o.token}`;
    let res: Response;
    try {
      res = await fetch(u, { headers, redirect: 'manual', signal: o.signal });
    } catch (e) {
      if (o.signal?.aborted) throw aborted(o.signal, o.label);
      const cause = (e as Error & { cause?: NodeJS.ErrnoException }).cause;
      const why = `${u.origin}: ${cause?.message ?? (e as Error).message}`;
      // no server there, or no such host: waiting will not change it (offline), so say so at once
      if (cause?.code === 'ECONNREFUSED' || cause?.code === 'ENOTFOUND') throw new FuselmError('E_NETWORK', `${o.label}: cannot reach ${why}`);
      throw new Transient(why);
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      hops.push(res.headers);
      await res.body?.cancel().catch(() => {});
      const next = new URL(location, u);
      // never from https down to http (a plain-http HF_ENDPOINT, a local mirror, may redirect within http)
      if (next.protocol !== 'https:' && !(next.protocol === 'http:' && (u.protocol === 'http:' || isLocal(next))))
        throw new FuselmError('E_NETWORK', `${o.label}: ${u.origin} redirected to ${next.protocol} URL`);
      u = next;
      continue;
    }
    return { res, hops, url: u };
  }
  throw new FuselmError('E_NETWORK', `${o.label}: more than ${MAX_REDIRECTS} redirects from ${url.origin}`);
}

/** The checksum the server reports for the file: the hub's X-Linked-Etag on a hop, else the final ETag. */
function expectedChecksum(hops: Headers[], res: Response): { sha256?: string; gitSha1?: string; commit?: string } {
  const commit = [...hops, res.headers].map((h) => h.get('x-repo-commit')).find((c) => c)?.toLowerCase();
  const linked = [...hops, res.headers].map((h) => etagValue(h.get('x-linked-etag'))).find((v) => v);
  if (linked && /^[0-9a-f]{64}$/.test(linked)) return { sha256: linked, commit };
  const etag = etagValue(res.headers.get('etag')) ?? etagValue(hops[0]?.get('etag') ?? null);
  if (etag && /^[0-9a-f]{64}$/.test(etag)) return { sha256: etag, commit };
  if (!linked && etag && /^[0-9a-f]{40}$/.test(etag)) return { gitSha1: etag, commit };
  return { commit };
}

/** Bytes `start`.. of the body and the file's whole size, from a 200 or a 206's Content-Range. */
function bodyRange(res: Response, have: number): { start: number; total?: number } {
  if (res.status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
    if (!m) throw new Transient('a 206 response without a valid Content-Range');
    return { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) };
  }
  const len = res.headers.get('content-length');
  return { start: 0, total: len !== null && /^\d+$/.test(len) ? Number(len) : undefined };
}

async function hashFile(h: Hash, file: string): Promise<void> {
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
}

/** Takes `.<name>.lock`, waiting while a live process holds it. */
async function lock(file: string, o: DownloadOptions): Promise<() => Promise<void>> {
  for (;;) {
    try {
      const fh = await open(file, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new FuselmError('E_IO', `${file}: cannot create the lock: ${(e as Error).message}`, { cause: e });
    }
    const pid = Number(await readFile(file, 'utf8').catch(() => ''));
    let alive = true;
    if (Number.isInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 0);
      } catch (e) {
        alive = (e as NodeJS.ErrnoException).code === 'EPERM';
      }
    } else {
      // written but not yet filled (the holder is between open and write), or garbage: stale after a minute
      alive = Date.now() - ((await stat(file).catch(() => undefined))?.mtimeMs ?? 0) < 60_000;
    }
    // a holder whose download wrote nothing for this long is stuck: its lock is taken over (the
    // checksum still guards the file)
    const part = path.join(path.dirname(file), path.basename(file).replace(/\.lock$/, '.part'));
    const lastWrite = Math.max(...(await Promise.all([file, part].map((f) => stat(f).then((s) => s.mtimeMs, () => 0)))));
    if (!alive || Date.now() - lastWrite > STALE_LOCK_MS) {
      await rm(file, { force: true });
      continue;
    }
    try {
      await sleep(200, undefined, { signal: o.signal });
    } catch {
      throw aborted(o.signal, o.label);
    }
  }
}

/**
 * Downloads `url` to `target` (its folder made), unless `target` exists; see the file comment.
 * Returns what was verified (nothing when another process made the file meanwhile).
 */
export async function downloadFile(url: URL, target: string, o: DownloadOptions): Promise<Downloaded | undefined> {
  await mkdir(path.dirname(target), { recursive: true });
  if (existsSync(target)) return undefined;
  const unlock = await lock(downloadLeftover(target, '.lock'), o);
  try {
    if (existsSync(target)) return undefined; // made by the process we waited for
    return await fetchToFile(url, target, o);
  } finally {
    await unlock();
  }
}

async function fetchToFile(url: URL, target: string, o: DownloadOptions): Promise<Downloaded> {
  const part = downloadLeftover(target, '.part');
  const partInfo = downloadLeftover(target, '.part.json');
  const retries = o.retries ?? 5;
  let delay = o.retryDelayMs ?? 500;
  for (let attempt = 0; ; ) {
    if (o.signal?.aborted) throw aborted(o.signal, o.label);
    try {
      let have = (await stat(part).catch(() => undefined))?.size ?? 0;
      const { res, hops } = await get(url, have, o);
      if (res.status === 416) {
        // the part is not a prefix of the file as it is now (or is already longer): start over
        await res.body?.cancel().catch(() => {});
        await rm(part, { force: true });
        throw new Transient('416 Range Not Satisfiable');
      }
      if (res.status !== 200 && res.status !== 206) throw statusError(res, url, o);
      const expected = expectedChecksum(hops, res);
      const id = expected.sha256 ?? expected.gitSha1;
      const previous = (await readCacheJson(partInfo)) as { id?: unknown } | undefined;
      const { start, total } = bodyRange(res, have);
      if (have > 0 && (res.status === 200 || start !== have || (id && previous?.id !== id))) {
        // the server sent the whole file, another range, or the part belongs to another version
        await rm(part, { force: true });
        if (res.status !== 200) {
          await res.body?.cancel().catch(() => {});
          continue;
        }
        have = 0;
      }
      await writeFile(partInfo, JSON.stringify({ url: url.href, id }));
      const h = expected.sha256 ? createHash('sha256') : expected.gitSha1 && total !== undefined ? createHash('sha1') : undefined;
      if (h === undefined && expected.gitSha1) throw new Transient('no Content-Length for a file whose ETag is a git blob id');
      if (expected.gitSha1) h!.update(`blob ${total}\0`);
      if (h && have > 0) await hashFile(h, part);
      let bytes = have;
      o.onBytes?.(bytes, total);
      const fh = await open(part, have > 0 ? 'a' : 'w');
      try {
        if (res.body) {
          try {
            for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
              await fh.write(chunk).catch((e: Error) => {
                throw new FuselmError('E_IO', `${part}: cannot write the download: ${e.message}`, { cause: e });
              });
              h?.update(chunk);
              bytes += chunk.length;
              o.onBytes?.(bytes, total);
            }
          } catch (e) {
            if (e instanceof FuselmError) throw e;
            if (o.signal?.aborted) throw aborted(o.signal, o.label);
            throw new Transient(`the connection broke after ${bytes} bytes: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`);
          }
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (total !== undefined && bytes !== total) throw new Transient(`the body ended at ${bytes} of ${total} bytes`);
      const got = h?.digest('hex');
      if (got !== undefined && got !== id) {
        await rm(part, { force: true });
        await rm(partInfo, { force: true });
        throw new FuselmError(
          'E_CHECKSUM',
          `${o.label}: the downloaded file's ${expected.sha256 ? 'sha256' : 'git blob sha1'} is ${got}, the server reported ${id}; the file was removed`,
        );
      }
      await rename(part, target);
      await rm(partInfo, { force: true });
      return { sha256: expected.sha256, gitSha1: expected.gitSha1, commit: expected.commit, bytes };
    } catch (e) {
      if (!(e instanceof Transient)) throw e;
      if (attempt >= retries) throw new FuselmError('E_NETWORK', `${o.label}: ${e.message} (gave up after ${attempt + 1} attempts; run again to resume)`);
      attempt++;
      try {
        await sleep(e.retryAfterMs ?? delay, undefined, { signal: o.signal });
      } catch {
        throw aborted(o.signal, o.label);
      }
      delay = Math.min(delay * 2, 30_000);
    }
  }
}

/** Most bytes of a hub API answer (a listing of a repository with many thousands of files is a few MB). */
const MAX_JSON_BYTES = 64 << 20;

/** GET a JSON document (the hub's API), with the same redirects, token, errors and retries as a download. */
export async function fetchJson(url: URL, o: DownloadOptions): Promise<unknown> {
  const retries = o.retries ?? 5;
  let delay = o.retryDelayMs ?? 500;
  for (let attempt = 0; ; attempt++) {
    try {
      const { res } = await get(url, 0, o);
      if (res.status !== 200) throw statusError(res, url, o);
      if (Number(res.headers.get('content-length') ?? 0) > MAX_JSON_BYTES) throw new FuselmError('E_NETWORK', `${o.label}: ${url.origin}${url.pathname} sent more than ${MAX_JSON_BYTES} bytes`);
      let text: string;
      try {
        text = await res.text();
      } catch (e) {
        if (o.signal?.aborted) throw aborted(o.signal, o.label);
        throw new Transient(`the connection broke: ${(e as Error).message}`);
      }
      try {
        return JSON.parse(text);
      } catch {
        throw new FuselmError('E_NETWORK', `${o.label}: ${url.origin}${url.pathname} did not answer JSON`);
      }
    } catch (e) {
      if (!(e instanceof Transient)) throw e;
      if (attempt >= retries) throw new FuselmError('E_NETWORK', `${o.label}: ${e.message} (gave up after ${attempt + 1} attempts)`);
      try {
        await sleep(e.retryAfterMs ?? delay, undefined, { signal: o.signal });
      } catch {
        throw aborted(o.signal, o.label);
      }
      delay = Math.min(delay * 2, 30_000);
    }
  }
}
