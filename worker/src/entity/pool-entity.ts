// Hosts one pool: its state in memory, its commands one at a time, its events to the journal.
import type { BackoffPolicy } from "@berth/proto";
import type { Logger } from "pino";
import {
  decide,
  evolve,
  InvalidCommandError,
  initialState,
  type PoolEvent,
  type PoolSpec,
  type PoolState,
  type PoolView,
  poolView,
  toSnapshot,
} from "../domain/pool.js";
import { FencedError, JournalUnavailableError, VersionConflictError } from "../journal/errors.js";
import type { Journal, LoadedPool } from "../journal/journal.js";
import {
  CommandQueue,
  expiredAnswer,
  JOURNAL_RETRY_MS,
  journalUnavailable,
  NO_COMMANDS,
  type PendingCommand,
} from "./command-queue.js";
import {
  acceptedAnswer,
  type DecidedAnswer,
  readAnswer,
  rejectedAnswer,
} from "./decided-answer.js";
import {
  type AnyEntityOutcome,
  type EntityCommand,
  type EntityFailure,
  type EntityOutcome,
  replyFits,
} from "./entity-outcome.js";
import { JournalFailureRun } from "./journal-failure-run.js";
import { DEFAULT_BACKOFF } from "./journal-retry.js";
import { type RecoveryObserver, type RecoveryResult, recoverPool } from "./recovery.js";
import { DEFAULT_SNAPSHOT_EVERY, snapshotDue, snapshotEntries } from "./snapshot-policy.js";

/** How a journal append ended, for metrics. */
export type AppendResult = "ok" | "fenced" | "error";

/** Observations an entity reports (the worker turns them into Prometheus metrics). */
export interface EntityMetrics {
  /**
   * One journal append finished after `seconds`, carrying `events` events: written
   * (ok), refused by the fence because a newer owner took the pool (fenced), or failed.
   */
  observeAppend(seconds: number, events: number, result: AppendResult): void;
}

/** Which pool a {@link PoolEntity} hosts, and for which owner epoch. */
export interface PoolEntityTarget {
  readonly pool: string;
  readonly shard: number;
  /** This owner's epoch for the shard: every append is made at this epoch. */
  readonly epoch: number;
  /**
   * The pool as `Journal.recoverShard` loaded it. When its fence epoch is this
   * entity's, start serves from it with no fence or load of its own; otherwise (fenced
   * lower: recorded after the shard's fence) start fences and loads as usual.
   */
  readonly recovered?: LoadedPool;
}

/**
 * What the entities of one owner have in common: pass one object to all of them (an
 * entity keeps a reference to it, not a copy: a worker hosts 100,000 pools).
 */
export interface PoolEntitySettings {
  readonly journal: Journal;
  readonly logger: Logger;
  /**
   * Raise the pool's fence to `epoch` before loading it (a new owner taking the pool
   * over). Without it the entity only loads, and refuses to serve if the pool is
   * already fenced above `epoch`.
   */
  readonly fenceOnStart: boolean;
  /**
   * Save a snapshot once this many events were appended since the last one. Default 100.
   * A pool whose last snapshot held more reservations than this waits for as many
   * events as that snapshot held (see {@link snapshotDue}).
   */
  readonly snapshotEvery?: number;
  /** Most events in one append (group commit). Default 256. */
  readonly maxBatchEvents?: number;
  /** Most commands waiting for their turn; beyond it commands answer UNAVAILABLE. Default 10,000. */
  readonly maxQueue?: number;
  /** Deadline of a command submitted without one, in ms from submission. Default 30,000. */
  readonly defaultTimeoutMs?: number;
  readonly backoff?: BackoffPolicy;
  readonly metrics?: EntityMetrics;
  /** Called after every durable change, with the pool's counters at the new version. */
  readonly onCommitted?: (view: PoolView) => void;
  /** Called once when the journal reports that a newer owner fenced the pool. */
  readonly onFenced?: (entity: PoolEntity) => void;
  /**
   * Called after a durable change (or a load) that replaced the pool's spec: a
   * configure that changed it, a retire, or a (re)load. See {@link PoolEntity.specInForce}.
   */
  readonly onSpecChanged?: (entity: PoolEntity) => void;
}

/** Lifecycle of an entity. */
export type EntityStatus = "new" | "loading" | "ready" | "fenced" | "broken" | "closing" | "closed";

interface Decided {
  readonly pending: PendingCommand;
  readonly outcome: AnyEntityOutcome;
}

/** What {@link PoolEntity.start} returns once recovery has settled. */
const SETTLED: Promise<void> = Promise.resolve();

/**
 * One pool's host. Commands run one at a time, in arrival order. While an append is
 * in flight, arriving commands queue; when it completes they are decided together
 * against the committed state and appended in ONE journal append (group commit,
 * capped at `maxBatchEvents` and at the journal's `maxAppendEvents`). A command is
 * answered only once the append holding its events is durable. A command that writes
 * nothing but whose answer rests on the current state (a rejection, a read) is
 * answered only once the journal confirmed that this entity still owns the pool and
 * its state is the latest: by its batch's append, or, in a batch without events, by
 * one empty append (fence and version check) for the whole batch. A replayed reserve
 * or a repeated release answers at once when decided before any event of its batch.
 *
 * On any append failure the entity discards its state, reloads the pool from the
 * journal and decides the failed batch's commands again (all commands are
 * idempotent, so one whose event did land now replays), retrying with backoff within
 * each command's deadline. A FencedError means a newer owner took the pool: every
 * command answers `not_owner` from then on. A RangeError or TypeError from the journal
 * (it refused the batch's arguments: a bug) answers the batch `internal`, unretried.
 *
 * The entity is the batch loop and the lifecycle; it composes the {@link CommandQueue}
 * (waiting commands, deadlines), {@link recoverPool} (loading, with its retries),
 * {@link acceptedAnswer} and its siblings (what a decided command answers, and whether
 * the journal must confirm it first), {@link snapshotDue} (when to snapshot) and a
 * {@link JournalFailureRun} (logging failures). Its own fields are what an idle pool
 * costs: keep them few.
 */
export class PoolEntity {
  readonly pool: string;
  readonly shard: number;
  readonly epoch: number;
  /** Shared by every entity of the owner; an idle entity's own fields are what it costs. */
  private readonly settings: PoolEntitySettings;
  /** The pool's child logger, made on first use: most pools never log (a shard holds hundreds). */
  private logChild: Logger | undefined;

  private statusValue: EntityStatus = "new";
  /** target.recovered until start has used it (not kept: it holds the pool's events). */
  private recovered: LoadedPool | undefined;
  /** Committed state while idle; committed + the in-flight batch during an append. */
  private state: PoolState;
  /**
   * Whether the state holds a committed version, so the view and committedSpec are
   * known: false until loaded, while reloading, once fenced or broken.
   */
  private viewKnown = false;
  /**
   * The counters at the last commit while the state runs ahead of it (a batch decided,
   * its append in flight); undefined otherwise, when they are the state's own. Not kept
   * between batches: an idle pool's counters cost nothing until read.
   */
  private committedAhead: { readonly view: PoolView | undefined } | undefined;
  /** state.spec as of the last commit (the state runs ahead during an append). */
  private committedSpec: PoolSpec | undefined;
  private lastSnapshotSeq = 0;
  /** Reservations (active and released) in the last snapshot taken or loaded. */
  private lastSnapshotEntries = 0;
  private snapshotInFlight = false;
  /** Commands waiting for their turn; {@link NO_COMMANDS} while it has none to keep. */
  private queue: CommandQueue = NO_COMMANDS;
  /** The batch being decided or appended, until answered or re-queued (see pump). */
  private inFlight: Decided[] | undefined;
  private pumping: Promise<void> | undefined;
  private readyPromise: Promise<void> | undefined;
  private closeReason: EntityFailure | undefined;
  /** Journal failures of this pool since it last answered; undefined while it answers. */
  private failureRun: JournalFailureRun | undefined;

  /**
   * @param target the pool; not kept (its `recovered` only until start has used it)
   * @param settings kept by reference: pass one object to every entity of an owner
   */
  constructor(target: PoolEntityTarget, settings: PoolEntitySettings) {
    this.settings = settings;
    this.pool = target.pool;
    this.shard = target.shard;
    this.epoch = target.epoch;
    this.recovered = target.recovered;
    this.state = initialState(target.pool);
  }

  private get journal(): Journal {
    return this.settings.journal;
  }

  private get snapshotEvery(): number {
    return this.settings.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY;
  }

  /**
   * Most events in one append: never more than the journal takes, since a batch it
   * refuses for its size would be refused again on every retry.
   */
  private get maxBatchEvents(): number {
    const s = this.settings;
    return Math.max(1, Math.min(s.maxBatchEvents ?? 256, s.journal.maxAppendEvents ?? Infinity));
  }

  private get maxQueue(): number {
    return this.settings.maxQueue ?? 10_000;
  }

  private get defaultTimeoutMs(): number {
    return this.settings.defaultTimeoutMs ?? 30_000;
  }

  private get backoff(): BackoffPolicy {
    return this.settings.backoff ?? DEFAULT_BACKOFF;
  }

  private get log(): Logger {
    this.logChild ??= this.settings.logger.child({
      pool: this.pool,
      shard: this.shard,
      epoch: this.epoch,
    });
    return this.logChild;
  }

  /** Where the entity is in its life. */
  get status(): EntityStatus {
    return this.statusValue;
  }

  /** The pool's counters at its last committed version; undefined if never configured (or not loaded). */
  get view(): PoolView | undefined {
    if (!this.viewKnown) return undefined;
    return this.committedAhead !== undefined ? this.committedAhead.view : poolView(this.state);
  }

  /**
   * The spec in force at the last committed version: undefined while not loaded (or
   * reloading), when never configured, and once retired. `known` is false while the
   * entity has no loaded state to answer from.
   */
  get specInForce(): { readonly known: boolean; readonly spec: PoolSpec | undefined } {
    const known = this.statusValue === "ready" && this.viewKnown;
    return { known, spec: known ? this.committedSpec : undefined };
  }

  /**
   * Starts recovery (fence if asked, then load). Resolves once the entity serves, or
   * has settled as fenced, broken or closed; never rejects. Idempotent.
   */
  start(): Promise<void> {
    if (this.readyPromise === undefined) {
      this.statusValue = "loading";
      this.readyPromise = this.recoverInitially();
      this.pumping = this.readyPromise.then(() => {
        // Settled for good: later calls get the one resolved promise all entities share.
        this.readyPromise = SETTLED;
        return this.pump();
      });
    }
    return this.readyPromise;
  }

  /**
   * Submits a command. `deadline` is absolute (ms since the epoch, as Date.now());
   * undefined means `defaultTimeoutMs` from now. Never rejects.
   */
  submit<C extends EntityCommand>(command: C, deadline?: number): Promise<EntityOutcome<C>> {
    const refused = this.refusal();
    if (refused !== undefined) return Promise.resolve(refused);
    if (this.queue.length >= this.maxQueue) {
      return Promise.resolve<EntityFailure>({
        kind: "unavailable",
        reason: "OWNER_UNAVAILABLE",
        message: `pool ${this.pool} has ${this.queue.length} commands waiting; try again shortly`,
        retryDelayMs: JOURNAL_RETRY_MS,
      });
    }
    return new Promise<EntityOutcome<C>>((resolve) => {
      this.ownQueue().push({
        command,
        deadline: deadline ?? Date.now() + this.defaultTimeoutMs,
        // Sound: decideOne answers a read with a view and a write with a reply that
        // fits its type (replyFits), or with a failure, which every C admits.
        resolve: resolve as (outcome: AnyEntityOutcome) => void,
        failedFromVersion: undefined,
        next: undefined,
      });
      this.kick();
    });
  }

  /**
   * Stops taking commands: queued commands not yet decided answer `outcome` (default
   * `not_owner`), the in-flight append finishes and its commands are answered. Resolves
   * when nothing is in flight any more. Idempotent.
   */
  async close(outcome?: EntityFailure): Promise<void> {
    if (this.statusValue !== "closed" && this.statusValue !== "closing") {
      this.closeReason = outcome ?? {
        kind: "not_owner",
        message: `this worker no longer owns pool ${this.pool}`,
      };
      if (this.statusValue === "fenced" || this.statusValue === "broken") {
        // Keep answering why it stopped.
      } else {
        this.statusValue = "closing";
      }
      this.answerQueued(this.refusal() ?? this.closeReason);
    }
    await this.pumping;
    if (this.statusValue === "closing") this.statusValue = "closed";
  }

  private refusal(): EntityFailure | undefined {
    switch (this.statusValue) {
      case "fenced":
        return {
          kind: "not_owner",
          message: `pool ${this.pool} was taken over by a newer owner (this worker's epoch ${this.epoch} is fenced)`,
        };
      case "broken":
        return {
          kind: "internal",
          message: `pool ${this.pool} could not be recovered from the journal`,
        };
      case "closing":
      case "closed":
        return this.closeReason;
      default:
        return undefined;
    }
  }

  private kick(): void {
    if (this.statusValue !== "ready" || this.pumping !== undefined) return;
    this.pumping = this.pumpSoon();
  }

  /**
   * Starts the next batch at the end of this turn of the event loop, not at once: the
   * commands that arrive in the same turn (a burst of requests read from the network
   * together) then share the first append instead of waiting behind a batch of one.
   */
  private async pumpSoon(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.pump();
  }

  private async pump(): Promise<void> {
    try {
      while (this.statusValue === "ready" && this.queue.length > 0) {
        await this.runBatch();
      }
    } catch (e: unknown) {
      // runBatch handles every journal error; reaching here is a bug. Whatever it left
      // unanswered is answered now: the batch in flight may have been written (outcome
      // unknown: the caller retries with the same request), the queue was not.
      this.log.error({ err: e }, "pool entity failed");
      this.statusValue = "broken";
      const inFlight = this.inFlight ?? [];
      this.inFlight = undefined;
      for (const d of inFlight) d.pending.resolve(journalUnavailable(this.pool, d.pending, true));
      this.answerQueued(this.refusal() ?? { kind: "internal", message: String(e) });
    } finally {
      this.pumping = undefined;
    }
    // An idle entity keeps no queue of its own (the next burst makes one, as an array
    // would have to grow its emptied store again).
    if (this.queue.length === 0) this.queue = NO_COMMANDS;
    // A command may have arrived while the final batch was being answered.
    else if (this.statusValue === "ready") this.kick();
  }

  /**
   * Decides the next batch of queued commands and appends their events in one append.
   *
   * An answer that rests on the in-memory state — a rejection, a read, an unchanged
   * configure — is true only if that state is still the pool's latest and this entity
   * still owns the pool: a newer owner may have written since (its map ahead of ours).
   * Such answers wait for the journal to confirm both: a batch with events confirms
   * them by its own conditional append; a batch without events makes one empty append
   * (the journal's fence and version check), once per batch. Answers that stay true
   * whatever happened since — a replayed reserve, a release already released, a
   * malformed command — go out at once.
   */
  private async runBatch(): Promise<void> {
    const waiting: Decided[] = [];
    this.inFlight = waiting;
    await this.decideAndAppend(waiting);
    this.inFlight = undefined;
  }

  private async decideAndAppend(waiting: Decided[]): Promise<void> {
    const now = Date.now();
    const expectedVersion = this.state.version;
    const events: PoolEvent[] = [];
    while (this.queue.length > 0 && events.length < this.maxBatchEvents) {
      const p = this.queue.shift() as PendingCommand;
      let decided: ReturnType<PoolEntity["decideOne"]>;
      try {
        decided = this.decideOne(p, now, events);
      } catch (e: unknown) {
        // Answer the command in hand before the entity gives up (see pump).
        p.resolve(
          p.failedFromVersion !== undefined
            ? journalUnavailable(this.pool, p, true)
            : { kind: "internal", message: `pool ${this.pool}: ${String(e)}` },
        );
        throw e;
      }
      if (decided === "requeued") break;
      if (decided === undefined) continue;
      if (decided === "unappliable") {
        // decide emitted an event evolve refuses: a decider bug. The state may be
        // half-changed, so rebuild it from the journal and decide the batch again.
        p.resolve({
          kind: "internal",
          message: `pool ${this.pool}: a decided event could not be applied`,
        });
        this.requeue(waiting.map((d) => d.pending));
        await this.reloadUntilReady(1);
        return;
      }
      if (decided.confirm || events.length > 0)
        waiting.push({ pending: p, outcome: decided.outcome });
      else p.resolve(decided.outcome);
    }
    if (waiting.length === 0) return;
    await this.appendBatch(expectedVersion, events, waiting);
  }

  /**
   * Decides one command against the current state, applying its events to the state
   * and to `events`. Returns its {@link DecidedAnswer}; undefined when it was answered already; "requeued" when its events
   * would not fit in this batch (it goes back to the head of the queue); "unappliable"
   * when evolve refused a decided event (the state may be half-changed; logged).
   */
  private decideOne(
    p: PendingCommand,
    now: number,
    events: PoolEvent[],
  ): DecidedAnswer | "requeued" | "unappliable" | undefined {
    if (p.deadline <= now) {
      p.resolve(expiredAnswer(p, this.pool));
      return undefined;
    }
    if (p.command.type === "read") {
      return readAnswer(this.state);
    }
    let decision: ReturnType<typeof decide>;
    try {
      decision = decide(this.state, p.command);
    } catch (e: unknown) {
      if (!(e instanceof InvalidCommandError)) throw e;
      p.resolve({ kind: "invalid", error: e });
      return undefined;
    }
    if (!decision.ok) return rejectedAnswer(decision.rejection, this.state);
    if (!replyFits(p.command, decision.reply)) {
      this.log.error(
        { command: loggable(p.command), reply: decision.reply.type },
        "the decider replied with the wrong kind of reply (a bug)",
      );
      p.resolve({
        kind: "internal",
        message: `pool ${this.pool}: ${decision.reply.type} reply to ${p.command.type} (a worker bug; logged)`,
      });
      return undefined;
    }
    if (events.length > 0 && events.length + decision.events.length > this.maxBatchEvents) {
      this.requeue([p]);
      return "requeued";
    }
    if (decision.events.length > 0) this.committedAhead ??= { view: this.view };
    try {
      for (const event of decision.events) {
        this.state = evolve(this.state, event, this.state.version + 1);
        events.push(event);
      }
    } catch (e: unknown) {
      this.log.error(
        { err: e, command: loggable(p.command) },
        "decided event could not be applied",
      );
      return "unappliable";
    }
    return acceptedAnswer(
      p.command,
      decision.reply,
      decision.events.length > 0,
      this.state,
      p.failedFromVersion,
    );
  }

  /**
   * Appends the batch's events (or, when it has none, checks fence and version with an
   * empty append) and answers the waiting commands once the journal confirmed them.
   */
  private async appendBatch(
    expectedVersion: number,
    events: readonly PoolEvent[],
    waiting: readonly Decided[],
  ): Promise<void> {
    const started = performance.now();
    let newVersion: number;
    try {
      newVersion = await this.journal.append(
        { pool: this.pool, shard: this.shard, epoch: this.epoch, expectedVersion },
        events,
      );
    } catch (e: unknown) {
      if (events.length > 0) {
        this.observeAppend(started, events.length, e instanceof FencedError ? "fenced" : "error");
      }
      await this.appendFailed(e, expectedVersion, waiting, events.length > 0);
      return;
    }
    if (events.length > 0) this.observeAppend(started, events.length, "ok");
    this.journalAnswered();
    if (newVersion !== this.state.version) {
      // The journal and the decider disagree on the seqs: trust the journal.
      this.log.error(
        { journalVersion: newVersion, stateVersion: this.state.version },
        "append returned an unexpected version; reloading",
      );
      const commands = waiting.map((d) => d.pending);
      // The events may have been written: whoever retries them must not be told
      // "replayed" about their own write.
      if (events.length > 0) for (const p of commands) p.failedFromVersion ??= expectedVersion;
      this.requeue(commands);
      await this.reloadUntilReady(1);
      return;
    }
    if (events.length > 0) this.committed();
    for (const d of waiting) d.pending.resolve(d.outcome);
  }

  private observeAppend(started: number, events: number, result: AppendResult): void {
    try {
      this.settings.metrics?.observeAppend((performance.now() - started) / 1000, events, result);
    } catch (e: unknown) {
      this.log.error({ err: e }, "append metrics listener failed");
    }
  }

  /** Bookkeeping after the state became durable: counters, gossip, snapshot. */
  private committed(): void {
    this.committedAhead = undefined;
    this.viewKnown = true;
    const spec = this.state.spec;
    if (spec !== this.committedSpec) {
      this.committedSpec = spec;
      try {
        this.settings.onSpecChanged?.(this);
      } catch (e: unknown) {
        this.log.error({ err: e }, "onSpecChanged listener failed");
      }
    }
    const view = poolView(this.state);
    if (view !== undefined) {
      try {
        this.settings.onCommitted?.(view);
      } catch (e: unknown) {
        this.log.error({ err: e }, "onCommitted listener failed");
      }
    }
    this.maybeSnapshot();
  }

  private maybeSnapshot(): void {
    const seq = this.state.version;
    const due = snapshotDue(
      seq,
      this.lastSnapshotSeq,
      this.lastSnapshotEntries,
      this.snapshotInFlight,
      this.snapshotEvery,
    );
    if (!due) return;
    // Taken now, synchronously: the next batch mutates the state in place.
    const snapshot = { seq, state: toSnapshot(this.state) };
    this.lastSnapshotEntries = snapshotEntries(this.state);
    this.snapshotInFlight = true;
    this.journal.saveSnapshot(this.pool, snapshot).then(
      () => {
        this.snapshotInFlight = false;
        this.lastSnapshotSeq = Math.max(this.lastSnapshotSeq, seq);
        this.log.debug({ seq }, "snapshot saved");
      },
      (e: unknown) => {
        this.snapshotInFlight = false;
        this.log.warn({ err: e, seq }, "snapshot not saved; will try again later");
      },
    );
  }

  /**
   * After a failed append (`wroteEvents`) or a failed fence-and-version check (an
   * empty append): fenced → NOT_OWNER; refused as invalid (RangeError, TypeError: a
   * bug, retrying cannot help) → INTERNAL; otherwise reload and decide again.
   */
  private async appendFailed(
    error: unknown,
    expectedVersion: number,
    waiting: readonly Decided[],
    wroteEvents: boolean,
  ): Promise<void> {
    const commands = waiting.map((d) => d.pending);
    if (error instanceof FencedError) {
      this.becomeFenced(error);
      for (const p of commands) p.resolve(this.refusal() as EntityFailure);
      return;
    }
    if (error instanceof RangeError || error instanceof TypeError) {
      // The journal checks its arguments before writing anything, so nothing was
      // written; the same batch would be refused again, forever.
      this.log.error(
        { err: error, commands: commands.length, expectedVersion },
        "the journal refused the batch as invalid; answering INTERNAL",
      );
      for (const p of commands) {
        p.resolve({
          kind: "internal",
          message: `pool ${this.pool}: the journal refused the write (${error.name})`,
        });
      }
      // The state holds the refused batch's events: rebuild it from the journal.
      await this.reloadUntilReady(0);
      return;
    }
    const unknownOutcome = wroteEvents && !(error instanceof VersionConflictError);
    const fields = {
      err: error,
      event: "entity.append_failed",
      commands: commands.length,
      expectedVersion,
      unknownOutcome,
      wroteEvents,
    };
    const msg = wroteEvents
      ? "append failed; reloading the pool and deciding the batch again"
      : "fence and version check failed; reloading the pool and deciding the batch again";
    if (error instanceof JournalUnavailableError) this.journalFailed(fields, msg);
    else this.log.warn(fields, msg);
    if (this.statusValue !== "ready") {
      // Closing: no retries. The outcome may be unknown, so this is no acknowledgement.
      for (const p of commands) p.resolve(journalUnavailable(this.pool, p));
      return;
    }
    if (wroteEvents) for (const p of commands) p.failedFromVersion ??= expectedVersion;
    this.requeue(commands);
    await this.reloadUntilReady(error instanceof VersionConflictError ? 0 : 1);
  }

  /**
   * Discards the in-memory state and loads the pool again, retrying with backoff while
   * the journal is unavailable; queued commands whose deadline passes meanwhile answer
   * UNAVAILABLE.
   */
  private async reloadUntilReady(firstAttempt: number): Promise<void> {
    this.viewKnown = false;
    this.committedAhead = undefined;
    const reloading: RecoveryObserver = {
      beforeAttempt: () => this.beforeLoadAttempt(),
      unavailable: (error, _step, _attempt, elapsedMs) => {
        this.journalFailed({ event: "entity.load_retry", err: error }, "load failed; retrying");
        // A blip is ridden out; once the journal has been down for a while, say so
        // (UNAVAILABLE: retry with the same request) to what waits, instead of holding it
        // to its deadline.
        if (elapsedMs >= JOURNAL_OUTAGE_ANSWER_MS) {
          for (const p of this.takeQueued()) p.resolve(journalUnavailable(this.pool, p));
        }
      },
    };
    const plan = {
      pool: this.pool,
      shard: this.shard,
      epoch: this.epoch,
      fence: false,
      loaded: undefined,
      firstAttempt,
      backoff: this.backoff,
    };
    this.settle(await recoverPool(this.journal, plan, reloading));
  }

  private async recoverInitially(): Promise<void> {
    const started = performance.now();
    const recovering: RecoveryObserver = {
      beforeAttempt: () => this.beforeLoadAttempt(),
      unavailable: (error, step, attempt) => {
        if (step === "fence")
          this.journalFailed(
            { event: "entity.fence_retry", err: error, attempt },
            "fence failed; retrying",
          );
        else
          this.journalFailed({ event: "entity.load_retry", err: error }, "load failed; retrying");
      },
    };
    const plan = {
      pool: this.pool,
      shard: this.shard,
      epoch: this.epoch,
      fence: this.settings.fenceOnStart,
      loaded: this.recovered,
      firstAttempt: 0,
      backoff: this.backoff,
    };
    this.recovered = undefined;
    this.settle(await recoverPool(this.journal, plan, recovering));
    if (this.status === "ready" && this.settings.logger.isLevelEnabled("debug")) {
      this.log.debug(
        { version: this.state.version, ms: Math.round(performance.now() - started) },
        "pool loaded",
      );
    }
  }

  /**
   * Before each load attempt: expires what waits, or, once the entity stopped serving
   * (closing, fenced, broken), answers it and stops the recovery.
   */
  private beforeLoadAttempt(): boolean {
    if (this.statusValue !== "ready" && this.statusValue !== "loading") {
      this.answerQueued(this.refusal() ?? journalUnavailable(this.pool, undefined));
      return false;
    }
    this.queue.expire(Date.now(), this.pool);
    return true;
  }

  /** Serves the state a recovery loaded, or settles as fenced or broken. */
  private settle(result: RecoveryResult): void {
    switch (result.kind) {
      case "stopped":
        return;
      case "fenced":
        this.becomeFenced(result.error);
        return;
      case "broken":
        this.becomeBroken(result.error);
        return;
      case "loaded":
        break;
    }
    // Closed while loading: leave the state alone, nothing will use it.
    if (this.statusValue !== "loading" && this.statusValue !== "ready") return;
    this.journalAnswered();
    this.state = result.state;
    this.lastSnapshotSeq = result.snapshotSeq;
    this.lastSnapshotEntries = result.snapshotSeq > 0 ? snapshotEntries(result.state) : 0;
    this.statusValue = "ready";
    this.committed();
  }

  /** Logs a journal failure of this pool (an unavailable journal: retried); see {@link JournalFailureRun}. */
  private journalFailed(fields: Record<string, unknown>, msg: string): void {
    this.failureRun ??= new JournalFailureRun();
    this.failureRun.failed(this.log, fields, msg, performance.now());
  }

  /** The journal answered this pool: ends a run of failures (one info line when there was one). */
  private journalAnswered(): void {
    const run = this.failureRun;
    if (run === undefined) return;
    this.failureRun = undefined;
    this.log.info(
      { event: "entity.journal_answers_again", failures: run.failures },
      "journal answers this pool again",
    );
  }

  private becomeFenced(error: FencedError): void {
    if (this.statusValue === "fenced") return;
    this.log.warn(
      { event: "entity.fenced", fenceEpoch: error.fenceEpoch },
      "pool fenced by a newer owner",
    );
    this.statusValue = "fenced";
    this.viewKnown = false;
    this.answerQueued(this.refusal() as EntityFailure);
    try {
      this.settings.onFenced?.(this);
    } catch (e: unknown) {
      this.log.error({ err: e }, "onFenced listener failed");
    }
  }

  private becomeBroken(error: unknown): void {
    this.log.error({ err: error }, "pool cannot be recovered from the journal");
    this.statusValue = "broken";
    this.viewKnown = false;
    this.answerQueued(this.refusal() as EntityFailure);
  }

  private answerQueued(outcome: EntityFailure): void {
    for (const p of this.takeQueued()) p.resolve(outcome);
  }

  /** The entity's own queue, made when it first has a command to keep. */
  private ownQueue(): CommandQueue {
    if (this.queue === NO_COMMANDS) this.queue = new CommandQueue();
    return this.queue;
  }

  /** Puts `commands` back at the head of the queue, in order. */
  private requeue(commands: readonly PendingCommand[]): void {
    if (commands.length === 0) return;
    this.ownQueue().requeue(commands);
  }

  /** Empties the queue, returning what it held. */
  private takeQueued(): readonly PendingCommand[] {
    const taken = this.queue;
    this.queue = NO_COMMANDS;
    return taken.take();
  }
}

/** How long reloads may keep failing before waiting commands are answered UNAVAILABLE. */
const JOURNAL_OUTAGE_ANSWER_MS = 1000;

/** A command as it may appear in logs: reservation secrets left out. */
function loggable(command: EntityCommand): Record<string, unknown> {
  if (command.type === "reserve") {
    const { secret: _secret, ...rest } = command;
    return rest;
  }
  if (command.type === "release") {
    const { key, ...rest } = command;
    return { ...rest, key: key.kind };
  }
  return { ...command };
}
