// Local mode's pool sync decides what to send with the operator's Configure diff:
// applying unchanged manifests again sends nothing.
import assert from "node:assert/strict";
import { test } from "node:test";
import { internal } from "@berth/proto";
import type { Log } from "./cluster-log.js";
import type { PoolManifest } from "./manifests/index.js";
import { PoolSync, type PoolSyncOptions } from "./pool-sync.js";

const manifest = (pool: string, capacity = 10): PoolManifest => ({
  spec: internal.PoolSpec.fromPartial({ pool, capacity, labels: { zone: "north" } }),
  file: "pools.yaml",
  document: 1,
  line: 1,
});

/** A PoolSync whose Configure calls and log lines are recorded; the owner answers like a worker. */
function harness(files: { current: PoolManifest[] | Error }, over: Partial<PoolSyncOptions> = {}) {
  const sent: string[] = [];
  const lines: string[] = [];
  const versions = new Map<string, number>();
  const log: Log = (level, msg) => lines.push(`${level}: ${msg}`);
  const sync = new PoolSync(
    {
      load: async () => {
        if (files.current instanceof Error) throw files.current;
        return files.current;
      },
      saveCache: async () => undefined,
      configure: async (spec) => {
        sent.push(spec.pool);
        const version = (versions.get(spec.pool) ?? 0) + 1;
        versions.set(spec.pool, version);
        return internal.ConfigureResponse.fromPartial({
          changed: true,
          pool: { pool: spec.pool, version },
        });
      },
      inForce: async () => new Set(),
      concurrency: 4,
      log,
      ...over,
    },
    files.current instanceof Error ? [] : files.current,
  );
  return { sync, sent, lines };
}

test("a second apply of unchanged manifests sends no Configure; an edited one sends one", async () => {
  const files: { current: PoolManifest[] | Error } = {
    current: [manifest("ns/a"), manifest("ns/b"), manifest("ns/c")],
  };
  const { sync, sent, lines } = harness(files);
  await sync.apply(files.current as PoolManifest[], true);
  assert.deepEqual(sent.sort(), ["ns/a", "ns/b", "ns/c"]);
  assert.deepEqual(lines, ["info: configured 3 pools: 3 new"]);

  sent.length = 0;
  lines.length = 0;
  await sync.reload();
  assert.deepEqual(sent, [], "unchanged manifests: no Configure");
  assert.deepEqual(lines, []);

  files.current = [manifest("ns/a"), manifest("ns/b", 11), manifest("ns/c"), manifest("ns/d")];
  await sync.reload();
  assert.deepEqual(sent.sort(), ["ns/b", "ns/d"]);
  assert.deepEqual(lines, ["info: configured 2 pools: 1 new, 1 updated"]);
  assert.deepEqual(sync.pools, ["ns/a", "ns/b", "ns/c", "ns/d"]);

  sent.length = 0;
  lines.length = 0;
  files.current = new Error("bad yaml");
  await sync.reload();
  assert.deepEqual(sent, []);
  assert.deepEqual(lines, [
    "error: manifests changed but are invalid; keeping the pools as they are",
  ]);
});

test("at start, pools their owners report in force are not sent", async () => {
  const list = [manifest("ns/a"), manifest("ns/b")];
  const { sync, sent, lines } = harness(
    { current: list },
    { inForce: async (specs) => new Set(specs.filter((s) => s.pool === "ns/a")) },
  );
  await sync.apply(list, true);
  assert.deepEqual(sent, ["ns/b"]);
  assert.deepEqual(lines, [
    "info: 1 pools already in force on their owners; no Configure sent for them",
    "info: configured 2 pools: 1 new, 1 unchanged",
  ]);
  assert.equal(sync.size, 2);
});

test("a failed Configure is retried at the next apply, and fails the start", async () => {
  const list = [manifest("ns/a"), manifest("ns/b")];
  let fail = true;
  const sent: string[] = [];
  const { sync, lines } = harness(
    { current: list },
    {
      configure: async (spec) => {
        sent.push(spec.pool);
        if (fail && spec.pool === "ns/b") throw new Error("not the owner");
        return internal.ConfigureResponse.fromPartial({
          changed: true,
          pool: { pool: spec.pool, version: 1 },
        });
      },
    },
  );
  await assert.rejects(sync.apply(list, true), {
    message: "1 of 2 pools could not be configured:\n  ns/b: not the owner",
  });
  fail = false;
  sent.length = 0;
  lines.length = 0;
  await sync.apply(list, false);
  assert.deepEqual(sent, ["ns/b"]);
  assert.deepEqual(lines, ["info: configured 1 pool: 1 new"]);
});
