// Restart delays for a crashed child process. Pure.
import { backoffDelayMs } from "@berth/proto";

/** Options of {@link RestartBackoff}. */
export interface RestartBackoffOptions {
  /** First delay. Default 1,000 ms. */
  readonly initialMs?: number;
  /** Largest delay. Default 30,000 ms. */
  readonly maxMs?: number;
  /** A process that stayed up this long before crashing starts over at `initialMs`. Default 10,000 ms. */
  readonly resetAfterMs?: number;
}

/**
 * Exponential restart backoff ({@link backoffDelayMs}, no jitter: each child restarts on
 * its own schedule): 1 s, 2 s, 4 s, … capped at `maxMs`, back to the first delay once a
 * process has stayed up for `resetAfterMs`. A process that
 * crashes in a loop is restarted ever more slowly; one that crashes once a day is
 * restarted at once.
 */
export class RestartBackoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #resetAfterMs: number;
  #attempt = 0;

  constructor(options: RestartBackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 1000;
    this.#maxMs = options.maxMs ?? 30_000;
    this.#resetAfterMs = options.resetAfterMs ?? 10_000;
  }

  /**
   * The delay before restarting a process that just exited.
   *
   * @param uptimeMs how long the process ran before it exited
   */
  next(uptimeMs: number): number {
    if (uptimeMs >= this.#resetAfterMs) this.#attempt = 0;
    this.#attempt++;
    return backoffDelayMs(this.#attempt, {
      initialMs: this.#initialMs,
      maxMs: this.#maxMs,
      jitter: "none",
    });
  }
}
