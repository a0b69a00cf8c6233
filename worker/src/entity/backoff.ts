// Retry delays for journal failures: exponential, capped, with full jitter.
import { setTimeout as sleep } from "node:timers/promises";

/** Base and cap of {@link backoffDelayMs}. */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
}

/** The default policy: 10 ms doubling up to 500 ms. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 10, maxMs: 500 };

/** Delay before retry number `attempt` (1-based): random in [d/2, d], d = min(max, base·2^(attempt-1)). */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  const d = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return d / 2 + Math.random() * (d / 2);
}

/** Sleeps `ms` (an unref'd timer: a pending retry never keeps the process alive). */
export function delay(ms: number): Promise<void> {
  return sleep(ms, undefined, { ref: false });
}
