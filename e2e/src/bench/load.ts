// A closed-loop load generator: `concurrency` callers issue requests back to back
// until `total` have completed, recording each latency.

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

/** Runs `call(i)` for i = 0..total-1 with `concurrency` requests in flight. */
export async function runLoad(options: {
  readonly total: number;
  readonly concurrency: number;
  readonly call: (i: number) => Promise<unknown>;
  /** Counts an error as success (e.g. an expected rejection); default: none. */
  readonly expectedError?: (e: unknown) => boolean;
  readonly onProgress?: (done: number) => void;
}): Promise<LoadResult> {
  const latencies = new Float64Array(options.total);
  let next = 0;
  let done = 0;
  let ok = 0;
  let failed = 0;
  const failures = new Map<string, number>();
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < options.total) {
      const i = next++;
      const t0 = process.hrtime.bigint();
      try {
        await options.call(i);
        ok++;
      } catch (e: unknown) {
        if (options.expectedError?.(e)) ok++;
        else {
          failed++;
          const key = (e instanceof Error ? e.message : String(e)).slice(0, 80);
          failures.set(key, (failures.get(key) ?? 0) + 1);
        }
      }
      latencies[i] = Number(process.hrtime.bigint() - t0) / 1e6;
      done++;
      if (options.onProgress && done % 2000 === 0) options.onProgress(done);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const sorted = latencies.sort();
  const at = (q: number): number =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    ok,
    failed,
    seconds,
    rate: (ok + failed) / seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    failures,
  };
}
