/**
 * The journal: the durable, ordered event log of every pool, and the arbiter of
 * ownership. Implementations: SQLite (local mode, tests) and Cassandra (production).
 *
 * Sequence numbers start at 1 and have no gaps. Fencing: each pool has a fence
 * epoch; `fence` raises it, and `append` succeeds only when the writer's epoch is
 * at least the fence and `expectedVersion` is the pool's current version. A stale
 * owner (lower epoch) can therefore never append after a newer owner fenced the pool,
 * whatever the clocks say.
 */

/** An event as stored: its seq and its JSON-serialisable payload. */
export interface StoredEvent {
  readonly seq: number;
  readonly event: unknown;
}

/** A pool's state at `seq`, JSON-serialisable. */
export interface Snapshot {
  readonly seq: number;
  readonly state: unknown;
}

/** What `load` returns: the latest snapshot, if any, and every event after it. */
export interface LoadedPool {
  readonly snapshot: Snapshot | undefined;
  /** Events with seq > snapshot.seq (or all events), in seq order. */
  readonly events: readonly StoredEvent[];
  /** Seq of the last event; 0 if none. */
  readonly version: number;
  /** The pool's current fence epoch (0 if never fenced). */
  readonly fenceEpoch: number;
}

export interface AppendTarget {
  readonly pool: string;
  /** The pool's shard, recorded so a new owner can list the shard's pools. */
  readonly shard: number;
  /** The writer's epoch for the shard. */
  readonly epoch: number;
  /** The version the writer last saw; the first appended event gets expectedVersion + 1. */
  readonly expectedVersion: number;
}

/** What {@link Journal.recoverShard} returns. */
export interface RecoveredShard {
  /** Every pool recorded in the shard, by id (insertion order: sorted by id). */
  readonly pools: ReadonlyMap<string, LoadedPool>;
}

export interface Journal {
  /**
   * Most events one `append` takes; a larger append throws RangeError (and always
   * would: it is not worth retrying). Undefined: no limit.
   */
  readonly maxAppendEvents?: number;
  /**
   * Raises the pool's fence epoch to `epoch` (creating the pool's record if new),
   * so that no writer with a lower epoch can append any more.
   * Throws FencedError if the fence is already higher than `epoch`.
   */
  fence(pool: string, shard: number, epoch: number): Promise<void>;
  /** Reads a pool's latest snapshot and the events after it. */
  load(pool: string): Promise<LoadedPool>;
  /**
   * Appends events atomically (all or none) at expectedVersion+1.., conditional on
   * the version and the fence. Returns the new version.
   * Throws VersionConflictError, FencedError, or JournalUnavailableError (outcome
   * unknown: the caller must re-read before it answers).
   */
  append(target: AppendTarget, events: readonly unknown[]): Promise<number>;
  /** Stores a snapshot of the pool's state at `seq` (which must be an appended seq). */
  saveSnapshot(pool: string, snapshot: Snapshot): Promise<void>;
  /** Ids of every pool recorded in the given shard, sorted. */
  listPools(shard: number): Promise<string[]>;
  /**
   * Optional: a new owner's recovery of a whole shard in one call instead of a
   * `fence` and a `load` per pool. Raises the fence of every pool recorded in the
   * shard to `epoch` (a pool fenced higher keeps its fence), then loads every pool
   * recorded in the shard. Each loaded pool's `fenceEpoch` tells what the caller may
   * do with it: equal to `epoch`, it is fenced for the caller, who may serve it; higher,
   * a newer owner holds it; lower, it was recorded after the fence (by an older
   * writer) and must still be fenced and loaded one by one.
   */
  recoverShard?(shard: number, epoch: number): Promise<RecoveredShard>;
  close(): Promise<void>;
}
