/**
 * Micro-benchmark of the Cassandra journal against a real node:
 *
 * - raw cassandra-driver INSERT rate into the events table (prepared, 64 in flight),
 *   the ceiling for any journal on this node;
 * - Berth's fenced group-commit append (one LWT batch per append): one hot pool with 1
 *   and with 32 events per append (one append in flight, as the entity host does),
 *   and many pools at once (64 pools, one append in flight each);
 * - recovery (`load`) of a pool with 1k / 10k (and with --large 100k) events, with and
 *   without a snapshot near the end.
 *
 * Run: `node_modules/.bin/node --import tsx worker/src/journal/cassandra-journal.bench.ts`
 * with BERTH_CASSANDRA=host:port for a running node, or nothing to start one through
 * the e2e harness (first run downloads the jars). `npm run bench` can call
 * {@link runCassandraJournalBench}.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import cassandra from "cassandra-driver";
import { CassandraJournal } from "./cassandra-journal.js";

/** One measured figure. */
export interface BenchFigure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly detail: string;
}

/** Options of {@link runCassandraJournalBench}. */
export interface CassandraBenchOptions {
  /** `host:port` of the node. */
  readonly contactPoint: string;
  /** Also measure recovery of 100k events (slower to set up). */
  readonly large?: boolean;
  /** Progress and results, one line each; default stdout. */
  readonly log?: (line: string) => void;
}

const EVENT = {
  type: "reserved",
  reservationSeq: 0,
  units: 2,
  requestId: "req-00000000-0000-0000-0000-000000000000",
  at: "2025-01-01T00:00:00.000Z",
};

/** Runs every measurement in a fresh keyspace (dropped at the end) and returns the figures. */
export async function runCassandraJournalBench(
  options: CassandraBenchOptions,
): Promise<BenchFigure[]> {
  const log = options.log ?? ((line: string) => console.log(line));
  const keyspace = `berth_bench_${randomUUID().replaceAll("-", "").slice(0, 8)}`;
  const figures: BenchFigure[] = [];
  const report = (f: BenchFigure) => {
    figures.push(f);
    log(
      `${f.name.padEnd(44)} ${f.value.toFixed(f.unit === "ms" ? 1 : 0).padStart(9)} ${f.unit.padEnd(9)} ${f.detail}`,
    );
  };
  const journal = await CassandraJournal.connect({
    contactPoints: [options.contactPoint],
    keyspace,
  });
  const raw = new cassandra.Client({
    contactPoints: [options.contactPoint],
    localDataCenter: "datacenter1",
    queryOptions: { consistency: cassandra.types.consistencies.quorum, prepare: true },
  });
  await raw.connect();
  try {
    log(`# Cassandra journal bench, keyspace ${keyspace} on ${options.contactPoint}`);
    // Warm up: prepare statements, JIT, Paxos state.
    await appendLoop(journal, "warm/up", 200, 1);

    // 1. Raw INSERT, prepared, 64 in flight.
    {
      const n = 20_000;
      const payload = JSON.stringify(EVENT);
      const insert = `INSERT INTO ${keyspace}.events (pool, bucket, seq, payload) VALUES (?, ?, ?, ?)`;
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          for (let i = next++; i < n; i = next++) {
            await raw.execute(insert, [
              `raw/p${i % 64}`,
              cassandra.types.Long.ZERO,
              cassandra.types.Long.fromNumber(i),
              payload,
            ]);
          }
        }),
      );
      const s = (performance.now() - t0) / 1000;
      report({
        name: "raw INSERT (prepared, 64 in flight)",
        value: n / s,
        unit: "rows/s",
        detail: `${n} rows`,
      });
    }

    // 2. One hot pool, one append in flight.
    for (const size of [1, 32]) {
      const appends = size === 1 ? 2000 : 300;
      const t0 = performance.now();
      await appendLoop(journal, `hot/p${size}`, appends, size);
      const s = (performance.now() - t0) / 1000;
      report({
        name: `fenced append, 1 hot pool, ${size} event${size > 1 ? "s" : ""}/append`,
        value: (appends * size) / s,
        unit: "events/s",
        detail: `${(appends / s).toFixed(0)} appends/s, ${((s * 1000) / appends).toFixed(2)} ms/append`,
      });
    }

    // 3. Many pools, one append in flight per pool.
    for (const size of [1, 32]) {
      const pools = 64;
      const appendsPerPool = size === 1 ? 100 : 20;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: pools }, (_, p) =>
          appendLoop(journal, `many${size}/p${p}`, appendsPerPool, size),
        ),
      );
      const s = (performance.now() - t0) / 1000;
      const appends = pools * appendsPerPool;
      report({
        name: `fenced append, ${pools} pools, ${size} event${size > 1 ? "s" : ""}/append`,
        value: (appends * size) / s,
        unit: "events/s",
        detail: `${(appends / s).toFixed(0)} appends/s`,
      });
    }

    // 4. Recovery.
    const sizes = options.large ? [1_000, 10_000, 100_000] : [1_000, 10_000];
    for (const n of sizes) {
      const pool = `recover/n${n}`;
      await appendLoop(journal, pool, n / 1000, 1000);
      const plain = await timeLoads(options.contactPoint, keyspace, pool, n);
      report({
        name: `recovery of ${n} events, no snapshot`,
        value: plain,
        unit: "ms",
        detail: "median of 5, fresh session each",
      });
      const state = {
        reservations: Object.fromEntries(
          Array.from({ length: 500 }, (_, i) => [`r${i}`, { units: 2, requestId: `req-${i}` }]),
        ),
      };
      await journal.saveSnapshot(pool, { seq: n - 10, state });
      const snap = await timeLoads(options.contactPoint, keyspace, pool, n);
      report({
        name: `recovery of ${n} events, snapshot at ${n - 10}`,
        value: snap,
        unit: "ms",
        detail: "median of 5; state ≈ 25 KB + 10 events",
      });
    }
  } finally {
    await journal.close();
    await raw.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await raw.shutdown();
  }
  return figures;
}

/** Appends `appends` batches of `size` events to `pool`, one at a time, as its owner. */
async function appendLoop(
  j: CassandraJournal,
  pool: string,
  appends: number,
  size: number,
): Promise<void> {
  let v = 0;
  const batch = Array.from({ length: size }, (_, i) => ({ ...EVENT, reservationSeq: i }));
  for (let i = 0; i < appends; i++) {
    v = await j.append({ pool, shard: 1, epoch: 1, expectedVersion: v }, batch);
  }
}

/** Median time (ms) of 5 loads, each by a freshly connected journal (no cached cursor). */
async function timeLoads(
  contactPoint: string,
  keyspace: string,
  pool: string,
  n: number,
): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const j = await CassandraJournal.connect({ contactPoints: [contactPoint], keyspace });
    try {
      const t0 = performance.now();
      const loaded = await j.load(pool);
      times.push(performance.now() - t0);
      if (loaded.version !== n) throw new Error(`loaded version ${loaded.version}, expected ${n}`);
    } finally {
      await j.close();
    }
  }
  times.sort((a, b) => a - b);
  return times[2] as number;
}

/** The part of e2e/src/cassandra/cassandra-node.ts used when no node is given. */
interface Harness {
  startCassandra(): Promise<{ contactPoint: string; stop(): Promise<void> }>;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const given = process.env.BERTH_CASSANDRA;
  let node: { contactPoint: string; stop(): Promise<void> } | undefined;
  if (!given) {
    // Run-time path: worker does not depend on e2e (see the integration test).
    const url = new URL(
      ["..", "..", "..", "e2e", "src", "cassandra", "cassandra-node.ts"].join("/"),
      import.meta.url,
    );
    node = await ((await import(url.href)) as Harness).startCassandra();
  }
  try {
    await runCassandraJournalBench({
      contactPoint: given ?? (node as { contactPoint: string }).contactPoint,
      large: process.argv.includes("--large"),
    });
  } finally {
    await node?.stop();
  }
}
