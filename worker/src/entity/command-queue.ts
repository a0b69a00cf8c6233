// The commands waiting for their turn at one pool entity, with their deadlines, and the
// answers a waiting command gets when it never runs.
import type { AnyEntityOutcome, EntityCommand, EntityFailure } from "./entity-outcome.js";

/** A submitted command, from submission until it is answered. */
export interface PendingCommand {
  readonly command: EntityCommand;
  /** Absolute, in ms since the epoch (as Date.now()). */
  readonly deadline: number;
  readonly resolve: (outcome: AnyEntityOutcome) => void;
  /** expectedVersion of the first failed append that carried this command's events. */
  failedFromVersion: number | undefined;
  /** The command behind this one in its queue: the {@link CommandQueue}'s link, no one else's. */
  next: PendingCommand | undefined;
}

/** How long a caller told UNAVAILABLE waits before it tries again. */
export const JOURNAL_RETRY_MS = 100;

const NOTHING_TAKEN: readonly PendingCommand[] = Object.freeze([]);

/**
 * Commands in arrival order, linked through {@link PendingCommand.next}: a queue is one
 * small object whatever it holds, and taking a batch from its front or putting one back
 * moves no other command. An entity with nothing waiting keeps none (it shares
 * {@link NO_COMMANDS}): a worker hosts 100,000 pools, most of them idle.
 */
export class CommandQueue {
  private head: PendingCommand | undefined = undefined;
  private tail: PendingCommand | undefined = undefined;
  private size = 0;

  get length(): number {
    return this.size;
  }

  /** Adds `p` at the back. */
  push(p: PendingCommand): void {
    p.next = undefined;
    if (this.tail === undefined) this.head = p;
    else this.tail.next = p;
    this.tail = p;
    this.size++;
  }

  /** Removes and returns the command at the front; undefined when empty. */
  shift(): PendingCommand | undefined {
    const p = this.head;
    if (p === undefined) return undefined;
    this.head = p.next;
    if (this.head === undefined) this.tail = undefined;
    p.next = undefined;
    this.size--;
    return p;
  }

  /** Puts `commands` back at the front, in their order, ahead of what waits. */
  requeue(commands: readonly PendingCommand[]): void {
    for (let i = commands.length - 1; i >= 0; i--) {
      const p = commands[i] as PendingCommand;
      p.next = this.head;
      if (this.head === undefined) this.tail = p;
      this.head = p;
      this.size++;
    }
  }

  /** Empties the queue, returning what it held in order. */
  take(): readonly PendingCommand[] {
    if (this.size === 0) return NOTHING_TAKEN;
    const taken: PendingCommand[] = [];
    for (let p = this.head; p !== undefined; ) {
      const next: PendingCommand | undefined = p.next;
      p.next = undefined;
      taken.push(p);
      p = next;
    }
    this.head = undefined;
    this.tail = undefined;
    this.size = 0;
    return taken;
  }

  /** Answers every waiting command whose deadline is at or before `now` (see {@link expiredAnswer}). */
  expire(now: number, pool: string): void {
    let before: PendingCommand | undefined;
    for (let p = this.head; p !== undefined; ) {
      const next: PendingCommand | undefined = p.next;
      if (p.deadline <= now) {
        if (before === undefined) this.head = next;
        else before.next = next;
        if (next === undefined) this.tail = before;
        p.next = undefined;
        this.size--;
        p.resolve(expiredAnswer(p, pool));
      } else {
        before = p;
      }
      p = next;
    }
  }
}

/**
 * The queue of every entity with no command waiting. Frozen: a write to it throws
 * instead of reaching another entity; an entity that has a command to queue makes its own.
 */
export const NO_COMMANDS = Object.freeze(new CommandQueue()) as CommandQueue;

/** What `p` is answered when its deadline passed before it could run. */
export function expiredAnswer(p: PendingCommand, pool: string): EntityFailure {
  // A command whose earlier append had an unknown outcome must not be told
  // "nothing written": say unavailable, so the caller retries with the same id.
  if (p.failedFromVersion !== undefined) return journalUnavailable(pool, p);
  return {
    kind: "deadline_exceeded",
    message: `pool ${pool}: the deadline passed before the command could run`,
  };
}

/**
 * What `p` (or, undefined, any command) is answered when the journal cannot take it
 * now: its outcome is unknown when `outcomeUnknown`, or when an earlier append of its
 * events failed without saying whether they were written.
 */
export function journalUnavailable(
  pool: string,
  p: PendingCommand | undefined,
  outcomeUnknown = false,
): EntityFailure {
  const unknown = outcomeUnknown || p?.failedFromVersion !== undefined;
  return {
    kind: "unavailable",
    reason: "JOURNAL_UNAVAILABLE",
    message: unknown
      ? `pool ${pool}: the journal did not confirm the write in time; its outcome is unknown — retry with the same request`
      : `pool ${pool}: the journal is unavailable`,
    retryDelayMs: JOURNAL_RETRY_MS,
  };
}
