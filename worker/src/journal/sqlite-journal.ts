import { DatabaseSync, type StatementSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { FencedError, JournalUnavailableError, VersionConflictError } from "./errors.js";
import type { AppendTarget, Journal, LoadedPool, Snapshot, StoredEvent } from "./journal.js";
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
   * How long one call waits in total for another connection (usually another worker
   * process sharing the file) to release the write lock before it fails with
   * JournalUnavailableError. Default 5000. Also bounds `open`.
   */
  readonly busyTimeoutMs?: number;
  /**
   * The longest time SQLite itself blocks the thread waiting for a lock, per attempt
   * (default 2, capped by busyTimeoutMs). Between attempts the call sleeps
   * asynchronously, so a contended file delays this call, not the event loop. Kept
   * short because the workers of a local cluster share one file: a longer slice
   * stalls every request of a worker while another worker commits.
   */
  readonly lockWaitSliceMs?: number;
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

/** Events per multi-row INSERT; 3 × 16 parameters stay far below SQLite's limit. */
const INSERT_CHUNK = 16;

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;

/** Most appends committed in one transaction; more wait for the next turn. */
const MAX_GROUP_APPENDS = 256;

/** An append waiting for its group's transaction. */
interface QueuedAppend {
  readonly target: AppendTarget;
  readonly payloads: readonly string[];
  readonly resolve: (version: number) => void;
  readonly reject: (e: unknown) => void;
}

interface PoolRow {
  fence_epoch: number;
  version: number;
}

/** Why a transaction could not run: lock contention (retryable) or anything else. */
function isBusy(e: unknown): boolean {
  if (typeof e !== "object" || e === null) return false;
  const code = (e as { errcode?: unknown }).errcode;
  return (
    typeof code === "number" && ((code & 0xff) === SQLITE_BUSY || (code & 0xff) === SQLITE_LOCKED)
  );
}

function isJournalAnswer(e: unknown): boolean {
  return (
    e instanceof VersionConflictError ||
    e instanceof FencedError ||
    e instanceof RangeError ||
    e instanceof TypeError
  );
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * The journal on one SQLite file through Node's built-in `node:sqlite`, for local
 * mode and tests. Several processes (the workers of a local cluster) may open the
 * same file at once: WAL mode lets readers run beside the one writer, writes take
 * the lock up front (`BEGIN IMMEDIATE`) and wait for it within `busyTimeoutMs`.
 *
 * `node:sqlite` is synchronous: every method runs its whole transaction without
 * yielding, so calls on one instance never interleave; they are async only to fit
 * the Journal interface (and to sleep between lock attempts).
 */
export class SqliteJournal implements Journal {
  private closed = false;
  /** Appends waiting for the end of this event-loop turn, in call order. */
  private readonly queuedAppends: QueuedAppend[] = [];
  private flushScheduled = false;
  private readonly begin: StatementSync;
  private readonly beginRead: StatementSync;
  private readonly commit: StatementSync;
  private readonly rollback: StatementSync;
  private readonly selectPool: StatementSync;
  private readonly upsertFence: StatementSync;
  private readonly upsertVersion: StatementSync;
  private readonly insertEvent: StatementSync;
  private readonly insertEventChunk: StatementSync;
  private readonly selectEventsAfter: StatementSync;
  private readonly selectSnapshot: StatementSync;
  private readonly upsertSnapshot: StatementSync;
  private readonly selectPoolsOfShard: StatementSync;

  private constructor(
    private readonly db: DatabaseSync,
    /** The file this journal was opened on. */
    readonly path: string,
    private readonly busyTimeoutMs: number,
  ) {
    this.begin = db.prepare("BEGIN IMMEDIATE");
    this.beginRead = db.prepare("BEGIN DEFERRED");
    this.commit = db.prepare("COMMIT");
    this.rollback = db.prepare("ROLLBACK");
    this.selectPool = db.prepare("SELECT fence_epoch, version FROM pools WHERE pool = ?");
    this.upsertFence = db.prepare(
      `INSERT INTO pools (pool, shard, fence_epoch, version) VALUES (?, ?, ?, 0)
       ON CONFLICT (pool) DO UPDATE SET shard = excluded.shard, fence_epoch = excluded.fence_epoch`,
    );
    this.upsertVersion = db.prepare(
      `INSERT INTO pools (pool, shard, fence_epoch, version) VALUES (?, ?, 0, ?)
       ON CONFLICT (pool) DO UPDATE SET shard = excluded.shard, version = excluded.version`,
    );
    this.insertEvent = db.prepare("INSERT INTO events (pool, seq, payload) VALUES (?, ?, ?)");
    this.insertEventChunk = db.prepare(
      `INSERT INTO events (pool, seq, payload) VALUES ${Array(INSERT_CHUNK).fill("(?, ?, ?)").join(", ")}`,
    );
    this.selectEventsAfter = db.prepare(
      "SELECT seq, payload FROM events WHERE pool = ? AND seq > ? ORDER BY seq",
    );
    this.selectSnapshot = db.prepare("SELECT seq, state FROM snapshots WHERE pool = ?");
    this.upsertSnapshot = db.prepare(
      `INSERT INTO snapshots (pool, seq, state) VALUES (?, ?, ?)
       ON CONFLICT (pool) DO UPDATE SET seq = excluded.seq, state = excluded.state
       WHERE excluded.seq >= snapshots.seq`,
    );
    this.selectPoolsOfShard = db.prepare("SELECT pool FROM pools WHERE shard = ? ORDER BY pool");
  }

  /**
   * Opens (creating if needed) the journal file at `path`, switches it to WAL mode and
   * brings its schema up to date. Safe to call from several processes at once.
   * Throws JournalUnavailableError if the file cannot be opened or stays locked
   * beyond `busyTimeoutMs`, and Error if the file's schema is newer than this build.
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
    const slice = options.lockWaitSliceMs ?? 2;
    checkNonNegativeInteger("lockWaitSliceMs", slice);

    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path, { timeout: busyTimeoutMs });
    } catch (e: unknown) {
      throw new JournalUnavailableError(
        `cannot open journal ${path}: ${(e as Error).message}`,
        false,
        {
          cause: e,
        },
      );
    }
    try {
      // Opening is synchronous anyway, so here SQLite may block for the whole bound.
      const deadline = Date.now() + busyTimeoutMs;
      retryBusySync(deadline, () => {
        const mode = db.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
        if (mode.journal_mode !== "wal") db.exec("PRAGMA journal_mode = WAL");
      });
      db.exec(`PRAGMA synchronous = ${synchronous}`);
      retryBusySync(deadline, () => migrate(db));
      db.exec(`PRAGMA busy_timeout = ${Math.min(slice, busyTimeoutMs)}`);
      return new SqliteJournal(db, path, busyTimeoutMs);
    } catch (e: unknown) {
      db.close();
      if (isBusy(e)) {
        throw new JournalUnavailableError(
          `journal ${path} stayed locked for ${busyTimeoutMs} ms while opening`,
          false,
          { cause: e },
        );
      }
      throw e;
    }
  }

  async fence(pool: string, shard: number, epoch: number): Promise<void> {
    checkPoolId(pool);
    checkNonNegativeInteger("shard", shard);
    checkNonNegativeInteger("epoch", epoch);
    await this.write(`fence on pool ${pool}`, () => {
      const row = this.selectPool.get(pool) as PoolRow | undefined;
      const current = row?.fence_epoch ?? 0;
      if (current > epoch) throw new FencedError(pool, epoch, current);
      this.upsertFence.run(pool, shard, epoch);
    });
  }

  async load(pool: string): Promise<LoadedPool> {
    checkPoolId(pool);
    return this.read("load", () => {
      const row = this.selectPool.get(pool) as PoolRow | undefined;
      const snap = this.selectSnapshot.get(pool) as { seq: number; state: string } | undefined;
      const snapshot: Snapshot | undefined = snap
        ? { seq: snap.seq, state: JSON.parse(snap.state) }
        : undefined;
      const rows = this.selectEventsAfter.all(pool, snapshot?.seq ?? 0) as {
        seq: number;
        payload: string;
      }[];
      const events: StoredEvent[] = rows.map((r) => ({ seq: r.seq, event: JSON.parse(r.payload) }));
      return {
        snapshot,
        events,
        version: row?.version ?? 0,
        fenceEpoch: row?.fence_epoch ?? 0,
      };
    });
  }

  /**
   * Appends are group-committed: every append called during one turn of the event loop
   * is committed in ONE write transaction (one fsync under synchronous=FULL) at the end
   * of that turn, in call order, each with its own fence and version check. An append
   * that fails its check (FencedError, VersionConflictError) writes nothing and does
   * not affect the others; any other failure rolls the whole transaction back and
   * fails every append in it. Each append resolves only after the transaction
   * holding it has committed, so durability per acknowledged append is unchanged.
   */
  async append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    const payloads = checkAppend(target, events);
    if (payloads.length === 0) {
      const { pool, epoch, expectedVersion } = target;
      await this.read("append", () => this.checkAppendTarget(pool, epoch, expectedVersion));
      return expectedVersion;
    }
    this.assertOpen("append");
    return new Promise<number>((resolve, reject) => {
      this.queuedAppends.push({ target, payloads, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushAppends());
      }
    });
  }

  /** Throws FencedError or VersionConflictError unless `pool` may take an append now. */
  private checkAppendTarget(pool: string, epoch: number, expectedVersion: number): void {
    const row = this.selectPool.get(pool) as PoolRow | undefined;
    const fence = row?.fence_epoch ?? 0;
    if (epoch < fence) throw new FencedError(pool, epoch, fence);
    const version = row?.version ?? 0;
    if (version !== expectedVersion) throw new VersionConflictError(pool, expectedVersion, version);
  }

  /** Commits the appends queued so far (at most MAX_GROUP_APPENDS; the rest go next turn). */
  private flushAppends(): void {
    this.flushScheduled = false;
    const group = this.queuedAppends.splice(0, MAX_GROUP_APPENDS);
    if (this.queuedAppends.length > 0) {
      this.flushScheduled = true;
      setImmediate(() => this.flushAppends());
    }
    if (group.length > 0) void this.commitGroup(group);
  }

  private async commitGroup(group: readonly QueuedAppend[]): Promise<void> {
    const first = group[0] as QueuedAppend;
    const label =
      group.length === 1
        ? `append on pool ${first.target.pool}`
        : `${group.length} appends (one group commit)`;
    let outcomes: (number | Error)[];
    try {
      outcomes = await this.write(label, () => group.map((a) => this.appendOne(a)));
    } catch (e: unknown) {
      for (const a of group) {
        a.reject(
          group.length > 1 && e instanceof JournalUnavailableError
            ? new JournalUnavailableError(
                `append on pool ${a.target.pool}, in a group commit with ${group.length - 1} other appends: ${e.message}`,
                e.outcomeUnknown,
                { cause: e },
              )
            : e,
        );
      }
      return;
    }
    group.forEach((a, i) => {
      const o = outcomes[i];
      if (typeof o === "number") a.resolve(o);
      else a.reject(o);
    });
  }

  /**
   * One append inside the group's transaction. A fence or version answer is returned
   * (it is raised before anything is written, so the others go on); anything else
   * propagates and rolls the whole group back.
   */
  private appendOne(a: QueuedAppend): number | Error {
    const { pool, shard, epoch, expectedVersion } = a.target;
    const payloads = a.payloads;
    try {
      this.checkAppendTarget(pool, epoch, expectedVersion);
    } catch (e: unknown) {
      if (e instanceof FencedError || e instanceof VersionConflictError) return e;
      throw e;
    }
    // Whole chunks go in one multi-row statement (fewer calls into SQLite), the rest singly.
    let i = 0;
    for (; i + INSERT_CHUNK <= payloads.length; i += INSERT_CHUNK) {
      const args: (string | number)[] = [];
      for (let k = i; k < i + INSERT_CHUNK; k++) {
        args.push(pool, expectedVersion + 1 + k, payloads[k] as string);
      }
      this.insertEventChunk.run(...args);
    }
    for (; i < payloads.length; i++) {
      this.insertEvent.run(pool, expectedVersion + 1 + i, payloads[i] as string);
    }
    const version = expectedVersion + payloads.length;
    this.upsertVersion.run(pool, shard, version);
    return version;
  }

  /**
   * Keeps only the pool's latest snapshot: one at a lower seq than the stored one is
   * ignored. Throws RangeError if `snapshot.seq` is beyond the pool's version.
   */
  async saveSnapshot(pool: string, snapshot: Snapshot): Promise<void> {
    const state = checkSnapshot(pool, snapshot);
    await this.write(`saveSnapshot on pool ${pool}`, () => {
      const row = this.selectPool.get(pool) as PoolRow | undefined;
      const version = row?.version ?? 0;
      if (snapshot.seq > version) throw snapshotBeyondVersionError(pool, snapshot.seq, version);
      this.upsertSnapshot.run(pool, snapshot.seq, state);
    });
  }

  async listPools(shard: number): Promise<string[]> {
    checkNonNegativeInteger("shard", shard);
    const rows = await this.read(
      "listPools",
      () => this.selectPoolsOfShard.all(shard) as { pool: string }[],
    );
    // SQLite orders by UTF-8 bytes; sort again so the order is JS's, like every Journal.
    return rows.map((r) => r.pool).sort();
  }

  /** Closes the database. Idempotent; later calls reject with JournalUnavailableError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /** Runs `body` in a read transaction (one consistent view), retrying on lock contention. */
  private async read<T>(op: string, body: () => T): Promise<T> {
    const deadline = Date.now() + this.busyTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      this.assertOpen(op);
      try {
        this.beginRead.run();
        const result = body();
        this.commit.run();
        return result;
      } catch (e: unknown) {
        if (this.db.isTransaction) this.rollback.run();
        if (isJournalAnswer(e)) throw e;
        if (!isBusy(e)) throw this.unavailable(op, e, false);
        if (Date.now() >= deadline) throw this.lockedTooLong(op, e);
      }
      await sleep(backoff(attempt));
    }
  }

  /**
   * Runs `body` in a write transaction taken with BEGIN IMMEDIATE, retrying while
   * another connection holds the write lock, up to busyTimeoutMs.
   */
  private async write<T>(label: string, body: () => T): Promise<T> {
    const deadline = Date.now() + this.busyTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      this.assertOpen(label);
      let result: T;
      try {
        this.begin.run();
        result = body();
      } catch (e: unknown) {
        if (this.db.isTransaction) this.rollback.run();
        if (isJournalAnswer(e)) throw e;
        if (!isBusy(e)) throw this.unavailable(label, e, false);
        if (Date.now() >= deadline) throw this.lockedTooLong(label, e);
        await sleep(backoff(attempt));
        continue;
      }
      try {
        this.commit.run();
        return result;
      } catch (e: unknown) {
        // Still in the transaction: the commit did not happen, roll back and say so.
        // Otherwise SQLite gave up mid-commit and the WAL may or may not hold it.
        const known = this.db.isTransaction;
        if (known) this.rollback.run();
        throw this.unavailable(`${label} (commit)`, e, !known);
      }
    }
  }

  private assertOpen(op: string): void {
    if (this.closed) {
      throw new JournalUnavailableError(`${op}: journal ${this.path} is closed`, false);
    }
  }

  private unavailable(op: string, e: unknown, outcomeUnknown: boolean): JournalUnavailableError {
    const detail = e instanceof Error ? e.message : String(e);
    return new JournalUnavailableError(
      `${op} failed on journal ${this.path}: ${detail}`,
      outcomeUnknown,
      {
        cause: e,
      },
    );
  }

  private lockedTooLong(op: string, e: unknown): JournalUnavailableError {
    return new JournalUnavailableError(
      `${op}: journal ${this.path} stayed locked for ${this.busyTimeoutMs} ms`,
      false,
      { cause: e },
    );
  }
}

/** A short, jittered pause between lock attempts so contending processes spread out. */
function backoff(attempt: number): number {
  const cap = Math.min(20, 2 * attempt);
  return 1 + Math.floor(Math.random() * cap);
}

function retryBusySync(deadline: number, body: () => void): void {
  for (let attempt = 1; ; attempt++) {
    try {
      body();
      return;
    } catch (e: unknown) {
      if (!isBusy(e) || Date.now() >= deadline) throw e;
    }
    sleepSync(backoff(attempt));
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
