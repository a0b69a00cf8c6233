// Rate limiting for repeated log lines: an adapter that retries every second while
// the API server is down must not write a line every second, yet the first failure,
// a change of error and the recovery must always be visible.

/** What {@link LogThrottle.failure} decided for one occurrence. */
export interface ThrottleDecision {
  /** Whether to write this occurrence. */
  readonly log: boolean;
  /** Occurrences not written since the last one that was (to add to the line). */
  readonly suppressed: number;
}

/**
 * Decides which of a stream of repeated failures to log: the first one, any whose
 * message differs from the last logged one, and otherwise at most one per interval.
 * {@link recovered} tells whether a failure streak just ended (to log the recovery).
 */
export class LogThrottle {
  private lastLoggedAt: number | undefined;
  private lastMessage: string | undefined;
  private suppressedCount = 0;
  private streak = 0;

  /**
   * @param intervalMs least time between two lines about the same failure
   * @param now monotonic milliseconds (default performance.now)
   */
  constructor(
    private readonly intervalMs = 30_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Records one failure with `message` and says whether to log it. */
  failure(message: string): ThrottleDecision {
    const now = this.now();
    this.streak++;
    const due =
      this.lastLoggedAt === undefined ||
      message !== this.lastMessage ||
      now - this.lastLoggedAt >= this.intervalMs;
    if (!due) {
      this.suppressedCount++;
      return { log: false, suppressed: this.suppressedCount };
    }
    const suppressed = this.suppressedCount;
    this.lastLoggedAt = now;
    this.lastMessage = message;
    this.suppressedCount = 0;
    return { log: true, suppressed };
  }

  /**
   * Records a success. Returns how many failures in a row it ended (0 when the
   * previous attempt succeeded too), and starts the next streak afresh.
   */
  recovered(): number {
    const streak = this.streak;
    this.streak = 0;
    this.lastLoggedAt = undefined;
    this.lastMessage = undefined;
    this.suppressedCount = 0;
    return streak;
  }
}
