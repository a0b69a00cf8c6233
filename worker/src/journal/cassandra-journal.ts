/**
 * The journal on Apache Cassandra (production). Schema, fencing argument and the
 * timeout contract: docs/cassandra-schema.md. In short:
 *
 * - A pool's events live in partitions `(pool, bucket)`. Each partition carries two
 *   static columns, `version` and `fence_epoch`. An append starting at seq v+1 goes
 *   whole (one conditional batch, never split) into bucket `floor(v / bucketSize)`,
 *   so buckets are consecutive and hold fewer than 2 × bucketSize rows.
 * - Every append is one lightweight transaction (Paxos) on its bucket, conditional on
 *   that bucket's statics (`IF version = v AND fence_epoch = f`, with f ≤ the writer's
 *   epoch checked first) — or, when the append opens a new bucket, `IF NOT EXISTS`
 *   with the fence inherited from the previous, now immutable bucket.
 * - `fence` writes into the same bucket the next append will condition on, with the
 *   same kind of LWT, so a fence and any append serialise on one Paxos instance.
 */
import cassandra from "cassandra-driver";
import {
  CassandraSchemaTooNewError,
  DEFAULT_REPLICATION,
  keyspaceProblem,
  migrateSchema,
  type Replication,
  replicationProblem,
} from "./cassandra-schema.js";
import { FencedError, JournalUnavailableError, VersionConflictError } from "./errors.js";
import type { AppendTarget, Journal, LoadedPool, Snapshot, StoredEvent } from "./journal.js";
import {
  checkAppend,
  checkNonNegativeInteger,
  checkPoolId,
  checkSnapshot,
  snapshotBeyondVersionError,
} from "./validation.js";

const { consistencies, responseErrorCodes } = cassandra.types;
const Long = cassandra.types.Long;
type Row = cassandra.types.Row;

/** Consistency levels allowed for ordinary reads and writes: quorum-class only (see docs). */
export const CONSISTENCY_NAMES = ["QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL"] as const;
export type ConsistencyName = (typeof CONSISTENCY_NAMES)[number];
/** Serial consistency levels for lightweight transactions and linearizable reads. */
export const SERIAL_CONSISTENCY_NAMES = ["SERIAL", "LOCAL_SERIAL"] as const;
export type SerialConsistencyName = (typeof SERIAL_CONSISTENCY_NAMES)[number];

/** Options of {@link CassandraJournal.connect}. */
export interface CassandraJournalOptions {
  /** `host:port` of one or more nodes (the driver discovers the rest). */
  readonly contactPoints: readonly string[];
  /** The keyspace; created with `replication` if missing. */
  readonly keyspace: string;
  /** The driver's local data centre; default "datacenter1". */
  readonly localDataCenter?: string;
  /** Replication used only when the keyspace is created; default SimpleStrategy, RF 1. */
  readonly replication?: Replication;
  /**
   * Consistency of plain reads and writes and of the commit phase of every LWT;
   * default QUORUM. LOCAL_QUORUM is safe only while every worker runs in one data centre.
   */
  readonly consistency?: ConsistencyName;
  /** Consistency of Paxos (LWTs and linearizable reads); default SERIAL. */
  readonly serialConsistency?: SerialConsistencyName;
  /** Client-side timeout of each request; default 5000 ms. */
  readonly requestTimeoutMs?: number;
  /** TCP connect timeout per host; default 5000 ms. */
  readonly connectTimeoutMs?: number;
  /**
   * Events per bucket (partition); default 10 000. Also the largest append. Fixed for
   * the life of a keyspace: every writer of a keyspace must use the same value.
   */
  readonly bucketSize?: number;
  /**
   * Username and password for Cassandra's PasswordAuthenticator (PlainTextAuthProvider).
   * Never part of the URL, never logged: the worker reads them from
   * BERTH_CASSANDRA_USERNAME and BERTH_CASSANDRA_PASSWORD.
   */
  readonly credentials?: CassandraCredentials;
}

/** A Cassandra login. */
export interface CassandraCredentials {
  readonly username: string;
  readonly password: string;
}

/** The default {@link CassandraJournalOptions.bucketSize}. */
export const DEFAULT_BUCKET_SIZE = 10_000;

/**
 * A bucket's statics as of some linearizable point (an applied LWT, a failed LWT's
 * answer, or a SERIAL read). Version, fence and the latest bucket only ever grow.
 */
interface Cursor {
  readonly bucket: number;
  readonly version: number;
  readonly fence: number;
}

interface Statics {
  readonly version: number;
  readonly fence: number;
}

/** How many LWT attempts an append makes while the fence moves under it (≤ its epoch). */
const MAX_ATTEMPTS = 16;
/**
 * How many a fence makes while appends fill buckets under it: each retry means another
 * bucket filled up, so with real bucket sizes one or two suffice.
 */
const MAX_FENCE_ATTEMPTS = 64;
const PAGE_SIZE = 5000;
/** Longest wait between the driver's attempts to reconnect to a node that went away. */
const RECONNECT_MAX_DELAY_MS = 2000;
const MAX_INT = 2 ** 31 - 1;

/**
 * The Journal on Cassandra. One instance holds one driver session; share it across
 * every pool of a worker. Concurrent calls, also on the same pool, are safe.
 */
export class CassandraJournal implements Journal {
  private closed = false;
  /** The latest bucket seen per pool; a hint, always re-validated by the LWTs. */
  private readonly cursors = new Map<string, Cursor>();
  /** `shard/pool` pairs already written to pools_by_shard by this instance. */
  private readonly registered = new Set<string>();
  private readonly q: ReturnType<typeof statements>;

  private constructor(
    private readonly client: cassandra.Client,
    /** The keyspace this journal writes to. */
    readonly keyspace: string,
    /** Events per bucket. */
    readonly bucketSize: number,
    private readonly consistency: number,
    private readonly serialConsistency: number,
    private readonly where: string,
  ) {
    this.q = statements(keyspace);
  }

  /** The largest append: one bucket. */
  get maxAppendEvents(): number {
    return this.bucketSize;
  }

  /**
   * Connects, creates or migrates the keyspace, and returns the journal. Throws
   * TypeError/RangeError for bad options, JournalUnavailableError (outcomeUnknown
   * false) when Cassandra cannot be reached or the schema cannot be prepared — the
   * message says which and where; callers retry — and CassandraSchemaTooNewError when
   * the keyspace was migrated by a newer build.
   */
  static async connect(options: CassandraJournalOptions): Promise<CassandraJournal> {
    const o = checkOptions(options);
    const where = `Cassandra at ${o.contactPoints.join(",")} (data centre ${o.localDataCenter})`;
    const client = new cassandra.Client({
      contactPoints: [...o.contactPoints],
      localDataCenter: o.localDataCenter,
      socketOptions: { readTimeout: o.requestTimeoutMs, connectTimeout: o.connectTimeoutMs },
      queryOptions: {
        consistency: o.consistency,
        serialConsistency: o.serialConsistency,
        prepare: true,
      },
      protocolOptions: { maxSchemaAgreementWaitSeconds: 10 },
      ...(options.credentials === undefined
        ? {}
        : {
            authProvider: new cassandra.auth.PlainTextAuthProvider(
              options.credentials.username,
              options.credentials.password,
            ),
          }),
      // The driver's default (1 s doubling to 10 min) would leave a worker without a
      // journal for minutes after a short outage; reconnect within 2 s of its return.
      policies: {
        reconnection: new cassandra.policies.reconnection.ExponentialReconnectionPolicy(
          100,
          RECONNECT_MAX_DELAY_MS,
          false,
        ),
      },
    });
    try {
      await client.connect();
    } catch (e: unknown) {
      await shutdownQuietly(client, e);
      throw new JournalUnavailableError(`cannot connect to ${where}: ${describe(e)}`, false, {
        cause: e,
      });
    }
    try {
      await migrateSchema(client, o.keyspace, o.replication, o.serialConsistency, o.consistency);
    } catch (e: unknown) {
      await shutdownQuietly(client, e);
      if (e instanceof CassandraSchemaTooNewError) throw e;
      throw new JournalUnavailableError(
        `cannot prepare journal keyspace ${o.keyspace} on ${where}: ${describe(e)}`,
        false,
        { cause: e },
      );
    }
    return new CassandraJournal(
      client,
      o.keyspace,
      o.bucketSize,
      o.consistency,
      o.serialConsistency,
      where,
    );
  }

  async fence(pool: string, shard: number, epoch: number): Promise<void> {
    checkPoolId(pool);
    checkShard(shard);
    checkNonNegativeInteger("epoch", epoch);
    this.assertOpen("fence");
    await this.register(pool, shard, "fence");
    for (let attempt = 1; attempt <= MAX_FENCE_ATTEMPTS; attempt++) {
      const c = this.cursors.get(pool) ?? (await this.findLatest(pool, 0, "fence"));
      const fence = c?.fence ?? 0;
      const version = c?.version ?? 0;
      if (fence > epoch) throw new FencedError(pool, epoch, fence);
      const target = this.targetBucket(version);
      const stmt =
        c !== undefined && c.bucket === target
          ? {
              // Only while the bucket is not full: a full bucket is immutable and the
              // fence belongs in the next one, which inherits it from nothing else.
              query: this.q.raiseFence,
              params: [long(epoch), pool, long(target), long(epoch), long(this.bucketEnd(target))],
            }
          : {
              query: this.q.createBucket,
              params: [pool, long(target), long(version), long(epoch)],
            };
      const answer = await this.lwt(pool, "fence", () =>
        this.client.execute(stmt.query, stmt.params, this.lwtOptions()),
      );
      if (answer === "applied") {
        // A raised fence does not say which version the bucket had then; a new bucket does.
        if (c !== undefined && c.bucket === target) this.cursors.delete(pool);
        else this.learn(pool, { bucket: target, version, fence: epoch });
        return;
      }
      this.learnFromAnswer(pool, target, answer);
    }
    throw this.contended(pool, "fence", MAX_FENCE_ATTEMPTS);
  }

  async load(pool: string): Promise<LoadedPool> {
    checkPoolId(pool);
    this.assertOpen("load");
    const snapshot = await this.readSnapshot(pool);
    const after = snapshot?.seq ?? 0;
    // Seq after+1 lives in bucket floor(after/size) or, if the batch that wrote it
    // began in the previous bucket, in that one.
    const from = Math.max(0, this.targetBucket(after) - 1);
    const latest = await this.findLatest(
      pool,
      Math.max(from, this.cursors.get(pool)?.bucket ?? 0),
      "load",
    );
    if (latest === undefined) {
      return { snapshot, events: [], version: 0, fenceEpoch: 0 };
    }
    for (const serialAll of [false, true]) {
      const events: StoredEvent[] = [];
      for (let b = Math.min(from, latest.bucket); b < latest.bucket; b++) {
        const part = await this.readBucket(pool, b, after, serialAll, "load");
        events.push(...part.events);
      }
      // The latest bucket is read linearizably: a SERIAL read finishes any Paxos round
      // left in progress (an append whose client timed out), so what load returns
      // after an unknown outcome is final — the entity host relies on it.
      const tail = await this.readBucket(pool, latest.bucket, after, true, "load");
      events.push(...tail.events);
      const statics = tail.statics ?? latest;
      const version = statics.version;
      if (isContiguous(events, after, version)) {
        this.learn(pool, { bucket: latest.bucket, ...statics });
        return { snapshot, events, version, fenceEpoch: statics.fence };
      }
      // A gap can only be a replica that missed a write: read again through Paxos.
    }
    throw new JournalUnavailableError(
      `load of pool ${pool}: events after seq ${after} are not contiguous in ${this.where}; the journal needs repair`,
      false,
    );
  }

  async append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    const payloads = checkAppend(target, events);
    const { pool, shard, epoch, expectedVersion } = target;
    checkShard(shard);
    if (payloads.length > this.bucketSize) {
      throw new RangeError(
        `append of ${payloads.length} events exceeds the journal's bucket size ${this.bucketSize}`,
      );
    }
    this.assertOpen("append");
    const hint = Math.max(0, this.targetBucket(expectedVersion) - 1);
    if (payloads.length === 0) {
      const c = await this.findLatest(pool, this.cursors.get(pool)?.bucket ?? hint, "append");
      checkFenceAndVersion(pool, epoch, expectedVersion, c);
      return expectedVersion;
    }
    await this.register(pool, shard, "append");
    const next = expectedVersion + payloads.length;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      let c = this.cursors.get(pool);
      if (c === undefined || c.version !== expectedVersion) {
        c = await this.findLatest(pool, c?.bucket ?? hint, "append");
      }
      checkFenceAndVersion(pool, epoch, expectedVersion, c);
      const fence = c?.fence ?? 0;
      const bucket = this.targetBucket(expectedVersion);
      const guard =
        c !== undefined && c.bucket === bucket
          ? {
              query: this.q.advance,
              params: [long(next), pool, long(bucket), long(expectedVersion), long(fence)],
            }
          : // Opening a bucket: the previous one is full and immutable, so its fence
            // (in c) is final, and IF NOT EXISTS loses to any fence written here first.
            { query: this.q.createBucket, params: [pool, long(bucket), long(next), long(fence)] };
      const batch = [guard];
      for (let i = 0; i < payloads.length; i++) {
        batch.push({
          query: this.q.insertEvent,
          params: [pool, long(bucket), long(expectedVersion + 1 + i), payloads[i] as string],
        });
      }
      const answer = await this.lwt(pool, "append", () =>
        this.client.batch(batch, this.lwtOptions()),
      );
      if (answer === "applied") {
        this.learn(pool, { bucket, version: next, fence });
        return next;
      }
      const now = this.learnFromAnswer(pool, bucket, answer);
      if (now !== undefined && this.targetBucket(now.version) === now.bucket) {
        // `now` is the latest bucket, so its answer is the truth.
        checkFenceAndVersion(pool, epoch, expectedVersion, now);
      }
      // Otherwise the fence moved (still ≤ epoch) or a bucket appeared: look again.
    }
    throw this.contended(pool, "append", MAX_ATTEMPTS);
  }

  /**
   * Keeps only the pool's latest snapshot: the row is written with the snapshot's seq
   * as its write timestamp, so Cassandra's last-write-wins keeps the highest seq
   * whatever order writes arrive in — no read-before-write, no Paxos. Throws
   * RangeError if `snapshot.seq` is beyond the pool's version.
   */
  async saveSnapshot(pool: string, snapshot: Snapshot): Promise<void> {
    const state = checkSnapshot(pool, snapshot);
    this.assertOpen("saveSnapshot");
    let c = this.cursors.get(pool);
    if (c === undefined || c.version < snapshot.seq) {
      c = await this.findLatest(pool, c?.bucket ?? 0, "saveSnapshot");
    }
    const version = c?.version ?? 0;
    if (snapshot.seq > version) throw snapshotBeyondVersionError(pool, snapshot.seq, version);
    await this.run(`saveSnapshot on pool ${pool}`, () =>
      this.client.execute(
        this.q.insertSnapshot,
        [pool, long(snapshot.seq), state, long(snapshot.seq)],
        { prepare: true, consistency: this.consistency, isIdempotent: true },
      ),
    );
  }

  async listPools(shard: number): Promise<string[]> {
    checkShard(shard);
    this.assertOpen("listPools");
    const pools: string[] = [];
    let pageState: string | undefined;
    do {
      const rs = await this.run(`listPools of shard ${shard}`, () =>
        this.client.execute(this.q.selectPools, [shard], {
          prepare: true,
          consistency: this.consistency,
          isIdempotent: true,
          fetchSize: PAGE_SIZE,
          ...(pageState !== undefined && { pageState }),
        }),
      );
      for (const r of rs.rows) pools.push(r.pool as string);
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    return pools.sort();
  }

  /** Shuts the driver session down. Idempotent; later calls reject with JournalUnavailableError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.shutdown();
  }

  // ---------------------------------------------------------------------------

  /** The first version at which `bucket` is full (its appends then go to the next one). */
  private bucketEnd(bucket: number): number {
    return (bucket + 1) * this.bucketSize;
  }

  /** The bucket the append after `version` goes to (and a fence at `version` guards). */
  private targetBucket(version: number): number {
    return Math.floor(version / this.bucketSize);
  }

  private lwtOptions(): cassandra.QueryOptions {
    return {
      prepare: true,
      consistency: this.consistency,
      serialConsistency: this.serialConsistency,
      isIdempotent: false,
    };
  }

  /**
   * Runs one conditional statement or batch: "applied", or the row Cassandra returned
   * with the current values (undefined when the partition does not exist). Any
   * failure is an unknown outcome: the Paxos round may still complete.
   */
  private async lwt(
    pool: string,
    op: string,
    send: () => Promise<cassandra.types.ResultSet>,
  ): Promise<"applied" | Row | undefined> {
    let rs: cassandra.types.ResultSet;
    try {
      rs = await send();
    } catch (e: unknown) {
      // Whatever we knew about the pool may have changed by our own hand.
      this.cursors.delete(pool);
      throw this.unavailable(`${op} on pool ${pool}`, e, true);
    }
    if (rs.wasApplied()) return "applied";
    return rs.rows[0];
  }

  /** Runs a read or an idempotent plain write, mapping driver errors (outcome known). */
  private async run(
    what: string,
    send: () => Promise<cassandra.types.ResultSet>,
  ): Promise<cassandra.types.ResultSet> {
    try {
      return await send();
    } catch (e: unknown) {
      throw this.unavailable(what, e, false);
    }
  }

  /**
   * Records what a failed LWT on `bucket` returned, and returns it as a cursor
   * (undefined when the bucket does not exist).
   */
  private learnFromAnswer(pool: string, bucket: number, row: Row | undefined): Cursor | undefined {
    const s = row === undefined ? undefined : staticsOf(row);
    if (s === undefined) {
      this.cursors.delete(pool);
      return undefined;
    }
    const c = { bucket, ...s };
    this.learn(pool, c);
    return c;
  }

  /** Keeps the most recent cursor: bucket, version and fence only grow. */
  private learn(pool: string, c: Cursor): void {
    const old = this.cursors.get(pool);
    if (
      old === undefined ||
      c.version > old.version ||
      (c.version === old.version &&
        (c.bucket > old.bucket || (c.bucket === old.bucket && c.fence >= old.fence)))
    ) {
      this.cursors.set(pool, c);
    }
  }

  /**
   * Finds the pool's latest bucket and its statics with linearizable (SERIAL) reads,
   * starting at `hint`. Buckets exist as a prefix 0..L, and a bucket whose version
   * still targets itself is the latest, so this usually takes one read.
   */
  private async findLatest(pool: string, hint: number, op: string): Promise<Cursor | undefined> {
    const read = (b: number) => this.readStatics(pool, b, op);
    let lo: Cursor | undefined;
    let hi: number;
    const start = await read(hint);
    if (start !== undefined) {
      lo = { bucket: hint, ...start };
      if (this.targetBucket(start.version) === hint) return this.found(pool, lo);
      for (let step = 1; ; step *= 2) {
        const b: number = lo.bucket + step;
        const s = await read(b);
        if (s === undefined) {
          hi = b;
          break;
        }
        lo = { bucket: b, ...s };
        if (this.targetBucket(s.version) === b) return this.found(pool, lo);
      }
    } else {
      hi = hint;
      for (let step = 1; hi > 0; step *= 2) {
        const b = Math.max(0, hi - step);
        const s = await read(b);
        if (s !== undefined) {
          lo = { bucket: b, ...s };
          break;
        }
        hi = b;
      }
      if (lo === undefined) {
        this.cursors.delete(pool);
        return undefined;
      }
    }
    while (hi - lo.bucket > 1) {
      const mid = Math.floor((lo.bucket + hi) / 2);
      const s = await read(mid);
      if (s === undefined) hi = mid;
      else lo = { bucket: mid, ...s };
    }
    return this.found(pool, lo);
  }

  private found(pool: string, c: Cursor): Cursor {
    this.learn(pool, c);
    return c;
  }

  private async readStatics(
    pool: string,
    bucket: number,
    op: string,
  ): Promise<Statics | undefined> {
    const rs = await this.run(`${op} on pool ${pool} (reading bucket ${bucket})`, () =>
      this.client.execute(this.q.selectStatics, [pool, long(bucket)], {
        prepare: true,
        consistency: this.serialConsistency,
        isIdempotent: true,
      }),
    );
    const row = rs.rows[0];
    return row === undefined ? undefined : staticsOf(row);
  }

  /** Events of one bucket with seq > after, plus the bucket's statics if any row came back. */
  private async readBucket(
    pool: string,
    bucket: number,
    after: number,
    serial: boolean,
    op: string,
  ): Promise<{ events: StoredEvent[]; statics: Statics | undefined }> {
    const events: StoredEvent[] = [];
    let statics: Statics | undefined;
    let pageState: string | undefined;
    do {
      const rs = await this.run(`${op} on pool ${pool} (reading bucket ${bucket})`, () =>
        this.client.execute(this.q.selectEventsAfter, [pool, long(bucket), long(after)], {
          prepare: true,
          consistency: serial ? this.serialConsistency : this.consistency,
          isIdempotent: true,
          fetchSize: PAGE_SIZE,
          ...(pageState !== undefined && { pageState }),
        }),
      );
      for (const r of rs.rows) {
        statics ??= staticsOf(r);
        const seq = r.seq as cassandra.types.Long | null;
        if (seq === null) continue;
        events.push({ seq: seq.toNumber(), event: JSON.parse(r.payload as string) });
      }
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    return { events, statics };
  }

  private async readSnapshot(pool: string): Promise<Snapshot | undefined> {
    const rs = await this.run(`load on pool ${pool} (reading the snapshot)`, () =>
      this.client.execute(this.q.selectSnapshot, [pool], {
        prepare: true,
        consistency: this.consistency,
        isIdempotent: true,
      }),
    );
    const row = rs.rows[0];
    if (row === undefined || row.seq === null) return undefined;
    return {
      seq: (row.seq as cassandra.types.Long).toNumber(),
      state: JSON.parse(row.state as string),
    };
  }

  /**
   * Records (shard, pool) before the pool's first write from this instance, so every
   * pool with a fence or an event is listed — a failed first write may leave a pool
   * listed that loads empty, which is harmless.
   */
  private async register(pool: string, shard: number, op: string): Promise<void> {
    const key = `${shard}/${pool}`;
    if (this.registered.has(key)) return;
    await this.run(`${op} on pool ${pool} (recording it in shard ${shard})`, () =>
      this.client.execute(this.q.insertPool, [shard, pool], {
        prepare: true,
        consistency: this.consistency,
        isIdempotent: true,
      }),
    );
    this.registered.add(key);
  }

  private assertOpen(op: string): void {
    if (this.closed) {
      throw new JournalUnavailableError(
        `${op}: the Cassandra journal (keyspace ${this.keyspace}) is closed`,
        false,
      );
    }
  }

  private contended(pool: string, op: string, attempts: number): JournalUnavailableError {
    return new JournalUnavailableError(
      `${op} on pool ${pool}: the pool's fence or buckets kept moving for ${attempts} attempts`,
      false,
    );
  }

  private unavailable(what: string, e: unknown, outcomeUnknown: boolean): JournalUnavailableError {
    if (this.closed && !(e instanceof cassandra.errors.ResponseError)) {
      return new JournalUnavailableError(
        `${what}: the Cassandra journal (keyspace ${this.keyspace}) was closed during the call`,
        outcomeUnknown,
        { cause: e },
      );
    }
    const unknown = outcomeUnknown && !rejectedBeforeExecution(e);
    return new JournalUnavailableError(
      `${what} failed on ${this.where}: ${describe(e)}${unknown ? " (outcome unknown: re-read the pool before answering)" : ""}`,
      unknown,
      { cause: e },
    );
  }
}

/** The CQL this journal runs, keyspace-qualified. */
function statements(ks: string) {
  return {
    selectStatics: `SELECT version, fence_epoch FROM ${ks}.events WHERE pool = ? AND bucket = ? LIMIT 1`,
    selectEventsAfter: `SELECT seq, payload, version, fence_epoch FROM ${ks}.events WHERE pool = ? AND bucket = ? AND seq > ?`,
    advance: `UPDATE ${ks}.events SET version = ? WHERE pool = ? AND bucket = ? IF version = ? AND fence_epoch = ?`,
    raiseFence: `UPDATE ${ks}.events SET fence_epoch = ? WHERE pool = ? AND bucket = ? IF fence_epoch <= ? AND version < ?`,
    createBucket: `INSERT INTO ${ks}.events (pool, bucket, version, fence_epoch) VALUES (?, ?, ?, ?) IF NOT EXISTS`,
    insertEvent: `INSERT INTO ${ks}.events (pool, bucket, seq, payload) VALUES (?, ?, ?, ?)`,
    selectSnapshot: `SELECT seq, state FROM ${ks}.snapshots WHERE pool = ?`,
    insertSnapshot: `INSERT INTO ${ks}.snapshots (pool, seq, state) VALUES (?, ?, ?) USING TIMESTAMP ?`,
    insertPool: `INSERT INTO ${ks}.pools_by_shard (shard, pool) VALUES (?, ?)`,
    selectPools: `SELECT pool FROM ${ks}.pools_by_shard WHERE shard = ?`,
  };
}

function checkFenceAndVersion(
  pool: string,
  epoch: number,
  expectedVersion: number,
  c: Cursor | undefined,
): void {
  const fence = c?.fence ?? 0;
  if (epoch < fence) throw new FencedError(pool, epoch, fence);
  const version = c?.version ?? 0;
  if (version !== expectedVersion) throw new VersionConflictError(pool, expectedVersion, version);
}

function staticsOf(row: Row): Statics | undefined {
  const v = row.version as cassandra.types.Long | null | undefined;
  const f = row.fence_epoch as cassandra.types.Long | null | undefined;
  if (v === null || v === undefined) return undefined;
  return { version: v.toNumber(), fence: f ? f.toNumber() : 0 };
}

function isContiguous(events: readonly StoredEvent[], after: number, version: number): boolean {
  if (events.length !== Math.max(0, version - after)) return false;
  return events.every((e, i) => e.seq === after + 1 + i);
}

function long(n: number): cassandra.types.Long {
  return Long.fromNumber(n);
}

function checkShard(shard: number): void {
  checkNonNegativeInteger("shard", shard);
  if (shard > MAX_INT) {
    throw new RangeError(`shard must be at most ${MAX_INT} in the Cassandra journal, got ${shard}`);
  }
}

/**
 * Server errors that mean the statement was refused before it ran: its outcome is
 * known (nothing written). Everything else on a conditional write — write timeout
 * (writeType CAS or COMMIT), unavailable (Paxos can throw it after the accept phase),
 * write failure, server error, client timeout, lost connection — is unknown.
 */
function rejectedBeforeExecution(e: unknown): boolean {
  if (!(e instanceof cassandra.errors.ResponseError)) return false;
  return [
    responseErrorCodes.overloaded,
    responseErrorCodes.isBootstrapping,
    responseErrorCodes.syntaxError,
    responseErrorCodes.unauthorized,
    responseErrorCodes.invalid,
    responseErrorCodes.configError,
    responseErrorCodes.protocolError,
    responseErrorCodes.badCredentials,
  ].includes(e.code);
}

const CODE_NAMES = new Map<number, string>(
  Object.entries(responseErrorCodes).map(([name, code]) => [code as number, name]),
);

/** A one-line description of a driver error, naming its kind. */
function describe(e: unknown): string {
  if (e instanceof cassandra.errors.NoHostAvailableError) {
    const inner = Object.entries((e.innerErrors ?? {}) as Record<string, unknown>)
      .map(([host, err]) => `${host}: ${describe(err)}`)
      .join("; ");
    return `no host available${inner ? ` (${inner})` : ""}`;
  }
  if (e instanceof cassandra.errors.OperationTimedOutError) {
    return `client-side timeout: ${e.message}`;
  }
  if (e instanceof cassandra.errors.ResponseError) {
    const kind = CODE_NAMES.get(e.code) ?? `error 0x${e.code.toString(16)}`;
    const writeType = (e as { writeType?: unknown }).writeType;
    return `${kind}${typeof writeType === "string" ? ` (writeType ${writeType})` : ""}: ${e.message}`;
  }
  if (e instanceof cassandra.errors.DriverError) return e.message;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

async function shutdownQuietly(client: cassandra.Client, cause: unknown): Promise<void> {
  try {
    await client.shutdown();
  } catch (e: unknown) {
    // The connect error is the one to report; keep this one with it.
    if (cause instanceof Error) Object.assign(cause, { suppressed: e });
  }
}

interface CheckedOptions {
  readonly contactPoints: readonly string[];
  readonly keyspace: string;
  readonly localDataCenter: string;
  readonly replication: Replication;
  readonly consistency: number;
  readonly serialConsistency: number;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly bucketSize: number;
}

function checkOptions(options: CassandraJournalOptions): CheckedOptions {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("CassandraJournal options must be an object");
  }
  const cp = options.contactPoints;
  if (
    !Array.isArray(cp) ||
    cp.length === 0 ||
    !cp.every((h) => typeof h === "string" && h.length > 0)
  ) {
    throw new TypeError("contactPoints must be a non-empty array of host:port strings");
  }
  const ksProblem = keyspaceProblem(options.keyspace);
  if (ksProblem) throw new TypeError(ksProblem);
  const replication = options.replication ?? DEFAULT_REPLICATION;
  const repProblem = replicationProblem(replication);
  if (repProblem) throw new TypeError(repProblem);
  const localDataCenter = options.localDataCenter ?? "datacenter1";
  if (typeof localDataCenter !== "string" || localDataCenter.length === 0) {
    throw new TypeError("localDataCenter must be a non-empty string");
  }
  const consistency = options.consistency ?? "QUORUM";
  if (!(CONSISTENCY_NAMES as readonly string[]).includes(consistency)) {
    throw new RangeError(
      `consistency must be one of ${CONSISTENCY_NAMES.join(", ")}, got ${String(consistency)}`,
    );
  }
  const serial = options.serialConsistency ?? "SERIAL";
  if (!(SERIAL_CONSISTENCY_NAMES as readonly string[]).includes(serial)) {
    throw new RangeError(
      `serialConsistency must be one of ${SERIAL_CONSISTENCY_NAMES.join(", ")}, got ${String(serial)}`,
    );
  }
  const positive = (name: string, v: number) => {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new RangeError(`${name} must be a positive integer, got ${String(v)}`);
    }
    return v;
  };
  return {
    contactPoints: cp,
    keyspace: options.keyspace,
    localDataCenter,
    replication,
    consistency: consistencies[toKey(consistency)],
    serialConsistency: consistencies[toKey(serial)],
    requestTimeoutMs: positive("requestTimeoutMs", options.requestTimeoutMs ?? 5000),
    connectTimeoutMs: positive("connectTimeoutMs", options.connectTimeoutMs ?? 5000),
    bucketSize: positive("bucketSize", options.bucketSize ?? DEFAULT_BUCKET_SIZE),
  };
}

/** "LOCAL_QUORUM" → "localQuorum", the driver's key. */
function toKey(name: string): keyof typeof consistencies {
  return name
    .toLowerCase()
    .replace(/_(.)/g, (_, c: string) => c.toUpperCase()) as keyof typeof consistencies;
}
