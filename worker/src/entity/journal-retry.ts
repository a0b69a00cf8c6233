// How pool entities and shard recovery retry journal failures: the default policy
// (delays come from @berth/proto's backoffDelayMs) and an unref'd sleep.
import { setTimeout as sleep } from "node:timers/promises";
import type { BackoffPolicy } from "@berth/proto";

/**
 * 10 ms doubling up to 500 ms, with equal jitter (uniform in [d/2, d)): entities whose
 * journal failed at the same moment do not all retry at the same moment.
 */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 10, maxMs: 500, jitter: "equal" };

/** Sleeps `ms` (an unref'd timer: a pending retry never keeps the process alive). */
export function delay(ms: number): Promise<void> {
  return sleep(ms, undefined, { ref: false });
}
