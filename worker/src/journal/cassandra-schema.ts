/**
 * The Cassandra journal's schema and its versioned, idempotent migrations. The design
 * and the reasons behind it are in docs/cassandra-schema.md.
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import type { Client } from "cassandra-driver";

/** `SimpleStrategy` (tests, one data centre) or `NetworkTopologyStrategy` (production). */
export type Replication =
  | { readonly class: "SimpleStrategy"; readonly replication_factor: number }
  | {
      readonly class: "NetworkTopologyStrategy";
      /** Replicas per data centre, e.g. `{ dc1: 3, dc2: 3 }`. */
      readonly dataCenters: Readonly<Record<string, number>>;
    };

/** The replication of a keyspace this journal creates unless told otherwise. */
export const DEFAULT_REPLICATION: Replication = { class: "SimpleStrategy", replication_factor: 1 };

/** Thrown when the keyspace's recorded schema is newer than this build understands. */
export class CassandraSchemaTooNewError extends Error {
  override readonly name = "CassandraSchemaTooNewError";
  constructor(
    readonly keyspace: string,
    readonly found: number,
    readonly supported: number,
  ) {
    super(
      `journal keyspace ${keyspace} has schema version ${found}, newer than this build's ${supported}; upgrade Berth`,
    );
  }
}

interface Migration {
  readonly version: number;
  readonly description: string;
  /** Each statement must be idempotent (IF NOT EXISTS): concurrent starters may both run it. */
  readonly statements: (keyspace: string) => readonly string[];
}

/**
 * Migrations, each applied once per keyspace, in order. Append only: never edit one
 * that has shipped. `{id:<table>}` is replaced by the table's deterministic id.
 */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "events by (pool, bucket) with fencing statics; snapshots; pools_by_shard",
    statements: (ks) => [
      `CREATE TABLE IF NOT EXISTS ${ks}.events (
         pool        text,
         bucket      bigint,
         seq         bigint,
         payload     text,
         version     bigint static,
         fence_epoch bigint static,
         PRIMARY KEY ((pool, bucket), seq)
       ) WITH CLUSTERING ORDER BY (seq ASC)
         AND ID = ${tableId(ks, "events")}
         AND compaction = {'class': 'SizeTieredCompactionStrategy'}
         AND comment = 'Berth journal: events of one pool, bucketed; statics guard appends'`,
      `CREATE TABLE IF NOT EXISTS ${ks}.snapshots (
         pool  text PRIMARY KEY,
         seq   bigint,
         state text
       ) WITH ID = ${tableId(ks, "snapshots")}
         AND comment = 'Berth journal: latest snapshot per pool (write timestamp = seq)'`,
      `CREATE TABLE IF NOT EXISTS ${ks}.pools_by_shard (
         shard int,
         pool  text,
         PRIMARY KEY (shard, pool)
       ) WITH CLUSTERING ORDER BY (pool ASC)
         AND ID = ${tableId(ks, "pools_by_shard")}
         AND comment = 'Berth journal: the pools recorded in each shard'`,
    ],
  },
];

/** The schema version this build writes. */
export const CASSANDRA_JOURNAL_SCHEMA_VERSION: number = MIGRATIONS.length;

/**
 * A table id derived from keyspace and table name. Concurrent `CREATE TABLE IF NOT
 * EXISTS` on different coordinators would otherwise mint two ids for one table (a
 * schema conflict Cassandra 5.0 cannot resolve by itself); with a fixed id both
 * creations are the same table.
 */
export function tableId(keyspace: string, table: string): string {
  const h = createHash("sha1").update(`berth-journal/${keyspace}/${table}`).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x50; // version 5 (name-based, SHA-1)
  h[8] = ((h[8] as number) & 0x3f) | 0x80; // RFC 4122 variant
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/**
 * Returns a problem with `keyspace` as a Cassandra keyspace name, or undefined if it is
 * valid (unquoted identifier: a letter, then letters, digits and `_`, at most 48).
 */
export function keyspaceProblem(keyspace: unknown): string | undefined {
  if (typeof keyspace !== "string" || !/^[A-Za-z][A-Za-z0-9_]{0,47}$/.test(keyspace)) {
    return `keyspace must be a letter followed by up to 47 letters, digits or underscores, got ${JSON.stringify(keyspace)}`;
  }
  return undefined;
}

/** Returns a problem with `replication`, or undefined if valid. */
export function replicationProblem(replication: unknown): string | undefined {
  if (typeof replication !== "object" || replication === null) {
    return "replication must be an object";
  }
  const r = replication as Record<string, unknown>;
  const positive = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 1;
  if (r.class === "SimpleStrategy") {
    if (!positive(r.replication_factor)) {
      return `replication_factor must be a positive integer, got ${String(r.replication_factor)}`;
    }
    return undefined;
  }
  if (r.class === "NetworkTopologyStrategy") {
    const dcs = r.dataCenters;
    if (typeof dcs !== "object" || dcs === null || Object.keys(dcs).length === 0) {
      return "NetworkTopologyStrategy needs at least one data centre in dataCenters";
    }
    for (const [dc, n] of Object.entries(dcs)) {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(dc))
        return `invalid data centre name ${JSON.stringify(dc)}`;
      if (!positive(n)) return `replicas for data centre ${dc} must be a positive integer`;
    }
    return undefined;
  }
  return `replication class must be SimpleStrategy or NetworkTopologyStrategy, got ${JSON.stringify(r.class)}`;
}

/** The CQL map literal for a replication setting (assumes replicationProblem passed). */
export function replicationCql(replication: Replication): string {
  if (replication.class === "SimpleStrategy") {
    return `{'class': 'SimpleStrategy', 'replication_factor': ${replication.replication_factor}}`;
  }
  const dcs = Object.entries(replication.dataCenters)
    .map(([dc, n]) => `'${dc}': ${n}`)
    .join(", ");
  return `{'class': 'NetworkTopologyStrategy', ${dcs}}`;
}

/** What {@link migrateSchema} did. */
export interface MigrationReport {
  /** Versions this call recorded as applied (others may have run the same DDL concurrently). */
  readonly applied: readonly number[];
  readonly version: number;
}

/**
 * Creates the keyspace (if missing) and brings its schema to
 * CASSANDRA_JOURNAL_SCHEMA_VERSION. Safe to run from many processes at once: every
 * statement is `IF NOT EXISTS` with deterministic table ids, the driver waits for
 * schema agreement after each DDL statement (and this function checks it once more),
 * and each migration is recorded in `schema_migrations` with a lightweight transaction
 * so exactly one starter records it. A keyspace that already exists keeps its
 * replication: changing it is an operator's `ALTER KEYSPACE` plus repair.
 *
 * Throws CassandraSchemaTooNewError if the keyspace was migrated by a newer build;
 * driver errors propagate (the caller maps them).
 */
export async function migrateSchema(
  client: Client,
  keyspace: string,
  replication: Replication,
  serialConsistency: number,
  consistency: number,
): Promise<MigrationReport> {
  const ks = keyspace;
  await client.execute(
    `CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = ${replicationCql(replication)}`,
  );
  await client.execute(
    `CREATE TABLE IF NOT EXISTS ${ks}.schema_migrations (
       version     int PRIMARY KEY,
       description text,
       applied_at  timestamp,
       applied_by  text
     ) WITH ID = ${tableId(ks, "schema_migrations")}
       AND comment = 'Berth journal: applied schema migrations'`,
  );
  await awaitSchemaAgreement(client);

  const rows = await client.execute(`SELECT version FROM ${ks}.schema_migrations`, [], {
    consistency,
    isIdempotent: true,
  });
  const done = new Set<number>(rows.rows.map((r) => r.version as number));
  const highest = Math.max(0, ...done);
  if (highest > MIGRATIONS.length) {
    throw new CassandraSchemaTooNewError(ks, highest, MIGRATIONS.length);
  }

  const applied: number[] = [];
  const by = `${hostname()}/${process.pid}`;
  for (const m of MIGRATIONS) {
    if (done.has(m.version)) continue;
    for (const statement of m.statements(ks)) await client.execute(statement);
    await awaitSchemaAgreement(client);
    const r = await client.execute(
      `INSERT INTO ${ks}.schema_migrations (version, description, applied_at, applied_by)
       VALUES (?, ?, toTimestamp(now()), ?) IF NOT EXISTS`,
      [m.version, m.description, by],
      { prepare: true, serialConsistency, consistency },
    );
    if (r.rows[0]?.["[applied]"] === true) applied.push(m.version);
  }
  return { applied, version: MIGRATIONS.length };
}

/** Polls until every live node reports the same schema version (bounded). */
async function awaitSchemaAgreement(client: Client): Promise<void> {
  // Missing from the driver's type declarations, present at runtime since 4.0.
  const metadata = client.metadata as unknown as { checkSchemaAgreement(): Promise<boolean> };
  for (let i = 0; i < 100; i++) {
    if (await metadata.checkSchemaAgreement()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("Cassandra nodes did not reach schema agreement within 10 s");
}
