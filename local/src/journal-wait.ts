// Waiting, at start, for a journal that may still be starting (Cassandra).
import { ConnectingJournal, openJournal } from "@berth/worker";
import type { Log } from "./cluster-log.js";

/**
 * Waits until the journal at `url` answers, with a progress line at most every
 * `intervalMs`; no time limit (Ctrl-C stops it: `signal`).
 *
 * @throws Error when the journal fails for good (e.g. a keyspace of a newer build)
 */
export async function waitForJournal(
  url: string,
  log: Log,
  intervalMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const started = Date.now();
  let lastLine = Number.NEGATIVE_INFINITY;
  const journal = await openJournal(url, {
    onAttemptFailed: (e, attempt, retryInMs) => {
      if (Date.now() - lastLine < intervalMs) return;
      lastLine = Date.now();
      log(
        "warn",
        `waiting for the journal (${Math.round((Date.now() - started) / 1000)} s so far; Ctrl-C to stop)`,
        {
          event: "local.waiting_for_journal",
          journal: url,
          attempt,
          retryInMs,
          reason: e instanceof Error ? e.message : String(e),
        },
      );
    },
  });
  try {
    if (!(journal instanceof ConnectingJournal)) return;
    const aborted = new Promise<void>((resolvePromise) => {
      if (signal?.aborted) resolvePromise();
      signal?.addEventListener("abort", () => resolvePromise(), { once: true });
    });
    await Promise.race([journal.whenConnected(), aborted]);
    if (!signal?.aborted) log("info", "the journal answers", { journal: url });
  } finally {
    await journal.close().catch(() => undefined);
  }
}
