/** Progress bars on stderr (cli-progress), shown only when stderr is a terminal. */
import cliProgress from 'cli-progress';

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
