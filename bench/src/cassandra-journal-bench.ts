/**
 * Micro-benchmark of the Cassandra journal against a real node, in one fresh keyspace
 * (dropped at the end):
 *
 * - **writes**: the raw cassandra-driver prepared INSERT rate into the events table
 *   (64 in flight, into one partition and into 64), the ceiling for any journal on this
 *   node; against Berth's fenced group-commit append (one LWT batch per append, all of
 *   a group commit's events in it): one hot pool with one append in flight, as the
 *   entity does, with 1 and with 64 events per append (64 is the batch a hot pool
 *   reaches under 64 concurrent reserves), and 64 pools with one append in flight each;
 * - **recovery** of a pool with 1k / 10k / 100k events: `load` by a freshly connected
 *   journal (no cached cursor, as a new owner) plus the fold through the real decider
 *   (`fromSnapshot`, `parsePoolEvent`, `evolve` from ../domain/pool.ts, the same steps
 *   as the entity's recovery), without a snapshot, with the snapshot the entity's policy
 *   would have left (every max(100, reservations in the last snapshot) events), and
 *   with a snapshot at the last event.
 *
 * Run: `node_modules/.bin/node --import tsx bench/src/cassandra-journal-bench.ts
 * [--sizes 1000,10000,100000]` with BERTH_CASSANDRA=host:port for a running node, or
 * nothing to start one through the e2e harness (first run downloads the jars).
 * `npm run bench` calls {@link runCassandraJournalBench}.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { startCassandra } from "@berth/testing/cassandra";
import {
  CassandraJournal,
  evolve,
  fromSnapshot,
  initialState,
  type PoolEvent,
  type PoolSnapshot,
  type PoolState,
  parsePoolEvent,
  toSnapshot,
} from "@berth/worker";
import cassandra from "cassandra-driver";

/** One write scenario's result. */
export interface WriteFigure {
  readonly name: string;
  /** "raw INSERT" or "fenced append". */
  readonly kind: "raw" | "fenced";
  readonly pools: number;
  /** Writes (INSERTs or appends) in flight at once. */
  readonly inFlight: number;
  readonly eventsPerWrite: number;
  readonly writes: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  readonly writesPerSecond: number;
  /** Mean latency of one write (INSERT or LWT batch), ms. */
  readonly meanWriteMs: number;
}

/** How a recovery scenario's pool was snapshotted. */
export type SnapshotPlacement = "none" | "entity policy" | "last event";

/** One recovery scenario's result (the median run by total time). */
export interface RecoveryFigure {
  readonly events: number;
  readonly snapshot: SnapshotPlacement;
  /** Seq of the snapshot the load starts from (0: none). */
  readonly snapshotSeq: number;
  /** Reservations listed in that snapshot (what its size grows with). */
  readonly snapshotEntries: number;
  /** Snapshot JSON size, bytes. */
  readonly snapshotBytes: number;
  /** Events replayed after the snapshot. */
  readonly replayed: number;
  /** `journal.load` by a freshly connected journal, ms. */
  readonly loadMs: number;
  /** fromSnapshot + parsePoolEvent/evolve of every loaded event, ms. */
  readonly foldMs: number;
  readonly totalMs: number;
  /** Totals of every run, ms, in run order. */
  readonly runsMs: readonly number[];
}

/** What {@link runCassandraJournalBench} measured. */
export interface CassandraBenchResult {
  readonly contactPoint: string;
  readonly keyspace: string;
  readonly bucketSize: number;
  readonly writes: readonly WriteFigure[];
  readonly recovery: readonly RecoveryFigure[];
  /** How recovery was measured, in words. */
  readonly recoveryMethod: string;
}

/** Options of {@link runCassandraJournalBench}. */
export interface CassandraBenchOptions {
  /** `host:port` of the node. */
  readonly contactPoint: string;
  /** Pool sizes (events) whose recovery is measured; default 1k, 10k, 100k. */
  readonly recoverySizes?: readonly number[];
  /** Progress and results, one line each; default stdout. */
  readonly log?: (line: string) => void;
}

const RECOVERY_METHOD =
  "load by a freshly connected CassandraJournal (no cached cursor, as a new owner) + fold " +
  "through the real decider (fromSnapshot, parsePoolEvent, evolve from worker/src/domain/pool.ts, " +
  "as PoolEntity does); median of 5 runs (3 for ≥ 100k events)";

/** The entity's default `--snapshot-every`. */
const SNAPSHOT_EVERY = 100;
const AT = Date.parse("2025-01-01T00:00:00.000Z");

/** A 36-character request id, the length of the UUIDs clients send. */
function requestId(tag: string, i: number): string {
  return `${tag.slice(0, 8).padEnd(8, "x")}-${String(i).padStart(27, "0")}`;
}

const reserved = (tag: string, i: number): PoolEvent => ({
  type: "reserved",
  requestId: requestId(tag, i),
  units: 1,
  at: AT + i,
  // As large as a real reservation's secret (16 bytes, base64url).
  secret: Buffer.alloc(16, i & 0xff).toString("base64url"),
});

/**
 * Event `seq` (≥ 1) of a recovery pool: `configured` first, then reservations, and
 * every 4th event releases the reservation just before it — so a snapshot lists both
 * active and released reservations, as a real pool's does.
 */
function recoveryEvent(seq: number): PoolEvent {
  if (seq === 1) {
    return {
      type: "configured",
      spec: {
        capacity: 2_000_000_000,
        labels: { bench: "recovery" },
        closed: false,
        generation: 1,
      },
      at: AT,
    };
  }
  if (seq % 4 === 0) return { type: "released", reservationSeq: seq - 1, units: 1, at: AT + seq };
  return reserved("recovery", seq);
}

/** Runs every measurement in a fresh keyspace (dropped at the end) and returns the figures. */
export async function runCassandraJournalBench(
  options: CassandraBenchOptions,
): Promise<CassandraBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const sizes = options.recoverySizes ?? [1_000, 10_000, 100_000];
  const keyspace = `berth_bench_${randomUUID().replaceAll("-", "").slice(0, 8)}`;
  const writes: WriteFigure[] = [];
  const recovery: RecoveryFigure[] = [];
  const connect = () =>
    CassandraJournal.connect({
      contactPoints: [options.contactPoint],
      keyspace,
      // A whole bucket in one LWT batch takes seconds on a busy 2-core machine.
      requestTimeoutMs: 60_000,
    });
  log(`Cassandra journal bench: creating keyspace ${keyspace} on ${options.contactPoint}`);
  const journal = await connect();
  const raw = new cassandra.Client({
    contactPoints: [options.contactPoint],
    localDataCenter: "datacenter1",
    // The journal's own consistency for plain writes.
    queryOptions: { consistency: cassandra.types.consistencies.quorum, prepare: true },
  });
  await raw.connect();
  try {
    const writeFigure = (f: Omit<WriteFigure, "eventsPerSecond" | "writesPerSecond">) => {
      const full: WriteFigure = {
        ...f,
        eventsPerSecond: (f.writes * f.eventsPerWrite) / f.seconds,
        writesPerSecond: f.writes / f.seconds,
      };
      writes.push(full);
      log(
        `${f.name}: ${fmt(full.eventsPerSecond)} events/s (${fmt(full.writesPerSecond)} writes/s, mean ${full.meanWriteMs.toFixed(2)} ms per write, ${f.writes} writes)`,
      );
    };

    log("warming up (prepared statements, JIT, Paxos)");
    await appendLoop(journal, "warm/up", 300, 1, "warm");
    await rawInserts(raw, keyspace, "warm/raw", 1, 2000);

    // 1. Raw prepared INSERT, 64 in flight: one partition, then 64.
    for (const pools of [1, 64]) {
      const n = 10_000;
      const r = await rawInserts(raw, keyspace, `raw${pools}`, pools, n);
      writeFigure({
        name: `raw INSERT, ${pools === 1 ? "1 partition" : `${pools} partitions`}, 64 in flight`,
        kind: "raw",
        pools,
        inFlight: 64,
        eventsPerWrite: 1,
        writes: n,
        seconds: r.seconds,
        meanWriteMs: r.meanMs,
      });
    }

    // 2. One hot pool, one append in flight (as the entity host does).
    for (const size of [1, 64]) {
      const appends = size === 1 ? 1000 : 300;
      const r = await appendLoop(journal, `hot/e${size}`, appends, size, `hot${size}`);
      writeFigure({
        name: `fenced append, 1 hot pool, ${size} event${size > 1 ? "s" : ""}/append`,
        kind: "fenced",
        pools: 1,
        inFlight: 1,
        eventsPerWrite: size,
        writes: appends,
        seconds: r.seconds,
        meanWriteMs: r.meanMs,
      });
    }

    // 3. 64 pools, one append in flight per pool.
    {
      const pools = 64;
      const perPool = 40;
      const t0 = performance.now();
      const rs = await Promise.all(
        Array.from({ length: pools }, (_, p) =>
          appendLoop(journal, `many/p${p}`, perPool, 1, `many${p}`),
        ),
      );
      writeFigure({
        name: `fenced append, ${pools} pools, 1 event/append, 1 in flight per pool`,
        kind: "fenced",
        pools,
        inFlight: pools,
        eventsPerWrite: 1,
        writes: pools * perPool,
        seconds: (performance.now() - t0) / 1000,
        meanWriteMs: rs.reduce((s, r) => s + r.meanMs, 0) / rs.length,
      });
    }

    // 4. Recovery.
    log(`recovery: ${RECOVERY_METHOD}`);
    for (const n of sizes) {
      recovery.push(...(await recoveryOf(n, journal, connect, log)));
    }
  } finally {
    await journal.close();
    await raw.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await raw.shutdown();
  }
  return {
    contactPoint: options.contactPoint,
    keyspace,
    bucketSize: journal.bucketSize,
    writes,
    recovery,
    recoveryMethod: RECOVERY_METHOD,
  };
}

/** Writes a pool of `n` events, snapshots it twice, and times its recovery three ways. */
async function recoveryOf(
  n: number,
  journal: CassandraJournal,
  connect: () => Promise<CassandraJournal>,
  log: (line: string) => void,
): Promise<RecoveryFigure[]> {
  const pool = `recover/n${n}`;
  const step = journal.bucketSize;
  log(`recovery ${fmt(n)} events: writing (appends of up to ${fmt(step)} events)`);
  const t0 = performance.now();
  // The state as the owner had it, and the snapshot the entity's policy would have taken.
  let state = initialState(pool);
  let policy: { seq: number; state: PoolSnapshot } | undefined;
  let lastSnapSeq = 0;
  let lastSnapEntries = 0;
  let version = 0;
  while (version < n) {
    const batch: PoolEvent[] = [];
    for (let seq = version + 1; seq <= Math.min(n, version + step); seq++) {
      const e = recoveryEvent(seq);
      batch.push(e);
      state = evolve(state, e, seq);
      if (seq - lastSnapSeq >= Math.max(SNAPSHOT_EVERY, lastSnapEntries)) {
        policy = { seq, state: toSnapshot(state) };
        lastSnapSeq = seq;
        lastSnapEntries = entries(state);
      }
    }
    version = await journal.append({ pool, shard: 1, epoch: 1, expectedVersion: version }, batch);
    if (n > step) {
      log(
        `recovery ${fmt(n)} events: wrote ${fmt(version)} / ${fmt(n)} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
      );
    }
  }
  log(`recovery ${fmt(n)} events: written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const runs = n >= 100_000 ? 3 : 5;
  const out: RecoveryFigure[] = [];
  const measure = async (placement: SnapshotPlacement, snap?: { seq: number; state: unknown }) => {
    let bytes = 0;
    if (snap !== undefined) {
      bytes = Buffer.byteLength(JSON.stringify(snap.state));
      await journal.saveSnapshot(pool, snap);
    }
    const f = await timeRecovery(connect, pool, n, runs);
    const entriesInSnap = snap === undefined ? 0 : entries(fromSnapshot(snap.state));
    const figure: RecoveryFigure = {
      events: n,
      snapshot: placement,
      snapshotSeq: snap?.seq ?? 0,
      snapshotEntries: entriesInSnap,
      snapshotBytes: bytes,
      replayed: n - (snap?.seq ?? 0),
      ...f,
    };
    out.push(figure);
    log(
      `recovery ${fmt(n)} events, snapshot ${placement === "none" ? "none" : `at ${fmt(figure.snapshotSeq)} (${placement}, ${fmt(entriesInSnap)} reservations, ${kb(bytes)})`}: ` +
        `${figure.totalMs.toFixed(1)} ms = load ${figure.loadMs.toFixed(1)} + fold ${figure.foldMs.toFixed(1)} (replayed ${fmt(figure.replayed)}; runs ${figure.runsMs.map((t) => t.toFixed(0)).join(" ")} ms)`,
    );
  };
  await measure("none");
  // Saved in ascending seq: the journal keeps the highest-seq snapshot.
  if (policy !== undefined && policy.seq < n) await measure("entity policy", policy);
  await measure("last event", { seq: n, state: toSnapshot(state) });
  return out;
}

/** Recovery as a new owner does it: load, then fold through the decider. */
async function timeRecovery(
  connect: () => Promise<CassandraJournal>,
  pool: string,
  n: number,
  runs: number,
): Promise<Pick<RecoveryFigure, "loadMs" | "foldMs" | "totalMs" | "runsMs">> {
  const results: { loadMs: number; foldMs: number; totalMs: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const j = await connect();
    try {
      const t0 = performance.now();
      const loaded = await j.load(pool);
      const t1 = performance.now();
      let state: PoolState =
        loaded.snapshot !== undefined ? fromSnapshot(loaded.snapshot.state) : initialState(pool);
      for (const stored of loaded.events) {
        state = evolve(state, parsePoolEvent(pool, stored.seq, stored.event), stored.seq);
      }
      const t2 = performance.now();
      if (state.version !== n || loaded.version !== n) {
        throw new Error(
          `recovered ${pool} to version ${state.version}/${loaded.version}, not ${n}`,
        );
      }
      results.push({ loadMs: t1 - t0, foldMs: t2 - t1, totalMs: t2 - t0 });
    } finally {
      await j.close();
    }
  }
  const sorted = [...results].sort((a, b) => a.totalMs - b.totalMs);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)] as (typeof results)[number];
  return { ...mid, runsMs: results.map((r) => r.totalMs) };
}

/** Appends `appends` batches of `size` events to `pool`, one at a time, as its owner. */
async function appendLoop(
  j: CassandraJournal,
  pool: string,
  appends: number,
  size: number,
  tag: string,
): Promise<{ seconds: number; meanMs: number }> {
  let v = 0;
  const t0 = performance.now();
  for (let i = 0; i < appends; i++) {
    const batch = Array.from({ length: size }, (_, k) => reserved(tag, v + k + 1));
    v = await j.append({ pool, shard: 1, epoch: 1, expectedVersion: v }, batch);
  }
  const ms = performance.now() - t0;
  return { seconds: ms / 1000, meanMs: ms / appends };
}

/** `n` prepared INSERTs of one event row each, 64 in flight, over `pools` partitions. */
async function rawInserts(
  raw: cassandra.Client,
  keyspace: string,
  tag: string,
  pools: number,
  n: number,
): Promise<{ seconds: number; meanMs: number }> {
  const insert = `INSERT INTO ${keyspace}.events (pool, bucket, seq, payload) VALUES (?, ?, ?, ?)`;
  let next = 0;
  let busyMs = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      for (let i = next++; i < n; i = next++) {
        const s = performance.now();
        await raw.execute(insert, [
          `${tag}/p${i % pools}`,
          cassandra.types.Long.ZERO,
          cassandra.types.Long.fromNumber(i + 1),
          JSON.stringify(reserved(tag, i + 1)),
        ]);
        busyMs += performance.now() - s;
      }
    }),
  );
  return { seconds: (performance.now() - t0) / 1000, meanMs: busyMs / n };
}

function entries(state: PoolState): number {
  return state.active.size + state.released.size;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function kb(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(0)} KB`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: { sizes: { type: "string" } },
  });
  const given = process.env.BERTH_CASSANDRA;
  let node: { contactPoint: string; stop(): Promise<void> } | undefined;
  if (!given) node = await startCassandra();
  try {
    const result = await runCassandraJournalBench({
      contactPoint: given ?? (node as { contactPoint: string }).contactPoint,
      ...(values.sizes ? { recoverySizes: values.sizes.split(",").map(Number) } : {}),
    });
    console.table(result.writes.map(({ kind: _k, ...w }) => w));
    console.table(result.recovery);
  } finally {
    await node?.stop();
  }
}
