/**
 * The server's Prometheus metrics (prom-client), in a registry of its own (several servers in
 * one process keep separate counts). Names follow Prometheus' conventions: `_total` counters,
 * `_seconds` histograms.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SchedulerEvents } from './scheduler.js';

/** Buckets for time to first token and inter-token latency: 1 ms .. 60 s. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly promptTokens = new Counter({ name: 'fuselm_prompt_tokens_total', help: 'Prompt tokens of finished prompt evaluations (reused ones included)', registers: [this.registry] });
  readonly promptTokensReused = new Counter({
    name: 'fuselm_prefix_cache_hit_tokens_total',
    help: "Prompt tokens whose KV cache entries a slot already held (not evaluated again)",
    registers: [this.registry],
  });
  readonly generatedTokens = new Counter({ name: 'fuselm_generated_tokens_total', help: 'Tokens generated', registers: [this.registry] });
  readonly running = new Gauge({ name: 'fuselm_requests_running', help: 'Sequences holding a KV cache slot', registers: [this.registry] });
  readonly waiting = new Gauge({ name: 'fuselm_requests_waiting', help: 'Sequences queued for a slot', registers: [this.registry] });
  readonly kvUsed = new Gauge({ name: 'fuselm_kv_cache_used_tokens', help: 'KV cache positions holding a token, in all slots (running sequences and kept prefixes)', registers: [this.registry] });
  readonly kvFree = new Gauge({ name: 'fuselm_kv_cache_free_tokens', help: 'KV cache positions free, in all slots', registers: [this.registry] });
  readonly kvBlocksUsed = new Gauge({ name: 'fuselm_kv_blocks_used', help: 'Paged KV cache blocks held by running sequences', registers: [this.registry] });
  readonly kvBlocksKept = new Gauge({ name: 'fuselm_kv_blocks_kept', help: 'Paged KV cache blocks kept by free slots (reusable prefixes, taken back when the pool runs short)', registers: [this.registry] });
  readonly kvBlocksFree = new Gauge({ name: 'fuselm_kv_blocks_free', help: 'Paged KV cache blocks free', registers: [this.registry] });
  readonly preemptions = new Counter({ name: 'fuselm_preemptions_total', help: 'Running sequences preempted (recomputed later) when the KV blocks ran out', registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'fuselm_time_to_first_token_seconds', help: 'From a request queued to its first token', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly itl = new Histogram({ name: 'fuselm_inter_token_latency_seconds', help: 'Between consecutive tokens of a sequence', buckets: LATENCY_BUCKETS, registers: [this.registry] });

  constructor(readonly capacity: number, blocks = 0) {
    this.kvFree.set(capacity);
    this.kvUsed.set(0);
    this.kvBlocksUsed.set(0);
    this.kvBlocksKept.set(0);
    this.kvBlocksFree.set(blocks);
  }

  /** The scheduler's events, feeding these series. */
  events(): SchedulerEvents {
    return {
      firstToken: (s) => {
        this.ttft.observe(s);
        this.generatedTokens.inc();
      },
      nextToken: (s) => {
        this.itl.observe(s);
        this.generatedTokens.inc();
      },
      prompt: (evaluated, reused) => {
        this.promptTokens.inc(evaluated + reused);
        this.promptTokensReused.inc(reused);
      },
      load: (running, waiting, cachedTokens) => {
        this.running.set(running);
        this.waiting.set(waiting);
        this.kvUsed.set(cachedTokens);
        this.kvFree.set(this.capacity - cachedTokens);
      },
      blocks: (used, kept, free) => {
        this.kvBlocksUsed.set(used);
        this.kvBlocksKept.set(kept);
        this.kvBlocksFree.set(free);
      },
      preempted: () => this.preemptions.inc(),
    };
  }
}
