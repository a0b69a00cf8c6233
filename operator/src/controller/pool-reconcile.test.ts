import assert from "node:assert/strict";
import { test } from "node:test";
import {
  API_VERSION,
  CAPACITY_POOL_FINALIZER,
  CAPACITY_POOL_KIND,
  type CapacityPool,
  findCondition,
  poolIdOf,
} from "@berth/kubernetes";
import { internal, planShardMap, shardOf } from "@berth/proto";
import type { ShardReport } from "../planning/hand-off.js";
import { type PoolObservation, type PoolPlan, reconcilePool } from "./pool-reconcile.js";

const S = 8;
const map = planShardMap({
  members: ["w0", "w1"].map((id) => ({ id, address: `${id}:7000` })),
  shardCount: S,
  quorum: 0,
});
const serving = (m: internal.ShardMap): Map<number, ShardReport> =>
  new Map(m.shards.map((s) => [s.shard, { owner: s.owner, epoch: s.epoch, state: "serving" }]));

function pool(over: Partial<CapacityPool["metadata"]> = {}, capacity = 10): CapacityPool {
  return {
    apiVersion: API_VERSION,
    kind: CAPACITY_POOL_KIND,
    metadata: {
      name: "morning",
      namespace: "delivery",
      generation: 1,
      finalizers: [CAPACITY_POOL_FINALIZER],
      labels: { zone: "north" },
      ...over,
    },
    spec: { capacity },
  };
}

const observe = (o: Partial<PoolObservation> & Pick<PoolObservation, "pool">): PoolObservation => ({
  map,
  reports: serving(map),
  applied: undefined,
  rejected: undefined,
  counters: undefined,
  now: "2030-01-01T00:00:00Z",
  ...o,
});

/** Carries out a plan the way the adapter does: configure answers, status is stored. */
function apply(o: PoolObservation, plan: PoolPlan, reserved = 0): PoolObservation {
  let next = o;
  if (plan.configure !== undefined) {
    const c = plan.configure;
    next = {
      ...next,
      applied: { key: c.key, owner: c.owner, epoch: c.epoch, reserved, version: 1 },
    };
  }
  if (plan.status !== undefined) next = { ...next, pool: { ...next.pool, status: plan.status } };
  return next;
}

const shard = shardOf("delivery/morning", S);
const owner = map.shards[shard] as internal.ShardAssignment;

test("a new pool first gets its finalizer, and nothing else", () => {
  const plan = reconcilePool(observe({ pool: pool({ finalizers: [] }) }));
  assert.equal(plan.addFinalizer, true);
});

test("a pool is configured on its serving owner, then Ready; reconciling again changes nothing", () => {
  let o = observe({ pool: pool() });
  const first = reconcilePool(o);
  assert.equal(first.configure?.owner, owner.owner);
  assert.equal(first.configure?.epoch, owner.epoch);
  assert.equal(first.configure?.address, `${owner.owner}:7000`);
  assert.equal(first.configure?.spec.pool, "delivery/morning");
  o = apply(o, first);
  const second = reconcilePool(o);
  assert.equal(second.configure, undefined, "in force: not sent again");
  o = apply(o, second);
  const ready = findCondition(o.pool.status?.conditions, "Ready");
  assert.equal(ready?.status, "True");
  assert.equal(o.pool.status?.owner, owner.owner);
  assert.equal(o.pool.status?.shard, shard);
  assert.equal(o.pool.status?.available, 10);
  assert.equal(o.pool.status?.observedGeneration, 1);
  const third = reconcilePool({ ...o, now: "2031-01-01T00:00:00Z" });
  assert.deepEqual(third, {
    addFinalizer: false,
    removeFinalizer: false,
    configure: undefined,
    status: undefined,
  });
});

test("an owner still recovering is not sent the spec; the pool waits, not Ready", () => {
  const o = observe({ pool: pool(), reports: new Map() });
  const plan = reconcilePool(o);
  assert.equal(plan.configure, undefined);
  assert.equal(findCondition(plan.status?.conditions, "Ready")?.reason, "OwnerUnknown");
});

test("a new owner (epoch + 1) gets the spec again", () => {
  let o = observe({ pool: pool() });
  o = apply(o, reconcilePool(o));
  const moved: internal.ShardMap = {
    ...map,
    revision: map.revision + 1,
    shards: map.shards.map((s) =>
      s.shard === shard ? { ...s, owner: "w1" === s.owner ? "w0" : "w1", epoch: s.epoch + 1 } : s,
    ),
  };
  const plan = reconcilePool({ ...o, map: moved, reports: serving(moved) });
  assert.equal(plan.configure?.epoch, owner.epoch + 1);
  assert.notEqual(plan.configure?.owner, owner.owner);
});

test("a spec change (new generation) is sent; observedGeneration follows only once accepted", () => {
  let o = observe({ pool: pool() });
  o = apply(o, reconcilePool(o));
  o = apply(o, reconcilePool(o));
  const edited = {
    ...o.pool,
    metadata: { ...o.pool.metadata, generation: 2 },
    spec: { capacity: 20 },
  };
  const plan = reconcilePool({ ...o, pool: edited });
  assert.equal(plan.configure?.spec.capacity, 20);
  assert.equal(plan.configure?.spec.generation, 2);
  assert.equal(plan.status?.observedGeneration, 1, "not yet accepted by the owner");
});

test("a deleted pool is retired on its owner before its finalizer goes", () => {
  let o = observe({ pool: pool() });
  o = apply(o, reconcilePool(o));
  const deleting = {
    ...o.pool,
    metadata: { ...o.pool.metadata, deletionTimestamp: "2030-01-01T00:00:00Z" },
  };
  const retire = reconcilePool({ ...o, pool: deleting });
  assert.equal(retire.configure?.spec.deleted, true);
  assert.equal(retire.configure?.spec.pool, poolIdOf(deleting));
  assert.equal(retire.configure?.spec.closed, false, "retired, not closed");
  assert.equal(retire.removeFinalizer, false, "not before the owner retired the pool");
  assert.equal(findCondition(retire.status?.conditions, "Ready")?.reason, "Closing");
  const retired = apply({ ...o, pool: deleting }, retire);
  assert.equal(reconcilePool(retired).removeFinalizer, true);
});

test("a deleted pool whose spec the owner refused is still retired", () => {
  const o = observe({ pool: pool() });
  const rejected = { key: reconcilePool(o).configure?.key as string, message: "bad spec" };
  const deleting = {
    ...o.pool,
    metadata: { ...o.pool.metadata, deletionTimestamp: "2030-01-01T00:00:00Z" },
  };
  const plan = reconcilePool({ ...o, pool: deleting, rejected });
  assert.equal(plan.configure?.spec.deleted, true);
});

test("a spec the owner refused is SpecRejected and not re-sent until it changes", () => {
  const o = observe({ pool: pool() });
  const first = reconcilePool(o);
  const rejected = { key: first.configure?.key as string, message: "capacity out of range" };
  const plan = reconcilePool({ ...o, rejected });
  assert.equal(plan.configure, undefined);
  const ready = findCondition(plan.status?.conditions, "Ready");
  assert.equal(ready?.reason, "SpecRejected");
  assert.match(ready?.message ?? "", /capacity out of range/);
});

test("reserved beyond capacity (capacity lowered) is OverCommitted, with 0 available", () => {
  let o = observe({ pool: pool({}, 5) });
  o = apply(o, reconcilePool(o), 8);
  const plan = reconcilePool(o);
  assert.equal(findCondition(plan.status?.conditions, "OverCommitted")?.status, "True");
  assert.equal(plan.status?.available, 0);
  assert.equal(plan.status?.reserved, 8);
});

test("gossip's newer counters win over the configure answer", () => {
  let o = observe({ pool: pool() });
  o = apply(o, reconcilePool(o));
  const plan = reconcilePool({ ...o, counters: { reserved: 7, version: 9 } });
  assert.equal(plan.status?.reserved, 7);
  assert.equal(plan.status?.available, 3);
});

test("a shard being drained has no active owner: Unassigned, nothing sent", () => {
  const draining: internal.ShardMap = {
    ...map,
    shards: map.shards.map((s) =>
      s.shard === shard ? { ...s, state: internal.ShardState.SHARD_STATE_DRAINING } : s,
    ),
  };
  const plan = reconcilePool(observe({ pool: pool(), map: draining }));
  assert.equal(plan.configure, undefined);
  assert.equal(findCondition(plan.status?.conditions, "Ready")?.reason, "Unassigned");
});
