// The supervisor learns nothing from its children's logs: with every child logging
// errors only, a local cluster still starts, hands a shard off (drained first, as the
// worker reports on WatchShards), and follows a crashed worker back. No assertion is
// about time.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { CapacityServiceClient } from "@berth/common";
import { shardOf, type v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { type LocalCluster, REPO_ROOT, startLocalCluster } from "./local-cluster.js";

const SHARDS = 16;
const POOL = "delivery/north-2030-06-04-morning";
const dataDir = mkdtempSync(join(tmpdir(), "berth-quiet-"));
const supervisorLines: string[] = [];
let cluster: LocalCluster;
let client: CapacityServiceClient;

/** The `event` of a JSON log line (what tests key on; messages may be reworded), if any. */
function eventOf(line: string): unknown {
  try {
    return (JSON.parse(line) as { event?: unknown }).event;
  } catch {
    return undefined;
  }
}

before(async () => {
  cluster = await startLocalCluster({
    port: 0,
    workers: 2,
    shards: SHARDS,
    dataDir,
    pools: [resolve(REPO_ROOT, "examples/pools.yaml")],
    env: { BERTH_LOG_LEVEL: "error" },
    logFormat: "json",
    logOutput: (line) => supervisorLines.push(line),
    restartBackoff: { initialMs: 200, maxMs: 1000 },
  });
  client = new CapacityServiceClient(cluster.gatewayAddress, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await cluster?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

function getPool(pool: string): Promise<v1.Pool> {
  return new Promise((resolvePool, reject) => {
    client.getPool(
      { pool },
      new grpc.Metadata(),
      { deadline: Date.now() + 30_000 },
      (e: grpc.ServiceError | null, r: v1.GetPoolResponse) =>
        e ? reject(e) : r.pool ? resolvePool(r.pool) : reject(new Error("no pool in the answer")),
    );
  });
}

/** The lines a process wrote to its log file (none: there is no file). */
function logOf(name: string): string[] {
  const file = join(dataDir, "logs", `${name}.log`);
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}

test("children that log errors only still start: nothing they print is needed", () => {
  for (const name of ["gateway", "worker-0", "worker-1"]) {
    const lines = logOf(name);
    assert.ok(
      lines.every((l) => !l.includes('"level":"info"')),
      `${name} logged at info:\n${lines.join("\n")}`,
    );
  }
  assert.ok(
    supervisorLines.some((l) => eventOf(l) === "local.pools_configured"),
    "the pools were configured",
  );
});

test("a shard is drained on its owner, then moved and served, with the workers silent", async () => {
  const shard = shardOf(POOL, SHARDS);
  const before = await getPool(POOL);
  const from = before.owner;
  const to = from === "worker-0" ? "worker-1" : "worker-0";

  const move = await cluster.moveShard(shard, to);
  assert.deepEqual(
    { shard: move.shard, from: move.from, to: move.to, epoch: move.epoch, changed: move.changed },
    { shard, from, to, epoch: before.epoch + 1, changed: true },
  );
  assert.ok(
    supervisorLines.some((l) => {
      const j = JSON.parse(l) as { event?: string; shard?: number; from?: string; to?: string };
      return (
        j.event === "local.draining_shard" && j.shard === shard && j.from === from && j.to === to
      );
    }),
  );
  assert.ok(
    !supervisorLines.some((l) => eventOf(l) === "local.drain_timeout"),
    "the owner reported the shard drained",
  );
  const after = await getPool(POOL);
  assert.deepEqual({ owner: after.owner, epoch: after.epoch }, { owner: to, epoch: move.epoch });
});

test("a worker killed with SIGKILL is seen back, and a shard moves to it again", async () => {
  const shard = shardOf(POOL, SHARDS);
  const owner = (await getPool(POOL)).owner;
  const other = owner === "worker-0" ? "worker-1" : "worker-0";
  cluster.killWorker(other, "SIGKILL");
  await cluster.waitForWorkerRestart(other);

  const move = await cluster.moveShard(shard, other);
  assert.equal(move.changed, true);
  assert.equal((await getPool(POOL)).owner, other);
});
