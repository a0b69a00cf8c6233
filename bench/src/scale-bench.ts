// `npm run bench:scale`: memory and background cost at scale. For each pool count
// (default 10,000 and 100,000) it writes that many CapacityPool manifests to a temp
// directory, starts the local cluster on the SQLite journal (which creates the pools),
// and measures, on that first start and again after a full restart (every worker
// recovers every pool from the journal):
//   - time from the start call until the cluster serves (every pool configured);
//   - RSS of the supervisor (this process), the gateway and each worker;
//   - idle CPU of the gateway and each worker over ~10 s (% of one core);
//   - GetAvailability latency p50/p99 for a selector matching one pool and for a
//     zone matching a tenth of the pools (one page of 100);
//   - reserve rate and latency on one hot pool with all the other pools present.
// Progress goes to stderr; the tables go to stdout; --json FILE writes the figures.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CapacityServiceClient } from "@berth/common";
import { type LocalCluster, startLocalCluster } from "@berth/local";
import type { v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { runLoad } from "./load.js";
import { poolManifestYaml, processCpuSeconds, unary } from "./probes.js";

const { values: args } = parseArgs({
  options: {
    pools: { type: "string", default: "10000,100000" },
    workers: { type: "string", default: "3" },
    "idle-seconds": { type: "string", default: "10" },
    "reserve-requests": { type: "string", default: "3000" },
    concurrency: { type: "string", default: "16" },
    "query-calls": { type: "string", default: "200" },
    "ready-timeout-ms": { type: "string" },
    "no-restart": { type: "boolean", default: false },
    "keep-logs": { type: "string" },
    json: { type: "string" },
    help: { type: "boolean", default: false },
  },
});

if (args.help) {
  process.stdout.write(
    `usage: npm run bench:scale -- [--pools 10000,100000] [--workers 3] [--idle-seconds 10]
       [--reserve-requests 3000] [--concurrency 16] [--query-calls 200]
       [--ready-timeout-ms N] [--no-restart] [--keep-logs DIR] [--json FILE]
--keep-logs DIR copies each start's cluster logs to DIR/<pools>-<phase>/ before the
temp directory is removed.\n`,
  );
  process.exit(0);
}

const poolCounts = args.pools.split(",").map((s) => Number(s.trim()));
const workers = Number(args.workers);
const idleSeconds = Number(args["idle-seconds"]);
const reserveRequests = Number(args["reserve-requests"]);
const concurrency = Number(args.concurrency);
const queryCalls = Number(args["query-calls"]);
const readyTimeoutMs =
  args["ready-timeout-ms"] === undefined ? undefined : Number(args["ready-timeout-ms"]);
const ZONES = 10;

const progress = (msg: string): void => {
  process.stderr.write(`[scale ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

/** Figures of one start (first or restart) of one pool count. */
interface StartFigures {
  readonly pools: number;
  readonly phase: "first start" | "restart";
  readonly ok: boolean;
  readonly error?: string;
  readonly startSeconds: number;
  readonly supervisorRssMb: number;
  readonly supervisorPeakRssMb: number;
  readonly gatewayRssMb?: number;
  readonly workerRssMb?: number[];
  readonly gatewayIdleCpuPct?: number;
  readonly workerIdleCpuPct?: number[];
  readonly queryOne?: { p50Ms: number; p99Ms: number };
  readonly queryZone?: { p50Ms: number; p99Ms: number; returned: number };
  readonly hotReserve?: { rate: number; p50Ms: number; p99Ms: number; failed: number };
}

function rssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m === null ? undefined : Number(m[1]) / 1024;
  } catch {
    return undefined;
  }
}

function peakRssMb(): number {
  const status = readFileSync("/proc/self/status", "utf8");
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m === null ? 0 : Number(m[1]) / 1024;
}

function quantiles(ms: number[]): { p50Ms: number; p99Ms: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50Ms: round(at(0.5)), p99Ms: round(at(0.99)) };
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function writeManifests(dir: string, n: number): void {
  // One file per 10,000 pools, as a large install might split them.
  const perFile = 10_000;
  for (let f = 0; f * perFile < n; f++) {
    const docs: string[] = [];
    if (f === 0) docs.push(poolManifestYaml("scale", "hot", 1_000_000_000, { bench: "hot" }));
    for (let i = f * perFile; i < Math.min(n, (f + 1) * perFile); i++) {
      docs.push(poolManifestYaml("scale", `p-${i}`, 1000, { id: `p${i}`, zone: `z${i % ZONES}` }));
    }
    writeFileSync(join(dir, `pools-${String(f).padStart(3, "0")}.yaml`), docs.join("---\n"));
  }
}

async function measure(
  n: number,
  phase: StartFigures["phase"],
  dataDir: string,
  manifestDir: string,
): Promise<StartFigures> {
  const tag = `[${n} pools, ${phase}]`;
  progress(`${tag} starting the local cluster (${workers} workers, SQLite journal)`);
  const t0 = Date.now();
  let cluster: LocalCluster | undefined;
  const ticker = setInterval(
    () =>
      progress(
        `${tag} still starting after ${((Date.now() - t0) / 1000).toFixed(0)} s (supervisor RSS ${rssMb(process.pid)?.toFixed(0)} MB)`,
      ),
    10_000,
  );
  try {
    cluster = await startLocalCluster({
      port: 0,
      workers,
      dataDir,
      pools: [manifestDir],
      journal: "sqlite",
      ...(readyTimeoutMs === undefined ? {} : { readyTimeoutMs }),
    });
  } catch (e: unknown) {
    clearInterval(ticker);
    const error = (e instanceof Error ? e.message : String(e)).split("\n")[0] ?? "";
    progress(`${tag} FAILED after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${error}`);
    return {
      pools: n,
      phase,
      ok: false,
      error,
      startSeconds: round((Date.now() - t0) / 1000, 1),
      supervisorRssMb: round(rssMb(process.pid) ?? 0, 0),
      supervisorPeakRssMb: round(peakRssMb(), 0),
    };
  }
  clearInterval(ticker);
  const c = cluster;
  const startSeconds = round((Date.now() - t0) / 1000, 1);
  progress(`${tag} serving in ${startSeconds} s`);
  try {
    const client = new CapacityServiceClient(c.gatewayAddress, grpc.credentials.createInsecure());
    // Let gossip settle, then measure idle CPU.
    await new Promise((r) => setTimeout(r, 3000));
    const pids = [c.gatewayPid, ...c.workers.map((w) => w.pid)];
    const cpu0 = pids.map((p) => processCpuSeconds(p) ?? 0);
    const w0 = Date.now();
    progress(`${tag} measuring idle CPU for ${idleSeconds} s`);
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const wall = (Date.now() - w0) / 1000;
    const idle = pids.map((p, i) =>
      round((((processCpuSeconds(p) ?? 0) - (cpu0[i] ?? 0)) / wall) * 100, 1),
    );
    const gatewayRssMb = round(rssMb(c.gatewayPid) ?? 0, 0);
    const workerRssMb = c.workers.map((w) => round(rssMb(w.pid) ?? 0, 0));
    progress(
      `${tag} idle CPU gateway ${idle[0]}%, workers ${idle.slice(1).join("/")}%; RSS gateway ${gatewayRssMb} MB, workers ${workerRssMb.join("/")} MB`,
    );

    progress(`${tag} GetAvailability, ${queryCalls} calls per selector`);
    const times = async (req: Partial<v1.GetAvailabilityRequest>) => {
      const ms: number[] = [];
      let returned = 0;
      for (let i = 0; i < queryCalls; i++) {
        const t = process.hrtime.bigint();
        const r = await unary(30_000, client.getAvailability.bind(client), {
          labelSelector: "",
          minUnits: 0,
          pageSize: 0,
          pageToken: "",
          includeClosed: false,
          window: undefined,
          ...req,
        } as v1.GetAvailabilityRequest);
        ms.push(Number(process.hrtime.bigint() - t) / 1e6);
        returned = r.pools.length;
      }
      return { ...quantiles(ms), returned };
    };
    const one = await times({ labelSelector: `id=p${Math.floor(n / 2)}` });
    const zone = await times({ labelSelector: "zone=z3" });
    progress(
      `${tag} one pool p50 ${one.p50Ms} / p99 ${one.p99Ms} ms (${one.returned}); zone p50 ${zone.p50Ms} / p99 ${zone.p99Ms} ms (${zone.returned})`,
    );

    progress(`${tag} hot-pool reserves: ${reserveRequests} at concurrency ${concurrency}`);
    const run = `${phase === "restart" ? "r" : "f"}-${Date.now()}`;
    const hot = await runLoad({
      total: reserveRequests,
      concurrency,
      call: (i) =>
        unary(30_000, client.reserve.bind(client), {
          pool: "scale/hot",
          units: 1,
          requestId: `${run}-${i}`,
        } as v1.ReserveRequest),
    });
    progress(
      `${tag} hot pool ${hot.rate.toFixed(0)} req/s, p50 ${hot.p50Ms.toFixed(1)} / p99 ${hot.p99Ms.toFixed(1)} ms, ${hot.failed} failed`,
    );
    client.close();
    return {
      pools: n,
      phase,
      ok: true,
      startSeconds,
      supervisorRssMb: round(rssMb(process.pid) ?? 0, 0),
      supervisorPeakRssMb: round(peakRssMb(), 0),
      gatewayRssMb,
      workerRssMb,
      gatewayIdleCpuPct: idle[0] ?? 0,
      workerIdleCpuPct: idle.slice(1),
      queryOne: { p50Ms: one.p50Ms, p99Ms: one.p99Ms },
      queryZone: zone,
      hotReserve: {
        rate: Math.round(hot.rate),
        p50Ms: round(hot.p50Ms),
        p99Ms: round(hot.p99Ms),
        failed: hot.failed,
      },
    };
  } finally {
    progress(`${tag} stopping the cluster`);
    await c.stop();
    if (args["keep-logs"] !== undefined) {
      const to = join(args["keep-logs"], `${n}-${phase.replace(" ", "-")}`);
      cpSync(join(dataDir, "logs"), to, { recursive: true });
      progress(`${tag} logs copied to ${to}`);
    }
  }
}

function table(rows: readonly StartFigures[]): string {
  const head = [
    "pools",
    "phase",
    "serving (s)",
    "supervisor RSS / peak (MB)",
    "gateway RSS (MB)",
    "worker RSS (MB)",
    "B/pool (workers, vs. previous count)",
    "idle CPU gw / workers (%)",
    "avail one p50/p99 (ms)",
    "avail zone p50/p99 (ms)",
    "hot reserve (req/s, p50/p99 ms)",
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  const sum = (r: StartFigures) => (r.workerRssMb ?? []).reduce((a, b) => a + b, 0);
  for (const r of rows) {
    const before = rows.find((p) => p.ok && p.phase === r.phase && p.pools < r.pools);
    const perPool =
      before === undefined
        ? "–"
        : String(Math.round(((sum(r) - sum(before)) * 1024 * 1024) / (r.pools - before.pools)));
    const cells = r.ok
      ? [
          r.pools.toLocaleString("en"),
          r.phase,
          String(r.startSeconds),
          `${r.supervisorRssMb} / ${r.supervisorPeakRssMb}`,
          String(r.gatewayRssMb),
          (r.workerRssMb ?? []).join(" / "),
          perPool,
          `${r.gatewayIdleCpuPct} / ${(r.workerIdleCpuPct ?? []).join(" / ")}`,
          `${r.queryOne?.p50Ms} / ${r.queryOne?.p99Ms}`,
          `${r.queryZone?.p50Ms} / ${r.queryZone?.p99Ms}`,
          `${r.hotReserve?.rate} (${r.hotReserve?.p50Ms} / ${r.hotReserve?.p99Ms})`,
        ]
      : [
          r.pools.toLocaleString("en"),
          r.phase,
          `FAILED after ${r.startSeconds}: ${r.error?.slice(0, 120)}`,
          `${r.supervisorRssMb} / ${r.supervisorPeakRssMb}`,
          ...head.slice(4).map(() => "–"),
        ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  progress(
    `machine: ${cpus().length} cores, load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}; pool counts ${poolCounts.join(", ")}`,
  );
  const rows: StartFigures[] = [];
  for (const n of poolCounts) {
    const dir = mkdtempSync(join(tmpdir(), "berth-scale-"));
    try {
      const manifests = join(dir, "manifests");
      const { mkdirSync } = await import("node:fs");
      mkdirSync(manifests);
      writeManifests(manifests, n);
      progress(`[${n} pools] manifests written to ${manifests}`);
      const first = await measure(n, "first start", join(dir, "data"), manifests);
      rows.push(first);
      if (first.ok && !args["no-restart"]) {
        rows.push(await measure(n, "restart", join(dir, "data"), manifests));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  process.stdout.write(
    `\nscale bench, ${workers} workers, SQLite journal; load at end ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}\n${table(rows)}\n`,
  );
  if (args.json !== undefined) writeFileSync(args.json, `${JSON.stringify(rows, null, 2)}\n`);
}

await main();
