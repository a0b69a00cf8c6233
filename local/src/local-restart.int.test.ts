// A restart on the same data directory configures only what changed: the workers'
// spec digests say which shards already hold their manifests' specs, and a manifest
// edited while the cluster was down is applied.

import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, test } from "node:test";
import { CapacityServiceClient } from "@berth/common";
import { shardOf } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { type LocalCluster, REPO_ROOT, startLocalCluster } from "./local-cluster.js";
import { loadPoolManifests } from "./manifests/index.js";

const root = mkdtempSync(join(tmpdir(), "berth-restart-"));
const dataDir = join(root, "data");
const POOLS = join(root, "pools.yaml");
copyFileSync(resolve(REPO_ROOT, "examples/pools.yaml"), POOLS);
const SHARDS = 16;
let cluster: LocalCluster | undefined;

after(async () => {
  await cluster?.stop();
  rmSync(root, { recursive: true, force: true });
});

async function start(): Promise<{ c: LocalCluster; lines: string[] }> {
  const lines: string[] = [];
  const c = await startLocalCluster({
    port: 0,
    workers: 2,
    shards: SHARDS,
    dataDir,
    pools: [POOLS],
    logFormat: "json",
    logOutput: (l) => lines.push(l),
  });
  cluster = c;
  return { c, lines };
}

async function stop(): Promise<void> {
  await cluster?.stop();
  cluster = undefined;
}

function capacityOf(c: LocalCluster, pool: string): Promise<number> {
  const client = new CapacityServiceClient(c.gatewayAddress, grpc.credentials.createInsecure());
  return new Promise<number>((res, rej) => {
    client.getPool({ pool }, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (e, r) => {
      client.close();
      if (e) rej(e);
      else res(r.pool?.capacity ?? -1);
    });
  });
}

test("a restart sends no Configure for shards whose specs are in force, and applies a manifest edited while down", async () => {
  const manifests = await loadPoolManifests([POOLS]);
  const total = manifests.length;
  const pool = "riverside-hall/winter-quartet-2030-06-08-balcony";
  const shard = shardOf(pool, SHARDS);
  const inShard = manifests.filter((m) => shardOf(m.spec.pool, SHARDS) === shard).length;

  const first = await start();
  assert.equal(await capacityOf(first.c, pool), 40);
  assert.ok(first.lines.some((l) => l.includes(`configured ${total} pools: ${total} new`)));
  await stop();

  // Nothing changed: every pool is in force, and no Configure is sent.
  const same = await start();
  const sameText = same.lines;
  assert.ok(
    sameText.some((l) => l.includes(`${total} pools already in force on their owners`)),
    sameText.join("\n"),
  );
  assert.ok(sameText.some((l) => l.includes(`configured ${total} pools: ${total} unchanged`)));
  await stop();

  // One capacity edited while the cluster is down: only its shard is configured.
  const text = readFileSync(POOLS, "utf8");
  const edited = text.replace(
    /(name: winter-quartet-2030-06-08-balcony[\s\S]*?capacity: )40/,
    "$148",
  );
  assert.notEqual(edited, text);
  writeFileSync(POOLS, edited);
  const changed = await start();
  assert.equal(await capacityOf(changed.c, pool), 48);
  const changedText = changed.lines;
  assert.ok(
    changedText.some((l) =>
      l.includes(`${total - inShard} pools already in force on their owners`),
    ),
    changedText.join("\n"),
  );
  assert.ok(
    changedText.some((l) =>
      l.includes(`configured ${total} pools: 1 updated, ${total - 1} unchanged`),
    ),
    changedText.join("\n"),
  );
  await stop();
});
