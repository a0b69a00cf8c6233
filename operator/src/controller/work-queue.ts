// A work queue in the controller-runtime mould: keys, not events, are queued;
// a key queued twice is queued once; a key is processed by one worker at a time
// (re-added while in flight, it runs again after); failures back off per key,
// exponentially, and an overall token bucket bounds the rate of retries. Keys the
// `urgent` predicate picks (the operator's ShardMap key) jump ahead of the others, so
// one key that moves shards never waits behind thousands of pool reconciles.

import { backoffDelayMs } from "@berth/proto";

/** Options of a {@link WorkQueue}. */
export interface WorkQueueOptions {
  /** First retry delay of a failing key (default 50 ms); doubles per failure, no jitter. */
  readonly baseDelayMs?: number;
  /** Longest retry delay of a failing key (default 30 s). */
  readonly maxDelayMs?: number;
  /** Sustained rate of rate-limited re-adds over all keys (default 20 per second). */
  readonly retriesPerSecond?: number;
  /** Burst of rate-limited re-adds (default 100). */
  readonly retryBurst?: number;
  /** Monotonic milliseconds (default performance.now). */
  readonly now?: () => number;
  /** Keys for which this answers true are handed out before every other queued key. */
  readonly urgent?: (key: string) => boolean;
}

/** A de-duplicating, rate-limited queue of keys. */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly urgentQueue: string[] = [];
  private readonly isUrgent: (key: string) => boolean;
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly retriesPerSecond: number;
  private readonly retryBurst: number;
  private readonly now: () => number;
  private tokens: number;
  private tokensAt: number;
  private closed = false;

  constructor(options: WorkQueueOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.retriesPerSecond = options.retriesPerSecond ?? 20;
    this.retryBurst = options.retryBurst ?? 100;
    this.now = options.now ?? (() => performance.now());
    this.isUrgent = options.urgent ?? (() => false);
    this.tokens = this.retryBurst;
    this.tokensAt = this.now();
  }

  /** Keys waiting to be processed (not counting those in flight or delayed). */
  get depth(): number {
    return this.queue.length + this.urgentQueue.length;
  }

  /** True once {@link shutDown} was called. */
  get isShutDown(): boolean {
    return this.closed;
  }

  /** Queues a key now. A key already queued stays queued once; one in flight runs again after. */
  add(key: string): void {
    if (this.closed || this.queued.has(key)) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queued.add(key);
    (this.isUrgent(key) ? this.urgentQueue : this.queue).push(key);
  }

  /** Queues a key after a delay; an earlier pending delay of the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.closed) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending !== undefined && pending.at <= at) return;
    if (pending !== undefined) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Queues a failed key again, after its per-key backoff and within the overall retry rate. */
  addRateLimited(key: string): void {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // No jitter, as controller-runtime's per-item limiter: the token bucket spreads retries.
    const perKey = backoffDelayMs(n + 1, {
      initialMs: this.baseDelayMs,
      maxMs: this.maxDelayMs,
      jitter: "none",
    });
    this.addAfter(key, Math.max(perKey, this.bucketDelay()));
  }

  /** How many times in a row a key has failed. */
  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Forgets a key's failures (call after it was processed successfully). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** The next key to process; waits for one. Undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const key = this.urgentQueue.shift() ?? this.queue.shift();
    if (key !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks a key processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  /** Stops handing out keys: pending and future {@link get} calls answer undefined. */
  shutDown(): void {
    this.closed = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  private bucketDelay(): number {
    const now = this.now();
    this.tokens = Math.min(
      this.retryBurst,
      this.tokens + ((now - this.tokensAt) / 1000) * this.retriesPerSecond,
    );
    this.tokensAt = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.retriesPerSecond) * 1000;
  }
}

/** What a reconcile asks of the queue when it succeeded. */
export interface ReconcileResult {
  /** Reconcile this key again after this long (e.g. to re-check a Lease expiry). */
  readonly requeueAfterMs?: number;
}

/**
 * Runs `workers` loops that take keys from the queue and reconcile them until the
 * queue is shut down. A reconcile that throws is retried with backoff; one that
 * succeeds has its failures forgotten.
 *
 * @returns a promise that settles when every loop has ended
 */
export async function processQueue(
  queue: WorkQueue,
  reconcile: (key: string) => Promise<ReconcileResult | undefined>,
  options: { readonly workers?: number; readonly onError?: (key: string, e: unknown) => void } = {},
): Promise<void> {
  const loop = async () => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        const result = await reconcile(key);
        queue.forget(key);
        if (result?.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (e: unknown) {
        options.onError?.(key, e);
        queue.addRateLimited(key);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: options.workers ?? 1 }, loop));
}
