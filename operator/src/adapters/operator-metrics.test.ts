import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { internal } from "@berth/proto";
import { Registry } from "prom-client";
import { HandOffTimer, MemberTransitions, operatorMetrics } from "./operator-metrics.js";

function map(owners: readonly string[]): internal.ShardMap {
  return {
    revision: 1,
    shardCount: owners.length,
    members: [],
    quorum: 1,
    shards: owners.map((owner, shard) => ({
      shard,
      owner,
      epoch: 1,
      state: internal.ShardState.SHARD_STATE_ACTIVE,
    })),
  };
}

describe("HandOffTimer", () => {
  test("a hand-off lasts from the DRAINING map to its new owner serving", () => {
    let now = 1_000;
    const seen: number[] = [];
    const timer = new HandOffTimer(
      (s) => seen.push(s),
      () => now,
    );
    timer.published([{ kind: "draining", shard: 0, from: "w-0", to: "w-1" }]);
    now += 500;
    timer.published([{ kind: "handed-off", shard: 0, from: "w-0", to: "w-1", epoch: 2 }]);
    timer.observed(map(["w-1"]), () => false);
    assert.deepEqual(seen, [], "not finished while the new owner recovers");
    now += 1_500;
    timer.observed(map(["w-1"]), () => true);
    assert.deepEqual(seen, [2]);
    assert.equal(timer.inProgress, 0);
    timer.observed(map(["w-1"]), () => true);
    assert.deepEqual(seen, [2], "observed once");
  });

  test("a cancelled drain is forgotten, and serving by the old owner ends nothing", () => {
    const seen: number[] = [];
    const timer = new HandOffTimer(
      (s) => seen.push(s),
      () => 0,
    );
    timer.published([
      { kind: "draining", shard: 0, from: "w-0", to: "w-1" },
      { kind: "draining", shard: 1, from: "w-0", to: "w-1" },
    ]);
    timer.observed(map(["w-0", "w-0"]), () => true);
    timer.published([{ kind: "drain-cancelled", shard: 0, owner: "w-0" }]);
    assert.equal(timer.inProgress, 1);
    assert.deepEqual(seen, []);
  });

  test("a drain whose owner died ends when the taker serves", () => {
    let now = 0;
    const seen: number[] = [];
    const timer = new HandOffTimer(
      (s) => seen.push(s),
      () => now,
    );
    timer.published([{ kind: "draining", shard: 0, from: "w-0", to: "w-1" }]);
    now = 3_000;
    timer.published([{ kind: "taken-over", shard: 0, from: "w-0", to: "w-2", epoch: 2 }]);
    timer.observed(map(["w-2"]), () => true);
    assert.deepEqual(seen, [3]);
  });
});

describe("MemberTransitions", () => {
  test("counts live → dead, dead → live, new members and deleted Leases, after a baseline", () => {
    const counted: string[] = [];
    const t = new MemberTransitions((to) => counted.push(to));
    t.observe([
      { id: "w-0", live: true },
      { id: "w-1", live: true },
      { id: "w-2", live: false },
    ]);
    assert.deepEqual(counted, [], "the first observation is the baseline");
    t.observe([
      { id: "w-0", live: false },
      { id: "w-1", live: true },
      { id: "w-2", live: true },
      { id: "w-3", live: true },
    ]);
    assert.deepEqual(counted.sort(), ["dead", "live", "live"]);
    counted.length = 0;
    t.observe([
      { id: "w-0", live: false },
      { id: "w-2", live: true },
    ]);
    assert.deepEqual(counted.sort(), ["left", "left"], "w-1 and w-3 deleted their Leases");
    counted.length = 0;
    t.observe([{ id: "w-2", live: true }]);
    assert.deepEqual(counted, [], "a dead member's Lease going away is no transition");
  });
});

describe("operatorMetrics", () => {
  test("registers the hand-off and membership metrics with help text", async () => {
    const registry = new Registry();
    const m = operatorMetrics(registry);
    m.handOffSeconds.observe(1.5);
    m.memberTransitions.inc({ to: "dead" });
    const text = await registry.metrics();
    assert.match(text, /# HELP berth_operator_handoff_seconds \S/);
    assert.match(text, /berth_operator_handoff_seconds_count 1/);
    assert.match(text, /berth_operator_member_transitions_total\{to="dead"\} 1/);
  });
});
