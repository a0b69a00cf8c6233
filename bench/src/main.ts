// `npm run bench`: Berth side by side with its baselines, in one run on this machine
// (issue 10). Every scenario is measured as a matrix: at each concurrency (default 1, 8
// and 64 in flight) a closed-loop cell (max rate for `--seconds`), then an open-loop cell
// at half of that cell's measured rate (fixed rate; latency from each request's scheduled
// send time). Per cell: req/s, p50, p99, failures, CPU ms per request of every process
// (utime+stime from /proc) and, for Berth, the peak RSS of the gateway and workers.
//   1. grpc-js echo through one hop and through two hops (echo-hop.ts): the ceiling;
//   2. Berth reserve on one hot pool and over 1,000 pools, and GetAvailability, through
//      the real local cluster (client → gateway → owner worker → SQLite journal,
//      synchronous=FULL);
//   3. PostgreSQL (postgres-baseline.ts; a real server, fsync=on, synchronous_commit=on)
//      through pgbench: the conditional UPDATE on one hot row, the same plus an INSERT of
//      the reservation row in one transaction, and on 1,000 rows;
//   4. on one real Cassandra node (skipped with --no-cassandra or without java): the
//      Cassandra journal micro-bench (cassandra-journal-bench.ts), Berth on the Cassandra
//      journal (hot pool, 1,000 pools) and a Cassandra LWT compare-and-set on one row.
// The gRPC scenarios are driven by ghz (ghz.ts; Go, built once into the user cache) —
// `--client node` uses the in-process grpc-js client (load.ts) instead; a calibration
// cell measures both against the same echo hop in every run. Each figure is the median of
// `--rounds` rounds; rounds interleave the scenarios so each sees the same machine.
// Prints the matrix, the issue's side-by-side ratio table, half-rate latencies, CPU per
// request per process, RSS, and the issue's goal checks; --json FILE writes everything.

import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CapacityServiceClient } from "@berth/common";
import { type LocalCluster, startLocalCluster } from "@berth/local";
import { shardOf, type v1 } from "@berth/proto";
import {
  CASSANDRA_LOCAL_DATA_CENTER,
  type CassandraNode,
  resolveJava,
  startCassandra,
} from "@berth/testing/cassandra";
import * as grpc from "@grpc/grpc-js";
import cassandra from "cassandra-driver";
import { type CassandraBenchResult, runCassandraJournalBench } from "./cassandra-journal-bench.js";
import { type Echo, startEcho } from "./echo-chain.js";
import { ensureGhz, GHZ_VERSION, type GhzTarget, ghzSkipReason, runGhz } from "./ghz.js";
import { type LoadResult, runLoad, runOpenLoop } from "./load.js";
import {
  createSchema,
  findPostgresBin,
  PG_SCRIPTS,
  type PgScript,
  type PostgresServer,
  runPgbench,
  startPostgres,
} from "./postgres-baseline.js";
import {
  histogramDelta,
  histogramTotals,
  poolManifestYaml,
  procCpuSeconds,
  rssBytes,
  scrapeMetrics,
  unary,
} from "./probes.js";

const GROUPS = ["echo", "berth", "postgres", "cassandra"] as const;
type Group = (typeof GROUPS)[number];

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "1,8,64" },
    workers: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    "warmup-seconds": { type: "string", default: "2" },
    client: { type: "string", default: "ghz" },
    only: { type: "string" },
    json: { type: "string" },
    "no-cassandra": { type: "boolean", default: false },
    "no-postgres": { type: "boolean", default: false },
    "recovery-sizes": { type: "string", default: "1000,10000" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(
    "usage: npm run bench -- [--seconds 3] [--concurrency 1,8,64] [--rounds 3] [--workers 3]\n" +
      "                        [--warmup-seconds 2] [--client ghz|node] [--only GROUPS]\n" +
      "                        [--no-postgres] [--no-cassandra] [--recovery-sizes 1000,10000] [--json out.json]\n" +
      "  --seconds         length of every cell (closed loop, then the same at half its rate)\n" +
      "  --concurrency     requests in flight, one matrix column each\n" +
      "  --rounds          rounds of every cell; every figure is the median of the rounds\n" +
      "  --warmup-seconds  closed-loop warm-up of every path (at the highest concurrency)\n" +
      `  --client          gRPC load generator: ghz (${GHZ_VERSION}, built once with Go into\n` +
      "                    $XDG_CACHE_HOME/berth/tools, default ~/.cache) or node (in-process grpc-js)\n" +
      "  --only            comma list of echo,berth,postgres,cassandra (default: all)\n" +
      "  --no-postgres     skip the PostgreSQL baseline (also skipped without its binaries)\n" +
      "  --no-cassandra    skip every Cassandra part (journal bench, Berth on Cassandra, LWT)\n" +
      "  --recovery-sizes  events per pool of the Cassandra journal bench's recovery runs\n" +
      "  BERTH_CASSANDRA=host:port uses that node instead of starting one (testing/src/cassandra)\n" +
      "  BERTH_PG_BIN=dir  PostgreSQL binaries (default: newest /usr/lib/postgresql/*/bin)",
  );
  process.exit(0);
}
const seconds = Number(args.seconds);
const levels = (args.concurrency ?? "").split(",").map(Number);
const workers = Number(args.workers);
const rounds = Number(args.rounds);
const warmupSeconds = Number(args["warmup-seconds"]);
const recoverySizes = (args["recovery-sizes"] ?? "").split(",").map(Number);
for (const [name, v] of [
  ["--seconds", seconds],
  ["--workers", workers],
  ["--rounds", rounds],
  ...levels.map((l) => ["--concurrency", l] as const),
  ...recoverySizes.map((l) => ["--recovery-sizes", l] as const),
] as const) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`bench: ${name} must be positive integers`);
    process.exit(2);
  }
}
if (!(warmupSeconds >= 0)) {
  console.error("bench: --warmup-seconds must be ≥ 0");
  process.exit(2);
}
if (args.client !== "ghz" && args.client !== "node") {
  console.error("bench: --client is ghz or node");
  process.exit(2);
}
const only = new Set<Group>(
  args.only ? (args.only.split(",").map((s) => s.trim()) as Group[]) : [...GROUPS],
);
for (const g of only) {
  if (!GROUPS.includes(g)) {
    console.error(`bench: --only takes ${GROUPS.join(",")}`);
    process.exit(2);
  }
}
const top = Math.max(...levels);

const progress = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

/** One process whose CPU time (and RSS) is charged to a scenario. */
interface Role {
  readonly name: string;
  readonly pid: () => number | undefined;
  /** Sample its RSS during the cells. */
  readonly rss?: boolean;
}

/** What a scenario's driver returns for one cell. */
interface Run extends LoadResult {
  /** CPU seconds of the load generator, when it is a separate process. */
  readonly clientCpuSeconds?: number;
  /** CPU seconds of server processes the driver measured itself (PostgreSQL). */
  readonly serverCpuSeconds?: Readonly<Record<string, number>>;
}

type Mode = "max" | "half";

interface Scenario {
  readonly id: string;
  readonly name: string;
  readonly group: Group;
  /** Label of the load generator (its CPU is shown as this role). */
  readonly client: string;
  readonly roles: readonly Role[];
  /** /metrics addresses whose group-commit histograms are attributed to the scenario. */
  readonly owners?: readonly string[];
  /** Only `reserve`-like scenarios: counts "successful reserves". */
  readonly drive: (o: { concurrency: number; seconds: number; rate?: number }) => Promise<Run>;
  readonly warm?: () => Promise<unknown>;
}

/** One measured cell. */
interface Cell {
  readonly scenario: string;
  readonly concurrency: number;
  readonly mode: Mode;
  readonly round: number;
  readonly targetRate?: number;
  readonly ok: number;
  readonly failed: number;
  readonly rate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU ms per successful request, by process. */
  readonly cpuMsPerRequest: Record<string, number>;
  /** Peak RSS in MB during the cell, by process. */
  readonly rssMb: Record<string, number>;
  readonly meanBatch?: number;
  readonly meanAppendMs?: number;
  readonly failures: Record<string, number>;
}

const cells: Cell[] = [];
const scenarios: Scenario[] = [];
const skipped: Record<string, string> = {};

async function measure(
  s: Scenario,
  concurrency: number,
  mode: Mode,
  round: number,
  rate?: number,
): Promise<Cell> {
  const cpuBefore = s.roles.map((r) => {
    const pid = r.pid();
    return pid === undefined ? undefined : procCpuSeconds(pid, false);
  });
  const selfBefore = process.cpuUsage();
  const rssPeak = new Map<string, number>();
  const sample = (): void => {
    for (const r of s.roles) {
      if (!r.rss) continue;
      const b = rssBytes(r.pid());
      if (b !== undefined) rssPeak.set(r.name, Math.max(rssPeak.get(r.name) ?? 0, b));
    }
  };
  const sampler = setInterval(sample, 250);
  const metricsBefore = await Promise.all((s.owners ?? []).map(scrapeMetrics));
  let r: Run;
  try {
    r = await s.drive({ concurrency, seconds, ...(rate === undefined ? {} : { rate }) });
  } finally {
    clearInterval(sampler);
  }
  sample();
  const self = process.cpuUsage(selfBefore);
  const metricsAfter = await Promise.all((s.owners ?? []).map(scrapeMetrics));
  const per = Math.max(1, r.ok);
  const cpu: Record<string, number> = {};
  cpu[s.client] = ((r.clientCpuSeconds ?? (self.user + self.system) / 1e6) * 1000) / per;
  s.roles.forEach((role, i) => {
    const b = cpuBefore[i];
    const pid = role.pid();
    const a = pid === undefined ? undefined : procCpuSeconds(pid, false);
    if (a !== undefined && b !== undefined) cpu[role.name] = ((a - b) * 1000) / per;
  });
  for (const [k, v] of Object.entries(r.serverCpuSeconds ?? {})) cpu[k] = (v * 1000) / per;
  let batchSum = 0;
  let batchCount = 0;
  let appendSum = 0;
  let appendCount = 0;
  metricsAfter.forEach((text, i) => {
    const b = histogramDelta(
      histogramTotals(text, "berth_group_commit_events"),
      histogramTotals(metricsBefore[i] ?? "", "berth_group_commit_events"),
    );
    const a = histogramDelta(
      histogramTotals(text, "berth_journal_append_seconds"),
      histogramTotals(metricsBefore[i] ?? "", "berth_journal_append_seconds"),
    );
    batchSum += b.sum;
    batchCount += b.count;
    appendSum += a.sum;
    appendCount += a.count;
  });
  const cell: Cell = {
    scenario: s.id,
    concurrency,
    mode,
    round,
    ...(rate === undefined ? {} : { targetRate: rate }),
    ok: r.ok,
    failed: r.failed,
    rate: r.ok / r.seconds,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    cpuMsPerRequest: cpu,
    rssMb: Object.fromEntries([...rssPeak].map(([k, v]) => [k, v / 2 ** 20])),
    ...(batchCount > 0
      ? { meanBatch: batchSum / batchCount, meanAppendMs: (1000 * appendSum) / appendCount }
      : {}),
    failures: Object.fromEntries(r.failures),
  };
  const cpuText = Object.entries(cpu)
    .map(([k, v]) => `${k} ${v.toFixed(3)}`)
    .join(", ");
  progress(
    `round ${round} ${s.name} c=${concurrency} ${mode === "max" ? "closed loop" : `at ${rate?.toFixed(0)} req/s`}: ` +
      `${cell.rate.toFixed(0)} ok/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ${r.failed} failed; CPU ms/req: ${cpuText}` +
      (cell.meanBatch !== undefined
        ? `; mean batch ${cell.meanBatch.toFixed(1)} events, mean append ${cell.meanAppendMs?.toFixed(2)} ms`
        : "") +
      (rssPeak.size > 0
        ? `; RSS MB ${Object.entries(cell.rssMb)
            .map(([k, v]) => `${k} ${v.toFixed(0)}`)
            .join(", ")}`
        : ""),
  );
  for (const [k, n] of r.failures) progress(`  ${n} × ${k}`);
  cells.push(cell);
  return cell;
}

/** Every round of the matrix of `list`: per concurrency, closed loop then half of it. */
async function matrix(list: readonly Scenario[]): Promise<void> {
  for (const s of list) {
    if (s.warm && warmupSeconds > 0) {
      progress(`warming up ${s.name} (${warmupSeconds} s at c=${top})`);
      await s.warm();
    }
  }
  for (let round = 1; round <= rounds; round++) {
    for (const s of list) {
      for (const c of levels) {
        const max = await measure(s, c, "max", round);
        await measure(s, c, "half", round, Math.max(1, max.rate / 2));
      }
    }
  }
}

// ---------------------------------------------------------------- gRPC load generators

const repo = fileURLToPath(new URL("../../", import.meta.url));
const echoProto = fileURLToPath(new URL("./echo.proto", import.meta.url));
const berthProto = join(repo, "proto/proto/berth/v1/capacity.proto");
const ECHO_BLOB = Buffer.alloc(62, 7);
/** A valid `Blob { data = 62 bytes }` for the raw hop, so ghz can parse the echo. */
const ECHO_PAYLOAD = Buffer.concat([Buffer.from([0x0a, ECHO_BLOB.length]), ECHO_BLOB]);

/** What a gRPC scenario calls, for either generator. */
interface GrpcCall {
  readonly ghz: GhzTarget;
  readonly node: (i: number) => Promise<unknown>;
}

let ghzBin: string | undefined;
let workDir = "";

function grpcDriver(call: GrpcCall, useGhz: boolean): Scenario["drive"] {
  if (useGhz) {
    return async (o) => {
      const r = await runGhz(ghzBin as string, call.ghz, {
        ...o,
        outFile: join(workDir, `ghz-${randomUUID()}.json`),
      });
      return r;
    };
  }
  return (o) =>
    o.rate === undefined
      ? runLoad({ seconds: o.seconds, concurrency: o.concurrency, call: call.node })
      : runOpenLoop({ seconds: o.seconds, rate: o.rate, call: call.node });
}

function echoCall(address: string): GrpcCall & { close(): void } {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const id = (b: Buffer): Buffer => b;
  return {
    ghz: {
      address,
      proto: echoProto,
      importPaths: [],
      call: "berth.bench.Echo/Echo",
      data: JSON.stringify({ data: ECHO_BLOB.toString("base64") }),
    },
    node: () =>
      new Promise<void>((resolve, reject) =>
        client.makeUnaryRequest(
          "/berth.bench.Echo/Echo",
          id,
          id,
          ECHO_PAYLOAD,
          new grpc.Metadata(),
          { deadline: Date.now() + 10_000 },
          (e: grpc.ServiceError | null) => (e ? reject(e) : resolve()),
        ),
      ),
    close: () => client.close(),
  };
}

function berthCalls(address: string) {
  const client = new CapacityServiceClient(address, grpc.credentials.createInsecure());
  const target = (call: string, data: unknown): GhzTarget => ({
    address,
    proto: berthProto,
    importPaths: [join(repo, "proto/proto")],
    call,
    data: JSON.stringify(data),
  });
  const run = randomUUID().slice(0, 8);
  const reserve = (pool: string, requestId: string): Promise<v1.ReserveResponse> =>
    unary(10_000, client.reserve.bind(client), { pool, units: 1, requestId });
  const availabilityRequest = {
    labelSelector: "zone=north",
    minUnits: 1,
    pageSize: 100,
  };
  return {
    hot: {
      ghz: target("berth.v1.CapacityService/Reserve", {
        pool: "bench/hot",
        units: 1,
        requestId: "{{newUUID}}",
      }),
      node: (i: number) => reserve("bench/hot", `hot-${run}-${i}-${Math.random()}`),
    } satisfies GrpcCall,
    spread: {
      ghz: target("berth.v1.CapacityService/Reserve", {
        pool: "bench/spread-{{randInt 0 1000}}",
        units: 1,
        requestId: "{{newUUID}}",
      }),
      node: (_i: number) =>
        reserve(`bench/spread-${Math.floor(Math.random() * 1000)}`, randomUUID()),
    } satisfies GrpcCall,
    availability: {
      ghz: target("berth.v1.CapacityService/GetAvailability", availabilityRequest),
      node: () =>
        unary(10_000, client.getAvailability.bind(client), {
          ...availabilityRequest,
          window: undefined,
          pageToken: "",
          includeClosed: false,
        }),
    } satisfies GrpcCall,
    close: () => client.close(),
  };
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
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

// ---------------------------------------------------------------- phases

const ECHO1 = "echo-1";
const ECHO2 = "echo-2";
const HOT = "berth-hot";
const SPREAD = "berth-spread";
const AVAIL = "berth-availability";
const PG_HOT = "pg-hot";
const PG_INSERT = "pg-hot-insert";
const PG_SPREAD = "pg-spread";
const C_HOT = "berth-cassandra-hot";
const LWT = "cassandra-lwt";

const clientLabel = (): string => (ghzBin ? "ghz" : "client (node)");

/** Berth's processes as roles: gateway and workers, RSS sampled. */
function berthRoles(c: LocalCluster, hotOwner: string): Role[] {
  return [
    { name: "gateway", pid: () => c.gatewayPid, rss: true },
    ...c.workers.map((w) => ({
      name: w.id === hotOwner ? `${w.id}*` : w.id,
      pid: () => w.pid,
      rss: true,
    })),
  ];
}

/** Measures each generator's CPU per request against the same one-hop echo. */
async function calibrate(echo: Echo): Promise<Record<string, unknown>> {
  const call = echoCall(echo.last.address);
  const roles: Role[] = [{ name: "hop", pid: () => echo.last.child.pid }];
  const out: Record<string, unknown> = {};
  try {
    for (const gen of ghzBin ? ["node", "ghz"] : ["node"]) {
      const s: Scenario = {
        id: `calibrate-${gen}`,
        name: `calibration: ${gen} → one echo hop`,
        group: "echo",
        client: gen,
        roles,
        drive: grpcDriver(call, gen === "ghz"),
      };
      await s.drive({ concurrency: top, seconds: 1 });
      const cell = await measure(s, top, "max", 0);
      out[gen] = { rate: cell.rate, p50Ms: cell.p50Ms, cpuMsPerRequest: cell.cpuMsPerRequest };
    }
  } finally {
    call.close();
  }
  return out;
}

/** One fsync on this disk: SQLite WAL, synchronous=FULL, BEGIN IMMEDIATE/INSERT/COMMIT. */
function measureFsync(dir: string): number {
  const db = new DatabaseSync(join(dir, "fsync.db"));
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE t (x INTEGER)");
  const ins = db.prepare("INSERT INTO t (x) VALUES (?)");
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = process.hrtime.bigint();
    db.exec("BEGIN IMMEDIATE");
    ins.run(i);
    db.exec("COMMIT");
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  db.close();
  return median(times);
}

async function sqlitePhase(echo: Echo | undefined, poolsFile: string, dir: string): Promise<void> {
  const list: Scenario[] = [];
  const closers: (() => void)[] = [];
  let cluster: LocalCluster | undefined;
  try {
    if (echo) {
      const one = echoCall(echo.last.address);
      const two = echoCall(echo.first.address);
      closers.push(one.close, two.close);
      list.push(
        {
          id: ECHO1,
          name: "grpc-js echo, one hop",
          group: "echo",
          client: clientLabel(),
          roles: [{ name: "hop 2", pid: () => echo.last.child.pid }],
          drive: grpcDriver(one, ghzBin !== undefined),
        },
        {
          id: ECHO2,
          name: "grpc-js echo, two hops",
          group: "echo",
          client: clientLabel(),
          roles: [
            { name: "hop 1", pid: () => echo.first.child.pid },
            { name: "hop 2", pid: () => echo.last.child.pid },
          ],
          drive: grpcDriver(two, ghzBin !== undefined),
        },
      );
    }
    if (only.has("berth")) {
      progress(`[SQLite] starting the local cluster (${workers} workers, journal sqlite)`);
      const started = Date.now();
      cluster = await startLocalCluster({
        port: 0,
        workers,
        dataDir: join(dir, "sqlite"),
        pools: [poolsFile],
        journal: "sqlite",
      });
      const c = cluster;
      progress(
        `[SQLite] cluster serving, ${c.pools.length} pools configured, in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      const hotOwner = ownerOf(c, "bench/hot");
      progress(`[SQLite] bench/hot is owned by ${hotOwner.id} (* in the tables)`);
      list.push(...berthScenarios(c, hotOwner.id, "", closers, true));
    }
    scenarios.push(...list);
    await matrix(list);
  } finally {
    for (const c of closers) c();
    if (cluster) {
      progress("[SQLite] stopping the local cluster");
      await cluster.stop();
    }
  }
}

function berthScenarios(
  c: LocalCluster,
  hotOwner: string,
  journal: "" | "Cassandra",
  closers: (() => void)[],
  availability: boolean,
  extraRoles: readonly Role[] = [],
): Scenario[] {
  const calls = berthCalls(c.gatewayAddress);
  closers.push(calls.close);
  const roles = [...berthRoles(c, hotOwner), ...extraRoles];
  const useGhz = ghzBin !== undefined;
  const on = journal ? " on Cassandra" : "";
  const warm = (call: GrpcCall) => () =>
    grpcDriver(call, useGhz)({ concurrency: top, seconds: warmupSeconds });
  const list: Scenario[] = [
    {
      id: journal ? C_HOT : HOT,
      name: `Berth reserve${on}, one hot pool`,
      group: journal ? "cassandra" : "berth",
      client: clientLabel(),
      roles,
      owners: [c.workers.find((w) => w.id === hotOwner)?.httpAddress ?? ""],
      drive: grpcDriver(calls.hot, useGhz),
      warm: warm(calls.hot),
    },
  ];
  // On Cassandra only the hot pool (the issue's row); 1,000 pools there would add a
  // minute of cells to every run.
  if (!journal) {
    list.push({
      id: SPREAD,
      name: "Berth reserve, 1,000 pools",
      group: "berth",
      client: clientLabel(),
      roles,
      owners: c.workers.map((w) => w.httpAddress),
      drive: grpcDriver(calls.spread, useGhz),
      warm: warm(calls.spread),
    });
  }
  if (availability) {
    list.push({
      id: AVAIL,
      name: "Berth GetAvailability (zone=north, page of 100)",
      group: "berth",
      client: clientLabel(),
      roles: roles.slice(0, 1),
      drive: grpcDriver(calls.availability, useGhz),
      warm: warm(calls.availability),
    });
  }
  return list;
}

async function postgresPhase(): Promise<string | undefined> {
  const found = findPostgresBin();
  if ("skip" in found) return found.skip;
  let pg: PostgresServer | undefined;
  try {
    progress(`[PostgreSQL] initdb and start (${found.bin})`);
    pg = await startPostgres({ bin: found.bin, log: (l) => progress(`[PostgreSQL] ${l}`) });
    createSchema(pg);
    const server = pg;
    const mk = (id: string, script: PgScript): Scenario => ({
      id,
      name: PG_SCRIPTS[script].name,
      group: "postgres",
      client: "pgbench",
      roles: [],
      drive: async (o) => {
        // Fixed rate is open loop: like ghz --async (no bound on calls in flight), pgbench
        // gets the matrix's largest connection count, so a stall queues no transaction
        // behind a busy connection of the few a small-c cell would have.
        const clients = o.rate === undefined ? o.concurrency : Math.max(o.concurrency, top);
        const r = await runPgbench(server, { script, ...o, clients });
        return {
          ok: r.transactions,
          failed: r.failed,
          // tps excludes pgbench's connection set-up; 0 transactions: the cell's length.
          seconds: r.transactions > 0 && r.rate > 0 ? r.transactions / r.rate : o.seconds,
          rate: r.rate,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          failures: new Map(),
          clientCpuSeconds: r.clientCpuSeconds,
          serverCpuSeconds: { postgres: r.serverCpuSeconds },
        };
      },
      warm: () =>
        runPgbench(server, {
          script,
          clients: top,
          seconds: Math.max(1, Math.round(warmupSeconds)),
        }),
    });
    const list = [mk(PG_HOT, "hot"), mk(PG_INSERT, "hot+insert"), mk(PG_SPREAD, "spread")];
    scenarios.push(...list);
    await matrix(list);
    const sum = server.psql("SELECT sum(reserved) FROM pools").trim();
    progress(`[PostgreSQL] ${sum} units reserved in total; stopping and removing ${server.dir}`);
    return undefined;
  } finally {
    await pg?.stop();
  }
}

/** Why the Cassandra parts cannot run, or undefined when they can. */
function cassandraSkipReason(): string | undefined {
  if (args["no-cassandra"]) return "--no-cassandra was given";
  if (!only.has("cassandra")) return "not in --only";
  if (process.env.BERTH_CASSANDRA) return undefined;
  try {
    resolveJava();
    return undefined;
  } catch (e: unknown) {
    return `java is missing or unusable, so no Cassandra node can be started here. ${(e as Error).message} Or set BERTH_CASSANDRA=host:port to use a running node`;
  }
}

/** A Cassandra LWT compare-and-set reserve on one row: read, then IF reserved = ?, retried. */
async function lwtScenario(
  contactPoint: string,
  keyspace: string,
  cassandraPid: () => number | undefined,
): Promise<{ scenario: Scenario; close: () => Promise<void> }> {
  const client = new cassandra.Client({
    contactPoints: [contactPoint],
    localDataCenter: CASSANDRA_LOCAL_DATA_CENTER,
    socketOptions: { readTimeout: 20_000 },
    pooling: { coreConnectionsPerHost: { [cassandra.types.distance.local]: 2 } },
  });
  await client.connect();
  await client.execute(
    `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
  );
  await client.execute(
    `CREATE TABLE IF NOT EXISTS ${keyspace}.pools (id text PRIMARY KEY, capacity bigint, reserved bigint)`,
  );
  await client.execute(
    `INSERT INTO ${keyspace}.pools (id, capacity, reserved) VALUES ('hot', 1000000000000, 0)`,
  );
  const read = `SELECT reserved FROM ${keyspace}.pools WHERE id = ?`;
  const cas = `UPDATE ${keyspace}.pools SET reserved = ? WHERE id = ? IF reserved = ?`;
  const Long = cassandra.types.Long;
  let applied = 0;
  const reserve = async (): Promise<void> => {
    const r = await client.execute(read, ["hot"], { prepare: true });
    let current = r.first()?.get("reserved") as InstanceType<typeof Long>;
    for (let attempt = 0; attempt < 1000; attempt++) {
      const u = await client.execute(cas, [current.add(1), "hot", current], { prepare: true });
      const row = u.first();
      if (row?.get("[applied]") === true) {
        applied++;
        return;
      }
      current = row?.get("reserved") as InstanceType<typeof Long>;
    }
    throw new Error("not applied after 1000 attempts");
  };
  const scenario: Scenario = {
    id: LWT,
    name: "Cassandra LWT compare-and-set, one row",
    group: "cassandra",
    client: "client (node)",
    roles: [{ name: "cassandra", pid: cassandraPid }],
    drive: (o) =>
      o.rate === undefined
        ? runLoad({ seconds: o.seconds, concurrency: o.concurrency, call: reserve })
        : // At most `top` in flight, as pgbench's connections: unbounded concurrent
          // compare-and-sets on one row only retry each other into a collapse.
          runOpenLoop({ seconds: o.seconds, rate: o.rate, call: reserve, maxInFlight: top }),
    warm: () => runLoad({ seconds: warmupSeconds, concurrency: 8, call: reserve }),
  };
  const close = async (): Promise<void> => {
    const r = await client.execute(read, ["hot"], { prepare: true }).catch(() => undefined);
    const row = String(r?.first()?.get("reserved") ?? "?");
    progress(
      `[Cassandra] LWT row: reserved = ${row}, ${applied} compare-and-sets applied${row === String(applied) ? " (equal)" : " (MISMATCH)"}`,
    );
    await client.shutdown();
  };
  return { scenario, close };
}

async function cassandraPhase(
  poolsFile: string,
  dir: string,
): Promise<CassandraBenchResult | undefined> {
  const given = process.env.BERTH_CASSANDRA;
  let node: CassandraNode | undefined;
  if (given) progress(`[Cassandra] using the node at ${given} (BERTH_CASSANDRA)`);
  else {
    progress(
      "[Cassandra] starting one Cassandra node (testing/src/cassandra; the first run fetches the jars with Maven)",
    );
    node = await startCassandra({ log: (line) => progress(`[Cassandra] node: ${line}`) });
  }
  const contactPoint = given ?? (node as CassandraNode).contactPoint;
  const suffix = randomUUID().replaceAll("-", "").slice(0, 8);
  const keyspace = `berth_bench_cluster_${suffix}`;
  const lwtKeyspace = `berth_bench_lwt_${suffix}`;
  const closers: (() => void)[] = [];
  let cluster: LocalCluster | undefined;
  let lwt: Awaited<ReturnType<typeof lwtScenario>> | undefined;
  try {
    progress(
      `[Cassandra] starting the local cluster (${workers} workers, journal on ${contactPoint}/${keyspace})`,
    );
    cluster = await startLocalCluster({
      port: 0,
      workers,
      dataDir: join(dir, "cassandra"),
      pools: [poolsFile],
      // The request timeout the acceptance tests use: two cores serve everything.
      journal: `cassandra://${contactPoint}/${keyspace}?timeoutMs=10000`,
    });
    const hotOwner = ownerOf(cluster, "bench/hot");
    const jvm: Role[] = node ? [{ name: "cassandra", pid: () => (node as CassandraNode).pid }] : [];
    const list = berthScenarios(cluster, hotOwner.id, "Cassandra", closers, false, jvm);
    lwt = await lwtScenario(contactPoint, lwtKeyspace, () => node?.pid);
    list.push(lwt.scenario);
    scenarios.push(...list);
    await matrix(list);
    for (const c of closers.splice(0)) c();
    await lwt.close();
    lwt = undefined;
    progress("[Cassandra] stopping the local cluster");
    await cluster.stop();
    cluster = undefined;
    // After the matrix, so a journal bench failure (e.g. a server-side CAS write timeout
    // on a busy machine) does not cost the side-by-side figures.
    progress(
      `[Cassandra] journal bench: raw INSERT vs fenced append, then recovery of ${recoverySizes.join(" / ")} events`,
    );
    try {
      const journal = await runCassandraJournalBench({
        contactPoint,
        recoverySizes,
        log: (line) => progress(`[Cassandra] ${line}`),
      });
      reportJournal(journal);
      return journal;
    } catch (e: unknown) {
      const why = e instanceof Error ? e.message : String(e);
      skipped["cassandra journal bench"] = `FAILED: ${why}`;
      progress(`[Cassandra] journal bench failed: ${why}`);
      process.exitCode = 1;
      return undefined;
    }
  } finally {
    for (const c of closers) c();
    await lwt?.close();
    if (cluster) {
      progress("[Cassandra] stopping the local cluster");
      await cluster.stop();
    }
    await dropKeyspaces(contactPoint, [keyspace, lwtKeyspace]);
    if (node !== undefined) progress("[Cassandra] stopping the node");
    await node?.stop();
  }
}

async function dropKeyspaces(contactPoint: string, keyspaces: readonly string[]): Promise<void> {
  const client = new cassandra.Client({
    contactPoints: [contactPoint],
    localDataCenter: CASSANDRA_LOCAL_DATA_CENTER,
  });
  try {
    await client.connect();
    for (const k of keyspaces) await client.execute(`DROP KEYSPACE IF EXISTS ${k}`);
  } catch (e: unknown) {
    progress(`[Cassandra] could not drop keyspaces: ${(e as Error).message}`);
  } finally {
    await client.shutdown();
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const machine = `${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${(freemem() / 2 ** 30).toFixed(1)} GiB free, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}, node ${process.version}`;
  progress(`machine: ${machine}`);
  const startedAt = new Date();
  if (args.client === "ghz") {
    const why = ghzSkipReason();
    if (why) progress(`ghz unavailable (${why}): using the in-process Node client`);
    else {
      try {
        ghzBin = await ensureGhz(progress);
      } catch (e: unknown) {
        progress(
          `ghz unavailable (${(e as Error).message.slice(0, 300)}): using the in-process Node client`,
        );
      }
    }
  }
  const cassSkip = cassandraSkipReason();
  const pgSkipFlag = args["no-postgres"]
    ? "--no-postgres was given"
    : !only.has("postgres")
      ? "not in --only"
      : undefined;
  progress(
    `plan: ${[...only].join(", ")}; concurrency ${levels.join(", ")}; ${rounds} rounds × (${seconds} s closed loop + ${seconds} s at half its rate) per cell; ` +
      `gRPC client ${ghzBin ? `ghz ${GHZ_VERSION}` : "node (in-process)"}${cassSkip ? `; Cassandra skipped (${cassSkip})` : ""}`,
  );
  workDir = mkdtempSync(join(tmpdir(), "berth-bench-"));
  const dir = workDir;
  const poolsFile = join(dir, "pools.yaml");
  writeFileSync(
    poolsFile,
    [
      poolManifestYaml("bench", "hot", 1_000_000_000, { bench: "hot" }),
      ...Array.from({ length: 1000 }, (_, i) =>
        poolManifestYaml("bench", `spread-${i}`, 1_000_000, {
          bench: "spread",
          zone: i % 2 ? "north" : "south",
        }),
      ),
    ].join("---\n"),
  );
  let echo: Echo | undefined;
  let calibration: Record<string, unknown> | undefined;
  let fsyncMs: number | undefined;
  let journal: CassandraBenchResult | undefined;
  try {
    fsyncMs = measureFsync(dir);
    progress(
      `one fsync on this disk (SQLite WAL commit, synchronous=FULL, median of 200): ${fsyncMs.toFixed(2)} ms`,
    );
    if (only.has("echo") || only.has("berth")) {
      echo = await startEcho();
      calibration = await calibrate(echo);
    }
    if (only.has("echo") || only.has("berth")) {
      await sqlitePhase(only.has("echo") ? echo : undefined, poolsFile, dir);
    }
    echo?.close();
    echo = undefined;
    if (pgSkipFlag) skipped.postgres = pgSkipFlag;
    else {
      const why = await postgresPhase();
      if (why) {
        skipped.postgres = why;
        progress(`PostgreSQL skipped: ${why}`);
      }
    }
    if (cassSkip) skipped.cassandra = cassSkip;
    else {
      try {
        journal = await cassandraPhase(poolsFile, dir);
      } catch (e: unknown) {
        skipped.cassandra = `FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
        progress(`Cassandra parts failed: ${skipped.cassandra}`);
        process.exitCode = 1;
      }
    }
  } finally {
    echo?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const out = report(fsyncMs, calibration);
  if (args.json) {
    writeFileSync(
      args.json,
      `${JSON.stringify(
        {
          at: startedAt.toISOString(),
          finished: new Date().toISOString(),
          machine,
          loadAtEnd: loadavg(),
          options: {
            seconds,
            concurrency: levels,
            rounds,
            workers,
            warmupSeconds,
            client: ghzBin ? `ghz ${GHZ_VERSION}` : "node",
            only: [...only],
          },
          fsyncMs,
          calibration,
          skipped,
          ...out,
          cassandraJournal: journal,
          cells,
        },
        null,
        2,
      )}\n`,
    );
  }
}

// ---------------------------------------------------------------- report

/** The median of every figure of a cell over its rounds. */
function med(id: string, c: number, mode: Mode) {
  const xs = cells.filter(
    (x) => x.scenario === id && x.concurrency === c && x.mode === mode && x.round > 0,
  );
  if (xs.length === 0) return undefined;
  const roles = [...new Set(xs.flatMap((x) => Object.keys(x.cpuMsPerRequest)))];
  const rssRoles = [...new Set(xs.flatMap((x) => Object.keys(x.rssMb)))];
  return {
    rate: median(xs.map((x) => x.rate)),
    p50Ms: median(xs.map((x) => x.p50Ms)),
    p99Ms: median(xs.map((x) => x.p99Ms)),
    failed: xs.reduce((n, x) => n + x.failed, 0),
    targetRate: median(xs.map((x) => x.targetRate ?? Number.NaN)),
    cpu: Object.fromEntries(
      roles.map((r) => [r, median(xs.map((x) => x.cpuMsPerRequest[r] ?? Number.NaN))]),
    ),
    rssMax: Object.fromEntries(
      rssRoles.map((r) => [r, Math.max(...xs.map((x) => x.rssMb[r] ?? 0))]),
    ),
  };
}

const f0 = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(0);
const f2 = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(2);
const nameOf = (id: string): string => scenarios.find((s) => s.id === id)?.name ?? id;

function report(fsyncMs: number | undefined, calibration: Record<string, unknown> | undefined) {
  const have = (id: string): boolean => cells.some((c) => c.scenario === id);
  const matrixRows = scenarios.flatMap((s) =>
    levels.map((c) => {
      const m = med(s.id, c, "max");
      const h = med(s.id, c, "half");
      return {
        scenario: s.name,
        c,
        "max ok/s": f0(m?.rate),
        "p50 ms": f2(m?.p50Ms),
        "p99 ms": f2(m?.p99Ms),
        failed: m?.failed ?? "-",
        "half: rate": f0(h?.targetRate),
        "half ok/s": f0(h?.rate),
        "half p50": f2(h?.p50Ms),
        "half p99": f2(h?.p99Ms),
        "half failed": h?.failed ?? "-",
      };
    }),
  );
  console.log(
    `\n== Matrix: ${seconds} s per cell, median of ${rounds} rounds; closed loop, then fixed rate at half of it (latency from scheduled send) ==`,
  );
  console.log(
    `gRPC client: ${ghzBin ? `ghz ${GHZ_VERSION}` : "node (in-process grpc-js)"}; PostgreSQL client: pgbench -M prepared`,
  );
  console.table(matrixRows);

  const pairs: [string, string, string][] = [
    ["Berth hot pool / PostgreSQL one hot row", HOT, PG_HOT],
    ["Berth hot pool / PostgreSQL hot row + INSERT", HOT, PG_INSERT],
    ["Berth 1,000 pools / PostgreSQL 1,000 rows", SPREAD, PG_SPREAD],
    ["Berth on Cassandra / Cassandra LWT one row", C_HOT, LWT],
  ];
  const ratio = (a: string, b: string, c: number): number | undefined => {
    const x = med(a, c, "max")?.rate;
    const y = med(b, c, "max")?.rate;
    return x === undefined || y === undefined || y <= 0 ? undefined : x / y;
  };
  const sideBySide = pairs
    .filter(([, a, b]) => have(a) && have(b))
    .map(([label, a, b]) => ({
      "": label,
      ...Object.fromEntries(
        levels.map((c) => [
          `c=${c}`,
          `${f2(ratio(a, b, c))} (${f0(med(a, c, "max")?.rate)} / ${f0(med(b, c, "max")?.rate)})`,
        ]),
      ),
    }));
  if (sideBySide.length > 0) {
    console.log("\n== Side by side: ratio of closed-loop rates (Berth ok/s / baseline ok/s) ==");
    console.table(sideBySide);
  }
  const halfRows = [
    ...new Set(pairs.filter(([, a, b]) => have(a) && have(b)).flatMap(([, a, b]) => [a, b])),
    ...[ECHO1, ECHO2].filter(have),
  ].map((id) => ({
    scenario: nameOf(id),
    ...Object.fromEntries(
      levels.map((c) => {
        const h = med(id, c, "half");
        return [
          `c=${c} p50 / p99 ms`,
          h ? `${f2(h.p50Ms)} / ${f2(h.p99Ms)} at ${f0(h.targetRate)}/s` : "-",
        ];
      }),
    ),
  }));
  if (halfRows.length > 0) {
    console.log("\n== At half of each one's max rate: p50 / p99 (from scheduled send) ==");
    console.table(halfRows);
  }
  const cpuRows = scenarios.flatMap((s) =>
    levels.map((c) => {
      const m = med(s.id, c, "max");
      const row: Record<string, string | number> = { scenario: s.name, c };
      let servers = 0;
      for (const [k, v] of Object.entries(m?.cpu ?? {})) {
        row[k] = f2(v);
        if (k !== s.client && Number.isFinite(v)) servers += v;
      }
      row["servers total"] = f2(servers);
      return row;
    }),
  );
  console.log(
    "\n== CPU ms per successful request, closed loop (median of rounds; * = owner of bench/hot) ==",
  );
  const cpuColumns = [
    ...new Set(cpuRows.flatMap((r) => Object.keys(r)).filter((k) => k !== "servers total")),
    "servers total",
  ];
  console.table(cpuRows, cpuColumns);
  const rss: Record<string, number> = {};
  for (const cell of cells) {
    if (!cell.scenario.startsWith("berth-") || cell.scenario.includes("cassandra")) continue;
    for (const [k, v] of Object.entries(cell.rssMb)) {
      const role = k === "gateway" ? "gateway" : "worker";
      rss[role] = Math.max(rss[role] ?? 0, v);
    }
  }
  if (Object.keys(rss).length > 0) {
    console.log(
      `\nPeak RSS during the Berth (SQLite) cells: gateway ${f0(rss.gateway)} MB, largest worker ${f0(rss.worker)} MB`,
    );
  }
  if (calibration) {
    console.log("\n== Load generator calibration: closed loop against the same one echo hop ==");
    console.table(
      Object.entries(calibration).map(([gen, v]) => {
        const x = v as { rate: number; p50Ms: number; cpuMsPerRequest: Record<string, number> };
        return {
          generator: gen,
          "ok/s": f0(x.rate),
          "p50 ms": f2(x.p50Ms),
          "client CPU ms/req": f2(x.cpuMsPerRequest[gen]),
          "hop CPU ms/req": f2(x.cpuMsPerRequest.hop),
        };
      }),
    );
  }

  // Goal checks of issue 10.
  const goals: { goal: string; pass: boolean | undefined; detail: string }[] = [];
  const goal = (name: string, pass: boolean | undefined, detail: string): void => {
    goals.push({ goal: name, pass, detail });
  };
  const r64 = ratio(HOT, PG_HOT, 64);
  const r8 = ratio(HOT, PG_HOT, 8);
  if (have(HOT) && have(PG_HOT)) {
    goal(
      "hot pool ≥ 3× PostgreSQL hot row at c=64",
      r64 === undefined ? undefined : r64 >= 3,
      `${f2(r64)}×`,
    );
    goal(
      "hot pool ≥ 1× PostgreSQL hot row at c=8",
      r8 === undefined ? undefined : r8 >= 1,
      `${f2(r8)}×`,
    );
  }
  const hot1 = med(HOT, 1, "max")?.p50Ms;
  const echo1 = med(ECHO2, 1, "max")?.p50Ms;
  if (hot1 !== undefined && echo1 !== undefined && fsyncMs !== undefined) {
    const bound = 2 * (echo1 + fsyncMs);
    goal(
      "single-client p50 ≤ 2 × (two-hop echo p50 + one fsync)",
      hot1 <= bound,
      `${f2(hot1)} ms vs 2 × (${f2(echo1)} + ${f2(fsyncMs)}) = ${f2(bound)} ms`,
    );
  }
  const rs = ratio(SPREAD, PG_SPREAD, 64);
  if (have(SPREAD) && have(PG_SPREAD)) {
    goal(
      "1,000 pools ≥ PostgreSQL 1,000 rows at c=64",
      rs === undefined ? undefined : rs >= 1,
      `${f2(rs)}×`,
    );
  }
  const sp99 = med(SPREAD, 64, "half")?.p99Ms;
  if (sp99 !== undefined) {
    goal(
      "1,000 pools p99 ≤ 10 ms at half of max (c=64)",
      sp99 <= 10,
      `${f2(sp99)} ms at ${f0(med(SPREAD, 64, "half")?.targetRate)} req/s`,
    );
  }
  const rc = ratio(C_HOT, LWT, top);
  if (have(C_HOT) && have(LWT)) {
    goal(
      `Berth on Cassandra ≥ 10× Cassandra LWT one row (c=${top})`,
      rc === undefined ? undefined : rc >= 10,
      `${f2(rc)}×`,
    );
  }
  const spreadCpu = med(SPREAD, top, "max")?.cpu;
  if (spreadCpu) {
    const s = scenarios.find((x) => x.id === SPREAD);
    const berth = Object.entries(spreadCpu)
      .filter(([k]) => k !== s?.client)
      .reduce((n, [, v]) => n + (Number.isFinite(v) ? v : 0), 0);
    goal(
      `CPU per reserve over 1,000 pools ≤ 0.6 ms across Berth processes (c=${top})`,
      berth <= 0.6,
      `${f2(berth)} ms`,
    );
  }
  if (rss.gateway !== undefined)
    goal("gateway RSS under load ≤ 150 MB", rss.gateway <= 150, `${f0(rss.gateway)} MB peak`);
  if (rss.worker !== undefined)
    goal("worker RSS ≤ 200 MB with 1,000 pools", rss.worker <= 200, `${f0(rss.worker)} MB peak`);
  console.log("\n== Goals of issue 10 ==");
  for (const g of goals) {
    console.log(
      `${g.pass === undefined ? "N/A " : g.pass ? "PASS" : "FAIL"}  ${g.goal}: ${g.detail}`,
    );
  }
  for (const [k, v] of Object.entries(skipped)) console.log(`${k} skipped: ${v}`);
  return {
    matrix: matrixRows,
    sideBySide,
    halfRate: halfRows,
    cpuMsPerRequest: cpuRows,
    peakRssMb: rss,
    goals,
  };
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

await main();
