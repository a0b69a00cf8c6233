// The `berth` CLI against real servers on loopback — what the chart's `helm test` pod
// runs: `berth health` (grpc.health.v1 Check) and one reserve/release, with their exit
// codes and --json output. A gateway in front of one worker (SQLite journal), in this
// process; the health exit codes also through the real `berth` process.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type RunningGateway, startGateway } from "@berth/gateway";
import { internal, planShardMap, StaticShardMapSource } from "@berth/proto";
import { openJournal, type RunningWorker, startWorker } from "@berth/worker";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { pino } from "pino";
import { EXIT_OK, EXIT_RPC_ERROR, runCli } from "./run.js";

const silent = pino({ level: "silent" });
const dir = mkdtempSync(join(tmpdir(), "berth-cli-"));
const maps = new StaticShardMapSource();
const pool = "default/helm-test";
const cliMain = fileURLToPath(new URL("./main.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
let journal: Awaited<ReturnType<typeof openJournal>>;
let worker: RunningWorker;
let gateway: RunningGateway;
let notServing: grpc.Server;
let notServingAddress: string;

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env: {},
  });
  return { code, stdout, stderr };
}

before(async () => {
  journal = await openJournal(`sqlite://${join(dir, "journal.db")}`);
  worker = await startWorker({
    id: "worker-0",
    grpc: "127.0.0.1:0",
    journal,
    shardMapSource: maps,
    logger: silent,
  });
  maps.set(
    planShardMap({
      members: [{ id: "worker-0", address: worker.address }],
      shardCount: 4,
      quorum: 1,
    }),
  );
  await worker.whenReady();
  gateway = await startGateway({
    grpc: "127.0.0.1:0",
    gossip: "127.0.0.1:0",
    http: "127.0.0.1:0",
    shardMapSource: maps,
    logger: silent,
  });
  await gateway.router.call(
    "configure",
    pool,
    internal.PoolSpec.fromPartial({ pool, capacity: 3, generation: 1 }),
    Date.now() + 10_000,
  );
  notServing = new grpc.Server();
  new HealthImplementation({ "": "NOT_SERVING" }).addToServer(notServing);
  const port = await new Promise<number>((resolve, reject) =>
    notServing.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  notServingAddress = `127.0.0.1:${port}`;
});

after(async () => {
  notServing?.forceShutdown();
  await gateway?.close();
  await worker?.close();
  await journal?.close();
  maps.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("berth health", () => {
  test("a SERVING gateway exits 0, for the server and for CapacityService, with --json", async () => {
    const plain = await cli(["health", "--address", gateway.grpcAddress]);
    assert.equal(plain.code, EXIT_OK, plain.stderr);
    assert.match(plain.stdout, /status +SERVING/);
    const json = await cli([
      "health",
      "--address",
      gateway.grpcAddress,
      "--service",
      "berth.v1.CapacityService",
      "--json",
    ]);
    assert.equal(json.code, EXIT_OK, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), {
      service: "berth.v1.CapacityService",
      status: "SERVING",
    });
  });

  test("NOT_SERVING exits 1 and says so", async () => {
    const r = await cli(["health", "--address", notServingAddress, "--json"]);
    assert.equal(r.code, EXIT_RPC_ERROR);
    assert.deepEqual(JSON.parse(r.stdout), { service: "", status: "NOT_SERVING" });
  });

  test("a service the server does not know exits 1 with NOT_FOUND", async () => {
    const r = await cli([
      "health",
      "--address",
      gateway.grpcAddress,
      "--service",
      "nope.Service",
      "--json",
    ]);
    assert.equal(r.code, EXIT_RPC_ERROR);
    assert.equal((JSON.parse(r.stderr) as { error: { status: string } }).error.status, "NOT_FOUND");
  });

  test("nobody listening exits 1 with UNAVAILABLE", async () => {
    const r = await cli(["health", "--address", "127.0.0.1:1", "--timeout", "2s"]);
    assert.equal(r.code, EXIT_RPC_ERROR);
    assert.match(r.stderr, /UNAVAILABLE/);
  });

  test("the berth process exits 0 for SERVING and 1 for NOT_SERVING", async () => {
    const exitOf = (address: string) =>
      new Promise<number | null>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          ["--import", "tsx", cliMain, "health", "--address", address],
          { cwd: repoRoot, stdio: "ignore" },
        );
        child.once("error", reject);
        child.once("exit", (code) => resolve(code));
      });
    assert.equal(await exitOf(gateway.grpcAddress), 0);
    assert.equal(await exitOf(notServingAddress), 1);
  });

  test("--service belongs to health only", async () => {
    const r = await cli(["pool", pool, "--service", "x"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--service does not apply to "pool"/);
  });
});

describe("reserve and release, as the helm test makes them", () => {
  test("reserve --json exits 0 with the reservation; release --json exits 0, and again says already", async () => {
    const reserved = await cli([
      "reserve",
      pool,
      "1",
      "--request-id",
      "helm-test-1",
      "--address",
      gateway.grpcAddress,
      "--json",
    ]);
    assert.equal(reserved.code, EXIT_OK, reserved.stderr);
    const r = JSON.parse(reserved.stdout) as Record<string, unknown>;
    assert.equal(r.pool, pool);
    assert.equal(r.units, 1);
    assert.equal(r.requestId, "helm-test-1");
    assert.equal(typeof r.reservationId, "string");
    const release = (): Promise<{ code: number; stdout: string; stderr: string }> =>
      cli(["release", String(r.reservationId), "--address", gateway.grpcAddress, "--json"]);
    const first = await release();
    assert.equal(first.code, EXIT_OK, first.stderr);
    assert.equal((JSON.parse(first.stdout) as { alreadyReleased: boolean }).alreadyReleased, false);
    const second = await release();
    assert.equal(second.code, EXIT_OK, second.stderr);
    assert.equal((JSON.parse(second.stdout) as { alreadyReleased: boolean }).alreadyReleased, true);
  });

  test("a reserve the pool cannot hold exits 1 with INSUFFICIENT_CAPACITY in the JSON error", async () => {
    const r = await cli(["reserve", pool, "10", "--address", gateway.grpcAddress, "--json"]);
    assert.equal(r.code, EXIT_RPC_ERROR);
    const { error } = JSON.parse(r.stderr) as { error: { status: string; reason: string } };
    assert.equal(error.status, "FAILED_PRECONDITION");
    assert.equal(error.reason, "INSUFFICIENT_CAPACITY");
  });
});
