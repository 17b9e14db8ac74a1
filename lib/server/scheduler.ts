/**
 * Continuous batching over a model's KV cache slots (Model.openSlots). Requests wait in a
 * bounded queue until a slot is free; every step then runs ONE forward over
 *   - the next token of every sequence past its prompt, and
 *   - prompt chunks of the sequences still reading their prompts, at most `stepTokens` tokens in
 *     all (so a long prompt delays the others' next token by one chunk per step, never by its
 *     whole length).
 * A sequence that ends (end of generation, a stop string, max tokens, a full context) or is
 * aborted (its client went away, a timeout) leaves before the next step, and its slot is free.
 *
 * A free slot keeps the tokens its cache holds; a new request takes the free slot sharing the
 * longest prefix with its prompt (else the least recently used one) and evaluates only the rest
 * (the llama.cpp server's slot reuse: a repeated system prompt is evaluated once per slot).
 *
 * Paged slots (openSlots' `paged`): the slots' caches are blocks of one pool (kv-blocks.ts),
 * given to a slot as its positions need them (its block table). Every full block is registered
 * in the prefix cache; a new sequence starts from the longest run of registered blocks holding
 * its prompt's first tokens (shared, not evaluated again: a system prompt sent by many requests
 * is evaluated once) when that is more than its slot kept. A free slot keeps its blocks with
 * its tokens until the pool runs short: then cached blocks no slot holds go back first (least
 * recently used first), then free slots' blocks, and when none is left the newest running
 * sequence is preempted: its blocks are freed and it waits at the head of the queue, to evaluate
 * its prompt and the tokens it generated again (its sampler state kept), so it gives the tokens
 * it would have given.
 */
import { FuselmError } from '../errors.js';
import { type GenerateOptions, type FinishReason, SequenceRun, type StreamChunk } from '../generate.js';
import type { LogprobsResult } from '../sampling/sampler.js';
import { acquireAdapters, adapterKey, type LoraAdapter } from '../model/lora.js';
import type { SequenceSlots } from '../model/slots.js';
import { sharedPrefix } from '../model/decode-call.js';
import { KvBlocks } from './kv-blocks.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

/** A free slot's cached prefix is taken over only when it shares this many tokens with the prompt. */
const REUSE_MIN_TOKENS = 16;
/**
 * Paged: a block's first rows are copied for a new sequence (copy on write) only when it shares
 * this many: fewer (a BOS) cost a block from the pool to save a few rows of a batched step.
 */
export const COPY_MIN_ROWS = 4;

export interface SchedulerOptions {
  /** Most requests waiting for a slot; past it submit() throws QueueFullError. */
  maxQueue: number;
  /** Most prompt tokens evaluated per step, over all sequences. */
  stepTokens: number;
}

/** What the scheduler reports as it works (lib/server/metrics.ts turns them into Prometheus series). */
export interface SchedulerEvents {
  /** A sequence's first generated token, `seconds` after it was submitted. */
  firstToken?(seconds: number): void;
  /** A later token, `seconds` after the sequence's previous one. */
  nextToken?(seconds: number): void;
  /** Prompt tokens evaluated, and those reused from a slot's cache. */
  prompt?(evaluated: number, reused: number): void;
  /** After each step and queue change: sequences running and waiting, tokens held in the slots' caches. */
  load?(running: number, waiting: number, cachedTokens: number): void;
  /** Paged: the pool's blocks held by running sequences, kept by free slots (their prefixes), and free. */
  blocks?(used: number, kept: number, free: number): void;
  /** Paged: a running sequence preempted (its blocks freed, requeued) when the pool ran short. */
  preempted?(): void;
}

export interface SequenceResult {
  ids: number[];
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  /** Prompt tokens whose cache entries a slot already held. */
  cachedTokens: number;
  logprobs?: LogprobsResult[];
}

export interface SubmitOptions {
  /** Each generated chunk, as generate()'s stream gives them (with a last id -1 chunk for held-back text). */
  onChunk?: (chunk: StreamChunk) => void;
  /** Ends the sequence before its next step; the promise rejects with E_ABORTED. */
  signal?: AbortSignal;
}

/** submit() when the queue is full (HTTP 429). */
export class QueueFullError extends Error {
  constructor(readonly waiting: number) {
    super(`the server is busy: ${waiting} requests are waiting`);
    this.name = 'QueueFullError';
  }
}

interface Sequence {
  run: SequenceRun;
  prompt: number[];
  /** GenerateOptions.adapters: its LoRA adapters. */
  adapters: GenerateOptions['adapters'];
  /** Its adapters, held from submit() to its end (one disposed meanwhile is freed after). */
  held: LoraAdapter[];
  opts: SubmitOptions;
  slot: number;
  /** Preempted: the prompt and the tokens generated but the last, evaluated again (no token drawn after them). */
  replay: number[] | undefined;
  /** Tokens of prompt (or replay) in the slot's cache. */
  evaluated: number;
  cached: number;
  /** The next cache position to write once decoding (prompt length + tokens decoded). */
  pos: number;
  /** True once the prompt is evaluated and the first token drawn. */
  decoding: boolean;
  submitted: number;
  lastToken: number;
  resolve: (r: SequenceResult) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  /** The tokens at its cache positions 0 .. n-1 (for prefix reuse). */
  tokens: number[];
  seq: Sequence | undefined;
  lastUsed: number;
  /** The LoRA adapters its tokens were evaluated under (SequenceSlots.useAdapters' key). */
  lora: string;
  /** Paged: the pool blocks holding its positions, in order (its block table). */
  blocks: number[];
  /** Paged: the prefix cache's chain ids of its first full blocks' tokens. */
  ids: number[];
}

export class Scheduler {
  readonly #slots: SequenceSlots;
  readonly #tok: Tokenizer;
  readonly #o: SchedulerOptions;
  readonly #events: SchedulerEvents;
  readonly #slot: Slot[];
  readonly #waiting: Sequence[] = [];
  #loop: Promise<void> | undefined;
  #clock = 0;
  #closed = false;
  /** Paged: the pool and its prefix cache. */
  readonly #pool: KvBlocks | undefined;

  constructor(slots: SequenceSlots, tokenizer: Tokenizer, o: SchedulerOptions, events: SchedulerEvents = {}) {
    this.#slots = slots;
    this.#tok = tokenizer;
    this.#o = o;
    this.#events = events;
    this.#slot = Array.from({ length: slots.size }, () => ({ tokens: [], seq: undefined, lastUsed: 0, lora: '', blocks: [], ids: [] }));
    const pg = slots.paged;
    if (pg && pg.blocks * pg.blockSize < slots.contextSize)
      throw new FuselmError('E_INVALID_ARG', `a paged pool of ${pg.blocks} blocks of ${pg.blockSize} holds less than one context of ${slots.contextSize} positions`);
    this.#pool = pg && new KvBlocks(pg.blocks, pg.blockSize);
  }

  /** Sequences holding a slot. */
  get running(): number {
    return this.#slot.filter((s) => s.seq).length;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  get contextSize(): number {
    return this.#slots.contextSize;
  }

  /** Whether `n` more sequences would be queued (or run) rather than refused. */
  canAccept(n: number): boolean {
    const free = this.#slot.filter((s) => !s.seq).length;
    return this.#waiting.length + n <= this.#o.maxQueue + Math.max(0, free - this.#waiting.length);
  }

  /**
   * Generates a continuation of `prompt` (token ids; 1 .. contextSize of them). Resolves when the
   * sequence ends; throws QueueFullError at once when the queue is full.
   */
  submit(prompt: number[], o: GenerateOptions, opts: SubmitOptions = {}): Promise<SequenceResult> {
    if (this.#closed) return Promise.reject(new FuselmError('E_DISPOSED', 'the scheduler is closed'));
    if (prompt.length === 0) return Promise.reject(new FuselmError('E_INVALID_ARG', 'the prompt is empty'));
    if (prompt.length > this.#slots.contextSize)
      return Promise.reject(new FuselmError('E_CONTEXT_FULL', `the prompt has ${prompt.length} tokens but the context holds ${this.#slots.contextSize}`));
    if (!this.canAccept(1)) throw new QueueFullError(this.#waiting.length);
    let run: SequenceRun;
    try {
      run = new SequenceRun(this.#tok, prompt, o, this.#slots.vocabSize);
    } catch (e) {
      return Promise.reject(e);
    }
    // nothing to generate (max_tokens 0): no slot, no evaluation
    if (run.done) return Promise.resolve({ ids: [], text: '', finishReason: run.finishReason!, promptTokens: prompt.length, cachedTokens: 0 });
    return new Promise<SequenceResult>((resolve, reject) => {
      const now = performance.now();
      const seq: Sequence = { run, prompt, adapters: o.adapters, held: [], opts, slot: -1, replay: undefined, evaluated: 0, cached: 0, pos: 0, decoding: false, submitted: now, lastToken: now, resolve, reject };
      if (opts.signal?.aborted) return reject(aborted(opts.signal));
      try {
        seq.held = acquireAdapters(o.adapters);
      } catch (e) {
        return reject(e);
      }
      this.#waiting.push(seq);
      this.#report();
      this.#loop ??= this.#run().finally(() => (this.#loop = undefined));
    });
  }

  /** Refuses new work, lets running and waiting sequences finish, then frees the slots. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#loop;
    this.#slots.close();
  }

  /** Aborts every sequence (running and waiting) with `reason`. */
  abortAll(reason: string): void {
    const e = new FuselmError('E_ABORTED', reason);
    for (const s of this.#waiting.splice(0)) {
      unhold(s);
      s.reject(e);
    }
    for (const sl of this.#slot) if (sl.seq) this.#leave(sl.seq, e);
    this.#report();
  }

  #report(): void {
    this.#events.load?.(this.running, this.#waiting.length, this.#slot.reduce((n, s) => n + s.tokens.length, 0));
    if (!this.#pool) return;
    const busy = new Set(this.#slot.flatMap((s) => (s.seq ? s.blocks : [])));
    const idle = new Set(this.#slot.flatMap((s) => (s.seq ? [] : s.blocks)).filter((b) => !busy.has(b)));
    const { free, cached } = this.#pool.counts;
    this.#events.blocks?.(busy.size, idle.size + cached, free);
  }

  async #run(): Promise<void> {
    while (this.#waiting.length || this.#slot.some((s) => s.seq)) {
      try {
        this.#admit();
        await this.#step();
      } catch (e) {
        // a failed step leaves the slots' caches unknown: every sequence in them fails with it
        for (const sl of this.#slot) {
          this.#forget(sl, 0);
          if (sl.seq) this.#leave(sl.seq, e);
        }
      }
      this.#report();
    }
  }

  /** Free slots go to waiting sequences, in order of arrival. */
  #admit(): void {
    for (let i = 0; i < this.#waiting.length; ) {
      const seq = this.#waiting[i];
      if (seq.opts.signal?.aborted) {
        this.#waiting.splice(i, 1);
        unhold(seq);
        seq.reject(aborted(seq.opts.signal));
        continue;
      }
      const input = seq.replay ?? seq.prompt;
      const slot = this.#pickSlot(input, adapterKey(seq.adapters));
      if (slot < 0) return;
      this.#waiting.splice(i, 1);
      const sl = this.#slot[slot];
      // a prefix cached under other adapters is not this prompt's
      const lora = this.#slots.useAdapters(slot, seq.adapters, true);
      if (lora !== sl.lora) this.#forget(sl, 0);
      sl.lora = lora;
      // reuse the cached prefix, but never the last prompt token: its logits start the generation
      const keep = this.#reuse(sl, input);
      sl.seq = seq;
      sl.lastUsed = ++this.#clock;
      seq.slot = slot;
      seq.evaluated = keep;
      if (!seq.replay) seq.cached = keep;
      this.#report();
    }
  }

  /**
   * The free slot sharing the longest prefix with `prompt` under the same adapters (key
   * `lora`) when that prefix is worth keeping (at least REUSE_MIN_TOKENS, or all of the prompt
   * but its last token), else the least recently used free slot (so a BOS in common, or a
   * prefix cached under other adapters, is not evicted for nothing); -1 when none is free.
   */
  #pickSlot(prompt: number[], lora: string): number {
    let lru = -1, best = -1, bestLen = 0;
    this.#slot.forEach((sl, i) => {
      if (sl.seq) return;
      if (lru < 0 || sl.lastUsed < this.#slot[lru].lastUsed) lru = i;
      const n = sl.lora === lora ? sharedPrefix(sl.tokens, prompt) : 0;
      if (n > bestLen) [best, bestLen] = [i, n];
    });
    return best >= 0 && bestLen >= Math.min(REUSE_MIN_TOKENS, prompt.length - 1) ? best : lru;
  }

  /**
   * One step, one forward: the next token of every decoding sequence, and prompt chunks of the
   * sequences still reading theirs (oldest first, stepTokens tokens in all, within the slots'
   * batch).
   */
  async #step(): Promise<void> {
    const live = () => this.#slot.map((s) => s.seq).filter((s): s is Sequence => !!s);
    for (const seq of live()) this.#dropIfAborted(seq);
    const spans = live()
      .filter((s) => s.decoding)
      .map((seq) => ({ seq, ids: [seq.run.lastId], pos: seq.pos, prompt: false }));
    let budget = Math.min(this.#o.stepTokens, this.#slots.batchSize - spans.length);
    for (const seq of live().filter((s) => !s.decoding).sort((a, b) => a.submitted - b.submitted)) {
      if (budget <= 0) break;
      const input = seq.replay ?? seq.prompt;
      const n = Math.min(budget, input.length - seq.evaluated);
      spans.push({ seq, ids: input.slice(seq.evaluated, seq.evaluated + n), pos: seq.evaluated, prompt: true });
      budget -= n;
    }
    if (this.#slots.paged) this.#reserve(spans);
    if (!spans.length) return;
    // grammars' masks for the coming tokens are made in slices while the forward runs off-thread
    // (a failure surfaces again in #accept, for that sequence alone)
    const [logits] = await Promise.all([
      this.#slots.step(spans.map((sp) => ({ slot: sp.seq.slot, ids: sp.ids, pos: sp.pos }))),
      ...spans.map((sp) => sp.seq.run.prepare()?.catch(() => undefined)),
    ]);
    spans.forEach(({ seq, ids, prompt }, i) => {
      const sl = this.#slot[seq.slot];
      sl.tokens.push(...ids);
      if (this.#pool) this.#register(sl);
      // aborted (abortAll) while the step ran: gone already
      if (sl.seq !== seq) return;
      if (!prompt) seq.pos++;
      else {
        seq.evaluated += ids.length;
        const input = seq.replay ?? seq.prompt;
        if (seq.evaluated < input.length) return;
        seq.decoding = true;
        seq.pos = input.length;
        if (seq.replay) {
          // recomputed after a preemption: the next step feeds the last token drawn
          seq.replay = undefined;
          return;
        }
        this.#events.prompt?.(seq.prompt.length - seq.cached, seq.cached);
      }
      this.#accept(seq, logits[i]);
    });
  }

  /**
   * Paged: gives every span's slot the blocks its positions need, oldest sequence first; when
   * the pool runs short, takes a free slot's kept blocks, then preempts the newest running
   * sequence (dropping its span). A lone sequence always fits (the pool holds a context).
   */
  #reserve(spans: { seq: Sequence; ids: number[]; pos: number }[]): void {
    const bs = this.#slots.paged!.blockSize;
    spans.sort((a, b) => a.seq.submitted - b.seq.submitted);
    for (let i = 0; i < spans.length; ) {
      const { seq, ids, pos } = spans[i], sl = this.#slot[seq.slot];
      const need = Math.ceil((pos + ids.length) / bs);
      while (sl.blocks.length < need) {
        const b = this.#take();
        if (b === undefined) break;
        sl.blocks.push(b);
      }
      if (sl.blocks.length >= need) {
        this.#slots.setBlocks(seq.slot, sl.blocks);
        i++;
        continue;
      }
      // the newest running sequence gives its blocks back (it may be this one)
      const victim = this.#slot.map((s) => s.seq).filter((s): s is Sequence => !!s).reduce((a, b) => (b.submitted > a.submitted ? b : a));
      this.#preempt(victim);
      const at = spans.findIndex((sp) => sp.seq === victim);
      if (at >= 0) spans.splice(at, 1);
      if (at >= 0 && at < i) i--;
    }
  }

  /** A block from the pool, taking back the least recently used free slot's blocks when needed. */
  #take(): number | undefined {
    for (;;) {
      const b = this.#pool!.take();
      if (b !== undefined) return b;
      let lru: Slot | undefined;
      for (const sl of this.#slot) if (!sl.seq && sl.blocks.length && (!lru || sl.lastUsed < lru.lastUsed)) lru = sl;
      if (!lru) return undefined;
      this.#forget(lru, 0);
    }
  }

  /**
   * The prefix of `input` (never its last token) that slot `sl` starts from: what the slot kept,
   * or when longer, the longest run of the prefix cache's blocks holding input's first tokens
   * (those blocks then become the slot's) and after them, copied into a block of the slot's own,
   * the first rows of a block that holds the next tokens (copy on write: a shared prefix ending
   * inside a block is not evaluated again). Returns its length.
   */
  #reuse(sl: Slot, input: readonly number[]): number {
    let keep = sharedPrefix(sl.tokens, input, input.length - 1);
    const pool = this.#pool;
    if (!pool) return this.#forget(sl, keep);
    // paged, a few tokens in common (a BOS) are not worth writing into the slot's first block,
    // which the prefix cache may hold for a longer prompt
    if (keep < Math.min(REUSE_MIN_TOKENS, input.length - 1)) keep = 0;
    const bs = pool.blockSize, blocks: number[] = [], ids: number[] = [];
    for (let i = 0; (i + 1) * bs <= input.length - 1; i++) {
      const hit = pool.lookup(i ? ids[i - 1] : pool.root(sl.lora), input.slice(i * bs, (i + 1) * bs));
      if (!hit) break;
      blocks.push(hit.block);
      ids.push(hit.id);
    }
    const at = blocks.length * bs;
    const found = this.#partial(ids.length ? ids[ids.length - 1] : pool.root(sl.lora), input.slice(at, Math.min(at + bs, input.length - 1)));
    const part = found && found.rows >= COPY_MIN_ROWS ? found : undefined;
    if (at + (part?.rows ?? 0) <= keep) return this.#forget(sl, keep);
    for (const b of blocks) pool.hold(b);
    // held while the slot lets go of its blocks and takes a new one, which may take back cached ones
    if (part) pool.hold(part.block);
    this.#forget(sl, 0);
    let copied = 0;
    const own = part && this.#take();
    if (own !== undefined) {
      this.#slots.copyBlockRows(part!.block, own, part!.rows);
      blocks.push(own);
      copied = part!.rows;
    }
    if (part) pool.release(part.block);
    Object.assign(sl, { blocks, ids, tokens: input.slice(0, at + copied) });
    return sl.tokens.length;
  }

  /**
   * Paged: the block after the chain `parent` whose first rows hold the longest run of `tokens`
   * (fewer than a block's): a registered block (the prefix cache's) or a slot's last block, not
   * full yet (a running sequence's, or a free slot's kept tokens). Undefined when none holds the
   * first token.
   */
  #partial(parent: number, tokens: readonly number[]): { block: number; rows: number } | undefined {
    const pool = this.#pool!, bs = pool.blockSize;
    let best = tokens.length ? pool.partial(parent, tokens) : undefined;
    for (const o of this.#slot) {
      const i = o.ids.length;
      if (o.tokens.length <= i * bs || (i ? o.ids[i - 1] : pool.root(o.lora)) !== parent) continue;
      const rows = sharedPrefix(o.tokens.slice(i * bs), tokens);
      if (rows > (best?.rows ?? 0)) best = { block: o.blocks[i], rows };
    }
    return best;
  }

  /** Paged: the slot's full blocks not registered yet go into the prefix cache. */
  #register(sl: Slot): void {
    const pool = this.#pool!, bs = pool.blockSize;
    for (let i = sl.ids.length; (i + 1) * bs <= sl.tokens.length; i++)
      sl.ids.push(pool.register(i ? sl.ids[i - 1] : pool.root(sl.lora), sl.tokens.slice(i * bs, (i + 1) * bs), sl.blocks[i]));
  }

  /**
   * The slot keeps its first `keep` tokens (and, paged, the blocks that hold them; a block it
   * would write into but shares with another slot goes too, and with it the tokens it holds).
   * Returns what it kept.
   */
  #forget(sl: Slot, keep: number): number {
    const pool = this.#pool;
    if (pool) {
      const bs = pool.blockSize, mid = Math.floor(keep / bs);
      if (keep % bs && mid < sl.blocks.length && !pool.writable(sl.blocks[mid])) keep = mid * bs;
      // the last blocks first: the least recently released go first, and a prefix's tail before its head
      for (const b of sl.blocks.splice(Math.ceil(keep / bs)).reverse()) pool.release(b);
      sl.ids.length = Math.min(sl.ids.length, Math.floor(keep / bs));
    }
    sl.tokens.length = Math.min(sl.tokens.length, keep);
    return sl.tokens.length;
  }

  /** A running sequence leaves its slot, frees its blocks and waits first in line to be evaluated again. */
  #preempt(seq: Sequence): void {
    const sl = this.#slot[seq.slot];
    this.#forget(sl, 0);
    sl.seq = undefined;
    sl.lastUsed = ++this.#clock;
    if (seq.decoding) seq.replay = [...seq.prompt, ...seq.run.ids.slice(0, -1)];
    seq.slot = -1;
    seq.evaluated = 0;
    seq.decoding = false;
    this.#waiting.unshift(seq);
    this.#events.preempted?.();
  }

  /** Draws the sequence's next token from `logits`; ends it when it is done. */
  #accept(seq: Sequence, logits: Float32Array): void {
    try {
      const chunk = seq.run.step(logits);
      const now = performance.now();
      if (seq.run.ids.length === 1 && chunk) this.#events.firstToken?.((now - seq.submitted) / 1000);
      else if (chunk) this.#events.nextToken?.((now - seq.lastToken) / 1000);
      seq.lastToken = now;
      if (chunk) seq.opts.onChunk?.(chunk);
      if (!seq.run.done && seq.pos >= this.#slots.contextSize) seq.run.end('contextFull');
      if (seq.run.done) this.#leave(seq);
    } catch (e) {
      this.#leave(seq, e);
    }
  }

  #dropIfAborted(seq: Sequence): boolean {
    if (!seq.opts.signal?.aborted) return false;
    this.#leave(seq, aborted(seq.opts.signal));
    return true;
  }

  /** The sequence leaves its slot (whose cache keeps the tokens evaluated), resolved or with `error`. */
  #leave(seq: Sequence, error?: unknown): void {
    const sl = this.#slot[seq.slot];
    if (sl?.seq === seq) {
      sl.seq = undefined;
      sl.lastUsed = ++this.#clock;
      this.#slots.releaseAdapters(seq.slot);
      this.#report();
    }
    unhold(seq);
    if (error !== undefined) return seq.reject(error);
    const tail = seq.run.finish();
    if (tail) seq.opts.onChunk?.(tail);
    const r = seq.run;
    seq.resolve({
      ids: r.ids,
      text: r.text,
      finishReason: r.finishReason!,
      promptTokens: seq.prompt.length,
      cachedTokens: seq.cached,
      ...(r.logprobs.length ? { logprobs: r.logprobs } : {}),
    });
  }
}

/** The sequence's adapters released (it ended or left the queue). */
function unhold(seq: Sequence): void {
  for (const a of seq.held.splice(0)) a.release();
}

function aborted(signal: AbortSignal): FuselmError {
  return new FuselmError('E_ABORTED', 'the request was aborted', { cause: signal.reason });
}
