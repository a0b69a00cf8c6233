import assert from "node:assert/strict";
import { test } from "node:test";
import { assignOwners, internal } from "@berth/proto";
import { planShardMapAtStart } from "./start-shard-map.js";

const { ShardState } = internal;
const members = [0, 1, 2].map((i) => ({ id: `worker-${i}`, address: `127.0.0.1:${50061 + i}` }));

/** `map` with one shard edited, at the next revision (what a manual move or drain publishes). */
function edit(
  map: internal.ShardMap,
  shard: number,
  change: Partial<internal.ShardAssignment>,
): internal.ShardMap {
  return {
    ...map,
    revision: map.revision + 1,
    shards: map.shards.map((s) => (s.shard === shard ? { ...s, ...change } : s)),
  };
}

/** Shards not on the owner rendezvous hashing gives them among the map's members. */
function offPlan(map: internal.ShardMap): number {
  const planned = assignOwners(
    map.members.map((m) => m.id),
    map.shardCount,
  );
  return map.shards.filter((s) => s.owner !== planned[s.shard]).length;
}

test("the first map assigns every shard to one of the members with a majority quorum", () => {
  const map = planShardMapAtStart({ members, shardCount: 16 });
  assert.equal(map.revision, 1);
  assert.equal(map.quorum, 2);
  assert.equal(map.shards.length, 16);
  assert.ok(map.shards.every((s) => s.epoch === 1 && s.owner.startsWith("worker-")));
  assert.equal(offPlan(map), 0);
});

test("a restarted cluster with the same members keeps the previous map, manual moves included", () => {
  const first = planShardMapAtStart({ members, shardCount: 16 });
  const to = first.shards[3]?.owner === "worker-0" ? "worker-1" : "worker-0";
  const moved = edit(first, 3, { owner: to, epoch: 2 });
  const readdressed = members.map((m, i) => ({ ...m, address: `127.0.0.1:${40000 + i}` }));
  const again = planShardMapAtStart({ members: readdressed, shardCount: 16, previous: moved });
  assert.equal(again.revision, 3);
  assert.equal(again.shards[3]?.owner, to, "the manual move is kept");
  assert.equal(again.shards[3]?.epoch, 2);
  assert.deepEqual(again.shards, moved.shards);
  assert.deepEqual(again.members, readdressed);
  assert.equal(offPlan(again), 1);
});

test("a restarted cluster with other members re-plans, continuing the revision and epochs", () => {
  const first = planShardMapAtStart({ members, shardCount: 16 });
  const to = first.shards[3]?.owner === "worker-0" ? "worker-1" : "worker-0";
  const moved = edit(first, 3, { owner: to, epoch: 2 });
  const four = [...members, { id: "worker-3", address: "127.0.0.1:50064" }];
  const again = planShardMapAtStart({ members: four, shardCount: 16, previous: moved });
  assert.equal(again.revision, 3);
  assert.equal(again.quorum, 3);
  assert.equal(offPlan(again), 0, "planned afresh");
  assert.ok(again.shards.every((s, i) => s.epoch >= (moved.shards[i]?.epoch ?? 0)));
  assert.throws(
    () =>
      planShardMapAtStart({
        members,
        shardCount: 32,
        previous: moved,
        previousPath: "d/shard-map.json",
      }),
    {
      name: "ShardCountMismatchError",
      message:
        "d/shard-map.json was written for 16 shards, but 32 were asked for: the shard count is fixed when a data directory is first used (use --shards 16, or another --data-dir)",
    },
  );
});

test("a shard left DRAINING by an interrupted move is ACTIVE again after a restart", () => {
  const map = planShardMapAtStart({ members, shardCount: 8 });
  const draining = edit(map, 4, { state: ShardState.SHARD_STATE_DRAINING });
  const again = planShardMapAtStart({ members, shardCount: 8, previous: draining });
  assert.deepEqual(again.shards, map.shards);
});
