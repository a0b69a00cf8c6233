import assert from "node:assert/strict";
import { test } from "node:test";
import { planShardMapAtStart } from "@berth/operator";
import { internal } from "@berth/proto";
import { drainShardInMap, manualMoves, moveShardInMap, shardsPerMember } from "./shard-map-ops.js";

const members = [0, 1, 2].map((i) => ({ id: `worker-${i}`, address: `127.0.0.1:${50061 + i}` }));

test("every shard is counted once, on its owner", () => {
  const map = planShardMapAtStart({ members, shardCount: 16 });
  const counts = shardsPerMember(map);
  assert.deepEqual([...counts.keys()], ["worker-0", "worker-1", "worker-2"]);
  assert.equal(
    [...counts.values()].reduce((a, b) => a + b),
    16,
  );
});

test("manual moves are the shards off their planned owner, and survive a restart", () => {
  const first = planShardMapAtStart({ members, shardCount: 16 });
  assert.equal(manualMoves(first), 0);
  const to = first.shards[3]?.owner === "worker-0" ? "worker-1" : "worker-0";
  const moved = moveShardInMap(first, 3, to);
  assert.equal(manualMoves(moved), 1);
  assert.equal(manualMoves(planShardMapAtStart({ members, shardCount: 16, previous: moved })), 1);
  const four = [...members, { id: "worker-3", address: "127.0.0.1:50064" }];
  const replanned = planShardMapAtStart({ members: four, shardCount: 16, previous: moved });
  assert.equal(manualMoves(replanned), 0, "other workers: planned afresh");
});

test("moving a shard raises its epoch and the map revision and touches nothing else", () => {
  const map = planShardMapAtStart({ members, shardCount: 8 });
  const from = map.shards[5]?.owner;
  const to = from === "worker-2" ? "worker-0" : "worker-2";
  const next = moveShardInMap(map, 5, to);
  assert.equal(next.revision, map.revision + 1);
  assert.deepEqual(next.shards[5], {
    shard: 5,
    owner: to,
    epoch: 2,
    state: internal.ShardState.SHARD_STATE_ACTIVE,
  });
  assert.deepEqual(
    next.shards.filter((s) => s.shard !== 5),
    map.shards.filter((s) => s.shard !== 5),
  );
  assert.equal(map.shards[5]?.owner, from, "the input map is not modified");
  assert.equal(moveShardInMap(next, 5, to), next, "a move to the current owner changes nothing");
});

test("a hand-off drains the shard at its owner and epoch, then moves it with epoch + 1", () => {
  const map = planShardMapAtStart({ members, shardCount: 8 });
  const owner = map.shards[2]?.owner as string;
  const to = owner === "worker-1" ? "worker-0" : "worker-1";
  const draining = drainShardInMap(map, 2);
  assert.equal(draining.revision, map.revision + 1);
  assert.deepEqual(draining.shards[2], {
    shard: 2,
    owner,
    epoch: 1,
    state: internal.ShardState.SHARD_STATE_DRAINING,
  });
  assert.deepEqual(
    draining.shards.filter((s) => s.shard !== 2),
    map.shards.filter((s) => s.shard !== 2),
  );
  assert.equal(map.shards[2]?.state, internal.ShardState.SHARD_STATE_ACTIVE, "input unchanged");
  const moved = moveShardInMap(draining, 2, to);
  assert.equal(moved.revision, map.revision + 2);
  assert.deepEqual(moved.shards[2], {
    shard: 2,
    owner: to,
    epoch: 2,
    state: internal.ShardState.SHARD_STATE_ACTIVE,
  });
  assert.throws(() => drainShardInMap(map, 8), { name: "ShardMoveError" });
});

test("a move to an unknown worker or shard is rejected", () => {
  const map = planShardMapAtStart({ members, shardCount: 8 });
  assert.throws(() => moveShardInMap(map, 8, "worker-0"), {
    name: "ShardMoveError",
    message: "shard must be an integer from 0 to 7, got 8",
  });
  assert.throws(() => moveShardInMap(map, 1, "worker-9"), {
    name: "ShardMoveError",
    message: 'no worker "worker-9"; members are worker-0, worker-1, worker-2',
  });
});
