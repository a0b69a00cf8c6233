import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { CapacityServiceClient, parseRichStatus, readAddressFile } from "@berth/common";
import { shardOf, type v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { type LocalCluster, REPO_ROOT, startLocalCluster } from "./local-cluster.js";
import { loadPoolManifests, type PoolManifest } from "./manifests/index.js";

const dataDir = mkdtempSync(join(tmpdir(), "berth-local-"));
// A copy of the examples, so a test can edit it and see the change applied.
const POOLS = join(dataDir, "pools.yaml");
copyFileSync(resolve(REPO_ROOT, "examples/pools.yaml"), POOLS);
let cluster: LocalCluster;
let client: CapacityServiceClient;
let manifests: PoolManifest[];
const childPids: number[] = [];

before(async () => {
  manifests = await loadPoolManifests([POOLS]);
  cluster = await startLocalCluster({
    port: 0,
    workers: 3,
    dataDir,
    pools: [POOLS],
    restartBackoff: { initialMs: 200, maxMs: 1000 },
    stopTimeoutMs: 5000,
    watch: true,
  });
  client = new CapacityServiceClient(cluster.gatewayAddress, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await cluster?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

function call<Req, Res>(
  method: (
    req: Req,
    md: grpc.Metadata,
    opts: Partial<grpc.CallOptions>,
    cb: (e: grpc.ServiceError | null, r: Res) => void,
  ) => grpc.ClientUnaryCall,
  request: Req,
): Promise<Res> {
  return new Promise((res, rej) => {
    method.call(client, request, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (e, r) =>
      e ? rej(e) : res(r),
    );
  });
}
const getPool = (pool: string) =>
  call<v1.GetPoolRequest, v1.GetPoolResponse>(client.getPool, { pool }).then((r) => {
    assert.ok(r.pool, "GetPool answered a pool");
    return r.pool;
  });
const reserve = (pool: string, units: number, requestId: string) =>
  call<v1.ReserveRequest, v1.ReserveResponse>(client.reserve, { pool, units, requestId });

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", resolve(REPO_ROOT, "cli/src/main.ts"), ...args],
    { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((res) => child.on("close", (code) => res({ code, stdout, stderr })));
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("every pool of the manifests is configured and served by its owner", async () => {
  assert.equal(cluster.pools.length, manifests.length);
  const map = cluster.shardMap();
  for (const m of manifests) {
    const pool = await getPool(m.spec.pool);
    assert.equal(pool.capacity, m.spec.capacity, m.spec.pool);
    assert.equal(pool.closed, m.spec.closed, m.spec.pool);
    assert.deepEqual(pool.labels, m.spec.labels, m.spec.pool);
    const shard = shardOf(m.spec.pool, map.shardCount);
    assert.equal(pool.shard, shard);
    assert.equal(pool.owner, map.shards[shard]?.owner);
  }
  for (const w of cluster.workers) childPids.push(w.pid as number);
  childPids.push(cluster.gatewayPid as number);
  assert.ok(childPids.every((pid) => Number.isSafeInteger(pid) && alive(pid)));
});

test("the CLI reserves, shows pools and reports errors with status, reason and exit code", async () => {
  const pool = "delivery/north-2030-06-04-morning";
  const r = await cli(["--address", cluster.gatewayAddress, "--json", "reserve", pool, "3"]);
  assert.equal(r.code, 0, r.stderr);
  const answer = JSON.parse(r.stdout) as {
    reservationId: string;
    units: number;
    requestId: string;
  };
  assert.equal(answer.units, 3);
  assert.match(answer.requestId, /^[0-9a-f-]{36}$/, "a request id was generated and printed");
  assert.ok(answer.reservationId.length > 0);

  const shown = await cli(["pool", pool, "--address", cluster.gatewayAddress]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /^reserved +3$/m);

  const tooMany = await cli(["--address", cluster.gatewayAddress, "reserve", pool, "1000"]);
  assert.equal(tooMany.code, 1);
  assert.match(tooMany.stderr, /^error: FAILED_PRECONDITION: .*\[reason INSUFFICIENT_CAPACITY/);

  const missing = await cli(["--address", cluster.gatewayAddress, "pool", "default/nope"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: NOT_FOUND: .*reason POOL_NOT_FOUND/);

  const usage = await cli(["reserve", pool]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^berth: "reserve" needs <pool> <units>/);
});

test("availability lists the pools from the gateway's replica", async () => {
  await eventually("the north zone's open pools are listed", async () => {
    const r = await cli([
      "--address",
      cluster.gatewayAddress,
      "--json",
      "availability",
      "-l",
      "zone=north",
      "--all-pages",
    ]);
    if (r.code !== 0) return false;
    const pools = (JSON.parse(r.stdout) as { pools: { pool: string }[] }).pools.map((p) => p.pool);
    const expected = manifests
      .filter((m) => m.spec.labels.zone === "north" && !m.spec.closed)
      .map((m) => m.spec.pool)
      .sort();
    return JSON.stringify(pools) === JSON.stringify(expected);
  });
});

test("a worker killed with SIGKILL is restarted and recovers its reservations", async () => {
  const pool = "riverside-hall/winter-quartet-2030-06-08-stalls";
  const first = await reserve(pool, 4, "crash-1");
  const owner = (await getPool(pool)).owner;
  const worker = cluster.workers.find((w) => w.id === owner);
  assert.ok(worker, `owner ${owner} is a worker`);
  const oldPid = worker.pid as number;

  cluster.killWorker(owner, "SIGKILL");
  const newPid = await cluster.waitForWorkerRestart(owner);
  assert.notEqual(newPid, oldPid);
  assert.equal(worker.pid, newPid);
  assert.ok(worker.restarts >= 1);
  assert.ok(!alive(oldPid));
  childPids.push(newPid);
  // With port 0 it was given the ports it reported the first time: the ShardMap's
  // address for it stays right.
  const reported = await readAddressFile(join(dataDir, "run", `${owner}.addresses.json`));
  assert.equal(reported?.pid, newPid);
  assert.equal(reported?.addresses.grpc, worker.grpcAddress);
  assert.equal(cluster.shardMap().members.find((m) => m.id === owner)?.address, worker.grpcAddress);

  const after = await getPool(pool);
  assert.equal(after.reserved, 4);
  assert.equal(after.activeReservations, 1);
  const replay = await reserve(pool, 4, "crash-1");
  assert.equal(replay.replayed, true);
  assert.equal(replay.reservationId, first.reservationId);
  assert.equal((await getPool(pool)).reserved, 4, "the replay reserved nothing more");
});

test("a shard moved to another worker keeps serving its pools with their reservations", async () => {
  const pool = "shop/kettle-1l-steel";
  const reservation = await reserve(pool, 10, "move-1");
  const before = await getPool(pool);
  const to = cluster.workers.map((w) => w.id).find((id) => id !== before.owner) as string;

  const move = await cluster.moveShard(before.shard, to);
  assert.deepEqual(move, {
    shard: before.shard,
    from: before.owner,
    to,
    epoch: before.epoch + 1,
    revision: move.revision,
    changed: true,
  });
  assert.equal(cluster.shardMap().shards[before.shard]?.owner, to);

  const moved = await getPool(pool);
  assert.equal(moved.owner, to);
  assert.equal(moved.epoch, before.epoch + 1);
  assert.equal(moved.reserved, 10);
  const more = await reserve(pool, 5, "move-2");
  assert.notEqual(more.reservationId, reservation.reservationId);
  assert.equal((await getPool(pool)).reserved, 15);

  // The control endpoint moves it back.
  const res = await fetch(
    `http://${cluster.controlAddress}/shards/${before.shard}/move?to=${before.owner}`,
    { method: "POST" },
  );
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { epoch: number }).epoch, before.epoch + 2);
  assert.equal((await getPool(pool)).owner, before.owner);
  const bad = await fetch(
    `http://${cluster.controlAddress}/shards/${before.shard}/move?to=worker-9`,
    {
      method: "POST",
    },
  );
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /^no worker "worker-9"/);
});

test("an edited manifest is applied while the cluster runs", async () => {
  const pool = "riverside-hall/winter-quartet-2030-06-08-balcony";
  assert.equal((await getPool(pool)).capacity, 40);
  const text = readFileSync(POOLS, "utf8");
  const edited = text.replace(
    /(name: winter-quartet-2030-06-08-balcony[\s\S]*?capacity: )40/,
    "$148",
  );
  assert.notEqual(edited, text);
  writeFileSync(POOLS, edited);
  await eventually(
    "the new capacity is in force",
    async () => (await getPool(pool)).capacity === 48,
  );
});

test("an unknown pool is NOT_FOUND with reason POOL_NOT_FOUND", async () => {
  await assert.rejects(getPool("default/does-not-exist"), (e: unknown) => {
    const s = parseRichStatus(e);
    assert.equal(s.code, grpc.status.NOT_FOUND);
    assert.equal(s.reason, "POOL_NOT_FOUND");
    return true;
  });
});

test("stop ends every child process", async () => {
  const pids = [...childPids, ...cluster.workers.map((w) => w.pid as number)];
  await cluster.stop();
  for (const pid of pids) assert.ok(!alive(pid), `pid ${pid} is gone`);
  assert.ok(cluster.workers.every((w) => w.pid === undefined));
  await cluster.stop(); // idempotent
});
