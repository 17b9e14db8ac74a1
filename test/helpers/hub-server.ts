/**
 * A Hugging Face hub stand-in on 127.0.0.1 for the pull tests, behaving as the real one does
 * where fuselm depends on it:
 *
 * - `GET /<owner>/<repo>/resolve/<rev>/<file>`: an LFS file (.gguf, .safetensors) answers 302 to
 *   the CDN server (another origin, as cdn-lfs / cas-bridge are) with `X-Linked-Etag` (its sha256),
 *   `X-Linked-Size` and `X-Repo-Commit`; any other file answers 200 with `ETag` = its git blob id;
 *   a gated repository answers 401 (`X-Error-Code: GatedRepo`) without `Authorization: Bearer <token>`;
 *   a missing repository or file 404 with `X-Error-Code`;
 * - `GET /api/models/<owner>/<repo>/revision/<rev>`: `{ sha, siblings: [{ rfilename }] }`;
 * - `unavailable` makes the next hub requests answer 503;
 * - the CDN serves the bytes with Range (206 + Content-Range), and can be told to cut the
 *   connection halfway (`cutNext`), corrupt a file's bytes (`corrupt`) or answer slowly (`delayMs`).
 *
 * Every request is recorded (`requests`) with the headers that matter.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HubRepo {
  files: Map<string, Buffer>;
  /** The token a request must carry (a gated repository). */
  token?: string;
}

export interface HubRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

export const COMMIT = 'c0ffee'.padEnd(40, '0');

const isLfs = (file: string) => /\.(gguf|safetensors)$/.test(file);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitBlobId = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

export class HubServer {
  readonly repos = new Map<string, HubRepo>();
  readonly requests: HubRequest[] = [];
  /** The next CDN answers of these sha256s send half their bytes and cut the connection. */
  readonly cutNext = new Set<string>();
  /** Files whose CDN bytes are served with one byte changed (the reported sha256 stays the true one). */
  readonly corrupt = new Set<string>();
  /** The next this-many hub requests answer 503 (a transient error). */
  unavailable = 0;
  /** While set, the CDN sends its headers and holds the body back until this resolves. */
  hold: Promise<void> | undefined;
  /** Milliseconds the CDN waits between 64 KiB chunks. */
  delayMs = 0;
  hub!: http.Server;
  cdn!: http.Server;
  /** sha256 → bytes, what the CDN serves. */
  #blobs = new Map<string, { bytes: Buffer; corrupt: boolean }>();

  get endpoint(): string {
    return `http://127.0.0.1:${(this.hub.address() as AddressInfo).port}`;
  }

  get cdnOrigin(): string {
    return `http://127.0.0.1:${(this.cdn.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    this.hub = http.createServer((req, res) => this.#hub(req, res));
    this.cdn = http.createServer((req, res) => this.#cdn(req, res));
    await Promise.all([this.hub, this.cdn].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    return this;
  }

  async stop(): Promise<void> {
    for (const s of [this.hub, this.cdn]) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }

  #record(server: 'hub' | 'cdn', req: http.IncomingMessage): void {
    this.requests.push({ server, method: req.method!, url: req.url!, range: req.headers.range, authorization: req.headers.authorization });
  }

  #hub(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.#record('hub', req);
    const url = new URL(req.url!, 'http://x');
    if (this.unavailable > 0) {
      this.unavailable--;
      return void res.writeHead(503).end();
    }
    const notFound = (code: string) => res.writeHead(404, { 'x-error-code': code, 'x-error-message': `${code} (test hub)` }).end();
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const m = api ?? resolve;
    if (!m) return void notFound('RepoNotFound');
    const repo = this.repos.get(m[1]);
    if (!repo || decodeURIComponent(m[2]) !== 'main') return void notFound(repo ? 'RevisionNotFound' : 'RepoNotFound');
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`)
      return void res.writeHead(401, { 'x-error-code': 'GatedRepo', 'x-error-message': 'Access to this model is restricted (test hub)' }).end();
    if (api) {
      const body = JSON.stringify({ id: m[1], sha: COMMIT, siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })) });
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    }
    const file = decodeURIComponent(m[3]);
    const bytes = repo.files.get(file);
    if (!bytes) return void notFound('EntryNotFound');
    if (!isLfs(file)) return void res.writeHead(200, { etag: `"${gitBlobId(bytes)}"`, 'content-length': bytes.length, 'x-repo-commit': COMMIT }).end(bytes);
    const sha = sha256(bytes);
    this.#blobs.set(sha, { bytes, corrupt: this.corrupt.has(file) });
    res
      .writeHead(302, {
        location: `${this.cdnOrigin}/blobs/${sha}?signed=1`,
        'x-linked-etag': `"${sha}"`,
        'x-linked-size': String(bytes.length),
        'x-repo-commit': COMMIT,
        etag: `W/"${gitBlobId(bytes).slice(0, 20)}"`,
      })
      .end();
  }

  async #cdn(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.#record('cdn', req);
    const sha = /^\/blobs\/([0-9a-f]{64})$/.exec(new URL(req.url!, 'http://x').pathname)?.[1];
    const blob = sha && this.#blobs.get(sha);
    if (!blob) return void res.writeHead(404).end();
    let body = blob.bytes;
    if (blob.corrupt) {
      body = Buffer.from(body);
      body[body.length >> 1] ^= 0xff;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start >= body.length && range) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
    const headers: http.OutgoingHttpHeaders = { 'content-length': body.length - start, etag: `"${sha}"`, 'accept-ranges': 'bytes' };
    if (range) headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    res.writeHead(range ? 206 : 200, headers);
    if (this.hold) {
      res.flushHeaders();
      await this.hold;
    }
    const rest = body.subarray(start);
    const cut = this.cutNext.delete(sha!);
    if (!cut && !this.delayMs) return void res.end(rest);
    const end = cut ? rest.length >> 1 : rest.length;
    for (let at = 0; at < end; at += 65536) {
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      if (!res.write(rest.subarray(at, Math.min(at + 65536, end)))) await new Promise((r) => res.once('drain', r));
    }
    if (cut) {
      // let the bytes written so far reach the client, then drop the connection mid-body
      await new Promise((r) => setTimeout(r, 50));
      res.socket?.destroy();
      return;
    }
    res.end();
  }
}

export { sha256, gitBlobId };
