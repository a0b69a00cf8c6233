/**
 * The body of a SqliteJournal's worker thread: it owns the journal's SQLite connection
 * and runs every transaction, so that a COMMIT's fsync and a wait for another
 * process's write lock block this thread, never the worker's event loop.
 *
 * {@link sqliteJournalThread} is started from its source text (`eval`), so it works the
 * same from the TypeScript sources (tsx) and from the esbuild bundle, where this
 * module is not a file of its own. It must therefore be self-contained: no reference
 * to anything outside its body but its two parameters (type-only imports are erased).
 * Only the message types below are shared with the main thread.
 */
import type * as SqliteModule from "node:sqlite";
import type * as WorkerThreadsModule from "node:worker_threads";
import type { AppendTarget } from "./journal.js";

/** What the main thread passes as `workerData`. */
export interface ThreadConfig {
  readonly path: string;
  readonly synchronous: "FULL" | "NORMAL";
  readonly busyTimeoutMs: number;
  /** Pause between attempts at a write lock held by another connection, in ms (fractional). */
  readonly lockPollMs: number;
}

/** One operation sent to the thread (in batches: one message holds an array); `id` pairs it with its answer. */
export type ThreadRequest =
  | {
      readonly op: "append";
      readonly id: number;
      readonly target: AppendTarget;
      readonly payloads: readonly string[];
    }
  | {
      readonly op: "fence";
      readonly id: number;
      readonly pool: string;
      readonly shard: number;
      readonly epoch: number;
    }
  | {
      readonly op: "saveSnapshot";
      readonly id: number;
      readonly pool: string;
      readonly seq: number;
      readonly state: string;
    }
  | { readonly op: "load"; readonly id: number; readonly pool: string }
  /** An empty append: only the fence and version check, in a read transaction. */
  | {
      readonly op: "check";
      readonly id: number;
      readonly pool: string;
      readonly epoch: number;
      readonly expectedVersion: number;
    }
  | { readonly op: "listPools"; readonly id: number; readonly shard: number }
  /** Raises the fence of every pool of the shard to `epoch` (none is lowered). */
  | {
      readonly op: "fenceShard";
      readonly id: number;
      readonly shard: number;
      readonly epoch: number;
    }
  /** Loads every pool of the shard at once. */
  | { readonly op: "loadShard"; readonly id: number; readonly shard: number }
  /** Answered after every earlier request, then the connection closes and the thread ends. */
  | { readonly op: "close"; readonly id: number };

/** Why an operation failed, rebuilt into the journal's error classes by the main thread. */
export type ThreadFailure =
  | {
      readonly kind: "fenced";
      readonly pool: string;
      readonly epoch: number;
      readonly fence: number;
    }
  | {
      readonly kind: "conflict";
      readonly pool: string;
      readonly expected: number;
      readonly actual: number;
    }
  | {
      readonly kind: "snapshotBeyond";
      readonly pool: string;
      readonly seq: number;
      readonly version: number;
    }
  | {
      readonly kind: "unavailable";
      /** The message after the operation's label, which the main thread puts first. */
      readonly detail: string;
      readonly outcomeUnknown: boolean;
      /** Other writes in the same transaction, which failed with this one. */
      readonly groupOthers: number;
      readonly cause?: unknown;
    };

/** The raw rows of a load; JSON is parsed on the main thread. */
export interface LoadRows {
  readonly snapshot: { readonly seq: number; readonly state: string } | undefined;
  readonly events: readonly { readonly seq: number; readonly payload: string }[];
  readonly version: number;
  readonly fenceEpoch: number;
}

/** The raw rows of a loadShard: [pool, fence, version], [pool, seq, state], [pool, seq, payload]. */
export interface LoadShardRows {
  readonly pools: readonly (readonly [pool: string, fenceEpoch: number, version: number])[];
  readonly snapshots: readonly (readonly [pool: string, seq: number, state: string])[];
  /** In (pool, seq) order; only events after the pool's snapshot. */
  readonly events: readonly (readonly [pool: string, seq: number, payload: string])[];
}

/** [id, true, value] or [id, false, failure]; one message carries a whole batch of them. */
export type ThreadAnswer =
  | readonly [id: number, ok: true, value: unknown]
  | readonly [id: number, ok: false, failure: ThreadFailure];

/**
 * Runs in the worker thread. Requests are taken in arrival order. Consecutive writes
 * (appends, fences, snapshots) share ONE `BEGIN IMMEDIATE … COMMIT` (one fsync under
 * synchronous=FULL), each with its own check; consecutive reads share one read
 * transaction. While a transaction runs, new requests queue in the port; the next
 * turn takes all of them, so group commit is pipelined: everything that arrived during
 * one fsync goes into the next.
 */
export function sqliteJournalThread(
  threads: typeof WorkerThreadsModule,
  sqlite: typeof SqliteModule,
): void {
  const port = threads.parentPort;
  if (port === null) throw new Error("sqliteJournalThread runs only in a worker thread");
  const config = threads.workerData as ThreadConfig;
  const SQLITE_BUSY = 5;
  const SQLITE_LOCKED = 6;
  /** Events per multi-row INSERT; 3 × 16 parameters stay far below SQLite's limit. */
  const INSERT_CHUNK = 16;
  /** Most writes committed in one transaction; more go in the next one at once. */
  const MAX_GROUP = 512;

  // Preparing a statement reads the schema, which can find the file busy for a moment
  // (another process opening the same new file runs WAL recovery or its migration):
  // SQLite's busy handler waits that out, within busyTimeoutMs.
  const db = new sqlite.DatabaseSync(config.path, { timeout: config.busyTimeoutMs });
  db.exec(`PRAGMA synchronous = ${config.synchronous}`);
  const begin = db.prepare("BEGIN IMMEDIATE");
  const beginRead = db.prepare("BEGIN DEFERRED");
  const commit = db.prepare("COMMIT");
  const rollback = db.prepare("ROLLBACK");
  const selectPool = db.prepare("SELECT fence_epoch, version FROM pools WHERE pool = ?");
  const upsertFence = db.prepare(
    `INSERT INTO pools (pool, shard, fence_epoch, version) VALUES (?, ?, ?, 0)
     ON CONFLICT (pool) DO UPDATE SET shard = excluded.shard, fence_epoch = excluded.fence_epoch`,
  );
  const upsertVersion = db.prepare(
    `INSERT INTO pools (pool, shard, fence_epoch, version) VALUES (?, ?, 0, ?)
     ON CONFLICT (pool) DO UPDATE SET shard = excluded.shard, version = excluded.version`,
  );
  const insertEvent = db.prepare("INSERT INTO events (pool, seq, payload) VALUES (?, ?, ?)");
  const insertEventChunk = db.prepare(
    `INSERT INTO events (pool, seq, payload) VALUES ${Array(INSERT_CHUNK).fill("(?, ?, ?)").join(", ")}`,
  );
  const selectEventsAfter = db.prepare(
    "SELECT seq, payload FROM events WHERE pool = ? AND seq > ? ORDER BY seq",
  );
  const selectSnapshot = db.prepare("SELECT seq, state FROM snapshots WHERE pool = ?");
  const upsertSnapshot = db.prepare(
    `INSERT INTO snapshots (pool, seq, state) VALUES (?, ?, ?)
     ON CONFLICT (pool) DO UPDATE SET seq = excluded.seq, state = excluded.state
     WHERE excluded.seq >= snapshots.seq`,
  );
  const selectPoolsOfShard = db.prepare("SELECT pool FROM pools WHERE shard = ? ORDER BY pool");
  const fenceShard = db.prepare(
    "UPDATE pools SET fence_epoch = ? WHERE shard = ? AND fence_epoch < ?",
  );
  const selectShardPools = db.prepare(
    "SELECT pool, fence_epoch, version FROM pools WHERE shard = ? ORDER BY pool",
  );
  const selectShardSnapshots = db.prepare(
    `SELECT s.pool, s.seq, s.state FROM pools p JOIN snapshots s ON s.pool = p.pool
     WHERE p.shard = ?`,
  );
  const selectShardEvents = db.prepare(
    `SELECT e.pool, e.seq, e.payload FROM pools p JOIN events e ON e.pool = p.pool
     WHERE p.shard = ?
       AND e.seq > COALESCE((SELECT s.seq FROM snapshots s WHERE s.pool = p.pool), 0)
     ORDER BY e.pool, e.seq`,
  );
  // From here on lock waits are polled below, at a finer grain than SQLite's busy
  // handler (which sleeps 1, 2, 5, 10, … ms and so misses the short gaps between
  // another process's commits).
  db.exec("PRAGMA busy_timeout = 0");
  const pause = new Int32Array(new SharedArrayBuffer(4));

  const queue: ThreadRequest[] = [];
  let scheduled = false;
  /** Whether the last write lock was taken only after waiting: another process is writing. */
  let contended = false;

  const isBusy = (e: unknown): boolean => {
    if (typeof e !== "object" || e === null) return false;
    const code = (e as { errcode?: unknown }).errcode;
    return (
      typeof code === "number" && ((code & 0xff) === SQLITE_BUSY || (code & 0xff) === SQLITE_LOCKED)
    );
  };
  const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
  const sleep = (ms: number): void => {
    Atomics.wait(pause, 0, 0, ms);
  };
  /** A constant poll, not a backoff: lockPollMs jittered to 50–150 %, so contending processes spread out. */
  const pollPause = (): number => config.lockPollMs * (0.5 + Math.random());
  const unavailable = (
    detail: string,
    outcomeUnknown: boolean,
    groupOthers: number,
    cause?: unknown,
  ): ThreadFailure => ({
    kind: "unavailable",
    detail,
    outcomeUnknown,
    groupOthers,
    // Errors survive postMessage (name, message, stack); anything else becomes a string.
    cause: cause instanceof Error ? cause : String(cause),
  });
  const failed = (op: string, e: unknown): string =>
    `${op} failed on journal ${config.path}: ${message(e)}`;
  const lockedTooLong = `: journal ${config.path} stayed locked for ${config.busyTimeoutMs} ms`;

  type PoolRow = { fence_epoch: number; version: number } | undefined;
  type Outcome = { ok: true; value: unknown } | { ok: false; failure: ThreadFailure };

  /** The fence and version check of an append; a failure, or undefined if it may go on. */
  const checkTarget = (
    pool: string,
    epoch: number,
    expectedVersion: number,
  ): ThreadFailure | undefined => {
    const row = selectPool.get(pool) as PoolRow;
    const fence = row?.fence_epoch ?? 0;
    if (epoch < fence) return { kind: "fenced", pool, epoch, fence };
    const version = row?.version ?? 0;
    if (version !== expectedVersion) {
      return { kind: "conflict", pool, expected: expectedVersion, actual: version };
    }
    return undefined;
  };

  /** One write inside the group's transaction; a check failure writes nothing. */
  const writeOne = (r: ThreadRequest): Outcome => {
    switch (r.op) {
      case "append": {
        const { pool, shard, epoch, expectedVersion } = r.target;
        const rejected = checkTarget(pool, epoch, expectedVersion);
        if (rejected !== undefined) return { ok: false, failure: rejected };
        const payloads = r.payloads;
        let i = 0;
        for (; i + INSERT_CHUNK <= payloads.length; i += INSERT_CHUNK) {
          const args: (string | number)[] = [];
          for (let k = i; k < i + INSERT_CHUNK; k++) {
            args.push(pool, expectedVersion + 1 + k, payloads[k] as string);
          }
          insertEventChunk.run(...args);
        }
        for (; i < payloads.length; i++) {
          insertEvent.run(pool, expectedVersion + 1 + i, payloads[i] as string);
        }
        const version = expectedVersion + payloads.length;
        upsertVersion.run(pool, shard, version);
        return { ok: true, value: version };
      }
      case "fence": {
        const current = (selectPool.get(r.pool) as PoolRow)?.fence_epoch ?? 0;
        if (current > r.epoch) {
          return {
            ok: false,
            failure: { kind: "fenced", pool: r.pool, epoch: r.epoch, fence: current },
          };
        }
        upsertFence.run(r.pool, r.shard, r.epoch);
        return { ok: true, value: undefined };
      }
      case "fenceShard": {
        fenceShard.run(r.epoch, r.shard, r.epoch);
        return { ok: true, value: undefined };
      }
      case "saveSnapshot": {
        const version = (selectPool.get(r.pool) as PoolRow)?.version ?? 0;
        if (r.seq > version) {
          return {
            ok: false,
            failure: { kind: "snapshotBeyond", pool: r.pool, seq: r.seq, version },
          };
        }
        upsertSnapshot.run(r.pool, r.seq, r.state);
        return { ok: true, value: undefined };
      }
      default:
        throw new Error(`not a write: ${r.op}`);
    }
  };

  const readOne = (r: ThreadRequest): Outcome => {
    switch (r.op) {
      case "load": {
        const row = selectPool.get(r.pool) as PoolRow;
        const snap = selectSnapshot.get(r.pool) as { seq: number; state: string } | undefined;
        const events = selectEventsAfter.all(r.pool, snap?.seq ?? 0) as {
          seq: number;
          payload: string;
        }[];
        const rows: LoadRows = {
          snapshot: snap === undefined ? undefined : { seq: snap.seq, state: snap.state },
          events: events.map((e) => ({ seq: e.seq, payload: e.payload })),
          version: row?.version ?? 0,
          fenceEpoch: row?.fence_epoch ?? 0,
        };
        return { ok: true, value: rows };
      }
      case "check": {
        const rejected = checkTarget(r.pool, r.epoch, r.expectedVersion);
        return rejected === undefined
          ? { ok: true, value: r.expectedVersion }
          : { ok: false, failure: rejected };
      }
      case "listPools": {
        const rows = selectPoolsOfShard.all(r.shard) as { pool: string }[];
        return { ok: true, value: rows.map((x) => x.pool) };
      }
      case "loadShard": {
        const pools = selectShardPools.all(r.shard) as {
          pool: string;
          fence_epoch: number;
          version: number;
        }[];
        const snapshots = selectShardSnapshots.all(r.shard) as {
          pool: string;
          seq: number;
          state: string;
        }[];
        const events = selectShardEvents.all(r.shard) as {
          pool: string;
          seq: number;
          payload: string;
        }[];
        const rows: LoadShardRows = {
          pools: pools.map((p) => [p.pool, p.fence_epoch, p.version] as const),
          snapshots: snapshots.map((x) => [x.pool, x.seq, x.state] as const),
          events: events.map((e) => [e.pool, e.seq, e.payload] as const),
        };
        return { ok: true, value: rows };
      }
      default:
        throw new Error(`not a read: ${r.op}`);
    }
  };

  /** Runs a group of writes in one transaction, waiting for the write lock as needed. */
  const runWrites = (group: readonly ThreadRequest[]): Outcome[] | ThreadFailure => {
    const others = group.length - 1;
    // Another process waited for the lock last time: let it have its turn before ours.
    if (contended) sleep(pollPause());
    const deadline = Date.now() + config.busyTimeoutMs;
    let waited = false;
    for (;;) {
      try {
        begin.run();
        break;
      } catch (e: unknown) {
        if (!isBusy(e)) return unavailable(failed("", e), false, others, e);
        if (Date.now() >= deadline) return unavailable(lockedTooLong, false, others, e);
      }
      waited = true;
      sleep(pollPause());
    }
    contended = waited;
    let outcomes: Outcome[];
    try {
      outcomes = group.map(writeOne);
    } catch (e: unknown) {
      if (db.isTransaction) rollback.run();
      return unavailable(failed("", e), false, others, e);
    }
    try {
      commit.run();
    } catch (e: unknown) {
      // Still in the transaction: the commit did not happen, roll back and say so.
      // Otherwise SQLite gave up mid-commit and the WAL may or may not hold it.
      const known = db.isTransaction;
      if (known) rollback.run();
      return unavailable(failed(" (commit)", e), !known, others, e);
    }
    return outcomes;
  };

  /** Runs a group of reads in one read transaction (one consistent view). */
  const runReads = (group: readonly ThreadRequest[]): Outcome[] | ThreadFailure => {
    const deadline = Date.now() + config.busyTimeoutMs;
    for (;;) {
      try {
        beginRead.run();
        const outcomes = group.map(readOne);
        commit.run();
        return outcomes;
      } catch (e: unknown) {
        if (db.isTransaction) rollback.run();
        if (!isBusy(e)) return unavailable(failed("", e), false, 0, e);
        if (Date.now() >= deadline) return unavailable(lockedTooLong, false, 0, e);
      }
      sleep(pollPause());
    }
  };

  const isWrite = (r: ThreadRequest): boolean =>
    r.op === "append" || r.op === "fence" || r.op === "fenceShard" || r.op === "saveSnapshot";

  const drain = (): void => {
    scheduled = false;
    let closing: ThreadRequest | undefined;
    // Everything queued now, in runs of writes and runs of reads, in arrival order.
    let n = 0;
    while (n < queue.length && queue[n]?.op !== "close") n++;
    const taken = queue.splice(0, n);
    if (queue[0]?.op === "close") closing = queue.shift();
    for (let i = 0; i < taken.length; ) {
      const write = isWrite(taken[i] as ThreadRequest);
      let j = i + 1;
      while (
        j < taken.length &&
        j - i < MAX_GROUP &&
        isWrite(taken[j] as ThreadRequest) === write
      ) {
        j++;
      }
      const group = taken.slice(i, j);
      const result = write ? runWrites(group) : runReads(group);
      const out: ThreadAnswer[] = group.map((r, k): ThreadAnswer => {
        if (!Array.isArray(result)) return [r.id, false, result];
        const o = result[k] as Outcome;
        return o.ok ? [r.id, true, o.value] : [r.id, false, o.failure];
      });
      // Answer as soon as a group is done: a reply waits for no later transaction.
      port.postMessage(out);
      i = j;
    }
    if (closing !== undefined) {
      db.close();
      port.postMessage([[closing.id, true, undefined]] satisfies ThreadAnswer[]);
      port.close();
      return;
    }
    if (queue.length > 0) schedule();
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    // setImmediate runs after the port's pending messages are taken (poll phase), so
    // the next group holds everything that arrived during this one.
    setImmediate(drain);
  };

  port.on("message", (batch: readonly ThreadRequest[]) => {
    for (const r of batch) queue.push(r);
    schedule();
  });
}
