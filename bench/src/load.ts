// The in-process load generator: closed loop (`concurrency` callers issue requests back
// to back, until `total` have completed or for `seconds`), or open loop (requests sent
// at a fixed `rate` on a schedule, each latency counted from its scheduled send time,
// so a slow reply does not hide the wait of the requests behind it).

/** What one load run measured. */
export interface LoadResult {
  readonly ok: number;
  readonly failed: number;
  readonly seconds: number;
  /** Completed requests (ok + failed) per second. */
  readonly rate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Failure counts by error text (first 80 characters). */
  readonly failures: ReadonlyMap<string, number>;
}

class Recorder {
  readonly latencies: number[] = [];
  ok = 0;
  failed = 0;
  readonly failures = new Map<string, number>();
  constructor(private readonly expectedError?: (e: unknown) => boolean) {}
  async run(call: () => Promise<unknown>, t0: bigint): Promise<void> {
    try {
      await call();
      this.ok++;
    } catch (e: unknown) {
      if (this.expectedError?.(e)) this.ok++;
      else {
        this.failed++;
        const key = (e instanceof Error ? e.message : String(e)).slice(0, 80);
        this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
      }
    }
    this.latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  result(seconds: number): LoadResult {
    const sorted = Float64Array.from(this.latencies).sort();
    const at = (q: number): number =>
      sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    return {
      ok: this.ok,
      failed: this.failed,
      seconds,
      rate: (this.ok + this.failed) / seconds,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      failures: this.failures,
    };
  }
}

/**
 * Closed loop: runs `call(i)` with `concurrency` requests in flight, for i = 0..total-1,
 * or (with `seconds`) until that much time has passed.
 */
export async function runLoad(options: {
  readonly total?: number;
  readonly seconds?: number;
  readonly concurrency: number;
  readonly call: (i: number) => Promise<unknown>;
  /** Counts an error as success (e.g. an expected rejection); default: none. */
  readonly expectedError?: (e: unknown) => boolean;
  readonly onProgress?: (done: number) => void;
}): Promise<LoadResult> {
  const rec = new Recorder(options.expectedError);
  const total = options.total ?? Number.POSITIVE_INFINITY;
  const started = process.hrtime.bigint();
  const endAt =
    options.seconds === undefined ? undefined : started + BigInt(Math.round(options.seconds * 1e9));
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < total && (endAt === undefined || process.hrtime.bigint() < endAt)) {
      const i = next++;
      await rec.run(() => options.call(i), process.hrtime.bigint());
      done++;
      if (options.onProgress && done % 2000 === 0) options.onProgress(done);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return rec.result(Number(process.hrtime.bigint() - started) / 1e9);
}

/**
 * Open loop: request i is due at start + i / rate and is sent when due, whatever the
 * replies before it are doing; with at most `maxInFlight` outstanding (as a client's
 * connection pool would allow), later ones wait in a queue and are sent as slots free.
 * Every latency runs from the request's due time, queueing included.
 */
export async function runOpenLoop(options: {
  readonly rate: number;
  readonly seconds: number;
  readonly call: (i: number) => Promise<unknown>;
  readonly maxInFlight?: number;
  readonly expectedError?: (e: unknown) => boolean;
}): Promise<LoadResult> {
  const rec = new Recorder(options.expectedError);
  const maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
  const started = process.hrtime.bigint();
  const n = Math.max(1, Math.round(options.rate * options.seconds));
  const stepNs = 1e9 / options.rate;
  const dueAt = (k: number): bigint => started + BigInt(Math.round(k * stepNs));
  const queue: number[] = [];
  let inFlight = 0;
  let finished = 0;
  let allDone: () => void = () => {};
  const everything = new Promise<void>((r) => {
    allDone = r;
  });
  const pump = (): void => {
    while (inFlight < maxInFlight && queue.length > 0) {
      const k = queue.shift() as number;
      inFlight++;
      void rec
        .run(() => options.call(k), dueAt(k))
        .finally(() => {
          inFlight--;
          if (++finished === n) allDone();
          else pump();
        });
    }
  };
  let i = 0;
  while (i < n) {
    const now = process.hrtime.bigint();
    while (i < n && dueAt(i) <= now) queue.push(i++);
    pump();
    if (i < n) {
      const wait = Number(dueAt(i) - process.hrtime.bigint()) / 1e6;
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(wait, 5))));
    }
  }
  await everything;
  return rec.result(Number(process.hrtime.bigint() - started) / 1e9);
}
