import { DatabaseSync } from "node:sqlite";
import { Worker } from "node:worker_threads";
import { type BackoffPolicy, backoffDelayMs } from "@berth/proto";
import { FencedError, JournalUnavailableError, VersionConflictError } from "./errors.js";
import type {
  AppendTarget,
  Journal,
  LoadedPool,
  RecoveredShard,
  Snapshot,
  StoredEvent,
} from "./journal.js";
import {
  type LoadRows,
  type LoadShardRows,
  sqliteJournalThread,
  type ThreadAnswer,
  type ThreadConfig,
  type ThreadFailure,
  type ThreadRequest,
} from "./sqlite-journal-thread.js";
import {
  checkAppend,
  checkNonNegativeInteger,
  checkPoolId,
  checkSnapshot,
  snapshotBeyondVersionError,
} from "./validation.js";

/** Options of {@link SqliteJournal.open}. */
export interface SqliteJournalOptions {
  /**
   * SQLite's `synchronous` setting (default "FULL"). In WAL mode "FULL" syncs the WAL
   * on every commit, so a committed append survives power loss and OS crashes.
   * "NORMAL" syncs only at checkpoints: commits are much cheaper and still survive a
   * crash or SIGKILL of the process (the OS has the pages), but the last commits
   * before a power loss or kernel crash may roll back. The database never corrupts
   * either way. Choose "NORMAL" only where losing acknowledged reservations on power
   * loss is acceptable (a laptop cluster, tests).
   */
  readonly synchronous?: "FULL" | "NORMAL";
  /**
   * How long one transaction waits in total for another connection (usually another
   * worker process sharing the file) to release the write lock before its calls fail
   * with JournalUnavailableError. Default 5000. Also bounds `open`.
   */
  readonly busyTimeoutMs?: number;
  /**
   * The pause, in ms (fractions allowed), between attempts at a write lock another
   * connection holds (default 0.5, jittered ±50%). The wait happens in the journal's
   * thread, so it delays the waiting transaction only, never the event loop. Short,
   * because the workers of a local cluster share one file and hold its lock for one
   * commit (about one fsync) at a time: SQLite's own busy handler sleeps 1, 2, 5,
   * 10 … ms and so misses most of the gaps between another process's commits.
   */
  readonly lockPollMs?: number;
}

/**
 * Migrations, index i taking the schema from version i to i+1. Append only: never
 * edit a migration that has shipped.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE pools (
     pool        TEXT    NOT NULL PRIMARY KEY,
     shard       INTEGER NOT NULL,
     fence_epoch INTEGER NOT NULL DEFAULT 0,
     version     INTEGER NOT NULL DEFAULT 0
   ) WITHOUT ROWID;
   CREATE INDEX pools_by_shard ON pools (shard, pool);
   CREATE TABLE events (
     pool    TEXT    NOT NULL,
     seq     INTEGER NOT NULL,
     payload TEXT    NOT NULL,
     PRIMARY KEY (pool, seq)
   ) WITHOUT ROWID;
   CREATE TABLE snapshots (
     pool  TEXT    NOT NULL PRIMARY KEY,
     seq   INTEGER NOT NULL,
     state TEXT    NOT NULL
   ) WITHOUT ROWID;`,
];

/** The schema version this build writes; kept in `PRAGMA user_version`. */
export const SQLITE_JOURNAL_SCHEMA_VERSION: number = MIGRATIONS.length;

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;

/** Why a statement could not run: lock contention (retryable) or anything else. */
function isBusy(e: unknown): boolean {
  if (typeof e !== "object" || e === null) return false;
  const code = (e as { errcode?: unknown }).errcode;
  return (
    typeof code === "number" && ((code & 0xff) === SQLITE_BUSY || (code & 0xff) === SQLITE_LOCKED)
  );
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The thread's source: its function, called with the two modules it needs. */
const THREAD_SOURCE =
  // tsx compiles with keepNames, which wraps named functions in `__name(…)`.
  `"use strict"; var __name = (f) => f;
(${sqliteJournalThread.toString()})(require("node:worker_threads"), require("node:sqlite"));`;

/** A call sent to the thread and not answered yet. */
interface Pending {
  readonly label: string;
  /** Whether it writes: if the thread dies first, its outcome is unknown. */
  readonly write: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (e: unknown) => void;
}

type Request = ThreadRequest extends infer R
  ? R extends ThreadRequest
    ? Omit<R, "id">
    : never
  : never;

/** Young generation of the journal thread's heap, in MB (see {@link SqliteJournal.open}). */
const JOURNAL_THREAD_YOUNG_GENERATION_MB = 16;

/**
 * The journal on one SQLite file through Node's built-in `node:sqlite`, for local
 * mode and tests. Several processes (the workers of a local cluster) may open the
 * same file at once: WAL mode lets readers run beside the one writer, writes take
 * the lock up front (`BEGIN IMMEDIATE`) and wait for it within `busyTimeoutMs`.
 *
 * `node:sqlite` is synchronous, so each journal runs its connection in a worker
 * thread of its own (sqlite-journal-thread.ts): a COMMIT's fsync and a wait for the
 * write lock block that thread, not the event loop. The main thread only posts calls
 * and resolves their answers. The thread takes calls in order; writes that queue up
 * while it commits go into its next transaction (pipelined group commit).
 */
export class SqliteJournal implements Journal {
  private closed = false;
  /** Why the thread ended when nobody closed the journal; set once. */
  private died: string | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Calls of this event-loop turn, not posted yet. */
  private outbox: ThreadRequest[] = [];
  private closing: Promise<void> | undefined;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly thread: Worker,
    /** The file this journal was opened on. */
    readonly path: string,
  ) {
    thread.unref();
    thread.on("message", (answers: readonly ThreadAnswer[]) => this.onAnswers(answers));
    // An exception the thread did not catch, or a message it cannot read: it ends.
    thread.on("error", (e: unknown) => {
      this.die(`it failed: ${e instanceof Error ? e.message : String(e)}`);
    });
    thread.on("messageerror", (e: unknown) => {
      this.die(`an answer could not be read: ${e instanceof Error ? e.message : String(e)}`);
      void thread.terminate();
    });
    this.exited = new Promise<void>((resolve) => {
      thread.once("exit", (code: number) => {
        this.die(`it exited with code ${code}`);
        resolve();
      });
    });
  }

  /**
   * Opens (creating if needed) the journal file at `path`, switches it to WAL mode and
   * brings its schema up to date, then starts the journal's thread on it. Safe to call
   * from several processes at once. Throws JournalUnavailableError if the file cannot
   * be opened or stays locked beyond `busyTimeoutMs`, and Error if the file's schema is
   * newer than this build.
   */
  static open(path: string, options: SqliteJournalOptions = {}): SqliteJournal {
    if (typeof path !== "string" || path.length === 0) {
      throw new TypeError("path must be a non-empty string");
    }
    const synchronous = options.synchronous ?? "FULL";
    if (synchronous !== "FULL" && synchronous !== "NORMAL") {
      throw new RangeError(`synchronous must be "FULL" or "NORMAL", got ${String(synchronous)}`);
    }
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    checkNonNegativeInteger("busyTimeoutMs", busyTimeoutMs);
    const lockPollMs = options.lockPollMs ?? 0.5;
    if (typeof lockPollMs !== "number" || !(lockPollMs > 0 && lockPollMs <= 1000)) {
      throw new RangeError(`lockPollMs must be a number in (0, 1000], got ${String(lockPollMs)}`);
    }

    // Open, WAL and migration on this thread, so that open keeps failing at once and
    // precisely; the thread then opens its own connection on a file that is ready.
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path, { timeout: busyTimeoutMs });
    } catch (e: unknown) {
      throw new JournalUnavailableError(
        `cannot open journal ${path}: ${(e as Error).message}`,
        false,
        { cause: e },
      );
    }
    try {
      const deadline = Date.now() + busyTimeoutMs;
      retryBusySync(deadline, () => {
        const mode = db.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
        if (mode.journal_mode !== "wal") db.exec("PRAGMA journal_mode = WAL");
      });
      retryBusySync(deadline, () => migrate(db));
    } catch (e: unknown) {
      if (isBusy(e)) {
        throw new JournalUnavailableError(
          `journal ${path} stayed locked for ${busyTimeoutMs} ms while opening`,
          false,
          { cause: e },
        );
      }
      throw e;
    } finally {
      db.close();
    }
    const config: ThreadConfig = { path, synchronous, busyTimeoutMs, lockPollMs };
    const thread = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: config,
      name: `sqlite-journal ${path}`,
      // The thread needs none of the process's loaders (tsx) or flags.
      execArgv: [],
      // Its garbage is short-lived (statements, JSON text): a small young generation
      // (V8 grows it to 2 × 64 MB semi-spaces otherwise) keeps the worker's RSS down.
      resourceLimits: { maxYoungGenerationSizeMb: JOURNAL_THREAD_YOUNG_GENERATION_MB },
      stdout: false,
      stderr: false,
    });
    return new SqliteJournal(thread, path);
  }

  async fence(pool: string, shard: number, epoch: number): Promise<void> {
    checkPoolId(pool);
    checkNonNegativeInteger("shard", shard);
    checkNonNegativeInteger("epoch", epoch);
    await this.call(`fence on pool ${pool}`, { op: "fence", pool, shard, epoch });
  }

  async load(pool: string): Promise<LoadedPool> {
    checkPoolId(pool);
    const rows = (await this.call("load", { op: "load", pool })) as LoadRows;
    const snapshot: Snapshot | undefined =
      rows.snapshot === undefined
        ? undefined
        : { seq: rows.snapshot.seq, state: JSON.parse(rows.snapshot.state) };
    const events: StoredEvent[] = rows.events.map((r) => ({
      seq: r.seq,
      event: JSON.parse(r.payload),
    }));
    return { snapshot, events, version: rows.version, fenceEpoch: rows.fenceEpoch };
  }

  /**
   * Appends are group-committed by the thread: the writes that reach it while it is
   * busy (in a transaction, an fsync or a lock wait) are committed together in ONE
   * write transaction (one fsync under synchronous=FULL), in call order, each with its
   * own fence and version check. An append that fails its check (FencedError,
   * VersionConflictError) writes nothing and does not affect the others; any other
   * failure rolls the whole transaction back and fails every write in it. Each append
   * resolves only after the transaction holding it has committed, so durability per
   * acknowledged append is unchanged.
   */
  async append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    const payloads = checkAppend(target, events);
    const { pool, epoch, expectedVersion } = target;
    if (payloads.length === 0) {
      await this.call("append", { op: "check", pool, epoch, expectedVersion });
      return expectedVersion;
    }
    const { shard } = target;
    return (await this.call(`append on pool ${pool}`, {
      op: "append",
      target: { pool, shard, epoch, expectedVersion },
      payloads,
    })) as number;
  }

  /**
   * Keeps only the pool's latest snapshot: one at a lower seq than the stored one is
   * ignored. Throws RangeError if `snapshot.seq` is beyond the pool's version.
   */
  async saveSnapshot(pool: string, snapshot: Snapshot): Promise<void> {
    const state = checkSnapshot(pool, snapshot);
    await this.call(`saveSnapshot on pool ${pool}`, {
      op: "saveSnapshot",
      pool,
      seq: snapshot.seq,
      state,
    });
  }

  async listPools(shard: number): Promise<string[]> {
    checkNonNegativeInteger("shard", shard);
    const pools = (await this.call("listPools", { op: "listPools", shard })) as string[];
    // SQLite orders by UTF-8 bytes; sort again so the order is JS's, like every Journal.
    return pools.sort();
  }

  /**
   * One write (the shard's fences, in a group commit with whatever else is being
   * written) and then one read of every pool of the shard (three queries), instead of
   * two calls per pool. A pool recorded between the two (by an older writer) loads
   * with its lower fence epoch, for the caller to fence on its own.
   */
  async recoverShard(shard: number, epoch: number): Promise<RecoveredShard> {
    checkNonNegativeInteger("shard", shard);
    checkNonNegativeInteger("epoch", epoch);
    // The load only once the fence has committed: then the fences of every shard
    // recovering at once share one write transaction, and their loads one read.
    await this.call(`fence of shard ${shard}`, { op: "fenceShard", shard, epoch });
    const rows = (await this.call(`load of shard ${shard}`, {
      op: "loadShard",
      shard,
    })) as LoadShardRows;
    const snapshots = new Map<string, Snapshot>();
    for (const [pool, seq, state] of rows.snapshots) {
      snapshots.set(pool, { seq, state: JSON.parse(state) });
    }
    const events = new Map<string, StoredEvent[]>();
    for (const [pool, seq, payload] of rows.events) {
      const list = events.get(pool);
      const e = { seq, event: JSON.parse(payload) };
      if (list === undefined) events.set(pool, [e]);
      else list.push(e);
    }
    const byId = [...rows.pools].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const pools = new Map<string, LoadedPool>();
    for (const [pool, fenceEpoch, version] of byId) {
      pools.set(pool, {
        snapshot: snapshots.get(pool),
        events: events.get(pool) ?? [],
        version,
        fenceEpoch,
      });
    }
    return { pools };
  }

  /**
   * Closes the journal: calls made before it still complete (and answer), then the
   * connection closes and the thread ends. Idempotent; later calls reject with
   * JournalUnavailableError.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    if (this.died !== undefined) {
      this.closing = Promise.resolve();
      return this.closing;
    }
    const id = this.nextId++;
    this.closing = new Promise<void>((resolve) => {
      // The thread answers "close" after every earlier call, then ends; if it dies
      // instead, die() rejects this, and closing is done either way.
      const done = () => {
        void this.exited.then(resolve);
      };
      this.pending.set(id, { label: "close", write: false, resolve: done, reject: done });
      this.thread.ref();
      this.send({ op: "close", id });
    });
    return this.closing;
  }

  /**
   * Ends the journal's thread abruptly, as a crash would (for tests): every call it
   * has not answered fails, later calls fail too.
   * @internal
   */
  async crashThreadForTesting(): Promise<void> {
    await this.thread.terminate();
    await this.exited;
  }

  private call(label: string, request: Request): Promise<unknown> {
    if (this.closed) {
      return Promise.reject(
        new JournalUnavailableError(`${label}: journal ${this.path} is closed`, false),
      );
    }
    if (this.died !== undefined) {
      return Promise.reject(
        new JournalUnavailableError(
          `${label}: the thread of journal ${this.path} has ended (${this.died})`,
          false,
        ),
      );
    }
    const id = this.nextId++;
    const write =
      request.op === "append" ||
      request.op === "fence" ||
      request.op === "fenceShard" ||
      request.op === "saveSnapshot";
    return new Promise((resolve, reject) => {
      // A call in flight keeps the process alive, as the thread's work would.
      if (this.pending.size === 0) this.thread.ref();
      this.pending.set(id, { label, write, resolve, reject });
      this.send({ ...request, id } as ThreadRequest);
    });
  }

  /**
   * Posts the calls of one event-loop turn as one message, at the end of the turn: the
   * entities answered by one batch of answers append again in the same turn, and the
   * thread then takes all of them into one transaction instead of the first alone.
   */
  private send(request: ThreadRequest): void {
    this.outbox.push(request);
    if (this.outbox.length === 1) setImmediate(this.flushOutbox);
  }

  private readonly flushOutbox = (): void => {
    const batch = this.outbox;
    this.outbox = [];
    if (this.died === undefined) this.thread.postMessage(batch);
  };

  private onAnswers(answers: readonly ThreadAnswer[]): void {
    for (const [id, ok, value] of answers) {
      const p = this.pending.get(id);
      if (p === undefined) continue;
      this.pending.delete(id);
      if (ok) p.resolve(value);
      else p.reject(this.toError(p.label, value));
    }
    // Closing keeps the thread referenced until it has ended.
    if (this.pending.size === 0 && this.closing === undefined) this.thread.unref();
  }

  private toError(label: string, f: ThreadFailure): Error {
    switch (f.kind) {
      case "fenced":
        return new FencedError(f.pool, f.epoch, f.fence);
      case "conflict":
        return new VersionConflictError(f.pool, f.expected, f.actual);
      case "snapshotBeyond":
        return snapshotBeyondVersionError(f.pool, f.seq, f.version);
      case "unavailable": {
        const where =
          f.groupOthers === 0
            ? label
            : `${label}, in a group commit with ${f.groupOthers} other writes`;
        return new JournalUnavailableError(
          `${where}${f.detail}`,
          f.outcomeUnknown,
          f.cause === undefined ? undefined : { cause: f.cause },
        );
      }
    }
  }

  /** The thread is gone: every call it has not answered fails, later ones too. */
  private die(reason: string): void {
    if (this.died !== undefined) return;
    this.died = reason;
    const calls = [...this.pending];
    this.pending.clear();
    // Calls of this turn were never posted: they certainly wrote nothing.
    const unsent = new Set(this.outbox.map((r) => r.id));
    this.outbox = [];
    this.thread.unref();
    for (const [id, p] of calls) {
      const unknown = p.write && !unsent.has(id);
      p.reject(
        new JournalUnavailableError(
          unknown
            ? `${p.label}: the thread of journal ${this.path} ended before it answered (${reason}); the outcome is unknown`
            : `${p.label}: the thread of journal ${this.path} ended before it answered (${reason})`,
          unknown,
        ),
      );
    }
  }
}

/**
 * Between tries to open a locked database: 2 ms doubling to 20 ms, full jitter (uniform
 * in [0, d)), so that processes opening one file together spread out.
 */
const OPEN_BUSY_BACKOFF: BackoffPolicy = { initialMs: 2, maxMs: 20, jitter: "full" };

function retryBusySync(deadline: number, body: () => void): void {
  for (let attempt = 1; ; attempt++) {
    try {
      body();
      return;
    } catch (e: unknown) {
      if (!isBusy(e) || Date.now() >= deadline) throw e;
    }
    sleepSync(backoffDelayMs(attempt, OPEN_BUSY_BACKOFF));
  }
}

/** Brings the schema to SQLITE_JOURNAL_SCHEMA_VERSION; concurrent openers serialise on the lock. */
function migrate(db: DatabaseSync): void {
  const version = () =>
    (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
  if (version() === MIGRATIONS.length) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    const from = version();
    if (from > MIGRATIONS.length) {
      throw new Error(
        `journal schema version ${from} is newer than this build's ${MIGRATIONS.length}; upgrade Berth`,
      );
    }
    for (let v = from; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v] as string);
    db.exec(`PRAGMA user_version = ${MIGRATIONS.length}`);
    db.exec("COMMIT");
  } catch (e: unknown) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw e;
  }
}
