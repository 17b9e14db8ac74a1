/**
 * The server's queue for an encoder-decoder model (T5, BART): a completion's prompt is the
 * encoder's input and its choices are the decoder's output. Requests wait in a bounded FIFO
 * queue; whenever the model is free, up to `parallel` waiting sequences (in order of arrival)
 * are encoded in one pass and decoded together (EncoderDecoderModel.generateEach: each with its
 * own options, chunks and abort signal; each gives what it gives alone). Sequences arriving
 * meanwhile wait for the next batch: the model decodes one batch at a time, so there is no
 * joining mid-way as the decoder-only Scheduler's continuous batching does. Same submit()
 * contract as Scheduler, so the routes serve both.
 */
import { FuselmError } from '../errors.js';
import type { GenerateOptions, GenerateResult, StreamChunk } from '../generate.js';
import type { EncoderDecoderModel } from '../model/encoder-decoder.js';
import { QueueFullError, type SchedulerEvents, type SequenceResult, type SubmitOptions } from './scheduler.js';

export interface Seq2SeqQueueOptions {
  /** Most sequences decoded together. */
  parallel: number;
  /** Most sequences waiting for the next batch; past it submit() throws QueueFullError. */
  maxQueue: number;
}

interface Waiting {
  prompt: number[];
  o: GenerateOptions;
  opts: SubmitOptions;
  /** abortAll()'s: ends the sequence whatever the request's own signal does. */
  stop: AbortController;
  submitted: number;
  lastToken: number;
  tokens: number;
  resolve: (r: SequenceResult) => void;
  reject: (e: unknown) => void;
}

export class Seq2SeqQueue {
  readonly #model: EncoderDecoderModel;
  readonly #o: Seq2SeqQueueOptions;
  readonly #events: SchedulerEvents;
  readonly #waiting: Waiting[] = [];
  #running: Waiting[] = [];
  #loop: Promise<void> | undefined;
  #closed = false;

  constructor(model: EncoderDecoderModel, o: Seq2SeqQueueOptions, events: SchedulerEvents = {}) {
    this.#model = model;
    this.#o = o;
    this.#events = events;
  }

  get running(): number {
    return this.#running.length;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Most prompt (encoder input) tokens. */
  get contextSize(): number {
    return this.#model.config.maxEncoderTokens;
  }

  /** Whether `n` more sequences would be queued (or run) rather than refused. */
  canAccept(n: number): boolean {
    const free = this.#o.parallel - this.#running.length;
    return this.#waiting.length + n <= this.#o.maxQueue + free;
  }

  /** The decoder's output for the encoder input `prompt` (token ids); throws QueueFullError at once when the queue is full. */
  submit(prompt: number[], o: GenerateOptions, opts: SubmitOptions = {}): Promise<SequenceResult> {
    if (this.#closed) return Promise.reject(new FuselmError('E_DISPOSED', 'the server is closed'));
    if (!this.canAccept(1)) throw new QueueFullError(this.#waiting.length);
    return new Promise<SequenceResult>((resolve, reject) => {
      const now = performance.now();
      const w: Waiting = { prompt, o, opts, stop: new AbortController(), submitted: now, lastToken: now, tokens: 0, resolve, reject };
      if (opts.signal?.aborted) return reject(aborted(opts.signal));
      // a request given up while it waits leaves the queue at once (a running one, at the next step)
      opts.signal?.addEventListener('abort', () => {
        const i = this.#waiting.indexOf(w);
        if (i < 0) return;
        this.#waiting.splice(i, 1);
        reject(aborted(opts.signal!));
        this.#report();
      }, { once: true });
      this.#waiting.push(w);
      this.#report();
      this.#loop ??= this.#run().finally(() => (this.#loop = undefined));
    });
  }

  /** Refuses new work and waits for the queued and running sequences to finish. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#loop;
  }

  /** Aborts every sequence (running and waiting) with `reason`. */
  abortAll(reason: string): void {
    const e = new FuselmError('E_ABORTED', reason);
    for (const w of this.#waiting.splice(0)) w.reject(e);
    for (const w of this.#running) w.stop.abort(e);
    this.#report();
  }

  #report(): void {
    this.#events.load?.(this.#running.length, this.#waiting.length, 0);
  }

  async #run(): Promise<void> {
    // the sequences submitted in the same turn of the event loop (a request's choices) start together
    await new Promise((r) => setImmediate(r));
    while (this.#waiting.length) {
      this.#running = this.#waiting.splice(0, this.#o.parallel);
      this.#report();
      const batch = this.#running;
      try {
        const settled = await this.#model.generateEach(
          batch.map((w) => ({
            input: w.prompt,
            options: { ...w.o, signal: w.opts.signal ? AbortSignal.any([w.opts.signal, w.stop.signal]) : w.stop.signal },
            onChunk: (c: StreamChunk) => this.#chunk(w, c),
          })),
        );
        settled.forEach((r, i) => (r.status === 'fulfilled' ? batch[i].resolve(result(batch[i], r.value)) : batch[i].reject(r.reason)));
        this.#events.prompt?.(batch.reduce((n, w) => n + w.prompt.length, 0), 0);
      } catch (e) {
        for (const w of batch) w.reject(e);
      }
      this.#running = [];
      this.#report();
    }
  }

  #chunk(w: Waiting, c: StreamChunk): void {
    if (c.id >= 0) {
      const now = performance.now();
      if (w.tokens++ === 0) this.#events.firstToken?.((now - w.submitted) / 1000);
      else this.#events.nextToken?.((now - w.lastToken) / 1000);
      w.lastToken = now;
    }
    w.opts.onChunk?.(c);
  }
}

function result(w: Waiting, r: GenerateResult): SequenceResult {
  return { ids: r.ids, text: r.text, finishReason: r.finishReason, promptTokens: w.prompt.length, cachedTokens: 0, ...(r.logprobs?.length ? { logprobs: r.logprobs } : {}) };
}

function aborted(signal: AbortSignal): FuselmError {
  return new FuselmError('E_ABORTED', 'the request was aborted', { cause: signal.reason });
}
