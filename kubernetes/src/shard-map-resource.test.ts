import assert from "node:assert/strict";
import { test } from "node:test";
import { internal, planShardMap } from "@berth/proto";
import fc from "fast-check";
import { API_VERSION } from "./api/v1alpha1/group-version.js";
import {
  SHARD_MAP_KIND,
  type ShardMapObject,
  type ShardMapStatus,
} from "./api/v1alpha1/shard-map.js";
import { shardMapOfResource, shardMapStatusOf } from "./shard-map-resource.js";

const { ShardState } = internal;

const member = (id: string) => ({ id, address: `${id}.workers:7000` });

/** Four shards over two members: one of each state, epochs 3, 2, 1, 5. */
const sample: internal.ShardMap = {
  revision: 12,
  shardCount: 4,
  quorum: 2,
  members: [member("worker-0"), member("worker-1")],
  shards: [
    { shard: 0, owner: "worker-0", epoch: 3, state: ShardState.SHARD_STATE_ACTIVE },
    { shard: 1, owner: "worker-1", epoch: 2, state: ShardState.SHARD_STATE_DRAINING },
    { shard: 2, owner: "", epoch: 1, state: ShardState.SHARD_STATE_UNASSIGNED },
    { shard: 3, owner: "worker-1", epoch: 5, state: ShardState.SHARD_STATE_ACTIVE },
  ],
};

const resource = (status: ShardMapStatus | undefined, shardCount = 4): ShardMapObject => ({
  apiVersion: API_VERSION,
  kind: SHARD_MAP_KIND,
  metadata: { name: "berth", namespace: "berth-system" },
  spec: { shardCount },
  ...(status === undefined ? {} : { status }),
});

const reason = (object: ShardMapObject): string => {
  const read = shardMapOfResource(object);
  assert.equal(read.ok, false, "expected the object to be refused");
  return read.ok ? "" : read.reason;
};

test("the status lists members with live flags and shards with CamelCase states, and counts them", () => {
  const condition = {
    type: "QuorumLost",
    status: "False",
    reason: "QuorumMet",
    message: "1 of 2 workers live; quorum 2",
    lastTransitionTime: "2026-12-03T10:00:00Z",
  } as const;
  const status = shardMapStatusOf(sample, {
    live: new Set(["worker-0"]),
    observedGeneration: 4,
    conditions: [condition],
    recovering: new Set([3]),
  });
  assert.deepEqual(status, {
    revision: 12,
    observedGeneration: 4,
    quorum: 2,
    memberCount: 2,
    liveMembers: 1,
    movingShards: 2,
    unassignedShards: 1,
    members: [
      { id: "worker-0", address: "worker-0.workers:7000", live: true },
      { id: "worker-1", address: "worker-1.workers:7000", live: false },
    ],
    shards: [
      { shard: 0, owner: "worker-0", epoch: 3, state: "Active" },
      { shard: 1, owner: "worker-1", epoch: 2, state: "Draining" },
      { shard: 2, owner: "", epoch: 1, state: "Unassigned" },
      { shard: 3, owner: "worker-1", epoch: 5, state: "Active" },
    ],
    conditions: [condition],
  });
});

test("without observations beyond liveness, the status has no generation or conditions and moving counts draining shards", () => {
  const status = shardMapStatusOf(sample, { live: new Set() });
  assert.equal("observedGeneration" in status, false);
  assert.equal("conditions" in status, false);
  assert.equal(status.movingShards, 1);
  assert.equal(status.liveMembers, 0);
});

test("a shard in the unspecified state cannot be written to the resource", () => {
  const map = {
    ...sample,
    shards: sample.shards.map((s) =>
      s.shard === 2 ? { ...s, state: ShardState.SHARD_STATE_UNSPECIFIED } : s,
    ),
  };
  assert.throws(() => shardMapStatusOf(map, { live: new Set() }), {
    name: "RangeError",
    message: "shard 2 has state SHARD_STATE_UNSPECIFIED, which a ShardMap resource cannot express",
  });
});

test("a status read back gives the same proto map", () => {
  const read = shardMapOfResource(resource(shardMapStatusOf(sample, { live: new Set() })));
  assert.deepEqual(read, { ok: true, map: sample });
});

test("any planned map survives the round trip through the resource", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^worker-[0-9]{1,3}$/), { maxLength: 6 }),
      fc.integer({ min: 1, max: 64 }),
      fc.integer({ min: 0, max: 4 }),
      fc.integer({ min: 0, max: 3 }),
      (ids, shardCount, quorum, replans) => {
        let map = planShardMap({ members: ids.map(member), shardCount, quorum });
        // Later revisions: members leave one by one, so epochs and owners change.
        for (let i = 0; i < replans; i++) {
          map = planShardMap({
            members: ids.slice(i + 1).map(member),
            shardCount,
            quorum,
            previous: map,
          });
        }
        const status = shardMapStatusOf(map, { live: new Set(ids.slice(1)) });
        assert.deepEqual(shardMapOfResource(resource(status, shardCount)), { ok: true, map });
      },
    ),
  );
});

test("an object without a status, or whose status has no valid revision, is not a map", () => {
  const status = shardMapStatusOf(sample, { live: new Set() });
  assert.equal(reason(resource(undefined)), "no status yet");
  const { revision: _, ...withoutRevision } = status;
  assert.equal(reason(resource(withoutRevision)), "status.revision is not set");
  assert.equal(
    reason(resource({ ...status, revision: 0 })),
    "status.revision must be a positive integer, got 0",
  );
});

test("an unknown state or an epoch beyond 2^53 is refused, naming the entry", () => {
  const status = shardMapStatusOf(sample, { live: new Set() });
  const shards = status.shards ?? [];
  const withShard = (i: number, change: object): ShardMapStatus => ({
    ...status,
    shards: shards.map((s, j) => (j === i ? { ...s, ...change } : s)),
  });
  assert.equal(
    reason(resource(withShard(1, { state: "Moving" }))),
    'status.shards[1].state "Moving" is not one of Active, Draining, Unassigned',
  );
  assert.equal(
    reason(resource(withShard(3, { epoch: 2 ** 53 }))),
    "status.shards[3].epoch 9007199254740992 is not a safe integer",
  );
});

test("a map the proto contract refuses is refused with its reason", () => {
  const status = shardMapStatusOf(sample, { live: new Set() });
  assert.equal(
    reason(resource({ ...status, members: (status.members ?? []).slice(0, 1) })),
    'shard 1 is owned by "worker-1", who is not a member',
  );
  assert.equal(reason(resource(status, 8)), "map lists 4 shards; its shard count is 8");
});

test("an absent quorum reads as 0, the proto default", () => {
  const { quorum: _, ...status } = shardMapStatusOf(sample, { live: new Set() });
  assert.deepEqual(shardMapOfResource(resource(status)), {
    ok: true,
    map: { ...sample, quorum: 0 },
  });
});
