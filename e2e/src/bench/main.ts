// `npm run bench`: measures, in one run on this machine,
//   1. the raw grpc-js ceiling: unary echo through two plain hops (client → hop → hop);
//   2. Berth reserve throughput and latency on one hot pool, and spread over 1,000 pools,
//      through the real local cluster (client → gateway → owner worker → journal);
//   3. GetAvailability throughput from the gateway's replica.
// The echo hops and the cluster run side by side for the whole run, and each round
// measures every scenario in turn with the same client, the same concurrency and the
// same number of requests, so the ceiling and Berth see the same machine. Each
// scenario's reported rate is the median of its rounds. For every scenario it also
// reports the CPU each process used per request (from /proc) and, for reserves, the
// group-commit batch sizes the owner achieved (from its /metrics).
// Results are printed as tables and, with --json FILE, written for docs/benchmarks.md.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { shardOf, v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { type LocalCluster, startLocalCluster } from "../local/local-cluster.js";
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
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(
    "usage: npm run bench -- [--requests 20000] [--concurrency 64] [--workers 3] [--rounds 3] [--warmup N] [--json out.json]\n" +
      "  --requests  requests per scenario and round\n" +
      "  --rounds    rounds of every scenario; the reported rate is the median round\n" +
      "  --warmup    requests per path before the first round (default: max(3000, requests/2))",
  );
  process.exit(0);
}
const total = Number(args.requests);
const concurrency = Number(args.concurrency);
const workers = Number(args.workers);
const rounds = Number(args.rounds);
const warmup = Number(args.warmup ?? Math.max(3000, Math.floor(total / 2)));
for (const [name, v] of [
  ["--requests", total],
  ["--concurrency", concurrency],
  ["--workers", workers],
  ["--rounds", rounds],
  ["--warmup", warmup],
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

async function measure(s: Scenario, round: number): Promise<Measured> {
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
    `round ${round} ${s.name}: ${r.rate.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ${r.failed} failed; CPU ms/req: ${cpu}${
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

async function main(): Promise<void> {
  progress(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${(freemem() / 2 ** 30).toFixed(1)} GiB free, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}, node ${process.version}`,
  );
  progress(
    `plan: ${rounds} rounds × ${total} requests per scenario, ${concurrency} in flight, ${warmup} warm-up requests per path, ${workers} workers`,
  );

  // The ceiling: two raw grpc-js hops.
  const last = await spawnHop();
  const first = await spawnHop(last.address);
  const echo = new EchoClient(first.address, grpc.credentials.createInsecure());
  const payload = Buffer.alloc(64, 7);
  const echoOnce = (): Promise<void> =>
    new Promise((resolve, reject) =>
      echo.makeUnaryRequest(
        echoService.Echo?.path ?? "",
        (b: Buffer) => b,
        (b: Buffer) => b,
        payload,
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (e: grpc.ServiceError | null) => (e ? reject(e) : resolve()),
      ),
    );

  // The local cluster with a hot pool and 1,000 spread pools.
  const dir = mkdtempSync(join(tmpdir(), "berth-bench-"));
  const manifest = [
    doc("bench", "hot", 1_000_000_000, { bench: "hot" }),
    ...Array.from({ length: 1000 }, (_, i) =>
      doc("bench", `spread-${i}`, 1_000_000, {
        bench: "spread",
        zone: i % 2 ? "north" : "south",
      }),
    ),
  ].join("---\n");
  const pools = join(dir, "pools.yaml");
  writeFileSync(pools, manifest);
  progress(`starting the local cluster (${workers} workers, data in ${dir})`);
  let cluster: LocalCluster | undefined;
  try {
    cluster = await startLocalCluster({
      port: 0,
      workers,
      dataDir: join(dir, "data"),
      pools: [pools],
    });
    const c = cluster;
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
    progress(`bench/hot is owned by ${hotOwner.id}`);
    const self: Role = { name: "client", pid: () => process.pid };
    const gateway: Role = { name: "gateway", pid: () => c.gatewayPid };
    const workerRoles: Role[] = c.workers.map((w) => ({
      name: w === hotOwner ? `${w.id} (hot owner)` : w.id,
      pid: () => w.pid,
    }));
    const scenarios: Scenario[] = [
      {
        name: "grpc-js echo, two hops (ceiling)",
        total,
        roles: [
          self,
          { name: "hop 1", pid: () => first.child.pid },
          { name: "hop 2", pid: () => last.child.pid },
        ],
        call: () => echoOnce(),
      },
      {
        name: "reserve, one hot pool",
        total,
        roles: [self, gateway, ...workerRoles],
        owners: [hotOwner.httpAddress],
        call: (i, round) => reserve("bench/hot", `hot-${round}-${i}`),
      },
      {
        name: "reserve, 1,000 pools",
        total,
        roles: [self, gateway, ...workerRoles],
        owners: c.workers.map((w) => w.httpAddress),
        call: (i, round) => reserve(`bench/spread-${(i * 7919) % 1000}`, `spread-${round}-${i}`),
      },
      {
        name: "GetAvailability (zone=north, page of 100)",
        total: Math.max(1000, Math.floor(total / 4)),
        roles: [self, gateway],
        call: () => availability(),
      },
    ];

    progress(`warming up every path (${warmup} requests each)`);
    await runLoad({ total: warmup, concurrency, call: () => echoOnce() });
    await runLoad({ total: warmup, concurrency, call: (i) => reserve("bench/hot", `warm-${i}`) });
    await runLoad({
      total: warmup,
      concurrency,
      call: (i) => reserve(`bench/spread-${i % 1000}`, `warm-${i}`),
    });
    await runLoad({ total: Math.max(1000, warmup / 4), concurrency, call: () => availability() });

    const measured = new Map<string, Measured[]>(scenarios.map((s) => [s.name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const s of scenarios) measured.get(s.name)?.push(await measure(s, round));
    }
    client.close();
    report(scenarios, measured);
  } finally {
    echo.close();
    first.child.kill("SIGTERM");
    last.child.kill("SIGTERM");
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(scenarios: readonly Scenario[], measured: ReadonlyMap<string, Measured[]>): void {
  // The median round of each scenario (by rate) stands for it.
  const chosen = scenarios.map((s) => {
    const runs = [...(measured.get(s.name) ?? [])].sort((a, b) => a.rate - b.rate);
    const mid = runs[Math.floor((runs.length - 1) / 2)] as Measured;
    return { s, runs, mid };
  });
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
  console.table(rows);
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
  console.log("CPU ms per request (median of rounds; * = owner of bench/hot):");
  console.table(cpuRows);
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
  if (batchRows.length > 0) {
    console.log("Group commit on the owners (median round):");
    console.table(batchRows);
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
          rows,
          cpuMsPerRequest: cpuRows,
          groupCommit: batchRows,
        },
        null,
        2,
      )}\n`,
    );
  }
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
