// A journal whose backend (Cassandra) may be unreachable, when the worker starts or at
// any time later. At start it connects in the background, retrying with capped backoff,
// and until then every call fails with JournalUnavailableError (nothing was sent, so
// outcomeUnknown is false). Once connected it watches the calls it passes on: when they
// keep failing as unavailable for `outageAfterMs` with no success between, the journal
// is declared unreachable (probed until it answers again). In both phases the worker
// serves its gRPC/HTTP endpoints, reports the reason on /readyz and answers commands
// UNAVAILABLE (JOURNAL_UNAVAILABLE) at once; see worker-server.ts.
import { setTimeout as sleep } from "node:timers/promises";
import { type BackoffPolicy, backoffDelayMs } from "@berth/proto";
import { JournalUnavailableError } from "../journal/errors.js";
import type { AppendTarget, Journal, LoadedPool, Snapshot } from "../journal/journal.js";

/**
 * Retry schedule of {@link ConnectingJournal}: doubling from `initialMs`, capped at
 * `maxMs` ({@link backoffDelayMs}), without jitter: one worker, one backend.
 */
export type ConnectBackoff = Pick<BackoffPolicy, "initialMs" | "maxMs">;

/** Default: 250 ms doubling to 5 s. */
export const DEFAULT_CONNECT_BACKOFF: ConnectBackoff = { initialMs: 250, maxMs: 5000 };

/** A change in the health of a connected journal, for logs. */
export type JournalHealthEvent =
  | {
      /** Calls kept failing for `outageAfterMs`: the journal is declared unreachable. */
      readonly state: "down";
      readonly reason: string;
      readonly failures: number;
    }
  | {
      /** Still unreachable (reported at most every `reportEveryMs`). */
      readonly state: "still_down";
      readonly reason: string;
      readonly failures: number;
      readonly outageMs: number;
    }
  | {
      /** A call or probe succeeded again after the outage. */
      readonly state: "up";
      readonly failures: number;
      readonly outageMs: number;
    };

/** How a connected {@link ConnectingJournal} decides and ends an outage. */
export interface OutagePolicy {
  /** Failures with no success between for this long make an outage. Default 1,000 ms. */
  readonly outageAfterMs: number;
  /** Probe schedule while calls fail (a `listPools` read). Default 250 ms doubling to 2 s. */
  readonly probe: ConnectBackoff;
  /** Least time between two `still_down` reports. Default 30,000 ms. */
  readonly reportEveryMs: number;
}

/** Default {@link OutagePolicy}. */
export const DEFAULT_OUTAGE_POLICY: OutagePolicy = {
  outageAfterMs: 1000,
  probe: { initialMs: 250, maxMs: 2000 },
  reportEveryMs: 30_000,
};

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
  /** Outage detection once connected. */
  readonly outage?: Partial<OutagePolicy>;
  /** Called when a connected journal becomes unreachable, stays so, or answers again. */
  readonly onHealthChange?: (event: JournalHealthEvent) => void;
}

/** A connected journal's failures in a row (no success between), while any. */
interface Failing {
  readonly since: number;
  failures: number;
  reason: string;
  down: boolean;
  lastReportAt: number;
}

/** Delay before retry `attempt` (1-based) under `backoff`: no jitter. */
function connectDelayMs(attempt: number, backoff: ConnectBackoff): number {
  return backoffDelayMs(attempt, { ...backoff, jitter: "none" });
}

/**
 * A {@link Journal} that becomes usable once its backend answers, and says when its
 * backend stops answering afterwards.
 */
export class ConnectingJournal implements Journal {
  private journal: Journal | undefined;
  private failing: Failing | undefined;
  private probing: Promise<void> | undefined;
  private readonly policy: OutagePolicy;
  private reason: string;
  private fatal: Error | undefined;
  private closed = false;
  private wake: AbortController | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly connected: Promise<Journal>;
  private readonly loop: Promise<void>;

  constructor(private readonly o: ConnectingJournalOptions) {
    this.reason = `connecting to ${o.describe}`;
    this.policy = { ...DEFAULT_OUTAGE_POLICY, ...o.outage };
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

  /**
   * undefined while the journal is usable; otherwise why not: not connected yet, or
   * connected but unreachable (calls kept failing for `outageAfterMs`).
   */
  unavailableReason(): string | undefined {
    if (this.journal !== undefined) {
      return this.failing?.down ? `journal unavailable: ${this.failing.reason}` : undefined;
    }
    if (this.fatal !== undefined) return `journal failed: ${this.fatal.message}`;
    return `journal unavailable: ${this.reason}`;
  }

  /** Resolves once connected; rejects on a fatal error or when closed first. */
  async whenConnected(): Promise<void> {
    await this.connected;
  }

  /** Registers a listener called when the state changes (connected, failed attempt, fatal, outage start and end). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  fence(pool: string, shard: number, epoch: number): Promise<void> {
    return this.watch(this.use("fence").fence(pool, shard, epoch));
  }

  load(pool: string): Promise<LoadedPool> {
    return this.watch(this.use("load").load(pool));
  }

  append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    return this.watch(this.use("append").append(target, events));
  }

  saveSnapshot(pool: string, snapshot: Snapshot): Promise<void> {
    return this.watch(this.use("saveSnapshot").saveSnapshot(pool, snapshot));
  }

  listPools(shard: number): Promise<string[]> {
    return this.watch(this.use("listPools").listPools(shard));
  }

  /** Stops connecting (waiting for an attempt in progress) and closes the journal if open. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.wake?.abort();
    }
    await this.loop;
    await this.probing;
    await this.journal?.close();
  }

  /**
   * Passes a call's outcome through, noting it: JournalUnavailableError counts as a
   * failure; anything else (a result, a conflict, a fence) shows the journal answers.
   */
  private async watch<T>(call: Promise<T>): Promise<T> {
    try {
      const result = await call;
      this.answered();
      return result;
    } catch (e: unknown) {
      if (e instanceof JournalUnavailableError) this.unanswered(e);
      else this.answered();
      throw e;
    }
  }

  private answered(): void {
    const f = this.failing;
    if (f === undefined) return;
    this.failing = undefined;
    if (!f.down) return;
    this.changed();
    this.o.onHealthChange?.({ state: "up", failures: f.failures, outageMs: Date.now() - f.since });
  }

  private unanswered(e: JournalUnavailableError): void {
    if (this.closed) return;
    const now = Date.now();
    let f = this.failing;
    if (f === undefined) {
      f = { since: now, failures: 0, reason: e.message, down: false, lastReportAt: now };
      this.failing = f;
      this.probing ??= this.probe();
    }
    f.failures++;
    f.reason = e.message;
    if (!f.down && now - f.since >= this.policy.outageAfterMs) {
      f.down = true;
      f.lastReportAt = now;
      this.changed();
      this.o.onHealthChange?.({ state: "down", reason: f.reason, failures: f.failures });
    } else if (f.down && now - f.lastReportAt >= this.policy.reportEveryMs) {
      f.lastReportAt = now;
      this.o.onHealthChange?.({
        state: "still_down",
        reason: f.reason,
        failures: f.failures,
        outageMs: now - f.since,
      });
    }
  }

  /**
   * While calls fail, reads from the journal on a schedule, so that an outage is
   * declared, and its end noticed, even when no command arrives.
   */
  private async probe(): Promise<void> {
    try {
      for (let attempt = 1; this.failing !== undefined && !this.closed; attempt++) {
        this.wake = new AbortController();
        await sleep(connectDelayMs(attempt, this.policy.probe), undefined, {
          signal: this.wake.signal,
          ref: false,
        }).catch(() => undefined);
        if (this.failing === undefined || this.closed || this.journal === undefined) return;
        await this.watch(this.journal.listPools(0)).catch(() => undefined);
      }
    } finally {
      this.probing = undefined;
    }
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
