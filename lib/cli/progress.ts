/** Progress bars on stderr (cli-progress), shown only when stderr is a terminal. */
import cliProgress from 'cli-progress';
import type { PullProgress } from '../hub/pull.js';

export interface Progress {
  update(done: number, total: number, extra?: string): void;
  stop(): void;
}

export function progressBar(label: string): Progress {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% {value}/{total} {extra}`, stream: process.stderr, hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, extra = '') {
      if (!started) {
        bar.start(total, done, { extra });
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(done, { extra });
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** "1.2 MB", "3.40 GB": bytes for people (powers of 1000, as download tools show them). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

/** A download's bar on stderr (when it is a terminal): file, bytes of total, speed and ETA, one bar per file. */
export function downloadBar(): { update(p: PullProgress): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: '{file} [{bar}] {percentage}% {done} of {size}, {speed}, ETA {eta_formatted}', stream: process.stderr, hideCursor: true, etaBuffer: 50 },
    cliProgress.Presets.shades_classic,
  );
  let file = '';
  let started = false;
  let t0 = 0;
  let b0 = 0;
  return {
    update(p) {
      const name = p.fileCount > 1 ? `${p.file} (${p.fileIndex}/${p.fileCount})` : p.file;
      const total = p.totalBytes ?? p.bytes;
      const seconds = (performance.now() - t0) / 1000;
      const payload = { file: name, done: formatBytes(p.bytes), size: p.totalBytes === undefined ? '?' : formatBytes(p.totalBytes), speed: `${formatBytes(seconds > 0 ? (p.bytes - b0) / seconds : 0)}/s` };
      if (name !== file) {
        if (started) bar.stop();
        file = name;
        t0 = performance.now();
        b0 = p.bytes;
        bar.start(total, p.bytes, { ...payload, speed: '-' });
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(p.bytes, payload);
      }
    },
    stop() {
      if (started) bar.stop();
      started = false;
      file = '';
    },
  };
}
