import assert from "node:assert/strict";
import { test } from "node:test";
import { planShardMap } from "./assignment.js";
import type { ShardMap } from "./gen/berth/internal/v1/worker.js";
import { StaticShardMapSource, shardMapProblem } from "./shard-map-source.js";

const members = [
  { id: "worker-0", address: "127.0.0.1:50061" },
  { id: "worker-1", address: "127.0.0.1:50062" },
];
const mapAt = (revision: number): ShardMap => ({
  ...planShardMap({ members, shardCount: 8, quorum: 1 }),
  revision,
});

test("a static source starts with its initial map and publishes only higher revisions", () => {
  const source = new StaticShardMapSource(mapAt(2));
  const seen: number[] = [];
  source.subscribe((m) => seen.push(m.revision));
  assert.equal(source.current()?.revision, 2);
  assert.equal(source.set(mapAt(1)), false);
  assert.equal(source.set(mapAt(2)), false);
  assert.equal(source.set(mapAt(3)), true);
  assert.equal(source.current()?.revision, 3);
  assert.deepEqual(seen, [3]);
});

test("a static source without a map accepts any first map", () => {
  const source = new StaticShardMapSource();
  assert.equal(source.current(), undefined);
  assert.equal(source.set(mapAt(7)), true);
  assert.equal(source.current()?.revision, 7);
});

test("unsubscribing and closing stop notifications", () => {
  const source = new StaticShardMapSource();
  const a: number[] = [];
  const b: number[] = [];
  const offA = source.subscribe((m) => a.push(m.revision));
  source.subscribe((m) => b.push(m.revision));
  source.set(mapAt(1));
  offA();
  source.set(mapAt(2));
  source.close();
  source.set(mapAt(3));
  assert.deepEqual(a, [1]);
  assert.deepEqual(b, [1, 2]);
});

test("a listener that throws surfaces to the caller of set", () => {
  const source = new StaticShardMapSource();
  source.subscribe(() => {
    throw new Error("listener bug");
  });
  assert.throws(() => source.set(mapAt(1)), { message: "listener bug" });
});

test("a planned map has no problem", () => {
  assert.equal(shardMapProblem(mapAt(1)), undefined);
});

test("shardMapProblem explains what is wrong with a map", () => {
  const good = mapAt(1);
  const cases: [ShardMap, string][] = [
    [{ ...good, revision: 0 }, "revision must be a positive integer, got 0"],
    [{ ...good, shardCount: 0, shards: [] }, "shard count must be a positive integer, got 0"],
    [{ ...good, shards: good.shards.slice(1) }, "map lists 7 shards; its shard count is 8"],
    [
      { ...good, shards: good.shards.map((s, i) => (i === 3 ? { ...s, shard: 4 } : s)) },
      "entry 3 is for shard 4",
    ],
    [
      { ...good, shards: good.shards.map((s, i) => (i === 2 ? { ...s, owner: "ghost" } : s)) },
      'shard 2 is owned by "ghost", who is not a member',
    ],
    [
      { ...good, shards: good.shards.map((s, i) => (i === 5 ? { ...s, epoch: 0 } : s)) },
      "shard 5 has epoch 0",
    ],
  ];
  for (const [map, message] of cases) assert.equal(shardMapProblem(map), message);
});
