// How a pool entity logs a run of journal failures (an unavailable journal, retried)
// without flooding the log: the worker reports the journal's health itself
// (readiness, and its own summarised warnings).

/** Least time between two warnings about one pool's journal failures. */
export const JOURNAL_WARN_EVERY_MS = 30_000;

/** Where a {@link JournalFailureRun} writes (a pino Logger). */
export interface FailureLog {
  warn(fields: object, msg: string): void;
  debug(fields: object, msg: string): void;
}

/**
 * One pool's journal failures since it last answered. The first is a warning, then at
 * most one per {@link JOURNAL_WARN_EVERY_MS} with the count so far; the others go to
 * debug. Made at a run's first failure and dropped when the journal answers again: a
 * pool whose journal answers keeps none.
 */
export class JournalFailureRun {
  private count = 0;
  private lastWarnAt = 0;

  /** Failures in this run so far. */
  get failures(): number {
    return this.count;
  }

  /** Logs one more failure at `now` (ms, as performance.now()). */
  failed(log: FailureLog, fields: Record<string, unknown>, msg: string, now: number): void {
    this.count++;
    if (this.count === 1 || now - this.lastWarnAt >= JOURNAL_WARN_EVERY_MS) {
      this.lastWarnAt = now;
      log.warn({ ...fields, failuresInARow: this.count }, msg);
    } else {
      log.debug(fields, msg);
    }
  }
}
