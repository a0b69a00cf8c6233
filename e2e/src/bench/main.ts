// `npm run bench`: measures, in one run on this machine,
//   1. the raw grpc-js ceiling: unary echo through two plain hops (client → hop → hop);
//   2. Berth reserve throughput and latency on one hot pool, and spread over 1,000 pools,
//      through the real local cluster (client → gateway → owner worker → journal) on the
//      SQLite journal;
//   3. GetAvailability throughput from the gateway's replica;
//   then, on one real Cassandra node (started through e2e/src/cassandra unless
//   BERTH_CASSANDRA=host:port names one; skipped with --no-cassandra or without java):
//   4. the Cassandra journal on its own (e2e/src/bench/cassandra-journal-bench.ts):
//      raw prepared INSERT rate into the events table against Berth's fenced group-commit
//      append rate (one hot pool, many pools), and recovery (load + fold through the
//      decider) of 1k / 10k / 100k events with and without a snapshot;
//   5. scenarios 1–2 again with the local cluster on the Cassandra journal
//      (`--journal cassandra://<node>/<fresh keyspace>`), printed next to the SQLite ones.
// The echo hops and a cluster run side by side, and each round measures every scenario
// in turn with the same client, the same concurrency and the same number of requests,
// so the ceiling and Berth see the same machine. Each scenario's reported rate is the
// median of its rounds. For every scenario it also reports the CPU each process used
// per request (from /proc) and, for reserves, the group-commit batch sizes the owner
// achieved (from its /metrics). Only one cluster runs at a time, and the Cassandra node
// is started only after the SQLite cluster has stopped.
// Results are printed as tables and, with --json FILE, written for docs/benchmarks.md.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { shardOf, v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import cassandra from "cassandra-driver";
import {
  CASSANDRA_LOCAL_DATA_CENTER,
  type CassandraNode,
  resolveJava,
  startCassandra,
} from "../cassandra/cassandra-node.js";
import { type LocalCluster, startLocalCluster } from "../local/local-cluster.js";
// The journal micro-benchmark lives next to the journal it measures; @berth/worker does
// not export it (it is not part of the worker's API), so it is imported by path.
import { type CassandraBenchResult, runCassandraJournalBench } from "./cassandra-journal-bench.js";
import { EchoClient, echoService } from "./echo-hop.js";
import { type LoadResult, runLoad } from "./load.js";
import {
  bucketQuantile,
  type HistogramTotals,
  histogramDelta,
  histogramTotals,
  processCpuSeconds,
  scrapeMetrics,
} from "./probes.js";

const { values: args } = parseArgs({
  options: {
    requests: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "64" },
    workers: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    warmup: { type: "string" },
    json: { type: "string" },
    "no-cassandra": { type: "boolean", default: false },
    "cassandra-requests": { type: "string", default: "5000" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(
    "usage: npm run bench -- [--requests 20000] [--concurrency 64] [--workers 3] [--rounds 3] [--warmup N]\n" +
      "                        [--cassandra-requests 5000] [--no-cassandra] [--json out.json]\n" +
      "  --requests            requests per scenario and round (SQLite cluster and echo)\n" +
      "  --rounds              rounds of every scenario; the reported rate is the median round\n" +
      "  --warmup              requests per path before the first round (default: max(3000, requests/2))\n" +
      "  --cassandra-requests  requests per scenario and round on the Cassandra-journal cluster\n" +
      "                        (LWTs are slower; its warm-up is max(2000, this/2))\n" +
      "  --no-cassandra        skip every Cassandra part (journal bench, recovery, Cassandra cluster)\n" +
      "  BERTH_CASSANDRA=host:port uses that node instead of starting one (e2e/src/cassandra)",
  );
  process.exit(0);
}
const total = Number(args.requests);
const concurrency = Number(args.concurrency);
const workers = Number(args.workers);
const rounds = Number(args.rounds);
const warmup = Number(args.warmup ?? Math.max(3000, Math.floor(total / 2)));
const cassandraTotal = Number(args["cassandra-requests"]);
const cassandraWarmup = Math.max(2000, Math.floor(cassandraTotal / 2));
for (const [name, v] of [
  ["--requests", total],
  ["--concurrency", concurrency],
  ["--workers", workers],
  ["--rounds", rounds],
  ["--warmup", warmup],
  ["--cassandra-requests", cassandraTotal],
] as const) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`bench: ${name} must be a positive integer`);
    process.exit(2);
  }
}

const progress = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

/** One process whose CPU time is charged to a scenario. */
interface Role {
  readonly name: string;
  readonly pid: () => number | undefined;
}

/** What one round of one scenario measured. */
interface Measured extends LoadResult {
  readonly round: number;
  /** CPU ms per request, by role. */
  readonly cpuMsPerRequest: ReadonlyMap<string, number>;
  /** Group-commit batch sizes on the owner(s) during the run (reserve scenarios). */
  readonly batches?: HistogramTotals;
  /** Journal append time on the owner(s) during the run (reserve scenarios). */
  readonly appendSeconds?: HistogramTotals;
}

interface Scenario {
  readonly name: string;
  readonly total: number;
  readonly roles: readonly Role[];
  readonly call: (i: number, round: number) => Promise<unknown>;
  /** /metrics addresses whose group-commit histograms are attributed to the scenario. */
  readonly owners?: readonly string[];
}

async function measure(s: Scenario, round: number, tag: string): Promise<Measured> {
  const cpuBefore = s.roles.map((r) => processCpuSeconds(r.pid()));
  const metricsBefore = await Promise.all((s.owners ?? []).map(scrapeMetrics));
  const r = await runLoad({ total: s.total, concurrency, call: (i) => s.call(i, round) });
  const cpuAfter = s.roles.map((r) => processCpuSeconds(r.pid()));
  const metricsAfter = await Promise.all((s.owners ?? []).map(scrapeMetrics));
  const cpuMsPerRequest = new Map<string, number>();
  s.roles.forEach((role, i) => {
    const a = cpuAfter[i];
    const b = cpuBefore[i];
    if (a !== undefined && b !== undefined) {
      cpuMsPerRequest.set(role.name, ((a - b) * 1000) / s.total);
    }
  });
  const sumOf = (name: string): HistogramTotals | undefined => {
    if (s.owners === undefined) return undefined;
    let out: HistogramTotals = { sum: 0, count: 0, buckets: new Map() };
    metricsAfter.forEach((text, i) => {
      const d = histogramDelta(
        histogramTotals(text, name),
        histogramTotals(metricsBefore[i] ?? "", name),
      );
      const buckets = new Map(out.buckets);
      for (const [le, n] of d.buckets) buckets.set(le, (buckets.get(le) ?? 0) + n);
      out = { sum: out.sum + d.sum, count: out.count + d.count, buckets };
    });
    return out;
  };
  const batches = sumOf("berth_group_commit_events");
  const appendSeconds = sumOf("berth_journal_append_seconds");
  const m: Measured = {
    ...r,
    round,
    cpuMsPerRequest,
    ...(batches === undefined ? {} : { batches }),
    ...(appendSeconds === undefined ? {} : { appendSeconds }),
  };
  const cpu = [...cpuMsPerRequest].map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ");
  progress(
    `${tag} round ${round} ${s.name}: ${r.rate.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ${r.failed} failed; CPU ms/req: ${cpu}${
      batches && batches.count > 0
        ? `; ${batches.count} appends, mean batch ${(batches.sum / batches.count).toFixed(1)} events, mean append ${(
            (1000 * (appendSeconds?.sum ?? 0)) / Math.max(1, appendSeconds?.count ?? 0)
          ).toFixed(2)} ms`
        : ""
    }`,
  );
  for (const [k, n] of r.failures) progress(`  ${n} × ${k}`);
  return m;
}

async function spawnHop(forward?: string): Promise<{ child: ChildProcess; address: string }> {
  const script = fileURLToPath(new URL("./echo-hop.ts", import.meta.url));
  const child = spawn(
    process.execPath,
    ["--import", "tsx", script, ...(forward ? ["--forward", forward] : [])],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const address = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`echo hop exited with ${code}`)));
    rl.once("line", (line) => resolve((JSON.parse(line) as { grpc: string }).grpc));
  });
  return { child, address };
}

function unary<Req, Res>(
  fn: (
    req: Req,
    meta: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r: Res) => void,
  ) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, r) =>
      e ? reject(e) : resolve(r),
    );
  });
}

/** The worker that owns `pool` under the cluster's current ShardMap. */
function ownerOf(cluster: LocalCluster, pool: string): LocalCluster["workers"][number] {
  const map = cluster.shardMap();
  const owner = map.shards[shardOf(pool, map.shardCount)]?.owner;
  const worker = cluster.workers.find((w) => w.id === owner);
  if (worker === undefined) throw new Error(`no live owner for ${pool}`);
  return worker;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** The two raw grpc-js hops: the ceiling, kept running for the whole bench. */
interface Echo {
  readonly first: { child: ChildProcess; address: string };
  readonly last: { child: ChildProcess; address: string };
  readonly call: () => Promise<void>;
  close(): void;
}

async function startEcho(): Promise<Echo> {
  const last = await spawnHop();
  const first = await spawnHop(last.address);
  const client = new EchoClient(first.address, grpc.credentials.createInsecure());
  const payload = Buffer.alloc(64, 7);
  const call = (): Promise<void> =>
    new Promise((resolve, reject) =>
      client.makeUnaryRequest(
        echoService.Echo?.path ?? "",
        (b: Buffer) => b,
        (b: Buffer) => b,
        payload,
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (e: grpc.ServiceError | null) => (e ? reject(e) : resolve()),
      ),
    );
  return {
    first,
    last,
    call,
    close: () => {
      client.close();
      first.child.kill("SIGTERM");
      last.child.kill("SIGTERM");
    },
  };
}

/** One cluster run: its journal, its scenarios and every round of them. */
interface Phase {
  /** "SQLite" or "Cassandra". */
  readonly label: string;
  readonly journal: string;
  readonly total: number;
  readonly scenarios: readonly Scenario[];
  readonly measured: ReadonlyMap<string, Measured[]>;
}

interface PhaseOptions {
  readonly label: string;
  /** `sqlite` or a journal URL, as startLocalCluster takes it. */
  readonly journal: string;
  readonly dataDir: string;
  readonly total: number;
  readonly warmup: number;
  /** Also measure GetAvailability (it reads the gateway's replica, not the journal). */
  readonly availability: boolean;
  /** More processes whose CPU is charged to the reserve scenarios (the Cassandra JVM). */
  readonly extraRoles?: readonly Role[];
}

const CEILING = "grpc-js echo, two hops (ceiling)";
const HOT = "reserve, one hot pool";
const SPREAD = "reserve, 1,000 pools";

/**
 * Starts a local cluster on `o.journal` with the bench pools, warms every path up, runs
 * every round of every scenario (the echo ceiling included, so each phase has its own),
 * and stops the cluster.
 */
async function clusterPhase(o: PhaseOptions, echo: Echo, poolsFile: string): Promise<Phase> {
  const tag = `[${o.label}]`;
  progress(`${tag} starting the local cluster (${workers} workers, journal ${o.journal})`);
  const started = Date.now();
  let cluster: LocalCluster | undefined;
  try {
    cluster = await startLocalCluster({
      port: 0,
      workers,
      dataDir: o.dataDir,
      pools: [poolsFile],
      journal: o.journal,
    });
    const c = cluster;
    progress(
      `${tag} cluster serving, ${c.pools.length} pools configured, in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    const client = new v1.CapacityServiceClient(
      c.gatewayAddress,
      grpc.credentials.createInsecure(),
    );
    const reserve = (pool: string, requestId: string): Promise<v1.ReserveResponse> =>
      unary(client.reserve.bind(client), { pool, units: 1, requestId });
    const availability = (): Promise<v1.GetAvailabilityResponse> =>
      unary(client.getAvailability.bind(client), {
        labelSelector: "zone=north",
        window: undefined,
        minUnits: 1,
        pageSize: 100,
        pageToken: "",
        includeClosed: false,
      });
    const hotOwner = ownerOf(c, "bench/hot");
    progress(`${tag} bench/hot is owned by ${hotOwner.id}`);
    const self: Role = { name: "client", pid: () => process.pid };
    const gateway: Role = { name: "gateway", pid: () => c.gatewayPid };
    const workerRoles: Role[] = c.workers.map((w) => ({
      name: w === hotOwner ? `${w.id} (hot owner)` : w.id,
      pid: () => w.pid,
    }));
    const scenarios: Scenario[] = [
      {
        name: CEILING,
        total: o.total,
        roles: [
          self,
          { name: "hop 1", pid: () => echo.first.child.pid },
          { name: "hop 2", pid: () => echo.last.child.pid },
        ],
        call: () => echo.call(),
      },
      {
        name: HOT,
        total: o.total,
        roles: [self, gateway, ...workerRoles, ...(o.extraRoles ?? [])],
        owners: [hotOwner.httpAddress],
        call: (i, round) => reserve("bench/hot", `hot-${round}-${i}`),
      },
      {
        name: SPREAD,
        total: o.total,
        roles: [self, gateway, ...workerRoles, ...(o.extraRoles ?? [])],
        owners: c.workers.map((w) => w.httpAddress),
        call: (i, round) => reserve(`bench/spread-${(i * 7919) % 1000}`, `spread-${round}-${i}`),
      },
    ];
    if (o.availability) {
      scenarios.push({
        name: "GetAvailability (zone=north, page of 100)",
        total: Math.max(1000, Math.floor(o.total / 4)),
        roles: [self, gateway],
        call: () => availability(),
      });
    }

    progress(`${tag} warming up every path (${o.warmup} requests each)`);
    await runLoad({ total: o.warmup, concurrency, call: () => echo.call() });
    await runLoad({ total: o.warmup, concurrency, call: (i) => reserve("bench/hot", `warm-${i}`) });
    await runLoad({
      total: o.warmup,
      concurrency,
      call: (i) => reserve(`bench/spread-${i % 1000}`, `warm-${i}`),
    });
    if (o.availability) {
      await runLoad({
        total: Math.max(1000, o.warmup / 4),
        concurrency,
        call: () => availability(),
      });
    }

    const measured = new Map<string, Measured[]>(scenarios.map((s) => [s.name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const s of scenarios) measured.get(s.name)?.push(await measure(s, round, tag));
    }
    client.close();
    return { label: o.label, journal: o.journal, total: o.total, scenarios, measured };
  } finally {
    progress(`${tag} stopping the local cluster`);
    await cluster?.stop();
  }
}

/** Why the Cassandra parts cannot run, or undefined when they can. */
function cassandraSkipReason(): string | undefined {
  if (args["no-cassandra"]) return "--no-cassandra was given";
  if (process.env.BERTH_CASSANDRA) return undefined;
  try {
    resolveJava();
    return undefined;
  } catch (e: unknown) {
    return `java is missing or unusable, so no Cassandra node can be started here. ${(e as Error).message} Or set BERTH_CASSANDRA=host:port to use a running node`;
  }
}

interface CassandraParts {
  readonly contactPoint: string;
  readonly journal: CassandraBenchResult;
  readonly cluster: Phase;
}

/**
 * Starts one Cassandra node (unless BERTH_CASSANDRA names one), runs the journal bench
 * on it, then the local cluster on a fresh keyspace of it, and stops the node.
 */
async function cassandraParts(echo: Echo, poolsFile: string, dir: string): Promise<CassandraParts> {
  const given = process.env.BERTH_CASSANDRA;
  let node: CassandraNode | undefined;
  if (given) {
    progress(`[Cassandra] using the node at ${given} (BERTH_CASSANDRA)`);
  } else {
    progress(
      "[Cassandra] starting one Cassandra node for every Cassandra part (e2e/src/cassandra; the first run fetches the jars with Maven)",
    );
    node = await startCassandra({ log: (line) => progress(`[Cassandra] node: ${line}`) });
  }
  const contactPoint = given ?? (node as CassandraNode).contactPoint;
  try {
    progress("[Cassandra] journal bench: raw INSERT vs fenced append, then recovery");
    const journal = await runCassandraJournalBench({
      contactPoint,
      log: (line) => progress(`[Cassandra] ${line}`),
    });
    reportJournal(journal);
    const keyspace = `berth_bench_cluster_${randomUUID().replaceAll("-", "").slice(0, 8)}`;
    const cluster = await clusterPhase(
      {
        label: "Cassandra",
        // The request timeout the acceptance tests use: two cores serve everything.
        journal: `cassandra://${contactPoint}/${keyspace}?timeoutMs=10000`,
        dataDir: join(dir, "cassandra"),
        total: cassandraTotal,
        warmup: cassandraWarmup,
        availability: false,
        ...(node === undefined
          ? {}
          : { extraRoles: [{ name: "cassandra", pid: () => (node as CassandraNode).pid }] }),
      },
      echo,
      poolsFile,
    );
    await dropKeyspace(contactPoint, keyspace);
    return { contactPoint, journal, cluster };
  } finally {
    if (node !== undefined) progress("[Cassandra] stopping the node");
    await node?.stop();
  }
}

async function dropKeyspace(contactPoint: string, keyspace: string): Promise<void> {
  const client = new cassandra.Client({
    contactPoints: [contactPoint],
    localDataCenter: CASSANDRA_LOCAL_DATA_CENTER,
  });
  try {
    await client.connect();
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  } catch (e: unknown) {
    progress(`[Cassandra] could not drop keyspace ${keyspace}: ${(e as Error).message}`);
  } finally {
    await client.shutdown();
  }
}

async function main(): Promise<void> {
  progress(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${(freemem() / 2 ** 30).toFixed(1)} GiB free, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}, node ${process.version}`,
  );
  const skip = cassandraSkipReason();
  progress(
    `plan: ${rounds} rounds × ${total} requests per scenario, ${concurrency} in flight, ${warmup} warm-up requests per path, ${workers} workers; ` +
      (skip
        ? `Cassandra parts skipped (${skip})`
        : `then on Cassandra: journal bench, recovery of 1k/10k/100k events, and ${rounds} rounds × ${cassandraTotal} requests on the cluster`),
  );
  const echo = await startEcho();
  const dir = mkdtempSync(join(tmpdir(), "berth-bench-"));
  const poolsFile = join(dir, "pools.yaml");
  writeFileSync(
    poolsFile,
    [
      doc("bench", "hot", 1_000_000_000, { bench: "hot" }),
      ...Array.from({ length: 1000 }, (_, i) =>
        doc("bench", `spread-${i}`, 1_000_000, {
          bench: "spread",
          zone: i % 2 ? "north" : "south",
        }),
      ),
    ].join("---\n"),
  );
  let sqlite: Phase | undefined;
  let cass: CassandraParts | undefined;
  let cassError: string | undefined;
  try {
    sqlite = await clusterPhase(
      {
        label: "SQLite",
        journal: "sqlite",
        dataDir: join(dir, "sqlite"),
        total,
        warmup,
        availability: true,
      },
      echo,
      poolsFile,
    );
    console.log("\n== Local cluster on the SQLite journal ==");
    report(sqlite);
    if (skip === undefined) {
      try {
        cass = await cassandraParts(echo, poolsFile, dir);
      } catch (e: unknown) {
        cassError = e instanceof Error ? (e.stack ?? e.message) : String(e);
        process.exitCode = 1;
      }
    }
  } finally {
    echo.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (cass !== undefined) {
    console.log("\n== Local cluster on the Cassandra journal ==");
    report(cass.cluster);
    reportSideBySide(sqlite, cass.cluster);
  } else if (skip !== undefined) {
    console.log(`\nCassandra parts skipped: ${skip}`);
  } else {
    console.log(`\nCassandra parts FAILED:\n${cassError}`);
  }
  if (args.json) {
    writeFileSync(
      args.json,
      `${JSON.stringify(
        {
          at: new Date().toISOString(),
          total,
          concurrency,
          workers,
          rounds,
          warmup,
          load: loadavg(),
          sqlite: sqlite && tables(sqlite),
          cassandra: cass
            ? {
                contactPoint: cass.contactPoint,
                requests: cassandraTotal,
                warmup: cassandraWarmup,
                journal: cass.journal,
                cluster: tables(cass.cluster),
              }
            : { skipped: skip ?? `failed: ${cassError}` },
        },
        null,
        2,
      )}\n`,
    );
  }
}

/** The median round (by rate) of each scenario, with every round. */
function chosenRounds(phase: Phase) {
  return phase.scenarios.map((s) => {
    const runs = [...(phase.measured.get(s.name) ?? [])].sort((a, b) => a.rate - b.rate);
    const mid = runs[Math.floor((runs.length - 1) / 2)] as Measured;
    return { s, runs, mid };
  });
}

/** The printed tables of one phase, as rows. */
function tables(phase: Phase) {
  const chosen = chosenRounds(phase);
  const ceiling = chosen[0]?.mid.rate ?? 0;
  const rows = chosen.map(({ s, runs, mid }) => ({
    scenario: s.name,
    "req/s": mid.rate.toFixed(0),
    "rounds req/s": runs.map((r) => r.rate.toFixed(0)).join(" "),
    "p50 ms": mid.p50Ms.toFixed(2),
    "p99 ms": mid.p99Ms.toFixed(2),
    failed: runs.reduce((n, r) => n + r.failed, 0),
    "vs ceiling": ceiling ? `${((100 * mid.rate) / ceiling).toFixed(0)}%` : "-",
  }));
  const cpuRows = chosen.map(({ s, runs }) => {
    const row: Record<string, string> = { scenario: s.name };
    let sum = 0;
    for (const role of s.roles) {
      const v = median(runs.map((r) => r.cpuMsPerRequest.get(role.name) ?? Number.NaN));
      sum += Number.isNaN(v) ? 0 : v;
      row[role.name.replace(/ \(hot owner\)$/, "*")] = v.toFixed(3);
    }
    row.total = sum.toFixed(3);
    return row;
  });
  const batchRows = chosen
    .filter(({ mid }) => mid.batches !== undefined && mid.batches.count > 0)
    .map(({ s, mid }) => {
      const b = mid.batches as HistogramTotals;
      const a = mid.appendSeconds;
      return {
        scenario: s.name,
        appends: b.count,
        "mean events/append": (b.sum / b.count).toFixed(1),
        "p50 events ≤": String(bucketQuantile(b, 0.5) ?? "-"),
        "p90 events ≤": String(bucketQuantile(b, 0.9) ?? "-"),
        "mean append ms": a && a.count > 0 ? ((1000 * a.sum) / a.count).toFixed(2) : "-",
      };
    });
  return {
    journal: phase.journal,
    requests: phase.total,
    rows,
    cpuMsPerRequest: cpuRows,
    groupCommit: batchRows,
  };
}

function report(phase: Phase): void {
  const t = tables(phase);
  console.log(`${phase.total} requests per scenario and round, median of ${rounds} rounds:`);
  console.table(t.rows);
  console.log("CPU ms per request (median of rounds; * = owner of bench/hot):");
  const columns = [
    ...new Set(t.cpuMsPerRequest.flatMap((row) => Object.keys(row).filter((k) => k !== "total"))),
    "total",
  ];
  console.table(t.cpuMsPerRequest, columns);
  if (t.groupCommit.length > 0) {
    console.log("Group commit on the owners (median round):");
    console.table(t.groupCommit);
  }
}

/** The reserve scenarios of both journals in one table. */
function reportSideBySide(sqlite: Phase | undefined, cass: Phase): void {
  if (sqlite === undefined) return;
  const a = chosenRounds(sqlite);
  const b = chosenRounds(cass);
  const cell = (phase: ReturnType<typeof chosenRounds>, name: string) => {
    const ceiling = phase[0]?.mid.rate ?? 0;
    const m = phase.find((x) => x.s.name === name)?.mid;
    if (m === undefined) return "-";
    const pct = name === CEILING || !ceiling ? "" : ` (${((100 * m.rate) / ceiling).toFixed(0)}%)`;
    return `${m.rate.toFixed(0)}${pct}, p50 ${m.p50Ms.toFixed(1)} / p99 ${m.p99Ms.toFixed(1)} ms`;
  };
  console.log(
    `\nLocal cluster, SQLite vs Cassandra journal (req/s of the median round, % of the echo ceiling measured in the same phase; ${sqlite.total} vs ${cass.total} requests per round):`,
  );
  console.table(
    [CEILING, HOT, SPREAD].map((name) => ({
      scenario: name,
      SQLite: cell(a, name),
      Cassandra: cell(b, name),
    })),
  );
}

/** The journal bench's tables: writes against the raw INSERT, then recovery. */
function reportJournal(r: CassandraBenchResult): void {
  const n = (x: number) => Math.round(x).toLocaleString("en-US");
  const rawRate = (pools: number) =>
    r.writes.find((w) => w.kind === "raw" && w.pools === pools)?.eventsPerSecond;
  console.log(
    `\n== Cassandra journal on one node (${r.contactPoint}, bucket size ${n(r.bucketSize)}) ==`,
  );
  console.log("Writes: raw cassandra-driver INSERT vs Berth's fenced group-commit append:");
  console.table(
    r.writes.map((w) => {
      const raw = rawRate(w.pools);
      return {
        write: w.name,
        "events/s": n(w.eventsPerSecond),
        "writes/s": n(w.writesPerSecond),
        "mean ms/write": w.meanWriteMs.toFixed(2),
        "vs raw INSERT":
          w.kind === "raw" || raw === undefined
            ? "-"
            : `${((100 * w.eventsPerSecond) / raw).toFixed(0)}%`,
      };
    }),
  );
  console.log(`Recovery: ${r.recoveryMethod}:`);
  console.table(
    r.recovery.map((f) => ({
      events: n(f.events),
      snapshot:
        f.snapshot === "none"
          ? "none"
          : `at ${n(f.snapshotSeq)} (${f.snapshot}), ${n(f.snapshotEntries)} reservations`,
      replayed: n(f.replayed),
      "load ms": f.loadMs.toFixed(1),
      "fold ms": f.foldMs.toFixed(1),
      "total ms": f.totalMs.toFixed(1),
    })),
  );
}

function doc(
  namespace: string,
  name: string,
  capacity: number,
  labels: Record<string, string>,
): string {
  const l = Object.entries(labels)
    .map(([k, v]) => `    ${k}: ${v}\n`)
    .join("");
  return `apiVersion: berth.dev/v1alpha1\nkind: CapacityPool\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\n  labels:\n${l}spec:\n  capacity: ${capacity}\n`;
}

await main();
