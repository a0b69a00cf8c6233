// Journal decorators for tests: count appends, inject failures, hold appends or loads.
import { JournalUnavailableError } from "../journal/errors.js";
import type { AppendTarget, Journal, LoadedPool, Snapshot } from "../journal/journal.js";

/** A Journal that delegates everything; subclasses override what they observe or break. */
export class ForwardingJournal implements Journal {
  readonly maxAppendEvents?: number;
  constructor(protected readonly inner: Journal) {
    if (inner.maxAppendEvents !== undefined) this.maxAppendEvents = inner.maxAppendEvents;
  }
  fence(pool: string, shard: number, epoch: number): Promise<void> {
    return this.inner.fence(pool, shard, epoch);
  }
  load(pool: string): Promise<LoadedPool> {
    return this.inner.load(pool);
  }
  append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    return this.inner.append(target, events);
  }
  saveSnapshot(pool: string, snapshot: Snapshot): Promise<void> {
    return this.inner.saveSnapshot(pool, snapshot);
  }
  listPools(shard: number): Promise<string[]> {
    return this.inner.listPools(shard);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Counts appends and the events they carried. */
export class CountingJournal extends ForwardingJournal {
  appends = 0;
  events = 0;
  loads = 0;
  override async append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    this.appends++;
    this.events += events.length;
    return this.inner.append(target, events);
  }
  override load(pool: string): Promise<LoadedPool> {
    this.loads++;
    return this.inner.load(pool);
  }
}

/** How a {@link FaultyJournal} breaks one append. */
export type AppendFault = "write-then-throw" | "throw-without-writing";

/**
 * Breaks the appends it is told to: `write-then-throw` writes the events and then
 * throws JournalUnavailableError with outcomeUnknown (a lost reply);
 * `throw-without-writing` throws it without writing (a lost request).
 */
export class FaultyJournal extends ForwardingJournal {
  /** Faults for the next appends, in order; an empty queue means appends succeed. */
  readonly faults: AppendFault[] = [];
  /** Loads that fail (JournalUnavailableError) before loads succeed again. */
  failingLoads = 0;
  appends = 0;
  failedAppends = 0;
  override async append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    this.appends++;
    const fault = this.faults.shift();
    if (fault === undefined) return this.inner.append(target, events);
    this.failedAppends++;
    if (fault === "write-then-throw") await this.inner.append(target, events);
    throw new JournalUnavailableError(`injected ${fault} on pool ${target.pool}`, true);
  }
  override async load(pool: string): Promise<LoadedPool> {
    if (this.failingLoads > 0) {
      this.failingLoads--;
      throw new JournalUnavailableError(`injected load failure on pool ${pool}`, false);
    }
    return this.inner.load(pool);
  }
}

/** Holds every append until {@link release} is called (to observe what queues meanwhile). */
export class GatedJournal extends ForwardingJournal {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  /** Appends waiting at the gate. */
  waiting = 0;
  appends = 0;
  /** From now on appends wait at the gate. */
  hold(): void {
    this.gate ??= new Promise<void>((resolve) => {
      this.open = resolve;
    });
  }
  /** Lets every waiting (and future) append through. */
  release(): void {
    this.open?.();
    this.gate = undefined;
    this.open = undefined;
  }
  override async append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    this.appends++;
    if (this.gate !== undefined) {
      this.waiting++;
      await this.gate;
      this.waiting--;
    }
    return this.inner.append(target, events);
  }
}

/** Holds every load until {@link release} is called (to observe a shard while it recovers). */
export class HeldLoadsJournal extends ForwardingJournal {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  /** From now on loads wait at the gate. */
  hold(): void {
    this.gate ??= new Promise<void>((resolve) => {
      this.open = resolve;
    });
  }
  /** Lets every waiting (and future) load through. */
  release(): void {
    this.open?.();
    this.gate = undefined;
    this.open = undefined;
  }
  override async load(pool: string): Promise<LoadedPool> {
    if (this.gate !== undefined) await this.gate;
    return this.inner.load(pool);
  }
}
