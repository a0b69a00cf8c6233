// A journal whose backend (Cassandra) may be unreachable when the worker starts: it
// connects in the background, retrying with capped backoff, and until then every call
// fails with JournalUnavailableError (nothing was sent, so outcomeUnknown is false).
// The worker serves its gRPC/HTTP endpoints meanwhile, reports the reason on /readyz
// and answers commands UNAVAILABLE (JOURNAL_UNAVAILABLE); see worker-server.ts.
import { setTimeout as sleep } from "node:timers/promises";
import { JournalUnavailableError } from "../journal/errors.js";
import type { AppendTarget, Journal, LoadedPool, Snapshot } from "../journal/journal.js";

/** Retry schedule of {@link ConnectingJournal}: doubling from `initialMs`, capped at `maxMs`. */
export interface ConnectBackoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** Default: 250 ms doubling to 5 s. */
export const DEFAULT_CONNECT_BACKOFF: ConnectBackoff = { initialMs: 250, maxMs: 5000 };

/** Options of {@link ConnectingJournal}. */
export interface ConnectingJournalOptions {
  /**
   * Opens the real journal. A JournalUnavailableError is retried; any other error is
   * fatal (bad options, a keyspace migrated by a newer build): no more attempts, and
   * {@link ConnectingJournal.whenConnected} rejects with it.
   */
  readonly connect: () => Promise<Journal>;
  /** What is being connected to, for messages (e.g. "Cassandra at 127.0.0.1:9042"). */
  readonly describe: string;
  readonly backoff?: ConnectBackoff;
  /** Called after each failed attempt, with the delay before the next one. */
  readonly onAttemptFailed?: (error: unknown, attempt: number, retryInMs: number) => void;
  /** Called once connected. */
  readonly onConnected?: (attempts: number) => void;
}

/** Delay before retry `attempt` (1-based): initial·2^(attempt-1), capped. No jitter: one worker, one backend. */
export function connectDelayMs(attempt: number, backoff: ConnectBackoff): number {
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
}

/** A {@link Journal} that becomes usable once its backend answers. */
export class ConnectingJournal implements Journal {
  private journal: Journal | undefined;
  private reason: string;
  private fatal: Error | undefined;
  private closed = false;
  private wake: AbortController | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly connected: Promise<Journal>;
  private readonly loop: Promise<void>;

  constructor(private readonly o: ConnectingJournalOptions) {
    this.reason = `connecting to ${o.describe}`;
    let resolve!: (j: Journal) => void;
    let reject!: (e: Error) => void;
    this.connected = new Promise<Journal>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A caller that never asks must not see an unhandled rejection.
    this.connected.catch(() => undefined);
    this.loop = this.run(resolve, reject);
  }

  /** undefined once connected; otherwise why the journal cannot be used yet. */
  unavailableReason(): string | undefined {
    if (this.journal !== undefined) return undefined;
    if (this.fatal !== undefined) return `journal failed: ${this.fatal.message}`;
    return `journal unavailable: ${this.reason}`;
  }

  /** Resolves once connected; rejects on a fatal error or when closed first. */
  async whenConnected(): Promise<void> {
    await this.connected;
  }

  /** Registers a listener called when the state changes (connected, failed attempt, fatal). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  fence(pool: string, shard: number, epoch: number): Promise<void> {
    return this.use("fence").fence(pool, shard, epoch);
  }

  load(pool: string): Promise<LoadedPool> {
    return this.use("load").load(pool);
  }

  append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    return this.use("append").append(target, events);
  }

  saveSnapshot(pool: string, snapshot: Snapshot): Promise<void> {
    return this.use("saveSnapshot").saveSnapshot(pool, snapshot);
  }

  listPools(shard: number): Promise<string[]> {
    return this.use("listPools").listPools(shard);
  }

  /** Stops connecting (waiting for an attempt in progress) and closes the journal if open. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.wake?.abort();
    }
    await this.loop;
    await this.journal?.close();
  }

  private use(op: string): Journal {
    if (this.journal !== undefined) return this.journal;
    throw new JournalUnavailableError(
      `${op}: ${this.closed ? "the journal is closed" : (this.unavailableReason() ?? "")}`,
      false,
    );
  }

  private async run(resolve: (j: Journal) => void, reject: (e: Error) => void): Promise<void> {
    const backoff = this.o.backoff ?? DEFAULT_CONNECT_BACKOFF;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) {
        reject(new Error(`closed before connecting to ${this.o.describe}`));
        return;
      }
      let journal: Journal;
      try {
        journal = await this.o.connect();
      } catch (e: unknown) {
        if (!(e instanceof JournalUnavailableError)) {
          this.fatal = e instanceof Error ? e : new Error(String(e));
          this.changed();
          reject(this.fatal);
          return;
        }
        this.reason = e.message;
        const wait = connectDelayMs(attempt, backoff);
        this.changed();
        this.o.onAttemptFailed?.(e, attempt, wait);
        this.wake = new AbortController();
        await sleep(wait, undefined, { signal: this.wake.signal }).catch(() => undefined);
        continue;
      }
      if (this.closed) {
        await journal.close();
        reject(new Error(`closed before connecting to ${this.o.describe}`));
        return;
      }
      this.journal = journal;
      this.changed();
      this.o.onConnected?.(attempt);
      resolve(journal);
      return;
    }
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}
