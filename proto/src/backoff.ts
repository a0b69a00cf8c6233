/**
 * Berth's one retry backoff: capped exponential, with the jitter each caller chooses.
 * Every retry loop (journal writes, shard recovery, forwarding, reconnecting streams,
 * watches, the operator's work queue, restarting local children) takes its delays from
 * {@link backoffDelayMs}; only the policy differs. Pure: randomness is passed in.
 */

/**
 * How the delay `d` of an attempt is randomised:
 * - `"none"`: exactly `d` — one caller retrying one backend, nothing to spread out;
 * - `"equal"`: uniform in [d/2, d) ("equal jitter": half fixed, half random) — callers
 *   failing together spread out, and none retries sooner than d/2;
 * - `"full"`: uniform in [0, d) ("full jitter") — the widest spread, for contention
 *   where retrying at once is fine.
 */
export type BackoffJitter = "none" | "equal" | "full";

/** A retry policy: the first delay, the cap, and the jitter. */
export interface BackoffPolicy {
  /** Delay before the first retry (before jitter), ≥ 0. */
  readonly initialMs: number;
  /** Largest delay (before jitter), ≥ 0. */
  readonly maxMs: number;
  /** How the delay is randomised; see {@link BackoffJitter}. */
  readonly jitter: BackoffJitter;
}

/** Doublings after which the delay stops growing, whatever the cap (2^30 ≫ any cap). */
const MAX_DOUBLINGS = 30;

/**
 * The delay before retry number `attempt` (1-based: the first retry is attempt 1):
 * `d = min(maxMs, initialMs · 2^(attempt−1))`, then jittered as `policy.jitter` says.
 * Attempts below 1 count as 1.
 *
 * @param attempt which retry this is, from 1
 * @param policy first delay, cap and jitter
 * @param random uniform in [0, 1); called once for "equal" and "full", never for "none"
 * @returns milliseconds, in [0, maxMs]
 */
export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const doublings = Math.max(0, Math.min(Math.floor(attempt) - 1, MAX_DOUBLINGS));
  const d = Math.min(policy.maxMs, policy.initialMs * 2 ** doublings);
  switch (policy.jitter) {
    case "none":
      return d;
    case "equal":
      return d / 2 + (random() * d) / 2;
    case "full":
      return random() * d;
  }
}
