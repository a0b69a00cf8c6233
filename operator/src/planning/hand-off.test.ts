import assert from "node:assert/strict";
import { test } from "node:test";
import { assignOwners, internal, planShardMap } from "@berth/proto";
import fc from "fast-check";
import { type HandOffInput, planHandOff, type ShardReport } from "./hand-off.js";

const { ShardState } = internal;
const member = (id: string): internal.Member => ({ id, address: `${id}:7000` });
const S = 32;

/** A settled map: every shard on its rendezvous owner among `ids`, all serving. */
function settled(ids: readonly string[]): {
  map: internal.ShardMap;
  reports: Map<number, ShardReport>;
} {
  const map = planShardMap({ members: ids.map(member), shardCount: S, quorum: 0 });
  return { map, reports: serveAll(map) };
}

function serveAll(map: internal.ShardMap): Map<number, ShardReport> {
  return new Map(
    map.shards.map((s) => [
      s.shard,
      {
        owner: s.owner,
        epoch: s.epoch,
        state: s.state === ShardState.SHARD_STATE_DRAINING ? "drained" : "serving",
      },
    ]),
  );
}

/** Runs steps, with every owner acknowledging each step, until nothing changes. */
function converge(input: HandOffInput, maxSteps = 200): { map: internal.ShardMap; steps: number } {
  let map = input.previous;
  let reports = new Map(input.reports);
  for (let steps = 0; steps < maxSteps; steps++) {
    const step = planHandOff({ ...input, previous: map, reports });
    if (step.changes.length === 0) return { map, steps };
    map = step.map;
    reports = serveAll(map);
  }
  assert.fail("did not converge");
}

test("a live owner's shard moves only through DRAINING and its acknowledgement, with epoch + 1", () => {
  const before = settled(["w0", "w1"]);
  const step1 = planHandOff({
    previous: before.map,
    live: ["w0", "w1", "w2"].map(member),
    quorum: 2,
    reports: before.reports,
    maxMovesInProgress: 1_000,
  });
  const moving = step1.changes.filter((c) => c.kind === "draining");
  assert.ok(moving.length > 0);
  assert.ok(
    step1.changes.every((c) => c.kind === "draining"),
    "nothing moves before its drain",
  );
  for (const c of moving) {
    const s = step1.map.shards[c.shard];
    assert.equal(s?.state, ShardState.SHARD_STATE_DRAINING);
    assert.equal(s?.owner, before.map.shards[c.shard]?.owner);
    assert.equal(s?.epoch, before.map.shards[c.shard]?.epoch);
  }
  // Without acknowledgements, planning again changes nothing (reconcile twice).
  const again = planHandOff({
    previous: step1.map,
    live: ["w0", "w1", "w2"].map(member),
    quorum: 2,
    reports: before.reports,
    maxMovesInProgress: 1_000,
  });
  assert.deepEqual(again.changes, []);
  assert.equal(again.map, step1.map);
  // Acknowledged: they move to w2 with epoch + 1.
  const step2 = planHandOff({
    previous: step1.map,
    live: ["w0", "w1", "w2"].map(member),
    quorum: 2,
    reports: serveAll(step1.map),
    maxMovesInProgress: 1_000,
  });
  for (const c of moving) {
    const s = step2.map.shards[c.shard];
    assert.equal(s?.owner, "w2");
    assert.equal(s?.epoch, (before.map.shards[c.shard]?.epoch ?? 0) + 1);
    assert.equal(s?.state, ShardState.SHARD_STATE_ACTIVE);
  }
});

test("a dead owner's shards are taken over at once with epoch + 1, no drain", () => {
  const before = settled(["w0", "w1", "w2"]);
  const step = planHandOff({
    previous: before.map,
    live: ["w0", "w1"].map(member),
    quorum: 2,
    reports: before.reports,
    maxMovesInProgress: 1_000,
  });
  const lost = before.map.shards.filter((s) => s.owner === "w2").map((s) => s.shard);
  assert.deepEqual(
    step.changes.map((c) => [c.kind, c.shard]),
    lost.map((s) => ["taken-over", s]),
  );
  for (const shard of lost) {
    assert.notEqual(step.map.shards[shard]?.owner, "w2");
    assert.equal(step.map.shards[shard]?.epoch, (before.map.shards[shard]?.epoch ?? 0) + 1);
  }
});

test("below quorum nothing moves: the map is returned as it is, quorumLost set", () => {
  const before = settled(["w0", "w1", "w2"]);
  const step = planHandOff({
    previous: before.map,
    live: [member("w0")],
    quorum: 2,
    reports: before.reports,
  });
  assert.equal(step.quorumLost, true);
  assert.deepEqual(step.changes, []);
  assert.equal(step.map, before.map);
});

test("moves in progress never exceed the bound: recovering shards count", () => {
  const before = settled(["w0", "w1"]);
  const step = planHandOff({
    previous: before.map,
    live: ["w0", "w1", "w2", "w3"].map(member),
    quorum: 2,
    reports: before.reports,
    maxMovesInProgress: 3,
  });
  assert.equal(step.changes.length, 3);
  // Handing them off: they now recover on w2/w3 and still fill the budget.
  const handed = planHandOff({
    previous: step.map,
    live: ["w0", "w1", "w2", "w3"].map(member),
    quorum: 2,
    reports: serveAll(step.map),
    maxMovesInProgress: 3,
  });
  assert.deepEqual(
    handed.changes.map((c) => c.kind),
    ["handed-off", "handed-off", "handed-off"],
  );
  const next = planHandOff({
    previous: handed.map,
    live: ["w0", "w1", "w2", "w3"].map(member),
    quorum: 2,
    reports: before.reports, // the new owners have not reported serving yet
    maxMovesInProgress: 3,
  });
  assert.deepEqual(next.changes, [], "no new drain while three shards recover");
});

test("a dead owner's shards are all taken over in one step whatever the bound, and hold drains back", () => {
  const before = settled(["w0", "w1", "w2"]);
  const orphans = before.map.shards.filter((s) => s.owner === "w2").length;
  assert.ok(orphans > 3);
  const step = planHandOff({
    previous: before.map,
    live: ["w0", "w1", "w3"].map(member),
    quorum: 2,
    reports: before.reports,
    maxMovesInProgress: 3,
  });
  const kinds = step.changes.map((c) => c.kind);
  assert.equal(kinds.filter((k) => k === "taken-over").length, orphans);
  assert.deepEqual(
    kinds.filter((k) => k !== "taken-over"),
    [],
    "no drain starts while the taken-over shards recover",
  );
  assert.ok(step.map.shards.every((s) => s.owner !== "w2"));
});

const scenario = fc.record({
  before: fc.uniqueArray(fc.constantFrom("a", "b", "c", "d", "e"), { minLength: 1, maxLength: 5 }),
  after: fc.uniqueArray(fc.constantFrom("a", "b", "c", "d", "e", "f"), { maxLength: 6 }),
  quorum: fc.integer({ min: 0, max: 4 }),
  budget: fc.integer({ min: 1, max: 40 }),
});

test("property: steps are idempotent, never move a live owner's shard without its drain, and converge", () => {
  fc.assert(
    fc.property(scenario, ({ before, after, quorum, budget }) => {
      const start = settled(before);
      const live = after.map(member);
      const liveIds = new Set<string>(after);
      let map = start.map;
      let reports: Map<number, ShardReport> = start.reports;
      for (let i = 0; i < 100; i++) {
        const input = { previous: map, live, quorum, reports, maxMovesInProgress: budget };
        const step = planHandOff(input);
        // Reconcile twice changes nothing.
        const twice = planHandOff({ ...input, previous: step.map });
        assert.deepEqual(twice.changes, []);
        for (const s of step.map.shards) {
          const old = map.shards[s.shard];
          assert.ok(old !== undefined);
          if (s.owner !== old.owner) {
            assert.equal(s.epoch, old.epoch + 1, "an owner change raises the epoch by one");
            if (liveIds.has(old.owner)) {
              const r = reports.get(s.shard);
              assert.equal(old.state, ShardState.SHARD_STATE_DRAINING);
              assert.deepEqual(r, { owner: old.owner, epoch: old.epoch, state: "drained" });
            }
          } else {
            assert.equal(s.epoch, old.epoch, "no owner change, no epoch change");
          }
        }
        const draining = step.map.shards.filter(
          (s) => s.state === ShardState.SHARD_STATE_DRAINING,
        ).length;
        assert.ok(draining <= Math.max(budget, S), "draining bounded");
        if (step.changes.length === 0) break;
        map = step.map;
        reports = serveAll(map);
      }
      if (after.length >= quorum && after.length > 0) {
        const target = assignOwners(after, S);
        assert.deepEqual(
          map.shards.map((s) => s.owner),
          target,
          "converges to the rendezvous owners",
        );
        assert.ok(map.shards.every((s) => s.state === ShardState.SHARD_STATE_ACTIVE));
      } else if (after.length < quorum) {
        assert.equal(map, start.map, "frozen below quorum");
      }
    }),
    { numRuns: 150 },
  );
});

test("converge helper reaches the target from an empty map", () => {
  const empty = planShardMap({ members: [], shardCount: S, quorum: 0 });
  const { map } = converge({
    previous: empty,
    live: ["x", "y"].map(member),
    quorum: 1,
    reports: new Map(),
    maxMovesInProgress: 4,
  });
  assert.deepEqual(
    map.shards.map((s) => s.owner),
    assignOwners(["x", "y"], S),
  );
});

test("a leaving member keeps its shards until each is drained, then owns none; quorum still counts it", () => {
  const ids = ["w0", "w1", "w2"];
  const before = settled(ids);
  const live = ids.map(member);
  const leaving = new Set(["w1"]);
  const owned = (m: internal.ShardMap, id: string) => m.shards.filter((s) => s.owner === id).length;
  assert.ok(owned(before.map, "w1") > 0);
  const step1 = planHandOff({
    previous: before.map,
    live,
    quorum: 3,
    reports: before.reports,
    leaving,
    maxMovesInProgress: 1_000,
  });
  assert.equal(step1.quorumLost, false, "a leaving member is still live");
  assert.ok(step1.changes.length > 0 && step1.changes.every((c) => c.kind === "draining"));
  assert.equal(owned(step1.map, "w1"), owned(before.map, "w1"), "nothing moves before its drain");
  const done = converge({
    previous: step1.map,
    live,
    quorum: 3,
    reports: serveAll(step1.map),
    leaving,
  });
  assert.equal(owned(done.map, "w1"), 0);
  assert.ok(done.map.shards.every((s) => s.state === ShardState.SHARD_STATE_ACTIVE));
});

test("the last live member leaving keeps its shards: there is nobody to give them to", () => {
  const before = settled(["w0"]);
  const step = planHandOff({
    previous: before.map,
    live: [member("w0")],
    quorum: 1,
    reports: before.reports,
    leaving: new Set(["w0"]),
  });
  assert.deepEqual(step.changes, []);
});
