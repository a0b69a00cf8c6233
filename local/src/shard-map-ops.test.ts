import assert from "node:assert/strict";
import { test } from "node:test";
import { internal } from "@berth/proto";
import {
  drainShardInMap,
  majority,
  manualMoves,
  moveShardInMap,
  planLocalShardMap,
  shardsPerMember,
} from "./shard-map-ops.js";

const members = [0, 1, 2].map((i) => ({ id: `worker-${i}`, address: `127.0.0.1:${50061 + i}` }));

test("the local map assigns every shard to one of the workers with a majority quorum", () => {
  const map = planLocalShardMap({ members, shardCount: 16 });
  assert.equal(map.revision, 1);
  assert.equal(map.quorum, 2);
  assert.equal(map.shards.length, 16);
  assert.ok(map.shards.every((s) => s.epoch === 1 && s.owner.startsWith("worker-")));
  assert.equal(
    [...shardsPerMember(map).values()].reduce((a, b) => a + b),
    16,
  );
  assert.deepEqual([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
});

test("a restarted cluster with the same workers keeps the map on disk, manual moves included", () => {
  const first = planLocalShardMap({ members, shardCount: 16 });
  assert.equal(manualMoves(first), 0);
  const to = first.shards[3]?.owner === "worker-0" ? "worker-1" : "worker-0";
  const moved = moveShardInMap(first, 3, to);
  assert.equal(manualMoves(moved), 1);
  const readdressed = members.map((m, i) => ({ ...m, address: `127.0.0.1:${40000 + i}` }));
  const again = planLocalShardMap({ members: readdressed, shardCount: 16, previous: moved });
  assert.equal(again.revision, 3);
  assert.equal(again.shards[3]?.owner, to, "the manual move is kept");
  assert.equal(again.shards[3]?.epoch, 2);
  assert.deepEqual(again.shards, moved.shards);
  assert.deepEqual(again.members, readdressed);
  assert.equal(manualMoves(again), 1);
});

test("a restarted cluster with other workers re-plans, continuing the revision and epochs", () => {
  const first = planLocalShardMap({ members, shardCount: 16 });
  const moved = moveShardInMap(
    first,
    3,
    first.shards[3]?.owner === "worker-0" ? "worker-1" : "worker-0",
  );
  const four = [...members, { id: "worker-3", address: "127.0.0.1:50064" }];
  const again = planLocalShardMap({ members: four, shardCount: 16, previous: moved });
  assert.equal(again.revision, 3);
  assert.equal(manualMoves(again), 0, "planned afresh");
  assert.ok(again.shards.every((s, i) => s.epoch >= (moved.shards[i]?.epoch ?? 0)));
  assert.throws(
    () =>
      planLocalShardMap({
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

test("moving a shard raises its epoch and the map revision and touches nothing else", () => {
  const map = planLocalShardMap({ members, shardCount: 8 });
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
  const map = planLocalShardMap({ members, shardCount: 8 });
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

test("a shard left DRAINING by an interrupted move is ACTIVE again after a restart", () => {
  const map = planLocalShardMap({ members, shardCount: 8 });
  const again = planLocalShardMap({ members, shardCount: 8, previous: drainShardInMap(map, 4) });
  assert.deepEqual(again.shards, map.shards);
});

test("a move to an unknown worker or shard is rejected", () => {
  const map = planLocalShardMap({ members, shardCount: 8 });
  assert.throws(() => moveShardInMap(map, 8, "worker-0"), {
    name: "ShardMoveError",
    message: "shard must be an integer from 0 to 7, got 8",
  });
  assert.throws(() => moveShardInMap(map, 1, "worker-9"), {
    name: "ShardMoveError",
    message: 'no worker "worker-9"; members are worker-0, worker-1, worker-2',
  });
});
