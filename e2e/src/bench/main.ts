// `npm run bench`: measures, in one run on this machine,
//   1. the raw grpc-js ceiling: unary echo through two plain hops (client → hop → hop);
//   2. Berth reserve throughput and latency on one hot pool, and spread over 1,000 pools,
//      through the real local cluster (client → gateway → owner worker → journal);
//   3. GetAvailability throughput from the gateway's replica.
// Results are printed as a table and, with --json FILE, written for docs/benchmarks.md.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { startLocalCluster } from "../local/local-cluster.js";
import { EchoClient, echoService } from "./echo-hop.js";
import { type LoadResult, runLoad } from "./load.js";

const { values: args } = parseArgs({
  options: {
    requests: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "64" },
    workers: { type: "string", default: "3" },
    json: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(
    "usage: npm run bench -- [--requests 20000] [--concurrency 64] [--workers 3] [--json out.json]",
  );
  process.exit(0);
}
const total = Number(args.requests);
const concurrency = Number(args.concurrency);
const workers = Number(args.workers);
for (const [name, v] of [
  ["--requests", total],
  ["--concurrency", concurrency],
  ["--workers", workers],
] as const) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`bench: ${name} must be a positive integer`);
    process.exit(2);
  }
}

const progress = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};
const results: Array<{ name: string } & LoadResult> = [];
const record = (name: string, r: LoadResult): void => {
  results.push({ name, ...r });
  progress(
    `${name}: ${r.rate.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ${r.failed} failed`,
  );
  for (const [k, n] of r.failures) progress(`  ${n} × ${k}`);
};

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

async function main(): Promise<void> {
  progress(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${(freemem() / 2 ** 30).toFixed(1)} GiB free, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}, node ${process.version}`,
  );
  progress(`plan: ${total} requests per scenario, ${concurrency} in flight, ${workers} workers`);

  // 1. The ceiling: two raw grpc-js hops.
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
        (e: grpc.ServiceError | null) => (e ? reject(e) : resolve()),
      ),
    );
  progress("warming up the echo hops");
  await runLoad({ total: 2000, concurrency, call: echoOnce });
  record("grpc-js echo, two hops (ceiling)", await runLoad({ total, concurrency, call: echoOnce }));
  echo.close();
  first.child.kill("SIGTERM");
  last.child.kill("SIGTERM");

  // 2. The local cluster with a hot pool and 1,000 spread pools.
  const dir = mkdtempSync(join(tmpdir(), "berth-bench-"));
  const manifest = [
    doc("bench", "hot", 1_000_000_000, { bench: "hot" }),
    ...Array.from({ length: 1000 }, (_, i) =>
      doc("bench", `spread-${i}`, 1_000_000, { bench: "spread", zone: i % 2 ? "north" : "south" }),
    ),
  ].join("---\n");
  const pools = join(dir, "pools.yaml");
  writeFileSync(pools, manifest);
  progress(`starting the local cluster (${workers} workers, data in ${dir})`);
  const cluster = await startLocalCluster({
    port: 0,
    workers,
    dataDir: join(dir, "data"),
    pools: [pools],
  });
  try {
    const client = new v1.CapacityServiceClient(
      cluster.gatewayAddress,
      grpc.credentials.createInsecure(),
    );
    const reserve = (pool: string, requestId: string): Promise<v1.ReserveResponse> =>
      unary(client.reserve.bind(client), { pool, units: 1, requestId });
    progress("warming up the reserve path");
    await runLoad({
      total: 2000,
      concurrency,
      call: (i) => reserve(`bench/spread-${i % 1000}`, `warm-${i}`),
    });
    record(
      "reserve, one hot pool",
      await runLoad({ total, concurrency, call: (i) => reserve("bench/hot", `hot-${i}`) }),
    );
    record(
      "reserve, 1,000 pools",
      await runLoad({
        total,
        concurrency,
        call: (i) => reserve(`bench/spread-${(i * 7919) % 1000}`, `spread-${i}`),
      }),
    );
    record(
      "GetAvailability (zone=north, page of 100)",
      await runLoad({
        total: Math.max(1000, Math.floor(total / 4)),
        concurrency,
        call: () =>
          unary(client.getAvailability.bind(client), {
            labelSelector: "zone=north",
            window: undefined,
            minUnits: 1,
            pageSize: 100,
            pageToken: "",
            includeClosed: false,
          }),
      }),
    );
    client.close();
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const ceiling = results[0]?.rate ?? 0;
  const rows = results.map((r) => ({
    scenario: r.name,
    "req/s": r.rate.toFixed(0),
    "p50 ms": r.p50Ms.toFixed(2),
    "p99 ms": r.p99Ms.toFixed(2),
    failed: r.failed,
    "vs ceiling": ceiling ? `${((100 * r.rate) / ceiling).toFixed(0)}%` : "-",
  }));
  console.table(rows);
  if (args.json) {
    writeFileSync(
      args.json,
      `${JSON.stringify({ at: new Date().toISOString(), total, concurrency, workers, rows }, null, 2)}\n`,
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
